/* The CUDA device backend (issue 8) goes in this folder, built only when CUDA is: until it
 * lands, a CUDA build says that the device is not there yet, so `--device auto` uses sim
 * and `--device cuda` fails with the reason. This file is replaced by the real backend,
 * which implements the interface of engine/device.h. */
#include "engine/device.h"

int fy_device_backend_cuda(const fy_device_backend **out, fy_error *err)
{
    *out = NULL;
    return fy_error_set(err, FY_EUNSUPPORTED,
                        "the cuda device is not available: this build of ferry has no CUDA "
                        "device backend yet");
}
