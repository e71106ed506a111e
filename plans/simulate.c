/* The timed replay: a discrete-event simulation of a plan on a machine. Streams (h2d, d2h,
 * gpu, host) run one event at a time in plan order; io events share the nvme link by
 * processor sharing, kept exact in O(log n) per event with a virtual clock that advances at
 * 1/n of real time while n io events run (an event finishes when the virtual clock reaches
 * its tag: the virtual time it joined plus its work at the full rate). An event starts at the
 * instant its last dependency (an `after` event or its stream predecessor) completes. */
#include "plans/simulate_model.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A binary min-heap of (key, event index); ties go to the earlier event, so a run is
 * deterministic. */
typedef struct heap_item {
    double key;
    uint32_t ev;
} heap_item;

typedef struct heap {
    heap_item *v;
    size_t n;
} heap;

static bool item_less(heap_item a, heap_item b)
{
    return a.key < b.key || (a.key == b.key && a.ev < b.ev);
}

static void heap_push(heap *h, heap_item it)
{
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!item_less(it, h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = it;
}

static heap_item heap_pop(heap *h)
{
    heap_item top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && item_less(h->v[c + 1], h->v[c])) c++;
        if (!item_less(h->v[c], last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = last;
    return top;
}

/* The simulation's working state: dependents in CSR form, each event's outstanding
 * dependencies, and the queues' state. */
typedef struct run {
    size_t n;
    int8_t *queue;     /* fy_sim_queue per event */
    double *cost;      /* stream: seconds; io: seconds at the full rate */
    uint32_t *pending; /* dependencies not yet complete */
    uint32_t *dep_off; /* dependents of i: dep[dep_off[i] .. dep_off[i+1]) */
    uint32_t *dep;
    uint32_t *prev;  /* stream predecessor + 1, 0 when none */
    uint32_t *ready; /* events to start now (a stack) */
    size_t ready_n;
    heap streams;      /* key: completion time */
    heap io;           /* key: virtual finish tag */
    uint32_t *io_wait; /* io events waiting for a slot, FIFO */
    size_t wait_head, wait_tail;
    double now, vnow, io_busy;
    fy_span *spans;
} run;

static void run_free(run *r)
{
    free(r->queue);
    free(r->cost);
    free(r->pending);
    free(r->dep_off);
    free(r->dep);
    free(r->prev);
    free(r->ready);
    free(r->streams.v);
    free(r->io.v);
    free(r->io_wait);
}

static double rate_of(const fy_machine *m, const fy_event *e)
{
    if (e->from == FY_TIER_NVME) return m->nvme_read;
    if (e->to == FY_TIER_NVME) return m->nvme_write;
    return e->to == FY_TIER_GPU ? m->h2d : m->d2h;
}

/* Costs every event; refuses events that cannot be costed. */
static int cost_events(const fy_plan *plan, const fy_machine *m, run *r, fy_error *err)
{
    const fy_graph *g = fy_plan_graph(plan);
    for (size_t i = 0; i < r->n; i++) {
        const fy_event *e = fy_plan_event(plan, i);
        fy_sim_queue q = fy_sim_event_queue(plan, e);
        char what[160];
        r->queue[i] = (int8_t)q;
        r->cost[i] = 0;
        if (e->kind == FY_EVENT_EVICT) {
            if (e->tensor < 0 || e->from < 0 || e->from >= FY_TIER_COUNT) goto unknown;
            continue;
        }
        if (q == FY_SIM_QUEUE_NONE) {
            if (e->kind == FY_EVENT_COMPUTE || e->tensor < 0) goto unknown;
            return fy_error_set(err, FY_EINVAL,
                                "event %llu (line %u): %s: no such link; cannot simulate",
                                (unsigned long long)e->id, e->line,
                                fy_sim_event_describe(plan, e, what, sizeof what));
        }
        if (e->kind == FY_EVENT_COMPUTE) {
            const fy_op *op = fy_graph_op(g, (size_t)e->op);
            double rate = op->device == FY_TIER_HOST ? m->host_compute : m->gpu_compute;
            r->cost[i] =
                op->time > 0 ? op->time : (op->flops > 0 && rate > 0 ? op->flops / rate : 0);
        } else {
            if (e->tensor < 0) goto unknown;
            double rate = rate_of(m, e);
            uint64_t bytes = fy_sim_event_bytes(plan, e);
            if (!(rate > 0))
                return fy_error_set(err, FY_EINVAL,
                                    "event %llu (line %u): the machine's rate "
                                    "for %s is not positive",
                                    (unsigned long long)e->id, e->line,
                                    fy_sim_event_describe(plan, e, what, sizeof what));
            r->cost[i] = (double)bytes / rate;
        }
        continue;
    unknown:
        return fy_error_set(err, FY_EINVAL,
                            "event %llu (line %u): %s names an unknown %s; cannot simulate "
                            "(`ferry check` reports it)",
                            (unsigned long long)e->id, e->line,
                            fy_sim_event_describe(plan, e, what, sizeof what),
                            e->kind == FY_EVENT_COMPUTE ? "op"
                            : (e->tensor < 0)           ? "tensor"
                                                        : "tier");
    }
    return 0;
}

/* Dependencies: `after` edges plus each stream event's predecessor on its stream. */
static int build_edges(const fy_plan *plan, run *r, fy_error *err)
{
    long last[FY_SIM_QUEUE_COUNT];
    for (int q = 0; q < FY_SIM_QUEUE_COUNT; q++)
        last[q] = -1;
    size_t edges = 0;
    for (size_t i = 0; i < r->n; i++) {
        const fy_event *e = fy_plan_event(plan, i);
        int q = r->queue[i];
        r->prev[i] = 0;
        if (q > FY_SIM_QUEUE_IO) {
            if (last[q] >= 0) r->prev[i] = (uint32_t)last[q] + 1;
            last[q] = (long)i;
        }
        r->pending[i] = e->after_count + (r->prev[i] ? 1 : 0);
        edges += r->pending[i];
    }
    if (edges >= UINT32_MAX)
        return fy_error_set(err, FY_ERANGE,
                            "the plan has %zu dependencies; at most %u can be "
                            "simulated",
                            edges, UINT32_MAX - 1);
    r->dep = malloc((edges ? edges : 1) * sizeof *r->dep);
    if (!r->dep) return fy_error_set(err, FY_ENOMEM, "out of memory");
    memset(r->dep_off, 0, (r->n + 1) * sizeof *r->dep_off);
    for (size_t i = 0; i < r->n; i++) {
        const fy_event *e = fy_plan_event(plan, i);
        for (uint32_t k = 0; k < e->after_count; k++)
            r->dep_off[e->after[k] + 1]++;
        if (r->prev[i]) r->dep_off[r->prev[i] - 1 + 1]++;
    }
    for (size_t i = 0; i < r->n; i++)
        r->dep_off[i + 1] += r->dep_off[i];
    uint32_t *fill = r->ready; /* borrowed as scratch: a cursor per event */
    memcpy(fill, r->dep_off, r->n * sizeof *fill);
    for (size_t i = 0; i < r->n; i++) {
        const fy_event *e = fy_plan_event(plan, i);
        for (uint32_t k = 0; k < e->after_count; k++)
            r->dep[fill[e->after[k]]++] = (uint32_t)i;
        if (r->prev[i]) r->dep[fill[r->prev[i] - 1]++] = (uint32_t)i;
    }
    return 0;
}

static void start_event(run *r, const fy_sim_options *o, uint32_t i)
{
    int q = r->queue[i];
    if (q != FY_SIM_QUEUE_IO || !o->io_depth || r->io.n < o->io_depth) r->spans[i].start_s = r->now;
    if (q == FY_SIM_QUEUE_NONE) {
        r->spans[i].end_s = r->now;
        r->ready[r->ready_n++] = i | 0x80000000u; /* completes at once */
    } else if (q != FY_SIM_QUEUE_IO) {
        heap_push(&r->streams, (heap_item){r->now + r->cost[i], i});
    } else if (!o->io_depth || r->io.n < o->io_depth) {
        heap_push(&r->io, (heap_item){r->vnow + r->cost[i], i});
    } else {
        r->io_wait[r->wait_tail++] = i;
    }
}

/* Marks i complete now and makes ready the dependents it was the last to wait for. */
static void complete_event(run *r, uint32_t i)
{
    r->spans[i].end_s = r->now;
    for (uint32_t k = r->dep_off[i]; k < r->dep_off[i + 1]; k++)
        if (--r->pending[r->dep[k]] == 0) r->ready[r->ready_n++] = r->dep[k];
}

/* Starts and completes everything that can at the current instant. */
static void drain_ready(run *r, const fy_sim_options *o)
{
    while (r->ready_n) {
        uint32_t i = r->ready[--r->ready_n];
        if (i & 0x80000000u)
            complete_event(r, i & 0x7fffffffu);
        else
            start_event(r, o, i);
    }
}

static void simulate_loop(run *r, const fy_sim_options *o)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->pending[i] == 0) r->ready[r->ready_n++] = (uint32_t)i;
    /* plan order for the events ready at time 0: the stack pops the last pushed first */
    for (size_t a = 0, b = r->ready_n; a + 1 < b; a++, b--) {
        uint32_t t = r->ready[a];
        r->ready[a] = r->ready[b - 1];
        r->ready[b - 1] = t;
    }
    drain_ready(r, o);
    while (r->streams.n || r->io.n) {
        double t_stream = r->streams.n ? r->streams.v[0].key : INFINITY;
        double t_io = INFINITY;
        if (r->io.n) {
            double left = r->io.v[0].key - r->vnow;
            t_io = r->now + (left > 0 ? left : 0) * (double)r->io.n;
        }
        double next = t_stream < t_io ? t_stream : t_io;
        if (r->io.n) {
            r->io_busy += next - r->now;
            r->vnow += (next - r->now) / (double)r->io.n;
        }
        r->now = next;
        if (t_stream <= t_io) {
            complete_event(r, heap_pop(&r->streams).ev);
        } else {
            heap_item it = heap_pop(&r->io);
            r->vnow = it.key; /* no drift: the finisher's tag is the virtual now */
            complete_event(r, it.ev);
            if (r->wait_head < r->wait_tail) {
                uint32_t w = r->io_wait[r->wait_head++];
                r->spans[w].start_s = r->now;
                heap_push(&r->io, (heap_item){r->vnow + r->cost[w], w});
            }
        }
        drain_ready(r, o);
    }
}

