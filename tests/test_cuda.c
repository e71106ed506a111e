/* The cuda device through the device backend table: its kernels against the CPU kernels, the
 * ordering of its three streams by events (everything submitted ahead, nothing reaped in
 * between), the bitwise equality of a streamed run (two weight slots, an activation offloaded
 * and reloaded elsewhere) with the all-resident run, and its errors: an arena larger than the
 * card, a kernel that refuses, a kernel that fails, a device fault (in a child process, since
 * a fault ends the CUDA context). Without a GPU, or without CUDA in the build, every test
 * skips and says why. FY_TEST_CUDA_NO_FAULT=1 leaves out the fault (for compute-sanitizer). */
#include "kernel_fixtures.h"

#include "engine/device.h"
#include "engine_plans.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/wait.h>

typedef struct gpu {
    const fy_device_backend *b;
    fy_device *dev;
    int efd;
    fy_device_arenas a;
} gpu;

static char skip_reason[FY_ERROR_MESSAGE_MAX];

/* Opens the cuda device; false (and skip_reason) when there is none. */
static bool gpu_open(gpu *g)
{
    fy_error err = {0};
    memset(g, 0, sizeof *g);
    g->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(g->efd >= 0);
    int rc = fy_device_backend_cuda(&g->b, &err);
    if (rc == 0) rc = g->b->open(&(fy_device_config){.notify_fd = g->efd}, &g->dev, &err);
    if (rc == FY_EUNSUPPORTED) {
        snprintf(skip_reason, sizeof skip_reason, "%s", err.message);
        close(g->efd);
        return false;
    }
    if (rc < 0) fail_msg("opening the cuda device: %s", err.message);
    return true;
}

