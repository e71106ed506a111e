/* The part of the I/O backends that does not depend on how chunks move: files (buffered and
 * O_DIRECT descriptors, temporary files), requests cut into chunks, chunk results folded
 * into one completion per request, and the choice of backend. Invariant: a request is
 * returned by wait() exactly once, after its last chunk came back, and holds its file (and
 * the file its descriptors) until then. */
#include "engine/io_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A transient EAGAIN is retried at once; this many in a row is a failure, not a spin. */
#define FY_IO_MAX_AGAIN 1000
/* A folder full of files named like ours still ends: this many names tried, then an error. */
#define FY_IO_TEMP_TRIES 10000
#define FY_IO_MAX_DEPTH 32768u
#define FY_IO_MAX_WORKERS 1024u
/* io_uring registers buffers of at most 1 GiB each. */
#define FY_IO_REG_SEGMENT ((size_t)1 << 30)

static const char *errtext(int e, char *buf, size_t size)
{
    return strerror_r(e, buf, size); /* the GNU form: may return a static string */
}

int fy_io_base_init(fy_io *io, const fy_io_backend *backend, const fy_io_config *cfg, fy_error *err)
{
    fy_io_config c = cfg ? *cfg : (fy_io_config){0};
    if (c.queue_depth == 0) c.queue_depth = FY_IO_DEFAULT_DEPTH;
    if (c.queue_depth > FY_IO_MAX_DEPTH)
        return fy_error_set(err, FY_EINVAL, "I/O queue depth %u is more than %u", c.queue_depth,
                            FY_IO_MAX_DEPTH);
    if (c.chunk_size == 0) c.chunk_size = FY_IO_DEFAULT_CHUNK;
    if (c.chunk_size > FY_IO_MAX_CHUNK)
        return fy_error_set(err, FY_EINVAL,
                            "I/O chunk size %zu is more than 1 GiB (the most "
                            "one read or write call moves)",
                            c.chunk_size);
    c.chunk_size = (c.chunk_size + 4095) & ~(size_t)4095;
    if (c.workers == 0) c.workers = c.queue_depth < 16 ? c.queue_depth : 16;
    if (c.workers > FY_IO_MAX_WORKERS)
        return fy_error_set(err, FY_EINVAL, "%u I/O worker threads is more than %u", c.workers,
                            FY_IO_MAX_WORKERS);
    if (c.direct_align & (c.direct_align - 1))
        return fy_error_set(err, FY_EINVAL, "O_DIRECT alignment %zu is not a power of two",
                            c.direct_align);

    memset(io, 0, sizeof *io);
    io->backend = backend;
    io->cfg = c;
    io->chunks = calloc(c.queue_depth, sizeof *io->chunks);
    if (!io->chunks)
        return fy_error_set(err, FY_ENOMEM, "out of memory for %u I/O chunk slots", c.queue_depth);
    for (unsigned i = c.queue_depth; i-- > 0;) {
        io->chunks[i].index = i;
        io->chunks[i].next_free = io->free_chunks;
        io->free_chunks = &io->chunks[i];
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    io->temp_salt = (unsigned)(((uintptr_t)io >> 4) ^ (uintptr_t)ts.tv_nsec) & 0xffffff;
    return 0;
}

static void file_free(fy_io *io, fy_io_file *f)
{
    if (f->prev)
        f->prev->next = f->next;
    else
        io->files = f->next;
    if (f->next) f->next->prev = f->prev;
    if (f->temp && !f->closing) unlink(f->path);
    if (f->fd_direct >= 0) close(f->fd_direct);
    if (f->fd >= 0) close(f->fd);
    free(f->path);
    free(f);
}

static void req_list_free(fy_io_req *r)
{
    while (r) {
        fy_io_req *next = r->next;
        free(r);
        r = next;
    }
}

void fy_io_base_fini(fy_io *io)
{
    req_list_free(io->pending_head);
    req_list_free(io->done_head);
    io->pending_head = io->done_head = NULL;
    while (io->files)
        file_free(io, io->files);
    free(io->chunks);
    io->chunks = NULL;
}

int fy_io_base_region(fy_io *io, void *base, size_t len, fy_error *err)
{
    if (!base || len == 0)
        return fy_error_set(err, FY_EINVAL, "an I/O buffer needs an address and a length");
    if (io->reg_base) return fy_error_set(err, FY_ESTATE, "an I/O buffer is already registered");
    io->reg_base = base;
    io->reg_len = len;
    io->reg_segment = FY_IO_REG_SEGMENT;
    return 0;
}

/* The registered segment holding all of [buf, buf + len), or -1. */
static int fixed_index(const fy_io *io, const char *buf, size_t len)
{
    if (!io->reg_kernel || len == 0) return -1;
    uintptr_t b = (uintptr_t)buf, base = (uintptr_t)io->reg_base;
    if (b < base || len > io->reg_len || b - base > io->reg_len - len) return -1;
    size_t first = (b - base) / io->reg_segment, last = (b - base + len - 1) / io->reg_segment;
    return first == last ? (int)first : -1;
}

/* ---- files ---- */

static void file_set_align(fy_io *io, fy_io_file *f)
{
    f->align = 4096;
    if (io->cfg.direct_align) {
        f->align = io->cfg.direct_align;
        return;
    }
    struct statx sx;
    if (statx(f->fd_direct, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) != 0 ||
        !(sx.stx_mask & STATX_DIOALIGN))
        return; /* not reported: 4096 is a multiple of every logical block size in use */
    if (sx.stx_dio_mem_align == 0 || sx.stx_dio_offset_align == 0) {
        snprintf(f->note, sizeof f->note, "the filesystem reports no direct I/O for the file");
        close(f->fd_direct);
        f->fd_direct = -1;
        return;
    }
    /* One alignment for both: a buffer and an offset that agree modulo it align together. */
    f->align = sx.stx_dio_mem_align > sx.stx_dio_offset_align ? sx.stx_dio_mem_align
                                                              : sx.stx_dio_offset_align;
}

/* Opens the O_DIRECT twin of f->fd; on refusal leaves fd_direct at -1 with the reason. */
static void file_open_direct(fy_io *io, fy_io_file *f, int flags)
{
    char eb[128];
    f->fd_direct = open(f->path, (flags & ~(O_CREAT | O_EXCL | O_TRUNC)) | O_DIRECT);
    if (f->fd_direct < 0) {
        int e = errno;
        snprintf(f->note, sizeof f->note, "O_DIRECT refused at open (%s): buffered I/O",
                 errtext(e, eb, sizeof eb));
        return;
    }
    struct stat a, b;
    if (fstat(f->fd, &a) != 0 || fstat(f->fd_direct, &b) != 0 || a.st_dev != b.st_dev ||
        a.st_ino != b.st_ino) {
        snprintf(f->note, sizeof f->note, "the path changed between two opens: buffered I/O");
        close(f->fd_direct);
        f->fd_direct = -1;
        return;
    }
    file_set_align(io, f);
}

static int open_temp(fy_io *io, fy_io_file *f, const char *dir, fy_error *err)
{
    size_t size = strlen(dir) + 80;
    char eb[128];
    for (int tries = 0; tries < FY_IO_TEMP_TRIES; tries++) {
        char *name = malloc(size);
        if (!name)
            return fy_error_set(err, FY_ENOMEM, "out of memory for a file name in '%s'", dir);
        snprintf(name, size, "%s/ferry-%ld-%06x-%llu.tmp", dir, (long)getpid(), io->temp_salt,
                 (unsigned long long)io->temp_seq++);
        int fd = open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            f->fd = fd;
            f->path = name;
            return 0;
        }
        int e = errno;
        free(name);
        if (e != EEXIST)
            return fy_error_set(err, fy_status_from_errno(e),
                                "cannot create a temporary file in '%s': %s", dir,
                                errtext(e, eb, sizeof eb));
    }
    return fy_error_set(err, FY_EIO, "cannot create a temporary file in '%s': %d names taken", dir,
                        FY_IO_TEMP_TRIES);
}

