/* Offline repacking: once the schedule is done every copy's lifetime is known (from the event
 * that places it to the evict that drops it), and placing copies largest first, each into the
 * smallest gap left by the copies whose lifetimes overlap its own, packs an arena tighter than
 * any online placement can. The online placement (place.c) stays whenever repacking does not
 * give a smaller arena, so the arena never grows past the budget the schedule respected.
 * Either way each copy's placing event then waits for the evicts of its bytes' previous
 * occupants, and for nothing else. */
#include "planner/planner_state.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

typedef struct span {
    uint64_t start, end;
} span;

typedef struct seg {
    uint64_t start, end;
    uint32_t copy;
} seg;

static bool in_arena(const pl_copy *c, fy_tier tier)
{
    return c->tier == (int8_t)tier && !c->home && !c->staged && c->place_ev != PL_NONE;
}

static uint32_t life_end(const planner *pl, const pl_copy *c)
{
    return c->evict_ev == PL_NONE ? (uint32_t)pl->nev : c->evict_ev;
}

/* The most aligned bytes of arena copies on tier live at once, in plan order. */
static uint64_t tier_peak(const planner *pl, fy_tier tier)
{
    uint64_t live = 0, peak = 0;
    for (size_t i = 0; i < pl->nev; i++) {
        const pl_event *e = &pl->ev[i];
        if (e->kind == FY_EVENT_COMPUTE) {
            for (uint32_t p = 0; p < e->places.n; p++)
                if (in_arena(&pl->cp[e->places.v[p]], tier)) live += pl->cp[e->places.v[p]].size;
        } else if (e->kind == FY_EVENT_EVICT) {
            if (in_arena(&pl->cp[e->copy], tier)) live -= pl->cp[e->copy].size;
        } else if (in_arena(&pl->cp[e->copy], tier)) {
            live += pl->cp[e->copy].size;
        }
        if (live > peak) peak = live;
    }
    return peak;
}

static int cmp_span(const void *x, const void *y)
{
    const span *a = x, *b = y;
    return (a->start > b->start) - (a->start < b->start);
}

static int cmp_size_desc(const void *x, const void *y, void *arg)
{
    const planner *pl = arg;
    const pl_copy *a = &pl->cp[*(const uint32_t *)x], *b = &pl->cp[*(const uint32_t *)y];
    if (a->size != b->size) return a->size < b->size ? 1 : -1;
    return (a->place_ev > b->place_ev) - (a->place_ev < b->place_ev);
}

static int cmp_start(const void *x, const void *y, void *arg)
{
    const planner *pl = arg;
    const pl_copy *a = &pl->cp[*(const uint32_t *)x], *b = &pl->cp[*(const uint32_t *)y];
    return (a->place_ev > b->place_ev) - (a->place_ev < b->place_ev);
}

/* Largest first, best fit among the copies overlapping in time (found through time buckets:
 * each placed copy is listed in every bucket its lifetime touches). Writes the offsets into
 * off[] (indexed like ids) and returns the arena's top. */
static int repack(planner *pl, const uint32_t *ids, size_t n, uint64_t base, uint64_t *off,
                  uint64_t *top_out)
{
    uint32_t *order = malloc(n * sizeof *order), *pos = malloc(pl->ncp * sizeof *pos);
    span *spans = malloc(n * sizeof *spans);
    uint32_t *seen = calloc(pl->ncp, sizeof *seen);
    size_t width = pl->nev / 512 + 1, nb = (pl->nev + 1) / width + 1;
    pl_ids *bk = calloc(nb, sizeof *bk);
    int rc = 0;
    if (!order || !pos || !spans || !seen || !bk) {
        rc = pl_oom(pl);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        order[i] = ids[i];
        pos[ids[i]] = (uint32_t)i;
    }
    qsort_r(order, n, sizeof *order, cmp_size_desc, pl);
    uint64_t top = base;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const pl_copy *c = &pl->cp[order[i]];
        uint32_t s = c->place_ev, e = life_end(pl, c);
        size_t k = 0;
        for (size_t b = s / width; b <= e / width; b++)
            for (uint32_t j = 0; j < bk[b].n; j++) {
                uint32_t o = bk[b].v[j];
                const pl_copy *p = &pl->cp[o];
                if (seen[o] == i + 1) continue;
                seen[o] = (uint32_t)i + 1;
                if (life_end(pl, p) < s || e < p->place_ev) continue;
                spans[k++] = (span){off[pos[o]], off[pos[o]] + p->size};
            }
        qsort(spans, k, sizeof *spans, cmp_span);
        uint64_t at = base, best = UINT64_MAX, best_gap = UINT64_MAX, high = base;
        for (size_t j = 0; j < k; j++) {
            if (spans[j].start > at && spans[j].start - at >= c->size &&
                spans[j].start - at < best_gap) {
                best_gap = spans[j].start - at;
                best = at;
            }
            if (spans[j].end > at) at = spans[j].end;
            if (spans[j].end > high) high = spans[j].end;
        }
        off[pos[order[i]]] = best != UINT64_MAX ? best : high;
        if (off[pos[order[i]]] + c->size > top) top = off[pos[order[i]]] + c->size;
        for (size_t b = s / width; b <= e / width && rc == 0; b++)
            if (pl_ids_push(&bk[b], order[i]) < 0) rc = pl_oom(pl);
    }
    *top_out = top;
