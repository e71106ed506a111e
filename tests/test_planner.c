/* The planner: every knob's effect on the plan, every plan accepted by the checker, the
 * infeasibility errors, minimal `after` sets, arena/peak ratios, hooks through the view,
 * a property test over random graphs, policies and capacities, and Belady's optimality
 * against brute force on small instances with equal sizes. */
#include "test_util.h"

#include "ferry/planner.h"

#include "ferry/check.h"

#define KiB 1024ull
#define MiB (1024ull * 1024)

/* ---- helpers ---------------------------------------------------------------------- */

static fy_graph *mlp(unsigned layers, uint64_t hidden, uint64_t batch, bool train,
                     const char *weights)
{
    fy_mlp_params p = {.layers = layers,
                       .hidden = hidden,
                       .batch = batch,
                       .dtype = FY_DTYPE_F32,
                       .train = train,
                       .weights_file = weights};
    fy_graph *g;
    fy_error err = {0};
    if (fy_graph_generate_mlp(&p, &g, &err) < 0) fail_msg("mlp: %s", err.message);
    return g;
}

static fy_graph *transformer(unsigned layers, bool train)
{
    fy_transformer_params p = {.layers = layers,
                               .hidden = 256,
                               .ffn = 688,
                               .heads = 4,
                               .seq = 64,
                               .batch = 1,
                               .vocab = 1000,
                               .dtype = FY_DTYPE_BF16,
                               .train = train,
                               .weights_file = "w.bin"};
    fy_graph *g;
    fy_error err = {0};
    if (fy_graph_generate_transformer(&p, &g, &err) < 0) fail_msg("transformer: %s", err.message);
    return g;
}

static fy_policy *policy(const char *text)
{
    fy_error err = {0};
    fy_policy *p;
    if (fy_policy_load_string("test-policy", text, strlen(text), &p, &err) < 0)
        fail_msg("policy: %s", err.message);
    return p;
}

static void machine(fy_machine *m, uint64_t gpu, uint64_t host)
{
    fy_machine_default(m);
    m->capacity[FY_TIER_GPU] = gpu;
    m->capacity[FY_TIER_HOST] = host;
}

/* Fails the test, listing the violations, unless the checker accepts plan. */
static void assert_checked(const fy_plan *plan, const char *what)
{
    fy_error err = {0};
    fy_check_report *r;
    int errors = fy_check_plan(plan, NULL, &r, &err);
    if (errors < 0) fail_msg("%s: checker failed: %s", what, err.message);
    if (errors > 0) {
        for (size_t i = 0; i < fy_check_report_count(r) && i < 8; i++) {
            const fy_violation *v = fy_check_report_get(r, i);
            if (!v->warning)
                print_error("  event %zu: %s[%s]: %s\n", v->event, v->warning ? "warning" : "error",
                            fy_check_class_name(v->cls), v->message);
        }
        fy_plan_save(plan, "/tmp/ferry-rejected-plan.yaml", "g.yaml", &err);
        fy_check_report_destroy(r);
        fail_msg("%s: the checker found %d errors (plan in /tmp/ferry-rejected-plan.yaml)", what,
                 errors);
    }
    fy_check_report_destroy(r);
}

/* Plans and checks; returns the plan (caller destroys). Fails on any error. */
static fy_plan *plan_ok(const fy_graph *g, uint64_t gpu, uint64_t host, const char *ptext,
                        fy_plan_stats *st)
{
    fy_machine m;
    machine(&m, gpu, host);
    fy_policy *p = ptext ? policy(ptext) : NULL;
    fy_plan *plan;
    fy_error err = {0};
    fy_plan_stats local;
    if (fy_plan_make(g, &m, p, &plan, st ? st : &local, &err) < 0)
        fail_msg("plan (%s): %s", ptext ? ptext : "default", err.message);
    if (!st) fy_plan_stats_free(&local);
    fy_policy_destroy(p);
    assert_checked(plan, ptext ? ptext : "default");
    return plan;
}

static long find(const fy_plan *plan, fy_event_kind kind, const char *name, fy_tier from,
                 fy_tier to, size_t start)
{
    for (size_t i = start; i < fy_plan_event_count(plan); i++) {
        const fy_event *e = fy_plan_event(plan, i);
        if (e->kind == kind && !strcmp(e->ref, name) && (from == FY_TIER_NONE || e->from == from) &&
            (to == FY_TIER_NONE || e->to == to))
            return (long)i;
    }
    return -1;
}

static size_t count(const fy_plan *plan, fy_event_kind kind, const char *name, fy_tier from,
                    fy_tier to)
{
    size_t n = 0;
    for (long i = 0; (i = find(plan, kind, name, from, to, (size_t)i)) >= 0; i++)
        n++;
    return n;
}

#define NONE FY_TIER_NONE
#define GPU FY_TIER_GPU
#define HOST FY_TIER_HOST
#define NVME FY_TIER_NVME

/* ---- knobs -------------------------------------------------------------------------- */

static void test_planner_prefetch_issues_loads_before_earlier_computes(void **state)
{
    (void)state;
    fy_graph *g = mlp(6, 256, 16, false, NULL); /* weights 256KiB each */
    fy_plan *p0 = plan_ok(g, 1 * MiB, 64 * MiB, "ferry: policy/1\nprefetch: 0\n", NULL);
    fy_plan *p2 = plan_ok(g, 1 * MiB, 64 * MiB, "ferry: policy/1\nprefetch: 2\n", NULL);
    /* Without prefetch, w3 arrives after fc2's compute; with 2, before fc1's. */
    assert_true(find(p0, FY_EVENT_LOAD, "w3", HOST, GPU, 0) >
                find(p0, FY_EVENT_COMPUTE, "fc2", NONE, NONE, 0));
    assert_true(find(p2, FY_EVENT_LOAD, "w3", HOST, GPU, 0) <
                find(p2, FY_EVENT_COMPUTE, "fc1", NONE, NONE, 0));
    assert_true(find(p2, FY_EVENT_LOAD, "w4", HOST, GPU, 0) >
                find(p2, FY_EVENT_COMPUTE, "fc1", NONE, NONE, 0));
    /* A prefetched load waits only for the evicts that free its memory. */
    size_t waits = 0;
    for (size_t i = 0; i < fy_plan_event_count(p2); i++) {
        const fy_event *e = fy_plan_event(p2, i);
        if (e->kind != FY_EVENT_LOAD) continue;
        for (uint32_t a = 0; a < e->after_count; a++) {
            assert_int_equal(fy_plan_event(p2, e->after[a])->kind, FY_EVENT_EVICT);
            waits++;
        }
    }
    assert_true(waits > 0); /* 1MiB holds 3 weights: memory is reused */
    fy_plan_destroy(p0);
    fy_plan_destroy(p2);
    fy_graph_destroy(g);
}

