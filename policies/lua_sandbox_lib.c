/* The libraries a policy script sees: base, string, table, math and utf8, with everything
 * that reaches outside the process removed and everything that does unbounded work in C
 * charged to the instruction budget. The invariant: any library call either finishes in
 * time proportional to what it charges (or allocates, which is charged too), or is refused
 * before it starts; no script can catch a budget error (pcall and xpcall pass it on); and
 * nothing here mallocs, so a Lua error can never leak memory through these functions. */
#include "policies/lua_sandbox_int.h"

#include <lauxlib.h>
#include <lualib.h>

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Names that a policy might reach for and that the sandbox does not have; reading one
 * raises an error that says so, instead of a puzzling "attempt to index a nil value". */
static const char *const removed_globals[] = {"io",        "os",     "package",  "require", "debug",
                                              "coroutine", "dofile", "loadfile", "warn",    NULL};

/* Bytes of input that C code scans per instruction charged (see lua_sandbox.c). */
#define SCAN_BYTES_PER_INSTRUCTION 64

/* ---- calling the functions being wrapped ---- */

/* A wrapper checks or charges first and then runs the original in its own frame, so that
 * the original's errors name the function as the script called it ("bad argument #1 to
 * 'find'") and carry the script's line. Only originals without upvalues can run this way;
 * wrap() checks that. */
static int call_original(lua_State *L)
{
    lua_CFunction f = lua_tocfunction(L, lua_upvalueindex(1));
    return f(L);
}

static void wrap(lua_State *L, int table, const char *name, lua_CFunction wrapper)
{
    table = lua_absindex(L, table);
    lua_getfield(L, table, name);
    if (!lua_tocfunction(L, -1) || lua_getupvalue(L, -1, 1))
        luaL_error(L, "ferry: cannot wrap the Lua library function '%s'", name);
    lua_pushcclosure(L, wrapper, 1);
    lua_setfield(L, table, name);
}

static void charge_bytes(lua_State *L, size_t bytes)
{
    fy_lua_sandbox_charge(L, bytes / SCAN_BYTES_PER_INSTRUCTION + 1);
}

/* ---- patterns ----
 * Lua's matcher backtracks inside one C call that no hook can interrupt: ".-.-.-x" over a
 * long string would run for hours. Before each find, match, gmatch and gsub, bound the work
 * from the pattern's shape and refuse a call whose bound exceeds the instructions left. The
 * bound: each repeated item (x*, x+, x-) tries at most (its longest run in the subject + 1)
 * lengths, and at most C(n+q, q) combinations over q such items; each combination costs the
 * pattern's length; an optional item doubles the count; %b and back-references scan. */

typedef struct pitem {
    size_t start, end; /* a single-character class p[start..end), or start == end */
    char quant;        /* '*', '+', '-', '?' or 0 */
    bool scan;         /* %bxy or %1-%9: a linear scan */
} pitem;

/* Index just past the set opening at p[i] == '['. As in Lua, a ']' right after "[" or "[^"
 * belongs to the set. An unterminated set runs to the end (the library reports it). */
static size_t set_end(const char *p, size_t plen, size_t i)
{
    i++;
    if (i < plen && p[i] == '^') i++;
    do {
        if (i >= plen) return plen;
        if (p[i] == '%') i++;
        i++;
    } while (i < plen && p[i] != ']');
    return i < plen ? i + 1 : plen;
}

