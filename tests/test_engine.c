/* Engine tests: plans run on the sim device with every io backend; outputs of offloading
 * plans are bitwise equal to the all-resident run and to a direct reference; reports,
 * callbacks, user kernels, traces and refusals. Fault injection is in test_engine_faults.c. */
#include "test_util.h"

#include "engine_plans.h"
#include "engine/exec.h"
#include "ferry/check.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>

typedef struct fixture {
    char *dir;
    char weights[4200], nvme[4200];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = fy_test_scratch("engine");
    snprintf(f->weights, sizeof f->weights, "%s/w.bin", f->dir);
    snprintf(f->nvme, sizeof f->nvme, "%s/nvme", f->dir);
    mkdir(f->nvme, 0700);
    *state = f;
    alarm(240); /* a hang fails the test instead of blocking the suite */
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    alarm(0);
    fy_test_scratch_remove(f->dir);
    free(f);
    return 0;
}

/* Buffers of one run: inputs (host-home tensors) filled deterministically, outputs y and
 * state. */
typedef struct io_bufs {
    fy_engine_buffer in[4], out[4];
    size_t nin, nout;
} io_bufs;

static void bufs_make(const fy_graph *g, io_bufs *b)
{
    memset(b, 0, sizeof *b);
    for (size_t t = 0; t < fy_graph_tensor_count(g); t++) {
        const fy_tensor *tn = fy_graph_tensor(g, t);
        if (tn->home == FY_TIER_HOST) {
            void *p = malloc(tn->size);
            eg_fill(p, tn->size, t);
            b->in[b->nin++] = (fy_engine_buffer){tn->name, p, tn->size};
        }
        if (tn->kind == FY_TENSOR_OUTPUT || tn->kind == FY_TENSOR_OPTIMIZER)
            b->out[b->nout++] = (fy_engine_buffer){tn->name, calloc(1, tn->size), tn->size};
    }
}

static void bufs_free(io_bufs *b)
{
    for (size_t k = 0; k < b->nin; k++)
        free(b->in[k].data);
    for (size_t k = 0; k < b->nout; k++)
        free(b->out[k].data);
}

static int run_plan(fy_engine *eng, const fy_plan *plan, io_bufs *b, fy_engine_report *rep,
                    fy_error *err)
{
    fy_engine_run_args a = {
        .inputs = b->in, .input_count = b->nin, .outputs = b->out, .output_count = b->nout};
    return fy_engine_run(eng, plan, &a, rep, err);
}

/* poll_us > 0: the loop also looks for completions that often (the path cuda takes). */
static fy_engine *open_engine_polling(fixture *f, const char *io, bool device_waits, int poll_us)
{
    fy_error err = {0};
    fy_engine *eng = NULL;
    fy_engine_config cfg = {.device = "sim",
                            .io = io,
                            .nvme_dir = f->nvme,
                            .threads = 1,
                            .sim_device_waits = device_waits,
                            .completion_poll_us = poll_us};
    int rc = fy_engine_open(&cfg, &eng, &err);
    if (rc == FY_EUNSUPPORTED) return NULL;
    if (rc < 0) fail_msg("fy_engine_open: %s", err.message);
    return eng;
}

static fy_engine *open_engine(fixture *f, const char *io, bool device_waits)
{
    return open_engine_polling(f, io, device_waits, 0);
}

