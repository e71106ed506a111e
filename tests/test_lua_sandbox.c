/* The Lua sandbox with well-behaved and faulty (not hostile) scripts: hooks called with
 * arguments and read back, the log callback, reproducible random numbers, runtime and syntax
 * errors with file:line and traceback, results of the wrong type, misuse of the API, isolation
 * between sandboxes, and the C side that policies/ builds ctx on. Hostile scripts are in
 * test_lua_sandbox_hostile.c. */
#include "lua_test_util.h"

#include "core/buf.h"

#include <lauxlib.h>

#include <limits.h>

/* ---- normal calls ---- */

typedef struct victim_args {
    const char *tier;
    int64_t need;
    const char *const *candidates;
    size_t count;
} victim_args;

static int push_prefetch(lua_State *L, void *args)
{
    lua_pushnil(L); /* ctx */
    lua_pushinteger(L, *(int *)args);
    return 2;
}

static int push_victim(lua_State *L, void *args)
{
    victim_args *a = args;
    lua_pushnil(L);
    lua_pushstring(L, a->tier);
    lua_pushinteger(L, a->need);
    fy_lua_push_strings(L, a->candidates, a->count);
    return 4;
}

typedef struct sizes {
    int64_t twice;
    double quarter;
    char *label;
} sizes;

static int push_int(lua_State *L, void *args)
{
    lua_pushinteger(L, *(int *)args);
    return 1;
}

static int read_sizes(fy_lua_sandbox *sb, void *res, fy_error *err)
{
    sizes *s = res;
    int rc = fy_lua_result_integer(sb, 1, "bytes", &s->twice, err);
    if (rc == 0) rc = fy_lua_result_number(sb, 2, "a fraction", &s->quarter, err);
    if (rc == 0) rc = fy_lua_result_string(sb, 3, "a label", &s->label, err);
    return rc;
}

static void test_lua_sandbox_calls_hooks_and_reads_results(void **state)
{
    (void)state;
    fy_lua_sandbox *sb = open_script("normal.lua", NULL);
    fy_error err = {0};
    assert_true(fy_lua_sandbox_has(sb, "prefetch"));
    assert_true(fy_lua_sandbox_has(sb, "victim"));
    assert_true(fy_lua_sandbox_has(sb, "after_op"));
    assert_false(fy_lua_sandbox_has(sb, "calls")); /* a number, not a function */
    assert_false(fy_lua_sandbox_has(sb, "nope"));
    assert_false(fy_lua_sandbox_has(sb, "os")); /* raw lookup: the explainer does not fire */

    int i = 3;
    names got = {0};
    assert_int_equal(
        fy_lua_sandbox_call(sb, "prefetch", push_prefetch, &i, 1, read_names, &got, &err), 0);
    assert_int_equal(got.n, 2);
    assert_string_equal(got.v[0], "w3");
    assert_string_equal(got.v[1], "w4");
    fy_lua_strings_free(got.v, got.n);

    const char *cands[] = {"act2", "w1", "act1", "act0.grad"};
    victim_args va = {"gpu", 1 << 20, cands, 4};
    got = (names){0};
    assert_int_equal(fy_lua_sandbox_call(sb, "victim", push_victim, &va, 1, read_names, &got, &err),
                     0);
    assert_int_equal(got.n, 3);
    assert_string_equal(got.v[0], "act0.grad");
    assert_string_equal(got.v[1], "act1");
    assert_string_equal(got.v[2], "act2");
    fy_lua_strings_free(got.v, got.n);

    assert_int_equal(fy_lua_sandbox_call(sb, "after_op", push_prefetch, &i, 0, NULL, NULL, &err),
                     0);
    int n = 10;
    sizes s = {0};
    assert_int_equal(fy_lua_sandbox_call(sb, "sizes", push_int, &n, 3, read_sizes, &s, &err), 0);
    assert_int_equal(s.twice, 20);
    assert_true(s.quarter == 2.5);
    assert_string_equal(s.label, "x10");
    free(s.label);

    int64_t calls = 0;
    assert_int_equal(fy_lua_sandbox_call(sb, "count_calls", NULL, NULL, 1, read_int, &calls, &err),
                     0);
    assert_int_equal(calls, 1); /* state persists between calls */
    fy_lua_stats st = fy_lua_sandbox_stats(sb);
    assert_true(st.calls >= 6);
    assert_true(st.memory_used > 0 && st.memory_used <= st.memory_peak);
    assert_true(st.memory_peak <= FY_LUA_DEFAULT_MEMORY);
    fy_lua_limits lim = fy_lua_sandbox_limits(sb);
    assert_int_equal(lim.instructions_per_call, FY_LUA_DEFAULT_INSTRUCTIONS);
    assert_int_equal(lim.memory_bytes, FY_LUA_DEFAULT_MEMORY);
    fy_lua_sandbox_destroy(sb);
    fy_lua_sandbox_destroy(NULL);
}

