/* Benchmark of plan loading and checking at scale: generates a training-like timeline (an
 * mlp with many layers, trained: forward, backward and an adam step per weight, with
 * loads, offloads, spills to nvme and evicts behind realistic `after` edges), writes it,
 * then times fy_plan_load and fy_check_plan separately, and `ferry check` end to end.
 *
 *     bench_check [--events N] [--dir DIR] [--ferry PATH] [--repeat R] [--chain]
 *
 * --chain times instead a worst case for the happens-before index: 2,000 host copies read
 * by io after a chain of evicts as long as the rest of the plan (every read and every evict
 * of them is unordered, so each is a query between two off-stream events).
 *
 * Results go to docs/performance.md (## Checking). Not a test: nothing here asserts time. */
#include "ferry/ferry.h"
#include "plans/plan_gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of this process: the machine is shared, so wall time alone can mislead. */
static double cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024;
}

static int fail(const fy_error *err)
{
    char line[FY_ERROR_MESSAGE_MAX + FY_ERROR_PATH_MAX + 64];
    fy_error_format(err, line, sizeof line);
    fprintf(stderr, "bench_check: %s\n", line);
    return 2;
}

/* The --chain plan: K io loads, a chain of evicts, then K io offloads and K evicts of the
 * loaded copies, each after the chain's end only. */
static int chain_case(unsigned long events, unsigned long repeat)
{
    enum { K = 2000 };
    fy_error err = {0};
    fy_graph *g;
    if (fy_graph_create("chain", &g, &err) < 0) return fail(&err);
    char name[32];
    for (int k = 0; k < K; k++) {
        snprintf(name, sizeof name, "w%d", k);
        fy_tensor_desc d = {.name = name,
                            .kind = FY_TENSOR_WEIGHT,
                            .size = 256,
                            .source_file = "w.bin",
                            .source_offset = 256 * (uint64_t)k};
        if (fy_graph_add_tensor(g, &d, &err) < 0) return fail(&err);
    }
    fy_tensor_desc sd = {.name = "s", .kind = FY_TENSOR_ACTIVATION, .size = 256};
    fy_tensor_desc yd = {.name = "y", .kind = FY_TENSOR_OUTPUT, .size = 256};
    const char *reads[] = {"w0"}, *writes[] = {"y"};
    fy_op_desc od = {.name = "f",
                     .kind = "copy",
                     .reads = reads,
                     .read_count = 1,
                     .writes = writes,
                     .write_count = 1};
    fy_plan *plan;
    if (fy_graph_add_tensor(g, &sd, &err) < 0 || fy_graph_add_tensor(g, &yd, &err) < 0 ||
        fy_graph_add_op(g, &od, &err) < 0 || fy_graph_validate(g, &err) < 0 ||
        fy_plan_create(g, NULL, &plan, &err) < 0)
        return fail(&err);
    fy_plan_set_arena(plan, FY_TIER_HOST, 256 * K);
    fy_plan_set_arena(plan, FY_TIER_NVME, 256 * K);
    for (int k = 0; k < K; k++) {
        fy_event ev = {.kind = FY_EVENT_LOAD,
                       .tensor = k,
                       .from = FY_TIER_NVME,
                       .to = FY_TIER_HOST,
                       .at = 256 * (uint64_t)k};
        fy_plan_add(plan, &ev, &err);
    }
    uint32_t prev = 0;
    for (size_t i = K; i + 2 * K < events; i++) {
        fy_event ev = {.kind = FY_EVENT_EVICT,
                       .tensor = K,
                       .from = FY_TIER_GPU,
                       .after = &prev,
                       .after_count = 1};
        prev = (uint32_t)fy_plan_add(plan, &ev, &err);
    }
    for (int k = 0; k < K; k++) {
        fy_event off = {.kind = FY_EVENT_OFFLOAD,
                        .tensor = k,
                        .from = FY_TIER_HOST,
                        .to = FY_TIER_NVME,
                        .at = 256 * (uint64_t)k,
                        .after = &prev,
                        .after_count = 1};
        fy_event ev = {.kind = FY_EVENT_EVICT,
                       .tensor = k,
                       .from = FY_TIER_HOST,
                       .after = &prev,
                       .after_count = 1};
        fy_plan_add(plan, &off, &err);
        fy_plan_add(plan, &ev, &err);
    }
    double best = 1e30, best_cpu = 1e30;
    int errors = 0;
    for (unsigned long r = 0; r < repeat; r++) {
        double a = now(), ca = cpu();
        fy_check_report *rep;
        errors = fy_check_plan(plan, NULL, &rep, &err);
        double b = now(), cb = cpu();
        if (errors < 0) return fail(&err);
        fy_check_report_destroy(rep);
        if (b - a < best) best = b - a;
        if (cb - ca < best_cpu) best_cpu = cb - ca;
    }
    printf("chain plan: %zu events; fy_check_plan %.3f s wall, %.3f s cpu (best of %lu), %d "
           "errors\n",
           fy_plan_event_count(plan), best, best_cpu, repeat, errors);
    fy_plan_destroy(plan);
    fy_graph_destroy(g);
    return 0;
}