int fy_io_base_file_open(fy_io *io, const char *path, int mode, fy_io_file **out, fy_error *err)
{
    char eb[128];
    *out = NULL;
    if (!path) return fy_error_set(err, FY_EINVAL, "no path to open");
    if (mode != FY_IO_READ && mode != FY_IO_WRITE && mode != FY_IO_CREATE_TEMP)
        return fy_error_set(err, FY_EINVAL, "unknown I/O open mode %d for '%s'", mode, path);
    fy_io_file *f = calloc(1, sizeof *f);
    if (!f) return fy_error_set(err, FY_ENOMEM, "out of memory opening '%s'", path);
    f->fd = f->fd_direct = -1;
    f->mode = mode;
    f->align = 4096;
    int flags = O_CLOEXEC | (mode == FY_IO_READ ? O_RDONLY : O_RDWR);
    int rc = 0;
    if (mode == FY_IO_CREATE_TEMP) {
        rc = open_temp(io, f, path, err);
        f->temp = rc == 0;
    } else if (!(f->path = strdup(path))) {
        rc = fy_error_set(err, FY_ENOMEM, "out of memory opening '%s'", path);
    } else {
        f->fd = open(path, flags | (mode == FY_IO_WRITE ? O_CREAT : 0), 0600);
        if (f->fd < 0) {
            int e = errno;
            rc =
                fy_error_set(err, fy_status_from_errno(e), "cannot open '%s' for %s: %s", path,
                             mode == FY_IO_READ ? "reading" : "writing", errtext(e, eb, sizeof eb));
        }
    }
    struct stat st;
    if (rc == 0 && fstat(f->fd, &st) != 0) {
        int e = errno;
        rc = fy_error_set(err, fy_status_from_errno(e), "cannot stat '%s': %s", f->path,
                          errtext(e, eb, sizeof eb));
    }
    if (rc == 0 && S_ISDIR(st.st_mode))
        rc = fy_error_set(err, FY_EINVAL, "'%s' is a folder, not a file", f->path);
    if (rc < 0) {
        if (f->temp) unlink(f->path);
        if (f->fd >= 0) close(f->fd);
        free(f->path);
        free(f);
        return rc;
    }
    if (S_ISREG(st.st_mode))
        f->size = (uint64_t)st.st_size;
    else if (S_ISBLK(st.st_mode)) {
        off_t end = lseek(f->fd, 0, SEEK_END);
        f->size = end > 0 ? (uint64_t)end : 0;
    }
    if (io->cfg.allow_direct) file_open_direct(io, f, flags);
    atomic_init(&f->direct, f->fd_direct >= 0);
    f->next = io->files;
    if (io->files) io->files->prev = f;
    io->files = f;
    *out = f;
    return 0;
}

