/* The happens-before index: vector clocks forward, reach vectors backward, one pass each over
 * the plan. Both rest on plan order being a linearisation (after names only earlier events,
 * streams follow plan order), so every predecessor of an event is already final when the
 * event is visited forward, and every successor when it is visited backward. */
#include "plans/hb.h"

#include <stdlib.h>
#include <string.h>

#define NO_REACH UINT32_MAX

struct fy_hb {
    const fy_plan *plan;
    size_t count;
    uint8_t *queue;
    uint32_t *pos;   /* 1-based position on its stream, 0 off-stream */
    uint32_t *clock; /* [count][FY_STREAM_COUNT] */
    uint32_t *reach; /* [count][FY_STREAM_COUNT] */
    /* Walk state for non-stream queries: visited marks by generation, an explicit stack. */
    uint32_t *mark, generation;
    uint32_t *stack;
};

const char *fy_queue_name(fy_queue q)
{
    static const char *const names[] = {"h2d", "d2h", "gpu", "host", "io", "none"};
    return (unsigned)q <= FY_QUEUE_NONE ? names[q] : "none";
}

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
    free(hb->pos);
    free(hb->clock);
    free(hb->reach);
    free(hb->mark);
    free(hb->stack);
    free(hb);
}

int fy_hb_build(const fy_plan *plan, fy_hb **out, fy_error *err)
{
    *out = NULL;
    size_t n = fy_plan_event_count(plan), cells = (n ? n : 1) * FY_STREAM_COUNT;
    fy_hb *hb = calloc(1, sizeof *hb);
    if (hb) {
        hb->plan = plan;
        hb->count = n;
        hb->queue = malloc(n ? n : 1);
        hb->pos = malloc((n ? n : 1) * sizeof *hb->pos);
        hb->clock = malloc(cells * sizeof *hb->clock);
        hb->reach = malloc(cells * sizeof *hb->reach);
        hb->mark = calloc(n ? n : 1, sizeof *hb->mark);
        hb->stack = malloc((n ? n : 1) * sizeof *hb->stack);
    }
    if (!hb || !hb->queue || !hb->pos || !hb->clock || !hb->reach || !hb->mark || !hb->stack) {
        fy_hb_destroy(hb);
        return fy_error_set(err, FY_ENOMEM, "out of memory indexing %zu events", n);
    }
    /* Forward: each event's clock is the maximum of its predecessors' (its after events and
     * the previous event of its stream), plus its own position. */
    uint32_t stream_len[FY_STREAM_COUNT] = {0};
    int64_t last_on[FY_STREAM_COUNT] = {-1, -1, -1, -1};
    for (size_t i = 0; i < n; i++) {
        const fy_event *ev = fy_plan_event(plan, i);
        fy_queue q = fy_event_queue(plan, ev);
        uint32_t *c = &hb->clock[i * FY_STREAM_COUNT];
        memset(c, 0, FY_STREAM_COUNT * sizeof *c);
        hb->queue[i] = (uint8_t)q;
        hb->pos[i] = 0;
        if (q < FY_STREAM_COUNT) {
            hb->pos[i] = ++stream_len[q];
            if (last_on[q] >= 0) {
                const uint32_t *p = &hb->clock[(size_t)last_on[q] * FY_STREAM_COUNT];
                for (int s = 0; s < FY_STREAM_COUNT; s++)
                    c[s] = p[s] > c[s] ? p[s] : c[s];
            }
            last_on[q] = (int64_t)i;
        }
        for (uint32_t k = 0; k < ev->after_count; k++) {
            const uint32_t *p = &hb->clock[(size_t)ev->after[k] * FY_STREAM_COUNT];
            for (int s = 0; s < FY_STREAM_COUNT; s++)
                c[s] = p[s] > c[s] ? p[s] : c[s];
        }
        if (q < FY_STREAM_COUNT) c[q] = hb->pos[i];
    }
    /* Backward: each event pushes its reach into its predecessors. Visiting in reverse plan
     * order, an event's reach is final before it is pushed. */
    for (size_t i = 0; i < n; i++) {
        uint32_t *r = &hb->reach[i * FY_STREAM_COUNT];
        for (int s = 0; s < FY_STREAM_COUNT; s++)
            r[s] = NO_REACH;
        if (hb->queue[i] < FY_STREAM_COUNT) r[hb->queue[i]] = hb->pos[i];
    }
    int64_t next_on[FY_STREAM_COUNT] = {-1, -1, -1, -1};
    for (size_t i = n; i-- > 0;) {
        const fy_event *ev = fy_plan_event(plan, i);
        uint32_t *r = &hb->reach[i * FY_STREAM_COUNT];
        fy_queue q = (fy_queue)hb->queue[i];
        if (q < FY_STREAM_COUNT) {
            if (next_on[q] >= 0) {
                const uint32_t *nx = &hb->reach[(size_t)next_on[q] * FY_STREAM_COUNT];
                for (int s = 0; s < FY_STREAM_COUNT; s++)
                    r[s] = nx[s] < r[s] ? nx[s] : r[s];
            }
            next_on[q] = (int64_t)i;
        }
        for (uint32_t k = 0; k < ev->after_count; k++) {
            uint32_t *p = &hb->reach[(size_t)ev->after[k] * FY_STREAM_COUNT];
            for (int s = 0; s < FY_STREAM_COUNT; s++)
                p[s] = r[s] < p[s] ? r[s] : p[s];
        }
    }
    *out = hb;
    return 0;
}

fy_queue fy_hb_queue(const fy_hb *hb, size_t event)
{
    return (fy_queue)hb->queue[event];
}

uint32_t fy_hb_stream_pos(const fy_hb *hb, size_t event)
{
    return hb->pos[event];
}

bool fy_hb_before(fy_hb *hb, size_t a, size_t b)
{
    if (a == b) return true;
    if (a > b || b >= hb->count)
        return false; /* plan order is a linearisation: nothing later comes first */
    const uint32_t *cb = &hb->clock[b * FY_STREAM_COUNT];
    const uint32_t *ra = &hb->reach[a * FY_STREAM_COUNT];
    fy_queue qa = (fy_queue)hb->queue[a], qb = (fy_queue)hb->queue[b];
    if (qa < FY_STREAM_COUNT) return cb[qa] >= hb->pos[a];
    if (qb < FY_STREAM_COUNT) return ra[qb] <= hb->pos[b];
    /* Both off-stream: a path through any stream event shows in the vectors... */
    for (int s = 0; s < FY_STREAM_COUNT; s++)
        if (ra[s] != NO_REACH && ra[s] <= cb[s]) return true;
    /* ...otherwise it runs through off-stream events only, all between a and b in plan
     * order: walk b's off-stream ancestors that are not before a. */
    if (++hb->generation == 0) {
        memset(hb->mark, 0, hb->count * sizeof *hb->mark);
        hb->generation = 1;
    }
    size_t top = 0;
    hb->stack[top++] = (uint32_t)b;
    hb->mark[b] = hb->generation;
    while (top) {
        const fy_event *ev = fy_plan_event(hb->plan, hb->stack[--top]);
        for (uint32_t k = 0; k < ev->after_count; k++) {
            uint32_t p = ev->after[k];
            if (p == a) return true;
            if (p < a || hb->queue[p] < FY_STREAM_COUNT || hb->mark[p] == hb->generation) continue;
            hb->mark[p] = hb->generation;
            hb->stack[top++] = p;
        }
    }
    return false;
}
