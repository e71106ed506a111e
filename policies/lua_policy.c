/* Lua policies: loads a script into a sandbox, finds the hooks it defines and attaches them
 * to a policy as fy_policy_hooks, translating between the planner's 0-based indices and the
 * script's names and 1-based op numbers. The invariants: a script's answer reaches the
 * planner only after it has been read and checked here (names of real tensors, the right
 * types), so the planner's own checks see a well-formed list; every planning run starts
 * from a fresh Lua state built from the kept source text, so no run sees another's globals;
 * and a failure names the script, the line and the hook. */
#include "policies/lua_policy.h"

#include <lauxlib.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const fy_lua_hook_names[LP_HOOK_COUNT] = {"prefetch", "victim", "after_op"};

/* ---- the log ---- */

static void log_line(void *user, const char *file, unsigned line, const char *hook,
                     const char *message)
{
    fy_lua_policy *lp = user;
    fy_buf b = {0};
    if (file) fy_buf_printf(&b, "%s:%u: ", file, line);
    if (hook) fy_buf_printf(&b, "[%s] ", hook);
    fy_buf_puts(&b, message);
    if (b.failed) {
        fy_buf_free(&b);
        return;
    }
    if (lp->view)
        lp->view->log(lp->view->state, b.data);
    else
        fy_buf_printf(&lp->pending, "%s\n", b.data);
    fy_buf_free(&b);
}

/* ---- loading ---- */

typedef struct hook_scan {
    fy_lua_policy *lp;
    int bad;              /* a hook name bound to something else than a function, or -1 */
    const char *bad_type; /* its type (a static string of Lua's) */
} hook_scan;

/* Notes which hooks the script defines as global functions, and where. */
static int scan_hooks(lua_State *L, void *ud)
{
    hook_scan *s = ud;
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    for (int h = 0; h < LP_HOOK_COUNT; h++) {
        lua_pushstring(L, fy_lua_hook_names[h]);
        int type = lua_rawget(L, -2);
        s->lp->defined[h] = type == LUA_TFUNCTION;
        s->lp->hook_line[h] = 0;
        if (type == LUA_TFUNCTION) {
            lua_Debug ar;
            lua_getinfo(L, ">S", &ar); /* pops the function */
            s->lp->hook_line[h] = ar.linedefined > 0 ? (unsigned)ar.linedefined : 0;
            continue;
        }
        if (type != LUA_TNIL && s->bad < 0) {
            s->bad = h;
            s->bad_type = lua_typename(L, type);
        }
        lua_pop(L, 1);
    }
    return 0;
}

/* Creates lp's sandbox and runs the script in it. */
static int start(fy_lua_policy *lp, fy_error *err)
{
    fy_lua_sandbox_destroy(lp->sb);
    lp->sb = NULL;
    int rc = fy_lua_sandbox_create(&lp->limits, &lp->sb, err);
    if (rc < 0) return rc;
    fy_lua_sandbox_set_log(lp->sb, log_line, lp);
    rc = fy_lua_sandbox_load_string(lp->sb, lp->path, lp->text, lp->len, err);
    hook_scan s = {lp, -1, NULL};
    if (rc == 0) rc = fy_lua_sandbox_protected(lp->sb, "looking up the hooks", scan_hooks, &s, err);
    if (rc == 0 && s.bad >= 0)
        rc = fy_error_set_at(err, FY_ESCRIPT, lp->path, 0, 0,
                             "'%s' is a %s; a hook must be a function", fy_lua_hook_names[s.bad],
                             s.bad_type);
    if (rc == 0 && !lp->defined[LP_PREFETCH] && !lp->defined[LP_VICTIM] &&
        !lp->defined[LP_AFTER_OP])
        rc = fy_error_set_at(err, FY_ESCRIPT, lp->path, 0, 0,
                             "the script defines none of the hooks prefetch, victim or after_op "
                             "(as global functions)");
    return rc;
}

/* ---- reading answers ---- */

typedef struct answer {
    fy_lua_policy *lp;
    lp_hook hook;
    fy_tensor_list *out;
} answer;

