/* `ferry plan --search`: on a graph where overlapping loads with compute is what matters,
 * the search moves from a base policy without prefetch to one with it, choosing the try with
 * the least predicted time (and the plan it returns is that try's, clean for the checker);
 * with a gpu too small for any plan, it reports every try and fails as infeasible. */
#include "test_util.h"

#include "ferry/ferry.h"

/* Four ops, each reading its own 1GB weight (home: host) for 1 s of compute; h2d 1GB/s. */
static const char *const GRAPH =
    "ferry: graph/1\nname: overlap\ntensors:\n"
    "  x:  {size: 1KB, kind: input}\n"
    "  w0: {size: 1GB, kind: weight, home: host}\n"
    "  w1: {size: 1GB, kind: weight, home: host}\n"
    "  w2: {size: 1GB, kind: weight, home: host}\n"
    "  w3: {size: 1GB, kind: weight, home: host}\n"
    "  a0: {size: 1KB, kind: activation}\n"
    "  a1: {size: 1KB, kind: activation}\n"
    "  a2: {size: 1KB, kind: activation}\n"
    "  y:  {size: 1KB, kind: output}\n"
    "ops:\n"
    "  - {name: f0, kind: spin, reads: [x, w0], writes: [a0], time: 1s}\n"
    "  - {name: f1, kind: spin, reads: [a0, w1], writes: [a1], time: 1s}\n"
    "  - {name: f2, kind: spin, reads: [a1, w2], writes: [a2], time: 1s}\n"
    "  - {name: f3, kind: spin, reads: [a2, w3], writes: [y], time: 1s}\n";

static fy_graph *graph(void)
{
    fy_error err = {0};
    fy_graph *g;
    if (fy_graph_load_string("overlap.yaml", GRAPH, strlen(GRAPH), &g, &err) < 0)
        fail_msg("%s", err.message);
    return g;
}

static void test_search_picks_the_fastest_plan_that_fits(void **state)
{
    (void)state;
    fy_graph *g = graph();
    fy_machine m;
    fy_machine_default(&m);
    m.h2d = m.d2h = 1e9;
    m.capacity[FY_TIER_GPU] = 3000000000ull + 65536; /* room for two weights in flight */
    fy_policy_knobs k;
    fy_policy_knobs_default(&k);
    k.prefetch = 0;
    fy_error err = {0};
    fy_policy *base;
    assert_int_equal(fy_policy_create("no-prefetch", &k, &base, &err), 0);
    fy_plan *plan;
    fy_search_result r;
    if (fy_plan_search(g, &m, base, &plan, &r, &err) < 0) fail_msg("%s", err.message);
    assert_true(r.count >= 5);
    assert_int_equal(r.tries[0].knobs.prefetch, 0); /* the base comes first */
    assert_true(r.best > 0);
    const fy_search_try *best = &r.tries[r.best];
    assert_true(best->fits);
    assert_true(best->knobs.prefetch >= 1);
    /* just in time: 4 x (1 s load + 1 s op); with prefetch the loads hide behind the ops */
    assert_true(r.tries[0].predicted_s > 7.9);
    assert_true(best->predicted_s < 5.1);
    for (size_t i = 0; i < r.count; i++)
        if (r.tries[i].fits) assert_true(best->predicted_s <= r.tries[i].predicted_s + 1e-9);
    assert_non_null(strstr(r.why, "faster than the base policy's"));
    /* the plan returned is the best try's: same prediction, and clean */
    fy_sim *sim;
    assert_int_equal(fy_simulate(plan, &m, NULL, &sim, &err), 0);
    assert_true(fy_sim_summary_get(sim)->total_s == best->predicted_s);
    fy_sim_destroy(sim);
    fy_check_report *rep;
    assert_int_equal(fy_check_plan(plan, NULL, &rep, &err), 0);
    assert_int_equal(fy_check_report_count(rep), 0);
    fy_check_report_destroy(rep);
    fy_plan_destroy(plan);
    fy_search_result_free(&r);
    fy_search_result_free(&r); /* safe twice */
    fy_policy_destroy(base);
    fy_graph_destroy(g);
}

static void test_search_without_a_fitting_plan_is_infeasible(void **state)
{
    (void)state;
    fy_graph *g = graph();
    fy_machine m;
    fy_machine_default(&m);
    m.capacity[FY_TIER_GPU] = 1u << 20; /* smaller than one weight */
    fy_error err = {0};
    fy_plan *plan = (fy_plan *)&err;
    fy_search_result r;
    assert_int_equal(fy_plan_search(g, &m, NULL, &plan, &r, &err), FY_EINFEASIBLE);
    assert_null(plan);
    assert_int_equal(r.best, -1);
    assert_true(r.count >= 1);
    for (size_t i = 0; i < r.count; i++)
        assert_true(r.tries[i].status < 0 && r.tries[i].note[0]);
    assert_non_null(strstr(err.message, "gives a plan that fits"));
    fy_search_result_free(&r);
    fy_graph_destroy(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_search_picks_the_fastest_plan_that_fits),
        cmocka_unit_test(test_search_without_a_fitting_plan_is_infeasible),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
