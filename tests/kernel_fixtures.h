/* Fixtures shared by the kernel tests: tensors and ops built directly as structs (no graph
 * needed), buffers, a seeded generator, f32/bf16 element access, and a checker for refused
 * calls that also verifies the refusal left the output untouched. */
#ifndef FERRY_TESTS_KERNEL_FIXTURES_H
#define FERRY_TESTS_KERNEL_FIXTURES_H

#include "test_util.h"

#include "engine/kernels.h"

#include <math.h>

static const uint32_t op_indices[8] = {0, 1, 2, 3, 4, 5, 6, 7};

static inline uint64_t dtype_width(fy_dtype d)
{
    return d == FY_DTYPE_BF16 || d == FY_DTYPE_F16 ? 2 : 4;
}

/* A tensor of rank 0-3 whose size matches its shape (size-only tensors count as f32). */
static inline fy_tensor tensor(const char *name, fy_dtype dtype, int rank, uint64_t d0, uint64_t d1,
                               uint64_t d2)
{
    fy_tensor t = {.name = name, .kind = FY_TENSOR_ACTIVATION, .dtype = dtype, .rank = rank};
    uint64_t dims[3] = {d0, d1, d2}, n = 1;
    for (int i = 0; i < rank; i++) {
        t.shape[i] = dims[i];
        n *= dims[i];
    }
    t.size = rank ? n * dtype_width(dtype) : d0; /* rank 0: d0 is the size in bytes */
    return t;
}

/* Points b at a fresh buffer for t (one spare byte so that size 0 still allocates). */
static inline void *attach(fy_kernel_buffer *b, const fy_tensor *t)
{
    void *data = calloc(1, t->size + 1);
    assert_non_null(data);
    *b = (fy_kernel_buffer){.data = data, .size = t->size, .tensor = t};
    return data;
}

static inline fy_kernel_call make_call(fy_op *op, const char *kind, const fy_kernel_buffer *in,
                                       size_t nin, fy_kernel_buffer *out, size_t nout)
{
    *op = (fy_op){.name = "op0",
                  .kind = kind,
                  .device = FY_TIER_GPU,
                  .reads = op_indices,
                  .read_count = (uint32_t)nin,
                  .writes = op_indices + nin,
                  .write_count = (uint32_t)nout,
                  .line = 12};
    return (fy_kernel_call){
        .op = op, .inputs = in, .input_count = nin, .outputs = out, .output_count = nout};
}

static uint64_t rng_state = 1;
static inline uint64_t rng_next(void)
{
    rng_state += 0x9e3779b97f4a7c15ull;
    uint64_t z = rng_state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline float rng_float(void) /* in [-1, 1) */
{
    return (float)(rng_next() >> 40) / 8388608.0f - 1.0f;
}

static inline double get(const void *p, fy_dtype d, size_t i)
{
    if (d == FY_DTYPE_BF16) return fy_bf16_to_f32(((const uint16_t *)p)[i]);
    return ((const float *)p)[i];
}

static inline void put(void *p, fy_dtype d, size_t i, float v)
{
    if (d == FY_DTYPE_BF16)
        ((uint16_t *)p)[i] = fy_bf16_from_f32(v);
    else
        ((float *)p)[i] = v;
}

static inline void fill_random(void *p, fy_dtype d, size_t count)
{
    for (size_t i = 0; i < count; i++)
        put(p, d, i, rng_float());
}

static inline double tolerance(fy_dtype out)
{
    return out == FY_DTYPE_BF16 ? 1e-2 : 1e-5;
}

/* Runs a kernel expected to fail; checks the status, that the message names the op and
 * each of the given words, and that the first output is untouched. */
static inline void expect_refused(fy_kernel_fn fn, const fy_kernel_call *call, int status,
                                  const char *word1, const char *word2)
{
    size_t out_bytes = call->output_count && call->outputs ? call->outputs[0].size : 0;
    uint8_t *before = NULL;
    if (out_bytes && call->outputs[0].data) {
        memset(call->outputs[0].data, 0x5a, out_bytes);
        before = malloc(out_bytes);
        assert_non_null(before);
        memcpy(before, call->outputs[0].data, out_bytes);
    }
    fy_error err = {0};
    int rc = fn(call, &err);
    if (rc != status)
        fail_msg("expected %s, got %s: %s", fy_status_name(status), fy_status_name(rc),
                 err.message);
    assert_int_equal(err.status, status);
    if (call && call->op) assert_non_null(strstr(err.message, "'op0'"));
    if (word1 && !strstr(err.message, word1))
        fail_msg("message lacks '%s': %s", word1, err.message);
    if (word2 && !strstr(err.message, word2))
        fail_msg("message lacks '%s': %s", word2, err.message);
    if (before) {
        assert_memory_equal(before, call->outputs[0].data, out_bytes);
        free(before);
    }
    assert_int_equal(fn(call, NULL), status); /* a NULL err is fine too */
}

#endif