static int fill_summary(fy_sim *sim, run *r, fy_error *err);

int fy_simulate(const fy_plan *plan, const fy_machine *machine, const fy_sim_options *options,
                fy_sim **out, fy_error *err)
{
    *out = NULL;
    size_t n = fy_plan_event_count(plan);
    if (n >= 0x7fffffffu)
        return fy_error_set(err, FY_ERANGE,
                            "the plan has %zu events; at most %u can be "
                            "simulated",
                            n, 0x7fffffffu - 1);
    fy_sim *sim = calloc(1, sizeof *sim);
    if (!sim) return fy_error_set(err, FY_ENOMEM, "out of memory");
    sim->plan = plan;
    sim->machine = machine ? *machine : *fy_plan_machine(plan);
    if (options) sim->options = *options;
    run r = {.n = n};
    size_t m = n ? n : 1;
    r.queue = malloc(m);
    r.cost = malloc(m * sizeof *r.cost);
    r.pending = malloc(m * sizeof *r.pending);
    r.dep_off = malloc((m + 1) * sizeof *r.dep_off);
    r.prev = malloc(m * sizeof *r.prev);
    r.ready = malloc(m * sizeof *r.ready);
    r.streams.v = malloc(m * sizeof *r.streams.v);
    r.io.v = malloc(m * sizeof *r.io.v);
    r.io_wait = malloc(m * sizeof *r.io_wait);
    sim->spans = calloc(m, sizeof *sim->spans);
    r.spans = sim->spans;
    int rc = 0;
    if (!r.queue || !r.cost || !r.pending || !r.dep_off || !r.prev || !r.ready || !r.streams.v ||
        !r.io.v || !r.io_wait || !sim->spans)
        rc = fy_error_set(err, FY_ENOMEM, "out of memory");
    if (rc == 0) rc = cost_events(plan, &sim->machine, &r, err);
    if (rc == 0) rc = build_edges(plan, &r, err);
    if (rc == 0) {
        simulate_loop(&r, &sim->options);
        sim->timeline = (fy_timeline){
            .plan = plan, .spans = sim->spans, .title = "ferry simulate", .machine = &sim->machine};
        rc = fill_summary(sim, &r, err);
    }
    run_free(&r);
    if (rc < 0) {
        fy_sim_destroy(sim);
        return rc;
    }
    *out = sim;
    return 0;
}

