/* Writes a graph as canonical YAML: fixed key order, one line per tensor and per op, sizes
 * in their exact unit form, numbers in the shortest form that reads back to the same
 * double. A graph written, read back and written again gives the same bytes. */
#include "graph/graph_model.h"

#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Shortest "%.Ng" that reads back as exactly v. */
static void put_number(fy_buf *b, double v, const char *suffix)
{
    char text[40];
    for (int digits = 6; digits <= 17; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, v);
        if (strtod(text, NULL) == v) break;
    }
    fy_buf_puts(b, text);
    fy_buf_puts(b, suffix);
}

static void put_tensor(fy_buf *b, const fy_tensor *t)
{
    char size[32];
    fy_buf_puts(b, "  ");
    fy_buf_scalar(b, t->name);
    fy_buf_puts(b, ": {kind: ");
    fy_buf_puts(b, fy_tensor_kind_name(t->kind));
    if (t->rank > 0) {
        fy_buf_puts(b, ", dtype: ");
        fy_buf_puts(b, fy_dtype_name(t->dtype));
        fy_buf_puts(b, ", shape: [");
        for (int i = 0; i < t->rank; i++) {
            if (i) fy_buf_puts(b, ", ");
            fy_buf_u64(b, t->shape[i]);
        }
        fy_buf_puts(b, "]");
    } else {
        fy_buf_puts(b, ", size: ");
        fy_buf_puts(b, fy_size_format_exact(t->size, size, sizeof size));
    }
    if (t->home != fy_graph_default_home(t->kind, t->source_file != NULL)) {
        fy_buf_puts(b, ", home: ");
        fy_buf_puts(b, fy_tier_name(t->home));
    }
    if (t->source_file) {
        fy_buf_puts(b, ", source: {file: ");
        fy_buf_scalar(b, t->source_file);
        fy_buf_puts(b, ", offset: ");
        fy_buf_u64(b, t->source_offset);
        fy_buf_puts(b, "}");
    }
    fy_buf_puts(b, "}\n");
}

static void put_names(fy_buf *b, const fy_graph *g, const char *key, const uint32_t *idx,
                      uint32_t count)
{
    fy_buf_puts(b, ", ");
    fy_buf_puts(b, key);
    fy_buf_puts(b, ": [");
    for (uint32_t i = 0; i < count; i++) {
        if (i) fy_buf_puts(b, ", ");
        fy_buf_scalar(b, g->tensors[idx[i]].name);
    }
    fy_buf_puts(b, "]");
}

static void put_op(fy_buf *b, const fy_graph *g, const fy_op *op)
{
    fy_buf_puts(b, "  - {name: ");
    fy_buf_scalar(b, op->name);
    fy_buf_puts(b, ", kind: ");
    fy_buf_scalar(b, op->kind);
    if (op->device != FY_TIER_GPU) {
        fy_buf_puts(b, ", device: ");
        fy_buf_puts(b, fy_tier_name(op->device));
    }
    if (op->read_count) put_names(b, g, "reads", op->reads, op->read_count);
    put_names(b, g, "writes", op->writes, op->write_count);
    if (op->flops > 0) {
        fy_buf_puts(b, ", flops: ");
        put_number(b, op->flops, "");
    }
    if (op->time > 0) {
        fy_buf_puts(b, ", time: ");
        put_number(b, op->time, "s");
    }
    fy_buf_puts(b, "}\n");
}

static void put_graph(fy_buf *b, const fy_graph *g)
{
    fy_buf_puts(b, "ferry: graph/1\nname: ");
    fy_buf_scalar(b, g->name);
    fy_buf_puts(b, "\ntensors:\n");
    for (size_t i = 0; i < g->tensor_count; i++)
        put_tensor(b, &g->tensors[i]);
    fy_buf_puts(b, "ops:\n");
    for (size_t i = 0; i < g->op_count; i++)
        put_op(b, g, &g->ops[i]);
}

int fy_graph_to_yaml(const fy_graph *g, char **text, size_t *len, fy_error *err)
{
    fy_buf b = {0};
    put_graph(&b, g);
    if (b.failed) {
        fy_buf_free(&b);
        return fy_error_set(err, FY_ENOMEM, "out of memory writing graph '%s'", g->name);
    }
    *text = b.data;
    *len = b.len;
    return 0;
}

int fy_graph_save(const fy_graph *g, const char *path, fy_error *err)
{
    fy_buf b = {0};
    put_graph(&b, g);
    int rc = fy_buf_write_file(&b, path, err);
    fy_buf_free(&b);
    return rc;
}

char *fy_graph_source_path(const fy_graph *g, size_t tensor)
{
    const fy_tensor *t = fy_graph_tensor(g, tensor);
    if (!t || !t->source_file) return NULL;
    return fy_path_relative_to(g->path, t->source_file);
}
