/* ferry/import.h — a graph from a real checkpoint (`ferry import`).
 *
 * Example:
 *     fy_error err = {0};
 *     fy_import_params p = {.seq = 2048, .batch = 1, .graph_path = "llama.yaml"};
 *     fy_graph *g;
 *     if (fy_import_safetensors("llama-7b/", &p, &g, NULL, &err) < 0) { report(&err); return; }
 *     fy_graph_save(g, "llama.yaml", &err);
 *     fy_graph_destroy(g);
 *
 * Only the headers of the checkpoint are read. Every weight of the graph points into the
 * checkpoint's files (source: {file, offset = 8 + header length + data_offsets[0]}), so a
 * plan streams the real bytes. The weights are grouped into one op per layer, recognised
 * by the common names (model.layers.{i}., transformer.h.{i}., model.decoder.layers.{i}.,
 * ...) or by the caller's patterns; the embedding op comes first and the head op last, and
 * one activation of batch x seq x hidden elements flows from each op to the next, so the
 * planner can stream the model layer by layer. Each op's flops are 2 x its parameters x
 * batch x seq (an embedding, a lookup, counts one per element it copies).
 */
#ifndef FERRY_IMPORT_H
#define FERRY_IMPORT_H

#include "ferry/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fy_import_params {
    /* Layer patterns: a tensor name that starts with the text before "{i}", then a decimal
     * layer number, then the text after it, belongs to that layer. Each pattern that matches
     * is a stack of layers, in the order given (an encoder's, then a decoder's). NULL or
     * none: the built-in patterns (fy_import_default_patterns). */
    const char *const *layers;
    size_t layer_count;
    uint64_t seq;     /* tokens per sequence; 0: 2048 */
    uint64_t batch;   /* sequences; 0: 1 */
    uint64_t hidden;  /* width of the activations; 0: read from the embedding or a norm */
    const char *name; /* the graph's name; NULL: from the checkpoint's file or folder */
    /* Where the graph will be saved ("-" or NULL: standard output). A source file inside
     * that file's folder is written relative to it (so the two can move together), any
     * other as an absolute path. */
    const char *graph_path;
} fy_import_params;

/* What an import found, for the caller to report. Strings are owned by the info and freed
 * by fy_import_info_free. */
typedef struct fy_import_info {
    size_t files;           /* checkpoint files read */
    size_t tensors;         /* weights in the graph */
    size_t skipped_empty;   /* tensors of 0 bytes, left out (they hold nothing to move) */
    size_t layers;          /* layer ops */
    size_t stacks;          /* layer patterns that matched */
    char *patterns;         /* those patterns, comma-separated */
    size_t embed_tensors;   /* weights of the embedding op */
    size_t head_tensors;    /* weights of the head op (not counting a tied embedding) */
    bool tied_head;         /* the head reads the embedding (no separate output matrix) */
    uint64_t hidden, vocab; /* vocab 0: unknown */
    fy_dtype act_dtype;     /* of the activations */
    uint64_t weight_bytes;
} fy_import_info;

/* Builds and validates a graph from a safetensors checkpoint: a .safetensors file, a
 * *.safetensors.index.json, or a folder holding one of them. info may be NULL. Errors name
 * the checkpoint file (and tensor) at fault. */
int fy_import_safetensors(const char *checkpoint, const fy_import_params *params, fy_graph **out,
                          fy_import_info *info, fy_error *err);
void fy_import_info_free(fy_import_info *info);

/* The built-in layer patterns, NULL-terminated. */
const char *const *fy_import_default_patterns(void);

#ifdef __cplusplus
}
#endif
#endif
