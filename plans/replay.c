/* The replay: walks a plan's events in plan order (a valid linearisation of happens-before)
 * and keeps the state each rule of docs/checking.md needs: every tensor's latest version,
 * its copy on each tier, who placed and who read each copy, and each arena's occupancy.
 * Each problem becomes one issue; the event then takes effect as written (or, where it
 * cannot, as the plan evidently meant), so that one mistake is reported once, not again by
 * every event that follows it. */
#include "plans/replay.h"

#include "plans/arena_map.h"
#include "plans/plan_model.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE (-1)

typedef struct copy {
    uint64_t offset;
    uint32_t version;
    int32_t since;      /* the event that placed it or last wrote it; NONE: a home copy */
    int32_t evicted_by; /* the last evict of this tier's copy, NONE if never */
    int32_t stream_reader[FY_STREAM_COUNT]; /* the last reader on each stream, or NONE */
    uint32_t *io_readers; /* readers on no stream (io transfers) since it was placed */
    uint32_t io_count, io_cap;
    bool present, home, in_arena, by_load, read;
    bool unordered; /* an unordered-use of this placement was reported: one problem, one
                       report, however many users the missing edge leaves unordered */
} copy;

typedef struct tensor_state {
    uint32_t version;
    int32_t writer; /* the event that wrote the latest version, NONE for version 0 */
    bool lost;      /* its last up-to-date copy was dropped (reported as data-loss) */
} tensor_state;

typedef struct replay {
    const fy_plan *plan;
    const fy_graph *graph;
    const fy_machine *machine;
    fy_hb *hb;
    const fy_replay_hooks *hooks;
    fy_replay_stats stats;
    size_t tensor_count, op_count;
    tensor_state *tensors;
    copy *copies; /* [tensor][tier] */
    /* Per tensor, the ops that touch it in graph order: (op << 1) | reads-it. */
    uint32_t *access, *access_start;
    int32_t *computed_by; /* per op: the event that computed it, or NONE */
    long last_op;         /* the op computed most recently in graph terms (the highest) */
    int32_t last_op_event;
    fy_arena_map arenas[FY_TIER_COUNT];
    uint64_t live[FY_TIER_COUNT];
    bool beyond_reported[FY_TIER_COUNT];
    int rc; /* first allocation failure */
    char msg[1024];
} replay;

/* ---- reporting ------------------------------------------------------------------ */

static unsigned long long id_of(const replay *r, long event)
{
    return (unsigned long long)r->plan->events[event].id;
}

/* "op 'fc0' (event 3)", "load of 'w0' (event 1)", "evict of 'w0' (event 5)". */
static const char *who(const replay *r, long event, char *buf, size_t size)
{
    const fy_event *ev = &r->plan->events[event];
    if (ev->kind == FY_EVENT_COMPUTE)
        snprintf(buf, size, "op '%s' (event %llu)", ev->ref, id_of(r, event));
    else
        snprintf(buf, size, "%s of '%s' (event %llu)", fy_event_kind_name(ev->kind), ev->ref,
                 id_of(r, event));
    return buf;
}