/* Ops reading equal-sized inputs in a given sequence, each writing a small scratch. */
static fy_graph *sequence_graph(const char *seq, uint64_t size)
{
    fy_graph *g;
    fy_error err = {0};
    assert_int_equal(fy_graph_create("seq", &g, &err), 0);
    char name[16];
    for (char c = 'A'; c <= 'Z'; c++) {
        if (!strchr(seq, c)) continue;
        snprintf(name, sizeof name, "%c", c);
        fy_tensor_desc d = {.name = name, .kind = FY_TENSOR_INPUT, .size = size};
        assert_int_equal(fy_graph_add_tensor(g, &d, &err), 0);
    }
    for (size_t i = 0; seq[i]; i++) {
        char in[2] = {seq[i], 0}, out[16], op[16];
        snprintf(out, sizeof out, "s%zu", i);
        snprintf(op, sizeof op, "op%zu", i);
        fy_tensor_desc d = {.name = out, .kind = FY_TENSOR_WORKSPACE, .size = 256};
        assert_int_equal(fy_graph_add_tensor(g, &d, &err), 0);
        const char *reads[] = {in}, *writes[] = {out};
        fy_op_desc o = {.name = op,
                        .kind = "spin",
                        .reads = reads,
                        .read_count = 1,
                        .writes = writes,
                        .write_count = 1};
        assert_int_equal(fy_graph_add_op(g, &o, &err), 0);
    }
    assert_int_equal(fy_graph_validate(g, &err), 0);
    return g;
}

static uint64_t h2d_bytes(const fy_graph *g, uint64_t gpu, const char *ptext)
{
    fy_plan_stats st;
    fy_plan *p = plan_ok(g, gpu, 64 * MiB, ptext, &st);
    fy_plan_destroy(p);
    fy_plan_stats_free(&st);
    return st.bytes[FY_LINK_HOST_GPU];
}

static void test_planner_evict_rules_choose_different_victims(void **state)
{
    (void)state;
    uint64_t s = 64 * KiB, gpu = 2 * s + 256;
    /* A cycle of three over two slots: lru and fifo miss all but the last (dead copies
     * leave at once, so the last C finds room), belady keeps one of the two each time. */
    fy_graph *g = sequence_graph("ABCABCABC", s);
    uint64_t belady = h2d_bytes(g, gpu, "ferry: policy/1\nprefetch: 0\nevict: belady\n");
    uint64_t lru = h2d_bytes(g, gpu, "ferry: policy/1\nprefetch: 0\nevict: lru\n");
    uint64_t fifo = h2d_bytes(g, gpu, "ferry: policy/1\nprefetch: 0\nevict: fifo\n");
    assert_int_equal(lru, 8 * s);
    assert_int_equal(fifo, 8 * s);
    assert_int_equal(belady, 6 * s);
    fy_graph_destroy(g);
    /* lru keeps A (used recently) when C arrives; fifo drops it (it arrived first). */
    g = sequence_graph("ABACABC", s);
    lru = h2d_bytes(g, gpu, "ferry: policy/1\nprefetch: 0\nevict: lru\n");
    fifo = h2d_bytes(g, gpu, "ferry: policy/1\nprefetch: 0\nevict: fifo\n");
    belady = h2d_bytes(g, gpu, "ferry: policy/1\nprefetch: 0\nevict: belady\n");
    assert_int_equal(lru, 4 * s);
    assert_int_equal(fifo, 5 * s);
    assert_int_equal(belady, 4 * s);
    fy_graph_destroy(g);
}

static void test_planner_after_last_use_frees_between_uses(void **state)
{
    (void)state;
    fy_graph *g = mlp(4, 256, 16, true, NULL);
    fy_plan *keep = plan_ok(g, 256 * MiB, 256 * MiB, "ferry: policy/1\nevict: belady\n", NULL);
    fy_plan *alu =
        plan_ok(g, 256 * MiB, 256 * MiB, "ferry: policy/1\nevict: after-last-use\n", NULL);
    /* With room to spare belady keeps w0 from fc0 to its backward op; after-last-use
     * drops it right after fc0 and loads it again. */
    assert_int_equal(count(keep, FY_EVENT_LOAD, "w0", HOST, GPU), 1);
    assert_int_equal(count(alu, FY_EVENT_LOAD, "w0", HOST, GPU), 2);
    long fc0 = find(alu, FY_EVENT_COMPUTE, "fc0", NONE, NONE, 0);
    long ev = find(alu, FY_EVENT_EVICT, "w0", GPU, NONE, 0);
    long fc1 = find(alu, FY_EVENT_COMPUTE, "fc1", NONE, NONE, 0);
    assert_true(ev > fc0 && ev < fc1);
    fy_plan_destroy(keep);
    fy_plan_destroy(alu);
    fy_graph_destroy(g);
}

static void test_planner_keep_pins_tensors_on_the_gpu(void **state)
{
    (void)state;
    fy_graph *g = mlp(6, 256, 16, true, NULL);
    /* 1.5MiB: w.step needs w, w.grad, m, v (1.25MiB); w0 must leave between its uses. */
    fy_plan *p = plan_ok(g, 1536 * KiB, 256 * MiB, "ferry: policy/1\n", NULL);
    fy_plan *k = plan_ok(g, 1536 * KiB, 256 * MiB, "ferry: policy/1\nkeep: [w0]\n", NULL);
    assert_true(count(p, FY_EVENT_LOAD, "w0", HOST, GPU) >= 2);
    assert_int_equal(count(k, FY_EVENT_LOAD, "w0", HOST, GPU), 1);
    assert_int_equal(count(k, FY_EVENT_EVICT, "w0", GPU, NONE), 0);
    fy_plan_destroy(p);
    fy_plan_destroy(k);
    /* Keeping everything cannot fit: the error says what holds the gpu. */
    fy_machine m;
    machine(&m, 2 * MiB, 256 * MiB);
    fy_policy *all = policy("ferry: policy/1\nkeep: [\"w*\"]\n");
    fy_error err = {0};
    fy_plan *none = NULL;
    assert_int_equal(fy_plan_make(g, &m, all, &none, NULL, &err), FY_EINFEASIBLE);
    assert_null(none);
    assert_non_null(strstr(err.message, "kept by the policy"));
    fy_policy_destroy(all);
    fy_graph_destroy(g);
}

static void test_planner_eager_loads_every_weight_first(void **state)
{
    (void)state;
    fy_graph *g = mlp(4, 256, 16, false, "w.bin");
    fy_plan *p = plan_ok(g, 8 * MiB, 64 * MiB, "ferry: policy/1\nload: eager\n", NULL);
    long first = find(p, FY_EVENT_COMPUTE, "fc0", NONE, NONE, 0);
    const char *w[] = {"w0", "w1", "w2", "w3"};
    for (int i = 0; i < 4; i++) {
        long l = find(p, FY_EVENT_LOAD, w[i], HOST, GPU, 0);
        assert_true(l >= 0 && l < first);
    }
    fy_plan_destroy(p);
    fy_machine m;
    machine(&m, 700 * KiB, 64 * MiB); /* each op fits, all four weights do not */
    fy_policy *e = policy("ferry: policy/1\nload: eager\n");
    fy_error err = {0};
    fy_plan *none;
    assert_int_equal(fy_plan_make(g, &m, e, &none, NULL, &err), FY_EINFEASIBLE);
    assert_non_null(strstr(err.message, "load: eager needs every weight on the gpu at once: "
                                        "1MiB of weights, but the gpu has 700KiB"));
    fy_policy_destroy(e);
    /* The same budget is fine lazily. */
    fy_plan_destroy(plan_ok(g, 700 * KiB, 64 * MiB, "ferry: policy/1\n", NULL));
    fy_graph_destroy(g);
}

