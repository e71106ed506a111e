/* The knob search: on a graph whose loads can hide under long computes it picks a prefetch
 * of 1 or more, with the least predicted time of all it tried; an infeasible candidate is
 * recorded with its reason, not fatal; the chosen plan checks clean; Lua policies and
 * budgets nothing fits are refused. */
#include "test_util.h"

#include "ferry/ferry.h"

#include <math.h>

/* h2d, d2h and nvme at 1000 B/s, so a 1000-byte load takes 1 s. */
static fy_machine slow_machine(void)
{
    fy_machine m;
    fy_machine_default(&m);
    m.h2d = m.d2h = 1000;
    m.nvme_read = m.nvme_write = 1000;
    m.capacity[FY_TIER_GPU] = 1 << 20;
    return m;
}

static fy_graph *load_graph(const char *text)
{
    fy_error err = {0};
    fy_graph *g;
    if (fy_graph_load_string("search.yaml", text, strlen(text), &g, &err) < 0)
        fail_msg("graph: %s", err.message);
    return g;
}

/* Three ops of 2 s, each reading its own 1000-byte weight (1 s to load): just in time, every
 * compute waits for its load; with prefetch the next load runs under the compute. */
static const char chain[] =
    "ferry: graph/1\n"
    "name: chain\n"
    "tensors:\n"
    "  x: {kind: input, size: 8}\n"
    "  w1: {kind: weight, size: 1000}\n"
    "  w2: {kind: weight, size: 1000}\n"
    "  w3: {kind: weight, size: 1000}\n"
    "  a1: {kind: activation, size: 8}\n"
    "  a2: {kind: activation, size: 8}\n"
    "  y: {kind: output, size: 8}\n"
    "ops:\n"
    "  - {name: f1, kind: matmul, reads: [x, w1], writes: [a1], time: 2s}\n"
    "  - {name: f2, kind: matmul, reads: [a1, w2], writes: [a2], time: 2s}\n"
    "  - {name: f3, kind: matmul, reads: [a2, w3], writes: [y], time: 2s}\n";

static void test_search_picks_prefetch_that_hides_loads(void **state)
{
    (void)state;
    fy_graph *g = load_graph(chain);
    fy_machine m = slow_machine();
    fy_policy_knobs k;
    fy_policy_knobs_default(&k);
    k.prefetch = 0;
    fy_error err = {0};
    fy_policy *base;
    assert_int_equal(fy_policy_create("jit", &k, &base, &err), 0);
    fy_search_result r;
    fy_plan *plan;
    assert_int_equal(fy_plan_search(g, &m, base, &r, &plan, &err), 0);
    assert_true(r.count >= 4 && r.count <= FY_SEARCH_MAX_CANDIDATES);
    assert_true(r.chosen >= 0);
    const fy_search_candidate *c = &r.candidates[r.chosen];
    assert_true(c->feasible);
    assert_true(c->knobs.prefetch >= 1);
    /* The base (prefetch 0) waits for each load: at least 3 s more than the computes. */
    assert_int_equal(r.candidates[0].knobs.prefetch, 0);
    assert_true(r.candidates[0].feasible);
    assert_true(r.candidates[0].total_s >= 9.0 - 1e-9);
    assert_true(c->total_s < r.candidates[0].total_s - 1.0);
    for (size_t i = 0; i < r.count; i++)
        if (r.candidates[i].feasible) assert_true(c->total_s <= r.candidates[i].total_s);
    /* No gradients and nothing on nvme: only prefetch and evict vary. */
    for (size_t i = 0; i < r.count; i++) {
        assert_int_equal(r.candidates[i].knobs.staging_buffers, 0);
        assert_int_equal(r.candidates[i].knobs.activations_offload, FY_TIER_NONE);
    }
    fy_check_report *rep;
    assert_int_equal(fy_check_plan(plan, &m, &rep, &err), 0);
    fy_check_report_destroy(rep);
    assert_string_equal(fy_plan_policy_name(plan), "search: prefetch 1, belady");
    char *text = fy_search_format(&r);
    assert_non_null(text);
    assert_non_null(strstr(text, "chosen #"));
    assert_non_null(strstr(text, "faster than the base"));
    free(text);
    fy_plan_destroy(plan);
    fy_search_result_free(&r);
    fy_policy_destroy(base);
    fy_graph_destroy(g);
}

/* Weights on nvme (4 KiB each) with 12 KiB of host: four staging buffers cannot fit, so that
 * candidate is recorded infeasible while the search goes on and chooses another. */
