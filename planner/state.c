/* The planner's state and its basic moves: copying a tensor between tiers, dropping a copy,
 * and computing an op. Each move records the `after` edges its event needs from what the
 * copies remember (who placed or last wrote a copy, who used it), so no event ever waits for
 * more than the copies it touches; the invariant kept here is that every copy a tensor has
 * is up to date (a write evicts the tensor's other copies right after the compute). */
#include "planner/planner_state.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

int pl_ids_push(pl_ids *ids, uint32_t v)
{
    if (ids->n == ids->cap) {
        uint32_t cap = ids->cap ? ids->cap * 2 : 4;
        uint32_t *nv = realloc(ids->v, cap * sizeof *nv);
        if (!nv) return FY_ENOMEM;
        ids->v = nv;
        ids->cap = cap;
    }
    ids->v[ids->n++] = v;
    return 0;
}

void pl_ids_free(pl_ids *ids)
{
    free(ids->v);
    memset(ids, 0, sizeof *ids);
}

uint64_t pl_align(fy_tier tier, uint64_t size)
{
    uint64_t a = tier == FY_TIER_GPU ? FY_PLAN_ALIGN_GPU : FY_PLAN_ALIGN_HOST;
    if (size == 0) size = 1; /* an empty tensor still needs an address of its own */
    return (size + a - 1) / a * a;
}

int pl_oom(planner *pl)
{
    return fy_error_set(pl->err, FY_ENOMEM, "out of memory while planning");
}

static long new_copy(planner *pl, uint32_t t, fy_tier tier, bool home)
{
    if (pl->ncp == pl->cap_cp) {
        size_t cap = pl->cap_cp ? pl->cap_cp * 2 : 256;
        pl_copy *n = realloc(pl->cp, cap * sizeof *n);
        if (!n) return pl_oom(pl);
        pl->cp = n;
        pl->cap_cp = cap;
    }
    pl_copy *c = &pl->cp[pl->ncp];
    memset(c, 0, sizeof *c);
    c->tensor = t;
    c->tier = (int8_t)tier;
    c->home = home;
    c->size = pl_align(tier, fy_graph_tensor(pl->g, t)->size);
    c->place_ev = c->evict_ev = c->write_ev = PL_NONE;
    c->res_index = PL_NONE;
    c->node = PL_NONE;
    c->arrived = pl->seq++;
    c->arrived_op = pl->cur_op;
    pl->t[t].copy[tier] = (int32_t)pl->ncp;
    return (long)pl->ncp++;
}

/* Places copy c (its placing event already made) in the region reserved for it; the placing
 * event waits for the evicts of the region's previous occupants. */
static int make_resident(planner *pl, uint32_t c)
{
    pl_copy *cp = &pl->cp[c];
    pl_arena *a = &pl->arena[cp->tier];
    uint32_t x = pl->t[cp->tensor].rsv[cp->tier];
    assert(x != PL_NONE && a->n[x].state == PL_NODE_RESERVED &&
           a->n[x].end - a->n[x].start == cp->size);
    pl->t[cp->tensor].rsv[cp->tier] = PL_NONE;
    pl->reserved[cp->tier] -= cp->size;
    pl_node *n = &a->n[x];
    n->state = PL_NODE_LIVE;
    n->owner = c;
    cp->node = x;
    cp->offset = n->start;
    for (uint32_t i = 0; i < n->np; i++)
        if (pl_ids_push(&cp->reuse, n->p[i].evict) < 0) return pl_oom(pl);
    n->np = 0;
    cp->res_index = pl->resident[cp->tier].n;
    if (pl_ids_push(&pl->resident[cp->tier], c) < 0) return pl_oom(pl);
    pl->used[cp->tier] += cp->size;
    return 0;
}

static long new_event(planner *pl, fy_event_kind kind, pl_queue q)
{
    if (pl->nev == pl->cap_ev) {
        size_t cap = pl->cap_ev ? pl->cap_ev * 2 : 1024;
        pl_event *n = realloc(pl->ev, cap * sizeof *n);
        if (!n) return pl_oom(pl);
        pl->ev = n;
        pl->cap_ev = cap;
    }
    pl_event *e = &pl->ev[pl->nev];
    memset(e, 0, sizeof *e);
    e->kind = (uint8_t)kind;
    e->queue = (uint8_t)q;
    e->from = e->to = FY_TIER_NONE;
    e->tensor = e->op = -1;
    e->copy = PL_NONE;
    return (long)pl->nev++;
}

