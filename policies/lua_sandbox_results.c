/* Reading a hook's results back into C, and pushing lists into Lua. The invariant: none of
 * the readers raises a Lua error or asks Lua to allocate (raw access, no metamethods, no
 * conversions), so they run outside any protected call and may malloc freely; every refusal
 * names the hook, what it returned and what was expected, at the line defining the hook. */
#include "policies/lua_sandbox_int.h"

#include <lauxlib.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *a_type(int t)
{
    switch (t) {
    case LUA_TNIL:
        return "nil";
    case LUA_TBOOLEAN:
        return "a boolean";
    case LUA_TNUMBER:
        return "a number";
    case LUA_TSTRING:
        return "a string";
    case LUA_TTABLE:
        return "a table";
    case LUA_TFUNCTION:
        return "a function";
    case LUA_TTHREAD:
        return "a coroutine";
    default:
        return "a userdata";
    }
}

/* Stack index of result i, or 0 when not reading or out of range. */
static int result_index(const fy_lua_sandbox *sb, int i)
{
    if (!sb->reading || i < 1 || i > sb->nresults) return 0;
    return 1 + i;
}

static int result_error(const fy_lua_sandbox *sb, fy_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int result_error(const fy_lua_sandbox *sb, fy_error *err, const char *fmt, ...)
{
    char msg[FY_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fy_lua_sandbox_error_at(err, FY_ESCRIPT, sb->hook_def, "hook '%s' returned %s", sb->hook,
                                   msg);
}

static const char *as_result(int i, char *buf, size_t size)
{
    if (i == 1) return "";
    snprintf(buf, size, " as result %d", i);
    return buf;
}

static int not_reading(fy_error *err)
{
    return fy_error_set(err, FY_ESTATE, "hook results can only be read in a read callback");
}

bool fy_lua_result_is_nil(fy_lua_sandbox *sb, int i)
{
    int idx = result_index(sb, i);
    return idx && lua_isnil(sb->L, idx);
}

/* Describes a table key without asking Lua to convert it (that could allocate). */
static void describe_key(lua_State *L, int idx, char *buf, size_t size)
{
    int t = lua_type(L, idx);
    if (t == LUA_TSTRING)
        snprintf(buf, size, "key '%.60s'", lua_tostring(L, idx));
    else if (lua_isinteger(L, idx))
        snprintf(buf, size, "key %lld", (long long)lua_tointeger(L, idx));
    else if (t == LUA_TNUMBER)
        snprintf(buf, size, "key %g", (double)lua_tonumber(L, idx));
    else
        snprintf(buf, size, "%s key", a_type(t));
}

int fy_lua_result_strings(fy_lua_sandbox *sb, int i, const char *what, char ***names, size_t *count,
                          fy_error *err)
{
    *names = NULL;
    *count = 0;
    int idx = result_index(sb, i);
    if (!idx) return not_reading(err);
    lua_State *L = sb->L;
    char pos[32];
    int t = lua_type(L, idx);
    if (t == LUA_TNIL) return 0;
    if (t != LUA_TTABLE)
        return result_error(sb, err, "%s%s; expected a list of %s (strings)", a_type(t),
                            as_result(i, pos, sizeof pos), what);
    if (!lua_checkstack(L, 3))
        return fy_error_set(err, FY_ENOMEM, "no Lua stack space to read a result");
    size_t n = lua_rawlen(L, idx);
    int top = lua_gettop(L);
    /* Every key must be one of 1..n: a stray key is a mistake the policy should hear of. */
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_Integer k = lua_isinteger(L, -2) ? lua_tointeger(L, -2) : 0;
        if (k < 1 || (lua_Unsigned)k > n) {
            char key[96];
            describe_key(L, -2, key, sizeof key);
            lua_settop(L, top);
            return result_error(sb, err, "a table with %s%s; expected a list of %s (strings)", key,
                                as_result(i, pos, sizeof pos), what);
        }
        lua_pop(L, 1);
    }
    for (size_t k = 1; k <= n; k++) {
        int vt = lua_rawgeti(L, idx, (lua_Integer)k);
        size_t len = 0;
        const char *s = vt == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
        lua_settop(L, top);
        if (vt != LUA_TSTRING)
            return result_error(sb, err,
                                "a table containing %s at index %zu%s; expected %s (strings)",
                                a_type(vt), k, as_result(i, pos, sizeof pos), what);
        if (strlen(s) != len)
            return result_error(sb, err, "a string with a NUL byte at index %zu%s; expected %s", k,
                                as_result(i, pos, sizeof pos), what);
    }
    if (n == 0) return 0;
    char **v = calloc(n, sizeof *v);
    if (!v)
        return fy_error_set(err, FY_ENOMEM, "out of memory reading hook '%s' results", sb->hook);
    for (size_t k = 1; k <= n; k++) {
        lua_rawgeti(L, idx, (lua_Integer)k);
        v[k - 1] = strdup(lua_tostring(L, -1));
        lua_settop(L, top);
        if (!v[k - 1]) {
            fy_lua_strings_free(v, k - 1);
            return fy_error_set(err, FY_ENOMEM, "out of memory reading hook '%s' results",
                                sb->hook);
        }
    }
    *names = v;
    *count = n;
    return 0;
}

int fy_lua_result_string(fy_lua_sandbox *sb, int i, const char *what, char **out, fy_error *err)
{
    *out = NULL;
    int idx = result_index(sb, i);
    if (!idx) return not_reading(err);
    char pos[32];
    int t = lua_type(sb->L, idx);
    if (t != LUA_TSTRING)
        return result_error(sb, err, "%s%s; expected %s (a string)", a_type(t),
                            as_result(i, pos, sizeof pos), what);
    size_t len;
    const char *s = lua_tolstring(sb->L, idx, &len);
    if (strlen(s) != len)
        return result_error(sb, err, "a string with a NUL byte%s; expected %s",
                            as_result(i, pos, sizeof pos), what);
    *out = strdup(s);
    return *out ? 0 : fy_error_set(err, FY_ENOMEM, "out of memory reading a hook result");
}

int fy_lua_result_integer(fy_lua_sandbox *sb, int i, const char *what, int64_t *out, fy_error *err)
{
    int idx = result_index(sb, i);
    if (!idx) return not_reading(err);
    char pos[32];
    lua_State *L = sb->L;
    int t = lua_type(L, idx);
    if (t != LUA_TNUMBER)
        return result_error(sb, err, "%s%s; expected an integer (%s)", a_type(t),
                            as_result(i, pos, sizeof pos), what);
    int ok = 0;
    lua_Integer v = lua_tointegerx(L, idx, &ok); /* a number: converts without allocating */
    if (!ok)
        return result_error(sb, err, "%g%s; expected an integer (%s)", (double)lua_tonumber(L, idx),
                            as_result(i, pos, sizeof pos), what);
    *out = (int64_t)v;
    return 0;
}

int fy_lua_result_number(fy_lua_sandbox *sb, int i, const char *what, double *out, fy_error *err)
{
    int idx = result_index(sb, i);
    if (!idx) return not_reading(err);
    char pos[32];
    int t = lua_type(sb->L, idx);
    if (t != LUA_TNUMBER)
        return result_error(sb, err, "%s%s; expected a number (%s)", a_type(t),
                            as_result(i, pos, sizeof pos), what);
    double v = (double)lua_tonumber(sb->L, idx);
    if (!isfinite(v))
        return result_error(sb, err, "%g%s; expected a finite number (%s)", v,
                            as_result(i, pos, sizeof pos), what);
    *out = v;
    return 0;
}

void fy_lua_strings_free(char **names, size_t count)
{
    for (size_t i = 0; names && i < count; i++)
        free(names[i]);
    free(names);
}

void fy_lua_push_strings(lua_State *L, const char *const *names, size_t count)
{
    lua_createtable(L, count > INT32_MAX ? 0 : (int)count, 0);
    for (size_t i = 0; i < count; i++) {
        lua_pushstring(L, names[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}
