/* The io_uring I/O backend: chunks go to the kernel as READ/WRITE (READ_FIXED/WRITE_FIXED
 * inside the registered region), watched eventfds as one-shot POLL_ADDs re-armed after each
 * wake-up, and wait() blocks in io_uring_enter and drains completions in batches. Invariant:
 * in_kernel counts every SQE prepared and not yet seen as a CQE, and close() returns only
 * when it is 0, so no memory the kernel may still touch is ever released. */
#include "engine/io_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <unistd.h>

/* user_data = index << 2 | kind */
enum { KIND_CHUNK = 0, KIND_WATCH = 1, KIND_CANCEL = 2 };
#define CQE_BATCH 64
#define MAX_REG_SEGMENTS 1024 /* UIO_MAXIOV: io_uring registers at most this many buffers */

typedef struct uring_watch {
    int fd;
    uint64_t tag;
    bool armed;  /* a POLL_ADD is in the kernel */
    bool failed; /* reported its error; never re-armed */
    bool fired;  /* wait() owes a completion */
    uint64_t count;
    int status;
    char detail[FY_IO_DETAIL_MAX];
} uring_watch;

typedef struct uring_io {
    fy_io base; /* first: a fy_io * is a uring_io * */
    struct io_uring ring;
    unsigned in_kernel;
    fy_io_chunk *retry_head, *retry_tail; /* chunks to issue again (short, EINTR, EAGAIN) */
    uring_watch *watches;
    size_t nwatch, capwatch;
    size_t unarmed; /* watches waiting for a POLL_ADD */
    size_t fired;
    bool closing;
} uring_io;

static uring_io *from(fy_io *io)
{
    return (uring_io *)io;
}

/* Everything the backend needs from the kernel, or FY_EUNSUPPORTED naming what is missing. */
static int check_ring(struct io_uring *ring, fy_error *err)
{
    if (!(ring->features & IORING_FEAT_NODROP))
        return fy_error_set(err, FY_EUNSUPPORTED,
                            "io_uring without IORING_FEAT_NODROP (Linux < 5.5)");
    struct io_uring_probe *p = io_uring_get_probe_ring(ring);
    if (!p)
        return fy_error_set(err, FY_EUNSUPPORTED, "io_uring without opcode probing (Linux < 5.6)");
    static const struct {
        int op;
        const char *name;
    } need[] = {{IORING_OP_READ, "READ"},
                {IORING_OP_WRITE, "WRITE"},
                {IORING_OP_READ_FIXED, "READ_FIXED"},
                {IORING_OP_WRITE_FIXED, "WRITE_FIXED"},
                {IORING_OP_POLL_ADD, "POLL_ADD"},
                {IORING_OP_POLL_REMOVE, "POLL_REMOVE"}};
    int rc = 0;
    for (size_t i = 0; i < sizeof need / sizeof need[0] && rc == 0; i++)
        if (!io_uring_opcode_supported(p, need[i].op))
            rc = fy_error_set(err, FY_EUNSUPPORTED, "io_uring without IORING_OP_%s", need[i].name);
    io_uring_free_probe(p);
    return rc;
}

static int ring_init(struct io_uring *ring, unsigned entries, fy_error *err)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_COOP_TASKRUN; /* no IPI per completion: we reap when we wait */
    int rc = io_uring_queue_init_params(entries, ring, &p);
    if (rc == -EINVAL) { /* a kernel older than the flag (5.19) */
        memset(&p, 0, sizeof p);
        rc = io_uring_queue_init_params(entries, ring, &p);
    }
    if (rc < 0) {
        char eb[128];
        return fy_error_set(err, FY_EUNSUPPORTED, "the kernel refuses io_uring (%s)",
                            strerror_r(-rc, eb, sizeof eb));
    }
    rc = check_ring(ring, err);
    if (rc < 0) io_uring_queue_exit(ring);
    return rc;
}

int fy_io_uring_probe(fy_error *err)
{
    struct io_uring ring;
    int rc = ring_init(&ring, 4, err);
    if (rc == 0) io_uring_queue_exit(&ring);
    return rc;
}

