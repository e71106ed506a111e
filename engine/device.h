/* engine/device.h — the device backend interface (engine-private): `sim` (the "gpu" is
 * host memory, copies and ops run on worker threads) and `cuda` (streams, one cudaMalloc
 * arena, a pinned host arena). The engine's loop is the only caller, from one thread.
 *
 * Example (what the engine does):
 *     const fy_device_backend *b;
 *     fy_device *dev;
 *     b = &fy_device_backend_sim;                  // or fy_device_backend_cuda(&b, &err)
 *     b->open(&(fy_device_config){.notify_fd = efd}, &dev, &err);
 *     fy_device_arenas a = {.gpu_bytes = G, .host_bytes = H, .tag_count = n};
 *     b->run_begin(dev, &a, &err);                // a.gpu_base, a.host_base
 *     b->submit(dev, &(fy_device_work){.kind = FY_DEVICE_H2D, .tag = 3, .host = a.host_base,
 *                                      .gpu_offset = 0, .size = 4096}, &err);
 *     ...efd becomes readable...
 *     n = b->reap(dev, done, 16);                  // done[0].tag == 3
 *     b->run_end(dev);                             // waits for all work, frees the arenas
 *     b->close(dev);
 *
 * Contract:
 * - Streams. The device has three streams: h2d (FY_DEVICE_H2D), d2h (FY_DEVICE_D2H) and
 *   compute (FY_DEVICE_COMPUTE). Work on one stream runs in submission order, one item after
 *   the other; streams run in parallel.
 * - Waits. A work item may name, in waits, tags of work submitted EARLIER (on any stream)
 *   that must complete before it starts. The engine passes waits only when info().device_waits
 *   is true; then the device must order them itself (cuda: cudaEventRecord after each item,
 *   cudaStreamWaitEvent before a waiting one — no host round trip). When device_waits is
 *   false the engine submits an item only after everything it depends on has completed, and
 *   waits is empty.
 * - Completions. Every submit that returns 0 produces exactly one completion, later, through
 *   reap(); the device adds 1 to notify_fd (an eventfd; cuda: from a cudaLaunchHostFunc
 *   callback) after it has made one or more completions reapable. A wake-up with nothing to
 *   reap is harmless; a completion without a wake-up is a hang, so signal after publishing.
 *   A failed item still completes (status < 0, message set); the engine then stops issuing,
 *   may call cancel(), and reaps until every submitted item has come back.
 * - Memory. run_begin allocates both arenas once per run at the plan's sizes: gpu_base is a
 *   device address (host memory for sim) that the engine only offsets and hands to kernels
 *   and to submit; host_base is host memory the engine reads and writes directly and the io
 *   backend registers (pinned for cuda). Arenas of 0 bytes may be NULL. H2D sources and D2H
 *   destinations lie in the host arena or in the caller's memory (an input's home copy):
 *   cuda must accept pageable memory there too. The engine page-locks such caller memory
 *   with pin() for the run when the device has it (outside the measured time).
 * - Kernels. kernels() is the registry of the device's ops (CPU kernels for sim, CUDA
 *   kernels for cuda); the engine adds the user's kernels to it. A compute item runs
 *   fy_kernel_run(kernels, call) with call->stream set to the device's compute stream
 *   (NULL for sim); buffers point into the gpu arena.
 */
#ifndef FERRY_ENGINE_DEVICE_H
#define FERRY_ENGINE_DEVICE_H

#include "ferry/engine.h"

typedef struct fy_device fy_device;

typedef struct fy_device_config {
    int notify_fd;         /* eventfd to add 1 to when completions are ready */
    unsigned threads;      /* CPU threads a CPU kernel may use; 0: the kernel's choice */
    bool sim_device_waits; /* sim only, for tests: honour waits on the workers (as cuda does
                              with events) instead of leaving them to the engine */
    int poll_us;           /* cuda: see fy_engine_config.completion_poll_us */
} fy_device_config;

typedef struct fy_device_info {
    const char *name;       /* "sim", "cuda" */
    bool device_waits;      /* submit() orders waits on the device side */
    bool host_arena_pinned; /* the host arena is page-locked (DMA-able) */
    bool gpu_host_readable; /* the host may read gpu arena addresses directly (sim) */
    uint64_t poll_ns;       /* nonzero: completions are published without waiting for the
                               notify_fd wake-up to reach the loop; it should reap this often */
    char description[256];  /* for the report: "host simulation (3 worker threads)", the GPU */
} fy_device_info;

