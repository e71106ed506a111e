/* A small program that embeds ferry: it builds a graph of one op of its own kind ("scale",
 * y = factor * x), a plan that moves x to the gpu, runs the op and brings y back, and runs
 * that plan on the engine with its own kernel registered. Build: see examples/CMakeLists.txt
 * (or `cc embed_scale.c $(pkg-config --cflags --libs ferry)` against an installed ferry). */
#include <ferry/ferry.h>

#include <stdio.h>
#include <stdlib.h>

#define N 1024

/* The kernel: one function for one op kind. On the sim device "gpu" buffers are host memory;
 * a CUDA build would register a kernel that enqueues on call->stream instead. */
static int scale(const fy_kernel_call *call, fy_error *err)
{
    const float *x = call->inputs[0].data;
    float *y = call->outputs[0].data, factor = *(const float *)call->user;
    if (call->inputs[0].size != call->outputs[0].size)
        return fy_error_set(err, FY_EINVAL, "op '%s': x and y differ in size", call->op->name);
    for (uint64_t i = 0; i < call->outputs[0].size / sizeof *y; i++)
        y[i] = factor * x[i];
    return 0;
}

static void on_event(void *user, const fy_plan *plan, size_t index)
{
    const fy_event *e = fy_plan_event(plan, index);
    printf("  event %zu done: %s %s\n", index, fy_event_kind_name(e->kind), e->ref);
    (void)user;
}

static int fail(const fy_error *err)
{
    fprintf(stderr, "embed_scale: %s\n", err->message);
    return 1;
}

int main(void)
{
    fy_error err = {0};
    fy_graph *g = NULL;
    fy_plan *plan = NULL;
    fy_engine *eng = NULL;

    /* The graph: x (an input, at home in our memory) -> scale -> y (an output). */
    const char *reads[] = {"x"}, *writes[] = {"y"};
    fy_tensor_desc x = {
        .name = "x", .kind = FY_TENSOR_INPUT, .dtype = FY_DTYPE_F32, .rank = 1, .shape = {N}};
    fy_tensor_desc y = {
        .name = "y", .kind = FY_TENSOR_OUTPUT, .dtype = FY_DTYPE_F32, .rank = 1, .shape = {N}};
    fy_op_desc op = {.name = "triple",
                     .kind = "scale",
                     .reads = reads,
                     .read_count = 1,
                     .writes = writes,
                     .write_count = 1,
                     .flops = N};
    if (fy_graph_create("embed", &g, &err) < 0 || fy_graph_add_tensor(g, &x, &err) < 0 ||
        fy_graph_add_tensor(g, &y, &err) < 0 || fy_graph_add_op(g, &op, &err) < 0 ||
        fy_graph_validate(g, &err) < 0)
        return fail(&err);

    /* The plan, by hand (`ferry plan` makes them from a policy): every copy's place in its
     * arena, and what each event waits for. */
    uint32_t after_load[] = {0}, after_op[] = {1}, after_back[] = {2};
    fy_placement y_at = {.tensor = 1, .offset = 4096};
    fy_event events[] = {
        {.kind = FY_EVENT_LOAD, .tensor = 0, .from = FY_TIER_HOST, .to = FY_TIER_GPU, .at = 0},
        {.kind = FY_EVENT_COMPUTE,
         .op = 0,
         .places = &y_at,
         .place_count = 1,
         .after = after_load,
         .after_count = 1},
        {.kind = FY_EVENT_OFFLOAD,
         .tensor = 1,
         .from = FY_TIER_GPU,
         .to = FY_TIER_HOST,
         .at = 0,
         .after = after_op,
         .after_count = 1},
        {.kind = FY_EVENT_EVICT,
         .tensor = 0,
         .from = FY_TIER_GPU,
         .after = after_op,
         .after_count = 1},
        {.kind = FY_EVENT_EVICT,
         .tensor = 1,
         .from = FY_TIER_GPU,
         .after = after_back,
         .after_count = 1},
    };
    if (fy_plan_create(g, NULL, &plan, &err) < 0) return fail(&err);
    for (size_t i = 0; i < sizeof events / sizeof events[0]; i++)
        if (fy_plan_add(plan, &events[i], &err) < 0) return fail(&err);
    fy_plan_set_arena(plan, FY_TIER_GPU, 8192);
    fy_plan_set_arena(plan, FY_TIER_HOST, 4096);

    /* The engine, with our kernel for ops of kind "scale" on the gpu. */
    static const float three = 3.0f;
    if (fy_engine_open(&(fy_engine_config){.device = "sim"}, &eng, &err) < 0 ||
        fy_engine_add_kernel(eng, FY_TIER_GPU, "scale", scale, (void *)&three, &err) < 0)
        return fail(&err);
    printf("engine: %s\n", fy_engine_description(eng));

    float *in = malloc(N * sizeof *in), *out = malloc(N * sizeof *out);
    for (int i = 0; i < N; i++)
        in[i] = (float)i;
    fy_engine_buffer inputs[] = {{"x", in, N * sizeof *in}};
    fy_engine_buffer outputs[] = {{"y", out, N * sizeof *out}};
    fy_engine_run_args args = {.inputs = inputs,
                               .input_count = 1,
                               .outputs = outputs,
                               .output_count = 1,
                               .on_event = on_event};
    fy_engine_report rep;
    int rc = fy_engine_run(eng, plan, &args, &rep, &err);
    if (rc < 0) {
        fail(&err);
    } else {
        printf("y[1] = %g, y[%d] = %g; ran in %.3f ms, peak gpu %llu bytes\n", out[1], N - 1,
               out[N - 1], rep.wall_s * 1e3, (unsigned long long)rep.peak[FY_TIER_GPU]);
        rc = out[N - 1] == 3.0f * (float)(N - 1) ? 0 : 1;
    }
    fy_engine_report_free(&rep);
    free(in);
    free(out);
    fy_engine_close(eng);
    fy_plan_destroy(plan);
    fy_graph_destroy(g);
    return rc ? 1 : 0;
}
