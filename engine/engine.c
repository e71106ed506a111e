/* The engine's public face: opening a device and an io backend, and one run of a checked
 * plan — lowering it, binding the caller's buffers, allocating the arenas, opening source
 * and spill files, running the loop, handing outputs back. The invariant: fy_engine_run
 * returns with nothing of the run left — no request or job in flight, no arena, no spill
 * file — whatever way it ends. */
#include "engine/device.h"
#include "core/clock.h"
#include "engine/engine_int.h"
#include "engine/exec.h"
#include "engine/io.h"
#include "engine/loop.h"
#include "engine/report.h"
#include "engine/verify.h"
#include "engine/worker.h"

#include "core/hash.h"
#include "ferry/check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

struct fy_engine {
    fy_engine_config cfg;
    char *nvme_dir;
    const fy_io_backend *iob;
    const fy_device_backend *devb;
    fy_device *dev;
    fy_device_info dinfo;
    fy_kernel_registry *host_kernels;
    int notify_fd;
    fy_done_list done;
    bool done_init;
    fy_worker *host_worker, *crc_worker;
    bool running;
    char note[512];
    char description[512];
};

static int open_device(fy_engine *e, const char *device, fy_error *err)
{
    const char *want = device ? device : "auto";
    fy_device_config dc = {.notify_fd = e->notify_fd,
                           .threads = e->cfg.threads,
                           .sim_device_waits = e->cfg.sim_device_waits,
                           .poll_us = e->cfg.completion_poll_us};
    if (strcmp(want, "sim") && strcmp(want, "cuda") && strcmp(want, "auto"))
        return fy_error_set(err, FY_EINVAL, "unknown device '%s' (sim, cuda, auto)", want);
    if (strcmp(want, "sim") != 0) {
        fy_error ce = {0};
        const fy_device_backend *b = NULL;
        int rc = fy_device_backend_cuda(&b, &ce);
        if (rc == 0) rc = b->open(&dc, &e->dev, &ce);
        if (rc == 0) {
            e->devb = b;
            return 0;
        }
        if (strcmp(want, "cuda") == 0) {
            *err = ce;
            return rc;
        }
        snprintf(e->note, sizeof e->note, "using the sim device: %s", ce.message);
    }
    e->devb = &fy_device_backend_sim;
    return e->devb->open(&dc, &e->dev, err);
}

int fy_engine_open(const fy_engine_config *cfg, fy_engine **out, fy_error *err)
{
    fy_engine *e = calloc(1, sizeof *e);
    if (!e) return fy_error_set(err, FY_ENOMEM, "out of memory");
    e->notify_fd = -1;
    if (cfg) e->cfg = *cfg;
    e->cfg.device = NULL; /* strings are not kept: only what open decides from them */
    e->cfg.io = NULL;
    int rc = 0;
    if (cfg && cfg->nvme_dir && !(e->nvme_dir = strdup(cfg->nvme_dir)))
        rc = fy_error_set(err, FY_ENOMEM, "out of memory");
    e->cfg.nvme_dir = NULL;
    if (rc == 0 && cfg && cfg->io_backend) {
        e->iob = cfg->io_backend;
    } else if (rc == 0) {
        char why[256] = "";
        rc = fy_io_backend_pick(cfg ? cfg->io : NULL, &e->iob, why, sizeof why, err);
        if (rc == 0 && why[0])
            snprintf(e->note + strlen(e->note), sizeof e->note - strlen(e->note), "%s%s",
                     e->note[0] ? "; " : "", why);
    }
    if (rc == 0) {
        e->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (e->notify_fd < 0)
            rc = fy_error_set(err, fy_status_from_errno(errno), "cannot create an eventfd: %s",
                              strerror(errno));
    }
    if (rc == 0) rc = fy_done_list_init(&e->done, e->notify_fd, err);
    e->done_init = rc == 0;
    if (rc == 0) rc = open_device(e, cfg ? cfg->device : NULL, err);
    if (rc == 0) {
        char keep[sizeof e->note];
        snprintf(keep, sizeof keep, "%s", e->note);
        rc = fy_kernel_registry_create(&e->host_kernels, err);
        if (rc == 0) rc = fy_kernel_registry_add_builtin_cpu(e->host_kernels, err);
        if (rc >= 0) rc = fy_worker_create(&e->done, "host", &e->host_worker, err);
        if (rc >= 0) rc = fy_worker_create(&e->done, "crc", &e->crc_worker, err);
    }
    if (rc < 0) {
        fy_engine_close(e);
        return rc;
    }
    e->devb->info(e->dev, &e->dinfo);
    snprintf(e->description, sizeof e->description, "%s; io: %s", e->dinfo.description,
             e->iob->name);
    *out = e;
    return 0;
}

