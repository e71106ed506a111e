/* Lua policies through the planner: every ctx function, each hook's effect on the plan (the
 * three shipped policies included), every refused answer and hostile script with its
 * file:line and hook, the budgets from YAML and from the caller, and runs that leave no
 * state behind. Every plan made here is checked with the checker. */
#include "test_util.h"

#include "ferry/check.h"
#include "ferry/planner.h"

#define MiB (1024ull * 1024)

#define assert_contains(text, sub)                                                                 \
    do {                                                                                           \
        if (!strstr((text), (sub))) fail_msg("expected '%s' in:\n%s", (sub), (text));              \
    } while (0)

static fy_graph *mlp(unsigned layers, bool train)
{
    fy_mlp_params p = {
        .layers = layers, .hidden = 256, .batch = 16, .dtype = FY_DTYPE_F32, .train = train};
    fy_graph *g;
    fy_error err = {0};
    if (fy_graph_generate_mlp(&p, &g, &err) < 0) fail_msg("mlp: %s", err.message);
    return g;
}

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && strcmp(s + n - m, tail) == 0;
}

static fy_graph *load_graph(const char *rel)
{
    fy_graph *g;
    fy_error err = {0};
    if (fy_graph_load(fy_test_data(rel), &g, &err) < 0) fail_msg("%s: %s", rel, err.message);
    return g;
}

static fy_machine machine(uint64_t gpu)
{
    fy_machine m;
    fy_machine_default(&m);
    m.capacity[FY_TIER_GPU] = gpu;
    return m;
}

static const char *data(const char *rel)
{
    static char buf[8][512];
    static int next;
    char *b = buf[next++ % 8];
    snprintf(b, 512, "%s", fy_test_data(rel));
    return b;
}

static fy_policy *open_policy(const char *path)
{
    fy_policy *p;
    fy_error err = {0};
    if (fy_policy_open(path, NULL, &p, &err) < 0) fail_msg("%s: %s", path, err.message);
    return p;
}

/* A policy of default knobs with the script text attached. */
static int attach_text(const char *text, fy_policy **out, fy_error *err)
{
    fy_policy_knobs k;
    fy_policy_knobs_default(&k);
    int rc = fy_policy_create("inline", &k, out, err);
    if (rc == 0 &&
        (rc = fy_policy_attach_lua_string(*out, "inline.lua", text, strlen(text), NULL, err)) < 0) {
        fy_policy_destroy(*out);
        *out = NULL;
    }
    return rc;
}

static void assert_checked(const fy_plan *plan)
{
    fy_error err = {0};
    fy_check_report *r;
    int errors = fy_check_plan(plan, NULL, &r, &err);
    if (errors < 0) fail_msg("checker failed: %s", err.message);
    fy_check_report_destroy(r);
    assert_int_equal(errors, 0);
}

static fy_plan *make(const fy_graph *g, uint64_t gpu, const fy_policy *p, fy_plan_stats *stats)
{
    fy_machine m = machine(gpu);
    fy_plan *plan;
    fy_error err = {0};
    if (fy_plan_make(g, &m, p, &plan, stats, &err) < 0) {
        char line[2048];
        fy_error_format(&err, line, sizeof line);
        fail_msg("plan: %s", line);
    }
    assert_checked(plan);
    return plan;
}

/* Plans with a script that must fail; returns the formatted error. */
static const char *plan_error(const fy_graph *g, uint64_t gpu, const char *text)
{
    static char line[2048];
    fy_policy *p;
    fy_error err = {0};
    if (attach_text(text, &p, &err) < 0) fail_msg("attach: %s", err.message);
    fy_machine m = machine(gpu);
    fy_plan *plan = NULL;
    int rc = fy_plan_make(g, &m, p, &plan, NULL, &err);
    fy_policy_destroy(p);
    if (rc == 0) {
        fy_plan_destroy(plan);
        fail_msg("the plan was made: %s", text);
    }
    assert_int_equal(rc, FY_ESCRIPT);
    fy_error_format(&err, line, sizeof line);
    return line;
}

static size_t count_loads(const fy_plan *plan, const fy_graph *g, const char *prefix)
{
    size_t n = 0;
    for (size_t i = 0; i < fy_plan_event_count(plan); i++) {
        const fy_event *e = fy_plan_event(plan, i);
        if (e->kind == FY_EVENT_LOAD && e->to == FY_TIER_GPU &&
            strncmp(fy_graph_tensor(g, (size_t)e->tensor)->name, prefix, strlen(prefix)) == 0)
            n++;
    }
    return n;
}

/* ---- ctx ---- */

