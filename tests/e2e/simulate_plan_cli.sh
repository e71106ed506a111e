#!/usr/bin/env bash
# `ferry simulate` on a plan `ferry plan` made: the summary, --json (valid JSON with the peaks and time), --trace (valid
# JSON), --svg (an SVG), and exit 2 on a plan that cannot be read.
set -euo pipefail
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$FERRY" graph mlp --layers 6 --hidden 512 --batch 8 -o "$tmp/g.yaml" --weights "$tmp/w.bin" 2>/dev/null
"$FERRY" plan "$tmp/g.yaml" --gpu 2MiB -o "$tmp/p.yaml" > /dev/null
"$FERRY" simulate "$tmp/p.yaml" --trace "$tmp/t.json" --svg "$tmp/p.svg" > "$tmp/out.txt"
grep -q "predicted time" "$tmp/out.txt" || fail "no predicted time: $(cat "$tmp/out.txt")"
grep -q "^  gpu " "$tmp/out.txt" || fail "no gpu row"
grep -q "compute stalls" "$tmp/out.txt" || fail "no stalls line"
grep -q "<svg" "$tmp/p.svg" && grep -q "</svg>" "$tmp/p.svg" || fail "svg"
if command -v python3 > /dev/null; then
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['traceEvents']" "$tmp/t.json" \
        || fail "trace is not JSON with traceEvents"
    "$FERRY" simulate "$tmp/p.yaml" --json > "$tmp/s.json"
    python3 - "$tmp/s.json" <<'PY' || fail "--json"
import json, sys
d = json.load(open(sys.argv[1]))
flat = json.dumps(d)
assert "total" in flat and "peak" in flat, flat[:200]
PY
fi
printf 'ferry: plan/1\nevents: [\n' > "$tmp/bad.yaml"
set +e
"$FERRY" simulate "$tmp/bad.yaml" 2> "$tmp/err"; rc=$?
set -e
[ $rc -eq 2 ] || fail "unreadable plan exit $rc, want 2"
grep -q "bad.yaml:" "$tmp/err" || fail "error does not name the file: $(cat "$tmp/err")"
echo "simulate_plan_cli: ok"