typedef struct string_results {
    char *layer;
    int64_t words, found, parts;
    char *empty;
    int64_t utf8_len;
} string_results;

static int read_strings(fy_lua_sandbox *sb, void *res, fy_error *err)
{
    string_results *r = res;
    int rc = fy_lua_result_string(sb, 1, "a layer", &r->layer, err);
    rc = rc ? rc : fy_lua_result_integer(sb, 2, "a count", &r->words, err);
    rc = rc ? rc : fy_lua_result_integer(sb, 3, "a position", &r->found, err);
    rc = rc ? rc : fy_lua_result_integer(sb, 4, "a count", &r->parts, err);
    rc = rc ? rc : fy_lua_result_string(sb, 5, "a string", &r->empty, err);
    rc = rc ? rc : fy_lua_result_integer(sb, 6, "a length", &r->utf8_len, err);
    return rc;
}

static int read_caught(fy_lua_sandbox *sb, void *res, fy_error *err)
{
    caught_results *c = res;
    c->nil_first = fy_lua_result_is_nil(sb, 1);
    return fy_lua_result_string(sb, 2, "a message", &c->msg, err);
}

static int read_kb(fy_lua_sandbox *sb, void *res, fy_error *err)
{
    return fy_lua_result_number(sb, 1, "kilobytes", res, err);
}

static void test_lua_sandbox_everyday_library_use_fits_the_budgets(void **state)
{
    (void)state;
    fy_lua_sandbox *sb = open_script("normal.lua", NULL);
    fy_error err = {0};
    string_results r = {0};
    if (fy_lua_sandbox_call(sb, "strings", NULL, NULL, 6, read_strings, &r, &err) < 0)
        fail_msg("%s", err.message);
    assert_string_equal(r.layer, "12");
    assert_int_equal(r.words, 20000);
    assert_int_equal(r.found, 100001);
    assert_int_equal(r.parts, 4);
    assert_string_equal(r.empty, "");
    assert_int_equal(r.utf8_len, 5);
    free(r.layer);
    free(r.empty);

    int64_t two = 0;
    assert_int_equal(fy_lua_sandbox_call(sb, "load_text", NULL, NULL, 1, read_int, &two, &err), 0);
    assert_int_equal(two, 2);
    /* pcall still catches ordinary errors (result 1 is false, not nil: read as a string). */
    caught_results c = {0};
    assert_int_equal(fy_lua_sandbox_call(sb, "caught", NULL, NULL, 2, read_caught, &c, &err), 0);
    assert_false(c.nil_first);
    assert_string_equal(c.msg, "inner");
    free(c.msg);

    double kb = 0;
    assert_int_equal(fy_lua_sandbox_call(sb, "gc_count", NULL, NULL, 1, read_kb, &kb, &err), 0);
    assert_true(kb > 1 && kb < 64 * 1024);
    fy_lua_sandbox_destroy(sb);
}

typedef struct log_entry {
    char file[256];
    unsigned line;
    char hook[32];
    char message[64];
} log_entry;

typedef struct log_capture {
    log_entry e[8];
    int n;
} log_capture;

static void capture_log(void *user, const char *file, unsigned line, const char *hook,
                        const char *message)
{
    log_capture *c = user;
    if (c->n == 8) return;
    log_entry *e = &c->e[c->n++];
    snprintf(e->file, sizeof e->file, "%s", file ? file : "");
    e->line = line;
    snprintf(e->hook, sizeof e->hook, "%s", hook ? hook : "");
    snprintf(e->message, sizeof e->message, "%s", message);
}

