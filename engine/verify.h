/* engine/verify.h — verifying weights against their source files (engine-private). Before a
 * run that verifies weights, the lowered plan's transfers that move a weight's unchanged
 * file bytes are marked (in a per-run array, so a lowered plan shared by a workspace's
 * requests is never changed) to get a FY_CRC_SOURCE stage after them, and the crc32c of each such
 * weight's bytes in its file is computed by an independent read; the loop compares what arrived
 * with it. */
#ifndef FERRY_ENGINE_VERIFY_H
#define FERRY_ENGINE_VERIFY_H

#include "engine/exec.h"

/* Marks (*marks, malloc'ed, one byte per event) the events of x that land a pristine weight copy:
 * nvme->host reads into the host arena always, host->gpu copies too when gpu_copies (the host can
 * read the gpu arena and the engine orders the device, so nothing overwrites a copy while it is
 * hashed). Then fills *crc (malloc'ed, one entry per graph tensor; those never verified are 0) from
 * the source files. Returns the number of events marked, or a negative status naming the file and
 * the tensor (a file that cannot be read, or is shorter than the tensor needs). */
long fy_verify_prepare(const fy_exec *x, bool gpu_copies, uint8_t **marks, uint32_t **crc,
                       fy_error *err);

#endif
