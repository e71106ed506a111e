/* Making room on a tier: which resident copies may leave (never one the current op needs, a
 * kept or eagerly loaded tensor on the gpu, or an output's final copy on host), in which
 * order the policy takes them, and how one leaves safely: the only up-to-date copy of a
 * tensor still needed is offloaded one tier down before its evict, so no data is lost.
 * When nothing more can leave, the error says which tier, for what, and what holds it. */
#include "planner/planner_state.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cand {
    double key; /* larger leaves first */
    int cls;    /* smaller leaves first */
    uint32_t copy;
} cand;

static int copies_of(const planner *pl, uint32_t t)
{
    int n = 0;
    for (int k = 0; k < FY_TIER_COUNT; k++)
        n += pl->t[t].copy[k] >= 0;
    return n;
}

static bool final_output(const planner *pl, uint32_t t)
{
    const fy_tensor *ts = fy_graph_tensor(pl->g, t);
    uint32_t lw = pl->t[t].last_writer;
    return ts->kind == FY_TENSOR_OUTPUT && (lw == PL_NONE || (long)lw < pl->now);
}

static const char needed_now[] = "needed now";

/* Why copy c may not leave now other than being needed now, or NULL. */
static const char *held_besides_pin(const planner *pl, uint32_t c, long limit)
{
    const pl_copy *cp = &pl->cp[c];
    const pl_tensor *ts = &pl->t[cp->tensor];
    if (cp->tier == FY_TIER_GPU && ts->kept) return "kept by the policy";
    if (cp->tier == FY_TIER_GPU && ts->eager && pl_next_read(pl, cp->tensor, pl->now) >= 0)
        return "loaded eagerly";
    if (cp->tier == FY_TIER_HOST && final_output(pl, cp->tensor)) return "an output";
    if (cp->tier == FY_TIER_NVME && copies_of(pl, cp->tensor) == 1 && pl_needed(pl, cp->tensor))
        return "only copy";
    if (limit >= 0) {
        long nr = pl_next_read(pl, cp->tensor, pl->now);
        if (nr >= 0 && nr <= limit) return "needed sooner";
    }
    return NULL;
}

/* Why copy c may not leave now, or NULL when it may. */
static const char *held_by(const planner *pl, uint32_t c, long limit)
{
    if (pl->t[pl->cp[c].tensor].pin == pl->epoch) return needed_now;
    return held_besides_pin(pl, c, limit);
}

static cand rank(const planner *pl, uint32_t c)
{
    const pl_copy *cp = &pl->cp[c];
    const pl_tensor *ts = &pl->t[cp->tensor];
    cand r = {.copy = c};
    /* On host, a copy that also exists elsewhere goes first: "dropped once on the gpu". */
    r.cls = cp->tier == FY_TIER_HOST && copies_of(pl, cp->tensor) == 1;
    switch (pl->k->evict) {
    case FY_EVICT_LRU: {
        long last = ts->last_use > cp->arrived_op ? ts->last_use : cp->arrived_op;
        r.key = -(double)last;
        break;
    }
    case FY_EVICT_FIFO:
        r.key = -(double)cp->arrived;
        break;
    default: {
        long nr = pl_next_read(pl, cp->tensor, pl->now);
        r.key = nr < 0 ? INFINITY : (double)nr;
        break;
    }
    }
    return r;
}

static bool better(const cand *a, const cand *b)
{
    if (a->cls != b->cls) return a->cls < b->cls;
    if (a->key != b->key) return a->key > b->key;
    return a->copy < b->copy; /* deterministic */
}

static int cmp_cand(const void *x, const void *y)
{
    const cand *a = x, *b = y;
    return better(a, b) ? -1 : better(b, a) ? 1 : 0;
}

int pl_leave(planner *pl, uint32_t t, fy_tier tier)
{
    int32_t c = pl->t[t].copy[tier];
    if (c < 0) return 0;
    if (copies_of(pl, t) == 1 && pl_needed(pl, t)) {
        if (tier == FY_TIER_NVME)
            return fy_error_set(pl->err, FY_EINVAL, "cannot drop the only copy of '%s'",
                                fy_graph_tensor(pl->g, t)->name);
        fy_tier down = tier == FY_TIER_GPU ? FY_TIER_HOST : FY_TIER_NVME;
        uint32_t saved = pl->t[t].pin;
        pl->t[t].pin = pl->epoch; /* its copy must stay while it is copied down */
        int rc = pl_make_room(pl, down, pl_align(down, fy_graph_tensor(pl->g, t)->size), -1, t);
        pl->t[t].pin = saved;
        if (rc < 0) return rc;
        long nc = pl_transfer(pl, t, tier, down, false);
        if (nc < 0) return (int)nc;
        c = pl->t[t].copy[tier];
    }
    return pl_evict_copy(pl, (uint32_t)c);
}

