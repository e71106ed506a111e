/* Workspaces: one engine and its arenas, allocated once at fixed budgets, serving requests
 * for any number of attached models, one request at a time. The invariants: a model's
 * resident copies (its lowered plan, its graph copy, its weight references) are freed only
 * when it is detached AND no request accepted for it is in flight — counted under the
 * workspace's lock — and the arenas are reserved once, so no model and no request ever makes
 * the workspace's memory grow. */
#include "engine/engine_int.h"
#include "engine/weight_cache.h"

#include "ferry/check.h"
#include "ferry/planner.h"
#include "ferry/serve.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fy_model {
    fy_workspace *ws;
    char *name;
    fy_graph *graph; /* the workspace's copy, or NULL for a caller's plan */
    fy_plan *own_plan;
    const fy_plan *plan;
    fy_exec *x;
    fy_engine_buffer *weights; /* host copies of its weights from the cache, by name */
    const fy_weight **refs;
    size_t weight_count;
    size_t inflight; /* requests accepted and not yet returned */
    bool detached;   /* no new requests */
    bool freed;      /* resident copies gone */
};

struct fy_workspace {
    fy_engine *eng;
    fy_machine machine;
    uint64_t budget[FY_TIER_COUNT];
    fy_weight_cache *cache;
    pthread_mutex_t lock;     /* models, counts */
    pthread_cond_t idle;      /* a request returned */
    pthread_mutex_t run_lock; /* the engine: one request at a time */
    bool running;
    pthread_t runner;
    fy_model **models; /* attached and detached (tombstones) */
    size_t model_count, model_cap;
    uint64_t requests;
};

int fy_workspace_create(const fy_workspace_config *cfg, fy_workspace **out, fy_error *err)
{
    if (!cfg || !cfg->gpu_bytes)
        return fy_error_set(err, FY_EINVAL, "a workspace needs a gpu budget (gpu_bytes > 0)");
    fy_workspace *ws = calloc(1, sizeof *ws);
    if (!ws) return fy_error_set(err, FY_ENOMEM, "out of memory");
    if (cfg->machine)
        ws->machine = *cfg->machine;
    else
        fy_machine_default(&ws->machine);
    ws->budget[FY_TIER_GPU] = ws->machine.capacity[FY_TIER_GPU] = cfg->gpu_bytes;
    ws->budget[FY_TIER_HOST] = ws->machine.capacity[FY_TIER_HOST] = cfg->host_bytes;
    pthread_mutex_init(&ws->lock, NULL);
    pthread_cond_init(&ws->idle, NULL);
    pthread_mutex_init(&ws->run_lock, NULL);
    int rc = fy_engine_open(&cfg->engine, &ws->eng, err);
    if (rc == 0) rc = fy_engine_reserve(ws->eng, cfg->gpu_bytes, cfg->host_bytes, err);
    if (rc < 0) {
        fy_engine_close(ws->eng);
        pthread_mutex_destroy(&ws->run_lock);
        pthread_cond_destroy(&ws->idle);
        pthread_mutex_destroy(&ws->lock);
        free(ws);
        return rc;
    }
    if (cfg->weights) {
        fy_weight_cache_retain(cfg->weights);
        ws->cache = cfg->weights;
    }
    *out = ws;
    return 0;
}

/* Frees what a model holds but its name; called with ws->lock held, nothing in flight. */
static void free_resident(fy_model *m)
{
    for (size_t k = 0; k < m->weight_count; k++)
        fy_weight_cache_release(m->ws->cache, m->refs[k]);
    free(m->refs);
    free(m->weights);
    m->refs = NULL;
    m->weights = NULL;
    m->weight_count = 0;
    fy_exec_destroy(m->x);
    fy_plan_destroy(m->own_plan);
    fy_graph_destroy(m->graph);
    m->x = NULL;
    m->own_plan = NULL;
    m->plan = NULL;
    m->graph = NULL;
    m->freed = true;
}

