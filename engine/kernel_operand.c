/* Operand checks shared by the built-in CPU kernels: counts of buffers, sizes against tensors,
 * shapes against sizes, element types. A kernel runs only once all of them pass, and every
 * refusal names the op and the tensor, so a bad graph or a wrong engine call is found here
 * rather than as a crash or silent garbage in an output. */
#include "engine/kernels.h"

#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

static bool dtype_known(fy_dtype d)
{
    return (int)d >= 0 && d < FY_DTYPE_COUNT;
}

const char *fy_cpu_dtype_name(fy_dtype dtype, char *buf, size_t size)
{
    if (dtype_known(dtype))
        snprintf(buf, size, "%s", fy_dtype_name(dtype));
    else
        snprintf(buf, size, "dtype %d", (int)dtype);
    return buf;
}

const char *fy_cpu_op_label(const fy_kernel_call *call, char *buf, size_t size)
{
    const fy_op *op = call ? call->op : NULL;
    if (!op) {
        snprintf(buf, size, "kernel call");
        return buf;
    }
    const char *name = op->name ? op->name : "(unnamed)";
    const char *kind = op->kind ? op->kind : "?";
    if (op->line)
        snprintf(buf, size, "op '%s' (%s, line %u)", name, kind, op->line);
    else
        snprintf(buf, size, "op '%s' (%s)", name, kind);
    return buf;
}

