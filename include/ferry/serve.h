/* ferry/serve.h — serving several models from one workspace: the arenas, io backend and
 * device streams belong to a worker (the workspace); models are plans attached to it, with
 * explicit lifetimes; weights that several workers read are shared, read-only, in host memory.
 *
 * Example (two models on one small workspace, their weights in a process-wide cache):
 *     fy_weight_cache *cache;
 *     fy_workspace *ws;
 *     fy_model *en_de, *en_fr;
 *     if (fy_weight_cache_create(&cache, &err) < 0 ||
 *         fy_workspace_create(&(fy_workspace_config){.engine = {.device = "sim"},
 *                                                    .gpu_bytes = 256 << 20,
 *                                                    .host_bytes = 64 << 20,
 *                                                    .weights = cache},
 *                             &ws, &err) < 0 ||
 *         fy_workspace_attach(ws, &(fy_model_config){.name = "en-de", .graph = g1}, &en_de,
 *                             &err) < 0 ||
 *         fy_workspace_attach(ws, &(fy_model_config){.name = "en-fr", .graph = g2}, &en_fr,
 *                             &err) < 0)
 *         report(&err);
 *     fy_engine_buffer in[] = {{"x", x, sizeof x}}, out[] = {{"y", y, sizeof y}};
 *     fy_engine_run_args req = {.inputs = in, .input_count = 1, .outputs = out,
 *                               .output_count = 1};
 *     fy_workspace_run(ws, en_de, &req, NULL, &err);    // from any thread
 *     fy_workspace_detach(ws, en_de, &err);             // waits for en-de's requests in flight
 *     fy_workspace_run(ws, en_de, &req, NULL, &err);    // FY_ESTATE: "model 'en-de' is detached"
 *     fy_workspace_destroy(ws);
 *     fy_weight_cache_destroy(cache);
 *
 * Memory. A workspace allocates its gpu and host arenas once, at the budgets it is created
 * with, and every model's plan is made for (or must fit) those budgets: the arenas never grow
 * with the number of models. Between requests nothing of a model stays in the arenas (each
 * request's plan starts and ends with them empty but for the outputs it hands back); what a
 * model keeps while attached is its plan, lowered once, and its weights' host copies in the
 * weight cache, one copy per (file, offset, size) however many workspaces read it. Without a
 * cache, every request reads its weights from their files through the host arena.
 *
 * Threads. Any thread may call fy_workspace_run; a workspace runs one request at a time (it
 * is one worker's device streams), the others wait their turn. A model's lifetime:
 * attach → requests → detach. fy_workspace_detach refuses new requests at once and WAITS
 * until the requests already accepted for the model have returned, then frees its copies;
 * called from a request's own callback (the one thread that cannot wait), it DEFERS: it
 * returns 1 and the copies are freed when the last request in flight returns. A model handle
 * stays a valid tombstone after detach, until the workspace is destroyed: using it is
 * FY_ESTATE naming the model. docs/serving.md has the whole story.
 */
#ifndef FERRY_SERVE_H
#define FERRY_SERVE_H

#include "ferry/core.h"
#include "ferry/engine.h"
#include "ferry/graph.h"
#include "ferry/plan.h"
#include "ferry/policy.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================================
 * The weight cache: host copies of weights, keyed by (file, offset, size), shared read-only
 * by every workspace (and thread) that reads them, reference-counted, freed at the last
 * release. Safe to use from several threads.
 * ====================================================================================== */

typedef struct fy_weight_cache fy_weight_cache;
typedef struct fy_weight fy_weight; /* one cached weight */

typedef struct fy_weight_cache_stats {
    size_t entries;      /* weights held now */
    uint64_t bytes;      /* their bytes (the host memory the cache holds) */
    uint64_t reads;      /* weights read from their files since creation */
    uint64_t read_bytes; /* bytes read from files since creation */
    uint64_t hits;       /* acquisitions served by a copy already held */
} fy_weight_cache_stats;

int fy_weight_cache_create(fy_weight_cache **out, fy_error *err);
/* Drops the creator's reference: the cache itself goes when no workspace uses it any more
 * (workspaces created with it keep it alive). NULL accepted. */
void fy_weight_cache_destroy(fy_weight_cache *cache);
void fy_weight_cache_stats_get(fy_weight_cache *cache, fy_weight_cache_stats *out);

/* The host copy of size bytes at offset in file path (resolved to its real path, so two
 * spellings of one file share an entry), read on the first acquisition. A file shorter than
 * offset + size is FY_EIO naming the file and the bytes. Release each acquisition once. */
int fy_weight_cache_acquire(fy_weight_cache *cache, const char *path, uint64_t offset,
                            uint64_t size, const fy_weight **out, fy_error *err);
void fy_weight_cache_release(fy_weight_cache *cache, const fy_weight *weight);
const void *fy_weight_data(const fy_weight *weight);
uint64_t fy_weight_size(const fy_weight *weight);

/* ======================================================================================
 * Workspaces and models
 * ====================================================================================== */

typedef struct fy_workspace fy_workspace;
typedef struct fy_model fy_model;