static int after(planner *pl, uint32_t e, uint32_t dep)
{
    if (dep == PL_NONE || dep == e) return 0;
    return pl_ids_push(&pl->ev[e].after, dep) < 0 ? pl_oom(pl) : 0;
}

static int use(planner *pl, uint32_t c, uint32_t e)
{
    return pl_ids_push(&pl->cp[c].users, e) < 0 ? pl_oom(pl) : 0;
}

int pl_init(planner *pl, const fy_graph *g, const fy_policy *policy, const uint64_t *budget,
            const uint64_t *capacity, uint64_t slot_size, unsigned slots, fy_error *err)
{
    memset(pl, 0, sizeof *pl);
    pl->g = g;
    pl->policy = policy;
    pl->k = fy_policy_get_knobs(policy);
    pl->hooks = fy_policy_get_hooks(policy);
    pl->err = err;
    pl->cur_op = -1;
    pl->slot_size = slot_size;
    pl->slots = slot_size ? slots : 0;
    for (int i = 0; i < FY_TIER_COUNT; i++) {
        pl->budget[i] = budget[i];
        pl->capacity[i] = capacity[i];
        /* Staging buffers sit at the bottom of the host arena, one slot each. */
        uint64_t base = i == FY_TIER_HOST ? pl->slot_size * pl->slots : 0;
        if (pl_arena_init(&pl->arena[i], base, budget[i], 0x9e3779b97f4a7c15ull + (uint64_t)i) < 0)
            return pl_oom(pl);
    }
    if (pl->slots) {
        pl->slot_last = malloc(pl->slots * sizeof *pl->slot_last);
        if (!pl->slot_last) return pl_oom(pl);
        for (unsigned i = 0; i < pl->slots; i++)
            pl->slot_last[i] = PL_NONE;
    }
    pl->nt = fy_graph_tensor_count(g);
    size_t nops = fy_graph_op_count(g), nreads = 0;
    for (size_t i = 0; i < nops; i++)
        nreads += fy_graph_op(g, i)->read_count;
    pl->t = calloc(pl->nt ? pl->nt : 1, sizeof *pl->t);
    pl->read_ops = malloc((nreads ? nreads : 1) * sizeof *pl->read_ops);
    if (!pl->t || !pl->read_ops) return pl_oom(pl);
    for (size_t i = 0; i < pl->nt; i++) {
        pl_tensor *t = &pl->t[i];
        for (int k = 0; k < FY_TIER_COUNT; k++) {
            t->copy[k] = -1;
            t->rsv[k] = PL_NONE;
        }
        t->last_writer = PL_NONE;
        t->last_use = -1;
        t->kept = fy_policy_keeps(policy, fy_graph_tensor(g, i)->name);
    }
    /* Count reads per tensor, then fill the flat array in op order (so each list is sorted). */
    for (size_t i = 0; i < nops; i++) {
        const fy_op *op = fy_graph_op(g, i);
        for (uint32_t r = 0; r < op->read_count; r++)
            pl->t[op->reads[r]].read_count++;
        for (uint32_t w = 0; w < op->write_count; w++)
            pl->t[op->writes[w]].last_writer = (uint32_t)i;
    }
    uint32_t at = 0;
    for (size_t i = 0; i < pl->nt; i++) {
        pl->t[i].read_first = at;
        at += pl->t[i].read_count;
        pl->t[i].read_count = 0;
    }
    for (size_t i = 0; i < nops; i++) {
        const fy_op *op = fy_graph_op(g, i);
        for (uint32_t r = 0; r < op->read_count; r++) {
            pl_tensor *t = &pl->t[op->reads[r]];
            uint32_t n = t->read_count;
            if (n == 0 || pl->read_ops[t->read_first + n - 1] != i)
                pl->read_ops[t->read_first + t->read_count++] = (uint32_t)i;
        }
    }
    for (size_t i = 0; i < pl->nt; i++) {
        fy_tier home = fy_graph_tensor(g, i)->home;
        if (home != FY_TIER_NONE) {
            long c = new_copy(pl, (uint32_t)i, home, true);
            if (c < 0) return (int)c;
        }
    }
    return 0;
}

