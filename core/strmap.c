/* String -> index hash map with linear probing. Capacity is a power of two kept at least
 * twice the count, so a probe always ends at an empty slot. */
#include "core/strmap.h"

#include "ferry/core.h"

#include <stdlib.h>
#include <string.h>

uint64_t fy_str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

void fy_strmap_free(fy_strmap *m)
{
    free(m->keys);
    free(m->values);
    memset(m, 0, sizeof *m);
}

static size_t find_slot(const char **keys, size_t cap, const char *key)
{
    size_t i = (size_t)fy_str_hash(key) & (cap - 1);
    while (keys[i] && strcmp(keys[i], key) != 0)
        i = (i + 1) & (cap - 1);
    return i;
}

static int grow(fy_strmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    const char **keys = calloc(cap, sizeof *keys);
    uint64_t *values = calloc(cap, sizeof *values);
    if (!keys || !values) {
        free(keys);
        free(values);
        return FY_ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i]) {
            size_t s = find_slot(keys, cap, m->keys[i]);
            keys[s] = m->keys[i];
            values[s] = m->values[i];
        }
    }
    free(m->keys);
    free(m->values);
    m->keys = keys;
    m->values = values;
    m->cap = cap;
    return 0;
}

int fy_strmap_put(fy_strmap *m, const char *key, uint64_t value)
{
    if ((m->count + 1) * 2 > m->cap) {
        int rc = grow(m);
        if (rc < 0) return rc;
    }
    size_t s = find_slot(m->keys, m->cap, key);
    if (m->keys[s]) return 1;
    m->keys[s] = key;
    m->values[s] = value;
    m->count++;
    return 0;
}

bool fy_strmap_get(const fy_strmap *m, const char *key, uint64_t *value)
{
    if (!m->cap) return false;
    size_t s = find_slot(m->keys, m->cap, key);
    if (!m->keys[s]) return false;
    if (value) *value = m->values[s];
    return true;
}
