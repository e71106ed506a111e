#!/usr/bin/env bash
# End to end: `ferry check` on the fixtures: clean plans exit 0, each class's fixture
# prints PLAN:LINE: error[CLASS] and exits 1, --json prints the same as a JSON array,
# machine options apply, and malformed plans exit 2 with FILE:LINE:COLUMN on stderr.
set -euo pipefail
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
d="$FY_TEST_DATA/plans"

"$FERRY" --help | grep -q "check" || fail "ferry --help lists no check command"
"$FERRY" check --help | grep -q "unordered-use" || fail "check --help"

"$FERRY" check "$d/good-design.yaml" >"$tmp/out" || fail "clean plan exit $?"
[ "$(cat "$tmp/out")" = "0 errors, 0 warnings" ] || fail "clean output: $(cat "$tmp/out")"

for cls in never-loaded reuse-after-evict unordered-use evict-in-use overlap over-capacity \
           data-loss stale-copy incomplete bad-reference; do
    set +e; "$FERRY" check "$d/check-$cls.yaml" >"$tmp/out" 2>&1; rc=$?; set -e
    [ $rc -eq 1 ] || fail "$cls: exit $rc, want 1"
    grep -Eq "^$d/check-$cls.yaml:[0-9]+: error\[$cls\]: " "$tmp/out" || fail "$cls: $(cat "$tmp/out")"
    [ "$(tail -1 "$tmp/out")" = "1 error, 0 warnings" ] || fail "$cls count line: $(tail -1 "$tmp/out")"
done
for cls in redundant-load unused-load; do
    "$FERRY" check "$d/check-$cls.yaml" >"$tmp/out" || fail "$cls: a warning must exit 0"
    grep -q "warning\[$cls\]" "$tmp/out" || fail "$cls: $(cat "$tmp/out")"
    [ "$(tail -1 "$tmp/out")" = "0 errors, 1 warning" ] || fail "$cls count line"
done
grep -q "check-unused-load.yaml:23: warning\[unused-load\]: load of 'w0' (event 15) puts 'w0' on host" \
    "$tmp/out" || fail "unused-load message: $(cat "$tmp/out")"

# --json: the same violations as an array of objects, valid JSON.
set +e; "$FERRY" check --json "$d/check-reuse-after-evict.yaml" >"$tmp/json"; rc=$?; set -e
[ $rc -eq 1 ] || fail "--json exit $rc"
grep -q '"class": "reuse-after-evict", "severity": "error", "event": 9, "related_event": 16' \
    "$tmp/json" || fail "--json: $(cat "$tmp/json")"
grep -q '"line": 20' "$tmp/json" || fail "--json line"
if command -v python3 >/dev/null; then
    python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); assert len(a)==1 and a[0]["class"]=="reuse-after-evict"' \
        "$tmp/json" || fail "--json is not valid JSON"
    "$FERRY" check --json "$d/good-design.yaml" | python3 -c 'import json,sys; assert json.load(sys.stdin)==[]' \
        || fail "--json of a clean plan"
fi

# Machines: --gpu overrides a capacity; --machine replaces the plan's machine.
set +e; "$FERRY" check --gpu 64MiB "$d/good-design.yaml" >"$tmp/out"; rc=$?; set -e
[ $rc -eq 1 ] && grep -q "error\[over-capacity\]: the gpu arena (130MiB) is larger than the machine's gpu capacity (64MiB)" \
    "$tmp/out" || fail "--gpu: $rc $(cat "$tmp/out")"
"$FERRY" check --machine "$d/machine-good.yaml" "$d/check-over-capacity.yaml" >/dev/null \
    || fail "--machine did not replace the plan's machine"
"$FERRY" check --graph "$d/mlp2.yaml" "$d/good-design.yaml" >/dev/null || fail "--graph"

# Unusable input: exit 2, FILE:LINE:COLUMN on stderr.
check_bad() { # file line:col text
    set +e; "$FERRY" check "$d/$1" >/dev/null 2>"$tmp/err"; rc=$?; set -e
    [ $rc -eq 2 ] || fail "$1: exit $rc, want 2"
    grep -q "$d/$1:$2: error: .*$3" "$tmp/err" || fail "$1: $(cat "$tmp/err")"
}
check_bad bad-yaml.yaml 6:72 "bad YAML"
check_bad bad-unknown-event-key.yaml 6:63 "unknown key 'afterr' in event 1"
check_bad bad-unknown-top-key.yaml 4:1 "unknown key 'typo' in the plan"
check_bad bad-after-later.yaml 6:70 "after names event 2, which is not earlier"
check_bad bad-after-unknown.yaml 6:70 "after names unknown event 7"
check_bad bad-duplicate-id.yaml 6:10 "duplicate event id 0"
set +e
"$FERRY" check "$tmp/none.yaml" 2>/dev/null; rc1=$?
"$FERRY" check 2>/dev/null; rc2=$?
"$FERRY" check --gpu lots "$d/good-design.yaml" 2>/dev/null; rc3=$?
"$FERRY" check --machine "$d/machine-bad-key.yaml" "$d/good-design.yaml" 2>"$tmp/err"; rc4=$?
set -e
[ $rc1 -eq 2 ] && [ $rc2 -eq 2 ] && [ $rc3 -eq 2 ] && [ $rc4 -eq 2 ] || fail "bad arguments must exit 2"
grep -q "machine-bad-key.yaml:3:25: error: unknown key 'red'" "$tmp/err" || fail "machine error: $(cat "$tmp/err")"
echo "check_cli: ok"