void fy_engine_close(fy_engine *e)
{
    if (!e || e->running) return;
    fy_worker_destroy(e->host_worker);
    fy_worker_destroy(e->crc_worker);
    if (e->devb) e->devb->close(e->dev);
    fy_kernel_registry_destroy(e->host_kernels);
    if (e->done_init) {
        /* Cancelled jobs a destroyed worker handed back belong to finished runs' pools,
         * which freed them; nothing here owns memory. */
        (void)fy_done_list_take(&e->done);
        fy_done_list_fini(&e->done);
    }
    if (e->notify_fd >= 0) close(e->notify_fd);
    free(e->nvme_dir);
    free(e);
}

const char *fy_engine_device_name(const fy_engine *e)
{
    return e->dinfo.name;
}

const char *fy_engine_io_name(const fy_engine *e)
{
    return e->iob->name;
}

const char *fy_engine_description(const fy_engine *e)
{
    return e->description;
}

const char *fy_engine_note(const fy_engine *e)
{
    return e->note;
}

fy_kernel_registry *fy_engine_kernels(fy_engine *e, fy_tier device)
{
    if (device == FY_TIER_HOST) return e->host_kernels;
    return device == FY_TIER_GPU ? e->devb->kernels(e->dev) : NULL;
}

int fy_engine_add_kernel(fy_engine *e, fy_tier device, const char *kind, fy_kernel_fn fn,
                         void *user, fy_error *err)
{
    fy_kernel_registry *reg = fy_engine_kernels(e, device);
    if (!reg)
        return fy_error_set(err, FY_EINVAL, "kernels run on gpu or host, not %s",
                            fy_tier_name(device));
    if (e->running)
        return fy_error_set(err, FY_EBUSY, "cannot add kernel '%s' during a run", kind ? kind : "");
    return fy_kernel_registry_add(reg, kind, fn, user, err);
}

/* ---- one run ----------------------------------------------------------------------- */

/* The engine runs only plans the checker passes: lowering trusts its ordering. */
static int check(const fy_plan *plan, fy_error *err)
{
    fy_check_report *rep;
    int n = fy_check_plan(plan, NULL, &rep, err);
    if (n < 0) return n;
    if (n > 0) {
        const fy_violation *v = NULL;
        for (size_t k = 0; k < fy_check_report_count(rep) && !v; k++)
            if (!fy_check_report_get(rep, k)->warning) v = fy_check_report_get(rep, k);
        const char *path = fy_plan_path(plan);
        fy_error_set_at(err, FY_ECHECK, path ? path : "", path ? v->line : 0, 0,
                        "the plan fails its check: error[%s]: %s%s", fy_check_class_name(v->cls),
                        v->message, n > 1 ? " (and more: see `ferry check`)" : "");
    }
    fy_check_report_destroy(rep);
    return n > 0 ? FY_ECHECK : 0;
}

typedef struct run_ctx {
    fy_engine *e;
    const fy_plan *plan;
    const fy_engine_run_args *args;
    const fy_exec *x;
    fy_io *io;
    fy_io_file **files;
    fy_io_file *spill;
    bool begun;
    int timer_fd;
    fy_op *spin_ops;   /* emulation: the graph's ops with kind "spin" */
    uint32_t *src_crc; /* verify_weights: per tensor, its source bytes' crc32c */
    uint8_t *verify;   /* verify_weights: per event, whether it is checked against its source */
    size_t emulated;
    fy_loop loop;
    /* Caller buffers page-locked for this run (unpinned after the device's run_end). */
    void **pinned;
    size_t pinned_count;
    uint64_t pinned_bytes, unpinned_bytes, misaligned_bytes;
    double pin_s;
    char pin_note[256], align_note[256];
} run_ctx;