static void test_planner_offloads_idle_activations(void **state)
{
    (void)state;
    fy_graph *g = mlp(4, 256, 16, true, NULL);
    fy_plan *none = plan_ok(g, 256 * MiB, 256 * MiB, "ferry: policy/1\n", NULL);
    assert_int_equal(count(none, FY_EVENT_OFFLOAD, "a0", GPU, HOST), 0);
    fy_plan_destroy(none);
    fy_plan *host = plan_ok(g, 256 * MiB, 256 * MiB,
                            "ferry: policy/1\nactivations: {offload: host, idle: 2}\n", NULL);
    /* a0 is read by fc1 (next op) and by fc1.bwd much later: it leaves after fc1. */
    long fc1 = find(host, FY_EVENT_COMPUTE, "fc1", NONE, NONE, 0);
    long off = find(host, FY_EVENT_OFFLOAD, "a0", GPU, HOST, 0);
    long ev = find(host, FY_EVENT_EVICT, "a0", GPU, NONE, 0);
    long back = find(host, FY_EVENT_LOAD, "a0", HOST, GPU, 0);
    long bwd = find(host, FY_EVENT_COMPUTE, "fc1.bwd", NONE, NONE, 0);
    assert_true(fc1 < off && off < ev && ev < back && back < bwd);
    fy_plan_destroy(host);
    fy_plan *nvme = plan_ok(g, 256 * MiB, 256 * MiB,
                            "ferry: policy/1\nactivations: {offload: nvme, idle: 2}\n", NULL);
    assert_true(find(nvme, FY_EVENT_OFFLOAD, "a0", HOST, NVME, 0) >= 0);
    assert_true(find(nvme, FY_EVENT_LOAD, "a0", NVME, HOST, 0) >= 0);
    fy_plan_destroy(nvme);
    /* idle larger than any gap: nothing moves. */
    fy_plan *lazy = plan_ok(g, 256 * MiB, 256 * MiB,
                            "ferry: policy/1\nactivations: {offload: host, idle: 100}\n", NULL);
    assert_int_equal(count(lazy, FY_EVENT_OFFLOAD, "a0", GPU, HOST), 0);
    fy_plan_destroy(lazy);
    fy_graph_destroy(g);
}

static void test_planner_staging_buffers_serialise_reuse(void **state)
{
    (void)state;
    fy_graph *g = mlp(6, 256, 16, false, "w.bin");
    fy_plan_stats st;
    fy_plan *p1 = plan_ok(g, 1 * MiB, 64 * MiB, "ferry: policy/1\nstaging: {buffers: 1}\n", &st);
    /* Every nvme read lands at offset 0, and waits for the evict of the previous one. */
    long prev_evict = -1;
    for (size_t i = 0; i < fy_plan_event_count(p1); i++) {
        const fy_event *e = fy_plan_event(p1, i);
        if (e->kind == FY_EVENT_LOAD && e->from == NVME) {
            assert_int_equal(e->at, 0);
            if (prev_evict >= 0) {
                assert_int_equal(e->after_count, 1);
                assert_int_equal(e->after[0], prev_evict);
            }
        }
        if (e->kind == FY_EVENT_EVICT && e->from == HOST) prev_evict = (long)i;
    }
    /* One buffer of the largest weight, and the output y above it. */
    assert_int_equal(st.tier[HOST].arena, 256 * KiB + 16 * KiB);
    fy_plan_stats_free(&st);
    fy_plan *p2 = plan_ok(g, 1 * MiB, 64 * MiB, "ferry: policy/1\nstaging: {buffers: 2}\n", &st);
    uint64_t at[2] = {1, 1};
    size_t n = 0;
    for (size_t i = 0; i < fy_plan_event_count(p2) && n < 2; i++) {
        const fy_event *e = fy_plan_event(p2, i);
        if (e->kind == FY_EVENT_LOAD && e->from == NVME) at[n++] = e->at;
    }
    assert_int_equal(at[0], 0);
    assert_int_equal(at[1], 256 * KiB);
    assert_int_equal(st.tier[HOST].arena, 512 * KiB + 16 * KiB);
    fy_plan_stats_free(&st);
    fy_plan_destroy(p1);
    fy_plan_destroy(p2);
    /* Buffers that do not fit host: a clear error. */
    fy_machine m;
    machine(&m, 1 * MiB, 600 * KiB);
    fy_policy *s3 = policy("ferry: policy/1\nstaging: {buffers: 3}\n");
    fy_error err = {0};
    fy_plan *none;
    assert_int_equal(fy_plan_make(g, &m, s3, &none, NULL, &err), FY_EINFEASIBLE);
    assert_non_null(strstr(err.message, "host 600KiB is too small for 3 staging buffers of "
                                        "256KiB"));
    fy_policy_destroy(s3);
    fy_graph_destroy(g);
}

static void test_planner_drops_host_copies_when_host_is_short(void **state)
{
    (void)state;
    fy_graph *g = mlp(6, 256, 16, false, "w.bin");
    /* Roomy host: the host copies stay (a cache). Short host: they go once on the gpu. */
    fy_plan *roomy = plan_ok(g, 1 * MiB, 64 * MiB, "ferry: policy/1\n", NULL);
    fy_plan *shorth = plan_ok(g, 1 * MiB, 600 * KiB, "ferry: policy/1\n", NULL);
    long l = find(shorth, FY_EVENT_LOAD, "w0", HOST, GPU, 0);
    long e = find(shorth, FY_EVENT_EVICT, "w0", HOST, NONE, 0);
    assert_true(l >= 0 && e > l);
    assert_true(find(shorth, FY_EVENT_EVICT, "w0", HOST, NONE, 0) <
                find(shorth, FY_EVENT_COMPUTE, "fc3", NONE, NONE, 0));
    assert_true(find(roomy, FY_EVENT_EVICT, "w0", HOST, NONE, 0) >
                find(roomy, FY_EVENT_COMPUTE, "fc0", NONE, NONE, 0));
    fy_plan_destroy(roomy);
    fy_plan_destroy(shorth);
    fy_graph_destroy(g);
}

static void test_planner_spills_to_nvme_when_host_is_full(void **state)
{
    (void)state;
    fy_graph *g = mlp(4, 256, 16, true, NULL);
    /* Adam updates w, m and v on the gpu: they must be written back; host holds little. */
    fy_plan_stats st;
    fy_plan *p = plan_ok(g, 4 * MiB, 1 * MiB, "ferry: policy/1\n", &st);
    assert_true(st.bytes[FY_LINK_HOST_NVME] > 0);
    assert_true(st.tier[NVME].arena > 0);
    fy_plan_destroy(p);
    fy_plan_stats_free(&st);
    fy_graph_destroy(g);
}

