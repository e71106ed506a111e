/* Summary of a graph for people: counts and bytes by kind and home, total flops, and the
 * largest single-op working set, which bounds from below the gpu memory of any plan. */
#include "graph/graph_model.h"

#include <string.h>

uint64_t fy_graph_op_working_set(const fy_graph *g, size_t index)
{
    const fy_op *op = &g->ops[index];
    uint64_t bytes = 0;
    /* Ops name a handful of tensors: a quadratic scan for repeats is cheaper than a set. */
    for (uint32_t i = 0; i < op->read_count + op->write_count; i++) {
        uint32_t t = i < op->read_count ? op->reads[i] : op->writes[i - op->read_count];
        bool seen = false;
        for (uint32_t j = 0; j < i && !seen; j++) {
            uint32_t u = j < op->read_count ? op->reads[j] : op->writes[j - op->read_count];
            seen = u == t;
        }
        if (!seen) bytes += g->tensors[t].size;
    }
    return bytes;
}

void fy_graph_summarize(const fy_graph *g, fy_graph_summary *s)
{
    memset(s, 0, sizeof *s);
    s->op_count = g->op_count;
    s->tensor_count = g->tensor_count;
    s->max_working_set_op = -1;
    for (size_t i = 0; i < g->tensor_count; i++) {
        const fy_tensor *t = &g->tensors[i];
        s->count_by_kind[t->kind]++;
        s->bytes_by_kind[t->kind] += t->size;
        s->bytes_by_home[t->home == FY_TIER_NONE ? FY_TIER_COUNT : t->home] += t->size;
        s->total_bytes += t->size;
    }
    for (size_t i = 0; i < g->op_count; i++) {
        uint64_t ws = fy_graph_op_working_set(g, i);
        if (ws > s->max_working_set) {
            s->max_working_set = ws;
            s->max_working_set_op = (long)i;
        }
        s->total_flops += g->ops[i].flops;
        s->total_time += g->ops[i].time;
    }
}
