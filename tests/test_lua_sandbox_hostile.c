/* Hostile scripts in the Lua sandbox (tests/data/lua/escape.lua, bombs.lua and the chunk
 * scripts): each reach for the outside, runaway loop, memory bomb, stack overflow and costly
 * library call gives its own clear error naming the hook and the script's line, and the
 * sandbox stays usable afterwards (expect_failure calls the script's ok()). Under ASan
 * nothing leaks. */
#include "lua_test_util.h"

#include "core/buf.h"

#include <lauxlib.h>
#include <lualib.h>

#define PWNED "/tmp/ferry-lua-sandbox-pwned"

/* ---- hostile scripts: reaching out ---- */

static void test_lua_sandbox_refuses_os_io_require_dofile_loadfile(void **state)
{
    (void)state;
    unlink(PWNED);
    fy_lua_sandbox *sb = open_script("escape.lua", NULL);
    const char *f = "lua/escape.lua";
    expect_failure(sb, "use_os", FY_ESCRIPT, f, 2,
                   "in hook 'use_os': ", "'os' is not available in a policy",
                   "stack traceback:", NULL);
    expect_failure(sb, "use_io", FY_ESCRIPT, f, 3, "'io' is not available", NULL);
    expect_failure(sb, "use_require", FY_ESCRIPT, f, 4, "'require' is not available", NULL);
    expect_failure(sb, "use_dofile", FY_ESCRIPT, f, 5, "'dofile' is not available", NULL);
    expect_failure(sb, "use_loadfile", FY_ESCRIPT, f, 6, "'loadfile' is not available", NULL);
    expect_failure(sb, "use_debug", FY_ESCRIPT, f, 7, "'debug' is not available", NULL);
    expect_failure(sb, "use_coroutine", FY_ESCRIPT, f, 8, "'coroutine' is not available", NULL);
    expect_failure(sb, "use_dump", FY_ESCRIPT, f, 9, "'string.dump' is not available", NULL);
    expect_failure(sb, "use_dump_method", FY_ESCRIPT, f, 10, "'string.dump' is not available",
                   NULL);
    assert_int_equal(access(PWNED, F_OK), -1);
    fy_lua_sandbox_destroy(sb);

    /* The same refusals while loading. */
    sb = create(NULL);
    fy_error err = {0};
    assert_int_equal(fy_lua_sandbox_load_file(sb, script("os_chunk.lua"), &err), FY_ESCRIPT);
    assert_true(ends_with(err.file, "lua/os_chunk.lua"));
    assert_int_equal(err.line, 2);
    assert_contains(err.message, "in the main chunk: 'os' is not available");
    assert_int_equal(access(PWNED, F_OK), -1);
    fy_lua_sandbox_destroy(sb);
}

static void test_lua_sandbox_restricts_collectgarbage_and_finalizers(void **state)
{
    (void)state;
    fy_lua_sandbox *sb = open_script("escape.lua", NULL);
    const char *f = "lua/escape.lua";
    expect_failure(sb, "use_gc_collect", FY_ESCRIPT, f, 11, "collectgarbage('collect') is not",
                   "only collectgarbage('count')", NULL);
    expect_failure(sb, "use_gc_stop", FY_ESCRIPT, f, 12, "collectgarbage('stop')", NULL);
    expect_failure(sb, "use_gc_step", FY_ESCRIPT, f, 13, "collectgarbage('step')", NULL);
    expect_failure(sb, "use_finalizer", FY_ESCRIPT, f, 14, "__gc metamethods are not allowed",
                   NULL);
    fy_lua_sandbox_destroy(sb);
}

static int count_nils(fy_lua_sandbox *sb, void *res, fy_error *err)
{
    (void)err;
    for (int i = 1; i <= 5; i++)
        *(int *)res += fy_lua_result_is_nil(sb, i);
    return 0;
}

static void test_lua_sandbox_reaches_nothing_through_metatables_or_env(void **state)
{
    (void)state;
    fy_lua_sandbox *sb = open_script("escape.lua", NULL);
    fy_error err = {0};
    names found = {0};
    if (fy_lua_sandbox_call(sb, "reach", NULL, NULL, 1, read_names, &found, &err) < 0)
        fail_msg("%s", err.message);
    for (size_t i = 0; i < found.n; i++)
        print_error("reachable: %s\n", found.v[i]);
    assert_int_equal(found.n, 0);
    fy_lua_strings_free(found.v, found.n);
    int nils = 0;
    assert_int_equal(fy_lua_sandbox_call(sb, "env_tricks", NULL, NULL, 5, count_nils, &nils, &err),
                     0);
    assert_int_equal(nils, 5);
    fy_lua_sandbox_destroy(sb);
}

