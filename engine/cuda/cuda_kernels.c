/* The built-in CUDA kernels: matmul through cuBLAS, relu, add, copy and spin. Each checks
 * its call with the CPU kernels' operand checks (same rules, same messages), so a call the
 * CPU refuses is refused here too and nothing is enqueued; each enqueues on call->stream and
 * checks every CUDA and cuBLAS call, naming the call and the op. relu, add, copy and spin give
 * the CPU kernels' bits; matmul accumulates in f32 on the tensor cores in cuBLAS's order, so it
 * agrees with the CPU to rounding, and with itself bit for bit on one GPU. */
#include "engine/cuda/cuda_kernels.h"

#include "core/hash.h"
#include "engine/cuda/cuda_launch.h"
#include "engine/kernels.h"

#include <cublas_v2.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLAS_WORKSPACE (32u << 20) /* cuBLAS's recommendation for Hopper */

struct fy_cuda_blas {
    cublasHandle_t handle;
    void *workspace;
};

int fy_cuda_fail(fy_error *err, cudaError_t e, const char *call, const char *what)
{
    return fy_error_set(err, FY_EDEVICE, "%s%s%s failed: %s (%s)", what ? what : "",
                        what ? ": " : "", call, cudaGetErrorName(e), cudaGetErrorString(e));
}

static int blas_fail(fy_error *err, cublasStatus_t s, const char *call, const char *what)
{
    return fy_error_set(err, FY_EDEVICE, "%s: %s failed: %s (%s)", what, call,
                        cublasGetStatusName(s), cublasGetStatusString(s));
}

int fy_cuda_blas_create(fy_cuda_blas **out, fy_error *err)
{
    *out = NULL;
    fy_cuda_blas *b = calloc(1, sizeof *b);
    if (!b) return fy_error_set(err, FY_ENOMEM, "out of memory for the cuBLAS context");
    cublasStatus_t s = cublasCreate(&b->handle);
    if (s != CUBLAS_STATUS_SUCCESS) {
        free(b);
        return blas_fail(err, s, "cublasCreate", "cuda device");
    }
    cudaError_t e = cudaMalloc(&b->workspace, BLAS_WORKSPACE);
    if (e != cudaSuccess) {
        cublasDestroy(b->handle);
        free(b);
        return fy_cuda_fail(err, e, "cudaMalloc of the 32 MiB cuBLAS workspace", "cuda device");
    }
    /* An explicit workspace: cuBLAS would otherwise allocate its own per stream, outside
     * any budget, and results could depend on which it got. */
    if ((s = cublasSetWorkspace(b->handle, b->workspace, BLAS_WORKSPACE)) !=
        CUBLAS_STATUS_SUCCESS) {
        fy_cuda_blas_destroy(b);
        return blas_fail(err, s, "cublasSetWorkspace", "cuda device");
    }
    /* f32 accumulation throughout: no reduced-precision split-K reductions in bf16. */
    if ((s = cublasSetMathMode(b->handle, CUBLAS_DEFAULT_MATH |
                                              CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)) !=
        CUBLAS_STATUS_SUCCESS) {
        fy_cuda_blas_destroy(b);
        return blas_fail(err, s, "cublasSetMathMode", "cuda device");
    }
    *out = b;
    return 0;
}

void fy_cuda_blas_destroy(fy_cuda_blas *blas)
{
    if (!blas) return;
    cublasDestroy(blas->handle);
    cudaFree(blas->workspace);
    free(blas);
}

static int launched(const fy_kernel_call *call, cudaError_t e, const char *what, fy_error *err)
{
    if (e == cudaSuccess) return 0;
    char label[160];
    return fy_cuda_fail(err, e, what, fy_cpu_op_label(call, label, sizeof label));
}

static int no_stream(const fy_kernel_call *call, fy_error *err)
{
    char label[160];
    return fy_error_set(err, FY_EINVAL, "%s: a CUDA kernel needs call->stream",
                        fy_cpu_op_label(call, label, sizeof label));
}

