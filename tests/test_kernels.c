/* CPU kernels: matmul, relu, add and copy against a double-precision reference on small
 * shapes and every f32/bf16 mix, matmul giving the same bits across threads and inner loops,
 * and every refusal (counts, shapes, sizes, dtypes, overlap) naming the op and the tensor and
 * leaving the output untouched; spin's timing and output pattern. Tensors and ops are built
 * directly as structs. */
#include "kernel_fixtures.h"

#include <time.h>

/* ---- matmul ---- */

typedef struct mm {
    fy_tensor ta, tb, tc;
    fy_kernel_buffer in[2], out[1];
    fy_op op;
    fy_kernel_call call;
    size_t m, k, n;
} mm;

static void mm_setup(mm *x, size_t m, size_t k, size_t n, fy_dtype da, fy_dtype db, fy_dtype dc)
{
    x->m = m;
    x->k = k;
    x->n = n;
    x->ta = tensor("A", da, 2, m, k, 0);
    x->tb = tensor("B", db, 2, k, n, 0);
    x->tc = tensor("C", dc, 2, m, n, 0);
    fill_random(attach(&x->in[0], &x->ta), da, m * k);
    fill_random(attach(&x->in[1], &x->tb), db, k * n);
    attach(&x->out[0], &x->tc);
    x->call = make_call(&x->op, "matmul", x->in, 2, x->out, 1);
}

static void mm_free(mm *x)
{
    free(x->in[0].data);
    free(x->in[1].data);
    free(x->out[0].data);
}

static void mm_check(const mm *x)
{
    const void *a = x->in[0].data, *b = x->in[1].data, *c = x->out[0].data;
    double tol = tolerance(x->tc.dtype);
    for (size_t i = 0; i < x->m; i++)
        for (size_t j = 0; j < x->n; j++) {
            double ref = 0, mag = 0;
            for (size_t k = 0; k < x->k; k++) {
                double p = get(a, x->ta.dtype, i * x->k + k) * get(b, x->tb.dtype, k * x->n + j);
                ref += p;
                mag += fabs(p);
            }
            double got = get(c, x->tc.dtype, i * x->n + j);
            if (fabs(got - ref) > tol * mag + 1e-30)
                fail_msg("C[%zu,%zu] of %zux%zux%zu = %.9g, reference %.9g", i, j, x->m, x->k, x->n,
                         got, ref);
        }
}

static size_t isa_list(fy_matmul_isa isas[2])
{
    size_t n = 0;
    isas[n++] = FY_MATMUL_ISA_PORTABLE;
    if (fy_cpu_matmul_isa_available(FY_MATMUL_ISA_AVX2))
        isas[n++] = FY_MATMUL_ISA_AVX2;
    else
        print_message("note: no AVX2+FMA here; testing the portable matmul only\n");
    return n;
}

static void run_ok(const fy_kernel_call *call, fy_matmul_isa isa)
{
    fy_error err = {0};
    if (fy_cpu_matmul(call, isa, &err) != 0) fail_msg("matmul refused: %s", err.message);
}

/* Shapes that leave partial register tiles and cross every block edge: depth past one block
 * (K > 256), columns past one block (N > 1024), rows past one block (M > 96). */
static void test_matmul_f32_matches_reference_on_odd_shapes(void **state)
{
    (void)state;
    static const size_t shapes[][3] = {{1, 1, 1},    {3, 5, 7},   {65, 129, 33}, {7, 300, 20},
                                       {2, 9, 1030}, {200, 3, 5}, {6, 16, 16},   {1, 513, 17}};
    fy_matmul_isa isas[2];
    size_t nisa = isa_list(isas);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t i = 0; i < nisa; i++)
            for (unsigned threads = 1; threads <= 2; threads++) {
                mm x;
                mm_setup(&x, shapes[s][0], shapes[s][1], shapes[s][2], FY_DTYPE_F32, FY_DTYPE_F32,
                         FY_DTYPE_F32);
                x.call.threads = threads;
                run_ok(&x.call, isas[i]);
                mm_check(&x);
                mm_free(&x);
            }
}

