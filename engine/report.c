/* The run report and its Chrome trace. Busy time of a stream is the sum of its events'
 * spans (they never overlap); of io, the union of its spans (many run at once). A compute
 * stall is the gap before a compute while its stream had nothing to run, blamed on the
 * `after` event that completed last before it started. */
#include "engine/report.h"

#include "ferry/simulate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *fy_engine_queue_name(fy_engine_queue q)
{
    return fy_exec_queue_name((int)q);
}

void fy_engine_report_free(fy_engine_report *r)
{
    if (!r) return;
    free(r->events);
    memset(r, 0, sizeof *r);
    r->stall_worst = -1;
}

static int cmp_span(const void *a, const void *b)
{
    const fy_engine_event_time *x = a, *y = b;
    return (x->start_s > y->start_s) - (x->start_s < y->start_s);
}

/* Union of the io events' spans. */
static double io_busy(const fy_exec *x, const fy_engine_event_time *t, fy_error *err, int *rc)
{
    size_t n = 0;
    fy_engine_event_time *s = malloc((x->queue_events[FY_Q_IO] + 1) * sizeof *s);
    if (!s) {
        *rc = fy_error_set(err, FY_ENOMEM, "out of memory");
        return 0;
    }
    for (size_t i = 0; i < x->count; i++)
        if (x->ev[i].queue == FY_Q_IO) s[n++] = t[i];
    qsort(s, n, sizeof *s, cmp_span);
    double busy = 0, cur_start = 0, cur_end = -1;
    for (size_t k = 0; k < n; k++) {
        if (s[k].start_s > cur_end) {
            if (cur_end > cur_start) busy += cur_end - cur_start;
            cur_start = s[k].start_s;
            cur_end = s[k].end_s;
        } else if (s[k].end_s > cur_end) {
            cur_end = s[k].end_s;
        }
    }
    if (cur_end > cur_start) busy += cur_end - cur_start;
    free(s);
    return busy;
}

/* The `after` event of i that completed last (looking through evicts to what they waited
 * for), or -1. */
static long last_dep(const fy_exec *x, const fy_engine_event_time *t, size_t i)
{
    long best = -1;
    const fy_event *e = fy_plan_event(x->plan, i);
    for (uint32_t k = 0; k < e->after_count; k++) {
        long a = (long)e->after[k];
        if (x->ev[a].queue == FY_Q_NONE) {
            long b = last_dep(x, t, (size_t)a);
            if (b >= 0) a = b;
        }
        if (x->ev[a].queue == x->ev[i].queue) continue; /* the stream's own order is not a stall */
        if (best < 0 || t[a].end_s > t[best].end_s) best = a;
    }
    return best;
}

int fy_report_fill(fy_engine_report *r, const fy_exec *x, const fy_loop *l, fy_error *err)
{
    size_t n = x->count;
    int rc = 0;
    r->event_count = n;
    r->stall_worst = -1;
    r->events = calloc(n ? n : 1, sizeof *r->events);
    if (!r->events) return fy_error_set(err, FY_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        uint64_t s = l->start_ns[i] > l->t0_ns ? l->start_ns[i] - l->t0_ns : 0;
        uint64_t e = l->end_ns[i] > l->t0_ns ? l->end_ns[i] - l->t0_ns : 0;
        r->events[i].start_s = (double)s / 1e9;
        r->events[i].end_s = (double)(e > s ? e : s) / 1e9;
    }
    /* The wall time is the host's: until the engine knew the last event was over, as a
     * caller waiting for the outputs sees it. A device's clock times its events only. */
    r->wall_s = (double)(l->t1_ns - l->t0_ns) / 1e9;
    for (int q = 0; q < FY_Q_COUNT; q++) {
        r->queue[q].events = x->queue_events[q];
        r->queue[q].bytes = x->queue_bytes[q];
    }
    double prev_end[FY_Q_COUNT] = {0};
    for (size_t i = 0; i < n; i++) {
        int q = x->ev[i].queue;
        if (q == FY_Q_NONE || q == FY_Q_IO) continue;
        const fy_engine_event_time *t = &r->events[i];
        r->queue[q].busy_s += t->end_s - t->start_s;
        if (q != FY_Q_GPU && q != FY_Q_HOST) continue;
        double gap = t->start_s - prev_end[q];
        prev_end[q] = t->end_s;
        if (gap <= 1e-6) continue;
        r->queue[q].stall_s += gap;
        r->stall_s += gap;
        r->stall_count++;
        if (gap > r->stall_worst_s) {
            r->stall_worst_s = gap;
            r->stall_worst = (long)i;
        }
    }
    r->queue[FY_Q_IO].busy_s = io_busy(x, r->events, err, &rc);
    if (r->stall_worst >= 0) {
        long d = last_dep(x, r->events, (size_t)r->stall_worst);
        char what[160];
        if (d >= 0)
            snprintf(r->stall_cause, sizeof r->stall_cause, "waited for event %llu (%s)",
                     (unsigned long long)fy_plan_event(x->plan, (size_t)d)->id,
                     fy_exec_describe(x, (size_t)d, what, sizeof what));
        else
            snprintf(r->stall_cause, sizeof r->stall_cause, "waited for the run to start");
    }
    for (int t = 0; t < FY_TIER_COUNT; t++)
        r->peak[t] = l->peak[t];
    return rc;
}

/* ---- Chrome trace ------------------------------------------------------------------ */

/* The measured timeline goes through the simulator's writer, so `ferry run --trace` and
 * `ferry simulate --trace` give the same tracks, names and counters and open side by side. */
int fy_engine_report_trace(const fy_engine_report *r, const fy_plan *plan, const char *path,
                           fy_error *err)
{
    size_t n = fy_plan_event_count(plan);
    if (n != r->event_count)
        return fy_error_set(err, FY_EINVAL, "the report is of a plan of %zu events, not %zu",
                            r->event_count, n);
    fy_span *spans = malloc((n ? n : 1) * sizeof *spans);
    if (!spans) return fy_error_set(err, FY_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        spans[i] = (fy_span){r->events[i].start_s, r->events[i].end_s};
    fy_timeline tl = {.plan = plan, .spans = spans, .title = "ferry run"};
    int rc = fy_timeline_write_trace(&tl, path, err);
    free(spans);
    return rc;
}
