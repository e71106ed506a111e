/* engine/cuda/cuda_launch.h — launchers of the device code in cuda_launch.cu (private to
 * engine/cuda/). They enqueue on the given stream and return the launch's error; operands are
 * checked by their callers in cuda_kernels.c. bf16 flags: 1 for bf16 elements, 0 for f32. */
#ifndef FERRY_ENGINE_CUDA_LAUNCH_H
#define FERRY_ENGINE_CUDA_LAUNCH_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What the spin pattern holds, as the CPU spin kernel decides it from the output's dtype. */
enum { FY_CUDA_PATTERN_F32 = 0, FY_CUDA_PATTERN_BF16 = 1, FY_CUDA_PATTERN_BYTES = 2 };

cudaError_t fy_cuda_launch_relu(const void *x, int x_bf16, void *y, int y_bf16, uint64_t n,
                                cudaStream_t stream);
cudaError_t fy_cuda_launch_add(const void *a, int a_bf16, const void *b, int b_bf16, void *c,
                               int c_bf16, uint64_t n, cudaStream_t stream);
/* Writes size bytes of the spin pattern drawn from seed (crc32c(op name) << 32 | output). */
cudaError_t fy_cuda_launch_spin_fill(void *out, uint64_t size, uint64_t seed, int kind,
                                     cudaStream_t stream);
/* Keeps the stream busy for ns nanoseconds of the device's clock. */
cudaError_t fy_cuda_launch_spin_wait(uint64_t ns, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