static void test_matmul_mixed_dtypes_match_reference(void **state)
{
    (void)state;
    static const fy_dtype mixes[][3] = {
        {FY_DTYPE_BF16, FY_DTYPE_BF16, FY_DTYPE_BF16}, {FY_DTYPE_BF16, FY_DTYPE_F32, FY_DTYPE_F32},
        {FY_DTYPE_F32, FY_DTYPE_BF16, FY_DTYPE_BF16},  {FY_DTYPE_BF16, FY_DTYPE_BF16, FY_DTYPE_F32},
        {FY_DTYPE_F32, FY_DTYPE_F32, FY_DTYPE_BF16},
    };
    fy_matmul_isa isas[2];
    size_t nisa = isa_list(isas);
    for (size_t mix = 0; mix < sizeof mixes / sizeof mixes[0]; mix++)
        for (size_t i = 0; i < nisa; i++) {
            mm x;
            mm_setup(&x, 65, 129, 33, mixes[mix][0], mixes[mix][1], mixes[mix][2]);
            run_ok(&x.call, isas[i]);
            mm_check(&x);
            mm_free(&x);
        }
}

/* The engine compares offloaded and resident runs bitwise: the same inputs must give the
 * same bits whatever the thread count and inner loop. Shapes large enough to use threads,
 * split by rows and by columns. */
static void test_matmul_is_bitwise_deterministic_across_threads_and_isas(void **state)
{
    (void)state;
    static const size_t shapes[][3] = {{200, 300, 150}, {6, 700, 2000}};
    static const fy_dtype outs[] = {FY_DTYPE_F32, FY_DTYPE_BF16};
    fy_matmul_isa isas[2];
    size_t nisa = isa_list(isas);
    for (size_t s = 0; s < 2; s++)
        for (size_t o = 0; o < 2; o++) {
            mm x;
            mm_setup(&x, shapes[s][0], shapes[s][1], shapes[s][2], FY_DTYPE_F32, FY_DTYPE_BF16,
                     outs[o]);
            /* The split really happens at these sizes. */
            x.call.threads = 2;
            assert_int_equal(fy_cpu_threads(&x.call, 2.0 * x.m * x.k * x.n, 1000), 2);
            x.call.threads = 1;
            run_ok(&x.call, isas[nisa - 1]);
            uint8_t *first = malloc(x.tc.size);
            assert_non_null(first);
            memcpy(first, x.out[0].data, x.tc.size);
            for (size_t i = 0; i < nisa; i++)
                for (unsigned threads = 1; threads <= 3; threads++) {
                    memset(x.out[0].data, 0, x.tc.size);
                    x.call.threads = threads;
                    run_ok(&x.call, isas[i]);
                    assert_memory_equal(first, x.out[0].data, x.tc.size);
                }
            mm_check(&x);
            free(first);
            mm_free(&x);
        }
}

static void test_matmul_flattens_leading_dims_and_accepts_sizeonly_c(void **state)
{
    (void)state;
    mm x;
    mm_setup(&x, 6, 5, 4, FY_DTYPE_F32, FY_DTYPE_F32, FY_DTYPE_F32);
    x.ta = tensor("A", FY_DTYPE_F32, 3, 2, 3, 5); /* [2, 3, 5] reads as [6, 5] */
    x.tc = tensor("C", FY_DTYPE_F32, 3, 2, 3, 4);
    run_ok(&x.call, FY_MATMUL_ISA_AUTO);
    mm_check(&x);
    x.tc = tensor("C", FY_DTYPE_NONE, 0, 6 * 4 * 4, 0, 0); /* size-only, read as f32 */
    run_ok(&x.call, FY_MATMUL_ISA_AUTO);
    mm_check(&x);
    x.ta = tensor("A", FY_DTYPE_NONE, 2, 6, 5, 0); /* shape without dtype: f32 */
    run_ok(&x.call, FY_MATMUL_ISA_AUTO);
    mm_check(&x);
    mm_free(&x);

    mm v; /* rank-1 A is a single row */
    mm_setup(&v, 1, 8, 3, FY_DTYPE_F32, FY_DTYPE_F32, FY_DTYPE_F32);
    v.ta = tensor("A", FY_DTYPE_F32, 1, 8, 0, 0);
    run_ok(&v.call, FY_MATMUL_ISA_AUTO);
    mm_check(&v);
    mm_free(&v);
}

