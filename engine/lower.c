/* Lowering: replays a checked plan in plan order, as the checker does, and fixes for every
 * event where its bytes come from and go to, the checksum work around it, its queue, its
 * stream neighbours and its successors. The invariant it keeps: every address the loop will
 * touch lies inside its arena, its source file's range or the spill file's extent, so the
 * loop never needs to look at the plan's state again. */
#include "engine/exec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One copy of a tensor on one tier during the replay. */
typedef struct copy {
    fy_loc loc;
    bool present;
    bool stale;
    bool verify;   /* host copy from a d2h offload: verify it when it is read back */
    bool pristine; /* holds the bytes of the tensor's source file, never written since */
    int32_t slot;
} copy;

static const char *const queue_names[] = {"io", "h2d", "d2h", "gpu", "host", "none"};

const char *fy_exec_queue_name(int q)
{
    return q >= 0 && q <= FY_Q_NONE ? queue_names[q] : "?";
}

const char *fy_exec_describe(const fy_exec *x, size_t i, char *buf, size_t size)
{
    const fy_event *e = fy_plan_event(x->plan, i);
    const char *name = e->ref ? e->ref : "?";
    switch (e->kind) {
    case FY_EVENT_LOAD:
    case FY_EVENT_OFFLOAD:
        snprintf(buf, size, "%s '%s' %s->%s", fy_event_kind_name(e->kind), name,
                 fy_tier_name(e->from), fy_tier_name(e->to));
        break;
    case FY_EVENT_EVICT:
        snprintf(buf, size, "evict '%s' from %s", name, fy_tier_name(e->from));
        break;
    default:
        snprintf(buf, size, "compute '%s'", name);
        break;
    }
    return buf;
}

