/* The spin kernel: replays an op's cost without its arithmetic, to run a real model's timing
 * on the sim device. It never reads its inputs. It fills each output with values drawn from
 * the op's name and the output's position (finite numbers in [-1, 1) for f32 and bf16
 * tensors, bytes otherwise), then busy-waits until spin_seconds have passed since it began:
 * two runs of one plan write the same bytes, and kernels downstream see no NaN. */
#include "core/hash.h"
#include "core/clock.h"
#include "core/bf16.h"
#include "engine/kernels.h"

#include <math.h>
#include <string.h>

#define PATTERN_BYTES 4096 /* a multiple of every element width */

static uint64_t mix_next(uint64_t *state)
{
    *state += 0x9e3779b97f4a7c15ull;
    uint64_t z = *state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void make_pattern(const char *op_name, size_t output, fy_dtype dtype, uint64_t size,
                         uint8_t *pattern)
{
    uint64_t state = (uint64_t)fy_crc32c(0, op_name, strlen(op_name)) << 32 | output;
    if (dtype == FY_DTYPE_NONE && size % 4 == 0)
        dtype = FY_DTYPE_F32; /* size-only tensors read as f32 elsewhere, so here too */
    for (size_t at = 0; at < PATTERN_BYTES;) {
        uint64_t r = mix_next(&state);
        if (dtype == FY_DTYPE_F32) {
            /* 24 random bits scaled into [-1, 1): exact in f32. */
            float v = (float)(r >> 40) / 8388608.0f - 1.0f;
            memcpy(pattern + at, &v, 4);
            at += 4;
        } else if (dtype == FY_DTYPE_BF16) {
            /* 8 significant bits: exact in bf16. */
            uint16_t v = bf16_from_f32((float)(int8_t)(r >> 56) / 128.0f);
            memcpy(pattern + at, &v, 2);
            at += 2;
        } else {
            memcpy(pattern + at, &r, 8);
            at += 8;
        }
    }
}

int fy_cpu_kernel_spin(const fy_kernel_call *call, fy_error *err)
{
    double start = fy_now_s();
    int rc = fy_spin_check(call, HUGE_VAL, err);
    if (rc < 0) return rc;

    uint8_t pattern[PATTERN_BYTES];
    const char *name = call->op->name ? call->op->name : "";
    for (size_t i = 0; i < call->output_count; i++) {
        const fy_kernel_buffer *out = &call->outputs[i];
        fy_dtype dtype = out->tensor ? out->tensor->dtype : FY_DTYPE_NONE;
        make_pattern(name, i, dtype, out->size, pattern);
        uint8_t *dst = out->data;
        for (uint64_t at = 0; at < out->size; at += PATTERN_BYTES) {
            uint64_t n = out->size - at < PATTERN_BYTES ? out->size - at : PATTERN_BYTES;
            memcpy(dst + at, pattern, n);
        }
    }
    double end = start + call->spin_seconds;
    while (fy_now_s() < end) {
        /* busy on purpose: the op's device is occupied for its predicted time */
    }
    return 0;
}
