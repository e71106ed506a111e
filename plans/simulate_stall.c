/* Compute stalls and their causes. A compute stalls when it starts later than its stream
 * predecessor completed (or than 0, for a stream's first): the whole gap is blamed on the
 * `after` event that completed last, looking through evicts (they take no time, so what an
 * evict waited for is what the compute waited for). Causes are added up by tensor and by kind
 * of event; a timeline's stalls sum to each compute queue's idle time before its last op. */
#include "plans/simulate_model.h"

#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct acc {
    double wait_s;
    size_t count;
    size_t name; /* offset in the names buffer */
    char key[96];
} acc;

/* The event that released i: its `after` event completing last, through evicts. */
static long culprit(const fy_plan *plan, const fy_span *spans, size_t i)
{
    long best = -1;
    for (;;) {
        const fy_event *e = fy_plan_event(plan, i);
        best = -1;
        for (uint32_t k = 0; k < e->after_count; k++) {
            uint32_t a = e->after[k];
            if (best < 0 || spans[a].end_s > spans[best].end_s ||
                (spans[a].end_s == spans[best].end_s && (long)a > best))
                best = (long)a;
        }
        if (best < 0 || fy_plan_event(plan, (size_t)best)->kind != FY_EVENT_EVICT) return best;
        i = (size_t)best;
    }
}

static int cmp_acc(const void *a, const void *b)
{
    const acc *x = a, *y = b;
    if (x->wait_s != y->wait_s) return x->wait_s > y->wait_s ? -1 : 1;
    return strcmp(x->key, y->key);
}

/* Appends an entry named key. */
static int append(acc **v, size_t *n, size_t *cap, const char *key, double wait)
{
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 16;
        acc *p = realloc(*v, c * sizeof *p);
        if (!p) return FY_ENOMEM;
        *v = p;
        *cap = c;
    }
    acc *a = &(*v)[(*n)++];
    memset(a, 0, sizeof *a);
    snprintf(a->key, sizeof a->key, "%s", key);
    a->wait_s = wait;
    a->count = 1;
    return 0;
}

/* Adds wait to the entry named key (a short list: kinds of event are few). */
static int add_kind(acc **v, size_t *n, size_t *cap, const char *key, double wait)
{
    for (size_t k = 0; k < *n; k++)
        if (!strcmp((*v)[k].key, key)) {
            (*v)[k].wait_s += wait;
            (*v)[k].count++;
            return 0;
        }
    return append(v, n, cap, key, wait);
}

static void kind_key(const fy_plan *plan, const fy_event *e, char *buf, size_t size)
{
    const fy_graph *g = fy_plan_graph(plan);
    if (e->kind == FY_EVENT_COMPUTE)
        snprintf(buf, size, "compute %s",
                 fy_tier_name(e->op >= 0 ? fy_graph_op(g, (size_t)e->op)->device : FY_TIER_NONE));
    else
        snprintf(buf, size, "%s %s->%s %s", fy_event_kind_name(e->kind), fy_tier_name(e->from),
                 fy_tier_name(e->to),
                 e->tensor >= 0 ? fy_tensor_kind_name(fy_graph_tensor(g, (size_t)e->tensor)->kind)
                                : "?");
}

static void tensor_key(const fy_event *e, char *buf, size_t size)
{
    if (e->kind == FY_EVENT_COMPUTE)
        snprintf(buf, size, "op %s", e->ref ? e->ref : "?");
    else
        snprintf(buf, size, "%s", e->ref ? e->ref : "?");
}

int fy_sim_stalls_build(fy_sim *sim, const uint32_t *stream_prev, fy_error *err)
{
    const fy_plan *plan = sim->plan;
    const fy_span *spans = sim->spans;
    fy_sim_summary *s = &sim->summary;
    size_t n = fy_plan_event_count(plan);
    acc *by_t = NULL, *by_k = NULL;
    size_t nt = 0, ct = 0, nk = 0, ck = 0;
    /* by tensor: an index from tensor (or op) to its entry, as there may be many */
    long *slot = malloc(
        (fy_graph_tensor_count(fy_plan_graph(plan)) + fy_graph_op_count(fy_plan_graph(plan)) + 1) *
        sizeof *slot);
    int rc = slot ? 0 : FY_ENOMEM;
    size_t ntensors = fy_graph_tensor_count(fy_plan_graph(plan));
    if (slot)
        for (size_t k = 0; k < ntensors + fy_graph_op_count(fy_plan_graph(plan)) + 1; k++)
            slot[k] = -1;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const fy_event *e = fy_plan_event(plan, i);
        fy_sim_queue q = fy_sim_event_queue(plan, e);
        if (q != FY_SIM_QUEUE_GPU && q != FY_SIM_QUEUE_HOST) continue;
        double ready = stream_prev[i] ? spans[stream_prev[i] - 1].end_s : 0;
        double gap = spans[i].start_s - ready;
        if (!(gap > 1e-12 * (spans[i].start_s > 1 ? spans[i].start_s : 1))) continue;
        long c = culprit(plan, spans, i);
        if (c < 0) continue;
        s->queue[q].stall_s += gap;
        s->stall_s += gap;
        const fy_event *ce = fy_plan_event(plan, (size_t)c);
        char key[96];
        kind_key(plan, ce, key, sizeof key);
        if ((rc = add_kind(&by_k, &nk, &ck, key, gap)) < 0) break;
        size_t idx = ce->kind == FY_EVENT_COMPUTE ? ntensors + (size_t)(ce->op >= 0 ? ce->op : 0)
                                                  : (size_t)(ce->tensor >= 0 ? ce->tensor : 0);
        if (slot[idx] >= 0) {
            by_t[slot[idx]].wait_s += gap;
            by_t[slot[idx]].count++;
            continue;
        }
        tensor_key(ce, key, sizeof key);
        slot[idx] = (long)nt;
        if ((rc = append(&by_t, &nt, &ct, key, gap)) < 0) break;
    }
    free(slot);
    if (rc == 0) {
        if (nt) qsort(by_t, nt, sizeof *by_t, cmp_acc);
        if (nk) qsort(by_k, nk, sizeof *by_k, cmp_acc);
        fy_buf names = {0};
        sim->stalls = malloc((nt + nk + 1) * sizeof *sim->stalls);
        for (size_t k = 0; k < nt + nk; k++) {
            acc *a = k < nt ? &by_t[k] : &by_k[k - nt];
            a->name = names.len;
            fy_buf_append(&names, a->key, strlen(a->key) + 1);
        }
        if (!sim->stalls || names.failed) {
            free(names.data);
            rc = FY_ENOMEM;
        } else {
            sim->stall_names = names.data;
            for (size_t k = 0; k < nt + nk; k++) {
                acc *a = k < nt ? &by_t[k] : &by_k[k - nt];
                sim->stalls[k] = (fy_sim_stall){names.data + a->name, a->wait_s, a->count};
            }
            s->stall_by_tensor = sim->stalls;
            s->stall_tensor_count = nt;
            s->stall_by_kind = sim->stalls + nt;
            s->stall_kind_count = nk;
        }
    }
    free(by_t);
    free(by_k);
    return rc < 0 ? fy_error_set(err, rc, "out of memory") : 0;
}
