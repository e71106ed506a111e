/* The `cuda` device: one cudaMalloc arena on the GPU and one cudaHostAlloc (pinned) arena on
 * the host per run, three non-blocking streams (h2d, d2h, compute) and the CUDA kernels; the
 * caller's buffers that copies read are page-locked for the run (pin/unpin).
 *
 * Ordering is on the device: every item records an end event after its work, and an item
 * that waits for tags on other streams enqueues cudaStreamWaitEvent on their end events
 * before its work, so the engine issues ahead with no host round trip.
 * Completions: one watcher thread per stream waits for its stream's items in order (it polls
 * the end event every poll_us, or sleeps in cudaEventSynchronize on it, a blocking-sync
 * event), publishes each under the lock and then adds 1 to the engine's eventfd; the engine's
 * loop also reaps every poll_us. Nothing host-side sits in the streams: a host function or
 * stream callback after every item (cudaLaunchHostFunc, as first designed, or
 * cudaStreamAddCallback) holds its stream until the host has run it, which cost 150-550 us
 * between consecutive copies on the lent H200 (13% of a transfer-bound run). After a device
 * fault cudaEventQuery and cudaEventSynchronize return the error, so every item still
 * completes, with it.
 * Invariants: every item whose submit returned 0 is counted in `outstanding` until its watcher
 * has published it, and its events stay alive until reap() hands it back; `live[tag]` points at
 * an item from its submit until its reap, so waits on tags already reaped are skipped (they
 * completed). The measured timeline: each item's end event, read in reap() relative to a
 * reference event whose host time was taken when the run began, and a start derived from the
 * ends it followed (derived_start). */
#include "engine/cuda/cuda_kernels.h"
#include "core/clock.h"
#include "engine/device.h"
#include "engine/kernels.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct cuda_item {
    struct cuda_item *next; /* in the done list */
    fy_device *dev;
    uint64_t tag;
    fy_device_work_kind kind;
    cudaEvent_t end;
    bool end_recorded;
    uint64_t submit_ns; /* host time just before its work was enqueued */
    int status;         /* a failure found while enqueueing (a kernel's refusal) */
    char *message;      /* its message, owned */
    cudaError_t async;  /* what the stream callback saw */
    char what[128];     /* "op 'fc0' (matmul)", "h2d copy of 4096 bytes" */
    size_t waited_count;
    uint64_t waited[]; /* tags of other streams' items it waits for on the device */
} cuda_item;

struct fy_device {
    fy_device_config cfg;
    int ordinal;
    struct cudaDeviceProp prop;
    cudaStream_t stream[FY_DEVICE_STREAM_COUNT];
    fy_cuda_blas *blas;
    fy_kernel_registry *reg;
    cudaEvent_t *pool; /* idle events, reused across items and runs */
    size_t pool_count, pool_cap;
    /* The run. */
    bool begun;
    void *gpu, *host;
    uint64_t gpu_bytes, host_bytes;
    /* Arenas kept between runs (cuda_reserve); a run whose arena fits uses them. */
    void *kept_gpu, *kept_host;
    uint64_t kept_gpu_bytes, kept_host_bytes;
    cuda_item **live;
    size_t tag_count;
    uint64_t *end_of;                          /* per tag: its end, once reaped */
    uint64_t last_end[FY_DEVICE_STREAM_COUNT]; /* the end of each stream's last reaped item */
    cudaEvent_t ref;
    uint64_t ref_ns;
    /* Shared with the stream callbacks. */
    pthread_mutex_t lock;
    pthread_cond_t idle;
    cuda_item *done_head, *done_tail;
    size_t outstanding;
    /* The watchers: per stream, the items submitted and not yet published, oldest first. */
    pthread_cond_t more[FY_DEVICE_STREAM_COUNT]; /* an item was queued there, or stopping */
    cuda_item *pend_head[FY_DEVICE_STREAM_COUNT], *pend_tail[FY_DEVICE_STREAM_COUNT];
    pthread_t watcher[FY_DEVICE_STREAM_COUNT];
    int watcher_count;
    bool stopping;
    long poll_ns; /* how often a watcher asks whether its item is done; 0: it sleeps in the
                     driver until the GPU's interrupt wakes it */
};

typedef struct watch_arg {
    fy_device *dev;
    int stream;
} watch_arg;

