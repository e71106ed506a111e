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

/* ---- policy search (`ferry plan --search`) ------------------------------------------ */

/* One policy tried: its knobs (strings borrowed from the base policy), and the plan's
 * predicted time (fy_simulate) and peaks, or why there was no plan. */
typedef struct fy_search_try {
    fy_policy_knobs knobs;
    int status;         /* 0, or the planner's FY_E* (FY_EINFEASIBLE: no plan fits) */
    bool fits;          /* planned, and every arena and peak within the machine's capacity */
    double predicted_s; /* the simulator's total time */
    double stall_s;     /* compute stalls */
    uint64_t bytes_moved;
    uint64_t peak[FY_TIER_COUNT];
    uint64_t arena[FY_TIER_COUNT];
    char note[200]; /* why it does not fit or failed; "" */
} fy_search_try;

typedef struct fy_search_result {
    fy_search_try *tries; /* in the order tried; tries[0] is the base policy's knobs */
    size_t count;
    long best;     /* index of the chosen try, -1 when none fits */
    char why[512]; /* the choice in a sentence, for people */
} fy_search_result;

/* Searches the base policy's knobs (NULL: the defaults) for the plan with the least predicted
 * time that fits the machine: coordinate descent from the base over prefetch (0 1 2 4 8),
 * evict (belady lru fifo after-last-use), staging buffers (0 1 2 4) and the activation
 * offload threshold (off; host at idle 1 2 4 8), repeated until a round changes nothing.
 * Ties go to fewer bytes moved, then to the earlier try. *best is the chosen plan (NULL when
 * none fits, with FY_EINFEASIBLE); result lists every try (fy_search_result_free). */
int fy_plan_search(const fy_graph *graph, const fy_machine *machine, const fy_policy *base,
                   fy_plan **best, fy_search_result *result, fy_error *err);
void fy_search_result_free(fy_search_result *result);

#ifdef __cplusplus
}
#endif
#endif
