/* ferry/probe.h — measures the machine ferry runs on, so that `ferry simulate` predicts this
 * machine: nvme write and read rates in a folder (O_DIRECT through the io backend the engine
 * uses, many chunks in flight), and with a GPU the pinned h2d and d2h rates and the bf16 matmul
 * rate (through the cuda device), and the host's matmul rate (the sim device's kernels).
 *
 * Example:
 *     fy_machine m;
 *     fy_machine_default(&m);
 *     fy_probe_options o = {.dir = "/mnt/nvme/ferry", .gpu = true, .host = true};
 *     fy_probe_report rep;
 *     if (fy_machine_probe(&o, &m, &rep, &err) < 0) { report(&err); return; }
 *     fy_machine_save(&m, "machine.yaml", &err);
 *
 * Only what is measured changes in m: rates, the nvme folder, and the nvme capacity (the free
 * space of the folder's filesystem). The gpu and host capacities are budgets the caller
 * chooses; they keep their values.
 */
#ifndef FERRY_PROBE_H
#define FERRY_PROBE_H

#include "ferry/core.h"
#include "ferry/plan.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fy_probe_options {
    const char *dir; /* where to measure the nvme (a temporary file, removed); NULL: m's dir */
    uint64_t size;   /* bytes written then read back; 0: 1GiB; rounded up to 4KiB */
    unsigned depth;  /* io chunks (1MiB) in flight; 0: the io backend's default (32) */
    bool gpu;        /* measure the gpu through the cuda device, when there is one */
    bool host;       /* measure the host's matmul rate */
} fy_probe_options;

typedef struct fy_probe_report {
    uint64_t bytes;         /* moved each way */
    double write_s, read_s; /* wall time of each phase (the write's includes fdatasync) */
    bool direct;            /* O_DIRECT was in effect (else the page cache may flatter) */
    char io_backend[32];    /* "io_uring" or "threads" */
    char io_note[256];      /* why io_uring or O_DIRECT was not used; "" */
    bool gpu_measured;
    char gpu[256]; /* the device measured, or why none was ("" when not asked) */
    bool host_measured;
} fy_probe_report;

/* Measures and writes the results into m (start from fy_machine_default or a loaded file).
 * Fails naming the folder when it cannot be written; a missing GPU is not an error (the
 * report says why, and m's gpu rates keep their values). */
int fy_machine_probe(const fy_probe_options *options, fy_machine *m, fy_probe_report *report,
                     fy_error *err);

#ifdef __cplusplus
}
#endif
#endif