static void test_lua_sandbox_sends_print_to_the_log_callback(void **state)
{
    (void)state;
    log_capture cap = {0};
    fy_lua_sandbox *sb = create(NULL);
    fy_lua_sandbox_set_log(sb, capture_log, &cap);
    fy_error err = {0};
    assert_int_equal(fy_lua_sandbox_load_file(sb, script("normal.lua"), &err), 0);
    int i = 5;
    names got = {0};
    assert_int_equal(
        fy_lua_sandbox_call(sb, "prefetch", push_prefetch, &i, 1, read_names, &got, &err), 0);
    fy_lua_strings_free(got.v, got.n);
    assert_int_equal(cap.n, 2);
    assert_true(ends_with(cap.e[0].file, "lua/normal.lua"));
    assert_int_equal(cap.e[0].line, 3);
    assert_string_equal(cap.e[0].hook, ""); /* the main chunk */
    assert_string_equal(cap.e[0].message, "loading normal.lua");
    assert_int_equal(cap.e[1].line, 7);
    assert_string_equal(cap.e[1].hook, "prefetch");
    assert_string_equal(cap.e[1].message, "prefetch\t5");

    /* With no callback print is discarded. */
    fy_lua_sandbox_set_log(sb, NULL, NULL);
    got = (names){0};
    assert_int_equal(
        fy_lua_sandbox_call(sb, "prefetch", push_prefetch, &i, 1, read_names, &got, &err), 0);
    fy_lua_strings_free(got.v, got.n);
    assert_int_equal(cap.n, 2);
    fy_lua_sandbox_destroy(sb);
}

typedef struct three {
    int64_t v[3];
} three;

static int read_three(fy_lua_sandbox *sb, void *res, fy_error *err)
{
    three *t = res;
    for (int i = 0; i < 3; i++) {
        int rc = fy_lua_result_integer(sb, i + 1, "a number", &t->v[i], err);
        if (rc < 0) return rc;
    }
    return 0;
}

static void test_lua_sandbox_random_numbers_are_reproducible(void **state)
{
    (void)state;
    fy_lua_sandbox *a = open_script("normal.lua", NULL), *b = open_script("normal.lua", NULL);
    fy_error err = {0};
    three ra = {{0}}, rb = {{0}};
    assert_int_equal(fy_lua_sandbox_call(a, "random3", NULL, NULL, 3, read_three, &ra, &err), 0);
    assert_int_equal(fy_lua_sandbox_call(b, "random3", NULL, NULL, 3, read_three, &rb, &err), 0);
    assert_memory_equal(ra.v, rb.v, sizeof ra.v);
    /* randomseed() without a seed goes back to ferry's seed, not to the clock. */
    int64_t first = 0;
    assert_int_equal(fy_lua_sandbox_call(a, "reseed", NULL, NULL, 1, read_int, &first, &err), 0);
    assert_int_equal(first, ra.v[0]);
    fy_lua_sandbox_destroy(a);
    fy_lua_sandbox_destroy(b);
}

/* ---- errors and results ---- */

static void test_lua_sandbox_reports_runtime_errors_with_line_and_traceback(void **state)
{
    (void)state;
    fy_lua_sandbox *sb = open_script("errors.lua", NULL);
    const char *f = "lua/errors.lua";
    fy_error err = {0};
    const char *cands[] = {"a"};
    victim_args va = {"gpu", 1, cands, 1};
    assert_int_equal(fy_lua_sandbox_call(sb, "victim", push_victim, &va, 1, NULL, NULL, &err),
                     FY_ESCRIPT);
    assert_true(ends_with(err.file, f));
    assert_int_equal(err.line, 3);
    assert_contains(err.message,
                    "in hook 'victim': attempt to index a nil value (field 'missing')\n"
                    "stack traceback:\n");
    assert_contains(err.message, "errors.lua:3: in ");
    assert_contains(err.message, "errors.lua:7: in function 'victim'");
    char line[2048];
    fy_error_format(&err, line, sizeof line);
    assert_contains(line, "errors.lua:3: error: in hook 'victim': attempt to index a nil value");

    expect_failure(sb, "raise_table", FY_ESCRIPT, f, 11,
                   "in hook 'raise_table': (error object is a table value)", NULL);
    expect_failure(sb, "raise_plain", FY_ESCRIPT, f, 12, "in hook 'raise_plain': plain message",
                   NULL);
    expect_failure(sb, "raise_msg", FY_ESCRIPT, f, 13, "in hook 'raise_msg': with position", NULL);
    fy_lua_sandbox_destroy(sb);
}

