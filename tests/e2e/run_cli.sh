#!/usr/bin/env bash
# End to end: `ferry run` on a generated mlp with two hand-written plans — everything
# resident, and streamed (evicts, arena reuse, a spill to nvme and back) — gives the same
# output bytes; a plan failing its check is refused (exit 1); a truncated weight file stops
# the run (exit 2) naming event, tensor and file, leaving no spill file; --trace, --quiet,
# --inputs and no progress line on a pipe.
set -euo pipefail
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
mkdir "$tmp/nvme"

"$FERRY" graph mlp --layers 2 --hidden 16 --batch 4 --dtype f32 -o "$tmp/g.yaml" \
    --weights "$tmp/w.bin" 2>/dev/null

cat > "$tmp/resident.yaml" <<'PLAN'
ferry: plan/1
graph: {file: g.yaml}
arenas: {gpu: 4KiB, host: 4KiB}
events:
  - {id: 0, do: load, tensor: w0, from: nvme, to: host, at: 0}
  - {id: 1, do: load, tensor: w0, from: host, to: gpu, at: 0, after: [0]}
  - {id: 2, do: load, tensor: x, from: host, to: gpu, at: 1024}
  - {id: 3, do: compute, op: fc0, at: {a0: 1280}, after: [1, 2]}
  - {id: 4, do: load, tensor: w1, from: nvme, to: host, at: 1024}
  - {id: 5, do: load, tensor: w1, from: host, to: gpu, at: 1536, after: [4]}
  - {id: 6, do: compute, op: fc1, at: {"y": 2560}, after: [3, 5]}
  - {id: 7, do: offload, tensor: "y", from: gpu, to: host, at: 2048, after: [6]}
PLAN

cat > "$tmp/streamed.yaml" <<'PLAN'
ferry: plan/1
graph: {file: g.yaml}
arenas: {gpu: 4KiB, host: 4KiB, nvme: 4KiB}
events:
  - {id: 0, do: load, tensor: w0, from: nvme, to: host, at: 0}
  - {id: 1, do: load, tensor: w0, from: host, to: gpu, at: 0, after: [0]}
  - {id: 2, do: load, tensor: x, from: host, to: gpu, at: 1024}
  - {id: 3, do: compute, op: fc0, at: {a0: 1280}, after: [1, 2]}
  - {id: 4, do: evict, tensor: w0, from: gpu, after: [3]}
  - {id: 5, do: evict, tensor: w0, from: host, after: [1]}
  - {id: 6, do: offload, tensor: a0, from: gpu, to: host, at: 1024, after: [3]}
  - {id: 7, do: evict, tensor: a0, from: gpu, after: [6]}
  - {id: 8, do: offload, tensor: a0, from: host, to: nvme, at: 0, after: [6]}
  - {id: 9, do: evict, tensor: a0, from: host, after: [8]}
  - {id: 10, do: evict, tensor: x, from: gpu, after: [3]}
  - {id: 11, do: load, tensor: w1, from: nvme, to: host, at: 0, after: [5]}
  - {id: 12, do: load, tensor: w1, from: host, to: gpu, at: 0, after: [11, 4]}
  - {id: 13, do: load, tensor: a0, from: nvme, to: host, at: 1024, after: [8, 9]}
  - {id: 14, do: load, tensor: a0, from: host, to: gpu, at: 1280, after: [13, 7]}
  - {id: 15, do: compute, op: fc1, at: {"y": 1024}, after: [12, 14, 10]}
  - {id: 16, do: offload, tensor: "y", from: gpu, to: host, at: 2048, after: [15]}
PLAN

"$FERRY" check "$tmp/resident.yaml" >/dev/null || fail "resident plan does not check"
"$FERRY" check "$tmp/streamed.yaml" >/dev/null || fail "streamed plan does not check"

"$FERRY" run "$tmp/resident.yaml" --device sim --outputs "$tmp/out1" --nvme-dir "$tmp/nvme" \
    >"$tmp/report1" 2>"$tmp/err1" || fail "resident run: $(cat "$tmp/err1")"
"$FERRY" run "$tmp/streamed.yaml" --device sim --io threads --outputs "$tmp/out2" \
    --nvme-dir "$tmp/nvme" --trace "$tmp/trace.json" >"$tmp/report2" 2>"$tmp/err2" \
    || fail "streamed run: $(cat "$tmp/err2")"