static size_t next_item(const char *p, size_t plen, size_t i, pitem *it)
{
    *it = (pitem){i, i, 0, false};
    char c = p[i];
    if (c == '(' || c == ')') return i + 1;
    if (c == '$' && i + 1 == plen) return plen;
    size_t end;
    if (c == '%') {
        if (i + 1 >= plen) return plen;
        char d = p[i + 1];
        if (d == 'b') {
            it->scan = true;
            return i + 4 < plen ? i + 4 : plen;
        }
        if (d == 'f') return i + 2 < plen && p[i + 2] == '[' ? set_end(p, plen, i + 2) : plen;
        if (d >= '0' && d <= '9') {
            it->scan = true;
            return i + 2;
        }
        end = i + 2;
    } else if (c == '[') {
        end = set_end(p, plen, i);
    } else {
        end = i + 1;
    }
    it->end = end;
    if (end < plen && (p[end] == '*' || p[end] == '+' || p[end] == '-' || p[end] == '?'))
        it->quant = p[end++];
    return end;
}

static bool class_has(int c, int cl)
{
    int r;
    switch (tolower(cl)) {
    case 'a':
        r = isalpha(c);
        break;
    case 'c':
        r = iscntrl(c);
        break;
    case 'd':
        r = isdigit(c);
        break;
    case 'g':
        r = isgraph(c);
        break;
    case 'l':
        r = islower(c);
        break;
    case 'p':
        r = ispunct(c);
        break;
    case 's':
        r = isspace(c);
        break;
    case 'u':
        r = isupper(c);
        break;
    case 'w':
        r = isalnum(c);
        break;
    case 'x':
        r = isxdigit(c);
        break;
    default:
        return cl == c;
    }
    return isupper(cl) ? !r : r != 0;
}

/* p[0] == '[' and p[len-1] == ']'. */
static bool set_has(int c, const unsigned char *p, size_t len)
{
    const unsigned char *q = p + 1, *end = p + len - 1;
    bool negate = q < end && *q == '^';
    if (negate) q++;
    while (q < end) {
        if (*q == '%' && q + 1 < end) {
            if (class_has(c, q[1])) return !negate;
            q += 2;
        } else if (q + 2 < end && q[1] == '-') {
            if (q[0] <= c && c <= q[2]) return !negate;
            q += 3;
        } else {
            if (*q == c) return !negate;
            q++;
        }
    }
    return negate;
}

static bool item_has(int c, const char *p, const pitem *it)
{
    const unsigned char *q = (const unsigned char *)p + it->start;
    size_t len = it->end - it->start;
    if (*q == '.') return true;
    if (*q == '%' && len == 2) return class_has(c, q[1]);
    if (*q == '[' && len >= 2 && q[len - 1] == ']') return set_has(c, q, len);
    return *q == c;
}

static size_t longest_run(const unsigned char *s, size_t n, const char *p, const pitem *it)
{
    size_t best = 0, run = 0;
    for (size_t i = 0; i < n; i++) {
        run = item_has(s[i], p, it) ? run + 1 : 0;
        if (run > best) best = run;
    }
    return best;
}

/* C(n + k, k), as a double (infinite when it overflows). */
static double combinations(double n, double k)
{
    double small = k < n ? k : n, r = 1;
    for (double j = 1; j <= small; j++) {
        r = r * (n + k - small + j) / j;
        if (r > 1e300) return INFINITY;
    }
    return r;
}

static double pattern_bound(lua_State *L, const char *s, size_t n, const char *p, size_t plen,
                            bool can_anchor, uint64_t left)
{
    bool anchored = can_anchor && plen > 0 && p[0] == '^';
    double reps = 0, optionals = 0, scans = 0;
    pitem it;
    for (size_t i = anchored ? 1 : 0; i < plen;) {
        i = next_item(p, plen, i, &it);
        scans += it.scan;
        reps += it.quant && it.quant != '?';
        optionals += it.quant == '?';
    }
    double starts = anchored ? 1 : (double)n + 1;
    double per_path = (double)plen + reps + 1 + scans * (double)n;
    double branches = pow(2, optionals);
    double bound = starts * combinations((double)n, reps) * branches * per_path;
    if (bound <= (double)left || reps * (double)n > (double)left) return bound;
    /* Too costly by the coarse bound: refine it with each repeated item's longest run. */
    fy_lua_sandbox_charge(L, (uint64_t)(reps * (double)n) / SCAN_BYTES_PER_INSTRUCTION);
    double runs = 1;
    for (size_t i = anchored ? 1 : 0; i < plen && runs < 1e300;) {
        i = next_item(p, plen, i, &it);
        if (it.quant && it.quant != '?' && it.end > it.start)
            runs *= (double)longest_run((const unsigned char *)s, n, p, &it) + 1;
    }
    double fine = starts * runs * branches * per_path;
    return fine < bound ? fine : bound;
}