static void test_matmul_empty_depth_gives_zeros(void **state)
{
    (void)state;
    mm x;
    mm_setup(&x, 4, 0, 3, FY_DTYPE_F32, FY_DTYPE_F32, FY_DTYPE_BF16);
    memset(x.out[0].data, 0x7f, x.tc.size);
    run_ok(&x.call, FY_MATMUL_ISA_AUTO);
    for (size_t i = 0; i < 12; i++)
        assert_int_equal(((uint16_t *)x.out[0].data)[i], 0);
    mm_free(&x);
    mm e; /* M = 0: nothing to write, nothing to refuse */
    mm_setup(&e, 0, 4, 3, FY_DTYPE_F32, FY_DTYPE_F32, FY_DTYPE_F32);
    run_ok(&e.call, FY_MATMUL_ISA_AUTO);
    mm_free(&e);
}

static void test_matmul_refuses_bad_shapes_and_sizes(void **state)
{
    (void)state;
    mm x;
    mm_setup(&x, 4, 5, 3, FY_DTYPE_F32, FY_DTYPE_F32, FY_DTYPE_F32);
    free(x.out[0].data); /* room for the larger C sizes tried below */
    x.out[0].data = calloc(1, 256);
    assert_non_null(x.out[0].data);
    fy_tensor good_a = x.ta, good_b = x.tb, good_c = x.tc;

    x.ta = tensor("A", FY_DTYPE_F32, 0, good_a.size, 0, 0); /* size-only A */
    expect_refused(fy_cpu_kernel_matmul, &x.call, FY_EINVAL, "'A'", "no shape");
    x.ta = good_a;
    x.tb = tensor("B", FY_DTYPE_F32, 0, good_b.size, 0, 0);
    expect_refused(fy_cpu_kernel_matmul, &x.call, FY_EINVAL, "'B'", "no shape");
    x.tb = tensor("B", FY_DTYPE_F32, 1, 15, 0, 0); /* rank 1 B */
    expect_refused(fy_cpu_kernel_matmul, &x.call, FY_EINVAL, "'B'", "[K, N]");
    x.tb = tensor("B", FY_DTYPE_F32, 2, 3, 5, 0); /* [3, 5]: inner dims differ */
    expect_refused(fy_cpu_kernel_matmul, &x.call, FY_EINVAL, "inner dimensions", "[4, 5]");
    x.tb = good_b;

    x.ta.size = good_a.size - 4; /* shape says 80 bytes */
    x.in[0].size = x.ta.size;
    expect_refused(fy_cpu_kernel_matmul, &x.call, FY_EINVAL, "'A'", "shape [4, 5]");
    x.ta = good_a;
    x.in[0].size = good_a.size + 4; /* buffer disagrees with the tensor */
    expect_refused(fy_cpu_kernel_matmul, &x.call, FY_EINVAL, "'A'", "bytes");
    x.in[0].size = good_a.size;

    x.tc = tensor("C", FY_DTYPE_F32, 2, 4, 4, 0); /* [4, 4] for a [4, 3] product */
    x.out[0].size = x.tc.size;
    expect_refused(fy_cpu_kernel_matmul, &x.call, FY_EINVAL, "'C'", "[4, 3]");
    x.tc = tensor("C", FY_DTYPE_F32, 2, 3, 4, 0); /* same count, wrong shape */
    x.out[0].size = x.tc.size;
    expect_refused(fy_cpu_kernel_matmul, &x.call, FY_EINVAL, "'C'", "[3, 4]");
    x.tc = tensor("C", FY_DTYPE_NONE, 0, 40, 0, 0); /* size-only, 10 f32 for 12 */
    x.out[0].size = 40;
    expect_refused(fy_cpu_kernel_matmul, &x.call, FY_EINVAL, "'C'", "10 elements");
    x.tc = good_c;
    x.out[0].size = good_c.size;

    x.ta.rank = FY_MAX_RANK + 1;
    expect_refused(fy_cpu_kernel_matmul, &x.call, FY_EINVAL, "'A'", "rank 9");
    x.ta = good_a;
    x.ta.shape[0] = 1ull << 40; /* shape product overflows */
    x.ta.shape[1] = 1ull << 40;
    expect_refused(fy_cpu_kernel_matmul, &x.call, FY_EINVAL, "'A'", "more than");
    x.ta = good_a;
    mm_free(&x);

    /* Empty depth with M x N past 64 bits: sizes are all 0 but C cannot exist. */
    mm big;
    mm_setup(&big, 0, 0, 0, FY_DTYPE_F32, FY_DTYPE_F32, FY_DTYPE_F32);
    big.ta = tensor("A", FY_DTYPE_F32, 2, 1ull << 33, 0, 0);
    big.tb = tensor("B", FY_DTYPE_F32, 2, 0, 1ull << 33, 0);
    expect_refused(fy_cpu_kernel_matmul, &big.call, FY_ERANGE, "too large", NULL);
    mm_free(&big);
}