static void report(replay *r, fy_check_class cls, size_t event, long related, unsigned line,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void report(replay *r, fy_check_class cls, size_t event, long related, unsigned line,
                   const char *fmt, ...)
{
    r->stats.issues++;
    if (!r->hooks || !r->hooks->issue) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
    fy_replay_issue issue = {.cls = cls,
                             .warning =
                                 cls == FY_CHECK_REDUNDANT_LOAD || cls == FY_CHECK_UNUSED_LOAD,
                             .event = event,
                             .related = related,
                             .line = line,
                             .message = r->msg};
    r->hooks->issue(r->hooks->ctx, &issue);
}

static void changed(replay *r, fy_change_kind kind, size_t event, int32_t t, fy_tier tier,
                    const copy *c)
{
    if (!r->hooks || !r->hooks->change) return;
    fy_replay_change ch = {.kind = kind,
                           .event = event,
                           .tensor = t,
                           .tier = tier,
                           .offset = c->offset,
                           .size = fy_graph_tensor(r->graph, (size_t)t)->size,
                           .in_arena = c->in_arena,
                           .version = c->version};
    r->hooks->change(r->hooks->ctx, &ch);
}

static bool before(replay *r, long a, size_t b)
{
    return !r->hb || a < 0 || fy_hb_before(r->hb, (size_t)a, b);
}

/* ---- state helpers -------------------------------------------------------------- */

static copy *copy_of(replay *r, int32_t t, fy_tier tier)
{
    return &r->copies[(size_t)t * FY_TIER_COUNT + (size_t)tier];
}

static const char *tname(const replay *r, int32_t t)
{
    return fy_graph_tensor(r->graph, (size_t)t)->name;
}

static uint64_t tsize(const replay *r, int32_t t)
{
    return fy_graph_tensor(r->graph, (size_t)t)->size;
}

static void forget_readers(copy *c)
{
    c->unordered = false;
    for (int s = 0; s < FY_STREAM_COUNT; s++)
        c->stream_reader[s] = NONE;
    c->io_count = 0;
}

static void add_reader(replay *r, copy *c, size_t event)
{
    c->read = true;
    fy_queue q = fy_event_queue(r->plan, &r->plan->events[event]);
    if (q < FY_STREAM_COUNT) {
        c->stream_reader[q] = (int32_t)event;
        return;
    }
    if (c->io_count == c->io_cap) {
        uint32_t cap = c->io_cap ? c->io_cap * 2 : 4;
        uint32_t *p = realloc(c->io_readers, cap * sizeof *p);
        if (!p) {
            r->rc = FY_ENOMEM;
            return;
        }
        c->io_readers = p;
        c->io_cap = cap;
    }
    c->io_readers[c->io_count++] = (uint32_t)event;
}

/* The first reader of c that may not have completed before event, or NONE. */
static long unfinished_reader(replay *r, const copy *c, size_t event)
{
    for (int s = 0; s < FY_STREAM_COUNT; s++)
        if (c->stream_reader[s] != NONE && (size_t)c->stream_reader[s] != event &&
            !before(r, c->stream_reader[s], event))
            return c->stream_reader[s];
    for (uint32_t i = 0; i < c->io_count; i++)
        if (c->io_readers[i] != event && !before(r, c->io_readers[i], event))
            return c->io_readers[i];
    return NONE;
}

/* How a placing event put a copy there, for messages. */
static const char *puts_verb(const replay *r, long event)
{
    return r->plan->events[event].kind == FY_EVENT_COMPUTE ? "writes" : "puts";
}

/* ---- arenas --------------------------------------------------------------------- */

static bool conflicts(void *ctx, const fy_arena_seg *old)
{
    const void *const *pair = ctx;
    replay *r = (replay *)pair[0];
    size_t event = *(const size_t *)pair[1];
    return old->live || !before(r, old->event, event);
}

/* Places t's copy on tier at offset for event: arena bounds, overlap, live bytes. */
static void place_in_arena(replay *r, size_t event, int32_t t, fy_tier tier, uint64_t offset)
{
    const fy_event *ev = &r->plan->events[event];
    uint64_t size = tsize(r, t), end = offset + size;
    bool overflow = end < offset;
    char w[300], o[300];
    if (overflow) end = UINT64_MAX;
    if (end > r->stats.arena_used[tier]) r->stats.arena_used[tier] = end;
    r->live[tier] += size;
    if (r->live[tier] > r->stats.peak_live[tier]) r->stats.peak_live[tier] = r->live[tier];
    if (overflow || end > r->plan->arena[tier]) {
        if (!r->beyond_reported[tier]) {
            char a[32];
            r->beyond_reported[tier] = true;
            report(r, FY_CHECK_OVER_CAPACITY, event, NONE, ev->line,
                   "%s places '%s' at [%llu, %llu) on %s, beyond the %s arena of %s",
                   who(r, (long)event, w, sizeof w), tname(r, t), (unsigned long long)offset,
                   (unsigned long long)end, fy_tier_name(tier), fy_tier_name(tier),
                   fy_size_format_exact(r->plan->arena[tier], a, sizeof a));
        }
    }
    if (size == 0) return;
    const void *pair[2] = {r, &event};
    fy_arena_seg old;
    int hit = fy_arena_map_place(&r->arenas[tier], offset, end, (int32_t)(t * FY_TIER_COUNT + tier),
                                 (int32_t)event, conflicts, (void *)pair, &old);
    if (hit < 0) {
        r->rc = hit;
        return;
    }
    if (!hit) return;
    int32_t other = old.owner / FY_TIER_COUNT;
    if (old.live)
        report(r, FY_CHECK_OVERLAP, event, old.event, ev->line,
               "%s places '%s' at [%llu, %llu) on %s, over bytes [%llu, %llu) of '%s' (placed "
               "by event %llu), which is still there",
               who(r, (long)event, w, sizeof w), tname(r, t), (unsigned long long)offset,
               (unsigned long long)end, fy_tier_name(tier), (unsigned long long)old.start,
               (unsigned long long)old.end, tname(r, other), id_of(r, old.event));
    else
        report(r, FY_CHECK_OVERLAP, event, old.event, ev->line,
               "%s places '%s' at [%llu, %llu) on %s, over bytes [%llu, %llu) of '%s' that %s "
               "may not have freed yet",
               who(r, (long)event, w, sizeof w), tname(r, t), (unsigned long long)offset,
               (unsigned long long)end, fy_tier_name(tier), (unsigned long long)old.start,
               (unsigned long long)old.end, tname(r, other), who(r, old.event, o, sizeof o));
}

/* Puts a new copy of t on tier (the caller has checked there is none). */
static void place(replay *r, size_t event, int32_t t, fy_tier tier, uint64_t offset, bool in_arena,
                  uint32_t version, bool by_load)
{
    copy *c = copy_of(r, t, tier);
    c->present = true;
    c->home = false;
    c->in_arena = in_arena;
    c->offset = offset;
    c->version = version;
    c->since = (int32_t)event;
    c->by_load = by_load;
    c->read = false;
    forget_readers(c);
    if (in_arena) place_in_arena(r, event, t, tier, offset);
    changed(r, FY_CHANGE_PLACE, event, t, tier, c);
}

/* Drops t's copy on tier (present) at event. */
static void drop(replay *r, size_t event, int32_t t, fy_tier tier)
{
    copy *c = copy_of(r, t, tier);
    changed(r, FY_CHANGE_DROP, event, t, tier, c);
    if (c->in_arena) {
        uint64_t size = tsize(r, t),
                 end = c->offset + size < c->offset ? UINT64_MAX : c->offset + size;
        r->live[tier] -= size;
        if (size) {
            int rc = fy_arena_map_release(&r->arenas[tier], c->offset, end,
                                          (int32_t)(t * FY_TIER_COUNT + tier), (int32_t)event);
            if (rc < 0) r->rc = rc;
        }
    }
    c->present = false;
    c->evicted_by = (int32_t)event;
}

static bool up_to_date(const replay *r, int32_t t, const copy *c)
{
    return c->present && c->version == r->tensors[t].version;
}

/* Warns when a copy a load put somewhere goes (or the plan ends) without being read. */
static void check_unused(replay *r, int32_t t, fy_tier tier, long evict)
{
    copy *c = copy_of(r, t, tier);
    if (!c->present || !c->by_load || c->read) return;
    const fy_event *ev = &r->plan->events[c->since];
    char w[300], e[300];
    if (evict >= 0)
        report(r, FY_CHECK_UNUSED_LOAD, (size_t)c->since, evict, ev->line,
               "%s puts '%s' on %s, and %s drops it without any event reading it",
               who(r, c->since, w, sizeof w), tname(r, t), fy_tier_name(tier),
               who(r, evict, e, sizeof e));
    else
        report(r, FY_CHECK_UNUSED_LOAD, (size_t)c->since, NONE, ev->line,
               "%s puts '%s' on %s, and nothing reads it before the plan ends",
               who(r, c->since, w, sizeof w), tname(r, t), fy_tier_name(tier));
}

/* ---- reads ---------------------------------------------------------------------- */

/* Event reads t's copy on tier (a compute reading an operand, a transfer copying from it). */
static void check_read(replay *r, size_t event, int32_t t, fy_tier tier)
{
    const fy_event *ev = &r->plan->events[event];
    copy *c = copy_of(r, t, tier);
    tensor_state *ts = &r->tensors[t];
    bool op = ev->kind == FY_EVENT_COMPUTE;
    char w[300], o[300];
    if (!c->present) {
        if (ts->lost) return; /* its data-loss was reported; this read is the consequence */
        if (c->evicted_by != NONE && op)
            report(r, FY_CHECK_REUSE_AFTER_EVICT, event, c->evicted_by, ev->line,
                   "%s reads '%s', evicted from %s by event %llu and not loaded again",
                   who(r, (long)event, w, sizeof w), tname(r, t), fy_tier_name(tier),
                   id_of(r, c->evicted_by));
        else if (c->evicted_by != NONE)
            report(r, FY_CHECK_REUSE_AFTER_EVICT, event, c->evicted_by, ev->line,
                   "%s copies '%s' from %s, evicted from there by event %llu and not loaded "
                   "again",
                   who(r, (long)event, w, sizeof w), tname(r, t), fy_tier_name(tier),
                   id_of(r, c->evicted_by));
        else if (op)
            report(r, FY_CHECK_NEVER_LOADED, event, NONE, ev->line,
                   "%s reads '%s', which was never on %s", who(r, (long)event, w, sizeof w),
                   tname(r, t), fy_tier_name(tier));
        else
            report(r, FY_CHECK_NEVER_LOADED, event, NONE, ev->line,
                   "%s copies '%s' from %s, where it never was", who(r, (long)event, w, sizeof w),
                   tname(r, t), fy_tier_name(tier));
        return;
    }
    if (c->version < ts->version) {
        if (!ts->lost)
            report(r, FY_CHECK_STALE_COPY, event, ts->writer, ev->line,
                   "%s %s a stale copy of '%s' %s %s (version %u; %s wrote version %u)",
                   who(r, (long)event, w, sizeof w), op ? "reads" : "copies", tname(r, t),
                   op ? "on" : "from", fy_tier_name(tier), c->version,
                   who(r, ts->writer, o, sizeof o), ts->version);
    } else if (!c->unordered && !before(r, c->since, event)) {
        c->unordered = true;
        report(r, FY_CHECK_UNORDERED_USE, event, c->since, ev->line,
               "%s %s '%s' %s %s but may start before %s, which %s it there, completes",
               who(r, (long)event, w, sizeof w), op ? "reads" : "copies", tname(r, t),
               op ? "on" : "from", fy_tier_name(tier), who(r, c->since, o, sizeof o),
               puts_verb(r, c->since));
    }
    add_reader(r, c, event);
}

/* ---- transfers ------------------------------------------------------------------ */

static bool is_load_direction(fy_tier from, fy_tier to)
{
    return (from == FY_TIER_NVME && to == FY_TIER_HOST) ||
           (from == FY_TIER_HOST && to == FY_TIER_GPU);
}

static void do_transfer(replay *r, size_t i, const fy_event *ev)
{
    int32_t t = ev->tensor;
    char w[300], o[300];
    if (t < 0) {
        report(r, FY_CHECK_BAD_REFERENCE, i, NONE, ev->line,
               "event %llu names '%s', which is not a tensor of the graph", id_of(r, (long)i),
               ev->ref);
        return;
    }
    if (ev->from == FY_TIER_NONE || ev->to == FY_TIER_NONE || ev->from == ev->to) {
        report(r, FY_CHECK_BAD_REFERENCE, i, NONE, ev->line,
               "%s names %s (tiers are gpu, host and nvme, and a transfer goes between two)",
               who(r, (long)i, w, sizeof w),
               ev->from == ev->to && ev->from != FY_TIER_NONE ? "the same tier twice"
                                                              : "an unknown tier");
        return;
    }
    bool load_dir = is_load_direction(ev->from, ev->to);
    bool offload_dir = is_load_direction(ev->to, ev->from);
    if (!load_dir && !offload_dir)
        report(r, FY_CHECK_BAD_REFERENCE, i, NONE, ev->line,
               "%s goes %s->%s: there is no such link (nvme and gpu connect through host)",
               who(r, (long)i, w, sizeof w), fy_tier_name(ev->from), fy_tier_name(ev->to));
    else if ((ev->kind == FY_EVENT_LOAD) != load_dir)
        report(r, FY_CHECK_BAD_REFERENCE, i, NONE, ev->line, "%s goes %s->%s, which is %s",
               who(r, (long)i, w, sizeof w), fy_tier_name(ev->from), fy_tier_name(ev->to),
               load_dir ? "a load, not an offload" : "an offload, not a load");
    check_read(r, i, t, ev->from);
    /* The copy gets the latest version: if the source was stale or missing, that was
     * reported, and the plan evidently meant the current data. */
    tensor_state *ts = &r->tensors[t];
    copy *d = copy_of(r, t, ev->to);
    if (!d->present) {
        place(r, i, t, ev->to, ev->at, true, ts->version, ev->kind == FY_EVENT_LOAD);
        return;
    }
    if (d->version == ts->version) {
        if (d->since >= 0)
            report(r, FY_CHECK_REDUNDANT_LOAD, i, d->since, ev->line,
                   "%s copies '%s' to %s, where %s already put it and it is up to date",
                   who(r, (long)i, w, sizeof w), tname(r, t), fy_tier_name(ev->to),
                   who(r, d->since, o, sizeof o));
        else
            report(r, FY_CHECK_REDUNDANT_LOAD, i, NONE, ev->line,
                   "%s copies '%s' to %s, where it rests from the start and is up to date",
                   who(r, (long)i, w, sizeof w), tname(r, t), fy_tier_name(ev->to));
        return;
    }
    /* A stale copy is replaced: in place in an arena, or by an arena copy at `at` when it
     * is a home copy (the source file, the caller's memory). Its readers must be done. */
    long reader = unfinished_reader(r, d, i);
    if (reader != NONE)
        report(r, FY_CHECK_EVICT_IN_USE, i, reader, ev->line,
               "%s overwrites the stale copy of '%s' on %s while %s may still read it",
               who(r, (long)i, w, sizeof w), tname(r, t), fy_tier_name(ev->to),
               who(r, reader, o, sizeof o));
    if (d->home || !d->in_arena) {
        changed(r, FY_CHANGE_DROP, i, t, ev->to, d);
        d->present = false;
        place(r, i, t, ev->to, ev->at, true, ts->version, ev->kind == FY_EVENT_LOAD);
        return;
    }
    if (ev->at != d->offset)
        report(r, FY_CHECK_BAD_REFERENCE, i, d->since, ev->line,
               "%s replaces the stale copy of '%s' on %s, which is replaced in place at %llu, "
               "but gives at: %llu",
               who(r, (long)i, w, sizeof w), tname(r, t), fy_tier_name(ev->to),
               (unsigned long long)d->offset, (unsigned long long)ev->at);
    d->version = ts->version;
    d->since = (int32_t)i;
    d->by_load = ev->kind == FY_EVENT_LOAD;
    d->read = false;
    forget_readers(d);
    changed(r, FY_CHANGE_WRITE, i, t, ev->to, d);
}

/* ---- evicts --------------------------------------------------------------------- */

/* Whether t's current data is still needed after the ops computed so far: the next op in
 * graph order that touches it reads it, or nothing touches it again and it is an output.
 * *reader receives that op, or NONE. */
static bool still_needed(const replay *r, int32_t t, long *reader)
{
    uint32_t lo = r->access_start[t], hi = r->access_start[t + 1];
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if ((long)(r->access[mid] >> 1) <= r->last_op)
            lo = mid + 1;
        else
            hi = mid;
    }
    *reader = NONE;
    if (lo < r->access_start[t + 1]) {
        if (!(r->access[lo] & 1)) return false; /* overwritten before anyone reads it */
        *reader = (long)(r->access[lo] >> 1);
        return true;
    }
    return fy_graph_tensor(r->graph, (size_t)t)->kind == FY_TENSOR_OUTPUT;
}

