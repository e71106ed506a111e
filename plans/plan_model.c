/* The plan model: events in one array, their variable parts in a pool of chunks that never
 * move (so an fy_event's pointers stay valid as the plan grows), and the builder the planner
 * and the tests use. The builder keeps the one structural rule of a plan — `after` names
 * only earlier events — and leaves everything else to the checker, so that tests can build
 * the faulty plans the checker must catch. */
#include "plans/plan_model.h"

#include <stdlib.h>
#include <string.h>

struct fy_pool_chunk {
    fy_pool_chunk *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
};

void *fy_plan_pool_alloc(fy_plan *plan, size_t size)
{
    size = (size + 7) & ~(size_t)7;
    fy_pool_chunk *c = plan->pool;
    if (!c || c->size - c->used < size) {
        size_t want = size > (1u << 20) ? size : (1u << 20);
        c = malloc(sizeof *c + want);
        if (!c) return NULL;
        c->used = 0;
        c->size = want;
        c->next = plan->pool;
        plan->pool = c;
    }
    void *p = c->data + c->used;
    c->used += size;
    return p;
}

const char *fy_plan_pool_strdup(fy_plan *plan, const char *text)
{
    size_t len = strlen(text);
    char *p = fy_plan_pool_alloc(plan, len + 1);
    if (p) memcpy(p, text, len + 1);
    return p;
}

fy_plan *fy_plan_new(const fy_graph *graph)
{
    fy_plan *plan = calloc(1, sizeof *plan);
    if (!plan) return NULL;
    plan->graph = graph;
    fy_machine_default(&plan->machine);
    return plan;
}

