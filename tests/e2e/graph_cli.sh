#!/usr/bin/env bash
# End to end: `ferry graph` writes graphs that `ferry info` loads; malformed graphs exit 2
# with FILE:LINE:COLUMN on stderr; --help works for each command.
set -euo pipefail
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$FERRY" --help | grep -q "graph" || fail "ferry --help lists no graph command"
"$FERRY" graph --help | grep -q "transformer" || fail "graph --help"
"$FERRY" graph mlp --layers 4 --hidden 256 --batch 8 --dtype bf16 -o "$tmp/mlp.yaml" \
    --weights "$tmp/w.bin" --seed 3 2>/dev/null
[ "$(stat -c %s "$tmp/w.bin")" -eq $((3 * 131072 + 131072)) ] || fail "weight file size"
grep -q "source: {file: w.bin, offset: 0}" "$tmp/mlp.yaml" || fail "weights not referenced relative to the graph"
"$FERRY" info "$tmp/mlp.yaml" | grep -q "4 ops" || fail "info on generated mlp"
"$FERRY" graph show "$tmp/mlp.yaml" | grep -q "largest op working set" || fail "graph show"
"$FERRY" graph transformer --layers 2 --hidden 256 --ffn 688 --heads 4 --seq 64 --batch 1 --train \
    -o "$tmp/t.yaml" 2>/dev/null
"$FERRY" info "$tmp/t.yaml" | grep -q "optimizer" || fail "training transformer has no optimizer state"

set +e
"$FERRY" info "$FY_TEST_DATA/graphs/bad-unit.yaml" 2>"$tmp/err"; rc=$?
set -e
[ $rc -eq 2 ] || fail "malformed graph exit $rc, want 2"
grep -q "bad-unit.yaml:3:13: error: size of tensor 'x': bad size '12 GiBB'" "$tmp/err" || fail "message: $(cat "$tmp/err")"
set +e
"$FERRY" graph mlp --layers x 2>/dev/null; rc=$?
"$FERRY" graph mlp --dtype f17 2>/dev/null; rc2=$?
"$FERRY" nosuch 2>/dev/null; rc3=$?
set -e
[ $rc -eq 2 ] && [ $rc2 -eq 2 ] && [ $rc3 -eq 2 ] || fail "bad options must exit 2"
echo "graph_cli: ok"
