/* The thread-pool I/O backend, for kernels or sandboxes that refuse io_uring: worker threads
 * take chunks and move them with pread/pwrite; a finished request is signalled through an
 * internal eventfd, and wait() blocks in poll() over it and the watched fds. Invariant: the
 * shared request state is touched only under mu, and close() joins every worker, so none
 * outlives the instance or touches a buffer after close() returns. */
#include "engine/io_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

typedef struct thr_watch {
    int fd;
    uint64_t tag;
    bool failed; /* reported its error; no longer polled */
} thr_watch;

typedef struct thr_io {
    fy_io base; /* first: a fy_io * is a thr_io * */
    pthread_mutex_t mu;
    pthread_cond_t work; /* a chunk may be cut, or stopping */
    pthread_t *threads;
    unsigned nthreads;
    bool stopping;
    int efd;            /* workers -> wait(): a request finished */
    uint64_t signalled; /* base.finished when efd was last written */
    /* the loop thread's own, never touched by workers */
    thr_watch *watches;
    size_t nwatch, capwatch, active;
    struct pollfd *pfds;
} thr_io;

static thr_io *from(fy_io *io)
{
    return (thr_io *)io;
}

/* Wakes wait() when requests finished since the last wake-up (called under mu). */
static void notify(thr_io *t)
{
    if (t->base.finished == t->signalled) return;
    t->signalled = t->base.finished;
    uint64_t one = 1;
    ssize_t w = write(t->efd, &one, sizeof one); /* fails only at 2^64-1: unread anyway */
    (void)w;
}

static void *worker(void *arg)
{
    thr_io *t = arg;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        /* Cutting may finish a failed request too, so notify after it as well. */
        fy_io_chunk *c = fy_io_base_next_chunk(&t->base);
        notify(t);
        if (!c) {
            if (t->stopping) break;
            pthread_cond_wait(&t->work, &t->mu);
            continue;
        }
        bool again;
        do {
            int fd = c->fd;
            bool write = c->req->write;
            char *buf = c->buf;
            size_t len = c->len;
            off_t off = (off_t)c->offset;
            pthread_mutex_unlock(&t->mu);
            ssize_t res = write ? pwrite(fd, buf, len, off) : pread(fd, buf, len, off);
            if (res < 0) res = -errno;
            pthread_mutex_lock(&t->mu);
            again = fy_io_base_chunk_result(&t->base, c, res);
        } while (again);
        notify(t);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

static void stop_workers(thr_io *t)
{
    pthread_mutex_lock(&t->mu);
    t->stopping = true;
    fy_io_base_cancel_pending(&t->base);
    pthread_cond_broadcast(&t->work);
    pthread_mutex_unlock(&t->mu);
    for (unsigned i = 0; i < t->nthreads; i++)
        pthread_join(t->threads[i], NULL);
    t->nthreads = 0;
}

static void thr_close(fy_io *io)
{
    if (!io) return;
    thr_io *t = from(io);
    stop_workers(t);
    fy_io_base_fini(io);
    close(t->efd);
    pthread_cond_destroy(&t->work);
    pthread_mutex_destroy(&t->mu);
    free(t->threads);
    free(t->watches);
    free(t->pfds);
    free(t);
}

static int thr_open(const fy_io_config *cfg, fy_io **out, fy_error *err)
{
    char eb[128];
    *out = NULL;
    thr_io *t = calloc(1, sizeof *t);
    if (!t) return fy_error_set(err, FY_ENOMEM, "out of memory for the threads I/O backend");
    int rc = fy_io_base_init(&t->base, &fy_io_backend_threads, cfg, err);
    if (rc < 0) {
        free(t);
        return rc;
    }
    t->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (t->efd < 0) {
        int e = errno;
        fy_io_base_fini(&t->base);
        free(t);
        return fy_error_set(err, fy_status_from_errno(e), "cannot create an eventfd: %s",
                            strerror_r(e, eb, sizeof eb));
    }
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->work, NULL);
    unsigned want = t->base.cfg.workers;
    t->threads = calloc(want, sizeof *t->threads);
    t->pfds = calloc(1, sizeof *t->pfds); /* grows with the watches, one ahead */
    if (!t->threads || !t->pfds) {
        thr_close(&t->base);
        return fy_error_set(err, FY_ENOMEM, "out of memory for %u I/O workers", want);
    }
    /* Workers take no signals: they belong to the program's own threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = 0;
    while (t->nthreads < want && rc == 0) {
        rc = pthread_create(&t->threads[t->nthreads], NULL, worker, t);
        if (rc == 0) t->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        thr_close(&t->base);
        return fy_error_set(err, fy_status_from_errno(rc), "cannot start I/O worker %u: %s",
                            t->nthreads, strerror_r(rc, eb, sizeof eb));
    }
    *out = &t->base;
    return 0;
}

static int thr_register_buffer(fy_io *io, void *base, size_t len, fy_error *err)
{
    thr_io *t = from(io);
    pthread_mutex_lock(&t->mu);
    int rc = io->outstanding > 0
                 ? fy_error_set(err, FY_ESTATE, "register the I/O buffer before submitting")
                 : fy_io_base_region(io, base, len, err);
    if (rc == 0)
        snprintf(io->note, sizeof io->note, "the threads backend does not register buffers");
    pthread_mutex_unlock(&t->mu);
    return rc; /* 0: pread and pwrite take any address */
}