/* Completions are polled this often by default. Sleeping in the driver (cudaEventSynchronize
 * on a blocking-sync event) wakes the watcher about 0.5 ms after the GPU finished on the lent
 * H200, which a run's last event adds to its wall time; polling every 20 us costs about as
 * little CPU (docs/performance.md). */
#define DEFAULT_POLL_US 20

/* The reference event completes within microseconds of its record on an idle stream. */
#define REF_POLL_LIMIT_NS 1000000000ull

static const char *const stream_names[FY_DEVICE_STREAM_COUNT] = {"h2d", "d2h", "compute"};

/* Polls ev until it completes: every interval_ns (0: as fast as the driver answers); after
 * limit_ns (0: never) it waits in the driver instead. Returns the event's status. */
static cudaError_t poll_event(cudaEvent_t ev, long interval_ns, uint64_t limit_ns)
{
    uint64_t since = limit_ns ? fy_now_ns() : 0;
    cudaError_t e;
    while ((e = cudaEventQuery(ev)) == cudaErrorNotReady) {
        if (limit_ns && fy_now_ns() - since > limit_ns) return cudaEventSynchronize(ev);
        if (interval_ns) {
            struct timespec ts = {0, interval_ns};
            nanosleep(&ts, NULL);
        }
    }
    return e;
}

static const char *size_text(uint64_t bytes, char *buf, size_t size)
{
    return fy_size_format_human(bytes, buf, size);
}

static int event_get(fy_device *dev, cudaEvent_t *out, fy_error *err)
{
    if (dev->pool_count) {
        *out = dev->pool[--dev->pool_count];
        return 0;
    }
    /* Blocking sync only where a watcher waits in the driver (poll_us < 0), so that it sleeps
     * rather than spins: such an event also costs the GPU more to record. */
    cudaError_t e =
        cudaEventCreateWithFlags(out, dev->poll_ns ? cudaEventDefault : cudaEventBlockingSync);
    return e == cudaSuccess ? 0 : fy_cuda_fail(err, e, "cudaEventCreateWithFlags", "cuda device");
}

static void event_put(fy_device *dev, cudaEvent_t ev)
{
    if (!ev) return;
    if (dev->pool_count == dev->pool_cap) {
        size_t cap = dev->pool_cap ? dev->pool_cap * 2 : 64;
        cudaEvent_t *grown = realloc(dev->pool, cap * sizeof *grown);
        if (!grown) { /* keeping it is only an optimisation */
            cudaEventDestroy(ev);
            return;
        }
        dev->pool = grown;
        dev->pool_cap = cap;
    }
    dev->pool[dev->pool_count++] = ev;
}

static void item_free(fy_device *dev, cuda_item *it)
{
    event_put(dev, it->end);
    free(it->message);
    free(it);
}

/* A stream's watcher: waits for each item of its stream in submission order, then publishes
 * it (under the lock) and wakes the loop (after publishing, so no wake-up is lost). */
static void *watch(void *arg)
{
    fy_device *dev = ((watch_arg *)arg)->dev;
    int s = ((watch_arg *)arg)->stream;
    free(arg);
    cudaSetDevice(dev->ordinal);
    /* Polling sleeps are short: the default 50 us of timer slack would more than double them. */
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    pthread_mutex_lock(&dev->lock);
    for (;;) {
        while (!dev->pend_head[s] && !dev->stopping)
            pthread_cond_wait(&dev->more[s], &dev->lock);
        cuda_item *it = dev->pend_head[s];
        if (!it) break; /* stopping, and nothing left to wait for */
        pthread_mutex_unlock(&dev->lock);
        cudaError_t e;
        if (!it->end_recorded)
            e = cudaStreamSynchronize(dev->stream[s]);
        else if (dev->poll_ns)
            e = poll_event(it->end, dev->poll_ns, 0);
        else
            e = cudaEventSynchronize(it->end);
        pthread_mutex_lock(&dev->lock);
        dev->pend_head[s] = it->next;
        if (!dev->pend_head[s]) dev->pend_tail[s] = NULL;
        it->next = NULL;
        it->async = e;
        if (dev->done_tail)
            dev->done_tail->next = it;
        else
            dev->done_head = it;
        dev->done_tail = it;
        dev->outstanding--;
        pthread_cond_broadcast(&dev->idle);
        pthread_mutex_unlock(&dev->lock);
        uint64_t one = 1;
        while (write(dev->cfg.notify_fd, &one, sizeof one) < 0 && errno == EINTR) {
        }
        pthread_mutex_lock(&dev->lock);
    }
    pthread_mutex_unlock(&dev->lock);
    return NULL;
}