/* Reads result 1 as a list of tensor names and turns it into tensor indices. */
static int read_names(fy_lua_sandbox *sb, void *res, fy_error *err)
{
    answer *a = res;
    const fy_graph *g = a->lp->view->graph;
    char **names = NULL;
    size_t n = 0;
    int rc = fy_lua_result_strings(sb, 1, "tensor names", &names, &n, err);
    if (rc < 0) return rc;
    uint32_t *items = n ? malloc(n * sizeof *items) : NULL;
    if (n && !items) rc = fy_error_set(err, FY_ENOMEM, "out of memory reading a hook's answer");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        long t = fy_graph_find_tensor(g, names[i]);
        if (t < 0)
            rc = fy_error_set_at(err, FY_ESCRIPT, a->lp->path, a->lp->hook_line[a->hook], 0,
                                 "hook '%s' returned '%s' (item %zu), which is not a tensor of "
                                 "graph '%s'",
                                 fy_lua_hook_names[a->hook], names[i], i + 1, fy_graph_name(g));
        else
            items[i] = (uint32_t)t;
    }
    fy_lua_strings_free(names, n);
    if (rc < 0) {
        free(items);
        return rc;
    }
    a->out->items = items;
    a->out->count = n;
    return 0;
}

/* ---- the hooks ---- */

typedef struct call_args {
    fy_lua_policy *lp;
    lua_Integer op; /* 1-based */
    fy_tier tier;
    uint64_t need;
    const uint32_t *candidates;
    size_t count;
} call_args;

static void push_ctx(lua_State *L, const fy_lua_policy *lp)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, lp->ctx_ref);
}

static int push_op(lua_State *L, void *args)
{
    call_args *a = args;
    push_ctx(L, a->lp);
    lua_pushinteger(L, a->op);
    return 2;
}