static void test_engine_all_resident_run_matches_reference(void **state)
{
    fixture *f = *state;
    eg_graph_params gp = {.seed = 1,
                          .ops = 12,
                          .batch = 4,
                          .hidden = 16,
                          .weights = 3,
                          .host_ops = true,
                          .weights_path = f->weights};
    fy_graph *g = eg_graph(&gp);
    assert_non_null(g);
    eg_policy resident = {.seed = 1};
    fy_plan *plan = eg_plan(g, &resident);
    assert_non_null(plan);
    fy_engine *eng = open_engine(f, "threads", false);
    io_bufs b;
    bufs_make(g, &b);
    /* The reference runs on copies of the same inputs. */
    size_t nt = fy_graph_tensor_count(g);
    void **ref = calloc(nt, sizeof *ref);
    bool *owned = calloc(nt, sizeof *owned);
    for (size_t k = 0; k < b.nin; k++) {
        long t = fy_graph_find_tensor(g, b.in[k].name);
        ref[t] = malloc(b.in[k].size);
        memcpy(ref[t], b.in[k].data, b.in[k].size);
    }
    assert_int_equal(eg_reference(g, ref, owned), 0);
    fy_error err = {0};
    fy_engine_report rep;
    int rc = run_plan(eng, plan, &b, &rep, &err);
    if (rc < 0) fail_msg("run: %s", err.message);
    for (size_t k = 0; k < b.nout; k++) {
        long t = fy_graph_find_tensor(g, b.out[k].name);
        assert_memory_equal(b.out[k].data, ref[t], b.out[k].size);
    }
    assert_int_equal(rep.event_count, fy_plan_event_count(plan));
    assert_true(rep.wall_s > 0);
    assert_int_equal(fy_test_dir_entries(f->nvme), 0);
    fy_engine_report_free(&rep);
    for (size_t t = 0; t < nt; t++)
        free(ref[t]);
    free(ref);
    free(owned);
    bufs_free(&b);
    fy_engine_close(eng);
    fy_plan_destroy(plan);
    fy_graph_destroy(g);
}

/* The property: for many random graphs and policies, on every io backend, with and without
 * device-side waits, offloading changes no output bit. */
static void test_engine_offloaded_outputs_equal_all_resident(void **state)
{
    fixture *f = *state;
    const char *ios[] = {"threads", "io_uring"};
    size_t runs = 0, spills = 0, d2h = 0, reused = 0;
    for (int io = 0; io < 2; io++) {
        for (int dw = 0; dw < 3; dw++) { /* waits: engine, device, device and polled */
            fy_engine *eng = open_engine_polling(f, ios[io], dw > 0, dw == 2 ? 20 : 0);
            if (!eng) {
                fprintf(stderr, "skipping io backend %s: not available here\n", ios[io]);
                continue;
            }
            for (uint64_t seed = 1; seed <= 12; seed++) {
                eg_graph_params gp = {.seed = seed + 100 * (uint64_t)io,
                                      .ops = 6 + seed % 9,
                                      .batch = 2 + (unsigned)(seed % 3),
                                      .hidden = 8 << (seed % 3),
                                      .weights = 1 + seed % 4,
                                      .host_ops = seed % 3 != 0,
                                      .weights_path = f->weights};
                fy_graph *g = eg_graph(&gp);
                assert_non_null(g);
                eg_policy resident = {.seed = seed};
                fy_plan *base = eg_plan(g, &resident);
                assert_non_null(base);
                io_bufs rb;
                bufs_make(g, &rb);
                fy_error err = {0};
                if (run_plan(eng, base, &rb, NULL, &err) < 0)
                    fail_msg("resident seed %llu: %s", (unsigned long long)seed, err.message);
                for (int p = 0; p < 4; p++) {
                    eg_policy pol = {.seed = seed * 7 + (uint64_t)p,
                                     .p_evict = 0.3 + 0.2 * p,
                                     .p_spill = 0.25 * p,
                                     .p_prefetch = 0.5,
                                     .reuse = p != 1};
                    fy_plan *plan = eg_plan(g, &pol);
                    assert_non_null(plan);
                    for (size_t i = 0; i < fy_plan_event_count(plan); i++) {
                        const fy_event *e = fy_plan_event(plan, i);
                        spills += e->to == FY_TIER_NVME;
                        d2h += e->from == FY_TIER_GPU && e->to == FY_TIER_HOST;
                        reused += e->kind != FY_EVENT_EVICT && e->after_count > 1;
                    }
                    io_bufs ob;
                    bufs_make(g, &ob);
                    if (run_plan(eng, plan, &ob, NULL, &err) < 0)
                        fail_msg("io %s, waits %d, seed %llu, policy %d: %s", ios[io], dw,
                                 (unsigned long long)seed, p, err.message);
                    for (size_t k = 0; k < ob.nout; k++)
                        assert_memory_equal(ob.out[k].data, rb.out[k].data, ob.out[k].size);
                    assert_int_equal(fy_test_dir_entries(f->nvme), 0);
                    bufs_free(&ob);
                    fy_plan_destroy(plan);
                    runs++;
                }
                bufs_free(&rb);
                fy_plan_destroy(base);
                fy_graph_destroy(g);
            }
            fy_engine_close(eng);
        }
    }
    assert_true(runs >= 144); /* the threads backend always runs */
    assert_true(spills > 50 && d2h > 50 && reused > 50);
}