static void do_evict(replay *r, size_t i, const fy_event *ev)
{
    int32_t t = ev->tensor;
    char w[300], o[300];
    if (t < 0) {
        report(r, FY_CHECK_BAD_REFERENCE, i, NONE, ev->line,
               "event %llu names '%s', which is not a tensor of the graph", id_of(r, (long)i),
               ev->ref);
        return;
    }
    if (ev->from == FY_TIER_NONE) {
        report(r, FY_CHECK_BAD_REFERENCE, i, NONE, ev->line,
               "%s names an unknown tier (tiers are gpu, host and nvme)",
               who(r, (long)i, w, sizeof w));
        return;
    }
    fy_tier tier = ev->from;
    copy *c = copy_of(r, t, tier);
    if (!c->present) {
        if (c->evicted_by != NONE)
            report(r, FY_CHECK_REUSE_AFTER_EVICT, i, c->evicted_by, ev->line,
                   "%s drops '%s' from %s, already evicted from there by event %llu",
                   who(r, (long)i, w, sizeof w), tname(r, t), fy_tier_name(tier),
                   id_of(r, c->evicted_by));
        else
            report(r, FY_CHECK_NEVER_LOADED, i, NONE, ev->line,
                   "%s drops '%s' from %s, where it never was", who(r, (long)i, w, sizeof w),
                   tname(r, t), fy_tier_name(tier));
        return;
    }
    long reader;
    if (!before(r, c->since, i)) {
        if (!c->unordered)
            report(r, FY_CHECK_UNORDERED_USE, i, c->since, ev->line,
                   "%s may drop '%s' from %s before %s, which %s it there, completes",
                   who(r, (long)i, w, sizeof w), tname(r, t), fy_tier_name(tier),
                   who(r, c->since, o, sizeof o), puts_verb(r, c->since));
    } else if ((reader = unfinished_reader(r, c, i)) != NONE)
        report(r, FY_CHECK_EVICT_IN_USE, i, reader, ev->line,
               "%s drops '%s' from %s while %s may still read it", who(r, (long)i, w, sizeof w),
               tname(r, t), fy_tier_name(tier), who(r, reader, o, sizeof o));
    tensor_state *ts = &r->tensors[t];
    if (!ts->lost && up_to_date(r, t, c)) {
        bool other = false;
        for (int k = 0; k < FY_TIER_COUNT && !other; k++)
            other = k != (int)tier && up_to_date(r, t, copy_of(r, t, (fy_tier)k));
        long op;
        if (!other && still_needed(r, t, &op)) {
            ts->lost = true;
            if (op != NONE)
                report(r, FY_CHECK_DATA_LOSS, i, NONE, ev->line,
                       "%s drops the only up-to-date copy of '%s' (version %u, on %s), which op "
                       "'%s' reads later",
                       who(r, (long)i, w, sizeof w), tname(r, t), ts->version, fy_tier_name(tier),
                       fy_graph_op(r->graph, (size_t)op)->name);
            else
                report(r, FY_CHECK_DATA_LOSS, i, NONE, ev->line,
                       "%s drops the only up-to-date copy of output '%s' (version %u, on %s) "
                       "before it ends on host",
                       who(r, (long)i, w, sizeof w), tname(r, t), ts->version, fy_tier_name(tier));
        }
    }
    check_unused(r, t, tier, (long)i);
    drop(r, i, t, tier);
}