static void issue_chunk(uring_io *u, fy_io_chunk *c)
{
    struct io_uring_sqe *s = io_uring_get_sqe(&u->ring);
    unsigned n = (unsigned)c->len; /* at most FY_IO_MAX_CHUNK */
    if (c->req->write) {
        if (c->fixed >= 0)
            io_uring_prep_write_fixed(s, c->fd, c->buf, n, c->offset, c->fixed);
        else
            io_uring_prep_write(s, c->fd, c->buf, n, c->offset);
    } else {
        if (c->fixed >= 0)
            io_uring_prep_read_fixed(s, c->fd, c->buf, n, c->offset, c->fixed);
        else
            io_uring_prep_read(s, c->fd, c->buf, n, c->offset);
    }
    /* A buffered chunk goes straight to io_uring's workers: tried inline first, a read of
     * uncached pages falls back to page-by-page retries that ran at half the rate of a
     * worker's blocking read (with readahead) on the development VM (performance.md). */
    if (!c->direct) io_uring_sqe_set_flags(s, IOSQE_ASYNC);
    io_uring_sqe_set_data64(s, (uint64_t)c->index << 2 | KIND_CHUNK);
    u->in_kernel++;
}

/* Prepares SQEs while the submission queue has room: retries first, then watches to re-arm,
 * then new chunks. What does not fit waits in user space for the next call. */
static void fill(uring_io *u)
{
    while (u->retry_head && io_uring_sq_space_left(&u->ring)) {
        fy_io_chunk *c = u->retry_head;
        u->retry_head = c->next_free;
        if (!u->retry_head) u->retry_tail = NULL;
        c->next_free = NULL;
        issue_chunk(u, c);
    }
    for (size_t i = 0; i < u->nwatch && u->unarmed && !u->closing; i++) {
        uring_watch *w = &u->watches[i];
        if (w->armed || w->failed) continue;
        if (!io_uring_sq_space_left(&u->ring)) return;
        struct io_uring_sqe *s = io_uring_get_sqe(&u->ring);
        io_uring_prep_poll_add(s, w->fd, POLLIN);
        io_uring_sqe_set_data64(s, (uint64_t)i << 2 | KIND_WATCH);
        w->armed = true;
        u->unarmed--;
        u->in_kernel++;
    }
    fy_io_chunk *c;
    while (io_uring_sq_space_left(&u->ring) && (c = fy_io_base_next_chunk(&u->base)))
        issue_chunk(u, c);
}

static void retry_push(uring_io *u, fy_io_chunk *c)
{
    c->next_free = NULL;
    if (u->retry_tail)
        u->retry_tail->next_free = c;
    else
        u->retry_head = c;
    u->retry_tail = c;
}

static void watch_event(uring_io *u, uring_watch *w, int res)
{
    char eb[128];
    w->armed = false;
    if (u->closing || res == -ECANCELED) return;
    int64_t v = 0;
    if (res >= 0 && !(res & (POLLERR | POLLNVAL)))
        v = fy_io_eventfd_drain(w->fd);
    else
        v = res < 0 ? res : -EIO;
    if (v < 0) {
        w->failed = true;
        w->status = fy_status_from_errno((int)-v);
        snprintf(w->detail, sizeof w->detail, "watched fd %d (tag %llu) failed: %s", w->fd,
                 (unsigned long long)w->tag, strerror_r((int)-v, eb, sizeof eb));
    } else {
        w->count += (uint64_t)v;
        u->unarmed++;
        if (v == 0) return; /* another wake-up drained it already */
    }
    if (!w->fired) {
        w->fired = true;
        u->fired++;
    }
}

static void handle(uring_io *u, const struct io_uring_cqe *cqe)
{
    uint64_t data = io_uring_cqe_get_data64(cqe);
    size_t index = (size_t)(data >> 2);
    u->in_kernel--;
    switch (data & 3) {
    case KIND_CHUNK: {
        fy_io_chunk *c = &u->base.chunks[index];
        if (fy_io_base_chunk_result(&u->base, c, cqe->res)) retry_push(u, c);
        break;
    }
    case KIND_WATCH:
        watch_event(u, &u->watches[index], cqe->res);
        break;
    default: /* a POLL_REMOVE's own completion */
        break;
    }
}

static void reap(uring_io *u)
{
    struct io_uring_cqe *cqes[CQE_BATCH];
    unsigned n;
    while ((n = io_uring_peek_batch_cqe(&u->ring, cqes, CQE_BATCH)) > 0) {
        for (unsigned i = 0; i < n; i++)
            handle(u, cqes[i]);
        io_uring_cq_advance(&u->ring, n);
    }
}

static bool transient(int rc)
{
    return rc >= 0 || rc == -EINTR || rc == -EAGAIN || rc == -EBUSY || rc == -ETIME;
}

