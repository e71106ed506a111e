/* graph/graph_model.h — the graph's layout and the positioned builder (library-internal).
 * The YAML loader and the generators both build graphs through the same builder, so every
 * rule (unique names, sizes agreeing with shapes, reads of produced tensors) lives in one
 * place; the loader passes source positions so that errors name FILE:LINE:COLUMN. */
#ifndef FERRY_GRAPH_MODEL_H
#define FERRY_GRAPH_MODEL_H

#include "ferry/graph.h"

#include "core/strmap.h"

typedef struct fy_loc {
    unsigned line, column;
} fy_loc;

struct fy_graph {
    char *name;
    char *path; /* file it was loaded from, or NULL */
    fy_tensor *tensors;
    fy_loc *tensor_locs;
    size_t tensor_count, tensor_cap;
    fy_op *ops;
    size_t op_count, op_cap;
    fy_strmap tensor_index, op_index;
    uint32_t *writer_count; /* per tensor: ops so far that write it */
    bool validated;
};

/* Positions for one op's parts; any pointer may be NULL. */
typedef struct fy_op_locs {
    fy_loc op;
    const fy_loc *reads;  /* one per read */
    const fy_loc *writes; /* one per write */
} fy_op_locs;

int fy_graph_set_path(fy_graph *g, const char *path, fy_error *err);
int fy_graph_add_tensor_at(fy_graph *g, const fy_tensor_desc *desc, fy_loc loc, fy_error *err);
int fy_graph_add_op_at(fy_graph *g, const fy_op_desc *desc, const fy_op_locs *locs, fy_error *err);
/* Default home of a tensor of this kind, with or without a source file. */
fy_tier fy_graph_default_home(fy_tensor_kind kind, bool has_source);

#endif