static void test_matmul_refuses_bad_dtypes(void **state)
{
    (void)state;
    mm x;
    mm_setup(&x, 4, 4, 4, FY_DTYPE_F32, FY_DTYPE_F32, FY_DTYPE_F32);
    x.tb.dtype = FY_DTYPE_I32; /* same width: only the dtype is wrong */
    expect_refused(fy_cpu_kernel_matmul, &x.call, FY_EUNSUPPORTED, "'B'", "dtype i32");
    x.tb.dtype = FY_DTYPE_F32;
    x.tc.dtype = (fy_dtype)99;
    expect_refused(fy_cpu_kernel_matmul, &x.call, FY_EINVAL, "'C'", "unknown dtype");
    x.tc.dtype = FY_DTYPE_F32;
    fy_error err = {0};
    assert_int_equal(fy_cpu_matmul(&x.call, (fy_matmul_isa)99, &err), FY_EUNSUPPORTED);
    assert_non_null(strstr(err.message, "'op0'"));
    assert_false(fy_cpu_matmul_isa_available((fy_matmul_isa)99));
    mm_free(&x);
}

static void test_matmul_refuses_wrong_operand_counts_and_overlap(void **state)
{
    (void)state;
    mm x;
    mm_setup(&x, 4, 4, 4, FY_DTYPE_F32, FY_DTYPE_F32, FY_DTYPE_F32);
    fy_kernel_buffer three[3] = {x.in[0], x.in[1], x.in[1]};
    fy_op op3;
    fy_kernel_call c3 = make_call(&op3, "matmul", three, 3, x.out, 1);
    expect_refused(fy_cpu_kernel_matmul, &c3, FY_EINVAL, "reads 3", "[A, B] -> [C]");
    fy_kernel_buffer two_out[2] = {x.out[0], x.out[0]};
    fy_kernel_call c2 = make_call(&op3, "matmul", x.in, 2, two_out, 2);
    expect_refused(fy_cpu_kernel_matmul, &c2, FY_EINVAL, "writes 2", NULL);

    x.call.input_count = 1; /* the call disagrees with its op */
    expect_refused(fy_cpu_kernel_matmul, &x.call, FY_EINVAL, "2 reads", NULL);
    x.call.input_count = 2;
    x.call.inputs = NULL;
    expect_refused(fy_cpu_kernel_matmul, &x.call, FY_EINVAL, "no buffer", NULL);
    x.call.inputs = x.in;

    void *data = x.in[1].data;
    x.in[1].data = NULL;
    expect_refused(fy_cpu_kernel_matmul, &x.call, FY_EINVAL, "'B'", "no data");
    x.in[1].data = data;

    void *c_data = x.out[0].data;
    x.out[0].data = x.in[0].data; /* C over A: cannot run in place */
    fy_error err = {0};
    assert_int_equal(fy_cpu_kernel_matmul(&x.call, &err), FY_EINVAL);
    assert_non_null(strstr(err.message, "shares memory with 'A'"));
    x.out[0].data = c_data;

    fy_kernel_call none = {0};
    assert_int_equal(fy_cpu_kernel_matmul(&none, &err), FY_EINVAL);
    assert_non_null(strstr(err.message, "without an op"));
    mm_free(&x);
}

/* ---- relu, add, copy ---- */

typedef struct ew {
    fy_tensor t[3];
    fy_kernel_buffer in[2], out[1];
    fy_op op;
    fy_kernel_call call;
} ew;

