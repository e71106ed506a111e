/* Arena placement: every copy in an arena gets an offset, chosen offline over the copies'
 * lifetimes in plan order (from the event that places a copy to the evict that drops it).
 * Copies are placed largest first, each into the smallest gap left by the copies whose
 * lifetimes overlap its own (best fit), which keeps an arena within a few percent of the
 * live peak on layered models. Then, walking the copies in plan order, each one gets `after`
 * edges to the evicts of the copies that last held its bytes: the region is reused only
 * once its previous occupant is gone, which is what the checker's overlap rule asks. */
#include "planner/planner_state.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

typedef struct span {
    uint64_t start, end; /* bytes */
} span;

typedef struct seg {
    uint64_t start, end;
    uint32_t copy;
} seg;

static uint32_t life_end(const planner *pl, const pl_copy *c)
{
    return c->evict_ev == PL_NONE ? (uint32_t)pl->nev : c->evict_ev;
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

/* Time buckets: each placed copy is listed in every bucket its lifetime touches, so the
 * copies that may overlap a new one in time are found without scanning them all. */
typedef struct buckets {
    pl_ids *b;
    size_t count, width;
} buckets;

static int place_tier(planner *pl, fy_tier tier, uint64_t *arena)
{
    size_t n = 0;
    for (size_t i = 0; i < pl->ncp; i++)
        n += pl->cp[i].tier == tier && !pl->cp[i].home && pl->cp[i].place_ev != PL_NONE;
    *arena = 0;
    if (n == 0) return 0;
    uint32_t *ids = malloc(n * sizeof *ids);
    span *spans = malloc(n * sizeof *spans);
    uint32_t *seen = calloc(pl->ncp, sizeof *seen); /* per copy: last stamp */
    buckets bk = {.width = pl->nev / 512 + 1};
    bk.count = (pl->nev + 1) / bk.width + 1;
    bk.b = calloc(bk.count, sizeof *bk.b);
    seg *segs = malloc((2 * n + 2) * sizeof *segs);
    int rc = 0;
    if (!ids || !spans || !seen || !bk.b || !segs) {
        rc = pl_oom(pl);
        goto out;
    }
    n = 0;
    for (size_t i = 0; i < pl->ncp; i++)
        if (pl->cp[i].tier == tier && !pl->cp[i].home && pl->cp[i].place_ev != PL_NONE)
            ids[n++] = (uint32_t)i;

    /* Staging buffers sit at the bottom of the host arena, one slot each. */
    uint64_t base = 0;
    for (size_t i = 0; i < n; i++) {
        pl_copy *c = &pl->cp[ids[i]];
        if (c->staged) {
            c->offset = (uint64_t)c->slot * pl->slot_size;
            if (c->offset + pl->slot_size > base) base = c->offset + pl->slot_size;
        }
    }
    qsort_r(ids, n, sizeof *ids, cmp_size_desc, pl);
    uint32_t stamp = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        pl_copy *c = &pl->cp[ids[i]];
        if (c->staged) continue;
        uint32_t s = c->place_ev, e = life_end(pl, c);
        size_t k = 0;
        stamp++;
        for (size_t b = s / bk.width; b <= e / bk.width; b++) {
            for (uint32_t j = 0; j < bk.b[b].n; j++) {
                uint32_t o = bk.b[b].v[j];
                pl_copy *p = &pl->cp[o];
                if (seen[o] == stamp) continue;
                seen[o] = stamp;
                if (life_end(pl, p) < s || e < p->place_ev) continue;
                spans[k++] = (span){p->offset, p->offset + p->size};
            }
        }
        qsort(spans, k, sizeof *spans, cmp_span);
        /* Best fit: the smallest gap at or above base that holds c; else above them all. */
        uint64_t at = base, best = UINT64_MAX, best_gap = UINT64_MAX, top = base;
        for (size_t j = 0; j < k; j++) {
            if (spans[j].start > at && spans[j].start - at >= c->size &&
                spans[j].start - at < best_gap) {
                best_gap = spans[j].start - at;
                best = at;
            }
            if (spans[j].end > at) at = spans[j].end;
            if (spans[j].end > top) top = spans[j].end;
        }
        c->offset = best != UINT64_MAX ? best : top;
        for (size_t b = s / bk.width; b <= e / bk.width && rc == 0; b++)
            if (pl_ids_push(&bk.b[b], ids[i]) < 0) rc = pl_oom(pl);
    }
    for (size_t i = 0; i < n; i++) {
        pl_copy *c = &pl->cp[ids[i]];
        if (c->offset + c->size > *arena) *arena = c->offset + c->size;
    }

    /* Reuse edges: walk in plan order with a map of who last held each byte. */
    qsort_r(ids, n, sizeof *ids, cmp_start, pl);
    size_t ns = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        pl_copy *c = &pl->cp[ids[i]];
        uint64_t lo = c->offset, hi = c->offset + c->size;
        size_t first = 0, hi_idx = ns;
        while (first < hi_idx) { /* first segment ending after lo */
            size_t mid = (first + hi_idx) / 2;
            if (segs[mid].end <= lo)
                first = mid + 1;
            else
                hi_idx = mid;
        }
        size_t last = first;
        while (last < ns && segs[last].start < hi) {
            pl_copy *p = &pl->cp[segs[last].copy];
            assert(p->evict_ev != PL_NONE && p->evict_ev < c->place_ev);
            if (pl_ids_push(&pl->ev[c->place_ev].after, p->evict_ev) < 0) rc = pl_oom(pl);
            last++;
        }
        /* Replace segs[first, last) by: the part of segs[first] below lo, c, the part of
         * segs[last-1] above hi. */
        seg repl[3];
        size_t nr = 0;
        if (first < last && segs[first].start < lo)
            repl[nr++] = (seg){segs[first].start, lo, segs[first].copy};
        repl[nr++] = (seg){lo, hi, ids[i]};
        if (first < last && segs[last - 1].end > hi)
            repl[nr++] = (seg){hi, segs[last - 1].end, segs[last - 1].copy};
        size_t removed = last - first;
        /* Each copy adds at most two segments, so 2n + 2 always suffice. */
        assert(ns + nr - removed <= 2 * n + 2);
        memmove(segs + first + nr, segs + last, (ns - last) * sizeof *segs);
        memcpy(segs + first, repl, nr * sizeof *segs);
        ns = ns + nr - removed;
    }
out:
    for (size_t b = 0; bk.b && b < bk.count; b++)
        pl_ids_free(&bk.b[b]);
    free(bk.b);
    free(ids);
    free(spans);
    free(seen);
    free(segs);
    return rc;
}

int pl_place(planner *pl, uint64_t arena[FY_TIER_COUNT])
{
    for (int t = 0; t < FY_TIER_COUNT; t++) {
        int rc = place_tier(pl, (fy_tier)t, &arena[t]);
        if (rc < 0) return rc;
    }
    return 0;
}
