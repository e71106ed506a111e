/* The plan generator: walks the graph's ops in order and, for each, brings its reads to its
 * device (nvme -> host -> gpu as needed), runs it, then offloads and evicts what is not
 * needed soon. Every placement records its `after` edges: the event that put the source
 * copy in place, and the evict that freed the arena slot it reuses; every evict waits for
 * the copy's placing event and its last reader on each queue. */
#include "plans/plan_gen.h"

#include "plans/hb.h"

#include <stdlib.h>
#include <string.h>

#define NONE (-1)
#define QUEUES 5 /* h2d, d2h, gpu, host, io */

typedef struct gcopy {
    bool present, fresh, home;
    uint64_t offset;
    long since;           /* placing or last writing event, NONE for a home copy */
    long readers[QUEUES]; /* last reader on each queue */
} gcopy;

typedef struct slot {
    uint64_t offset;
    long freed_by;
} slot;

/* Free arena slots of one size on one tier (a LIFO stack). */
typedef struct slot_list {
    uint64_t size;
    slot *items;
    size_t count, cap;
} slot_list;

typedef struct gen {
    const fy_graph *g;
    fy_plan *plan;
    unsigned window;
    bool spill;
    gcopy *copies; /* [tensor][tier] */
    uint32_t *access, *access_start, *cursor;
    uint64_t top[FY_TIER_COUNT];
    slot_list *free_slots[FY_TIER_COUNT];
    size_t free_count[FY_TIER_COUNT], free_cap[FY_TIER_COUNT];
    uint32_t after[64];
    uint32_t after_count;
    int rc;
    fy_error *err;
} gen;

static gcopy *cp(gen *s, uint32_t t, fy_tier tier)
{
    return &s->copies[(size_t)t * FY_TIER_COUNT + tier];
}

static void after_add(gen *s, long event)
{
    if (event < 0) return;
    for (uint32_t i = 0; i < s->after_count; i++)
        if (s->after[i] == (uint32_t)event) return;
    if (s->after_count < sizeof s->after / sizeof s->after[0])
        s->after[s->after_count++] = (uint32_t)event;
}

static long emit(gen *s, fy_event *ev)
{
    if (s->rc < 0) return NONE;
    ev->after = s->after;
    ev->after_count = s->after_count;
    long i = fy_plan_add(s->plan, ev, s->err);
    s->after_count = 0;
    if (i < 0) {
        s->rc = (int)i;
        return NONE;
    }
    return i;
}

static int queue_of(gen *s, long event)
{
    return (int)fy_event_queue(s->plan, fy_plan_event(s->plan, (size_t)event));
}

static void forget(gcopy *c)
{
    for (int q = 0; q < QUEUES; q++)
        c->readers[q] = NONE;
}

static void read_by(gen *s, gcopy *c, long event)
{
    int q = queue_of(s, event);
    if (q < QUEUES) c->readers[q] = event;
}

/* ---- arena slots ------------------------------------------------------------------ */

static slot_list *list_for(gen *s, fy_tier tier, uint64_t size, bool create)
{
    for (size_t i = 0; i < s->free_count[tier]; i++)
        if (s->free_slots[tier][i].size == size) return &s->free_slots[tier][i];
    if (!create) return NULL;
    if (s->free_count[tier] == s->free_cap[tier]) {
        size_t cap = s->free_cap[tier] ? s->free_cap[tier] * 2 : 8;
        slot_list *l = realloc(s->free_slots[tier], cap * sizeof *l);
        if (!l) {
            s->rc = fy_error_set(s->err, FY_ENOMEM, "out of memory");
            return NULL;
        }
        s->free_slots[tier] = l;
        s->free_cap[tier] = cap;
    }
    slot_list *l = &s->free_slots[tier][s->free_count[tier]++];
    *l = (slot_list){.size = size};
    return l;
}