static void test_lua_sandbox_reports_syntax_errors_with_line(void **state)
{
    (void)state;
    fy_lua_sandbox *sb = create(NULL);
    fy_error err = {0};
    assert_int_equal(fy_lua_sandbox_load_file(sb, script("syntax_error.lua"), &err), FY_EPARSE);
    assert_true(ends_with(err.file, "lua/syntax_error.lua"));
    assert_int_equal(err.line, 3);
    assert_contains(err.message, "syntax error: '}' expected near '\"b\"'");
    assert_false(fy_lua_sandbox_has(sb, "prefetch"));
    const char *ok = "function ok() return 42 end";
    assert_int_equal(fy_lua_sandbox_load_string(sb, "ok.lua", ok, strlen(ok), &err), 0);
    assert_usable(sb);
    memset(&err, 0, sizeof err);
    assert_int_equal(fy_lua_sandbox_load_file(sb, script("missing.lua"), &err), FY_ENOENT);
    assert_true(ends_with(err.file, "lua/missing.lua"));
    fy_lua_sandbox_destroy(sb);
}

typedef struct reader_case {
    const char *hook;
    int nresults;
    int (*read)(fy_lua_sandbox *, void *, fy_error *);
    const char *message;
    unsigned line;
} reader_case;

static int read_list(fy_lua_sandbox *sb, void *res, fy_error *err)
{
    names *n = res;
    return fy_lua_result_strings(sb, 1, "tensor names", &n->v, &n->n, err);
}

static int read_bytes_result(fy_lua_sandbox *sb, void *res, fy_error *err)
{
    int64_t v;
    (void)res;
    return fy_lua_result_integer(sb, 1, "bytes", &v, err);
}

static int read_name(fy_lua_sandbox *sb, void *res, fy_error *err)
{
    char *s = NULL;
    (void)res;
    int rc = fy_lua_result_string(sb, 1, "a tensor name", &s, err);
    free(s);
    return rc;
}

static int read_list_then_bytes(fy_lua_sandbox *sb, void *res, fy_error *err)
{
    names *n = res;
    int rc = fy_lua_result_strings(sb, 1, "tensor names", &n->v, &n->n, err);
    int64_t v;
    return rc ? rc : fy_lua_result_integer(sb, 2, "bytes", &v, err);
}

static int read_seconds(fy_lua_sandbox *sb, void *res, fy_error *err)
{
    double v;
    (void)res;
    return fy_lua_result_number(sb, 1, "seconds", &v, err);
}

static void test_lua_sandbox_names_the_hook_in_result_type_errors(void **state)
{
    (void)state;
    static const reader_case cases[] = {
        {"number_in_list", 1, read_list,
         "hook 'number_in_list' returned a table containing a number at index 3; expected "
         "tensor names (strings)",
         2},
        {"not_a_table", 1, read_list,
         "hook 'not_a_table' returned a number; expected a list of tensor names (strings)", 3},
        {"with_key", 1, read_list,
         "hook 'with_key' returned a table with key 'x'; expected a list of tensor names", 4},
        {"with_hole", 1, read_list, "returned a table containing nil at index 2", 5},
        {"nul_name", 1, read_list, "returned a string with a NUL byte at index 1", 6},
        {"nested", 1, read_list, "returned a table containing a table at index 1", 7},
        {"float_size", 1, read_bytes_result,
         "hook 'float_size' returned 1.5; expected an integer (bytes)", 8},
        {"string_size", 1, read_bytes_result, "returned a string; expected an integer (bytes)", 9},
        {"func_result", 1, read_name,
         "hook 'func_result' returned a function; expected a tensor name (a string)", 10},
        {"second_bad", 2, read_list_then_bytes,
         "hook 'second_bad' returned a boolean as result 2; expected an integer (bytes)", 11},
        {"infinite", 1, read_seconds, "returned inf; expected a finite number (seconds)", 12},
    };
    fy_lua_sandbox *sb = open_script("garbage.lua", NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const reader_case *c = &cases[i];
        fy_error err = {0};
        names n = {0};
        int rc = fy_lua_sandbox_call(sb, c->hook, NULL, NULL, c->nresults, c->read, &n, &err);
        fy_lua_strings_free(n.v, n.n);
        if (rc != FY_ESCRIPT) fail_msg("%s: status %d (%s)", c->hook, rc, err.message);
        assert_contains(err.message, c->message);
        assert_true(ends_with(err.file, "lua/garbage.lua"));
        if (err.line != c->line) fail_msg("%s: line %u, not %u", c->hook, err.line, c->line);
        assert_usable(sb);
    }
    /* Nothing returned is an empty list; the good hook reads back whole. */
    fy_error err = {0};
    names n = {(char **)1, 1};
    assert_int_equal(fy_lua_sandbox_call(sb, "nothing", NULL, NULL, 1, read_list, &n, &err), 0);
    assert_null(n.v);
    assert_int_equal(n.n, 0);
    fy_lua_sandbox_destroy(sb);
}