static int thr_file_open(fy_io *io, const char *path, int mode, fy_io_file **out, fy_error *err)
{
    thr_io *t = from(io);
    pthread_mutex_lock(&t->mu);
    int rc = fy_io_base_file_open(io, path, mode, out, err);
    pthread_mutex_unlock(&t->mu);
    return rc;
}

static void thr_file_close(fy_io *io, fy_io_file *file)
{
    thr_io *t = from(io);
    pthread_mutex_lock(&t->mu);
    fy_io_base_file_close(io, file);
    pthread_mutex_unlock(&t->mu);
}

static int thr_submit(fy_io *io, fy_io_file *f, bool write, uint64_t offset, void *buf, size_t len,
                      uint64_t tag, fy_error *err)
{
    thr_io *t = from(io);
    pthread_mutex_lock(&t->mu);
    int rc = fy_io_base_submit(io, f, write, offset, buf, len, tag, err);
    if (rc == 0 && len > 0)
        pthread_cond_broadcast(&t->work); /* a request may feed every idle worker */
    pthread_mutex_unlock(&t->mu);
    return rc;
}

static int thr_submit_read(fy_io *io, fy_io_file *f, uint64_t offset, void *buf, size_t len,
                           uint64_t tag, fy_error *err)
{
    return thr_submit(io, f, false, offset, buf, len, tag, err);
}

static int thr_submit_write(fy_io *io, fy_io_file *f, uint64_t offset, const void *buf, size_t len,
                            uint64_t tag, fy_error *err)
{
    return thr_submit(io, f, true, offset, (void *)buf, len, tag, err);
}

static int thr_watch_fd(fy_io *io, int fd, uint64_t tag, fy_error *err)
{
    thr_io *t = from(io);
    if (fd < 0 || fcntl(fd, F_GETFD) < 0)
        return fy_error_set(err, FY_EINVAL, "cannot watch fd %d (tag %llu): not open", fd,
                            (unsigned long long)tag);
    for (size_t i = 0; i < t->nwatch; i++)
        if (t->watches[i].fd == fd)
            return fy_error_set(err, FY_EINVAL, "fd %d is already watched (tag %llu)", fd,
                                (unsigned long long)t->watches[i].tag);
    if (t->nwatch == t->capwatch) {
        size_t cap = t->capwatch ? 2 * t->capwatch : 4;
        thr_watch *w = realloc(t->watches, cap * sizeof *w);
        if (!w) return fy_error_set(err, FY_ENOMEM, "out of memory watching fd %d", fd);
        t->watches = w;
        struct pollfd *p = realloc(t->pfds, (cap + 1) * sizeof *p);
        if (!p) return fy_error_set(err, FY_ENOMEM, "out of memory watching fd %d", fd);
        t->pfds = p;
        t->capwatch = cap;
    }
    t->watches[t->nwatch++] = (thr_watch){.fd = fd, .tag = tag};
    t->active++;
    return 0;
}

static size_t pop_done(thr_io *t, fy_io_completion *out, size_t max, bool *idle)
{
    pthread_mutex_lock(&t->mu);
    size_t n = fy_io_base_pop_done(&t->base, out, max);
    *idle = t->base.outstanding == 0;
    pthread_mutex_unlock(&t->mu);
    return n;
}

