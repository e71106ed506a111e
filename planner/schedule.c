/* The walk over the ops, in graph order and never reordered. For op i: bring its reads to
 * its device, make room for what it creates, issue the loads of the prefetch window (ops
 * i+1..i+N, so they appear before compute i and overlap it), compute, then tidy up after
 * it: outputs go to host, dead copies leave, updated weights are written back, and the
 * after-last-use and activation-offload knobs move idle copies off the gpu. */
#include "planner/planner_state.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t size_of(const planner *pl, uint32_t t)
{
    return fy_graph_tensor(pl->g, t)->size;
}

static void pin_op(planner *pl, size_t i)
{
    const fy_op *op = fy_graph_op(pl->g, i);
    for (uint32_t r = 0; r < op->read_count; r++)
        pl->t[op->reads[r]].pin = pl->epoch;
    for (uint32_t w = 0; w < op->write_count; w++)
        pl->t[op->writes[w]].pin = pl->epoch;
}

int pl_ensure(planner *pl, uint32_t t, fy_tier tier, long limit)
{
    pl_tensor *ts = &pl->t[t];
    if (ts->copy[tier] >= 0) return 0;
    int rc;
    if (tier == FY_TIER_HOST) {
        fy_tier src = ts->copy[FY_TIER_GPU] >= 0 ? FY_TIER_GPU : FY_TIER_NVME;
        assert(ts->copy[src] >= 0);
        if ((rc = pl_make_room(pl, FY_TIER_HOST, pl_align(FY_TIER_HOST, size_of(pl, t)), limit,
                               t)) != 0)
            return rc;
        long c = pl_transfer(pl, t, src, FY_TIER_HOST, false);
        return c < 0 ? (int)c : 0;
    }
    assert(ts->copy[FY_TIER_HOST] >= 0 || ts->copy[FY_TIER_NVME] >= 0);
    if ((rc = pl_make_room(pl, FY_TIER_GPU, pl_align(FY_TIER_GPU, size_of(pl, t)), limit, t)) != 0)
        return rc;
    bool staged = false;
    if (ts->copy[FY_TIER_HOST] < 0) {
        uint64_t hs = pl_align(FY_TIER_HOST, size_of(pl, t));
        staged = pl->slots > 0 && hs <= pl->slot_size;
        if (!staged && (rc = pl_make_room(pl, FY_TIER_HOST, hs, limit, t)) != 0) {
            /* A prefetch that cannot stage gives the gpu region back. */
            int r2 = pl_unreserve(pl, t, FY_TIER_GPU);
            return r2 < 0 ? r2 : rc;
        }
        long c = pl_transfer(pl, t, FY_TIER_NVME, FY_TIER_HOST, staged);
        if (c < 0) return (int)c;
    }
    long c = pl_transfer(pl, t, FY_TIER_HOST, FY_TIER_GPU, false);
    if (c < 0) return (int)c;
    /* A bounce buffer is free again as soon as its h2d copy is done. */
    return staged ? pl_evict_copy(pl, (uint32_t)ts->copy[FY_TIER_HOST]) : 0;
}

static bool has_copy(const planner *pl, uint32_t t)
{
    for (int k = 0; k < FY_TIER_COUNT; k++)
        if (pl->t[t].copy[k] >= 0) return true;
    return false;
}

/* Whether the current op is about to write t (room is reserved for it): loading t now would
 * bring the old version. */
static bool being_written(const planner *pl, uint32_t t)
{
    for (int k = 0; k < FY_TIER_COUNT; k++)
        if (pl->t[t].rsv[k] != PL_NONE) return true;
    return false;
}

/* Loads the reads of op j (a later op) onto the gpu without evicting anything needed
 * before op j. Returns 1 when memory does not allow it. */
static int prefetch_op(planner *pl, size_t j)
{
    const fy_op *op = fy_graph_op(pl->g, j);
    if (op->device != FY_TIER_GPU) return 0;
    pin_op(pl, j);
    for (uint32_t r = 0; r < op->read_count; r++) {
        if (!has_copy(pl, op->reads[r]) || being_written(pl, op->reads[r]))
            continue; /* the current op or an earlier op of the window writes it */
        int rc = pl_ensure(pl, op->reads[r], FY_TIER_GPU, (long)j);
        if (rc != 0) return rc;
    }
    return 0;
}