/* Large tensors take the checksum worker's path; the spill file is used and removed. */
static void test_engine_large_tensors_spill_and_verify(void **state)
{
    fixture *f = *state;
    eg_graph_params gp = {.seed = 5,
                          .ops = 6,
                          .batch = 512,
                          .hidden = 512,
                          .weights = 2,
                          .host_ops = false,
                          .weights_path = f->weights};
    fy_graph *g = eg_graph(&gp);
    assert_non_null(g);
    eg_policy resident = {.seed = 3},
              spill = {.seed = 3, .p_evict = 1, .p_spill = 1, .reuse = true};
    fy_plan *base = eg_plan(g, &resident), *plan = eg_plan(g, &spill);
    assert_non_null(base);
    assert_non_null(plan);
    bool writes_nvme = false;
    for (size_t i = 0; i < fy_plan_event_count(plan); i++)
        writes_nvme |= fy_plan_event(plan, i)->to == FY_TIER_NVME;
    assert_true(writes_nvme);
    fy_engine *eng = open_engine(f, NULL, false);
    io_bufs rb, ob;
    bufs_make(g, &rb);
    bufs_make(g, &ob);
    fy_error err = {0};
    fy_engine_report rep;
    if (run_plan(eng, base, &rb, NULL, &err) < 0 || run_plan(eng, plan, &ob, &rep, &err) < 0)
        fail_msg("%s", err.message);
    assert_memory_equal(ob.out[0].data, rb.out[0].data, ob.out[0].size);
    assert_true(rep.arena[FY_TIER_NVME] > 0);
    assert_true(rep.peak[FY_TIER_NVME] > 0);
    assert_true(rep.queue[FY_ENGINE_QUEUE_IO].bytes > 0);
    assert_true(rep.queue[FY_ENGINE_QUEUE_IO].busy_s > 0);
    assert_int_equal(fy_test_dir_entries(f->nvme), 0);
    fy_engine_report_free(&rep);
    bufs_free(&rb);
    bufs_free(&ob);
    fy_engine_close(eng);
    fy_plan_destroy(base);
    fy_plan_destroy(plan);
    fy_graph_destroy(g);
}

typedef struct seen {
    const fy_plan *plan;
    bool *done;
    size_t count;
    bool order_ok;
} seen;

static void on_event(void *user, const fy_plan *plan, size_t index)
{
    seen *s = user;
    const fy_event *e = fy_plan_event(plan, index);
    for (uint32_t k = 0; k < e->after_count; k++)
        if (!s->done[e->after[k]]) s->order_ok = false;
    if (s->done[index]) s->order_ok = false;
    s->done[index] = true;
    s->count++;
}

