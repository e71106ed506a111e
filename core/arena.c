/* The bump allocator of core/arena.h. Blocks are malloc'ed with their data 16-byte aligned;
 * an allocation is placed at the next multiple of its alignment in the current block. */
#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>

struct fy_arena_block {
    fy_arena_block *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
};

void *fy_arena_alloc(fy_arena *a, size_t size, size_t align)
{
    fy_arena_block *b = a->blocks;
    size_t at = b ? (b->used + align - 1) & ~(align - 1) : 0;
    if (b && at <= b->size && b->size - at >= size) {
        b->used = at + size;
        return b->data + at;
    }
    size_t block_size = a->block_size ? a->block_size : 64u * 1024u;
    size_t want = size > block_size ? size : block_size;
    if (want > SIZE_MAX - sizeof *b) return NULL;
    fy_arena_block *nb = malloc(sizeof *nb + want);
    if (!nb) return NULL;
    nb->size = want;
    nb->used = size;
    if (b && size > block_size / 4) {
        nb->next = b->next;
        b->next = nb;
    } else {
        nb->next = b;
        a->blocks = nb;
    }
    return nb->data;
}

void fy_arena_free(fy_arena *a)
{
    for (fy_arena_block *b = a->blocks, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    a->blocks = NULL;
}