typedef struct bytes {
    char data[4096];
    size_t len;
} bytes;

static int write_bytes(lua_State *L, const void *p, size_t sz, void *ud)
{
    (void)L;
    bytes *b = ud;
    if (b->len + sz > sizeof b->data) return 1;
    memcpy(b->data + b->len, p, sz);
    b->len += sz;
    return 0;
}

/* Real bytecode, compiled by a plain Lua state (what luac would write). */
static void compile(const char *source, bytes *out)
{
    lua_State *L = luaL_newstate();
    assert_non_null(L);
    assert_int_equal(luaL_loadstring(L, source), LUA_OK);
    out->len = 0;
    assert_int_equal(lua_dump(L, write_bytes, out, 0), 0);
    lua_close(L);
    assert_true(out->len > 4 && memcmp(out->data, LUA_SIGNATURE, 4) == 0);
}

static int push_bytes(lua_State *L, void *args)
{
    bytes *b = args;
    lua_pushlstring(L, b->data, b->len);
    return 1;
}

static int read_load_result(fy_lua_sandbox *sb, void *res, fy_error *err)
{
    caught_results *c = res;
    c->nil_first = fy_lua_result_is_nil(sb, 1);
    return fy_lua_result_string(sb, 2, "a message", &c->msg, err);
}

static void test_lua_sandbox_refuses_precompiled_chunks(void **state)
{
    (void)state;
    bytes code;
    compile("function prefetch() return {'pwned'} end", &code);
    char *dir = fy_test_scratch("luabc");
    char path[4200];
    snprintf(path, sizeof path, "%s/policy.luac", dir);
    fy_error err = {0};
    assert_int_equal(fy_file_write_atomic(path, code.data, code.len, &err), 0);

    fy_lua_sandbox *sb = create(NULL);
    assert_int_equal(fy_lua_sandbox_load_file(sb, path, &err), FY_ESCRIPT);
    assert_string_equal(err.file, path);
    assert_contains(err.message, "precompiled chunks are not allowed");
    assert_false(fy_lua_sandbox_has(sb, "prefetch"));
    /* A byte-order mark in front changes nothing; nor does a hand-made signature. */
    char bom[4200];
    memcpy(bom, "\xEF\xBB\xBF", 3);
    memcpy(bom + 3, code.data, code.len);
    memset(&err, 0, sizeof err);
    assert_int_equal(fy_lua_sandbox_load_string(sb, "bom.lua", bom, code.len + 3, &err),
                     FY_ESCRIPT);
    assert_contains(err.message, "precompiled chunks are not allowed");
    assert_int_equal(fy_lua_sandbox_load_string(sb, "sig.lua", "\x1bLua\x54\x00", 6, &err),
                     FY_ESCRIPT);
    assert_string_equal(err.file, "sig.lua");
    assert_contains(err.message, "precompiled chunks are not allowed");
    fy_lua_sandbox_destroy(sb);

    /* From inside a script: load() takes text only. */
    sb = open_script("escape.lua", NULL);
    memset(&err, 0, sizeof err);
    assert_int_equal(fy_lua_sandbox_call(sb, "load_chunk", push_bytes, &code, 0, NULL, NULL, &err),
                     FY_ESCRIPT);
    assert_int_equal(err.line, 19);
    assert_contains(err.message, "in hook 'load_chunk': ");
    assert_contains(err.message, "attempt to load a binary chunk (mode is 't')");
    memset(&err, 0, sizeof err);
    assert_int_equal(
        fy_lua_sandbox_call(sb, "load_binary_mode", push_bytes, &code, 0, NULL, NULL, &err),
        FY_ESCRIPT);
    assert_int_equal(err.line, 22);
    assert_contains(err.message, "a policy can load text chunks only (mode 't'), not mode 'b'");
    caught_results c = {0};
    assert_int_equal(
        fy_lua_sandbox_call(sb, "load_signature", NULL, NULL, 2, read_load_result, &c, &err), 0);
    assert_true(c.nil_first);
    assert_contains(c.msg, "attempt to load a binary chunk");
    free(c.msg);
    assert_usable(sb);
    fy_lua_sandbox_destroy(sb);
    fy_test_scratch_remove(dir);
}

/* ---- hostile scripts: time ---- */