/* An offset for size bytes on tier; adds the evict that freed a reused slot to after. */
static uint64_t alloc_slot(gen *s, fy_tier tier, uint64_t size)
{
    slot_list *l = list_for(s, tier, size, false);
    if (l && l->count) {
        slot sl = l->items[--l->count];
        after_add(s, sl.freed_by);
        return sl.offset;
    }
    uint64_t at = s->top[tier];
    s->top[tier] += (size + 255) & ~(uint64_t)255;
    return at;
}

static void free_slot(gen *s, fy_tier tier, uint64_t size, uint64_t offset, long evict)
{
    slot_list *l = list_for(s, tier, size, true);
    if (!l) return;
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        slot *items = realloc(l->items, cap * sizeof *items);
        if (!items) {
            s->rc = fy_error_set(s->err, FY_ENOMEM, "out of memory");
            return;
        }
        l->items = items;
        l->cap = cap;
    }
    l->items[l->count++] = (slot){.offset = offset, .freed_by = evict};
}

/* ---- events ----------------------------------------------------------------------- */

static uint64_t size_of(gen *s, uint32_t t)
{
    return fy_graph_tensor(s->g, t)->size;
}

static void evict(gen *s, uint32_t t, fy_tier tier)
{
    gcopy *c = cp(s, t, tier);
    after_add(s, c->since);
    for (int q = 0; q < QUEUES; q++)
        after_add(s, c->readers[q]);
    fy_event ev = {.kind = FY_EVENT_EVICT, .tensor = (int32_t)t, .from = tier};
    long e = emit(s, &ev);
    if (!c->home) free_slot(s, tier, size_of(s, t), c->offset, e);
    c->present = c->fresh = c->home = false;
}

/* Copies t from tier `from` (fresh there) to tier `to`. */
static void transfer(gen *s, uint32_t t, fy_tier from, fy_tier to)
{
    gcopy *src = cp(s, t, from), *dst = cp(s, t, to);
    fy_event ev = {.kind = (from == FY_TIER_NVME || to == FY_TIER_GPU) ? FY_EVENT_LOAD
                                                                       : FY_EVENT_OFFLOAD,
                   .tensor = (int32_t)t,
                   .from = from,
                   .to = to};
    after_add(s, src->since);
    if (dst->present && !dst->home) {
        /* A stale arena copy is replaced in place; its readers must be done. */
        ev.at = dst->offset;
        after_add(s, dst->since);
        for (int q = 0; q < QUEUES; q++)
            after_add(s, dst->readers[q]);
    } else {
        ev.at = alloc_slot(s, to, size_of(s, t));
    }
    long e = emit(s, &ev);
    read_by(s, src, e);
    *dst = (gcopy){.present = true, .fresh = true, .offset = ev.at, .since = e};
    forget(dst);
}

/* Makes t fresh on tier `to` (gpu or host), moving it through host when it must. */
static void ensure(gen *s, uint32_t t, fy_tier to)
{
    if (cp(s, t, to)->fresh) return;
    if (to == FY_TIER_GPU) {
        bool staged = false;
        if (!cp(s, t, FY_TIER_HOST)->fresh) {
            if (!cp(s, t, FY_TIER_NVME)->fresh)
                return; /* produced nowhere yet: the graph rules this out */
            transfer(s, t, FY_TIER_NVME, FY_TIER_HOST);
            staged = true;
        }
        transfer(s, t, FY_TIER_HOST, FY_TIER_GPU);
        if (staged) /* a staging copy: nvme still holds the data */
            evict(s, t, FY_TIER_HOST);
        return;
    }
    if (cp(s, t, FY_TIER_NVME)->fresh)
        transfer(s, t, FY_TIER_NVME, FY_TIER_HOST);
    else if (cp(s, t, FY_TIER_GPU)->fresh)
        transfer(s, t, FY_TIER_GPU, FY_TIER_HOST);
}

