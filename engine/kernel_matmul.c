/* The CPU matmul kernel: C[M,N] = A[M,K] @ B[K,N], f32 or bf16 operands, f32 accumulation.
 *
 * Invariant (the engine's bitwise comparison of offloaded and resident runs rests on it):
 * every output element is computed by one fixed chain, acc = +0, then acc = fma(A[i,k],
 * B[k,j], acc) for k = 0, 1, ..., K-1, then one rounding to C's dtype. Blocking, threading
 * and the inner loop (AVX2 or portable C) only change which element is computed when and
 * where, never that chain, and fma is exactly rounded, so all of them give the same bits.
 * Threads split C into disjoint rectangles; K is never split.
 *
 * Layout follows the BLIS scheme: panels of B (KC x NC) and A (MC x KC) are packed into
 * contiguous f32 (converting bf16 on the way), and a 6 x 16 register tile accumulates into
 * an f32 work block, which is rounded into C once all of K is done. */
#include "core/bf16.h"
#include "engine/kernels.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define FY_MATMUL_HAVE_X86 1
#else
#define FY_MATMUL_HAVE_X86 0
#endif

#define MR 6    /* rows of the register tile */
#define NR 16   /* columns of the register tile: two AVX vectors */
#define MC 96   /* rows of a packed A block (a multiple of MR): A block in L2 */
#define KC 256  /* depth of a packed block: a B micro-panel (KC x NR) fits L1 */
#define NC 1024 /* columns of a packed B block (a multiple of NR) */

/* Adds (or, when first, stores) the product of a packed A micro-panel (kc x MR) and a packed
 * B micro-panel (kc x NR) into the MR x NR tile at c (row stride ldc). */
typedef void (*ukernel_fn)(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                           bool first);

static void ukernel_portable(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                             bool first)
{
    float acc[MR][NR];
    for (size_t i = 0; i < MR; i++)
        for (size_t j = 0; j < NR; j++)
            acc[i][j] = first ? 0.0f : c[i * ldc + j];
    for (size_t k = 0; k < kc; k++, a += MR, b += NR)
        for (size_t i = 0; i < MR; i++)
            for (size_t j = 0; j < NR; j++)
                acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    for (size_t i = 0; i < MR; i++)
        memcpy(c + i * ldc, acc[i], sizeof acc[i]);
}

#if FY_MATMUL_HAVE_X86
/* Twelve accumulators, two B vectors and one broadcast: 15 of the 16 ymm registers. */
__attribute__((target("avx2,fma"))) static void
ukernel_avx2(size_t kc, const float *a, const float *b, float *c, size_t ldc, bool first)
{
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    if (first) {
        c00 = c01 = c10 = c11 = c20 = c21 = _mm256_setzero_ps();
        c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
    } else {
#define LOAD_ROW(i)                                                                                \
    c##i##0 = _mm256_loadu_ps(c + i * ldc);                                                        \
    c##i##1 = _mm256_loadu_ps(c + i * ldc + 8)
        LOAD_ROW(0);
        LOAD_ROW(1);
        LOAD_ROW(2);
        LOAD_ROW(3);
        LOAD_ROW(4);
        LOAD_ROW(5);
#undef LOAD_ROW
    }
    for (size_t k = 0; k < kc; k++, a += MR, b += NR) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8), ai;
#define FMA_ROW(i)                                                                                 \
    ai = _mm256_broadcast_ss(a + i);                                                               \
    c##i##0 = _mm256_fmadd_ps(ai, b0, c##i##0);                                                    \
    c##i##1 = _mm256_fmadd_ps(ai, b1, c##i##1)
        FMA_ROW(0);
        FMA_ROW(1);
        FMA_ROW(2);
        FMA_ROW(3);
        FMA_ROW(4);
        FMA_ROW(5);
#undef FMA_ROW
    }