static int cmp_copy(const void *a, const void *b)
{
    const fy_sim_copy *x = a, *y = b;
    if (x->bytes != y->bytes) return x->bytes > y->bytes ? -1 : 1;
    return (x->tensor > y->tensor) - (x->tensor < y->tensor);
}

/* The copies live at each tier's peak: start <= t < end, as the sweep counted them. */
static int peak_copies(fy_sim *sim, fy_error *err)
{
    const fy_occupancy *o = &sim->occ;
    size_t count[FY_TIER_COUNT] = {0}, total = 0;
    for (int pass = 0; pass < 2; pass++) {
        size_t pos[FY_TIER_COUNT] = {0};
        for (int t = 1; t < FY_TIER_COUNT; t++)
            pos[t] = pos[t - 1] + count[t - 1];
        for (size_t k = 0; k < o->copy_count; k++) {
            const fy_copy_life *l = &o->copies[k];
            double at = o->peak_s[l->tier];
            if (!o->peak[l->tier] || !l->bytes || !(l->start_s <= at && at < l->end_s)) continue;
            if (pass == 0)
                count[l->tier]++, total++;
            else
                sim->peak_copies[pos[l->tier]++] = (fy_sim_copy){l->tensor, l->bytes};
        }
        if (pass == 0) {
            sim->peak_copies = malloc((total ? total : 1) * sizeof *sim->peak_copies);
            if (!sim->peak_copies) return fy_error_set(err, FY_ENOMEM, "out of memory");
        }
    }
    size_t base = 0;
    for (int t = 0; t < FY_TIER_COUNT; t++) {
        fy_sim_tier *st = &sim->summary.tier[t];
        st->peak_copies = sim->peak_copies + base;
        st->peak_copy_count = count[t];
        qsort(sim->peak_copies + base, count[t], sizeof *sim->peak_copies, cmp_copy);
        base += count[t];
    }
    return 0;
}

