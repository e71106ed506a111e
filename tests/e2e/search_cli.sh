#!/usr/bin/env bash
# `ferry plan --search`: prints the candidate table and the choice, writes a plan that checks
# clean with the knobs in its policy note; a Lua policy is refused (exit 2 family, message).
set -euo pipefail
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$FERRY" graph mlp --layers 6 --hidden 512 --batch 8 -o "$tmp/g.yaml" --weights "$tmp/w.bin" 2>/dev/null
"$FERRY" plan "$tmp/g.yaml" --gpu 2MiB --search -o "$tmp/p.yaml" > "$tmp/out.txt"
grep -q "prefetch *evict" "$tmp/out.txt" || fail "no table: $(cat "$tmp/out.txt")"
grep -q "^\* " "$tmp/out.txt" || fail "no row marked chosen"
grep -q "^chosen #" "$tmp/out.txt" || fail "no choice line"
[ "$(grep -c "belady\|lru\|fifo\|after-last-use" "$tmp/out.txt")" -ge 5 ] || fail "too few candidates"
grep -q "^policy: .*search: prefetch" "$tmp/p.yaml" || fail "policy note: $(grep policy "$tmp/p.yaml")"
"$FERRY" check "$tmp/p.yaml" > "$tmp/check.txt" || fail "chosen plan does not check: $(cat "$tmp/check.txt")"
printf 'function prefetch(ctx, i) return {} end\n' > "$tmp/p.lua"
set +e
"$FERRY" plan "$tmp/g.yaml" --search --policy "$tmp/p.lua" -o "$tmp/q.yaml" 2> "$tmp/err"; rc=$?
"$FERRY" plan "$tmp/g.yaml" --search --gpu 1KiB -o "$tmp/r.yaml" > /dev/null 2> "$tmp/err2"; rc2=$?
set -e
[ $rc -ne 0 ] || fail "lua policy accepted"
grep -q "Lua" "$tmp/err" || fail "lua refusal: $(cat "$tmp/err")"
[ $rc2 -ne 0 ] || fail "1KiB gpu accepted"
grep -q "infeasible: " "$tmp/err2" || fail "no table on failure: $(cat "$tmp/err2")"
grep -q "no candidate" "$tmp/err2" || fail "no reason on failure"
echo "search_cli: ok"
