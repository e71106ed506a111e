/* The event loop: one thread, a cursor per queue over its events in plan order, and one
 * blocking point, the io backend's wait(), which reports io completions and the eventfd
 * that the device and the workers write. An event runs in up to three stages: a checksum of
 * its source (pre), its transfer or op (main), a checksum of its destination (post).
 * Invariants: an event is DONE only after its stream predecessor and its `after` events are
 * DONE (so the plan's happens-before also holds for completion, even when a device that orders
 * its own work reports a compute before the copy it waited for); nothing is issued after the
 * first error; and the loop returns only when no request, device item or job is in flight,
 * so every buffer handed out is free again. */
#include "engine/loop.h"
#include "core/clock.h"

#include "core/hash.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { ST_WAIT = 0, ST_PRE, ST_MAIN, ST_POST, ST_FINISHED, ST_DONE };
enum { JOB_CRC = 1, JOB_HOST };
#define WATCH_NOTIFY ((uint64_t)1 << 62)
#define WATCH_TIMER (((uint64_t)1 << 62) + 1)
/* Checksums of smaller tensors run on the loop thread: a worker round trip costs more. */
#define CRC_INLINE_MAX ((uint64_t)256 << 10)
/* How many evicts a device-side wait looks through before it falls back to waiting on the
 * host (evicts take no time, so a device can wait on what they wait on). */
#define EVICT_EXPAND_MAX 64

typedef struct ljob {
    fy_job job; /* first */
    int type;
    size_t event;
    const void *data;
    uint64_t size;
    uint32_t crc;
    bool pre;
    fy_kernel_call call;
    fy_kernel_registry *reg;
    fy_kernel_buffer *bufs;
    size_t bufs_cap;
    struct ljob *free_next;
} ljob;

typedef struct run {
    fy_loop *l;
    const fy_exec *x;
    size_t n;
    uint8_t *st;
    uint32_t *unmet;
    uint32_t *qlist[FY_Q_COUNT];
    size_t qlen[FY_Q_COUNT], cursor[FY_Q_COUNT];
    size_t *work; /* completion cascade worklist */
    size_t inflight;
    size_t device_inflight; /* of them, work on the device's streams */
    bool failed;
    fy_error *err;
    int status;
    ljob *free_jobs;
    ljob **jobs; /* every job allocated, to free at the end */
    size_t job_count, job_cap;
    uint64_t *waits; /* tags the event being started waits for on the device */
    size_t wait_count, waits_cap;
    size_t *stack;
    fy_kernel_buffer *bufs;
    size_t bufs_cap;
} run;

