/* Requests per second for an interleaved sequence of requests over 2 and 4 models (A B A B ...,
 * A B C D A B C D ...) on one gpu budget that cannot hold them all, four ways:
 *   naive      a fresh engine (arenas, streams) per request, weights read from their files;
 *   workspace  one workspace, arenas allocated once, weights read from files per request;
 *   ws+cache   the same with the host weight cache (weights read once; each request h2d only);
 *   sequence   the whole trace planned as one timeline (fy_sequence_graph): weights that stay
 *              on the gpu across requests are not loaded again (an offline trace).
 * Every request's output is checked against the naive run's, bitwise.
 *
 * usage: bench_serving [--device sim|cuda] [--layers N] [--hidden N] [--batch N]
 *                      [--requests N] [--gpu SIZE] [--dir DIR] */
#include "ferry/ferry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, const fy_error *err)
{
    fprintf(stderr, "bench_serving: %s: %s\n", what, err ? err->message : "");
    exit(2);
}

typedef struct model {
    fy_graph *g;
    fy_plan *plan; /* for the naive runs */
    char name[8];
    void *x, *y, *ref;
    uint64_t xs, ys;
} model;

static fy_engine_run_args args_of(model *m, void *y, fy_engine_buffer b[2])
{
    b[0] = (fy_engine_buffer){"x", m->x, m->xs};
    b[1] = (fy_engine_buffer){"y", y, m->ys};
    return (fy_engine_run_args){.inputs = b, .input_count = 1, .outputs = b + 1, .output_count = 1};
}

