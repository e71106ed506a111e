/* ferry/engine.h — the executor that runs a checked plan, and the kernels it calls.
 *
 * Example (a kernel of your own, registered beside the built-in CPU kernels):
 *     static int scale(const fy_kernel_call *call, fy_error *err)
 *     {
 *         const float *x = call->inputs[0].data;
 *         float *y = call->outputs[0].data, factor = *(const float *)call->user;
 *         for (uint64_t i = 0; i < call->outputs[0].size / 4; i++)
 *             y[i] = x[i] * factor;
 *         return 0;
 *     }
 *
 *     fy_kernel_registry *reg;
 *     static const float two = 2.0f;
 *     if (fy_kernel_registry_create(&reg, &err) < 0 ||
 *         fy_kernel_registry_add_builtin_cpu(reg, &err) < 0 ||
 *         fy_kernel_registry_add(reg, "scale", scale, (void *)&two, &err) < 0)
 *         report(&err);
 *     ...                           // the engine runs op kind "scale" with it
 *     fy_kernel_registry_destroy(reg);
 *
 * A kernel is one function for one op kind on one device. The engine finds it by the op's
 * `kind` in the registry of the device the op runs on, hands it the op's buffers in the
 * op's reads/writes order, and waits for it to return. Kernels read only the fields of
 * fy_op and fy_tensor they are given; they never keep pointers past their return.
 */
#ifndef FERRY_ENGINE_H
#define FERRY_ENGINE_H

#include "ferry/core.h"
#include "ferry/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================================
 * Kernels
 * ====================================================================================== */

/* One operand of a kernel call. data points into the memory of the device the registry
 * serves (host memory for the CPU kernels, device memory for CUDA kernels). size is the
 * buffer's bytes and equals tensor->size; tensor describes it (dtype, shape) and may be NULL
 * for a call made outside a graph, in which case the operand is size-only. */
typedef struct fy_kernel_buffer {
    void *data;
    uint64_t size;
    const fy_tensor *tensor;
} fy_kernel_buffer;

/* Everything a kernel receives. The caller owns every pointer; they are valid for the
 * duration of the call only. */
typedef struct fy_kernel_call {
    const fy_op *op;                /* the op being run: name, kind, flops, time */
    const fy_graph *graph;          /* the graph the op belongs to; NULL outside a graph */
    const fy_kernel_buffer *inputs; /* op->read_count buffers, in op->reads order */
    size_t input_count;
    fy_kernel_buffer *outputs; /* op->write_count buffers, in op->writes order */
    size_t output_count;
    /* How long the op is predicted to take: its `time`, else flops / the device's compute
     * rate, else 0 (see fy_kernel_spin_seconds). The `spin` kernel lasts this long. */
    double spin_seconds;
    /* CPU threads the kernel may use; 0: the kernel's choice (the built-ins use one per
     * online CPU). Results never depend on it. */
    unsigned threads;
    /* The device backend's context for this call: NULL for the CPU ("sim" device); for CUDA
     * kernels, the cudaStream_t to enqueue on. */
    void *stream;
    void *user; /* the pointer given with the kernel to fy_kernel_registry_add */
} fy_kernel_call;

/* Runs one op. Returns 0 or a negative FY_E* status with err (which may be NULL) naming the
 * op and the tensor at fault. A CPU kernel has finished its work when it returns; a device
 * kernel may return once its work is enqueued on call->stream. */
typedef int (*fy_kernel_fn)(const fy_kernel_call *call, fy_error *err);

/* A registered kernel. kind is the registry's own copy. */
typedef struct fy_kernel {
    const char *kind;
    fy_kernel_fn fn;
    void *user;
} fy_kernel;

/* A table from op kind to kernel, one per device backend: the CPU kernels go into the sim
 * device's registry, CUDA kernels into the cuda device's, with these same types. A registry
 * is filled before a run and only read during it; reading it from several threads at once
 * is safe, changing it while another thread reads is not. */
typedef struct fy_kernel_registry fy_kernel_registry;

int fy_kernel_registry_create(fy_kernel_registry **out, fy_error *err);
void fy_kernel_registry_destroy(fy_kernel_registry *reg);

/* Registers fn (with user, handed back in every call) for ops of this kind. A kind already
 * registered, a built-in included, is replaced. Returns 0 when the kind was new, 1 when it
 * replaced a kernel, or a negative status (empty kind, NULL fn, out of memory). user is
 * borrowed: it must stay valid while the registry is used. */
int fy_kernel_registry_add(fy_kernel_registry *reg, const char *kind, fy_kernel_fn fn, void *user,
                           fy_error *err);

/* The kernel for kind, or NULL. The pointer stays valid until the registry is destroyed; a
 * later add of the same kind updates the entry it points to. */
const fy_kernel *fy_kernel_registry_find(const fy_kernel_registry *reg, const char *kind);

/* The registered kernels, in the order their kinds were first added. */
size_t fy_kernel_registry_count(const fy_kernel_registry *reg);
const fy_kernel *fy_kernel_registry_at(const fy_kernel_registry *reg, size_t index);

/* Registers the built-in CPU kernels: matmul, relu, add, copy, spin (docs/kernels.md).
 * Kinds registered before are replaced; register your own after this to override these. */
int fy_kernel_registry_add_builtin_cpu(fy_kernel_registry *reg, fy_error *err);

/* Finds the kernel for call->op->kind and runs it with its user pointer (call->user is
 * ignored). An unknown kind is FY_ENOENT naming the op and the kinds there are. A kernel
 * that fails without a message gets one naming the op. */
int fy_kernel_run(const fy_kernel_registry *reg, const fy_kernel_call *call, fy_error *err);

/* The op's predicted seconds for `spin`: its time when given, else flops divided by
 * flops_per_s (when both are positive), else 0. */
double fy_kernel_spin_seconds(const fy_op *op, double flops_per_s);

/* bfloat16 <-> float32. To bf16 rounds to nearest, ties to even; infinities stay infinite,
 * a NaN stays a NaN of the same sign (quieted); finite values past the bf16 range round to
 * infinity. To f32 is exact. */
uint16_t fy_bf16_from_f32(float value);
float fy_bf16_to_f32(uint16_t bits);

/* ======================================================================================
 * The engine (event loop, io and device backends) is declared below this line once it
 * exists; it will own one fy_kernel_registry per device backend and fill fy_kernel_call
 * from the plan's compute events.
 * ====================================================================================== */

#ifdef __cplusplus
}
#endif
#endif
