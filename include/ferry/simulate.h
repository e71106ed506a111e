/* ferry/simulate.h — the dry-run: a plan replayed with the machine's cost model, before a GPU
 * is touched. It predicts the total time, each queue's busy share, the compute stalls and
 * their causes, and the live bytes per tier over time with their peaks; a timeline (the
 * simulator's or one the engine measured) is written as a Chrome trace or an SVG plot.
 *
 * Example:
 *     fy_sim *sim;
 *     if (fy_simulate(plan, NULL, NULL, &sim, &err) < 0) { report(&err); return; }
 *     const fy_sim_summary *s = fy_sim_summary_get(sim);
 *     printf("%.3f s, gpu peak %llu bytes\n", s->total_s,
 *            (unsigned long long)s->tier[FY_TIER_GPU].peak);
 *     fy_timeline_write_trace(fy_sim_timeline(sim), "trace.json", &err);
 *     fy_sim_destroy(sim);
 *
 * The cost model (docs/dry-run.md): a load or offload lasts bytes / the rate of its link
 * (h2d, d2h, nvme read, nvme write); a compute lasts the op's `time`, else flops / its
 * device's compute rate, else 0; an evict takes no time. The streams (h2d, d2h, gpu, host)
 * run one event at a time in plan order; io events run up to io_depth at once and share the
 * nvme link by processor sharing: with n running, each progresses at 1/n of its own rate
 * (read or write), so the link moves its full bandwidth whatever the mix. An event starts
 * when its `after` events and its stream predecessor are complete. Every rate comes from
 * the machine (fy_machine), so calibrating the model is writing a machine file.
 *
 * Memory: a copy occupies its tier from its placing event's start until its evict
 * completes (half-open: bytes freed at t may be placed again at t); a copy never evicted
 * lives to the end. Home copies (a weight's source file, an input in the caller's memory)
 * rest outside the arenas and count nothing. Arena sizes are the plan's `arenas:`: exactly
 * what the engine allocates.
 */
#ifndef FERRY_SIMULATE_H
#define FERRY_SIMULATE_H

#include "ferry/core.h"
#include "ferry/plan.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- queues ------------------------------------------------------------------------ */

/* The same order as fy_engine_queue, so the engine's values convert by cast. */
typedef enum fy_sim_queue {
    FY_SIM_QUEUE_NONE = -1, /* evicts: on no queue */
    FY_SIM_QUEUE_IO = 0,    /* nvme->host and host->nvme; many at once */
    FY_SIM_QUEUE_H2D,
    FY_SIM_QUEUE_D2H,
    FY_SIM_QUEUE_GPU,  /* computes on the gpu */
    FY_SIM_QUEUE_HOST, /* computes on the host */
} fy_sim_queue;
#define FY_SIM_QUEUE_COUNT 5
const char *fy_sim_queue_name(fy_sim_queue q); /* "io", "h2d", "d2h", "gpu", "host", "none" */
/* The queue an event runs on, from its kind and tiers (FY_SIM_QUEUE_NONE for evicts and for
 * events naming an unknown op or a link that does not exist). */
fy_sim_queue fy_sim_event_queue(const fy_plan *plan, const fy_event *ev);

/* ---- timelines (shared with the engine's measured runs) ---------------------------- */

/* When one event ran, in seconds from the start; evicts have start == end. The same layout
 * as fy_engine_event_time, so the engine's report.events can be passed as spans. */
typedef struct fy_span {
    double start_s, end_s;
} fy_span;

/* A timeline of a plan: predicted (fy_sim_timeline) or measured (the engine fills one from
 * its report). Borrowed: the plan and the spans must outlive the calls that take it. */
typedef struct fy_timeline {
    const fy_plan *plan;
    const fy_span *spans;      /* one per event of the plan, in plan order */
    const char *title;         /* "ferry simulate", "ferry run": the trace's process name and
                                  the plot's title; NULL: "ferry" */
    const fy_machine *machine; /* capacity lines of the plot; NULL: the plan's machine */
} fy_timeline;

/* Writes a Chrome trace event file (Perfetto, chrome://tracing): a track per queue with one
 * complete event per plan event (name: what it does; args: id, line, tensor or op, bytes,
 * flops), evicts as instants on their own track, a counter track of live bytes per tier.
 * "-" writes to standard output. Live bytes follow the rule in this header's opening. */
