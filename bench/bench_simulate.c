/* Benchmark of the simulator at scale: the same training-like timeline as bench_check (an
 * mlp trained, with loads, offloads, nvme spills and evicts; plans/plan_gen.h), built in
 * memory, then fy_simulate, the Chrome trace and the SVG plot timed separately.
 *
 *     bench_simulate [--events N] [--repeat R] [--dir DIR]
 *
 * Results go to docs/performance.md (## Simulation). Not a test: nothing here asserts time. */
#include "ferry/ferry.h"
#include "plans/plan_gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const fy_error *err)
{
    fprintf(stderr, "bench_simulate: %s\n", err->message);
    return 1;
}

static double file_mib(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (double)st.st_size / (1 << 20) : 0;
}

int main(int argc, char **argv)
{
    unsigned long events = 1000000, repeat = 3;
    const char *dir = "/tmp";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--events") && i + 1 < argc)
            events = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else {
            fprintf(stderr, "usage: bench_simulate [--events N] [--repeat R] [--dir DIR]\n");
            return 2;
        }
    }
    fy_error err = {0};
    fy_graph *g;
    fy_mlp_params mp = {.layers = (unsigned)(events / 31 + 1),
                        .hidden = 64,
                        .batch = 8,
                        .dtype = FY_DTYPE_BF16,
                        .train = true,
                        .weights_file = "w.bin"};
    if (fy_graph_generate_mlp(&mp, &g, &err) < 0) return fail(&err);
    fy_plan *plan;
    fy_plan_gen_params gp = {.window = 2, .spill_updates = true};
    if (fy_plan_generate(g, NULL, &gp, &plan, &err) < 0) return fail(&err);
    size_t n = fy_plan_event_count(plan);
    printf("plan: %zu events over %zu ops (mlp of %u layers, trained)\n", n, fy_graph_op_count(g),
           mp.layers);
    double best = 1e30, predicted = 0;
    for (unsigned long r = 0; r < repeat; r++) {
        fy_sim *sim;
        double a = now();
        if (fy_simulate(plan, NULL, NULL, &sim, &err) < 0) return fail(&err);
        double b = now();
        if (b - a < best) best = b - a;
        predicted = fy_sim_summary_get(sim)->total_s;
        fy_sim_destroy(sim);
    }
    printf("fy_simulate %.3f s (best of %lu), %.0f ns per event; predicted %.3f s\n", best, repeat,
           best / (double)n * 1e9, predicted);
    fy_sim *sim;
    if (fy_simulate(plan, NULL, NULL, &sim, &err) < 0) return fail(&err);
    char trace[4096], svg[4096];
    snprintf(trace, sizeof trace, "%s/bench_simulate.trace.json", dir);
    snprintf(svg, sizeof svg, "%s/bench_simulate.svg", dir);
    double a = now();
    if (fy_timeline_write_trace(fy_sim_timeline(sim), trace, &err) < 0) return fail(&err);
    double b = now();
    if (fy_timeline_write_svg(fy_sim_timeline(sim), svg, &err) < 0) return fail(&err);
    double c = now();
    printf("trace %.3f s (%.1f MiB), svg %.3f s (%.2f MiB)\n", b - a, file_mib(trace), c - b,
           file_mib(svg));
    remove(trace);
    remove(svg);
    fy_sim_destroy(sim);
    fy_plan_destroy(plan);
    fy_graph_destroy(g);
    return 0;
}
