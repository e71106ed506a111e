/* A timeline as a Chrome trace event file (the JSON that Perfetto and chrome://tracing open):
 * one track per stream, io spread over as many tracks as it had events running at once (a
 * track's slices must not overlap), evicts as instants on their own track, and a counter
 * track of live bytes per tier. The simulator and the engine write their timelines here, so a
 * prediction and a measurement open side by side in the same layout. */
#include "plans/simulate_model.h"

#include "core/buf.h"

#include <stdlib.h>
#include <string.h>

typedef struct lane_end {
    double end;
    uint32_t lane;
} lane_end;

typedef struct start_ix {
    double start;
    uint32_t ev;
} start_ix;

static int cmp_start(const void *a, const void *b)
{
    const start_ix *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    return (x->ev > y->ev) - (x->ev < y->ev);
}

static bool lane_less(lane_end a, lane_end b)
{
    return a.end < b.end || (a.end == b.end && a.lane < b.lane);
}

static void lane_push(lane_end *h, size_t *n, lane_end v)
{
    size_t i = (*n)++;
    while (i && lane_less(v, h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = v;
}

static lane_end lane_pop(lane_end *h, size_t *n)
{
    lane_end top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && lane_less(h[c + 1], h[c])) c++;
        if (!lane_less(h[c], last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

/* Gives each io event a lane so that events of one lane never overlap: in start order, the
 * lane freed earliest, or a new one. Returns the number of lanes, or -1 out of memory. */
static long io_lanes(const fy_plan *plan, const fy_span *spans, uint32_t *lane)
{
    size_t n = fy_plan_event_count(plan), m = 0;
    start_ix *v = malloc((n + 1) * sizeof *v);
    lane_end *h = malloc((n + 1) * sizeof *h);
    if (!v || !h) {
        free(v);
        free(h);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (fy_sim_event_queue(plan, fy_plan_event(plan, i)) == FY_SIM_QUEUE_IO)
            v[m++] = (start_ix){spans[i].start_s, (uint32_t)i};
    qsort(v, m, sizeof *v, cmp_start);
    size_t hn = 0;
    uint32_t lanes = 0;
    for (size_t k = 0; k < m; k++) {
        uint32_t l;
        if (hn && h[0].end <= v[k].start)
            l = lane_pop(h, &hn).lane;
        else
            l = lanes++;
        lane[v[k].ev] = l;
        lane_push(h, &hn, (lane_end){spans[v[k].ev].end_s, l});
    }
    free(v);
    free(h);
    return lanes;
}

/* Track ids: 1..4 the streams h2d d2h gpu host, 5 evicts, 10+k the k-th io lane. */
static int track_of(fy_sim_queue q, uint32_t lane)
{
    return q == FY_SIM_QUEUE_IO ? 10 + (int)lane : q == FY_SIM_QUEUE_NONE ? 5 : (int)q;
}

static void track_name(fy_buf *b, int tid, const char *name, int order)
{
    fy_buf_printf(b,
                  ",\n{\"ph\": \"M\", \"pid\": 1, \"tid\": %d, \"name\": \"thread_name\", "
                  "\"args\": {\"name\": \"%s\"}},\n{\"ph\": \"M\", \"pid\": 1, \"tid\": %d, "
                  "\"name\": \"thread_sort_index\", \"args\": {\"sort_index\": %d}}",
                  tid, name, tid, order);
}

static void event_args(fy_buf *b, const fy_plan *plan, const fy_event *e)
{
    fy_buf_printf(b, ", \"args\": {\"id\": %llu, \"line\": %u", (unsigned long long)e->id, e->line);
    if (e->kind == FY_EVENT_COMPUTE) {
        fy_buf_puts(b, ", \"op\": ");
        fy_buf_json_string(b, e->ref ? e->ref : "");
        if (e->op >= 0)
            fy_buf_printf(b, ", \"flops\": %.6g",
                          fy_graph_op(fy_plan_graph(plan), (size_t)e->op)->flops);
    } else {
        fy_buf_puts(b, ", \"tensor\": ");
        fy_buf_json_string(b, e->ref ? e->ref : "");
        if (e->tensor >= 0)
            fy_buf_printf(
                b, ", \"bytes\": %llu",
                (unsigned long long)fy_graph_tensor(fy_plan_graph(plan), (size_t)e->tensor)->size);
        if (e->kind != FY_EVENT_EVICT)
            fy_buf_printf(b, ", \"at\": %llu", (unsigned long long)e->at);
    }
    fy_buf_puts(b, "}}");
}

static void counters(fy_buf *b, const fy_occupancy *occ)
{
    int64_t live[FY_TIER_COUNT] = {0};
    for (int t = 0; t < FY_TIER_COUNT; t++)
        fy_buf_printf(b,
                      ",\n{\"name\": \"%s live bytes\", \"ph\": \"C\", \"pid\": 1, \"ts\": 0, "
                      "\"args\": {\"bytes\": 0}}",
                      fy_tier_name((fy_tier)t));
    for (size_t k = 0; k < occ->step_count; k++) {
        const fy_live_step *s = &occ->steps[k];
        live[s->tier] += s->delta;
        if (k + 1 < occ->step_count && occ->steps[k + 1].t == s->t &&
            occ->steps[k + 1].tier == s->tier)
            continue; /* one sample per tier and instant */
        fy_buf_printf(b,
                      ",\n{\"name\": \"%s live bytes\", \"ph\": \"C\", \"pid\": 1, \"ts\": %.3f, "
                      "\"args\": {\"bytes\": %lld}}",
                      fy_tier_name((fy_tier)s->tier), s->t * 1e6, (long long)live[s->tier]);
    }
}

int fy_timeline_write_trace(const fy_timeline *tl, const char *path, fy_error *err)
{
    const fy_plan *plan = tl->plan;
    size_t n = fy_plan_event_count(plan);
    fy_occupancy occ;
    int rc = fy_occupancy_build(plan, tl->spans, &occ, err);
    if (rc < 0) return rc;
    uint32_t *lane = calloc(n + 1, sizeof *lane);
    long lanes = lane ? io_lanes(plan, tl->spans, lane) : -1;
    if (lanes < 0) {
        free(lane);
        fy_occupancy_free(&occ);
        return fy_error_set(err, FY_ENOMEM, "out of memory");
    }
    fy_buf b = {0};
    fy_buf_puts(&b, "{\"displayTimeUnit\": \"ms\", \"traceEvents\": [\n");
    fy_buf_puts(&b,
                "{\"ph\": \"M\", \"pid\": 1, \"name\": \"process_name\", \"args\": {\"name\": ");
    fy_buf_json_string(&b, tl->title ? tl->title : "ferry");
    fy_buf_puts(&b, "}}");
    for (long l = 0; l < lanes; l++) {
        char name[32];
        snprintf(name, sizeof name, lanes > 1 ? "io %ld" : "io", l + 1);
        track_name(&b, track_of(FY_SIM_QUEUE_IO, (uint32_t)l), name, (int)l);
    }
    for (int q = FY_SIM_QUEUE_H2D; q < FY_SIM_QUEUE_COUNT; q++)
        track_name(&b, track_of((fy_sim_queue)q, 0), fy_sim_queue_name((fy_sim_queue)q),
                   (int)lanes + q);
    track_name(&b, track_of(FY_SIM_QUEUE_NONE, 0), "evict", (int)lanes + FY_SIM_QUEUE_COUNT);
    for (size_t i = 0; i < n; i++) {
        const fy_event *e = fy_plan_event(plan, i);
        const fy_span *s = &tl->spans[i];
        fy_sim_queue q = fy_sim_event_queue(plan, e);
        char what[200];
        fy_buf_puts(&b, ",\n{\"name\": ");
        fy_buf_json_string(&b, fy_sim_event_describe(plan, e, what, sizeof what));
        if (q == FY_SIM_QUEUE_NONE)
            fy_buf_printf(&b, ", \"ph\": \"i\", \"s\": \"t\", \"ts\": %.3f", s->end_s * 1e6);
        else
            fy_buf_printf(&b, ", \"ph\": \"X\", \"ts\": %.3f, \"dur\": %.3f", s->start_s * 1e6,
                          (s->end_s - s->start_s) * 1e6);
        fy_buf_printf(&b, ", \"pid\": 1, \"tid\": %d, \"cat\": \"%s\"", track_of(q, lane[i]),
                      fy_event_kind_name(e->kind));
        event_args(&b, plan, e);
    }
    counters(&b, &occ);
    fy_buf_puts(&b, "\n]}\n");
    rc = fy_buf_write_file(&b, path, err);
    fy_buf_free(&b);
    free(lane);
    fy_occupancy_free(&occ);
    return rc;
}
