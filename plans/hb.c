/* The happens-before index: vector clocks forward, reach vectors backward, one pass each over
 * the plan, over eight lanes: the four streams and four chains of off-stream events (io,
 * evicts), each chain ordered by happens-before as it is built. Both passes rest on plan
 * order being a linearisation (after names only earlier events, streams follow plan order),
 * so every predecessor of an event is final when the event is visited forward, and every
 * successor when it is visited backward. Only a query between two events that found no lane
 * walks, and only over lane-less ancestors, so a long chain of io or evicts costs O(1). */
#include "plans/hb.h"

#include <stdlib.h>
#include <string.h>

#define NO_REACH UINT32_MAX
#define IO_LANES 4 /* chains of off-stream events that get a clock like the streams */
#define LANES (FY_STREAM_COUNT + IO_LANES)
#define NO_LANE 0xff

struct fy_hb {
    const fy_plan *plan;
    size_t count;
    uint8_t *queue;
    uint8_t *lane;    /* its stream, an io lane, or NO_LANE */
    uint32_t *pos;    /* 1-based position on its lane, 0 without one */
    uint32_t *clock;  /* [count][LANES] */
    uint32_t *reach;  /* [count][LANES] */
    uint32_t *lowest; /* the lowest index among an event's ancestors and itself */
    /* Walk state for lane-less queries: visited marks by generation, an explicit stack. */
    uint32_t *mark, generation;
    uint32_t *stack;
    /* The last walk: every lane-less ancestor of walk_b with index >= walk_lo is marked. */
    size_t walk_b, walk_lo;
    bool walked;
};

fy_queue fy_event_queue(const fy_plan *plan, const fy_event *ev)
{
    switch (ev->kind) {
    case FY_EVENT_COMPUTE:
        if (ev->op < 0) return FY_QUEUE_NONE;
        return fy_graph_op(fy_plan_graph(plan), (size_t)ev->op)->device == FY_TIER_HOST
                   ? FY_QUEUE_HOST
                   : FY_QUEUE_GPU;
    case FY_EVENT_LOAD:
    case FY_EVENT_OFFLOAD:
        if (ev->from == FY_TIER_HOST && ev->to == FY_TIER_GPU) return FY_QUEUE_H2D;
        if (ev->from == FY_TIER_GPU && ev->to == FY_TIER_HOST) return FY_QUEUE_D2H;
        if ((ev->from == FY_TIER_NVME && ev->to == FY_TIER_HOST) ||
            (ev->from == FY_TIER_HOST && ev->to == FY_TIER_NVME))
            return FY_QUEUE_IO;
        return FY_QUEUE_NONE;
    default:
        return FY_QUEUE_NONE;
    }
}

void fy_hb_destroy(fy_hb *hb)
{
    if (!hb) return;
    free(hb->queue);
    free(hb->lane);
    free(hb->pos);
    free(hb->clock);
    free(hb->reach);
    free(hb->lowest);
    free(hb->mark);
    free(hb->stack);
    free(hb);
}