/* ---- misuse and isolation ---- */

static int push_nested_call(lua_State *L, void *args)
{
    fy_lua_sandbox *sb = fy_lua_sandbox_of(L);
    fy_error *err = args;
    int rc = fy_lua_sandbox_call(sb, "ok", NULL, NULL, 0, NULL, NULL, err);
    lua_pushinteger(L, rc);
    return 1;
}

static int push_miscounted(lua_State *L, void *args)
{
    (void)args;
    lua_pushinteger(L, 1);
    lua_pushinteger(L, 2);
    return 1;
}

static int read_outside(fy_lua_sandbox *sb, void *res, fy_error *err)
{
    (void)sb;
    (void)res;
    (void)err;
    return 0;
}

static void test_lua_sandbox_refuses_misuse(void **state)
{
    (void)state;
    fy_lua_sandbox *sb = open_script("normal.lua", NULL);
    fy_error err = {0};
    assert_int_equal(fy_lua_sandbox_call(sb, "nope", NULL, NULL, 0, NULL, NULL, &err), FY_ENOENT);
    assert_contains(err.message, "the policy defines no function 'nope'");
    assert_int_equal(fy_lua_sandbox_call(sb, "ok", NULL, NULL, -1, NULL, NULL, &err), FY_EINVAL);
    assert_int_equal(fy_lua_sandbox_call(sb, "ok", NULL, NULL, INT_MAX, NULL, NULL, &err),
                     FY_EINVAL);
    assert_contains(err.message, "cannot take");
    assert_int_equal(fy_lua_sandbox_call(sb, "ok", push_miscounted, NULL, 0, NULL, NULL, &err),
                     FY_ESCRIPT);
    assert_contains(err.message, "the arguments of hook 'ok' are inconsistent (2 pushed, 1 "
                                 "counted)");
    /* A call from inside a call is refused, not run. */
    fy_error inner = {0};
    assert_int_equal(
        fy_lua_sandbox_call(sb, "after_op", push_nested_call, &inner, 0, read_outside, NULL, &err),
        0);
    assert_int_equal(inner.status, FY_ESTATE);
    /* Result readers work only inside a read callback. */
    int64_t v;
    char *s;
    char **list;
    size_t count;
    double d;
    assert_int_equal(fy_lua_result_integer(sb, 1, "x", &v, &err), FY_ESTATE);
    assert_int_equal(fy_lua_result_string(sb, 1, "x", &s, &err), FY_ESTATE);
    assert_int_equal(fy_lua_result_strings(sb, 1, "x", &list, &count, &err), FY_ESTATE);
    assert_int_equal(fy_lua_result_number(sb, 1, "x", &d, &err), FY_ESTATE);
    assert_false(fy_lua_result_is_nil(sb, 1));
    assert_usable(sb);
    fy_lua_sandbox_destroy(sb);
}

static int read_nil(fy_lua_sandbox *sb, void *res, fy_error *err)
{
    (void)err;
    *(bool *)res = fy_lua_result_is_nil(sb, 1);
    return 0;
}

static int push_word(lua_State *L, void *args)
{
    lua_pushstring(L, args);
    return 1;
}

