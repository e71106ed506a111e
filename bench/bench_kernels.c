/* Benchmarks of the CPU kernels and the checksums: matmul GFLOP/s for f32 and bf16 operands
 * with 1 and 2 threads (and the portable inner loop for comparison), CRC-32C and SHA-256
 * GB/s. Usage: bench_kernels [N] (matmul N x N x N, default 1024). Results go to
 * docs/performance.md by hand. */
#include "core/hash.h"
#include "engine/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static fy_tensor square(const char *name, fy_dtype dtype, uint64_t n)
{
    uint64_t width = dtype == FY_DTYPE_BF16 ? 2 : 4;
    return (fy_tensor){
        .name = name, .size = n * n * width, .dtype = dtype, .rank = 2, .shape = {n, n}};
}

static void fill(void *data, uint64_t size)
{
    uint8_t *p = data;
    uint32_t s = 12345;
    for (uint64_t i = 0; i < size; i += 4) {
        s = s * 1664525u + 1013904223u;
        float v = (float)(s >> 8) / 16777216.0f - 0.5f;
        if (i + 4 <= size) memcpy(p + i, &v, 4);
    }
}

/* Best of a few runs, to shrug off the other work on a shared machine. */
static void bench_matmul(uint64_t n, fy_dtype in, fy_dtype out, unsigned threads, fy_matmul_isa isa,
                         const char *what)
{
    fy_tensor ta = square("A", in, n), tb = square("B", in, n), tc = square("C", out, n);
    void *a = malloc(ta.size), *b = malloc(tb.size), *c = malloc(tc.size);
    if (!a || !b || !c) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    fill(a, ta.size);
    fill(b, tb.size);
    if (in == FY_DTYPE_BF16) { /* any bit pattern is a bf16; keep them modest and finite */
        uint16_t *pa = a, *pb = b;
        for (uint64_t i = 0; i < n * n; i++) {
            pa[i] = fy_bf16_from_f32((float)(i % 17) / 16.0f - 0.5f);
            pb[i] = fy_bf16_from_f32((float)(i % 13) / 12.0f - 0.5f);
        }
    }
    uint32_t reads[2] = {0, 1}, writes[1] = {2};
    fy_op op = {.name = "bench",
                .kind = "matmul",
                .reads = reads,
                .read_count = 2,
                .writes = writes,
                .write_count = 1,
                .flops = 2.0 * (double)(n * n * n)};
    fy_kernel_buffer inputs[2] = {{a, ta.size, &ta}, {b, tb.size, &tb}};
    fy_kernel_buffer outputs[1] = {{c, tc.size, &tc}};
    fy_kernel_call call = {.op = &op,
                           .inputs = inputs,
                           .input_count = 2,
                           .outputs = outputs,
                           .output_count = 1,
                           .threads = threads};
    double best = 1e30;
    int reps = n <= 512 ? 5 : 3;
    for (int r = 0; r < reps; r++) {
        fy_error err = {0};
        double t0 = now();
        if (fy_cpu_matmul(&call, isa, &err) < 0) {
            fprintf(stderr, "matmul: %s\n", err.message);
            exit(1);
        }
        double t = now() - t0;
        if (t < best) best = t;
    }
    printf("matmul %4llu^3 %-5s -> %-5s %-9s threads %u: %8.2f ms  %7.1f GFLOP/s\n",
           (unsigned long long)n, in == FY_DTYPE_BF16 ? "bf16" : "f32",
           out == FY_DTYPE_BF16 ? "bf16" : "f32", what, threads, best * 1e3,
           op.flops / best * 1e-9);
    free(a);
    free(b);
    free(c);
}

static void bench_hash(void)
{
    size_t len = 256u << 20;
    uint8_t *buf = malloc(len);
    if (!buf) return;
    fill(buf, len);
    double t0 = now();
    volatile uint32_t sink = fy_crc32c_sw(0, buf, len);
    double tsw = now() - t0;
    printf("crc32c table      : %6.2f GB/s\n", (double)len / tsw * 1e-9);
    if (fy_crc32c_hw_available()) {
        t0 = now();
        sink = fy_crc32c_hw(0, buf, len);
        double thw = now() - t0;
        printf("crc32c sse4.2 x3  : %6.2f GB/s\n", (double)len / thw * 1e-9);
    }
    (void)sink;
    char hex[65];
    t0 = now();
    fy_sha256_hex(buf, 64u << 20, hex);
    printf("sha256            : %6.2f GB/s\n", (double)(64u << 20) / (now() - t0) * 1e-9);
    free(buf);
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1024;
    if (n == 0) {
        fprintf(stderr, "usage: bench_kernels [N]\n");
        return 2;
    }
    const char *best = fy_cpu_matmul_isa_available(FY_MATMUL_ISA_AVX2) ? "avx2" : "portable";
    for (unsigned threads = 1; threads <= 2; threads++) {
        bench_matmul(n, FY_DTYPE_F32, FY_DTYPE_F32, threads, FY_MATMUL_ISA_AUTO, best);
        bench_matmul(n, FY_DTYPE_BF16, FY_DTYPE_BF16, threads, FY_MATMUL_ISA_AUTO, best);
    }
    bench_matmul(n < 512 ? n : 512, FY_DTYPE_F32, FY_DTYPE_F32, 1, FY_MATMUL_ISA_PORTABLE,
                 "portable");
    bench_hash();
    return 0;
}
