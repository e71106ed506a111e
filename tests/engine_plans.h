/* Test helpers for the engine: random graphs of f32 ops (matmul, relu, add, in-place add,
 * host ops updating host-home state), random valid plans built by hand over them (loads,
 * offloads to host and nvme, evicts, arena reuse ordered by `after` on the evict of the
 * previous occupant), and a direct reference that runs the ops in order on plain buffers.
 * A plan with p_evict = 0 keeps everything resident: the baseline of the property tests. */
#ifndef FERRY_TESTS_ENGINE_PLANS_H
#define FERRY_TESTS_ENGINE_PLANS_H

#include "ferry/ferry.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline uint64_t eg_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static inline double eg_unit(uint64_t *s)
{
    return (double)(eg_rand(s) >> 11) / 9007199254740992.0;
}

typedef struct eg_graph_params {
    uint64_t seed;
    unsigned ops;
    unsigned batch, hidden;   /* activations [batch, hidden] f32, weights [hidden, hidden] */
    unsigned weights;         /* weights in the file */
    bool host_ops;            /* some ops on the host, one updating a host-home state */
    const char *weights_path; /* absolute */
} eg_graph_params;

/* A random graph; its weights are written to p->weights_path. Returns NULL on failure. */
static inline fy_graph *eg_graph(const eg_graph_params *p)
{
    fy_error err = {0};
    fy_graph *g;
    uint64_t s = p->seed * 2654435761u + 1;
    if (fy_graph_create("random", &g, &err) < 0) return NULL;
    char name[64];
    fy_tensor_desc x = {.name = "x",
                        .kind = FY_TENSOR_INPUT,
                        .dtype = FY_DTYPE_F32,
                        .rank = 2,
                        .shape = {p->batch, p->hidden}};
    int rc = fy_graph_add_tensor(g, &x, &err);
    for (unsigned w = 0; rc == 0 && w < p->weights; w++) {
        snprintf(name, sizeof name, "w%u", w);
        fy_tensor_desc d = {.name = name,
                            .kind = FY_TENSOR_WEIGHT,
                            .dtype = FY_DTYPE_F32,
                            .rank = 2,
                            .shape = {p->hidden, p->hidden},
                            .source_file = p->weights_path,
                            .source_offset = (uint64_t)w * p->hidden * p->hidden * 4};
        rc = fy_graph_add_tensor(g, &d, &err);
    }
    if (rc == 0 && p->host_ops) {
        fy_tensor_desc st = {.name = "state",
                             .kind = FY_TENSOR_OPTIMIZER,
                             .dtype = FY_DTYPE_F32,
                             .rank = 2,
                             .shape = {p->batch, p->hidden}};
        rc = fy_graph_add_tensor(g, &st, &err);
    }
    /* Activations available to read, by name. */
    char(*acts)[32] = calloc(p->ops + 2, sizeof *acts);
    size_t nacts = 0;
    snprintf(acts[nacts++], sizeof acts[0], "x");
    for (unsigned i = 0; rc == 0 && i < p->ops; i++) {
        bool last = i + 1 == p->ops;
        char out[32], opname[32];
        snprintf(out, sizeof out, last ? "y" : "a%u", i);
        snprintf(opname, sizeof opname, "op%u", i);
        const char *a = acts[eg_rand(&s) % nacts], *b = acts[eg_rand(&s) % nacts];
        unsigned kind = (unsigned)(eg_rand(&s) % (p->host_ops ? 6 : 5));
        if (last && kind >= 3) kind = 1; /* the output is created, never written in place */
        fy_op_desc op = {.name = opname, .device = FY_TIER_GPU};
        const char *reads[2], *writes[1];
        op.reads = reads;
        op.writes = writes;
        op.write_count = 1;
        bool creates = true;
        char wname[16];
        snprintf(wname, sizeof wname, "w%u", (unsigned)(eg_rand(&s) % p->weights));
        switch (kind) {
        case 0: /* matmul with a weight */
        case 1:
            op.kind = "matmul";
            reads[0] = a;
            reads[1] = wname;
            op.read_count = 2;
            break;
        case 2:
            op.kind = "relu";
            reads[0] = a;
            op.read_count = 1;
            break;
        case 3: /* add into a new tensor, sometimes on the host */
            op.kind = "add";
            reads[0] = a;
            reads[1] = b;
            op.read_count = 2;
            if (p->host_ops && eg_rand(&s) % 2) op.device = FY_TIER_HOST;
            break;
        case 4: /* in place: a += b, unless a is the input */
            op.kind = "add";
            if (strcmp(a, "x") == 0) {
                reads[0] = a;
                reads[1] = b;
                op.read_count = 2;
                break;
            }
            reads[0] = a;
            reads[1] = b;
            op.read_count = 2;
            writes[0] = a;
            creates = false;
            break;
        default: /* host: state += a */
            op.kind = "add";
            op.device = FY_TIER_HOST;
            reads[0] = "state";
            reads[1] = a;
            op.read_count = 2;
            writes[0] = "state";
            creates = false;
            break;
        }
        if (creates) {
            fy_tensor_desc d = {.name = out,
                                .kind = last ? FY_TENSOR_OUTPUT : FY_TENSOR_ACTIVATION,
                                .dtype = FY_DTYPE_F32,
                                .rank = 2,
                                .shape = {p->batch, p->hidden}};
            rc = fy_graph_add_tensor(g, &d, &err);
            writes[0] = out;
            snprintf(acts[nacts++], sizeof acts[0], "%s", out);
        }
        if (rc == 0) rc = fy_graph_add_op(g, &op, &err);
    }
    free(acts);
    if (rc == 0) rc = fy_graph_validate(g, &err);
    if (rc == 0) rc = fy_graph_write_weights(g, p->weights_path, p->seed, &err);
    if (rc < 0) {
        fprintf(stderr, "eg_graph: %s\n", err.message);
        fy_graph_destroy(g);
        return NULL;
    }
    return g;
}