static void test_engine_reports_and_calls_back_in_dependency_order(void **state)
{
    fixture *f = *state;
    eg_graph_params gp = {.seed = 9,
                          .ops = 10,
                          .batch = 4,
                          .hidden = 32,
                          .weights = 3,
                          .host_ops = true,
                          .weights_path = f->weights};
    fy_graph *g = eg_graph(&gp);
    eg_policy pol = {.seed = 4, .p_evict = 0.6, .p_spill = 0.5, .p_prefetch = 0.5, .reuse = true};
    fy_plan *plan = eg_plan(g, &pol);
    assert_non_null(plan);
    fy_engine *eng = open_engine(f, "threads", false);
    io_bufs b;
    bufs_make(g, &b);
    size_t n = fy_plan_event_count(plan);
    seen s = {.plan = plan, .done = calloc(n, sizeof(bool)), .order_ok = true};
    fy_engine_run_args a = {.inputs = b.in,
                            .input_count = b.nin,
                            .outputs = b.out,
                            .output_count = b.nout,
                            .on_event = on_event,
                            .user = &s};
    fy_engine_report rep;
    fy_error err = {0};
    if (fy_engine_run(eng, plan, &a, &rep, &err) < 0) fail_msg("%s", err.message);
    assert_int_equal(s.count, n);
    assert_true(s.order_ok);
    /* Bytes per queue are the plan's; every event has a span inside the run. */
    uint64_t h2d = 0;
    for (size_t i = 0; i < n; i++) {
        const fy_event *e = fy_plan_event(plan, i);
        if (e->kind == FY_EVENT_LOAD && e->to == FY_TIER_GPU)
            h2d += fy_graph_tensor(g, (size_t)e->tensor)->size;
        assert_true(rep.events[i].start_s <= rep.events[i].end_s);
        assert_true(rep.events[i].end_s <= rep.wall_s);
        for (uint32_t k = 0; k < e->after_count; k++)
            assert_true(rep.events[e->after[k]].end_s <= rep.events[i].start_s + 1e-9);
    }
    assert_int_equal(rep.queue[FY_ENGINE_QUEUE_H2D].bytes, h2d);
    for (int t = 0; t < FY_TIER_COUNT; t++)
        assert_true(rep.peak[t] <= rep.arena[t]);
    assert_true(rep.queue[FY_ENGINE_QUEUE_GPU].events > 0);
    assert_string_equal(fy_engine_queue_name(FY_ENGINE_QUEUE_D2H), "d2h");
    char trace[4300];
    snprintf(trace, sizeof trace, "%s/trace.json", f->dir);
    assert_int_equal(fy_engine_report_trace(&rep, plan, trace, &err), 0);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(fy_file_read_all_for_test(trace, &text, &len), 0);
    text[len] = 0;
    assert_non_null(strstr(text, "\"traceEvents\""));
    assert_non_null(strstr(text, "\"name\": \"h2d\""));
    assert_non_null(strstr(text, "\"name\": \"compute op0\""));
    assert_non_null(strstr(text, "\"name\": \"ferry run\"")); /* the simulator's writer */
    assert_non_null(strstr(text, "\"ph\": \"C\""));
    free(text);
    fy_engine_report_free(&rep);
    free(s.done);
    bufs_free(&b);
    fy_engine_close(eng);
    fy_plan_destroy(plan);
    fy_graph_destroy(g);
}

/* A kernel of the caller's own: y = 2 * x, registered for the gpu of the sim device. */
static int twice(const fy_kernel_call *call, fy_error *err)
{
    const float *x = call->inputs[0].data;
    float *y = call->outputs[0].data;
    float k = *(const float *)call->user;
    for (uint64_t i = 0; i < call->outputs[0].size / 4; i++)
        y[i] = k * x[i];
    return 0;
}

static int refuse(const fy_kernel_call *call, fy_error *err)
{
    return fy_error_set(err, FY_EKERNEL, "op '%s': refused on purpose", call->op->name);
}

static fy_graph *twice_graph(const char *kind)
{
    fy_error err = {0};
    fy_graph *g;
    fy_graph_create("twice", &g, &err);
    fy_tensor_desc x = {
        .name = "x", .kind = FY_TENSOR_INPUT, .dtype = FY_DTYPE_F32, .rank = 1, .shape = {64}};
    fy_tensor_desc y = {
        .name = "y", .kind = FY_TENSOR_OUTPUT, .dtype = FY_DTYPE_F32, .rank = 1, .shape = {64}};
    const char *r[] = {"x"}, *w[] = {"y"};
    fy_op_desc op = {
        .name = "double", .kind = kind, .reads = r, .read_count = 1, .writes = w, .write_count = 1};
    if (fy_graph_add_tensor(g, &x, &err) < 0 || fy_graph_add_tensor(g, &y, &err) < 0 ||
        fy_graph_add_op(g, &op, &err) < 0 || fy_graph_validate(g, &err) < 0)
        fail_msg("%s", err.message);
    return g;
}

static void test_engine_runs_a_kernel_registered_by_the_caller(void **state)
{
    fixture *f = *state;
    fy_graph *g = twice_graph("twice");
    fy_plan *plan = eg_plan(g, &(eg_policy){.seed = 1});
    fy_engine *eng = open_engine(f, "threads", false);
    static const float two = 2.0f;
    fy_error err = {0};
    assert_int_equal(fy_engine_add_kernel(eng, FY_TIER_GPU, "twice", twice, (void *)&two, &err), 0);
    assert_int_equal(fy_engine_add_kernel(eng, FY_TIER_NVME, "twice", twice, NULL, &err),
                     FY_EINVAL);
    float x[64], y[64];
    for (int i = 0; i < 64; i++)
        x[i] = (float)i;
    fy_engine_buffer in = {"x", x, sizeof x}, out = {"y", y, sizeof y};
    fy_engine_run_args a = {.inputs = &in, .input_count = 1, .outputs = &out, .output_count = 1};
    if (fy_engine_run(eng, plan, &a, NULL, &err) < 0) fail_msg("%s", err.message);
    for (int i = 0; i < 64; i++)
        assert_true(y[i] == 2.0f * (float)i);
    fy_engine_close(eng);
    fy_plan_destroy(plan);
    fy_graph_destroy(g);
}