/* An elementwise call: nin inputs of the given dtypes, one output; count elements each. */
static void ew_setup(ew *x, const char *kind, size_t nin, const fy_dtype *dt, size_t count)
{
    static const char *names[3] = {"X", "Z", "Y"};
    for (size_t i = 0; i <= nin; i++) {
        x->t[i] = tensor(names[i == nin ? 2 : i], dt[i], 1, count, 0, 0);
        fy_kernel_buffer *b = i < nin ? &x->in[i] : &x->out[0];
        void *p = attach(b, &x->t[i]);
        if (i < nin) fill_random(p, dt[i] == FY_DTYPE_NONE ? FY_DTYPE_F32 : dt[i], count);
    }
    x->call = make_call(&x->op, kind, x->in, nin, x->out, 1);
}

static void ew_free(ew *x, size_t nin)
{
    for (size_t i = 0; i < nin; i++)
        free(x->in[i].data);
    free(x->out[0].data);
}

static fy_dtype as_float(fy_dtype d)
{
    return d == FY_DTYPE_NONE ? FY_DTYPE_F32 : d;
}

static void test_relu_and_add_match_reference_in_every_dtype_mix(void **state)
{
    (void)state;
    static const fy_dtype ds[] = {FY_DTYPE_F32, FY_DTYPE_BF16, FY_DTYPE_NONE};
    size_t count = 2500; /* crosses the kernels' 1024-element chunks */
    for (size_t i = 0; i < 3; i++)
        for (size_t o = 0; o < 3; o++) {
            fy_dtype dt[2] = {ds[i], ds[o]};
            ew r;
            ew_setup(&r, "relu", 1, dt, count);
            assert_int_equal(fy_cpu_kernel_relu(&r.call, NULL), 0);
            for (size_t e = 0; e < count; e++) {
                double v = get(r.in[0].data, as_float(ds[i]), e);
                double want = v > 0 ? v : 0, got = get(r.out[0].data, as_float(ds[o]), e);
                assert_true(fabs(got - want) <= tolerance(as_float(ds[o])) * fabs(want));
            }
            ew_free(&r, 1);
            for (size_t j = 0; j < 3; j++) {
                fy_dtype dt3[3] = {ds[i], ds[j], ds[o]};
                ew a;
                ew_setup(&a, "add", 2, dt3, count);
                assert_int_equal(fy_cpu_kernel_add(&a.call, NULL), 0);
                for (size_t e = 0; e < count; e++) {
                    double x = get(a.in[0].data, as_float(ds[i]), e);
                    double y = get(a.in[1].data, as_float(ds[j]), e);
                    double got = get(a.out[0].data, as_float(ds[o]), e);
                    assert_true(fabs(got - (x + y)) <=
                                tolerance(as_float(ds[o])) * (fabs(x) + fabs(y)));
                }
                ew_free(&a, 2);
            }
        }
}

static void test_relu_passes_nan_and_clears_negative_zero(void **state)
{
    (void)state;
    fy_dtype dt[2] = {FY_DTYPE_F32, FY_DTYPE_F32};
    ew r;
    ew_setup(&r, "relu", 1, dt, 4);
    float *x = r.in[0].data, *y = r.out[0].data;
    x[0] = NAN;
    x[1] = -0.0f;
    x[2] = -INFINITY;
    x[3] = INFINITY;
    assert_int_equal(fy_cpu_kernel_relu(&r.call, NULL), 0);
    assert_true(isnan(y[0]));
    assert_true(y[1] == 0.0f && !signbit(y[1]));
    assert_true(y[2] == 0.0f);
    assert_true(isinf(y[3]) && y[3] > 0);
    ew_free(&r, 1);
}