static void check_out(const model *m, const void *y, const char *mode)
{
    if (memcmp(y, m->ref, m->ys)) {
        fprintf(stderr, "bench_serving: %s: model %s's output differs from the naive run\n", mode,
                m->name);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    const char *device = "sim", *dir = "/var/tmp/ferry-bench-serving";
    unsigned layers = 4, hidden = 1024, batch = 16, requests = 32;
    uint64_t gpu = 0;
    fy_error err = {0};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--device"))
            device = argv[i + 1];
        else if (!strcmp(argv[i], "--layers"))
            layers = (unsigned)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--hidden"))
            hidden = (unsigned)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch"))
            batch = (unsigned)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--requests"))
            requests = (unsigned)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dir"))
            dir = argv[i + 1];
        else if (!strcmp(argv[i], "--gpu")) {
            if (fy_size_parse(argv[i + 1], &gpu, &err) < 0) die("--gpu", &err);
        } else {
            fprintf(stderr, "bench_serving: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    mkdir(dir, 0700);
    uint64_t wbytes = (uint64_t)hidden * hidden * 4 * layers;
    /* Room for one and a half models: every switch must evict. */
    if (!gpu) gpu = wbytes * 3 / 2 + (uint64_t)batch * hidden * 4 * 8 + (4u << 20);
    uint64_t host = (uint64_t)batch * hidden * 4 * 4 + (8u << 20) + wbytes * 2;
    model m[4];
    fy_machine mach;
    fy_machine_default(&mach);
    mach.capacity[FY_TIER_GPU] = gpu;
    mach.capacity[FY_TIER_HOST] = host;
    fy_engine_config ec = {.device = device, .nvme_dir = dir};
    for (int i = 0; i < 4; i++) {
        char wpath[4096];
        snprintf(wpath, sizeof wpath, "%s/w%d.bin", dir, i);
        snprintf(m[i].name, sizeof m[i].name, "%c", 'A' + i);
        fy_mlp_params p = {.layers = layers,
                           .hidden = hidden,
                           .batch = batch,
                           .dtype = FY_DTYPE_F32,
                           .weights_file = wpath};
        if (fy_graph_generate_mlp(&p, &m[i].g, &err) < 0 ||
            fy_graph_write_weights(m[i].g, wpath, (uint64_t)i + 1, &err) < 0 ||
            fy_plan_make(m[i].g, &mach, NULL, &m[i].plan, NULL, &err) < 0)
            die("model", &err);
        m[i].xs = fy_graph_tensor(m[i].g, (size_t)fy_graph_find_tensor(m[i].g, "x"))->size;
        m[i].ys = fy_graph_tensor(m[i].g, (size_t)fy_graph_find_tensor(m[i].g, "y"))->size;
        m[i].x = malloc(m[i].xs);
        m[i].y = malloc(m[i].ys);
        m[i].ref = malloc(m[i].ys);
        float *x = m[i].x;
        for (uint64_t k = 0; k < m[i].xs / 4; k++)
            x[k] = (float)((k * 7 + (uint64_t)i) % 13) / 13.0f - 0.5f;
    }
    char gb[32], wb[32];
    fy_engine *probe;
    if (fy_engine_open(&ec, &probe, &err) < 0) die("engine", &err);
    printf("device: %s\n", fy_engine_description(probe));
    printf("models: mlp %u layers, hidden %u, batch %u, f32 (%s of weights each); gpu budget %s; "
           "%u requests\n",
           layers, hidden, batch, fy_size_format_human(wbytes, wb, sizeof wb),
           fy_size_format_human(gpu, gb, sizeof gb), requests);
    for (int i = 0; i < 4; i++) {
        fy_engine_buffer b[2];
        fy_engine_run_args a = args_of(&m[i], m[i].ref, b);
        if (fy_engine_run(probe, m[i].plan, &a, NULL, &err) < 0) die("reference run", &err);
    }
    fy_engine_close(probe);
    printf("%-7s %-10s %10s %10s %8s\n", "models", "mode", "seconds", "req/s", "vs naive");
    for (int nm = 2; nm <= 4; nm += 2) {
        double t, naive_rps;
        /* naive: a fresh engine per request */
        t = now_s();
        for (unsigned r = 0; r < requests; r++) {
            model *q = &m[r % (unsigned)nm];
            fy_engine *e;
            fy_engine_buffer b[2];
            fy_engine_run_args a = args_of(q, q->y, b);
            if (fy_engine_open(&ec, &e, &err) < 0 || fy_engine_run(e, q->plan, &a, NULL, &err) < 0)
                die("naive", &err);
            fy_engine_close(e);
            check_out(q, q->y, "naive");
        }
        t = now_s() - t;
        naive_rps = requests / t;
        printf("%-7d %-10s %10.4f %10.1f %8.2f\n", nm, "naive", t, naive_rps, 1.0);
        for (int cached = 0; cached < 2; cached++) {
            fy_weight_cache *cache = NULL;
            if (cached && fy_weight_cache_create(&cache, &err) < 0) die("cache", &err);
            fy_workspace *ws;
            fy_workspace_config wc = {
                .engine = ec, .gpu_bytes = gpu, .host_bytes = host, .weights = cache};
            if (fy_workspace_create(&wc, &ws, &err) < 0) die("workspace", &err);
            fy_model *h[4];
            for (int i = 0; i < nm; i++)
                if (fy_workspace_attach(ws, &(fy_model_config){.name = m[i].name, .graph = m[i].g},
                                        &h[i], &err) < 0)
                    die("attach", &err);
            t = now_s();
            for (unsigned r = 0; r < requests; r++) {
                model *q = &m[r % (unsigned)nm];
                fy_engine_buffer b[2];
                fy_engine_run_args a = args_of(q, q->y, b);
                if (fy_workspace_run(ws, h[r % (unsigned)nm], &a, NULL, &err) < 0)
                    die("workspace run", &err);
                check_out(q, q->y, "workspace");
            }
            t = now_s() - t;
            printf("%-7d %-10s %10.4f %10.1f %8.2f\n", nm, cached ? "ws+cache" : "workspace", t,
                   requests / t, requests / t / naive_rps);
            fy_workspace_destroy(ws);
            fy_weight_cache_destroy(cache);
        }
        /* sequence: the whole trace as one plan */
        fy_sequence_model sm[4];
        size_t *req = malloc(requests * sizeof *req);
        for (int i = 0; i < nm; i++)
            sm[i] = (fy_sequence_model){m[i].name, m[i].g};
        for (unsigned r = 0; r < requests; r++)
            req[r] = r % (unsigned)nm;
        fy_graph *sg;
        fy_plan *sp;
        double tp = now_s();
        if (fy_sequence_graph(sm, (size_t)nm, req, requests, &sg, &err) < 0 ||
            fy_plan_make(sg, &mach, NULL, &sp, NULL, &err) < 0)
            die("sequence plan", &err);
        tp = now_s() - tp;
        fy_engine_buffer *in = calloc(requests * 2, sizeof *in);
        char(*names)[32] = calloc(requests * 2, sizeof *names);
        void **outs = calloc(requests, sizeof *outs);
        for (unsigned r = 0; r < requests; r++) {
            model *q = &m[req[r]];
            snprintf(names[2 * r], 32, "%s@%u/x", q->name, r);
            snprintf(names[2 * r + 1], 32, "%s@%u/y", q->name, r);
            outs[r] = malloc(q->ys);
            in[r] = (fy_engine_buffer){names[2 * r], q->x, q->xs};
            in[requests + r] = (fy_engine_buffer){names[2 * r + 1], outs[r], q->ys};
        }
        fy_engine *e;
        fy_engine_run_args a = {.inputs = in,
                                .input_count = requests,
                                .outputs = in + requests,
                                .output_count = requests};
        t = now_s();
        if (fy_engine_open(&ec, &e, &err) < 0 || fy_engine_run(e, sp, &a, NULL, &err) < 0)
            die("sequence run", &err);
        t = now_s() - t;
        fy_engine_close(e);
        for (unsigned r = 0; r < requests; r++) {
            check_out(&m[req[r]], outs[r], "sequence");
            free(outs[r]);
        }
        printf("%-7d %-10s %10.4f %10.1f %8.2f   (planned in %.3f s, not counted)\n", nm,
               "sequence", t, requests / t, requests / t / naive_rps, tp);
        free(outs);
        free(names);
        free(in);
        free(req);
        fy_plan_destroy(sp);
        fy_graph_destroy(sg);
    }
    for (int i = 0; i < 4; i++) {
        fy_plan_destroy(m[i].plan);
        fy_graph_destroy(m[i].g);
        free(m[i].x);
        free(m[i].y);
        free(m[i].ref);
    }
    return 0;
}
