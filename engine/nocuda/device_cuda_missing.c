/* The CUDA device when ferry is built without CUDA: asking for it says so. The build
 * compiles this folder only when engine/cuda/ is not built, so no #ifdef is needed. */
#include "engine/device.h"

int fy_device_backend_cuda(const fy_device_backend **out, fy_error *err)
{
    *out = NULL;
    return fy_error_set(err, FY_EUNSUPPORTED,
                        "the cuda device is not available: ferry was built without CUDA "
                        "(configure with -DFERRY_CUDA=ON on a machine with the CUDA toolkit)");
}