int fy_timeline_write_trace(const fy_timeline *tl, const char *path, fy_error *err);

/* Writes an SVG plot: live bytes per tier over time with each tier's capacity and arena
 * lines, and the queues as lanes of event boxes below, on one time axis. */
int fy_timeline_write_svg(const fy_timeline *tl, const char *path, fy_error *err);

/* ---- the simulation ----------------------------------------------------------------- */

typedef struct fy_sim_options {
    /* io events running at once on the nvme link (0: no limit: every ready io event runs,
     * as the engine issues them); more wait in the order they became ready. */
    unsigned io_depth;
} fy_sim_options;

typedef struct fy_sim_copy {
    int32_t tensor; /* index in the plan's graph */
    uint64_t bytes;
} fy_sim_copy;

typedef struct fy_sim_tier {
    uint64_t peak;     /* most live bytes at any time */
    double peak_s;     /* when the peak is first reached */
    uint64_t arena;    /* the plan's arena for the tier: what the engine allocates */
    uint64_t extent;   /* the highest at + size any copy is placed at (<= arena in a checked
                          plan; the rest of the arena is never touched) */
    uint64_t capacity; /* the machine's */
    const fy_sim_copy *peak_copies; /* the copies live at the peak, largest first */
    size_t peak_copy_count;
} fy_sim_tier;

typedef struct fy_sim_queue_stats {
    size_t events;
    uint64_t bytes; /* loads and offloads */
    double flops;   /* computes */
    double busy_s;  /* time with at least one of its events running */
    double share;   /* busy_s / total_s (0 when total_s is 0) */
    double stall_s; /* compute queues: time idle waiting for another queue's event */
} fy_sim_queue_stats;

/* A cause of compute stalls: the event a compute waited for last (looking through evicts),
 * named by tensor ("w3", or "op fc2" for a compute on the other device) or by kind ("load
 * host->gpu weight", "compute host"). */
typedef struct fy_sim_stall {
    const char *what;
    double wait_s;
    size_t count; /* computes that waited on it */
} fy_sim_stall;

typedef struct fy_sim_summary {
    double total_s; /* when the last event completes */
    size_t event_count;
    fy_sim_tier tier[FY_TIER_COUNT];
    fy_sim_queue_stats queue[FY_SIM_QUEUE_COUNT];
    double stall_s;                      /* gpu + host queues */
    const fy_sim_stall *stall_by_tensor; /* largest first */
    size_t stall_tensor_count;
    const fy_sim_stall *stall_by_kind; /* largest first */
    size_t stall_kind_count;
} fy_sim_summary;

typedef struct fy_sim fy_sim;

/* Simulates plan on machine (NULL: the plan's machine; copied). options may be NULL. Refuses
 * what it cannot cost with FY_EINVAL naming the event and line: an unknown tensor, op or
 * tier, a link that does not exist. Other violations are the checker's: the replay goes on
 * as the plan says (an evict of an absent copy frees nothing). The plan must outlive sim. */
int fy_simulate(const fy_plan *plan, const fy_machine *machine, const fy_sim_options *options,
                fy_sim **out, fy_error *err);
void fy_sim_destroy(fy_sim *sim);
/* Both valid as long as sim. */
const fy_sim_summary *fy_sim_summary_get(const fy_sim *sim);
const fy_timeline *fy_sim_timeline(const fy_sim *sim);
const fy_machine *fy_sim_machine(const fy_sim *sim);

/* The summary as text for people (what `ferry simulate` prints) or as JSON for tools
 * (`--json`), in a malloc'ed NUL-terminated string; NULL when out of memory. */
char *fy_sim_format_text(const fy_sim *sim);
char *fy_sim_format_json(const fy_sim *sim);

/* What a run measured, for fy_sim_format_compare (the engine fills it from its report). */
typedef struct fy_sim_measured {
    double wall_s;
    double busy_s[FY_SIM_QUEUE_COUNT];
    double stall_s;
    uint64_t peak[FY_TIER_COUNT];
    uint64_t arena[FY_TIER_COUNT];
} fy_sim_measured;

/* A table of prediction next to measurement (time, per-queue busy, stalls, peaks, arenas)
 * with the error of each, malloc'ed; NULL when out of memory. `ferry run` prints it. */
char *fy_sim_format_compare(const fy_sim *sim, const fy_sim_measured *measured);

#ifdef __cplusplus
}
#endif
#endif