/* The next op after op i that touches t, or NONE. */
static long next_use(gen *s, uint32_t t, size_t i)
{
    uint32_t *k = &s->cursor[t];
    while (s->access_start[t] + *k < s->access_start[t + 1] &&
           s->access[s->access_start[t] + *k] <= i)
        (*k)++;
    return s->access_start[t] + *k < s->access_start[t + 1]
               ? (long)s->access[s->access_start[t] + *k]
               : NONE;
}

static bool only_fresh(gen *s, uint32_t t, fy_tier tier)
{
    for (int k = 0; k < FY_TIER_COUNT; k++)
        if (k != (int)tier && cp(s, t, (fy_tier)k)->fresh) return false;
    return cp(s, t, tier)->fresh;
}

static void run_op(gen *s, size_t i)
{
    const fy_op *op = fy_graph_op(s->g, i);
    fy_tier dev = op->device;
    for (uint32_t k = 0; k < op->read_count; k++)
        ensure(s, op->reads[k], dev);
    fy_placement places[64];
    uint32_t np = 0;
    for (uint32_t k = 0; k < op->read_count; k++)
        after_add(s, cp(s, op->reads[k], dev)->since);
    for (uint32_t k = 0; k < op->write_count; k++) {
        uint32_t t = op->writes[k];
        gcopy *c = cp(s, t, dev);
        if (c->present) {
            after_add(s, c->since);
            for (int q = 0; q < QUEUES; q++)
                after_add(s, c->readers[q]);
        } else if (np < 64) {
            bool dup = false;
            for (uint32_t j = 0; j < np; j++)
                dup |= places[j].tensor == (int32_t)t;
            if (!dup)
                places[np++] = (fy_placement){.tensor = (int32_t)t,
                                              .offset = alloc_slot(s, dev, size_of(s, t))};
        }
    }
    fy_event ev = {.kind = FY_EVENT_COMPUTE, .op = (int32_t)i, .places = places, .place_count = np};
    long e = emit(s, &ev);
    for (uint32_t k = 0; k < op->read_count; k++)
        read_by(s, cp(s, op->reads[k], dev), e);
    for (uint32_t k = 0; k < op->write_count; k++) {
        uint32_t t = op->writes[k];
        gcopy *c = cp(s, t, dev);
        uint64_t offset = c->offset;
        bool home = c->present && c->home;
        for (uint32_t j = 0; j < np; j++)
            if (places[j].tensor == (int32_t)t) offset = places[j].offset;
        for (int tier = 0; tier < FY_TIER_COUNT; tier++)
            cp(s, t, (fy_tier)tier)->fresh = false;
        *c = (gcopy){.present = true, .fresh = true, .home = home, .offset = offset, .since = e};
        forget(c);
    }
    /* Afterwards: outputs go to host; what is not used again soon leaves the device. */
    for (int pass = 0; pass < 2; pass++) {
        const uint32_t *list = pass ? op->writes : op->reads;
        uint32_t n = pass ? op->write_count : op->read_count;
        for (uint32_t k = 0; k < n; k++) {
            uint32_t t = list[k];
            gcopy *c = cp(s, t, dev);
            if (!c->present) continue; /* listed twice, already handled */
            bool also_written = false;
            for (uint32_t j = 0; pass == 0 && j < op->write_count; j++)
                also_written |= op->writes[j] == t;
            if (also_written) continue; /* the writes' pass decides, knowing it was updated */
            const fy_tensor *ten = fy_graph_tensor(s->g, t);
            long next = next_use(s, t, i);
            bool updated = pass == 1 && ten->home != FY_TIER_NONE;
            if (dev == FY_TIER_GPU && pass == 1 && ten->kind == FY_TENSOR_OUTPUT && next == NONE)
                transfer(s, t, FY_TIER_GPU, FY_TIER_HOST);
            if (next != NONE && (size_t)next - i <= (s->window ? s->window : 1)) continue;
            if (dev == FY_TIER_GPU && only_fresh(s, t, dev) && (next != NONE || updated))
                transfer(s, t, FY_TIER_GPU, FY_TIER_HOST);
            if (dev == FY_TIER_GPU) evict(s, t, FY_TIER_GPU);
            if (updated && s->spill && ten->source_file && cp(s, t, FY_TIER_HOST)->fresh &&
                only_fresh(s, t, FY_TIER_HOST)) {
                transfer(s, t, FY_TIER_HOST, FY_TIER_NVME);
                if (next == NONE) evict(s, t, FY_TIER_HOST);
            }
        }
    }
}