void fy_io_base_file_close(fy_io *io, fy_io_file *f)
{
    if (!f || f->closing) return;
    if (f->refs == 0) {
        file_free(io, f);
        return;
    }
    if (f->temp)
        unlink(f->path); /* the name goes now; the descriptors stay for the requests left */
    f->closing = true;
}

const char *fy_io_file_path(const fy_io_file *f)
{
    return f->path;
}

uint64_t fy_io_file_size(const fy_io_file *f)
{
    return f->size;
}

bool fy_io_file_direct(const fy_io_file *f)
{
    return atomic_load(&f->direct);
}

const char *fy_io_file_note(const fy_io_file *f)
{
    return atomic_load(&f->direct) ? "" : f->note;
}

size_t fy_io_file_align(const fy_io_file *f)
{
    return f->align;
}

/* ---- requests and chunks ---- */

static void done_push(fy_io *io, fy_io_req *r)
{
    r->next = NULL;
    if (io->done_tail)
        io->done_tail->next = r;
    else
        io->done_head = r;
    io->done_tail = r;
    io->finished++;
}

static void finish_if_idle(fy_io *io, fy_io_req *r)
{
    if (!r->queued && r->inflight == 0) done_push(io, r);
}

static void pending_pop_head(fy_io *io)
{
    fy_io_req *r = io->pending_head;
    io->pending_head = r->next;
    if (!io->pending_head) io->pending_tail = NULL;
    r->next = NULL;
    r->queued = false;
}