static void test_engine_kernel_error_stops_the_run_naming_the_event(void **state)
{
    fixture *f = *state;
    fy_graph *g = twice_graph("refuse");
    fy_plan *plan = eg_plan(g, &(eg_policy){.seed = 1});
    fy_engine *eng = open_engine(f, "threads", false);
    fy_error err = {0};
    assert_true(fy_engine_add_kernel(eng, FY_TIER_GPU, "refuse", refuse, NULL, &err) >= 0);
    float x[64] = {0}, y[64];
    fy_engine_buffer in = {"x", x, sizeof x}, out = {"y", y, sizeof y};
    fy_engine_run_args a = {.inputs = &in, .input_count = 1, .outputs = &out, .output_count = 1};
    fy_engine_report rep;
    assert_int_equal(fy_engine_run(eng, plan, &a, &rep, &err), FY_EKERNEL);
    assert_non_null(strstr(err.message, "compute 'double'"));
    assert_non_null(strstr(err.message, "refused on purpose"));
    assert_null(rep.events);
    fy_engine_report_free(&rep);
    /* An unknown kind is an error too, and the engine stays usable. */
    fy_graph *g2 = twice_graph("no-such-kernel");
    fy_plan *p2 = eg_plan(g2, &(eg_policy){.seed = 1});
    assert_int_equal(fy_engine_run(eng, p2, &a, NULL, &err), FY_ENOENT);
    assert_non_null(strstr(err.message, "no-such-kernel"));
    fy_engine_close(eng);
    fy_plan_destroy(p2);
    fy_graph_destroy(g2);
    fy_plan_destroy(plan);
    fy_graph_destroy(g);
}

static void test_engine_refuses_missing_or_wrong_buffers(void **state)
{
    fixture *f = *state;
    fy_graph *g = twice_graph("copy");
    fy_plan *plan = eg_plan(g, &(eg_policy){.seed = 1});
    fy_engine *eng = open_engine(f, "threads", false);
    fy_error err = {0};
    float x[64] = {0}, y[64];
    fy_engine_buffer in = {"x", x, sizeof x}, out = {"y", y, sizeof y};
    fy_engine_run_args a = {.outputs = &out, .output_count = 1};
    assert_int_equal(fy_engine_run(eng, plan, &a, NULL, &err), FY_EINVAL);
    assert_non_null(strstr(err.message, "no input buffer was given for it"));
    fy_engine_buffer small = {"x", x, 8};
    a = (fy_engine_run_args){.inputs = &small, .input_count = 1};
    assert_int_equal(fy_engine_run(eng, plan, &a, NULL, &err), FY_EINVAL);
    assert_non_null(strstr(err.message, "holds 8 bytes"));
    fy_engine_buffer ghost = {"ghost", y, sizeof y};
    a = (fy_engine_run_args){.inputs = &in, .input_count = 1, .outputs = &ghost, .output_count = 1};
    assert_int_equal(fy_engine_run(eng, plan, &a, NULL, &err), FY_EINVAL);
    assert_non_null(strstr(err.message, "'ghost'"));
    /* x never reaches the host arena... but it is at home there: handing it back is fine;
     * a device-only tensor is not. */
    fy_engine_close(eng);
    fy_plan_destroy(plan);
    fy_graph_destroy(g);
}