/* ---- plans ------------------------------------------------------------------------- */

typedef struct eg_policy {
    uint64_t seed;
    double p_evict;    /* after an op, evict a gpu copy not needed by the next op */
    double p_spill;    /* after an op, move a host copy to nvme (or drop it) */
    double p_prefetch; /* load the next op's operands before this op's evicts */
    bool reuse;        /* place new copies in freed arena ranges */
} eg_policy;

typedef struct eg_copy {
    bool on, fresh, home;
    uint64_t off;
    long placer;
    long *readers;
    size_t nr, cr;
} eg_copy;

typedef struct eg_block {
    uint64_t off, size;
    long evict;
    bool live;
} eg_block;

typedef struct eg_arena {
    eg_block *b;
    size_t n, cap;
    uint64_t top;
} eg_arena;

typedef struct eg_builder {
    fy_plan *plan;
    const fy_graph *g;
    eg_policy pol;
    uint64_t rng;
    eg_copy *c;
    eg_arena arena[FY_TIER_COUNT];
    uint32_t *after;
    size_t na, ca;
    fy_placement places[8];
    uint32_t nplaces;
    int rc;
    fy_error err;
} eg_builder;

static inline eg_copy *eg_c(eg_builder *b, size_t t, int tier)
{
    return &b->c[t * FY_TIER_COUNT + (size_t)tier];
}

static inline void eg_after(eg_builder *b, long ev)
{
    if (ev < 0) return;
    if (b->na == b->ca) {
        b->ca = b->ca ? b->ca * 2 : 16;
        b->after = realloc(b->after, b->ca * sizeof *b->after);
    }
    b->after[b->na++] = (uint32_t)ev;
}

static inline void eg_after_copy(eg_builder *b, eg_copy *c)
{
    eg_after(b, c->placer);
    for (size_t k = 0; k < c->nr; k++)
        eg_after(b, c->readers[k]);
}

static inline void eg_reader(eg_copy *c, long ev)
{
    if (c->nr == c->cr) {
        c->cr = c->cr ? c->cr * 2 : 4;
        c->readers = realloc(c->readers, c->cr * sizeof *c->readers);
    }
    c->readers[c->nr++] = ev;
}

/* Places size bytes in a tier's arena; depends on the evicts of what was there before. */
static inline uint64_t eg_alloc(eg_builder *b, int tier, uint64_t size)
{
    eg_arena *a = &b->arena[tier];
    if (a->n + 2 > a->cap) {
        a->cap = a->cap ? a->cap * 2 : 16;
        a->b = realloc(a->b, a->cap * sizeof *a->b);
    }
    for (size_t k = 0; b->pol.reuse && k < a->n; k++) {
        eg_block *blk = &a->b[k];
        if (blk->live || blk->size < size) continue;
        eg_after(b, blk->evict);
        if (blk->size > size)
            a->b[a->n++] = (eg_block){blk->off + size, blk->size - size, blk->evict, false};
        blk->size = size;
        blk->live = true;
        return blk->off;
    }
    a->b[a->n++] = (eg_block){a->top, size, -1, true};
    a->top += size;
    return a->top - size;
}