static int fill_summary(fy_sim *sim, run *r, fy_error *err)
{
    fy_sim_summary *s = &sim->summary;
    const fy_plan *plan = sim->plan;
    s->event_count = r->n;
    s->total_s = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (sim->spans[i].end_s > s->total_s) s->total_s = sim->spans[i].end_s;
        int q = r->queue[i];
        if (q == FY_SIM_QUEUE_NONE) continue;
        fy_sim_queue_stats *qs = &s->queue[q];
        const fy_event *e = fy_plan_event(plan, i);
        qs->events++;
        if (e->kind == FY_EVENT_COMPUTE)
            qs->flops += fy_graph_op(fy_plan_graph(plan), (size_t)e->op)->flops;
        else
            qs->bytes += fy_sim_event_bytes(plan, e);
        if (q != FY_SIM_QUEUE_IO) qs->busy_s += r->cost[i];
    }
    s->queue[FY_SIM_QUEUE_IO].busy_s = r->io_busy;
    for (int q = 0; q < FY_SIM_QUEUE_COUNT; q++)
        s->queue[q].share = s->total_s > 0 ? s->queue[q].busy_s / s->total_s : 0;
    int rc = fy_occupancy_build(plan, sim->spans, &sim->occ, err);
    if (rc < 0) return rc;
    for (int t = 0; t < FY_TIER_COUNT; t++) {
        fy_sim_tier *st = &s->tier[t];
        st->peak = sim->occ.peak[t];
        st->peak_s = sim->occ.peak_s[t];
        st->arena = fy_plan_arena(plan, (fy_tier)t);
        st->extent = sim->occ.extent[t];
        st->capacity = sim->machine.capacity[t];
    }
    if ((rc = peak_copies(sim, err)) < 0) return rc;
    return fy_sim_stalls_build(sim, r->prev, err);
}

void fy_sim_destroy(fy_sim *sim)
{
    if (!sim) return;
    free(sim->spans);
    fy_occupancy_free(&sim->occ);
    free(sim->peak_copies);
    free(sim->stalls);
    free(sim->stall_names);
    free(sim);
}

const fy_sim_summary *fy_sim_summary_get(const fy_sim *sim)
{
    return &sim->summary;
}

const fy_timeline *fy_sim_timeline(const fy_sim *sim)
{
    return &sim->timeline;
}

const fy_machine *fy_sim_machine(const fy_sim *sim)
{
    return &sim->machine;
}
