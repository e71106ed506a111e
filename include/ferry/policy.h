/* ferry/policy.h — policies (`ferry: policy/1`): the knobs that steer the planner, how they
 * are loaded, and the interface through which a policy with hooks (Lua) sees the planner.
 *
 * Example:
 *     fy_error err = {0};
 *     fy_policy *policy;
 *     if (fy_policy_load("policies/stream.yaml", &policy, &err) < 0) { report(&err); return; }
 *     const fy_policy_knobs *k = fy_policy_get_knobs(policy);
 *     printf("%s: prefetch %u, evict %s\n", fy_policy_name(policy), k->prefetch,
 *            fy_evict_rule_name(k->evict));
 *     ... fy_plan_make(graph, machine, policy, &plan, &stats, &err) (ferry/planner.h) ...
 *     fy_policy_destroy(policy);
 *
 * A policy is the knobs (plain data, below) plus optional hooks. YAML policies have no hooks;
 * the Lua runtime attaches them with fy_policy_set_hooks. The planner guarantees correctness
 * whatever a policy says: knobs and hooks choose among correct plans, never break one.
 *
 * Hooks, and the view of the planner they are given (a struct of function pointers plus a
 * context, like ferry's backends):
 *   - begin(ctx, view): once per planning run, before op 0. The view stays valid until end.
 *   - prefetch(ctx, view, i): tensors (indices) to bring to the gpu while op i-1 computes, in
 *     addition to what the `prefetch` knob brings; the planner loads them before compute i-1
 *     (before compute i when i is 0). A tensor already there is ignored.
 *   - victim(ctx, view, tier, need, candidates): which of the candidates (copies the planner
 *     may evict from tier, in the order the `evict` knob would take them) to evict to free
 *     `need` bytes. The planner evicts them in the returned order until need is met (the
 *     rest are ignored), offloading the only
 *     up-to-date copy of a tensor still needed first (data is never lost).
 *   - after_op(ctx, view, i): after compute i; may call view->offload and view->evict.
 *   - end(ctx): after the run (also after a failed one).
 *   - destroy(ctx): when the policy is destroyed.
 * Every slot may be NULL. A hook returns 0 or a negative FY_E* status with err filled (for a
 * script: FY_ESCRIPT and its file:line). When the planner refuses a hook's answer (an unknown
 * tensor index, a tensor that is not a candidate, too few bytes freed, a prefetch that cannot
 * fit) it writes the message ("hook 'victim' freed 12MiB of the 48MiB needed") and calls
 * blame(ctx, hook, err), which may set err's file and line to the hook's definition and
 * returns the status to report (FY_ESCRIPT for scripts). Ops and tensors are 0-based indices
 * into the graph here; the Lua runtime converts to names and 1-based indices.
 */
#ifndef FERRY_POLICY_H
#define FERRY_POLICY_H

#include "ferry/core.h"
#include "ferry/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- knobs ------------------------------------------------------------------------ */

/* Which resident copy leaves a tier when the planner needs room there. */
typedef enum fy_evict_rule {
    FY_EVICT_BELADY = 0,     /* the copy whose next use is farthest (the plan knows the future) */
    FY_EVICT_LRU,            /* the least recently used copy */
    FY_EVICT_FIFO,           /* the copy that arrived first */
    FY_EVICT_AFTER_LAST_USE, /* no caching between uses: a gpu copy leaves right after an op
                                that uses it unless the next use is within the prefetch window
                                (or the next op); under pressure, as belady */
} fy_evict_rule;
#define FY_EVICT_RULE_COUNT 4
const char *fy_evict_rule_name(fy_evict_rule rule); /* "belady", "lru", ... */

typedef enum fy_load_mode {
    FY_LOAD_LAZY = 0, /* each tensor just in time, plus the prefetch window */
    FY_LOAD_EAGER,    /* every weight up front, resident until its last use; a budget too
                         small for that is an FY_EINFEASIBLE error naming the bytes missing */
} fy_load_mode;

