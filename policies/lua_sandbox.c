/* The Lua sandbox's state machine: a capped allocator, a count hook that enforces the
 * per-call budgets, protected entry points with a traceback handler, and the translation of
 * Lua's errors into fy_errors that name the script, the line and the hook. The invariant:
 * Lua code runs only inside run_protected(), so every Lua error ends at one lua_pcall, and
 * no C frame between that lua_pcall and the error holds malloc'ed memory. The safe
 * libraries are in lua_sandbox_lib.c, the readers of hook results in lua_sandbox_results.c. */
#include "policies/lua_sandbox_int.h"
#include "core/clock.h"

#include "core/buf.h"

#include <lauxlib.h>

#include <assert.h>
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The count hook runs every HOOK_EVERY instructions, so a budget is kept to within that
 * many. The period hardly changes the hook's cost: once any count hook is set, Lua 5.4's
 * interpreter takes its slow path on every instruction (about 2-2.7x slower on a tight
 * arithmetic loop, whatever the period); what is called every HOOK_EVERY is only our check. */
#define HOOK_EVERY 1000
/* Bytes the script allocates that cost one instruction: allocation is the one measure of
 * work that C code on the script's behalf (concatenation, string.rep, gsub, table growth,
 * the collector) cannot avoid, and 64 bytes take about as long to copy as an instruction. */
#define ALLOC_BYTES_PER_INSTRUCTION 64
/* Extra memory the message handler may use beyond the cap, so that a traceback can still
 * be built for a script that stopped at its memory budget. */
#define HANDLER_HEADROOM ((size_t)1 << 20)
/* Frames the location search looks through (lua_getstack is linear in the level). */
#define LOCATE_MAX_LEVELS 64

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a + b < a ? UINT64_MAX : a + b;
}

static uint64_t cost(const fy_lua_sandbox *sb)
{
    return sat_add(sat_add(sb->steps, sb->charged), sb->alloc_bytes / ALLOC_BYTES_PER_INSTRUCTION);
}

static const fy_lua_chunk *chunk_by_source(const fy_lua_sandbox *sb, const char *source)
{
    for (size_t i = 0; source && i < sb->nchunks; i++)
        if (strcmp(sb->chunks[i]->chunkname, source) == 0) return sb->chunks[i];
    return NULL;
}

/* Finds the innermost frame, from level on, that runs one of the loaded scripts. Reading
 * lua_Debug with "Sl" neither allocates nor raises, so this is safe anywhere, even inside
 * the allocator. */
static fy_lua_where locate(const fy_lua_sandbox *sb, lua_State *L, int level)
{
    lua_Debug ar;
    for (int i = 0; i < LOCATE_MAX_LEVELS && lua_getstack(L, level + i, &ar); i++) {
        if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0) continue;
        const fy_lua_chunk *c = chunk_by_source(sb, ar.source);
        if (c) return (fy_lua_where){c, (unsigned)ar.currentline};
    }
    return (fy_lua_where){NULL, 0};
}

/* The allocator: refuses growth past the cap (Lua then raises "not enough memory", after
 * one emergency collection), counts what the script allocates as work, and never fails a
 * shrink, as Lua requires. */
static void *sandbox_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    fy_lua_sandbox *sb = ud;
    size_t old = ptr ? osize : 0; /* with ptr NULL, osize is a type tag, not a size */
    if (nsize == 0) {
        free(ptr);
        sb->used -= old;
        return NULL;
    }
    if (nsize > old) {
        size_t grow = nsize - old;
        size_t cap = sb->limits.memory_bytes + (sb->in_handler ? HANDLER_HEADROOM : 0);
        if (sb->used > cap || grow > cap - sb->used) {
            if (sb->in_call && sb->L && sb->stop == FY_LUA_STOP_NONE)
                sb->stop_at = locate(sb, sb->L, 0);
            sb->cap_hit = true;
            return NULL;
        }
        if (sb->in_call) sb->alloc_bytes += grow;
    }
    void *p = realloc(ptr, nsize);
    if (!p) {
        if (nsize > old) return NULL;
        p = ptr; /* a failed shrink keeps the larger block */
    }
    sb->used = sb->used - old + nsize;
    if (sb->used > sb->peak) sb->peak = sb->used;
    return p;
}