int fy_exec_error(const fy_exec *x, size_t i, fy_error *err, int status, const char *fmt, ...)
{
    char what[FY_ERROR_MESSAGE_MAX], desc[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    const fy_event *e = fy_plan_event(x->plan, i);
    const char *path = fy_plan_path(x->plan);
    return fy_error_set_at(err, status, path ? path : "", path ? e->line : 0, 0,
                           "event %llu (%s): %s", (unsigned long long)e->id,
                           fy_exec_describe(x, i, desc, sizeof desc), what);
}

void fy_exec_destroy(fy_exec *x)
{
    if (!x) return;
    for (size_t f = 0; f < x->file_count; f++)
        free(x->files[f]);
    free(x->files);
    free(x->ev);
    free(x->operands);
    free(x->succ_start);
    free(x->succ);
    free(x->after_count);
    free(x->needs_caller);
    free(x->final_host);
    free(x->final_slot);
    free(x);
}

/* Index of a source file in x->files, adding it. */
static int file_index(fy_exec *x, size_t tensor, uint32_t *out, fy_error *err)
{
    char *path = fy_graph_source_path(x->graph, tensor);
    if (!path) return fy_error_set(err, FY_ENOMEM, "out of memory");
    for (size_t f = 0; f < x->file_count; f++) {
        if (strcmp(x->files[f], path) == 0) {
            free(path);
            *out = (uint32_t)f;
            return 0;
        }
    }
    char **files = realloc(x->files, (x->file_count + 1) * sizeof *files);
    if (!files) {
        free(path);
        return fy_error_set(err, FY_ENOMEM, "out of memory");
    }
    x->files = files;
    x->files[x->file_count] = path;
    *out = (uint32_t)x->file_count++;
    return 0;
}

typedef struct replay {
    fy_exec *x;
    copy *c; /* tensor * FY_TIER_COUNT */
    uint64_t arena[FY_TIER_COUNT];
} replay;

static copy *copy_of(replay *r, int32_t t, fy_tier tier)
{
    return &r->c[(size_t)t * FY_TIER_COUNT + (size_t)tier];
}

/* Checks that [at, at+size) fits the tier's arena (nvme: grows the spill extent). */
static int place_ok(replay *r, size_t i, fy_tier tier, uint64_t at, uint64_t size, const char *name,
                    fy_error *err)
{
    if (tier == FY_TIER_NVME) {
        if (at > UINT64_MAX - size)
            return fy_exec_error(r->x, i, err, FY_ECHECK, "spill offset of '%s' overflows", name);
        if (at + size > r->x->spill_bytes) r->x->spill_bytes = at + size;
        return 0;
    }
    uint64_t cap = r->arena[tier];
    if (at > cap || size > cap - at)
        return fy_exec_error(r->x, i, err, FY_ECHECK,
                             "'%s' at %llu (+%llu bytes) lies outside the %s arena of %llu "
                             "bytes",
                             name, (unsigned long long)at, (unsigned long long)size,
                             fy_tier_name(tier), (unsigned long long)cap);
    return 0;
}

/* The up-to-date copy of tensor t on tier, or an error naming the event. */
static int need_copy(replay *r, size_t i, int32_t t, fy_tier tier, copy **out, fy_error *err)
{
    copy *c = copy_of(r, t, tier);
    const char *name = fy_graph_tensor(r->x->graph, (size_t)t)->name;
    if (!c->present || c->stale)
        return fy_exec_error(r->x, i, err, FY_ECHECK,
                             "'%s' has no %s copy on %s here (the checker should have "
                             "refused this plan)",
                             name, c->present ? "up-to-date" : "", fy_tier_name(tier));
    if (c->loc.kind == FY_LOC_CALLER) r->x->needs_caller[t] = true;
    *out = c;
    return 0;
}

/* The new copy of t on tier at `at`: placed anew, or replacing the one there in place. */
static void place_copy(replay *r, fy_xev *xe, int32_t t, fy_tier tier, fy_loc loc)
{
    copy *c = copy_of(r, t, tier);
    uint64_t size = fy_graph_tensor(r->x->graph, (size_t)t)->size;
    bool counted = c->present && (c->loc.kind == FY_LOC_ARENA || c->loc.kind == FY_LOC_SPILL);
    if (!counted && (loc.kind == FY_LOC_ARENA || loc.kind == FY_LOC_SPILL)) {
        xe->live_tier = (int8_t)tier;
        xe->live_delta += (int64_t)size;
    }
    c->loc = loc;
    c->present = true;
    c->stale = false;
    c->verify = false;
    c->pristine = false;
    c->slot = -1;
}

static int lower_transfer(replay *r, size_t i, const fy_event *e, fy_xev *xe, fy_error *err)
{
    fy_exec *x = r->x;
    int32_t t = e->tensor;
    const fy_tensor *tn = fy_graph_tensor(x->graph, (size_t)t);
    copy *src;
    int rc = need_copy(r, i, t, e->from, &src, err);
    if (rc < 0) return rc;
    rc = place_ok(r, i, e->to, e->at, tn->size, tn->name, err);
    if (rc < 0) return rc;
    xe->size = tn->size;
    xe->src = src->loc;
    xe->dst = (fy_loc){.kind = e->to == FY_TIER_NVME ? FY_LOC_SPILL : FY_LOC_ARENA,
                       .tier = (int8_t)e->to,
                       .offset = e->at};
    int32_t src_slot = src->slot;
    bool src_verify = src->verify;
    xe->pristine = src->pristine;
    if (e->from == FY_TIER_NVME && e->to == FY_TIER_HOST) {
        xe->queue = FY_Q_IO;
        if (src_slot >= 0) { /* a spill copy: verify what arrives */
            xe->crc_post = FY_CRC_CHECK;
            xe->slot = src_slot;
        }
        place_copy(r, xe, t, FY_TIER_HOST, xe->dst);
        copy_of(r, t, FY_TIER_HOST)->slot = src_slot;
    } else if (e->from == FY_TIER_HOST && e->to == FY_TIER_GPU) {
        xe->queue = FY_Q_H2D;
        if (src_slot >= 0 && src_verify) {
            xe->crc_pre = FY_CRC_CHECK;
            xe->slot = src_slot;
        }
        place_copy(r, xe, t, FY_TIER_GPU, xe->dst);
    } else if (e->from == FY_TIER_GPU && e->to == FY_TIER_HOST) {
        xe->queue = FY_Q_D2H;
        xe->crc_post = FY_CRC_MAKE;
        xe->slot = (int32_t)x->slot_count++;
        place_copy(r, xe, t, FY_TIER_HOST, xe->dst);
        copy *h = copy_of(r, t, FY_TIER_HOST);
        h->slot = xe->slot;
        h->verify = true;
    } else if (e->from == FY_TIER_HOST && e->to == FY_TIER_NVME) {
        xe->queue = FY_Q_IO;
        if (src_slot >= 0) {
            xe->crc_pre = FY_CRC_CHECK;
            xe->slot = src_slot;
        } else {
            xe->crc_pre = FY_CRC_MAKE;
            xe->slot = (int32_t)x->slot_count++;
        }
        x->uses_spill = true;
        place_copy(r, xe, t, FY_TIER_NVME, xe->dst);
        copy_of(r, t, FY_TIER_NVME)->slot = xe->slot;
    } else {
        return fy_exec_error(x, i, err, FY_ECHECK, "no link from %s to %s", fy_tier_name(e->from),
                             fy_tier_name(e->to));
    }
    copy_of(r, t, e->to)->pristine = xe->pristine;
    return 0;
}

static int lower_compute(replay *r, size_t i, const fy_event *e, fy_xev *xe, size_t *nops,
                         fy_error *err)
{
    fy_exec *x = r->x;
    const fy_op *op = fy_graph_op(x->graph, (size_t)e->op);
    fy_tier d = op->device == FY_TIER_HOST ? FY_TIER_HOST : FY_TIER_GPU;
    xe->queue = d == FY_TIER_HOST ? FY_Q_HOST : FY_Q_GPU;
    xe->operands = (uint32_t)*nops;
    for (uint32_t k = 0; k < op->read_count; k++) {
        copy *c;
        int rc = need_copy(r, i, (int32_t)op->reads[k], d, &c, err);
        if (rc < 0) return rc;
        x->operands[(*nops)++] = c->loc;
    }
    for (uint32_t k = 0; k < op->write_count; k++) {
        int32_t t = (int32_t)op->writes[k];
        const fy_tensor *tn = fy_graph_tensor(x->graph, (size_t)t);
        copy *c = copy_of(r, t, d);
        if (!c->present) {
            const fy_placement *p = NULL;
            for (uint32_t q = 0; q < e->place_count; q++)
                if (e->places[q].tensor == t) p = &e->places[q];
            if (!p)
                return fy_exec_error(x, i, err, FY_ECHECK,
                                     "op '%s' creates '%s' but gives no "
                                     "offset",
                                     op->name, tn->name);
            int rc = place_ok(r, i, d, p->offset, tn->size, tn->name, err);
            if (rc < 0) return rc;
            place_copy(r, xe, t, d,
                       (fy_loc){.kind = FY_LOC_ARENA, .tier = (int8_t)d, .offset = p->offset});
        } else {
            if (c->loc.kind == FY_LOC_CALLER) x->needs_caller[t] = true;
            c->stale = false;
            c->slot = -1;
            c->verify = false;
            c->pristine = false;
        }
        x->operands[(*nops)++] = c->loc;
        for (int tier = 0; tier < FY_TIER_COUNT; tier++) {
            if (tier == (int)d) continue;
            copy_of(r, t, (fy_tier)tier)->stale = true;
            copy_of(r, t, (fy_tier)tier)->pristine = false;
        }
    }
    return 0;
}

static int lower_evict(replay *r, size_t i, const fy_event *e, fy_xev *xe, fy_error *err)
{
    copy *c = copy_of(r, e->tensor, e->from);
    if (!c->present)
        return fy_exec_error(r->x, i, err, FY_ECHECK, "there is no copy on %s to evict",
                             fy_tier_name(e->from));
    if (c->loc.kind == FY_LOC_ARENA || c->loc.kind == FY_LOC_SPILL) {
        xe->live_tier = (int8_t)e->from;
        xe->live_delta = -(int64_t)fy_graph_tensor(r->x->graph, (size_t)e->tensor)->size;
    }
    memset(c, 0, sizeof *c);
    c->slot = -1;
    return 0;
}

static int lower_event(replay *r, size_t i, size_t *nops, fy_error *err)
{
    const fy_event *e = fy_plan_event(r->x->plan, i);
    fy_xev *xe = &r->x->ev[i];
    xe->live_tier = -1;
    xe->slot = -1;
    xe->tensor = e->tensor;
    xe->queue = FY_Q_NONE;
    bool tensor_ok = e->tensor >= 0 && (size_t)e->tensor < fy_graph_tensor_count(r->x->graph);
    bool tiers_ok = e->from >= 0 && e->from < FY_TIER_COUNT &&
                    (e->kind == FY_EVENT_EVICT || (e->to >= 0 && e->to < FY_TIER_COUNT));
    switch (e->kind) {
    case FY_EVENT_LOAD:
    case FY_EVENT_OFFLOAD:
        if (!tensor_ok || !tiers_ok) break;
        return lower_transfer(r, i, e, xe, err);
    case FY_EVENT_EVICT:
        if (!tensor_ok || !tiers_ok) break;
        return lower_evict(r, i, e, xe, err);
    case FY_EVENT_COMPUTE:
        if (e->op < 0 || (size_t)e->op >= fy_graph_op_count(r->x->graph)) break;
        return lower_compute(r, i, e, xe, nops, err);
    }
    return fy_exec_error(r->x, i, err, FY_ECHECK, "unknown tensor, op or tier");
}

static int build_edges(fy_exec *x, fy_error *err)
{
    size_t n = x->count, total = 0;
    x->succ_start = calloc(n + 1, sizeof *x->succ_start);
    x->after_count = calloc(n ? n : 1, sizeof *x->after_count);
    if (!x->succ_start || !x->after_count) return fy_error_set(err, FY_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const fy_event *e = fy_plan_event(x->plan, i);
        x->after_count[i] = e->after_count;
        for (uint32_t k = 0; k < e->after_count; k++) {
            if (e->after[k] >= i)
                return fy_exec_error(x, i, err, FY_ECHECK, "`after` names a later event");
            x->succ_start[e->after[k] + 1]++;
            total++;
        }
    }
    if (total > UINT32_MAX)
        return fy_error_set(err, FY_ERANGE, "the plan has more than 2^32 `after` edges");
    for (size_t i = 0; i < n; i++)
        x->succ_start[i + 1] += x->succ_start[i];
    x->succ = malloc((total ? total : 1) * sizeof *x->succ);
    uint32_t *fill = malloc((n ? n : 1) * sizeof *fill);
    if (!x->succ || !fill) {
        free(fill);
        return fy_error_set(err, FY_ENOMEM, "out of memory");
    }
    memcpy(fill, x->succ_start, n * sizeof *fill);
    for (size_t i = 0; i < n; i++) {
        const fy_event *e = fy_plan_event(x->plan, i);
        for (uint32_t k = 0; k < e->after_count; k++)
            x->succ[fill[e->after[k]]++] = (uint32_t)i;
    }
    free(fill);
    /* Stream neighbours. */
    int64_t last[FY_Q_COUNT];
    for (int q = 0; q < FY_Q_COUNT; q++)
        last[q] = -1;
    for (size_t i = 0; i < n; i++) {
        fy_xev *xe = &x->ev[i];
        xe->stream_prev = xe->stream_next = -1;
        if (xe->queue == FY_Q_NONE || xe->queue == FY_Q_IO) continue;
        xe->stream_prev = last[xe->queue];
        if (last[xe->queue] >= 0) x->ev[last[xe->queue]].stream_next = (int64_t)i;
        last[xe->queue] = (int64_t)i;
    }
    return 0;
}

/* Offloads to host are checksummed so that a reload can verify them. A gpu->host copy that
 * nothing reads back (an output handed back after the run) would be checksummed for nothing,
 * on the critical path at the end of the run (5 ms for 64 MiB): its checksum is dropped, and
 * so is the hand-back's verification of it. */
static int drop_unread_checksums(fy_exec *x, fy_error *err)
{
    if (!x->slot_count) return 0;
    bool *checked = calloc(x->slot_count, sizeof *checked);
    if (!checked) return fy_error_set(err, FY_ENOMEM, "out of memory");
    for (size_t i = 0; i < x->count; i++)
        if (x->ev[i].slot >= 0 &&
            (x->ev[i].crc_pre == FY_CRC_CHECK || x->ev[i].crc_post == FY_CRC_CHECK))
            checked[x->ev[i].slot] = true;
    for (size_t i = 0; i < x->count; i++) {
        fy_xev *xe = &x->ev[i];
        if (xe->queue == FY_Q_D2H && xe->crc_post == FY_CRC_MAKE && !checked[xe->slot]) {
            xe->crc_post = FY_CRC_NONE;
            xe->slot = -1;
        }
    }
    /* A final host copy whose slot nothing checks is one of those: no checksum to compare. */
    for (size_t t = 0; t < fy_graph_tensor_count(x->graph); t++)
        if (x->final_slot[t] >= 0 && !checked[x->final_slot[t]]) x->final_slot[t] = -1;
    free(checked);
    return 0;
}

int fy_exec_build(const fy_plan *plan, fy_exec **out, fy_error *err)
{
    const fy_graph *g = fy_plan_graph(plan);
    size_t n = fy_plan_event_count(plan), nt = fy_graph_tensor_count(g), nops = 0, opn = 0;
    fy_exec *x = calloc(1, sizeof *x);
    replay r = {.x = x};
    if (!x) return fy_error_set(err, FY_ENOMEM, "out of memory");
    x->plan = plan;
    x->graph = g;
    x->count = n;
    for (size_t i = 0; i < n; i++) {
        const fy_event *e = fy_plan_event(plan, i);
        if (e->kind == FY_EVENT_COMPUTE && e->op >= 0 && (size_t)e->op < fy_graph_op_count(g)) {
            const fy_op *op = fy_graph_op(g, (size_t)e->op);
            opn += op->read_count + op->write_count;
        }
    }
    x->ev = calloc(n ? n : 1, sizeof *x->ev);
    x->operands = calloc(opn ? opn : 1, sizeof *x->operands);
    x->needs_caller = calloc(nt ? nt : 1, sizeof *x->needs_caller);
    x->final_host = calloc(nt ? nt : 1, sizeof *x->final_host);
    x->final_slot = calloc(nt ? nt : 1, sizeof *x->final_slot);
    r.c = calloc(nt ? nt * FY_TIER_COUNT : 1, sizeof *r.c);
    int rc = 0;
    if (!x->ev || !x->operands || !x->needs_caller || !x->final_host || !x->final_slot || !r.c) {
        rc = fy_error_set(err, FY_ENOMEM, "out of memory lowering a plan of %zu events", n);
        goto done;
    }
    for (int t = 0; t < FY_TIER_COUNT; t++)
        r.arena[t] = fy_plan_arena(plan, (fy_tier)t);
    /* Home copies: a host-home tensor in the caller's memory, a weight in its file. */
    for (size_t t = 0; t < nt; t++) {
        const fy_tensor *tn = fy_graph_tensor(g, t);
        for (int tier = 0; tier < FY_TIER_COUNT; tier++)
            copy_of(&r, (int32_t)t, (fy_tier)tier)->slot = -1;
        if (tn->home == FY_TIER_HOST) {
            copy *c = copy_of(&r, (int32_t)t, FY_TIER_HOST);
            c->present = true;
            c->loc = (fy_loc){.kind = FY_LOC_CALLER, .tier = FY_TIER_HOST};
        } else if (tn->home == FY_TIER_NVME && tn->source_file) {
            copy *c = copy_of(&r, (int32_t)t, FY_TIER_NVME);
            c->present = true;
            c->pristine = true;
            c->loc =
                (fy_loc){.kind = FY_LOC_SOURCE, .tier = FY_TIER_NVME, .offset = tn->source_offset};
            rc = file_index(x, t, &c->loc.file, err);
            if (rc < 0) goto done;
        }
    }
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = lower_event(&r, i, &nops, err);
    if (rc == 0) rc = build_edges(x, err);
    if (rc < 0) goto done;
    for (size_t t = 0; t < nt; t++) {
        copy *c = copy_of(&r, (int32_t)t, FY_TIER_HOST);
        if (c->present && !c->stale) {
            x->final_host[t] = c->loc;
            x->final_slot[t] = c->slot;
        } else {
            x->final_slot[t] = -1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        x->queue_events[x->ev[i].queue]++;
        x->queue_bytes[x->ev[i].queue] += x->ev[i].size;
    }
    rc = drop_unread_checksums(x, err);
done:
    free(r.c);
    if (rc < 0) {
        fy_exec_destroy(x);
        return rc;
    }
    *out = x;
    return 0;
}
