#!/usr/bin/env bash
# End to end: `ferry plan --sequence A,B,A` (and the same as a --trace file) plans a request
# sequence as one timeline that `ferry check` accepts; switching back to A reloads fewer weights
# than A's first request; running the sequence plan on sim gives, bitwise, each model's output
# run alone; bad sequences exit 2 with a message naming what is wrong.
set -euo pipefail
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$tmp"
"$FERRY" graph mlp --layers 4 --hidden 256 --batch 8 --dtype f32 -o a.yaml --weights a.bin >/dev/null 2>&1
"$FERRY" graph mlp --layers 3 --hidden 256 --batch 8 --dtype f32 -o b.yaml --weights b.bin >/dev/null 2>&1
"$FERRY" plan --help | grep -q -- "--sequence" || fail "plan --help lacks --sequence"

# A budget that holds both models' weights: the second request of A loads none again.
"$FERRY" plan --sequence a.yaml,b.yaml,a.yaml --gpu 4MiB --host 64MiB -o roomy.yaml >out
grep -q "request 0 (a): 4 weight loads" out || fail "request 0: $(cat out)"
grep -q "request 2 (a): 0 weight loads" out || fail "A's weights were reloaded: $(cat out)"
[ -s roomy.graph.yaml ] || fail "no sequence graph beside the plan"
grep -q "a@2/x" roomy.graph.yaml || fail "per-request names missing"
"$FERRY" check roomy.yaml >/dev/null || fail "roomy sequence plan rejected"

# A tight one: A comes back to some of its weights (belady keeps the soonest used).
"$FERRY" plan --sequence a.yaml,b.yaml,a.yaml --gpu 1200KiB --host 64MiB -o tight.yaml >out
"$FERRY" check tight.yaml >/dev/null || fail "tight sequence plan rejected"
first=$(sed -n 's/.*request 0 (a): \([0-9]*\) weight loads.*/\1/p' out)
again=$(sed -n 's/.*request 2 (a): \([0-9]*\) weight loads.*/\1/p' out)
[ -n "$first" ] && [ -n "$again" ] || fail "no per-request loads: $(cat out)"
[ "$again" -lt 4 ] || fail "switching back reloaded all of A ($again loads)"

# The same sequence as a trace file plans the same graph.
mkdir sub
printf '# a serving trace\na.yaml\n\nb.yaml   # the second model\na.yaml\n' >trace.txt
"$FERRY" plan --trace trace.txt --gpu 1200KiB --host 64MiB -o sub/trace.yaml -q
cmp sub/trace.graph.yaml tight.graph.yaml >/dev/null 2>&1 ||
    diff <(grep -v 'file:' sub/trace.graph.yaml) <(grep -v 'file:' tight.graph.yaml) >/dev/null ||
    fail "trace and --sequence give different graphs"
"$FERRY" check sub/trace.yaml >/dev/null || fail "trace plan rejected"

# Outputs of the sequence run equal each model run alone.
mkdir in outa outb outs
head -c $((8 * 256 * 4)) /dev/urandom >in/x.bin
for k in 0 1 2; do cp in/x.bin "in/a@${k}_x.bin"; cp in/x.bin "in/b@${k}_x.bin"; done
"$FERRY" plan a.yaml --gpu 8MiB -o pa.yaml -q
"$FERRY" plan b.yaml --gpu 8MiB -o pb.yaml -q
"$FERRY" run pa.yaml --device sim --inputs in --outputs outa --quiet
"$FERRY" run pb.yaml --device sim --inputs in --outputs outb --quiet
"$FERRY" run tight.yaml --device sim --inputs in --outputs outs --quiet
cmp outs/a@0_y.bin outa/y.bin || fail "request 0 differs from A alone"
cmp outs/b@1_y.bin outb/y.bin || fail "request 1 differs from B alone"
cmp outs/a@2_y.bin outa/y.bin || fail "request 2 differs from A alone"

# Errors.
expect2() {
    set +e; "$FERRY" plan "$@" 2>err -o x.yaml >/dev/null; rc=$?; set -e
    [ $rc -eq 2 ] || fail "plan $* exit $rc, want 2"
}
expect2 --sequence a.yaml,missing.yaml
grep -q "missing.yaml" err || fail "missing graph not named: $(cat err)"
printf 'a.yaml\nnope.yaml\n' >bad.txt
expect2 --trace bad.txt
grep -q "bad.txt:2" err || fail "trace line not named: $(cat err)"
printf '# nothing\n' >empty.txt
expect2 --trace empty.txt
grep -q "names no request" err || fail "empty trace: $(cat err)"
expect2 --sequence a.yaml --trace trace.txt
expect2 a.yaml --sequence a.yaml
set +e; "$FERRY" plan --sequence a.yaml -o - 2>err >/dev/null; rc=$?; set -e
[ $rc -eq 2 ] && grep -q "needs -o FILE" err || fail "sequence to stdout: $rc $(cat err)"
expect2 --sequence a.yaml,b.yaml --gpu 100KiB
grep -q "too small" err || fail "infeasible: $(cat err)"
echo ok
