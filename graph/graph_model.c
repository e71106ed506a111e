/* The graph: creation, the positioned builder with every per-item rule, whole-graph
 * validation, and read access. Ops must be added in execution order after the tensors they
 * name, which lets "reads a tensor nothing produced" be decided as each op is added. */
#include "graph/graph_model.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fy_graph_create(const char *name, fy_graph **out, fy_error *err)
{
    *out = NULL;
    fy_graph *g = calloc(1, sizeof *g);
    if (!g || !(g->name = strdup(name && *name ? name : "graph"))) {
        free(g);
        return fy_error_set(err, FY_ENOMEM, "out of memory");
    }
    *out = g;
    return 0;
}

void fy_graph_destroy(fy_graph *g)
{
    if (!g) return;
    for (size_t i = 0; i < g->tensor_count; i++) {
        free((char *)g->tensors[i].name);
        free((char *)g->tensors[i].source_file);
    }
    for (size_t i = 0; i < g->op_count; i++) {
        free((char *)g->ops[i].name);
        free((char *)g->ops[i].kind);
        free((uint32_t *)g->ops[i].reads);
        free((uint32_t *)g->ops[i].writes);
    }
    free(g->tensors);
    free(g->tensor_locs);
    free(g->ops);
    free(g->writer_count);
    fy_strmap_free(&g->tensor_index);
    fy_strmap_free(&g->op_index);
    free(g->name);
    free(g->path);
    free(g);
}

int fy_graph_set_path(fy_graph *g, const char *path, fy_error *err)
{
    char *copy = path ? strdup(path) : NULL;
    if (path && !copy) return fy_error_set(err, FY_ENOMEM, "out of memory");
    free(g->path);
    g->path = copy;
    return 0;
}