fy_lua_sandbox *fy_lua_sandbox_of(lua_State *L)
{
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return ud;
}

static void raise_stop(lua_State *L, fy_lua_sandbox *sb) __attribute__((noreturn));
static void raise_stop(lua_State *L, fy_lua_sandbox *sb)
{
    /* The message was allocated at creation: raising it needs no memory. */
    lua_rawgeti(L, LUA_REGISTRYINDEX, sb->stop_ref);
    lua_error(L);
    abort(); /* not reached: lua_error does not return */
}

static void stop_here(lua_State *L, fy_lua_sandbox *sb, fy_lua_stop why, int level)
{
    if (sb->stop == FY_LUA_STOP_NONE) {
        sb->stop = why;
        sb->stop_at = locate(sb, L, level);
    }
    raise_stop(L, sb);
}

static void count_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    fy_lua_sandbox *sb = fy_lua_sandbox_of(L);
    sb->steps = sat_add(sb->steps, (uint64_t)lua_gethookcount(L));
    /* Once stopped, every later check raises again: a script that catches the stop with
     * pcall (or hides in a __close handler) gets it back at once. */
    if (sb->stop != FY_LUA_STOP_NONE || !sb->in_call)
        stop_here(L, sb, sb->stop != FY_LUA_STOP_NONE ? sb->stop : FY_LUA_STOP_INSTRUCTIONS, 0);
    if (cost(sb) >= sb->limits.instructions_per_call) stop_here(L, sb, FY_LUA_STOP_INSTRUCTIONS, 0);
    if (fy_now_s() >= sb->deadline) stop_here(L, sb, FY_LUA_STOP_TIME, 0);
}

void fy_lua_sandbox_charge(lua_State *L, uint64_t instructions)
{
    fy_lua_sandbox *sb = fy_lua_sandbox_of(L);
    sb->charged = sat_add(sb->charged, instructions);
    if (sb->stop != FY_LUA_STOP_NONE || cost(sb) >= sb->limits.instructions_per_call)
        stop_here(L, sb, sb->stop != FY_LUA_STOP_NONE ? sb->stop : FY_LUA_STOP_INSTRUCTIONS, 1);
}

uint64_t fy_lua_sandbox_remaining(lua_State *L)
{
    fy_lua_sandbox *sb = fy_lua_sandbox_of(L);
    uint64_t c = cost(sb);
    if (!sb->in_call || c >= sb->limits.instructions_per_call) return 0;
    return sb->limits.instructions_per_call - c;
}

bool fy_lua_sandbox_stopping(lua_State *L, int status)
{
    fy_lua_sandbox *sb = fy_lua_sandbox_of(L);
    if (status == LUA_ERRMEM && sb->stop == FY_LUA_STOP_NONE) sb->stop = FY_LUA_STOP_MEMORY;
    return sb->stop != FY_LUA_STOP_NONE;
}

/* The message handler of every protected call: notes where the script was and appends a
 * traceback. It never calls metamethods (__tostring would run script code here). */