static void test_lua_sandbox_isolates_sandboxes(void **state)
{
    (void)state;
    fy_lua_sandbox *a = open_script("normal.lua", NULL);
    fy_lua_sandbox *b = open_script("normal.lua", NULL);
    fy_error err = {0};
    int seven = 7;
    assert_int_equal(fy_lua_sandbox_call(a, "set_global", push_int, &seven, 0, NULL, NULL, &err),
                     0);
    int64_t v = 0;
    assert_int_equal(fy_lua_sandbox_call(a, "get_global", NULL, NULL, 1, read_int, &v, &err), 0);
    assert_int_equal(v, 7);
    bool nil = false;
    assert_int_equal(fy_lua_sandbox_call(b, "get_global", NULL, NULL, 1, read_nil, &nil, &err), 0);
    assert_true(nil);
    /* Breaking a library in one leaves the other's intact. */
    assert_int_equal(fy_lua_sandbox_call(a, "break_string_lib", NULL, NULL, 0, NULL, NULL, &err),
                     0);
    assert_int_equal(fy_lua_sandbox_call(a, "upper", push_word, "x", 0, NULL, NULL, &err),
                     FY_ESCRIPT);
    assert_contains(err.message, "attempt to call a nil value (method 'upper')");
    assert_int_equal(fy_lua_sandbox_call(b, "upper", push_word, "x", 0, NULL, NULL, &err), 0);
    fy_lua_sandbox_destroy(a);
    /* A sandbox created after one was destroyed starts clean. */
    fy_lua_sandbox *c = open_script("normal.lua", NULL);
    nil = false;
    assert_int_equal(fy_lua_sandbox_call(c, "get_global", NULL, NULL, 1, read_nil, &nil, &err), 0);
    assert_true(nil);
    fy_lua_sandbox_destroy(b);
    fy_lua_sandbox_destroy(c);
}

static void test_lua_sandbox_refuses_bad_limits(void **state)
{
    (void)state;
    fy_lua_sandbox *sb = (fy_lua_sandbox *)1;
    fy_error err = {0};
    fy_lua_limits lim = {.seconds_per_call = -1};
    assert_int_equal(fy_lua_sandbox_create(&lim, &sb, &err), FY_EINVAL);
    assert_null(sb);
    assert_contains(err.message, "time limit");
    lim = (fy_lua_limits){.memory_bytes = 4096}; /* too small for lua_newstate */
    assert_int_equal(fy_lua_sandbox_create(&lim, &sb, &err), FY_ESCRIPT);
    assert_contains(err.message, "a memory budget of 4KiB is too small for Lua");
    assert_null(sb);
    lim = (fy_lua_limits){.memory_bytes = 8192}; /* too small for the libraries */
    assert_int_equal(fy_lua_sandbox_create(&lim, &sb, &err), FY_ESCRIPT);
    assert_contains(err.message, "a memory budget of 8KiB is too small for Lua's libraries");
    assert_null(sb);

    /* A script bigger than the memory budget is refused before it is read. */
    lim = (fy_lua_limits){.memory_bytes = 256 << 10};
    sb = create(&lim);
    char *dir = fy_test_scratch("luabig");
    char path[4200];
    snprintf(path, sizeof path, "%s/big.lua", dir);
    size_t len = 300 << 10;
    char *text = malloc(len);
    assert_non_null(text);
    memset(text, '\n', len);
    assert_int_equal(fy_file_write_atomic(path, text, len, &err), 0);
    free(text);
    assert_int_equal(fy_lua_sandbox_load_file(sb, path, &err), FY_ESCRIPT);
    assert_string_equal(err.file, path);
    assert_contains(err.message, "larger than the memory budget of 256KiB");
    /* A script that fits, but whose parse does not. */
    len = 200 << 10;
    text = malloc(len + 16);
    assert_non_null(text);
    memcpy(text, "s = '", 5);
    memset(text + 5, 'x', len);
    memcpy(text + 5 + len, "'\n", 2);
    assert_int_equal(fy_lua_sandbox_load_string(sb, "long.lua", text, len + 7, &err), FY_ESCRIPT);
    free(text);
    assert_string_equal(err.file, "long.lua");
    assert_contains(err.message, "memory budget of 256KiB exhausted while parsing");
    fy_lua_sandbox_destroy(sb);
    fy_test_scratch_remove(dir);
}

/* ---- the C side: setup, charges, the hook name, the log ---- */

