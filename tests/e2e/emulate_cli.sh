#!/usr/bin/env bash
# End to end: a real checkpoint's bytes streamed through a plan with `spin` standing in for
# the compute. scripts/tiny-checkpoint.sh writes it (one file, then shards); `ferry import`
# -> `ferry plan --gpu` -> `ferry check` -> `ferry run --emulate --device sim` exits 0 and
# reads from the checkpoint at least the weights' total (exactly it when nothing is
# reloaded), every weight verified against its file. Without --emulate the run is refused
# before it starts, naming the op, its kind and the way out; a checkpoint cut after import
# stops the run naming the tensor and the file, leaving nothing behind.
set -euo pipefail
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
tiny="$FY_SOURCE_DIR/scripts/tiny-checkpoint.sh"
mkdir "$tmp/nvme"

"$FERRY" run --help | grep -q -- "--emulate" || fail "run --help lacks --emulate"
"$FERRY" run --help | grep -q -- "--verify-weights" || fail "run --help lacks --verify-weights"

# The bytes of tiny-checkpoint.sh's weights (bf16): embedding, per layer two norms, q/k/v/o
# and gate/up/down, the final norm and the head.
weights_total() { # LAYERS HIDDEN VOCAB
    local l=$1 h=$2 v=$3
    echo $(((v * h + l * (2 * h + 4 * h * h + 3 * 2 * h * h) + h + v * h) * 2))
}
bytes_read() { sed -n 's/^  read from source files: \([0-9]*\) bytes.*/\1/p' "$1"; }

# One file; a gpu budget that holds about one layer, so layers stream through the gpu.
"$tiny" "$tmp/tiny.safetensors" 3 64 256
"$FERRY" import "$tmp/tiny.safetensors" --seq 128 -o "$tmp/tiny.yaml" 2>/dev/null
"$FERRY" plan "$tmp/tiny.yaml" --gpu 200KiB -o "$tmp/plan.yaml" -q
"$FERRY" check "$tmp/plan.yaml" >/dev/null || fail "check"
total=$(weights_total 3 64 256)

# No kernel for the imported kinds: refused before anything runs.
set +e
"$FERRY" run "$tmp/plan.yaml" --device sim --nvme-dir "$tmp/nvme" >"$tmp/out" 2>"$tmp/err"
rc=$?
set -e
[ $rc -eq 2 ] || fail "run without --emulate: exit $rc, want 2"
for want in "compute 'embed'" "kind 'embedding'" "no kernel" "--emulate" "'block', 'head'"; do
    grep -q -- "$want" "$tmp/err" || fail "no '$want' in: $(cat "$tmp/err")"
done
[ -z "$(ls -A "$tmp/nvme")" ] || fail "files left in the nvme dir"
[ ! -s "$tmp/out" ] || fail "a report for a run that never started"

"$FERRY" run "$tmp/plan.yaml" --emulate --device sim --verify-weights --nvme-dir "$tmp/nvme" \
    >"$tmp/out" || fail "emulated run"
grep -q "emulated: 5 computes" "$tmp/out" || fail "emulated count: $(cat "$tmp/out")"
read=$(bytes_read "$tmp/out")
[ -n "$read" ] && [ "$read" -ge "$total" ] || fail "read $read bytes, the weights hold $total"
grep -q "verified against source files: [1-9][0-9]* copies, .* all intact" "$tmp/out" ||
    fail "verification: $(cat "$tmp/out")"
# A budget that holds everything: each weight is read once, so exactly the total.
"$FERRY" plan "$tmp/tiny.yaml" --gpu 8GiB -o "$tmp/roomy.yaml" -q
"$FERRY" run "$tmp/roomy.yaml" --emulate --device sim --nvme-dir "$tmp/nvme" >"$tmp/out"
[ "$(bytes_read "$tmp/out")" -eq "$total" ] || fail "roomy: $(cat "$tmp/out"), want $total"

# Shards with an index.
"$tiny" "$tmp/sharded" 4 32 128 3
"$FERRY" import "$tmp/sharded" --seq 128 -o "$tmp/sharded/graph.yaml" 2>/dev/null
"$FERRY" plan "$tmp/sharded/graph.yaml" --gpu 64KiB -o "$tmp/sharded/plan.yaml" -q
"$FERRY" check "$tmp/sharded/plan.yaml" >/dev/null || fail "check sharded"
"$FERRY" run "$tmp/sharded/plan.yaml" --emulate --device sim --verify-weights \
    --nvme-dir "$tmp/nvme" >"$tmp/out" || fail "emulated sharded run"
read=$(bytes_read "$tmp/out")
total=$(weights_total 4 32 128)
[ -n "$read" ] && [ "$read" -ge "$total" ] || fail "sharded: read $read, want >= $total"

# Cut the single file after import: the run stops naming the tensor and the file.
size=$(stat -c %s "$tmp/tiny.safetensors")
truncate -s $((size - 1000)) "$tmp/tiny.safetensors"
for flags in "" "--verify-weights"; do
    set +e
    # shellcheck disable=SC2086
    "$FERRY" run "$tmp/plan.yaml" --emulate --device sim $flags --nvme-dir "$tmp/nvme" \
        --outputs "$tmp/outputs" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    set -e
    [ $rc -eq 2 ] || fail "truncated $flags: exit $rc, want 2"
    grep -q "'lm_head.weight'" "$tmp/err" || fail "tensor not named: $(cat "$tmp/err")"
    grep -q "tiny.safetensors" "$tmp/err" || fail "file not named: $(cat "$tmp/err")"
    [ -z "$(ls -A "$tmp/nvme")" ] || fail "files left in the nvme dir"
    [ ! -e "$tmp/outputs" ] || fail "outputs written by a failed run"
done
echo "emulate_cli: ok"
