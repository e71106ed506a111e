/* Helpers shared by the Lua sandbox tests: opening the scripts in tests/data/lua/, and
 * checking that a hook fails with a given status, file, line and message while the sandbox
 * stays usable. */
#ifndef FERRY_TESTS_LUA_TEST_UTIL_H
#define FERRY_TESTS_LUA_TEST_UTIL_H

#include "test_util.h"

#include "policies/lua_sandbox.h"

#include <stdbool.h>

#define assert_contains(text, sub)                                                                 \
    do {                                                                                           \
        if (!strstr((text), (sub))) fail_msg("expected '%s' in:\n%s", (sub), (text));              \
    } while (0)

static inline const char *script(const char *name)
{
    static char rel[256];
    snprintf(rel, sizeof rel, "lua/%s", name);
    return fy_test_data(rel);
}

static inline fy_lua_sandbox *create(const fy_lua_limits *limits)
{
    fy_lua_sandbox *sb = NULL;
    fy_error err = {0};
    if (fy_lua_sandbox_create(limits, &sb, &err) < 0) fail_msg("create: %s", err.message);
    return sb;
}

static inline fy_lua_sandbox *open_script(const char *name, const fy_lua_limits *limits)
{
    fy_lua_sandbox *sb = create(limits);
    fy_error err = {0};
    if (fy_lua_sandbox_load_file(sb, script(name), &err) < 0)
        fail_msg("load %s: %s", name, err.message);
    return sb;
}

static inline bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && strcmp(s + n - m, tail) == 0;
}

static inline int read_int(fy_lua_sandbox *sb, void *res, fy_error *err)
{
    return fy_lua_result_integer(sb, 1, "a count", res, err);
}

static inline void assert_usable(fy_lua_sandbox *sb)
{
    int64_t v = 0;
    fy_error err = {0};
    if (fy_lua_sandbox_call(sb, "ok", NULL, NULL, 1, read_int, &v, &err) < 0)
        fail_msg("the sandbox is unusable after an error: %s", err.message);
    assert_int_equal(v, 42);
}

/* Calls hook (no arguments, no results) expecting a failure with status, the script file
 * name, line (0: any) and every one of the NULL-terminated substrings in its message. */
static inline void expect_failure(fy_lua_sandbox *sb, const char *hook, int status,
                                  const char *file, unsigned line, ...)
{
    fy_error err = {0};
    int rc = fy_lua_sandbox_call(sb, hook, NULL, NULL, 0, NULL, NULL, &err);
    if (rc == 0) fail_msg("hook '%s' succeeded", hook);
    if (rc != status) fail_msg("hook '%s': status %d, not %d: %s", hook, rc, status, err.message);
    assert_int_equal(err.status, status);
    if (file && !ends_with(err.file, file))
        fail_msg("hook '%s': file '%s', not '%s'", hook, err.file, file);
    if (line && err.line != line)
        fail_msg("hook '%s': line %u, not %u: %s", hook, err.line, line, err.message);
    va_list ap;
    va_start(ap, line);
    for (const char *sub = va_arg(ap, const char *); sub; sub = va_arg(ap, const char *))
        assert_contains(err.message, sub);
    va_end(ap);
    assert_usable(sb);
}

typedef struct names {
    char **v;
    size_t n;
} names;

static inline int read_names(fy_lua_sandbox *sb, void *res, fy_error *err)
{
    names *out = res;
    return fy_lua_result_strings(sb, 1, "tensor names", &out->v, &out->n, err);
}

typedef struct caught_results {
    bool nil_first;
    char *msg;
} caught_results;

#endif