/* ---- computes ------------------------------------------------------------------- */

static bool listed_before(const uint32_t *list, uint32_t k)
{
    for (uint32_t j = 0; j < k; j++)
        if (list[j] == list[k]) return true;
    return false;
}

static void check_placements(replay *r, size_t i, const fy_event *ev, const fy_op *op)
{
    char w[300];
    for (uint32_t p = 0; p < ev->place_count; p++) {
        const fy_placement *pl = &ev->places[p];
        bool written = false;
        for (uint32_t k = 0; k < op->write_count && !written; k++)
            written = pl->tensor >= 0 && op->writes[k] == (uint32_t)pl->tensor;
        if (pl->tensor < 0)
            report(r, FY_CHECK_BAD_REFERENCE, i, NONE, ev->line,
                   "%s places '%s', which is not a tensor of the graph",
                   who(r, (long)i, w, sizeof w), pl->name);
        else if (!written)
            report(r, FY_CHECK_BAD_REFERENCE, i, NONE, ev->line,
                   "%s places '%s', which the op does not write", who(r, (long)i, w, sizeof w),
                   pl->name);
    }
}

static const fy_placement *placement_of(const fy_event *ev, int32_t t)
{
    for (uint32_t p = 0; p < ev->place_count; p++)
        if (ev->places[p].tensor == t) return &ev->places[p];
    return NULL;
}