static int c_work(lua_State *L)
{
    fy_lua_sandbox_charge(L, (uint64_t)luaL_checkinteger(L, 1));
    lua_pushinteger(L, (lua_Integer)fy_lua_sandbox_remaining(L));
    return 1;
}

static int c_hook_name(lua_State *L)
{
    const char *h = fy_lua_sandbox_hook(fy_lua_sandbox_of(L));
    lua_pushstring(L, h ? h : "none");
    return 1;
}

static int c_log(lua_State *L)
{
    fy_lua_sandbox_log(L, luaL_checkstring(L, 1));
    return 0;
}

static int setup_ctx(lua_State *L, void *ud)
{
    (void)ud;
    lua_createtable(L, 0, 3);
    lua_pushcfunction(L, c_work);
    lua_setfield(L, -2, "work");
    lua_pushcfunction(L, c_hook_name);
    lua_setfield(L, -2, "hook");
    lua_pushcfunction(L, c_log);
    lua_setfield(L, -2, "log");
    lua_setglobal(L, "C");
    return 0;
}

static int setup_fails(lua_State *L, void *ud)
{
    (void)ud;
    return luaL_error(L, "boom");
}

static int read_hook_and_left(fy_lua_sandbox *sb, void *res, fy_error *err)
{
    char **name = res;
    return fy_lua_result_string(sb, 1, "a name", name, err);
}

static void test_lua_sandbox_serves_c_functions_of_policies(void **state)
{
    (void)state;
    fy_lua_limits lim = {.instructions_per_call = 50000};
    fy_lua_sandbox *sb = create(&lim);
    log_capture cap = {0};
    fy_lua_sandbox_set_log(sb, capture_log, &cap);
    fy_error err = {0};
    assert_int_equal(fy_lua_sandbox_protected(sb, "setting up ctx", setup_ctx, NULL, &err), 0);
    assert_int_equal(fy_lua_sandbox_protected(sb, "setting up ctx", setup_fails, NULL, &err),
                     FY_ESCRIPT);
    assert_contains(err.message, "in setting up ctx: boom");
    const char *src = "function which() return C.hook() end\n"
                      "function heavy() C.log('about to work') return C.work(60000) end\n"
                      "function light() return C.work(100) end\n"
                      "function ok() return 42 end\n";
    assert_int_equal(fy_lua_sandbox_load_string(sb, "c.lua", src, strlen(src), &err), 0);
    char *name = NULL;
    assert_int_equal(
        fy_lua_sandbox_call(sb, "which", NULL, NULL, 1, read_hook_and_left, &name, &err), 0);
    assert_string_equal(name, "which");
    free(name);
    int64_t left = 0;
    assert_int_equal(fy_lua_sandbox_call(sb, "light", NULL, NULL, 1, read_int, &left, &err), 0);
    assert_true(left > 49000 && left < 50000);
    expect_failure(sb, "heavy", FY_ESCRIPT, "c.lua", 2,
                   "instruction budget of 50000 exhausted in hook 'heavy'", NULL);
    assert_int_equal(cap.n, 1);
    assert_string_equal(cap.e[0].file, "c.lua");
    assert_int_equal(cap.e[0].line, 2);
    assert_string_equal(cap.e[0].hook, "heavy");
    assert_string_equal(cap.e[0].message, "about to work");
    fy_lua_sandbox_destroy(sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lua_sandbox_calls_hooks_and_reads_results),
        cmocka_unit_test(test_lua_sandbox_everyday_library_use_fits_the_budgets),
        cmocka_unit_test(test_lua_sandbox_sends_print_to_the_log_callback),
        cmocka_unit_test(test_lua_sandbox_random_numbers_are_reproducible),
        cmocka_unit_test(test_lua_sandbox_reports_runtime_errors_with_line_and_traceback),
        cmocka_unit_test(test_lua_sandbox_reports_syntax_errors_with_line),
        cmocka_unit_test(test_lua_sandbox_names_the_hook_in_result_type_errors),
        cmocka_unit_test(test_lua_sandbox_refuses_misuse),
        cmocka_unit_test(test_lua_sandbox_isolates_sandboxes),
        cmocka_unit_test(test_lua_sandbox_refuses_bad_limits),
        cmocka_unit_test(test_lua_sandbox_serves_c_functions_of_policies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
