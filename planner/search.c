/* Policy search (`ferry plan --search`): plans the graph under variations of the base
 * policy's knobs, predicts each plan's time with the simulator, and keeps the fastest plan
 * that fits the machine — FlexGen's policy search and nntrainer's adaptive window, done on
 * plans. Coordinate descent: one knob at a time over its range with the others at the best
 * so far, rounds until nothing improves; a knob setting is never planned twice. */
#include "ferry/planner.h"
#include "ferry/simulate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { KNOB_PREFETCH, KNOB_EVICT, KNOB_STAGING, KNOB_ACTIVATIONS, KNOB_COUNT };

static const unsigned prefetch_values[] = {0, 1, 2, 4, 8};
static const unsigned staging_values[] = {0, 1, 2, 4};
static const unsigned idle_values[] = {0, 1, 2, 4, 8}; /* 0: no activation offload */
#define ROUNDS_MAX 4

typedef struct search {
    const fy_graph *g;
    const fy_machine *m;
    const char *name;
    fy_search_result *res;
    size_t cap;
    fy_plan *best_plan;
} search;

static size_t value_count(int knob)
{
    switch (knob) {
    case KNOB_PREFETCH:
        return sizeof prefetch_values / sizeof *prefetch_values;
    case KNOB_EVICT:
        return FY_EVICT_RULE_COUNT;
    case KNOB_STAGING:
        return sizeof staging_values / sizeof *staging_values;
    default:
        return sizeof idle_values / sizeof *idle_values;
    }
}

static void set_value(fy_policy_knobs *k, int knob, size_t v)
{
    switch (knob) {
    case KNOB_PREFETCH:
        k->prefetch = prefetch_values[v];
        break;
    case KNOB_EVICT:
        k->evict = (fy_evict_rule)v;
        break;
    case KNOB_STAGING:
        k->staging_buffers = staging_values[v];
        break;
    default:
        k->activations_idle = idle_values[v];
        k->activations_offload = idle_values[v] ? FY_TIER_HOST : FY_TIER_NONE;
    }
}

static bool same_knobs(const fy_policy_knobs *a, const fy_policy_knobs *b)
{
    return a->prefetch == b->prefetch && a->evict == b->evict &&
           a->staging_buffers == b->staging_buffers &&
           a->activations_offload == b->activations_offload &&
           (a->activations_offload == FY_TIER_NONE || a->activations_idle == b->activations_idle);
}

/* Whether try a beats try b: it fits, and is faster (or as fast and moves fewer bytes). */
static bool better(const fy_search_try *a, const fy_search_try *b)
{
    if (!a->fits) return false;
    if (!b || !b->fits) return true;
    double eps = 1e-9 * (b->predicted_s > 1 ? b->predicted_s : 1);
    if (a->predicted_s < b->predicted_s - eps) return true;
    return a->predicted_s <= b->predicted_s + eps && a->bytes_moved < b->bytes_moved;
}

/* Plans and simulates one setting; keeps the plan when it is the best so far. Returns the
 * try's index, or a negative status for what stops the search (out of memory). */
static long try_knobs(search *s, const fy_policy_knobs *k, fy_error *err)
{
    fy_search_result *r = s->res;
    for (size_t i = 0; i < r->count; i++)
        if (same_knobs(&r->tries[i].knobs, k)) return (long)i;
    if (r->count == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 32;
        fy_search_try *t = realloc(r->tries, cap * sizeof *t);
        if (!t) return fy_error_set(err, FY_ENOMEM, "out of memory");
        r->tries = t;
        s->cap = cap;
    }
    fy_search_try *t = &r->tries[r->count];
    memset(t, 0, sizeof *t);
    t->knobs = *k;
    fy_policy *pol = NULL;
    fy_plan *plan = NULL;
    fy_plan_stats stats = {0};
    fy_sim *sim = NULL;
    fy_error e = {0};
    int rc = fy_policy_create(s->name, k, &pol, &e);
    /* a Lua policy's hooks are re-attached to every variation: they stay in force */
    if (rc == 0 && k->lua) rc = fy_policy_attach_lua(pol, &k->lua_limits, &e);
    if (rc == 0) rc = fy_plan_make(s->g, s->m, pol, &plan, &stats, &e);
    if (rc == 0) rc = fy_simulate(plan, s->m, NULL, &sim, &e);
    fy_policy_destroy(pol);
    if (rc == FY_ENOMEM) {
        fy_plan_stats_free(&stats);
        fy_plan_destroy(plan);
        return fy_error_set(err, FY_ENOMEM, "out of memory");
    }
    t->status = rc;
    if (rc < 0) {
        snprintf(t->note, sizeof t->note, "%s", e.message);
    } else {
        const fy_sim_summary *sum = fy_sim_summary_get(sim);
        t->predicted_s = sum->total_s;
        t->stall_s = sum->stall_s;
        t->bytes_moved = stats.bytes_total;
        t->fits = true;
        for (int tier = 0; tier < FY_TIER_COUNT; tier++) {
            t->peak[tier] = sum->tier[tier].peak;
            t->arena[tier] = sum->tier[tier].arena;
            uint64_t cap = s->m->capacity[tier];
            if (t->fits && (t->peak[tier] > cap || t->arena[tier] > cap)) {
                char a[32], b[32];
                t->fits = false;
                snprintf(t->note, sizeof t->note, "%s needs %s of %s", fy_tier_name((fy_tier)tier),
                         fy_size_format_human(t->arena[tier] > t->peak[tier] ? t->arena[tier]
                                                                             : t->peak[tier],
                                              a, sizeof a),
                         fy_size_format_human(cap, b, sizeof b));
            }
        }
    }
    fy_sim_destroy(sim);
    fy_plan_stats_free(&stats);
    long idx = (long)r->count++;
    if (better(t, r->best >= 0 ? &r->tries[r->best] : NULL)) {
        fy_plan_destroy(s->best_plan);
        s->best_plan = plan;
        r->best = idx;
    } else {
        fy_plan_destroy(plan);
    }
    return idx;
}

