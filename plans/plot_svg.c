/* A timeline as an SVG picture a person reads at a glance: one panel per tier with its live
 * bytes over time (each on its own scale, with its arena and, when near, its capacity), and
 * below on the same time axis a lane per queue with its events and the compute queues' waits.
 * Drawing stays proportional to the width, not the plan: boxes and steps closer than a pixel
 * are merged (a merged memory step keeps the highest value, so no peak is hidden). */
#include "plans/simulate_model.h"

#include "core/buf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define W 1100.0   /* picture width */
#define LEFT 120.0 /* room for axis labels */
#define RIGHT 24.0
#define PANEL_H 150.0 /* one tier's memory panel */
#define PANEL_GAP 34.0
#define LANE_H 26.0
#define TOP 58.0

static const char *const tier_color[FY_TIER_COUNT] = {"#2a9d3f", "#2f6fb3", "#d9822b"};
static const char *const kind_color[FY_EVENT_KIND_COUNT] = {"#4c8fd6", "#9b59b6", "#888888",
                                                            "#3aa655"};

typedef struct plot {
    fy_buf *b;
    double t_end; /* seconds at the right edge */
    double plot_w;
} plot;

static double xpos(const plot *p, double t)
{
    return LEFT + (p->t_end > 0 ? t / p->t_end : 0) * p->plot_w;
}

/* A round step (1, 2 or 5 times a power of ten) giving about `want` ticks over range. */
static double nice_step(double range, double want)
{
    if (!(range > 0)) return 1;
    double raw = range / want, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

/* The unit bytes are labelled in for a panel whose top is max. */
static void byte_unit(double max, double *unit, const char **name)
{
    static const char *const names[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int k = 0;
    while (k < 4 && max >= 1024.0 * pow(1024, k))
        k++;
    *unit = pow(1024, k);
    *name = names[k];
}

static void text(fy_buf *b, double x, double y, const char *anchor, const char *style,
                 const char *s)
{
    fy_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\"%s>", x, y, anchor,
                  style ? style : "");
    for (; *s; s++) {
        if (*s == '<')
            fy_buf_puts(b, "&lt;");
        else if (*s == '>')
            fy_buf_puts(b, "&gt;");
        else if (*s == '&')
            fy_buf_puts(b, "&amp;");
        else
            fy_buf_append(b, s, 1);
    }
    fy_buf_puts(b, "</text>\n");
}

static void time_axis(plot *p, double y_top, double y_bottom, bool labels)
{
    double step = nice_step(p->t_end, 8);
    char buf[32];
    for (double t = 0; t <= p->t_end * (1 + 1e-9); t += step) {
        double x = xpos(p, t);
        fy_buf_printf(p->b,
                      "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                      "class=\"grid\"/>\n",
                      x, y_top, x, y_bottom);
        if (labels)
            text(p->b, x, y_bottom + 15, "middle", NULL, fy_time_format(t, buf, sizeof buf));
    }
}

/* One tier's panel: live bytes as a filled step curve, arena and capacity lines, legend. */
static void tier_panel(plot *p, const fy_timeline *tl, const fy_occupancy *occ, int tier, double y0)
{
    fy_buf *b = p->b;
    const fy_machine *m = tl->machine ? tl->machine : fy_plan_machine(tl->plan);
    uint64_t arena = fy_plan_arena(tl->plan, (fy_tier)tier), cap = m->capacity[tier];
    double top = (double)(occ->peak[tier] > arena ? occ->peak[tier] : arena);
    bool cap_shown = cap > 0 && (double)cap <= 1.6 * top;
    if (cap_shown && (double)cap > top) top = (double)cap;
    if (!(top > 0)) top = 1;
    double unit;
    const char *uname;
    byte_unit(top, &unit, &uname);
    double step = nice_step(top / unit, 4) * unit;
    top = ceil(top * 1.08 / step) * step;
    double y1 = y0 + PANEL_H;
#define YPOS(v) (y1 - (double)(v) / top * PANEL_H)
    char buf[64], a[32], c[32];
    for (double v = 0; v <= top * (1 + 1e-9); v += step) {
        fy_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>\n",
                      LEFT, YPOS(v), LEFT + p->plot_w, YPOS(v));
        snprintf(buf, sizeof buf, "%g %s", v / unit, uname);
        text(b, LEFT - 6, YPOS(v) + 4, "end", NULL, buf);
    }
    time_axis(p, y0, y1, false);
    /* the step curve: per pixel column the highest value and the value it ends on */
    fy_buf_printf(b,
                  "<path fill=\"%s\" fill-opacity=\"0.25\" stroke=\"%s\" stroke-width=\"1.5\" "
                  "d=\"M%.1f %.1f",
                  tier_color[tier], tier_color[tier], LEFT, y1);
    int64_t live = 0;
    double last_y = y1, col = -1, col_max = 0;
    for (size_t k = 0; k < occ->step_count; k++) {
        const fy_live_step *s = &occ->steps[k];
        if (s->tier != (uint32_t)tier) continue;
        live += s->delta;
        double x = floor(xpos(p, s->t) * 2) / 2;
        if (x != col) {
            if (col >= 0) fy_buf_printf(b, " V%.1f V%.1f", YPOS(col_max), last_y);
            fy_buf_printf(b, " H%.1f", x);
            col = x;
            col_max = (double)live;
        } else if ((double)live > col_max) {
            col_max = (double)live;
        }
        last_y = YPOS(live);
    }
    if (col >= 0) fy_buf_printf(b, " V%.1f V%.1f", YPOS(col_max), last_y);
    fy_buf_printf(b, " H%.1f V%.1f Z\"/>\n", LEFT + p->plot_w, y1);
    if (arena) {
        fy_buf_printf(b,
                      "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                      "stroke-dasharray=\"2,3\" stroke-width=\"1.5\"/>\n",
                      LEFT, YPOS(arena), LEFT + p->plot_w, YPOS(arena), tier_color[tier]);
    }
    if (cap_shown)
        fy_buf_printf(b,
                      "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#c0392b\" "
                      "stroke-dasharray=\"8,4\" stroke-width=\"2\"/>\n",
                      LEFT, YPOS(cap), LEFT + p->plot_w, YPOS(cap));
    if (occ->peak[tier])
        fy_buf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>\n",
                      xpos(p, occ->peak_s[tier]), YPOS(occ->peak[tier]), tier_color[tier]);
    fy_buf_printf(b,
                  "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" class=\"frame\"/>\n",
                  LEFT, y0, p->plot_w, PANEL_H);
    snprintf(buf, sizeof buf, "%s memory", fy_tier_name((fy_tier)tier));
    text(b, LEFT, y0 - 8, "start", " class=\"h\"", buf);
    char legend[256];
    snprintf(legend, sizeof legend, "peak %s at %s  ·  arena %s (dotted)  ·  capacity %s%s",
             fy_size_format_human(occ->peak[tier], a, sizeof a),
             fy_time_format(occ->peak_s[tier], c, sizeof c),
             fy_size_format_human(arena, buf, sizeof buf),
             fy_size_format_human(cap, legend + 200, 40),
             cap_shown ? " (red dashes)" : " (off the scale)");
    text(b, LEFT + p->plot_w, y0 - 8, "end", NULL, legend);