static int uring_open(const fy_io_config *cfg, fy_io **out, fy_error *err)
{
    *out = NULL;
    uring_io *u = calloc(1, sizeof *u);
    if (!u) return fy_error_set(err, FY_ENOMEM, "out of memory for the io_uring backend");
    int rc = fy_io_base_init(&u->base, &fy_io_backend_uring, cfg, err);
    if (rc == 0) {
        /* Chunks plus a few re-arms; more simply wait in user space for room. */
        unsigned entries = u->base.cfg.queue_depth + 8;
        rc = ring_init(&u->ring, entries > 4096 ? 4096 : entries, err);
        if (rc < 0) fy_io_base_fini(&u->base);
    }
    if (rc < 0) {
        free(u);
        return rc;
    }
    *out = &u->base;
    return 0;
}

static void uring_close(fy_io *io)
{
    if (!io) return;
    uring_io *u = from(io);
    u->closing = true;
    fy_io_base_cancel_pending(io);
    for (size_t i = 0; i < u->nwatch; i++) {
        if (!u->watches[i].armed) continue;
        struct io_uring_sqe *s;
        while (!(s = io_uring_get_sqe(&u->ring)))
            if (!transient(io_uring_submit(&u->ring))) break;
        if (!s) break; /* the ring is broken; the wait below gives up too */
        io_uring_prep_poll_remove(s, (uint64_t)i << 2 | KIND_WATCH);
        io_uring_sqe_set_data64(s, (uint64_t)i << 2 | KIND_CANCEL);
        u->in_kernel++;
    }
    /* Chunks cannot be cancelled half-way through a device; they are short, so wait. */
    while (u->in_kernel > 0) {
        fill(u);
        if (!transient(io_uring_submit_and_wait(&u->ring, 1))) break;
        reap(u);
    }
    io_uring_queue_exit(&u->ring);
    fy_io_base_fini(io);
    free(u->watches);
    free(u);
}

static int uring_register_buffer(fy_io *io, void *base, size_t len, fy_error *err)
{
    uring_io *u = from(io);
    if (io->outstanding > 0)
        return fy_error_set(err, FY_ESTATE, "register the I/O buffer before submitting");
    int rc = fy_io_base_region(io, base, len, err);
    if (rc < 0) return rc;
    size_t nseg = (len + io->reg_segment - 1) / io->reg_segment;
    if (nseg > MAX_REG_SEGMENTS) {
        snprintf(io->note, sizeof io->note,
                 "an I/O buffer of %zu bytes is more than io_uring registers (%d GiB)", len,
                 MAX_REG_SEGMENTS);
        return 0;
    }
    struct iovec *iov = calloc(nseg, sizeof *iov);
    if (!iov) return fy_error_set(err, FY_ENOMEM, "out of memory registering the I/O buffer");
    for (size_t i = 0; i < nseg; i++) {
        size_t at = i * io->reg_segment;
        iov[i].iov_base = (char *)base + at;
        iov[i].iov_len = len - at < io->reg_segment ? len - at : io->reg_segment;
    }
    rc = io_uring_register_buffers(&u->ring, iov, (unsigned)nseg);
    free(iov);
    if (rc < 0) {
        char eb[128], lim[32] = "unlimited";
        struct rlimit rl;
        if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
            fy_size_format_human((uint64_t)rl.rlim_cur, lim, sizeof lim);
        snprintf(io->note, sizeof io->note,
                 "the kernel refused to register the I/O buffer (%s; RLIMIT_MEMLOCK %s): "
                 "plain reads and writes",
                 strerror_r(-rc, eb, sizeof eb), lim);
        return 0;
    }
    io->reg_kernel = true;
    return 1;
}

static int uring_file_open(fy_io *io, const char *path, int mode, fy_io_file **out, fy_error *err)
{
    return fy_io_base_file_open(io, path, mode, out, err);
}

static void uring_file_close(fy_io *io, fy_io_file *file)
{
    fy_io_base_file_close(io, file);
}

/* Starts the I/O at once; a refusal to submit now is retried (or reported) by wait(). */
static void kick(uring_io *u)
{
    fill(u);
    if (io_uring_sq_ready(&u->ring)) io_uring_submit(&u->ring);
}

static int uring_submit(fy_io *io, fy_io_file *f, bool write, uint64_t offset, void *buf,
                        size_t len, uint64_t tag, fy_error *err)
{
    int rc = fy_io_base_submit(io, f, write, offset, buf, len, tag, err);
    if (rc == 0) kick(from(io));
    return rc;
}

static int uring_submit_read(fy_io *io, fy_io_file *f, uint64_t offset, void *buf, size_t len,
                             uint64_t tag, fy_error *err)
{
    return uring_submit(io, f, false, offset, buf, len, tag, err);
}

