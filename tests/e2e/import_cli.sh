#!/usr/bin/env bash
# End to end: `ferry import` on checkpoints written byte by byte (one file, shards with an
# index), its --help, and hostile or missing input exiting 2 with FILE[:LINE:COL]: error.
set -euo pipefail
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
tiny="$FY_SOURCE_DIR/scripts/tiny-checkpoint.sh"

"$FERRY" --help | grep -q "import" || fail "ferry --help lists no import command"
"$FERRY" import --help | grep -q -- "--layers" || fail "import --help"

# One file, the graph beside it: sources are relative, one op per layer plus embed and head.
"$tiny" "$tmp/tiny.safetensors" 3 64 256
"$FERRY" import "$tmp/tiny.safetensors" --seq 128 --batch 2 -o "$tmp/tiny.yaml" 2>"$tmp/log"
grep -q "imported 30 weights" "$tmp/log" || fail "summary: $(cat "$tmp/log")"
grep -q "3 layers (model.layers.{i}.)" "$tmp/log" || fail "layers: $(cat "$tmp/log")"
grep -q "source: {file: tiny.safetensors, offset: " "$tmp/tiny.yaml" || fail "relative sources"
grep -q "name: model.layers.2, kind: block" "$tmp/tiny.yaml" || fail "layer op"
grep -q "logits: {kind: output, dtype: bf16, shape: \[256, 256\]}" "$tmp/tiny.yaml" || fail "logits"
"$FERRY" info "$tmp/tiny.yaml" | grep -q "5 ops" || fail "info on the imported graph"
# The same through an explicit pattern, and to standard output.
"$FERRY" import "$tmp/tiny.safetensors" --layers 'model.layers.{i}.' --seq 128 --batch 2 \
    > "$tmp/again.yaml"
grep -q "^ferry: graph/1" "$tmp/again.yaml" || fail "graph on standard output"

# Shards with an index, the graph in the checkpoint's folder.
"$tiny" "$tmp/sharded" 4 32 128 3
"$FERRY" import "$tmp/sharded" -o "$tmp/sharded/graph.yaml" 2>"$tmp/log"
grep -q "from 3 files" "$tmp/log" || fail "shards: $(cat "$tmp/log")"
grep -q "file: model-00003-of-00003.safetensors" "$tmp/sharded/graph.yaml" || fail "shard source"
"$FERRY" info "$tmp/sharded/graph.yaml" | grep -q "6 ops" || fail "info on the sharded graph"

# Unusable input: exit 2, the file named.
expect_fail() { # expect_fail PATTERN ARGS...
    local want=$1; shift
    set +e; "$FERRY" import "$@" 2>"$tmp/err" >/dev/null; local rc=$?; set -e
    [ $rc -eq 2 ] || fail "import $* exit $rc, want 2"
    grep -q -- "$want" "$tmp/err" || fail "import $*: $(cat "$tmp/err")"
}
printf '\x10\x00' > "$tmp/short.safetensors"
expect_fail "short.safetensors: error: file of 2 bytes is too short" "$tmp/short.safetensors"
json='{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},}'
{ printf '\x37\x00\x00\x00\x00\x00\x00\x00'; printf '%s' "$json"; head -c 8 /dev/zero; } \
    > "$tmp/json.safetensors"
[ ${#json} -eq 55 ] || fail "test header length ${#json}"
expect_fail "json.safetensors:1:54: error: header JSON: trailing comma before '}'" \
    "$tmp/json.safetensors"
expect_fail "absent.safetensors: error: cannot open" "$tmp/absent.safetensors"
expect_fail "layer pattern 'blocks.{i}.' matches no tensor name" "$tmp/tiny.safetensors" \
    --layers 'blocks.{i}.'
expect_fail "which checkpoint" 
expect_fail "unexpected argument" "$tmp/tiny.safetensors" extra
expect_fail "must be at least 1" "$tmp/tiny.safetensors" --seq 0
expect_fail "is not a whole number" "$tmp/tiny.safetensors" --batch two
expect_fail "usage" "$tmp/tiny.safetensors" --bogus
echo "import_cli: ok"
