#!/usr/bin/env bash
# End to end: `ferry simulate` prints the summary of the design's example plan, writes a trace
# that parses as JSON, a well-formed SVG and a JSON summary; a machine file overrides the
# plan's rates and capacities (a peak over capacity exits 1); unusable input exits 2.
set -euo pipefail
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
plan="$FY_TEST_DATA/plans/good-design.yaml"

"$FERRY" --help | grep -q "simulate" || fail "ferry --help lists no simulate"
"$FERRY" simulate --help | grep -q -- "--trace" || fail "simulate --help"
"$FERRY" simulate "$plan" --trace "$tmp/t.json" --svg "$tmp/p.svg" >"$tmp/out"
grep -q "predicted time 94.4ms" "$tmp/out" || fail "predicted time: $(cat "$tmp/out")"
grep -Eq "^  gpu +130MiB +47.2ms +130MiB" "$tmp/out" || fail "gpu peak line: $(cat "$tmp/out")"
grep -q "w0 128MiB, x 1MiB, a0 1MiB" "$tmp/out" || fail "tensors at the gpu peak"
grep -q "by kind: load host->gpu" "$tmp/out" || fail "stall causes"
head -c 40 "$tmp/t.json" | grep -q traceEvents || fail "trace header"
[ "$(grep -c '"ph": "X"' "$tmp/t.json")" -eq 8 ] || fail "trace must hold the 8 timed events"
[ "$(grep -c '"ph": "i"' "$tmp/t.json")" -eq 7 ] || fail "trace must hold the 7 evicts"
if command -v python3 >/dev/null; then
    python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$tmp/t.json" || fail "trace is not JSON"
fi
if command -v xmllint >/dev/null; then
    xmllint --noout "$tmp/p.svg" || fail "SVG is not well-formed"
fi
grep -q "gpu memory" "$tmp/p.svg" || fail "SVG has no gpu panel"

"$FERRY" simulate "$plan" --json >"$tmp/s.json"
grep -q '"total_s": 0.0944' "$tmp/s.json" || fail "json total: $(head -c 300 "$tmp/s.json")"
if command -v python3 >/dev/null; then
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['tiers']['gpu']['arena']==136314880" \
        "$tmp/s.json" || fail "json summary"
fi

# a faster nvme halves the reads; a smaller gpu is over capacity: exit 1
printf 'ferry: machine/1\nnvme: {read: 6GB/s}\n' >"$tmp/fast.yaml"
"$FERRY" simulate "$plan" --machine "$tmp/fast.yaml" | grep -q "predicted time 49.7ms" || fail "machine file ignored"
printf 'ferry: machine/1\ngpu: {capacity: 100MiB}\n' >"$tmp/small.yaml"
set +e
"$FERRY" simulate "$plan" --machine "$tmp/small.yaml" >"$tmp/out" 2>"$tmp/err"; rc=$?
set -e
[ $rc -eq 1 ] || fail "over capacity exit $rc, want 1"
grep -q "OVER CAPACITY" "$tmp/out" && grep -q "gpu peak exceeds" "$tmp/err" || fail "over-capacity message"

set +e
"$FERRY" simulate "$FY_TEST_DATA/plans/bad-yaml.yaml" 2>"$tmp/err"; rc=$?
"$FERRY" simulate 2>/dev/null; rc2=$?
"$FERRY" simulate "$plan" --io-depth x 2>/dev/null; rc3=$?
"$FERRY" simulate "$plan" --trace /nonexistent/dir/t.json >/dev/null 2>"$tmp/err2"; rc4=$?
"$FERRY" simulate "$plan" --machine "$FY_TEST_DATA/plans/machine-bad-key.yaml" >/dev/null 2>&1; rc5=$?
set -e
[ $rc -eq 2 ] || fail "unusable plan exit $rc, want 2"
grep -q "bad-yaml.yaml:6:" "$tmp/err" || fail "message: $(cat "$tmp/err")"
[ $rc2 -eq 2 ] && [ $rc3 -eq 2 ] && [ $rc4 -eq 2 ] && [ $rc5 -eq 2 ] || fail "bad options must exit 2"
grep -q "nonexistent" "$tmp/err2" || fail "trace write error names the path"
# ferry plan --search: a table of what it tried, the choice, a plan that simulates
"$FERRY" graph mlp --layers 4 --hidden 1024 --batch 8 -o "$tmp/g.yaml" --weights "$tmp/w.bin" 2>/dev/null
"$FERRY" plan "$tmp/g.yaml" --gpu 16MiB --search -o "$tmp/searched.yaml" >"$tmp/out"
grep -q "settings tried" "$tmp/out" || fail "search table: $(cat "$tmp/out")"
grep -Eq "^\* +[0-9]+ " "$tmp/out" || fail "search marks no choice"
grep -Eq "kept the base|chose try" "$tmp/out" || fail "search says not why"
"$FERRY" check "$tmp/searched.yaml" >/dev/null || fail "searched plan does not check"
"$FERRY" simulate "$tmp/searched.yaml" | grep -q "predicted time" || fail "searched plan does not simulate"
"$FERRY" plan "$tmp/g.yaml" --gpu 16MiB --policy lookahead --search -o "$tmp/lua.yaml" >"$tmp/out" \
    || fail "search with a Lua policy"
grep -q "settings tried" "$tmp/out" || fail "Lua search table"
set +e
"$FERRY" plan "$tmp/g.yaml" --gpu 64KiB --search -o "$tmp/none.yaml" >"$tmp/out" 2>"$tmp/err"; rc=$?
set -e
[ $rc -eq 2 ] && grep -q "fits" "$tmp/err" || fail "infeasible search: $rc $(cat "$tmp/err")"

# ferry probe measures this folder and writes a machine file that simulate loads
"$FERRY" probe --dir "$tmp" --size 4MiB --no-gpu --no-host -o "$tmp/probed.yaml" >"$tmp/out"
grep -q "wrote $tmp/probed.yaml" "$tmp/out" || fail "probe output: $(cat "$tmp/out")"
grep -q "^nvme: {dir: " "$tmp/probed.yaml" || fail "probe's machine file"
"$FERRY" simulate "$plan" --machine "$tmp/probed.yaml" | grep -q "predicted time" || fail "simulate on the probed machine"
set +e
"$FERRY" probe --dir /nonexistent/x -o "$tmp/x.yaml" 2>"$tmp/err"; rc=$?
"$FERRY" probe --dir "$tmp" 2>/dev/null; rc2=$?
set -e
[ $rc -eq 2 ] && grep -q "/nonexistent/x" "$tmp/err" || fail "probe of a missing folder: $rc $(cat "$tmp/err")"
[ $rc2 -eq 2 ] || fail "probe without -o must exit 2"
echo ok
