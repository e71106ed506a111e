/* Arena placement, online: each tier's arena is a list of nodes in address order covering
 * [base, base + budget) exactly, each node free, reserved (room made for a copy about to be
 * placed) or live (a resident copy). Free nodes are also kept in a treap ordered by (size,
 * offset), so a best-fit hole is found in O(log n); freeing a node merges it with its free
 * neighbours in O(1). A free node remembers, per byte range, the evict that freed it
 * ("pieces"): a copy placed there waits for those evicts, which is what the checker's overlap
 * rule asks, and the pieces it covers are consumed, so every placement's `after` names only
 * the last occupants of its own bytes. */
#include "planner/planner_state.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* ---- pieces: the evicts a free range still remembers ------------------------------------ */

static int pieces_push(pl_node *n, uint64_t start, uint64_t end, uint32_t evict)
{
    if (start >= end || evict == PL_NONE) return 0;
    if (n->np == n->cap_p) {
        uint32_t cap = n->cap_p ? n->cap_p * 2 : 4;
        pl_piece *p = realloc(n->p, cap * sizeof *p);
        if (!p) return FY_ENOMEM;
        n->p = p;
        n->cap_p = cap;
    }
    n->p[n->np++] = (pl_piece){start, end, evict};
    return 0;
}

/* Appends the pieces of `from` (all above n's) to n and empties from. */
static int pieces_append(pl_node *n, pl_node *from)
{
    if (n->np == 0 && n->cap_p < from->np) {
        pl_piece *t = n->p; /* take from's array whole */
        uint32_t c = n->cap_p;
        n->p = from->p;
        n->cap_p = from->cap_p;
        n->np = from->np;
        from->p = t;
        from->cap_p = c;
        from->np = 0;
        return 0;
    }
    for (uint32_t i = 0; i < from->np; i++)
        if (pieces_push(n, from->p[i].start, from->p[i].end, from->p[i].evict) < 0)
            return FY_ENOMEM;
    from->np = 0;
    return 0;
}

/* ---- the treap of free nodes, keyed by (size, start) --------------------------------- */

static bool node_less(const pl_arena *a, uint32_t x, uint64_t size, uint64_t start)
{
    uint64_t xs = a->n[x].end - a->n[x].start;
    return xs < size || (xs == size && a->n[x].start < start);
}

/* Splits t into keys < (size, start) and the rest. */
static void split(pl_arena *a, uint32_t t, uint64_t size, uint64_t start, uint32_t *l, uint32_t *r)
{
    if (t == PL_NONE) {
        *l = *r = PL_NONE;
        return;
    }
    if (node_less(a, t, size, start)) {
        split(a, a->n[t].right, size, start, &a->n[t].right, r);
        *l = t;
    } else {
        split(a, a->n[t].left, size, start, l, &a->n[t].left);
        *r = t;
    }
}

static uint32_t merge(pl_arena *a, uint32_t l, uint32_t r)
{
    if (l == PL_NONE) return r;
    if (r == PL_NONE) return l;
    if (a->n[l].prio > a->n[r].prio) {
        a->n[l].right = merge(a, a->n[l].right, r);
        return l;
    }
    a->n[r].left = merge(a, l, a->n[r].left);
    return r;
}

static void tree_insert(pl_arena *a, uint32_t x)
{
    uint32_t l, r;
    a->n[x].left = a->n[x].right = PL_NONE;
    split(a, a->root, a->n[x].end - a->n[x].start, a->n[x].start, &l, &r);
    a->root = merge(a, merge(a, l, x), r);
}

static void tree_erase(pl_arena *a, uint32_t x)
{
    uint32_t l, m, r;
    uint64_t size = a->n[x].end - a->n[x].start;
    split(a, a->root, size, a->n[x].start, &l, &r);
    split(a, r, size, a->n[x].start + 1, &m, &r);
    assert(m == x && a->n[x].left == PL_NONE && a->n[x].right == PL_NONE);
    a->root = merge(a, l, r);
}

/* The free node with the smallest size >= need (lowest offset among equals), or PL_NONE. */
static uint32_t best_fit(const pl_arena *a, uint64_t need)
{
    uint32_t t = a->root, best = PL_NONE;
    while (t != PL_NONE) {
        if (node_less(a, t, need, 0)) {
            t = a->n[t].right;
        } else {
            best = t;
            t = a->n[t].left;
        }
    }
    return best;
}

/* ---- nodes --------------------------------------------------------------------------- */

static long node_new(pl_arena *a, uint64_t start, uint64_t end, uint8_t state)
{
    uint32_t x;
    if (a->recycled != PL_NONE) {
        x = a->recycled;
        a->recycled = a->n[x].next;
    } else {
        if (a->count == a->cap) {
            size_t cap = a->cap ? a->cap * 2 : 64;
            pl_node *n = realloc(a->n, cap * sizeof *n);
            if (!n) return FY_ENOMEM;
            a->n = n;
            a->cap = cap;
        }
        x = (uint32_t)a->count++;
        memset(&a->n[x], 0, sizeof a->n[x]);
    }
    pl_node *n = &a->n[x];
    n->start = start;
    n->end = end;
    n->state = state;
    n->owner = PL_NONE;
    n->np = 0;
    n->prev = n->next = n->left = n->right = PL_NONE;
    a->rng ^= a->rng << 13;
    a->rng ^= a->rng >> 7;
    a->rng ^= a->rng << 17;
    n->prio = (uint32_t)a->rng;
    return x;
}

static void node_release(pl_arena *a, uint32_t x)
{
    a->n[x].np = 0;
    a->n[x].state = PL_NODE_FREE;
    a->n[x].next = a->recycled;
    a->recycled = x;
}