int fy_io_base_submit(fy_io *io, fy_io_file *f, bool write, uint64_t offset, void *buf, size_t len,
                      uint64_t tag, fy_error *err)
{
    if (!f)
        return fy_error_set(err, FY_EINVAL, "I/O request (tag %llu) without a file",
                            (unsigned long long)tag);
    if (f->closing)
        return fy_error_set(err, FY_ESTATE, "I/O request (tag %llu) on closed file '%s'",
                            (unsigned long long)tag, f->path);
    if (write && f->mode == FY_IO_READ)
        return fy_error_set(err, FY_EINVAL, "write (tag %llu) to '%s', opened for reading",
                            (unsigned long long)tag, f->path);
    if (!buf && len > 0)
        return fy_error_set(err, FY_EINVAL, "I/O request (tag %llu) on '%s' without a buffer",
                            (unsigned long long)tag, f->path);
    if (len > INT64_MAX || offset > (uint64_t)INT64_MAX - len)
        return fy_error_set(err, FY_ERANGE,
                            "I/O request (tag %llu) on '%s' ends past the largest file offset",
                            (unsigned long long)tag, f->path);
    fy_io_req *r = malloc(sizeof *r);
    if (!r)
        return fy_error_set(err, FY_ENOMEM, "out of memory for an I/O request on '%s'", f->path);
    *r = (fy_io_req){
        .file = f, .write = write, .offset = offset, .buf = buf, .len = len, .tag = tag};
    r->detail[0] = '\0';
    r->direct_ok = ((uintptr_t)buf - (uintptr_t)offset) % f->align == 0;
    f->refs++;
    io->outstanding++;
    if (len == 0) {
        done_push(io, r);
        return 0;
    }
    r->queued = true;
    if (io->pending_tail)
        io->pending_tail->next = r;
    else
        io->pending_head = r;
    io->pending_tail = r;
    return 0;
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

fy_io_chunk *fy_io_base_next_chunk(fy_io *io)
{
    for (;;) {
        fy_io_req *r = io->pending_head;
        if (!r || !io->free_chunks) return NULL;
        if (r->status != 0) { /* failed: cut nothing more of it */
            pending_pop_head(io);
            finish_if_idle(io, r);
            continue;
        }
        fy_io_file *f = r->file;
        uint64_t pos = r->offset + r->cut;
        size_t rem = r->len - r->cut, n;
        bool direct = false;
        if (r->direct_ok && atomic_load(&f->direct)) {
            /* O_DIRECT for the aligned body; the unaligned head and tail go buffered. */
            size_t a = f->align, mis = (size_t)(pos & (a - 1));
            if (mis)
                n = min_size(rem, a - mis);
            else if (rem >= a) {
                size_t cap = io->cfg.chunk_size / a * a;
                n = min_size(rem / a * a, cap ? cap : a);
                direct = true;
            } else
                n = rem;
        } else {
            n = min_size(rem, io->cfg.chunk_size);
        }
        fy_io_chunk *c = io->free_chunks;
        io->free_chunks = c->next_free;
        c->next_free = NULL;
        c->req = r;
        c->direct = direct;
        c->fd = direct ? f->fd_direct : f->fd;
        c->offset = pos;
        c->buf = r->buf + r->cut;
        c->len = n;
        c->again = 0;
        c->fixed = fixed_index(io, c->buf, n);
        r->cut += n;
        r->inflight++;
        io->inflight++;
        if (r->cut == r->len) pending_pop_head(io);
        return c;
    }
}

static void req_fail(fy_io_req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void req_fail(fy_io_req *r, int status, const char *fmt, ...)
{
    if (r->status != 0) return; /* the first error is the one reported */
    r->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof r->detail, fmt, ap);
    va_end(ap);
}

/* The direct descriptor failed with EINVAL although it opened: the filesystem or device
 * wants another alignment. Everything after goes buffered. */
static void file_direct_off(fy_io_file *f)
{
    if (!atomic_load(&f->direct)) return;
    snprintf(f->note, sizeof f->note,
             "O_DIRECT refused at run time (EINVAL at alignment %zu): buffered I/O", f->align);
    atomic_store(&f->direct, false);
}

bool fy_io_base_chunk_result(fy_io *io, fy_io_chunk *c, ssize_t res)
{
    fy_io_req *r = c->req;
    fy_io_file *f = r->file;
    const char *what = r->write ? "write" : "read";
    char eb[128];
    if (res > 0) {
        size_t n = (size_t)res < c->len ? (size_t)res : c->len;
        r->done += n;
        c->offset += n;
        c->buf += n;
        c->len -= n;
        c->again = 0;
        if (c->len == 0 || r->status != 0) goto release;
        /* A short transfer: issue the rest. If the rest lost its alignment, buffered. */
        if (c->direct && ((c->offset | (uintptr_t)c->buf | c->len) & (f->align - 1))) {
            c->direct = false;
            c->fd = f->fd;
        }
        c->fixed = fixed_index(io, c->buf, c->len);
        return true;
    }
    if (res == 0) {
        struct stat st;
        uint64_t end = c->offset;
        if (fstat(f->fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size < end)
            end = (uint64_t)st.st_size;
        if (!r->write)
            req_fail(r, FY_EIO, "file '%s' ends at byte %llu, needed %llu (truncated?)", f->path,
                     (unsigned long long)end, (unsigned long long)(r->offset + r->len));
        else
            req_fail(r, FY_EIO, "write to '%s' at byte %llu made no progress", f->path,
                     (unsigned long long)c->offset);
        goto release;
    }
    int e = (int)-res;
    if (r->status != 0) goto release; /* the request failed elsewhere: no retries */
    if (e == EINTR) return true;
    if (e == EAGAIN && ++c->again <= FY_IO_MAX_AGAIN) return true;
    if (e == EINVAL && c->direct) {
        file_direct_off(f);
        c->direct = false;
        c->fd = f->fd;
        return true;
    }
    req_fail(r, fy_status_from_errno(e), "%s of %zu bytes at byte %llu of '%s' failed: %s", what,
             c->len, (unsigned long long)c->offset, f->path, errtext(e, eb, sizeof eb));
release:
    c->req = NULL;
    c->next_free = io->free_chunks;
    io->free_chunks = c;
    io->inflight--;
    r->inflight--;
    finish_if_idle(io, r);
    return false;
}

void fy_io_base_cancel_pending(fy_io *io)
{
    while (io->pending_head) {
        fy_io_req *r = io->pending_head;
        req_fail(r, FY_ESTATE, "cancelled: the I/O backend was closed");
        pending_pop_head(io);
        finish_if_idle(io, r);
    }
}

size_t fy_io_base_pop_done(fy_io *io, fy_io_completion *out, size_t max)
{
    size_t n = 0;
    while (n < max && io->done_head) {
        fy_io_req *r = io->done_head;
        io->done_head = r->next;
        if (!io->done_head) io->done_tail = NULL;
        fy_io_completion *c = &out[n++];
        c->tag = r->tag;
        c->status = r->status;
        c->watch = false;
        c->bytes = r->done;
        memcpy(c->detail, r->detail, sizeof c->detail);
        fy_io_file *f = r->file;
        if (--f->refs == 0 && f->closing) file_free(io, f);
        io->outstanding--;
        free(r);
    }
    return n;
}

void fy_io_base_info(fy_io *io, fy_io_info *out)
{
    memset(out, 0, sizeof *out);
    out->backend = io->backend->name;
    out->queue_depth = io->cfg.queue_depth;
    out->chunk_size = io->cfg.chunk_size;
    out->buffer_registered = io->reg_kernel;
    snprintf(out->note, sizeof out->note, "%s", io->note);
}

int64_t fy_io_eventfd_drain(int fd)
{
    uint64_t v;
    for (;;) {
        ssize_t n = read(fd, &v, sizeof v);
        if (n == (ssize_t)sizeof v) return (int64_t)(v & INT64_MAX);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return 0;
        return n < 0 ? -errno : -EIO;
    }
}

/* ---- choosing a backend ---- */

int fy_io_backend_pick(const char *name, const fy_io_backend **out, char *why, size_t why_size,
                       fy_error *err)
{
    if (why && why_size) why[0] = '\0';
    if (!name || strcmp(name, "auto") == 0) {
        fy_error probe = {0};
        if (fy_io_uring_probe(&probe) == 0) {
            *out = &fy_io_backend_uring;
            return 0;
        }
        if (why && why_size)
            snprintf(why, why_size, "%s; using the threads I/O backend", probe.message);
        *out = &fy_io_backend_threads;
        return 0;
    }
    if (strcmp(name, "io_uring") == 0) {
        int rc = fy_io_uring_probe(err);
        if (rc < 0) return rc;
        *out = &fy_io_backend_uring;
        return 0;
    }
    if (strcmp(name, "threads") == 0) {
        *out = &fy_io_backend_threads;
        return 0;
    }
    return fy_error_set(err, FY_EINVAL,
                        "unknown I/O backend '%s' (expected auto, io_uring or threads)", name);
}