/* Which knobs can change this graph's plan: staging only with tensors read from nvme, the
 * activation threshold only with activations. */
static bool knob_applies(const fy_graph *g, int knob)
{
    if (knob != KNOB_STAGING && knob != KNOB_ACTIVATIONS) return true;
    for (size_t i = 0; i < fy_graph_tensor_count(g); i++) {
        const fy_tensor *t = fy_graph_tensor(g, i);
        if (knob == KNOB_STAGING && t->home == FY_TIER_NVME) return true;
        if (knob == KNOB_ACTIVATIONS && t->kind == FY_TENSOR_ACTIVATION) return true;
    }
    return false;
}

static void describe(const fy_policy_knobs *k, char *buf, size_t size)
{
    if (k->activations_offload == FY_TIER_NONE)
        snprintf(buf, size, "prefetch %u, evict %s, staging %u, activations off", k->prefetch,
                 fy_evict_rule_name(k->evict), k->staging_buffers);
    else
        snprintf(buf, size, "prefetch %u, evict %s, staging %u, activations to %s at idle %u",
                 k->prefetch, fy_evict_rule_name(k->evict), k->staging_buffers,
                 fy_tier_name(k->activations_offload), k->activations_idle);
}

static void explain(fy_search_result *r)
{
    if (r->best < 0) {
        snprintf(r->why, sizeof r->why, "none of the %zu settings tried gives a plan that fits",
                 r->count);
        return;
    }
    const fy_search_try *b = &r->tries[r->best], *base = &r->tries[0];
    char what[160], t1[32], t0[32];
    describe(&b->knobs, what, sizeof what);
    fy_time_format(b->predicted_s, t1, sizeof t1);
    if (r->best == 0)
        snprintf(r->why, sizeof r->why,
                 "kept the base policy's knobs (%s): %s predicted, the least of %zu settings "
                 "tried",
                 what, t1, r->count);
    else if (base->fits)
        snprintf(r->why, sizeof r->why,
                 "chose try %ld (%s): %s predicted, %.2fx faster than the base policy's %s",
                 r->best + 1, what, t1, b->predicted_s > 0 ? base->predicted_s / b->predicted_s : 1,
                 fy_time_format(base->predicted_s, t0, sizeof t0));
    else
        snprintf(r->why, sizeof r->why,
                 "chose try %ld (%s): %s predicted; the base policy's knobs give no plan that "
                 "fits (%s)",
                 r->best + 1, what, t1, base->note);
}

int fy_plan_search(const fy_graph *graph, const fy_machine *machine, const fy_policy *base,
                   fy_plan **best, fy_search_result *result, fy_error *err)
{
    *best = NULL;
    memset(result, 0, sizeof *result);
    result->best = -1;
    fy_policy_knobs cur;
    if (base)
        cur = *fy_policy_get_knobs(base);
    else
        fy_policy_knobs_default(&cur);
    search s = {
        .g = graph, .m = machine, .name = base ? fy_policy_name(base) : "search", .res = result};
    long rc = try_knobs(&s, &cur, err);
    for (int round = 0; rc >= 0 && round < ROUNDS_MAX; round++) {
        long before = result->best;
        for (int knob = 0; knob < KNOB_COUNT && rc >= 0; knob++) {
            if (!knob_applies(graph, knob)) continue;
            for (size_t v = 0; v < value_count(knob) && rc >= 0; v++) {
                fy_policy_knobs k = result->best >= 0 ? result->tries[result->best].knobs : cur;
                set_value(&k, knob, v);
                rc = try_knobs(&s, &k, err);
            }
        }
        if (result->best == before) break;
    }
    if (rc < 0) {
        fy_plan_destroy(s.best_plan);
        fy_search_result_free(result);
        return (int)rc;
    }
    explain(result);
    if (result->best < 0)
        return fy_error_set(err, FY_EINFEASIBLE, "plan --search: %s (the base policy: %s)",
                            result->why, result->tries[0].note);
    *best = s.best_plan;
    return 0;
}

void fy_search_result_free(fy_search_result *result)
{
    if (!result) return;
    free(result->tries);
    memset(result, 0, sizeof *result);
    result->best = -1;
}