/* An error at loc when the graph came from a file and loc is known, else plain. */
__attribute__((format(printf, 5, 6))) static int
graph_error(const fy_graph *g, fy_loc loc, fy_error *err, int status, const char *fmt, ...)
{
    char msg[FY_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (g->path && loc.line)
        return fy_error_set_at(err, status, g->path, loc.line, loc.column, "%s", msg);
    return fy_error_set(err, status, "%s", msg);
}

fy_tier fy_graph_default_home(fy_tensor_kind kind, bool has_source)
{
    if (has_source) return FY_TIER_NVME;
    switch (kind) {
    case FY_TENSOR_WEIGHT:
    case FY_TENSOR_INPUT:
    case FY_TENSOR_OPTIMIZER:
        return FY_TIER_HOST;
    default:
        return FY_TIER_NONE;
    }
}

static int grow_array(void **array, size_t *cap, size_t count, size_t elem)
{
    if (count < *cap) return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *p = realloc(*array, ncap * elem);
    if (!p) return FY_ENOMEM;
    *array = p;
    *cap = ncap;
    return 0;
}

/* Grows the three per-tensor arrays together, keeping them valid on failure. */
static int grow_tensors(fy_graph *g)
{
    if (g->tensor_count < g->tensor_cap) return 0;
    size_t cap = g->tensor_cap ? g->tensor_cap * 2 : 16;
    fy_tensor *t = realloc(g->tensors, cap * sizeof *t);
    if (!t) return FY_ENOMEM;
    g->tensors = t;
    fy_loc *l = realloc(g->tensor_locs, cap * sizeof *l);
    if (!l) return FY_ENOMEM;
    g->tensor_locs = l;
    uint32_t *w = realloc(g->writer_count, cap * sizeof *w);
    if (!w) return FY_ENOMEM;
    g->writer_count = w;
    g->tensor_cap = cap;
    return 0;
}

/* Bytes of dtype x shape, or 0 with *overflow set when it does not fit in 64 bits. */
static uint64_t shape_bytes(fy_dtype dtype, int rank, const uint64_t *shape, bool *overflow)
{
    unsigned __int128 v = fy_dtype_bytes(dtype);
    *overflow = false;
    for (int i = 0; i < rank; i++) {
        v *= shape[i];
        if (v > UINT64_MAX) {
            *overflow = true;
            return 0;
        }
    }
    return (uint64_t)v;
}

int fy_graph_add_tensor_at(fy_graph *g, const fy_tensor_desc *d, fy_loc loc, fy_error *err)
{
    if (g->validated)
        return fy_error_set(err, FY_ESTATE, "graph '%s' is validated and can no longer change",
                            g->name);
    if (!d->name || !*d->name) return graph_error(g, loc, err, FY_EINVAL, "a tensor needs a name");
    if (fy_strmap_get(&g->tensor_index, d->name, NULL))
        return graph_error(g, loc, err, FY_EINVAL, "duplicate tensor name '%s'", d->name);
    if ((int)d->kind < 0 || d->kind >= FY_TENSOR_KIND_COUNT)
        return graph_error(g, loc, err, FY_EINVAL, "tensor '%s' has an unknown kind", d->name);
    if (d->rank < 0 || d->rank > FY_MAX_RANK)
        return graph_error(g, loc, err, FY_ERANGE,
                           "tensor '%s' has rank %d; ferry supports up to %d dimensions", d->name,
                           d->rank, FY_MAX_RANK);
    if (d->rank > 0 && d->dtype == FY_DTYPE_NONE)
        return graph_error(g, loc, err, FY_EINVAL, "tensor '%s' has a shape but no dtype", d->name);
    uint64_t size = d->size;
    if (d->rank > 0) {
        bool overflow;
        uint64_t from_shape = shape_bytes(d->dtype, d->rank, d->shape, &overflow);
        if (overflow)
            return graph_error(g, loc, err, FY_ERANGE,
                               "tensor '%s': its shape holds more than 2^64-1 bytes", d->name);
        if (size && size != from_shape)
            return graph_error(g, loc, err, FY_EINVAL,
                               "tensor '%s': size %llu bytes disagrees with shape and dtype "
                               "(%s: %llu bytes)",
                               d->name, (unsigned long long)size, fy_dtype_name(d->dtype),
                               (unsigned long long)from_shape);
        size = from_shape;
    }
    if (size == 0)
        return graph_error(g, loc, err, FY_EINVAL,
                           d->rank > 0 ? "tensor '%s' has no elements"
                                       : "tensor '%s' needs a size, or a shape and a dtype",
                           d->name);
    fy_tier home = d->home_set ? d->home : fy_graph_default_home(d->kind, d->source_file);
    if (home == FY_TIER_GPU)
        return graph_error(g, loc, err, FY_EINVAL,
                           "tensor '%s': home must be host or nvme (a tensor reaches the gpu "
                           "through the plan)",
                           d->name);
    if (home == FY_TIER_NVME && !d->source_file)
        return graph_error(g, loc, err, FY_EINVAL,
                           "tensor '%s': home nvme needs a source file holding its bytes", d->name);
    if (d->source_file && home != FY_TIER_NVME)
        return graph_error(g, loc, err, FY_EINVAL,
                           "tensor '%s' has a source file, so its home is nvme, not %s", d->name,
                           fy_tier_name(home));
    if (d->source_file && d->source_offset > UINT64_MAX - size)
        return graph_error(g, loc, err, FY_ERANGE,
                           "tensor '%s': source offset plus size overflows 64 bits", d->name);

    if (grow_tensors(g) < 0) return fy_error_set(err, FY_ENOMEM, "out of memory");
    fy_tensor *t = &g->tensors[g->tensor_count];
    memset(t, 0, sizeof *t);
    t->name = strdup(d->name);
    t->source_file = d->source_file ? strdup(d->source_file) : NULL;
    if (!t->name || (d->source_file && !t->source_file) ||
        fy_strmap_put(&g->tensor_index, t->name, g->tensor_count) < 0) {
        free((char *)t->name);
        free((char *)t->source_file);
        return fy_error_set(err, FY_ENOMEM, "out of memory");
    }
    t->kind = d->kind;
    t->size = size;
    t->dtype = d->dtype;
    t->rank = d->rank;
    memcpy(t->shape, d->shape, sizeof t->shape);
    t->home = home;
    t->source_offset = d->source_offset;
    t->line = loc.line;
    g->tensor_locs[g->tensor_count] = loc;
    g->writer_count[g->tensor_count] = 0;
    g->tensor_count++;
    return 0;
}

int fy_graph_add_tensor(fy_graph *g, const fy_tensor_desc *desc, fy_error *err)
{
    return fy_graph_add_tensor_at(g, desc, (fy_loc){0, 0}, err);
}

static fy_loc part_loc(const fy_op_locs *locs, const fy_loc *parts, size_t i)
{
    if (parts) return parts[i];
    return locs ? locs->op : (fy_loc){0, 0};
}

/* Resolves names to tensor indices; reads must name tensors that exist by now. */
static int resolve(fy_graph *g, const fy_op_desc *d, const fy_op_locs *locs, bool writes,
                   uint32_t **out, fy_error *err)
{
    size_t n = writes ? d->write_count : d->read_count;
    const char *const *names = writes ? d->writes : d->reads;
    const fy_loc *parts = locs ? (writes ? locs->writes : locs->reads) : NULL;
    *out = NULL;
    if (n == 0) return 0;
    if (n > UINT32_MAX)
        return fy_error_set(err, FY_ERANGE, "op '%s' names too many tensors", d->name);
    uint32_t *idx = malloc(n * sizeof *idx);
    if (!idx) return fy_error_set(err, FY_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        uint64_t t;
        fy_loc loc = part_loc(locs, parts, i);
        if (!names[i] || !fy_strmap_get(&g->tensor_index, names[i], &t)) {
            free(idx);
            return graph_error(g, loc, err, FY_EINVAL, "op '%s' %s unknown tensor '%s'", d->name,
                               writes ? "writes" : "reads", names[i] ? names[i] : "(null)");
        }
        if (!writes && g->tensors[t].home == FY_TIER_NONE && g->writer_count[t] == 0) {
            free(idx);
            return graph_error(g, loc, err, FY_EINVAL,
                               "op '%s' reads '%s', which no earlier op writes and which has "
                               "no home",
                               d->name, names[i]);
        }
        for (size_t j = 0; writes && j < i; j++) {
            if (idx[j] == t) {
                free(idx);
                return graph_error(g, loc, err, FY_EINVAL, "op '%s' writes '%s' twice", d->name,
                                   names[i]);
            }
        }
        idx[i] = (uint32_t)t;
    }
    *out = idx;
    return 0;
}

int fy_graph_add_op_at(fy_graph *g, const fy_op_desc *d, const fy_op_locs *locs, fy_error *err)
{
    fy_loc loc = locs ? locs->op : (fy_loc){0, 0};
    if (g->validated)
        return fy_error_set(err, FY_ESTATE, "graph '%s' is validated and can no longer change",
                            g->name);
    if (!d->name || !*d->name) return graph_error(g, loc, err, FY_EINVAL, "an op needs a name");
    if (fy_strmap_get(&g->op_index, d->name, NULL))
        return graph_error(g, loc, err, FY_EINVAL, "duplicate op name '%s'", d->name);
    if (!d->kind || !*d->kind)
        return graph_error(g, loc, err, FY_EINVAL, "op '%s' needs a kind (the kernel to run)",
                           d->name);
    if (d->device != FY_TIER_GPU && d->device != FY_TIER_HOST)
        return graph_error(g, loc, err, FY_EINVAL, "op '%s': device must be gpu or host", d->name);
    if (d->write_count == 0)
        return graph_error(g, loc, err, FY_EINVAL, "op '%s' writes nothing", d->name);
    if (!(d->flops >= 0) || !(d->time >= 0))
        return graph_error(g, loc, err, FY_ERANGE, "op '%s': flops and time cannot be negative",
                           d->name);
    uint32_t *reads = NULL, *writes = NULL;
    int rc = resolve(g, d, locs, false, &reads, err);
    if (rc == 0) rc = resolve(g, d, locs, true, &writes, err);
    if (rc == 0 && grow_array((void **)&g->ops, &g->op_cap, g->op_count, sizeof(fy_op)) < 0)
        rc = fy_error_set(err, FY_ENOMEM, "out of memory");
    if (rc < 0) {
        free(reads);
        free(writes);
        return rc;
    }
    fy_op *op = &g->ops[g->op_count];
    memset(op, 0, sizeof *op);
    op->name = strdup(d->name);
    op->kind = strdup(d->kind);
    if (!op->name || !op->kind || fy_strmap_put(&g->op_index, op->name, g->op_count) < 0) {
        free((char *)op->name);
        free((char *)op->kind);
        free(reads);
        free(writes);
        return fy_error_set(err, FY_ENOMEM, "out of memory");
    }
    op->device = d->device;
    op->reads = reads;
    op->read_count = (uint32_t)d->read_count;
    op->writes = writes;
    op->write_count = (uint32_t)d->write_count;
    op->flops = d->flops;
    op->time = d->time;
    op->line = loc.line;
    for (size_t i = 0; i < d->write_count; i++)
        g->writer_count[writes[i]]++;
    g->op_count++;
    return 0;
}

int fy_graph_add_op(fy_graph *g, const fy_op_desc *desc, fy_error *err)
{
    return fy_graph_add_op_at(g, desc, NULL, err);
}

int fy_graph_describe_tensor(const fy_graph *g, size_t index, fy_tensor_desc *out,
                             char **source_path, fy_error *err)
{
    *source_path = NULL;
    const fy_tensor *tn = fy_graph_tensor(g, index);
    if (!tn) return fy_error_set(err, FY_EINVAL, "graph '%s' has no tensor %zu", g->name, index);
    if (tn->source_file && !(*source_path = fy_graph_source_path(g, index)))
        return fy_error_set(err, FY_ENOMEM, "out of memory");
    *out = (fy_tensor_desc){.name = tn->name,
                            .kind = tn->kind,
                            .size = tn->size,
                            .dtype = tn->dtype,
                            .rank = tn->rank,
                            .home_set = true,
                            .home = tn->home,
                            .source_file = *source_path,
                            .source_offset = tn->source_offset};
    memcpy(out->shape, tn->shape, sizeof out->shape);
    return 0;
}

int fy_graph_add_op_from(fy_graph *g, const fy_graph *src, size_t index, const char *const *names,
                         const char *op_name, fy_error *err)
{
    const fy_op *op = fy_graph_op(src, index);
    if (!op) return fy_error_set(err, FY_EINVAL, "graph '%s' has no op %zu", src->name, index);
    size_t n = (size_t)op->read_count + op->write_count;
    const char **refs = malloc((n ? n : 1) * sizeof *refs);
    if (!refs) return fy_error_set(err, FY_ENOMEM, "out of memory");
    for (size_t k = 0; k < n; k++) {
        uint32_t t = k < op->read_count ? op->reads[k] : op->writes[k - op->read_count];
        refs[k] = names ? names[t] : src->tensors[t].name;
    }
    fy_op_desc d = {.name = op_name ? op_name : op->name,
                    .kind = op->kind,
                    .device = op->device,
                    .reads = refs,
                    .read_count = op->read_count,
                    .writes = refs + op->read_count,
                    .write_count = op->write_count,
                    .flops = op->flops,
                    .time = op->time};
    int rc = fy_graph_add_op(g, &d, err);
    free(refs);
    return rc;
}

int fy_graph_validate(fy_graph *g, fy_error *err)
{
    if (g->validated) return 0;
    if (g->op_count == 0)
        return fy_error_set_at(err, FY_EINVAL, g->path ? g->path : "", 0, 0,
                               "graph '%s' has no ops", g->name);
    for (size_t i = 0; i < g->tensor_count; i++) {
        const fy_tensor *t = &g->tensors[i];
        if (t->kind == FY_TENSOR_OUTPUT && g->writer_count[i] == 0)
            return graph_error(g, g->tensor_locs[i], err, FY_EINVAL,
                               "output '%s' is never written by an op", t->name);
    }
    g->validated = true;
    return 0;
}

const char *fy_graph_name(const fy_graph *g)
{
    return g->name;
}

const char *fy_graph_path(const fy_graph *g)
{
    return g->path;
}

size_t fy_graph_tensor_count(const fy_graph *g)
{
    return g->tensor_count;
}

const fy_tensor *fy_graph_tensor(const fy_graph *g, size_t index)
{
    return index < g->tensor_count ? &g->tensors[index] : NULL;
}

size_t fy_graph_op_count(const fy_graph *g)
{
    return g->op_count;
}

const fy_op *fy_graph_op(const fy_graph *g, size_t index)
{
    return index < g->op_count ? &g->ops[index] : NULL;
}

long fy_graph_find_tensor(const fy_graph *g, const char *name)
{
    uint64_t v;
    return fy_strmap_get(&g->tensor_index, name, &v) ? (long)v : -1;
}

long fy_graph_find_op(const fy_graph *g, const char *name)
{
    uint64_t v;
    return fy_strmap_get(&g->op_index, name, &v) ? (long)v : -1;
}
