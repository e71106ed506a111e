/* fy_plan_make: checks that every op fits its device at all, plans in one pass (schedule.c,
 * placing copies in the arenas online, place.c, so an arena never exceeds its tier's
 * budget), repacks an arena offline where that makes it smaller (pack.c). Then it builds
 * the plan, trimming each event's `after` to what stream order does not already imply, and
 * measures it: bytes per link, and the live peak and arena of each tier. */
#include "planner/planner_state.h"
#include "core/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const link_names[] = {"nvme->host", "host->gpu", "gpu->host", "host->nvme"};

const char *fy_plan_link_name(fy_plan_link link)
{
    return (unsigned)link < FY_LINK_COUNT ? link_names[link] : "unknown";
}

void fy_plan_stats_free(fy_plan_stats *stats)
{
    if (!stats) return;
    free(stats->log);
    stats->log = NULL;
}

static int cmp_u64_desc(const void *x, const void *y)
{
    const uint64_t *a = x, *b = y;
    return a[0] < b[0] ? 1 : a[0] > b[0] ? -1 : (a[1] > b[1]) - (a[1] < b[1]);
}

/* No plan exists when one op's operands alone exceed its device. */
static int check_working_sets(const fy_graph *g, const uint64_t *budget, const uint64_t *capacity,
                              fy_error *err)
{
    size_t nops = fy_graph_op_count(g);
    for (size_t i = 0; i < nops; i++) {
        const fy_op *op = fy_graph_op(g, i);
        fy_tier dev = op->device;
        uint32_t n = op->read_count + op->write_count;
        uint64_t *pairs = malloc((n + 1) * 2 * sizeof *pairs);
        if (!pairs) return fy_error_set(err, FY_ENOMEM, "out of memory");
        uint32_t k = 0;
        uint64_t total = 0;
        for (uint32_t j = 0; j < n; j++) {
            uint32_t t = j < op->read_count ? op->reads[j] : op->writes[j - op->read_count];
            bool dup = false;
            for (uint32_t q = 0; q < k && !dup; q++)
                dup = pairs[2 * q + 1] == t;
            if (dup) continue;
            pairs[2 * k] = pl_align(dev, fy_graph_tensor(g, t)->size);
            pairs[2 * k + 1] = t;
            total += pairs[2 * k];
            k++;
        }
        if (total <= budget[dev]) {
            free(pairs);
            continue;
        }
        qsort(pairs, k, 2 * sizeof *pairs, cmp_u64_desc);
        fy_buf b = {0};
        char s1[32], s2[32];
        fy_buf_printf(&b, "%s %s is too small: op '%s' alone needs %s (", fy_tier_name(dev),
                      fy_size_format_human(capacity[dev], s1, sizeof s1), op->name,
                      fy_size_format_human(total, s2, sizeof s2));
        for (uint32_t q = 0; q < k && q < 4; q++)
            fy_buf_printf(&b, "%s%s %s", q ? ", " : "",
                          fy_graph_tensor(g, (size_t)pairs[2 * q + 1])->name,
                          fy_size_format_human(fy_graph_tensor(g, (size_t)pairs[2 * q + 1])->size,
                                               s1, sizeof s1));
        fy_buf_printf(&b, "%s)", k > 4 ? ", ..." : "");
        if (budget[dev] < capacity[dev])
            fy_buf_printf(&b, "; %s of it is left after the staging buffers",
                          fy_size_format_human(budget[dev], s1, sizeof s1));
        int rc = fy_error_set(err, FY_EINFEASIBLE, "%s", b.failed ? "no plan fits" : b.data);
        fy_buf_free(&b);
        free(pairs);
        return rc;
    }
    return 0;
}

/* The staging buffers' size: the largest tensor that may be read from nvme on its way to the
 * gpu (weights with a source file; activations too when they are offloaded to nvme). */
static uint64_t staging_size(const fy_graph *g, const fy_policy_knobs *k, long *which)
{
    uint64_t best = 0;
    *which = -1;
    for (size_t t = 0; t < fy_graph_tensor_count(g); t++) {
        const fy_tensor *d = fy_graph_tensor(g, t);
        bool from_nvme = d->home == FY_TIER_NVME || (k->activations_offload == FY_TIER_NVME &&
                                                     d->kind == FY_TENSOR_ACTIVATION);
        uint64_t s = pl_align(FY_TIER_HOST, d->size);
        if (from_nvme && s > best) {
            best = s;
            *which = (long)t;
        }
    }
    return best;
}

static int cmp_u32(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return (a > b) - (a < b);
}

/* Vector clocks over the four streams: c[e][s] is the latest event of stream s that happens
 * before e (or is e), PL_NONE when none. They let trim_after drop a dependency that another
 * one, or the event's own stream predecessor, already implies. */
#define PL_STREAMS 4
typedef struct clocks {
    uint32_t (*c)[PL_STREAMS];
    uint32_t last[PL_STREAMS]; /* latest event seen on each stream */
} clocks;

