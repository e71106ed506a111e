/* engine/cuda/cuda_kernels.h — the built-in CUDA kernels and the CUDA error helpers (private
 * to engine/cuda/). The kernels take the same fy_kernel_call as the CPU ones, with buffers in
 * device memory and call->stream a cudaStream_t; they check the whole call (through the CPU
 * kernels' operand checks) before they enqueue anything, and return once work is enqueued. */
#ifndef FERRY_ENGINE_CUDA_KERNELS_H
#define FERRY_ENGINE_CUDA_KERNELS_H

#include "ferry/engine.h"

#include <cuda_runtime_api.h>

/* A cuBLAS handle and its workspace, shared by the matmul calls of one device. The handle is
 * used from the engine's one thread only. */
typedef struct fy_cuda_blas fy_cuda_blas;

int fy_cuda_blas_create(fy_cuda_blas **out, fy_error *err);
void fy_cuda_blas_destroy(fy_cuda_blas *blas);

/* Registers matmul (cuBLAS; user = blas, which must outlive the registry's use), relu, add,
 * copy and spin for the CUDA device. */
int fy_cuda_kernels_register(fy_kernel_registry *reg, fy_cuda_blas *blas, fy_error *err);

int fy_cuda_kernel_matmul(const fy_kernel_call *call, fy_error *err);
int fy_cuda_kernel_relu(const fy_kernel_call *call, fy_error *err);
int fy_cuda_kernel_add(const fy_kernel_call *call, fy_error *err);
int fy_cuda_kernel_copy(const fy_kernel_call *call, fy_error *err);
int fy_cuda_kernel_spin(const fy_kernel_call *call, fy_error *err);

/* Sets err to FY_EDEVICE "<what>: <call> failed: <cudaErrorName> (<description>)" and
 * returns FY_EDEVICE. what names the op or the object (it may be NULL). */
int fy_cuda_fail(fy_error *err, cudaError_t e, const char *call, const char *what);

#endif
