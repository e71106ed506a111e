/* engine/io.h — the engine's I/O backends (engine-private): io_uring, and a thread pool of
 * pread/pwrite workers where io_uring is refused. Both stream file bytes in and out of the
 * caller's memory with many chunks in flight and give back one completion per request.
 *
 * Example:
 *     const fy_io_backend *b;
 *     char why[256];
 *     fy_io *io;
 *     fy_io_file *f;
 *     fy_io_completion done[16];
 *     if (fy_io_backend_pick("auto", &b, why, sizeof why, &err) < 0 ||
 *         b->open(&(fy_io_config){.allow_direct = true}, &io, &err) < 0)
 *         return err.status;
 *     if (why[0])
 *         fprintf(stderr, "ferry: %s\n", why);            // fell back to threads, and why
 *     b->file_open(io, "w.bin", FY_IO_READ, &f, &err);
 *     b->submit_read(io, f, 0, arena, 128 << 20, 7, &err); // tag 7; arena stays valid...
 *     int n = b->wait(io, done, 16, &err);                  // ...until tag 7 comes back here
 *     b->file_close(io, f);
 *     b->close(io);
 *
 * Threading: every call on one fy_io (and its files) comes from one thread, the engine's
 * loop; the backends' own threads are internal. Ownership: the caller owns the memory it
 * hands to submit_* and register_buffer and must keep it valid and untouched until the
 * request's completion has been returned by wait() (or close() has returned). */
#ifndef FERRY_ENGINE_IO_H
#define FERRY_ENGINE_IO_H

#include "ferry/core.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A backend instance; its state is private to the backend that opened it. */
typedef struct fy_io fy_io;
/* An open file; owned by the fy_io that opened it. */
typedef struct fy_io_file fy_io_file;

/* Defaults, measured on the development VM (docs/performance.md, "I/O streaming"). */
#define FY_IO_DEFAULT_DEPTH 32u
#define FY_IO_DEFAULT_CHUNK ((size_t)1 << 20)
/* Largest chunk: one read or write call moves at most 0x7ffff000 bytes on Linux. */
#define FY_IO_MAX_CHUNK ((size_t)1 << 30)
#define FY_IO_DETAIL_MAX 512

typedef struct fy_io_config {
    unsigned queue_depth; /* chunks in flight across all requests; 0: FY_IO_DEFAULT_DEPTH */
    size_t chunk_size;    /* bytes per chunk; 0: FY_IO_DEFAULT_CHUNK; rounded up to 4 KiB,
                             at most FY_IO_MAX_CHUNK */
    bool allow_direct;    /* open files with O_DIRECT where the filesystem accepts it */
    unsigned workers;     /* threads backend: worker threads; 0: queue_depth, at most 16 */
    size_t direct_align;  /* 0: ask the filesystem (statx), else 4096; nonzero (a power of
                             two) forces it, so tests can provoke the kernel's refusal */
} fy_io_config;

/* Modes of file_open. */
enum {
    FY_IO_READ = 0,       /* an existing file, read only */
    FY_IO_WRITE = 1,      /* read and write; created 0600 when missing, never truncated */
    FY_IO_CREATE_TEMP = 2 /* path is a folder: a new file "ferry-<pid>-<salt>-<n>.tmp" in
                             it, created with O_EXCL and mode 0600 (never an existing file),
                             read and write, removed when the file is closed */
};

/* One finished request, or one wake-up of a watched fd. */
typedef struct fy_io_completion {
    uint64_t tag;   /* the caller's tag from submit_* or watch_fd */
    int status;     /* 0, or a negative FY_E* (the first error among the request's chunks) */
    bool watch;     /* a watched fd fired (bytes = the eventfd counter it drained) */
    uint64_t bytes; /* bytes moved: the request's len when status is 0 */
    char detail[FY_IO_DETAIL_MAX]; /* on failure: what failed, where and why; else "" */
} fy_io_completion;

/* How an instance runs, for logs and `ferry run`'s report. */
typedef struct fy_io_info {
    const char *backend; /* "io_uring" or "threads" */
    unsigned queue_depth;
    size_t chunk_size;
    unsigned workers;       /* threads backend; 0 for io_uring */
    bool buffer_registered; /* register_buffer's region is registered with the kernel */
    char note[256];         /* why a registration fell back; "" otherwise */
} fy_io_info;

