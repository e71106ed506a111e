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
#include "ferry/plan.h"

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
 * The engine: runs a checked plan (ferry/plan.h) on a device backend ("sim": the gpu is
 * host memory and ops run on the CPU; "cuda") with an io backend (io_uring, or a thread
 * pool where io_uring is refused).
 *
 * Example:
 *     fy_engine *eng;
 *     if (fy_engine_open(&(fy_engine_config){.device = "sim"}, &eng, &err) < 0 ||
 *         fy_engine_add_kernel(eng, FY_TIER_GPU, "scale", scale, (void *)&two, &err) < 0)
 *         report(&err);
 *     fy_engine_buffer in[] = {{"x", x, sizeof x}}, out[] = {{"y", y, sizeof y}};
 *     fy_engine_run_args args = {.inputs = in, .input_count = 1,
 *                                .outputs = out, .output_count = 1};
 *     fy_engine_report rep;
 *     if (fy_engine_run(eng, plan, &args, &rep, &err) < 0)
 *         report(&err);                 // "plan.yaml:12: error: event 9 (load 'w1' ...): ..."
 *     printf("%.3f s\n", rep.wall_s);
 *     fy_engine_report_free(&rep);
 *     fy_engine_close(eng);
 *
 * One engine runs one plan at a time, from the thread that calls fy_engine_run; callbacks
 * come on that thread. The engine borrows the plan for the run only. Every run allocates
 * the plan's arenas once, places each copy at its `at` offset, and frees everything before
 * it returns, on success or failure (the spill file included).
 * ====================================================================================== */

struct fy_io_backend; /* engine/io.h: a custom io backend (tests, embedding programs) */

typedef struct fy_engine_config {
    const char *device;   /* "sim", "cuda" or "auto" (NULL): cuda when it opens, else sim */
    const char *io;       /* "auto" (NULL), "io_uring" or "threads" */
    size_t chunk_size;    /* bytes per io chunk; 0: the io backend's default */
    unsigned queue_depth; /* io chunks in flight; 0: the io backend's default */
    const char *nvme_dir; /* folder of the spill file; NULL: the plan's machine nvme dir */
    unsigned threads;     /* CPU threads a CPU kernel may use; 0: all */
    bool buffered_io;     /* never open files with O_DIRECT */
    /* Advanced: an io backend used instead of `io` (engine/io.h), e.g. one that wraps
     * another to inject faults. Borrowed; it must outlive the engine. */
    const struct fy_io_backend *io_backend;
    /* Tests: the sim device orders its streams itself, as cuda does (see docs/engine.md). */
    bool sim_device_waits;
    /* Emulation: every compute runs the `spin` kernel for the op's predicted time (its
     * `time`, else flops / the plan machine's compute rate) instead of its kind's kernel,
     * so any graph runs — an imported checkpoint's `embedding`/`block`/`head`, a generated
     * transformer's `attention`, `adam`, ... — and a run measures how fast the plan streams
     * its real bytes on this machine. Outputs then hold spin's pattern, not results. */
    bool emulate;
    /* Never page-lock the caller's input buffers (see fy_engine_report.pinned_bytes): copies
     * from them then go through the driver's pageable path, at a fraction of the link. */
    bool keep_pageable;
    /* How often, in microseconds, completions of device work are looked for. cuda: its
     * watcher threads ask whether the work they wait for is done, and the engine's loop
     * takes what they found, this often (0: every 20 us) besides being woken; negative: the
     * watchers sleep in the driver until the GPU's interrupt wakes them and the loop waits to
     * be woken, which uses the least CPU but learns of each completion later (about 0.6 ms on
     * the lent H200, added to a run's wall time by its last event). sim: the loop polls only
     * when this is positive (tests). */
    int completion_poll_us;
} fy_engine_config;

typedef struct fy_engine fy_engine;

/* Opens the device and picks the io backend. "cuda" without a usable GPU, or an io backend
 * the kernel refuses when named, is FY_EUNSUPPORTED with the reason; "auto" falls back and
 * says why in fy_engine_note. cfg may be NULL (all defaults). */