static int stream_of(const pl_event *e)
{
    switch ((pl_queue)e->queue) {
    case PL_Q_H2D:
        return 0;
    case PL_Q_D2H:
        return 1;
    case PL_Q_GPU:
        return 2;
    case PL_Q_HOST:
        return 3;
    default:
        return -1;
    }
}

static bool implied(const planner *pl, const clocks *ck, uint32_t by, uint32_t d)
{
    int s = stream_of(&pl->ev[d]);
    if (s >= 0) return ck->c[by][s] != PL_NONE && ck->c[by][s] >= d;
    /* io and evicts are on no stream: only a direct edge of `by` is known to imply d. */
    const pl_ids *a = &pl->ev[by].after;
    for (uint32_t i = 0; i < a->n; i++)
        if (a->v[i] == d) return true;
    return false;
}

/* Sorts and dedups e's dependencies, drops those implied by another one or by stream order
 * (so `after` is minimal for what it can tell), and updates the clocks. */
static void trim_after(planner *pl, clocks *ck, uint32_t e)
{
    pl_ids *a = &pl->ev[e].after;
    if (a->n > 1) qsort(a->v, a->n, sizeof *a->v, cmp_u32);
    uint32_t n = 0;
    for (uint32_t i = 0; i < a->n; i++)
        if (n == 0 || a->v[n - 1] != a->v[i]) a->v[n++] = a->v[i];
    int s = stream_of(&pl->ev[e]);
    uint32_t prev = s >= 0 ? ck->last[s] : PL_NONE;
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t d = a->v[i];
        bool drop = prev != PL_NONE && (d == prev || implied(pl, ck, prev, d));
        for (uint32_t j = 0; j < n && !drop; j++)
            drop = j != i && implied(pl, ck, a->v[j], d);
        if (!drop) a->v[m++] = d;
    }
    a->n = m;
    for (int q = 0; q < PL_STREAMS; q++)
        ck->c[e][q] = prev != PL_NONE ? ck->c[prev][q] : PL_NONE;
    for (uint32_t i = 0; i < m; i++)
        for (int q = 0; q < PL_STREAMS; q++) {
            uint32_t v = ck->c[a->v[i]][q];
            if (v != PL_NONE && (ck->c[e][q] == PL_NONE || v > ck->c[e][q])) ck->c[e][q] = v;
        }
    if (s >= 0) {
        ck->c[e][s] = e;
        ck->last[s] = e;
    }
}

static int build_plan(planner *pl, const fy_machine *machine, const uint64_t *arena, fy_plan **out,
                      fy_error *err)
{
    fy_plan *plan;
    int rc = fy_plan_create(pl->g, machine, &plan, err);
    if (rc < 0) return rc;
    for (int t = 0; t < FY_TIER_COUNT; t++)
        fy_plan_set_arena(plan, (fy_tier)t, arena[t]);
    rc = fy_plan_set_policy_name(plan, fy_policy_name(pl->policy), err);
    size_t max_places = 1;
    for (size_t i = 0; i < pl->nev; i++) {
        if (pl->ev[i].places.n > max_places) max_places = pl->ev[i].places.n;
    }
    fy_placement *places = malloc(max_places * sizeof *places);
    clocks ck = {.c = malloc((pl->nev + 1) * sizeof *ck.c)};
    for (int q = 0; q < PL_STREAMS; q++)
        ck.last[q] = PL_NONE;
    if (!ck.c || !places) rc = fy_error_set(err, FY_ENOMEM, "out of memory");
    for (size_t i = 0; i < pl->nev && rc == 0; i++) {
        const pl_event *e = &pl->ev[i];
        fy_event ev = {.kind = (fy_event_kind)e->kind,
                       .tensor = e->tensor,
                       .op = e->op,
                       .from = (fy_tier)e->from,
                       .to = (fy_tier)e->to};
        if (e->kind == FY_EVENT_COMPUTE) {
            ev.ref = fy_graph_op(pl->g, (size_t)e->op)->name;
            for (uint32_t p = 0; p < e->places.n; p++) {
                const pl_copy *c = &pl->cp[e->places.v[p]];
                places[p] = (fy_placement){.tensor = (int32_t)c->tensor,
                                           .name = fy_graph_tensor(pl->g, c->tensor)->name,
                                           .offset = c->offset};
            }
            ev.places = places;
            ev.place_count = e->places.n;
        } else {
            ev.ref = fy_graph_tensor(pl->g, (size_t)e->tensor)->name;
            if (e->kind != FY_EVENT_EVICT) ev.at = pl->cp[e->copy].offset;
        }
        trim_after(pl, &ck, (uint32_t)i);
        ev.after_count = e->after.n;
        ev.after = e->after.v;
        long id = fy_plan_add(plan, &ev, err);
        if (id < 0) rc = (int)id;
    }
    free(ck.c);
    free(places);
    if (rc < 0) {
        fy_plan_destroy(plan);
        return rc;
    }
    *out = plan;
    return 0;
}

