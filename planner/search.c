/* The knob search behind `ferry plan --search`: plans the graph under variations of a base
 * policy's knobs, simulates each plan, and keeps the one with the least predicted time whose
 * arenas fit the capacities (ties: fewer bytes moved). It is a coordinate descent over small
 * fixed ranges, bounded by FY_SEARCH_MAX_CANDIDATES plans; every candidate tried is recorded,
 * an infeasible one with the planner's reason, and no knob combination is planned twice. */
#include "ferry/planner.h"
#include "ferry/simulate.h"

#include "core/buf.h"

#include <stdlib.h>
#include <string.h>

/* One knob the search varies: how many values it takes, and how to set the i-th. */
typedef struct search_dim {
    const char *name;
    size_t count;
    void (*set)(fy_policy_knobs *k, size_t i);
} search_dim;

static const unsigned prefetch_values[] = {0, 1, 2, 4};
static const unsigned staging_values[] = {1, 2, 4};
static const unsigned idle_values[] = {0, 2, 4, 8}; /* 0: activation offload off */

static void set_prefetch(fy_policy_knobs *k, size_t i)
{
    k->prefetch = prefetch_values[i];
}
static void set_evict(fy_policy_knobs *k, size_t i)
{
    k->evict = (fy_evict_rule)i;
}
static void set_staging(fy_policy_knobs *k, size_t i)
{
    k->staging_buffers = staging_values[i];
}
static void set_activations(fy_policy_knobs *k, size_t i)
{
    k->activations_offload = idle_values[i] ? FY_TIER_HOST : FY_TIER_NONE;
    k->activations_idle = idle_values[i];
}

/* Two knob sets plan alike when every knob the search varies is equal (the rest are the
 * base's in both). */
static bool knobs_same(const fy_policy_knobs *a, const fy_policy_knobs *b)
{
    bool act_a = a->activations_offload != FY_TIER_NONE,
         act_b = b->activations_offload != FY_TIER_NONE;
    return a->prefetch == b->prefetch && a->evict == b->evict &&
           a->staging_buffers == b->staging_buffers && act_a == act_b &&
           (!act_a || (a->activations_offload == b->activations_offload &&
                       a->activations_idle == b->activations_idle));
}

static char *knobs_label(const fy_policy_knobs *k)
{
    fy_buf b = {0};
    fy_buf_printf(&b, "prefetch %u, %s", k->prefetch, fy_evict_rule_name(k->evict));
    if (k->load == FY_LOAD_EAGER) fy_buf_puts(&b, ", eager");
    if (k->staging_buffers) fy_buf_printf(&b, ", staging %u", k->staging_buffers);
    if (k->activations_offload != FY_TIER_NONE)
        fy_buf_printf(&b, ", activations %s idle %u", fy_tier_name(k->activations_offload),
                      k->activations_idle);
    if (b.failed) {
        fy_buf_free(&b);
        return NULL;
    }
    return b.data;
}

/* Times equal but for rounding in the simulator's sums count as a tie. */
static bool same_time(double a, double b)
{
    double m = a > b ? a : b;
    return a - b <= 1e-9 * m && b - a <= 1e-9 * m;
}

/* Is a better than b? Feasible beats infeasible; then less time, then fewer bytes. */
static bool better(const fy_search_candidate *a, const fy_search_candidate *b)
{
    if (a->feasible != b->feasible) return a->feasible;
    if (!a->feasible) return false;
    if (!same_time(a->total_s, b->total_s)) return a->total_s < b->total_s;
    return a->bytes_moved < b->bytes_moved;
}

typedef struct search_state {
    const fy_graph *graph;
    const fy_machine *machine;
    const fy_policy *base;
    fy_search_result *out;
    fy_plan *best_plan;
} search_state;

/* Plans and simulates one knob set, appending it to the result. Returns the candidate's
 * index, or a negative status for failures that are not the candidate's (out of memory). */