/* Budgets of the Lua sandbox, for each hook call and for the script's main chunk: VM
 * instructions (plus charges for work done in C), bytes the script's Lua state may hold, and
 * a wall-clock backstop. 0 keeps the default: 10M instructions, 64 MiB, 10 s. */
typedef struct fy_policy_lua_limits {
    uint64_t instructions;
    uint64_t memory;
    double seconds;
} fy_policy_lua_limits;

typedef struct fy_policy_knobs {
    /* Loads for op i+N are issued before compute i (they overlap compute i). 0: just in time. */
    unsigned prefetch;
    fy_evict_rule evict;
    fy_load_mode load;
    /* Globs (fnmatch) of tensor names that stay on the gpu once loaded. */
    const char *const *keep;
    size_t keep_count;
    /* Training: an activation whose next reader is `idle` or more ops away (ops in between)
     * leaves the gpu after the op that writes or reads it: offloaded to host (then to nvme
     * when offload is FY_TIER_NVME) and loaded back before that reader. FY_TIER_NONE: off. */
    fy_tier activations_offload;
    unsigned activations_idle;
    /* nvme -> gpu loads pass through this many pinned host bounce buffers, each sized to the
     * largest tensor read from nvme; the host copy is dropped right after its h2d copy. 1 is
     * Tensorizer's plaid mode. 0: no staging, host copies stay as a cache while host has room. */
    unsigned staging_buffers;
    /* A Lua script adding hooks (resolved against the policy file's folder), or NULL. */
    const char *lua;
    /* The Lua sandbox's budgets per hook call (YAML `limits:`); 0 fields take the defaults. */
    fy_policy_lua_limits lua_limits;
} fy_policy_knobs;

/* The defaults: prefetch 1, belady, lazy, no keep, no activation offload, no staging. */
void fy_policy_knobs_default(fy_policy_knobs *k);

/* ---- policies --------------------------------------------------------------------- */

typedef struct fy_policy fy_policy;

/* Loads a `ferry: policy/1` file. Unknown keys and bad values fail with FILE:LINE:COLUMN.
 * A path ending in ".lua" gives a policy of default knobs whose `lua` is that file. */
int fy_policy_load(const char *path, fy_policy **out, fy_error *err);
int fy_policy_load_string(const char *name, const char *text, size_t len, fy_policy **out,
                          fy_error *err);
/* A policy from knobs built in C (all strings are copied). name may be NULL ("custom"). */
int fy_policy_create(const char *name, const fy_policy_knobs *knobs, fy_policy **out,
                     fy_error *err);
void fy_policy_destroy(fy_policy *policy); /* calls the hooks' destroy; accepts NULL */

const char *fy_policy_name(const fy_policy *policy);
/* The file the policy was loaded from, or NULL. */
const char *fy_policy_path(const fy_policy *policy);
/* The knobs; strings stay valid until fy_policy_destroy. knobs->lua is already resolved
 * against the policy file's folder. */
const fy_policy_knobs *fy_policy_get_knobs(const fy_policy *policy);
/* True when name matches one of the keep globs. */
bool fy_policy_keeps(const fy_policy *policy, const char *name);

/* Finds a policy by what the user typed: text containing '/' or ending in ".yaml" or ".lua"
 * is a path, used as is; a bare NAME is looked up as NAME.yaml, then NAME.lua, in each of
 * dirs in order. Returns a malloc'ed path, or FY_ENOENT naming the folders searched. */
int fy_policy_find(const char *text, const char *const *dirs, size_t dir_count, char **path,
                   fy_error *err);

/* ---- the view of the planner, and hooks ------------------------------------------ */