static void cuda_close(fy_device *dev);
static void cuda_run_end(fy_device *dev);

static int cuda_open(const fy_device_config *cfg, fy_device **out, fy_error *err)
{
    *out = NULL;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0)
        return fy_error_set(err, FY_EUNSUPPORTED, "the cuda device is not available: %s",
                            e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA GPU found");
    fy_device *dev = calloc(1, sizeof *dev);
    if (!dev) return fy_error_set(err, FY_ENOMEM, "out of memory for the cuda device");
    dev->cfg = *cfg;
    dev->poll_ns = cfg->poll_us < 0 ? 0 : 1000L * (cfg->poll_us ? cfg->poll_us : DEFAULT_POLL_US);
    pthread_mutex_init(&dev->lock, NULL);
    pthread_cond_init(&dev->idle, NULL);
    for (int s = 0; s < FY_DEVICE_STREAM_COUNT; s++)
        pthread_cond_init(&dev->more[s], NULL);
    int rc = 0;
    if ((e = cudaSetDevice(dev->ordinal)) != cudaSuccess ||
        (e = cudaGetDeviceProperties(&dev->prop, dev->ordinal)) != cudaSuccess) {
        rc = fy_cuda_fail(err, e, "cudaSetDevice / cudaGetDeviceProperties", "cuda device");
        goto fail;
    }
    for (int s = 0; s < FY_DEVICE_STREAM_COUNT; s++)
        if ((e = cudaStreamCreateWithFlags(&dev->stream[s], cudaStreamNonBlocking)) !=
            cudaSuccess) {
            rc = fy_cuda_fail(err, e, "cudaStreamCreateWithFlags", stream_names[s]);
            goto fail;
        }
    if ((rc = fy_cuda_blas_create(&dev->blas, err)) < 0 ||
        (rc = fy_kernel_registry_create(&dev->reg, err)) < 0 ||
        (rc = fy_cuda_kernels_register(dev->reg, dev->blas, err)) < 0)
        goto fail;
    for (int s = 0; s < FY_DEVICE_STREAM_COUNT; s++) {
        watch_arg *wa = malloc(sizeof *wa);
        int perr = wa ? 0 : ENOMEM;
        if (wa) {
            *wa = (watch_arg){.dev = dev, .stream = s};
            perr = pthread_create(&dev->watcher[s], NULL, watch, wa);
            if (perr) free(wa);
        }
        if (perr) {
            rc = fy_error_set(err, FY_ENOMEM, "cuda device: cannot start the %s watcher: %s",
                              stream_names[s], strerror(perr));
            goto fail;
        }
        dev->watcher_count++;
    }
    *out = dev;
    return 0;
fail:
    cuda_close(dev);
    return rc;
}

static int cuda_reserve(fy_device *dev, uint64_t gpu_bytes, uint64_t host_bytes, fy_error *err);

static void cuda_close(fy_device *dev)
{
    if (!dev) return;
    if (dev->begun) cuda_run_end(dev);
    pthread_mutex_lock(&dev->lock);
    dev->stopping = true;
    for (int s = 0; s < FY_DEVICE_STREAM_COUNT; s++)
        pthread_cond_signal(&dev->more[s]);
    pthread_mutex_unlock(&dev->lock);
    for (int s = 0; s < dev->watcher_count; s++)
        pthread_join(dev->watcher[s], NULL);
    cuda_reserve(dev, 0, 0, NULL);
    for (int s = 0; s < FY_DEVICE_STREAM_COUNT; s++)
        if (dev->stream[s]) cudaStreamDestroy(dev->stream[s]);
    for (size_t i = 0; i < dev->pool_count; i++)
        cudaEventDestroy(dev->pool[i]);
    free(dev->pool);
    fy_kernel_registry_destroy(dev->reg);
    fy_cuda_blas_destroy(dev->blas);
    pthread_cond_destroy(&dev->idle);
    for (int s = 0; s < FY_DEVICE_STREAM_COUNT; s++)
        pthread_cond_destroy(&dev->more[s]);
    pthread_mutex_destroy(&dev->lock);
    free(dev);
}