static void watch_result(thr_io *t, thr_watch *w, int64_t v, fy_io_completion *c)
{
    char eb[128];
    *c = (fy_io_completion){.tag = w->tag, .watch = true};
    if (v >= 0) {
        c->bytes = (uint64_t)v;
        return;
    }
    w->failed = true;
    t->active--;
    c->status = fy_status_from_errno((int)-v);
    snprintf(c->detail, sizeof c->detail, "watched fd %d (tag %llu) failed: %s", w->fd,
             (unsigned long long)w->tag, strerror_r((int)-v, eb, sizeof eb));
}

/* wait() and wait_for(): timeout_ns 0 waits for as long as it takes. */
static int thr_wait_until(fy_io *io, fy_io_completion *out, size_t max, uint64_t timeout_ns,
                          fy_error *err)
{
    thr_io *t = from(io);
    char eb[128];
    if (max == 0 || !out)
        return fy_error_set(err, FY_EINVAL, "wait for I/O needs room for a completion");
    for (;;) {
        bool idle;
        size_t n = pop_done(t, out, max, &idle);
        if (n > 0) return (int)n;
        if (idle && t->active == 0)
            return fy_error_set(err, FY_ESTATE,
                                "wait for I/O with no request outstanding and no fd watched");
        /* pfds[0] is the workers' eventfd; pfds[k] the k-th watch still polled. */
        size_t k = 0;
        t->pfds[k++] = (struct pollfd){.fd = t->efd, .events = POLLIN};
        for (size_t i = 0; i < t->nwatch; i++)
            if (!t->watches[i].failed)
                t->pfds[k++] = (struct pollfd){.fd = t->watches[i].fd, .events = POLLIN};
        struct timespec ts = {.tv_sec = (time_t)(timeout_ns / 1000000000u),
                              .tv_nsec = (long)(timeout_ns % 1000000000u)};
        int ready = ppoll(t->pfds, (nfds_t)k, timeout_ns ? &ts : NULL, NULL);
        if (ready < 0) {
            if (errno == EINTR) {
                if (timeout_ns) return 0;
                continue;
            }
            int e = errno;
            return fy_error_set(err, fy_status_from_errno(e), "poll failed: %s",
                                strerror_r(e, eb, sizeof eb));
        }
        if (t->pfds[0].revents) fy_io_eventfd_drain(t->efd);
        size_t p = 1;
        for (size_t i = 0; i < t->nwatch && n < max; i++) {
            thr_watch *w = &t->watches[i];
            if (w->failed) continue;
            short re = t->pfds[p++].revents;
            if (!re) continue;
            int64_t v = re & (POLLERR | POLLNVAL) ? -EIO : fy_io_eventfd_drain(w->fd);
            if (v != 0) watch_result(t, w, v, &out[n++]);
        }
        n += pop_done(t, out + n, max - n, &idle);
        if (n > 0 || timeout_ns) return (int)n; /* with a timeout: one wait only */
    }
}

static int thr_wait(fy_io *io, fy_io_completion *out, size_t max, fy_error *err)
{
    return thr_wait_until(io, out, max, 0, err);
}

static int thr_wait_for(fy_io *io, fy_io_completion *out, size_t max, uint64_t timeout_ns,
                        fy_error *err)
{
    return thr_wait_until(io, out, max, timeout_ns ? timeout_ns : 1, err);
}

static void thr_info(fy_io *io, fy_io_info *out)
{
    thr_io *t = from(io);
    pthread_mutex_lock(&t->mu);
    fy_io_base_info(io, out);
    out->workers = t->nthreads;
    pthread_mutex_unlock(&t->mu);
}

const fy_io_backend fy_io_backend_threads = {
    .name = "threads",
    .open = thr_open,
    .close = thr_close,
    .register_buffer = thr_register_buffer,
    .file_open = thr_file_open,
    .file_close = thr_file_close,
    .submit_read = thr_submit_read,
    .submit_write = thr_submit_write,
    .watch_fd = thr_watch_fd,
    .wait = thr_wait,
    .wait_for = thr_wait_for,
    .info = thr_info,
};
