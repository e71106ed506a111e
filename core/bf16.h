/* core/bf16.h — bfloat16 <-> float32 (library-internal), for kernels and weight files.
 * fy_bf16_from_f32 / fy_bf16_to_f32 in ferry/engine.h are these, out of line. Rounding is
 * to nearest, ties to even, the rounding of PyTorch and of CUDA's __float2bfloat16, so
 * results computed here and on a GPU agree; a NaN never rounds into an infinity. */
#ifndef FERRY_ENGINE_BF16_H
#define FERRY_ENGINE_BF16_H

#include <stdint.h>
#include <string.h>

static inline float bf16_to_f32(uint16_t bits)
{
    uint32_t wide = (uint32_t)bits << 16;
    float value;
    memcpy(&value, &wide, sizeof value);
    return value;
}

static inline uint16_t bf16_from_f32(float value)
{
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) /* NaN: keep sign and top payload, set quiet bit */
        return (uint16_t)((bits >> 16) | 0x0040u);
    /* Adding 0x7fff plus the lowest kept bit carries into the kept half exactly when the
     * dropped half is above one half, or equal to it with an odd kept half. */
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

#endif