typedef struct fy_workspace_config {
    fy_engine_config engine; /* device, io backend, nvme dir, threads (ferry/engine.h) */
    uint64_t gpu_bytes;      /* the gpu arena, allocated once: every model's plan fits it */
    uint64_t host_bytes;     /* the host arena (outputs, staging, offloaded activations) */
    /* Rates and nvme for the plans the workspace makes (capacities of gpu and host are
     * replaced by the budgets). Copied. NULL: the built-in machine. */
    const fy_machine *machine;
    /* Weights read from files are served from here (one host copy shared by workspaces).
     * Borrowed with a reference: the cache outlives the workspace. NULL: no cache. */
    fy_weight_cache *weights;
} fy_workspace_config;

typedef struct fy_workspace_stats {
    uint64_t arena[FY_TIER_COUNT]; /* bytes of the arenas the workspace holds (nvme: 0) */
    size_t models;                 /* attached now */
    size_t detached;               /* tombstones */
    uint64_t requests;             /* requests completed (successfully or not) */
} fy_workspace_stats;

/* Opens the engine (cfg->engine) and allocates the arenas. A budget of 0 bytes for gpu is
 * FY_EINVAL. */
int fy_workspace_create(const fy_workspace_config *cfg, fy_workspace **out, fy_error *err);
/* Detaches every model still attached (waiting for their requests), then closes. NULL
 * accepted. Model handles of the workspace are invalid afterwards. */
void fy_workspace_destroy(fy_workspace *ws);
void fy_workspace_stats_get(fy_workspace *ws, fy_workspace_stats *out);
/* The engine's description and its fall-back note (ferry/engine.h). */
const char *fy_workspace_description(const fy_workspace *ws);

typedef struct fy_model_config {
    const char *name; /* unique among the models attached; copied */
    /* Either a graph, which the workspace plans for its budgets under policy (NULL: the
     * default knobs) — copied, with read-only weights served from the weight cache when the
     * workspace has one — ... */
    const fy_graph *graph;
    const fy_policy *policy;
    /* ... or a plan made for this workspace's budgets (arenas within them), borrowed until
     * the model is detached; its graph's weights are read from their files by every request.
     * With a plan, graph is NULL or the plan's graph. */
    const fy_plan *plan;
} fy_model_config;

/* Attaches a model: plans it (or takes its plan), checks and lowers the plan once, and, with
 * a weight cache, acquires its weights' host copies (reading the ones no one holds). Errors:
 * FY_EINVAL (no name or graph, a name already attached, a plan of another graph),
 * FY_EINFEASIBLE (the budgets are too small for the graph, or the plan's arenas exceed
 * them), FY_ECHECK (the plan fails the checker), FY_EIO (a weight file), FY_ENOMEM. */
int fy_workspace_attach(fy_workspace *ws, const fy_model_config *cfg, fy_model **out,
                        fy_error *err);
/* Refuses new requests for the model, waits for those in flight, frees its copies (plan,
 * weight references). Returns 0; 1 when called from a request's callback on this workspace
 * with requests of the model in flight (the free is deferred to the last one's return);
 * FY_ESTATE when the model is already detached; FY_EINVAL for a model of another workspace. */
int fy_workspace_detach(fy_workspace *ws, fy_model *model, fy_error *err);
/* An attached model by name, or NULL. */
fy_model *fy_workspace_find(fy_workspace *ws, const char *name);
const char *fy_model_name(const fy_model *model);
const fy_plan *fy_model_plan(const fy_model *model); /* NULL once detached */

/* Runs one request: the model's plan with the caller's inputs and outputs (ferry/engine.h;
 * weights served from the cache need not be given). Waits for the workspace to be free.
 * FY_ESTATE naming the model when it is detached; FY_EINVAL for a model of another
 * workspace; otherwise as fy_engine_run. report may be NULL. */
int fy_workspace_run(fy_workspace *ws, fy_model *model, const fy_engine_run_args *args,
                     fy_engine_report *report, fy_error *err);

/* ======================================================================================
 * Request sequences as one timeline (`ferry plan --sequence`)
 * ====================================================================================== */

typedef struct fy_sequence_model {
    const char *name; /* prefix of the model's names: "A" gives "A/w0", "A@2/x" */
    const fy_graph *graph;
} fy_sequence_model;

/* Builds one graph that runs requests[0], requests[1], ... (indices into models) in order.
 * Weights no op writes are SHARED by a model's requests and named "MODEL/NAME", so a plan
 * of this graph keeps them resident across requests and evicts by the next use across
 * models; every other tensor (inputs, activations, outputs) and every op belongs to one
 * request and is named "MODEL@K/NAME" (K: the request's index). Source files are resolved,
 * so the graph may be saved anywhere. FY_EINVAL for an empty sequence, an index out of
 * range, or a model name with '/' or '@' in it. */
int fy_sequence_graph(const fy_sequence_model *models, size_t model_count, const size_t *requests,
                      size_t request_count, fy_graph **out, fy_error *err);

#ifdef __cplusplus
}
#endif
#endif
