/* core/strmap.h — a string -> index hash map (library-internal). Open addressing with
 * linear probing, grown at 50% load, so lookups stay constant time at any size. Keys are
 * borrowed: each must stay valid and unchanged while the map holds it. */
#ifndef FERRY_CORE_STRMAP_H
#define FERRY_CORE_STRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fy_strmap {
    const char **keys;
    uint64_t *values;
    size_t count, cap;
} fy_strmap;

void fy_strmap_free(fy_strmap *m);
/* Inserts key -> value. Returns 0, 1 when the key was already there (value unchanged),
 * or FY_ENOMEM. */
int fy_strmap_put(fy_strmap *m, const char *key, uint64_t value);
/* Finds key; returns true and stores its value. */
bool fy_strmap_get(const fy_strmap *m, const char *key, uint64_t *value);
/* Hash of a NUL-terminated string (FNV-1a, 64-bit). */
uint64_t fy_str_hash(const char *s);

#endif