static void cuda_info(fy_device *dev, fy_device_info *out)
{
    memset(out, 0, sizeof *out);
    out->name = "cuda";
    out->device_waits = true;
    out->host_arena_pinned = true;
    out->poll_ns = (uint64_t)dev->poll_ns;
    char mem[32];
    int driver = 0;
    cudaDriverGetVersion(&driver);
    snprintf(out->description, sizeof out->description,
             "%s (sm_%d%d, %s, %d SMs, CUDA driver %d.%d)", dev->prop.name, dev->prop.major,
             dev->prop.minor, size_text(dev->prop.totalGlobalMem, mem, sizeof mem),
             dev->prop.multiProcessorCount, driver / 1000, driver % 1000 / 10);
}

static fy_kernel_registry *cuda_kernels(fy_device *dev)
{
    return dev->reg;
}

/* Drops completions left from an earlier run that were never reaped. */
static void drop_done(fy_device *dev)
{
    pthread_mutex_lock(&dev->lock);
    cuda_item *it = dev->done_head;
    dev->done_head = dev->done_tail = NULL;
    pthread_mutex_unlock(&dev->lock);
    while (it) {
        cuda_item *next = it->next;
        item_free(dev, it);
        it = next;
    }
}

static int cuda_run_begin(fy_device *dev, fy_device_arenas *arenas, fy_error *err)
{
    if (dev->begun) return fy_error_set(err, FY_ESTATE, "cuda device: a run is already begun");
    drop_done(dev);
    char want[32], free_text[32], total_text[32];
    cudaError_t e;
    int rc = 0;
    bool kept_gpu = arenas->gpu_bytes && arenas->gpu_bytes <= dev->kept_gpu_bytes;
    bool kept_host = arenas->host_bytes && arenas->host_bytes <= dev->kept_host_bytes;
    if (kept_gpu) dev->gpu = dev->kept_gpu;
    if (arenas->gpu_bytes && !kept_gpu) {
        size_t free_bytes = 0, total = 0;
        if ((e = cudaMemGetInfo(&free_bytes, &total)) != cudaSuccess)
            return fy_cuda_fail(err, e, "cudaMemGetInfo", "cuda device");
        size_text(arenas->gpu_bytes, want, sizeof want);
        size_text(free_bytes, free_text, sizeof free_text);
        size_text(total, total_text, sizeof total_text);
        if (arenas->gpu_bytes > free_bytes)
            return fy_error_set(err, FY_EDEVICE,
                                "the plan's gpu arena of %s (%" PRIu64
                                " bytes) does not fit on %s: %s free of %s",
                                want, arenas->gpu_bytes, dev->prop.name, free_text, total_text);
        if ((e = cudaMalloc(&dev->gpu, arenas->gpu_bytes)) != cudaSuccess) {
            cudaGetLastError(); /* an allocation failure is not sticky; clear it */
            dev->gpu = NULL;
            return fy_error_set(err, FY_EDEVICE,
                                "the plan's gpu arena of %s: cudaMalloc failed: %s (%s free of "
                                "%s on %s)",
                                want, cudaGetErrorString(e), free_text, total_text, dev->prop.name);
        }
    }
    if (kept_host) dev->host = dev->kept_host;
    if (arenas->host_bytes && !kept_host &&
        (e = cudaHostAlloc(&dev->host, arenas->host_bytes, cudaHostAllocDefault)) != cudaSuccess) {
        cudaGetLastError();
        dev->host = NULL;
        rc = fy_error_set(err, FY_ENOMEM, "the plan's host arena of %s: cudaHostAlloc failed: %s",
                          size_text(arenas->host_bytes, want, sizeof want), cudaGetErrorString(e));
        goto fail;
    }
    memset(dev->last_end, 0, sizeof dev->last_end);
    if (arenas->tag_count && (!(dev->live = calloc(arenas->tag_count, sizeof *dev->live)) ||
                              !(dev->end_of = calloc(arenas->tag_count, sizeof *dev->end_of)))) {
        rc = fy_error_set(err, FY_ENOMEM, "out of memory for %zu events", arenas->tag_count);
        goto fail;
    }
    if ((rc = event_get(dev, &dev->ref, err)) < 0) goto fail;
    /* The reference point of the measured timeline: an event whose host time is known, to a
     * few microseconds: it happened between its record and the poll that saw it done, so the
     * middle of the two. (A blocking wait returns when the host is woken, up to half a
     * millisecond after the event, and would shift every measured time by as much.) */
    uint64_t before = fy_now_ns();
    if ((e = cudaEventRecord(dev->ref, dev->stream[FY_DEVICE_COMPUTE])) != cudaSuccess ||
        (e = poll_event(dev->ref, 0, REF_POLL_LIMIT_NS)) != cudaSuccess) {
        rc = fy_cuda_fail(err, e, "cudaEventRecord / cudaEventQuery", "cuda device");
        goto fail;
    }
    dev->ref_ns = before + (fy_now_ns() - before) / 2;
    dev->gpu_bytes = arenas->gpu_bytes;
    dev->host_bytes = arenas->host_bytes;
    dev->tag_count = arenas->tag_count;
    dev->begun = true;
    arenas->gpu_base = dev->gpu;
    arenas->host_base = dev->host;
    return 0;
fail:
    event_put(dev, dev->ref);
    dev->ref = NULL;
    free(dev->live);
    dev->live = NULL;
    free(dev->end_of);
    dev->end_of = NULL;
    if (dev->host && dev->host != dev->kept_host) cudaFreeHost(dev->host);
    if (dev->gpu && dev->gpu != dev->kept_gpu) cudaFree(dev->gpu);
    dev->host = dev->gpu = NULL;
    return rc;
}