#undef YPOS
}

typedef struct box {
    double x0, x1;
    int kind;
} box;

/* One queue's lane: its events' boxes, merged when closer than a pixel; a compute lane
 * shades the time its queue waited between ops. */
static void lane(plot *p, const fy_timeline *tl, fy_sim_queue q, double y)
{
    fy_buf *b = p->b;
    const fy_plan *plan = tl->plan;
    size_t n = fy_plan_event_count(plan);
    bool compute = q == FY_SIM_QUEUE_GPU || q == FY_SIM_QUEUE_HOST;
    fy_buf_printf(b,
                  "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                  "fill=\"#f6f6f6\"/>\n",
                  LEFT, y, p->plot_w, LANE_H - 6);
    double prev_end = 0;
    box cur = {-1, -1, -1};
    for (size_t i = 0; i < n; i++) {
        const fy_event *e = fy_plan_event(plan, i);
        if (fy_sim_event_queue(plan, e) != q) continue;
        const fy_span *s = &tl->spans[i];
        if (compute && s->start_s > prev_end) {
            double x0 = xpos(p, prev_end), x1 = xpos(p, s->start_s);
            if (x1 - x0 >= 0.5)
                fy_buf_printf(b,
                              "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                              "fill=\"#e74c3c\" fill-opacity=\"0.25\"/>\n",
                              x0, y, x1 - x0, LANE_H - 6);
        }
        if (s->end_s > prev_end) prev_end = s->end_s;
        double x0 = xpos(p, s->start_s), x1 = xpos(p, s->end_s);
        if (cur.kind == (int)e->kind && x0 <= cur.x1 + 1.0) {
            if (x1 > cur.x1) cur.x1 = x1;
            continue;
        }
        if (cur.kind >= 0)
            fy_buf_printf(b,
                          "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                          "fill=\"%s\" stroke=\"#fff\" stroke-width=\"0.5\"/>\n",
                          cur.x0, y + 1, fmax(cur.x1 - cur.x0, 0.8), LANE_H - 8,
                          kind_color[cur.kind]);
        cur = (box){x0, x1, (int)e->kind};
    }
    if (cur.kind >= 0)
        fy_buf_printf(b,
                      "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" "
                      "stroke=\"#fff\" stroke-width=\"0.5\"/>\n",
                      cur.x0, y + 1, fmax(cur.x1 - cur.x0, 0.8), LANE_H - 8, kind_color[cur.kind]);
    text(b, LEFT - 6, y + LANE_H / 2 + 1, "end", NULL, fy_sim_queue_name(q));
}