int fy_hb_build(const fy_plan *plan, fy_hb **out, fy_error *err)
{
    *out = NULL;
    size_t n = fy_plan_event_count(plan), cells = (n ? n : 1) * LANES;
    fy_hb *hb = calloc(1, sizeof *hb);
    if (hb) {
        hb->plan = plan;
        hb->count = n;
        hb->queue = malloc(n ? n : 1);
        hb->lane = malloc(n ? n : 1);
        hb->pos = malloc((n ? n : 1) * sizeof *hb->pos);
        hb->clock = malloc(cells * sizeof *hb->clock);
        hb->reach = malloc(cells * sizeof *hb->reach);
        hb->lowest = malloc((n ? n : 1) * sizeof *hb->lowest);
        hb->mark = calloc(n ? n : 1, sizeof *hb->mark);
        hb->stack = malloc((n ? n : 1) * sizeof *hb->stack);
    }
    if (!hb || !hb->queue || !hb->lane || !hb->pos || !hb->clock || !hb->reach || !hb->lowest ||
        !hb->mark || !hb->stack) {
        fy_hb_destroy(hb);
        return fy_error_set(err, FY_ENOMEM, "out of memory indexing %zu events", n);
    }
    /* Forward: each event's clock is the maximum of its predecessors' (its after events and
     * the previous event of its lane), plus its own position. */
    uint32_t lane_len[LANES] = {0};
    int64_t last_on[LANES];
    for (int l = 0; l < LANES; l++)
        last_on[l] = -1;
    for (size_t i = 0; i < n; i++) {
        const fy_event *ev = fy_plan_event(plan, i);
        fy_queue q = fy_event_queue(plan, ev);
        uint32_t *c = &hb->clock[i * LANES];
        memset(c, 0, LANES * sizeof *c);
        hb->queue[i] = (uint8_t)q;
        uint32_t low = (uint32_t)i;
        if (q < FY_STREAM_COUNT && last_on[q] >= 0) {
            const uint32_t *p = &hb->clock[(size_t)last_on[q] * LANES];
            for (int l = 0; l < LANES; l++)
                c[l] = p[l] > c[l] ? p[l] : c[l];
            if (hb->lowest[last_on[q]] < low) low = hb->lowest[last_on[q]];
        }
        for (uint32_t k = 0; k < ev->after_count; k++) {
            const uint32_t *p = &hb->clock[(size_t)ev->after[k] * LANES];
            for (int l = 0; l < LANES; l++)
                c[l] = p[l] > c[l] ? p[l] : c[l];
            if (hb->lowest[ev->after[k]] < low) low = hb->lowest[ev->after[k]];
        }
        hb->lowest[i] = low;
        /* A stream event takes its stream's lane. An off-stream event joins an io lane
         * whose last event happens before it (the longest such), or an empty one; when
         * none is free it has no lane and queries about it walk. */
        int lane = q < FY_STREAM_COUNT ? (int)q : NO_LANE;
        for (int l = FY_STREAM_COUNT; lane == NO_LANE && l < LANES; l++)
            if (lane_len[l] && c[l] == lane_len[l]) lane = l;
        for (int l = FY_STREAM_COUNT; lane == NO_LANE && l < LANES; l++)
            if (!lane_len[l]) lane = l;
        hb->lane[i] = (uint8_t)lane;
        hb->pos[i] = 0;
        if (lane != NO_LANE) {
            hb->pos[i] = c[lane] = ++lane_len[lane];
            last_on[lane] = (int64_t)i;
        }
    }
    /* Backward: each event pushes its reach into its predecessors (its after events and the
     * previous event of its lane). Visiting in reverse plan order, an event's reach is final
     * before it is pushed. */
    int64_t prev_on[LANES];
    for (int l = 0; l < LANES; l++)
        prev_on[l] = -1;
    int64_t *prev = malloc((n ? n : 1) * sizeof *prev); /* previous event of the same lane */
    if (!prev) {
        fy_hb_destroy(hb);
        return fy_error_set(err, FY_ENOMEM, "out of memory indexing %zu events", n);
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t *r = &hb->reach[i * LANES];
        for (int l = 0; l < LANES; l++)
            r[l] = NO_REACH;
        prev[i] = -1;
        if (hb->lane[i] != NO_LANE) {
            r[hb->lane[i]] = hb->pos[i];
            prev[i] = prev_on[hb->lane[i]];
            prev_on[hb->lane[i]] = (int64_t)i;
        }
    }
    for (size_t i = n; i-- > 0;) {
        const fy_event *ev = fy_plan_event(plan, i);
        const uint32_t *r = &hb->reach[i * LANES];
        if (prev[i] >= 0) {
            uint32_t *p = &hb->reach[(size_t)prev[i] * LANES];
            for (int l = 0; l < LANES; l++)
                p[l] = r[l] < p[l] ? r[l] : p[l];
        }
        for (uint32_t k = 0; k < ev->after_count; k++) {
            uint32_t *p = &hb->reach[(size_t)ev->after[k] * LANES];
            for (int l = 0; l < LANES; l++)
                p[l] = r[l] < p[l] ? r[l] : p[l];
        }
    }
    free(prev);
    *out = hb;
    return 0;
}

uint32_t fy_hb_stream_pos(const fy_hb *hb, size_t event)
{
    return hb->queue[event] < FY_STREAM_COUNT ? hb->pos[event] : 0;
}

bool fy_hb_before(fy_hb *hb, size_t a, size_t b)
{
    if (a == b) return true;
    if (a > b || b >= hb->count || hb->lowest[b] > a)
        return false; /* plan order is a linearisation: nothing later comes first */
    const uint32_t *cb = &hb->clock[b * LANES];
    const uint32_t *ra = &hb->reach[a * LANES];
    int la = hb->lane[a], lb = hb->lane[b];
    if (la != NO_LANE) return cb[la] >= hb->pos[a];
    if (lb != NO_LANE) return ra[lb] <= hb->pos[b];
    /* Neither has a lane: a path through any lane's event shows in the vectors... */
    for (int l = 0; l < LANES; l++)
        if (ra[l] != NO_REACH && ra[l] <= cb[l]) return true;
    /* ...otherwise it runs through events without a lane only, all between a and b in plan
     * order: walk those ancestors of b. The last walk is remembered, so the queries about
     * one event (an evict against each reader) walk once. */
    if (hb->walked && hb->walk_b == b && a >= hb->walk_lo) return hb->mark[a] == hb->generation;
    if (++hb->generation == 0) {
        memset(hb->mark, 0, hb->count * sizeof *hb->mark);
        hb->generation = 1;
    }
    hb->walked = true;
    hb->walk_b = b;
    hb->walk_lo = a;
    size_t top = 0;
    hb->stack[top++] = (uint32_t)b;
    hb->mark[b] = hb->generation;
    while (top) {
        const fy_event *ev = fy_plan_event(hb->plan, hb->stack[--top]);
        for (uint32_t k = 0; k < ev->after_count; k++) {
            uint32_t p = ev->after[k];
            /* No pruning by lowest[p] here: the walk serves later queries about b with
             * a larger a, for which such a p may matter. */
            if (p < a || hb->lane[p] != NO_LANE || hb->mark[p] == hb->generation) continue;
            hb->mark[p] = hb->generation;
            hb->stack[top++] = p;
        }
    }
    return hb->mark[a] == hb->generation;
}