int fy_engine_open(const fy_engine_config *cfg, fy_engine **out, fy_error *err);
/* NULL accepted. Refused (nothing happens) while a run is under way, from a callback. */
void fy_engine_close(fy_engine *eng);
/* What the engine runs on: "sim", "cuda"; "io_uring", "threads"; and a line for people. */
const char *fy_engine_device_name(const fy_engine *eng);
const char *fy_engine_io_name(const fy_engine *eng);
const char *fy_engine_description(const fy_engine *eng);
/* Why "auto" fell back (a device or io backend refused), or "". */
const char *fy_engine_note(const fy_engine *eng);

/* Registers a kernel for ops of `kind` that run on `device`: FY_TIER_GPU (the device's
 * registry: on sim a CPU function given host pointers; on cuda, device pointers and
 * call->stream to enqueue on) or FY_TIER_HOST (ops with `device: host`, always CPU). The
 * built-in kernels are there already; a kind registered again replaces them. Returns 0, 1
 * (replaced) or a negative status. user is borrowed for the engine's life. */
int fy_engine_add_kernel(fy_engine *eng, fy_tier device, const char *kind, fy_kernel_fn fn,
                         void *user, fy_error *err);
/* The registry itself (same tiers); owned by the engine. */
fy_kernel_registry *fy_engine_kernels(fy_engine *eng, fy_tier device);

/* A caller's buffer for one tensor, by name. On cuda, inputs are page-locked for the run;
 * page-aligned data copies to the gpu about 0.7% faster than malloc's (16 bytes past a page):
 * see docs/performance.md, "The batch-64 gap". */
typedef struct fy_engine_buffer {
    const char *name;
    void *data;
    uint64_t size; /* must equal the tensor's size */
} fy_engine_buffer;

typedef struct fy_engine_progress {
    size_t events_done, events_total;
    uint64_t bytes_done, bytes_total; /* bytes of loads and offloads */
    double elapsed_s;
} fy_engine_progress;

typedef struct fy_engine_run_args {
    /* Home copies on host (inputs, weights without a source file, optimizer state): every
     * one the plan uses must be given. A host op that writes such a tensor updates the
     * buffer in place; device copies only read it. Borrowed until the run returns. */
    const fy_engine_buffer *inputs;
    size_t input_count;
    /* Tensors to hand back from the host arena when the run succeeds (outputs, or any
     * tensor whose final version ends on host); verified against their checksum first. */
    const fy_engine_buffer *outputs;
    size_t output_count;
    /* Called on the running thread as each event completes (index into the plan). */
    void (*on_event)(void *user, const fy_plan *plan, size_t index);
    /* Called about every progress_interval_s (0: 0.1 s) while the run goes on. */
    void (*on_progress)(void *user, const fy_engine_progress *progress);
    double progress_interval_s;
    void *user;
    /* Verify every weight against its source file as it lands: before the run, the crc32c
     * of each loaded tensor's bytes in its source file is computed (one more read of those
     * bytes, dropped from the page cache after); during it, each copy that still holds
     * those bytes is checked when it arrives — in the host arena after every nvme->host
     * read, and on the gpu after every host->gpu copy where the host can read gpu memory
     * and the engine orders the device (sim). A mismatch stops the run with FY_ECHECKSUM
     * naming the tensor, the copy and the file. */
    bool verify_weights;
} fy_engine_run_args;

typedef enum fy_engine_queue {
    FY_ENGINE_QUEUE_IO = 0, /* nvme<->host, many in flight */
    FY_ENGINE_QUEUE_H2D,
    FY_ENGINE_QUEUE_D2H,
    FY_ENGINE_QUEUE_GPU,  /* computes on the gpu */
    FY_ENGINE_QUEUE_HOST, /* computes on the host */
} fy_engine_queue;
#define FY_ENGINE_QUEUE_COUNT 5
const char *fy_engine_queue_name(fy_engine_queue q); /* "io", "h2d", "d2h", "gpu", "host" */

