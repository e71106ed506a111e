/* The CUDA device code behind the built-in kernels relu, add and spin, and their launchers.
 * Everything here computes what the CPU kernels compute, bit for bit: values are widened to
 * f32, computed in f32 and rounded once with the same round-to-nearest-even (and the same
 * NaN quieting) as engine/bf16.h, and spin writes the CPU's pattern. The launchers only
 * launch; the operand checks and the error messages live in cuda_kernels.c. */
#include "engine/cuda/cuda_launch.h"

#include <stdint.h>

namespace {

const unsigned kThreads = 256;

/* Elements travel as the bits of an f32, so that NaN payloads pass through exactly as on
 * the CPU (float moves on the GPU may canonicalise them). */
__device__ __forceinline__ uint32_t load_bits(const void *p, uint64_t i, int bf16)
{
    if (bf16)
        return (uint32_t)((const uint16_t *)p)[i] << 16;
    return ((const uint32_t *)p)[i];
}

__device__ __forceinline__ bool is_nan(uint32_t bits)
{
    return (bits & 0x7fffffffu) > 0x7f800000u;
}

/* engine/bf16.h's bf16_from_f32, on the device: __float2bfloat16_rn quiets NaNs differently. */
__device__ __forceinline__ uint16_t to_bf16(uint32_t bits)
{
    if (is_nan(bits))
        return (uint16_t)((bits >> 16) | 0x0040u);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

__device__ __forceinline__ void store_bits(void *p, uint64_t i, int bf16, uint32_t bits)
{
    if (bf16)
        ((uint16_t *)p)[i] = to_bf16(bits);
    else
        ((uint32_t *)p)[i] = bits;
}

/* x86's addss on the bits: a NaN operand comes back quieted (the first one if both are),
 * an invalid sum (inf - inf) is the default NaN 0xffc00000; the GPU would give 0x7fffffff. */
__device__ __forceinline__ uint32_t add_like_x86(uint32_t a, uint32_t b)
{
    if (is_nan(a))
        return a | 0x00400000u;
    if (is_nan(b))
        return b | 0x00400000u;
    uint32_t s = __float_as_uint(__fadd_rn(__uint_as_float(a), __uint_as_float(b)));
    return is_nan(s) ? 0xffc00000u : s;
}

/* In place is allowed (y == x, same dtype): each element is read before it is written by
 * the same thread, so a grid-stride loop is safe. */
__global__ void relu_kernel(const void *x, int xb, void *y, int yb, uint64_t n)
{
    for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < n;
         i += (uint64_t)gridDim.x * blockDim.x) {
        uint32_t v = load_bits(x, i, xb);
        bool keep = is_nan(v) || __uint_as_float(v) > 0.0f; /* NaN passes, -0 becomes +0 */
        store_bits(y, i, yb, keep ? v : 0u);
    }
}

__global__ void add_kernel(const void *a, int ab, const void *b, int bb, void *c, int cb,
                           uint64_t n)
{
    for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < n;
         i += (uint64_t)gridDim.x * blockDim.x)
        store_bits(c, i, cb, add_like_x86(load_bits(a, i, ab), load_bits(b, i, bb)));
}

__device__ __forceinline__ uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Byte i of the spin pattern: the CPU draws value j of a 4 KiB block as the (j+1)-th step of
 * splitmix64 from seed, which is mix(seed + (j+1) * golden), so every byte is independent. */
__global__ void spin_fill_kernel(uint8_t *out, uint64_t size, uint64_t seed, int kind)
{
    const uint64_t golden = 0x9e3779b97f4a7c15ull;
    for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < size;
         i += (uint64_t)gridDim.x * blockDim.x) {
        uint64_t p = i % 4096;
        unsigned width = kind == FY_CUDA_PATTERN_F32 ? 4 : kind == FY_CUDA_PATTERN_BF16 ? 2 : 8;
        uint64_t j = p / width;
        uint64_t r = mix(seed + (j + 1) * golden);
        uint64_t value;
        if (kind == FY_CUDA_PATTERN_F32) {
            float v = __fsub_rn(__fdiv_rn((float)(r >> 40), 8388608.0f), 1.0f);
            value = __float_as_uint(v);
        } else if (kind == FY_CUDA_PATTERN_BF16) {
            float v = __fdiv_rn((float)(int8_t)(r >> 56), 128.0f);
            value = to_bf16(__float_as_uint(v));
        } else {
            value = r;
        }
        out[i] = (uint8_t)(value >> (8 * (p % width))); /* little-endian, as memcpy on x86 */
    }
}

__device__ __forceinline__ uint64_t global_ns()
{
    uint64_t t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

/* Occupies the compute stream for ns nanoseconds of the device's clock. One thread is
 * enough: the stream, not the SMs, is what the plan's timing is about. */
__global__ void spin_wait_kernel(uint64_t ns)
{
    uint64_t start = global_ns();
    while (global_ns() - start < ns) {
        __nanosleep(1000);
    }
}

unsigned blocks_for(uint64_t n)
{
    uint64_t b = (n + kThreads - 1) / kThreads;
    if (b > 65536)
        b = 65536; /* grid-stride loops take the rest */
    return b ? (unsigned)b : 1;
}

} // namespace

extern "C" {

cudaError_t fy_cuda_launch_relu(const void *x, int x_bf16, void *y, int y_bf16, uint64_t n,
                                cudaStream_t stream)
{
    if (n == 0)
        return cudaSuccess;
    relu_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, x_bf16, y, y_bf16, n);
    return cudaGetLastError();
}

cudaError_t fy_cuda_launch_add(const void *a, int a_bf16, const void *b, int b_bf16, void *c,
                               int c_bf16, uint64_t n, cudaStream_t stream)
{
    if (n == 0)
        return cudaSuccess;
    add_kernel<<<blocks_for(n), kThreads, 0, stream>>>(a, a_bf16, b, b_bf16, c, c_bf16, n);
    return cudaGetLastError();
}

cudaError_t fy_cuda_launch_spin_fill(void *out, uint64_t size, uint64_t seed, int kind,
                                     cudaStream_t stream)
{
    if (size == 0)
        return cudaSuccess;
    spin_fill_kernel<<<blocks_for(size), kThreads, 0, stream>>>((uint8_t *)out, size, seed, kind);
    return cudaGetLastError();
}

cudaError_t fy_cuda_launch_spin_wait(uint64_t ns, cudaStream_t stream)
{
    if (ns == 0)
        return cudaSuccess;
    spin_wait_kernel<<<1, 1, 0, stream>>>(ns);
    return cudaGetLastError();
}

} // extern "C"