static int message_handler(lua_State *L)
{
    fy_lua_sandbox *sb = fy_lua_sandbox_of(L);
    sb->in_handler = true;
    sb->error_at = locate(sb, L, 1);
    const char *msg;
    int t = lua_type(L, 1);
    if (t == LUA_TSTRING || t == LUA_TNUMBER)
        msg = lua_tostring(L, 1);
    else
        msg = lua_pushfstring(L, "(error object is a %s value)", lua_typename(L, t));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static void begin_call(fy_lua_sandbox *sb, const char *hook, const char *label, int nresults)
{
    sb->in_call = true;
    sb->reading = false;
    sb->in_handler = false;
    sb->cap_hit = false;
    sb->hook = hook;
    sb->label = label;
    sb->nresults = nresults;
    sb->steps = sb->charged = sb->alloc_bytes = 0;
    sb->stop = FY_LUA_STOP_NONE;
    sb->stop_at = sb->error_at = sb->hook_def = (fy_lua_where){NULL, 0};
    sb->deadline = fy_now_s() + sb->limits.seconds_per_call;
}

/* "in hook 'victim'" or "in the main chunk". */
static void describe_context(const fy_lua_sandbox *sb, char *buf, size_t size)
{
    if (sb->hook)
        snprintf(buf, size, "in hook '%s'", sb->hook);
    else
        snprintf(buf, size, "in %s", sb->label ? sb->label : "the policy");
}

int fy_lua_sandbox_error_at(fy_error *err, int status, fy_lua_where w, const char *fmt, ...)
{
    char msg[FY_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (w.chunk) return fy_error_set_at(err, status, w.chunk->path, w.line, 0, "%s", msg);
    return fy_error_set(err, status, "%s", msg);
}

/* Splits "short_src:LINE: rest" for one of the loaded scripts. */
static bool split_position(const fy_lua_sandbox *sb, const char *msg, fy_lua_where *w,
                           const char **rest)
{
    for (size_t i = 0; i < sb->nchunks; i++) {
        const fy_lua_chunk *c = sb->chunks[i];
        size_t n = strlen(c->short_src);
        if (strncmp(msg, c->short_src, n) != 0 || msg[n] != ':' ||
            !isdigit((unsigned char)msg[n + 1]))
            continue;
        char *end;
        unsigned long line = strtoul(msg + n + 1, &end, 10);
        if (*end != ':') continue;
        *w = (fy_lua_where){c, line > UINT32_MAX ? 0 : (unsigned)line};
        *rest = end[1] == ' ' ? end + 2 : end + 1;
        return true;
    }
    return false;
}

/* Copies the traceback part of a message handler's result, without the trailing frames of
 * ferry's own C functions ("[C]: in ?"), which say nothing to a policy's author. */
static void copy_traceback(const char *obj, char *buf, size_t size)
{
    const char *t = obj ? strstr(obj, "\nstack traceback:") : NULL;
    size_t len = t ? strlen(t) : 0;
    static const char tail[] = "\n\t[C]: in ?";
    while (len >= sizeof tail - 1 &&
           memcmp(t + len - (sizeof tail - 1), tail, sizeof tail - 1) == 0)
        len -= sizeof tail - 1;
    snprintf(buf, size, "%.*s", (int)(len < size ? len : size - 1), t ? t : "");
}

/* Turns a failed protected call into an fy_error. The error object (a string, made by the
 * message handler, except for memory errors) is on top of the stack. */
static int report(fy_lua_sandbox *sb, int status, fy_error *err)
{
    lua_State *L = sb->L;
    const char *obj = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    char trace[FY_ERROR_MESSAGE_MAX];
    copy_traceback(obj, trace, sizeof trace);
    char ctx[160];
    describe_context(sb, ctx, sizeof ctx);
    switch (sb->stop) {
    case FY_LUA_STOP_INSTRUCTIONS:
        return fy_lua_sandbox_error_at(
            err, FY_ESCRIPT, sb->stop_at, "instruction budget of %llu exhausted %s%s",
            (unsigned long long)sb->limits.instructions_per_call, ctx, trace);
    case FY_LUA_STOP_TIME:
        return fy_lua_sandbox_error_at(err, FY_ESCRIPT, sb->stop_at,
                                       "time limit of %gs exceeded %s%s",
                                       sb->limits.seconds_per_call, ctx, trace);
    case FY_LUA_STOP_MEMORY:
    case FY_LUA_STOP_NONE:
        break;
    }
    if (status == LUA_ERRMEM || sb->stop == FY_LUA_STOP_MEMORY) {
        if (!sb->cap_hit)
            return fy_lua_sandbox_error_at(err, FY_ENOMEM, sb->stop_at, "out of memory %s", ctx);
        char cap[32];
        fy_size_format_exact(sb->limits.memory_bytes, cap, sizeof cap);
        return fy_lua_sandbox_error_at(err, FY_ESCRIPT, sb->stop_at,
                                       "memory budget of %s exhausted %s", cap, ctx);
    }
    if (status == LUA_ERRERR)
        return fy_lua_sandbox_error_at(err, FY_ESCRIPT, sb->error_at,
                                       "error while handling an error %s", ctx);
    if (!obj)
        return fy_lua_sandbox_error_at(err, FY_ESCRIPT, sb->error_at, "%s: unknown error", ctx);
    /* The message proper ends where the handler's traceback starts. */
    const char *end = strstr(obj, "\nstack traceback:");
    fy_lua_where w = sb->error_at;
    const char *rest = obj;
    if (split_position(sb, obj, &w, &rest) && end && rest > end)
        rest = obj; /* a position found inside the traceback is not the message's */
    int len = (int)(end ? end - rest : (ptrdiff_t)strlen(rest));
    return fy_lua_sandbox_error_at(err, FY_ESCRIPT, w, "%s: %.*s%s", ctx, len, rest, trace);
}

/* Runs tramp(frame) under lua_pcall with the message handler. On success the nresults
 * results are at stack indices 2..nresults+1; on failure err is set and the stack is empty. */
static int run_protected(fy_lua_sandbox *sb, lua_CFunction tramp, void *frame, const char *hook,
                         const char *label, int nresults, fy_error *err)
{
    lua_State *L = sb->L;
    if (sb->in_call || sb->reading)
        return fy_error_set(err, FY_ESTATE, "the policy sandbox is already running a call");
    lua_settop(L, 0);
    if (nresults > LUA_MINSTACK * 1000 || !lua_checkstack(L, nresults + 3))
        return fy_error_set(err, FY_EINVAL, "a call cannot take %d results", nresults);
    lua_pushcfunction(L, message_handler);
    lua_pushcfunction(L, tramp);
    lua_pushlightuserdata(L, frame);
    begin_call(sb, hook, label, nresults);
    int status = lua_pcall(L, 1, nresults, 1);
    sb->in_call = false;
    sb->in_handler = false;
    sb->calls++;
    sb->last_instructions = cost(sb);
    if (status == LUA_OK) return 0;
    int rc = report(sb, status, err);
    lua_settop(L, 0);
    /* What a failed call left behind (a grown stack, a half-built table) is garbage now:
     * collect it so that the next call starts under the cap. No finalizer can run here,
     * as the sandbox refuses __gc. */
    lua_gc(L, LUA_GCCOLLECT);
    return rc;
}

/* ---- creation ---- */

static int setup_tramp(lua_State *L)
{
    fy_lua_sandbox *sb = lua_touserdata(L, 1);
    lua_pushcfunction(L, fy_lua_sandbox_open_libs);
    lua_call(L, 0, 0);
    lua_pushliteral(L, "policy budget exhausted");
    sb->stop_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

int fy_lua_sandbox_create(const fy_lua_limits *limits, fy_lua_sandbox **out, fy_error *err)
{
    *out = NULL;
    fy_lua_limits lim = limits ? *limits : (fy_lua_limits){0};
    if (lim.instructions_per_call == 0) lim.instructions_per_call = FY_LUA_DEFAULT_INSTRUCTIONS;
    if (lim.memory_bytes == 0) lim.memory_bytes = FY_LUA_DEFAULT_MEMORY;
    if (lim.seconds_per_call == 0) lim.seconds_per_call = FY_LUA_DEFAULT_SECONDS;
    if (!(lim.seconds_per_call > 0) || !isfinite(lim.seconds_per_call))
        return fy_error_set(err, FY_EINVAL,
                            "the Lua time limit must be a positive number of "
                            "seconds, not %g",
                            lim.seconds_per_call);
    fy_lua_sandbox *sb = calloc(1, sizeof *sb);
    if (!sb) return fy_error_set(err, FY_ENOMEM, "out of memory creating the Lua sandbox");
    sb->limits = lim;
    sb->stop_ref = LUA_NOREF;
    char cap[32];
    fy_size_format_exact(lim.memory_bytes, cap, sizeof cap);
    lua_State *L = lua_newstate(sandbox_alloc, sb);
    if (!L) {
        int rc = sb->cap_hit ? fy_error_set(err, FY_ESCRIPT,
                                            "a memory budget of %s is too small for Lua", cap)
                             : fy_error_set(err, FY_ENOMEM, "out of memory creating Lua");
        free(sb);
        return rc;
    }
    sb->L = L;
    int every =
        lim.instructions_per_call < HOOK_EVERY ? (int)lim.instructions_per_call : HOOK_EVERY;
    lua_sethook(L, count_hook, LUA_MASKCOUNT, every);
    int rc = run_protected(sb, setup_tramp, sb, NULL, "opening the libraries", 0, err);
    if (rc < 0) {
        if (sb->cap_hit)
            rc = fy_error_set(err, FY_ESCRIPT,
                              "a memory budget of %s is too small for Lua's libraries", cap);
        fy_lua_sandbox_destroy(sb);
        return rc;
    }
    lua_gc(L, LUA_GCCOLLECT); /* start the scripts from a clean heap */
    *out = sb;
    return 0;
}

void fy_lua_sandbox_destroy(fy_lua_sandbox *sb)
{
    if (!sb) return;
    if (sb->L) lua_close(sb->L);
    assert(sb->used == 0);
    for (size_t i = 0; i < sb->nchunks; i++) {
        free(sb->chunks[i]->path);
        free(sb->chunks[i]->chunkname);
        free(sb->chunks[i]);
    }
    free(sb->chunks);
    free(sb);
}

fy_lua_limits fy_lua_sandbox_limits(const fy_lua_sandbox *sb)
{
    return sb->limits;
}

void fy_lua_sandbox_set_log(fy_lua_sandbox *sb, fy_lua_log_fn fn, void *user)
{
    sb->log = fn;
    sb->log_user = user;
}

fy_lua_stats fy_lua_sandbox_stats(const fy_lua_sandbox *sb)
{
    return (fy_lua_stats){.memory_used = sb->used,
                          .memory_peak = sb->peak,
                          .calls = sb->calls,
                          .last_instructions = sb->last_instructions};
}

const char *fy_lua_sandbox_hook(const fy_lua_sandbox *sb)
{
    return sb->in_call ? sb->hook : NULL;
}

void fy_lua_sandbox_log(lua_State *L, const char *message)
{
    fy_lua_sandbox *sb = fy_lua_sandbox_of(L);
    if (!sb->log) return;
    /* The innermost script frame: usually the Lua code that called print or ctx:log. */
    fy_lua_where w = locate(sb, L, 1);
    const char *file = w.chunk ? w.chunk->path : NULL;
    unsigned line = w.line;
    sb->log(sb->log_user, file, line, fy_lua_sandbox_hook(sb), message);
}

/* ---- loading ---- */

typedef struct load_frame {
    fy_lua_sandbox *sb;
    fy_lua_chunk *chunk;
    const char *text;
    size_t len;
    int load_status; /* lua_load's status: syntax and memory errors are returned, not raised */
} load_frame;

static int load_tramp(lua_State *L)
{
    load_frame *f = lua_touserdata(L, 1);
    /* Learn how Lua will name this chunk in messages by loading an empty one. */
    lua_Debug ar;
    int status = luaL_loadbufferx(L, "", 0, f->chunk->chunkname, "t");
    if (status != LUA_OK) {
        fy_lua_sandbox_stopping(L, status);
        return lua_error(L);
    }
    lua_getinfo(L, ">S", &ar);
    snprintf(f->chunk->short_src, sizeof f->chunk->short_src, "%s", ar.short_src);
    f->load_status = luaL_loadbufferx(L, f->text, f->len, f->chunk->chunkname, "t");
    if (f->load_status != LUA_OK) return 1; /* the message */
    lua_call(L, 0, 0);
    return 0;
}

static int add_chunk(fy_lua_sandbox *sb, const char *name, fy_lua_chunk **out, fy_error *err)
{
    if (sb->nchunks == sb->chunks_cap) {
        size_t cap = sb->chunks_cap ? sb->chunks_cap * 2 : 4;
        fy_lua_chunk **v = realloc(sb->chunks, cap * sizeof *v);
        if (!v) return fy_error_set(err, FY_ENOMEM, "out of memory loading %s", name);
        sb->chunks = v;
        sb->chunks_cap = cap;
    }
    size_t n = strlen(name);
    fy_lua_chunk *c = calloc(1, sizeof *c);
    char *path = strdup(name), *chunkname = malloc(n + 2);
    if (!c || !path || !chunkname) {
        free(c);
        free(path);
        free(chunkname);
        return fy_error_set(err, FY_ENOMEM, "out of memory loading %s", name);
    }
    chunkname[0] = '@';
    memcpy(chunkname + 1, name, n + 1);
    c->path = path;
    c->chunkname = chunkname;
    sb->chunks[sb->nchunks++] = c;
    *out = c;
    return 0;
}

int fy_lua_sandbox_load_string(fy_lua_sandbox *sb, const char *name, const char *text, size_t len,
                               fy_error *err)
{
    /* A UTF-8 byte-order mark is an editor's habit, not code. */
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
        text += 3;
        len -= 3;
    }
    if (len > 0 && text[0] == LUA_SIGNATURE[0])
        return fy_error_set_at(err, FY_ESCRIPT, name, 0, 0,
                               "precompiled chunks are not allowed: a policy is loaded from "
                               "Lua source text only");
    fy_lua_chunk *c = NULL;
    int rc = add_chunk(sb, name, &c, err);
    if (rc < 0) return rc;
    load_frame f = {.sb = sb, .chunk = c, .text = text, .len = len};
    rc = run_protected(sb, load_tramp, &f, NULL, "the main chunk", 1, err);
    if (rc < 0 || f.load_status == LUA_OK) {
        lua_settop(sb->L, 0);
        return rc;
    }
    /* Syntax or memory error from the parser: the message is the result. */
    const char *msg = lua_tostring(sb->L, -1);
    if (f.load_status == LUA_ERRMEM) {
        char cap[32];
        fy_size_format_exact(sb->limits.memory_bytes, cap, sizeof cap);
        rc = sb->cap_hit ? fy_error_set_at(err, FY_ESCRIPT, name, 0, 0,
                                           "memory budget of %s exhausted while parsing", cap)
                         : fy_error_set_at(err, FY_ENOMEM, name, 0, 0, "out of memory parsing");
    } else {
        fy_lua_where w;
        const char *rest;
        if (msg && split_position(sb, msg, &w, &rest))
            rc = fy_lua_sandbox_error_at(err, FY_EPARSE, w, "syntax error: %s", rest);
        else
            rc = fy_error_set_at(err, FY_EPARSE, name, 0, 0, "syntax error: %s", msg ? msg : "?");
    }
    lua_settop(sb->L, 0);
    if (sb->cap_hit) lua_gc(sb->L, LUA_GCCOLLECT);
    return rc;
}

int fy_lua_sandbox_load_file(fy_lua_sandbox *sb, const char *path, fy_error *err)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
        (uint64_t)st.st_size > (uint64_t)sb->limits.memory_bytes) {
        char cap[32], size[32];
        return fy_error_set_at(err, FY_ESCRIPT, path, 0, 0,
                               "the script (%s) is larger than the memory budget of %s",
                               fy_size_format_human((uint64_t)st.st_size, size, sizeof size),
                               fy_size_format_exact(sb->limits.memory_bytes, cap, sizeof cap));
    }
    char *text;
    size_t len;
    int rc = fy_file_read_all(path, &text, &len, err);
    if (rc < 0) return rc;
    rc = fy_lua_sandbox_load_string(sb, path, text, len, err);
    free(text);
    return rc;
}