static void legend_item(fy_buf *b, double x, double y, const char *color, const char *opacity,
                        const char *label)
{
    fy_buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"%s\"%s/>\n", x,
                  y - 10, color, opacity);
    text(b, x + 17, y, "start", NULL, label);
}

int fy_timeline_write_svg(const fy_timeline *tl, const char *path, fy_error *err)
{
    const fy_plan *plan = tl->plan;
    fy_occupancy occ;
    int rc = fy_occupancy_build(plan, tl->spans, &occ, err);
    if (rc < 0) return rc;
    bool tier_on[FY_TIER_COUNT], queue_on[FY_SIM_QUEUE_COUNT] = {false};
    int tiers = 0, queues = 0;
    for (int t = 0; t < FY_TIER_COUNT; t++) {
        tier_on[t] = t == FY_TIER_GPU || occ.peak[t] || fy_plan_arena(plan, (fy_tier)t);
        tiers += tier_on[t];
    }
    for (size_t i = 0; i < fy_plan_event_count(plan); i++) {
        fy_sim_queue q = fy_sim_event_queue(plan, fy_plan_event(plan, i));
        if (q != FY_SIM_QUEUE_NONE && !queue_on[q]) queue_on[q] = true, queues++;
    }
    fy_buf b = {0};
    plot p = {.b = &b, .t_end = occ.end_s, .plot_w = W - LEFT - RIGHT};
    double lanes_y = TOP + tiers * (PANEL_H + PANEL_GAP) + 6;
    double h = lanes_y + queues * LANE_H + 62;
    fy_buf_printf(&b,
                  "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                  "viewBox=\"0 0 %.0f %.0f\" font-family=\"DejaVu Sans, Helvetica, Arial, "
                  "sans-serif\" font-size=\"12\">\n",
                  W, h, W, h);
    fy_buf_puts(&b, "<style>.grid{stroke:#e3e3e3;stroke-width:1}.frame{fill:none;stroke:#999}"
                    ".h{font-weight:bold;font-size:13px}.t{font-weight:bold;font-size:16px}"
                    "</style>\n<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n");
    char title[512], a[32];
    const char *pp = fy_plan_path(plan);
    const char *base = pp ? strrchr(pp, '/') : NULL;
    snprintf(title, sizeof title, "%s: %s, %zu events, %s", tl->title ? tl->title : "ferry",
             base ? base + 1
             : pp ? pp
                  : "plan",
             fy_plan_event_count(plan), fy_time_format(occ.end_s, a, sizeof a));
    text(&b, LEFT, 26, "start", " class=\"t\"", title);
    double y = TOP;
    for (int t = 0; t < FY_TIER_COUNT; t++) {
        if (!tier_on[t]) continue;
        tier_panel(&p, tl, &occ, t, y);
        y += PANEL_H + PANEL_GAP;
    }
    text(&b, LEFT, lanes_y - 8, "start", " class=\"h\"", "queues");
    y = lanes_y;
    for (int q = 0; q < FY_SIM_QUEUE_COUNT; q++) {
        if (!queue_on[q]) continue;
        lane(&p, tl, (fy_sim_queue)q, y);
        y += LANE_H;
    }
    time_axis(&p, lanes_y - 2, y, true);
    text(&b, LEFT + p.plot_w, y + 40, "end", NULL, "time since the start of the plan");
    double ly = y + 40, lx = LEFT;
    static const char *const names[] = {"load", "offload", "evict", "compute"};
    for (int k = 0; k < FY_EVENT_KIND_COUNT; k++) {
        if (k == FY_EVENT_EVICT) continue;
        legend_item(&b, lx, ly, kind_color[k], "", names[k]);
        lx += 95;
    }
    legend_item(&b, lx, ly, "#e74c3c", " fill-opacity=\"0.25\"", "compute waiting");
    fy_buf_puts(&b, "</svg>\n");
    rc = fy_buf_write_file(&b, path, err);
    fy_buf_free(&b);
    fy_occupancy_free(&occ);
    return rc;
}
