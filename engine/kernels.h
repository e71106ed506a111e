/* engine/kernels.h — the built-in CPU kernels and the operand checks they share
 * (library-internal). Every kernel validates its whole call (counts, sizes, dtypes, shapes)
 * before it writes a byte, so a refused call leaves its outputs untouched. */
#ifndef FERRY_ENGINE_KERNELS_H
#define FERRY_ENGINE_KERNELS_H

#include "ferry/engine.h"

/* The kernels registered by fy_kernel_registry_add_builtin_cpu. */
int fy_cpu_kernel_matmul(const fy_kernel_call *call, fy_error *err);
int fy_cpu_kernel_relu(const fy_kernel_call *call, fy_error *err);
int fy_cpu_kernel_add(const fy_kernel_call *call, fy_error *err);
int fy_cpu_kernel_copy(const fy_kernel_call *call, fy_error *err);
int fy_cpu_kernel_spin(const fy_kernel_call *call, fy_error *err);

/* matmul with a chosen inner loop, for tests and benchmarks. Every choice computes each
 * output element with the same chain of fused multiply-adds, so all give the same bits. */
typedef enum fy_matmul_isa {
    FY_MATMUL_ISA_AUTO = 0, /* the fastest this CPU has */
    FY_MATMUL_ISA_PORTABLE, /* plain C with fmaf */
    FY_MATMUL_ISA_AVX2,     /* AVX2 + FMA */
} fy_matmul_isa;
bool fy_cpu_matmul_isa_available(fy_matmul_isa isa);
int fy_cpu_matmul(const fy_kernel_call *call, fy_matmul_isa isa, fy_error *err);

/* A checked operand of an element-typed kernel. */
typedef struct fy_cpu_operand {
    void *data;
    uint64_t size;           /* bytes */
    fy_dtype dtype;          /* FY_DTYPE_F32 or FY_DTYPE_BF16 (size-only buffers read as f32) */
    uint64_t count;          /* elements */
    const fy_tensor *tensor; /* NULL for a size-only buffer without description */
    char name[96];           /* "'x'" or "input 1" for messages */
} fy_cpu_operand;

/* "op 'fc0' (matmul, line 12)" for messages. */
const char *fy_cpu_op_label(const fy_kernel_call *call, char *buf, size_t size);
/* The name of a dtype for messages ("bf16", "dtype 99" when out of range). */
const char *fy_cpu_dtype_name(fy_dtype dtype, char *buf, size_t size);

/* "[32, 8192]" for messages; "[]" without a shape. */
const char *fy_cpu_shape_text(const fy_tensor *t, char *buf, size_t size);

/* Checks that the call has an op and exactly reads/writes buffers, matching the op's
 * counts. what: the operand roles for the message, e.g. "[A, B] -> [C]". */
int fy_cpu_check_arity(const fy_kernel_call *call, size_t reads, size_t writes, const char *what,
                       fy_error *err);
/* Checks one buffer: its size against its tensor's, its data, and its bytes against the
 * tensor's shape. Sets out->name. Does not look at the dtype. */
int fy_cpu_check_buffer(const fy_kernel_call *call, const fy_kernel_buffer *buf, bool output,
                        size_t index, fy_cpu_operand *out, fy_error *err);
/* fy_cpu_check_buffer, then requires an f32 or bf16 element type (FY_DTYPE_NONE reads as f32
 * when the size is a multiple of 4) and fills dtype and count. */
int fy_cpu_float_operand(const fy_kernel_call *call, const fy_kernel_buffer *buf, bool output,
                         size_t index, fy_cpu_operand *out, fy_error *err);
/* Whether the byte ranges of two buffers overlap. */
/* An output may be exactly an input (same buffer, dtype and size: updated in place) but
 * must not partly overlap it; returns 0 or FY_EINVAL naming both. */
int fy_cpu_check_alias(const fy_kernel_call *call, const fy_cpu_operand *out,
                       const fy_cpu_operand *in, fy_error *err);
/* The error for elementwise operands of different element counts. */
int fy_cpu_count_mismatch(const fy_kernel_call *call, const fy_cpu_operand *x,
                          const fy_cpu_operand *y, fy_error *err);

/* spin's call, checked for every backend alike: an op, a finite time >= 0 and at most
 * max_seconds, and every buffer sound (any number of inputs and outputs). */
int fy_spin_check(const fy_kernel_call *call, double max_seconds, fy_error *err);

/* The operands of relu ([X] -> [Y], f32/bf16, equal counts, in place only exactly), add
 * ([A, B] -> [C], likewise) and copy ([X] -> [Y], equal byte sizes), checked for every
 * backend alike. */
int fy_relu_check(const fy_kernel_call *call, fy_cpu_operand *x, fy_cpu_operand *y, fy_error *err);
int fy_add_check(const fy_kernel_call *call, fy_cpu_operand *a, fy_cpu_operand *b,
                 fy_cpu_operand *c, fy_error *err);
int fy_copy_check(const fy_kernel_call *call, fy_cpu_operand *x, fy_cpu_operand *y, fy_error *err);

/* matmul's operands, checked for every backend alike: arity, f32/bf16 types, A [M, K]
 * (leading dims folded into M), B [K, N], C of M x N elements, no overlap of C with A or B. */
typedef struct fy_matmul_operands {
    fy_cpu_operand a, b, c;
    uint64_t m, k, n;
} fy_matmul_operands;
int fy_matmul_check(const fy_kernel_call *call, fy_matmul_operands *out, fy_error *err);

bool fy_cpu_overlap(const void *a, uint64_t a_size, const void *b, uint64_t b_size);
/* Threads to use for work of this many flops split into at most `parts` independent pieces:
 * call->threads (0: the online CPUs), never more than parts, 1 for small work. */
unsigned fy_cpu_threads(const fy_kernel_call *call, double flops, uint64_t parts);

#endif
