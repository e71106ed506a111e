/* A request sequence as one graph: the ops of every request, in request order, under
 * per-request names, reading one shared copy of each model's read-only weights. Planning
 * that graph plans the whole timeline on one budget, so eviction looks at the next use
 * across models (belady across requests) and the checker sees every model's copies at once.
 * The invariant: a tensor is shared by a model's requests iff it is a weight that no op of the
 * model writes; everything else is private to its request. */
#include "ferry/serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool shared(const fy_graph *g, size_t t)
{
    if (fy_graph_tensor(g, t)->kind != FY_TENSOR_WEIGHT) return false;
    for (size_t i = 0; i < fy_graph_op_count(g); i++) {
        const fy_op *op = fy_graph_op(g, i);
        for (uint32_t k = 0; k < op->write_count; k++)
            if (op->writes[k] == t) return false;
    }
    return true;
}

/* "MODEL/NAME" for a shared tensor, "MODEL@K/NAME" otherwise; malloc'ed. */
static char *name_of(const char *model, size_t request, bool is_shared, const char *name)
{
    size_t n = strlen(model) + strlen(name) + 32;
    char *s = malloc(n);
    if (!s) return NULL;
    if (is_shared)
        snprintf(s, n, "%s/%s", model, name);
    else
        snprintf(s, n, "%s@%zu/%s", model, request, name);
    return s;
}

static int add_tensor(fy_graph *out, const fy_graph *g, size_t t, const char *name, fy_error *err)
{
    fy_tensor_desc d;
    char *src;
    int rc = fy_graph_describe_tensor(g, t, &d, &src, err);
    d.name = name;
    if (rc == 0) rc = fy_graph_add_tensor(out, &d, err);
    free(src);
    return rc;
}

/* Adds request r (of model m) to out: its private tensors, then its ops. */
static int add_request(fy_graph *out, const fy_sequence_model *m, size_t r, const bool *is_shared,
                       fy_error *err)
{
    const fy_graph *g = m->graph;
    size_t nt = fy_graph_tensor_count(g), nops = fy_graph_op_count(g);
    char **names = calloc(nt ? nt : 1, sizeof *names);
    if (!names) return fy_error_set(err, FY_ENOMEM, "out of memory");
    int rc = 0;
    for (size_t t = 0; rc == 0 && t < nt; t++) {
        names[t] = name_of(m->name, r, is_shared[t], fy_graph_tensor(g, t)->name);
        if (!names[t])
            rc = fy_error_set(err, FY_ENOMEM, "out of memory");
        else if (!is_shared[t])
            rc = add_tensor(out, g, t, names[t], err);
    }
    for (size_t i = 0; rc == 0 && i < nops; i++) {
        const fy_op *op = fy_graph_op(g, i);
        char *opname = name_of(m->name, r, false, op->name);
        if (!opname) {
            rc = fy_error_set(err, FY_ENOMEM, "out of memory");
            break;
        }
        rc = fy_graph_add_op_from(out, g, i, (const char *const *)names, opname, err);
        free(opname);
    }
    for (size_t t = 0; t < nt; t++)
        free(names[t]);
    free(names);
    return rc;
}

int fy_sequence_graph(const fy_sequence_model *models, size_t model_count, const size_t *requests,
                      size_t request_count, fy_graph **out, fy_error *err)
{
    if (!request_count) return fy_error_set(err, FY_EINVAL, "the request sequence is empty");
    for (size_t i = 0; i < model_count; i++) {
        const char *n = models[i].name;
        if (!n || !n[0] || strpbrk(n, "/@") || !models[i].graph)
            return fy_error_set(err, FY_EINVAL,
                                "sequence model %zu: a model needs a graph and a name without "
                                "'/' or '@' (got '%s')",
                                i, n ? n : "(null)");
        for (size_t j = 0; j < i; j++)
            if (!strcmp(models[j].name, n))
                return fy_error_set(err, FY_EINVAL, "two sequence models are named '%s'", n);
    }
    for (size_t r = 0; r < request_count; r++)
        if (requests[r] >= model_count)
            return fy_error_set(err, FY_EINVAL,
                                "request %zu names model %zu, but there are %zu models", r,
                                requests[r], model_count);
    fy_graph *g;
    int rc = fy_graph_create("sequence", &g, err);
    if (rc < 0) return rc;
    bool **is_shared = calloc(model_count ? model_count : 1, sizeof *is_shared);
    bool *used = calloc(model_count ? model_count : 1, sizeof *used);
    if (!is_shared || !used) rc = fy_error_set(err, FY_ENOMEM, "out of memory");
    for (size_t r = 0; r < request_count && rc == 0; r++)
        used[requests[r]] = true;
    /* Each model's shared weights once, before any op (as tensors precede ops). */
    for (size_t i = 0; rc == 0 && i < model_count; i++) {
        const fy_graph *mg = models[i].graph;
        size_t nt = fy_graph_tensor_count(mg);
        if (!(is_shared[i] = calloc(nt ? nt : 1, sizeof **is_shared))) {
            rc = fy_error_set(err, FY_ENOMEM, "out of memory");
            break;
        }
        for (size_t t = 0; rc == 0 && t < nt; t++) {
            is_shared[i][t] = shared(mg, t);
            if (!is_shared[i][t] || !used[i]) continue;
            char *name = name_of(models[i].name, 0, true, fy_graph_tensor(mg, t)->name);
            rc = name ? add_tensor(g, mg, t, name, err)
                      : fy_error_set(err, FY_ENOMEM, "out of memory");
            free(name);
        }
    }
    for (size_t r = 0; rc == 0 && r < request_count; r++) {
        rc = add_request(g, &models[requests[r]], r, is_shared[requests[r]], err);
        if (rc < 0) fy_error_prefix(err, "request %zu (model '%s')", r, models[requests[r]].name);
    }
    if (rc == 0) rc = fy_graph_validate(g, err);
    for (size_t i = 0; is_shared && i < model_count; i++)
        free(is_shared[i]);
    free(is_shared);
    free(used);
    if (rc < 0) {
        fy_graph_destroy(g);
        return rc;
    }
    *out = g;
    return 0;
}