static const char *op_label(const planner *pl, char *buf, size_t n)
{
    if (pl->cur_op < 0)
        snprintf(buf, n, "before the first op");
    else
        snprintf(buf, n, "at op '%s'", fy_graph_op(pl->g, (size_t)pl->cur_op)->name);
    return buf;
}

static int cmp_size_desc(const void *x, const void *y)
{
    const uint64_t *a = x, *b = y;
    return a[0] < b[0] ? 1 : a[0] > b[0] ? -1 : (a[1] > b[1]) - (a[1] < b[1]);
}

/* The explanation when nothing more can leave tier: what holds its bytes, largest first. */
static int stuck(planner *pl, fy_tier tier, uint64_t need, uint32_t for_tensor)
{
    const pl_ids *res = &pl->resident[tier];
    uint64_t *pairs = malloc((res->n + 1) * 2 * sizeof *pairs);
    if (!pairs) return pl_oom(pl);
    for (uint32_t i = 0; i < res->n; i++) {
        pairs[2 * i] = pl->cp[res->v[i]].size;
        pairs[2 * i + 1] = res->v[i];
    }
    qsort(pairs, res->n, 2 * sizeof *pairs, cmp_size_desc);
    fy_buf b = {0};
    char s1[32], s2[32], s3[32], where[300];
    uint64_t in_use = pl->used[tier] + pl->reserved[tier];
    fy_buf_printf(&b,
                  "%s %s is too small %s: '%s' (%s) needs room but the %s in use cannot "
                  "leave (",
                  fy_tier_name(tier), fy_size_format_human(pl->capacity[tier], s1, sizeof s1),
                  op_label(pl, where, sizeof where), fy_graph_tensor(pl->g, for_tensor)->name,
                  fy_size_format_human(need, s2, sizeof s2),
                  fy_size_format_human(in_use, s3, sizeof s3));
    uint32_t shown = 0;
    for (uint32_t i = 0; i < res->n && shown < 6; i++, shown++) {
        const pl_copy *cp = &pl->cp[pairs[2 * i + 1]];
        const char *why = held_by(pl, (uint32_t)pairs[2 * i + 1], -1);
        fy_buf_printf(&b, "%s%s %s: %s", shown ? ", " : "",
                      fy_graph_tensor(pl->g, cp->tensor)->name,
                      fy_size_format_human(cp->size, s1, sizeof s1), why ? why : "busy");
    }
    if (res->n > shown) fy_buf_printf(&b, ", ... %u more", res->n - shown);
    if (pl->reserved[tier])
        fy_buf_printf(&b, "%sthe op's outputs %s", shown ? ", " : "",
                      fy_size_format_human(pl->reserved[tier], s1, sizeof s1));
    fy_buf_puts(&b, ")");
    if (pl->budget[tier] < pl->capacity[tier])
        fy_buf_printf(&b, " (planning to %s to leave room for fragmentation and staging)",
                      fy_size_format_human(pl->budget[tier], s1, sizeof s1));
    int rc = fy_error_set(pl->err, FY_EINFEASIBLE, "%s", b.failed ? "no plan fits" : b.data);
    fy_buf_free(&b);
    free(pairs);
    return rc;
}

static bool fits(const planner *pl, fy_tier tier, uint64_t need)
{
    return pl->used[tier] + pl->reserved[tier] + need <= pl->budget[tier];
}