out:
    for (size_t b = 0; bk && b < nb; b++)
        pl_ids_free(&bk[b]);
    free(bk);
    free(order);
    free(pos);
    free(spans);
    free(seen);
    return rc;
}

/* Reuse edges for offsets chosen offline: walk in plan order with a map of who last held each
 * byte; ids are sorted by placing event. */
static int reuse_edges(planner *pl, const uint32_t *ids, size_t n)
{
    seg *segs = malloc((2 * n + 2) * sizeof *segs);
    if (!segs) return pl_oom(pl);
    size_t ns = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        pl_copy *c = &pl->cp[ids[i]];
        uint64_t lo = c->offset, hi = c->offset + c->size;
        size_t first = 0, hi_idx = ns;
        while (first < hi_idx) { /* the first segment ending after lo */
            size_t mid = (first + hi_idx) / 2;
            if (segs[mid].end <= lo)
                first = mid + 1;
            else
                hi_idx = mid;
        }
        size_t last = first;
        c->reuse.n = 0;
        while (last < ns && segs[last].start < hi) {
            const pl_copy *p = &pl->cp[segs[last].copy];
            assert(p->evict_ev != PL_NONE && p->evict_ev < c->place_ev);
            if (pl_ids_push(&c->reuse, p->evict_ev) < 0) rc = pl_oom(pl);
            last++;
        }
        seg repl[3];
        size_t nr = 0;
        if (first < last && segs[first].start < lo)
            repl[nr++] = (seg){segs[first].start, lo, segs[first].copy};
        repl[nr++] = (seg){lo, hi, ids[i]};
        if (first < last && segs[last - 1].end > hi)
            repl[nr++] = (seg){hi, segs[last - 1].end, segs[last - 1].copy};
        size_t removed = last - first;
        assert(ns + nr - removed <= 2 * n + 2); /* each copy adds at most two segments */
        memmove(segs + first + nr, segs + last, (ns - last) * sizeof *segs);
        memcpy(segs + first, repl, nr * sizeof *segs);
        ns = ns + nr - removed;
    }
    free(segs);
    return rc;
}

/* Repacks tier when the online arena is more than 1% above the live peak and repacking
 * gives a smaller one. */
static int pack_tier(planner *pl, fy_tier tier)
{
    pl_arena *a = &pl->arena[tier];
    uint64_t peak = tier_peak(pl, tier);
    if (a->top <= a->base + peak + peak / 100) return 0;
    size_t n = 0;
    for (size_t i = 0; i < pl->ncp; i++)
        n += in_arena(&pl->cp[i], tier);
    uint32_t *ids = malloc(n * sizeof *ids);
    uint64_t *off = malloc(n * sizeof *off);
    int rc = 0;
    if (!ids || !off) {
        rc = pl_oom(pl);
        goto out;
    }
    n = 0;
    for (size_t i = 0; i < pl->ncp; i++)
        if (in_arena(&pl->cp[i], tier)) ids[n++] = (uint32_t)i;
    qsort_r(ids, n, sizeof *ids, cmp_start, pl);
    uint64_t top = 0;
    rc = repack(pl, ids, n, a->base, off, &top);
    if (rc < 0 || top >= a->top) goto out;
    for (size_t i = 0; i < n; i++)
        pl->cp[ids[i]].offset = off[i];
    a->top = top;
    rc = reuse_edges(pl, ids, n);
out:
    free(ids);
    free(off);
    return rc;
}

int pl_pack(planner *pl, uint64_t arena[FY_TIER_COUNT])
{
    for (int t = 0; t < FY_TIER_COUNT; t++) {
        int rc = pack_tier(pl, (fy_tier)t);
        if (rc < 0) return rc;
    }
    for (size_t i = 0; i < pl->ncp; i++) {
        const pl_copy *c = &pl->cp[i];
        for (uint32_t j = 0; j < c->reuse.n; j++)
            if (pl_ids_push(&pl->ev[c->place_ev].after, c->reuse.v[j]) < 0) return pl_oom(pl);
    }
    /* Each arena ends at its highest copy; host also holds the staging buffers used. */
    for (int t = 0; t < FY_TIER_COUNT; t++)
        arena[t] = pl->arena[t].top;
    for (size_t i = 0; i < pl->ncp; i++) {
        const pl_copy *c = &pl->cp[i];
        if (c->staged && c->offset + pl->slot_size > arena[FY_TIER_HOST])
            arena[FY_TIER_HOST] = c->offset + pl->slot_size;
    }
#ifndef NDEBUG
    for (size_t t = 0; t < pl->nt; t++)
        for (int k = 0; k < FY_TIER_COUNT; k++)
            assert(pl->t[t].rsv[k] == PL_NONE); /* every reservation was taken or given back */
#endif
    return 0;
}
