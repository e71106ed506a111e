/* policies/lua_policy.h — a Lua policy's state, shared by lua_policy.c (loading, the hooks
 * the planner calls) and lua_policy_ctx.c (the `ctx` object scripts see); private to
 * policies/. The planner's view is borrowed only between begin and end of a run: outside a
 * run, view is NULL and ctx refuses every question. */
#ifndef FERRY_POLICIES_LUA_POLICY_H
#define FERRY_POLICIES_LUA_POLICY_H

#include "ferry/policy.h"

#include "core/buf.h"
#include "policies/lua_sandbox.h"

/* The hooks a script may define, in the order of hook_line. */
typedef enum lp_hook { LP_PREFETCH = 0, LP_VICTIM, LP_AFTER_OP, LP_HOOK_COUNT } lp_hook;

typedef struct fy_lua_policy {
    fy_lua_sandbox *sb;
    fy_lua_limits limits;
    char *path; /* the script's name in messages (its file) */
    char *text; /* its source, kept so that every run starts from a fresh state */
    size_t len;
    bool used; /* a run has used sb: the next run loads the script into a new one */
    bool defined[LP_HOOK_COUNT];
    unsigned hook_line[LP_HOOK_COUNT]; /* where each hook is defined (for refused answers) */
    /* The run in progress. */
    const fy_policy_view *view; /* NULL outside begin..end */
    bool in_after_op;
    int ctx_ref;    /* registry reference of the ctx table in sb's state */
    fy_buf pending; /* print/log output from the main chunk, handed to the planner at begin */
} fy_lua_policy;

/* Builds the ctx object (methods, caches, ctx.op_count) in lp's current sandbox and stores
 * it at lp->ctx_ref. A fy_lua_protected_fn: runs inside the sandbox's protected call. */
int fy_lua_ctx_setup(lua_State *L, void *lp);

/* Names of the hooks, indexed by lp_hook. */
extern const char *const fy_lua_hook_names[LP_HOOK_COUNT];

#endif
