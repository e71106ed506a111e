/* ferry/graph.h — the model graph: tensors and ops in execution order (`ferry: graph/1`).
 *
 * Example:
 *     fy_error err = {0};
 *     fy_graph *g;
 *     if (fy_graph_load("mlp.yaml", &g, &err) < 0) { report(&err); return; }
 *     for (size_t i = 0; i < fy_graph_op_count(g); i++)
 *         printf("%s\n", fy_graph_op(g, i)->name);
 *     fy_graph_destroy(g);
 *
 * A graph is built by the loader or by the builder functions, then validated; a validated
 * graph is immutable. fy_tensor and fy_op are plain descriptions owned by the graph: the
 * pointers returned by fy_graph_tensor and fy_graph_op stay valid until fy_graph_destroy.
 */
#ifndef FERRY_GRAPH_H
#define FERRY_GRAPH_H

#include "ferry/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fy_tensor_kind {
    FY_TENSOR_WEIGHT = 0,
    FY_TENSOR_INPUT,
    FY_TENSOR_OUTPUT,
    FY_TENSOR_ACTIVATION,
    FY_TENSOR_GRADIENT,
    FY_TENSOR_OPTIMIZER,
    FY_TENSOR_WORKSPACE,
} fy_tensor_kind;
#define FY_TENSOR_KIND_COUNT 7
const char *fy_tensor_kind_name(fy_tensor_kind kind);

typedef enum fy_dtype {
    FY_DTYPE_NONE = 0, /* the tensor gives only a size */
    FY_DTYPE_F64,
    FY_DTYPE_F32,
    FY_DTYPE_F16,
    FY_DTYPE_BF16,
    FY_DTYPE_F8_E4M3,
    FY_DTYPE_F8_E5M2,
    FY_DTYPE_I64,
    FY_DTYPE_I32,
    FY_DTYPE_I16,
    FY_DTYPE_I8,
    FY_DTYPE_U8,
    FY_DTYPE_BOOL,
} fy_dtype;
#define FY_DTYPE_COUNT 13
/* "f32", "bf16", ...; "none" for FY_DTYPE_NONE. */
const char *fy_dtype_name(fy_dtype dtype);
/* Accepts ferry's names and the common aliases (float32, F32, BF16, ...). */
int fy_dtype_parse(const char *text, fy_dtype *out);
size_t fy_dtype_bytes(fy_dtype dtype); /* 0 for FY_DTYPE_NONE */

#define FY_MAX_RANK 8

typedef struct fy_tensor {
    const char *name;
    fy_tensor_kind kind;
    uint64_t size; /* bytes, always set */
    fy_dtype dtype;
    int rank; /* 0 when no shape was given */
    uint64_t shape[FY_MAX_RANK];
    /* Where the tensor rests before the first op: FY_TIER_NONE for one an op creates. */
    fy_tier home;
    /* A weight's bytes: file (as written in the graph; relative to the graph's folder) and
     * byte offset. NULL when the tensor has no source. */
    const char *source_file;
    uint64_t source_offset;
    unsigned line; /* where it is defined, 0 when built in memory */
} fy_tensor;

typedef struct fy_op {
    const char *name;
    const char *kind; /* the kernel the engine runs: matmul, relu, add, copy, spin, ... */
    fy_tier device;   /* FY_TIER_GPU or FY_TIER_HOST */
    const uint32_t *reads;
    uint32_t read_count;
    const uint32_t *writes;
    uint32_t write_count;
    double flops; /* 0 when not given */
    double time;  /* seconds; 0 when not given */
    unsigned line;
} fy_op;

typedef struct fy_graph fy_graph;

/* Loading and saving. Errors carry FILE:LINE:COLUMN. */
int fy_graph_load(const char *path, fy_graph **out, fy_error *err);
int fy_graph_load_string(const char *name, const char *text, size_t len, fy_graph **out,
                         fy_error *err);
/* Writes the graph as stable YAML: a graph written and read back writes identically. */
int fy_graph_save(const fy_graph *g, const char *path, fy_error *err);
/* The same text as a malloc'ed NUL-terminated string. */
int fy_graph_to_yaml(const fy_graph *g, char **text, size_t *len, fy_error *err);
void fy_graph_destroy(fy_graph *g);

/* Building. Descriptions are copied; names of reads and writes refer to tensors added
 * before. fy_graph_validate checks the whole graph as the loader does and freezes it. */
typedef struct fy_tensor_desc {
    const char *name;
    fy_tensor_kind kind;
    uint64_t size; /* 0: computed from dtype and shape */
    fy_dtype dtype;
    int rank;
    uint64_t shape[FY_MAX_RANK];
    bool home_set; /* false: the default home for the kind (see docs/formats.md) */
    fy_tier home;
    const char *source_file;
    uint64_t source_offset;
} fy_tensor_desc;