static void do_write(replay *r, size_t i, const fy_event *ev, int32_t t, fy_tier dev)
{
    char w[300], o[300];
    tensor_state *ts = &r->tensors[t];
    ts->version++;
    ts->writer = (int32_t)i;
    ts->lost = false;
    copy *c = copy_of(r, t, dev);
    const fy_placement *pl = placement_of(ev, t);
    if (!c->present) {
        if (!pl)
            report(r, FY_CHECK_BAD_REFERENCE, i, NONE, ev->line,
                   "%s creates '%s' but gives no offset (at: {%s: OFFSET})",
                   who(r, (long)i, w, sizeof w), tname(r, t), tname(r, t));
        place(r, i, t, dev, pl ? pl->offset : 0, pl != NULL, ts->version, false);
        return;
    }
    long reader;
    if (!before(r, c->since, i)) {
        if (!c->unordered)
            report(r, FY_CHECK_UNORDERED_USE, i, c->since, ev->line,
                   "%s updates '%s' on %s in place but may start before %s, which %s it there, "
                   "completes",
                   who(r, (long)i, w, sizeof w), tname(r, t), fy_tier_name(dev),
                   who(r, c->since, o, sizeof o), puts_verb(r, c->since));
    } else if ((reader = unfinished_reader(r, c, i)) != NONE)
        report(r, FY_CHECK_EVICT_IN_USE, i, reader, ev->line,
               "%s overwrites '%s' on %s while %s may still read it", who(r, (long)i, w, sizeof w),
               tname(r, t), fy_tier_name(dev), who(r, reader, o, sizeof o));
    if (pl && (!c->in_arena || pl->offset != c->offset))
        report(r, FY_CHECK_BAD_REFERENCE, i, NONE, ev->line,
               "%s places '%s' at %llu, but '%s' is already on %s%s and is updated in place",
               who(r, (long)i, w, sizeof w), tname(r, t), (unsigned long long)pl->offset,
               tname(r, t), fy_tier_name(dev), c->in_arena ? " elsewhere" : " outside the arena");
    c->version = ts->version;
    c->since = (int32_t)i;
    c->by_load = false;
    c->read = false;
    forget_readers(c);
    changed(r, FY_CHANGE_WRITE, i, t, dev, c);
}