void fy_workspace_destroy(fy_workspace *ws)
{
    if (!ws) return;
    for (size_t i = 0; i < ws->model_count; i++)
        if (!ws->models[i]->detached) fy_workspace_detach(ws, ws->models[i], NULL);
    pthread_mutex_lock(&ws->lock);
    for (size_t i = 0; i < ws->model_count; i++)
        while (!ws->models[i]->freed)
            pthread_cond_wait(&ws->idle, &ws->lock);
    pthread_mutex_unlock(&ws->lock);
    for (size_t i = 0; i < ws->model_count; i++) {
        free(ws->models[i]->name);
        free(ws->models[i]);
    }
    free(ws->models);
    fy_engine_close(ws->eng);
    fy_weight_cache_destroy(ws->cache);
    pthread_mutex_destroy(&ws->run_lock);
    pthread_cond_destroy(&ws->idle);
    pthread_mutex_destroy(&ws->lock);
    free(ws);
}

void fy_workspace_stats_get(fy_workspace *ws, fy_workspace_stats *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&ws->lock);
    out->arena[FY_TIER_GPU] = ws->budget[FY_TIER_GPU];
    out->arena[FY_TIER_HOST] = ws->budget[FY_TIER_HOST];
    for (size_t i = 0; i < ws->model_count; i++) {
        if (ws->models[i]->detached)
            out->detached++;
        else
            out->models++;
    }
    out->requests = ws->requests;
    pthread_mutex_unlock(&ws->lock);
}

const char *fy_workspace_description(const fy_workspace *ws)
{
    return fy_engine_description(ws->eng);
}

/* ---- attaching ------------------------------------------------------------------------- */

static bool is_written(const fy_graph *g, size_t t)
{
    for (size_t i = 0; i < fy_graph_op_count(g); i++) {
        const fy_op *op = fy_graph_op(g, i);
        for (uint32_t k = 0; k < op->write_count; k++)
            if (op->writes[k] == t) return true;
    }
    return false;
}

/* Whether tensor t is served from the weight cache: a weight in a file that no op writes. */
static bool cached(const fy_workspace *ws, const fy_graph *g, size_t t)
{
    const fy_tensor *tn = fy_graph_tensor(g, t);
    return ws->cache && tn->kind == FY_TENSOR_WEIGHT && tn->source_file && !is_written(g, t);
}

/* The workspace's copy of g: source files resolved, cached weights made host-home (their
 * host copy is the cache's, handed to each run as the tensor's home buffer). */
static int copy_graph(fy_workspace *ws, const fy_graph *g, fy_model *m, fy_error *err)
{
    fy_graph *c;
    int rc = fy_graph_create(fy_graph_name(g), &c, err);
    size_t nt = fy_graph_tensor_count(g);
    if (rc == 0 && ws->cache) {
        m->weights = calloc(nt ? nt : 1, sizeof *m->weights);
        m->refs = calloc(nt ? nt : 1, sizeof *m->refs);
        if (!m->weights || !m->refs) rc = fy_error_set(err, FY_ENOMEM, "out of memory");
    }
    for (size_t t = 0; rc == 0 && t < nt; t++) {
        const fy_tensor *tn = fy_graph_tensor(g, t);
        fy_tensor_desc d;
        char *src;
        if ((rc = fy_graph_describe_tensor(g, t, &d, &src, err)) < 0) break;
        if (cached(ws, g, t)) {
            const fy_weight *w;
            rc = fy_weight_cache_acquire(ws->cache, src, tn->source_offset, tn->size, &w, err);
            if (rc == 0) {
                m->refs[m->weight_count] = w;
                m->weights[m->weight_count++] = (fy_engine_buffer){
                    .name = tn->name, .data = (void *)fy_weight_data(w), .size = tn->size};
                d.home = FY_TIER_HOST;
                d.source_file = NULL;
                d.source_offset = 0;
            } else {
                fy_error_prefix(err, "model '%s', weight '%s'", m->name, tn->name);
            }
        }
        if (rc == 0) rc = fy_graph_add_tensor(c, &d, err);
        free(src);
    }
    for (size_t i = 0; rc == 0 && i < fy_graph_op_count(g); i++)
        rc = fy_graph_add_op_from(c, g, i, NULL, NULL, err);
    if (rc == 0) rc = fy_graph_validate(c, err);
    /* The buffers' names point into the copy, which lives as long as the model. */
    for (size_t k = 0; rc == 0 && k < m->weight_count; k++)
        m->weights[k].name =
            fy_graph_tensor(c, (size_t)fy_graph_find_tensor(c, m->weights[k].name))->name;
    if (rc < 0) {
        fy_graph_destroy(c);
        return rc;
    }
    m->graph = c;
    return 0;
}