static const char nvme_chain[] =
    "ferry: graph/1\n"
    "name: nv\n"
    "tensors:\n"
    "  x: {kind: input, size: 8}\n"
    "  w1: {kind: weight, size: 4096, home: nvme, source: {file: w.bin, offset: 0}}\n"
    "  w2: {kind: weight, size: 4096, home: nvme, source: {file: w.bin, offset: 4096}}\n"
    "  w3: {kind: weight, size: 4096, home: nvme, source: {file: w.bin, offset: 8192}}\n"
    "  a1: {kind: activation, size: 8}\n"
    "  a2: {kind: activation, size: 8}\n"
    "  y: {kind: output, size: 8}\n"
    "ops:\n"
    "  - {name: f1, kind: matmul, reads: [x, w1], writes: [a1], time: 2s}\n"
    "  - {name: f2, kind: matmul, reads: [a1, w2], writes: [a2], time: 2s}\n"
    "  - {name: f3, kind: matmul, reads: [a2, w3], writes: [y], time: 2s}\n";

static void test_search_records_infeasible_candidates(void **state)
{
    (void)state;
    fy_graph *g = load_graph(nvme_chain);
    fy_machine m = slow_machine();
    m.capacity[FY_TIER_HOST] = 12 << 10;
    fy_error err = {0};
    fy_search_result r;
    fy_plan *plan;
    assert_int_equal(fy_plan_search(g, &m, NULL, &r, &plan, &err), 0);
    size_t infeasible = 0, staged = 0;
    for (size_t i = 0; i < r.count; i++) {
        if (r.candidates[i].knobs.staging_buffers) staged++;
        if (r.candidates[i].feasible) continue;
        infeasible++;
        assert_int_equal(r.candidates[i].knobs.staging_buffers, 4);
        assert_non_null(strstr(r.candidates[i].reason, "staging"));
    }
    assert_true(staged >= 3);
    assert_true(infeasible >= 1);
    assert_true(r.chosen >= 0 && r.candidates[r.chosen].feasible);
    char *text = fy_search_format(&r);
    assert_non_null(strstr(text, "infeasible: "));
    free(text);
    fy_check_report *rep;
    assert_int_equal(fy_check_plan(plan, &m, &rep, &err), 0);
    fy_check_report_destroy(rep);
    fy_plan_destroy(plan);
    fy_search_result_free(&r);
    fy_graph_destroy(g);
}

/* A gpu smaller than any op's working set: every candidate fails, the search says so with the
 * reason and still lists what it tried. */
static void test_search_none_feasible_is_infeasible(void **state)
{
    (void)state;
    fy_graph *g = load_graph(chain);
    fy_machine m = slow_machine();
    m.capacity[FY_TIER_GPU] = 512;
    fy_error err = {0};
    fy_search_result r;
    fy_plan *plan = (fy_plan *)&r;
    assert_int_equal(fy_plan_search(g, &m, NULL, &r, &plan, &err), FY_EINFEASIBLE);
    assert_null(plan);
    assert_true(r.count >= 2);
    assert_int_equal(r.chosen, -1);
    assert_non_null(strstr(err.message, "no candidate"));
    char *text = fy_search_format(&r);
    assert_non_null(strstr(text, "no candidate fits"));
    free(text);
    fy_search_result_free(&r);
    fy_graph_destroy(g);
}

/* A Lua policy's hooks cannot follow changed knobs: refused, naming the policy. */
static void test_search_refuses_lua_policy(void **state)
{
    (void)state;
    fy_graph *g = load_graph(chain);
    fy_machine m = slow_machine();
    fy_policy_knobs k;
    fy_policy_knobs_default(&k);
    k.lua = "hooks.lua";
    fy_error err = {0};
    fy_policy *base;
    assert_int_equal(fy_policy_create("scripted", &k, &base, &err), 0);
    fy_search_result r;
    assert_int_equal(fy_plan_search(g, &m, base, &r, NULL, &err), FY_EUNSUPPORTED);
    assert_non_null(strstr(err.message, "scripted"));
    assert_int_equal(r.count, 0);
    fy_search_result_free(&r);
    fy_search_result_free(NULL);
    fy_policy_destroy(base);
    fy_graph_destroy(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_search_picks_prefetch_that_hides_loads),
        cmocka_unit_test(test_search_records_infeasible_candidates),
        cmocka_unit_test(test_search_none_feasible_is_infeasible),
        cmocka_unit_test(test_search_refuses_lua_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