#define STORE_ROW(i)                                                                               \
    _mm256_storeu_ps(c + i * ldc, c##i##0);                                                        \
    _mm256_storeu_ps(c + i * ldc + 8, c##i##1)
    STORE_ROW(0);
    STORE_ROW(1);
    STORE_ROW(2);
    STORE_ROW(3);
    STORE_ROW(4);
    STORE_ROW(5);
#undef STORE_ROW
}
#endif

bool fy_cpu_matmul_isa_available(fy_matmul_isa isa)
{
    switch (isa) {
    case FY_MATMUL_ISA_AUTO:
    case FY_MATMUL_ISA_PORTABLE:
        return true;
    case FY_MATMUL_ISA_AVX2:
#if FY_MATMUL_HAVE_X86
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
        return false;
#endif
    }
    return false;
}

/* ---- one problem, one rectangle of C ---- */

typedef struct matmul_job {
    const void *a, *b;
    void *c;
    fy_dtype a_dtype, b_dtype, c_dtype;
    size_t m, n, k;
    ukernel_fn ukernel;
} matmul_job;

typedef struct matmul_part {
    const matmul_job *job;
    size_t r0, r1, c0, c1; /* rows [r0, r1) and columns [c0, c1) of C */
    size_t mc, kc, nc;     /* block sizes, clamped to the rectangle */
    float *pack_a, *pack_b, *work;
    void *scratch; /* the one allocation behind the three */
} matmul_part;

static size_t round_up(size_t x, size_t to)
{
    return (x + to - 1) / to * to;
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* Rows [i0, i0+mc) by depth [p0, p0+kc) of A into MR-row panels, rows past mc zero. */
static void pack_a(const matmul_job *job, size_t i0, size_t mc, size_t p0, size_t kc, float *dst)
{
    for (size_t p = 0; p < mc; p += MR, dst += MR * kc) {
        for (size_t r = 0; r < MR; r++) {
            if (p + r >= mc) {
                for (size_t k = 0; k < kc; k++)
                    dst[k * MR + r] = 0.0f;
                continue;
            }
            size_t at = (i0 + p + r) * job->k + p0;
            if (job->a_dtype == FY_DTYPE_BF16) {
                const uint16_t *src = (const uint16_t *)job->a + at;
                for (size_t k = 0; k < kc; k++)
                    dst[k * MR + r] = bf16_to_f32(src[k]);
            } else {
                const float *src = (const float *)job->a + at;
                for (size_t k = 0; k < kc; k++)
                    dst[k * MR + r] = src[k];
            }
        }
    }
}

/* Depth [p0, p0+kc) by columns [j0, j0+nc) of B into NR-column panels, columns past nc zero. */
static void pack_b(const matmul_job *job, size_t p0, size_t kc, size_t j0, size_t nc, float *dst)
{
    for (size_t q = 0; q < nc; q += NR, dst += NR * kc) {
        size_t width = min_size(NR, nc - q);
        for (size_t k = 0; k < kc; k++) {
            size_t at = (p0 + k) * job->n + j0 + q;
            float *row = dst + k * NR;
            if (job->b_dtype == FY_DTYPE_BF16) {
                const uint16_t *src = (const uint16_t *)job->b + at;
                for (size_t j = 0; j < width; j++)
                    row[j] = bf16_to_f32(src[j]);
            } else {
                memcpy(row, (const float *)job->b + at, width * sizeof(float));
            }
            for (size_t j = width; j < NR; j++)
                row[j] = 0.0f;
        }
    }
}

/* Rounds the mc x nc work block (row stride ldw) into C at (i0, j0). */
static void store_c(const matmul_job *job, const float *work, size_t ldw, size_t i0, size_t mc,
                    size_t j0, size_t nc)
{
    for (size_t r = 0; r < mc; r++) {
        size_t at = (i0 + r) * job->n + j0;
        const float *src = work + r * ldw;
        if (job->c_dtype == FY_DTYPE_BF16) {
            uint16_t *dst = (uint16_t *)job->c + at;
            for (size_t j = 0; j < nc; j++)
                dst[j] = bf16_from_f32(src[j]);
        } else {
            memcpy((float *)job->c + at, src, nc * sizeof(float));
        }
    }
}

static void run_part(const matmul_part *part)
{
    const matmul_job *job = part->job;
    size_t ldw = round_up(part->nc, NR);
    for (size_t j0 = part->c0; j0 < part->c1; j0 += part->nc) {
        size_t nc = min_size(part->nc, part->c1 - j0), ncp = round_up(nc, NR);
        for (size_t i0 = part->r0; i0 < part->r1; i0 += part->mc) {
            size_t mc = min_size(part->mc, part->r1 - i0), mcp = round_up(mc, MR);
            /* Depth blocks in order: each element's chain of fmas runs k = 0..K-1. */
            for (size_t p0 = 0; p0 < job->k; p0 += part->kc) {
                size_t kc = min_size(part->kc, job->k - p0);
                pack_b(job, p0, kc, j0, nc, part->pack_b);
                pack_a(job, i0, mc, p0, kc, part->pack_a);
                for (size_t jr = 0; jr < ncp; jr += NR)
                    for (size_t ir = 0; ir < mcp; ir += MR)
                        job->ukernel(kc, part->pack_a + ir * kc, part->pack_b + jr * kc,
                                     part->work + ir * ldw + jr, ldw, p0 == 0);
            }
            store_c(job, part->work, ldw, i0, mc, j0, nc);
        }
    }
}

static void *run_part_thread(void *arg)
{
    run_part(arg);
    return NULL;
}

static int part_alloc(matmul_part *part)
{
    size_t rows = part->r1 - part->r0, cols = part->c1 - part->c0;
    part->mc = min_size(MC, round_up(rows, MR));
    part->nc = min_size(NC, round_up(cols, NR));
    part->kc = min_size(KC, part->job->k);
    size_t na = part->mc * part->kc, nb = part->nc * part->kc, nw = part->mc * part->nc;
    /* Each piece starts on a 64-byte line: B panels are read with aligned loads. */
    na = round_up(na, 16);
    nb = round_up(nb, 16);
    size_t bytes = round_up((na + nb + nw) * sizeof(float), 64);
    part->scratch = aligned_alloc(64, bytes);
    if (!part->scratch) return FY_ENOMEM;
    part->pack_b = part->scratch;
    part->pack_a = part->pack_b + nb;
    part->work = part->pack_a + na;
    return 0;
}

/* Splits C among threads along whichever side has more register tiles, and runs the parts:
 * the first on the calling thread, the others on their own. */
static int run_job(const fy_kernel_call *call, const matmul_job *job, fy_error *err)
{
    char label[160];
    size_t tiles_m = (job->m + MR - 1) / MR, tiles_n = (job->n + NR - 1) / NR;
    bool by_rows = tiles_m >= tiles_n;
    size_t tiles = by_rows ? tiles_m : tiles_n;
    double flops = 2.0 * (double)job->m * (double)job->n * (double)job->k;
    unsigned threads = fy_cpu_threads(call, flops, tiles);

    matmul_part *parts = calloc(threads, sizeof *parts);
    pthread_t *ids = calloc(threads, sizeof *ids);
    bool *started = calloc(threads, sizeof *started);
    int rc = parts && ids && started ? 0 : FY_ENOMEM;
    for (unsigned t = 0; rc == 0 && t < threads; t++) {
        size_t lo = tiles * t / threads, hi = tiles * (t + 1) / threads;
        matmul_part *p = &parts[t];
        p->job = job;
        if (by_rows) {
            p->r0 = lo * MR;
            p->r1 = min_size(hi * MR, job->m);
            p->c0 = 0;
            p->c1 = job->n;
        } else {
            p->r0 = 0;
            p->r1 = job->m;
            p->c0 = lo * NR;
            p->c1 = min_size(hi * NR, job->n);
        }
        rc = part_alloc(p);
    }
    if (rc < 0) {
        fy_cpu_op_label(call, label, sizeof label);
        fy_error_set(err, FY_ENOMEM, "%s: out of memory for matmul work buffers", label);
    } else {
        for (unsigned t = 1; t < threads; t++)
            started[t] = pthread_create(&ids[t], NULL, run_part_thread, &parts[t]) == 0;
        run_part(&parts[0]);
        /* A part whose thread could not start runs here: the result is the same. */
        for (unsigned t = 1; t < threads; t++) {
            if (started[t])
                pthread_join(ids[t], NULL);
            else
                run_part(&parts[t]);
        }
    }
    for (unsigned t = 0; parts && t < threads; t++)
        free(parts[t].scratch);
    free(parts);
    free(ids);
    free(started);
    return rc;
}

/* ---- the kernel: operands, shapes, dispatch ---- */

int fy_cpu_matmul(const fy_kernel_call *call, fy_matmul_isa isa, fy_error *err)
{
    fy_matmul_operands mo;
    int rc = fy_matmul_check(call, &mo, err);
    if (rc < 0) return rc;
    const fy_cpu_operand a = mo.a, b = mo.b, c = mo.c;
    const uint64_t m = mo.m, k = mo.k, n = mo.n, mn = m * n; /* checked not to overflow */
    char label[160];
    fy_cpu_op_label(call, label, sizeof label);

    if (isa == FY_MATMUL_ISA_AUTO)
        isa = fy_cpu_matmul_isa_available(FY_MATMUL_ISA_AVX2) ? FY_MATMUL_ISA_AVX2
                                                              : FY_MATMUL_ISA_PORTABLE;
    if (!fy_cpu_matmul_isa_available(isa))
        return fy_error_set(err, FY_EUNSUPPORTED, "%s: this CPU lacks the requested instructions",
                            label);
    matmul_job job = {
        .a = a.data,
        .b = b.data,
        .c = c.data,
        .a_dtype = a.dtype,
        .b_dtype = b.dtype,
        .c_dtype = c.dtype,
        .m = (size_t)m,
        .n = (size_t)n,
        .k = (size_t)k,
        .ukernel = ukernel_portable,
    };
#if FY_MATMUL_HAVE_X86
    if (isa == FY_MATMUL_ISA_AVX2) job.ukernel = ukernel_avx2;
#endif
    if (mn == 0) return 0;
    if (k == 0) { /* an empty sum: +0 in f32 and in bf16 is all zero bits */
        memset(c.data, 0, c.size);
        return 0;
    }
    return run_job(call, &job, err);
}

int fy_cpu_kernel_matmul(const fy_kernel_call *call, fy_error *err)
{
    return fy_cpu_matmul(call, FY_MATMUL_ISA_AUTO, err);
}
