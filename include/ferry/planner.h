/* ferry/planner.h — turns a graph, a machine and a policy into a plan (`ferry plan`).
 *
 * Example:
 *     fy_machine m;
 *     fy_machine_default(&m);
 *     m.capacity[FY_TIER_GPU] = 8ull << 30;
 *     fy_plan *plan;
 *     fy_plan_stats stats;
 *     if (fy_plan_make(graph, &m, policy, &plan, &stats, &err) < 0) {
 *         report(&err);            // FY_EINFEASIBLE: "gpu 1GiB is too small: op ... needs ..."
 *         return;
 *     }
 *     printf("moved %llu bytes, gpu arena/peak %.3f\n", stats.bytes_total,
 *            stats.tier[FY_TIER_GPU].ratio);
 *     fy_plan_save(plan, "plan.yaml", "graph.yaml", &err);
 *     fy_plan_destroy(plan);
 *
 * What a plan guarantees (ferry check verifies it): ops in graph order, every read up to
 * date on the op's device when it runs, no copy evicted while an event may still use it, the
 * only up-to-date copy of a tensor still needed never dropped (offloaded first), outputs on
 * host at the end (offloaded right after their last writer), weights and optimizer states an
 * op updated written back to host (or nvme) after their last use, every copy at an arena
 * offset whose previous occupant's evict is ordered before it, and live bytes and arenas
 * within the machine's capacities. Every `after` holds only what the event needs: the event
 * that placed each copy it reads, the readers of a copy it overwrites or evicts (the last one
 * per stream), and the evicts of the previous occupants of its arena bytes.
 *
 * Offsets are aligned to FY_PLAN_ALIGN_GPU on the gpu and FY_PLAN_ALIGN_HOST on host and nvme
 * (O_DIRECT and pinned copies need whole pages); sizes are rounded up likewise when the
 * planner counts memory, so live bytes as the checker counts them never exceed the budget.
 * The plan borrows graph (it must outlive the plan); machine and policy may go after the call.
 */
#ifndef FERRY_PLANNER_H
#define FERRY_PLANNER_H

#include "ferry/core.h"
#include "ferry/graph.h"
#include "ferry/plan.h"
#include "ferry/policy.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FY_PLAN_ALIGN_GPU 256u
#define FY_PLAN_ALIGN_HOST 4096u

/* Links, indexed by fy_plan_link. */
typedef enum fy_plan_link {
    FY_LINK_NVME_HOST = 0, /* load nvme->host (reads a source file or a spill) */
    FY_LINK_HOST_GPU,      /* load host->gpu */
    FY_LINK_GPU_HOST,      /* offload gpu->host */
    FY_LINK_HOST_NVME,     /* offload host->nvme (spill) */
} fy_plan_link;
#define FY_LINK_COUNT 4
const char *fy_plan_link_name(fy_plan_link link); /* "nvme->host", ... */

typedef struct fy_plan_tier_stats {
    uint64_t peak;   /* most live arena bytes at once, in plan order (as the checker counts) */
    uint64_t arena;  /* the arena's size: the end of the highest placed copy */
    uint64_t budget; /* the budget the final planning pass worked to (<= capacity) */
    double ratio;    /* arena / peak (1.0 when both are 0) */
} fy_plan_tier_stats;

typedef struct fy_plan_stats {
    size_t events;
    size_t count_by_kind[4]; /* indexed by fy_event_kind */
    uint64_t bytes[FY_LINK_COUNT];
    uint64_t bytes_total;
    uint64_t transfers[FY_LINK_COUNT];
    fy_plan_tier_stats tier[FY_TIER_COUNT];
    /* Planning passes: always 1 now that copies are placed online within the budget (kept
     * for callers that print it). */
    unsigned passes;
    double seconds; /* wall-clock time fy_plan_make took */
    /* Notes for people (the policy hooks' log), one per line, malloc'ed;
     * NULL when none. Free with fy_plan_stats_free. */
    char *log;
} fy_plan_stats;

void fy_plan_stats_free(fy_plan_stats *stats);

/* Plans graph on machine under policy (NULL: the default knobs). On success *out is a new
 * plan whose policy name is recorded, and stats (may be NULL) is filled. Errors:
 * FY_EINFEASIBLE when the budgets are too small, saying how much is needed and why;
 * FY_EUNSUPPORTED when the policy names a Lua script but no hooks are attached;
 * a hook's own status (FY_ESCRIPT) when a hook fails or its answer is refused; FY_ENOMEM. */
int fy_plan_make(const fy_graph *graph, const fy_machine *machine, const fy_policy *policy,
                 fy_plan **out, fy_plan_stats *stats, fy_error *err);

/* ---- the knob search (`ferry plan --search`; planner/search.c) --------------------- */

/* One policy the search tried: its knobs (strings borrowed from the base policy), and what
 * planning and simulating it gave. */
typedef struct fy_search_candidate {
    fy_policy_knobs knobs;
    bool feasible;  /* planned, simulated, and every arena within its tier's capacity */
    char *reason;   /* when not feasible: why (the planner's message), malloc'ed */
    double total_s; /* predicted time (fy_simulate) */
    uint64_t bytes_moved;
    uint64_t peak[FY_TIER_COUNT];
    uint64_t arena[FY_TIER_COUNT];
} fy_search_candidate;

typedef struct fy_search_result {
    fy_search_candidate *candidates; /* in the order tried; candidates[0] is the base */
    size_t count;
    long chosen; /* index of the chosen candidate, or -1 when none was feasible */
    char *why;   /* one line saying why it was chosen, malloc'ed */
    char *label; /* the chosen knobs in short ("prefetch 2, belady"), malloc'ed */
} fy_search_result;

/* The most candidates one search plans (the base included). */
#define FY_SEARCH_MAX_CANDIDATES 64

/* Searches base's knobs (NULL: the defaults) by coordinate descent: the base first, then,
 * round after round, each knob over its range with the others held at the best so far,
 * until a round improves nothing or FY_SEARCH_MAX_CANDIDATES were planned. Ranges: prefetch
 * 0,1,2,4; evict belady, lru, fifo, after-last-use; staging buffers 1,2,4 (only when a
 * tensor rests on nvme); activation offload off or to host at idle 2,4,8 (only when the graph
 * has gradients). Each candidate is planned (an infeasible one is recorded with its reason,
 * not an error) and simulated on machine; the best is the least predicted time whose arenas
 * fit the capacities, ties broken by fewer bytes moved. On success *best (may be NULL) is
 * its plan, with the policy note "search: KNOBS". A policy with a Lua script or hooks is
 * refused with FY_EUNSUPPORTED (its hooks could not follow the knobs); none feasible is
 * FY_EINFEASIBLE with the base's reason (out is still filled). Free out with
 * fy_search_result_free. */
int fy_plan_search(const fy_graph *graph, const fy_machine *machine, const fy_policy *base,
                   fy_search_result *out, fy_plan **best, fy_error *err);
void fy_search_result_free(fy_search_result *result);
/* The candidates as a table for people, then the choice; malloc'ed, NULL when out of
 * memory. */
char *fy_search_format(const fy_search_result *result);

#ifdef __cplusplus
}
#endif
#endif