static fy_kernel_registry *op_registry(fy_engine *e, const fy_op *op)
{
    return fy_engine_kernels(e, op->device == FY_TIER_HOST ? FY_TIER_HOST : FY_TIER_GPU);
}

/* The kinds a registry holds, for messages. */
static void known_kinds(const fy_kernel_registry *reg, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t k = 0; k < fy_kernel_registry_count(reg) && len < size; k++)
        len += (size_t)snprintf(buf + len, size - len, "%s%s", k ? ", " : "",
                                fy_kernel_registry_at(reg, k)->kind);
}

/* Before anything is allocated: every compute has a kernel for its kind. The message names the
 * first op without one, its kind, the way out, and the other kinds that lack one, so that a user
 * fixes them all at once. */
static int check_kernels(run_ctx *c, fy_error *err)
{
    const fy_exec *x = c->x;
    /* `spin` is a built-in of every device's registry and of the host's; replacing it
     * keeps the kind there, so an emulated run always has its kernel. */
    if (c->e->cfg.emulate) return 0;
    const fy_op *first = NULL;
    size_t first_event = 0, listed = 0;
    char more[512] = "";
    for (size_t i = 0; i < x->count; i++) {
        const fy_event *ev = fy_plan_event(c->plan, i);
        if (ev->kind != FY_EVENT_COMPUTE) continue;
        const fy_op *op = fy_graph_op(x->graph, (size_t)ev->op);
        const char *kind = op->kind ? op->kind : "";
        if (fy_kernel_registry_find(op_registry(c->e, op), kind)) continue;
        if (!first) {
            first = op;
            first_event = i;
            continue;
        }
        /* Another kind without a kernel: list it once (a few kinds, so a scan will do). */
        char quoted[160];
        snprintf(quoted, sizeof quoted, "'%s'", kind);
        size_t len = strlen(more);
        if (strcmp(kind, first->kind ? first->kind : "") == 0 || strstr(more, quoted) ||
            len + strlen(quoted) + 3 >= sizeof more)
            continue;
        snprintf(more + len, sizeof more - len, "%s%s", listed++ ? ", " : "", quoted);
    }
    if (!first) return 0;
    const char *where = first->device == FY_TIER_HOST ? "host" : c->e->dinfo.name;
    const char *gpath = fy_graph_path(x->graph);
    char known[512], line[FY_ERROR_PATH_MAX + 32] = "";
    known_kinds(op_registry(c->e, first), known, sizeof known);
    if (gpath) snprintf(line, sizeof line, " (%s:%u)", gpath, first->line);
    const char *kind = first->kind ? first->kind : "";
    return fy_exec_error(x, first_event, err, FY_ENOENT,
                         "op '%s'%s has kind '%s', for which the %s device has no kernel (it "
                         "has: %s): register one for '%s' (fy_engine_add_kernel), or run with "
                         "--emulate (fy_engine_config.emulate) to have `spin` stand in for the "
                         "compute%s%s",
                         first->name, line, kind, where, known[0] ? known : "nothing", kind,
                         listed ? "; kinds without a kernel too: " : "", more);
}

/* Emulation: a copy of every graph op with kind "spin" (the rest shared with the graph). */
static int make_spin_ops(run_ctx *c, fy_error *err)
{
    size_t n = fy_graph_op_count(c->x->graph);
    c->spin_ops = calloc(n ? n : 1, sizeof *c->spin_ops);
    if (!c->spin_ops) return fy_error_set(err, FY_ENOMEM, "out of memory");
    for (size_t k = 0; k < n; k++) {
        c->spin_ops[k] = *fy_graph_op(c->x->graph, k);
        c->spin_ops[k].kind = "spin";
    }
    for (size_t i = 0; i < c->x->count; i++)
        c->emulated += fy_plan_event(c->plan, i)->kind == FY_EVENT_COMPUTE;
    return 0;
}