static int hook_prefetch(planner *pl, size_t op)
{
    fy_tensor_list list = {0};
    int rc = pl->hooks->prefetch(pl->hooks->ctx, &pl->view, op, &list, pl->err);
    for (size_t i = 0; rc == 0 && i < list.count; i++) {
        uint32_t t = list.items[i];
        if (t >= pl->nt) {
            fy_error_set(pl->err, FY_EINVAL, "hook 'prefetch' returned an unknown tensor");
            rc = pl_blame(pl, "prefetch");
            break;
        }
        if (!has_copy(pl, t)) {
            fy_error_set(pl->err, FY_EINVAL,
                         "hook 'prefetch' asked for '%s' ahead of op '%s', but no op has written "
                         "it yet",
                         fy_graph_tensor(pl->g, t)->name, fy_graph_op(pl->g, op)->name);
            rc = pl_blame(pl, "prefetch");
            break;
        }
        if (being_written(pl, t)) continue; /* after the write, when it is read */
        pl->t[t].pin = pl->epoch;
        long nr = pl_next_read(pl, t, pl->now);
        rc = pl_ensure(pl, t, FY_TIER_GPU, nr >= 0 ? nr : (long)op);
        if (rc == 1) {
            char s[32];
            fy_error_set(pl->err, FY_EINVAL,
                         "hook 'prefetch' asked for '%s' (%s) ahead of op '%s' but the gpu has no "
                         "room for it without evicting tensors needed sooner",
                         fy_graph_tensor(pl->g, t)->name,
                         fy_size_format_human(size_of(pl, t), s, sizeof s),
                         fy_graph_op(pl->g, op)->name);
            rc = pl_blame(pl, "prefetch");
        }
    }
    free(list.items);
    return rc;
}

/* Drops every arena copy of a tensor nothing needs any more (a kept one stays on the gpu). */
static int drop_dead(planner *pl, uint32_t t)
{
    pl_tensor *ts = &pl->t[t];
    const fy_tensor *d = fy_graph_tensor(pl->g, t);
    bool persistent = d->home != FY_TIER_NONE && ts->version > 0;
    int rc = 0;
    if (d->kind == FY_TENSOR_OUTPUT || persistent) {
        /* Keep the up-to-date result: on host for an output, anywhere for an update. */
        if (ts->copy[FY_TIER_GPU] >= 0 && !ts->kept) rc = pl_leave(pl, t, FY_TIER_GPU);
        return rc;
    }
    for (int k = 0; rc == 0 && k < FY_TIER_COUNT; k++) {
        int32_t c = ts->copy[k];
        if (c < 0 || pl->cp[c].home || (k == FY_TIER_GPU && ts->kept)) continue;
        rc = pl_evict_copy(pl, (uint32_t)c);
    }
    return rc;
}

/* The activation knob: an activation idle for long moves down (host or nvme). */
static int offload_activation(planner *pl, uint32_t t)
{
    pl_tensor *ts = &pl->t[t];
    fy_tier to = pl->k->activations_offload;
    int rc = 0;
    if (ts->copy[FY_TIER_HOST] < 0 && ts->copy[FY_TIER_NVME] < 0) {
        rc = pl_make_room(pl, FY_TIER_HOST, pl_align(FY_TIER_HOST, size_of(pl, t)), -1, t);
        long c = rc == 0 ? pl_transfer(pl, t, FY_TIER_GPU, FY_TIER_HOST, false) : 0;
        rc = c < 0 ? (int)c : rc;
    }
    if (rc == 0 && to == FY_TIER_NVME && ts->copy[FY_TIER_NVME] < 0) {
        rc = pl_make_room(pl, FY_TIER_NVME, pl_align(FY_TIER_NVME, size_of(pl, t)), -1, t);
        long c = rc == 0 ? pl_transfer(pl, t, FY_TIER_HOST, FY_TIER_NVME, false) : 0;
        rc = c < 0 ? (int)c : rc;
        if (rc == 0) rc = pl_evict_copy(pl, (uint32_t)ts->copy[FY_TIER_HOST]);
    }
    if (rc == 0) rc = pl_evict_copy(pl, (uint32_t)ts->copy[FY_TIER_GPU]);
    return rc;
}

static int tidy_tensor(planner *pl, size_t i, uint32_t t)
{
    pl_tensor *ts = &pl->t[t];
    const fy_tensor *d = fy_graph_tensor(pl->g, t);
    int rc = 0;
    if (d->kind == FY_TENSOR_OUTPUT && ts->last_writer == i && ts->copy[FY_TIER_HOST] < 0 &&
        ts->copy[FY_TIER_GPU] >= 0) {
        /* Outputs leave for host at the end of their producer. */
        rc = pl_make_room(pl, FY_TIER_HOST, pl_align(FY_TIER_HOST, d->size), -1, t);
        long c = rc == 0 ? pl_transfer(pl, t, FY_TIER_GPU, FY_TIER_HOST, false) : 0;
        if (rc < 0 || c < 0) return rc < 0 ? rc : (int)c;
    }
    long nr = pl_next_read(pl, t, pl->now);
    if (nr < 0) return drop_dead(pl, t);
    if (ts->copy[FY_TIER_GPU] < 0 || ts->kept || ts->eager) return 0;
    long window = pl->k->prefetch > 1 ? (long)pl->k->prefetch : 1;
    if (pl->k->evict == FY_EVICT_AFTER_LAST_USE && nr > (long)i + window)
        return pl_leave(pl, t, FY_TIER_GPU);
    if (pl->k->activations_offload != FY_TIER_NONE && d->kind == FY_TENSOR_ACTIVATION &&
        nr - (long)i - 1 >= (long)pl->k->activations_idle)
        return offload_activation(pl, t);
    return 0;
}