static int push_victim(lua_State *L, void *args)
{
    call_args *a = args;
    const fy_graph *g = a->lp->view->graph;
    push_ctx(L, a->lp);
    lua_pushstring(L, fy_tier_name(a->tier));
    lua_pushinteger(L, a->need > (uint64_t)LUA_MAXINTEGER ? LUA_MAXINTEGER : (lua_Integer)a->need);
    fy_lua_sandbox_charge(L, a->count);
    lua_createtable(L, a->count > INT32_MAX ? 0 : (int)a->count, 0);
    for (size_t i = 0; i < a->count; i++) {
        lua_pushstring(L, fy_graph_tensor(g, a->candidates[i])->name);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 4;
}

static int hook_begin(void *ctx, const fy_policy_view *view, fy_error *err)
{
    fy_lua_policy *lp = ctx;
    lp->view = view;
    lp->in_after_op = false;
    int rc = lp->used ? start(lp, err) : 0;
    lp->used = true;
    if (lp->pending.len && !lp->pending.failed) {
        /* The main chunk's output, one line at a time as the planner's log wants it. */
        char *line = lp->pending.data, *nl;
        while ((nl = strchr(line, '\n'))) {
            *nl = '\0';
            view->log(view->state, line);
            line = nl + 1;
        }
    }
    fy_buf_free(&lp->pending);
    memset(&lp->pending, 0, sizeof lp->pending);
    if (rc == 0) rc = fy_lua_sandbox_protected(lp->sb, "setting up ctx", fy_lua_ctx_setup, lp, err);
    return rc;
}

static int hook_prefetch(void *ctx, const fy_policy_view *view, size_t op, fy_tensor_list *out,
                         fy_error *err)
{
    fy_lua_policy *lp = ctx;
    lp->view = view;
    call_args a = {.lp = lp, .op = (lua_Integer)op + 1};
    answer ans = {lp, LP_PREFETCH, out};
    return fy_lua_sandbox_call(lp->sb, "prefetch", push_op, &a, 1, read_names, &ans, err);
}

static int hook_victim(void *ctx, const fy_policy_view *view, fy_tier tier, uint64_t need,
                       const uint32_t *candidates, size_t count, fy_tensor_list *out, fy_error *err)
{
    fy_lua_policy *lp = ctx;
    lp->view = view;
    call_args a = {.lp = lp, .tier = tier, .need = need, .candidates = candidates, .count = count};
    answer ans = {lp, LP_VICTIM, out};
    return fy_lua_sandbox_call(lp->sb, "victim", push_victim, &a, 1, read_names, &ans, err);
}

static int hook_after_op(void *ctx, const fy_policy_view *view, size_t op, fy_error *err)
{
    fy_lua_policy *lp = ctx;
    lp->view = view;
    call_args a = {.lp = lp, .op = (lua_Integer)op + 1};
    lp->in_after_op = true;
    int rc = fy_lua_sandbox_call(lp->sb, "after_op", push_op, &a, 0, NULL, NULL, err);
    lp->in_after_op = false;
    return rc;
}

static void hook_end(void *ctx)
{
    fy_lua_policy *lp = ctx;
    lp->view = NULL;
    lp->in_after_op = false;
}

/* The planner refused an answer: place the error at the hook's definition. */
static int hook_blame(void *ctx, const char *hook, fy_error *err)
{
    fy_lua_policy *lp = ctx;
    if (!err) return FY_ESCRIPT;
    unsigned line = 0;
    for (int h = 0; h < LP_HOOK_COUNT; h++)
        if (strcmp(hook, fy_lua_hook_names[h]) == 0) line = lp->hook_line[h];
    snprintf(err->file, sizeof err->file, "%s", lp->path);
    err->line = line;
    err->column = 0;
    err->status = FY_ESCRIPT;
    return FY_ESCRIPT;
}

static void lua_policy_free(fy_lua_policy *lp)
{
    if (!lp) return;
    fy_lua_sandbox_destroy(lp->sb);
    fy_buf_free(&lp->pending);
    free(lp->path);
    free(lp->text);
    free(lp);
}

static void hook_destroy(void *ctx)
{
    lua_policy_free(ctx);
}

/* ---- attaching ---- */

static int merge_limits(const fy_policy_lua_limits *knobs, const fy_policy_lua_limits *over,
                        fy_lua_limits *out, fy_error *err)
{
    fy_policy_lua_limits l = *knobs;
    if (over && over->instructions) l.instructions = over->instructions;
    if (over && over->memory) l.memory = over->memory;
    if (over && over->seconds != 0) l.seconds = over->seconds;
    if (l.memory > SIZE_MAX)
        return fy_error_set(err, FY_EINVAL, "a Lua memory budget of %llu bytes is too large",
                            (unsigned long long)l.memory);
    if (l.seconds < 0)
        return fy_error_set(err, FY_EINVAL, "the Lua time limit must be more than 0 seconds");
    *out = (fy_lua_limits){.instructions_per_call = l.instructions,
                           .memory_bytes = (size_t)l.memory,
                           .seconds_per_call = l.seconds};
    return 0;
}

int fy_policy_attach_lua_string(fy_policy *policy, const char *name, const char *text, size_t len,
                                const fy_policy_lua_limits *limits, fy_error *err)
{
    if (!policy || !name || (!text && len))
        return fy_error_set(err, FY_EINVAL,
                            "fy_policy_attach_lua_string needs a policy and a "
                            "script");
    fy_lua_policy *lp = calloc(1, sizeof *lp);
    if (!lp) return fy_error_set(err, FY_ENOMEM, "out of memory");
    lp->ctx_ref = LUA_NOREF;
    int rc = merge_limits(&fy_policy_get_knobs(policy)->lua_limits, limits, &lp->limits, err);
    lp->path = strdup(name);
    lp->text = malloc(len + 1);
    if (rc == 0 && (!lp->path || !lp->text)) rc = fy_error_set(err, FY_ENOMEM, "out of memory");
    if (rc == 0) {
        memcpy(lp->text, text, len);
        lp->text[len] = '\0';
        lp->len = len;
        rc = start(lp, err);
    }
    if (rc < 0) {
        lua_policy_free(lp);
        return rc;
    }
    fy_policy_hooks hooks = {
        .ctx = lp,
        .begin = hook_begin,
        .prefetch = lp->defined[LP_PREFETCH] ? hook_prefetch : NULL,
        .victim = lp->defined[LP_VICTIM] ? hook_victim : NULL,
        .after_op = lp->defined[LP_AFTER_OP] ? hook_after_op : NULL,
        .end = hook_end,
        .blame = hook_blame,
        .destroy = hook_destroy,
    };
    fy_policy_set_hooks(policy, &hooks);
    return 0;
}

int fy_policy_attach_lua(fy_policy *policy, const fy_policy_lua_limits *limits, fy_error *err)
{
    if (!policy) return fy_error_set(err, FY_EINVAL, "fy_policy_attach_lua needs a policy");
    const char *path = fy_policy_get_knobs(policy)->lua;
    if (!path) return 0;
    char *text;
    size_t len;
    int rc = fy_file_read_all(path, &text, &len, err);
    if (rc < 0) return rc;
    rc = fy_policy_attach_lua_string(policy, path, text, len, limits, err);
    free(text);
    return rc;
}

int fy_policy_open(const char *path, const fy_policy_lua_limits *limits, fy_policy **out,
                   fy_error *err)
{
    int rc = fy_policy_load(path, out, err);
    if (rc == 0 && (rc = fy_policy_attach_lua(*out, limits, err)) < 0) {
        fy_policy_destroy(*out);
        *out = NULL;
    }
    return rc;
}
