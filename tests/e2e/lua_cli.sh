#!/usr/bin/env bash
# End to end: `ferry plan --policy X.lua`, a shipped Lua policy by NAME and a YAML policy's
# `lua:` all make plans that `ferry check` accepts; every hostile script and every refused
# answer exits 2 naming the script's file:line and the hook; --lua-* flags set the budgets.
set -euo pipefail
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
lua="$FY_TEST_DATA/lua"

"$FERRY" plan --help | grep -q -- "--lua-instructions" || fail "plan --help lacks --lua-*"
"$FERRY" graph mlp --layers 4 --hidden 256 --batch 16 --dtype f32 --train -o "$tmp/g.yaml" \
    2>/dev/null
for pol in lookahead cost-aware pin-layers "$lua/prefetch1.yaml" "$lua/ctx_probe.lua"; do
    "$FERRY" plan "$tmp/g.yaml" --gpu 1500KiB --policy "$pol" -o "$tmp/p.yaml" >"$tmp/out" \
        || fail "plan with $pol: $(cat "$tmp/out")"
    "$FERRY" check "$tmp/p.yaml" >/dev/null || fail "plan with $pol rejected by ferry check"
done
grep -q "ctx_probe.lua:23: \[prefetch\] print works too" "$tmp/out" || fail "log not printed"

# expect FILE ARGS... MESSAGE: ferry plan exits 2 and says MESSAGE on stderr.
expect() {
    local msg=${*: -1} rc=0
    "$FERRY" plan "$tmp/g.yaml" --gpu 1500KiB -o "$tmp/bad.yaml" --policy "${@:1:$#-1}" \
        >/dev/null 2>"$tmp/err" || rc=$?
    [ "$rc" = 2 ] || fail "$1: exit $rc, not 2"
    grep -qF -- "$msg" "$tmp/err" || fail "$1: expected '$msg' in: $(cat "$tmp/err")"
    [ ! -e "$tmp/bad.yaml" ] || fail "$1: a plan was written"
}
expect "$lua/policy/os_execute.lua" "os_execute.lua:1: error: in the main chunk: 'os' is not available"
expect "$lua/policy/io_open.lua" "io_open.lua:2: error: in hook 'prefetch': 'io' is not available"
expect "$lua/policy/require.lua" "require.lua:1: error: in the main chunk: 'require' is not available"
expect "$lua/policy/memory_bomb.lua" "memory_bomb.lua:4: error: memory budget of 64MiB exhausted in hook 'prefetch'"
expect "$lua/policy/infinite_loop.lua" --lua-instructions 1M \
    "infinite_loop.lua:2: error: instruction budget of 1000000 exhausted in hook 'victim'"
expect "$lua/policy/infinite_loop.lua" --lua-instructions 1e15 --lua-seconds 0.2s \
    "infinite_loop.lua:2: error: time limit of 0.2s exceeded in hook 'victim'"
expect "$lua/policy/hook_error.lua" "hook_error.lua:2: error: in hook 'after_op': no plan for you"
expect "$lua/policy/garbage.lua" "garbage.lua:1: error: hook 'prefetch' returned a table containing a number at index 1"
expect "$lua/policy/bytecode.lua" "precompiled chunks are not allowed"
expect "$lua/policy/no_hooks.lua" "defines none of the hooks prefetch, victim or after_op"
expect "$lua/limits.yaml" "instruction budget of 50000 exhausted in hook 'victim'"
expect "$lua/limits-no-lua.yaml" "limits-no-lua.yaml:3:"
expect "$lua/runs.lua" --lua-memory 0 "--lua-memory: must be more than 0"
expect "$lua/runs.lua" --lua-instructions lots "--lua-instructions:"
[ ! -e /tmp/ferry-pwned ] || fail "os.execute ran"
echo ok