/* Asks the victim hook which candidates leave; checks and applies its answer. */
static int ask_hook(planner *pl, fy_tier tier, uint64_t need, long limit)
{
    const pl_ids *res = &pl->resident[tier];
    cand *cs = malloc((res->n + 1) * sizeof *cs);
    uint32_t *names = malloc((res->n + 1) * sizeof *names);
    if (!cs || !names) {
        free(cs);
        free(names);
        return pl_oom(pl);
    }
    size_t n = 0;
    for (uint32_t i = 0; i < res->n; i++)
        if (!held_by(pl, res->v[i], limit)) cs[n++] = rank(pl, res->v[i]);
    qsort(cs, n, sizeof *cs, cmp_cand);
    for (size_t i = 0; i < n; i++)
        names[i] = pl->cp[cs[i].copy].tensor;
    uint64_t free_now = pl->budget[tier] - (pl->used[tier] + pl->reserved[tier]);
    uint64_t want = need - free_now;
    fy_tensor_list out = {0};
    int rc =
        n ? pl->hooks->victim(pl->hooks->ctx, &pl->view, tier, want, names, n, &out, pl->err) : 0;
    for (size_t i = 0; rc == 0 && i < out.count && !fits(pl, tier, need); i++) {
        uint32_t t = out.items[i];
        bool ok = false;
        for (size_t j = 0; j < n && !ok; j++)
            ok = names[j] == t && pl->t[t].copy[tier] >= 0;
        if (!ok) {
            fy_error_set(pl->err, FY_EINVAL,
                         "hook 'victim' returned %s%s%s, which is not a candidate to leave %s",
                         t < pl->nt ? "'" : "an unknown tensor",
                         t < pl->nt ? fy_graph_tensor(pl->g, t)->name : "", t < pl->nt ? "'" : "",
                         fy_tier_name(tier));
            rc = pl_blame(pl, "victim");
            break;
        }
        rc = pl_leave(pl, t, tier);
    }
    /* A hook that gave up every candidate is not to blame for a shortage: the tier is as
     * stuck as without a hook, and the caller handles that as it would then. */
    bool all_gone = true;
    for (size_t j = 0; rc == 0 && j < n && all_gone; j++)
        all_gone = pl->t[names[j]].copy[tier] < 0;
    if (rc == 0 && !fits(pl, tier, need) && all_gone) rc = 1;
    if (rc == 0 && !fits(pl, tier, need)) {
        char a[32], b[32];
        uint64_t now_free = pl->budget[tier] - (pl->used[tier] + pl->reserved[tier]);
        fy_error_set(
            pl->err, FY_EINVAL, "hook 'victim' freed %s of the %s needed on %s",
            fy_size_format_human(now_free > free_now ? now_free - free_now : 0, a, sizeof a),
            fy_size_format_human(want, b, sizeof b), fy_tier_name(tier));
        rc = n ? pl_blame(pl, "victim") : 1;
    }
    free(out.items);
    free(cs);
    free(names);
    return rc;
}

int pl_unreserve(planner *pl, uint32_t t, fy_tier tier)
{
    uint32_t x = pl->t[t].rsv[tier];
    if (x == PL_NONE) return 0;
    pl_arena *a = &pl->arena[tier];
    pl->reserved[tier] -= a->n[x].end - a->n[x].start;
    pl->t[t].rsv[tier] = PL_NONE;
    return pl_arena_release(a, x, PL_NONE) < 0 ? pl_oom(pl) : 0;
}

static int reserved_for(planner *pl, fy_tier tier, uint32_t t, long x, uint64_t need)
{
    if (x < 0) return pl_oom(pl);
    assert(pl->t[t].rsv[tier] == PL_NONE);
    pl->t[t].rsv[tier] = (uint32_t)x;
    pl->arena[tier].n[x].owner = t;
    pl->reserved[tier] += need;
    return 0;
}

/* Whether node x may not be cleared for a window; with pinned, copies the current op needs
 * may go too (the schedule loads them again). */
static bool barrier(const planner *pl, const pl_node *x, long limit, bool pinned)
{
    if (x->state == PL_NODE_FREE) return false;
    if (x->state == PL_NODE_RESERVED) return true;
    return pinned ? held_besides_pin(pl, x->owner, limit) != NULL
                  : held_by(pl, x->owner, limit) != NULL;
}

/* Free bytes are there but split: the cheapest window of need bytes made of holes and copies
 * that may leave (cost: the bytes of copies evicted; ties: the lower address). Returns the
 * window's start, or UINT64_MAX when every window holds a copy that must stay. */
static uint64_t find_window(planner *pl, fy_tier tier, uint64_t need, long limit, bool pinned)
{
    const pl_arena *a = &pl->arena[tier];
    uint64_t best = UINT64_MAX, best_cost = UINT64_MAX;
    /* i: the window's first node; j: the node past the window; cost: live bytes in [i, j). */
    uint32_t i = a->head, j = a->head;
    uint64_t cost = 0, arena_end = 0;
    for (uint32_t x = a->head; x != PL_NONE; x = a->n[x].next)
        arena_end = a->n[x].end;
    while (i != PL_NONE) {
        const pl_node *ni = &a->n[i];
        if (barrier(pl, ni, limit, pinned)) {
            i = j = ni->next;
            cost = 0;
            continue;
        }
        if (j == i) cost = 0;
        bool blocked = false;
        while (j != PL_NONE && a->n[j].start < ni->start + need) {
            const pl_node *nj = &a->n[j];
            if (barrier(pl, nj, limit, pinned)) {
                blocked = true;
                break;
            }
            if (nj->state == PL_NODE_LIVE) cost += nj->end - nj->start;
            j = nj->next;
        }
        if (blocked) {
            /* No window may cross node j: start again after it. */
            i = a->n[j].next;
            j = i;
            cost = 0;
            continue;
        }
        uint64_t end = j == PL_NONE ? arena_end : a->n[j].start;
        if (end - ni->start >= need && cost < best_cost) {
            best_cost = cost;
            best = ni->start;
        }
        if (j == PL_NONE && end - ni->start < need) break;
        if (ni->state == PL_NODE_LIVE) cost -= ni->end - ni->start;
        i = ni->next;
        if (j == i) cost = 0;
    }
    return best;
}