/* ---- hooks ---- */

typedef struct hook_frame {
    fy_lua_sandbox *sb;
    const char *hook;
    fy_lua_push_fn push;
    void *args;
    int nresults;
    bool missing;
} hook_frame;

/* Leaves the global function named hook on the stack, or returns false. Raw access: the
 * global table's __index (which explains removed libraries) must not run here. */
static bool push_hook(lua_State *L, const char *hook)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    lua_pushstring(L, hook);
    lua_rawget(L, -2);
    lua_remove(L, -2);
    if (lua_type(L, -1) == LUA_TFUNCTION) return true;
    lua_pop(L, 1);
    return false;
}

static int has_tramp(lua_State *L)
{
    hook_frame *f = lua_touserdata(L, 1);
    f->missing = !push_hook(L, f->hook);
    return 0;
}

bool fy_lua_sandbox_has(fy_lua_sandbox *sb, const char *hook)
{
    hook_frame f = {.sb = sb, .hook = hook};
    if (run_protected(sb, has_tramp, &f, NULL, "looking up a hook", 0, NULL) < 0) return false;
    lua_settop(sb->L, 0);
    return !f.missing;
}

static int hook_tramp(lua_State *L)
{
    hook_frame *f = lua_touserdata(L, 1);
    fy_lua_sandbox *sb = f->sb;
    lua_settop(L, 0);
    if (!push_hook(L, f->hook)) {
        f->missing = true;
        return 0;
    }
    lua_Debug ar;
    lua_pushvalue(L, 1);
    lua_getinfo(L, ">S", &ar);
    const fy_lua_chunk *c = chunk_by_source(sb, ar.source);
    if (c) sb->hook_def = (fy_lua_where){c, ar.linedefined > 0 ? (unsigned)ar.linedefined : 0};
    int n = f->push ? f->push(L, f->args) : 0;
    if (n < 0 || lua_gettop(L) != 1 + n)
        return luaL_error(L,
                          "ferry: the arguments of hook '%s' are inconsistent (%d pushed, %d "
                          "counted)",
                          f->hook, lua_gettop(L) - 1, n);
    luaL_checkstack(L, f->nresults, "too many results");
    lua_call(L, n, f->nresults);
    return f->nresults;
}

