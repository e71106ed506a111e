/* engine/exec.h — a checked plan lowered for execution (engine-private): for every event,
 * its queue, where it reads and writes (arena offset, the caller's buffer, a source file,
 * the spill file), the checksum work around it, and its successors. Lowering replays the
 * plan in plan order, as the checker does, so every address is fixed before the first event
 * runs; the loop then only orders and issues. */
#ifndef FERRY_ENGINE_EXEC_H
#define FERRY_ENGINE_EXEC_H

#include "ferry/plan.h"

/* Queues of the loop. IO is not a stream (its events may complete in any order); the others
 * are: each event there starts after the previous one of its queue, in plan order. */
typedef enum fy_exec_queue {
    FY_Q_IO = 0,
    FY_Q_H2D,
    FY_Q_D2H,
    FY_Q_GPU,
    FY_Q_HOST,
    FY_Q_NONE, /* evicts: on no queue, done once their `after` events are */
} fy_exec_queue;
#define FY_Q_COUNT 5
const char *fy_exec_queue_name(int q); /* "io", "h2d", "d2h", "gpu", "host", "none" */

typedef enum fy_loc_kind {
    FY_LOC_NONE = 0,
    FY_LOC_ARENA,  /* tier's arena at offset */
    FY_LOC_CALLER, /* the caller's buffer for the tensor (a home copy on host) */
    FY_LOC_SOURCE, /* source file `file` at offset (a home copy on nvme) */
    FY_LOC_SPILL,  /* the spill file at offset */
} fy_loc_kind;

typedef struct fy_loc {
    uint8_t kind;  /* fy_loc_kind */
    int8_t tier;   /* fy_tier of the arena */
    uint32_t file; /* FY_LOC_SOURCE: index into fy_exec.files */
    uint64_t offset;
} fy_loc;

/* Checksum work before the main transfer (on its source) or after it (on its
 * destination): MAKE stores the crc32c in the slot, CHECK compares with it, SOURCE (after
 * only; set by the engine when a run verifies weights) compares with the crc32c of the
 * tensor's bytes in its source file. */
enum { FY_CRC_NONE = 0, FY_CRC_MAKE, FY_CRC_CHECK, FY_CRC_SOURCE };

typedef struct fy_xev {
    uint8_t queue;     /* fy_queue */
    uint8_t crc_pre;   /* FY_CRC_* on src, before the transfer */
    uint8_t crc_post;  /* FY_CRC_* on dst, after it */
    int8_t live_tier;  /* tier whose live bytes change when the event completes; -1 none */
    bool pristine;     /* load, offload: the bytes moved are the source file's, unchanged */
    int32_t tensor;    /* load, offload, evict */
    int32_t slot;      /* checksum slot of crc_pre/crc_post; -1 none */
    uint32_t operands; /* compute: index of its first operand in fy_exec.operands */
    int64_t live_delta;
    uint64_t size; /* bytes moved (load, offload) */
    fy_loc src, dst;
    int64_t stream_prev; /* previous event of its stream, -1 none (not for IO) */
    int64_t stream_next;
} fy_xev;

typedef struct fy_exec {
    const fy_plan *plan;
    const fy_graph *graph;
    size_t count;
    fy_xev *ev;
    fy_loc *operands;     /* per compute: its op's reads then writes */
    uint32_t *succ_start; /* count + 1 entries: successors of i are succ[succ_start[i]..] */
    uint32_t *succ;
    uint32_t *after_count; /* number of `after` entries (distinct or not) of each event */
    char **files;          /* distinct source files (resolved paths) */
    size_t file_count;
    size_t slot_count;
    bool *needs_caller; /* per tensor: some event uses its caller buffer */
    bool uses_spill;
    uint64_t spill_bytes; /* the spill file's extent: max at + size over its copies */
    fy_loc *final_host;   /* per tensor: its host copy after the last event (NONE: none) */
    int32_t *final_slot;  /* its checksum slot, -1 none */
    size_t queue_events[FY_Q_COUNT + 1];
    uint64_t queue_bytes[FY_Q_COUNT + 1];
} fy_exec;

/* Lowers a plan that passed the checker. A plan the checker should have refused (a copy
 * read that is not there) is FY_ECHECK naming the event and its line: lowering trusts the
 * checker for order, never for memory safety — every offset is bounds-checked here. */
int fy_exec_build(const fy_plan *plan, fy_exec **out, fy_error *err);
void fy_exec_destroy(fy_exec *x);

/* "load 'w1' nvme->host", "compute 'fc0'", "evict 'w1' from gpu" for messages. */
const char *fy_exec_describe(const fy_exec *x, size_t i, char *buf, size_t size);
/* Sets err for event i: "PLAN:LINE: event ID (load 'w1' nvme->host): message". */
int fy_exec_error(const fy_exec *x, size_t i, fy_error *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