static int bind_buffers(run_ctx *c, fy_error *err)
{
    const fy_graph *g = c->x->graph;
    const fy_engine_run_args *a = c->args;
    for (size_t k = 0; k < a->input_count + a->output_count; k++) {
        bool in = k < a->input_count;
        const fy_engine_buffer *b = in ? &a->inputs[k] : &a->outputs[k - a->input_count];
        long t = b->name ? fy_graph_find_tensor(g, b->name) : -1;
        if (t < 0)
            return fy_error_set(err, FY_EINVAL, "%s buffer '%s': the graph has no such tensor",
                                in ? "input" : "output", b->name ? b->name : "(null)");
        const fy_tensor *tn = fy_graph_tensor(g, (size_t)t);
        if (b->size != tn->size || (!b->data && b->size))
            return fy_error_set(err, FY_EINVAL,
                                "%s buffer '%s' holds %llu bytes at %p; the "
                                "tensor has %llu",
                                in ? "input" : "output", b->name, (unsigned long long)b->size,
                                b->data, (unsigned long long)tn->size);
        if (in)
            c->loop.caller[t] = b->data;
        else if (c->x->final_host[t].kind == FY_LOC_NONE)
            return fy_error_set(err, FY_EINVAL, "output '%s' does not end on host in this plan",
                                b->name);
    }
    for (size_t t = 0; t < fy_graph_tensor_count(g); t++)
        if (c->x->needs_caller[t] && !c->loop.caller[t] && fy_graph_tensor(g, t)->size)
            return fy_error_set(err, FY_EINVAL,
                                "the plan reads '%s' from its home on host, "
                                "but no input buffer was given for it",
                                fy_graph_tensor(g, t)->name);
    return 0;
}

/* Copies of smaller buffers are too short for their alignment to show. */
#define MISALIGNED_NOTE_MIN (1u << 20)

/* A pinned caller buffer off a page boundary: counted and, the first time, named. */
static void note_misaligned(run_ctx *c, const char *name, const void *ptr, uint64_t size)
{
    uintptr_t off = (uintptr_t)ptr % FY_ENGINE_INPUT_ALIGN;
    if (!off || size < MISALIGNED_NOTE_MIN) return;
    c->misaligned_bytes += size;
    if (!c->align_note[0])
        snprintf(c->align_note, sizeof c->align_note,
                 "'%s' starts %zu bytes past a page boundary: host->gpu copies from it run "
                 "slower; allocate inputs page-aligned (posix_memalign, cudaHostAlloc)",
                 name, (size_t)off);
}

/* Page-locks every caller buffer that a host->gpu copy reads, once, before the clock starts.
 * A refusal is no error: the copy then runs from pageable memory, and the report says so. */
