/* core/arena.h — a bump allocator for documents read whole (library-internal). The JSON and
 * YAML readers put every node and text of a document in one arena and free it in one call;
 * nothing in an arena is freed on its own. A large allocation gets a block of its own, put
 * behind the current block so that its free room still serves the small ones that follow. */
#ifndef FERRY_CORE_ARENA_H
#define FERRY_CORE_ARENA_H

#include <stddef.h>

typedef struct fy_arena_block fy_arena_block;

typedef struct fy_arena {
    fy_arena_block *blocks; /* the current block first */
    size_t block_size;      /* bytes of a new block; 0: 64 KiB */
} fy_arena;

/* size bytes aligned to align (a power of two up to 16), or NULL when out of memory. */
void *fy_arena_alloc(fy_arena *a, size_t size, size_t align);
/* Frees every block; the arena can be used again. */
void fy_arena_free(fy_arena *a);

#endif
