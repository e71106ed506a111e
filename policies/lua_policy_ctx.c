/* The `ctx` object that Lua hooks receive: the graph (ctx.op_count, ctx:op(i), ctx:tensor
 * (name)), the planner's state (ctx:next_use, ctx:resident, ctx:used, ctx:capacity), a log,
 * and the two requests after_op may make (ctx:offload, ctx:evict). Ops are 1-based as Lua
 * is. The invariant: every method runs inside the sandbox's protected call and allocates
 * nothing but Lua values, so any error it raises (a bad argument, a refused request) unwinds
 * without leaking; a refused request leaves the planner's state as it was before the call. */
#include "policies/lua_policy.h"

#include <lauxlib.h>

#include <string.h>

/* Upvalues shared by every method. */
#define UP_POLICY lua_upvalueindex(1)  /* light userdata: the fy_lua_policy */
#define UP_CTX lua_upvalueindex(2)     /* the ctx table, to check method-call syntax */
#define UP_OPS lua_upvalueindex(3)     /* cache: op index -> op table */
#define UP_TENSORS lua_upvalueindex(4) /* cache: tensor name -> tensor table */

/* What a method costs against the instruction budget beyond the VM instructions of the
 * call itself: roughly the C work it does, in instructions. */
#define COST_QUERY 4
#define COST_TABLE 16
#define COST_REQUEST 64

static const fy_policy_view *view_of(lua_State *L, const char *fn)
{
    fy_lua_policy *lp = lua_touserdata(L, UP_POLICY);
    if (!lua_rawequal(L, 1, UP_CTX))
        luaL_error(L, "ctx:%s: call it as a method, ctx:%s(...), with a colon", fn, fn);
    if (!lp->view) luaL_error(L, "ctx:%s: ctx can only be used while a plan is being made", fn);
    return lp->view;
}

static uint32_t check_tensor(lua_State *L, int arg, const fy_policy_view *v, const char *fn)
{
    size_t len;
    const char *name = luaL_checklstring(L, arg, &len);
    long t = strlen(name) == len ? fy_graph_find_tensor(v->graph, name) : -1;
    if (t < 0) luaL_error(L, "ctx:%s: unknown tensor '%s'", fn, name);
    return (uint32_t)t;
}

static fy_tier check_tier(lua_State *L, int arg, const char *fn)
{
    const char *text = luaL_checkstring(L, arg);
    fy_tier tier;
    if (fy_tier_parse(text, &tier) < 0)
        luaL_error(L, "ctx:%s: unknown tier '%s' (gpu, host or nvme)", fn, text);
    return tier;
}

static void push_names(lua_State *L, const fy_graph *g, const uint32_t *ids, uint32_t n)
{
    lua_createtable(L, (int)n, 0);
    for (uint32_t i = 0; i < n; i++) {
        lua_pushstring(L, fy_graph_tensor(g, ids[i])->name);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

/* ctx:op(i) -> {name, kind, reads, writes, flops, device}; cached per op for the run. */
static int ctx_op(lua_State *L)
{
    const fy_policy_view *v = view_of(L, "op");
    lua_Integer n = (lua_Integer)fy_graph_op_count(v->graph);
    lua_Integer i = luaL_checkinteger(L, 2);
    if (i < 1 || i > n)
        return luaL_error(L, "ctx:op: op %I is out of range (1 to %I)", (LUAI_UACINT)i,
                          (LUAI_UACINT)n);
    fy_lua_sandbox_charge(L, COST_QUERY);
    if (lua_rawgeti(L, UP_OPS, i) == LUA_TTABLE) return 1;
    lua_pop(L, 1);
    const fy_op *op = fy_graph_op(v->graph, (size_t)(i - 1));
    fy_lua_sandbox_charge(L, COST_TABLE + op->read_count + op->write_count);
    lua_createtable(L, 0, 6);
    lua_pushstring(L, op->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, op->kind);
    lua_setfield(L, -2, "kind");
    push_names(L, v->graph, op->reads, op->read_count);
    lua_setfield(L, -2, "reads");
    push_names(L, v->graph, op->writes, op->write_count);
    lua_setfield(L, -2, "writes");
    lua_pushnumber(L, op->flops);
    lua_setfield(L, -2, "flops");
    lua_pushstring(L, fy_tier_name(op->device));
    lua_setfield(L, -2, "device");
    lua_pushvalue(L, -1);
    lua_rawseti(L, UP_OPS, i);
    return 1;
}

/* ctx:tensor(name) -> {name, size, kind, home, dtype} or nil; cached per name for the run. */
static int ctx_tensor(lua_State *L)
{
    const fy_policy_view *v = view_of(L, "tensor");
    size_t len;
    const char *name = luaL_checklstring(L, 2, &len);
    fy_lua_sandbox_charge(L, COST_QUERY);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, UP_TENSORS) == LUA_TTABLE) return 1;
    lua_pop(L, 1);
    long t = strlen(name) == len ? fy_graph_find_tensor(v->graph, name) : -1;
    if (t < 0) {
        lua_pushnil(L);
        return 1;
    }
    const fy_tensor *d = fy_graph_tensor(v->graph, (size_t)t);
    fy_lua_sandbox_charge(L, COST_TABLE);
    lua_createtable(L, 0, 5);
    lua_pushstring(L, d->name);
    lua_setfield(L, -2, "name");
    lua_pushinteger(L, (lua_Integer)d->size);
    lua_setfield(L, -2, "size");
    lua_pushstring(L, fy_tensor_kind_name(d->kind));
    lua_setfield(L, -2, "kind");
    if (d->home != FY_TIER_NONE) {
        lua_pushstring(L, fy_tier_name(d->home));
        lua_setfield(L, -2, "home");
    }
    if (d->dtype != FY_DTYPE_NONE) {
        lua_pushstring(L, fy_dtype_name(d->dtype));
        lua_setfield(L, -2, "dtype");
    }
    lua_pushvalue(L, 2);
    lua_pushvalue(L, -2);
    lua_rawset(L, UP_TENSORS);
    return 1;
}

