/* The simulation's summary as text (what `ferry simulate` prints), as JSON (`--json`, for
 * tools: exact integers for bytes, seconds as numbers), and next to a run's measurement. Both
 * forms read only the summary, so they always say the same thing. */
#include "plans/simulate_model.h"

#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEXT_PEAK_TENSORS 6
#define TEXT_STALL_CAUSES 8

static const char *size_h(uint64_t bytes, char *buf, size_t size)
{
    return fy_size_format_human(bytes, buf, size);
}

static const char *time_h(double s, char *buf, size_t size)
{
    return fy_time_format(s, buf, size);
}

static void text_tiers(fy_buf *b, const fy_sim *sim)
{
    const fy_sim_summary *s = &sim->summary;
    const fy_graph *g = fy_plan_graph(sim->plan);
    char a[32], c[32], d[32], e[32], f[32];
    fy_buf_printf(b, "memory   %10s %10s %10s %10s %10s   made of, at the peak\n", "peak", "at",
                  "arena", "placed", "capacity");
    for (int t = 0; t < FY_TIER_COUNT; t++) {
        const fy_sim_tier *st = &s->tier[t];
        fy_buf_printf(b, "  %-6s %10s %10s %10s %10s %10s  ", fy_tier_name((fy_tier)t),
                      size_h(st->peak, a, sizeof a),
                      st->peak ? time_h(st->peak_s, c, sizeof c) : "-",
                      size_h(st->arena, d, sizeof d), size_h(st->extent, e, sizeof e),
                      size_h(st->capacity, f, sizeof f));
        size_t shown =
            st->peak_copy_count < TEXT_PEAK_TENSORS ? st->peak_copy_count : TEXT_PEAK_TENSORS;
        for (size_t k = 0; k < shown; k++)
            fy_buf_printf(b, "%s %s %s", k ? "," : "",
                          fy_graph_tensor(g, (size_t)st->peak_copies[k].tensor)->name,
                          size_h(st->peak_copies[k].bytes, a, sizeof a));
        if (st->peak_copy_count > shown) {
            uint64_t rest = 0;
            for (size_t k = shown; k < st->peak_copy_count; k++)
                rest += st->peak_copies[k].bytes;
            fy_buf_printf(b, ", and %zu more (%s)", st->peak_copy_count - shown,
                          size_h(rest, a, sizeof a));
        }
        if (st->peak > st->capacity) fy_buf_puts(b, "  OVER CAPACITY");
        fy_buf_puts(b, "\n");
    }
}

static void text_queues(fy_buf *b, const fy_sim_summary *s)
{
    char a[32], c[32], d[32], e[32];
    fy_buf_printf(b, "queues   %8s %10s %10s %10s %6s %10s\n", "events", "bytes", "flops", "busy",
                  "share", "stalled");
    for (int q = 0; q < FY_SIM_QUEUE_COUNT; q++) {
        const fy_sim_queue_stats *qs = &s->queue[q];
        bool compute = q == FY_SIM_QUEUE_GPU || q == FY_SIM_QUEUE_HOST;
        fy_buf_printf(b, "  %-6s %8zu %10s %10s %10s %5.1f%% %10s\n",
                      fy_sim_queue_name((fy_sim_queue)q), qs->events,
                      compute ? "-" : size_h(qs->bytes, a, sizeof a),
                      compute ? fy_flops_format(qs->flops, c, sizeof c) : "-",
                      time_h(qs->busy_s, d, sizeof d), 100.0 * qs->share,
                      compute ? time_h(qs->stall_s, e, sizeof e) : "-");
    }
}

static void text_causes(fy_buf *b, const char *label, const fy_sim_stall *v, size_t n)
{
    char a[32];
    fy_buf_printf(b, "  by %s:", label);
    size_t shown = n < TEXT_STALL_CAUSES ? n : TEXT_STALL_CAUSES;
    for (size_t k = 0; k < shown; k++)
        fy_buf_printf(b, "%s %s %s (%zu)", k ? "," : "", v[k].what,
                      time_h(v[k].wait_s, a, sizeof a), v[k].count);
    if (n > shown) fy_buf_printf(b, ", and %zu more", n - shown);
    fy_buf_puts(b, "\n");
}