static int setup(gen *s)
{
    size_t nt = fy_graph_tensor_count(s->g), no = fy_graph_op_count(s->g), total = 0;
    for (size_t o = 0; o < no; o++)
        total += fy_graph_op(s->g, o)->read_count + fy_graph_op(s->g, o)->write_count;
    s->copies = calloc((nt ? nt : 1) * FY_TIER_COUNT, sizeof *s->copies);
    s->access = malloc((total ? total : 1) * sizeof *s->access);
    s->access_start = calloc(nt + 1, sizeof *s->access_start);
    s->cursor = calloc(nt ? nt : 1, sizeof *s->cursor);
    if (!s->copies || !s->access || !s->access_start || !s->cursor)
        return fy_error_set(s->err, FY_ENOMEM, "out of memory generating a plan");
    for (size_t o = 0; o < no; o++) {
        const fy_op *op = fy_graph_op(s->g, o);
        for (uint32_t k = 0; k < op->read_count; k++)
            s->access_start[op->reads[k] + 1]++;
        for (uint32_t k = 0; k < op->write_count; k++)
            s->access_start[op->writes[k] + 1]++;
    }
    for (size_t t = 0; t < nt; t++)
        s->access_start[t + 1] += s->access_start[t];
    for (size_t o = 0; o < no; o++) {
        const fy_op *op = fy_graph_op(s->g, o);
        for (int pass = 0; pass < 2; pass++) {
            const uint32_t *list = pass ? op->writes : op->reads;
            uint32_t n = pass ? op->write_count : op->read_count;
            for (uint32_t k = 0; k < n; k++)
                s->access[s->access_start[list[k]] + s->cursor[list[k]]++] = (uint32_t)o;
        }
    }
    memset(s->cursor, 0, (nt ? nt : 1) * sizeof *s->cursor);
    for (size_t t = 0; t < nt; t++) {
        for (int k = 0; k < FY_TIER_COUNT; k++)
            forget(cp(s, (uint32_t)t, (fy_tier)k));
        fy_tier home = fy_graph_tensor(s->g, t)->home;
        if (home != FY_TIER_NONE)
            *cp(s, (uint32_t)t, home) = (gcopy){.present = true,
                                                .fresh = true,
                                                .home = true,
                                                .since = NONE,
                                                .readers = {NONE, NONE, NONE, NONE, NONE}};
    }
    return 0;
}

int fy_plan_generate(const fy_graph *graph, const fy_machine *machine,
                     const fy_plan_gen_params *params, fy_plan **out, fy_error *err)
{
    *out = NULL;
    gen s = {.g = graph,
             .err = err,
             .window = params ? params->window : 2,
             .spill = params && params->spill_updates};
    int rc = fy_plan_create(graph, machine, &s.plan, err);
    if (rc == 0) rc = setup(&s);
    for (size_t i = 0; rc == 0 && i < fy_graph_op_count(graph); i++) {
        run_op(&s, i);
        rc = s.rc;
    }
    for (int k = 0; k < FY_TIER_COUNT; k++) {
        for (size_t i = 0; i < s.free_count[k]; i++)
            free(s.free_slots[k][i].items);
        free(s.free_slots[k]);
        if (rc == 0) fy_plan_set_arena(s.plan, (fy_tier)k, s.top[k]);
    }
    free(s.copies);
    free(s.access);
    free(s.access_start);
    free(s.cursor);
    if (rc < 0) {
        fy_plan_destroy(s.plan);
        return rc;
    }
    *out = s.plan;
    return 0;
}