static void test_planner_writes_back_updated_weights_and_outputs(void **state)
{
    (void)state;
    fy_graph *g = mlp(3, 256, 16, true, "w.bin");
    fy_plan *p = plan_ok(g, 256 * MiB, 256 * MiB, "ferry: policy/1\n", NULL);
    /* w0 is updated on the gpu by w0.step: it goes to host before its gpu copy goes. */
    long step = find(p, FY_EVENT_COMPUTE, "w0.step", NONE, NONE, 0);
    long wb = find(p, FY_EVENT_OFFLOAD, "w0", GPU, HOST, 0);
    long ev = find(p, FY_EVENT_EVICT, "w0", GPU, NONE, (size_t)step);
    assert_true(step >= 0 && wb > step && ev > wb);
    /* The stale nvme source copy is dropped once w0 changes. */
    assert_true(find(p, FY_EVENT_EVICT, "w0", NVME, NONE, 0) > step);
    /* The output leaves for host right after its producer, waiting for it alone. */
    long loss = find(p, FY_EVENT_COMPUTE, "loss", NONE, NONE, 0);
    long off = find(p, FY_EVENT_OFFLOAD, "loss", GPU, HOST, 0);
    const fy_event *o = fy_plan_event(p, (size_t)off);
    assert_true(off > loss && off < find(p, FY_EVENT_COMPUTE, "fc2.bwd", NONE, NONE, 0));
    assert_int_equal(o->after_count, 1);
    assert_int_equal(o->after[0], loss);
    fy_plan_destroy(p);
    fy_graph_destroy(g);
}

/* ---- errors, structure, measures -------------------------------------------------- */

static void test_planner_infeasible_budget_says_what_is_needed(void **state)
{
    (void)state;
    fy_graph *g = mlp(4, 256, 16, false, NULL);
    fy_machine m;
    machine(&m, 200 * KiB, 64 * MiB);
    fy_error err = {0};
    fy_plan *p = (fy_plan *)1;
    assert_int_equal(fy_plan_make(g, &m, NULL, &p, NULL, &err), FY_EINFEASIBLE);
    assert_null(p);
    assert_string_equal(err.message, "gpu 200KiB is too small: op 'fc0' alone needs 288KiB "
                                     "(w0 256KiB, x 16KiB, a0 16KiB)");
    /* A host that cannot hold one weight on its way from nvme. */
    fy_graph_destroy(g);
    g = mlp(2, 256, 16, false, "w.bin");
    machine(&m, 64 * MiB, 100 * KiB);
    assert_int_equal(fy_plan_make(g, &m, NULL, &p, NULL, &err), FY_EINFEASIBLE);
    assert_non_null(strstr(err.message, "host 100KiB is too small"));
    assert_non_null(strstr(err.message, "'w0' alone needs 256KiB"));
    /* A Lua policy without a runtime attached is refused, not ignored. */
    fy_policy *lua;
    assert_int_equal(fy_policy_load("x.lua", &lua, &err), 0);
    machine(&m, 64 * MiB, 64 * MiB);
    assert_int_equal(fy_plan_make(g, &m, lua, &p, NULL, &err), FY_EUNSUPPORTED);
    assert_non_null(strstr(err.message, "no Lua runtime attached"));
    fy_policy_destroy(lua);
    assert_int_equal(fy_plan_make(NULL, &m, NULL, &p, NULL, &err), FY_EINVAL);
    fy_graph_destroy(g);
}

static int stream_of(const fy_event *e, const fy_graph *g)
{
    switch (e->kind) {
    case FY_EVENT_LOAD:
        return e->to == GPU ? 1 : 0;
    case FY_EVENT_OFFLOAD:
        return e->from == GPU ? 2 : 0;
    case FY_EVENT_COMPUTE:
        return fy_graph_op(g, (size_t)e->op)->device == GPU ? 3 : 4;
    default:
        return 0;
    }
}

static void test_planner_after_sets_are_minimal(void **state)
{
    (void)state;
    fy_graph *g = transformer(2, true);
    fy_plan *p = plan_ok(g, 24 * MiB, 64 * MiB, "ferry: policy/1\nprefetch: 2\n", NULL);
    for (size_t i = 0; i < fy_plan_event_count(p); i++) {
        const fy_event *e = fy_plan_event(p, i);
        int own = stream_of(e, g), seen[5] = {0};
        for (uint32_t a = 0; a < e->after_count; a++) {
            const fy_event *d = fy_plan_event(p, e->after[a]);
            int s = stream_of(d, g);
            if (a) assert_true(e->after[a] > e->after[a - 1]); /* sorted, no duplicates */
            if (s == 0) continue; /* io and evicts: no stream order to lean on */
            if (s == own) fail_msg("event %zu waits for %u on its own stream", i, e->after[a]);
            if (seen[s]++) fail_msg("event %zu waits for two events of one stream", i);
        }
    }
    fy_plan_destroy(p);
    fy_graph_destroy(g);
}