static void do_compute(replay *r, size_t i, const fy_event *ev)
{
    char w[300], o[300];
    if (ev->op < 0) {
        report(r, FY_CHECK_BAD_REFERENCE, i, NONE, ev->line,
               "event %llu runs '%s', which is not an op of the graph", id_of(r, (long)i), ev->ref);
        return;
    }
    const fy_op *op = fy_graph_op(r->graph, (size_t)ev->op);
    int32_t first = r->computed_by[ev->op];
    if (first != NONE)
        report(r, FY_CHECK_INCOMPLETE, i, first, ev->line,
               "%s is computed again (first by event %llu)", who(r, (long)i, w, sizeof w),
               id_of(r, first));
    else if (ev->op < r->last_op)
        report(r, FY_CHECK_INCOMPLETE, i, r->last_op_event, ev->line,
               "%s runs after %s, which the graph orders after it", who(r, (long)i, w, sizeof w),
               who(r, r->last_op_event, o, sizeof o));
    if (first == NONE) r->computed_by[ev->op] = (int32_t)i;
    check_placements(r, i, ev, op);
    for (uint32_t k = 0; k < op->read_count; k++)
        if (!listed_before(op->reads, k)) check_read(r, i, (int32_t)op->reads[k], op->device);
    if (ev->op > r->last_op) {
        r->last_op = ev->op;
        r->last_op_event = (int32_t)i;
    }
    for (uint32_t k = 0; k < op->write_count; k++)
        if (!listed_before(op->writes, k)) do_write(r, i, ev, (int32_t)op->writes[k], op->device);
}