static int check_budget(fy_workspace *ws, const fy_model *m, const fy_plan *plan, fy_error *err)
{
    for (int t = FY_TIER_GPU; t <= FY_TIER_HOST; t++) {
        uint64_t need = fy_plan_arena(plan, (fy_tier)t);
        if (need > ws->budget[t]) {
            char a[32], b[32];
            return fy_error_set(err, FY_EINFEASIBLE,
                                "model '%s': its plan's %s arena of %s exceeds the workspace's "
                                "%s budget of %s",
                                m->name, fy_tier_name((fy_tier)t),
                                fy_size_format_human(need, a, sizeof a), fy_tier_name((fy_tier)t),
                                fy_size_format_human(ws->budget[t], b, sizeof b));
        }
    }
    return 0;
}

static fy_model *find_locked(fy_workspace *ws, const char *name)
{
    for (size_t i = 0; i < ws->model_count; i++)
        if (!ws->models[i]->detached && !strcmp(ws->models[i]->name, name)) return ws->models[i];
    return NULL;
}

int fy_workspace_attach(fy_workspace *ws, const fy_model_config *cfg, fy_model **out, fy_error *err)
{
    if (!cfg || !cfg->name || !cfg->name[0])
        return fy_error_set(err, FY_EINVAL, "a model needs a name");
    if (!cfg->graph && !cfg->plan)
        return fy_error_set(err, FY_EINVAL, "model '%s': give a graph or a plan", cfg->name);
    if (cfg->plan && cfg->graph && fy_plan_graph(cfg->plan) != cfg->graph)
        return fy_error_set(err, FY_EINVAL, "model '%s': the plan is of another graph", cfg->name);
    fy_model *m = calloc(1, sizeof *m);
    if (!m || !(m->name = strdup(cfg->name))) {
        free(m);
        return fy_error_set(err, FY_ENOMEM, "out of memory");
    }
    m->ws = ws;
    int rc = 0;
    if (cfg->plan) {
        m->plan = cfg->plan;
    } else {
        rc = copy_graph(ws, cfg->graph, m, err);
        if (rc == 0) {
            rc = fy_plan_make(m->graph, &ws->machine, cfg->policy, &m->own_plan, NULL, err);
            if (rc < 0) fy_error_prefix(err, "model '%s'", m->name);
        }
        m->plan = m->own_plan;
    }
    if (rc == 0) rc = check_budget(ws, m, m->plan, err);
    if (rc == 0) {
        rc = fy_engine_check_lower(m->plan, &m->x, err);
        if (rc < 0) fy_error_prefix(err, "model '%s'", m->name);
    }
    pthread_mutex_lock(&ws->lock);
    if (rc == 0 && find_locked(ws, m->name))
        rc = fy_error_set(err, FY_EINVAL, "a model named '%s' is already attached", m->name);
    if (rc == 0 && ws->model_count == ws->model_cap) {
        size_t cap = ws->model_cap ? ws->model_cap * 2 : 8;
        fy_model **grown = realloc(ws->models, cap * sizeof *grown);
        if (!grown)
            rc = fy_error_set(err, FY_ENOMEM, "out of memory");
        else {
            ws->models = grown;
            ws->model_cap = cap;
        }
    }
    if (rc == 0) ws->models[ws->model_count++] = m;
    if (rc < 0) free_resident(m);
    pthread_mutex_unlock(&ws->lock);
    if (rc < 0) {
        free(m->name);
        free(m);
        return rc;
    }
    *out = m;
    return 0;
}