static inline void eg_free(eg_builder *b, int tier, uint64_t off, long evict)
{
    eg_arena *a = &b->arena[tier];
    for (size_t k = 0; k < a->n; k++)
        if (a->b[k].live && a->b[k].off == off) {
            a->b[k].live = false;
            a->b[k].evict = evict;
            return;
        }
}

static inline long eg_emit(eg_builder *b, fy_event_kind kind, long t, long op, int from, int to,
                           uint64_t at)
{
    if (b->rc < 0) return -1;
    fy_event e = {.kind = kind,
                  .tensor = (int32_t)t,
                  .op = (int32_t)op,
                  .from = (fy_tier)from,
                  .to = (fy_tier)to,
                  .at = at,
                  .after = b->after,
                  .after_count = (uint32_t)b->na,
                  .places = b->places,
                  .place_count = b->nplaces};
    long i = fy_plan_add(b->plan, &e, &b->err);
    if (i < 0) b->rc = (int)i;
    b->na = 0;
    b->nplaces = 0;
    return i;
}

static inline void eg_evict(eg_builder *b, size_t t, int tier)
{
    eg_copy *c = eg_c(b, t, tier);
    b->na = 0;
    eg_after_copy(b, c);
    long ev = eg_emit(b, FY_EVENT_EVICT, (long)t, -1, tier, FY_TIER_NONE, 0);
    if (!c->home) eg_free(b, tier, c->off, ev);
    free(c->readers);
    memset(c, 0, sizeof *c);
    c->placer = -1;
}

/* A transfer of t from one tier to another (the destination has no copy). */
static inline void eg_move(eg_builder *b, size_t t, int from, int to)
{
    eg_copy *s = eg_c(b, t, from), *d = eg_c(b, t, to);
    uint64_t size = fy_graph_tensor(b->g, t)->size;
    b->na = 0;
    eg_after(b, s->placer);
    uint64_t at = eg_alloc(b, to, size);
    bool load = (from == FY_TIER_NVME) || (from == FY_TIER_HOST && to == FY_TIER_GPU);
    long ev = eg_emit(b, load ? FY_EVENT_LOAD : FY_EVENT_OFFLOAD, (long)t, -1, from, to, at);
    eg_reader(s, ev);
    d->on = d->fresh = true;
    d->home = false;
    d->off = at;
    d->placer = ev;
}

static inline void eg_ensure_host(eg_builder *b, size_t t)
{
    eg_copy *h = eg_c(b, t, FY_TIER_HOST);
    if (h->on && h->fresh) return;
    if (h->on) eg_evict(b, t, FY_TIER_HOST);
    if (eg_c(b, t, FY_TIER_NVME)->on && eg_c(b, t, FY_TIER_NVME)->fresh)
        eg_move(b, t, FY_TIER_NVME, FY_TIER_HOST);
    else
        eg_move(b, t, FY_TIER_GPU, FY_TIER_HOST);
}

static inline void eg_ensure(eg_builder *b, size_t t, int tier)
{
    eg_copy *c = eg_c(b, t, tier);
    if (c->on && c->fresh) return;
    if (tier == FY_TIER_HOST) {
        eg_ensure_host(b, t);
        return;
    }
    if (c->on) eg_evict(b, t, tier);
    eg_ensure_host(b, t);
    eg_move(b, t, FY_TIER_HOST, FY_TIER_GPU);
}

/* Whether t is read by an op after op k, or is an output. */
static inline bool eg_needed(eg_builder *b, size_t t, size_t k)
{
    if (fy_graph_tensor(b->g, t)->kind == FY_TENSOR_OUTPUT ||
        fy_graph_tensor(b->g, t)->kind == FY_TENSOR_OPTIMIZER)
        return true;
    for (size_t j = k + 1; j < fy_graph_op_count(b->g); j++) {
        const fy_op *op = fy_graph_op(b->g, j);
        for (uint32_t r = 0; r < op->read_count; r++)
            if (op->reads[r] == t) return true;
    }
    return false;
}

