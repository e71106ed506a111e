/* core/yaml.h — the YAML reading layer shared by every ferry file format (library-internal).
 *
 * A document is read whole into a compact tree of nodes that keep their source line and
 * column, so that every later error can name FILE:LINE:COLUMN. Only the YAML that ferry's
 * formats use is accepted: one document of mappings, sequences and scalars; anchors and
 * aliases are refused (they would let a small file expand without bound). The typed getters
 * below convert a scalar or report an error positioned at it; fy_ymap_check refuses unknown
 * and duplicate keys, so a typo never passes silently.
 *
 * Nodes live in the document's arena and stay valid until fy_ydoc_destroy.
 */
#ifndef FERRY_CORE_YAML_H
#define FERRY_CORE_YAML_H

#include "ferry/core.h"

typedef enum fy_ykind { FY_YSCALAR = 0, FY_YSEQ, FY_YMAP } fy_ykind;

typedef struct fy_ynode fy_ynode;
struct fy_ynode {
    uint8_t kind;   /* fy_ykind */
    uint8_t quoted; /* a scalar written in quotes: never a number or null */
    uint32_t line;  /* 1-based */
    uint32_t column;
    uint32_t count; /* scalar: length in bytes; sequence: items; mapping: pairs */
    union {
        const char *text; /* scalar, NUL-terminated */
        fy_ynode *items;  /* sequence: items[i]; mapping: items[2i] key, items[2i+1] value */
    } u;
};

typedef struct fy_ydoc fy_ydoc;

/* Reads a whole file or string. name is used in error messages (and kept by the doc). */
int fy_ydoc_load_file(const char *path, fy_ydoc **out, fy_error *err);
int fy_ydoc_load_string(const char *name, const char *text, size_t len, fy_ydoc **out,
                        fy_error *err);
void fy_ydoc_destroy(fy_ydoc *doc);
/* The root node, or NULL for an empty document. */
const fy_ynode *fy_ydoc_root(const fy_ydoc *doc);
const char *fy_ydoc_name(const fy_ydoc *doc);

/* Sets err to FILE:LINE:COLUMN of node (or of the file alone when node is NULL). */
int fy_ydoc_error(const fy_ydoc *doc, const fy_ynode *node, fy_error *err, int status,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Describes a node's kind for messages: "a mapping", "a sequence", "a scalar". */
const char *fy_ykind_name(const fy_ynode *node);
/* Returns 0 if node is of kind, else an error "WHAT must be KIND, not ..." at node. */
int fy_ynode_expect(const fy_ydoc *doc, const fy_ynode *node, fy_ykind kind, const char *what,
                    fy_error *err);

/* Mappings. fy_ymap_check verifies that map is a mapping whose keys are scalars, unique,
 * and all in allowed (a NULL-terminated list); what names the mapping in messages
 * ("tensor 'w0'"). fy_ymap_get finds a key's value, or NULL. */
int fy_ymap_check(const fy_ydoc *doc, const fy_ynode *map, const char *const *allowed,
                  const char *what, fy_error *err);
const fy_ynode *fy_ymap_get(const fy_ynode *map, const char *key);
static inline const fy_ynode *fy_ymap_key(const fy_ynode *map, size_t i)
{
    return &map->u.items[2 * i];
}
static inline const fy_ynode *fy_ymap_value(const fy_ynode *map, size_t i)
{
    return &map->u.items[2 * i + 1];
}
static inline const fy_ynode *fy_yseq_item(const fy_ynode *seq, size_t i)
{
    return &seq->u.items[i];
}
/* True when node is a scalar equal to text. */
bool fy_ynode_is(const fy_ynode *node, const char *text);

/* Typed scalars: each returns 0 and stores the value, or an error positioned at node whose
 * message names what ("size of tensor 'w0'"). */
int fy_ynode_string(const fy_ydoc *doc, const fy_ynode *node, const char *what, const char **out,
                    fy_error *err);
int fy_ynode_u64(const fy_ydoc *doc, const fy_ynode *node, const char *what, uint64_t *out,
                 fy_error *err);
int fy_ynode_size(const fy_ydoc *doc, const fy_ynode *node, const char *what, uint64_t *out,
                  fy_error *err);
int fy_ynode_rate(const fy_ydoc *doc, const fy_ynode *node, const char *what, double *out,
                  fy_error *err);
int fy_ynode_flops_rate(const fy_ydoc *doc, const fy_ynode *node, const char *what, double *out,
                        fy_error *err);
int fy_ynode_time(const fy_ydoc *doc, const fy_ynode *node, const char *what, double *out,
                  fy_error *err);
int fy_ynode_count(const fy_ydoc *doc, const fy_ynode *node, const char *what, double *out,
                   fy_error *err);
int fy_ynode_tier(const fy_ydoc *doc, const fy_ynode *node, const char *what, fy_tier *out,
                  fy_error *err);
/* Matches a scalar against names[0..count); stores the index. */
int fy_ynode_enum(const fy_ydoc *doc, const fy_ynode *node, const char *what,
                  const char *const *names, int count, int *out, fy_error *err);

#endif
