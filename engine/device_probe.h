/* engine/device_probe.h — measures a device backend's rates for `ferry probe` (engine-private).
 *
 * Example:
 *     const fy_device_backend *b;
 *     fy_device_probe_result r;
 *     if (fy_device_backend_cuda(&b, &err) == 0 && fy_device_probe(b, 0, &r, &err) == 0)
 *         printf("h2d %.1f GB/s\n", r.h2d / 1e9);
 *
 * It works through the backend table only (any device: cuda, sim), so what it measures is
 * what a plan's copies and matmuls get: pinned host arena <-> gpu arena copies on the h2d and
 * d2h streams, and a bf16 matmul through the device's registry, each timed by the device's
 * own timeline (CUDA events on cuda) and reported as the median of several runs.
 */
#ifndef FERRY_ENGINE_DEVICE_PROBE_H
#define FERRY_ENGINE_DEVICE_PROBE_H

#include "engine/device.h"

typedef struct fy_device_probe_result {
    double h2d, d2h;       /* bytes per second, pinned host arena <-> gpu arena */
    double matmul_flops;   /* flops per second of a bf16 [m,k] x [k,n] matmul, f32 accumulate */
    uint64_t copy_bytes;   /* bytes per timed copy */
    uint64_t matmul_size;  /* m = n = k of the timed matmul */
    char description[256]; /* the device, from its info() */
} fy_device_probe_result;

/* Opens the device, measures, closes it. matmul_size 0: 8192 (the gpu arena needs 3 such
 * bf16 matrices, 384 MiB, plus one copy buffer of 256 MiB; the host arena 256 MiB). */
int fy_device_probe(const fy_device_backend *b, uint64_t matmul_size, fy_device_probe_result *out,
                    fy_error *err);

#endif
