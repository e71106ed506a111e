/* The engine's key property on plans made by the planner: for many random graphs, policies
 * (prefetch, eviction rule, staging buffers, activation offload to host or nvme) and gpu and
 * host budgets down to the smallest that fit, the outputs of the offloading run are bitwise
 * equal to the all-resident run of the same graph, on the sim device. */
#include "test_util.h"

#include "engine_plans.h"

#include <signal.h>
#include <sys/stat.h>

static void run_ok(fy_engine *eng, const fy_plan *plan, const fy_graph *g, void **out,
                   const char *what)
{
    fy_engine_buffer in[4], ob[4];
    size_t nin = 0, nout = 0;
    for (size_t t = 0; t < fy_graph_tensor_count(g); t++) {
        const fy_tensor *tn = fy_graph_tensor(g, t);
        if (tn->home == FY_TIER_HOST) {
            in[nin] = (fy_engine_buffer){tn->name, malloc(tn->size), tn->size};
            eg_fill(in[nin++].data, tn->size, t);
        }
        if (tn->kind == FY_TENSOR_OUTPUT || tn->kind == FY_TENSOR_OPTIMIZER) {
            out[nout] = calloc(1, tn->size);
            ob[nout] = (fy_engine_buffer){tn->name, out[nout], tn->size};
            nout++;
        }
    }
    fy_error err = {0};
    fy_engine_run_args a = {.inputs = in, .input_count = nin, .outputs = ob, .output_count = nout};
    if (fy_engine_run(eng, plan, &a, NULL, &err) < 0) fail_msg("%s: %s", what, err.message);
    for (size_t k = 0; k < nin; k++)
        free(in[k].data);
}

static void test_engine_planner_plans_give_the_all_resident_outputs(void **state)
{
    (void)state;
    char *dir = fy_test_scratch("engine-planner");
    char weights[4200], nvme[4200];
    snprintf(weights, sizeof weights, "%s/w.bin", dir);
    snprintf(nvme, sizeof nvme, "%s/nvme", dir);
    mkdir(nvme, 0700);
    fy_error err = {0};
    fy_engine *eng;
    fy_engine_config cfg = {.device = "sim", .nvme_dir = nvme, .threads = 1};
    assert_int_equal(fy_engine_open(&cfg, &eng, &err), 0);
    size_t planned = 0, infeasible = 0, spilled = 0;
    for (uint64_t seed = 1; seed <= 30; seed++) {
        eg_graph_params gp = {.seed = seed * 13,
                              .ops = 5 + seed % 11,
                              .batch = 2 + (unsigned)(seed % 4),
                              .hidden = 16 << (seed % 3),
                              .weights = 1 + seed % 5,
                              .host_ops = seed % 2 == 0,
                              .weights_path = weights};
        fy_graph *g = eg_graph(&gp);
        assert_non_null(g);
        fy_plan *base = eg_plan(g, &(eg_policy){.seed = seed});
        assert_non_null(base);
        void *ref[4] = {0};
        run_ok(eng, base, g, ref, "all-resident");
        fy_graph_summary sum;
        fy_graph_summarize(g, &sum);
        for (int p = 0; p < 6; p++) {
            fy_policy_knobs k;
            fy_policy_knobs_default(&k);
            k.prefetch = (unsigned)(p % 3);
            k.evict = (fy_evict_rule)(p % FY_EVICT_RULE_COUNT);
            k.staging_buffers = (unsigned)(p % 2);
            if (p >= 3) {
                k.activations_offload = p == 5 ? FY_TIER_NVME : FY_TIER_HOST;
                k.activations_idle = 1;
            }
            fy_policy *pol;
            assert_int_equal(fy_policy_create("test", &k, &pol, &err), 0);
            fy_machine m;
            fy_machine_default(&m);
            /* From roomy down to barely more than the largest op's working set. */
            uint64_t ws = sum.max_working_set + 4096 * 4;
            m.capacity[FY_TIER_GPU] = ws * (uint64_t)(1 + (seed + (uint64_t)p) % 4);
            if (p == 5) m.capacity[FY_TIER_HOST] = ws * 2;
            fy_plan *plan;
            int rc = fy_plan_make(g, &m, pol, &plan, NULL, &err);
            fy_policy_destroy(pol);
            if (rc == FY_EINFEASIBLE) {
                infeasible++;
                continue;
            }
            if (rc < 0)
                fail_msg("plan seed %llu policy %d: %s", (unsigned long long)seed, p, err.message);
            for (size_t i = 0; i < fy_plan_event_count(plan); i++)
                spilled += fy_plan_event(plan, i)->to == FY_TIER_NVME;
            void *out[4] = {0};
            char what[64];
            snprintf(what, sizeof what, "seed %llu policy %d", (unsigned long long)seed, p);
            run_ok(eng, plan, g, out, what);
            for (size_t k2 = 0; k2 < 4 && out[k2]; k2++) {
                const fy_tensor *tn = NULL;
                size_t n = 0;
                for (size_t t = 0; t < fy_graph_tensor_count(g); t++) {
                    const fy_tensor *c = fy_graph_tensor(g, t);
                    if (c->kind == FY_TENSOR_OUTPUT || c->kind == FY_TENSOR_OPTIMIZER)
                        if (n++ == k2) tn = c;
                }
                if (memcmp(out[k2], ref[k2], tn->size) != 0)
                    fail_msg("%s: output '%s' differs from the all-resident run", what, tn->name);
                free(out[k2]);
            }
            fy_plan_destroy(plan);
            planned++;
        }
        for (int k2 = 0; k2 < 4; k2++)
            free(ref[k2]);
        fy_plan_destroy(base);
        fy_graph_destroy(g);
    }
    fprintf(stderr, "%zu planner plans run (%zu writing to nvme), %zu infeasible budgets\n",
            planned, spilled, infeasible);
    assert_true(planned >= 100);
    fy_engine_close(eng);
    fy_test_scratch_remove(dir);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    alarm(240);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_planner_plans_give_the_all_resident_outputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