void pl_free(planner *pl)
{
    for (size_t i = 0; i < pl->nev; i++) {
        pl_ids_free(&pl->ev[i].after);
        pl_ids_free(&pl->ev[i].places);
    }
    for (size_t i = 0; i < pl->ncp; i++) {
        pl_ids_free(&pl->cp[i].users);
        pl_ids_free(&pl->cp[i].reuse);
    }
    for (int i = 0; i < FY_TIER_COUNT; i++) {
        pl_ids_free(&pl->resident[i]);
        pl_arena_free(&pl->arena[i]);
    }
    free(pl->slot_last);
    free(pl->ev);
    free(pl->cp);
    free(pl->t);
    free(pl->read_ops);
    fy_buf_free(&pl->log);
    memset(pl, 0, sizeof *pl);
}

long pl_next_read(const planner *pl, uint32_t t, long from)
{
    const pl_tensor *ts = &pl->t[t];
    const uint32_t *ops = pl->read_ops + ts->read_first;
    for (uint32_t i = ts->cursor; i < ts->read_count; i++)
        if ((long)ops[i] >= from) return ops[i];
    return -1;
}

bool pl_needed(const planner *pl, uint32_t t)
{
    const fy_tensor *ts = fy_graph_tensor(pl->g, t);
    if (pl_next_read(pl, t, pl->now) >= 0 || ts->kind == FY_TENSOR_OUTPUT) return true;
    return ts->home != FY_TIER_NONE && pl->t[t].version > 0;
}

static pl_queue transfer_queue(fy_tier from, fy_tier to)
{
    if (from == FY_TIER_HOST && to == FY_TIER_GPU) return PL_Q_H2D;
    if (from == FY_TIER_GPU && to == FY_TIER_HOST) return PL_Q_D2H;
    return PL_Q_IO;
}

long pl_transfer(planner *pl, uint32_t t, fy_tier from, fy_tier to, bool staged)
{
    int32_t src = pl->t[t].copy[from];
    assert(src >= 0 && pl->t[t].copy[to] < 0);
    bool load =
        (from == FY_TIER_NVME && to == FY_TIER_HOST) || (from == FY_TIER_HOST && to == FY_TIER_GPU);
    long e = new_event(pl, load ? FY_EVENT_LOAD : FY_EVENT_OFFLOAD, transfer_queue(from, to));
    if (e < 0) return e;
    pl_event *ev = &pl->ev[e];
    ev->tensor = (int32_t)t;
    ev->from = (int8_t)from;
    ev->to = (int8_t)to;
    int rc = after(pl, (uint32_t)e, pl->cp[src].write_ev);
    if (rc == 0) rc = use(pl, (uint32_t)src, (uint32_t)e);
    long c = rc < 0 ? rc : new_copy(pl, t, to, false);
    if (c < 0) return c;
    pl_copy *cp = &pl->cp[c];
    cp->place_ev = cp->write_ev = (uint32_t)e;
    pl->ev[e].copy = (uint32_t)c;
    if (staged) {
        /* A bounce buffer is reused once the previous tensor in it has left. */
        cp->staged = true;
        cp->slot = pl->next_slot++ % pl->slots;
        cp->offset = (uint64_t)cp->slot * pl->slot_size;
        uint32_t prev = pl->slot_last[cp->slot];
        pl->slot_last[cp->slot] = (uint32_t)c;
        if (prev != PL_NONE) {
            assert(pl->cp[prev].evict_ev != PL_NONE);
            rc = after(pl, (uint32_t)e, pl->cp[prev].evict_ev);
        }
        return rc < 0 ? rc : c;
    }
    rc = make_resident(pl, (uint32_t)c);
    return rc < 0 ? rc : c;
}