static int cuda_reserve(fy_device *dev, uint64_t gpu_bytes, uint64_t host_bytes, fy_error *err)
{
    if (dev->begun)
        return fy_error_set(err, FY_ESTATE, "cuda device: cannot reserve arenas during a run");
    char want[32];
    void *gpu = NULL, *host = NULL;
    cudaError_t e;
    if (gpu_bytes && (e = cudaMalloc(&gpu, gpu_bytes)) != cudaSuccess) {
        cudaGetLastError();
        return fy_error_set(err, FY_EDEVICE, "reserving a gpu arena of %s: cudaMalloc failed: %s",
                            size_text(gpu_bytes, want, sizeof want), cudaGetErrorString(e));
    }
    if (host_bytes && (e = cudaHostAlloc(&host, host_bytes, cudaHostAllocDefault)) != cudaSuccess) {
        cudaGetLastError();
        if (gpu) cudaFree(gpu);
        return fy_error_set(err, FY_ENOMEM,
                            "reserving a host arena of %s: cudaHostAlloc failed: %s",
                            size_text(host_bytes, want, sizeof want), cudaGetErrorString(e));
    }
    if (dev->kept_gpu) cudaFree(dev->kept_gpu);
    if (dev->kept_host) cudaFreeHost(dev->kept_host);
    dev->kept_gpu = gpu;
    dev->kept_host = host;
    dev->kept_gpu_bytes = gpu_bytes;
    dev->kept_host_bytes = host_bytes;
    return 0;
}

static void cuda_run_end(fy_device *dev)
{
    if (!dev->begun) return;
    /* Every callback runs exactly once, also after a fault, so this wait ends. */
    pthread_mutex_lock(&dev->lock);
    while (dev->outstanding)
        pthread_cond_wait(&dev->idle, &dev->lock);
    pthread_mutex_unlock(&dev->lock);
    for (int s = 0; s < FY_DEVICE_STREAM_COUNT; s++)
        cudaStreamSynchronize(dev->stream[s]);
    if (dev->gpu != dev->kept_gpu) cudaFree(dev->gpu);
    if (dev->host != dev->kept_host) cudaFreeHost(dev->host);
    cudaGetLastError();
    dev->gpu = dev->host = NULL;
    free(dev->live);
    dev->live = NULL;
    free(dev->end_of);
    dev->end_of = NULL;
    event_put(dev, dev->ref);
    dev->ref = NULL;
    dev->begun = false;
}

static void describe(const fy_device_work *w, char *buf, size_t size)
{
    char label[160], bytes[32];
    if (w->kind == FY_DEVICE_COMPUTE)
        snprintf(buf, size, "%s", fy_cpu_op_label(w->call, label, sizeof label));
    else
        snprintf(buf, size, "%s copy of %s", stream_names[w->kind],
                 size_text(w->size, bytes, sizeof bytes));
}