#define OPEN_OR_SKIP(g)                                                                            \
    do {                                                                                           \
        if (!gpu_open(g)) {                                                                        \
            print_message("skipped: %s\n", skip_reason);                                           \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

static void gpu_begin(gpu *g, uint64_t gpu_bytes, uint64_t host_bytes, size_t tags)
{
    fy_error err = {0};
    g->a = (fy_device_arenas){.gpu_bytes = gpu_bytes, .host_bytes = host_bytes, .tag_count = tags};
    if (g->b->run_begin(g->dev, &g->a, &err) < 0) fail_msg("run_begin: %s", err.message);
}

static void gpu_close(gpu *g)
{
    g->b->run_end(g->dev);
    g->b->close(g->dev);
    close(g->efd);
}

/* Reaps n completions into done (indexed by tag), waiting on the eventfd; 30 s without a
 * completion is a hang. Returns the number that failed. */
static int gpu_wait(gpu *g, size_t n, fy_device_done *done)
{
    int failed = 0;
    for (size_t got = 0; got < n;) {
        fy_device_done d[16];
        size_t k = g->b->reap(g->dev, d, 16);
        for (size_t i = 0; i < k; i++) {
            done[d[i].tag] = d[i];
            failed += d[i].status < 0;
        }
        got += k;
        if (got >= n || k) continue;
        struct pollfd p = {.fd = g->efd, .events = POLLIN};
        if (poll(&p, 1, 30000) != 1) fail_msg("no completion in 30 s (%zu of %zu)", got, n);
        uint64_t v;
        assert_int_equal(read(g->efd, &v, sizeof v), (ssize_t)sizeof v);
    }
    return failed;
}

static void submit(gpu *g, fy_device_work w)
{
    fy_error err = {0};
    if (g->b->submit(g->dev, &w, &err) < 0)
        fail_msg("submit of tag %lu: %s", (unsigned long)w.tag, err.message);
}

/* Runs host_call's op on the GPU: inputs up (h2d), the op, outputs down (d2h), all issued
 * before any completes. Returns the op's status; its message goes to msg. */
static int run_on_gpu(gpu *g, const fy_kernel_call *host_call, char *msg, size_t msg_size)
{
    size_t nin = host_call->input_count, nout = host_call->output_count, n = nin + 1 + nout;
    fy_kernel_buffer in[8], out[8];
    uint64_t at = 0, waits[8];
    gpu_begin(g, 64u << 20, 0, n);
    for (size_t i = 0; i < nin; i++) {
        in[i] = host_call->inputs[i];
        in[i].data = (char *)g->a.gpu_base + at;
        submit(g, (fy_device_work){.kind = FY_DEVICE_H2D,
                                   .tag = i,
                                   .host = host_call->inputs[i].data,
                                   .gpu_offset = at,
                                   .size = in[i].size});
        waits[i] = i;
        at += (in[i].size + 255) / 256 * 256;
    }
    for (size_t i = 0; i < nout; i++) {
        out[i] = host_call->outputs[i];
        out[i].data = (char *)g->a.gpu_base + at;
        at += (out[i].size + 255) / 256 * 256;
    }
    fy_kernel_call call = *host_call;
    call.inputs = in;
    call.outputs = out;
    submit(g, (fy_device_work){.kind = FY_DEVICE_COMPUTE,
                               .tag = nin,
                               .waits = waits,
                               .wait_count = nin,
                               .call = &call});
    uint64_t op_tag = nin;
    for (size_t i = 0; i < nout; i++)
        submit(g, (fy_device_work){.kind = FY_DEVICE_D2H,
                                   .tag = nin + 1 + i,
                                   .waits = &op_tag,
                                   .wait_count = 1,
                                   .host = host_call->outputs[i].data,
                                   .gpu_offset =
                                       (uint64_t)((char *)out[i].data - (char *)g->a.gpu_base),
                                   .size = out[i].size});
    fy_device_done done[24];
    gpu_wait(g, n, done);
    g->b->run_end(g->dev);
    snprintf(msg, msg_size, "%s", done[nin].message);
    return done[nin].status;
}

/* Runs the call on the CPU and on the GPU with the same inputs; compares the first output
 * bitwise (tol 0) or by relative norm. */
static void compare(gpu *g, fy_kernel_fn cpu, fy_kernel_call *call, double tol)
{
    const fy_tensor *t = call->outputs[0].tensor;
    uint64_t size = call->outputs[0].size;
    void *cpu_out = call->outputs[0].data, *gpu_out = malloc(size + 1);
    fy_error err = {0};
    if (cpu(call, &err) < 0) fail_msg("cpu: %s", err.message);
    call->outputs[0].data = gpu_out;
    memset(gpu_out, 0x7f, size); /* poison: every byte must be written */
    char msg[FY_ERROR_MESSAGE_MAX];
    if (run_on_gpu(g, call, msg, sizeof msg) < 0) fail_msg("gpu: %s", msg);
    call->outputs[0].data = cpu_out;
    fy_dtype d = t && t->dtype ? t->dtype : FY_DTYPE_F32;
    if (tol == 0) {
        assert_memory_equal(cpu_out, gpu_out, size);
    } else {
        double num = 0, den = 0;
        for (size_t i = 0; i < size / dtype_width(d); i++) {
            double x = get(gpu_out, d, i), r = get(cpu_out, d, i);
            assert_false(isnan(x));
            num += (x - r) * (x - r);
            den += r * r;
        }
        if (sqrt(num / den) > tol) fail_msg("relative error %g > %g", sqrt(num / den), tol);
    }
    free(gpu_out);
}

static void test_cuda_kernels_match_cpu(void **state)
{
    (void)state;
    gpu g;
    OPEN_OR_SKIP(&g);
    fy_op op;
    fy_kernel_buffer in[2], out[1];
    static const fy_dtype dt[] = {FY_DTYPE_F32, FY_DTYPE_BF16};
    for (int xa = 0; xa < 2; xa++)
        for (int ya = 0; ya < 2; ya++) { /* relu, add: every mix of f32 and bf16 */
            fy_tensor x = tensor("x", dt[xa], 2, 33, 65, 0), z = tensor("z", dt[ya], 2, 33, 65, 0),
                      y = tensor("y", dt[xa ^ ya], 2, 33, 65, 0);
            fill_random(attach(&in[0], &x), x.dtype, 33 * 65);
            fill_random(attach(&in[1], &z), z.dtype, 33 * 65);
            put(in[0].data, x.dtype, 3, NAN);
            put(in[0].data, x.dtype, 4, -0.0f);
            attach(&out[0], &y);
            fy_kernel_call c = make_call(&op, "relu", in, 1, out, 1);
            compare(&g, fy_cpu_kernel_relu, &c, 0);
            c = make_call(&op, "add", in, 2, out, 1);
            compare(&g, fy_cpu_kernel_add, &c, 0);
            free(in[0].data), free(in[1].data), free(out[0].data);
        }
    /* copy and spin: bytes, f32 and bf16 patterns */
    fy_tensor x = tensor("x", FY_DTYPE_NONE, 0, 10001, 0, 0),
              y = tensor("y", FY_DTYPE_NONE, 0, 10001, 0, 0);
    attach(&in[0], &x);
    for (size_t i = 0; i < x.size; i++)
        ((uint8_t *)in[0].data)[i] = (uint8_t)rng_next();
    attach(&out[0], &y);
    fy_kernel_call c = make_call(&op, "copy", in, 1, out, 1);
    compare(&g, fy_cpu_kernel_copy, &c, 0);
    c = make_call(&op, "spin", in, 1, out, 1);
    c.spin_seconds = 0.002;
    compare(&g, fy_cpu_kernel_spin, &c, 0);
    free(out[0].data);
    for (int k = 0; k < 2; k++) {
        fy_tensor s = tensor("s", dt[k], 2, 100, 300, 0);
        attach(&out[0], &s);
        c = make_call(&op, "spin", in, 1, out, 1);
        compare(&g, fy_cpu_kernel_spin, &c, 0);
        free(out[0].data);
    }
    free(in[0].data);
    /* matmul: bf16 -> bf16, bf16 -> f32, f32 -> f32, and a rank-3 A */
    static const fy_dtype in_t[] = {FY_DTYPE_BF16, FY_DTYPE_BF16, FY_DTYPE_F32, FY_DTYPE_BF16};
    static const fy_dtype out_t[] = {FY_DTYPE_BF16, FY_DTYPE_F32, FY_DTYPE_F32, FY_DTYPE_BF16};
    for (int k = 0; k < 4; k++) {
        fy_tensor a =
            k == 3 ? tensor("a", in_t[k], 3, 4, 16, 520) : tensor("a", in_t[k], 2, 64, 520, 0);
        fy_tensor b = tensor("b", in_t[k], 2, 520, 264, 0),
                  cc = tensor("c", out_t[k], 2, 64, 264, 0);
        fill_random(attach(&in[0], &a), a.dtype, 64 * 520);
        fill_random(attach(&in[1], &b), b.dtype, 520 * 264);
        attach(&out[0], &cc);
        c = make_call(&op, "matmul", in, 2, out, 1);
        compare(&g, fy_cpu_kernel_matmul, &c, out_t[k] == FY_DTYPE_BF16 ? 1e-2 : 1e-5);
        free(in[0].data), free(in[1].data), free(out[0].data);
    }
    gpu_close(&g);
}

/* An mlp of L bf16 layers run twice through the device, all submitted ahead: every weight
 * resident in its own slot, and streamed through two slots (each load waiting for the matmul
 * that last read its slot) with a0 offloaded to the host arena and reloaded at another offset.
 * The outputs must be equal bit for bit, and right against the CPU. */
static void run_mlp(gpu *g, bool stream, int L, uint64_t B, uint64_t H, void *x, void **w, void *y)
{
    uint64_t act = B * H * 2, wsz = H * H * 2, ws = 0, slots = stream ? 2 : (uint64_t)L;
    gpu_begin(g, act * 4 + wsz * slots, act, (size_t)(4 * L + 8));
    static fy_tensor ta[3], tw;
    for (int i = 0; i < 3; i++)
        ta[i] = tensor(i == 0 ? "x" : i == 1 ? "a" : "b", FY_DTYPE_BF16, 2, B, H, 0);
    tw = tensor("w", FY_DTYPE_BF16, 2, H, H, 0);
    char *base = g->a.gpu_base;
    uint64_t act_at[4] = {ws, ws + act, ws + 2 * act, ws + 3 * act}, w_at = 4 * act;
    size_t tag = 0, n = 0;
    uint64_t x_tag = tag++;
    submit(
        g,
        (fy_device_work){
            .kind = FY_DEVICE_H2D, .tag = x_tag, .host = x, .gpu_offset = act_at[0], .size = act});
    n++;
    uint64_t prev_op = UINT64_MAX, op_of_slot[64], cur = act_at[0];
    fy_op ops[64];
    fy_kernel_buffer in[64][2], out[64][1];
    for (int i = 0; i < L; i++) {
        uint64_t slot = (uint64_t)i % slots, wt = tag++;
        uint64_t waits[2] = {0}, nw = 0;
        if (i >= (int)slots) waits[nw++] = op_of_slot[slot];
        submit(g, (fy_device_work){.kind = FY_DEVICE_H2D,
                                   .tag = wt,
                                   .waits = waits,
                                   .wait_count = nw,
                                   .host = w[i],
                                   .gpu_offset = w_at + slot * wsz,
                                   .size = wsz});
        n++;
        if (stream && i == 2) { /* offload the current activation and reload it elsewhere */
            uint64_t d = tag++, u = tag++;
            submit(g, (fy_device_work){.kind = FY_DEVICE_D2H,
                                       .tag = d,
                                       .waits = &prev_op,
                                       .wait_count = 1,
                                       .host = g->a.host_base,
                                       .gpu_offset = cur,
                                       .size = act});
            submit(g, (fy_device_work){.kind = FY_DEVICE_H2D,
                                       .tag = u,
                                       .waits = &d,
                                       .wait_count = 1,
                                       .host = g->a.host_base,
                                       .gpu_offset = act_at[3],
                                       .size = act});
            cur = act_at[3];
            prev_op = u;
            n += 2;
        }
        uint64_t dst = cur == act_at[1] ? act_at[2] : act_at[1];
        in[i][0] = (fy_kernel_buffer){.data = base + cur, .size = act, .tensor = &ta[0]};
        in[i][1] = (fy_kernel_buffer){.data = base + w_at + slot * wsz, .size = wsz, .tensor = &tw};
        out[i][0] = (fy_kernel_buffer){.data = base + dst, .size = act, .tensor = &ta[1]};
        fy_kernel_call c = make_call(&ops[i], "matmul", in[i], 2, out[i], 1);
        uint64_t ow[3] = {wt, i == 0 ? x_tag : prev_op};
        uint64_t op_tag = tag++;
        submit(g, (fy_device_work){.kind = FY_DEVICE_COMPUTE,
                                   .tag = op_tag,
                                   .waits = ow,
                                   .wait_count = 2,
                                   .call = &c});
        n++;
        op_of_slot[slot] = op_tag;
        prev_op = op_tag;
        cur = dst;
    }
    submit(g, (fy_device_work){.kind = FY_DEVICE_D2H,
                               .tag = tag++,
                               .waits = &prev_op,
                               .wait_count = 1,
                               .host = y,
                               .gpu_offset = cur,
                               .size = act});
    n++;
    fy_device_done done[512];
    assert_int_equal(gpu_wait(g, n, done), 0);
    for (size_t t = 0; t < n; t++) /* the measured timeline is there and ordered */
        assert_true(done[t].end_ns >= done[t].start_ns && done[t].start_ns > 0);
    g->b->run_end(g->dev);
}

static void test_cuda_streamed_run_is_bitwise_resident(void **state)
{
    (void)state;
    gpu g;
    OPEN_OR_SKIP(&g);
    const int L = 6;
    const uint64_t B = 64, H = 1024;
    void *x = malloc(B * H * 2), *w[6], *y1 = malloc(B * H * 2), *y2 = malloc(B * H * 2);
    fill_random(x, FY_DTYPE_BF16, B * H);
    for (int i = 0; i < L; i++) {
        w[i] = malloc(H * H * 2);
        for (uint64_t j = 0; j < H * H; j++)
            put(w[i], FY_DTYPE_BF16, j, rng_float() * 0.054f);
    }
    run_mlp(&g, false, L, B, H, x, w, y1);
    memset(y2, 0x7f, B * H * 2);
    run_mlp(&g, true, L, B, H, x, w, y2);
    assert_memory_equal(y1, y2, B * H * 2);
    gpu_close(&g);
    for (int i = 0; i < L; i++)
        free(w[i]);
    free(x), free(y1), free(y2);
}

static int boom(const fy_kernel_call *call, fy_error *err)
{
    return fy_error_set(err, FY_EKERNEL, "op '%s': boom refused to run", call->op->name);
}

static void test_cuda_errors_are_named(void **state)
{
    (void)state;
    gpu g;
    OPEN_OR_SKIP(&g);
    fy_error err = {0};
    /* an arena larger than the card: refused, naming the size and the card's free memory */
    g.a = (fy_device_arenas){.gpu_bytes = 1ull << 50, .tag_count = 1};
    assert_int_equal(g.b->run_begin(g.dev, &g.a, &err), FY_EDEVICE);
    if (!strstr(err.message, "does not fit") || !strstr(err.message, "free of"))
        fail_msg("message: %s", err.message);
    /* a kernel that refuses its operands, and one that fails: completions naming the op */
    fy_op op;
    fy_kernel_buffer in[2], out[1];
    fy_tensor a = tensor("a", FY_DTYPE_BF16, 2, 8, 16, 0),
              b = tensor("b", FY_DTYPE_BF16, 2, 32, 8, 0),
              c = tensor("c", FY_DTYPE_BF16, 2, 8, 8, 0);
    attach(&in[0], &a), attach(&in[1], &b), attach(&out[0], &c);
    fy_kernel_call call = make_call(&op, "matmul", in, 2, out, 1);
    char msg[FY_ERROR_MESSAGE_MAX];
    assert_int_equal(run_on_gpu(&g, &call, msg, sizeof msg), FY_EINVAL);
    if (!strstr(msg, "'op0'") || !strstr(msg, "inner dimensions")) fail_msg("message: %s", msg);
    assert_true(fy_kernel_registry_add(g.b->kernels(g.dev), "boom", boom, NULL, &err) >= 0);
    call = make_call(&op, "boom", in, 2, out, 1);
    assert_int_equal(run_on_gpu(&g, &call, msg, sizeof msg), FY_EKERNEL);
    if (!strstr(msg, "boom refused")) fail_msg("message: %s", msg);
    /* the device still works after all that */
    call = make_call(&op, "relu", in, 1, in + 1, 1);
    in[1].tensor = &a, in[1].size = a.size;
    assert_int_equal(run_on_gpu(&g, &call, msg, sizeof msg), 0);
    free(in[0].data), free(in[1].data), free(out[0].data);
    gpu_close(&g);
}

/* In a child (a fault ends the process's CUDA context): a relu reading far outside the arena
 * faults; its completion and the ones after it carry the error, nothing hangs, and the device
 * closes. The parent has not touched CUDA, so the child can. */
static void test_cuda_device_fault_completes_with_error(void **state)
{
    (void)state;
    if (getenv("FY_TEST_CUDA_NO_FAULT")) skip();
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(120); /* a hang kills the child, which the parent reports */
        gpu g;
        if (!gpu_open(&g)) _exit(77);
        gpu_begin(&g, 1 << 20, 4096, 4);
        fy_op op;
        fy_tensor x = tensor("x", FY_DTYPE_F32, 1, 1 << 18, 0, 0);
        fy_kernel_buffer in = {.data = (char *)g.a.gpu_base + (1ull << 44),
                               .size = x.size,
                               .tensor = &x},
                         out = {.data = g.a.gpu_base, .size = x.size, .tensor = &x};
        fy_kernel_call c = make_call(&op, "relu", &in, 1, &out, 1);
        submit(&g, (fy_device_work){.kind = FY_DEVICE_COMPUTE, .tag = 0, .call = &c});
        uint64_t after = 0;
        submit(&g, (fy_device_work){.kind = FY_DEVICE_D2H,
                                    .tag = 1,
                                    .waits = &after,
                                    .wait_count = 1,
                                    .host = g.a.host_base,
                                    .size = 4096});
        fy_device_done done[4];
        int failed = gpu_wait(&g, 2, done);
        fprintf(stderr, "fault: %s\n", done[0].message);
        bool ok = failed == 2 && done[0].status == FY_EDEVICE && strstr(done[0].message, "'op0'") &&
                  strstr(done[0].message, "cudaError");
        gpu_close(&g);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77) {
        print_message("skipped: no CUDA device\n");
        skip();
    }
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Whether event e runs on the device's streams (a host<->gpu copy or a gpu op). */
static bool on_gpu_streams(const fy_graph *g, const fy_event *e)
{
    if (e->kind == FY_EVENT_COMPUTE) return fy_graph_op(g, (size_t)e->op)->device == FY_TIER_GPU;
    if (e->kind == FY_EVENT_EVICT) return false;
    return (e->from == FY_TIER_GPU && e->to == FY_TIER_HOST) ||
           (e->from == FY_TIER_HOST && e->to == FY_TIER_GPU);
}

/* Fails unless every device event starts after the device events it depends on (through
 * evicts, which the device never sees) have ended, within slack. An offload to host is left
 * out as a dependency: its end is when the engine finished checksumming the copy on the host,
 * and what waits for it on the device waits for the copy only. */
static void check_device_order(const fy_graph *g, const fy_plan *plan, const fy_engine_report *rep,
                               double slack, const char *label)
{
    size_t n = fy_plan_event_count(plan);
    size_t *stack = malloc(n * sizeof *stack);
    for (size_t i = 0; i < n; i++) {
        const fy_event *e = fy_plan_event(plan, i);
        if (!on_gpu_streams(g, e)) continue;
        size_t top = 0;
        for (uint32_t k = 0; k < e->after_count; k++)
            stack[top++] = e->after[k];
        while (top) {
            size_t a = stack[--top];
            const fy_event *ea = fy_plan_event(plan, a);
            if (ea->kind == FY_EVENT_EVICT) {
                for (uint32_t k = 0; k < ea->after_count && top < n; k++)
                    stack[top++] = ea->after[k];
            } else if (on_gpu_streams(g, ea) && ea->kind != FY_EVENT_OFFLOAD &&
                       rep->events[a].end_s > rep->events[i].start_s + slack) {
                fail_msg("%s: event %zu starts at %.6f s, before event %zu it waits for ends "
                         "(%.6f s)",
                         label, i, rep->events[i].start_s, a, rep->events[a].end_s);
            }
        }
    }
    free(stack);
}

/* Through the engine: random graphs and plans (tests/engine_plans.h) run on the cuda device;
 * every offloading plan (evictions, reloads, spills to nvme, arena reuse) gives the outputs of
 * the all-resident plan bit for bit, with the same CUDA kernels, whether completions are
 * polled (the default) or slept for. The events, timed by CUDA events, lie inside the run as
 * the host's clock measures it, and none starts before what it waits for has ended. */
static void test_cuda_engine_offloaded_plans_bitwise_resident(void **state)
{
    (void)state;
    gpu probe;
    OPEN_OR_SKIP(&probe);
    gpu_close(&probe);
    char *dir = fy_test_scratch("cuda-engine"), weights[4200], nvme[4200];
    snprintf(weights, sizeof weights, "%s/w.bin", dir);
    snprintf(nvme, sizeof nvme, "%s/nvme", dir);
    assert_int_equal(mkdir(nvme, 0700), 0);
    fy_error err = {0};
    fy_engine *eng = NULL, *sleeping = NULL;
    if (fy_engine_open(&(fy_engine_config){.device = "cuda", .nvme_dir = nvme}, &eng, &err) < 0 ||
        fy_engine_open(
            &(fy_engine_config){.device = "cuda", .nvme_dir = nvme, .completion_poll_us = -1},
            &sleeping, &err) < 0)
        fail_msg("fy_engine_open: %s", err.message);
    assert_string_equal(fy_engine_device_name(eng), "cuda");
    size_t runs = 0;
    for (uint64_t seed = 1; seed <= 8; seed++) {
        eg_graph_params gp = {.seed = seed,
                              .ops = 6 + seed % 9,
                              .batch = 2 + (unsigned)(seed % 3),
                              .hidden = 64 << (seed % 3),
                              .weights = 1 + seed % 4,
                              .host_ops = seed % 3 != 0,
                              .weights_path = weights};
        fy_graph *g = eg_graph(&gp);
        assert_non_null(g);
        fy_engine_buffer in[2][4], out[2][4];
        size_t nin = 0, nout = 0;
        for (int r = 0; r < 2; r++) {
            nin = nout = 0;
            for (size_t t = 0; t < fy_graph_tensor_count(g); t++) {
                const fy_tensor *tn = fy_graph_tensor(g, t);
                if (tn->home == FY_TIER_HOST) {
                    void *p = malloc(tn->size);
                    eg_fill(p, tn->size, t);
                    in[r][nin++] = (fy_engine_buffer){tn->name, p, tn->size};
                }
                if (tn->kind == FY_TENSOR_OUTPUT || tn->kind == FY_TENSOR_OPTIMIZER)
                    out[r][nout++] = (fy_engine_buffer){tn->name, calloc(1, tn->size), tn->size};
            }
        }
        eg_policy resident = {.seed = seed};
        fy_plan *base = eg_plan(g, &resident);
        fy_engine_run_args a = {
            .inputs = in[0], .input_count = nin, .outputs = out[0], .output_count = nout};
        if (fy_engine_run(eng, base, &a, NULL, &err) < 0) fail_msg("resident: %s", err.message);
        for (int p = 0; p < 3; p++) {
            eg_policy pol = {.seed = seed * 7 + (uint64_t)p,
                             .p_evict = 0.3 + 0.2 * p,
                             .p_spill = 0.25 * p,
                             .p_prefetch = 0.5,
                             .reuse = p != 1};
            fy_plan *plan = eg_plan(g, &pol);
            assert_non_null(plan);
            for (size_t k = 0; k < nin; k++) /* host-home state is updated in place */
                eg_fill(in[1][k].data, in[1][k].size, fy_graph_find_tensor(g, in[1][k].name));
            a = (fy_engine_run_args){
                .inputs = in[1], .input_count = nin, .outputs = out[1], .output_count = nout};
            fy_engine_report rep;
            if (fy_engine_run(p == 1 ? sleeping : eng, plan, &a, &rep, &err) < 0)
                fail_msg("seed %llu policy %d: %s", (unsigned long long)seed, p, err.message);
            for (size_t k = 0; k < nout; k++)
                assert_memory_equal(out[1][k].data, out[0][k].data, out[0][k].size);
            /* Device times map to the host clock within a few us (the reference event's
             * uncertainty, and the two clocks' drift): 20 us + 100 ppm of the run. */
            double slack = 20e-6 + 1e-4 * rep.wall_s;
            for (size_t i = 0; i < rep.event_count; i++)
                if (rep.events[i].start_s < 0 || rep.events[i].end_s > rep.wall_s + slack)
                    fail_msg("seed %llu policy %d: event %zu at %.6f-%.6f s of a %.6f s run",
                             (unsigned long long)seed, p, i, rep.events[i].start_s,
                             rep.events[i].end_s, rep.wall_s);
            char label[64];
            snprintf(label, sizeof label, "seed %llu policy %d", (unsigned long long)seed, p);
            check_device_order(g, plan, &rep, slack, label);
            fy_engine_report_free(&rep);
            fy_plan_destroy(plan);
            runs++;
        }
        fy_plan_destroy(base);
        for (int r = 0; r < 2; r++) {
            for (size_t k = 0; k < nin; k++)
                free(in[r][k].data);
            for (size_t k = 0; k < nout; k++)
                free(out[r][k].data);
        }
        fy_graph_destroy(g);
    }
    assert_int_equal(runs, 24);
    fy_engine_close(eng);
    fy_engine_close(sleeping);
    fy_test_scratch_remove(dir);
}

/* Runs plan on a fresh cuda engine (keep_pageable as given) with the inputs in; fills want
 * with y (fill) or checks y against it; returns the report (freed by the caller). */
static fy_engine_report pin_run(const fy_plan *plan, bool keep_pageable, fy_engine_buffer *in,
                                size_t nin, void *want, uint64_t ysize, bool fill)
{
    fy_error err = {0};
    fy_engine *eng = NULL;
    if (fy_engine_open(&(fy_engine_config){.device = "cuda", .keep_pageable = keep_pageable}, &eng,
                       &err) < 0)
        fail_msg("fy_engine_open: %s", err.message);
    void *y = calloc(1, ysize);
    fy_engine_buffer out = {"y", y, ysize};
    fy_engine_run_args a = {.inputs = in, .input_count = nin, .outputs = &out, .output_count = 1};
    fy_engine_report rep;
    if (fy_engine_run(eng, plan, &a, &rep, &err) < 0) fail_msg("run: %s", err.message);
    fy_engine_close(eng);
    /* Live bytes are counted in happens-before order, whatever order the device reports. */
    for (int t = 0; t < FY_TIER_COUNT; t++)
        assert_true(rep.peak[t] <= rep.arena[t] || t == FY_TIER_NVME);
    if (fill)
        memcpy(want, y, ysize);
    else
        assert_memory_equal(y, want, ysize);
    free(y);
    return rep;
}

/* Through the engine: the caller's buffers that host->gpu copies read are page-locked for the
 * run and unlocked after it, before the clock starts (pin_s apart from wall_s); a buffer its
 * owner pinned stays pinned; keep_pageable, or a pin the driver refuses (a read-only mapping),
 * leaves them pageable and the report says why; the outputs are the same every way. */
static void test_cuda_engine_pins_input_buffers(void **state)
{
    (void)state;
    gpu g;
    OPEN_OR_SKIP(&g);
    static const char text[] = "ferry: graph/1\n"
                               "tensors:\n"
                               "  x: {kind: input, dtype: f32, shape: [4, 256]}\n"
                               "  w0: {kind: weight, dtype: f32, shape: [256, 256]}\n"
                               "  w1: {kind: weight, dtype: f32, shape: [256, 256]}\n"
                               "  a0: {kind: activation, dtype: f32, shape: [4, 256]}\n"
                               "  y: {kind: output, dtype: f32, shape: [4, 256]}\n"
                               "ops:\n"
                               "  - {name: fc0, kind: matmul, reads: [x, w0], writes: [a0]}\n"
                               "  - {name: fc1, kind: matmul, reads: [a0, w1], writes: [y]}\n";
    fy_error err = {0};
    fy_graph *gr;
    if (fy_graph_load_string("pin.yaml", text, sizeof text - 1, &gr, &err) < 0)
        fail_msg("graph: %s", err.message);
    fy_plan *plan = eg_plan(gr, &(eg_policy){.seed = 5, .p_evict = 1});
    assert_non_null(plan);
    const char *names[] = {"x", "w0", "w1"};
    fy_engine_buffer in[3];
    uint64_t total = 0, ysize = fy_graph_tensor(gr, (size_t)fy_graph_find_tensor(gr, "y"))->size;
    for (size_t k = 0; k < 3; k++) {
        long t = fy_graph_find_tensor(gr, names[k]);
        uint64_t size = fy_graph_tensor(gr, (size_t)t)->size;
        void *p = malloc(size);
        eg_fill(p, size, (size_t)t);
        in[k] = (fy_engine_buffer){names[k], p, size};
        total += size;
    }
    void *want = calloc(1, ysize);
    /* The reference output, from pageable memory. */
    fy_engine_report rep = pin_run(plan, true, in, 3, want, ysize, true);
    assert_int_equal(rep.pinned_bytes, 0);
    assert_int_equal(rep.unpinned_bytes, total);
    assert_non_null(strstr(rep.pin_note, "keep_pageable"));
    fy_engine_report_free(&rep);
    rep = pin_run(plan, false, in, 3, want, ysize, false);
    assert_int_equal(rep.pinned_bytes, total);
    assert_int_equal(rep.unpinned_bytes, 0);
    assert_true(rep.pin_s > 0 && rep.pin_s < 10);
    fy_engine_report_free(&rep);
    /* Unlocked after the run: pinning it now is a fresh registration. */
    assert_int_equal(g.b->pin(g.dev, in[1].data, (size_t)in[1].size, &err), 1);
    /* ... which the engine leaves alone (counted as pinned) and does not undo. */
    rep = pin_run(plan, false, in, 3, want, ysize, false);
    assert_int_equal(rep.pinned_bytes, total);
    fy_engine_report_free(&rep);
    assert_int_equal(g.b->pin(g.dev, in[1].data, (size_t)in[1].size, &err), 0);
    g.b->unpin(g.dev, in[1].data);

    /* w1 in a read-only mapping of a file: pinned, or refused and named; y is the same. */
    char *dir = fy_test_scratch("cuda-pin"), path[4200];
    snprintf(path, sizeof path, "%s/w1.bin", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(in[2].data, 1, (size_t)in[2].size, f), in[2].size);
    fclose(f);
    int fd = open(path, O_RDONLY);
    void *ro = mmap(NULL, (size_t)in[2].size, PROT_READ, MAP_PRIVATE, fd, 0);
    assert_true(ro != MAP_FAILED);
    close(fd);
    void *heap = in[2].data;
    in[2].data = ro;
    rep = pin_run(plan, false, in, 3, want, ysize, false);
    assert_int_equal(rep.pinned_bytes + rep.unpinned_bytes, total);
    if (rep.unpinned_bytes) {
        assert_int_equal(rep.unpinned_bytes, in[2].size);
        assert_non_null(strstr(rep.pin_note, "'w1'"));
        assert_non_null(strstr(rep.pin_note, "cudaHostRegister"));
    }
    print_message("read-only mapping: %s\n",
                  rep.unpinned_bytes ? rep.pin_note : "pinned by the driver");
    fy_engine_report_free(&rep);
    munmap(ro, (size_t)in[2].size);
    in[2].data = heap;
    fy_test_scratch_remove(dir);
    for (size_t k = 0; k < 3; k++)
        free(in[k].data);
    free(want);
    fy_plan_destroy(plan);
    fy_graph_destroy(gr);
    g.b->close(g.dev);
    close(g.efd);
}

/* A pinned input of 1 MiB or more that does not start on a page boundary (as malloc places
 * large blocks) is counted and named in the report, since the copy engine reads it slower; a
 * page-aligned one is not; the output is the same. */
static void test_cuda_engine_notes_misaligned_inputs(void **state)
{
    (void)state;
    gpu g;
    OPEN_OR_SKIP(&g);
    gpu_close(&g);
    static const char text[] = "ferry: graph/1\n"
                               "tensors:\n"
                               "  x: {kind: input, dtype: f32, shape: [4, 512]}\n"
                               "  w0: {kind: weight, dtype: f32, shape: [512, 1024]}\n"
                               "  y: {kind: output, dtype: f32, shape: [4, 1024]}\n"
                               "ops:\n"
                               "  - {name: fc0, kind: matmul, reads: [x, w0], writes: [y]}\n";
    fy_error err = {0};
    fy_graph *gr;
    if (fy_graph_load_string("align.yaml", text, sizeof text - 1, &gr, &err) < 0)
        fail_msg("graph: %s", err.message);
    fy_plan *plan = eg_plan(gr, &(eg_policy){.seed = 3});
    assert_non_null(plan);
    uint64_t xs = 4 * 512 * 4, ws = 512 * 1024 * 4, ysize = 4 * 1024 * 4;
    void *xb = NULL, *wb = NULL;
    assert_int_equal(posix_memalign(&xb, FY_ENGINE_INPUT_ALIGN, xs), 0);
    assert_int_equal(posix_memalign(&wb, FY_ENGINE_INPUT_ALIGN, ws + 16), 0);
    eg_fill(xb, xs, 0);
    eg_fill(wb, ws, 1);
    fy_engine_buffer in[2] = {{"x", xb, xs}, {"w0", wb, ws}};
    void *want = calloc(1, ysize);
    fy_engine_report rep = pin_run(plan, false, in, 2, want, ysize, true);
    assert_int_equal(rep.pinned_bytes, xs + ws);
    assert_int_equal(rep.misaligned_bytes, 0);
    assert_string_equal(rep.align_note, "");
    fy_engine_report_free(&rep);
    memmove((char *)wb + 16, wb, ws); /* the same bytes, 16 bytes past the page */
    in[1].data = (char *)wb + 16;
    rep = pin_run(plan, false, in, 2, want, ysize, false);
    assert_int_equal(rep.pinned_bytes, xs + ws);
    assert_int_equal(rep.misaligned_bytes, ws);
    assert_non_null(strstr(rep.align_note, "'w0' starts 16 bytes past a page boundary"));
    fy_engine_report_free(&rep);
    free(want);
    free(xb);
    free(wb);
    fy_plan_destroy(plan);
    fy_graph_destroy(gr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cuda_device_fault_completes_with_error), /* first: before CUDA */
        cmocka_unit_test(test_cuda_kernels_match_cpu),
        cmocka_unit_test(test_cuda_streamed_run_is_bitwise_resident),
        cmocka_unit_test(test_cuda_errors_are_named),
        cmocka_unit_test(test_cuda_engine_offloaded_plans_bitwise_resident),
        cmocka_unit_test(test_cuda_engine_pins_input_buffers),
        cmocka_unit_test(test_cuda_engine_notes_misaligned_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
