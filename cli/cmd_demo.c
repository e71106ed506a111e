/* `ferry demo`: the whole path on a built-in example — generate a small mlp and its weight
 * file, plan it under a gpu budget smaller than its weights, check the plan, run it on the
 * sim device, and verify that its output is bitwise the output of the same graph planned
 * with a roomy budget (weights loaded up front and kept while needed). Leaves every file it wrote
 * (graph, weights, plans) in DIR. */
#include "cli/commands.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Plans g under a gpu budget with the default policy and checks the plan; prints one line. */
static int plan_and_check(const fy_graph *g, uint64_t gpu, const char *path, const char *graph_file,
                          fy_plan **out)
{
    fy_error err = {0};
    fy_machine m;
    fy_machine_default(&m);
    m.capacity[FY_TIER_GPU] = gpu;
    fy_plan_stats st;
    if (fy_plan_make(g, &m, NULL, out, &st, &err) < 0) return fy_cli_report(&err);
    fy_plan_stats_free(&st);
    fy_check_report *rep;
    int n = fy_check_plan(*out, NULL, &rep, &err);
    if (n < 0 || fy_plan_save(*out, path, graph_file, &err) < 0) {
        fy_check_report_destroy(rep);
        return fy_cli_report(&err);
    }
    char a[32], b[32];
    printf("   %s: %zu events, gpu arena %s (budget %s); check: %d error(s), %zu warning(s)\n",
           path, fy_plan_event_count(*out),
           fy_size_format_human(fy_plan_arena(*out, FY_TIER_GPU), a, sizeof a),
           fy_size_format_human(gpu, b, sizeof b), n, fy_check_report_warnings(rep));
    fy_check_report_destroy(rep);
    return n > 0 ? FY_EXIT_VIOLATIONS : FY_EXIT_OK;
}

/* Runs plan on the sim device with x as input; the output goes to y. */
/* Step 3: the dry-run of the plan on its machine, and its plot beside the plan. */
static int dry_run(const fy_plan *plan, const char *dir)
{
    fy_error err = {0};
    fy_sim *sim;
    if (fy_simulate(plan, NULL, NULL, &sim, &err) < 0) return fy_cli_report(&err);
    const fy_sim_summary *s = fy_sim_summary_get(sim);
    char svg[4200], a[32], b[32], c[32], d[32];
    snprintf(svg, sizeof svg, "%s/plan.svg", dir);
    int rc = fy_timeline_write_svg(fy_sim_timeline(sim), svg, &err);
    if (rc == 0)
        printf("3. simulate it on the default machine: predicted %s, gpu peak %s (arena %s), "
               "compute waits %s; plot: %s\n",
               fy_time_format(s->total_s, a, sizeof a),
               fy_size_format_human(s->tier[FY_TIER_GPU].peak, b, sizeof b),
               fy_size_format_human(s->tier[FY_TIER_GPU].arena, c, sizeof c),
               fy_time_format(s->stall_s, d, sizeof d), svg);
    fy_sim_destroy(sim);
    return rc < 0 ? fy_cli_report(&err) : FY_EXIT_OK;
}

static int run(const fy_plan *plan, const char *nvme, void *x, uint64_t xs, void *y, uint64_t ys,
               fy_engine_report *rep)
{
    fy_error err = {0};
    fy_engine *eng;
    if (fy_engine_open(&(fy_engine_config){.device = "sim", .nvme_dir = nvme}, &eng, &err) < 0)
        return fy_cli_report(&err);
    fy_engine_buffer in = {"x", x, xs}, out = {"y", y, ys};
    fy_engine_run_args args = {.inputs = &in, .input_count = 1, .outputs = &out, .output_count = 1};
    int rc = fy_engine_run(eng, plan, &args, rep, &err);
    fy_engine_close(eng);
    return rc < 0 ? fy_cli_report(&err) : FY_EXIT_OK;
}

