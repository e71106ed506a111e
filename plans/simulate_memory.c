/* Which queue each event runs on, and the copies a timeline places in the arenas: the live
 * bytes per tier over time that the simulator's peaks, the trace's counters and the plot all
 * read. A copy occupies its tier from its placing event's start until its evict's end; home
 * copies (source files, the caller's inputs) count nothing, as they rest outside the arenas. */
#include "plans/simulate_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *fy_sim_queue_name(fy_sim_queue q)
{
    static const char *const names[] = {"io", "h2d", "d2h", "gpu", "host"};
    return q >= 0 && q < FY_SIM_QUEUE_COUNT ? names[q] : "none";
}

fy_sim_queue fy_sim_event_queue(const fy_plan *plan, const fy_event *ev)
{
    switch (ev->kind) {
    case FY_EVENT_LOAD:
        if (ev->from == FY_TIER_NVME && ev->to == FY_TIER_HOST) return FY_SIM_QUEUE_IO;
        if (ev->from == FY_TIER_HOST && ev->to == FY_TIER_GPU) return FY_SIM_QUEUE_H2D;
        return FY_SIM_QUEUE_NONE;
    case FY_EVENT_OFFLOAD:
        if (ev->from == FY_TIER_GPU && ev->to == FY_TIER_HOST) return FY_SIM_QUEUE_D2H;
        if (ev->from == FY_TIER_HOST && ev->to == FY_TIER_NVME) return FY_SIM_QUEUE_IO;
        return FY_SIM_QUEUE_NONE;
    case FY_EVENT_COMPUTE:
        if (ev->op < 0) return FY_SIM_QUEUE_NONE;
        return fy_graph_op(fy_plan_graph(plan), (size_t)ev->op)->device == FY_TIER_HOST
                   ? FY_SIM_QUEUE_HOST
                   : FY_SIM_QUEUE_GPU;
    default:
        return FY_SIM_QUEUE_NONE;
    }
}

uint64_t fy_sim_event_bytes(const fy_plan *plan, const fy_event *ev)
{
    if ((ev->kind != FY_EVENT_LOAD && ev->kind != FY_EVENT_OFFLOAD) || ev->tensor < 0) return 0;
    return fy_graph_tensor(fy_plan_graph(plan), (size_t)ev->tensor)->size;
}

const char *fy_sim_event_describe(const fy_plan *plan, const fy_event *ev, char *buf, size_t size)
{
    const char *kind = fy_event_kind_name(ev->kind);
    switch (ev->kind) {
    case FY_EVENT_COMPUTE:
        snprintf(buf, size, "compute %s", ev->ref ? ev->ref : "?");
        break;
    case FY_EVENT_EVICT:
        snprintf(buf, size, "evict %s from %s", ev->ref ? ev->ref : "?", fy_tier_name(ev->from));
        break;
    default:
        snprintf(buf, size, "%s %s %s->%s", kind, ev->ref ? ev->ref : "?", fy_tier_name(ev->from),
                 fy_tier_name(ev->to));
    }
    (void)plan;
    return buf;
}

/* Per (tensor, tier): no copy, the home copy, or an arena copy (its index). */
#define SLOT_NONE (-1)
#define SLOT_HOME (-2)

typedef struct copies_vec {
    fy_copy_life *v;
    size_t n, cap;
} copies_vec;

static long copy_add(copies_vec *c, const fy_copy_life *life)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        fy_copy_life *v = realloc(c->v, cap * sizeof *v);
        if (!v) return -1;
        c->v = v;
        c->cap = cap;
    }
    c->v[c->n] = *life;
    return (long)c->n++;
}

static int cmp_step(const void *a, const void *b)
{
    const fy_live_step *x = a, *y = b;
    if (x->t != y->t) return x->t < y->t ? -1 : 1;
    /* frees first: bytes freed at t may be placed again at t */
    if ((x->delta < 0) != (y->delta < 0)) return x->delta < 0 ? -1 : 1;
    return (x->copy > y->copy) - (x->copy < y->copy);
}

/* Places a new copy of tensor on tier unless one is there (updated in place then). */
static int place(copies_vec *c, long *slot, const fy_graph *g, int32_t tensor, fy_tier tier,
                 uint64_t at, double start, size_t event)
{
    if (*slot != SLOT_NONE) return 0;
    fy_copy_life life = {.tensor = tensor,
                         .tier = (uint8_t)tier,
                         .at = at,
                         .bytes = fy_graph_tensor(g, (size_t)tensor)->size,
                         .start_s = start,
                         .end_s = -1,
                         .placed_by = event,
                         .evicted_by = -1};
    long k = copy_add(c, &life);
    if (k < 0) return FY_ENOMEM;
    *slot = k;
    return 0;
}