static long try_knobs(search_state *s, const fy_policy_knobs *k, fy_error *err)
{
    fy_search_result *r = s->out;
    for (size_t i = 0; i < r->count; i++)
        if (knobs_same(&r->candidates[i].knobs, k)) return (long)i;
    fy_search_candidate *grown = realloc(r->candidates, (r->count + 1) * sizeof *grown);
    if (!grown) return fy_error_set(err, FY_ENOMEM, "out of memory");
    r->candidates = grown;
    fy_search_candidate *c = &r->candidates[r->count];
    memset(c, 0, sizeof *c);
    c->knobs = *k;
    long index = (long)r->count++;

    fy_error perr = {0};
    fy_policy *policy = NULL;
    fy_plan *plan = NULL;
    fy_plan_stats stats = {0};
    fy_sim *sim = NULL;
    int rc = fy_policy_create(s->base ? fy_policy_name(s->base) : "default", k, &policy, &perr);
    if (rc == 0) rc = fy_plan_make(s->graph, s->machine, policy, &plan, &stats, &perr);
    if (rc == 0) rc = fy_simulate(plan, s->machine, NULL, &sim, &perr);
    fy_policy_destroy(policy);
    if (rc == FY_ENOMEM) {
        fy_plan_stats_free(&stats);
        fy_plan_destroy(plan);
        *err = perr;
        return rc;
    }
    if (rc < 0) {
        /* The planner's refusal (too small a budget, most often) is this candidate's result. */
        fy_buf b = {0};
        if (rc != FY_EINFEASIBLE) fy_buf_printf(&b, "%s: ", fy_status_name(rc));
        fy_buf_puts(&b, perr.message);
        c->reason = b.data ? b.data : strdup("");
    } else {
        const fy_sim_summary *sum = fy_sim_summary_get(sim);
        c->total_s = sum->total_s;
        c->bytes_moved = stats.bytes_total;
        c->feasible = true;
        for (int t = 0; t < FY_TIER_COUNT; t++) {
            c->peak[t] = sum->tier[t].peak;
            c->arena[t] = sum->tier[t].arena;
            if (c->feasible && c->arena[t] > s->machine->capacity[t]) {
                char a[32], cap[32];
                fy_buf b = {0};
                fy_buf_printf(&b, "%s arena %s exceeds its capacity %s", fy_tier_name((fy_tier)t),
                              fy_size_format_human(c->arena[t], a, sizeof a),
                              fy_size_format_human(s->machine->capacity[t], cap, sizeof cap));
                c->reason = b.data;
                c->feasible = false;
            }
        }
        if (c->feasible && (r->chosen < 0 || better(c, &r->candidates[r->chosen]))) {
            r->chosen = index;
            fy_plan_destroy(s->best_plan);
            s->best_plan = plan;
            plan = NULL;
        }
    }
    fy_sim_destroy(sim);
    fy_plan_stats_free(&stats);
    fy_plan_destroy(plan);
    if (rc >= 0 && !c->feasible && !c->reason) return fy_error_set(err, FY_ENOMEM, "out of memory");
    return index;
}

static bool graph_has(const fy_graph *g, bool (*pred)(const fy_tensor *t))
{
    for (size_t i = 0; i < fy_graph_tensor_count(g); i++)
        if (pred(fy_graph_tensor(g, i))) return true;
    return false;
}
static bool on_nvme(const fy_tensor *t)
{
    return t->home == FY_TIER_NVME;
}
static bool is_gradient(const fy_tensor *t)
{
    return t->kind == FY_TENSOR_GRADIENT;
}

/* The line saying why the chosen candidate won. */
static char *why_chosen(const fy_search_result *r)
{
    const fy_search_candidate *c = &r->candidates[r->chosen], *base = &r->candidates[0];
    size_t feasible = 0, tied = 0;
    for (size_t i = 0; i < r->count; i++) {
        if (!r->candidates[i].feasible) continue;
        feasible++;
        if ((long)i != r->chosen && same_time(r->candidates[i].total_s, c->total_s)) tied++;
    }
    fy_buf b = {0};
    fy_buf_printf(&b, "least predicted time (%.6g s) of %zu feasible candidate%s", c->total_s,
                  feasible, feasible == 1 ? "" : "s");
    if (tied)
        fy_buf_printf(&b, "; of the %zu tied on time, the fewest bytes moved (first tried)",
                      tied + 1);
    if (r->chosen == 0)
        fy_buf_puts(&b, "; the base knobs");
    else if (base->feasible && base->total_s > 0)
        fy_buf_printf(&b, "; %.1f%% faster than the base knobs (%.6g s)",
                      100.0 * (base->total_s - c->total_s) / base->total_s, base->total_s);
    else if (!base->feasible)
        fy_buf_puts(&b, "; the base knobs are infeasible");
    return b.failed ? (fy_buf_free(&b), NULL) : b.data;
}