char *fy_sim_format_text(const fy_sim *sim)
{
    const fy_sim_summary *s = &sim->summary;
    const fy_plan *plan = sim->plan;
    const char *path = fy_plan_path(plan);
    fy_buf b = {0};
    char a[32], c[32], d[32];
    fy_buf_printf(&b, "plan %s: %zu events, graph %s\n", path ? path : "(in memory)",
                  s->event_count, fy_graph_name(fy_plan_graph(plan)));
    fy_buf_printf(&b, "predicted time %s\n", time_h(s->total_s, a, sizeof a));
    text_tiers(&b, sim);
    text_queues(&b, s);
    if (s->stall_s > 0) {
        fy_buf_printf(&b, "compute stalls %s (%.1f%% of the time): gpu %s, host %s\n",
                      time_h(s->stall_s, a, sizeof a),
                      s->total_s > 0 ? 100.0 * s->stall_s / s->total_s : 0,
                      time_h(s->queue[FY_SIM_QUEUE_GPU].stall_s, c, sizeof c),
                      time_h(s->queue[FY_SIM_QUEUE_HOST].stall_s, d, sizeof d));
        text_causes(&b, "tensor", s->stall_by_tensor, s->stall_tensor_count);
        text_causes(&b, "kind", s->stall_by_kind, s->stall_kind_count);
    } else {
        fy_buf_puts(&b, "compute stalls none: the compute queues never waited for a transfer\n");
    }
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    return b.data;
}

static void json_causes(fy_buf *b, const char *key, const fy_sim_stall *v, size_t n)
{
    fy_buf_printf(b, ",\n    \"%s\": [", key);
    for (size_t k = 0; k < n; k++) {
        fy_buf_printf(b, "%s\n      {\"what\": ", k ? "," : "");
        fy_buf_json_string(b, v[k].what);
        fy_buf_printf(b, ", \"wait_s\": %.9g, \"count\": %zu}", v[k].wait_s, v[k].count);
    }
    fy_buf_puts(b, n ? "\n    ]" : "]");
}

char *fy_sim_format_json(const fy_sim *sim)
{
    const fy_sim_summary *s = &sim->summary;
    const fy_plan *plan = sim->plan;
    const fy_graph *g = fy_plan_graph(plan);
    const fy_machine *m = &sim->machine;
    fy_buf b = {0};
    fy_buf_puts(&b, "{\n  \"plan\": ");
    fy_buf_json_string(&b, fy_plan_path(plan) ? fy_plan_path(plan) : "");
    fy_buf_puts(&b, ",\n  \"graph\": ");
    fy_buf_json_string(&b, fy_graph_name(g));
    fy_buf_printf(&b, ",\n  \"events\": %zu,\n  \"total_s\": %.9g,\n", s->event_count, s->total_s);
    fy_buf_printf(&b,
                  "  \"machine\": {\"gpu_compute\": %.6g, \"host_compute\": %.6g, \"h2d\": %.6g, "
                  "\"d2h\": %.6g, \"nvme_read\": %.6g, \"nvme_write\": %.6g, \"io_depth\": %u},\n",
                  m->gpu_compute, m->host_compute, m->h2d, m->d2h, m->nvme_read, m->nvme_write,
                  sim->options.io_depth);
    fy_buf_puts(&b, "  \"tiers\": {");
    for (int t = 0; t < FY_TIER_COUNT; t++) {
        const fy_sim_tier *st = &s->tier[t];
        fy_buf_printf(&b,
                      "%s\n    \"%s\": {\"peak\": %llu, \"peak_s\": %.9g, \"arena\": %llu, "
                      "\"placed\": %llu, \"capacity\": %llu, \"over_capacity\": %s, "
                      "\"peak_tensors\": [",
                      t ? "," : "", fy_tier_name((fy_tier)t), (unsigned long long)st->peak,
                      st->peak_s, (unsigned long long)st->arena, (unsigned long long)st->extent,
                      (unsigned long long)st->capacity, st->peak > st->capacity ? "true" : "false");
        for (size_t k = 0; k < st->peak_copy_count; k++) {
            fy_buf_printf(&b, "%s{\"tensor\": ", k ? ", " : "");
            fy_buf_json_string(&b, fy_graph_tensor(g, (size_t)st->peak_copies[k].tensor)->name);
            fy_buf_printf(&b, ", \"bytes\": %llu}", (unsigned long long)st->peak_copies[k].bytes);
        }
        fy_buf_puts(&b, "]}");
    }
    fy_buf_puts(&b, "\n  },\n  \"queues\": {");
    for (int q = 0; q < FY_SIM_QUEUE_COUNT; q++) {
        const fy_sim_queue_stats *qs = &s->queue[q];
        fy_buf_printf(&b,
                      "%s\n    \"%s\": {\"events\": %zu, \"bytes\": %llu, \"flops\": %.9g, "
                      "\"busy_s\": %.9g, \"share\": %.6f, \"stall_s\": %.9g}",
                      q ? "," : "", fy_sim_queue_name((fy_sim_queue)q), qs->events,
                      (unsigned long long)qs->bytes, qs->flops, qs->busy_s, qs->share, qs->stall_s);
    }
    fy_buf_printf(&b, "\n  },\n  \"stalls\": {\n    \"total_s\": %.9g", s->stall_s);
    json_causes(&b, "by_tensor", s->stall_by_tensor, s->stall_tensor_count);
    json_causes(&b, "by_kind", s->stall_by_kind, s->stall_kind_count);
    fy_buf_puts(&b, "\n  }\n}\n");
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    return b.data;
}