/* ---- start and end ---------------------------------------------------------------- */

static int setup(replay *r, fy_error *err)
{
    size_t nt = r->tensor_count = fy_graph_tensor_count(r->graph);
    size_t no = r->op_count = fy_graph_op_count(r->graph);
    size_t accesses = 0;
    for (size_t o = 0; o < no; o++) {
        const fy_op *op = fy_graph_op(r->graph, o);
        accesses += op->read_count + op->write_count;
    }
    r->tensors = calloc(nt ? nt : 1, sizeof *r->tensors);
    r->copies = calloc((nt ? nt : 1) * FY_TIER_COUNT, sizeof *r->copies);
    r->access_start = calloc(nt + 2, sizeof *r->access_start);
    r->access = malloc((accesses ? accesses : 1) * sizeof *r->access);
    r->computed_by = malloc((no ? no : 1) * sizeof *r->computed_by);
    if (!r->tensors || !r->copies || !r->access_start || !r->access || !r->computed_by)
        return fy_error_set(err, FY_ENOMEM, "out of memory setting up the replay");
    for (size_t o = 0; o < no; o++)
        r->computed_by[o] = NONE;
    r->last_op = -1;
    r->last_op_event = NONE;
    for (size_t t = 0; t < nt; t++) {
        const fy_tensor *ten = fy_graph_tensor(r->graph, t);
        r->tensors[t].writer = NONE;
        for (int k = 0; k < FY_TIER_COUNT; k++) {
            copy *c = copy_of(r, (int32_t)t, (fy_tier)k);
            c->since = c->evicted_by = NONE;
            forget_readers(c);
        }
        if (ten->home != FY_TIER_NONE) {
            copy *c = copy_of(r, (int32_t)t, ten->home);
            c->present = c->home = true;
        }
    }
    /* Counting sort of (tensor, op) accesses: per tensor, its ops in graph order. An op
     * that reads and writes a tensor counts as reading it. */
    uint32_t *fill = r->access_start + 1;
    for (size_t o = 0; o < no; o++) {
        const fy_op *op = fy_graph_op(r->graph, o);
        for (uint32_t k = 0; k < op->read_count; k++)
            fill[op->reads[k]]++;
        for (uint32_t k = 0; k < op->write_count; k++)
            fill[op->writes[k]]++;
    }
    for (size_t t = 0; t < nt; t++)
        r->access_start[t + 1] += r->access_start[t];
    uint32_t *pos = calloc(nt ? nt : 1, sizeof *pos);
    if (!pos) return fy_error_set(err, FY_ENOMEM, "out of memory setting up the replay");
    for (size_t o = 0; o < no; o++) {
        const fy_op *op = fy_graph_op(r->graph, o);
        for (int pass = 0; pass < 2; pass++) {
            const uint32_t *list = pass ? op->writes : op->reads;
            uint32_t n = pass ? op->write_count : op->read_count;
            for (uint32_t k = 0; k < n; k++) {
                uint32_t t = list[k], at = r->access_start[t] + pos[t];
                /* A tensor listed twice by one op keeps one entry, marked read if any is. */
                if (pos[t] && (r->access[at - 1] >> 1) == o) {
                    r->access[at - 1] |= pass == 0;
                    continue;
                }
                r->access[at] = (uint32_t)(o << 1) | (pass == 0);
                pos[t]++;
            }
        }
    }
    /* Entries left over by duplicates are filled with a copy of the last real one so that
     * the binary search over [start, start + count) stays sorted. */
    for (size_t t = 0; t < nt; t++) {
        uint32_t start = r->access_start[t], end = r->access_start[t + 1];
        for (uint32_t k = start + pos[t]; k < end; k++)
            r->access[k] = r->access[k - 1];
    }
    free(pos);
    for (int k = 0; k < FY_TIER_COUNT; k++)
        fy_arena_map_init(&r->arenas[k]);
    return 0;
}

