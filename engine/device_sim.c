/* The `sim` device: the "gpu" arena is host memory, h2d and d2h are memcpy on two worker
 * threads, and ops run on a third through the CPU kernel registry. Each worker is one
 * stream, so work on a stream runs in submission order exactly as on a GPU. Waits between
 * streams are left to the engine, except with sim_device_waits (tests), where a worker
 * blocks until the tags it waits for have completed, as cudaStreamWaitEvent would. */
#include "engine/device.h"
#include "core/clock.h"
#include "engine/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct sim_job {
    fy_job job; /* first: the worker hands back &job */
    fy_device *dev;
    fy_device_work_kind kind;
    void *host, *gpu;
    uint64_t size;
    fy_kernel_call call;
    fy_kernel_buffer *bufs; /* inputs then outputs, owned */
    uint64_t *waits;        /* owned */
    size_t wait_count;
} sim_job;

struct fy_device {
    fy_device_config cfg;
    fy_kernel_registry *reg;
    fy_done_list done;
    fy_worker *stream[FY_DEVICE_STREAM_COUNT];
    void *gpu, *host;
    uint64_t gpu_bytes, host_bytes;
    /* Arenas kept between runs (sim_reserve); a run whose arena fits uses them. */
    void *kept_gpu, *kept_host;
    uint64_t kept_gpu_bytes, kept_host_bytes;
    bool begun;
    /* Tag completion, for sim_device_waits. */
    pthread_mutex_t tag_lock;
    pthread_cond_t tag_cond;
    uint8_t *tag_done;
    size_t tag_count;
    bool cancelled;
};

static const char *const stream_names[FY_DEVICE_STREAM_COUNT] = {"sim-h2d", "sim-d2h", "sim-gpu"};

static void sim_job_free(sim_job *j)
{
    free(j->bufs);
    free(j->waits);
    free(j->job.message);
    free(j);
}

static void tag_mark(fy_device *dev, uint64_t tag)
{
    pthread_mutex_lock(&dev->tag_lock);
    if (tag < dev->tag_count) dev->tag_done[tag] = 1;
    pthread_cond_broadcast(&dev->tag_cond);
    pthread_mutex_unlock(&dev->tag_lock);
}

/* Blocks until every waited tag is done; false when the run was cancelled meanwhile. */
static bool tags_wait(fy_device *dev, const uint64_t *waits, size_t count)
{
    pthread_mutex_lock(&dev->tag_lock);
    for (size_t i = 0; i < count && !dev->cancelled; i++)
        while (waits[i] < dev->tag_count && !dev->tag_done[waits[i]] && !dev->cancelled)
            pthread_cond_wait(&dev->tag_cond, &dev->tag_lock);
    bool ok = !dev->cancelled;
    pthread_mutex_unlock(&dev->tag_lock);
    return ok;
}

static int sim_run(fy_job *job, fy_error *err)
{
    sim_job *j = (sim_job *)job;
    fy_device *dev = j->dev;
    int rc = 0;
    if (!tags_wait(dev, j->waits, j->wait_count)) rc = fy_error_set(err, FY_ESTATE, "cancelled");
    /* The work begins after any device-side wait: that is what the timeline shows. */
    job->start_ns = fy_now_ns();
    if (rc == 0 && j->kind == FY_DEVICE_H2D && j->size)
        memcpy(j->gpu, j->host, j->size);
    else if (rc == 0 && j->kind == FY_DEVICE_D2H && j->size)
        memcpy(j->host, j->gpu, j->size);
    else if (rc == 0 && j->kind == FY_DEVICE_COMPUTE)
        rc = fy_kernel_run(dev->reg, &j->call, err);
    tag_mark(dev, job->tag);
    return rc;
}

static int sim_open(const fy_device_config *cfg, fy_device **out, fy_error *err)
{
    fy_device *dev = calloc(1, sizeof *dev);
    if (!dev) return fy_error_set(err, FY_ENOMEM, "out of memory opening the sim device");
    dev->cfg = *cfg;
    pthread_mutex_init(&dev->tag_lock, NULL);
    pthread_cond_init(&dev->tag_cond, NULL);
    int rc = fy_done_list_init(&dev->done, cfg->notify_fd, err);
    if (rc < 0) goto fail_locks;
    rc = fy_kernel_registry_create(&dev->reg, err);
    if (rc < 0) goto fail_done;
    rc = fy_kernel_registry_add_builtin_cpu(dev->reg, err);
    for (int s = 0; rc >= 0 && s < FY_DEVICE_STREAM_COUNT; s++)
        rc = fy_worker_create(&dev->done, stream_names[s], &dev->stream[s], err);
    if (rc < 0) {
        for (int s = 0; s < FY_DEVICE_STREAM_COUNT; s++)
            fy_worker_destroy(dev->stream[s]);
        fy_kernel_registry_destroy(dev->reg);
        goto fail_done;
    }
    *out = dev;
    return 0;
fail_done:
    fy_done_list_fini(&dev->done);
fail_locks:
    pthread_cond_destroy(&dev->tag_cond);
    pthread_mutex_destroy(&dev->tag_lock);
    free(dev);
    return rc;
}

