/* plans/plan_gen.h — a simple, always-valid plan for any graph (library-internal; the
 * checker's mutation tests and benchmark use it, and it shows what a correct plan looks
 * like). It is not the planner: no cost model, no policy, only just-in-time loads, eviction
 * of whatever is not used again within a window of ops, offloads that keep every needed
 * version, and arena slots reused by size behind `after` edges on the evicts that freed
 * them. The plan it makes checks clean; that is what the tests rely on.
 *
 *     fy_plan_gen_params p = {.window = 2, .spill_updates = true};
 *     rc = fy_plan_generate(graph, NULL, &p, &plan, &err);
 */
#ifndef FERRY_PLANS_PLAN_GEN_H
#define FERRY_PLANS_PLAN_GEN_H

#include "ferry/plan.h"

typedef struct fy_plan_gen_params {
    unsigned window;    /* keep a copy on a device while its next use is at most this many
                           ops ahead (0 counts as 1) */
    bool spill_updates; /* send tensors an op updates in place (trained weights) down to
                           nvme afterwards, as an offloading trainer does */
} fy_plan_gen_params;

/* Builds the plan over graph (borrowed: it must outlive the plan) for machine (NULL: the
 * default); the arenas are set to the high-water marks the plan reaches. */
int fy_plan_generate(const fy_graph *graph, const fy_machine *machine,
                     const fy_plan_gen_params *params, fy_plan **out, fy_error *err);

#endif