typedef struct fy_engine_queue_stats {
    size_t events;
    uint64_t bytes;
    double busy_s;  /* time with at least one of its events running */
    double stall_s; /* compute queues: time idle between ops while ops remained */
} fy_engine_queue_stats;

/* When one event ran, in seconds since the run started (evicts: start == end). */
typedef struct fy_engine_event_time {
    double start_s, end_s;
} fy_engine_event_time;

/* Where caller buffers that host->gpu copies read should start (see misaligned_bytes). */
#define FY_ENGINE_INPUT_ALIGN 4096u

typedef struct fy_engine_report {
    double wall_s; /* host clock, from the run's start until the engine had seen every event
                      complete (a device's events are timed by the device's own clock) */
    size_t event_count;
    fy_engine_queue_stats queue[FY_ENGINE_QUEUE_COUNT];
    double stall_s;     /* compute stalls in all (gpu + host queues) */
    size_t stall_count; /* computes that waited more than 1 us for their operands */
    long stall_worst;   /* event index of the longest stall, -1 none */
    double stall_worst_s;
    char stall_cause[256]; /* what the longest stall waited for, e.g. "load 'w3' host->gpu" */
    uint64_t arena[FY_TIER_COUNT]; /* bytes allocated (nvme: the spill file's extent) */
    uint64_t peak[FY_TIER_COUNT];  /* measured peak of live copies in each arena */
    /* Caller buffers that host->gpu copies read (home copies on host: inputs, weights without
     * a source) are page-locked by the device for the run (cuda: cudaHostRegister), before
     * the run's clock starts, and unlocked after it: pinned_bytes of them, in pin_s seconds
     * (not part of wall_s). Buffers the caller had pinned already count as pinned, at no
     * cost. unpinned_bytes stayed pageable: keep_pageable was set, or the device refused
     * (pin_note says why; the run goes on from pageable memory). All 0 on sim, whose "gpu"
     * is host memory. */
    uint64_t pinned_bytes, unpinned_bytes;
    double pin_s;
    char pin_note[256];
    /* Of the pinned bytes, those in buffers of 1 MiB or more that do not start on a page
     * boundary (malloc puts a large block 16 bytes past one): the copy engine reads them about
     * 0.7% slower (on the lent H200), so page-align large inputs (posix_memalign,
     * cudaHostAlloc). align_note names the first such buffer. */
    uint64_t misaligned_bytes;
    char align_note[256];
    char device[256];      /* the device's description */
    char io[64];           /* the io backend */
    uint64_t source_bytes; /* bytes read from weights' source files ... */
    size_t source_reads;   /* ... by this many loads */
    size_t verified_count; /* copies verified against their source (verify_weights) */
    uint64_t verified_bytes;
    size_t emulated_count;        /* computes that ran `spin` in their kind's place */
    fy_engine_event_time *events; /* event_count entries; owned, fy_engine_report_free */
} fy_engine_report;

/* Runs a plan. The plan is checked first (fy_check_plan); a plan with violations is
 * refused with FY_ECHECK and the checker's first message. Then every compute's kernel is
 * looked up: an op whose kind has no kernel on its device (and no `spin` when emulating)
 * is refused with FY_ENOENT before anything is allocated, naming the op, its kind and the
 * way out (register a kernel, or emulate). On failure the run stops at the
 * first error — an io error, a short source file, a full disk, a kernel's error, a checksum
 * mismatch — naming the event (id and plan line), tensor, file and cause; in-flight work is
 * drained and everything is freed, the spill file removed. report may be NULL; when given
 * it is filled on success and zeroed on failure (fy_engine_report_free is safe on both). */
int fy_engine_run(fy_engine *eng, const fy_plan *plan, const fy_engine_run_args *args,
                  fy_engine_report *report, fy_error *err);
void fy_engine_report_free(fy_engine_report *report);

/* Writes a report's timeline as Chrome trace JSON (chrome://tracing, Perfetto): a track per
 * queue with an event per plan event, evicts as instants, live bytes per tier as counters. */
int fy_engine_report_trace(const fy_engine_report *report, const fy_plan *plan, const char *path,
                           fy_error *err);

#ifdef __cplusplus
}
#endif
#endif