int fy_cmd_demo(int argc, char **argv)
{
    const char *dir = "ferry-demo";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
            dir = argv[++i];
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: ferry demo [--dir DIR]\n\nRuns ferry's whole path on a built-in "
                   "example: generate an mlp, plan it under\na gpu budget smaller than its "
                   "weights, check the plan, run it on the sim device,\nand verify the output "
                   "against the all-resident run. Leaves its files in DIR\n(default "
                   "./ferry-demo).\n");
            return FY_EXIT_OK;
        } else {
            return fy_cli_fail("demo", "unknown argument '%s'", argv[i]);
        }
    }
    char graph_path[4096], weights_path[4096], plan_path[4096], base_path[4096], nvme[4096];
    snprintf(graph_path, sizeof graph_path, "%s/mlp.yaml", dir);
    snprintf(weights_path, sizeof weights_path, "%s/w.bin", dir);
    snprintf(plan_path, sizeof plan_path, "%s/plan.yaml", dir);
    snprintf(base_path, sizeof base_path, "%s/resident.yaml", dir);
    snprintf(nvme, sizeof nvme, "%s/spill", dir);
    if ((mkdir(dir, 0755) < 0 && errno != EEXIST) || (mkdir(nvme, 0700) < 0 && errno != EEXIST))
        return fy_cli_fail("demo", "cannot create %s: %s", nvme, strerror(errno));

    fy_error err = {0};
    fy_graph *g = NULL;
    fy_mlp_params p = {
        .layers = 8, .hidden = 1024, .batch = 16, .dtype = FY_DTYPE_BF16, .weights_file = "w.bin"};
    printf("1. generate: an mlp of %u layers, %llu wide, batch %llu, %s -> %s\n", p.layers,
           (unsigned long long)p.hidden, (unsigned long long)p.batch, fy_dtype_name(p.dtype),
           graph_path);
    if (fy_graph_generate_mlp(&p, &g, &err) < 0 ||
        fy_graph_write_weights(g, weights_path, 1, &err) < 0 ||
        fy_graph_save(g, graph_path, &err) < 0) {
        fy_graph_destroy(g);
        return fy_cli_report(&err);
    }
    fy_graph_destroy(g);
    if (fy_graph_load(graph_path, &g, &err) < 0) return fy_cli_report(&err);
    fy_cli_print_graph_summary(g, stdout);

    fy_graph_summary sum;
    fy_graph_summarize(g, &sum);
    uint64_t budget = sum.max_working_set + (64 << 10);
    printf(
        "2. plan under a gpu budget of the largest op's working set + 64KiB, and check it;\n"
        "   and the same graph with a roomy budget (every weight loaded ahead), the reference:\n");
    fy_plan *plan = NULL, *base = NULL;
    int rc = plan_and_check(g, budget, plan_path, "mlp.yaml", &plan);
    if (rc == FY_EXIT_OK) rc = plan_and_check(g, sum.total_bytes * 2, base_path, "mlp.yaml", &base);

    if (rc == FY_EXIT_OK) rc = dry_run(plan, dir);

    const fy_tensor *x = fy_graph_tensor(g, (size_t)fy_graph_find_tensor(g, "x"));
    const fy_tensor *y = fy_graph_tensor(g, (size_t)fy_graph_find_tensor(g, "y"));
    uint16_t *in = malloc(x->size);
    void *out = malloc(y->size), *ref = malloc(y->size);
    fy_engine_report rep = {0}, rep_base = {0};
    if (rc == FY_EXIT_OK && (!in || !out || !ref)) rc = fy_cli_fail("demo", "out of memory");
    if (rc == FY_EXIT_OK) {
        for (uint64_t i = 0; i < x->size / 2; i++)
            in[i] = fy_bf16_from_f32((float)((int)(i % 17) - 8) / 16.0f);
        printf("4. run both on the sim device:\n");
        rc = run(plan, nvme, in, x->size, out, y->size, &rep);
    }
    if (rc == FY_EXIT_OK) rc = run(base, nvme, in, x->size, ref, y->size, &rep_base);
    if (rc == FY_EXIT_OK) {
        char a[32], b[32], c[32];
        printf("   planned:   %s, %s moved host->gpu, gpu peak %s\n",
               fy_time_format(rep.wall_s, a, sizeof a),
               fy_size_format_human(rep.queue[FY_ENGINE_QUEUE_H2D].bytes, b, sizeof b),
               fy_size_format_human(rep.peak[FY_TIER_GPU], c, sizeof c));
        printf("   reference: %s, %s moved host->gpu, gpu peak %s\n",
               fy_time_format(rep_base.wall_s, a, sizeof a),
               fy_size_format_human(rep_base.queue[FY_ENGINE_QUEUE_H2D].bytes, b, sizeof b),
               fy_size_format_human(rep_base.peak[FY_TIER_GPU], c, sizeof c));
        bool same = memcmp(out, ref, y->size) == 0;
        printf("5. verify: the output 'y' (%s) is %s\n", fy_size_format_human(y->size, a, sizeof a),
               same ? "bitwise identical to the reference run's"
                    : "DIFFERENT from the reference run's");
        if (!same)
            rc = FY_EXIT_FAILURE;
        else
            printf("demo files are in %s/ (try `ferry check %s`, `ferry simulate %s` and "
                   "`ferry run %s`; open plan.svg)\n",
                   dir, plan_path, plan_path, plan_path);
    }
    fy_engine_report_free(&rep);
    fy_engine_report_free(&rep_base);
    free(in);
    free(out);
    free(ref);
    fy_plan_destroy(plan);
    fy_plan_destroy(base);
    fy_graph_destroy(g);
    return rc;
}