static void test_lua_policy_ctx_functions_answer(void **state)
{
    (void)state;
    fy_graph *g = mlp(2, false);
    fy_policy *p = open_policy(data("lua/ctx_probe.lua"));
    fy_plan_stats s;
    fy_plan *plan = make(g, 64 * MiB, p, &s);
    assert_non_null(s.log);
    assert_contains(s.log, "[prefetch] op_count 2");
    assert_contains(s.log, "op 1: fc0 matmul reads=x,w0 writes=a0 flops=2097152 device=gpu");
    assert_contains(s.log, "tensor w1 size=262144 kind=weight home=host dtype=f32");
    assert_contains(s.log, "tensor a0 home=nil missing=nil");
    assert_contains(s.log, "next_use w1 after 0: 2, a0 after 2: nil");
    assert_contains(s.log, "resident w0 gpu=true host=true nvme=false");
    assert_contains(s.log, "of 67108864, host capacity");
    assert_contains(s.log, "same table: true");
    assert_contains(s.log, "ctx_probe.lua:23: [prefetch] print works too");
    assert_contains(s.log, "[after_op] after offload: a0 host=true");
    assert_contains(s.log, "[after_op] after evict: a0 gpu=false");
    /* The evicted activation was loaded back for fc1. */
    assert_int_equal(count_loads(plan, g, "a0"), 1);
    fy_plan_stats_free(&s);
    fy_plan_destroy(plan);
    fy_policy_destroy(p);
    fy_graph_destroy(g);
}

