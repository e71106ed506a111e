/* plans/plan_model.h — the plan's layout and the helpers its reader, writer and checker
 * share (library-internal). Events live in one growable array; their `after` lists,
 * placements and unknown names live in a chunked pool whose chunks never move, so the
 * pointers inside an fy_event stay valid while the plan grows. */
#ifndef FERRY_PLAN_MODEL_H
#define FERRY_PLAN_MODEL_H

#include "ferry/plan.h"

#include "core/yaml.h"

typedef struct fy_pool_chunk fy_pool_chunk;

struct fy_plan {
    const fy_graph *graph;
    fy_graph *owned_graph; /* set when the loader loaded the graph itself */
    fy_machine machine;
    uint64_t arena[FY_TIER_COUNT];
    unsigned arena_line[FY_TIER_COUNT]; /* where `arenas:` gives each size; 0 if none */
    unsigned events_line;               /* where `events:` is; 0 when built */
    fy_event *events;
    size_t count, cap;
    fy_pool_chunk *pool;
    char *path;   /* file it was loaded from, or NULL */
    char *policy; /* provenance note, or NULL */
};

/* Allocates size bytes (8-aligned) from the plan's pool; NULL when out of memory. */
void *fy_plan_pool_alloc(fy_plan *plan, size_t size);
/* Copies a string into the pool; NULL when out of memory. */
const char *fy_plan_pool_strdup(fy_plan *plan, const char *text);
/* Appends an event as given (id, line and all), copying after and places into the pool.
 * No checks beyond memory: the reader and fy_plan_add check before calling. */
long fy_plan_append(fy_plan *plan, const fy_event *ev, fy_error *err);
/* An empty plan over graph (borrowed) with the default machine, or NULL (out of memory). */
fy_plan *fy_plan_new(const fy_graph *graph);

/* Reads a machine mapping over m: the top level of a machine file (header included) when
 * file is true, else a plan's `machine:` section. lines, when not NULL, receives the line
 * of each tier's mapping. */
int fy_machine_read(const fy_ydoc *doc, const fy_ynode *map, bool file, fy_machine *m,
                    unsigned lines[FY_TIER_COUNT], fy_error *err);
/* Appends one tier of m as a flow mapping ("{capacity: 80GiB, compute: 700TFLOPS, ...}").
 * With only_changed, a field equal to the default machine's is left out, except the
 * capacity, which is the budget and always written. */
struct fy_buf;
void fy_machine_write_tier(struct fy_buf *b, const fy_machine *m, fy_tier tier, bool only_changed);

#endif