static void guard_pattern(lua_State *L, const char *fname, bool plain, bool can_anchor)
{
    size_t n, plen;
    const char *s = luaL_checklstring(L, 1, &n);
    const char *p = luaL_checklstring(L, 2, &plen);
    charge_bytes(L, n + plen);
    uint64_t left = fy_lua_sandbox_remaining(L);
    double bound = plain ? ((double)n + 1) * ((double)plen + 1)
                         : pattern_bound(L, s, n, p, plen, can_anchor, left);
    if (bound <= (double)left) return;
    char msg[400];
    snprintf(msg, sizeof msg,
             "%s: the pattern '%.40s%s' could take ~%.2g steps on a string of %zu bytes, more "
             "than the %llu instructions left in this call; use a plain find "
             "(string.find(s, text, 1, true)), an anchored pattern or a shorter string",
             fname, p, plen > 40 ? "..." : "", bound, n, (unsigned long long)left);
    luaL_error(L, "%s", msg);
}

static int sandbox_find(lua_State *L)
{
    guard_pattern(L, "string.find", lua_toboolean(L, 4), true);
    return call_original(L);
}

static int sandbox_match(lua_State *L)
{
    guard_pattern(L, "string.match", false, true);
    return call_original(L);
}

static int sandbox_gmatch(lua_State *L)
{
    guard_pattern(L, "string.gmatch", false, false);
    return call_original(L);
}

static int sandbox_gsub(lua_State *L)
{
    guard_pattern(L, "string.gsub", false, true);
    return call_original(L);
}

/* string.rep("", n) would loop n times copying nothing: answer at once. */
static int sandbox_rep(lua_State *L)
{
    size_t len, seplen;
    luaL_checklstring(L, 1, &len);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &seplen);
    if (n <= 0 || len + seplen == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    return call_original(L);
}

/* ---- table and utf8: work that allocates nothing, charged by its size ---- */

/* The length the table library will use (honouring __len, as it does). */
static lua_Integer length_of(lua_State *L, int idx)
{
    int t = lua_type(L, idx);
    if (t != LUA_TTABLE && t != LUA_TUSERDATA) return 0; /* the original reports the bad argument */
    if (luaL_getmetafield(L, idx, "__len") != LUA_TNIL) {
        lua_pop(L, 1);
        return luaL_len(L, idx);
    }
    return t == LUA_TTABLE ? (lua_Integer)lua_rawlen(L, idx) : 0;
}

static uint64_t span(lua_Integer from, lua_Integer to)
{
    return to < from ? 0 : (uint64_t)((lua_Unsigned)to - (lua_Unsigned)from) + 1;
}

static int sandbox_sort(lua_State *L)
{
    lua_Integer n = length_of(L, 1);
    if (n > 1) fy_lua_sandbox_charge(L, (uint64_t)n * (uint64_t)ceil(log2((double)n)));
    return call_original(L);
}

static int sandbox_insert(lua_State *L)
{
    if (lua_gettop(L) == 3) { /* insert(t, pos, v) shifts t[pos..n] up */
        lua_Integer n = length_of(L, 1), pos = luaL_checkinteger(L, 2);
        if (pos >= 1 && pos <= n) fy_lua_sandbox_charge(L, span(pos, n));
    }
    return call_original(L);
}