fy_model *fy_workspace_find(fy_workspace *ws, const char *name)
{
    pthread_mutex_lock(&ws->lock);
    fy_model *m = name ? find_locked(ws, name) : NULL;
    pthread_mutex_unlock(&ws->lock);
    return m;
}

const char *fy_model_name(const fy_model *m)
{
    return m->name;
}

const fy_plan *fy_model_plan(const fy_model *m)
{
    return m->freed ? NULL : m->plan;
}

/* ---- lifetime ---------------------------------------------------------------------------- */

int fy_workspace_detach(fy_workspace *ws, fy_model *m, fy_error *err)
{
    if (!m || m->ws != ws)
        return fy_error_set(err, FY_EINVAL, "model '%s' is not of this workspace",
                            m ? m->name : "(null)");
    pthread_mutex_lock(&ws->lock);
    if (m->detached) {
        pthread_mutex_unlock(&ws->lock);
        return fy_error_set(err, FY_ESTATE, "model '%s' is already detached", m->name);
    }
    m->detached = true;
    /* The thread running a request here cannot wait for requests in flight: they may be its
     * own, or queued behind it. The last of them frees the copies. */
    if (m->inflight && ws->running && pthread_equal(ws->runner, pthread_self())) {
        pthread_mutex_unlock(&ws->lock);
        return 1;
    }
    while (m->inflight)
        pthread_cond_wait(&ws->idle, &ws->lock);
    free_resident(m);
    pthread_cond_broadcast(&ws->idle);
    pthread_mutex_unlock(&ws->lock);
    return 0;
}

/* The caller's inputs after the model's cached weights, so a caller's buffer of the same
 * name wins (the engine binds the last one given). */
static int merge_inputs(const fy_model *m, const fy_engine_run_args *args, fy_engine_run_args *out,
                        fy_engine_buffer **buf, fy_error *err)
{
    *out = args ? *args : (fy_engine_run_args){0};
    *buf = NULL;
    if (!m->weight_count) return 0;
    size_t n = m->weight_count + out->input_count;
    *buf = malloc(n * sizeof **buf);
    if (!*buf) return fy_error_set(err, FY_ENOMEM, "out of memory");
    memcpy(*buf, m->weights, m->weight_count * sizeof **buf);
    if (out->input_count)
        memcpy(*buf + m->weight_count, out->inputs, out->input_count * sizeof **buf);
    out->inputs = *buf;
    out->input_count = n;
    return 0;
}

int fy_workspace_run(fy_workspace *ws, fy_model *m, const fy_engine_run_args *args,
                     fy_engine_report *report, fy_error *err)
{
    if (report) memset(report, 0, sizeof *report);
    if (!m || m->ws != ws)
        return fy_error_set(err, FY_EINVAL, "model '%s' is not of this workspace",
                            m ? m->name : "(null)");
    pthread_mutex_lock(&ws->lock);
    if (m->detached) {
        pthread_mutex_unlock(&ws->lock);
        return fy_error_set(err, FY_ESTATE, "model '%s' is detached", m->name);
    }
    m->inflight++;
    pthread_mutex_unlock(&ws->lock);

    fy_engine_run_args merged;
    fy_engine_buffer *buf;
    int rc = merge_inputs(m, args, &merged, &buf, err);
    if (rc == 0) {
        pthread_mutex_lock(&ws->run_lock);
        pthread_mutex_lock(&ws->lock);
        ws->running = true;
        ws->runner = pthread_self();
        pthread_mutex_unlock(&ws->lock);
        rc = fy_engine_run_exec(ws->eng, m->x, &merged, report, err);
        pthread_mutex_lock(&ws->lock);
        ws->running = false;
        pthread_mutex_unlock(&ws->lock);
        pthread_mutex_unlock(&ws->run_lock);
    }
    free(buf);
    pthread_mutex_lock(&ws->lock);
    ws->requests++;
    if (--m->inflight == 0 && m->detached && !m->freed) free_resident(m); /* deferred */
    pthread_cond_broadcast(&ws->idle);
    pthread_mutex_unlock(&ws->lock);
    return rc;
}