static void test_elementwise_runs_in_place_on_the_same_buffer(void **state)
{
    (void)state;
    fy_dtype dt[3] = {FY_DTYPE_BF16, FY_DTYPE_BF16, FY_DTYPE_BF16};
    ew r;
    ew_setup(&r, "relu", 1, dt, 3000);
    uint16_t *copy = malloc(3000 * 2);
    assert_non_null(copy);
    memcpy(copy, r.in[0].data, 3000 * 2);
    free(r.out[0].data);
    r.out[0].data = r.in[0].data;
    assert_int_equal(fy_cpu_kernel_relu(&r.call, NULL), 0);
    for (size_t e = 0; e < 3000; e++) {
        float v = fy_bf16_to_f32(copy[e]);
        assert_true(get(r.in[0].data, FY_DTYPE_BF16, e) == (v > 0 ? v : 0));
    }
    free(copy);
    free(r.in[0].data);

    ew a; /* c = a + c */
    ew_setup(&a, "add", 2, dt, 100);
    free(a.out[0].data);
    a.out[0].data = a.in[1].data;
    uint16_t before_a = ((uint16_t *)a.in[0].data)[7], before_b = ((uint16_t *)a.in[1].data)[7];
    assert_int_equal(fy_cpu_kernel_add(&a.call, NULL), 0);
    assert_int_equal(((uint16_t *)a.in[1].data)[7],
                     fy_bf16_from_f32(fy_bf16_to_f32(before_a) + fy_bf16_to_f32(before_b)));
    free(a.in[0].data);
    free(a.in[1].data);
}

static void test_elementwise_refusals_name_op_and_tensor(void **state)
{
    (void)state;
    fy_dtype f32s[3] = {FY_DTYPE_F32, FY_DTYPE_F32, FY_DTYPE_F32};
    ew r;
    ew_setup(&r, "relu", 1, f32s, 8);
    r.t[1] = tensor("Y", FY_DTYPE_F32, 1, 7, 0, 0); /* 7 elements for 8 */
    r.out[0].size = r.t[1].size;
    expect_refused(fy_cpu_kernel_relu, &r.call, FY_EINVAL, "'Y' has 7", NULL);
    r.t[1] = tensor("Y", FY_DTYPE_F32, 1, 8, 0, 0);
    r.out[0].size = r.t[1].size;
    r.t[0].dtype = FY_DTYPE_I32;
    expect_refused(fy_cpu_kernel_relu, &r.call, FY_EUNSUPPORTED, "'X'", "dtype i32");
    r.t[0].dtype = FY_DTYPE_F16; /* shape [8] in f16 is 16 bytes, the tensor says 32 */
    expect_refused(fy_cpu_kernel_relu, &r.call, FY_EINVAL, "'X'", "f16");
    r.t[0].dtype = (fy_dtype)-3;
    expect_refused(fy_cpu_kernel_relu, &r.call, FY_EINVAL, "'X'", "unknown dtype");
    r.t[0] = tensor("X", FY_DTYPE_NONE, 0, 30, 0, 0); /* 30 bytes: not whole f32 values */
    r.in[0].size = 30;
    expect_refused(fy_cpu_kernel_relu, &r.call, FY_EINVAL, "'X'", "no dtype");
    r.t[0] = tensor("X", FY_DTYPE_NONE, 1, 8, 0, 0);
    r.t[0].size = 36; /* shape [8] read as f32 is 32 bytes */
    r.in[0].size = 36;
    expect_refused(fy_cpu_kernel_relu, &r.call, FY_EINVAL, "'X'", "shape [8]");
    r.t[0] = tensor("X", FY_DTYPE_BF16, 0, 31, 0, 0); /* odd bytes of bf16 */
    r.in[0].size = 31;
    expect_refused(fy_cpu_kernel_relu, &r.call, FY_EINVAL, "'X'", "bf16");
    r.t[0] = tensor("X", FY_DTYPE_F32, 1, 8, 0, 0);
    r.in[0].size = 32;
    /* Partly overlapping input and output. */
    void *out = r.out[0].data;
    r.out[0].data = (float *)r.in[0].data + 1;
    r.t[1].size = r.out[0].size = 28;
    r.t[1].shape[0] = 7;
    r.t[0].size = r.in[0].size = 28;
    r.t[0].shape[0] = 7;
    fy_error err = {0};
    assert_int_equal(fy_cpu_kernel_relu(&r.call, &err), FY_EINVAL);
    assert_non_null(strstr(err.message, "overlaps"));
    r.out[0].data = out;
    /* Size-only buffers without a tensor description are named by position. */
    r.in[0].tensor = NULL;
    r.in[0].size = 6;
    expect_refused(fy_cpu_kernel_relu, &r.call, FY_EINVAL, "input 1", NULL);
    ew_free(&r, 1);

    ew a;
    ew_setup(&a, "add", 2, f32s, 8);
    a.t[1] = tensor("Z", FY_DTYPE_F32, 1, 9, 0, 0);
    a.in[1].size = a.t[1].size;
    free(a.in[1].data);
    a.in[1].data = calloc(1, a.t[1].size);
    expect_refused(fy_cpu_kernel_add, &a.call, FY_EINVAL, "'X' has 8", "'Z' has 9");
    a.t[1] = tensor("Z", FY_DTYPE_F32, 1, 8, 0, 0);
    a.in[1].size = a.t[1].size;
    a.t[2] = tensor("Y", FY_DTYPE_BF16, 1, 9, 0, 0);
    a.out[0].size = a.t[2].size;
    expect_refused(fy_cpu_kernel_add, &a.call, FY_EINVAL, "'Y' has 9", NULL);
    a.call.input_count = a.op.read_count = 1;
    expect_refused(fy_cpu_kernel_add, &a.call, FY_EINVAL, "reads 1", "[A, B] -> [C]");
    ew_free(&a, 2);
}