static void fail(run *r, size_t i, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(run *r, size_t i, int status, const char *fmt, ...)
{
    if (!r->failed) {
        char what[FY_ERROR_MESSAGE_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        r->status = fy_exec_error(r->x, i, r->err, status, "%s", what);
        r->failed = true;
        /* Work not yet started need not run; what runs is drained by the main loop. */
        if (r->l->devb->cancel) r->l->devb->cancel(r->l->dev);
        fy_worker_cancel(r->l->host_worker);
        fy_worker_cancel(r->l->crc_worker);
    }
}

static const char *tname(run *r, int32_t t)
{
    return t >= 0 ? fy_graph_tensor(r->x->graph, (size_t)t)->name : "?";
}

/* Host address of a location (arena or caller memory); the gpu arena for gpu locations. */
static void *loc_ptr(run *r, const fy_loc *loc, int32_t tensor)
{
    char *base;
    switch (loc->kind) {
    case FY_LOC_ARENA:
        base = loc->tier == FY_TIER_GPU ? r->l->gpu_base : r->l->host_base;
        return base ? base + loc->offset : NULL;
    case FY_LOC_CALLER:
        return r->l->caller[tensor];
    default:
        return NULL;
    }
}

static const char *loc_where(run *r, const fy_loc *loc, char *buf, size_t size)
{
    switch (loc->kind) {
    case FY_LOC_ARENA:
        snprintf(buf, size, "the %s arena at offset %llu", fy_tier_name((fy_tier)loc->tier),
                 (unsigned long long)loc->offset);
        break;
    case FY_LOC_CALLER:
        snprintf(buf, size, "the caller's buffer");
        break;
    case FY_LOC_SOURCE:
        snprintf(buf, size, "%s at offset %llu", r->x->files[loc->file],
                 (unsigned long long)loc->offset);
        break;
    case FY_LOC_SPILL:
        snprintf(buf, size, "the spill file %s at offset %llu",
                 r->l->spill ? fy_io_file_path(r->l->spill) : "?", (unsigned long long)loc->offset);
        break;
    default:
        snprintf(buf, size, "nowhere");
    }
    return buf;
}

/* "FILE at offset N" for a tensor's source bytes. */
static const char *source_where(run *r, int32_t t, char *buf, size_t size)
{
    const fy_tensor *tn = fy_graph_tensor(r->x->graph, (size_t)t);
    char *path = fy_graph_source_path(r->x->graph, (size_t)t);
    snprintf(buf, size, "%s at offset %llu", path ? path : tn->source_file,
             (unsigned long long)tn->source_offset);
    free(path);
    return buf;
}

static ljob *job_get(run *r)
{
    ljob *j = r->free_jobs;
    if (j) {
        r->free_jobs = j->free_next;
        return j;
    }
    if (r->job_count == r->job_cap) {
        size_t cap = r->job_cap ? r->job_cap * 2 : 16;
        ljob **jobs = realloc(r->jobs, cap * sizeof *jobs);
        if (!jobs) return NULL;
        r->jobs = jobs;
        r->job_cap = cap;
    }
    j = calloc(1, sizeof *j);
    if (j) r->jobs[r->job_count++] = j;
    return j;
}

static void job_put(run *r, ljob *j)
{
    free(j->job.message);
    j->job.message = NULL;
    j->free_next = r->free_jobs;
    r->free_jobs = j;
}

static int crc_run(fy_job *job, fy_error *err)
{
    ljob *j = (ljob *)job;
    j->crc = fy_crc32c(0, j->data, (size_t)j->size);
    return 0;
}

static int host_run(fy_job *job, fy_error *err)
{
    ljob *j = (ljob *)job;
    return fy_kernel_run(j->reg, &j->call, err);
}

/* ---- completion -------------------------------------------------------------------- */

/* Whether event s, finished on its queue, may be DONE: its stream predecessor is DONE and so is
 * every `after` event. (With device-side waits a device may report a compute before the copy it
 * waited for; bookkeeping such as live bytes must still see them in order.) */
static bool can_be_done(const run *r, size_t s)
{
    int64_t prev = r->x->ev[s].stream_prev;
    return r->st[s] == ST_FINISHED && r->unmet[s] == 0 && (prev < 0 || r->st[prev] == ST_DONE);
}

/* Marks first DONE, then whatever that makes DONE in turn. An event is marked when pushed,
 * so none is pushed twice. */
static void make_done(run *r, size_t first)
{
    size_t top = 0;
    r->st[first] = ST_DONE;
    r->work[top++] = first;
    while (top) {
        size_t i = r->work[--top];
        const fy_xev *xe = &r->x->ev[i];
        uint64_t now = fy_now_ns();
        if (!r->l->start_ns[i]) r->l->start_ns[i] = now;
        if (!r->l->end_ns[i]) r->l->end_ns[i] = now;
        if (xe->live_tier >= 0) {
            uint64_t *live = &r->l->live[xe->live_tier];
            *live = (uint64_t)((int64_t)*live + xe->live_delta);
            if (*live > r->l->peak[xe->live_tier]) r->l->peak[xe->live_tier] = *live;
        }
        r->l->bytes_done += xe->size;
        r->l->done_count++;
        if (r->l->on_event && !r->failed) r->l->on_event(r->l->user, i, 0);
        for (uint32_t k = r->x->succ_start[i]; k < r->x->succ_start[i + 1]; k++) {
            uint32_t s = r->x->succ[k];
            if (--r->unmet[s] == 0 && (r->x->ev[s].queue == FY_Q_NONE || can_be_done(r, s))) {
                r->st[s] = ST_DONE;
                r->work[top++] = s;
            }
        }
        if (xe->stream_next >= 0 && can_be_done(r, (size_t)xe->stream_next)) {
            r->st[xe->stream_next] = ST_DONE;
            r->work[top++] = (size_t)xe->stream_next;
        }
    }
}

static void finish(run *r, size_t i)
{
    r->st[i] = ST_FINISHED;
    if (!r->l->end_ns[i]) r->l->end_ns[i] = fy_now_ns();
    if (can_be_done(r, i)) make_done(r, i); /* else when its predecessors are */
}

/* ---- stages ------------------------------------------------------------------------ */

static void start_main(run *r, size_t i);

static bool on_device(int q)
{
    return q == FY_Q_H2D || q == FY_Q_D2H || q == FY_Q_GPU;
}

/* The stage after event i's main work: the lowered plan's own (checksums of offloads and
 * spills), or this run's check of a weight against its source file. */
static int post_action(const run *r, size_t i)
{
    int own = r->x->ev[i].crc_post;
    if (own == FY_CRC_NONE && r->l->verify && r->l->verify[i]) return FY_CRC_SOURCE;
    return own;
}

static void crc_done(run *r, size_t i, bool pre, uint32_t crc)
{
    const fy_xev *xe = &r->x->ev[i];
    int action = pre ? xe->crc_pre : post_action(r, i);
    if (action == FY_CRC_SOURCE) {
        uint32_t want = r->l->src_crc[xe->tensor];
        if (crc != want) {
            char src[FY_ERROR_PATH_MAX + 64], dst[FY_ERROR_PATH_MAX + 64];
            fail(r, i, FY_ECHECKSUM,
                 "weight '%s' did not arrive intact: its copy in %s has crc32c 0x%08x, but "
                 "its %llu bytes in %s have 0x%08x",
                 tname(r, xe->tensor), loc_where(r, &xe->dst, dst, sizeof dst), crc,
                 (unsigned long long)xe->size, source_where(r, xe->tensor, src, sizeof src), want);
            return;
        }
        r->l->verified_count++;
        r->l->verified_bytes += xe->size;
    } else if (action == FY_CRC_MAKE) {
        r->l->crc[xe->slot] = crc;
    } else if (r->l->crc[xe->slot] != crc) {
        char src[FY_ERROR_PATH_MAX + 64], dst[FY_ERROR_PATH_MAX + 64];
        loc_where(r, &xe->src, src, sizeof src);
        loc_where(r, &xe->dst, dst, sizeof dst);
        if (pre)
            fail(r, i, FY_ECHECKSUM,
                 "checksum mismatch: '%s' in %s has crc32c 0x%08x, but 0x%08x was written "
                 "there (corrupted before it was copied on)",
                 tname(r, xe->tensor), src, crc, r->l->crc[xe->slot]);
        else
            fail(r, i, FY_ECHECKSUM,
                 "checksum mismatch: '%s' read back from %s into %s has crc32c 0x%08x, but "
                 "0x%08x was written",
                 tname(r, xe->tensor), src, dst, crc, r->l->crc[xe->slot]);
        return;
    }
    if (pre)
        start_main(r, i);
    else
        finish(r, i);
}

static void start_crc(run *r, size_t i, bool pre)
{
    const fy_xev *xe = &r->x->ev[i];
    const void *data = loc_ptr(r, pre ? &xe->src : &xe->dst, xe->tensor);
    r->st[i] = pre ? ST_PRE : ST_POST;
    if (xe->size <= CRC_INLINE_MAX) {
        crc_done(r, i, pre, xe->size ? fy_crc32c(0, data, (size_t)xe->size) : 0);
        return;
    }
    ljob *j = job_get(r);
    if (!j) {
        fail(r, i, FY_ENOMEM, "out of memory");
        return;
    }
    j->type = JOB_CRC;
    j->event = i;
    j->data = data;
    j->size = xe->size;
    j->pre = pre;
    j->job.run = crc_run;
    j->job.tag = i;
    r->inflight++;
    fy_worker_submit(r->l->crc_worker, &j->job);
}

/* Fills bufs with the op's operands; returns the count or a negative status. */
static long fill_call(run *r, size_t i, fy_kernel_call *call, fy_kernel_buffer **bufs, size_t *cap)
{
    const fy_event *e = fy_plan_event(r->x->plan, i);
    const fy_op *op = fy_graph_op(r->x->graph, (size_t)e->op);
    const fy_op *run_op = r->l->spin_ops ? &r->l->spin_ops[e->op] : op;
    size_t n = op->read_count + op->write_count;
    if (n > *cap) {
        fy_kernel_buffer *b = realloc(*bufs, n * sizeof *b);
        if (!b) return FY_ENOMEM;
        *bufs = b;
        *cap = n;
    }
    const fy_loc *ops = &r->x->operands[r->x->ev[i].operands];
    for (size_t k = 0; k < n; k++) {
        uint32_t t = k < op->read_count ? op->reads[k] : op->writes[k - op->read_count];
        const fy_tensor *tn = fy_graph_tensor(r->x->graph, t);
        (*bufs)[k] = (fy_kernel_buffer){
            .data = loc_ptr(r, &ops[k], (int32_t)t), .size = tn->size, .tensor = tn};
    }
    bool host = op->device == FY_TIER_HOST;
    *call = (fy_kernel_call){
        .op = run_op,
        .graph = r->x->graph,
        .inputs = *bufs,
        .input_count = op->read_count,
        .outputs = *bufs + op->read_count,
        .output_count = op->write_count,
        .spin_seconds = fy_kernel_spin_seconds(op, host ? r->l->host_flops : r->l->gpu_flops),
        .threads = r->l->threads};
    return (long)n;
}

static void start_host_op(run *r, size_t i)
{
    ljob *j = job_get(r);
    if (!j || fill_call(r, i, &j->call, &j->bufs, &j->bufs_cap) < 0) {
        if (j) job_put(r, j);
        fail(r, i, FY_ENOMEM, "out of memory");
        return;
    }
    j->type = JOB_HOST;
    j->event = i;
    j->reg = r->l->host_kernels;
    j->job.run = host_run;
    j->job.tag = i;
    r->inflight++;
    fy_worker_submit(r->l->host_worker, &j->job);
}

static void start_main(run *r, size_t i)
{
    const fy_xev *xe = &r->x->ev[i];
    fy_loop *l = r->l;
    fy_error e = {0};
    int rc = 0;
    r->st[i] = ST_MAIN;
    switch (xe->queue) {
    case FY_Q_IO:
        if (xe->dst.kind == FY_LOC_SPILL)
            rc = l->iob->submit_write(l->io, l->spill, xe->dst.offset,
                                      loc_ptr(r, &xe->src, xe->tensor), (size_t)xe->size, i, &e);
        else
            rc = l->iob->submit_read(
                l->io, xe->src.kind == FY_LOC_SPILL ? l->spill : l->files[xe->src.file],
                xe->src.offset, loc_ptr(r, &xe->dst, xe->tensor), (size_t)xe->size, i, &e);
        break;
    case FY_Q_H2D:
    case FY_Q_D2H: {
        bool h2d = xe->queue == FY_Q_H2D;
        fy_device_work w = {.kind = h2d ? FY_DEVICE_H2D : FY_DEVICE_D2H,
                            .tag = i,
                            .waits = r->waits,
                            .wait_count = r->wait_count,
                            .host = loc_ptr(r, h2d ? &xe->src : &xe->dst, xe->tensor),
                            .gpu_offset = h2d ? xe->dst.offset : xe->src.offset,
                            .size = xe->size};
        rc = l->devb->submit(l->dev, &w, &e);
        break;
    }
    case FY_Q_GPU: {
        fy_kernel_call call;
        if (fill_call(r, i, &call, &r->bufs, &r->bufs_cap) < 0) {
            rc = fy_error_set(&e, FY_ENOMEM, "out of memory");
            break;
        }
        fy_device_work w = {.kind = FY_DEVICE_COMPUTE,
                            .tag = i,
                            .waits = r->waits,
                            .wait_count = r->wait_count,
                            .call = &call};
        rc = l->devb->submit(l->dev, &w, &e);
        break;
    }
    case FY_Q_HOST:
        start_host_op(r, i);
        return;
    default:
        break;
    }
    if (rc < 0) {
        fail(r, i, rc, "%s", e.message);
        return;
    }
    r->inflight++;
    if (on_device(xe->queue)) r->device_inflight++;
}

/* The main stage of event i has completed. */
static void main_done(run *r, size_t i, int status, const char *detail, uint64_t t0, uint64_t t1)
{
    const fy_xev *xe = &r->x->ev[i];
    r->inflight--;
    if (on_device(xe->queue)) r->device_inflight--;
    if (status < 0) {
        char where[FY_ERROR_PATH_MAX + 64] = "";
        if (xe->queue == FY_Q_IO)
            loc_where(r, xe->dst.kind == FY_LOC_SPILL ? &xe->dst : &xe->src, where, sizeof where);
        if (where[0])
            fail(r, i, status, "%s: %s", where,
                 detail && detail[0] ? detail : fy_status_message(status));
        else
            fail(r, i, status, "%s", detail && detail[0] ? detail : fy_status_message(status));
        return;
    }
    if (r->failed) return;
    if (t0 && !xe->crc_pre) r->l->start_ns[i] = t0;
    int post = post_action(r, i);
    if (t1 && !post) r->l->end_ns[i] = t1;
    if (post)
        start_crc(r, i, false);
    else
        finish(r, i);
}

/* ---- issuing ----------------------------------------------------------------------- */

static bool waits_push(run *r, uint64_t tag)
{
    if (r->wait_count == r->waits_cap) {
        size_t cap = r->waits_cap * 2;
        uint64_t *w = realloc(r->waits, cap * sizeof *w);
        if (!w) return false;
        r->waits = w;
        r->waits_cap = cap;
    }
    r->waits[r->wait_count++] = tag;
    return true;
}

/* With a device that orders its own work: whether event i (on a device stream) may be
 * submitted now, every unfinished dependency being device work already submitted (or an
 * evict waiting only on such). Collects the tags to wait for into r->waits. */
static bool device_ready(run *r, size_t i)
{
    size_t top = 0, expanded = 0;
    int q = r->x->ev[i].queue;
    r->stack[top++] = i;
    while (top) {
        size_t j = r->stack[--top];
        const fy_event *e = fy_plan_event(r->x->plan, j);
        for (uint32_t k = 0; k < e->after_count; k++) {
            size_t a = e->after[k];
            int aq = r->x->ev[a].queue;
            if (r->st[a] == ST_DONE) continue;
            if (aq == FY_Q_NONE) {
                if (++expanded > EVICT_EXPAND_MAX) return false;
                r->stack[top++] = a;
                continue;
            }
            if (!on_device(aq) || r->st[a] < ST_MAIN) return false;
            if (r->st[a] != ST_MAIN || aq == q)
                continue; /* its device work is over, or the stream orders it */
            if (!waits_push(r, a)) return false;
        }
    }
    return true;
}

/* Starts event i when it may start. */
static void try_start(run *r, size_t i)
{
    const fy_xev *xe = &r->x->ev[i];
    r->wait_count = 0;
    if (r->unmet[i] > 0) {
        if (!r->l->device_waits || !on_device(xe->queue) || xe->crc_pre) return;
        if (!device_ready(r, i)) return;
    }
    r->l->start_ns[i] = fy_now_ns();
    if (xe->crc_pre)
        start_crc(r, i, true);
    else
        start_main(r, i);
}

/* Issues what can be issued on every queue. */
static void pump(run *r)
{
    bool progress = true;
    while (progress && !r->failed) {
        progress = false;
        for (int q = 0; q < FY_Q_COUNT && !r->failed; q++) {
            while (r->cursor[q] < r->qlen[q] && !r->failed) {
                size_t i = r->qlist[q][r->cursor[q]];
                if (r->st[i] == ST_WAIT) try_start(r, i);
                /* A stream's next event must wait until this one's transfer or op is
                 * submitted; io events are unordered among themselves. */
                if (r->st[i] < (q == FY_Q_IO ? ST_PRE : ST_MAIN)) break;
                r->cursor[q]++;
                progress = true;
            }
        }
    }
}

/* ---- reaping ----------------------------------------------------------------------- */

static void reap_notify(run *r)
{
    fy_device_done d[8];
    size_t k;
    while ((k = r->l->devb->reap(r->l->dev, d, 8)) > 0)
        for (size_t m = 0; m < k; m++)
            main_done(r, (size_t)d[m].tag, d[m].status, d[m].message, d[m].start_ns, d[m].end_ns);
    for (fy_job *jj = fy_done_list_take(r->l->done); jj;) {
        fy_job *next = jj->next;
        ljob *j = (ljob *)jj;
        size_t i = j->event;
        if (j->type == JOB_HOST) {
            main_done(r, i, j->job.status, j->job.message, j->job.start_ns, j->job.end_ns);
        } else {
            r->inflight--;
            if (j->job.status < 0)
                fail(r, i, j->job.status, "checksum: %s",
                     j->job.message ? j->job.message : "failed");
            else if (!r->failed)
                crc_done(r, i, j->pre, j->crc);
        }
        job_put(r, j);
        jj = next;
    }
}

static void progress(run *r)
{
    if (r->l->on_progress)
        r->l->on_progress(r->l->user, r->l->done_count, r->n, r->l->bytes_done,
                          (double)(fy_now_ns() - r->l->t0_ns) / 1e9);
}

/* ---- the loop ---------------------------------------------------------------------- */

static int setup(run *r, fy_loop *l, fy_error *err)
{
    size_t n = r->n;
    r->st = calloc(n ? n : 1, 1);
    r->unmet = malloc((n ? n : 1) * sizeof *r->unmet);
    r->work = malloc((n + 1) * sizeof *r->work);
    r->stack = malloc((n + EVICT_EXPAND_MAX + 2) * sizeof *r->stack);
    r->waits_cap = 16;
    r->waits = malloc(r->waits_cap * sizeof *r->waits);
    l->start_ns = calloc(n ? n : 1, sizeof *l->start_ns);
    l->end_ns = calloc(n ? n : 1, sizeof *l->end_ns);
    l->crc = calloc(r->x->slot_count ? r->x->slot_count : 1, sizeof *l->crc);
    bool ok =
        r->st && r->unmet && r->work && r->stack && r->waits && l->start_ns && l->end_ns && l->crc;
    for (int q = 0; ok && q < FY_Q_COUNT; q++) {
        r->qlist[q] =
            malloc((r->x->queue_events[q] ? r->x->queue_events[q] : 1) * sizeof *r->qlist[q]);
        ok = r->qlist[q] != NULL;
    }
    if (!ok) return fy_error_set(err, FY_ENOMEM, "out of memory starting a run of %zu events", n);
    for (size_t i = 0; i < n; i++) {
        r->unmet[i] = r->x->after_count[i];
        int q = r->x->ev[i].queue;
        if (q < FY_Q_COUNT) r->qlist[q][r->qlen[q]++] = (uint32_t)i;
    }
    return 0;
}

static void teardown(run *r)
{
    free(r->st);
    free(r->unmet);
    free(r->work);
    free(r->stack);
    free(r->waits);
    free(r->bufs);
    for (int q = 0; q < FY_Q_COUNT; q++)
        free(r->qlist[q]);
    for (size_t k = 0; k < r->job_count; k++) {
        free(r->jobs[k]->bufs);
        free(r->jobs[k]->job.message);
        free(r->jobs[k]);
    }
    free(r->jobs);
}

int fy_loop_run(fy_loop *l, fy_error *err)
{
    run r = {.l = l, .x = l->x, .n = l->x->count, .err = err};
    int rc = setup(&r, l, err);
    if (rc < 0) {
        teardown(&r);
        return rc;
    }
    rc = l->iob->watch_fd(l->io, l->notify_fd, WATCH_NOTIFY, err);
    if (rc == 0 && l->timer_fd >= 0) rc = l->iob->watch_fd(l->io, l->timer_fd, WATCH_TIMER, err);
    if (rc < 0) {
        teardown(&r);
        return rc;
    }
    l->t0_ns = fy_now_ns(); /* the run's clock: from here until the last completion is seen */
    /* Evicts that wait for nothing are done at once. */
    for (size_t i = 0; i < r.n; i++)
        if (r.x->ev[i].queue == FY_Q_NONE && r.unmet[i] == 0 && r.st[i] != ST_DONE)
            make_done(&r, i);
    pump(&r);
    fy_io_completion comp[32];
    while (l->done_count < r.n || r.inflight) {
        if (r.inflight == 0) {
            if (!r.failed) {
                size_t stuck = 0;
                while (stuck < r.n && r.st[stuck] == ST_DONE)
                    stuck++;
                fail(&r, stuck < r.n ? stuck : 0, FY_ESTATE,
                     "the run cannot go on: this event waits for events that never "
                     "complete (an engine bug: please report it with the plan)");
            }
            break;
        }
        fy_error we = {0};
        int k;
        if (l->poll_ns && r.device_inflight && l->iob->wait_for) {
            /* Device completions are looked for every poll_ns as well as woken for: being
             * woken by another thread costs up to 0.1 ms in a VM, a timer much less. */
            k = l->iob->wait_for(l->io, comp, sizeof comp / sizeof comp[0], l->poll_ns, &we);
            if (k == 0) reap_notify(&r);
        } else {
            k = l->iob->wait(l->io, comp, sizeof comp / sizeof comp[0], &we);
        }
        if (k < 0) {
            /* The backend cannot wait any more: nothing more can be reaped. What is still
             * in flight is drained by closing the io backend and ending the device run. */
            if (!r.failed) {
                r.status = fy_error_set(err, k, "waiting for completions: %s", we.message);
                r.failed = true;
            }
            break;
        }
        for (int c = 0; c < k; c++) {
            if (comp[c].watch) {
                if (comp[c].tag == WATCH_TIMER)
                    progress(&r);
                else
                    reap_notify(&r);
            } else {
                main_done(&r, (size_t)comp[c].tag, comp[c].status, comp[c].detail, 0, 0);
            }
        }
        pump(&r);
    }
    l->t1_ns = fy_now_ns();
    rc = r.failed ? (r.status < 0 ? r.status : FY_EIO) : 0;
    teardown(&r);
    return rc;
}

void fy_loop_free(fy_loop *l)
{
    free(l->start_ns);
    free(l->end_ns);
    free(l->crc);
    l->start_ns = l->end_ns = NULL;
    l->crc = NULL;
}