static int tidy(planner *pl, size_t i)
{
    const fy_op *op = fy_graph_op(pl->g, i);
    int rc = 0;
    for (uint32_t r = 0; rc == 0 && r < op->read_count; r++)
        rc = tidy_tensor(pl, i, op->reads[r]);
    for (uint32_t w = 0; rc == 0 && w < op->write_count; w++)
        rc = tidy_tensor(pl, i, op->writes[w]);
    return rc;
}

/* Brings op i's reads to its device and reserves room for what it creates. When making room
 * had to move one of the op's own operands (compaction), it comes back in another round. */
static int gather(planner *pl, size_t i)
{
    const fy_op *op = fy_graph_op(pl->g, i);
    fy_tier dev = op->device;
    int rc = 0;
    for (unsigned round = 0; rc == 0; round++) {
        pl->pin_evicted = false;
        for (uint32_t r = 0; rc == 0 && r < op->read_count; r++)
            rc = pl_ensure(pl, op->reads[r], dev, -1);
        for (uint32_t w = 0; rc == 0 && w < op->write_count; w++) {
            uint32_t t = op->writes[w];
            bool read = false; /* an update in place: the reads bring it (again) */
            for (uint32_t r = 0; r < op->read_count && !read; r++)
                read = op->reads[r] == t;
            if (read || pl->t[t].copy[dev] >= 0 || pl->t[t].rsv[dev] != PL_NONE) continue;
            rc = pl_make_room(pl, dev, pl_align(dev, size_of(pl, t)), -1, t);
        }
        if (rc != 0 || !pl->pin_evicted) break;
        if (round == 8) {
            char s[32];
            rc = fy_error_set(pl->err, FY_EINFEASIBLE,
                              "%s %s is too small at op '%s': fragmentation keeps its operands "
                              "from fitting side by side after 8 rounds of compaction",
                              fy_tier_name(dev),
                              fy_size_format_human(pl->capacity[dev], s, sizeof s), op->name);
        }
    }
    return rc;
}

static int load_eagerly(planner *pl)
{
    size_t nops = fy_graph_op_count(pl->g);
    uint64_t total = 0;
    for (size_t t = 0; t < pl->nt; t++)
        if (fy_graph_tensor(pl->g, t)->kind == FY_TENSOR_WEIGHT && pl->t[t].read_count)
            total += pl_align(FY_TIER_GPU, size_of(pl, (uint32_t)t));
    if (total > pl->budget[FY_TIER_GPU]) {
        char a[32], b[32];
        return fy_error_set(pl->err, FY_EINFEASIBLE,
                            "load: eager needs every weight on the gpu at once: %s of weights, "
                            "but the gpu has %s (use load: lazy)",
                            fy_size_format_human(total, a, sizeof a),
                            fy_size_format_human(pl->budget[FY_TIER_GPU], b, sizeof b));
    }
    /* In order of first use, so the first ops can start while later weights arrive. */
    for (size_t i = 0; i < nops; i++) {
        const fy_op *op = fy_graph_op(pl->g, i);
        for (uint32_t r = 0; op->device == FY_TIER_GPU && r < op->read_count; r++) {
            uint32_t t = op->reads[r];
            if (fy_graph_tensor(pl->g, t)->kind != FY_TENSOR_WEIGHT || pl->t[t].eager) continue;
            pl->t[t].eager = true;
            pl->t[t].pin = pl->epoch;
            int rc = pl_ensure(pl, t, FY_TIER_GPU, -1);
            if (rc < 0) return fy_error_prefix(pl->err, "load: eager");
        }
    }
    return 0;
}

int pl_schedule(planner *pl)
{
    size_t nops = fy_graph_op_count(pl->g);
    int rc = 0;
    pl->epoch++;
    if (pl->k->load == FY_LOAD_EAGER && (rc = load_eagerly(pl)) < 0) return rc;
    for (size_t i = 0; i < nops && rc == 0; i++) {
        pl->cur_op = (long)i;
        pl->now = (long)i;
        pl->epoch++;
        pin_op(pl, i);
        if (i == 0 && pl->hooks && pl->hooks->prefetch && (rc = hook_prefetch(pl, 0)) < 0)
            return rc;
        if (rc == 0) rc = gather(pl, i);
        for (size_t j = i + 1; rc == 0 && j <= i + pl->k->prefetch && j < nops; j++) {
            rc = prefetch_op(pl, j);
            if (rc == 1) {
                rc = 0;
                break;
            }
        }
        if (rc == 0 && pl->hooks && pl->hooks->prefetch && i + 1 < nops)
            rc = hook_prefetch(pl, i + 1);
        if (rc == 0) rc = pl_compute(pl, i);
        pl->now = (long)i + 1;
        if (rc == 0) rc = tidy(pl, i);
        if (rc == 0 && pl->hooks && pl->hooks->after_op) {
            pl->in_after_op = true;
            rc = pl->hooks->after_op(pl->hooks->ctx, &pl->view, i, pl->err);
            pl->in_after_op = false;
        }
    }
    return rc;
}