static int replay(const fy_plan *plan, const fy_span *spans, copies_vec *c, long *slots)
{
    const fy_graph *g = fy_plan_graph(plan);
    size_t nt = fy_graph_tensor_count(g);
    for (size_t t = 0; t < nt; t++) {
        fy_tier home = fy_graph_tensor(g, t)->home;
        if (home >= 0 && home < FY_TIER_COUNT) slots[t * FY_TIER_COUNT + (size_t)home] = SLOT_HOME;
    }
    size_t n = fy_plan_event_count(plan);
    for (size_t i = 0; i < n; i++) {
        const fy_event *e = fy_plan_event(plan, i);
        int rc = 0;
        switch (e->kind) {
        case FY_EVENT_LOAD:
        case FY_EVENT_OFFLOAD:
            if (e->tensor < 0 || e->to < 0 || e->to >= FY_TIER_COUNT) break;
            rc = place(c, &slots[(size_t)e->tensor * FY_TIER_COUNT + (size_t)e->to], g, e->tensor,
                       e->to, e->at, spans[i].start_s, i);
            break;
        case FY_EVENT_EVICT: {
            if (e->tensor < 0 || e->from < 0 || e->from >= FY_TIER_COUNT) break;
            long *s = &slots[(size_t)e->tensor * FY_TIER_COUNT + (size_t)e->from];
            if (*s >= 0) {
                c->v[*s].end_s = spans[i].end_s;
                c->v[*s].evicted_by = (long)i;
            }
            *s = SLOT_NONE;
            break;
        }
        case FY_EVENT_COMPUTE: {
            if (e->op < 0) break;
            const fy_op *op = fy_graph_op(g, (size_t)e->op);
            for (uint32_t w = 0; w < op->write_count && rc == 0; w++) {
                uint32_t t = op->writes[w];
                uint64_t at = 0;
                for (uint32_t p = 0; p < e->place_count; p++)
                    if (e->places[p].tensor == (int32_t)t) at = e->places[p].offset;
                rc = place(c, &slots[(size_t)t * FY_TIER_COUNT + (size_t)op->device], g, (int32_t)t,
                           op->device, at, spans[i].start_s, i);
            }
            break;
        }
        }
        if (rc < 0) return rc;
    }
    return 0;
}

int fy_occupancy_build(const fy_plan *plan, const fy_span *spans, fy_occupancy *out, fy_error *err)
{
    memset(out, 0, sizeof *out);
    const fy_graph *g = fy_plan_graph(plan);
    size_t nt = fy_graph_tensor_count(g), n = fy_plan_event_count(plan);
    for (size_t i = 0; i < n; i++)
        if (spans[i].end_s > out->end_s) out->end_s = spans[i].end_s;
    long *slots = malloc((nt ? nt : 1) * FY_TIER_COUNT * sizeof *slots);
    copies_vec c = {0};
    if (!slots) return fy_error_set(err, FY_ENOMEM, "out of memory");
    for (size_t k = 0; k < nt * FY_TIER_COUNT; k++)
        slots[k] = SLOT_NONE;
    int rc = replay(plan, spans, &c, slots);
    free(slots);
    if (rc < 0) {
        free(c.v);
        return fy_error_set(err, FY_ENOMEM, "out of memory");
    }
    out->copies = c.v;
    out->copy_count = c.n;
    out->steps = malloc((2 * c.n + 1) * sizeof *out->steps);
    if (!out->steps) {
        fy_occupancy_free(out);
        return fy_error_set(err, FY_ENOMEM, "out of memory");
    }
    for (size_t k = 0; k < c.n; k++) {
        fy_copy_life *l = &c.v[k];
        if (l->end_s < 0) l->end_s = out->end_s;
        if (l->at + l->bytes > out->extent[l->tier]) out->extent[l->tier] = l->at + l->bytes;
        if (!(l->end_s > l->start_s) || !l->bytes) continue; /* occupies no time */
        out->steps[out->step_count++] =
            (fy_live_step){l->start_s, (int64_t)l->bytes, l->tier, (uint32_t)k};
        out->steps[out->step_count++] =
            (fy_live_step){l->end_s, -(int64_t)l->bytes, l->tier, (uint32_t)k};
    }
    qsort(out->steps, out->step_count, sizeof *out->steps, cmp_step);
    /* The value during [t, next) is the one after every step at t. */
    int64_t live[FY_TIER_COUNT] = {0};
    for (size_t k = 0; k < out->step_count; k++) {
        const fy_live_step *s = &out->steps[k];
        live[s->tier] += s->delta;
        if (k + 1 < out->step_count && out->steps[k + 1].t == s->t) continue;
        for (int t = 0; t < FY_TIER_COUNT; t++)
            if (live[t] > 0 && (uint64_t)live[t] > out->peak[t]) {
                out->peak[t] = (uint64_t)live[t];
                out->peak_s[t] = s->t;
            }
    }
    return 0;
}

void fy_occupancy_free(fy_occupancy *occ)
{
    if (!occ) return;
    free(occ->copies);
    free(occ->steps);
    memset(occ, 0, sizeof *occ);
}
