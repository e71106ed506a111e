/* graph/generate.h — shared pieces of the synthetic graph generators (library-internal):
 * a small builder that keeps names and weight-file offsets, and the training pass that
 * appends backward, loss and optimizer ops to a forward graph. */
#ifndef FERRY_GRAPH_GENERATE_H
#define FERRY_GRAPH_GENERATE_H

#include "graph/graph_model.h"

/* Weights are placed in the weight file at offsets aligned to this, so O_DIRECT reads of
 * a whole tensor need no bounce buffer. */
#define FY_WEIGHT_ALIGN 4096u

typedef struct fy_gen {
    fy_graph *g;
    fy_dtype dtype;
    const char *weights_file; /* NULL: weights rest in host memory */
    uint64_t next_offset;
    fy_error *err;
    int rc; /* first error; later calls do nothing */
} fy_gen;

int fy_gen_start(fy_gen *gen, const char *name, fy_dtype dtype, const char *weights_file,
                 fy_error *err);
/* Adds a tensor of gen->dtype (dtype NONE: f32) with a 1- or 2-D shape (cols 0: 1-D). */
void fy_gen_tensor(fy_gen *gen, const char *name, fy_tensor_kind kind, uint64_t rows,
                   uint64_t cols);
void fy_gen_tensor_typed(fy_gen *gen, const char *name, fy_tensor_kind kind, fy_dtype dtype,
                         uint64_t rows, uint64_t cols);
/* Adds an op; reads and writes are NULL-terminated name lists. */
void fy_gen_op(fy_gen *gen, const char *name, const char *kind, const char *const *reads,
               const char *const *writes, double flops);
/* Appends the training ops: a loss on `logits` writing `loss` (an output) and the gradient
 * of logits; then, in reverse order, one backward op per forward op (reading the gradients
 * of what it wrote and the activations and weights it read, writing the gradients of what
 * it read, accumulating where a gradient already exists); then one adam op per weight. */
void fy_gen_add_training(fy_gen *gen, const char *logits);
/* Validates and hands the graph out (or destroys it on error). */
int fy_gen_finish(fy_gen *gen, fy_graph **out);

#endif