int main(int argc, char **argv)
{
    bool chain = false;
    unsigned long events = 1000000, repeat = 3;
    const char *dir = "/tmp/ferry-bench-check", *ferry = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--events") && i + 1 < argc)
            events = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--ferry") && i + 1 < argc)
            ferry = argv[++i];
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--chain"))
            chain = true;
        else {
            fprintf(stderr, "usage: bench_check [--events N] [--dir DIR] [--ferry PATH] "
                            "[--repeat R] [--chain]\n");
            return 2;
        }
    }
    if (repeat < 1) repeat = 1;
    if (chain) return chain_case(events, repeat);
    mkdir(dir, 0755);
    char graph_path[4096], plan_path[4096];
    snprintf(graph_path, sizeof graph_path, "%s/graph.yaml", dir);
    snprintf(plan_path, sizeof plan_path, "%s/plan.yaml", dir);

    /* About 31 events per trained mlp layer with these settings. */
    fy_error err = {0};
    fy_graph *g;
    fy_mlp_params mp = {.layers = (unsigned)(events / 31 + 1),
                        .hidden = 64,
                        .batch = 8,
                        .dtype = FY_DTYPE_BF16,
                        .train = true,
                        .weights_file = "w.bin"};
    double t0 = now();
    if (fy_graph_generate_mlp(&mp, &g, &err) < 0) return fail(&err);
    fy_plan *plan;
    fy_plan_gen_params gp = {.window = 2, .spill_updates = true};
    if (fy_plan_generate(g, NULL, &gp, &plan, &err) < 0) return fail(&err);
    double t1 = now();
    if (fy_graph_save(g, graph_path, &err) < 0 ||
        fy_plan_save(plan, plan_path, "graph.yaml", &err) < 0)
        return fail(&err);
    double t2 = now();
    size_t n = fy_plan_event_count(plan);
    struct stat st;
    stat(plan_path, &st);
    printf("plan: %zu events over %zu ops, %zu tensors (mlp of %u layers, trained); %.1f MiB "
           "of YAML\n",
           n, fy_graph_op_count(g), fy_graph_tensor_count(g), mp.layers,
           (double)st.st_size / (1 << 20));
    printf("generate %.3f s, save %.3f s\n", t1 - t0, t2 - t1);
    fy_plan_destroy(plan);

    double best_load = 1e30, best_check = 1e30, cpu_load = 1e30, cpu_check = 1e30;
    int errors = -1;
    for (unsigned long r = 0; r < repeat; r++) {
        double a = now(), ca = cpu();
        if (fy_plan_load(plan_path, g, &plan, &err) < 0) return fail(&err);
        double b = now(), cb = cpu();
        fy_check_report *rep;
        errors = fy_check_plan(plan, NULL, &rep, &err);
        double c = now(), cc = cpu();
        if (errors < 0) return fail(&err);
        if (cb - ca < cpu_load) cpu_load = cb - ca;
        if (cc - cb < cpu_check) cpu_check = cc - cb;
        if (b - a < best_load) best_load = b - a;
        if (c - b < best_check) best_check = c - b;
        fy_check_report_destroy(rep);
        fy_plan_destroy(plan);
    }
    printf("fy_plan_load  %.3f s wall, %.3f s cpu (best of %lu)\n", best_load, cpu_load, repeat);
    printf("fy_check_plan %.3f s wall, %.3f s cpu (best of %lu), %d errors; %.0f ns per "
           "event\n",
           best_check, cpu_check, repeat, errors, best_check / (double)n * 1e9);
    printf("peak RSS of this process: %ld MiB\n", peak_rss_mib());
    fy_graph_destroy(g);

    if (ferry) {
        char cmd[8400];
        snprintf(cmd, sizeof cmd, "%s check %s > /dev/null", ferry, plan_path);
        double best = 1e30;
        int rc = 0;
        for (unsigned long r = 0; r < repeat; r++) {
            double a = now();
            rc = system(cmd);
            double b = now();
            if (b - a < best) best = b - a;
        }
        printf("ferry check (end to end: graph, plan, check, print) %.3f s (best of %lu), "
               "exit %d\n",
               best, repeat, WEXITSTATUS(rc));
    }
    return 0;
}
