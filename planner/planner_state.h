/* planner/planner_state.h — the planner's state while it builds a plan (private to planner/).
 *
 * The planner walks the ops in graph order and keeps, per tensor, at most one copy per tier;
 * every copy it keeps is up to date (a write evicts the others at once), so "the only copy"
 * is simply a tensor with one copy. Events are collected here first, with their `after`
 * edges, and copies remember the event that placed them, the events that used them and the
 * evict that ended them. Arena offsets are chosen online (place.c): making room for a copy
 * reserves a contiguous region of its tier's arena at once (evicting more, or the copies
 * around a hole, when free bytes are split), and the copy's placing event waits for the
 * evicts of the region's previous occupants. Then the plan is built (make.c).
 */
#ifndef FERRY_PLANNER_STATE_H
#define FERRY_PLANNER_STATE_H

#include "ferry/planner.h"

#include "core/buf.h"

#define PL_NONE UINT32_MAX

/* The queue an event runs on: streams order their events, io and evicts do not. */
typedef enum pl_queue { PL_Q_IO = 0, PL_Q_H2D, PL_Q_D2H, PL_Q_GPU, PL_Q_HOST, PL_Q_NONE } pl_queue;

typedef struct pl_ids {
    uint32_t *v;
    uint32_t n, cap;
} pl_ids;

typedef struct pl_event {
    uint8_t kind;    /* fy_event_kind */
    int8_t from, to; /* tiers */
    uint8_t queue;   /* pl_queue */
    int32_t tensor;  /* load, offload, evict */
    int32_t op;      /* compute */
    uint32_t copy;   /* load, offload: the copy it places; evict: the copy it drops */
    pl_ids after;
    pl_ids places; /* compute: copies it creates */
} pl_event;

/* A byte range of a free (or reserved) arena node and the evict that freed it. */
typedef struct pl_piece {
    uint64_t start, end;
    uint32_t evict;
} pl_piece;

enum { PL_NODE_FREE = 0, PL_NODE_RESERVED, PL_NODE_LIVE };

typedef struct pl_node {
    uint64_t start, end;
    uint32_t prev, next;  /* address order; next also chains recycled nodes */
    uint32_t left, right; /* treap of free nodes */
    uint32_t prio;
    uint8_t state;
    uint32_t owner; /* reserved: the tensor; live: the copy */
    pl_piece *p;    /* free and reserved: the previous occupants' evicts, in address order */
    uint32_t np, cap_p;
} pl_node;

/* One tier's arena: nodes covering [base, base + budget) in address order. */
typedef struct pl_arena {
    pl_node *n;
    size_t count, cap;
    uint32_t head, root, recycled;
    uint64_t base, top; /* top: the end of the highest region ever reserved */
    uint64_t rng;
} pl_arena;

typedef struct pl_copy {
    uint32_t tensor;
    int8_t tier;
    bool home;   /* the tensor's home copy, outside the arenas (source file, caller's memory) */
    bool staged; /* in a staging buffer (host) */
    uint32_t slot;
    uint64_t size;                         /* aligned to the tier */
    uint32_t place_ev, evict_ev, write_ev; /* PL_NONE: none (yet) */
    uint64_t arrived;                      /* sequence number of its placement (fifo) */
    long arrived_op;                       /* the op being planned when it was placed (lru) */
    uint64_t offset;
    uint32_t res_index; /* position in its tier's resident list */
    uint32_t node;      /* its arena node while resident, or PL_NONE */
    pl_ids users;       /* events that read it or wrote it in place */
    pl_ids reuse;       /* evicts of the previous occupants of its arena bytes */
} pl_copy;

typedef struct pl_tensor {
    int32_t copy[FY_TIER_COUNT]; /* copy index per tier, or -1 */
    uint32_t version;
    uint32_t read_first, read_count; /* its reading ops: pl->read_ops[read_first ...] */
    uint32_t cursor;                 /* first entry of its reads not yet done */
    uint32_t last_writer;            /* last op writing it, or PL_NONE */
    long last_use;                   /* last op that used it (lru) */
    uint32_t pin;                    /* equal to pl->epoch: may not leave any tier now */
    uint32_t rsv[FY_TIER_COUNT];     /* arena node reserved for its next copy, or PL_NONE */
    bool kept;                       /* matches a keep glob */
    bool eager;                      /* loaded up front (load: eager) */
} pl_tensor;

