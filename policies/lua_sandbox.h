/* policies/lua_sandbox.h — the Lua 5.4 sandbox that policy hooks run in (private to policies/).
 *
 * Example (a hook `prefetch(ctx, i)` returning a list of tensor names):
 *     typedef struct names { char **v; size_t n; } names;
 *     static int push(lua_State *L, void *args) {     // inside the protected call
 *         lua_pushnil(L);                              // ctx (built by policies/ later)
 *         lua_pushinteger(L, *(int *)args);            // i, 1-based
 *         return 2;                                    // how many arguments were pushed
 *     }
 *     static int read(fy_lua_sandbox *sb, void *res, fy_error *err) {  // after it
 *         names *out = res;
 *         return fy_lua_result_strings(sb, 1, "tensor names", &out->v, &out->n, err);
 *     }
 *     fy_error err = {0};
 *     fy_lua_sandbox *sb;
 *     if (fy_lua_sandbox_create(NULL, &sb, &err) < 0) return report(&err);
 *     if (fy_lua_sandbox_load_file(sb, "policy.lua", &err) < 0) ...
 *     int i = 3;
 *     names got = {0};
 *     if (fy_lua_sandbox_has(sb, "prefetch") &&
 *         fy_lua_sandbox_call(sb, "prefetch", push, &i, 1, read, &got, &err) < 0) ...
 *     fy_lua_strings_free(got.v, got.n);
 *     fy_lua_sandbox_destroy(sb);
 *
 * A sandbox is one lua_State with only the safe libraries, an allocator capped at
 * memory_bytes, and a count hook that stops any one call after instructions_per_call
 * instructions (or seconds_per_call of wall-clock time, a backstop for C functions that the
 * count hook cannot see into). Scripts are loaded from source text only. Every entry into
 * Lua (loading, calling a hook, has(), setup) runs under lua_pcall with a message handler
 * that adds a traceback, so a script's error always comes back as an fy_error and never
 * unwinds through C code that holds memory.
 *
 * The longjmp rule, and how this API keeps it: a Lua error unwinds the C stack with longjmp,
 * so C code must never hold malloc'ed memory (or other resources) across a Lua API call
 * that can raise. Here:
 *   - push callbacks (fy_lua_push_fn) and setup functions (fy_lua_protected_fn) run inside
 *     the protected call and may raise freely, but must not malloc: anything they need to
 *     allocate must be Lua-owned (a table, a string, lua_newuserdatauv) so the collector
 *     frees it whatever happens;
 *   - C functions that scripts call (ctx's methods) run inside it too: same rule;
 *   - read callbacks (fy_lua_read_fn) run after the protected call has returned, outside any
 *     Lua error handling, and may malloc freely; they may read the results only with the
 *     fy_lua_result_* functions below, which never raise a Lua error (they use raw access,
 *     no metamethods, and never ask Lua to allocate).
 * Memory the sandbox itself mallocs (chunk names, paths) is owned by the sandbox before any
 * protected call starts, so an error never orphans it.
 *
 * Errors come back in fy_error with file and line set to the script's position when one is
 * known, and a message without the position (fy_error_format adds it), e.g. file
 * "policy.lua", line 12, message "in hook 'victim': attempt to index a nil value (local 'x')"
 * followed by "\nstack traceback:\n..." (truncated to the fy_error buffer). Budgets:
 * "instruction budget of 10000000 exhausted in hook 'prefetch'" and "memory budget of 64MiB
 * exhausted in hook 'victim'" (status FY_ESCRIPT; syntax errors are FY_EPARSE).
 *
 * A sandbox is not thread-safe; use one per thread. Two sandboxes share nothing.
 */
#ifndef FERRY_POLICIES_LUA_SANDBOX_H
#define FERRY_POLICIES_LUA_SANDBOX_H

#include "ferry/core.h"

#include <lua.h>

/* Limits per sandbox. A field left 0 takes its default. */
typedef struct fy_lua_limits {
    uint64_t instructions_per_call; /* Lua VM instructions per call, plus charges: default 10M */
    size_t memory_bytes;            /* cap on everything the state allocates: default 64 MiB */
    double seconds_per_call;        /* wall-clock backstop per call: default 10 s */
} fy_lua_limits;

#define FY_LUA_DEFAULT_INSTRUCTIONS 10000000ull
#define FY_LUA_DEFAULT_MEMORY ((size_t)64 << 20)
#define FY_LUA_DEFAULT_SECONDS 10.0
/* math.random's fixed seed: a policy that draws random numbers gives the same plan every run. */
#define FY_LUA_RANDOM_SEED 20240501

typedef struct fy_lua_sandbox fy_lua_sandbox;

/* Receives print(...) and ctx:log(msg). file/line: the script position of the call (NULL/0
 * when unknown); hook: the hook being run, NULL while the main chunk runs. The strings are
 * valid only during the callback. The callback must not call back into the sandbox. */
typedef void (*fy_lua_log_fn)(void *user, const char *file, unsigned line, const char *hook,
                              const char *message);

/* Creates a sandbox (limits may be NULL for the defaults). Fails with FY_EINVAL on bad limits
 * and FY_ESCRIPT when memory_bytes cannot even hold the standard libraries. */
int fy_lua_sandbox_create(const fy_lua_limits *limits, fy_lua_sandbox **out, fy_error *err);
void fy_lua_sandbox_destroy(fy_lua_sandbox *sb); /* accepts NULL */
/* The limits in force, defaults filled in. */
fy_lua_limits fy_lua_sandbox_limits(const fy_lua_sandbox *sb);
/* Sets where print and ctx:log go; fn NULL discards (the default). */
void fy_lua_sandbox_set_log(fy_lua_sandbox *sb, fy_lua_log_fn fn, void *user);

