/* Operand checks shared by the built-in CPU kernels: counts of buffers, sizes against tensors,
 * shapes against sizes, element types. A kernel runs only once all of them pass, and every
 * refusal names the op and the tensor, so a bad graph or a wrong engine call is found here
 * rather than as a crash or silent garbage in an output. */
#include "engine/kernels.h"

#include <inttypes.h>
#include <math.h>
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

/* Product of the first `count` dimensions (1 for none); false on overflow. */
static bool shape_product(const fy_tensor *t, int count, uint64_t *out)
{
    uint64_t n = 1;
    bool overflow = false;
    for (int i = 0; i < count; i++)
        overflow |= __builtin_mul_overflow(n, t->shape[i], &n);
    *out = n;
    return !overflow;
}

int fy_matmul_check(const fy_kernel_call *call, fy_matmul_operands *mo, fy_error *err)
{
    int rc = fy_cpu_check_arity(call, 2, 1, "[A, B] -> [C]", err);
    if (rc < 0) return rc;
    fy_cpu_operand a, b, c;
    if ((rc = fy_cpu_float_operand(call, &call->inputs[0], false, 0, &a, err)) < 0 ||
        (rc = fy_cpu_float_operand(call, &call->inputs[1], false, 1, &b, err)) < 0 ||
        (rc = fy_cpu_float_operand(call, &call->outputs[0], true, 0, &c, err)) < 0)
        return rc;

    char label[160], sa[200], sb[200], sc[200];
    fy_cpu_op_label(call, label, sizeof label);
    if (!a.tensor || a.tensor->rank < 1)
        return fy_error_set(err, FY_EINVAL,
                            "%s: A (%s) has no shape; matmul needs the shapes of A and B", label,
                            a.name);
    if (!b.tensor || b.tensor->rank != 2)
        return fy_error_set(err, FY_EINVAL, "%s: B (%s) has %s%s; matmul needs B as [K, N]", label,
                            b.name, b.tensor && b.tensor->rank ? "shape " : "no shape",
                            b.tensor && b.tensor->rank ? fy_cpu_shape_text(b.tensor, sb, sizeof sb)
                                                       : "");
    const fy_tensor *ta = a.tensor, *tb = b.tensor, *tc = c.tensor;
    uint64_t m, k = ta->shape[ta->rank - 1], n = tb->shape[1], mn;
    shape_product(ta, ta->rank - 1, &m); /* cannot overflow: the whole shape fits A's size */
    fy_cpu_shape_text(ta, sa, sizeof sa);
    fy_cpu_shape_text(tb, sb, sizeof sb);
    if (tb->shape[0] != k)
        return fy_error_set(err, FY_EINVAL,
                            "%s: A (%s) is %s and B (%s) is %s: the inner dimensions differ", label,
                            a.name, sa, b.name, sb);
    if (__builtin_mul_overflow(m, n, &mn))
        return fy_error_set(err, FY_ERANGE, "%s: C of A (%s) %s times B (%s) %s is too large",
                            label, a.name, sa, b.name, sb);
    bool c_fits = c.count == mn;
    if (c_fits && tc && tc->rank > 0) {
        uint64_t lead;
        c_fits =
            tc->shape[tc->rank - 1] == n && shape_product(tc, tc->rank - 1, &lead) && lead == m;
    }
    if (!c_fits) {
        if (tc && tc->rank > 0) {
            char shape_c[200];
            snprintf(sc, sizeof sc, "is %s with", fy_cpu_shape_text(tc, shape_c, sizeof shape_c));
        } else
            snprintf(sc, sizeof sc, "has no shape and");
        return fy_error_set(err, FY_EINVAL,
                            "%s: C (%s) %s %" PRIu64 " elements, but A (%s) %s times B (%s) %s "
                            "gives [%" PRIu64 ", %" PRIu64 "]",
                            label, c.name, sc, c.count, a.name, sa, b.name, sb, m, n);
    }
    if (fy_cpu_overlap(c.data, c.size, a.data, a.size) ||
        fy_cpu_overlap(c.data, c.size, b.data, b.size))
        return fy_error_set(
            err, FY_EINVAL, "%s: C (%s) shares memory with %s; matmul cannot run in place", label,
            c.name, fy_cpu_overlap(c.data, c.size, a.data, a.size) ? a.name : b.name);
    mo->a = a;
    mo->b = b;
    mo->c = c;
    mo->m = m;
    mo->k = k;
    mo->n = n;
    return 0;
}

/* An output may be exactly an input (in place) but must not partly overlap it: chunks are
 * read before they are written only when both views step through memory alike. */