typedef struct planner {
    const fy_graph *g;
    const fy_policy *policy;
    const fy_policy_knobs *k;
    const fy_policy_hooks *hooks;
    fy_policy_view view;
    uint64_t capacity[FY_TIER_COUNT];
    uint64_t budget[FY_TIER_COUNT]; /* what this pass plans to (arena copies only) */
    uint64_t used[FY_TIER_COUNT];   /* aligned bytes of resident arena copies */
    uint64_t reserved[FY_TIER_COUNT];
    pl_tensor *t;
    size_t nt;
    uint32_t *read_ops;
    pl_event *ev;
    size_t nev, cap_ev;
    pl_copy *cp;
    size_t ncp, cap_cp;
    pl_ids resident[FY_TIER_COUNT]; /* arena copies resident per tier */
    pl_arena arena[FY_TIER_COUNT];
    uint32_t *slot_last; /* per staging buffer: the copy that used it last */
    uint32_t epoch;
    long now;    /* the first op whose reads are still to come */
    long cur_op; /* the op being planned, -1 before op 0 */
    uint64_t seq;
    uint64_t slot_size; /* staging buffer size (0: no staging) */
    unsigned slots, next_slot;
    bool in_after_op;
    bool pin_evicted; /* making room evicted a copy the current op needs */
    fy_buf log;
    fy_error *err;
} planner;

/* state.c: events, copies and the basic moves. */
int pl_ids_push(pl_ids *ids, uint32_t v);
void pl_ids_free(pl_ids *ids);
uint64_t pl_align(fy_tier tier, uint64_t size);
int pl_init(planner *pl, const fy_graph *g, const fy_policy *policy, const uint64_t *budget,
            const uint64_t *capacity, uint64_t slot_size, unsigned slots, fy_error *err);
void pl_free(planner *pl);
int pl_oom(planner *pl);
/* The first op >= from reading tensor t, or -1. */
long pl_next_read(const planner *pl, uint32_t t, long from);
/* Whether t must keep an up-to-date copy: read again, an output, or a persistent tensor
 * (one with a home) that an op has updated. */
bool pl_needed(const planner *pl, uint32_t t);
/* Copies t from tier `from` to tier `to` (load or offload, by direction); room on `to` must
 * have been made. Returns the new copy's index or a negative status. */
long pl_transfer(planner *pl, uint32_t t, fy_tier from, fy_tier to, bool staged);
/* Drops copy c with an evict event after everything that used it. */
int pl_evict_copy(planner *pl, uint32_t c);
/* Computes op i on its device; every read is there and room is made for new writes. */
int pl_compute(planner *pl, size_t i);

/* evict.c: making room. */
/* Frees a contiguous region of need bytes on tier and reserves it for the next copy of
 * for_tensor there (pl_transfer or pl_compute takes it; pl_unreserve gives it back).
 * limit < 0: mandatory (fails with FY_EINFEASIBLE and an explanation naming `for`);
 * limit >= 0: a prefetch for op `limit`, which may only evict copies next used after limit
 * and returns 1 (reserving nothing) when it cannot. */
int pl_make_room(planner *pl, fy_tier tier, uint64_t need, long limit, uint32_t for_tensor);
/* Removes t's copy on tier, offloading it first when it is the only up-to-date copy of a
 * tensor still needed. */
int pl_leave(planner *pl, uint32_t t, fy_tier tier);

/* schedule.c: the walk over the ops. */
int pl_schedule(planner *pl);
/* Brings t to tier (gpu or host) for op-reading; limit as for pl_make_room. */
int pl_ensure(planner *pl, uint32_t t, fy_tier tier, long limit);

/* place.c: the online arena allocator. */
int pl_arena_init(pl_arena *a, uint64_t base, uint64_t budget, uint64_t seed);
void pl_arena_free(pl_arena *a);
/* Reserves size bytes in the smallest hole that holds them (at its low end): the node's
 * index, or FY_ENOSPC when no hole is large enough. */
long pl_arena_reserve(pl_arena *a, uint64_t size);
/* Reserves [lo, lo + size), which must lie in one free node; FY_ENOSPC otherwise. */
long pl_arena_reserve_at(pl_arena *a, uint64_t lo, uint64_t size);
/* Frees node x (live: freed by evict; reserved: given back), merging free neighbours. */
int pl_arena_release(pl_arena *a, uint32_t x, uint32_t evict);
/* The largest hole. */
uint64_t pl_arena_largest(const pl_arena *a);
/* pack.c: repacks each arena offline over the copies' lifetimes when that gives a smaller
 * arena than the online placement, then adds every copy's reuse edges to its placing event.
 * arena receives each tier's size. */
int pl_pack(planner *pl, uint64_t arena[FY_TIER_COUNT]);
/* evict.c: gives back the region reserved for t on tier, if any. */
int pl_unreserve(planner *pl, uint32_t t, fy_tier tier);

/* view.c: the view handed to hooks. */
void pl_view_init(planner *pl);
/* Reports the planner's refusal of a hook's answer (message already in err). */
int pl_blame(planner *pl, const char *hook);

#endif
