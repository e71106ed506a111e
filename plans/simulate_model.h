/* plans/simulate_model.h — what the simulator, its reports, the trace writer and the plot
 * share (library-internal): the copies a timeline places in each arena and the live bytes
 * they add up to, and the simulation's result. A copy's life is [its placing event's start,
 * its evict's end); steps are sorted by time with frees before placements at one instant. */
#ifndef FERRY_SIMULATE_MODEL_H
#define FERRY_SIMULATE_MODEL_H

#include "ferry/simulate.h"

/* One arena copy's life on its tier. */
typedef struct fy_copy_life {
    int32_t tensor;
    uint8_t tier;
    uint64_t at, bytes;
    double start_s, end_s; /* end_s: the timeline's end when never evicted */
    size_t placed_by;      /* event index */
    long evicted_by;       /* event index, -1 when never */
} fy_copy_life;

/* A change of a tier's live bytes. */
typedef struct fy_live_step {
    double t;
    int64_t delta;
    uint32_t tier;
    uint32_t copy; /* index into copies */
} fy_live_step;

typedef struct fy_occupancy {
    fy_copy_life *copies;
    size_t copy_count;
    fy_live_step *steps; /* sorted */
    size_t step_count;
    double end_s; /* the latest span end */
    uint64_t peak[FY_TIER_COUNT];
    double peak_s[FY_TIER_COUNT];
    uint64_t extent[FY_TIER_COUNT];
} fy_occupancy;

/* Replays the plan's copies over spans. Events naming unknown tensors or tiers place
 * nothing (the checker reports them). */
int fy_occupancy_build(const fy_plan *plan, const fy_span *spans, fy_occupancy *out, fy_error *err);
void fy_occupancy_free(fy_occupancy *occ);

/* The event's bytes (loads, offloads) or 0, and a short description ("load w0 nvme->host",
 * "compute fc0", "evict w0 from gpu") into buf. */
uint64_t fy_sim_event_bytes(const fy_plan *plan, const fy_event *ev);
const char *fy_sim_event_describe(const fy_plan *plan, const fy_event *ev, char *buf, size_t size);

struct fy_sim {
    const fy_plan *plan;
    fy_machine machine;
    fy_sim_options options;
    fy_span *spans;
    fy_timeline timeline;
    fy_occupancy occ;
    fy_sim_summary summary;
    fy_sim_copy *peak_copies; /* all tiers' lists, back to back */
    fy_sim_stall *stalls;     /* by tensor, then by kind */
    char *stall_names;        /* the stalls' `what` strings, NUL-separated */
};

/* Fills sim->summary's stall lists from the spans (plans/simulate_stall.c). */
int fy_sim_stalls_build(fy_sim *sim, const uint32_t *stream_prev, fy_error *err);

#endif