static void test_copy_moves_bytes_and_refuses_size_mismatch(void **state)
{
    (void)state;
    fy_tensor tx = tensor("X", FY_DTYPE_U8, 0, 1001, 0, 0),
              ty = tensor("Y", FY_DTYPE_NONE, 0, 1001, 0, 0);
    fy_kernel_buffer in, out;
    uint8_t *x = attach(&in, &tx), *y = attach(&out, &ty);
    for (size_t i = 0; i < 1001; i++)
        x[i] = (uint8_t)rng_next();
    fy_op op;
    fy_kernel_call call = make_call(&op, "copy", &in, 1, &out, 1);
    assert_int_equal(fy_cpu_kernel_copy(&call, NULL), 0);
    assert_memory_equal(x, y, 1001);
    out.data = in.data; /* copying onto itself changes nothing */
    assert_int_equal(fy_cpu_kernel_copy(&call, NULL), 0);
    out.data = y;
    ty = tensor("Y", FY_DTYPE_NONE, 0, 1000, 0, 0);
    out.size = 1000;
    expect_refused(fy_cpu_kernel_copy, &call, FY_EINVAL, "'X' has 1001", "'Y' has 1000");
    out.size = 1001; /* the buffer disagrees with its tensor */
    expect_refused(fy_cpu_kernel_copy, &call, FY_EINVAL, "'Y'", "1001 bytes");
    fy_kernel_call two = make_call(&op, "copy", &in, 1, &out, 0);
    expect_refused(fy_cpu_kernel_copy, &two, FY_EINVAL, "writes 0", "[X] -> [Y]");
    free(x);
    free(y);
}

/* ---- spin ---- */

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void test_spin_lasts_its_time_and_writes_a_pattern_of_the_op(void **state)
{
    (void)state;
    fy_tensor tx = tensor("X", FY_DTYPE_F32, 1, 4, 0, 0);
    fy_tensor tf = tensor("F", FY_DTYPE_F32, 1, 3000, 0, 0);
    fy_tensor tb = tensor("H", FY_DTYPE_BF16, 1, 5001, 0, 0);
    fy_tensor tu = tensor("U", FY_DTYPE_U8, 0, 77, 0, 0);
    fy_kernel_buffer in[1], out[3];
    void *x = attach(&in[0], &tx);
    attach(&out[0], &tf);
    attach(&out[1], &tb);
    attach(&out[2], &tu);
    fy_op op;
    fy_kernel_call call = make_call(&op, "spin", in, 1, out, 3);
    call.spin_seconds = 0.05;
    double t0 = seconds_now();
    assert_int_equal(fy_cpu_kernel_spin(&call, NULL), 0);
    double took = seconds_now() - t0;
    assert_true(took >= 0.05);
    assert_true(took < 2.0); /* loose: the machine is shared */

    const float *f = out[0].data;
    for (size_t i = 0; i < 3000; i++)
        assert_true(f[i] >= -1.0f && f[i] < 1.0f);
    for (size_t i = 0; i < 5001; i++) {
        float h = get(out[1].data, FY_DTYPE_BF16, i);
        assert_true(h >= -1.0f && h < 1.0f);
    }
    /* The same op writes the same bytes; another op name, other bytes. */
    uint8_t *keep[3];
    for (int i = 0; i < 3; i++) {
        keep[i] = malloc(out[i].size);
        assert_non_null(keep[i]);
        memcpy(keep[i], out[i].data, out[i].size);
        memset(out[i].data, 0, out[i].size);
    }
    call.spin_seconds = 0;
    assert_int_equal(fy_cpu_kernel_spin(&call, NULL), 0);
    for (int i = 0; i < 3; i++)
        assert_memory_equal(keep[i], out[i].data, out[i].size);
    assert_memory_not_equal(keep[0], keep[1], 64); /* outputs differ from each other */
    op.name = "op1";
    assert_int_equal(fy_cpu_kernel_spin(&call, NULL), 0);
    assert_memory_not_equal(keep[0], out[0].data, out[0].size);
    op.name = "op0";
    /* Inputs are never touched. */
    assert_memory_equal(x, (float[4]){0}, 16);
    for (int i = 0; i < 3; i++) {
        free(keep[i]);
        free(out[i].data);
    }
    free(x);
}