static void arena_free(void *p, uint64_t bytes)
{
    if (p) munmap(p, bytes);
}

static void *arena_alloc(uint64_t bytes)
{
    if (!bytes) return NULL;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void sim_run_end(fy_device *dev)
{
    if (!dev->begun) return;
    for (int s = 0; s < FY_DEVICE_STREAM_COUNT; s++)
        fy_worker_drain(dev->stream[s]);
    /* Completions the engine did not reap (it reaps all of them unless it broke its
     * contract) are dropped here so that nothing of this run leaks into the next. */
    for (fy_job *j = fy_done_list_take(&dev->done); j;) {
        fy_job *next = j->next;
        sim_job_free((sim_job *)j);
        j = next;
    }
    if (dev->gpu != dev->kept_gpu) arena_free(dev->gpu, dev->gpu_bytes);
    if (dev->host != dev->kept_host) arena_free(dev->host, dev->host_bytes);
    free(dev->tag_done);
    dev->gpu = dev->host = NULL;
    dev->tag_done = NULL;
    dev->tag_count = 0;
    dev->begun = false;
}

static int sim_reserve(fy_device *dev, uint64_t gpu_bytes, uint64_t host_bytes, fy_error *err)
{
    if (dev->begun)
        return fy_error_set(err, FY_ESTATE, "sim device: cannot reserve arenas during a run");
    char size[32];
    void *gpu = arena_alloc(gpu_bytes), *host = arena_alloc(host_bytes);
    if ((gpu_bytes && !gpu) || (host_bytes && !host)) {
        arena_free(gpu, gpu_bytes);
        arena_free(host, host_bytes);
        bool g = gpu_bytes && !gpu;
        return fy_error_set(err, FY_ENOMEM, "sim device: cannot reserve the %s arena of %s",
                            g ? "gpu" : "host",
                            fy_size_format_human(g ? gpu_bytes : host_bytes, size, sizeof size));
    }
    arena_free(dev->kept_gpu, dev->kept_gpu_bytes);
    arena_free(dev->kept_host, dev->kept_host_bytes);
    dev->kept_gpu = gpu;
    dev->kept_host = host;
    dev->kept_gpu_bytes = gpu_bytes;
    dev->kept_host_bytes = host_bytes;
    return 0;
}

static void sim_close(fy_device *dev)
{
    if (!dev) return;
    sim_run_end(dev);
    sim_reserve(dev, 0, 0, NULL);
    for (int s = 0; s < FY_DEVICE_STREAM_COUNT; s++)
        fy_worker_destroy(dev->stream[s]);
    for (fy_job *j = fy_done_list_take(&dev->done); j;) {
        fy_job *next = j->next;
        sim_job_free((sim_job *)j);
        j = next;
    }
    fy_kernel_registry_destroy(dev->reg);
    fy_done_list_fini(&dev->done);
    pthread_cond_destroy(&dev->tag_cond);
    pthread_mutex_destroy(&dev->tag_lock);
    free(dev);
}

static void sim_info(fy_device *dev, fy_device_info *out)
{
    memset(out, 0, sizeof *out);
    out->name = "sim";
    out->device_waits = dev->cfg.sim_device_waits;
    out->host_arena_pinned = false;
    out->gpu_host_readable = true;
    out->poll_ns = dev->cfg.poll_us > 0 ? 1000u * (uint64_t)dev->cfg.poll_us : 0;
    snprintf(out->description, sizeof out->description,
             "host simulation: gpu memory is host memory, %d worker threads%s",
             FY_DEVICE_STREAM_COUNT, dev->cfg.sim_device_waits ? ", device-side waits" : "");
}

static fy_kernel_registry *sim_kernels(fy_device *dev)
{
    return dev->reg;
}

static int sim_run_begin(fy_device *dev, fy_device_arenas *a, fy_error *err)
{
    if (dev->begun) return fy_error_set(err, FY_ESTATE, "sim device: a run is already under way");
    char size[32];
    bool kept_gpu = a->gpu_bytes && a->gpu_bytes <= dev->kept_gpu_bytes;
    bool kept_host = a->host_bytes && a->host_bytes <= dev->kept_host_bytes;
    dev->gpu = kept_gpu ? dev->kept_gpu : arena_alloc(a->gpu_bytes);
    dev->host = kept_host ? dev->kept_host : arena_alloc(a->host_bytes);
    dev->tag_done = calloc(a->tag_count ? a->tag_count : 1, 1);
    if ((a->gpu_bytes && !dev->gpu) || (a->host_bytes && !dev->host) || !dev->tag_done) {
        if (!kept_gpu) arena_free(dev->gpu, a->gpu_bytes);
        if (!kept_host) arena_free(dev->host, a->host_bytes);
        free(dev->tag_done);
        dev->gpu = dev->host = NULL;
        dev->tag_done = NULL;
        bool gpu = a->gpu_bytes && !dev->gpu;
        return fy_error_set(
            err, FY_ENOMEM, "sim device: cannot allocate the %s arena of %s", gpu ? "gpu" : "host",
            fy_size_format_human(gpu ? a->gpu_bytes : a->host_bytes, size, sizeof size));
    }
    dev->gpu_bytes = a->gpu_bytes;
    dev->host_bytes = a->host_bytes;
    dev->tag_count = a->tag_count;
    dev->cancelled = false;
    dev->begun = true;
    a->gpu_base = dev->gpu;
    a->host_base = dev->host;
    return 0;
}

static int sim_submit(fy_device *dev, const fy_device_work *w, fy_error *err)
{
    if (!dev->begun) return fy_error_set(err, FY_ESTATE, "sim device: submit outside a run");
    sim_job *j = calloc(1, sizeof *j);
    if (!j) return fy_error_set(err, FY_ENOMEM, "out of memory");
    j->dev = dev;
    j->kind = w->kind;
    j->job.run = sim_run;
    j->job.tag = w->tag;
    if (w->wait_count && dev->cfg.sim_device_waits) {
        j->waits = malloc(w->wait_count * sizeof *j->waits);
        if (!j->waits) goto nomem;
        memcpy(j->waits, w->waits, w->wait_count * sizeof *j->waits);
        j->wait_count = w->wait_count;
    }
    if (w->kind == FY_DEVICE_COMPUTE) {
        const fy_kernel_call *c = w->call;
        size_t n = c->input_count + c->output_count;
        j->call = *c;
        j->bufs = calloc(n ? n : 1, sizeof *j->bufs);
        if (!j->bufs) goto nomem;
        if (c->input_count) memcpy(j->bufs, c->inputs, c->input_count * sizeof *j->bufs);
        if (c->output_count)
            memcpy(j->bufs + c->input_count, c->outputs, c->output_count * sizeof *j->bufs);
        j->call.inputs = j->bufs;
        j->call.outputs = j->bufs + c->input_count;
        j->call.stream = NULL;
        if (!j->call.threads) j->call.threads = dev->cfg.threads;
    } else {
        if (w->gpu_offset > dev->gpu_bytes || w->size > dev->gpu_bytes - w->gpu_offset) {
            free(j);
            return fy_error_set(err, FY_ERANGE,
                                "sim device: copy of %llu bytes at %llu is "
                                "outside the gpu arena of %llu bytes",
                                (unsigned long long)w->size, (unsigned long long)w->gpu_offset,
                                (unsigned long long)dev->gpu_bytes);
        }
        j->host = w->host;
        j->gpu = w->size ? (char *)dev->gpu + w->gpu_offset : dev->gpu;
        j->size = w->size;
    }
    fy_worker_submit(dev->stream[w->kind], &j->job);
    return 0;
nomem:
    sim_job_free(j);
    return fy_error_set(err, FY_ENOMEM, "out of memory");
}

static size_t sim_reap(fy_device *dev, fy_device_done *out, size_t max)
{
    /* The done list is taken whole; what does not fit in out goes back to its front. */
    fy_job *list = fy_done_list_take(&dev->done);
    size_t n = 0;
    while (list && n < max) {
        sim_job *j = (sim_job *)list;
        list = list->next;
        fy_device_done *d = &out[n++];
        d->tag = j->job.tag;
        d->status = j->job.status;
        d->start_ns = j->job.start_ns;
        d->end_ns = j->job.end_ns;
        snprintf(d->message, sizeof d->message, "%s", j->job.message ? j->job.message : "");
        sim_job_free(j);
    }
    if (list) {
        pthread_mutex_lock(&dev->done.lock);
        fy_job *last = list;
        while (last->next)
            last = last->next;
        last->next = dev->done.head;
        if (!dev->done.head) dev->done.tail = last;
        dev->done.head = list;
        pthread_mutex_unlock(&dev->done.lock);
        /* Wake the loop again for the rest. */
        uint64_t one = 1;
        ssize_t r = write(dev->cfg.notify_fd, &one, sizeof one);
        (void)r;
    }
    return n;
}

static void sim_cancel(fy_device *dev)
{
    pthread_mutex_lock(&dev->tag_lock);
    dev->cancelled = true;
    pthread_cond_broadcast(&dev->tag_cond);
    pthread_mutex_unlock(&dev->tag_lock);
    for (int s = 0; s < FY_DEVICE_STREAM_COUNT; s++)
        fy_worker_cancel(dev->stream[s]);
}

const fy_device_backend fy_device_backend_sim = {
    .name = "sim",
    .open = sim_open,
    .close = sim_close,
    .info = sim_info,
    .kernels = sim_kernels,
    .run_begin = sim_run_begin,
    .run_end = sim_run_end,
    .reserve = sim_reserve,
    .submit = sim_submit,
    .reap = sim_reap,
    .cancel = sim_cancel,
};