int fy_plan_search(const fy_graph *graph, const fy_machine *machine, const fy_policy *base,
                   fy_search_result *out, fy_plan **best, fy_error *err)
{
    memset(out, 0, sizeof *out);
    out->chosen = -1;
    if (best) *best = NULL;
    fy_policy_knobs defaults;
    fy_policy_knobs_default(&defaults);
    const fy_policy_knobs *bk = base ? fy_policy_get_knobs(base) : &defaults;
    if (base && (bk->lua || fy_policy_get_hooks(base)))
        return fy_error_set(err, FY_EUNSUPPORTED,
                            "policy '%s' has Lua hooks: --search varies knobs only and cannot "
                            "carry the hooks; search a YAML policy instead",
                            fy_policy_name(base));
    search_dim dims[4];
    size_t ndims = 0;
    dims[ndims++] = (search_dim){"prefetch", 4, set_prefetch};
    dims[ndims++] = (search_dim){"evict", FY_EVICT_RULE_COUNT, set_evict};
    if (graph_has(graph, on_nvme)) dims[ndims++] = (search_dim){"staging", 3, set_staging};
    if (graph_has(graph, is_gradient))
        dims[ndims++] = (search_dim){"activations", 4, set_activations};

    search_state s = {.graph = graph, .machine = machine, .base = base, .out = out};
    fy_policy_knobs cur = *bk;
    long rc = try_knobs(&s, &cur, err);
    /* Coordinate descent: each knob over its range around the best so far; a round that
     * moves the best nowhere ends the search. */
    bool improved = true;
    while (rc >= 0 && improved && out->count < FY_SEARCH_MAX_CANDIDATES) {
        improved = false;
        for (size_t d = 0; d < ndims && rc >= 0; d++) {
            for (size_t i = 0; i < dims[d].count && out->count < FY_SEARCH_MAX_CANDIDATES; i++) {
                fy_policy_knobs k = out->chosen >= 0 ? out->candidates[out->chosen].knobs : cur;
                dims[d].set(&k, i);
                long before = out->chosen;
                rc = try_knobs(&s, &k, err);
                if (rc < 0) break;
                if (out->chosen != before) improved = true;
            }
        }
    }
    if (rc < 0) {
        fy_plan_destroy(s.best_plan);
        return (int)rc;
    }
    if (out->chosen < 0)
        return fy_error_set(err, FY_EINFEASIBLE, "no candidate of %zu fits: %s", out->count,
                            out->candidates[0].reason);
    const fy_search_candidate *c = &out->candidates[out->chosen];
    out->label = knobs_label(&c->knobs);
    out->why = why_chosen(out);
    int st = 0;
    if (!out->label || !out->why) st = fy_error_set(err, FY_ENOMEM, "out of memory");
    if (st == 0) {
        fy_buf note = {0};
        fy_buf_printf(&note, "search: %s", out->label);
        st = note.failed ? fy_error_set(err, FY_ENOMEM, "out of memory")
                         : fy_plan_set_policy_name(s.best_plan, note.data, err);
        fy_buf_free(&note);
    }
    if (st < 0 || !best)
        fy_plan_destroy(s.best_plan);
    else
        *best = s.best_plan;
    return st;
}

void fy_search_result_free(fy_search_result *result)
{
    if (!result) return;
    for (size_t i = 0; i < result->count; i++)
        free(result->candidates[i].reason);
    free(result->candidates);
    free(result->why);
    free(result->label);
    memset(result, 0, sizeof *result);
    result->chosen = -1;
}

char *fy_search_format(const fy_search_result *r)
{
    fy_buf b = {0};
    char sz[4][32];
    fy_buf_printf(&b, "  %-3s %-8s %-14s %-7s %-11s %12s %10s %10s %10s\n", "#", "prefetch",
                  "evict", "staging", "activations", "time (s)", "moved", "gpu peak", "host peak");
    for (size_t i = 0; i < r->count; i++) {
        const fy_search_candidate *c = &r->candidates[i];
        const fy_policy_knobs *k = &c->knobs;
        char act[32] = "off";
        if (k->activations_offload != FY_TIER_NONE)
            snprintf(act, sizeof act, "%s/%u", fy_tier_name(k->activations_offload),
                     k->activations_idle);
        char staging[16] = "-";
        if (k->staging_buffers) snprintf(staging, sizeof staging, "%u", k->staging_buffers);
        fy_buf_printf(&b, "%s %-3zu %-8u %-14s %-7s %-11s ", (long)i == r->chosen ? "*" : " ", i,
                      k->prefetch, fy_evict_rule_name(k->evict), staging, act);
        if (c->feasible)
            fy_buf_printf(&b, "%12.6g %10s %10s %10s\n", c->total_s,
                          fy_size_format_human(c->bytes_moved, sz[0], sizeof sz[0]),
                          fy_size_format_human(c->peak[FY_TIER_GPU], sz[1], sizeof sz[1]),
                          fy_size_format_human(c->peak[FY_TIER_HOST], sz[2], sizeof sz[2]));
        else
            fy_buf_printf(&b, "infeasible: %s\n", c->reason ? c->reason : "?");
    }
    if (r->chosen >= 0)
        fy_buf_printf(&b, "chosen #%ld (%s): %s\n", r->chosen, r->label ? r->label : "",
                      r->why ? r->why : "");
    else
        fy_buf_puts(&b, "chosen: none (no candidate fits)\n");
    if (b.failed) {
        fy_buf_free(&b);
        return NULL;
    }
    return b.data;
}