int pl_evict_copy(planner *pl, uint32_t c)
{
    long e = new_event(pl, FY_EVENT_EVICT, PL_Q_NONE);
    if (e < 0) return (int)e;
    pl_copy *cp = &pl->cp[c];
    pl_event *ev = &pl->ev[e];
    ev->tensor = (int32_t)cp->tensor;
    ev->from = cp->tier;
    ev->copy = c;
    int rc = 0;
    for (uint32_t i = 0; rc == 0 && i < cp->users.n; i++)
        rc = after(pl, (uint32_t)e, cp->users.v[i]);
    /* Users come after the copy's placing and last writing events (an in-place writer is a
     * user itself), so they are enough when there are any. */
    if (rc == 0 && cp->users.n == 0) rc = after(pl, (uint32_t)e, cp->write_ev);
    if (rc < 0) return rc;
    cp->evict_ev = (uint32_t)e;
    pl->t[cp->tensor].copy[cp->tier] = -1;
    if (cp->res_index != PL_NONE) {
        pl_ids *res = &pl->resident[cp->tier];
        uint32_t last = res->v[--res->n];
        res->v[cp->res_index] = last;
        pl->cp[last].res_index = cp->res_index;
        cp->res_index = PL_NONE;
        pl->used[cp->tier] -= cp->size;
        rc = pl_arena_release(&pl->arena[cp->tier], cp->node, (uint32_t)e);
        cp->node = PL_NONE;
        if (rc < 0) return pl_oom(pl);
    }
    return 0;
}

int pl_compute(planner *pl, size_t i)
{
    const fy_op *op = fy_graph_op(pl->g, i);
    fy_tier dev = op->device;
    long e = new_event(pl, FY_EVENT_COMPUTE, dev == FY_TIER_GPU ? PL_Q_GPU : PL_Q_HOST);
    if (e < 0) return (int)e;
    pl->ev[e].op = (int32_t)i;
    int rc = 0;
    for (uint32_t r = 0; rc == 0 && r < op->read_count; r++) {
        uint32_t t = op->reads[r];
        int32_t c = pl->t[t].copy[dev];
        assert(c >= 0);
        rc = after(pl, (uint32_t)e, pl->cp[c].write_ev);
        if (rc == 0) rc = use(pl, (uint32_t)c, (uint32_t)e);
        pl->t[t].last_use = (long)i;
    }
    for (uint32_t w = 0; rc == 0 && w < op->write_count; w++) {
        uint32_t t = op->writes[w];
        int32_t c = pl->t[t].copy[dev];
        if (c >= 0) {
            /* In place: whoever still copies the old content must finish first. */
            pl_copy *cp = &pl->cp[c];
            for (uint32_t u = 0; rc == 0 && u < cp->users.n; u++)
                rc = after(pl, (uint32_t)e, cp->users.v[u]);
            if (rc == 0) rc = after(pl, (uint32_t)e, cp->write_ev);
            if (rc == 0 && (cp->users.n == 0 || cp->users.v[cp->users.n - 1] != (uint32_t)e))
                rc = use(pl, (uint32_t)c, (uint32_t)e);
            cp->write_ev = (uint32_t)e;
        } else {
            long nc = new_copy(pl, t, dev, false);
            if (nc < 0) return (int)nc;
            pl->cp[nc].place_ev = pl->cp[nc].write_ev = (uint32_t)e;
            rc = make_resident(pl, (uint32_t)nc);
            if (rc == 0 && pl_ids_push(&pl->ev[e].places, (uint32_t)nc) < 0) rc = pl_oom(pl);
        }
        pl->t[t].version++;
        pl->t[t].last_use = (long)i;
    }
    /* Every other copy of what the op wrote is stale now: drop it after its readers. */
    for (uint32_t w = 0; rc == 0 && w < op->write_count; w++) {
        uint32_t t = op->writes[w];
        for (int k = 0; rc == 0 && k < FY_TIER_COUNT; k++)
            if (k != (int)dev && pl->t[t].copy[k] >= 0)
                rc = pl_evict_copy(pl, (uint32_t)pl->t[t].copy[k]);
    }
    for (uint32_t r = 0; r < op->read_count; r++) {
        pl_tensor *ts = &pl->t[op->reads[r]];
        const uint32_t *ops = pl->read_ops + ts->read_first;
        while (ts->cursor < ts->read_count && ops[ts->cursor] <= i)
            ts->cursor++;
    }
    return rc;
}
