/* engine/io_impl.h — what the I/O backends share (for engine/io_*.c only; the event loop
 * includes io.h). The shared part keeps the requests: it cuts each one into chunks (O_DIRECT
 * for the aligned body, buffered for an unaligned head and tail), keeps at most queue_depth
 * chunks out, folds chunk results (short transfers, EINTR, EOF, errors) into one result per
 * request, and queues finished requests for wait(). A backend only moves chunks. It is not
 * thread-safe: the threads backend calls it under its mutex. */
#ifndef FERRY_ENGINE_IO_IMPL_H
#define FERRY_ENGINE_IO_IMPL_H

#include "engine/io.h"

#include <stdatomic.h>
#include <sys/types.h>

struct fy_io_file {
    struct fy_io_file *next, *prev; /* in fy_io.files */
    char *path;
    int mode;
    int fd;        /* buffered descriptor, always open */
    int fd_direct; /* O_DIRECT descriptor, or -1 */
    size_t align;  /* O_DIRECT alignment of offsets, lengths and addresses */
    uint64_t size; /* at open */
    unsigned refs; /* requests on the file that wait() has not returned */
    bool closing;  /* file_close was called; freed when refs drops to 0 */
    bool temp;
    atomic_bool direct; /* chunks may use fd_direct; cleared once, note written before */
    char note[160];
};

typedef struct fy_io_req {
    struct fy_io_req *next; /* in the pending or done list */
    fy_io_file *file;
    bool write;
    bool direct_ok; /* buffer and offset share their misalignment: the body can go direct */
    bool queued;    /* in the pending list */
    uint64_t offset;
    char *buf;
    size_t len;
    uint64_t tag;
    size_t cut;        /* bytes [0, cut) have been handed to chunks */
    size_t done;       /* bytes moved so far */
    unsigned inflight; /* chunks out */
    int status;
    char detail[FY_IO_DETAIL_MAX];
} fy_io_req;

/* One transfer out to the kernel or a worker; its fields describe what is left of it. */
typedef struct fy_io_chunk {
    fy_io_req *req;
    struct fy_io_chunk *next_free;
    unsigned index; /* in fy_io.chunks, for io_uring's user_data */
    int fd;
    bool direct;
    int fixed; /* registered buffer index, or -1 */
    uint64_t offset;
    char *buf;
    size_t len;
    unsigned again; /* EAGAIN retries in a row */
} fy_io_chunk;

struct fy_io {
    const fy_io_backend *backend;
    fy_io_config cfg; /* resolved: no zero fields left but direct_align */
    fy_io_chunk *chunks;
    fy_io_chunk *free_chunks;
    unsigned inflight;
    fy_io_req *pending_head, *pending_tail; /* have bytes not cut into chunks yet */
    fy_io_req *done_head, *done_tail;       /* finished, for wait() */
    size_t outstanding;                     /* submitted and not returned by wait() */
    uint64_t finished;                      /* requests ever moved to the done list */
    fy_io_file *files;
    uint64_t temp_seq;
    unsigned temp_salt;
    /* the registered region, cut into segments of at most 1 GiB (the kernel's limit) */
    char *reg_base;
    size_t reg_len;
    size_t reg_segment;
    bool reg_kernel; /* chunks inside it may use the fixed opcodes */
    char note[256];
};

/* Fills the shared state (defaults resolved from cfg, chunk slots allocated). */
int fy_io_base_init(fy_io *io, const fy_io_backend *backend, const fy_io_config *cfg,
                    fy_error *err);
/* Frees every request and chunk slot and closes every file. No chunk may be out. */
void fy_io_base_fini(fy_io *io);
/* Records a region offered to register_buffer; the backend registers it. */
int fy_io_base_region(fy_io *io, void *base, size_t len, fy_error *err);

int fy_io_base_file_open(fy_io *io, const char *path, int mode, fy_io_file **out, fy_error *err);
/* Marks a file closed (a temp file is unlinked now); frees it when no request holds it. */
void fy_io_base_file_close(fy_io *io, fy_io_file *file);

/* Validates and queues a request (a 0-length one goes straight to the done list). */
int fy_io_base_submit(fy_io *io, fy_io_file *file, bool write, uint64_t offset, void *buf,
                      size_t len, uint64_t tag, fy_error *err);
/* Cuts the next chunk when a slot is free and a request has bytes left; else NULL. */
fy_io_chunk *fy_io_base_next_chunk(fy_io *io);
/* Folds a chunk's result (bytes moved, or -errno) into its request. Returns true when the
 * chunk, now describing what is left of it, must be issued again; false when its slot went
 * back to the free list. */
bool fy_io_base_chunk_result(fy_io *io, fy_io_chunk *chunk, ssize_t result);
/* Cancels requests that are not fully cut; they complete, failed, once their chunks are. */
void fy_io_base_cancel_pending(fy_io *io);
/* Moves up to max finished requests to out, releasing them. Returns how many. */
size_t fy_io_base_pop_done(fy_io *io, fy_io_completion *out, size_t max);
void fy_io_base_info(fy_io *io, fy_io_info *out);

/* Drains an eventfd with one 8-byte read; returns the counter, 0 when it was empty, or
 * -errno. */
int64_t fy_io_eventfd_drain(int fd);

#endif