static void test_lua_policy_ctx_refuses_bad_calls(void **state)
{
    (void)state;
    fy_graph *g = mlp(2, false);
    static const struct {
        const char *text, *expect;
    } cases[] = {
        {"function prefetch(ctx, i)\n  return ctx:resident('nope', 'gpu')\nend\n",
         "inline.lua:2: error: in hook 'prefetch': ctx:resident: unknown tensor 'nope'"},
        {"function prefetch(ctx, i)\n  ctx:used('disk')\nend\n",
         "inline.lua:2: error: in hook 'prefetch': ctx:used: unknown tier 'disk' (gpu, host or "
         "nvme)"},
        {"function prefetch(ctx, i)\n  ctx:op(0)\nend\n",
         "inline.lua:2: error: in hook 'prefetch': ctx:op: op 0 is out of range (1 to 2)"},
        {"function prefetch(ctx, i)\n  ctx:next_use('x', 3)\nend\n",
         "ctx:next_use: op 3 is out of range (0 to 2)"},
        {"function prefetch(ctx, i)\n  ctx.tensor('x')\nend\n",
         "inline.lua:2: error: in hook 'prefetch': ctx:tensor: call it as a method"},
        {"function prefetch(ctx, i)\n  ctx:capacity()\nend\n",
         "bad argument #1 to 'capacity' (string expected, got no value)"},
        {"function prefetch(ctx, i)\n  ctx:offload('w0', 'host')\nend\n",
         "inline.lua:2: error: in hook 'prefetch': ctx:offload may be called only from after_op, "
         "not from hook 'prefetch'"},
        {"function victim(ctx, t, n, c)\n  ctx:evict(c[1], t)\nend\nfunction prefetch(ctx, i)\n"
         "  if i == 2 then ctx.op_count = 7 end\nend\n",
         "inline.lua:5: error: in hook 'prefetch': ctx is read-only (cannot set 'op_count')"},
        {"function after_op(ctx, i)\n  if i == 1 then ctx:evict('a0', 'gpu') end\nend\n",
         "inline.lua:2: error: in hook 'after_op': ctx:evict('a0', 'gpu'): evict 'a0' from gpu "
         "would lose its only up-to-date copy; offload it first"},
        {"function after_op(ctx, i)\n  ctx:offload('w0', 'gpu')\nend\n",
         "the destination must be host or nvme"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_contains(plan_error(g, 64 * MiB, cases[i].text), cases[i].expect);
    fy_graph_destroy(g);
}

/* ---- hooks and their answers ---- */

static void test_lua_policy_prefetch_hook_reproduces_the_yaml_default(void **state)
{
    (void)state;
    /* Where prefetching needs no eviction (the knob may evict for it; this hook asks only
     * for what fits in free memory), the plans are the same event for event. */
    fy_graph *g = mlp(16, true);
    fy_policy *lua = open_policy(data("lua/prefetch1.yaml"));
    fy_plan_stats a, b;
    fy_plan *pa = make(g, 64 * MiB, NULL, &a);
    fy_plan *pb = make(g, 64 * MiB, lua, &b);
    assert_int_equal(a.events, b.events);
    assert_int_equal(a.bytes_total, b.bytes_total);
    for (size_t i = 0; i < a.events; i++) {
        const fy_event *x = fy_plan_event(pa, i), *y = fy_plan_event(pb, i);
        assert_int_equal(x->kind, y->kind);
        assert_int_equal(x->tensor, y->tensor);
        assert_int_equal(x->op, y->op);
    }
    fy_plan_stats_free(&a);
    fy_plan_stats_free(&b);
    fy_plan_destroy(pa);
    fy_plan_destroy(pb);
    fy_policy_destroy(lua);
    fy_graph_destroy(g);
}

static void test_lua_policy_refused_answers_name_the_hook(void **state)
{
    (void)state;
    fy_graph *g = mlp(2, false);
    assert_contains(plan_error(g, 64 * MiB, "\nfunction prefetch(ctx, i)\n  return {'w9'}\nend\n"),
                    "inline.lua:2: error: hook 'prefetch' returned 'w9' (item 1), which is not a "
                    "tensor of graph 'mlp-2'");
    assert_contains(plan_error(g, 64 * MiB, "function prefetch(ctx, i)\n  return {'a0'}\nend\n"),
                    "inline.lua:1: error: hook 'prefetch' asked for 'a0' ahead of op 'fc0', but "
                    "no op has written it yet");
    assert_contains(plan_error(g, 64 * MiB, "function prefetch(ctx, i)\n  return 7\nend\n"),
                    "inline.lua:1: error: hook 'prefetch' returned a number");
    fy_graph_destroy(g);
    g = mlp(4, true);
    /* Victims: one that is not a candidate, none at all. Training at 1500KiB needs some. */
    assert_contains(
        plan_error(g, 1500 * 1024, "function victim(ctx, tier, need, c)\n  return {'loss'}\nend\n"),
        "inline.lua:1: error: hook 'victim' returned 'loss', which is not a candidate to "
        "leave gpu");
    assert_contains(plan_error(g, 1500 * 1024, "function victim(ctx, tier, need, c)\nend\n"),
                    "inline.lua:1: error: hook 'victim' freed 0B of the");
    fy_graph_destroy(g);
}

static void test_lua_policy_hostile_scripts_fail_clearly(void **state)
{
    (void)state;
    fy_graph *g = mlp(4, true);
    static const struct {
        const char *file, *expect;
        bool at_plan; /* fails while planning rather than when attached */
    } cases[] = {
        {"os_execute.lua", "os_execute.lua:1: error: in the main chunk: 'os' is not available", 0},
        {"require.lua", "require.lua:1: error: in the main chunk: 'require' is not available", 0},
        {"io_open.lua", "io_open.lua:2: error: in hook 'prefetch': 'io' is not available", 1},
        {"memory_bomb.lua", "memory_budget", 1},
        {"infinite_loop.lua", "instruction budget of 10000000 exhausted in hook 'victim'", 1},
        {"hook_error.lua", "hook_error.lua:2: error: in hook 'after_op': no plan for you", 1},
        {"garbage.lua",
         "garbage.lua:1: error: hook 'prefetch' returned a table containing a "
         "number at index 1; expected tensor names",
         1},
        {"bytecode.lua", "precompiled chunks are not allowed", 0},
        {"no_hooks.lua", "defines none of the hooks prefetch, victim or after_op", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "lua/policy/%s", cases[i].file);
        fy_policy *p = NULL;
        fy_error err = {0};
        int rc = fy_policy_open(data(rel), NULL, &p, &err);
        if (rc == 0) {
            if (!cases[i].at_plan) fail_msg("%s was attached", cases[i].file);
            fy_machine m = machine(1500 * 1024);
            fy_plan *plan = NULL;
            rc = fy_plan_make(g, &m, p, &plan, NULL, &err);
            assert_null(plan);
        }
        assert_int_equal(rc, FY_ESCRIPT);
        char line[2048];
        fy_error_format(&err, line, sizeof line);
        if (strcmp(cases[i].file, "memory_bomb.lua") == 0)
            assert_contains(line, "memory_bomb.lua:4: error: memory budget of 64MiB exhausted "
                                  "in hook 'prefetch'");
        else
            assert_contains(line, cases[i].expect);
        fy_policy_destroy(p);
    }
    assert_int_equal(access("/tmp/ferry-pwned", F_OK), -1);
    fy_graph_destroy(g);
}

/* ---- budgets ---- */

static void test_lua_policy_limits_come_from_yaml_and_the_caller(void **state)
{
    (void)state;
    fy_graph *g = mlp(4, true);
    fy_policy *p;
    fy_error err = {0};
    assert_int_equal(fy_policy_load(data("lua/limits.yaml"), &p, &err), 0);
    const fy_policy_lua_limits *l = &fy_policy_get_knobs(p)->lua_limits;
    assert_int_equal(l->instructions, 50000);
    assert_int_equal(l->memory, 2 * MiB);
    assert_true(l->seconds == 5.0);
    assert_int_equal(fy_policy_attach_lua(p, NULL, &err), 0);
    fy_machine m = machine(1500 * 1024);
    fy_plan *plan = NULL;
    assert_int_equal(fy_plan_make(g, &m, p, &plan, NULL, &err), FY_ESCRIPT);
    assert_contains(err.message, "instruction budget of 50000 exhausted in hook 'victim'");
    /* The caller's limits win over the file's. */
    fy_policy_lua_limits over = {.instructions = 70000};
    assert_int_equal(fy_policy_attach_lua(p, &over, &err), 0);
    assert_int_equal(fy_plan_make(g, &m, p, &plan, NULL, &err), FY_ESCRIPT);
    assert_contains(err.message, "instruction budget of 70000 exhausted");
    fy_policy_destroy(p);
    assert_int_equal(fy_policy_load(data("lua/limits-no-lua.yaml"), &p, &err), FY_EPARSE);
    assert_contains(err.message, "has no 'lua:'");
    assert_int_equal(err.line, 3);
    fy_graph_destroy(g);
}

/* ---- runs leave nothing behind ---- */

static void test_lua_policy_runs_start_afresh_and_leave_no_state(void **state)
{
    (void)state;
    fy_graph *g = mlp(4, false);
    fy_policy *p = open_policy(data("lua/runs.lua"));
    fy_plan_stats s1, s2, s3;
    fy_plan *a = make(g, 64 * MiB, p, &s1);
    fy_plan *b = make(g, 64 * MiB, p, &s2);
    assert_true(ends_with(s1.log, "runs.lua:5: [prefetch] calls 4\n"));
    assert_string_equal(s1.log, s2.log);
    /* After failures and another Lua policy, the default policy plans as it did before. */
    fy_plan *c = make(g, 64 * MiB, NULL, &s3);
    plan_error(g, 64 * MiB, "function prefetch(ctx, i)\n  error('x')\nend\n");
    fy_plan_stats s4;
    fy_plan *d = make(g, 64 * MiB, NULL, &s4);
    assert_int_equal(s3.events, s4.events);
    assert_int_equal(s3.bytes_total, s4.bytes_total);
    assert_null(s4.log);
    fy_plan_stats_free(&s1);
    fy_plan_stats_free(&s2);
    fy_plan_stats_free(&s3);
    fy_plan_stats_free(&s4);
    fy_plan_destroy(a);
    fy_plan_destroy(b);
    fy_plan_destroy(c);
    fy_plan_destroy(d);
    fy_policy_destroy(p);
    fy_graph_destroy(g);
}

/* ---- the shipped policies ---- */

static const char *shipped(const char *name)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/../../policies/%s", fy_test_data("."), name);
    return path;
}

/* Loads to the gpu issued before the first compute event. */
static size_t loads_before_first_compute(const fy_plan *plan)
{
    size_t loads = 0, computes = 0;
    for (size_t i = 0; i < fy_plan_event_count(plan) && computes < 1; i++) {
        const fy_event *e = fy_plan_event(plan, i);
        computes += e->kind == FY_EVENT_COMPUTE;
        loads += e->kind == FY_EVENT_LOAD && e->to == FY_TIER_GPU;
    }
    return loads;
}

static void test_lua_policy_lookahead_prefetches_as_far_as_memory_allows(void **state)
{
    (void)state;
    fy_graph *g = mlp(12, false); /* 12 weights of 256KiB */
    fy_policy *p = open_policy(shipped("lookahead.lua"));
    fy_plan *def = make(g, 64 * MiB, NULL, NULL);
    fy_plan *look = make(g, 64 * MiB, p, NULL);
    /* Default: op 0's inputs and op 1's weight. Lookahead: the input and every weight. */
    assert_int_equal(loads_before_first_compute(def), 3);
    assert_int_equal(loads_before_first_compute(look), 13);
    fy_plan_destroy(look);
    /* With room for about four weights, it stops at the budget instead of failing. */
    look = make(g, 1600 * 1024, p, NULL);
    size_t n = loads_before_first_compute(look);
    assert_true(n > 3 && n < 13);
    fy_plan_destroy(def);
    fy_plan_destroy(look);
    fy_policy_destroy(p);
    fy_graph_destroy(g);
}

static void test_lua_policy_cost_aware_evicts_clean_weights_first(void **state)
{
    (void)state;
    fy_graph *g = load_graph("lua/cost-graph.yaml");
    fy_policy *p = open_policy(shipped("cost-aware.lua"));
    fy_plan *def = make(g, 12 * MiB, NULL, NULL);
    fy_plan *cost = make(g, 12 * MiB, p, NULL);
    /* Belady offloads the activation 'a' (needed last, but dirty: 3MiB out and back); the
     * cost-aware choice drops the clean weight 'w0' first (4MiB back only, no offload). */
    const fy_event *first_def = NULL, *first_cost = NULL;
    for (size_t i = 0; !first_def && i < fy_plan_event_count(def); i++) {
        const fy_event *e = fy_plan_event(def, i);
        if (e->kind == FY_EVENT_OFFLOAD || e->kind == FY_EVENT_EVICT) first_def = e;
    }
    for (size_t i = 0; !first_cost && i < fy_plan_event_count(cost); i++) {
        const fy_event *e = fy_plan_event(cost, i);
        if (e->kind == FY_EVENT_OFFLOAD || e->kind == FY_EVENT_EVICT) first_cost = e;
    }
    assert_int_equal(first_def->kind, FY_EVENT_OFFLOAD);
    assert_string_equal(first_def->ref, "a");
    assert_int_equal(first_cost->kind, FY_EVENT_EVICT);
    assert_string_equal(first_cost->ref, "w0");
    fy_plan_destroy(def);
    fy_plan_destroy(cost);
    fy_policy_destroy(p);
    fy_graph_destroy(g);
}

static void test_lua_policy_pin_layers_reloads_first_layer_less(void **state)
{
    (void)state;
    fy_transformer_params tp = {.layers = 4,
                                .hidden = 256,
                                .ffn = 688,
                                .heads = 4,
                                .seq = 64,
                                .batch = 1,
                                .vocab = 1000,
                                .dtype = FY_DTYPE_BF16,
                                .train = true};
    fy_graph *g;
    fy_error err = {0};
    assert_int_equal(fy_graph_generate_transformer(&tp, &g, &err), 0);
    fy_policy *p = open_policy(shipped("pin-layers.lua"));
    fy_plan *def = make(g, 6 * MiB, NULL, NULL);
    fy_plan *pin = make(g, 6 * MiB, p, NULL);
    static const char *const first[] = {"layers.0.wq",     "layers.0.wk",     "layers.0.wv",
                                        "layers.0.wo",     "layers.0.w_gate", "layers.0.w_up",
                                        "layers.0.w_down", "embed.w"};
    size_t def_loads = 0, pin_loads = 0;
    for (size_t i = 0; i < sizeof first / sizeof first[0]; i++) {
        /* exact names: count loads of the weight itself, not its .grad/.m/.v */
        for (size_t k = 0; k < fy_plan_event_count(pin); k++) {
            const fy_event *e = fy_plan_event(pin, k);
            pin_loads +=
                e->kind == FY_EVENT_LOAD && e->to == FY_TIER_GPU && strcmp(e->ref, first[i]) == 0;
        }
        for (size_t k = 0; k < fy_plan_event_count(def); k++) {
            const fy_event *e = fy_plan_event(def, k);
            def_loads +=
                e->kind == FY_EVENT_LOAD && e->to == FY_TIER_GPU && strcmp(e->ref, first[i]) == 0;
        }
    }
    /* Fewer reloads of the pinned weights. Not exactly one load each: to open a contiguous
     * hole the planner's placement may move any copy out, without asking the victim hook. */
    if (!(pin_loads < def_loads)) fail_msg("pinned %zu loads, default %zu", pin_loads, def_loads);
    fy_plan_destroy(def);
    fy_plan_destroy(pin);
    fy_policy_destroy(p);
    fy_graph_destroy(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lua_policy_ctx_functions_answer),
        cmocka_unit_test(test_lua_policy_ctx_refuses_bad_calls),
        cmocka_unit_test(test_lua_policy_prefetch_hook_reproduces_the_yaml_default),
        cmocka_unit_test(test_lua_policy_refused_answers_name_the_hook),
        cmocka_unit_test(test_lua_policy_hostile_scripts_fail_clearly),
        cmocka_unit_test(test_lua_policy_limits_come_from_yaml_and_the_caller),
        cmocka_unit_test(test_lua_policy_runs_start_afresh_and_leave_no_state),
        cmocka_unit_test(test_lua_policy_lookahead_prefetches_as_far_as_memory_allows),
        cmocka_unit_test(test_lua_policy_cost_aware_evicts_clean_weights_first),
        cmocka_unit_test(test_lua_policy_pin_layers_reloads_first_layer_less),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
