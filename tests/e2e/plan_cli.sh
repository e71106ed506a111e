#!/usr/bin/env bash
# End to end: `ferry plan` writes plans that `ferry check` accepts, with the default policy, a
# shipped policy by NAME and a policy file; infeasible budgets and bad policies exit 2 with
# a clear message; the summary names bytes per link and the arenas.
set -euo pipefail
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$FERRY" plan --help | grep -q -- "--policy" || fail "plan --help"
"$FERRY" graph mlp --layers 6 --hidden 256 --batch 16 --dtype f32 --train -o "$tmp/g.yaml" \
    --weights "$tmp/w.bin" 2>/dev/null
"$FERRY" plan "$tmp/g.yaml" --gpu 2MiB --host 64MiB -o "$tmp/p.yaml" >"$tmp/out"
grep -q "host->gpu" "$tmp/out" || fail "summary lacks bytes per link: $(cat "$tmp/out")"
grep -q "gpu .*ratio\|ratio" "$tmp/out" || fail "summary lacks the arena table"
grep -q "policy: default" "$tmp/p.yaml" || fail "plan does not record its policy"
grep -q "graph: {file: g.yaml" "$tmp/p.yaml" || fail "plan does not name its graph relative to itself"
"$FERRY" check "$tmp/p.yaml" >/dev/null || fail "default plan rejected by ferry check"
for pol in stream train-offload plaid eager; do
    "$FERRY" plan "$tmp/g.yaml" --gpu 8MiB --host 64MiB --policy "$pol" -o "$tmp/$pol.yaml" -q \
        || fail "plan with policy $pol"
    "$FERRY" check "$tmp/$pol.yaml" >/dev/null || fail "plan with policy $pol rejected"
done
printf 'ferry: policy/1\nname: mine\nprefetch: 3\nevict: lru\n' >"$tmp/mine.yaml"
"$FERRY" plan "$tmp/g.yaml" --gpu 4MiB --policy "$tmp/mine.yaml" -o "$tmp/m.yaml" -q
grep -q "policy: mine" "$tmp/m.yaml" || fail "policy file name not recorded"
"$FERRY" check "$tmp/m.yaml" >/dev/null || fail "lru plan rejected"
printf 'gpu: {capacity: 3MiB}\n' >"$tmp/machine.yaml"
sed -i '1i ferry: machine/1' "$tmp/machine.yaml"
"$FERRY" plan "$tmp/g.yaml" --machine "$tmp/machine.yaml" -o "$tmp/mm.yaml" -q
grep -q "gpu: {capacity: 3MiB}" "$tmp/mm.yaml" || fail "machine file not used"

set +e
"$FERRY" plan "$tmp/g.yaml" --gpu 512KiB -o "$tmp/x.yaml" 2>"$tmp/err"; rc=$?
set -e
[ $rc -eq 2 ] || fail "infeasible exit $rc, want 2"
grep -q "gpu 512KiB is too small: op '.*' alone needs" "$tmp/err" || fail "message: $(cat "$tmp/err")"
[ ! -e "$tmp/x.yaml" ] || fail "an infeasible plan left a file"
printf 'ferry: policy/1\nevict: random\n' >"$tmp/bad.yaml"
set +e
"$FERRY" plan "$tmp/g.yaml" --policy "$tmp/bad.yaml" -o "$tmp/x.yaml" 2>"$tmp/err"; rc=$?
"$FERRY" plan "$tmp/g.yaml" --policy nosuch -o "$tmp/x.yaml" 2>"$tmp/err2"; rc2=$?
"$FERRY" plan "$tmp/g.yaml" 2>/dev/null; rc3=$?
"$FERRY" plan "$tmp/g.yaml" --gpu lots -o "$tmp/x.yaml" 2>/dev/null; rc4=$?
set -e
[ $rc -eq 2 ] && [ $rc2 -eq 2 ] && [ $rc3 -eq 2 ] && [ $rc4 -eq 2 ] || fail "bad input must exit 2"
grep -q "bad.yaml:2:8: error: .*random" "$tmp/err" || fail "policy error position: $(cat "$tmp/err")"
grep -q "no policy named 'nosuch'" "$tmp/err2" || fail "unknown policy: $(cat "$tmp/err2")"
echo "plan_cli: ok"