int fy_lua_sandbox_call(fy_lua_sandbox *sb, const char *hook, fy_lua_push_fn push, void *args,
                        int nresults, fy_lua_read_fn read, void *res, fy_error *err)
{
    if (nresults < 0)
        return fy_error_set(err, FY_EINVAL, "a hook call wants a number of results >= 0");
    hook_frame f = {.sb = sb, .hook = hook, .push = push, .args = args, .nresults = nresults};
    int rc = run_protected(sb, hook_tramp, &f, hook, NULL, nresults, err);
    if (rc < 0) return rc;
    if (f.missing) {
        lua_settop(sb->L, 0);
        return fy_error_set(err, FY_ENOENT, "the policy defines no function '%s'", hook);
    }
    if (read) {
        sb->reading = true;
        sb->hook = hook;
        rc = read(sb, res, err);
        sb->reading = false;
    }
    lua_settop(sb->L, 0);
    return rc;
}

typedef struct protected_frame {
    fy_lua_protected_fn fn;
    void *ud;
} protected_frame;

static int protected_tramp(lua_State *L)
{
    protected_frame *f = lua_touserdata(L, 1);
    lua_settop(L, 0);
    f->fn(L, f->ud);
    return 0;
}

int fy_lua_sandbox_protected(fy_lua_sandbox *sb, const char *what, fy_lua_protected_fn fn, void *ud,
                             fy_error *err)
{
    protected_frame f = {fn, ud};
    int rc = run_protected(sb, protected_tramp, &f, NULL, what, 0, err);
    lua_settop(sb->L, 0);
    return rc;
}