int fy_cuda_kernel_relu(const fy_kernel_call *call, fy_error *err)
{
    fy_cpu_operand x, y;
    int rc = fy_relu_check(call, &x, &y, err);
    if (rc < 0) return rc;
    if (!call->stream) return no_stream(call, err);
    return launched(call,
                    fy_cuda_launch_relu(x.data, x.dtype == FY_DTYPE_BF16, y.data,
                                        y.dtype == FY_DTYPE_BF16, x.count, call->stream),
                    "the relu kernel's launch", err);
}

int fy_cuda_kernel_add(const fy_kernel_call *call, fy_error *err)
{
    fy_cpu_operand a, b, c;
    int rc = fy_add_check(call, &a, &b, &c, err);
    if (rc < 0) return rc;
    if (!call->stream) return no_stream(call, err);
    return launched(call,
                    fy_cuda_launch_add(a.data, a.dtype == FY_DTYPE_BF16, b.data,
                                       b.dtype == FY_DTYPE_BF16, c.data, c.dtype == FY_DTYPE_BF16,
                                       a.count, call->stream),
                    "the add kernel's launch", err);
}

int fy_cuda_kernel_copy(const fy_kernel_call *call, fy_error *err)
{
    fy_cpu_operand x, y;
    int rc = fy_copy_check(call, &x, &y, err);
    if (rc < 0) return rc;
    char label[160];
    fy_cpu_op_label(call, label, sizeof label);
    if (!x.size || x.data == y.data) return 0;
    if (!call->stream) return no_stream(call, err);
    /* cudaMemcpy does not allow overlap: an overlapping move goes in pieces no longer than
     * the distance between the buffers, in the direction that reads each byte before it is
     * overwritten (memmove's semantics, which the CPU kernel has). */
    uintptr_t src = (uintptr_t)x.data, dst = (uintptr_t)y.data;
    uint64_t gap = src > dst ? src - dst : dst - src, piece = gap < x.size ? gap : x.size;
    if (x.size / piece > 65536)
        return fy_error_set(err, FY_EUNSUPPORTED,
                            "%s: %s and %s overlap with only %" PRIu64
                            " bytes between them; too many pieces for a device copy",
                            label, x.name, y.name, gap);
    for (uint64_t done = 0; done < x.size; done += piece) {
        uint64_t n = x.size - done < piece ? x.size - done : piece;
        uint64_t at = src > dst ? done : x.size - done - n; /* forward, or from the end */
        cudaError_t e = cudaMemcpyAsync((char *)y.data + at, (const char *)x.data + at, n,
                                        cudaMemcpyDeviceToDevice, call->stream);
        if (e != cudaSuccess)
            return fy_cuda_fail(err, e, "cudaMemcpyAsync (device to device)", label);
    }
    return 0;
}

int fy_cuda_kernel_spin(const fy_kernel_call *call, fy_error *err)
{
    /* The wait counts nanoseconds in 64 bits: 1e6 s keeps llround far from overflow. */
    int rc = fy_spin_check(call, 1e6, err);
    if (rc < 0) return rc;
    if (!call->stream) return no_stream(call, err);
    const char *name = call->op->name ? call->op->name : "";
    uint64_t name_crc = fy_crc32c(0, name, strlen(name));
    for (size_t i = 0; i < call->output_count; i++) {
        const fy_kernel_buffer *out = &call->outputs[i];
        fy_dtype d = out->tensor ? out->tensor->dtype : FY_DTYPE_NONE;
        int kind = d == FY_DTYPE_F32 || (d == FY_DTYPE_NONE && out->size % 4 == 0)
                       ? FY_CUDA_PATTERN_F32
                   : d == FY_DTYPE_BF16 ? FY_CUDA_PATTERN_BF16
                                        : FY_CUDA_PATTERN_BYTES;
        cudaError_t e =
            fy_cuda_launch_spin_fill(out->data, out->size, name_crc << 32 | i, kind, call->stream);
        if ((rc = launched(call, e, "the spin fill kernel's launch", err)) < 0) return rc;
    }
    return launched(
        call, fy_cuda_launch_spin_wait((uint64_t)llround(call->spin_seconds * 1e9), call->stream),
        "the spin kernel's launch", err);
}

/* ---- matmul ---- */