/* Enqueues the work itself; a refusal is kept in the item (it still completes). */
static void enqueue_work(fy_device *dev, cuda_item *it, const fy_device_work *w)
{
    cudaStream_t s = dev->stream[w->kind];
    cudaError_t e = cudaSuccess;
    char *gpu = (char *)dev->gpu + w->gpu_offset;
    fy_error kerr = {0};
    switch (w->kind) {
    case FY_DEVICE_H2D:
        e = cudaMemcpyAsync(gpu, w->host, w->size, cudaMemcpyHostToDevice, s);
        if (e != cudaSuccess) fy_cuda_fail(&kerr, e, "cudaMemcpyAsync (host to device)", it->what);
        break;
    case FY_DEVICE_D2H:
        e = cudaMemcpyAsync(w->host, gpu, w->size, cudaMemcpyDeviceToHost, s);
        if (e != cudaSuccess) fy_cuda_fail(&kerr, e, "cudaMemcpyAsync (device to host)", it->what);
        break;
    case FY_DEVICE_COMPUTE: {
        fy_kernel_call call = *w->call;
        call.stream = s;
        if (fy_kernel_run(dev->reg, &call, &kerr) < 0 && kerr.status == 0) kerr.status = FY_EKERNEL;
        break;
    }
    }
    if (kerr.status < 0) {
        it->status = kerr.status;
        it->message = strdup(kerr.message);
    }
}

static int cuda_submit(fy_device *dev, const fy_device_work *w, fy_error *err)
{
    if (!dev->begun) return fy_error_set(err, FY_ESTATE, "cuda device: submit outside a run");
    if (w->kind < 0 || w->kind >= FY_DEVICE_STREAM_COUNT)
        return fy_error_set(err, FY_EINVAL, "cuda device: unknown work kind %d", (int)w->kind);
    if (w->tag >= dev->tag_count || dev->live[w->tag])
        return fy_error_set(err, FY_EINVAL, "cuda device: tag %" PRIu64 " is %s", w->tag,
                            w->tag >= dev->tag_count ? "out of range" : "already in flight");
    if (w->kind == FY_DEVICE_COMPUTE && (!w->call || !w->call->op))
        return fy_error_set(err, FY_EINVAL, "cuda device: a compute item without an op call");
    if (w->kind != FY_DEVICE_COMPUTE &&
        (w->gpu_offset > dev->gpu_bytes || w->size > dev->gpu_bytes - w->gpu_offset ||
         (w->size && !w->host)))
        return fy_error_set(err, FY_EINVAL,
                            "cuda device: %s copy of %" PRIu64 " bytes at gpu offset %" PRIu64
                            " is outside the %" PRIu64 "-byte arena or has no host buffer",
                            stream_names[w->kind], w->size, w->gpu_offset, dev->gpu_bytes);
    cuda_item *it = calloc(1, sizeof *it + w->wait_count * sizeof *it->waited);
    if (!it) return fy_error_set(err, FY_ENOMEM, "out of memory for a cuda work item");
    it->dev = dev;
    it->tag = w->tag;
    it->kind = w->kind;
    describe(w, it->what, sizeof it->what);
    int rc;
    if ((rc = event_get(dev, &it->end, err)) < 0) {
        item_free(dev, it);
        return rc;
    }
    cudaStream_t s = dev->stream[w->kind];
    cudaError_t e;
    for (size_t i = 0; i < w->wait_count; i++) {
        uint64_t t = w->waits[i];
        cuda_item *dep = t < dev->tag_count ? dev->live[t] : NULL;
        if (!dep || dep->kind == w->kind || !dep->end_recorded)
            continue; /* completed and reaped, ordered by the stream, or never enqueued */
        if ((e = cudaStreamWaitEvent(s, dep->end, 0)) != cudaSuccess) {
            item_free(dev, it);
            return fy_cuda_fail(err, e, "cudaStreamWaitEvent", stream_names[w->kind]);
        }
        it->waited[it->waited_count++] = t;
    }
    it->submit_ns = fy_now_ns();
    enqueue_work(dev, it, w);
    it->end_recorded = cudaEventRecord(it->end, s) == cudaSuccess;
    dev->live[w->tag] = it;
    pthread_mutex_lock(&dev->lock); /* to its watcher */
    dev->outstanding++;
    if (dev->pend_tail[w->kind])
        dev->pend_tail[w->kind]->next = it;
    else
        dev->pend_head[w->kind] = it;
    dev->pend_tail[w->kind] = it;
    pthread_cond_signal(&dev->more[w->kind]); /* only that stream's watcher */
    pthread_mutex_unlock(&dev->lock);
    return 0;
}

