/* plans/arena_map.h — an arena's occupancy as an ordered map of disjoint byte ranges
 * (library-internal). Each range is either a live copy or bytes freed by an evict, so a new
 * placement can ask of every byte it takes who had it last and whether that one is gone.
 * A treap keyed by start offset: placing and releasing are O(log n) plus the ranges touched. */
#ifndef FERRY_PLANS_ARENA_MAP_H
#define FERRY_PLANS_ARENA_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fy_arena_seg {
    uint64_t start, end; /* [start, end) */
    int32_t owner;       /* the copy's id (the replay's tensor * tiers + tier) */
    int32_t event;       /* live: the placing event; freed: the evict that freed it */
    bool live;
} fy_arena_seg;

typedef struct fy_arena_map {
    struct fy_arena_node *nodes; /* nodes[0] is the empty tree */
    uint32_t count, cap, free_list, root;
    uint64_t seed;
} fy_arena_map;

void fy_arena_map_init(fy_arena_map *m);
void fy_arena_map_free(fy_arena_map *m);

/* Says whether an old range conflicts with a new placement. */
typedef bool (*fy_arena_conflict_fn)(void *ctx, const fy_arena_seg *old);

/* Places [start, end) as live, owned by owner, placed by event, replacing whatever ranges
 * were there. Before that, stores in *found (when not NULL) the first old range (cut to
 * [start, end)) for which conflict says true, and returns 1; returns 0 when none did, or
 * FY_ENOMEM. start < end. */
int fy_arena_map_place(fy_arena_map *m, uint64_t start, uint64_t end, int32_t owner, int32_t event,
                       fy_arena_conflict_fn conflict, void *ctx, fy_arena_seg *found);
/* Marks owner's live ranges within [start, end) as freed by event. Returns 0 or FY_ENOMEM. */
int fy_arena_map_release(fy_arena_map *m, uint64_t start, uint64_t end, int32_t owner,
                         int32_t event);

#endif