static int sandbox_remove(lua_State *L)
{
    if (lua_gettop(L) >= 2) { /* remove(t, pos) shifts t[pos+1..n] down */
        lua_Integer n = length_of(L, 1), pos = luaL_optinteger(L, 2, n);
        if (pos >= 1 && pos < n) fy_lua_sandbox_charge(L, span(pos, n));
    }
    return call_original(L);
}

static int sandbox_move(lua_State *L)
{
    lua_Integer f = luaL_checkinteger(L, 2), e = luaL_checkinteger(L, 3);
    fy_lua_sandbox_charge(L, span(f, e));
    return call_original(L);
}

static int sandbox_utf8_scan(lua_State *L)
{
    size_t len;
    luaL_checklstring(L, 1, &len);
    charge_bytes(L, len);
    return call_original(L);
}

/* ---- base ---- */

static int sandbox_print(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1) luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    fy_lua_sandbox_log(L, lua_tostring(L, -1));
    return 0;
}

/* load(chunk [, chunkname [, mode [, env]]]) for text only. */
static int sandbox_load(lua_State *L)
{
    int top = lua_gettop(L);
    if (top >= 3 && !lua_isnil(L, 3)) {
        const char *mode = luaL_checkstring(L, 3);
        if (strcmp(mode, "t") != 0)
            return luaL_error(L,
                              "load: a policy can load text chunks only (mode 't'), not "
                              "mode '%s'",
                              mode);
    }
    if (top < 3) {
        lua_settop(L, 2);
        lua_pushliteral(L, "t");
    } else {
        lua_pushliteral(L, "t");
        lua_replace(L, 3);
    }
    return call_original(L);
}

static int sandbox_pcall(lua_State *L)
{
    luaL_checkany(L, 1);
    int status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    if (status != LUA_OK && fy_lua_sandbox_stopping(L, status)) return lua_error(L);
    luaL_checkstack(L, 1, NULL);
    lua_pushboolean(L, status == LUA_OK);
    lua_insert(L, 1);
    return lua_gettop(L);
}

/* The message handler that xpcall installs around the script's own. An error raised by the
 * count hook reaches the handler while Lua has hooks switched off, so a script's handler
 * would run unbounded: once a budget has run out, the script's handler is skipped. */
static int guarded_handler(lua_State *L)
{
    if (fy_lua_sandbox_stopping(L, LUA_OK)) return 1;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int sandbox_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, guarded_handler, 1);
    lua_replace(L, 2);
    lua_pushvalue(L, 1); /* swap the function and the handler: handler, f, args... */
    lua_copy(L, 2, 1);
    lua_replace(L, 2);
    int status = lua_pcall(L, n - 2, LUA_MULTRET, 1);
    if (status != LUA_OK && fy_lua_sandbox_stopping(L, status)) return lua_error(L);
    lua_pushboolean(L, status == LUA_OK);
    lua_replace(L, 1);
    return lua_gettop(L);
}

/* Only "count": "collect" and "step" would let a script spend time that no budget sees,
 * and "stop", "incremental" or "generational" would change how memory behaves for ferry. */
static int sandbox_collectgarbage(lua_State *L)
{
    const char *opt = luaL_optstring(L, 1, "collect");
    if (strcmp(opt, "count") != 0)
        return luaL_error(L,
                          "collectgarbage('%s') is not available in a policy; only "
                          "collectgarbage('count') is",
                          opt);
    lua_pushnumber(L, (lua_Number)lua_gc(L, LUA_GCCOUNT, 0) +
                          (lua_Number)lua_gc(L, LUA_GCCOUNTB, 0) / 1024);
    return 1;
}

/* Finalizers would run at the collector's whim, outside any call and its budgets. */
static int sandbox_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "setmetatable: __gc metamethods are not allowed in a policy");
        lua_pop(L, 1);
    }
    return call_original(L);
}