/* One run's memory. In: sizes and the number of tags (tags are < tag_count). Out: bases. */
typedef struct fy_device_arenas {
    uint64_t gpu_bytes, host_bytes;
    size_t tag_count;
    void *gpu_base, *host_base;
} fy_device_arenas;

typedef enum fy_device_work_kind {
    FY_DEVICE_H2D = 0, /* host -> gpu arena, on the h2d stream */
    FY_DEVICE_D2H,     /* gpu arena -> host, on the d2h stream */
    FY_DEVICE_COMPUTE, /* one op, on the compute stream */
} fy_device_work_kind;
#define FY_DEVICE_STREAM_COUNT 3

typedef struct fy_device_work {
    fy_device_work_kind kind;
    uint64_t tag;          /* handed back in the completion; the plan event's index */
    const uint64_t *waits; /* see "Waits"; borrowed for the duration of submit() */
    size_t wait_count;
    /* H2D, D2H: size bytes between host (host arena or caller memory) and gpu_base +
     * gpu_offset. The memory must stay untouched until the completion. */
    void *host;
    uint64_t gpu_offset;
    uint64_t size;
    /* COMPUTE: the call, with buffers pointing into the gpu arena. Borrowed for the duration
     * of submit(): the device copies what it keeps (the buffer arrays included). */
    const fy_kernel_call *call;
} fy_device_work;

typedef struct fy_device_done {
    uint64_t tag;
    int status;        /* 0 or a negative FY_E* */
    uint64_t start_ns; /* when the work ran, CLOCK_MONOTONIC; 0: unknown (the engine then */
    uint64_t end_ns;   /* uses the times it observed) */
    char message[FY_ERROR_MESSAGE_MAX]; /* on failure: what failed and why */
} fy_device_done;

/* A backend. Every slot is mandatory except cancel, pin and unpin. */
typedef struct fy_device_backend {
    const char *name;
    /* Opens the device (cuda: picks the GPU, creates streams). FY_EUNSUPPORTED when the
     * device is not there, with the reason. */
    int (*open)(const fy_device_config *cfg, fy_device **out, fy_error *err);
    /* Waits for all work, frees everything (a run still begun is ended). NULL accepted. */
    void (*close)(fy_device *dev);
    void (*info)(fy_device *dev, fy_device_info *out);
    /* The registry of the device's kernels; owned by the device, valid until close. */
    fy_kernel_registry *(*kernels)(fy_device *dev);
    /* Allocates the arenas for one run (FY_ENOMEM / FY_EDEVICE naming the size when they do
     * not fit). FY_ESTATE when a run is already begun. */
    int (*run_begin)(fy_device *dev, fy_device_arenas *arenas, fy_error *err);
    /* Waits until every submitted item has completed (they stay reapable until reaped or
     * until the next run_begin), then frees the arenas. Nothing may be in flight after. */
    void (*run_end)(fy_device *dev);
    /* Queues one item. On failure nothing was queued and no completion will come. */
    int (*submit)(fy_device *dev, const fy_device_work *work, fy_error *err);
    /* Moves up to max completions to out, oldest first; returns how many. Never blocks. */
    size_t (*reap)(fy_device *dev, fy_device_done *out, size_t max);
    /* Optional: items not yet started may complete without running (status FY_ESTATE,
     * "cancelled"); used after an error so that a failed run ends soon. */
    void (*cancel)(fy_device *dev);
    /* Optional: keeps arenas of these sizes allocated between runs (a serving workspace's
     * fixed budget); a later run_begin whose arena fits uses them instead of allocating,
     * and run_end leaves them. 0 and 0 give them back (close does too). FY_ESTATE during a
     * run; on failure the previous reservation stays. */
    int (*reserve)(fy_device *dev, uint64_t gpu_bytes, uint64_t host_bytes, fy_error *err);
    /* Optional (cuda): page-locks the caller's memory [ptr, ptr + size) so that copies from
     * it run at the link's rate, not through the driver's pageable staging. Returns 1 when
     * pinned here (unpin must follow, after the run's work is over), 0 when left as it was
     * because it is page-locked already (its owner pinned it: nothing to undo), or a negative
     * status with the device's reason: the memory stays pageable and copies still work. */
    int (*pin)(fy_device *dev, void *ptr, size_t size, fy_error *err);
    void (*unpin)(fy_device *dev, void *ptr);
} fy_device_backend;

extern const fy_device_backend fy_device_backend_sim;

/* The CUDA backend: engine/cuda/ defines it when CUDA is built; engine/nocuda/ otherwise,
 * returning FY_EUNSUPPORTED ("built without CUDA"). */
int fy_device_backend_cuda(const fy_device_backend **out, fy_error *err);

#endif
