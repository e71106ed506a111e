/* The arena map as a treap (a binary search tree on start offsets, a heap on random
 * priorities) with split and merge. Ranges never overlap: a placement first cuts the ranges
 * that straddle its ends, so the ranges inside it form one subtree that it replaces. */
#include "plans/arena_map.h"

#include "ferry/core.h"

#include <stdlib.h>

typedef struct fy_arena_node {
    fy_arena_seg seg;
    uint32_t left, right, prio;
} node;

void fy_arena_map_init(fy_arena_map *m)
{
    *m = (fy_arena_map){.seed = 0x9E3779B97F4A7C15ull};
}

void fy_arena_map_free(fy_arena_map *m)
{
    free(m->nodes);
    fy_arena_map_init(m);
}

static uint32_t next_prio(fy_arena_map *m)
{
    /* xorshift64*: any well-mixed sequence keeps the treap balanced in expectation. */
    m->seed ^= m->seed >> 12;
    m->seed ^= m->seed << 25;
    m->seed ^= m->seed >> 27;
    return (uint32_t)((m->seed * 0x2545F4914F6CDD1Dull) >> 32);
}

static uint32_t new_node(fy_arena_map *m, const fy_arena_seg *seg)
{
    uint32_t i;
    if (m->free_list) {
        i = m->free_list;
        m->free_list = m->nodes[i].left;
    } else {
        if (m->count == m->cap) {
            uint32_t cap = m->cap ? m->cap * 2 : 64;
            node *n = realloc(m->nodes, cap * sizeof *n);
            if (!n) return 0;
            m->nodes = n;
            m->cap = cap;
            if (m->count == 0) m->count = 1; /* nodes[0] stands for the empty tree */
        }
        i = m->count++;
    }
    m->nodes[i] = (node){.seg = *seg, .prio = next_prio(m)};
    return i;
}

/* Splits t into ranges starting before key (*l) and at or after it (*r). */
static void split(node *n, uint32_t t, uint64_t key, uint32_t *l, uint32_t *r)
{
    if (!t) {
        *l = *r = 0;
    } else if (n[t].seg.start < key) {
        split(n, n[t].right, key, &n[t].right, r);
        *l = t;
    } else {
        split(n, n[t].left, key, l, &n[t].left);
        *r = t;
    }
}

static uint32_t merge(node *n, uint32_t l, uint32_t r)
{
    if (!l || !r) return l ? l : r;
    if (n[l].prio > n[r].prio) {
        n[l].right = merge(n, n[l].right, r);
        return l;
    }
    n[r].left = merge(n, l, n[r].left);
    return r;
}

static uint32_t rightmost(const node *n, uint32_t t)
{
    while (t && n[t].right)
        t = n[t].right;
    return t;
}

/* Cuts the map at offset key: a range straddling it becomes two. Returns the trees before
 * and from key. */
static int cut(fy_arena_map *m, uint32_t t, uint64_t key, uint32_t *l, uint32_t *r)
{
    split(m->nodes, t, key, l, r);
    uint32_t last = rightmost(m->nodes, *l);
    if (last && m->nodes[last].seg.end > key) {
        fy_arena_seg tail = m->nodes[last].seg;
        tail.start = key;
        uint32_t x = new_node(m, &tail); /* may move m->nodes */
        if (!x) return FY_ENOMEM;
        m->nodes[last].seg.end = key;
        *r = merge(m->nodes, x, *r);
    }
    return 0;
}

/* Isolates the ranges within [start, end) as *mid, with *left and *right around it. */
static int carve(fy_arena_map *m, uint64_t start, uint64_t end, uint32_t *left, uint32_t *mid,
                 uint32_t *right)
{
    uint32_t rest;
    int rc = cut(m, m->root, start, left, &rest);
    if (rc == 0)
        rc = cut(m, rest, end, mid, right);
    else
        *mid = 0, *right = rest;
    return rc;
}

/* In order: the first range of t that conflict flags. */
static bool find_conflict(const node *n, uint32_t t, fy_arena_conflict_fn conflict, void *ctx,
                          fy_arena_seg *found)
{
    if (!t) return false;
    if (find_conflict(n, n[t].left, conflict, ctx, found)) return true;
    if (conflict && conflict(ctx, &n[t].seg)) {
        if (found) *found = n[t].seg;
        return true;
    }
    return find_conflict(n, n[t].right, conflict, ctx, found);
}

static void release_tree(fy_arena_map *m, uint32_t t)
{
    if (!t) return;
    release_tree(m, m->nodes[t].left);
    release_tree(m, m->nodes[t].right);
    m->nodes[t].left = m->free_list;
    m->free_list = t;
}

int fy_arena_map_place(fy_arena_map *m, uint64_t start, uint64_t end, int32_t owner, int32_t event,
                       fy_arena_conflict_fn conflict, void *ctx, fy_arena_seg *found)
{
    fy_arena_seg seg = {.start = start, .end = end, .owner = owner, .event = event, .live = true};
    uint32_t x = new_node(m, &seg);
    if (!x) return FY_ENOMEM;
    uint32_t l, mid, r;
    int rc = carve(m, start, end, &l, &mid, &r);
    bool hit = rc == 0 && find_conflict(m->nodes, mid, conflict, ctx, found);
    if (rc == 0)
        release_tree(m, mid);
    else
        r = merge(m->nodes, mid, r), release_tree(m, x), x = 0;
    m->root = merge(m->nodes, merge(m->nodes, l, x), r);
    return rc < 0 ? rc : hit;
}

static void mark_freed(node *n, uint32_t t, int32_t owner, int32_t event)
{
    if (!t) return;
    mark_freed(n, n[t].left, owner, event);
    if (n[t].seg.live && n[t].seg.owner == owner) {
        n[t].seg.live = false;
        n[t].seg.event = event;
    }
    mark_freed(n, n[t].right, owner, event);
}

int fy_arena_map_release(fy_arena_map *m, uint64_t start, uint64_t end, int32_t owner,
                         int32_t event)
{
    uint32_t l, mid, r;
    int rc = carve(m, start, end, &l, &mid, &r);
    mark_freed(m->nodes, mid, owner, event);
    m->root = merge(m->nodes, merge(m->nodes, l, mid), r);
    return rc;
}