/* A backend: a table of functions over a private fy_io. Every slot is mandatory. */
typedef struct fy_io_backend {
    const char *name; /* "io_uring", "threads" */
    /* Starts an instance (cfg may be NULL: all defaults). io_uring: FY_EUNSUPPORTED when the
     * kernel refuses a ring (ENOSYS, EPERM from seccomp or io_uring_disabled, old kernel). */
    int (*open)(const fy_io_config *cfg, fy_io **out, fy_error *err);
    /* Stops it: requests not yet started are cancelled, chunks in the kernel or a worker are
     * waited for (never abandoned: their memory may be reused at once), watches are removed,
     * files still open are closed (temporary ones removed). NULL is accepted. */
    void (*close)(fy_io *io);
    /* Offers one region (the pinned host arena) for registration with the kernel, so that
     * chunks inside it use read_fixed/write_fixed. Returns 1 when registered, 0 when the
     * region stays ordinary memory (threads backend; the kernel refused, e.g. over
     * RLIMIT_MEMLOCK: info().note says why); either way every address stays usable.
     * FY_ESTATE when a region is already registered or requests were submitted
     * already (register first). The region must outlive the instance. */
    int (*register_buffer)(fy_io *io, void *base, size_t len, fy_error *err);
    /* Opens path in a FY_IO_* mode. With allow_direct the file also gets an O_DIRECT
     * descriptor when the filesystem accepts one (see fy_io_file_direct). */
    int (*file_open)(fy_io *io, const char *path, int mode, fy_io_file **out, fy_error *err);
    /* Closes a file (a temporary one is removed now). Requests on it that wait() has not
     * returned yet still complete; the descriptors are released after the last. NULL ok. */
    void (*file_close)(fy_io *io, fy_io_file *file);
    /* One request of any length (0 included) at a byte offset. buf must stay valid until the
     * request's completion is returned. The backend cuts it into chunks (at most queue_depth
     * out across all requests, FIFO), resubmits short transfers and EINTR/EAGAIN, and
     * returns one completion: bytes == len, or the first error (EOF before len is FY_EIO
     * "file '...' ends at byte N, needed M"; ENOSPC is FY_ENOSPC). On a direct file, when buf
     * and offset share their misalignment modulo fy_io_file_align, the aligned body goes
     * O_DIRECT and the unaligned head and tail buffered; otherwise the whole request goes
     * buffered (no bounce buffer: the engine's arenas keep tensors aligned, so a misaligned
     * request is rare and copying it twice would cost as much as the page cache does).
     * FY_EINVAL: a write to a file opened for reading, a NULL buffer; FY_ESTATE: the file
     * was closed; FY_ERANGE: offset + len overflows; FY_ENOMEM. */
    int (*submit_read)(fy_io *io, fy_io_file *file, uint64_t offset, void *buf, size_t len,
                       uint64_t tag, fy_error *err);
    int (*submit_write)(fy_io *io, fy_io_file *file, uint64_t offset, const void *buf, size_t len,
                        uint64_t tag, fy_error *err);
    /* Watches an eventfd that other threads write to (CUDA host callbacks, workers). Each
     * time it is readable, the backend drains it with one 8-byte read and wait() returns a
     * completion {tag, watch = true, bytes = the counter}; wake-ups between two wait() calls
     * coalesce into one. Re-armed by itself until close(). The backend is the fd's only
     * reader; the caller keeps the fd open until close() returns. A watch whose fd breaks
     * (a read fails or returns nothing, POLLERR) is reported once with its status and
     * dropped. FY_EINVAL: fd not open, or already watched. */
    int (*watch_fd)(fy_io *io, int fd, uint64_t tag, fy_error *err);
    /* Blocks (in the kernel, never spinning) until at least one completion is ready, writes
     * up to max of them to out and returns how many. FY_ESTATE when nothing is outstanding
     * and nothing is watched (it would block forever); FY_EINVAL when max is 0. */
    int (*wait)(fy_io *io, fy_io_completion *out, size_t max, fy_error *err);
    /* As wait(), but returns 0 when nothing is ready after timeout_ns (at least 1 ns).
     * Optional: NULL in a backend that only blocks. */
    int (*wait_for)(fy_io *io, fy_io_completion *out, size_t max, uint64_t timeout_ns,
                    fy_error *err);
    /* Describes the instance. */
    void (*info)(fy_io *io, fy_io_info *out);
} fy_io_backend;

extern const fy_io_backend fy_io_backend_uring;
extern const fy_io_backend fy_io_backend_threads;

/* Picks a backend by name: "auto" (or NULL), "io_uring" or "threads". "auto" creates a
 * probe ring and falls back to threads when the kernel refuses it, writing the reason into
 * why (else why is ""), so the CLI can say so. "io_uring" that the kernel refuses is
 * FY_EUNSUPPORTED with the reason; an unknown name is FY_EINVAL. why may be NULL. */
int fy_io_backend_pick(const char *name, const fy_io_backend **out, char *why, size_t why_size,
                       fy_error *err);

/* Whether this kernel gives io_uring everything the backend needs; 0, or FY_EUNSUPPORTED
 * with the reason in err. */
int fy_io_uring_probe(fy_error *err);

/* File accessors; valid until the file is closed. */
const char *fy_io_file_path(const fy_io_file *file); /* for temp files, the name created */
uint64_t fy_io_file_size(const fy_io_file *file);    /* bytes when opened (truncation checks) */
/* Whether chunks aligned to the file's block size go through O_DIRECT; a filesystem that
 * refuses O_DIRECT (at open, or later with EINVAL) turns it off for the file. note says why
 * it is off ("" when on or never asked for). */
bool fy_io_file_direct(const fy_io_file *file);
const char *fy_io_file_note(const fy_io_file *file);
size_t fy_io_file_align(const fy_io_file *file); /* the O_DIRECT alignment in use */

#endif