[ "$(stat -c %s "$tmp/out1/y.bin")" -eq 256 ] || fail "output size"
cmp -s "$tmp/out1/y.bin" "$tmp/out2/y.bin" || fail "streamed output differs from resident"
grep -q "wall time" "$tmp/report2" || fail "no report: $(cat "$tmp/report2")"
grep -q "predicted" "$tmp/report2" || fail "no place for the prediction"
grep -Eq "^ +io +4 " "$tmp/report2" || fail "io queue row: $(cat "$tmp/report2")"
grep -q "nvme" "$tmp/report2" || fail "no nvme arena in the report"
grep -q '"traceEvents"' "$tmp/trace.json" || fail "trace"
grep -q '"name": "compute fc1"' "$tmp/trace.json" || fail "trace lacks events"
[ -z "$(ls -A "$tmp/nvme")" ] || fail "spill file left behind: $(ls "$tmp/nvme")"
! grep -q $'\r' "$tmp/err2" || fail "progress line written to a file"

# The same input from a file gives the same output; a different one another.
mkdir "$tmp/in"
cp "$tmp/out1/y.bin" "$tmp/in/x.bin" # 256 bytes, as x
"$FERRY" run "$tmp/resident.yaml" --device sim --inputs "$tmp/in" --outputs "$tmp/out3" --quiet \
    >"$tmp/quiet" 2>&1 || fail "run with --inputs: $(cat "$tmp/quiet")"
[ ! -s "$tmp/quiet" ] || fail "--quiet printed: $(cat "$tmp/quiet")"
! cmp -s "$tmp/out1/y.bin" "$tmp/out3/y.bin" || fail "--inputs was ignored"
head -c 100 "$tmp/out1/y.bin" > "$tmp/in/x.bin"
set +e
"$FERRY" run "$tmp/resident.yaml" --device sim --inputs "$tmp/in" --quiet 2>"$tmp/err"; rc=$?
set -e
[ $rc -eq 2 ] && grep -q "needs exactly 256 bytes" "$tmp/err" || fail "short input: $rc $(cat "$tmp/err")"

# A plan that fails its check is not run.
grep -v "id: 1," "$tmp/resident.yaml" | sed 's/after: \[1, 2\]/after: [2]/' > "$tmp/bad.yaml"
set +e
"$FERRY" run "$tmp/bad.yaml" --device sim 2>"$tmp/err"; rc=$?
set -e
[ $rc -eq 1 ] || fail "failing plan: exit $rc"
grep -q "error\[never-loaded\]" "$tmp/err" || fail "checker messages: $(cat "$tmp/err")"

# A truncated weight file stops the run before anything moves, naming what it cuts.
head -c 5000 "$tmp/w.bin" > "$tmp/w2" && mv "$tmp/w2" "$tmp/w.bin"
set +e
"$FERRY" run "$tmp/streamed.yaml" --device sim --nvme-dir "$tmp/nvme" 2>"$tmp/err"; rc=$?
set -e
[ $rc -eq 2 ] || fail "truncated weights: exit $rc"
grep -q "streamed.yaml:16:.*event 11 (load 'w1' nvme->host).*w.bin holds 5000 bytes" "$tmp/err" \
    || fail "truncated message: $(cat "$tmp/err")"
[ -z "$(ls -A "$tmp/nvme")" ] || fail "spill file left after a failure"

set +e
"$FERRY" run 2>/dev/null; rc=$?
"$FERRY" run "$tmp/resident.yaml" --device tpu 2>"$tmp/err"; rc2=$?
set -e
[ $rc -eq 2 ] && [ $rc2 -eq 2 ] || fail "bad arguments must exit 2"
grep -q "unknown device 'tpu'" "$tmp/err" || fail "device message"
"$FERRY" run --help | grep -q -- "--trace" || fail "run --help"

# The demo runs the whole path and verifies the planned run against the reference run.
"$FERRY" demo --dir "$tmp/demo" >"$tmp/demo.out" 2>&1 || fail "demo: $(cat "$tmp/demo.out")"
grep -q "bitwise identical" "$tmp/demo.out" || fail "demo did not verify: $(cat "$tmp/demo.out")"
grep -q "^3. simulate it .*predicted" "$tmp/demo.out" || fail "demo did not simulate: $(cat "$tmp/demo.out")"
grep -q "</svg>" "$tmp/demo/plan.svg" || fail "demo wrote no plot"
"$FERRY" run "$tmp/demo/plan.yaml" --device sim --nvme-dir "$tmp/nvme" --quiet || fail "demo plan"
echo "run_cli: ok"