/* TensorNVMe-style async read with a callback: a plan of one load, nvme -> host. */
static void test_engine_two_event_plan_reads_a_tensor_asynchronously(void **state)
{
    fixture *f = *state;
    fy_error err = {0};
    fy_graph *g;
    fy_graph_create("read", &g, &err);
    fy_tensor_desc w = {.name = "w",
                        .kind = FY_TENSOR_WEIGHT,
                        .dtype = FY_DTYPE_F32,
                        .rank = 1,
                        .shape = {1000},
                        .source_file = f->weights};
    fy_tensor_desc y = {
        .name = "y", .kind = FY_TENSOR_OUTPUT, .dtype = FY_DTYPE_F32, .rank = 1, .shape = {1000}};
    const char *r[] = {"w"}, *wr[] = {"y"};
    fy_op_desc op = {.name = "keep",
                     .kind = "copy",
                     .device = FY_TIER_HOST,
                     .reads = r,
                     .read_count = 1,
                     .writes = wr,
                     .write_count = 1};
    assert_int_equal(fy_graph_add_tensor(g, &w, &err), 0);
    assert_int_equal(fy_graph_add_tensor(g, &y, &err), 0);
    assert_int_equal(fy_graph_add_op(g, &op, &err), 0);
    assert_int_equal(fy_graph_validate(g, &err), 0);
    assert_int_equal(fy_graph_write_weights(g, f->weights, 3, &err), 0);
    fy_plan *plan;
    fy_plan_create(g, NULL, &plan, &err);
    uint32_t a0[] = {0};
    fy_placement pl = {.tensor = 1, .offset = 4096};
    fy_plan_add(
        plan,
        &(fy_event){
            .kind = FY_EVENT_LOAD, .tensor = 0, .from = FY_TIER_NVME, .to = FY_TIER_HOST, .at = 0},
        &err);
    fy_plan_add(plan,
                &(fy_event){.kind = FY_EVENT_COMPUTE,
                            .op = 0,
                            .after = a0,
                            .after_count = 1,
                            .places = &pl,
                            .place_count = 1},
                &err);
    fy_plan_set_arena(plan, FY_TIER_HOST, 8192);
    fy_engine *eng = open_engine(f, NULL, false);
    float out[1000], expect[1000];
    FILE *wf = fopen(f->weights, "rb");
    assert_int_equal(fread(expect, 1, sizeof expect, wf), sizeof expect);
    fclose(wf);
    seen s = {.plan = plan, .done = calloc(2, sizeof(bool)), .order_ok = true};
    fy_engine_buffer ob = {"y", out, sizeof out};
    fy_engine_run_args a = {.outputs = &ob, .output_count = 1, .on_event = on_event, .user = &s};
    if (fy_engine_run(eng, plan, &a, NULL, &err) < 0) fail_msg("%s", err.message);
    assert_int_equal(s.count, 2);
    assert_memory_equal(out, expect, sizeof out);
    free(s.done);
    fy_engine_close(eng);
    fy_plan_destroy(plan);
    fy_graph_destroy(g);
}

static void test_engine_open_names_devices_and_refuses_unknown_ones(void **state)
{
    fy_error err = {0};
    fy_engine *eng;
    assert_int_equal(fy_engine_open(&(fy_engine_config){.device = "tpu"}, &eng, &err), FY_EINVAL);
    assert_non_null(strstr(err.message, "unknown device 'tpu'"));
    assert_int_equal(fy_engine_open(&(fy_engine_config){.io = "carrier-pigeon"}, &eng, &err),
                     FY_EINVAL);
    /* auto always opens something; cuda opens or says why not. */
    assert_int_equal(fy_engine_open(NULL, &eng, &err), 0);
    assert_non_null(fy_engine_description(eng));
    if (strcmp(fy_engine_device_name(eng), "sim") == 0) {
        fy_engine *c;
        int rc = fy_engine_open(&(fy_engine_config){.device = "cuda"}, &c, &err);
        assert_int_equal(rc, FY_EUNSUPPORTED);
        assert_true(strlen(err.message) > 10);
        assert_non_null(strstr(fy_engine_note(eng), "sim"));
    }
    fy_engine_close(eng);
    fy_engine_close(NULL);
}

/* Offloads are checksummed only when a later event reads the host copy back: the activation
 * offloaded and reloaded gets a checksum made and checked; the output offloaded at the end,
 * which only the hand-back reads, gets none (it would cost time at the end of every run). */