/* Loads a script from source text and runs its main chunk under the budgets; the chunk
 * defines the hooks as global functions. Refuses precompiled chunks ("precompiled chunks
 * are not allowed"). A sandbox may load several scripts; later ones see earlier globals. */
int fy_lua_sandbox_load_file(fy_lua_sandbox *sb, const char *path, fy_error *err);
/* name appears in messages as the file (err->file, tracebacks). */
int fy_lua_sandbox_load_string(fy_lua_sandbox *sb, const char *name, const char *text, size_t len,
                               fy_error *err);

/* True when the scripts define a global function named hook. */
bool fy_lua_sandbox_has(fy_lua_sandbox *sb, const char *hook);

/* Pushes a hook's arguments; returns how many it pushed (use luaL_checkstack for many).
 * Runs inside the protected call: it may raise, must not malloc (see the top of this file). */
typedef int (*fy_lua_push_fn)(lua_State *L, void *args);
/* Reads the hook's results with fy_lua_result_* (result 1 is the first return value).
 * Runs outside the protected call: it may malloc, and must not use the Lua API directly. */
typedef int (*fy_lua_read_fn)(fy_lua_sandbox *sb, void *res, fy_error *err);

/* Calls the global function hook with the arguments push pushes (push may be NULL: no
 * arguments), under fresh budgets, adjusting its results to nresults (missing ones are nil,
 * extra ones dropped), then runs read (may be NULL) on them and pops them. Returns 0, the
 * read callback's negative status, FY_ENOENT when the hook is not defined, FY_ESTATE when
 * called from inside a call, or FY_ESCRIPT/FY_ENOMEM for the script's errors. The sandbox
 * stays usable after any error. hook must stay valid during the call. */
int fy_lua_sandbox_call(fy_lua_sandbox *sb, const char *hook, fy_lua_push_fn push, void *args,
                        int nresults, fy_lua_read_fn read, void *res, fy_error *err);

/* Runs fn(L, ud) in protected mode under the budgets (for setting up metatables, e.g. ctx's;
 * what is the label in messages, e.g. "setting up ctx"). Same rules as a push callback. */
typedef int (*fy_lua_protected_fn)(lua_State *L, void *ud);
int fy_lua_sandbox_protected(fy_lua_sandbox *sb, const char *what, fy_lua_protected_fn fn, void *ud,
                             fy_error *err);

/* Result readers, for read callbacks only (FY_ESTATE elsewhere). i is 1-based. what says
 * what the policy should have returned, for messages ("tensor names", "bytes"). Errors name
 * the hook and the script line where the hook is defined, e.g. "hook 'prefetch' returned a
 * table containing a number at index 3; expected tensor names (strings)". None raises. */
bool fy_lua_result_is_nil(fy_lua_sandbox *sb, int i);
/* A list of strings: nil gives an empty list (*names NULL, *count 0); anything but a table
 * whose keys are exactly 1..n and whose values are strings without NUL bytes is refused.
 * The list and its strings are malloc'ed: free with fy_lua_strings_free. */
int fy_lua_result_strings(fy_lua_sandbox *sb, int i, const char *what, char ***names, size_t *count,
                          fy_error *err);
/* One string (malloc'ed; free it); numbers are not converted. */
int fy_lua_result_string(fy_lua_sandbox *sb, int i, const char *what, char **out, fy_error *err);
/* An integer: a Lua integer, or a float with an integral value in range. */
int fy_lua_result_integer(fy_lua_sandbox *sb, int i, const char *what, int64_t *out, fy_error *err);
/* A finite number. */
int fy_lua_result_number(fy_lua_sandbox *sb, int i, const char *what, double *out, fy_error *err);
void fy_lua_strings_free(char **names, size_t count);

/* Helpers for push callbacks and for C functions that scripts call (ctx's methods). */
/* Pushes a new list {names[0], ..., names[count-1]}. May raise (memory). */
void fy_lua_push_strings(lua_State *L, const char *const *names, size_t count);
/* The sandbox that owns L. */
fy_lua_sandbox *fy_lua_sandbox_of(lua_State *L);
/* The hook being run, or NULL (main chunk, setup, or no call). */
const char *fy_lua_sandbox_hook(const fy_lua_sandbox *sb);
/* Sends a message to the log callback with the script position of the calling Lua code. */
void fy_lua_sandbox_log(lua_State *L, const char *message);
/* Charges work done in C on the script's behalf against the instruction budget, raising
 * the budget error when it runs out. Use it in C functions whose cost grows with their
 * input, so the budget bounds time and not only VM instructions. */
void fy_lua_sandbox_charge(lua_State *L, uint64_t instructions);
/* Instructions left in the current call (0 when none is running). */
uint64_t fy_lua_sandbox_remaining(lua_State *L);

/* Counters for tests and benchmarks. */
typedef struct fy_lua_stats {
    size_t memory_used;         /* bytes the state holds now */
    size_t memory_peak;         /* most bytes it held at once */
    uint64_t calls;             /* protected calls run (loads, hooks, setup) */
    uint64_t last_instructions; /* instructions charged to the last call, to within 1000 */
} fy_lua_stats;
fy_lua_stats fy_lua_sandbox_stats(const fy_lua_sandbox *sb);

#endif