/* One row of the comparison: predicted, measured, and the measurement's distance from the
 * prediction in percent of the prediction. */
static void compare_row(fy_buf *b, const char *what, const char *pred, const char *meas, double p,
                        double m)
{
    fy_buf_printf(b, "  %-14s %12s %12s", what, pred, meas);
    if (p > 0)
        fy_buf_printf(b, " %+8.1f%%\n", 100.0 * (m - p) / p);
    else
        fy_buf_puts(b, "        -\n");
}

char *fy_sim_format_compare(const fy_sim *sim, const fy_sim_measured *meas)
{
    const fy_sim_summary *s = &sim->summary;
    fy_buf b = {0};
    char p[32], m[32], what[64];
    fy_buf_printf(&b, "  %-14s %12s %12s %9s\n", "", "predicted", "measured", "error");
    compare_row(&b, "time", time_h(s->total_s, p, sizeof p), time_h(meas->wall_s, m, sizeof m),
                s->total_s, meas->wall_s);
    for (int q = 0; q < FY_SIM_QUEUE_COUNT; q++) {
        if (!s->queue[q].events) continue;
        snprintf(what, sizeof what, "%s busy", fy_sim_queue_name((fy_sim_queue)q));
        compare_row(&b, what, time_h(s->queue[q].busy_s, p, sizeof p),
                    time_h(meas->busy_s[q], m, sizeof m), s->queue[q].busy_s, meas->busy_s[q]);
    }
    compare_row(&b, "compute stalls", time_h(s->stall_s, p, sizeof p),
                time_h(meas->stall_s, m, sizeof m), s->stall_s, meas->stall_s);
    for (int t = 0; t < FY_TIER_COUNT; t++) {
        if (!s->tier[t].arena && !meas->arena[t]) continue;
        snprintf(what, sizeof what, "%s peak", fy_tier_name((fy_tier)t));
        compare_row(&b, what, size_h(s->tier[t].peak, p, sizeof p),
                    size_h(meas->peak[t], m, sizeof m), (double)s->tier[t].peak,
                    (double)meas->peak[t]);
        snprintf(what, sizeof what, "%s arena", fy_tier_name((fy_tier)t));
        compare_row(&b, what, size_h(s->tier[t].arena, p, sizeof p),
                    size_h(meas->arena[t], m, sizeof m), (double)s->tier[t].arena,
                    (double)meas->arena[t]);
    }
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    return b.data;
}
