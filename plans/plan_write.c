/* Writes a plan as canonical YAML: a fixed header, then one event per line in the design's
 * flow style with keys in a fixed order and offsets as plain integers. A plan written, read
 * back and written again gives the same bytes. */
#include "plans/plan_model.h"

#include "core/buf.h"

#include <stdio.h>
#include <string.h>

static void put_event(fy_buf *b, const fy_plan *plan, const fy_event *ev)
{
    fy_buf_puts(b, "  - {id: ");
    fy_buf_u64(b, ev->id);
    fy_buf_puts(b, ", do: ");
    fy_buf_puts(b, fy_event_kind_name(ev->kind));
    if (ev->kind == FY_EVENT_COMPUTE) {
        fy_buf_puts(b, ", op: ");
        fy_buf_scalar(b, ev->ref);
        if (ev->place_count) {
            fy_buf_puts(b, ", at: {");
            for (uint32_t i = 0; i < ev->place_count; i++) {
                if (i) fy_buf_puts(b, ", ");
                fy_buf_scalar(b, ev->places[i].name);
                fy_buf_puts(b, ": ");
                fy_buf_u64(b, ev->places[i].offset);
            }
            fy_buf_puts(b, "}");
        }
    } else {
        fy_buf_puts(b, ", tensor: ");
        fy_buf_scalar(b, ev->ref);
        fy_buf_puts(b, ", from: ");
        fy_buf_puts(b, fy_tier_name(ev->from));
        if (ev->kind != FY_EVENT_EVICT) {
            fy_buf_puts(b, ", to: ");
            fy_buf_puts(b, fy_tier_name(ev->to));
            fy_buf_puts(b, ", at: ");
            fy_buf_u64(b, ev->at);
        }
    }
    if (ev->after_count) {
        fy_buf_puts(b, ", after: [");
        for (uint32_t i = 0; i < ev->after_count; i++) {
            if (i) fy_buf_puts(b, ", ");
            fy_buf_u64(b, plan->events[ev->after[i]].id);
        }
        fy_buf_puts(b, "]");
    }
    fy_buf_puts(b, "}\n");
}

static int put_plan(fy_buf *b, const fy_plan *plan, const char *graph_file, fy_error *err)
{
    char digest[65], size[32];
    int rc = fy_graph_digest(plan->graph, digest, err);
    if (rc < 0) return rc;
    fy_buf_puts(b, "ferry: plan/1\n");
    if (plan->policy) {
        fy_buf_puts(b, "policy: ");
        fy_buf_scalar(b, plan->policy);
        fy_buf_puts(b, "\n");
    }
    fy_buf_puts(b, "graph: {");
    if (graph_file) {
        fy_buf_puts(b, "file: ");
        fy_buf_scalar(b, graph_file);
        fy_buf_puts(b, ", ");
    }
    fy_buf_printf(b, "sha256: %s}\nmachine: {", digest);
    for (int t = 0; t < FY_TIER_COUNT; t++) {
        fy_buf_printf(b, "%s%s: ", t ? ", " : "", fy_tier_name((fy_tier)t));
        fy_machine_write_tier(b, &plan->machine, (fy_tier)t, true);
    }
    fy_buf_puts(b, "}\narenas: {");
    bool first = true;
    for (int t = 0; t < FY_TIER_COUNT; t++) {
        if (!plan->arena[t]) continue;
        fy_buf_printf(b, "%s%s: %s", first ? "" : ", ", fy_tier_name((fy_tier)t),
                      fy_size_format_exact(plan->arena[t], size, sizeof size));
        first = false;
    }
    fy_buf_puts(b, plan->count ? "}\nevents:\n" : "}\nevents: []\n");
    for (size_t i = 0; i < plan->count; i++)
        put_event(b, plan, &plan->events[i]);
    return 0;
}

int fy_plan_save(const fy_plan *plan, const char *path, const char *graph_file, fy_error *err)
{
    fy_buf b = {0};
    int rc = put_plan(&b, plan, graph_file, err);
    if (rc == 0) rc = fy_buf_write_file(&b, path, err);
    fy_buf_free(&b);
    return rc;
}