static void test_planner_arena_stays_near_the_live_peak(void **state)
{
    (void)state;
    fy_graph *g1 = mlp(16, 512, 32, true, "w.bin");
    fy_graph *g2 = transformer(4, true);
    struct {
        const fy_graph *g;
        uint64_t gpu;
        const char *policy;
    } cases[] = {
        {g1, 64 * MiB, "ferry: policy/1\n"},
        {g1, 16 * MiB, "ferry: policy/1\nactivations: {offload: host, idle: 4}\n"},
        {g2, 64 * MiB, "ferry: policy/1\nprefetch: 2\n"},
        {g2, 16 * MiB, "ferry: policy/1\nevict: lru\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fy_plan_stats st;
        fy_plan *p = plan_ok(cases[i].g, cases[i].gpu, 1024 * MiB, cases[i].policy, &st);
        for (int t = 0; t < FY_TIER_COUNT; t++) {
            assert_true(st.tier[t].arena <= fy_plan_machine(p)->capacity[t]);
            if (st.tier[t].peak && st.tier[t].ratio > 1.05)
                fail_msg("case %zu: %s arena %llu over peak %llu (ratio %.3f)", i,
                         fy_tier_name((fy_tier)t), (unsigned long long)st.tier[t].arena,
                         (unsigned long long)st.tier[t].peak, st.tier[t].ratio);
        }
        fy_plan_destroy(p);
        fy_plan_stats_free(&st);
    }
    fy_graph_destroy(g1);
    fy_graph_destroy(g2);
}

/* A graph of 64KiB-unit tensors: each op reads the named inputs and writes one new tensor of
 * the given units (workspace: dropped at once unless a later op reads it). */
typedef struct unit_op {
    const char *reads[3];
    const char *write;
    unsigned units;
} unit_op;

static fy_graph *unit_graph(const char *const *inputs, const unit_op *ops, size_t nops)
{
    fy_graph *g;
    fy_error err = {0};
    assert_int_equal(fy_graph_create("units", &g, &err), 0);
    for (size_t i = 0; inputs[i]; i++) {
        fy_tensor_desc d = {.name = inputs[i], .kind = FY_TENSOR_INPUT, .size = 64 * KiB};
        assert_int_equal(fy_graph_add_tensor(g, &d, &err), 0);
    }
    for (size_t i = 0; i < nops; i++) {
        fy_tensor_desc d = {
            .name = ops[i].write, .kind = FY_TENSOR_WORKSPACE, .size = ops[i].units * 64 * KiB};
        assert_int_equal(fy_graph_add_tensor(g, &d, &err), 0);
        char name[16];
        snprintf(name, sizeof name, "op%zu", i);
        uint32_t nr = 0;
        while (nr < 3 && ops[i].reads[nr])
            nr++;
        const char *w[] = {ops[i].write};
        fy_op_desc o = {.name = name,
                        .kind = "spin",
                        .reads = ops[i].reads,
                        .read_count = nr,
                        .writes = w,
                        .write_count = 1};
        assert_int_equal(fy_graph_add_op(g, &o, &err), 0);
    }
    assert_int_equal(fy_graph_validate(g, &err), 0);
    return g;
}

/* Five units fill up as A T P U Q; T and U die after op3, leaving one-unit holes between A,
 * P and Q, which op4 reads while it needs 2 units in one piece: free bytes are enough, a hole
 * is not. */
static const char *const frag_inputs[] = {"A", NULL};
static const unit_op frag_ops[] = {
    {{"A"}, "T", 1},           {{"A", "T"}, "P", 1},      {{"T", "P"}, "U", 1},
    {{"T", "P", "U"}, "Q", 1}, {{"A", "P", "Q"}, "R", 2},
};

static void test_planner_compacts_around_the_ops_own_operands(void **state)
{
    (void)state;
    fy_graph *g = unit_graph(frag_inputs, frag_ops, 5);
    fy_plan_stats st;
    fy_plan *p = plan_ok(g, 5 * 64 * KiB, 64 * MiB, "ferry: policy/1\nprefetch: 0\n", &st);
    /* A moved: loaded twice, R placed where A and the hole next to it were. */
    assert_int_equal(count(p, FY_EVENT_LOAD, "A", HOST, GPU), 2);
    assert_true(st.tier[GPU].arena <= 5 * 64 * KiB);
    fy_plan_destroy(p);
    fy_plan_stats_free(&st);
    /* Kept tensors never move: then the split free space is a clear refusal. */
    fy_machine m;
    machine(&m, 5 * 64 * KiB, 64 * MiB);
    fy_policy *keep = policy("ferry: policy/1\nprefetch: 0\nkeep: [A, P, Q]\n");
    fy_error err = {0};
    fy_plan *none = NULL;
    assert_int_equal(fy_plan_make(g, &m, keep, &none, NULL, &err), FY_EINFEASIBLE);
    assert_null(none);
    assert_non_null(strstr(err.message, "gpu 320KiB is too small at op 'op4': 'R' needs 128KiB in "
                                        "one piece; 128KiB is free but fragmentation splits it"));
    fy_policy_destroy(keep);
    fy_graph_destroy(g);
}

/* The 1,000-layer mlp training graph (32MiB weights, Adam) at 8GiB: free bytes come in
 * holes between weights, gradients and optimizer states of every size, and the planner used
 * to give up ("no placement fits the arenas after 8 passes"). Every tight budget from the
 * largest op's working set up must get a plan the checker accepts, within its budget. */
static void test_planner_tight_budgets_get_plans_despite_fragmentation(void **state)
{
    (void)state;
    fy_mlp_params mp = {.layers = 1000,
                        .hidden = 4096,
                        .batch = 16,
                        .dtype = FY_DTYPE_BF16,
                        .train = true,
                        .weights_file = "w.bin"};
    fy_graph *g;
    fy_error err = {0};
    assert_int_equal(fy_graph_generate_mlp(&mp, &g, &err), 0);
    static const char *const policies[] = {
        "ferry: policy/1\n",
        "ferry: policy/1\nprefetch: 2\nevict: after-last-use\nstaging: {buffers: 2}\n",
    };
    for (size_t i = 0; i < 2; i++) {
        fy_plan_stats st;
        fy_plan *p = plan_ok(g, 8ull << 30, 64ull << 30, policies[i], &st);
        assert_true(st.tier[GPU].arena <= 8ull << 30);
        assert_true(st.tier[GPU].ratio <= 1.05);
        fy_plan_destroy(p);
        fy_plan_stats_free(&st);
    }
    fy_graph_destroy(g);
    /* Smaller, and every budget from just above the largest working set. */
    g = mlp(40, 1024, 16, true, "w.bin");
    fy_graph_summary sum;
    fy_graph_summarize(g, &sum);
    for (unsigned k = 0; k < 12; k++) {
        uint64_t gpu = sum.max_working_set + sum.max_working_set * k / 8 + 4096;
        fy_plan_stats st;
        fy_plan *p =
            plan_ok(g, gpu, 256 * MiB, k % 2 ? "ferry: policy/1\nprefetch: 2\n" : NULL, &st);
        assert_true(st.tier[GPU].arena <= gpu);
        fy_plan_destroy(p);
        fy_plan_stats_free(&st);
    }
    fy_graph_destroy(g);
}

static void test_planner_shipped_policies_plan_generated_models(void **state)
{
    (void)state;
    static const char *const names[] = {"default", "stream", "train-offload", "plaid", "eager"};
    fy_graph *gs[] = {mlp(8, 256, 16, false, "w.bin"), mlp(8, 256, 16, true, "w.bin"),
                      transformer(2, false), transformer(2, true)};
    const char *dirs[] = {FY_SOURCE_DIR "/policies"};
    for (size_t n = 0; n < sizeof names / sizeof names[0]; n++) {
        char *path;
        fy_error err = {0};
        assert_int_equal(fy_policy_find(names[n], dirs, 1, &path, &err), 0);
        fy_policy *pol;
        assert_int_equal(fy_policy_load(path, &pol, &err), 0);
        for (size_t i = 0; i < 4; i++) {
            for (uint64_t gpu = 8 * MiB; gpu <= 64 * MiB; gpu *= 2) {
                fy_machine m;
                machine(&m, gpu, 256 * MiB);
                fy_plan *p;
                int rc = fy_plan_make(gs[i], &m, pol, &p, NULL, &err);
                if (rc == FY_EINFEASIBLE) continue;
                if (rc < 0) fail_msg("%s on graph %zu: %s", names[n], i, err.message);
                assert_checked(p, names[n]);
                fy_plan_destroy(p);
            }
        }
        fy_policy_destroy(pol);
        free(path);
    }
    for (size_t i = 0; i < 4; i++)
        fy_graph_destroy(gs[i]);
}

/* ---- hooks ------------------------------------------------------------------------ */

typedef struct hook_ctx {
    const fy_graph *g;
    int begun, ended, blamed;
    bool bad_victim;
    int evict_rc;     /* what view->evict returned for a0's only copy */
    long next_use_a0; /* view->next_use(a0, 0) */
    bool resident_w0; /* view->resident(w0, gpu) after op 0 */
    uint64_t used, capacity;
    int victims_asked;
} hook_ctx;

static uint32_t tid(const fy_graph *g, const char *name)
{
    long t = fy_graph_find_tensor(g, name);
    assert_true(t >= 0);
    return (uint32_t)t;
}

static int h_begin(void *c, const fy_policy_view *v, fy_error *err)
{
    ((hook_ctx *)c)->begun++;
    return 0;
}

static void h_end(void *c)
{
    ((hook_ctx *)c)->ended++;
}

static int h_prefetch(void *c, const fy_policy_view *v, size_t op, fy_tensor_list *out,
                      fy_error *err)
{
    hook_ctx *h = c;
    if (op != 1) return 0;
    out->items = malloc(sizeof *out->items);
    out->items[0] = tid(h->g, "w3");
    out->count = 1;
    return 0;
}

static int h_victim(void *c, const fy_policy_view *v, fy_tier tier, uint64_t need,
                    const uint32_t *cands, size_t n, fy_tensor_list *out, fy_error *err)
{
    hook_ctx *h = c;
    h->victims_asked++;
    out->items = malloc(n * sizeof *out->items);
    out->count = 0;
    if (h->bad_victim) {
        out->items[out->count++] = (uint32_t)fy_graph_tensor_count(h->g) + 5; /* garbage */
        return 0;
    }
    for (size_t i = n; i-- > 0;) /* the reverse of the knob's order */
        out->items[out->count++] = cands[i];
    return 0;
}

static int h_after(void *c, const fy_policy_view *v, size_t op, fy_error *err)
{
    hook_ctx *h = c;
    if (op != 0) return 0;
    uint32_t a0 = tid(h->g, "a0");
    h->next_use_a0 = v->next_use(v->state, a0, 0);
    h->resident_w0 = v->resident(v->state, tid(h->g, "w0"), GPU);
    h->used = v->used(v->state, GPU);
    h->capacity = v->capacity(v->state, GPU);
    v->log(v->state, "after op 0");
    fy_error e2 = {0};
    h->evict_rc = v->evict(v->state, a0, GPU, &e2);
    int rc = v->offload(v->state, a0, HOST, err);
    return rc < 0 ? rc : v->evict(v->state, a0, GPU, err);
}

static int h_blame(void *c, const char *hook, fy_error *err)
{
    ((hook_ctx *)c)->blamed++;
    err->line = 42;
    snprintf(err->file, sizeof err->file, "my.lua");
    return FY_ESCRIPT;
}

static void test_planner_hooks_see_the_view_and_steer_the_plan(void **state)
{
    (void)state;
    fy_graph *g = mlp(5, 256, 16, true, NULL);
    fy_policy *pol = policy("ferry: policy/1\nprefetch: 0\n");
    hook_ctx h = {.g = g};
    fy_policy_hooks hooks = {.ctx = &h,
                             .begin = h_begin,
                             .prefetch = h_prefetch,
                             .victim = h_victim,
                             .after_op = h_after,
                             .end = h_end,
                             .blame = h_blame};
    fy_policy_set_hooks(pol, &hooks);
    fy_machine m;
    machine(&m, 1536 * KiB, 64 * MiB);
    fy_plan *p;
    fy_plan_stats st;
    fy_error err = {0};
    if (fy_plan_make(g, &m, pol, &p, &st, &err) < 0) fail_msg("%s", err.message);
    assert_checked(p, "hooks");
    assert_int_equal(h.begun, 1);
    assert_int_equal(h.ended, 1);
    assert_true(h.victims_asked > 0);
    /* prefetch(1) brought w3 before fc0 computed, though the knob says 0. */
    assert_true(find(p, FY_EVENT_LOAD, "w3", HOST, GPU, 0) <
                find(p, FY_EVENT_COMPUTE, "fc0", NONE, NONE, 0));
    /* after_op(0) moved a0 to host; evicting its only copy first was refused. */
    assert_int_equal(h.evict_rc, FY_EINVAL);
    long off = find(p, FY_EVENT_OFFLOAD, "a0", GPU, HOST, 0);
    assert_true(off > find(p, FY_EVENT_COMPUTE, "fc0", NONE, NONE, 0));
    assert_true(find(p, FY_EVENT_LOAD, "a0", HOST, GPU, 0) > off);
    assert_int_equal(h.next_use_a0, 1);
    assert_true(h.resident_w0);
    assert_true(h.used > 0 && h.capacity == 1536 * KiB);
    assert_non_null(st.log);
    assert_non_null(strstr(st.log, "after op 0"));
    fy_plan_stats_free(&st);
    fy_plan_destroy(p);
    /* A victim the planner cannot honour is the hook's error, located by blame. */
    h.bad_victim = true;
    fy_policy_set_hooks(pol, &hooks);
    memset(&err, 0, sizeof err);
    assert_int_equal(fy_plan_make(g, &m, pol, &p, NULL, &err), FY_ESCRIPT);
    assert_non_null(strstr(err.message, "hook 'victim' returned an unknown tensor, which is not a "
                                        "candidate to leave gpu"));
    assert_int_equal(err.line, 42);
    assert_int_equal(h.blamed, 1);
    assert_int_equal(h.ended, 2);
    fy_policy_destroy(pol);
    fy_graph_destroy(g);
}

/* ---- random graphs ---------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static unsigned pick(uint64_t *s, unsigned n)
{
    return (unsigned)(rng_next(s) % n);
}

/* A random graph: weights (some from nvme, some on host), an input, ops on the gpu (and a
 * few on the host) reading 1-3 earlier tensors, writing a new activation or updating a
 * weight in place, and an output at the end. Sizes vary over 4KiB..64KiB. */
static fy_graph *random_graph(uint64_t *s)
{
    fy_graph *g;
    fy_error err = {0};
    assert_int_equal(fy_graph_create("random", &g, &err), 0);
    char names[64][16];
    unsigned n = 0, nw = 2 + pick(s, 5), nops = 3 + pick(s, 10);
    for (unsigned i = 0; i < nw; i++, n++) {
        snprintf(names[n], 16, "w%u", i);
        fy_tensor_desc d = {
            .name = names[n], .kind = FY_TENSOR_WEIGHT, .size = 4096ull * (1 + pick(s, 16))};
        if (pick(s, 2)) d.source_file = "w.bin";
        assert_int_equal(fy_graph_add_tensor(g, &d, &err), 0);
    }
    snprintf(names[n], 16, "x");
    fy_tensor_desc x = {.name = "x", .kind = FY_TENSOR_INPUT, .size = 4096ull * (1 + pick(s, 4))};
    assert_int_equal(fy_graph_add_tensor(g, &x, &err), 0);
    n++;
    for (unsigned i = 0; i < nops; i++) {
        bool last = i + 1 == nops;
        const char *reads[3], *writes[1];
        unsigned nr = 1 + pick(s, 3);
        for (unsigned r = 0; r < nr; r++)
            reads[r] = names[pick(s, n)];
        for (unsigned r = 1; r < nr; r++)
            if (!strcmp(reads[r], reads[0])) reads[r] = reads[--nr];
        if (nr > 1 && !strcmp(reads[1], reads[nr - 1]) && nr == 3) nr = 2;
        char op[16];
        snprintf(op, sizeof op, "op%u", i);
        if (!last && pick(s, 6) == 0) {
            writes[0] = names[pick(s, nw)]; /* an optimizer-like in-place update */
            bool reads_it = false;
            for (unsigned r = 0; r < nr; r++)
                reads_it |= !strcmp(reads[r], writes[0]);
            if (!reads_it && nr < 3) reads[nr++] = writes[0];
        } else {
            snprintf(names[n], 16, last ? "y" : "a%u", i);
            fy_tensor_desc d = {.name = names[n],
                                .kind = last ? FY_TENSOR_OUTPUT : FY_TENSOR_ACTIVATION,
                                .size = 4096ull * (1 + pick(s, 16))};
            assert_int_equal(fy_graph_add_tensor(g, &d, &err), 0);
            writes[0] = names[n++];
        }
        fy_op_desc o = {.name = op,
                        .kind = "spin",
                        .reads = reads,
                        .read_count = nr,
                        .writes = writes,
                        .write_count = 1,
                        .device = pick(s, 8) == 0 ? FY_TIER_HOST : FY_TIER_GPU};
        if (fy_graph_add_op(g, &o, &err) < 0) fail_msg("random graph: %s", err.message);
    }
    if (fy_graph_validate(g, &err) < 0) fail_msg("random graph: %s", err.message);
    return g;
}

static void random_policy(uint64_t *s, char *buf, size_t n, const char *evict)
{
    static const char *const rules[] = {"belady", "lru", "fifo", "after-last-use"};
    int len = snprintf(buf, n, "ferry: policy/1\nprefetch: %u\nevict: %s\n", pick(s, 4),
                       evict ? evict : rules[pick(s, 4)]);
    if (pick(s, 5) == 0) len += snprintf(buf + len, n - (size_t)len, "load: eager\n");
    if (pick(s, 4) == 0) len += snprintf(buf + len, n - (size_t)len, "keep: [w%u]\n", pick(s, 3));
    if (pick(s, 3) == 0)
        len += snprintf(buf + len, n - (size_t)len, "activations: {offload: %s, idle: %u}\n",
                        pick(s, 2) ? "host" : "nvme", 1 + pick(s, 3));
    if (pick(s, 3) == 0)
        snprintf(buf + len, n - (size_t)len, "staging: {buffers: %u}\n", 1 + pick(s, 2));
}

static fy_graph *random_model(uint64_t *s)
{
    switch (pick(s, 4)) {
    case 0:
        return mlp(1 + pick(s, 5), 64 * (1 + pick(s, 3)), 8, true, pick(s, 2) ? "w.bin" : NULL);
    case 1: {
        fy_transformer_params p = {.layers = 1 + pick(s, 2),
                                   .hidden = 64,
                                   .ffn = 128,
                                   .heads = 2,
                                   .seq = 16,
                                   .batch = 1,
                                   .vocab = pick(s, 2) * 100,
                                   .dtype = FY_DTYPE_F32,
                                   .train = pick(s, 2),
                                   .weights_file = pick(s, 2) ? "w.bin" : NULL};
        fy_graph *g;
        fy_error err = {0};
        assert_int_equal(fy_graph_generate_transformer(&p, &g, &err), 0);
        return g;
    }
    default:
        return random_graph(s);
    }
}

static void test_planner_random_plans_pass_the_checker_or_are_infeasible(void **state)
{
    (void)state;
    uint64_t s = 0x9e3779b97f4a7c15ull;
    unsigned planned = 0, infeasible = 0;
    for (unsigned iter = 0; iter < 600; iter++) {
        fy_graph *g = random_model(&s);
        fy_graph_summary sum;
        fy_graph_summarize(g, &sum);
        char ptext[512];
        random_policy(&s, ptext, sizeof ptext, NULL);
        fy_machine m;
        uint64_t gpu = sum.max_working_set + pick(&s, 4) * (sum.total_bytes / 4 + 1);
        uint64_t host = pick(&s, 2) ? 1024 * MiB : sum.max_working_set * (1 + pick(&s, 3));
        machine(&m, gpu + pick(&s, 8) * 4096, host);
        if (pick(&s, 6) == 0) m.capacity[FY_TIER_NVME] = sum.total_bytes / 2;
        fy_policy *pol = policy(ptext);
        fy_plan *p = NULL;
        fy_error err = {0};
        int rc = fy_plan_make(g, &m, pol, &p, NULL, &err);
        if (rc == FY_EINFEASIBLE) {
            infeasible++;
            assert_null(p);
            if (!strstr(err.message, "too small") && !strstr(err.message, "fragmentation") &&
                !strstr(err.message, "eager needs"))
                fail_msg("iteration %u: unclear refusal: %s", iter, err.message);
        } else if (rc < 0) {
            fail_msg("iteration %u: %s\n%s", iter, err.message, ptext);
        } else {
            char what[600];
            snprintf(what, sizeof what, "iteration %u, gpu %llu host %llu\n%s", iter,
                     (unsigned long long)m.capacity[GPU], (unsigned long long)host, ptext);
            assert_checked(p, what);
            planned++;
        }
        fy_plan_destroy(p);
        fy_policy_destroy(pol);
        fy_graph_destroy(g);
    }
    print_message("random: %u plans checked, %u infeasible\n", planned, infeasible);
    assert_true(planned > 400);
}

static void test_planner_belady_seldom_moves_more_than_lru_or_fifo_with_unequal_sizes(void **state)
{
    (void)state;
    uint64_t s = 12345;
    unsigned compared = 0, worse = 0;
    for (unsigned iter = 0; iter < 300; iter++) {
        fy_graph *g = random_model(&s);
        fy_graph_summary sum;
        fy_graph_summarize(g, &sum);
        uint64_t gpu = sum.max_working_set + pick(&s, 4) * (sum.total_bytes / 6 + 1);
        uint64_t seed = s;
        uint64_t bytes[3];
        bool ok = true;
        static const char *const rules[] = {"belady", "lru", "fifo"};
        for (int r = 0; r < 3 && ok; r++) {
            uint64_t s2 = seed; /* the same other knobs for each rule */
            char ptext[512];
            random_policy(&s2, ptext, sizeof ptext, rules[r]);
            fy_machine m;
            machine(&m, gpu, 1024 * MiB);
            fy_policy *pol = policy(ptext);
            fy_plan *p;
            fy_plan_stats st;
            fy_error err = {0};
            int rc = fy_plan_make(g, &m, pol, &p, &st, &err);
            ok = rc == 0;
            if (rc == 0) {
                bytes[r] = st.bytes_total;
                fy_plan_destroy(p);
                fy_plan_stats_free(&st);
            }
            fy_policy_destroy(pol);
        }
        rng_next(&s);
        compared += ok;
        if (ok && (bytes[0] > bytes[1] || bytes[0] > bytes[2]) && ++worse)
            print_message("iteration %u: belady %llu, lru %llu, fifo %llu bytes\n", iter,
                          (unsigned long long)bytes[0], (unsigned long long)bytes[1],
                          (unsigned long long)bytes[2]);
        fy_graph_destroy(g);
    }
    /* Belady is optimal for equal sizes and clean copies (where it never moves more than
     * lru or fifo: the brute-force test below asserts that on every instance); with unequal
     * sizes, write-backs of dirty victims and the windows that fragmentation forces it is a
     * heuristic that can lose by a little (docs/policies.md has a counter-example). Record
     * how often, and hold it to at most 4% of the instances (8 of 251 today). */
    print_message("belady moved more than lru or fifo in %u of %u instances\n", worse, compared);
    assert_true(compared > 200);
    assert_true(worse * 25 <= compared);
}

/* ---- Belady is optimal with equal sizes ------------------------------------------- */

/* The fewest loads any plan needs: over every set of resident tensors before each op. */
static unsigned brute_force_loads(const unsigned *reads, const unsigned *nreads, unsigned nops,
                                  unsigned ntensors, unsigned slots)
{
    unsigned states = 1u << ntensors, inf = 1u << 30;
    unsigned *cur = malloc(states * sizeof *cur), *next = malloc(states * sizeof *next);
    for (unsigned m = 0; m < states; m++)
        cur[m] = m == 0 ? 0 : inf;
    for (unsigned i = 0; i < nops; i++) {
        unsigned need = 0;
        for (unsigned r = 0; r < nreads[i]; r++)
            need |= 1u << reads[3 * i + r];
        for (unsigned m = 0; m < states; m++)
            next[m] = inf;
        for (unsigned m = 0; m < states; m++) {
            if (cur[m] == inf) continue;
            unsigned cost = (unsigned)__builtin_popcount(need & ~m);
            unsigned have = m | need;
            /* Keep any subset of what is there that includes the reads and leaves a slot
             * for the op's scratch output. */
            for (unsigned k = have;; k = (k - 1) & have) {
                if ((k & need) == need && (unsigned)__builtin_popcount(k) + 1 <= slots &&
                    cur[m] + cost < next[k])
                    next[k] = cur[m] + cost;
                if (k == 0) break;
            }
        }
        unsigned *t = cur;
        cur = next;
        next = t;
    }
    unsigned best = inf;
    for (unsigned m = 0; m < states; m++)
        if (cur[m] < best) best = cur[m];
    free(cur);
    free(next);
    return best;
}

static void
test_planner_belady_matches_brute_force_and_beats_lru_fifo_with_equal_sizes(void **state)
{
    (void)state;
    uint64_t s = 777;
    uint64_t size = 16 * KiB;
    for (unsigned iter = 0; iter < 200; iter++) {
        unsigned nt = 3 + pick(&s, 5), nops = 4 + pick(&s, 9), slots = 3 + pick(&s, 3);
        unsigned reads[3 * 16], nreads[16];
        fy_graph *g;
        fy_error err = {0};
        assert_int_equal(fy_graph_create("bf", &g, &err), 0);
        char names[8][4];
        for (unsigned t = 0; t < nt; t++) {
            snprintf(names[t], 4, "t%u", t);
            fy_tensor_desc d = {.name = names[t], .kind = FY_TENSOR_INPUT, .size = size};
            assert_int_equal(fy_graph_add_tensor(g, &d, &err), 0);
        }
        for (unsigned i = 0; i < nops; i++) {
            nreads[i] = 1 + pick(&s, slots - 1 < 3 ? slots - 1 : 3);
            const char *rn[3];
            for (unsigned r = 0; r < nreads[i]; r++) {
                unsigned t;
                bool dup;
                do {
                    t = pick(&s, nt);
                    dup = false;
                    for (unsigned q = 0; q < r; q++)
                        dup |= reads[3 * i + q] == t;
                } while (dup);
                reads[3 * i + r] = t;
                rn[r] = names[t];
            }
            char out[8], op[8];
            snprintf(out, sizeof out, "s%u", i);
            snprintf(op, sizeof op, "op%u", i);
            fy_tensor_desc d = {.name = out, .kind = FY_TENSOR_WORKSPACE, .size = size};
            assert_int_equal(fy_graph_add_tensor(g, &d, &err), 0);
            const char *wn[] = {out};
            fy_op_desc o = {.name = op,
                            .kind = "spin",
                            .reads = rn,
                            .read_count = nreads[i],
                            .writes = wn,
                            .write_count = 1};
            assert_int_equal(fy_graph_add_op(g, &o, &err), 0);
        }
        assert_int_equal(fy_graph_validate(g, &err), 0);
        fy_plan_stats st;
        fy_plan *p = plan_ok(g, slots * size, 64 * MiB,
                             "ferry: policy/1\nprefetch: 0\nevict: belady\n", &st);
        unsigned best = brute_force_loads(reads, nreads, nops, nt, slots);
        if (st.bytes[FY_LINK_HOST_GPU] != best * size)
            fail_msg("iteration %u: belady loads %llu, the optimum %u", iter,
                     (unsigned long long)(st.bytes[FY_LINK_HOST_GPU] / size), best);
        /* Here (equal sizes, clean copies) belady never moves more than lru or fifo. */
        static const char *const others[] = {"ferry: policy/1\nprefetch: 0\nevict: lru\n",
                                             "ferry: policy/1\nprefetch: 0\nevict: fifo\n"};
        for (int o = 0; o < 2; o++) {
            fy_plan_stats so;
            fy_plan_destroy(plan_ok(g, slots * size, 64 * MiB, others[o], &so));
            if (so.bytes_total < st.bytes_total)
                fail_msg("iteration %u: belady moved %llu bytes, %s %llu", iter,
                         (unsigned long long)st.bytes_total, o ? "fifo" : "lru",
                         (unsigned long long)so.bytes_total);
            fy_plan_stats_free(&so);
        }
        fy_plan_stats_free(&st);
        fy_plan_destroy(p);
        fy_graph_destroy(g);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_planner_prefetch_issues_loads_before_earlier_computes),
        cmocka_unit_test(test_planner_evict_rules_choose_different_victims),
        cmocka_unit_test(test_planner_after_last_use_frees_between_uses),
        cmocka_unit_test(test_planner_keep_pins_tensors_on_the_gpu),
        cmocka_unit_test(test_planner_eager_loads_every_weight_first),
        cmocka_unit_test(test_planner_offloads_idle_activations),
        cmocka_unit_test(test_planner_staging_buffers_serialise_reuse),
        cmocka_unit_test(test_planner_drops_host_copies_when_host_is_short),
        cmocka_unit_test(test_planner_spills_to_nvme_when_host_is_full),
        cmocka_unit_test(test_planner_writes_back_updated_weights_and_outputs),
        cmocka_unit_test(test_planner_infeasible_budget_says_what_is_needed),
        cmocka_unit_test(test_planner_after_sets_are_minimal),
        cmocka_unit_test(test_planner_arena_stays_near_the_live_peak),
        cmocka_unit_test(test_planner_compacts_around_the_ops_own_operands),
        cmocka_unit_test(test_planner_tight_budgets_get_plans_despite_fragmentation),
        cmocka_unit_test(test_planner_shipped_policies_plan_generated_models),
        cmocka_unit_test(test_planner_hooks_see_the_view_and_steer_the_plan),
        cmocka_unit_test(test_planner_random_plans_pass_the_checker_or_are_infeasible),
        cmocka_unit_test(test_planner_belady_seldom_moves_more_than_lru_or_fifo_with_unequal_sizes),
        cmocka_unit_test(
            test_planner_belady_matches_brute_force_and_beats_lru_fifo_with_equal_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