static inline bool eg_used_by(const fy_op *op, size_t t)
{
    for (uint32_t r = 0; op && r < op->read_count; r++)
        if (op->reads[r] == t) return true;
    for (uint32_t r = 0; op && r < op->write_count; r++)
        if (op->writes[r] == t) return true;
    return false;
}

static inline bool eg_only_fresh(eg_builder *b, size_t t, int tier)
{
    for (int o = 0; o < FY_TIER_COUNT; o++)
        if (o != tier && eg_c(b, t, o)->on && eg_c(b, t, o)->fresh) return false;
    return true;
}

static inline void eg_compute(eg_builder *b, size_t k)
{
    const fy_op *op = fy_graph_op(b->g, k);
    int d = op->device == FY_TIER_HOST ? FY_TIER_HOST : FY_TIER_GPU;
    for (uint32_t r = 0; r < op->read_count; r++)
        eg_ensure(b, op->reads[r], d);
    b->na = 0;
    b->nplaces = 0;
    for (uint32_t r = 0; r < op->read_count; r++)
        eg_after(b, eg_c(b, op->reads[r], d)->placer);
    for (uint32_t w = 0; w < op->write_count; w++) {
        size_t t = op->writes[w];
        eg_copy *c = eg_c(b, t, d);
        if (c->on) {
            eg_after_copy(b, c);
        } else {
            c->off = eg_alloc(b, d, fy_graph_tensor(b->g, t)->size);
            b->places[b->nplaces++] = (fy_placement){.tensor = (int32_t)t, .offset = c->off};
        }
    }
    long ev = eg_emit(b, FY_EVENT_COMPUTE, -1, (long)k, FY_TIER_NONE, FY_TIER_NONE, 0);
    for (uint32_t r = 0; r < op->read_count; r++)
        eg_reader(eg_c(b, op->reads[r], d), ev);
    for (uint32_t w = 0; w < op->write_count; w++) {
        size_t t = op->writes[w];
        eg_copy *c = eg_c(b, t, d);
        c->on = c->fresh = true;
        c->placer = ev;
        c->nr = 0;
        for (int o = 0; o < FY_TIER_COUNT; o++)
            if (o != d && eg_c(b, t, o)->on) eg_evict(b, t, o); /* stale now */
    }
}

/* After op k: evict what the policy drops, saving copies still needed. */
static inline void eg_after_op(eg_builder *b, size_t k)
{
    size_t nt = fy_graph_tensor_count(b->g);
    const fy_op *next = k + 1 < fy_graph_op_count(b->g) ? fy_graph_op(b->g, k + 1) : NULL;
    if (next && eg_unit(&b->rng) < b->pol.p_prefetch) {
        int d = next->device == FY_TIER_HOST ? FY_TIER_HOST : FY_TIER_GPU;
        for (uint32_t r = 0; r < next->read_count; r++)
            eg_ensure(b, next->reads[r], d);
    }
    for (size_t t = 0; t < nt; t++) {
        if (eg_used_by(next, t)) continue;
        bool needed = eg_needed(b, t, k);
        if (eg_c(b, t, FY_TIER_GPU)->on && eg_unit(&b->rng) < b->pol.p_evict) {
            if (needed && eg_only_fresh(b, t, FY_TIER_GPU)) eg_ensure_host(b, t);
            eg_evict(b, t, FY_TIER_GPU);
        }
        eg_copy *h = eg_c(b, t, FY_TIER_HOST);
        if (h->on && !eg_c(b, t, FY_TIER_GPU)->on && eg_unit(&b->rng) < b->pol.p_spill) {
            if (needed && eg_only_fresh(b, t, FY_TIER_HOST)) {
                if (fy_graph_tensor(b->g, t)->kind == FY_TENSOR_OPTIMIZER)
                    continue; /* the caller's buffer must end updated: keep it at home */
                eg_move(b, t, FY_TIER_HOST, FY_TIER_NVME);
            }
            eg_evict(b, t, FY_TIER_HOST);
        }
    }
}

