/* Typed access to the YAML tree: every getter either stores a value or reports an error
 * positioned at the offending node and naming what it was meant to be, so each file format
 * reads as a list of "this key is a size" statements. */
#include "core/yaml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *fy_ykind_name(const fy_ynode *node)
{
    if (!node) return "nothing";
    switch (node->kind) {
    case FY_YMAP:
        return "a mapping";
    case FY_YSEQ:
        return "a sequence";
    default:
        return "a scalar";
    }
}

int fy_ynode_expect(const fy_ydoc *doc, const fy_ynode *node, fy_ykind kind, const char *what,
                    fy_error *err)
{
    if (node && node->kind == kind) return 0;
    fy_ynode want = {.kind = (uint8_t)kind};
    return fy_ydoc_error(doc, node, err, FY_EPARSE, "%s must be %s, not %s", what,
                         fy_ykind_name(&want), fy_ykind_name(node));
}

bool fy_ynode_is(const fy_ynode *node, const char *text)
{
    return node && node->kind == FY_YSCALAR && strcmp(node->u.text, text) == 0;
}

static void list_allowed(const char *const *allowed, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; allowed[i] && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "", allowed[i]);
}

int fy_ymap_check(const fy_ydoc *doc, const fy_ynode *map, const char *const *allowed,
                  const char *what, fy_error *err)
{
    int rc = fy_ynode_expect(doc, map, FY_YMAP, what, err);
    if (rc < 0) return rc;
    for (size_t i = 0; i < map->count; i++) {
        const fy_ynode *key = fy_ymap_key(map, i);
        if (key->kind != FY_YSCALAR)
            return fy_ydoc_error(doc, key, err, FY_EPARSE, "a key of %s must be a scalar", what);
        bool known = false;
        for (size_t a = 0; allowed[a] && !known; a++)
            known = strcmp(allowed[a], key->u.text) == 0;
        if (!known) {
            char list[512];
            list_allowed(allowed, list, sizeof list);
            return fy_ydoc_error(doc, key, err, FY_EPARSE,
                                 "unknown key '%s' in %s (expected one of: %s)", key->u.text, what,
                                 list);
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(fy_ymap_key(map, j)->u.text, key->u.text) == 0)
                return fy_ydoc_error(doc, key, err, FY_EPARSE, "duplicate key '%s' in %s",
                                     key->u.text, what);
    }
    return 0;
}

const fy_ynode *fy_ymap_get(const fy_ynode *map, const char *key)
{
    if (!map || map->kind != FY_YMAP) return NULL;
    for (size_t i = 0; i < map->count; i++)
        if (fy_ynode_is(fy_ymap_key(map, i), key)) return fy_ymap_value(map, i);
    return NULL;
}

static bool is_null(const fy_ynode *node)
{
    return !node->quoted && (node->count == 0 || strcmp(node->u.text, "~") == 0 ||
                             strcmp(node->u.text, "null") == 0);
}

/* Common start of every scalar getter: a present, non-null scalar. */
static int scalar(const fy_ydoc *doc, const fy_ynode *node, const char *what, fy_error *err)
{
    int rc = fy_ynode_expect(doc, node, FY_YSCALAR, what, err);
    if (rc < 0) return rc;
    if (is_null(node)) return fy_ydoc_error(doc, node, err, FY_EPARSE, "%s has no value", what);
    return 0;
}

int fy_ynode_string(const fy_ydoc *doc, const fy_ynode *node, const char *what, const char **out,
                    fy_error *err)
{
    int rc = scalar(doc, node, what, err);
    if (rc == 0) *out = node->u.text;
    return rc;
}

int fy_ynode_u64(const fy_ydoc *doc, const fy_ynode *node, const char *what, uint64_t *out,
                 fy_error *err)
{
    int rc = scalar(doc, node, what, err);
    if (rc < 0) return rc;
    const char *s = node->u.text;
    uint64_t v = 0;
    if (*s == '\0' || node->quoted) goto bad;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') goto bad;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return fy_ydoc_error(doc, node, err, FY_ERANGE, "%s '%s' does not fit in 64 bits", what,
                                 node->u.text);
        v = v * 10 + d;
    }
    *out = v;
    return 0;
bad:
    return fy_ydoc_error(doc, node, err, FY_EPARSE, "%s must be a non-negative integer, not '%s'",
                         what, node->u.text);
}

typedef enum unit_kind { UNIT_SIZE, UNIT_RATE, UNIT_FLOPS_RATE, UNIT_TIME, UNIT_COUNT } unit_kind;

/* Runs a units parser and moves its message to the node's position. */
static int with_unit(const fy_ydoc *doc, const fy_ynode *node, const char *what, unit_kind kind,
                     void *out, fy_error *err)
{
    int rc = scalar(doc, node, what, err);
    if (rc < 0) return rc;
    fy_error inner = {0};
    const char *text = node->u.text;
    switch (kind) {
    case UNIT_SIZE:
        rc = fy_size_parse(text, out, &inner);
        break;
    case UNIT_RATE:
        rc = fy_rate_parse(text, out, &inner);
        break;
    case UNIT_FLOPS_RATE:
        rc = fy_flops_rate_parse(text, out, &inner);
        break;
    case UNIT_TIME:
        rc = fy_time_parse(text, out, &inner);
        break;
    case UNIT_COUNT:
        rc = fy_count_parse(text, out, &inner);
        break;
    }
    if (rc < 0) return fy_ydoc_error(doc, node, err, rc, "%s: %s", what, inner.message);
    return 0;
}

int fy_ynode_size(const fy_ydoc *doc, const fy_ynode *node, const char *what, uint64_t *out,
                  fy_error *err)
{
    return with_unit(doc, node, what, UNIT_SIZE, out, err);
}

int fy_ynode_rate(const fy_ydoc *doc, const fy_ynode *node, const char *what, double *out,
                  fy_error *err)
{
    return with_unit(doc, node, what, UNIT_RATE, out, err);
}

int fy_ynode_flops_rate(const fy_ydoc *doc, const fy_ynode *node, const char *what, double *out,
                        fy_error *err)
{
    return with_unit(doc, node, what, UNIT_FLOPS_RATE, out, err);
}

int fy_ynode_time(const fy_ydoc *doc, const fy_ynode *node, const char *what, double *out,
                  fy_error *err)
{
    return with_unit(doc, node, what, UNIT_TIME, out, err);
}

int fy_ynode_count(const fy_ydoc *doc, const fy_ynode *node, const char *what, double *out,
                   fy_error *err)
{
    return with_unit(doc, node, what, UNIT_COUNT, out, err);
}

int fy_ynode_enum(const fy_ydoc *doc, const fy_ynode *node, const char *what,
                  const char *const *names, int count, int *out, fy_error *err)
{
    int rc = scalar(doc, node, what, err);
    if (rc < 0) return rc;
    for (int i = 0; i < count; i++) {
        if (strcmp(names[i], node->u.text) == 0) {
            *out = i;
            return 0;
        }
    }
    char list[512];
    size_t used = 0;
    list[0] = '\0';
    for (int i = 0; i < count && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", names[i]);
    return fy_ydoc_error(doc, node, err, FY_EPARSE, "%s must be one of %s, not '%s'", what, list,
                         node->u.text);
}

int fy_ynode_tier(const fy_ydoc *doc, const fy_ynode *node, const char *what, fy_tier *out,
                  fy_error *err)
{
    static const char *const names[] = {"gpu", "host", "nvme"};
    int idx;
    int rc = fy_ynode_enum(doc, node, what, names, 3, &idx, err);
    if (rc == 0) *out = (fy_tier)idx;
    return rc;
}