static void test_spin_refuses_bad_time_and_buffers(void **state)
{
    (void)state;
    fy_tensor ty = tensor("Y", FY_DTYPE_F32, 1, 4, 0, 0);
    fy_kernel_buffer out;
    attach(&out, &ty);
    fy_op op;
    fy_kernel_call call = make_call(&op, "spin", NULL, 0, &out, 1);
    call.spin_seconds = -1;
    expect_refused(fy_cpu_kernel_spin, &call, FY_EINVAL, "-1 seconds", NULL);
    call.spin_seconds = NAN;
    expect_refused(fy_cpu_kernel_spin, &call, FY_EINVAL, "finite", NULL);
    call.spin_seconds = 0;
    out.size = 8;
    expect_refused(fy_cpu_kernel_spin, &call, FY_EINVAL, "'Y'", NULL);
    out.size = 16;
    call.output_count = 0; /* disagrees with the op's one write */
    expect_refused(fy_cpu_kernel_spin, &call, FY_EINVAL, "1 writes", NULL);
    fy_kernel_call none = {0};
    fy_error err = {0};
    assert_int_equal(fy_cpu_kernel_spin(&none, &err), FY_EINVAL);
    /* A backend's own limit on the time (cuda's is 1e6 s), in the shared check. */
    call.output_count = 1;
    call.spin_seconds = 2;
    assert_int_equal(fy_spin_check(&call, 1, &err), FY_ERANGE);
    assert_non_null(strstr(err.message, "spin for 2 seconds is more than 1"));
    assert_int_equal(fy_spin_check(&call, 2, &err), 0);
    free(out.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_f32_matches_reference_on_odd_shapes),
        cmocka_unit_test(test_matmul_mixed_dtypes_match_reference),
        cmocka_unit_test(test_matmul_is_bitwise_deterministic_across_threads_and_isas),
        cmocka_unit_test(test_matmul_flattens_leading_dims_and_accepts_sizeonly_c),
        cmocka_unit_test(test_matmul_empty_depth_gives_zeros),
        cmocka_unit_test(test_matmul_refuses_bad_shapes_and_sizes),
        cmocka_unit_test(test_matmul_refuses_bad_dtypes),
        cmocka_unit_test(test_matmul_refuses_wrong_operand_counts_and_overlap),
        cmocka_unit_test(test_relu_and_add_match_reference_in_every_dtype_mix),
        cmocka_unit_test(test_relu_passes_nan_and_clears_negative_zero),
        cmocka_unit_test(test_elementwise_runs_in_place_on_the_same_buffer),
        cmocka_unit_test(test_elementwise_refusals_name_op_and_tensor),
        cmocka_unit_test(test_copy_moves_bytes_and_refuses_size_mismatch),
        cmocka_unit_test(test_spin_lasts_its_time_and_writes_a_pattern_of_the_op),
        cmocka_unit_test(test_spin_refuses_bad_time_and_buffers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
