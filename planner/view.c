/* The view of the planner that hooks see (fy_policy_view): read-only questions about the
 * state, a log, and the two requests after_op may make. Requests go through the same moves
 * as the planner's own decisions, so a hook can waste bandwidth but never break a plan: an
 * evict that would lose the only up-to-date copy of a needed tensor is refused. */
#include "planner/planner_state.h"

#include <string.h>

static long view_next_use(void *state, uint32_t tensor, long op)
{
    planner *pl = state;
    if (tensor >= pl->nt) return -1;
    return pl_next_read(pl, tensor, op + 1 > pl->now ? op + 1 : pl->now);
}

static bool view_resident(void *state, uint32_t tensor, fy_tier tier)
{
    planner *pl = state;
    return tensor < pl->nt && (unsigned)tier < FY_TIER_COUNT && pl->t[tensor].copy[tier] >= 0;
}

static uint64_t view_used(void *state, fy_tier tier)
{
    planner *pl = state;
    return (unsigned)tier < FY_TIER_COUNT ? pl->used[tier] : 0;
}

static uint64_t view_capacity(void *state, fy_tier tier)
{
    planner *pl = state;
    return (unsigned)tier < FY_TIER_COUNT ? pl->budget[tier] : 0;
}

static void view_log(void *state, const char *message)
{
    planner *pl = state;
    fy_buf_printf(&pl->log, "%s\n", message);
}

static int check_request(planner *pl, const char *what, uint32_t tensor, fy_tier tier)
{
    if (!pl->in_after_op)
        return fy_error_set(pl->err, FY_ESTATE, "%s is allowed only in after_op", what);
    if (tensor >= pl->nt) return fy_error_set(pl->err, FY_EINVAL, "%s: unknown tensor", what);
    if ((unsigned)tier >= FY_TIER_COUNT)
        return fy_error_set(pl->err, FY_EINVAL, "%s: unknown tier", what);
    return 0;
}

static int view_offload(void *state, uint32_t tensor, fy_tier tier, fy_error *err)
{
    planner *pl = state;
    fy_error *saved = pl->err;
    pl->err = err;
    int rc = check_request(pl, "offload", tensor, tier);
    const char *name = rc == 0 ? fy_graph_tensor(pl->g, tensor)->name : "";
    if (rc == 0 && tier == FY_TIER_GPU)
        rc = fy_error_set(err, FY_EINVAL, "offload '%s': the destination must be host or nvme",
                          name);
    fy_tier from = tier == FY_TIER_HOST ? FY_TIER_GPU : FY_TIER_HOST;
    if (rc == 0 && pl->t[tensor].copy[tier] < 0) {
        if (pl->t[tensor].copy[from] < 0)
            rc = fy_error_set(err, FY_EINVAL, "offload '%s' to %s: it has no copy on %s", name,
                              fy_tier_name(tier), fy_tier_name(from));
        if (rc == 0)
            rc = pl_make_room(pl, tier, pl_align(tier, fy_graph_tensor(pl->g, tensor)->size), -1,
                              tensor);
        long c = rc == 0 ? pl_transfer(pl, tensor, from, tier, false) : 0;
        rc = c < 0 ? (int)c : rc;
    }
    pl->err = saved;
    return rc;
}

static int view_evict(void *state, uint32_t tensor, fy_tier tier, fy_error *err)
{
    planner *pl = state;
    fy_error *saved = pl->err;
    pl->err = err;
    int rc = check_request(pl, "evict", tensor, tier);
    if (rc == 0 && pl->t[tensor].copy[tier] >= 0) {
        int copies = 0;
        for (int k = 0; k < FY_TIER_COUNT; k++)
            copies += pl->t[tensor].copy[k] >= 0;
        if (copies == 1 && pl_needed(pl, tensor))
            rc = fy_error_set(err, FY_EINVAL,
                              "evict '%s' from %s would lose its only up-to-date copy; offload "
                              "it first",
                              fy_graph_tensor(pl->g, tensor)->name, fy_tier_name(tier));
        else
            rc = pl_evict_copy(pl, (uint32_t)pl->t[tensor].copy[tier]);
    }
    pl->err = saved;
    return rc;
}

void pl_view_init(planner *pl)
{
    pl->view = (fy_policy_view){
        .state = pl,
        .graph = pl->g,
        .next_use = view_next_use,
        .resident = view_resident,
        .used = view_used,
        .capacity = view_capacity,
        .log = view_log,
        .offload = view_offload,
        .evict = view_evict,
    };
}

int pl_blame(planner *pl, const char *hook)
{
    if (pl->err) pl->err->status = FY_ESCRIPT;
    if (pl->hooks && pl->hooks->blame) return pl->hooks->blame(pl->hooks->ctx, hook, pl->err);
    return FY_ESCRIPT;
}