const char *fy_cpu_shape_text(const fy_tensor *t, char *buf, size_t size)
{
    size_t len = 0;
    len += (size_t)snprintf(buf, size, "[");
    int rank = t && t->rank > 0 && t->rank <= FY_MAX_RANK ? t->rank : 0;
    for (int i = 0; i < rank && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%" PRIu64, i ? ", " : "", t->shape[i]);
    if (len < size) snprintf(buf + len, size - len, "]");
    return buf;
}

int fy_cpu_check_arity(const fy_kernel_call *call, size_t reads, size_t writes, const char *what,
                       fy_error *err)
{
    char label[160];
    if (!call || !call->op) return fy_error_set(err, FY_EINVAL, "kernel call without an op");
    fy_cpu_op_label(call, label, sizeof label);
    const fy_op *op = call->op;
    if (call->input_count != op->read_count || call->output_count != op->write_count)
        return fy_error_set(err, FY_EINVAL,
                            "%s: the call gives %zu input and %zu output buffers for the op's "
                            "%u reads and %u writes",
                            label, call->input_count, call->output_count, op->read_count,
                            op->write_count);
    if (call->input_count != reads || call->output_count != writes)
        return fy_error_set(err, FY_EINVAL, "%s reads %zu and writes %zu tensors; %s takes %s",
                            label, call->input_count, call->output_count,
                            op->kind ? op->kind : "this kernel", what);
    if ((reads && !call->inputs) || (writes && !call->outputs))
        return fy_error_set(err, FY_EINVAL, "%s: the call has no buffer array", label);
    return 0;
}

int fy_cpu_check_buffer(const fy_kernel_call *call, const fy_kernel_buffer *buf, bool output,
                        size_t index, fy_cpu_operand *out, fy_error *err)
{
    char label[160], dname[32], shape[200];
    const fy_tensor *t = buf->tensor;
    fy_cpu_op_label(call, label, sizeof label);
    *out = (fy_cpu_operand){.data = buf->data, .size = buf->size, .tensor = t};
    if (t)
        snprintf(out->name, sizeof out->name, "'%s'", t->name ? t->name : "(unnamed)");
    else
        snprintf(out->name, sizeof out->name, "%s %zu", output ? "output" : "input", index + 1);

    if (t && t->size != buf->size)
        return fy_error_set(err, FY_EINVAL,
                            "%s: the buffer for tensor %s has %" PRIu64
                            " bytes, the tensor %" PRIu64,
                            label, out->name, buf->size, t->size);
    if (buf->size && !buf->data)
        return fy_error_set(err, FY_EINVAL, "%s: %s has no data", label, out->name);
    if (!t) return 0;
    if (t->rank < 0 || t->rank > FY_MAX_RANK)
        return fy_error_set(err, FY_EINVAL, "%s: tensor %s has rank %d (0 to %d)", label, out->name,
                            t->rank, FY_MAX_RANK);
    if (t->rank == 0 || !dtype_known(t->dtype) || t->dtype == FY_DTYPE_NONE) return 0;
    uint64_t bytes = fy_dtype_bytes(t->dtype);
    bool overflow = false;
    for (int i = 0; i < t->rank; i++)
        overflow |= __builtin_mul_overflow(bytes, t->shape[i], &bytes);
    if (overflow || bytes != t->size)
        return fy_error_set(err, FY_EINVAL,
                            "%s: tensor %s has shape %s of %s, %s%" PRIu64
                            " bytes, but its size is %" PRIu64,
                            label, out->name, fy_cpu_shape_text(t, shape, sizeof shape),
                            fy_cpu_dtype_name(t->dtype, dname, sizeof dname),
                            overflow ? "more than " : "", overflow ? UINT64_MAX : bytes, t->size);
    return 0;
}

int fy_cpu_float_operand(const fy_kernel_call *call, const fy_kernel_buffer *buf, bool output,
                         size_t index, fy_cpu_operand *out, fy_error *err)
{
    int rc = fy_cpu_check_buffer(call, buf, output, index, out, err);
    if (rc < 0) return rc;
    char label[160], dname[32], shape[200];
    fy_cpu_op_label(call, label, sizeof label);
    fy_dtype d = out->tensor ? out->tensor->dtype : FY_DTYPE_NONE;
    if (!dtype_known(d))
        return fy_error_set(err, FY_EINVAL, "%s: tensor %s has an unknown dtype (%d)", label,
                            out->name, (int)d);
    if (d == FY_DTYPE_NONE) {
        /* A size-only tensor is read as f32 so that synthetic graphs run; its size must
         * still be a whole number of f32 values, and its shape (if any) must fit. */
        if (out->size % 4)
            return fy_error_set(err, FY_EINVAL,
                                "%s: tensor %s has no dtype and %" PRIu64
                                " bytes, not a whole number of f32 values",
                                label, out->name, out->size);
        const fy_tensor *t = out->tensor;
        if (t && t->rank > 0) {
            uint64_t n = 1;
            bool overflow = false;
            for (int i = 0; i < t->rank; i++)
                overflow |= __builtin_mul_overflow(n, t->shape[i], &n);
            if (overflow || n != out->size / 4)
                return fy_error_set(
                    err, FY_EINVAL,
                    "%s: tensor %s has no dtype and shape %s, but %" PRIu64 " bytes (read as f32)",
                    label, out->name, fy_cpu_shape_text(t, shape, sizeof shape), out->size);
        }
        d = FY_DTYPE_F32;
    } else if (d != FY_DTYPE_F32 && d != FY_DTYPE_BF16) {
        return fy_error_set(err, FY_EUNSUPPORTED,
                            "%s: tensor %s has dtype %s; %s takes f32 or bf16", label, out->name,
                            fy_cpu_dtype_name(d, dname, sizeof dname),
                            call->op->kind ? call->op->kind : "this kernel");
    }
    uint64_t width = d == FY_DTYPE_F32 ? 4 : 2;
    if (out->size % width)
        return fy_error_set(err, FY_EINVAL,
                            "%s: tensor %s has %" PRIu64 " bytes, not a whole number of %s values",
                            label, out->name, out->size, fy_cpu_dtype_name(d, dname, sizeof dname));
    out->dtype = d;
    out->count = out->size / width;
    return 0;
}

bool fy_cpu_overlap(const void *a, uint64_t a_size, const void *b, uint64_t b_size)
{
    if (!a || !b || !a_size || !b_size) return false;
    uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;
    return pa < pb + b_size && pb < pa + a_size;
}

unsigned fy_cpu_threads(const fy_kernel_call *call, double flops, uint64_t parts)
{
    /* Below a few MFLOP a thread costs more to start than it saves. */
    const double min_flops_per_thread = 4e6;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    uint64_t n = call->threads ? call->threads : (online > 0 ? (uint64_t)online : 1);
    if (n > parts) n = parts;
    double by_work = flops / min_flops_per_thread;
    if ((double)n > by_work) n = by_work < 1 ? 1 : (uint64_t)by_work;
    if (n > 1024) /* beyond this a pthread per part only costs; results never change */
        n = 1024;
    return n ? (unsigned)n : 1;
}