static void finish(replay *r, size_t n)
{
    size_t last = n ? n - 1 : 0;
    unsigned line = r->plan->events_line;
    /* Ops never computed, one report per run of consecutive ones. */
    for (size_t o = 0; o < r->op_count;) {
        if (r->computed_by[o] != NONE) {
            o++;
            continue;
        }
        size_t end = o;
        while (end + 1 < r->op_count && r->computed_by[end + 1] == NONE)
            end++;
        if (end == o)
            report(r, FY_CHECK_INCOMPLETE, last, NONE, line, "op '%s' is never computed",
                   fy_graph_op(r->graph, o)->name);
        else
            report(r, FY_CHECK_INCOMPLETE, last, NONE, line,
                   "ops '%s' to '%s' (%zu ops) are never computed", fy_graph_op(r->graph, o)->name,
                   fy_graph_op(r->graph, end)->name, end - o + 1);
        o = end + 1;
    }
    char w[300];
    for (size_t t = 0; t < r->tensor_count; t++) {
        const tensor_state *ts = &r->tensors[t];
        const fy_tensor *ten = fy_graph_tensor(r->graph, t);
        /* Never written: its op is reported above. Lost: reported as data-loss. */
        if (ten->kind == FY_TENSOR_OUTPUT && ts->version > 0 && !ts->lost &&
            !up_to_date(r, (int32_t)t, copy_of(r, (int32_t)t, FY_TIER_HOST)))
            report(r, FY_CHECK_INCOMPLETE, last, ts->writer, line,
                   "output '%s' never reaches host: its final version (written by %s) is not "
                   "on host when the plan ends",
                   ten->name, who(r, ts->writer, w, sizeof w));
        for (int k = 0; k < FY_TIER_COUNT; k++)
            check_unused(r, (int32_t)t, (fy_tier)k, NONE);
    }
}

static void cleanup(replay *r)
{
    if (r->copies)
        for (size_t i = 0; i < r->tensor_count * FY_TIER_COUNT; i++)
            free(r->copies[i].io_readers);
    free(r->copies);
    free(r->tensors);
    free(r->access);
    free(r->access_start);
    free(r->computed_by);
    for (int k = 0; k < FY_TIER_COUNT; k++)
        fy_arena_map_free(&r->arenas[k]);
}

int fy_replay_run(const fy_plan *plan, const fy_machine *machine, fy_hb *hb,
                  const fy_replay_hooks *hooks, fy_replay_stats *stats, fy_error *err)
{
    size_t n = fy_plan_event_count(plan);
    if (n >= (size_t)INT32_MAX)
        return fy_error_set(err, FY_ERANGE, "a plan of %zu events is too large to check", n);
    replay r = {.plan = plan,
                .graph = fy_plan_graph(plan),
                .machine = machine ? machine : fy_plan_machine(plan),
                .hb = hb,
                .hooks = hooks};
    int rc = setup(&r, err);
    char a[32], b[32];
    for (int k = 0; rc == 0 && k < FY_TIER_COUNT; k++)
        if (plan->arena[k] > r.machine->capacity[k])
            report(&r, FY_CHECK_OVER_CAPACITY, n ? n - 1 : 0, NONE, plan->arena_line[k],
                   "the %s arena (%s) is larger than the machine's %s capacity (%s)",
                   fy_tier_name((fy_tier)k), fy_size_format_exact(plan->arena[k], a, sizeof a),
                   fy_tier_name((fy_tier)k),
                   fy_size_format_exact(r.machine->capacity[k], b, sizeof b));
    for (size_t i = 0; rc == 0 && r.rc == 0 && i < n; i++) {
        const fy_event *ev = &plan->events[i];
        switch (ev->kind) {
        case FY_EVENT_LOAD:
        case FY_EVENT_OFFLOAD:
            do_transfer(&r, i, ev);
            break;
        case FY_EVENT_EVICT:
            do_evict(&r, i, ev);
            break;
        default:
            do_compute(&r, i, ev);
            break;
        }
    }
    if (rc == 0 && r.rc == 0) finish(&r, n);
    if (rc == 0 && r.rc < 0) rc = fy_error_set(err, r.rc, "out of memory replaying the plan");
    if (rc == 0 && stats) *stats = r.stats;
    cleanup(&r);
    return rc;
}