/* randomseed() without a seed would seed from the clock: reset to ferry's seed instead. */
static int sandbox_randomseed(lua_State *L)
{
    if (lua_isnone(L, 1)) {
        lua_pushinteger(L, FY_LUA_RANDOM_SEED);
    } else {
        luaL_checkinteger(L, 1);
        luaL_optinteger(L, 2, 0);
    }
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

static int explain_global(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TSTRING) {
        const char *k = lua_tostring(L, 2);
        for (int i = 0; removed_globals[i]; i++)
            if (strcmp(k, removed_globals[i]) == 0)
                return luaL_error(L,
                                  "'%s' is not available in a policy (the sandbox has no io, "
                                  "os, package, require, debug, coroutine, dofile, loadfile "
                                  "or warn)",
                                  k);
    }
    return 0;
}

static int explain_string(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "dump") == 0)
        return luaL_error(L, "'string.dump' is not available in a policy (no bytecode)");
    return 0;
}

static void open_lib(lua_State *L, const char *name, lua_CFunction fn)
{
    luaL_requiref(L, name, fn, 1);
    lua_pop(L, 1);
}

static void set_explainer(lua_State *L, int table, lua_CFunction fn)
{
    table = lua_absindex(L, table);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, fn);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, table);
}

int fy_lua_sandbox_open_libs(lua_State *L)
{
    open_lib(L, LUA_GNAME, luaopen_base);
    open_lib(L, LUA_STRLIBNAME, luaopen_string);
    open_lib(L, LUA_TABLIBNAME, luaopen_table);
    open_lib(L, LUA_MATHLIBNAME, luaopen_math);
    open_lib(L, LUA_UTF8LIBNAME, luaopen_utf8);

    lua_pushglobaltable(L);
    int g = lua_gettop(L);
    for (int i = 0; removed_globals[i]; i++) {
        lua_pushnil(L);
        lua_setfield(L, g, removed_globals[i]);
    }
    lua_pushcfunction(L, sandbox_print);
    lua_setfield(L, g, "print");
    lua_pushcfunction(L, sandbox_pcall);
    lua_setfield(L, g, "pcall");
    lua_pushcfunction(L, sandbox_xpcall);
    lua_setfield(L, g, "xpcall");
    lua_pushcfunction(L, sandbox_collectgarbage);
    lua_setfield(L, g, "collectgarbage");
    wrap(L, g, "load", sandbox_load);
    wrap(L, g, "setmetatable", sandbox_setmetatable);

    lua_getfield(L, g, LUA_STRLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    wrap(L, -1, "find", sandbox_find);
    wrap(L, -1, "match", sandbox_match);
    wrap(L, -1, "gmatch", sandbox_gmatch);
    wrap(L, -1, "gsub", sandbox_gsub);
    wrap(L, -1, "rep", sandbox_rep);
    set_explainer(L, -1, explain_string);
    lua_pop(L, 1);

    lua_getfield(L, g, LUA_TABLIBNAME);
    wrap(L, -1, "sort", sandbox_sort);
    wrap(L, -1, "insert", sandbox_insert);
    wrap(L, -1, "remove", sandbox_remove);
    wrap(L, -1, "move", sandbox_move);
    lua_pop(L, 1);

    lua_getfield(L, g, LUA_UTF8LIBNAME);
    wrap(L, -1, "len", sandbox_utf8_scan);
    wrap(L, -1, "offset", sandbox_utf8_scan);
    lua_pop(L, 1);

    /* math.random starts from a fixed seed so that plans are reproducible. */
    lua_getfield(L, g, LUA_MATHLIBNAME);
    lua_getfield(L, -1, "randomseed");
    lua_pushvalue(L, -1);
    lua_pushinteger(L, FY_LUA_RANDOM_SEED);
    lua_call(L, 1, 0);
    lua_pushcclosure(L, sandbox_randomseed, 1);
    lua_setfield(L, -2, "randomseed");
    lua_pop(L, 1);

    set_explainer(L, g, explain_global);
    lua_pop(L, 1);
    return 0;
}
