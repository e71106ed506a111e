/* policies/lua_sandbox_int.h — the sandbox's state, shared by lua_sandbox*.c only (the rest
 * of policies/ uses lua_sandbox.h). The struct is here rather than in one .c file because the
 * result readers (lua_sandbox_results.c) read the call's state directly. */
#ifndef FERRY_POLICIES_LUA_SANDBOX_INT_H
#define FERRY_POLICIES_LUA_SANDBOX_INT_H

#include "policies/lua_sandbox.h"

/* Why the current call is being stopped. Once set, it stays set until the call ends, and
 * every later check raises again, so that no script can catch it. */
typedef enum fy_lua_stop {
    FY_LUA_STOP_NONE = 0,
    FY_LUA_STOP_INSTRUCTIONS,
    FY_LUA_STOP_TIME,
    FY_LUA_STOP_MEMORY
} fy_lua_stop;

typedef struct fy_lua_chunk {
    char *path;                 /* as given: err->file */
    char *chunkname;            /* "@path": what lua_Debug.source holds */
    char short_src[LUA_IDSIZE]; /* how Lua prefixes messages: "path:line:" (maybe "...tail") */
} fy_lua_chunk;

typedef struct fy_lua_where {
    const fy_lua_chunk *chunk; /* NULL: unknown */
    unsigned line;
} fy_lua_where;

struct fy_lua_sandbox {
    lua_State *L;
    fy_lua_limits limits;
    /* memory, kept by the allocator */
    size_t used, peak;
    bool cap_hit;    /* the allocator refused a block for the cap during this call */
    bool in_handler; /* the message handler runs: allow a little more than the cap */
    /* the call in progress */
    bool in_call, reading;
    const char *hook;  /* hook name, NULL outside hooks */
    const char *label; /* for messages when hook is NULL: "the main chunk" */
    int nresults;
    uint64_t steps, charged, alloc_bytes;
    double deadline; /* CLOCK_MONOTONIC seconds */
    fy_lua_stop stop;
    fy_lua_where stop_at;  /* where the script was when a budget ran out */
    fy_lua_where error_at; /* innermost script frame when an error was raised */
    fy_lua_where hook_def; /* where the called hook is defined (for result errors) */
    int stop_ref;          /* registry reference of the preallocated stop message */
    fy_lua_chunk **chunks; /* each allocated alone, so that pointers to it stay valid */
    size_t nchunks, chunks_cap;
    fy_lua_log_fn log;
    void *log_user;
    uint64_t calls, last_instructions;
};

/* Sets err like fy_error_set_at, at w (or without a position when w.chunk is NULL). */
int fy_lua_sandbox_error_at(fy_error *err, int status, fy_lua_where w, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Opens the safe libraries into L (a lua_CFunction, run protected by fy_lua_sandbox_create;
 * in lua_sandbox_lib.c). */
int fy_lua_sandbox_open_libs(lua_State *L);
/* Called by the sandbox's pcall and xpcall after a failed protected call; true when the
 * failure must go on unwinding because a budget ran out (a memory error counts as the memory
 * budget running out), so that no script can catch a budget error. */
bool fy_lua_sandbox_stopping(lua_State *L, int status);

#endif
