/* Planning speed: a 32-layer transformer training graph and a 1,000-layer mlp training
 * graph (ferry's generators), each planned under a tight gpu and a roomy one; prints the
 * time of the best of 3 runs, the events, the bytes moved and the arena/peak ratios.
 * Usage: bench_plan [runs]. Results go to docs/performance.md (## Planning). */
#include "ferry/ferry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int bench(const char *label, const fy_graph *g, uint64_t gpu, const char *policy_text,
                 int runs)
{
    fy_error err = {0};
    fy_policy *pol;
    if (fy_policy_load_string("bench", policy_text, strlen(policy_text), &pol, &err) < 0)
        return fprintf(stderr, "%s\n", err.message), 1;
    fy_machine m;
    fy_machine_default(&m);
    m.capacity[FY_TIER_GPU] = gpu;
    double best = 1e9;
    fy_plan_stats st = {0};
    for (int r = 0; r < runs; r++) {
        fy_plan *p;
        fy_plan_stats_free(&st);
        double t0 = now();
        if (fy_plan_make(g, &m, pol, &p, &st, &err) < 0) {
            fprintf(stderr, "%s: %s\n", label, err.message);
            fy_policy_destroy(pol);
            return 1;
        }
        double t = now() - t0;
        best = t < best ? t : best;
        fy_plan_destroy(p);
    }
    char a[32], b[32], c[32];
    printf("%-34s gpu %-8s %8.3f s %9zu events  moved %-9s gpu peak %-9s ratio %.4f  "
           "passes %u\n",
           label, fy_size_format_human(gpu, c, sizeof c), best, st.events,
           fy_size_format_human(st.bytes_total, b, sizeof b),
           fy_size_format_human(st.tier[FY_TIER_GPU].peak, a, sizeof a), st.tier[FY_TIER_GPU].ratio,
           st.passes);
    fy_plan_stats_free(&st);
    fy_policy_destroy(pol);
    return 0;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 3;
    fy_error err = {0};
    fy_graph *t, *m;
    fy_transformer_params tp = {.layers = 32,
                                .hidden = 4096,
                                .ffn = 11008,
                                .heads = 32,
                                .seq = 2048,
                                .batch = 1,
                                .vocab = 32000,
                                .dtype = FY_DTYPE_BF16,
                                .train = true,
                                .weights_file = "w.bin"};
    fy_mlp_params mp = {.layers = 1000,
                        .hidden = 4096,
                        .batch = 16,
                        .dtype = FY_DTYPE_BF16,
                        .train = true,
                        .weights_file = "w.bin"};
    if (fy_graph_generate_transformer(&tp, &t, &err) < 0 ||
        fy_graph_generate_mlp(&mp, &m, &err) < 0)
        return fprintf(stderr, "%s\n", err.message), 1;
    printf("transformer-32 train: %zu ops, %zu tensors; mlp-1000 train: %zu ops, %zu tensors\n",
           fy_graph_op_count(t), fy_graph_tensor_count(t), fy_graph_op_count(m),
           fy_graph_tensor_count(m));
    const uint64_t GiB = 1ull << 30;
    int rc = 0;
    rc |= bench("transformer-32 train, default", t, 80 * GiB, "ferry: policy/1\n", runs);
    rc |= bench("transformer-32 train, default", t, 24 * GiB, "ferry: policy/1\n", runs);
    rc |= bench("transformer-32 train, train-offload", t, 24 * GiB,
                "ferry: policy/1\nprefetch: 2\nactivations: {offload: host, idle: 4}\n", runs);
    rc |= bench("mlp-1000 train, default", m, 80 * GiB, "ferry: policy/1\n", runs);
    rc |= bench("mlp-1000 train, default", m, 8 * GiB, "ferry: policy/1\n", runs);
    rc |=
        bench("mlp-1000 train, stream", m, 8 * GiB,
              "ferry: policy/1\nprefetch: 2\nevict: after-last-use\nstaging: {buffers: 2}\n", runs);
    fy_graph_destroy(t);
    fy_graph_destroy(m);
    return rc;
}