static uint64_t event_ns(fy_device *dev, cudaEvent_t ev)
{
    float ms = 0;
    if (cudaEventElapsedTime(&ms, dev->ref, ev) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return dev->ref_ns + (uint64_t)((double)ms * 1e6);
}

/* When item it began: nothing on the device held it back after the latest of its submission,
 * the end of the previous item on its stream (reaped before it: each stream's items are
 * published in order) and the ends of the items it waited for (complete when it ran; if not
 * reaped yet, read from their events). A start event per item would measure this too, at
 * about 1.2 us of GPU time per item on the lent H200 (bench/h2d_floor.c). */
static uint64_t derived_start(fy_device *dev, const cuda_item *it, uint64_t end)
{
    uint64_t start = it->submit_ns;
    if (dev->last_end[it->kind] > start) start = dev->last_end[it->kind];
    for (size_t i = 0; i < it->waited_count; i++) {
        uint64_t t = it->waited[i];
        uint64_t e = dev->live[t] ? event_ns(dev, dev->live[t]->end) : dev->end_of[t];
        if (e > start) start = e;
    }
    return start < end ? start : end;
}

static size_t cuda_reap(fy_device *dev, fy_device_done *out, size_t max)
{
    size_t n = 0;
    while (n < max) {
        pthread_mutex_lock(&dev->lock);
        cuda_item *it = dev->done_head;
        if (it) {
            dev->done_head = it->next;
            if (!dev->done_head) dev->done_tail = NULL;
        }
        pthread_mutex_unlock(&dev->lock);
        if (!it) break;
        fy_device_done *d = &out[n++];
        memset(d, 0, sizeof *d);
        d->tag = it->tag;
        if (it->status < 0) {
            d->status = it->status;
            snprintf(d->message, sizeof d->message, "%s", it->message ? it->message : it->what);
        } else if (it->async != cudaSuccess) {
            d->status = FY_EDEVICE;
            snprintf(d->message, sizeof d->message, "%s on the %s stream: %s (%s)", it->what,
                     stream_names[it->kind], cudaGetErrorName(it->async),
                     cudaGetErrorString(it->async));
        } else {
            d->end_ns = event_ns(dev, it->end);
            d->start_ns = derived_start(dev, it, d->end_ns);
            dev->last_end[it->kind] = dev->end_of[it->tag] = d->end_ns;
        }
        if (it->tag < dev->tag_count && dev->live && dev->live[it->tag] == it)
            dev->live[it->tag] = NULL;
        item_free(dev, it);
    }
    return n;
}

/* Caller memory that the engine copies from: page-locked for the run (cudaHostRegister), so
 * the copy engine reads it directly instead of the driver staging it through its own pinned
 * buffers, which runs at a fraction of the link's rate. Memory its owner pinned already is
 * left alone and never unregistered here. */
static int cuda_pin(fy_device *dev, void *ptr, size_t size, fy_error *err)
{
    char bytes[32];
    struct cudaPointerAttributes attr;
    if (!ptr || !size) return 0;
    if (cudaPointerGetAttributes(&attr, ptr) == cudaSuccess && attr.type == cudaMemoryTypeHost)
        return 0;
    cudaGetLastError();
    cudaError_t e = cudaHostRegister(ptr, size, cudaHostRegisterDefault);
    if (e == cudaSuccess) return 1;
    cudaGetLastError(); /* a refused registration is not sticky */
    return fy_error_set(err, FY_EDEVICE, "cudaHostRegister of %s at %p on %s: %s",
                        size_text(size, bytes, sizeof bytes), ptr, dev->prop.name,
                        cudaGetErrorString(e));
}

static void cuda_unpin(fy_device *dev, void *ptr)
{
    (void)dev;
    if (cudaHostUnregister(ptr) != cudaSuccess) cudaGetLastError();
}

static const fy_device_backend cuda_backend = {
    .name = "cuda",
    .open = cuda_open,
    .close = cuda_close,
    .info = cuda_info,
    .kernels = cuda_kernels,
    .run_begin = cuda_run_begin,
    .run_end = cuda_run_end,
    .reserve = cuda_reserve,
    .submit = cuda_submit,
    .reap = cuda_reap,
    /* no cancel: work already on a CUDA stream cannot be withdrawn */
    .pin = cuda_pin,
    .unpin = cuda_unpin,
};

int fy_device_backend_cuda(const fy_device_backend **out, fy_error *err)
{
    (void)err;
    *out = &cuda_backend;
    return 0;
}
