/* engine/loop.h — the event loop (engine-private). One thread issues each queue's events in
 * plan order once their `after` events are complete (or, on a device that orders work
 * itself, once they are submitted to it) and blocks in one place: the io backend's wait(),
 * which also reports the eventfd that the device and the engine's workers write. */
#ifndef FERRY_ENGINE_LOOP_H
#define FERRY_ENGINE_LOOP_H

#include "engine/device.h"
#include "engine/exec.h"
#include "engine/io.h"
#include "engine/worker.h"

/* Everything one run needs; engine.c fills the inputs, the loop the outputs. */
typedef struct fy_loop {
    /* in */
    const fy_exec *x;
    const fy_io_backend *iob;
    fy_io *io;
    fy_io_file **files; /* x->file_count source files, open for reading */
    fy_io_file *spill;  /* NULL when the plan never writes to nvme */
    const fy_device_backend *devb;
    fy_device *dev;
    bool device_waits;
    char *gpu_base, *host_base;
    void **caller; /* per tensor: the caller's buffer (home copies on host), or NULL */
    fy_kernel_registry *host_kernels;
    fy_worker *host_worker; /* runs host ops, in order */
    fy_worker *crc_worker;  /* runs checksums of large tensors */
    fy_done_list *done;     /* where host_worker and crc_worker report */
    int notify_fd;          /* eventfd written by the device and the workers; watched */
    int timer_fd;           /* -1, or a timerfd for progress callbacks; watched */
    uint64_t poll_ns;       /* 0: wait to be woken by notify_fd; else, while device work is
                               in flight, also look for its completions this often */
    unsigned threads;
    double gpu_flops, host_flops; /* for spin */
    /* Emulation: per graph op, the op to hand kernels instead (kind "spin"); NULL: the
     * graph's own ops. */
    const fy_op *spin_ops;
    /* Per tensor: the crc32c of its bytes in its source file, which FY_CRC_SOURCE stages
     * compare with; NULL when no event has one. */
    const uint32_t *src_crc;
    /* Per event: 1 when it gets a FY_CRC_SOURCE stage after it (verify_weights); NULL: none. */
    const uint8_t *verify;
    void (*on_event)(void *user, size_t index, int status);
    void (*on_progress)(void *user, size_t done, size_t total, uint64_t bytes, double elapsed);
    void *user;
    /* out */
    uint64_t t0_ns;              /* run start */
    uint64_t t1_ns;              /* when the loop had seen every completion */
    uint64_t *start_ns, *end_ns; /* per event, relative to t0 (0 and 0 for evicts) */
    uint32_t *crc;               /* checksum slots */
    uint64_t live[FY_TIER_COUNT], peak[FY_TIER_COUNT];
    uint64_t bytes_done;
    size_t done_count;
    size_t verified_count; /* FY_CRC_SOURCE stages passed, and their bytes */
    uint64_t verified_bytes;
} fy_loop;

/* Runs the plan to its end or to its first error; in both cases returns only when nothing
 * is in flight any more (io requests, device work, worker jobs). Allocates start_ns, end_ns
 * and crc (freed by fy_loop_free, even on failure). */
int fy_loop_run(fy_loop *l, fy_error *err);
void fy_loop_free(fy_loop *l);

#endif