static int pin_inputs(run_ctx *c, fy_error *err)
{
    const fy_exec *x = c->x;
    size_t nt = fy_graph_tensor_count(x->graph);
    bool *want = calloc(nt ? nt : 1, sizeof *want);
    c->pinned = calloc(nt ? nt : 1, sizeof *c->pinned);
    if (!want || !c->pinned) {
        free(want);
        return fy_error_set(err, FY_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < x->count; i++)
        if (x->ev[i].queue == FY_Q_H2D && x->ev[i].src.kind == FY_LOC_CALLER)
            want[x->ev[i].tensor] = true;
    const fy_device_backend *b = c->e->devb;
    if (!b->pin || !b->unpin) { /* sim: its "gpu" is host memory, nothing to pin for */
        free(want);
        return 0;
    }
    bool can = !c->e->cfg.keep_pageable;
    uint64_t t0 = fy_now_ns();
    for (size_t t = 0; t < nt; t++) {
        uint64_t size = fy_graph_tensor(x->graph, t)->size;
        if (!want[t] || !size) continue;
        fy_error pe = {0};
        int rc = can ? b->pin(c->e->dev, c->loop.caller[t], (size_t)size, &pe) : FY_EUNSUPPORTED;
        if (rc == 1) c->pinned[c->pinned_count++] = c->loop.caller[t];
        if (rc >= 0) {
            c->pinned_bytes += size;
            note_misaligned(c, fy_graph_tensor(x->graph, t)->name, c->loop.caller[t], size);
            continue;
        }
        c->unpinned_bytes += size;
        if (!c->pin_note[0] && can)
            snprintf(c->pin_note, sizeof c->pin_note, "'%s' stays pageable: %s",
                     fy_graph_tensor(x->graph, t)->name, pe.message);
    }
    c->pin_s = (double)(fy_now_ns() - t0) / 1e9;
    if (!c->pin_note[0] && c->unpinned_bytes)
        snprintf(c->pin_note, sizeof c->pin_note, "pinning turned off (keep_pageable)");
    free(want);
    return 0;
}

static int open_files(run_ctx *c, fy_error *err)
{
    fy_engine *e = c->e;
    const fy_exec *x = c->x;
    c->files = calloc(x->file_count ? x->file_count : 1, sizeof *c->files);
    if (!c->files) return fy_error_set(err, FY_ENOMEM, "out of memory");
    for (size_t f = 0; f < x->file_count; f++) {
        int rc = e->iob->file_open(c->io, x->files[f], FY_IO_READ, &c->files[f], err);
        if (rc < 0) return fy_error_prefix(err, "opening weights");
    }
    /* A short source file fails before anything moves, naming the first tensor it cuts. */
    for (size_t i = 0; i < x->count; i++) {
        const fy_xev *xe = &x->ev[i];
        if (xe->queue != FY_Q_IO || xe->src.kind != FY_LOC_SOURCE) continue;
        uint64_t have = fy_io_file_size(c->files[xe->src.file]);
        if (xe->src.offset > have || xe->size > have - xe->src.offset)
            return fy_exec_error(x, i, err, FY_EIO,
                                 "%s holds %llu bytes, but '%s' needs bytes "
                                 "%llu..%llu (a truncated weight file?)",
                                 x->files[xe->src.file], (unsigned long long)have,
                                 fy_graph_tensor(x->graph, (size_t)xe->tensor)->name,
                                 (unsigned long long)xe->src.offset,
                                 (unsigned long long)(xe->src.offset + xe->size));
    }
    if (!x->uses_spill) return 0;
    const char *dir = e->nvme_dir ? e->nvme_dir : fy_plan_machine(c->plan)->nvme_dir;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return fy_error_set(err, fy_status_from_errno(errno),
                            "cannot create the nvme dir %s: "
                            "%s",
                            dir, strerror(errno));
    int rc = e->iob->file_open(c->io, dir, FY_IO_CREATE_TEMP, &c->spill, err);
    return rc < 0 ? fy_error_prefix(err, "creating the spill file in %s", dir) : 0;
}

static int start_timer(run_ctx *c, fy_error *err)
{
    c->timer_fd = -1;
    if (!c->args->on_progress) return 0;
    double s = c->args->progress_interval_s > 0 ? c->args->progress_interval_s : 0.1;
    c->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (c->timer_fd < 0)
        return fy_error_set(err, fy_status_from_errno(errno), "cannot create a timer: %s",
                            strerror(errno));
    struct itimerspec its = {0};
    its.it_interval.tv_sec = (time_t)s;
    its.it_interval.tv_nsec = (long)((s - (double)(time_t)s) * 1e9);
    if (its.it_interval.tv_sec == 0 && its.it_interval.tv_nsec == 0)
        its.it_interval.tv_nsec = 1000000;
    its.it_value = its.it_interval;
    timerfd_settime(c->timer_fd, 0, &its, NULL);
    return 0;
}

static void loop_on_event(void *user, size_t index, int status)
{
    run_ctx *c = user;
    (void)status;
    c->args->on_event(c->args->user, c->plan, index);
}

static void loop_on_progress(void *user, size_t done, size_t total, uint64_t bytes, double elapsed)
{
    run_ctx *c = user;
    fy_engine_progress p = {
        .events_done = done, .events_total = total, .bytes_done = bytes, .elapsed_s = elapsed};
    for (int q = 0; q < FY_Q_COUNT; q++)
        p.bytes_total += c->x->queue_bytes[q];
    c->args->on_progress(c->args->user, &p);
}

/* Copies outputs back from the host arena, verifying each against its checksum. */
static int hand_back(run_ctx *c, fy_error *err)
{
    const fy_engine_run_args *a = c->args;
    for (size_t k = 0; k < a->output_count; k++) {
        long t = fy_graph_find_tensor(c->x->graph, a->outputs[k].name);
        const fy_loc *loc = &c->x->final_host[t];
        const void *src =
            loc->kind == FY_LOC_CALLER ? c->loop.caller[t] : c->loop.host_base + loc->offset;
        if (!a->outputs[k].size) continue;
        int32_t slot = c->x->final_slot[t];
        if (slot >= 0) {
            uint32_t crc = fy_crc32c(0, src, (size_t)a->outputs[k].size);
            if (crc != c->loop.crc[slot])
                return fy_error_set(err, FY_ECHECKSUM,
                                    "checksum mismatch: output '%s' in the "
                                    "host arena at offset %llu has crc32c 0x%08x, but 0x%08x "
                                    "was written",
                                    a->outputs[k].name, (unsigned long long)loc->offset, crc,
                                    c->loop.crc[slot]);
        }
        memcpy(a->outputs[k].data, src, a->outputs[k].size);
    }
    return 0;
}

static void run_cleanup(run_ctx *c)
{
    fy_engine *e = c->e;
    if (c->io) {
        for (size_t f = 0; c->files && f < c->x->file_count; f++)
            e->iob->file_close(c->io, c->files[f]);
        e->iob->file_close(c->io, c->spill); /* removes the spill file */
        e->iob->close(c->io);
    }
    if (c->begun) e->devb->run_end(e->dev);
    for (size_t k = 0; k < c->pinned_count; k++) /* no device work reads them any more */
        e->devb->unpin(e->dev, c->pinned[k]);
    free(c->pinned);
    if (c->timer_fd >= 0) close(c->timer_fd);
    free(c->files);
    free(c->spin_ops);
    free(c->src_crc);
    free(c->verify);
    free(c->loop.caller);
    fy_loop_free(&c->loop);
}

int fy_engine_run_exec(fy_engine *e, const fy_exec *x, const fy_engine_run_args *args,
                       fy_engine_report *report, fy_error *err)
{
    static const fy_engine_run_args none = {0};
    if (report) memset(report, 0, sizeof *report);
    if (e->running) return fy_error_set(err, FY_EBUSY, "the engine is already running a plan");
    if (!args) args = &none;
    const fy_plan *plan = x->plan;
    int rc = 0;
    run_ctx c = {.e = e, .plan = plan, .args = args, .timer_fd = -1, .x = x};
    size_t nt = fy_graph_tensor_count(c.x->graph);
    c.loop.caller = calloc(nt ? nt : 1, sizeof *c.loop.caller);
    if (!c.loop.caller) rc = fy_error_set(err, FY_ENOMEM, "out of memory");
    if (rc == 0) rc = check_kernels(&c, err);
    if (rc == 0 && e->cfg.emulate) rc = make_spin_ops(&c, err);
    if (rc == 0) rc = bind_buffers(&c, err);
    fy_io_config ioc = {.queue_depth = e->cfg.queue_depth,
                        .chunk_size = e->cfg.chunk_size,
                        .allow_direct = !e->cfg.buffered_io};
    if (rc == 0) rc = e->iob->open(&ioc, &c.io, err);
    fy_device_arenas ar = {.gpu_bytes = fy_plan_arena(plan, FY_TIER_GPU),
                           .host_bytes = fy_plan_arena(plan, FY_TIER_HOST),
                           .tag_count = c.x->count};
    if (rc == 0 && (rc = e->devb->run_begin(e->dev, &ar, err)) == 0) c.begun = true;
    if (rc == 0 && ar.host_bytes)
        rc = e->iob->register_buffer(c.io, ar.host_base, (size_t)ar.host_bytes, err);
    if (rc >= 0) rc = pin_inputs(&c, err);
    if (rc >= 0) rc = open_files(&c, err);
    if (rc >= 0 && args->verify_weights) {
        long marked = fy_verify_prepare(c.x, e->dinfo.gpu_host_readable && !e->dinfo.device_waits,
                                        &c.verify, &c.src_crc, err);
        rc = marked < 0 ? (int)marked : 0;
    }
    if (rc >= 0) rc = start_timer(&c, err);
    if (rc >= 0) {
        fy_loop *l = &c.loop;
        const fy_machine *m = fy_plan_machine(plan);
        l->x = c.x;
        l->iob = e->iob;
        l->io = c.io;
        l->files = c.files;
        l->spill = c.spill;
        l->devb = e->devb;
        l->dev = e->dev;
        l->device_waits = e->dinfo.device_waits;
        l->poll_ns = e->dinfo.poll_ns;
        l->gpu_base = ar.gpu_base;
        l->host_base = ar.host_base;
        l->host_kernels = e->host_kernels;
        l->host_worker = e->host_worker;
        l->crc_worker = e->crc_worker;
        l->done = &e->done;
        l->notify_fd = e->notify_fd;
        l->timer_fd = c.timer_fd;
        l->threads = e->cfg.threads;
        l->gpu_flops = m->gpu_compute;
        l->host_flops = m->host_compute;
        l->spin_ops = c.spin_ops;
        l->src_crc = c.src_crc;
        l->verify = c.verify;
        l->on_event = args->on_event ? loop_on_event : NULL;
        l->on_progress = args->on_progress ? loop_on_progress : NULL;
        l->user = &c;
        e->running = true;
        rc = fy_loop_run(l, err);
        e->running = false;
    }
    if (rc >= 0) rc = hand_back(&c, err);
    if (rc >= 0 && report) {
        rc = fy_report_fill(report, c.x, &c.loop, err);
        snprintf(report->device, sizeof report->device, "%s", e->dinfo.description);
        snprintf(report->io, sizeof report->io, "%s", e->iob->name);
        report->arena[FY_TIER_GPU] = ar.gpu_bytes;
        report->arena[FY_TIER_HOST] = ar.host_bytes;
        report->arena[FY_TIER_NVME] = c.x->spill_bytes;
        report->verified_count = c.loop.verified_count;
        report->verified_bytes = c.loop.verified_bytes;
        report->emulated_count = c.emulated;
        for (size_t i = 0; i < c.x->count; i++) {
            const fy_xev *xe = &c.x->ev[i];
            if (xe->queue != FY_Q_IO || xe->src.kind != FY_LOC_SOURCE) continue;
            report->source_reads++;
            report->source_bytes += xe->size;
        }
        report->pinned_bytes = c.pinned_bytes;
        report->unpinned_bytes = c.unpinned_bytes;
        report->pin_s = c.pin_s;
        snprintf(report->pin_note, sizeof report->pin_note, "%s", c.pin_note);
        report->misaligned_bytes = c.misaligned_bytes;
        snprintf(report->align_note, sizeof report->align_note, "%s", c.align_note);
    }
    run_cleanup(&c);
    if (rc < 0 && report) fy_engine_report_free(report);
    return rc < 0 ? rc : 0;
}

int fy_engine_run(fy_engine *e, const fy_plan *plan, const fy_engine_run_args *args,
                  fy_engine_report *report, fy_error *err)
{
    if (report) memset(report, 0, sizeof *report);
    if (e->running) return fy_error_set(err, FY_EBUSY, "the engine is already running a plan");
    int rc = check(plan, err);
    if (rc < 0) return rc;
    fy_exec *x;
    rc = fy_exec_build(plan, &x, err);
    if (rc < 0) return rc;
    rc = fy_engine_run_exec(e, x, args, report, err);
    fy_exec_destroy(x);
    return rc;
}

int fy_engine_check_lower(const fy_plan *plan, fy_exec **out, fy_error *err)
{
    int rc = check(plan, err);
    return rc < 0 ? rc : fy_exec_build(plan, out, err);
}

int fy_engine_reserve(fy_engine *e, uint64_t gpu_bytes, uint64_t host_bytes, fy_error *err)
{
    if (e->running) return fy_error_set(err, FY_EBUSY, "cannot reserve arenas during a run");
    if (!e->devb->reserve)
        return fy_error_set(err, FY_EUNSUPPORTED, "the %s device cannot keep arenas between runs",
                            e->dinfo.name);
    return e->devb->reserve(e->dev, gpu_bytes, host_bytes, err);
}