static void measure(const planner *pl, const uint64_t *arena, fy_plan_stats *s)
{
    uint64_t live[FY_TIER_COUNT] = {0};
    s->events = pl->nev;
    for (size_t i = 0; i < pl->nev; i++) {
        const pl_event *e = &pl->ev[i];
        s->count_by_kind[e->kind]++;
        if (e->kind == FY_EVENT_LOAD || e->kind == FY_EVENT_OFFLOAD) {
            uint64_t size = fy_graph_tensor(pl->g, (size_t)e->tensor)->size;
            fy_plan_link l = e->from == FY_TIER_NVME  ? FY_LINK_NVME_HOST
                             : e->to == FY_TIER_GPU   ? FY_LINK_HOST_GPU
                             : e->from == FY_TIER_GPU ? FY_LINK_GPU_HOST
                                                      : FY_LINK_HOST_NVME;
            s->bytes[l] += size;
            s->transfers[l]++;
            s->bytes_total += size;
            live[e->to] += size;
        } else if (e->kind == FY_EVENT_COMPUTE) {
            for (uint32_t p = 0; p < e->places.n; p++) {
                const pl_copy *c = &pl->cp[e->places.v[p]];
                live[c->tier] += fy_graph_tensor(pl->g, c->tensor)->size;
            }
        } else if (!pl->cp[e->copy].home) {
            live[e->from] -= fy_graph_tensor(pl->g, (size_t)e->tensor)->size;
        }
        for (int t = 0; t < FY_TIER_COUNT; t++)
            if (live[t] > s->tier[t].peak) s->tier[t].peak = live[t];
    }
    for (int t = 0; t < FY_TIER_COUNT; t++) {
        s->tier[t].arena = arena[t];
        s->tier[t].budget = pl->budget[t];
        s->tier[t].ratio = s->tier[t].peak ? (double)arena[t] / (double)s->tier[t].peak : 1.0;
    }
}

int fy_plan_make(const fy_graph *graph, const fy_machine *machine, const fy_policy *policy,
                 fy_plan **out, fy_plan_stats *stats, fy_error *err)
{
    double t0 = fy_now_s();
    *out = NULL;
    if (stats) memset(stats, 0, sizeof *stats);
    if (!graph || !machine)
        return fy_error_set(err, FY_EINVAL, "fy_plan_make needs a graph and a machine");
    fy_policy *own = NULL;
    if (!policy) {
        fy_policy_knobs k;
        fy_policy_knobs_default(&k);
        int rc = fy_policy_create("default", &k, &own, err);
        if (rc < 0) return rc;
        policy = own;
    }
    const fy_policy_knobs *k = fy_policy_get_knobs(policy);
    const fy_policy_hooks *hooks = fy_policy_get_hooks(policy);
    int rc = 0;
    if (k->lua && !hooks)
        rc = fy_error_set(err, FY_EUNSUPPORTED,
                          "policy '%s' names the Lua script %s, but no Lua runtime attached "
                          "its hooks",
                          fy_policy_name(policy), k->lua);
    uint64_t capacity[FY_TIER_COUNT], budget[FY_TIER_COUNT];
    for (int t = 0; t < FY_TIER_COUNT; t++)
        capacity[t] = budget[t] = machine->capacity[t];
    long largest = -1;
    uint64_t slot = k->staging_buffers ? staging_size(graph, k, &largest) : 0;
    if (rc == 0 && slot) {
        uint64_t need = slot * k->staging_buffers;
        if (need > capacity[FY_TIER_HOST]) {
            char a[32], b[32];
            rc = fy_error_set(err, FY_EINFEASIBLE,
                              "host %s is too small for %u staging buffers of %s (the size of "
                              "'%s', the largest tensor read from nvme)",
                              fy_size_format_human(capacity[FY_TIER_HOST], a, sizeof a),
                              k->staging_buffers, fy_size_format_human(slot, b, sizeof b),
                              fy_graph_tensor(graph, (size_t)largest)->name);
        }
        budget[FY_TIER_HOST] -= rc == 0 ? need : 0;
    }
    if (rc == 0) rc = check_working_sets(graph, budget, capacity, err);
    planner pl;
    memset(&pl, 0, sizeof pl);
    uint64_t arena[FY_TIER_COUNT] = {0};
    if (rc == 0) {
        rc = pl_init(&pl, graph, policy, budget, capacity, slot, k->staging_buffers, err);
        pl_view_init(&pl);
        if (rc == 0 && hooks && hooks->begin) rc = hooks->begin(hooks->ctx, &pl.view, err);
        if (rc == 0) rc = pl_schedule(&pl);
        if (hooks && hooks->end) hooks->end(hooks->ctx);
    }
    if (rc == 0) rc = pl_pack(&pl, arena);
    if (rc == 0) rc = build_plan(&pl, machine, arena, out, err);
    if (rc == 0 && stats) {
        measure(&pl, arena, stats);
        stats->passes = 1;
        if (pl.log.len && !pl.log.failed) stats->log = strdup(pl.log.data);
        stats->seconds = fy_now_s() - t0;
    }
    pl_free(&pl);
    fy_policy_destroy(own);
    return rc;
}
