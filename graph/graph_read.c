/* Reads a `ferry: graph/1` file into a graph through the positioned builder, so every
 * error names FILE:LINE:COLUMN of the key or value at fault. Unknown keys are refused. */
#include "graph/graph_model.h"

#include "core/yaml.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const top_keys[] = {"ferry", "name", "tensors", "ops", NULL};
static const char *const tensor_keys[] = {"size", "shape", "dtype", "kind", "home", "source", NULL};
static const char *const source_keys[] = {"file", "offset", NULL};
static const char *const op_keys[] = {"name",   "kind",  "device", "reads",
                                      "writes", "flops", "time",   NULL};
static const char *const kind_names[] = {"weight",   "input",     "output",   "activation",
                                         "gradient", "optimizer", "workspace"};

/* Formats a name for messages, only when there is an error to receive them: each entry is
 * read quietly first (err NULL), so a big graph's success path formats nothing, and read
 * again with err only to describe what is wrong. */
static void name_for(char *buf, size_t size, const fy_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void name_for(char *buf, size_t size, const fy_error *err, const char *fmt, ...)
{
    buf[0] = '\0';
    if (!err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
}

static fy_loc loc_of(const fy_ynode *n)
{
    return (fy_loc){n->line, n->column};
}

static int read_shape(const fy_ydoc *doc, const fy_ynode *node, const char *what, fy_tensor_desc *d,
                      fy_error *err)
{
    int rc = fy_ynode_expect(doc, node, FY_YSEQ, what, err);
    if (rc < 0) return rc;
    if (node->count == 0 || node->count > FY_MAX_RANK)
        return fy_ydoc_error(doc, node, err, FY_EPARSE, "%s must have 1 to %d dimensions", what,
                             FY_MAX_RANK);
    for (uint32_t i = 0; i < node->count; i++) {
        rc = fy_ynode_u64(doc, fy_yseq_item(node, i), what, &d->shape[i], err);
        if (rc < 0) return rc;
    }
    d->rank = (int)node->count;
    return 0;
}

static int tensor_fields(const fy_ydoc *doc, const fy_ynode *key, const fy_ynode *node,
                         fy_tensor_desc *out, fy_error *err)
{
    char what[300];
    const char *name = key->u.text;
    name_for(what, sizeof what, err, "tensor '%s'", name);
    int rc = fy_ymap_check(doc, node, tensor_keys, what, err);
    if (rc < 0) return rc;
    fy_tensor_desc d = {.name = name};
    char field[340];
    const fy_ynode *v;
    int kind;
    name_for(field, sizeof field, err, "kind of %s", what);
    if (!(v = fy_ymap_get(node, "kind")))
        return fy_ydoc_error(doc, node, err, FY_EPARSE,
                             "%s needs a kind (one of weight, input, "
                             "output, activation, gradient, optimizer, workspace)",
                             what);
    if ((rc = fy_ynode_enum(doc, v, field, kind_names, FY_TENSOR_KIND_COUNT, &kind, err)) < 0)
        return rc;
    d.kind = (fy_tensor_kind)kind;
    name_for(field, sizeof field, err, "size of %s", what);
    if ((v = fy_ymap_get(node, "size")) && (rc = fy_ynode_size(doc, v, field, &d.size, err)) < 0)
        return rc;
    if ((v = fy_ymap_get(node, "dtype"))) {
        const char *text;
        name_for(field, sizeof field, err, "dtype of %s", what);
        if ((rc = fy_ynode_string(doc, v, field, &text, err)) < 0) return rc;
        if (fy_dtype_parse(text, &d.dtype) < 0)
            return fy_ydoc_error(doc, v, err, FY_EPARSE,
                                 "%s: unknown dtype '%s' (f64, f32, "
                                 "f16, bf16, f8e4m3, f8e5m2, i64, i32, i16, i8, u8, bool)",
                                 what, text);
    }
    name_for(field, sizeof field, err, "shape of %s", what);
    if ((v = fy_ymap_get(node, "shape")) && (rc = read_shape(doc, v, field, &d, err)) < 0)
        return rc;
    if (d.dtype != FY_DTYPE_NONE && d.rank == 0)
        return fy_ydoc_error(doc, fy_ymap_get(node, "dtype"), err, FY_EPARSE,
                             "%s has a dtype but no shape", what);
    name_for(field, sizeof field, err, "home of %s", what);
    if ((v = fy_ymap_get(node, "home"))) {
        if ((rc = fy_ynode_tier(doc, v, field, &d.home, err)) < 0) return rc;
        d.home_set = true;
    }
    if ((v = fy_ymap_get(node, "source"))) {
        name_for(field, sizeof field, err, "source of %s", what);
        if ((rc = fy_ymap_check(doc, v, source_keys, field, err)) < 0) return rc;
        const fy_ynode *file = fy_ymap_get(v, "file");
        if (!file) return fy_ydoc_error(doc, v, err, FY_EPARSE, "%s needs a file", field);
        name_for(field, sizeof field, err, "source file of %s", what);
        if ((rc = fy_ynode_string(doc, file, field, &d.source_file, err)) < 0) return rc;
        const fy_ynode *off = fy_ymap_get(v, "offset");
        name_for(field, sizeof field, err, "source offset of %s", what);
        if (off && (rc = fy_ynode_size(doc, off, field, &d.source_offset, err)) < 0) return rc;
    }
    *out = d;
    return 0;
}

static int read_tensor(const fy_ydoc *doc, fy_graph *g, const fy_ynode *key, const fy_ynode *node,
                       fy_error *err)
{
    fy_tensor_desc d;
    int rc = tensor_fields(doc, key, node, &d, NULL);
    if (rc < 0 && err) rc = tensor_fields(doc, key, node, &d, err);
    return rc < 0 ? rc : fy_graph_add_tensor_at(g, &d, loc_of(key), err);
}

/* Reads a list of tensor names into names/locs (arrays sized by the caller). */
static int read_names(const fy_ydoc *doc, const fy_ynode *node, const char *what,
                      const char **names, fy_loc *locs, fy_error *err)
{
    for (uint32_t i = 0; i < node->count; i++) {
        const fy_ynode *item = fy_yseq_item(node, i);
        int rc = fy_ynode_string(doc, item, what, &names[i], err);
        if (rc < 0) return rc;
        locs[i] = loc_of(item);
    }
    return 0;
}

static int op_fields(const fy_ydoc *doc, const fy_ynode *node, size_t index, fy_op_desc *out,
                     const fy_ynode **reads_out, const fy_ynode **writes_out, fy_error *err)
{
    char what[300];
    const fy_ynode *named = fy_ymap_get(node, "name");
    if (named && named->kind == FY_YSCALAR)
        name_for(what, sizeof what, err, "op '%s'", named->u.text);
    else
        name_for(what, sizeof what, err, "op %zu", index + 1);
    int rc = fy_ymap_check(doc, node, op_keys, what, err);
    if (rc < 0) return rc;
    fy_op_desc d = {.device = FY_TIER_GPU};
    const fy_ynode *v;
    if (!(v = fy_ymap_get(node, "name")))
        return fy_ydoc_error(doc, node, err, FY_EPARSE, "%s needs a name", what);
    if ((rc = fy_ynode_string(doc, v, "op name", &d.name, err)) < 0) return rc;
    name_for(what, sizeof what, err, "op '%s'", d.name);
    char field[340];
    name_for(field, sizeof field, err, "kind of %s", what);
    if (!(v = fy_ymap_get(node, "kind")))
        return fy_ydoc_error(doc, node, err, FY_EPARSE, "%s needs a kind (the kernel to run)",
                             what);
    if ((rc = fy_ynode_string(doc, v, field, &d.kind, err)) < 0) return rc;
    name_for(field, sizeof field, err, "device of %s", what);
    if ((v = fy_ymap_get(node, "device"))) {
        if ((rc = fy_ynode_tier(doc, v, field, &d.device, err)) < 0) return rc;
        if (d.device == FY_TIER_NVME)
            return fy_ydoc_error(doc, v, err, FY_EPARSE, "%s must be gpu or host", field);
    }
    name_for(field, sizeof field, err, "flops of %s", what);
    if ((v = fy_ymap_get(node, "flops")) && (rc = fy_ynode_count(doc, v, field, &d.flops, err)) < 0)
        return rc;
    name_for(field, sizeof field, err, "time of %s", what);
    if ((v = fy_ymap_get(node, "time")) && (rc = fy_ynode_time(doc, v, field, &d.time, err)) < 0)
        return rc;

    const fy_ynode *reads = fy_ymap_get(node, "reads");
    const fy_ynode *writes = fy_ymap_get(node, "writes");
    name_for(field, sizeof field, err, "reads of %s", what);
    if (reads && (rc = fy_ynode_expect(doc, reads, FY_YSEQ, field, err)) < 0) return rc;
    name_for(field, sizeof field, err, "writes of %s", what);
    if (!writes) return fy_ydoc_error(doc, node, err, FY_EPARSE, "%s needs writes", what);
    if ((rc = fy_ynode_expect(doc, writes, FY_YSEQ, field, err)) < 0) return rc;
    *out = d;
    *reads_out = reads;
    *writes_out = writes;
    return 0;
}

static int read_op(const fy_ydoc *doc, fy_graph *g, const fy_ynode *node, size_t index,
                   fy_error *err)
{
    fy_op_desc d;
    const fy_ynode *reads, *writes;
    int rc = op_fields(doc, node, index, &d, &reads, &writes, NULL);
    if (rc < 0 && err) rc = op_fields(doc, node, index, &d, &reads, &writes, err);
    if (rc < 0) return rc;
    size_t nr = reads ? reads->count : 0, nw = writes->count;
    const char **names = calloc(nr + nw + 1, sizeof *names);
    fy_loc *locs = calloc(nr + nw + 1, sizeof *locs);
    if (!names || !locs) {
        free(names);
        free(locs);
        return fy_error_set(err, FY_ENOMEM, "out of memory");
    }
    if (reads) rc = read_names(doc, reads, "a tensor name", names, locs, err);
    if (rc == 0) rc = read_names(doc, writes, "a tensor name", names + nr, locs + nr, err);
    if (rc == 0) {
        d.reads = names;
        d.read_count = nr;
        d.writes = names + nr;
        d.write_count = nw;
        fy_op_locs ol = {.op = loc_of(node), .reads = locs, .writes = locs + nr};
        rc = fy_graph_add_op_at(g, &d, &ol, err);
    }
    free(names);
    free(locs);
    return rc;
}

static int read_graph(const fy_ydoc *doc, const char *path, fy_graph **out, fy_error *err)
{
    const fy_ynode *root = fy_ydoc_root(doc);
    if (!root)
        return fy_ydoc_error(doc, NULL, err, FY_EPARSE,
                             "empty file: expected a ferry graph "
                             "(ferry: graph/1)");
    int rc = fy_ymap_check(doc, root, top_keys, "the graph", err);
    if (rc < 0) return rc;
    const fy_ynode *header = fy_ymap_get(root, "ferry");
    if (!header)
        return fy_ydoc_error(doc, root, err, FY_EPARSE,
                             "missing header: the file must start with 'ferry: graph/1'");
    if (!fy_ynode_is(header, "graph/1"))
        return fy_ydoc_error(doc, header, err, FY_EPARSE,
                             "wrong header '%s': expected 'ferry: graph/1'",
                             header->kind == FY_YSCALAR ? header->u.text : "(not a scalar)");
    const char *name = "graph";
    const fy_ynode *v = fy_ymap_get(root, "name");
    if (v && (rc = fy_ynode_string(doc, v, "the graph's name", &name, err)) < 0) return rc;
    const fy_ynode *tensors = fy_ymap_get(root, "tensors");
    const fy_ynode *ops = fy_ymap_get(root, "ops");
    if (!tensors)
        return fy_ydoc_error(doc, root, err, FY_EPARSE, "the graph needs a 'tensors' mapping");
    if (!ops) return fy_ydoc_error(doc, root, err, FY_EPARSE, "the graph needs an 'ops' list");
    if ((rc = fy_ynode_expect(doc, tensors, FY_YMAP, "'tensors'", err)) < 0 ||
        (rc = fy_ynode_expect(doc, ops, FY_YSEQ, "'ops'", err)) < 0)
        return rc;

    fy_graph *g;
    if ((rc = fy_graph_create(name, &g, err)) < 0) return rc;
    rc = fy_graph_set_path(g, path, err);
    for (uint32_t i = 0; rc == 0 && i < tensors->count; i++) {
        const fy_ynode *key = fy_ymap_key(tensors, i);
        if (key->kind != FY_YSCALAR)
            rc = fy_ydoc_error(doc, key, err, FY_EPARSE, "a tensor name must be a scalar");
        else
            rc = read_tensor(doc, g, key, fy_ymap_value(tensors, i), err);
    }
    for (uint32_t i = 0; rc == 0 && i < ops->count; i++)
        rc = read_op(doc, g, fy_yseq_item(ops, i), i, err);
    if (rc == 0) rc = fy_graph_validate(g, err);
    if (rc < 0) {
        fy_graph_destroy(g);
        return rc;
    }
    *out = g;
    return 0;
}

int fy_graph_load(const char *path, fy_graph **out, fy_error *err)
{
    *out = NULL;
    fy_ydoc *doc;
    int rc = fy_ydoc_load_file(path, &doc, err);
    if (rc < 0) return rc;
    rc = read_graph(doc, path, out, err);
    fy_ydoc_destroy(doc);
    return rc;
}

int fy_graph_load_string(const char *name, const char *text, size_t len, fy_graph **out,
                         fy_error *err)
{
    *out = NULL;
    fy_ydoc *doc;
    int rc = fy_ydoc_load_string(name, text, len, &doc, err);
    if (rc < 0) return rc;
    rc = read_graph(doc, name, out, err);
    fy_ydoc_destroy(doc);
    return rc;
}