/* Links y right after x in address order. */
static void link_after(pl_arena *a, uint32_t x, uint32_t y)
{
    a->n[y].prev = x;
    a->n[y].next = a->n[x].next;
    if (a->n[x].next != PL_NONE) a->n[a->n[x].next].prev = y;
    a->n[x].next = y;
}

static void unlink_node(pl_arena *a, uint32_t x)
{
    if (a->n[x].prev != PL_NONE)
        a->n[a->n[x].prev].next = a->n[x].next;
    else
        a->head = a->n[x].next;
    if (a->n[x].next != PL_NONE) a->n[a->n[x].next].prev = a->n[x].prev;
}

int pl_arena_init(pl_arena *a, uint64_t base, uint64_t budget, uint64_t seed)
{
    memset(a, 0, sizeof *a);
    a->root = a->head = a->recycled = PL_NONE;
    a->base = base;
    a->rng = seed | 1;
    if (budget == 0) return 0;
    long x = node_new(a, base, base + budget, PL_NODE_FREE);
    if (x < 0) return (int)x;
    a->head = (uint32_t)x;
    tree_insert(a, (uint32_t)x);
    return 0;
}

void pl_arena_free(pl_arena *a)
{
    for (size_t i = 0; i < a->count; i++)
        free(a->n[i].p);
    free(a->n);
    memset(a, 0, sizeof *a);
}

/* Turns [lo, lo + size) of free node x into a reserved node (returned) that keeps the pieces
 * it covers; what is left of x on either side stays free. */
static long carve(pl_arena *a, uint32_t x, uint64_t lo, uint64_t size)
{
    tree_erase(a, x);
    uint64_t hi = lo + size;
    assert(a->n[x].start <= lo && hi <= a->n[x].end);
    long l = PL_NONE, r = PL_NONE;
    if (a->n[x].start < lo) {
        if ((l = node_new(a, a->n[x].start, lo, PL_NODE_FREE)) < 0) return l;
    }
    if (hi < a->n[x].end) {
        if ((r = node_new(a, hi, a->n[x].end, PL_NODE_FREE)) < 0) return r;
    }
    pl_node *n = &a->n[x];
    /* Partition the pieces in place: those of the middle stay in x (compacted to the front);
     * the others move to the side nodes. */
    uint32_t keep = 0;
    for (uint32_t i = 0; i < n->np; i++) {
        pl_piece p = n->p[i];
        if (p.start < lo && pieces_push(&a->n[l], p.start, p.end < lo ? p.end : lo, p.evict) < 0)
            return FY_ENOMEM;
        if (p.end > hi && pieces_push(&a->n[r], p.start > hi ? p.start : hi, p.end, p.evict) < 0)
            return FY_ENOMEM;
        n = &a->n[x];
        if (p.end > lo && p.start < hi)
            n->p[keep++] =
                (pl_piece){p.start > lo ? p.start : lo, p.end < hi ? p.end : hi, p.evict};
    }
    n->np = keep;
    n->start = lo;
    n->end = hi;
    n->state = PL_NODE_RESERVED;
    if (l != PL_NONE) {
        if (n->prev != PL_NONE)
            link_after(a, n->prev, (uint32_t)l);
        else {
            a->n[l].next = x;
            a->head = (uint32_t)l;
        }
        a->n[l].next = x;
        a->n[x].prev = (uint32_t)l;
        tree_insert(a, (uint32_t)l);
    }
    if (r != PL_NONE) {
        link_after(a, x, (uint32_t)r);
        tree_insert(a, (uint32_t)r);
    }
    if (hi > a->top) a->top = hi;
    return x;
}

long pl_arena_reserve(pl_arena *a, uint64_t size)
{
    uint32_t x = best_fit(a, size);
    if (x == PL_NONE) return FY_ENOSPC;
    return carve(a, x, a->n[x].start, size);
}

long pl_arena_reserve_at(pl_arena *a, uint64_t lo, uint64_t size)
{
    for (uint32_t x = a->head; x != PL_NONE; x = a->n[x].next)
        if (a->n[x].start <= lo && lo < a->n[x].end) {
            if (a->n[x].state != PL_NODE_FREE || a->n[x].end < lo + size) return FY_ENOSPC;
            return carve(a, x, lo, size);
        }
    return FY_ENOSPC;
}

int pl_arena_release(pl_arena *a, uint32_t x, uint32_t evict)
{
    pl_node *n = &a->n[x];
    assert(n->state != PL_NODE_FREE);
    if (n->state == PL_NODE_LIVE) {
        n->np = 0; /* the new occupant's pieces were consumed when it was placed */
        if (pieces_push(n, n->start, n->end, evict) < 0) return FY_ENOMEM;
    }
    n->state = PL_NODE_FREE;
    n->owner = PL_NONE;
    uint32_t p = n->prev, q = n->next;
    if (p != PL_NONE && a->n[p].state == PL_NODE_FREE) {
        tree_erase(a, p);
        if (pieces_append(&a->n[p], &a->n[x]) < 0) return FY_ENOMEM;
        a->n[p].end = a->n[x].end;
        unlink_node(a, x);
        node_release(a, x);
        x = p;
    }
    if (q != PL_NONE && a->n[q].state == PL_NODE_FREE) {
        tree_erase(a, q);
        if (pieces_append(&a->n[x], &a->n[q]) < 0) return FY_ENOMEM;
        a->n[x].end = a->n[q].end;
        unlink_node(a, q);
        node_release(a, q);
    }
    tree_insert(a, x);
    return 0;
}

uint64_t pl_arena_largest(const pl_arena *a)
{
    uint32_t t = a->root;
    if (t == PL_NONE) return 0;
    while (a->n[t].right != PL_NONE)
        t = a->n[t].right;
    return a->n[t].end - a->n[t].start;
}