static void test_engine_checksums_only_offloads_read_back(void **state)
{
    (void)state;
    static const char graph[] = "ferry: graph/1\n"
                                "tensors:\n"
                                "  x: {kind: input, dtype: f32, shape: [4, 4]}\n"
                                "  w: {kind: weight, dtype: f32, shape: [4, 4]}\n"
                                "  a: {kind: activation, dtype: f32, shape: [4, 4]}\n"
                                "  y: {kind: output, dtype: f32, shape: [4, 4]}\n"
                                "ops:\n"
                                "  - {name: fc0, kind: matmul, reads: [x, w], writes: [a]}\n"
                                "  - {name: fc1, kind: matmul, reads: [a, w], writes: [y]}\n";
    static const char plan[] =
        "ferry: plan/1\n"
        "arenas: {gpu: 256, host: 128}\n"
        "events:\n"
        "  - {id: 0, do: load, tensor: x, from: host, to: gpu, at: 0}\n"
        "  - {id: 1, do: load, tensor: w, from: host, to: gpu, at: 64}\n"
        "  - {id: 2, do: compute, op: fc0, at: {a: 128}, after: [0, 1]}\n"
        "  - {id: 3, do: offload, tensor: a, from: gpu, to: host, at: 0, after: [2]}\n"
        "  - {id: 4, do: evict, tensor: a, from: gpu, after: [3]}\n"
        "  - {id: 5, do: load, tensor: a, from: host, to: gpu, at: 128, after: [4]}\n"
        "  - {id: 6, do: compute, op: fc1, at: {y: 192}, after: [5]}\n"
        "  - {id: 7, do: offload, tensor: y, from: gpu, to: host, at: 64, after: [6]}\n";
    fy_error err = {0};
    fy_graph *g;
    fy_plan *p;
    fy_exec *x;
    if (fy_graph_load_string("g.yaml", graph, sizeof graph - 1, &g, &err) < 0 ||
        fy_plan_load_string("p.yaml", plan, sizeof plan - 1, g, &p, &err) < 0)
        fail_msg("%s", err.message);
    fy_check_report *rep;
    assert_int_equal(fy_check_plan(p, NULL, &rep, &err), 0);
    fy_check_report_destroy(rep);
    assert_int_equal(fy_exec_build(p, &x, &err), 0);
    assert_int_equal(x->ev[3].crc_post, FY_CRC_MAKE); /* a: read back by event 5 */
    assert_int_equal(x->ev[5].crc_pre, FY_CRC_CHECK);
    assert_int_equal(x->ev[5].slot, x->ev[3].slot);
    assert_int_equal(x->ev[7].crc_post, FY_CRC_NONE); /* y: only handed back */
    assert_int_equal(x->final_slot[fy_graph_find_tensor(g, "y")], -1);
    fy_exec_destroy(x);
    /* And the run hands y back (unverified) equal to the all-resident run's. */
    fy_engine *eng;
    assert_int_equal(fy_engine_open(&(fy_engine_config){.device = "sim"}, &eng, &err), 0);
    float xin[16], win[16], y1[16] = {0}, y2[16] = {0};
    for (int i = 0; i < 16; i++) {
        xin[i] = (float)(i % 5) - 2;
        win[i] = (float)(i % 3) * 0.5f;
    }
    fy_engine_buffer in[] = {{"x", xin, sizeof xin}, {"w", win, sizeof win}};
    fy_engine_buffer out[] = {{"y", y1, sizeof y1}};
    fy_engine_run_args a = {.inputs = in, .input_count = 2, .outputs = out, .output_count = 1};
    assert_int_equal(fy_engine_run(eng, p, &a, NULL, &err), 0);
    fy_engine_close(eng);
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) {
            float acc = 0;
            for (int k = 0; k < 4; k++) {
                float ak = 0;
                for (int j = 0; j < 4; j++)
                    ak += xin[r * 4 + j] * win[j * 4 + k];
                acc += ak * win[k * 4 + c];
            }
            y2[r * 4 + c] = acc;
        }
    for (int i = 0; i < 16; i++)
        assert_float_equal(y1[i], y2[i], 1e-4);
    fy_plan_destroy(p);
    fy_graph_destroy(g);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_checksums_only_offloads_read_back),
        cmocka_unit_test_setup_teardown(test_engine_all_resident_run_matches_reference, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_engine_offloaded_outputs_equal_all_resident, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_engine_large_tensors_spill_and_verify, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_engine_reports_and_calls_back_in_dependency_order,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_runs_a_kernel_registered_by_the_caller, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_engine_kernel_error_stops_the_run_naming_the_event,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_refuses_missing_or_wrong_buffers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_engine_two_event_plan_reads_a_tensor_asynchronously,
                                        setup, teardown),
        cmocka_unit_test(test_engine_open_names_devices_and_refuses_unknown_ones),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