/* Evicts the copies in [lo, lo + need) and reserves it. */
static long clear_window(planner *pl, fy_tier tier, uint64_t lo, uint64_t need)
{
    pl_arena *a = &pl->arena[tier];
    pl_ids victims = {0};
    for (uint32_t x = a->head; x != PL_NONE && a->n[x].start < lo + need; x = a->n[x].next)
        if (a->n[x].end > lo && a->n[x].state == PL_NODE_LIVE &&
            pl_ids_push(&victims, pl->cp[a->n[x].owner].tensor) < 0) {
            pl_ids_free(&victims);
            return pl_oom(pl);
        }
    int rc = 0;
    for (uint32_t v = 0; v < victims.n && rc == 0; v++)
        rc = pl_leave(pl, victims.v[v], tier);
    pl_ids_free(&victims);
    if (rc < 0) return rc;
    long x = pl_arena_reserve_at(a, lo, need);
    assert(x >= 0);
    return x;
}

static int fragmented(planner *pl, fy_tier tier, uint64_t need, uint32_t for_tensor)
{
    char s1[32], s2[32], s3[32], where[300];
    uint64_t free_bytes = pl->budget[tier] - (pl->used[tier] + pl->reserved[tier]);
    return fy_error_set(
        pl->err, FY_EINFEASIBLE,
        "%s %s is too small %s: '%s' needs %s in one piece; %s is free but fragmentation "
        "splits it (the largest hole is %s) between tensors that cannot leave (kept, loaded "
        "eagerly or outputs)",
        fy_tier_name(tier), fy_size_format_human(pl->capacity[tier], s1, sizeof s1),
        op_label(pl, where, sizeof where), fy_graph_tensor(pl->g, for_tensor)->name,
        fy_size_format_human(need, s2, sizeof s2), fy_size_format_human(free_bytes, s3, sizeof s3),
        fy_size_format_human(pl_arena_largest(&pl->arena[tier]), s1, sizeof s1));
}

int pl_make_room(planner *pl, fy_tier tier, uint64_t need, long limit, uint32_t for_tensor)
{
    if (need > pl->budget[tier]) {
        if (limit >= 0) return 1;
        char s1[32], s2[32], where[300];
        return fy_error_set(
            pl->err, FY_EINFEASIBLE, "%s %s is too small %s: '%s' alone needs %s",
            fy_tier_name(tier), fy_size_format_human(pl->budget[tier], s1, sizeof s1),
            op_label(pl, where, sizeof where), fy_graph_tensor(pl->g, for_tensor)->name,
            fy_size_format_human(need, s2, sizeof s2));
    }
    /* First the policy's victims until the bytes fit, as the policy would choose them. */
    while (!fits(pl, tier, need)) {
        if (pl->hooks && pl->hooks->victim) {
            int rc = ask_hook(pl, tier, need, limit);
            if (rc == 1) break;
            if (rc < 0) return rc;
            continue;
        }
        const pl_ids *res = &pl->resident[tier];
        cand best = {0};
        bool found = false;
        for (uint32_t i = 0; i < res->n; i++) {
            if (held_by(pl, res->v[i], limit)) continue;
            cand c = rank(pl, res->v[i]);
            if (!found || better(&c, &best)) {
                best = c;
                found = true;
            }
        }
        if (!found) break;
        int rc = pl_leave(pl, pl->cp[best.copy].tensor, tier);
        if (rc < 0) return rc;
    }
    if (!fits(pl, tier, need)) return limit >= 0 ? 1 : stuck(pl, tier, need, for_tensor);
    /* Then a hole: the best fit, or else the cheapest window around the holes. */
    long x = pl_arena_reserve(&pl->arena[tier], need);
    if (x == FY_ENOSPC) {
        uint64_t lo = find_window(pl, tier, need, limit, false);
        if (lo == UINT64_MAX && limit < 0) {
            /* Compaction: the op's own operands may leave and come back elsewhere. */
            lo = find_window(pl, tier, need, limit, true);
            pl->pin_evicted |= lo != UINT64_MAX;
        }
        if (lo == UINT64_MAX) return limit >= 0 ? 1 : fragmented(pl, tier, need, for_tensor);
        x = clear_window(pl, tier, lo, need);
        if (x < 0) return (int)x;
    }
    return reserved_for(pl, tier, for_tensor, x, need);
}