/* ctx:next_use(name, i) -> the first op after op i that reads name (not one already
 * computed), or nil. i may be 0: from the start. */
static int ctx_next_use(lua_State *L)
{
    const fy_policy_view *v = view_of(L, "next_use");
    uint32_t t = check_tensor(L, 2, v, "next_use");
    lua_Integer n = (lua_Integer)fy_graph_op_count(v->graph);
    lua_Integer i = luaL_checkinteger(L, 3);
    if (i < 0 || i > n)
        return luaL_error(L, "ctx:next_use: op %I is out of range (0 to %I)", (LUAI_UACINT)i,
                          (LUAI_UACINT)n);
    fy_lua_sandbox_charge(L, COST_QUERY);
    long next = v->next_use(v->state, t, (long)i - 1);
    if (next < 0)
        lua_pushnil(L);
    else
        lua_pushinteger(L, (lua_Integer)next + 1);
    return 1;
}

static int ctx_resident(lua_State *L)
{
    const fy_policy_view *v = view_of(L, "resident");
    uint32_t t = check_tensor(L, 2, v, "resident");
    fy_tier tier = check_tier(L, 3, "resident");
    lua_pushboolean(L, v->resident(v->state, t, tier));
    return 1;
}

static int ctx_used(lua_State *L)
{
    const fy_policy_view *v = view_of(L, "used");
    lua_pushinteger(L, (lua_Integer)v->used(v->state, check_tier(L, 2, "used")));
    return 1;
}

static int ctx_capacity(lua_State *L)
{
    const fy_policy_view *v = view_of(L, "capacity");
    lua_pushinteger(L, (lua_Integer)v->capacity(v->state, check_tier(L, 2, "capacity")));
    return 1;
}

static int ctx_log(lua_State *L)
{
    view_of(L, "log");
    size_t len;
    const char *msg = luaL_checklstring(L, 2, &len);
    fy_lua_sandbox_charge(L, COST_QUERY + len / 64);
    fy_lua_sandbox_log(L, msg);
    return 0;
}

typedef int (*request_fn)(void *state, uint32_t tensor, fy_tier tier, fy_error *err);

/* ctx:offload and ctx:evict: after_op only; a refusal is an error at the script's line. */
static int request(lua_State *L, const char *fn, bool offload)
{
    const fy_policy_view *v = view_of(L, fn);
    fy_lua_policy *lp = lua_touserdata(L, UP_POLICY);
    uint32_t t = check_tensor(L, 2, v, fn);
    fy_tier tier = check_tier(L, 3, fn);
    if (!lp->in_after_op) {
        const char *hook = fy_lua_sandbox_hook(fy_lua_sandbox_of(L));
        return luaL_error(L, "ctx:%s may be called only from after_op, not from %s%s%s", fn,
                          hook ? "hook '" : "the main chunk", hook ? hook : "", hook ? "'" : "");
    }
    fy_lua_sandbox_charge(L, COST_REQUEST);
    fy_error e = {0};
    int rc = (offload ? v->offload : v->evict)(v->state, t, tier, &e);
    if (rc < 0)
        return luaL_error(L, "ctx:%s('%s', '%s'): %s", fn, lua_tostring(L, 2), fy_tier_name(tier),
                          e.message);
    return 0;
}

static int ctx_offload(lua_State *L)
{
    return request(L, "offload", true);
}

static int ctx_evict(lua_State *L)
{
    return request(L, "evict", false);
}

static int ctx_newindex(lua_State *L)
{
    /* No luaL_tolstring: a key's __tostring would run script code here. */
    if (lua_type(L, 2) == LUA_TSTRING)
        return luaL_error(L, "ctx is read-only (cannot set '%s')", lua_tostring(L, 2));
    return luaL_error(L, "ctx is read-only");
}

static const luaL_Reg methods[] = {
    {"op", ctx_op},
    {"tensor", ctx_tensor},
    {"next_use", ctx_next_use},
    {"resident", ctx_resident},
    {"used", ctx_used},
    {"capacity", ctx_capacity},
    {"log", ctx_log},
    {"offload", ctx_offload},
    {"evict", ctx_evict},
    {NULL, NULL},
};

int fy_lua_ctx_setup(lua_State *L, void *ud)
{
    fy_lua_policy *lp = ud;
    /* ctx is an empty table whose metatable serves op_count and the methods, refuses new
     * fields and hides itself (getmetatable(ctx) is false). */
    lua_newtable(L);           /* 1: ctx */
    lua_createtable(L, 0, 3);  /* 2: its metatable */
    lua_createtable(L, 0, 10); /* 3: what ctx.x finds */
    lua_pushinteger(L, (lua_Integer)fy_graph_op_count(lp->view->graph));
    lua_setfield(L, 3, "op_count");
    for (const luaL_Reg *m = methods; m->name; m++) {
        lua_pushlightuserdata(L, lp);
        lua_pushvalue(L, 1);
        lua_newtable(L);
        lua_newtable(L);
        /* Each method has its own caches; only op and tensor use theirs. */
        lua_pushcclosure(L, m->func, 4);
        lua_setfield(L, 3, m->name);
    }
    lua_setfield(L, 2, "__index");
    lua_pushcfunction(L, ctx_newindex);
    lua_setfield(L, 2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, 2, "__metatable");
    lua_setmetatable(L, 1);
    lp->ctx_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}
