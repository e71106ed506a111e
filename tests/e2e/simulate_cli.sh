#!/usr/bin/env bash
# End to end: `ferry simulate` prints the summary of the design's example plan, writes a trace
# that parses as JSON, a well-formed SVG and a JSON summary; a machine file overrides the
# plan's rates and capacities (a peak over capacity exits 1); unusable input exits 2.
# (ferry probe and plan --search have their own scripts: probe_cli.sh, search_cli.sh.)
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
echo ok