int fy_cuda_kernel_matmul(const fy_kernel_call *call, fy_error *err)
{
    fy_matmul_operands mo;
    int rc = fy_matmul_check(call, &mo, err);
    if (rc < 0) return rc;
    const fy_cpu_operand a = mo.a, b = mo.b, c = mo.c;
    const uint64_t m = mo.m, k = mo.k, n = mo.n, mn = m * n; /* checked not to overflow */
    char label[160];
    fy_cpu_op_label(call, label, sizeof label);
    /* cuBLAS's GEMM takes both inputs in one type: bf16 x bf16 -> bf16 or f32 on the tensor
     * cores, f32 x f32 -> f32 in full f32 (no TF32, so it agrees with the CPU to f32
     * rounding). Mixed inputs would need a converted copy, which the arena has no room for. */
    char da[32], db[32], dc[32];
    if (a.dtype != b.dtype || (a.dtype == FY_DTYPE_F32 && c.dtype != FY_DTYPE_F32))
        return fy_error_set(err, FY_EUNSUPPORTED,
                            "%s: A (%s) is %s, B (%s) %s and C (%s) %s; the CUDA matmul takes "
                            "bf16 x bf16 -> bf16 or f32, and f32 x f32 -> f32",
                            label, a.name, fy_cpu_dtype_name(a.dtype, da, sizeof da), b.name,
                            fy_cpu_dtype_name(b.dtype, db, sizeof db), c.name,
                            fy_cpu_dtype_name(c.dtype, dc, sizeof dc));
    if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX) {
        char sa[200], sb[200];
        return fy_error_set(err, FY_ERANGE,
                            "%s: A (%s) %s times B (%s) %s has a dimension above 2^31-1, which "
                            "cuBLAS cannot take",
                            label, a.name, fy_cpu_shape_text(a.tensor, sa, sizeof sa), b.name,
                            fy_cpu_shape_text(b.tensor, sb, sizeof sb));
    }
    if (!call->stream) return no_stream(call, err);
    fy_cuda_blas *blas = call->user;
    if (!blas || !blas->handle)
        return fy_error_set(err, FY_EINVAL, "%s: the CUDA matmul has no cuBLAS context", label);
    if (mn == 0) return 0;
    if (k == 0) {
        cudaError_t e = cudaMemsetAsync(c.data, 0, c.size, call->stream);
        return e == cudaSuccess ? 0 : fy_cuda_fail(err, e, "cudaMemsetAsync", label);
    }
    cublasStatus_t s = cublasSetStream(blas->handle, (cudaStream_t)call->stream);
    if (s != CUBLAS_STATUS_SUCCESS) return blas_fail(err, s, "cublasSetStream", label);
    /* Row-major C[M,N] = A[M,K] B[K,N] is column-major C^T[N,M] = B^T[N,K] A^T[K,M], and a
     * row-major X[r,c] is exactly the column-major X^T with leading dimension c: so B goes
     * first, nothing is transposed, and the leading dimensions are N, K and N. */
    bool bf16 = a.dtype == FY_DTYPE_BF16;
    cudaDataType_t in_type = bf16 ? CUDA_R_16BF : CUDA_R_32F;
    cudaDataType_t out_type = c.dtype == FY_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    const float alpha = 1.0f, beta = 0.0f;
    s = cublasGemmEx(blas->handle, CUBLAS_OP_N, CUBLAS_OP_N, (int)n, (int)m, (int)k, &alpha, b.data,
                     in_type, (int)n, a.data, in_type, (int)k, &beta, c.data, out_type, (int)n,
                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS) return blas_fail(err, s, "cublasGemmEx", label);
    return 0;
}

int fy_cuda_kernels_register(fy_kernel_registry *reg, fy_cuda_blas *blas, fy_error *err)
{
    int rc;
    if ((rc = fy_kernel_registry_add(reg, "matmul", fy_cuda_kernel_matmul, blas, err)) < 0 ||
        (rc = fy_kernel_registry_add(reg, "relu", fy_cuda_kernel_relu, NULL, err)) < 0 ||
        (rc = fy_kernel_registry_add(reg, "add", fy_cuda_kernel_add, NULL, err)) < 0 ||
        (rc = fy_kernel_registry_add(reg, "copy", fy_cuda_kernel_copy, NULL, err)) < 0 ||
        (rc = fy_kernel_registry_add(reg, "spin", fy_cuda_kernel_spin, NULL, err)) < 0)
        return rc;
    return 0;
}
