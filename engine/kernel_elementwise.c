/* The elementwise CPU kernels (relu, add) and copy, plus the public bf16 conversions.
 * relu and add read and write f32 or bf16 in any mix: values are widened to f32, computed
 * in f32 and rounded once to the output's dtype, in chunks, so an output may be the very
 * buffer of an input (same dtype, in place) but may not partly overlap one. */
#include "core/bf16.h"
#include "engine/kernels.h"

#include <inttypes.h>
#include <string.h>

#define CHUNK 1024 /* elements widened at a time: small enough to stay in L1 */

uint16_t fy_bf16_from_f32(float value)
{
    return bf16_from_f32(value);
}

float fy_bf16_to_f32(uint16_t bits)
{
    return bf16_to_f32(bits);
}

static void widen(const fy_cpu_operand *op, size_t first, size_t count, float *out)
{
    if (op->dtype == FY_DTYPE_BF16) {
        const uint16_t *src = (const uint16_t *)op->data + first;
        for (size_t i = 0; i < count; i++)
            out[i] = bf16_to_f32(src[i]);
    } else {
        memcpy(out, (const float *)op->data + first, count * sizeof(float));
    }
}

static void narrow(const float *in, size_t first, size_t count, const fy_cpu_operand *op)
{
    if (op->dtype == FY_DTYPE_BF16) {
        uint16_t *dst = (uint16_t *)op->data + first;
        for (size_t i = 0; i < count; i++)
            dst[i] = bf16_from_f32(in[i]);
    } else {
        memcpy((float *)op->data + first, in, count * sizeof(float));
    }
}

int fy_cpu_kernel_relu(const fy_kernel_call *call, fy_error *err)
{
    int rc = fy_cpu_check_arity(call, 1, 1, "[X] -> [Y]", err);
    if (rc < 0) return rc;
    fy_cpu_operand x, y;
    if ((rc = fy_cpu_float_operand(call, &call->inputs[0], false, 0, &x, err)) < 0 ||
        (rc = fy_cpu_float_operand(call, &call->outputs[0], true, 0, &y, err)) < 0)
        return rc;
    if (x.count != y.count) return fy_cpu_count_mismatch(call, &x, &y, err);
    if ((rc = fy_cpu_check_alias(call, &y, &x, err)) < 0) return rc;
    float v[CHUNK];
    for (size_t at = 0; at < x.count; at += CHUNK) {
        size_t n = x.count - at < CHUNK ? x.count - at : CHUNK;
        widen(&x, at, n, v);
        for (size_t i = 0; i < n; i++)
            v[i] = (v[i] > 0.0f || v[i] != v[i]) ? v[i] : 0.0f; /* NaN passes, -0 becomes +0 */
        narrow(v, at, n, &y);
    }
    return 0;
}

int fy_cpu_kernel_add(const fy_kernel_call *call, fy_error *err)
{
    int rc = fy_cpu_check_arity(call, 2, 1, "[A, B] -> [C]", err);
    if (rc < 0) return rc;
    fy_cpu_operand a, b, c;
    if ((rc = fy_cpu_float_operand(call, &call->inputs[0], false, 0, &a, err)) < 0 ||
        (rc = fy_cpu_float_operand(call, &call->inputs[1], false, 1, &b, err)) < 0 ||
        (rc = fy_cpu_float_operand(call, &call->outputs[0], true, 0, &c, err)) < 0)
        return rc;
    if (a.count != b.count) return fy_cpu_count_mismatch(call, &a, &b, err);
    if (a.count != c.count) return fy_cpu_count_mismatch(call, &a, &c, err);
    if ((rc = fy_cpu_check_alias(call, &c, &a, err)) < 0 ||
        (rc = fy_cpu_check_alias(call, &c, &b, err)) < 0)
        return rc;
    float va[CHUNK], vb[CHUNK];
    for (size_t at = 0; at < a.count; at += CHUNK) {
        size_t n = a.count - at < CHUNK ? a.count - at : CHUNK;
        widen(&a, at, n, va);
        widen(&b, at, n, vb);
        for (size_t i = 0; i < n; i++)
            va[i] += vb[i];
        narrow(va, at, n, &c);
    }
    return 0;
}

int fy_cpu_kernel_copy(const fy_kernel_call *call, fy_error *err)
{
    int rc = fy_cpu_check_arity(call, 1, 1, "[X] -> [Y]", err);
    if (rc < 0) return rc;
    fy_cpu_operand x, y;
    if ((rc = fy_cpu_check_buffer(call, &call->inputs[0], false, 0, &x, err)) < 0 ||
        (rc = fy_cpu_check_buffer(call, &call->outputs[0], true, 0, &y, err)) < 0)
        return rc;
    if (x.size != y.size) {
        char label[160];
        return fy_error_set(
            err, FY_EINVAL,
            "%s: %s has %" PRIu64 " bytes and %s has %" PRIu64 "; copy needs equal sizes",
            fy_cpu_op_label(call, label, sizeof label), x.name, x.size, y.name, y.size);
    }
    if (x.size && x.data != y.data) memmove(y.data, x.data, x.size);
    return 0;
}
