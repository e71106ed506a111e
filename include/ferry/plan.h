/* ferry/plan.h — the machine (`ferry: machine/1`) and the plan (`ferry: plan/1`): an ordered
 * list of load, offload, evict and compute events with the arena offset of every copy.
 *
 * Example:
 *     fy_error err = {0};
 *     fy_plan *plan;
 *     if (fy_plan_load("plan.yaml", NULL, &plan, &err) < 0) { report(&err); return; }
 *     for (size_t i = 0; i < fy_plan_event_count(plan); i++) {
 *         const fy_event *ev = fy_plan_event(plan, i);
 *         ...
 *     }
 *     fy_plan_destroy(plan);
 *
 * Events are numbered by position (index); `id` is what the file says. `after` holds indices
 * of earlier events, so a plan is a DAG by construction. A plan borrows or owns its graph (see
 * fy_plan_load) and is immutable once loaded or frozen; the checker, the simulator and the
 * engine only read it.
 */
#ifndef FERRY_PLAN_H
#define FERRY_PLAN_H

#include "ferry/core.h"
#include "ferry/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the machine ------------------------------------------------------------------ */

#define FY_MACHINE_DIR_MAX 4096

/* Capacities are the budget a plan must respect; rates feed the cost model. */
typedef struct fy_machine {
    uint64_t capacity[FY_TIER_COUNT];  /* bytes per tier */
    double gpu_compute;                /* FLOPS of ops on the gpu */
    double host_compute;               /* FLOPS of ops on the host */
    double h2d, d2h;                   /* bytes/s host<->gpu */
    double nvme_read, nvme_write;      /* bytes/s */
    char nvme_dir[FY_MACHINE_DIR_MAX]; /* where spill files go */
} fy_machine;

/* The built-in default: an 80GiB gpu at 700TFLOPS with 55GB/s links, 64GiB host RAM at
 * 1TFLOPS, 1TiB of nvme at 3GB/s read and 2GB/s write in /var/tmp/ferry. */
void fy_machine_default(fy_machine *m);
/* Reads a machine file over the values already in m (so start from the default); keys not
 * given keep their value. */
int fy_machine_load(const char *path, fy_machine *m, fy_error *err);
int fy_machine_save(const fy_machine *m, const char *path, fy_error *err);

/* ---- events ----------------------------------------------------------------------- */

typedef enum fy_event_kind {
    FY_EVENT_LOAD = 0, /* copy a tensor between tiers: nvme->host, host->gpu */
    FY_EVENT_OFFLOAD,  /* copy a tensor an op wrote: gpu->host, host->nvme */
    FY_EVENT_EVICT,    /* drop the copy on one tier; takes no time */
    FY_EVENT_COMPUTE,  /* run one op */
} fy_event_kind;
#define FY_EVENT_KIND_COUNT 4
const char *fy_event_kind_name(fy_event_kind kind); /* "load", "offload", "evict", "compute" */

/* Where a compute places a tensor it creates, in its device's arena. */
typedef struct fy_placement {
    int32_t tensor;   /* -1: the name is not a tensor of the graph (bad-reference) */
    const char *name; /* as written */
    uint64_t offset;
} fy_placement;

typedef struct fy_event {
    uint64_t id; /* as written in the file */
    fy_event_kind kind;
    int32_t tensor;  /* load, offload, evict: tensor index; -1 for compute or an unknown name */
    int32_t op;      /* compute: op index; -1 otherwise or for an unknown name */
    const char *ref; /* the tensor's or op's name as written (unknown names are kept here) */
    fy_tier from;    /* load, offload, evict; FY_TIER_NONE: an unknown tier was named */
    fy_tier to;      /* load, offload */
    uint64_t at;     /* load, offload: offset of the copy in the destination tier's arena
                        (nvme: in the spill file) */
    const fy_placement *places; /* compute: tensors it creates */
    uint32_t place_count;
    const uint32_t *after; /* indices of earlier events that must complete first */
    uint32_t after_count;
    unsigned line; /* line in the plan file, 0 when built in memory */
} fy_event;

/* ---- the plan --------------------------------------------------------------------- */

typedef struct fy_plan fy_plan;

/* Loads a plan. With graph NULL the plan's `graph: {file}` is loaded (relative to the plan's
 * folder) and owned by the plan, and its sha256, when the plan gives one, must match; with a
 * graph given, the plan borrows it (it must outlive the plan). Unusable input — YAML errors,
 * unknown keys, duplicate ids, `after` naming an unknown or later id, a missing field — fails
 * with FILE:LINE:COLUMN. What the checker reports does not fail loading: unknown tensor, op
 * or tier names are kept (index -1 / FY_TIER_NONE, the name in `ref`) for its bad-reference
 * class. */
int fy_plan_load(const char *path, const fy_graph *graph, fy_plan **out, fy_error *err);
int fy_plan_load_string(const char *name, const char *text, size_t len, const fy_graph *graph,
                        fy_plan **out, fy_error *err);
void fy_plan_destroy(fy_plan *plan);

/* Building (the planner, tests). The plan borrows graph; machine is copied. */
int fy_plan_create(const fy_graph *graph, const fy_machine *machine, fy_plan **out, fy_error *err);
/* Appends an event (its `after` array and places are copied; id is set to the index).
 * Returns the new event's index, or a negative status. */
long fy_plan_add(fy_plan *plan, const fy_event *ev, fy_error *err);
void fy_plan_set_arena(fy_plan *plan, fy_tier tier, uint64_t bytes);
/* A free-form provenance note written as `policy:` (the planner records the policy name). */
int fy_plan_set_policy_name(fy_plan *plan, const char *name, fy_error *err);

/* Writes the plan as YAML, one event per line, in the design's format. graph_file is what
 * the plan records as `graph: {file}` (relative to the plan's folder); the graph's sha256 is
 * recorded with it. */
int fy_plan_save(const fy_plan *plan, const char *path, const char *graph_file, fy_error *err);

const fy_graph *fy_plan_graph(const fy_plan *plan);
/* The plan's machine: the default, overlaid with the plan's `machine:` section. */
const fy_machine *fy_plan_machine(const fy_plan *plan);
uint64_t fy_plan_arena(const fy_plan *plan, fy_tier tier);
size_t fy_plan_event_count(const fy_plan *plan);
const fy_event *fy_plan_event(const fy_plan *plan, size_t index);
/* The file the plan was loaded from, or NULL. */
const char *fy_plan_path(const fy_plan *plan);
const char *fy_plan_policy_name(const fy_plan *plan); /* NULL when none */

#ifdef __cplusplus
}
#endif
#endif
