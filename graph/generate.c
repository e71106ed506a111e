/* The generator builder and the training pass. Training is derived from the forward ops by
 * one rule (reverse order, gradients of reads from gradients of writes), so the mlp and the
 * transformer get the same, checkable structure: every activation a forward op reads is
 * read again by that op's backward op, which is what forces activation offload decisions. */
#include "graph/generate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fy_gen_start(fy_gen *gen, const char *name, fy_dtype dtype, const char *weights_file,
                 fy_error *err)
{
    memset(gen, 0, sizeof *gen);
    gen->dtype = dtype == FY_DTYPE_NONE ? FY_DTYPE_F32 : dtype;
    gen->weights_file = weights_file;
    gen->err = err;
    gen->rc = fy_graph_create(name, &gen->g, err);
    return gen->rc;
}

void fy_gen_tensor_typed(fy_gen *gen, const char *name, fy_tensor_kind kind, fy_dtype dtype,
                         uint64_t rows, uint64_t cols)
{
    if (gen->rc < 0) return;
    fy_tensor_desc d = {.name = name, .kind = kind, .dtype = dtype, .rank = cols ? 2 : 1};
    d.shape[0] = rows;
    d.shape[1] = cols;
    if (kind == FY_TENSOR_WEIGHT && gen->weights_file) {
        d.source_file = gen->weights_file;
        d.source_offset = gen->next_offset;
        uint64_t bytes = fy_dtype_bytes(dtype) * rows * (cols ? cols : 1);
        gen->next_offset += (bytes + FY_WEIGHT_ALIGN - 1) / FY_WEIGHT_ALIGN * FY_WEIGHT_ALIGN;
    }
    gen->rc = fy_graph_add_tensor(gen->g, &d, gen->err);
}

void fy_gen_tensor(fy_gen *gen, const char *name, fy_tensor_kind kind, uint64_t rows, uint64_t cols)
{
    fy_gen_tensor_typed(gen, name, kind, gen->dtype, rows, cols);
}

static size_t count_names(const char *const *names)
{
    size_t n = 0;
    while (names && names[n])
        n++;
    return n;
}

void fy_gen_op(fy_gen *gen, const char *name, const char *kind, const char *const *reads,
               const char *const *writes, double flops)
{
    if (gen->rc < 0) return;
    fy_op_desc d = {.name = name,
                    .kind = kind,
                    .device = FY_TIER_GPU,
                    .reads = reads,
                    .read_count = count_names(reads),
                    .writes = writes,
                    .write_count = count_names(writes),
                    .flops = flops};
    gen->rc = fy_graph_add_op(gen->g, &d, gen->err);
}

/* Name of the gradient of tensor t: "<name>.grad". */
static char *grad_name(const fy_tensor *t)
{
    size_t n = strlen(t->name) + 6;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s.grad", t->name);
    return s;
}

static bool needs_grad(const fy_tensor *t)
{
    return t->kind == FY_TENSOR_WEIGHT || t->kind == FY_TENSOR_ACTIVATION ||
           t->kind == FY_TENSOR_OUTPUT;
}

/* Adds "<t>.grad" of t's shape and dtype unless it exists. */
static void ensure_grad(fy_gen *gen, const fy_tensor *t, const char *gname)
{
    if (gen->rc < 0 || fy_graph_find_tensor(gen->g, gname) >= 0) return;
    fy_tensor_desc d = {
        .name = gname, .kind = FY_TENSOR_GRADIENT, .dtype = t->dtype, .rank = t->rank};
    memcpy(d.shape, t->shape, sizeof d.shape);
    if (t->rank == 0) d.size = t->size;
    gen->rc = fy_graph_add_tensor(gen->g, &d, gen->err);
}

/* Per tensor: has its gradient been written yet (so the next writer accumulates)? */
typedef struct grad_state {
    bool *written;
    size_t cap;
} grad_state;

/* Marks tensor idx's gradient as written; returns 1 if it already was, 0 if not, or
 * FY_ENOMEM. */
static int mark_written(grad_state *s, size_t idx)
{
    if (idx >= s->cap) {
        size_t cap = idx * 2 + 16;
        bool *w = realloc(s->written, cap * sizeof *w);
        if (!w) return FY_ENOMEM;
        memset(w + s->cap, 0, (cap - s->cap) * sizeof *w);
        s->written = w;
        s->cap = cap;
    }
    bool was = s->written[idx];
    s->written[idx] = true;
    return was;
}

