/* core/yaml_fast.h — the node builder shared by the two YAML readers (private to core/yaml*.c).
 *
 * core/yaml_read.c builds the tree of yaml.h from libyaml's events; core/yaml_fast.c builds
 * the same tree directly from the text for the subset of YAML that ferry's writers emit, and
 * declines anything else so that libyaml reads it (and reports its errors). Both go through
 * these calls, so the tree's layout is decided in one place.
 */
#ifndef FERRY_CORE_YAML_FAST_H
#define FERRY_CORE_YAML_FAST_H

#include "core/yaml.h"

typedef struct fy_ybuild fy_ybuild;

/* Each returns 0, FY_ENOMEM or FY_ERANGE (a collection of more than UINT32_MAX items). */
int fy_ybuild_scalar(fy_ybuild *b, uint32_t line, uint32_t column, const char *text, size_t len,
                     bool quoted);
int fy_ybuild_open(fy_ybuild *b, fy_ykind kind, uint32_t line, uint32_t column);
int fy_ybuild_close(fy_ybuild *b);

/* Returned by fy_yaml_fast_read when the text is outside its subset. */
#define FY_YAML_DECLINED 1

/* Builds the tree of text[0..len) into b. Returns 0 when the whole document was read,
 * FY_YAML_DECLINED when it is outside the subset (b then holds a partial tree that the
 * caller discards), or a negative status from the builder. */
int fy_yaml_fast_read(fy_ybuild *b, const char *text, size_t len);

/* Which readers fy_ydoc_load_string_with may use: the tests compare the two. */
typedef enum fy_yread_mode {
    FY_YREAD_AUTO = 0, /* the fast reader, libyaml when it declines (what every load does) */
    FY_YREAD_FAST,     /* the fast reader alone: FY_YAML_DECLINED when it declines */
    FY_YREAD_LIBYAML,  /* libyaml alone */
} fy_yread_mode;
int fy_ydoc_load_string_with(const char *name, const char *text, size_t len, fy_yread_mode mode,
                             fy_ydoc **out, fy_error *err);

#endif