int fy_cpu_check_alias(const fy_kernel_call *call, const fy_cpu_operand *out,
                       const fy_cpu_operand *in, fy_error *err)
{
    if (!fy_cpu_overlap(out->data, out->size, in->data, in->size)) return 0;
    if (out->data == in->data && out->dtype == in->dtype && out->size == in->size) return 0;
    char label[160];
    return fy_error_set(err, FY_EINVAL,
                        "%s: output %s partly overlaps input %s; only the same buffer in the "
                        "same dtype can be updated in place",
                        fy_cpu_op_label(call, label, sizeof label), out->name, in->name);
}

int fy_cpu_count_mismatch(const fy_kernel_call *call, const fy_cpu_operand *x,
                          const fy_cpu_operand *y, fy_error *err)
{
    char label[160];
    return fy_error_set(err, FY_EINVAL,
                        "%s: %s has %" PRIu64 " elements and %s has %" PRIu64
                        "; elementwise operands need the same count",
                        fy_cpu_op_label(call, label, sizeof label), x->name, x->count, y->name,
                        y->count);
}

int fy_spin_check(const fy_kernel_call *call, double max_seconds, fy_error *err)
{
    if (!call || !call->op) return fy_error_set(err, FY_EINVAL, "kernel call without an op");
    int rc = fy_cpu_check_arity(call, call->input_count, call->output_count, "any operands", err);
    if (rc < 0) return rc;
    char label[160];
    fy_cpu_op_label(call, label, sizeof label);
    if (!isfinite(call->spin_seconds) || call->spin_seconds < 0)
        return fy_error_set(err, FY_EINVAL, "%s: spin for %g seconds: need a finite time >= 0",
                            label, call->spin_seconds);
    if (call->spin_seconds > max_seconds)
        return fy_error_set(err, FY_ERANGE, "%s: spin for %g seconds is more than %g", label,
                            call->spin_seconds, max_seconds);
    fy_cpu_operand operand;
    for (size_t i = 0; i < call->input_count; i++)
        if ((rc = fy_cpu_check_buffer(call, &call->inputs[i], false, i, &operand, err)) < 0)
            return rc;
    for (size_t i = 0; i < call->output_count; i++)
        if ((rc = fy_cpu_check_buffer(call, &call->outputs[i], true, i, &operand, err)) < 0)
            return rc;
    return 0;
}

int fy_relu_check(const fy_kernel_call *call, fy_cpu_operand *x, fy_cpu_operand *y, fy_error *err)
{
    int rc = fy_cpu_check_arity(call, 1, 1, "[X] -> [Y]", err);
    if (rc < 0) return rc;
    if ((rc = fy_cpu_float_operand(call, &call->inputs[0], false, 0, x, err)) < 0 ||
        (rc = fy_cpu_float_operand(call, &call->outputs[0], true, 0, y, err)) < 0)
        return rc;
    if (x->count != y->count) return fy_cpu_count_mismatch(call, x, y, err);
    return fy_cpu_check_alias(call, y, x, err);
}

int fy_add_check(const fy_kernel_call *call, fy_cpu_operand *a, fy_cpu_operand *b,
                 fy_cpu_operand *c, fy_error *err)
{
    int rc = fy_cpu_check_arity(call, 2, 1, "[A, B] -> [C]", err);
    if (rc < 0) return rc;
    if ((rc = fy_cpu_float_operand(call, &call->inputs[0], false, 0, a, err)) < 0 ||
        (rc = fy_cpu_float_operand(call, &call->inputs[1], false, 1, b, err)) < 0 ||
        (rc = fy_cpu_float_operand(call, &call->outputs[0], true, 0, c, err)) < 0)
        return rc;
    if (a->count != b->count) return fy_cpu_count_mismatch(call, a, b, err);
    if (a->count != c->count) return fy_cpu_count_mismatch(call, a, c, err);
    if ((rc = fy_cpu_check_alias(call, c, a, err)) < 0) return rc;
    return fy_cpu_check_alias(call, c, b, err);
}

int fy_copy_check(const fy_kernel_call *call, fy_cpu_operand *x, fy_cpu_operand *y, fy_error *err)
{
    int rc = fy_cpu_check_arity(call, 1, 1, "[X] -> [Y]", err);
    if (rc < 0) return rc;
    if ((rc = fy_cpu_check_buffer(call, &call->inputs[0], false, 0, x, err)) < 0 ||
        (rc = fy_cpu_check_buffer(call, &call->outputs[0], true, 0, y, err)) < 0)
        return rc;
    if (x->size != y->size) {
        char label[160];
        return fy_error_set(
            err, FY_EINVAL,
            "%s: %s has %" PRIu64 " bytes and %s has %" PRIu64 "; copy needs equal sizes",
            fy_cpu_op_label(call, label, sizeof label), x->name, x->size, y->name, y->size);
    }
    return 0;
}