static void add_backward(fy_gen *gen, size_t op_index, grad_state *gs)
{
    fy_graph *g = gen->g;
    const fy_op *op = &g->ops[op_index];
    size_t n = op->read_count + op->write_count;
    const char **reads = calloc(2 * n + 1, sizeof *reads);
    const char **writes = calloc(n + 1, sizeof *writes);
    char **owned = calloc(n + 1, sizeof *owned);
    char *name = malloc(strlen(op->name) + 5), *kind = malloc(strlen(op->kind) + 5);
    if (!reads || !writes || !owned || !name || !kind) {
        gen->rc = fy_error_set(gen->err, FY_ENOMEM, "out of memory");
        goto out;
    }
    sprintf(name, "%s.bwd", op->name);
    sprintf(kind, "%s_bwd", op->kind);
    size_t nr = 0, nw = 0, no = 0;
    double flops = 2 * op->flops;
    /* Copy the op's tensor lists now: adding gradient tensors below may move g->ops'
     * neighbours in memory, and the op itself once the backward op is appended. */
    uint32_t rcount = op->read_count, wcount = op->write_count;
    uint32_t *rd = malloc((rcount + 1) * sizeof *rd), *wr = malloc((wcount + 1) * sizeof *wr);
    if (!rd || !wr) {
        free(rd);
        free(wr);
        gen->rc = fy_error_set(gen->err, FY_ENOMEM, "out of memory");
        goto out;
    }
    memcpy(rd, op->reads, rcount * sizeof *rd);
    memcpy(wr, op->writes, wcount * sizeof *wr);
    for (uint32_t i = 0; i < wcount; i++) {
        const fy_tensor *t = &g->tensors[wr[i]];
        if (!needs_grad(t) || t->kind == FY_TENSOR_WEIGHT) continue;
        char *gn = owned[no++] = grad_name(t);
        if (!gn || fy_graph_find_tensor(g, gn) < 0)
            continue; /* nothing downstream produced a gradient for it */
        reads[nr++] = gn;
    }
    for (uint32_t i = 0; i < rcount; i++) {
        const fy_tensor *t = &g->tensors[rd[i]];
        if (t->kind == FY_TENSOR_ACTIVATION || t->kind == FY_TENSOR_WEIGHT ||
            t->kind == FY_TENSOR_INPUT)
            reads[nr++] = t->name;
        if (!needs_grad(t)) continue;
        char *gn = owned[no++] = grad_name(t);
        if (!gn) {
            gen->rc = fy_error_set(gen->err, FY_ENOMEM, "out of memory");
            break;
        }
        ensure_grad(gen, t, gn);
        long gi = fy_graph_find_tensor(g, gn);
        int was = gi >= 0 ? mark_written(gs, (size_t)gi) : 0;
        if (was < 0) {
            gen->rc = fy_error_set(gen->err, FY_ENOMEM, "out of memory");
            break;
        }
        if (was) reads[nr++] = gn; /* accumulate into the existing gradient */
        writes[nw++] = gn;
    }
    if (nw > 0 && gen->rc == 0) fy_gen_op(gen, name, kind, reads, writes, flops);
    free(rd);
    free(wr);
out:
    for (size_t i = 0; owned && i < n + 1; i++)
        free(owned[i]);
    free(owned);
    free(reads);
    free(writes);
    free(name);
    free(kind);
}

void fy_gen_add_training(fy_gen *gen, const char *logits)
{
    if (gen->rc < 0) return;
    fy_graph *g = gen->g;
    size_t forward_ops = g->op_count;
    long li = fy_graph_find_tensor(g, logits);
    if (li < 0) {
        gen->rc = fy_error_set(gen->err, FY_EINVAL, "no tensor '%s' to train on", logits);
        return;
    }
    grad_state gs = {0};
    char *lg = grad_name(&g->tensors[li]);
    if (!lg) {
        gen->rc = fy_error_set(gen->err, FY_ENOMEM, "out of memory");
        return;
    }
    fy_gen_tensor_typed(gen, "loss", FY_TENSOR_OUTPUT, FY_DTYPE_F32, 1, 0);
    ensure_grad(gen, &g->tensors[li], lg);
    const char *loss_reads[] = {logits, NULL};
    const char *loss_writes[] = {"loss", lg, NULL};
    const fy_tensor *lt = &g->tensors[li];
    fy_gen_op(gen, "loss", "loss", loss_reads, loss_writes,
              3.0 * (double)(lt->size / fy_dtype_bytes(lt->dtype)));
    long lgi = fy_graph_find_tensor(g, lg);
    if (lgi >= 0 && mark_written(&gs, (size_t)lgi) < 0)
        gen->rc = fy_error_set(gen->err, FY_ENOMEM, "out of memory");
    free(lg);
    for (size_t i = forward_ops; i-- > 0 && gen->rc == 0;)
        add_backward(gen, i, &gs);
    free(gs.written);
    /* One optimizer op per weight: adam keeps two f32 states in host memory. */
    size_t tensors = g->tensor_count;
    for (size_t i = 0; i < tensors && gen->rc == 0; i++) {
        const fy_tensor t = g->tensors[i];
        if (t.kind != FY_TENSOR_WEIGHT) continue;
        size_t len = strlen(t.name) + 8;
        char *gname = malloc(len), *m = malloc(len), *v = malloc(len), *step = malloc(len);
        if (gname && m && v && step) {
            snprintf(gname, len, "%s.grad", t.name);
            snprintf(m, len, "%s.m", t.name);
            snprintf(v, len, "%s.v", t.name);
            snprintf(step, len, "%s.step", t.name);
            uint64_t elems = t.size / fy_dtype_bytes(t.dtype);
            if (fy_graph_find_tensor(g, gname) < 0)
                goto next; /* no op produced a gradient for this weight */
            fy_gen_tensor_typed(gen, m, FY_TENSOR_OPTIMIZER, FY_DTYPE_F32, elems, 0);
            fy_gen_tensor_typed(gen, v, FY_TENSOR_OPTIMIZER, FY_DTYPE_F32, elems, 0);
            const char *reads[] = {t.name, gname, m, v, NULL};
            const char *writes[] = {t.name, m, v, NULL};
            fy_gen_op(gen, step, "adam", reads, writes, 10.0 * (double)elems);
        } else {
            gen->rc = fy_error_set(gen->err, FY_ENOMEM, "out of memory");
        }
    next:
        free(gname);
        free(m);
        free(v);
        free(step);
    }
}

int fy_gen_finish(fy_gen *gen, fy_graph **out)
{
    *out = NULL;
    if (gen->rc == 0) gen->rc = fy_graph_validate(gen->g, gen->err);
    if (gen->rc < 0) {
        fy_graph_destroy(gen->g);
        gen->g = NULL;
        return gen->rc;
    }
    *out = gen->g;
    gen->g = NULL;
    return 0;
}