typedef struct fy_policy_view fy_policy_view;
struct fy_policy_view {
    void *state;           /* the planner's; pass it back to every function below */
    const fy_graph *graph; /* op_count, op(i) and tensor(name) come from the graph */
    /* The first op after `op` that reads tensor, or -1 when none does. op may be -1. */
    long (*next_use)(void *state, uint32_t tensor, long op);
    /* Whether tensor has an up-to-date copy on tier (home copies count). */
    bool (*resident)(void *state, uint32_t tensor, fy_tier tier);
    /* Bytes of the tier's arena in use now, and the budget the planner works to. */
    uint64_t (*used)(void *state, fy_tier tier);
    uint64_t (*capacity)(void *state, fy_tier tier);
    /* A note for the planner's log (fy_plan_stats' log); message is copied. */
    void (*log)(void *state, const char *message);
    /* From after_op only (FY_ESTATE elsewhere): copy tensor's gpu copy to host, or its host
     * copy to nvme (tier is the destination); drop its copy on tier. An evict that would lose
     * the only up-to-date copy of a tensor still needed, or drop a copy op i+1 reads while
     * op i+1 is not yet computed, is refused with FY_EINVAL and a message. */
    int (*offload)(void *state, uint32_t tensor, fy_tier tier, fy_error *err);
    int (*evict)(void *state, uint32_t tensor, fy_tier tier, fy_error *err);
};

/* A list of tensor indices a hook returns; the hook mallocs items, the planner frees it. */
typedef struct fy_tensor_list {
    uint32_t *items;
    size_t count;
} fy_tensor_list;

typedef struct fy_policy_hooks {
    void *ctx;
    int (*begin)(void *ctx, const fy_policy_view *view, fy_error *err);
    int (*prefetch)(void *ctx, const fy_policy_view *view, size_t op, fy_tensor_list *out,
                    fy_error *err);
    int (*victim)(void *ctx, const fy_policy_view *view, fy_tier tier, uint64_t need,
                  const uint32_t *candidates, size_t count, fy_tensor_list *out, fy_error *err);
    int (*after_op)(void *ctx, const fy_policy_view *view, size_t op, fy_error *err);
    void (*end)(void *ctx);
    int (*blame)(void *ctx, const char *hook, fy_error *err);
    void (*destroy)(void *ctx);
} fy_policy_hooks;

/* ---- Lua policies (policies/lua_policy*.c; the ctx API is in docs/writing-policies.md) -- */

/* Attaches the hooks of the policy's Lua script (knobs->lua) to policy: loads it into a
 * sandbox, runs its main chunk and hooks up the global functions prefetch, victim and
 * after_op that it defines. limits overrides the knobs' lua_limits field by field (NULL, or
 * a 0 field: keep). Returns 0 and does nothing when the policy names no script. Errors
 * (with the script's file:line): FY_EIO/FY_ENOENT reading it, FY_EPARSE for a syntax error,
 * FY_ESCRIPT for an error or a spent budget in the main chunk, a precompiled chunk, a
 * script that defines none of the hooks or a hook that is not a function; FY_EINVAL for
 * bad limits. Each planning run (fy_plan_make, and each of its passes) starts the script
 * afresh from its source text, so no state carries over between runs. */
int fy_policy_attach_lua(fy_policy *policy, const fy_policy_lua_limits *limits, fy_error *err);
/* The same with the script given as text; name stands for its file in messages. The
 * policy's knobs->lua is not consulted (it may be NULL). */
int fy_policy_attach_lua_string(fy_policy *policy, const char *name, const char *text, size_t len,
                                const fy_policy_lua_limits *limits, fy_error *err);
/* fy_policy_load, then fy_policy_attach_lua: what `ferry plan --policy FILE` does. */
int fy_policy_open(const char *path, const fy_policy_lua_limits *limits, fy_policy **out,
                   fy_error *err);

/* Attaches hooks (copied; the policy owns ctx from now on and calls destroy(ctx) when it is
 * destroyed or when other hooks replace these). */
void fy_policy_set_hooks(fy_policy *policy, const fy_policy_hooks *hooks);
/* The hooks, or NULL when none are attached. */
const fy_policy_hooks *fy_policy_get_hooks(const fy_policy *policy);

#ifdef __cplusplus
}
#endif
#endif