static void test_lua_sandbox_stops_an_infinite_loop_in_a_hook(void **state)
{
    (void)state;
    fy_lua_limits lim = {.instructions_per_call = 100000};
    fy_lua_sandbox *sb = open_script("bombs.lua", &lim);
    expect_failure(sb, "spin", FY_ESCRIPT, "lua/bombs.lua", 2,
                   "instruction budget of 100000 exhausted in hook 'spin'",
                   "stack traceback:", "bombs.lua:2: in function 'spin'", NULL);
    fy_lua_stats st = fy_lua_sandbox_stats(sb);
    assert_true(st.last_instructions < 1000); /* ok() ran on a fresh budget */
    fy_lua_sandbox_destroy(sb);

    /* The default budget, and its message. */
    sb = open_script("bombs.lua", NULL);
    expect_failure(sb, "spin", FY_ESCRIPT, "lua/bombs.lua", 2,
                   "instruction budget of 10000000 exhausted in hook 'spin'", NULL);
    fy_lua_sandbox_destroy(sb);
}

static void test_lua_sandbox_budget_errors_cannot_be_caught(void **state)
{
    (void)state;
    fy_lua_limits lim = {.instructions_per_call = 100000};
    fy_lua_sandbox *sb = open_script("bombs.lua", &lim);
    expect_failure(sb, "spin_caught", FY_ESCRIPT, "lua/bombs.lua", 5,
                   "instruction budget of 100000 exhausted in hook 'spin_caught'", NULL);
    expect_failure(sb, "spin_xpcall", FY_ESCRIPT, "lua/bombs.lua", 9,
                   "instruction budget of 100000 exhausted in hook 'spin_xpcall'", NULL);
    expect_failure(sb, "close_bomb", FY_ESCRIPT, "lua/bombs.lua", 91,
                   "instruction budget of 100000 exhausted in hook 'close_bomb'", NULL);
    expect_failure(sb, "rep_bomb_caught", FY_ESCRIPT, "lua/bombs.lua", 15,
                   "memory budget of 64MiB exhausted in hook 'rep_bomb_caught'", NULL);
    fy_lua_sandbox_destroy(sb);
}

static void test_lua_sandbox_stops_an_infinite_loop_in_the_main_chunk(void **state)
{
    (void)state;
    fy_lua_limits lim = {.instructions_per_call = 100000};
    fy_lua_sandbox *sb = create(&lim);
    fy_error err = {0};
    assert_int_equal(fy_lua_sandbox_load_file(sb, script("loop_chunk.lua"), &err), FY_ESCRIPT);
    assert_true(ends_with(err.file, "lua/loop_chunk.lua"));
    assert_int_equal(err.line, 3);
    assert_contains(err.message, "instruction budget of 100000 exhausted in the main chunk");
    char line[2048];
    fy_error_format(&err, line, sizeof line);
    assert_contains(line, "loop_chunk.lua:3: error: instruction budget of 100000 exhausted");
    /* The sandbox still loads and runs another script. */
    const char *ok = "function ok() return 42 end";
    assert_int_equal(fy_lua_sandbox_load_string(sb, "ok.lua", ok, strlen(ok), &err), 0);
    assert_usable(sb);
    fy_lua_sandbox_destroy(sb);
}

static void test_lua_sandbox_charges_string_building_and_table_shifts(void **state)
{
    (void)state;
    fy_lua_limits lim = {.instructions_per_call = 1000000};
    fy_lua_sandbox *sb = open_script("bombs.lua", &lim);
    /* s = s .. "16 bytes" copies the whole string each time: few instructions, much work. */
    expect_failure(sb, "concat_bomb", FY_ESCRIPT, "lua/bombs.lua", 29,
                   "instruction budget of 1000000 exhausted in hook 'concat_bomb'", NULL);
    expect_failure(sb, "move_bomb", FY_ESCRIPT, "lua/bombs.lua", 75,
                   "instruction budget of 1000000 exhausted in hook 'move_bomb'", NULL);
    expect_failure(sb, "insert_bomb", FY_ESCRIPT, "lua/bombs.lua", 79,
                   "instruction budget of 1000000 exhausted in hook 'insert_bomb'", NULL);
    expect_failure(sb, "remove_bomb", FY_ESCRIPT, "lua/bombs.lua", 66,
                   "instruction budget of 1000000 exhausted in hook 'remove_bomb'", NULL);
    expect_failure(sb, "sort_bomb", FY_ESCRIPT, "lua/bombs.lua", 62,
                   "instruction budget of 1000000 exhausted in hook 'sort_bomb'", NULL);
    expect_failure(sb, "utf8_bomb", FY_ESCRIPT, "lua/bombs.lua", 72,
                   "instruction budget of 1000000 exhausted in hook 'utf8_bomb'", NULL);
    fy_lua_sandbox_destroy(sb);
}