static int uring_submit_write(fy_io *io, fy_io_file *f, uint64_t offset, const void *buf,
                              size_t len, uint64_t tag, fy_error *err)
{
    return uring_submit(io, f, true, offset, (void *)buf, len, tag, err);
}

static int uring_watch_fd(fy_io *io, int fd, uint64_t tag, fy_error *err)
{
    uring_io *u = from(io);
    if (fd < 0 || fcntl(fd, F_GETFD) < 0)
        return fy_error_set(err, FY_EINVAL, "cannot watch fd %d (tag %llu): not open", fd,
                            (unsigned long long)tag);
    for (size_t i = 0; i < u->nwatch; i++)
        if (u->watches[i].fd == fd)
            return fy_error_set(err, FY_EINVAL, "fd %d is already watched (tag %llu)", fd,
                                (unsigned long long)u->watches[i].tag);
    if (u->nwatch == u->capwatch) {
        size_t cap = u->capwatch ? 2 * u->capwatch : 4;
        uring_watch *w = realloc(u->watches, cap * sizeof *w);
        if (!w) return fy_error_set(err, FY_ENOMEM, "out of memory watching fd %d", fd);
        u->watches = w;
        u->capwatch = cap;
    }
    uring_watch *w = &u->watches[u->nwatch++];
    memset(w, 0, sizeof *w);
    w->fd = fd;
    w->tag = tag;
    u->unarmed++;
    kick(u);
    return 0;
}

static size_t pop_watches(uring_io *u, fy_io_completion *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < u->nwatch && u->fired && n < max; i++) {
        uring_watch *w = &u->watches[i];
        if (!w->fired) continue;
        fy_io_completion *c = &out[n++];
        c->tag = w->tag;
        c->watch = true;
        c->status = w->status;
        c->bytes = w->count;
        memcpy(c->detail, w->detail, sizeof c->detail);
        w->fired = false;
        w->count = 0;
        u->fired--;
    }
    return n;
}

/* wait() and wait_for(): timeout_ns 0 waits for as long as it takes. */
static int uring_wait_until(fy_io *io, fy_io_completion *out, size_t max, uint64_t timeout_ns,
                            fy_error *err)
{
    uring_io *u = from(io);
    if (max == 0 || !out)
        return fy_error_set(err, FY_EINVAL, "wait for I/O needs room for a completion");
    for (;;) {
        size_t n = pop_watches(u, out, max);
        n += fy_io_base_pop_done(io, out + n, max - n);
        if (n > 0) return (int)n;
        fill(u);
        if (u->in_kernel == 0)
            return fy_error_set(err, FY_ESTATE,
                                "wait for I/O with no request outstanding and no fd watched");
        int rc;
        if (timeout_ns) {
            struct __kernel_timespec ts = {.tv_sec = (long long)(timeout_ns / 1000000000u),
                                           .tv_nsec = (long long)(timeout_ns % 1000000000u)};
            struct io_uring_cqe *cqe;
            rc = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
        } else {
            rc = io_uring_submit_and_wait(&u->ring, 1);
        }
        if (!transient(rc)) {
            char eb[128];
            return fy_error_set(err, FY_EIO, "io_uring_enter failed: %s",
                                strerror_r(-rc, eb, sizeof eb));
        }
        reap(u);
        if (timeout_ns) { /* one wait only: what it brought, maybe nothing */
            n = pop_watches(u, out, max);
            return (int)(n + fy_io_base_pop_done(io, out + n, max - n));
        }
    }
}

static int uring_wait(fy_io *io, fy_io_completion *out, size_t max, fy_error *err)
{
    return uring_wait_until(io, out, max, 0, err);
}

static int uring_wait_for(fy_io *io, fy_io_completion *out, size_t max, uint64_t timeout_ns,
                          fy_error *err)
{
    return uring_wait_until(io, out, max, timeout_ns ? timeout_ns : 1, err);
}

static void uring_info(fy_io *io, fy_io_info *out)
{
    fy_io_base_info(io, out);
}

const fy_io_backend fy_io_backend_uring = {
    .name = "io_uring",
    .open = uring_open,
    .close = uring_close,
    .register_buffer = uring_register_buffer,
    .file_open = uring_file_open,
    .file_close = uring_file_close,
    .submit_read = uring_submit_read,
    .submit_write = uring_submit_write,
    .watch_fd = uring_watch_fd,
    .wait = uring_wait,
    .wait_for = uring_wait_for,
    .info = uring_info,
};