typedef struct fy_op_desc {
    const char *name;
    const char *kind;
    fy_tier device; /* FY_TIER_GPU (the default when 0) or FY_TIER_HOST */
    const char *const *reads;
    size_t read_count;
    const char *const *writes;
    size_t write_count;
    double flops;
    double time;
} fy_op_desc;

int fy_graph_create(const char *name, fy_graph **out, fy_error *err);
int fy_graph_add_tensor(fy_graph *g, const fy_tensor_desc *desc, fy_error *err);
int fy_graph_add_op(fy_graph *g, const fy_op_desc *desc, fy_error *err);
int fy_graph_validate(fy_graph *g, fy_error *err);
/* Fills out with tensor `index` of g as a description to add to another graph: everything as
 * g holds it, its home set, and its source file resolved against g's folder into
 * *source_path (malloc'ed, NULL when it has none; out->source_file points at it). */
int fy_graph_describe_tensor(const fy_graph *g, size_t index, fy_tensor_desc *out,
                             char **source_path, fy_error *err);
/* Adds to g a copy of op `index` of src (kind, device, flops, time), named op_name (NULL: its
 * own name), whose tensors are named names[t] for src's tensor t (NULL: their own names). */
int fy_graph_add_op_from(fy_graph *g, const fy_graph *src, size_t index, const char *const *names,
                         const char *op_name, fy_error *err);

/* Reading. Indices are stable: tensors in definition order, ops in execution order. */
const char *fy_graph_name(const fy_graph *g);
/* The file the graph was loaded from (NULL when built in memory); relative source files
 * are relative to its folder. */
const char *fy_graph_path(const fy_graph *g);
size_t fy_graph_tensor_count(const fy_graph *g);
const fy_tensor *fy_graph_tensor(const fy_graph *g, size_t index);
size_t fy_graph_op_count(const fy_graph *g);
const fy_op *fy_graph_op(const fy_graph *g, size_t index);
/* Index of a tensor or op by name, or -1. Constant time. */
long fy_graph_find_tensor(const fy_graph *g, const char *name);
long fy_graph_find_op(const fy_graph *g, const char *name);
/* The source file of a tensor resolved against the graph's folder, malloc'ed; NULL if none. */
char *fy_graph_source_path(const fy_graph *g, size_t tensor);
/* SHA-256 of the graph's canonical YAML text, as 64 hex digits (plans record it). */
int fy_graph_digest(const fy_graph *g, char hex[65], fy_error *err);

/* Summary for `ferry graph show`. */
typedef struct fy_graph_summary {
    size_t op_count, tensor_count;
    size_t count_by_kind[FY_TENSOR_KIND_COUNT];
    uint64_t bytes_by_kind[FY_TENSOR_KIND_COUNT];
    uint64_t bytes_by_home[FY_TIER_COUNT + 1]; /* [FY_TIER_COUNT]: created by ops */
    uint64_t total_bytes;
    /* The largest working set of one op (its distinct reads and writes): the least gpu
     * memory any plan needs. */
    uint64_t max_working_set;
    long max_working_set_op;
    double total_flops;
    double total_time; /* sum of ops' `time` */
} fy_graph_summary;
void fy_graph_summarize(const fy_graph *g, fy_graph_summary *out);
/* Bytes of the distinct tensors op i reads and writes. */
uint64_t fy_graph_op_working_set(const fy_graph *g, size_t op);

/* Synthetic generators (`ferry graph mlp|transformer`). */
typedef struct fy_mlp_params {
    unsigned layers;          /* >= 1 */
    uint64_t hidden;          /* width of every layer */
    uint64_t batch;           /* rows of the input */
    fy_dtype dtype;           /* of weights and activations */
    bool train;               /* add backward ops, gradients and an optimizer op per weight */
    const char *weights_file; /* when set, weights get source: {file, offset} in it */
} fy_mlp_params;

typedef struct fy_transformer_params {
    unsigned layers;
    uint64_t hidden, ffn, heads, seq, batch, vocab; /* vocab 0: no embedding and head */
    fy_dtype dtype;
    bool train;
    const char *weights_file;
} fy_transformer_params;

int fy_graph_generate_mlp(const fy_mlp_params *p, fy_graph **out, fy_error *err);
int fy_graph_generate_transformer(const fy_transformer_params *p, fy_graph **out, fy_error *err);
/* Writes a weight file holding every tensor that has a source in path (the graph's own
 * file name for it is ignored), filled with deterministic pseudo-random values of the
 * tensor's dtype drawn from seed: the same graph and seed give the same bytes. */
int fy_graph_write_weights(const fy_graph *g, const char *path, uint64_t seed, fy_error *err);

#ifdef __cplusplus
}
#endif
#endif