static void test_lua_sandbox_refuses_runaway_patterns(void **state)
{
    (void)state;
    fy_lua_sandbox *sb = open_script("bombs.lua", NULL);
    expect_failure(sb, "pattern_bomb", FY_ESCRIPT, "lua/bombs.lua", 48,
                   "in hook 'pattern_bomb': string.find: the pattern '.-.-.-.-b' could take",
                   "on a string of 100000 bytes", "use a plain find", NULL);
    expect_failure(sb, "gsub_bomb", FY_ESCRIPT, "lua/bombs.lua", 52,
                   "string.gsub: the pattern '(a*)*b'", NULL);
    expect_failure(sb, "match_bomb", FY_ESCRIPT, "lua/bombs.lua", 55,
                   "string.match: the pattern '(.-)(.-)(.-)x'", NULL);
    expect_failure(sb, "gmatch_bomb", FY_ESCRIPT, "lua/bombs.lua", 58,
                   "string.gmatch: the pattern 'a.-.-.-.-c'", NULL);
    fy_lua_sandbox_destroy(sb);
}

static void test_lua_sandbox_time_limit_stops_long_comparisons(void **state)
{
    (void)state;
    fy_lua_limits lim = {.seconds_per_call = 0.3};
    fy_lua_sandbox *sb = open_script("bombs.lua", &lim);
    expect_failure(sb, "compare_loop", FY_ESCRIPT, "lua/bombs.lua", 85,
                   "time limit of 0.3s exceeded in hook 'compare_loop'", NULL);
    fy_lua_sandbox_destroy(sb);
}

/* ---- hostile scripts: memory and stack ---- */

static void test_lua_sandbox_stops_memory_bombs(void **state)
{
    (void)state;
    fy_lua_sandbox *sb = open_script("bombs.lua", NULL);
    expect_failure(sb, "rep_bomb", FY_ESCRIPT, "lua/bombs.lua", 12,
                   "memory budget of 64MiB exhausted in hook 'rep_bomb'", NULL);
    fy_lua_sandbox_destroy(sb);

    fy_lua_limits lim = {.memory_bytes = 8 << 20};
    sb = open_script("bombs.lua", &lim);
    expect_failure(sb, "table_bomb", FY_ESCRIPT, "lua/bombs.lua", 23,
                   "memory budget of 8MiB exhausted in hook 'table_bomb'", NULL);
    expect_failure(sb, "doubling_bomb", FY_ESCRIPT, "lua/bombs.lua", 34,
                   "memory budget of 8MiB exhausted in hook 'doubling_bomb'", NULL);
    fy_lua_stats st = fy_lua_sandbox_stats(sb);
    assert_true(st.memory_peak <= (size_t)(8 << 20) + (1 << 20)); /* cap + handler headroom */
    assert_true(st.memory_used < (size_t)(1 << 20));              /* the garbage was collected */
    fy_lua_sandbox_destroy(sb);

    sb = create(&lim);
    fy_error err = {0};
    assert_int_equal(fy_lua_sandbox_load_file(sb, script("memory_chunk.lua"), &err), FY_ESCRIPT);
    assert_int_equal(err.line, 3);
    assert_contains(err.message, "memory budget of 8MiB exhausted in the main chunk");
    fy_lua_sandbox_destroy(sb);
}

static void test_lua_sandbox_survives_deep_recursion(void **state)
{
    (void)state;
    fy_lua_sandbox *sb = open_script("bombs.lua", NULL);
    expect_failure(sb, "recurse", FY_ESCRIPT, "lua/bombs.lua", 38,
                   "in hook 'recurse': stack overflow", "(skipping", NULL);
    expect_failure(sb, "c_recurse", FY_ESCRIPT, "lua/bombs.lua", 43,
                   "in hook 'c_recurse': C stack overflow", NULL);
    fy_lua_sandbox_destroy(sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lua_sandbox_refuses_os_io_require_dofile_loadfile),
        cmocka_unit_test(test_lua_sandbox_restricts_collectgarbage_and_finalizers),
        cmocka_unit_test(test_lua_sandbox_reaches_nothing_through_metatables_or_env),
        cmocka_unit_test(test_lua_sandbox_refuses_precompiled_chunks),
        cmocka_unit_test(test_lua_sandbox_stops_an_infinite_loop_in_a_hook),
        cmocka_unit_test(test_lua_sandbox_budget_errors_cannot_be_caught),
        cmocka_unit_test(test_lua_sandbox_stops_an_infinite_loop_in_the_main_chunk),
        cmocka_unit_test(test_lua_sandbox_charges_string_building_and_table_shifts),
        cmocka_unit_test(test_lua_sandbox_refuses_runaway_patterns),
        cmocka_unit_test(test_lua_sandbox_time_limit_stops_long_comparisons),
        cmocka_unit_test(test_lua_sandbox_stops_memory_bombs),
        cmocka_unit_test(test_lua_sandbox_survives_deep_recursion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