/* A valid plan for g under the policy (NULL on failure, with a message on stderr). */
static inline fy_plan *eg_plan(const fy_graph *g, const eg_policy *pol)
{
    eg_builder b = {.g = g, .pol = *pol, .rng = pol->seed * 0x9E3779B97F4A7C15ull + 7};
    fy_machine m;
    fy_machine_default(&m);
    if (fy_plan_create(g, &m, &b.plan, &b.err) < 0) return NULL;
    size_t nt = fy_graph_tensor_count(g);
    b.c = calloc(nt * FY_TIER_COUNT, sizeof *b.c);
    for (size_t t = 0; t < nt; t++) {
        const fy_tensor *tn = fy_graph_tensor(g, t);
        for (int tier = 0; tier < FY_TIER_COUNT; tier++)
            eg_c(&b, t, tier)->placer = -1;
        if (tn->home == FY_TIER_HOST || tn->home == FY_TIER_NVME) {
            eg_copy *c = eg_c(&b, t, tn->home);
            c->on = c->fresh = c->home = true;
        }
    }
    for (size_t k = 0; k < fy_graph_op_count(g) && b.rc == 0; k++) {
        eg_compute(&b, k);
        eg_after_op(&b, k);
    }
    for (size_t t = 0; t < nt; t++)
        if (fy_graph_tensor(g, t)->kind == FY_TENSOR_OUTPUT) eg_ensure_host(&b, t);
    for (int tier = 0; tier < FY_TIER_COUNT; tier++)
        fy_plan_set_arena(b.plan, (fy_tier)tier, b.arena[tier].top);
    for (size_t t = 0; t < nt * FY_TIER_COUNT; t++)
        free(b.c[t].readers);
    for (int tier = 0; tier < FY_TIER_COUNT; tier++)
        free(b.arena[tier].b);
    free(b.c);
    free(b.after);
    if (b.rc < 0) {
        fprintf(stderr, "eg_plan: %s\n", b.err.message);
        fy_plan_destroy(b.plan);
        return NULL;
    }
    return b.plan;
}

/* ---- reference run ----------------------------------------------------------------- */

/* Deterministic input bytes for a tensor. */
static inline void eg_fill(void *buf, uint64_t size, uint64_t seed)
{
    float *f = buf;
    uint64_t s = seed * 31 + 17;
    for (uint64_t i = 0; i < size / 4; i++)
        f[i] = (float)((double)(eg_rand(&s) % 2001) / 1000.0 - 1.0);
}

/* Runs the graph's ops in order on one buffer per tensor. bufs[t] for host-home tensors
 * must be given (they are updated in place); weights are read from their files; the rest
 * are allocated and returned in bufs (the caller frees those it did not give). */
static inline int eg_reference(const fy_graph *g, void **bufs, bool *owned)
{
    fy_error err = {0};
    fy_kernel_registry *reg;
    if (fy_kernel_registry_create(&reg, &err) < 0 ||
        fy_kernel_registry_add_builtin_cpu(reg, &err) < 0)
        return -1;
    size_t nt = fy_graph_tensor_count(g);
    for (size_t t = 0; t < nt; t++) {
        const fy_tensor *tn = fy_graph_tensor(g, t);
        owned[t] = false;
        if (bufs[t]) continue;
        bufs[t] = calloc(1, tn->size ? tn->size : 1);
        owned[t] = true;
        if (tn->source_file) {
            FILE *f = fopen(tn->source_file, "rb");
            if (!f || fseek(f, (long)tn->source_offset, SEEK_SET) != 0 ||
                fread(bufs[t], 1, tn->size, f) != tn->size) {
                if (f) fclose(f);
                fy_kernel_registry_destroy(reg);
                return -1;
            }
            fclose(f);
        }
    }
    int rc = 0;
    for (size_t k = 0; k < fy_graph_op_count(g) && rc == 0; k++) {
        const fy_op *op = fy_graph_op(g, k);
        fy_kernel_buffer in[8], out[8];
        for (uint32_t r = 0; r < op->read_count; r++)
            in[r] = (fy_kernel_buffer){bufs[op->reads[r]], fy_graph_tensor(g, op->reads[r])->size,
                                       fy_graph_tensor(g, op->reads[r])};
        for (uint32_t w = 0; w < op->write_count; w++)
            out[w] =
                (fy_kernel_buffer){bufs[op->writes[w]], fy_graph_tensor(g, op->writes[w])->size,
                                   fy_graph_tensor(g, op->writes[w])};
        fy_kernel_call call = {.op = op,
                               .graph = g,
                               .inputs = in,
                               .input_count = op->read_count,
                               .outputs = out,
                               .output_count = op->write_count};
        rc = fy_kernel_run(reg, &call, &err);
    }
    if (rc < 0) fprintf(stderr, "eg_reference: %s\n", err.message);
    fy_kernel_registry_destroy(reg);
    return rc;
}

#endif