void fy_plan_destroy(fy_plan *plan)
{
    if (!plan) return;
    for (fy_pool_chunk *c = plan->pool, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(plan->events);
    free(plan->path);
    free(plan->policy);
    fy_graph_destroy(plan->owned_graph);
    free(plan);
}

long fy_plan_append(fy_plan *plan, const fy_event *ev, fy_error *err)
{
    if (plan->count == plan->cap) {
        size_t cap = plan->cap ? plan->cap * 2 : 64;
        fy_event *e = realloc(plan->events, cap * sizeof *e);
        if (!e) return fy_error_set(err, FY_ENOMEM, "out of memory adding event %zu", plan->count);
        plan->events = e;
        plan->cap = cap;
    }
    fy_event copy = *ev;
    if (ev->after_count) {
        uint32_t *after = fy_plan_pool_alloc(plan, ev->after_count * sizeof *after);
        if (!after)
            return fy_error_set(err, FY_ENOMEM, "out of memory adding event %zu", plan->count);
        memcpy(after, ev->after, ev->after_count * sizeof *after);
        copy.after = after;
    } else {
        copy.after = NULL;
    }
    if (ev->place_count) {
        fy_placement *places = fy_plan_pool_alloc(plan, ev->place_count * sizeof *places);
        if (!places)
            return fy_error_set(err, FY_ENOMEM, "out of memory adding event %zu", plan->count);
        memcpy(places, ev->places, ev->place_count * sizeof *places);
        copy.places = places;
    } else {
        copy.places = NULL;
    }
    plan->events[plan->count] = copy;
    return (long)plan->count++;
}

int fy_plan_create(const fy_graph *graph, const fy_machine *machine, fy_plan **out, fy_error *err)
{
    *out = NULL;
    if (!graph) return fy_error_set(err, FY_EINVAL, "a plan needs a graph");
    fy_plan *plan = fy_plan_new(graph);
    if (!plan) return fy_error_set(err, FY_ENOMEM, "out of memory");
    if (machine) plan->machine = *machine;
    *out = plan;
    return 0;
}

/* The name to keep for index (a graph name) or, for an unknown one, a pool copy of given. */
static const char *keep_name(fy_plan *plan, const char *known, const char *given)
{
    if (known) return known;
    return given ? fy_plan_pool_strdup(plan, given) : NULL;
}

long fy_plan_add(fy_plan *plan, const fy_event *ev, fy_error *err)
{
    if (!plan || !ev) return fy_error_set(err, FY_EINVAL, "fy_plan_add needs a plan and an event");
    size_t index = plan->count;
    const fy_graph *g = plan->graph;
    if ((unsigned)ev->kind >= FY_EVENT_KIND_COUNT)
        return fy_error_set(err, FY_EINVAL, "event %zu: unknown kind %d", index, (int)ev->kind);
    for (uint32_t i = 0; i < ev->after_count; i++)
        if (ev->after[i] >= index)
            return fy_error_set(err, FY_EINVAL,
                                "event %zu: after names event %u, which is not earlier", index,
                                ev->after[i]);
    fy_event e = *ev;
    e.id = index;
    const char *known = NULL;
    if (ev->kind == FY_EVENT_COMPUTE) {
        e.tensor = -1;
        if (ev->op >= 0 && (size_t)ev->op >= fy_graph_op_count(g))
            return fy_error_set(err, FY_EINVAL, "event %zu: op index %d out of range", index,
                                ev->op);
        if (ev->op >= 0) known = fy_graph_op(g, (size_t)ev->op)->name;
    } else {
        e.op = -1;
        if (ev->tensor >= 0 && (size_t)ev->tensor >= fy_graph_tensor_count(g))
            return fy_error_set(err, FY_EINVAL, "event %zu: tensor index %d out of range", index,
                                ev->tensor);
        if (ev->tensor >= 0) known = fy_graph_tensor(g, (size_t)ev->tensor)->name;
    }
    if (!known && !ev->ref)
        return fy_error_set(err, FY_EINVAL, "event %zu: an unknown %s needs a name in ref", index,
                            ev->kind == FY_EVENT_COMPUTE ? "op" : "tensor");
    if (!(e.ref = keep_name(plan, known, ev->ref)))
        return fy_error_set(err, FY_ENOMEM, "out of memory");
    fy_placement *places = NULL;
    if (ev->place_count) {
        places = malloc(ev->place_count * sizeof *places);
        if (!places) return fy_error_set(err, FY_ENOMEM, "out of memory");
        for (uint32_t i = 0; i < ev->place_count; i++) {
            places[i] = ev->places[i];
            int32_t t = places[i].tensor;
            if ((t >= 0 && (size_t)t >= fy_graph_tensor_count(g)) || (t < 0 && !places[i].name)) {
                free(places);
                return fy_error_set(err, FY_EINVAL, "event %zu: placement %u names no tensor",
                                    index, i);
            }
            places[i].name = keep_name(plan, t >= 0 ? fy_graph_tensor(g, (size_t)t)->name : NULL,
                                       places[i].name);
            if (!places[i].name) {
                free(places);
                return fy_error_set(err, FY_ENOMEM, "out of memory");
            }
        }
        e.places = places;
    }
    long rc = fy_plan_append(plan, &e, err);
    free(places);
    return rc;
}

void fy_plan_set_arena(fy_plan *plan, fy_tier tier, uint64_t bytes)
{
    if (plan && tier >= 0 && tier < FY_TIER_COUNT) plan->arena[tier] = bytes;
}

int fy_plan_set_policy_name(fy_plan *plan, const char *name, fy_error *err)
{
    char *copy = NULL;
    if (name && !(copy = strdup(name))) return fy_error_set(err, FY_ENOMEM, "out of memory");
    free(plan->policy);
    plan->policy = copy;
    return 0;
}

const fy_graph *fy_plan_graph(const fy_plan *plan)
{
    return plan->graph;
}

const fy_machine *fy_plan_machine(const fy_plan *plan)
{
    return &plan->machine;
}

uint64_t fy_plan_arena(const fy_plan *plan, fy_tier tier)
{
    return tier >= 0 && tier < FY_TIER_COUNT ? plan->arena[tier] : 0;
}

size_t fy_plan_event_count(const fy_plan *plan)
{
    return plan->count;
}

const fy_event *fy_plan_event(const fy_plan *plan, size_t index)
{
    return index < plan->count ? &plan->events[index] : NULL;
}

const char *fy_plan_path(const fy_plan *plan)
{
    return plan->path;
}

const char *fy_plan_policy_name(const fy_plan *plan)
{
    return plan->policy;
}

const char *fy_event_kind_name(fy_event_kind kind)
{
    static const char *const names[] = {"load", "offload", "evict", "compute"};
    return (unsigned)kind < FY_EVENT_KIND_COUNT ? names[kind] : "unknown";
}
