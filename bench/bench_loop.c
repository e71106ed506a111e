/* bench_loop: the event loop's per-event overhead. A plan of tiny events (per op: an h2d
 * load of 64 bytes, a compute with a kernel that does nothing, two evicts) runs on the sim
 * device, so what is measured is the loop, the device's queues and the wake-ups, not data
 * movement. Prints events per second for the loop alone and for the whole fy_engine_run
 * (check and lowering included).
 *
 * usage: bench_loop [OPS] [REPEATS]     (default 100000 ops, 3 repeats; best is reported) */
#include "ferry/ferry.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int nop(const fy_kernel_call *call, fy_error *err)
{
    (void)call;
    (void)err;
    return 0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int die(const fy_error *err)
{
    fprintf(stderr, "bench_loop: %s\n", err->message);
    return 1;
}

int main(int argc, char **argv)
{
    long ops = argc > 1 ? atol(argv[1]) : 100000, repeats = argc > 2 ? atol(argv[2]) : 3;
    if (ops < 1 || repeats < 1) return fprintf(stderr, "usage: bench_loop [OPS] [REPEATS]\n"), 2;
    fy_error err = {0};
    fy_graph *g;
    if (fy_graph_create("tiny", &g, &err) < 0) return die(&err);
    fy_tensor_desc x = {.name = "x", .kind = FY_TENSOR_INPUT, .size = 64};
    if (fy_graph_add_tensor(g, &x, &err) < 0) return die(&err);
    char name[32], oname[32];
    const char *reads[] = {"x"}, *writes[1] = {name};
    for (long k = 0; k < ops; k++) {
        snprintf(name, sizeof name, "a%ld", k);
        snprintf(oname, sizeof oname, "op%ld", k);
        fy_tensor_desc a = {.name = name, .kind = FY_TENSOR_ACTIVATION, .size = 64};
        fy_op_desc op = {.name = oname,
                         .kind = "nop",
                         .reads = reads,
                         .read_count = 1,
                         .writes = writes,
                         .write_count = 1};
        if (fy_graph_add_tensor(g, &a, &err) < 0 || fy_graph_add_op(g, &op, &err) < 0)
            return die(&err);
    }
    if (fy_graph_validate(g, &err) < 0) return die(&err);
    fy_plan *plan;
    if (fy_plan_create(g, NULL, &plan, &err) < 0) return die(&err);
    long evict_x = -1, evict_a = -1;
    for (long k = 0; k < ops; k++) {
        uint32_t a0[1] = {(uint32_t)evict_x}, a1[2], a2[1];
        fy_event load = {.kind = FY_EVENT_LOAD,
                         .tensor = 0,
                         .from = FY_TIER_HOST,
                         .to = FY_TIER_GPU,
                         .at = 0,
                         .after = a0,
                         .after_count = evict_x >= 0};
        long l = fy_plan_add(plan, &load, &err);
        a1[0] = (uint32_t)l;
        a1[1] = (uint32_t)evict_a;
        fy_placement p = {.tensor = (int32_t)(k + 1), .offset = 64};
        fy_event comp = {.kind = FY_EVENT_COMPUTE,
                         .op = (int32_t)k,
                         .places = &p,
                         .place_count = 1,
                         .after = a1,
                         .after_count = evict_a >= 0 ? 2 : 1};
        long c = fy_plan_add(plan, &comp, &err);
        a2[0] = (uint32_t)c;
        fy_event ex = {.kind = FY_EVENT_EVICT,
                       .tensor = 0,
                       .from = FY_TIER_GPU,
                       .after = a2,
                       .after_count = 1};
        fy_event ea = {.kind = FY_EVENT_EVICT,
                       .tensor = (int32_t)(k + 1),
                       .from = FY_TIER_GPU,
                       .after = a2,
                       .after_count = 1};
        evict_x = fy_plan_add(plan, &ex, &err);
        evict_a = fy_plan_add(plan, &ea, &err);
        if (l < 0 || c < 0 || evict_x < 0 || evict_a < 0) return die(&err);
    }
    fy_plan_set_arena(plan, FY_TIER_GPU, 128);
    size_t events = fy_plan_event_count(plan);
    char input[64] = {0};
    fy_engine_buffer in = {"x", input, 64};
    fy_engine_run_args args = {.inputs = &in, .input_count = 1};
    printf("bench_loop: %zu events (%ld ops: h2d load, compute, 2 evicts), sim device\n", events,
           ops);
    printf("%-22s %12s %12s %12s %12s\n", "mode", "loop s", "events/s", "us/event", "run events/s");
    for (int waits = 0; waits < 2; waits++) {
        fy_engine *eng;
        fy_engine_config cfg = {
            .device = "sim", .io = "threads", .threads = 1, .sim_device_waits = waits};
        if (fy_engine_open(&cfg, &eng, &err) < 0 ||
            fy_engine_add_kernel(eng, FY_TIER_GPU, "nop", nop, NULL, &err) < 0)
            return die(&err);
        double best_loop = 1e30, best_run = 1e30;
        for (long r = 0; r < repeats; r++) {
            fy_engine_report rep;
            double t0 = now();
            if (fy_engine_run(eng, plan, &args, &rep, &err) < 0) return die(&err);
            double t = now() - t0;
            if (rep.wall_s < best_loop) best_loop = rep.wall_s;
            if (t < best_run) best_run = t;
            fy_engine_report_free(&rep);
        }
        printf("%-22s %12.3f %12.0f %12.2f %12.0f\n", waits ? "device-side waits" : "host waits",
               best_loop, (double)events / best_loop, best_loop * 1e6 / (double)events,
               (double)events / best_run);
        fy_engine_close(eng);
    }
    fy_plan_destroy(plan);
    fy_graph_destroy(g);
    return 0;
}
