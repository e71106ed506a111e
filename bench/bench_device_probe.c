/* Prints what fy_device_probe measures on a device: `bench_device_probe [SIZE]` (the cuda device).
 * Until `ferry probe` calls it, this is how the GPU's copy and matmul rates are read. */
#include "engine/device_probe.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    uint64_t size = argc > 1 ? strtoull(argv[1], NULL, 10) : 0;
    fy_error err = {0};
    const fy_device_backend *b;
    if (fy_device_backend_cuda(&b, &err) < 0) {
        fprintf(stderr, "bench_device_probe: %s\n", err.message);
        return 1;
    }
    fy_device_probe_result r;
    if (fy_device_probe(b, size, &r, &err) < 0) {
        fprintf(stderr, "bench_device_probe: %s\n", err.message);
        return 1;
    }
    printf("device: %s\n", r.description);
    printf("h2d %.1f GB/s, d2h %.1f GB/s (pinned, %llu MiB copies); matmul bf16 %llu^3: %.0f "
           "TFLOP/s\n",
           r.h2d / 1e9, r.d2h / 1e9, (unsigned long long)(r.copy_bytes >> 20),
           (unsigned long long)r.matmul_size, r.matmul_flops / 1e12);
    return 0;
}
