/* Measures a device's copy rates and matmul rate through the device backend table, as a plan
 * would use them. Each measurement is a few runs submitted back to back on one stream; the
 * device's own start/end times of each run give its duration, and the median is kept, so
 * host-side jitter in the loop does not enter the numbers. */
#include "engine/device_probe.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define REPS 7
#define COPY_BYTES (256ull << 20)

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Waits for n completions; fills secs[tag - first] with each one's duration. */
static int collect(const fy_device_backend *b, fy_device *dev, int efd, size_t n, uint64_t first,
                   double *secs, fy_error *err)
{
    for (size_t got = 0; got < n;) {
        fy_device_done d[8];
        size_t k = b->reap(dev, d, 8);
        for (size_t i = 0; i < k; i++) {
            if (d[i].status < 0) return fy_error_set(err, d[i].status, "probe: %s", d[i].message);
            secs[d[i].tag - first] = (double)(d[i].end_ns - d[i].start_ns) * 1e-9;
        }
        got += k;
        if (k || got >= n) continue;
        struct pollfd p = {.fd = efd, .events = POLLIN};
        if (poll(&p, 1, 60000) != 1)
            return fy_error_set(err, FY_EDEVICE, "probe: the device did not complete in 60 s");
        uint64_t v;
        if (read(efd, &v, sizeof v) < 0) { /* nothing to drain is fine: reap decides */
        }
    }
    return 0;
}

/* The median of runs 1..REPS (run 0 warms up) as a rate of amount per second. */
static double median_rate(double *secs, double amount)
{
    qsort(secs + 1, REPS, sizeof *secs, cmp_double);
    double t = secs[1 + REPS / 2];
    return t > 0 ? amount / t : 0;
}

/* Submits REPS + 1 items like w (tags from *tag on) and returns the median rate. */
static int measure(const fy_device_backend *b, fy_device *dev, int efd, fy_device_work w,
                   uint64_t *tag, double amount, double *rate, fy_error *err)
{
    double secs[REPS + 1];
    uint64_t first = *tag;
    for (int r = 0; r <= REPS; r++) {
        w.tag = (*tag)++;
        int rc = b->submit(dev, &w, err);
        if (rc < 0) {
            /* what was submitted must still come back before the run can end */
            collect(b, dev, efd, (size_t)r, first, secs, NULL);
            return rc;
        }
    }
    int rc = collect(b, dev, efd, REPS + 1, first, secs, err);
    if (rc == 0) *rate = median_rate(secs, amount);
    return rc;
}

int fy_device_probe(const fy_device_backend *b, uint64_t size, fy_device_probe_result *out,
                    fy_error *err)
{
    memset(out, 0, sizeof *out);
    if (!size) size = 8192;
    if (size > 65536)
        return fy_error_set(err, FY_ERANGE, "probe: matmul size %lu is above 65536",
                            (unsigned long)size);
    uint64_t mat = size * size * 2;
    out->copy_bytes = COPY_BYTES;
    out->matmul_size = size;
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) return fy_error_set(err, fy_status_from_errno(errno), "probe: eventfd failed");
    fy_device *dev = NULL;
    int rc = b->open(&(fy_device_config){.notify_fd = efd}, &dev, err);
    if (rc < 0) {
        close(efd);
        return rc;
    }
    fy_device_info info;
    b->info(dev, &info);
    snprintf(out->description, sizeof out->description, "%s", info.description);
    fy_device_arenas a = {.gpu_bytes = COPY_BYTES + 3 * mat,
                          .host_bytes = COPY_BYTES,
                          .tag_count = 3 * (REPS + 1) + 2 * ((mat + COPY_BYTES - 1) / COPY_BYTES)};
    if ((rc = b->run_begin(dev, &a, err)) < 0) goto out;
    /* bf16 values drawn uniformly from [-1, 1): random data, never zeros or constants,
     * which run faster than real matrices do */
    uint64_t state = 1;
    for (uint16_t *p = a.host_base, *end = p + COPY_BYTES / 2; p < end; p++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        *p = fy_bf16_from_f32((float)(int32_t)(state >> 40 & 0xffffff) / 8388608.0f - 1.0f);
    }
    uint64_t tag = 0;
    fy_device_work copy = {.host = a.host_base, .size = COPY_BYTES};
    copy.kind = FY_DEVICE_H2D;
    if ((rc = measure(b, dev, efd, copy, &tag, COPY_BYTES, &out->h2d, err)) < 0) goto end;
    copy.kind = FY_DEVICE_D2H;
    if ((rc = measure(b, dev, efd, copy, &tag, COPY_BYTES, &out->d2h, err)) < 0) goto end;
    /* the matmul's A and B: filled from the host arena, piece by piece */
    for (uint64_t at = 0; at < 2 * mat; at += COPY_BYTES) {
        uint64_t n = 2 * mat - at < COPY_BYTES ? 2 * mat - at : COPY_BYTES;
        fy_device_work w = {.kind = FY_DEVICE_H2D,
                            .tag = tag,
                            .host = a.host_base,
                            .gpu_offset = COPY_BYTES + at,
                            .size = n};
        if ((rc = b->submit(dev, &w, err)) < 0) goto end;
        double s;
        if ((rc = collect(b, dev, efd, 1, tag++, &s, err)) < 0) goto end;
    }
    static const uint32_t idx[3] = {0, 1, 2};
    fy_tensor t[3];
    for (int i = 0; i < 3; i++)
        t[i] = (fy_tensor){.name = i == 0   ? "a"
                                   : i == 1 ? "b"
                                            : "c",
                           .kind = FY_TENSOR_ACTIVATION,
                           .size = mat,
                           .dtype = FY_DTYPE_BF16,
                           .rank = 2,
                           .shape = {size, size}};
    double flops = 2.0 * (double)size * (double)size * (double)size;
    fy_op op = {.name = "probe",
                .kind = "matmul",
                .device = FY_TIER_GPU,
                .reads = idx,
                .read_count = 2,
                .writes = idx + 2,
                .write_count = 1,
                .flops = flops};
    char *g = a.gpu_base;
    fy_kernel_buffer in[2] = {{g + COPY_BYTES, mat, &t[0]}, {g + COPY_BYTES + mat, mat, &t[1]}},
                     res = {g + COPY_BYTES + 2 * mat, mat, &t[2]};
    fy_kernel_call call = {
        .op = &op, .inputs = in, .input_count = 2, .outputs = &res, .output_count = 1};
    fy_device_work mm = {.kind = FY_DEVICE_COMPUTE, .call = &call};
    rc = measure(b, dev, efd, mm, &tag, flops, &out->matmul_flops, err);
end:
    b->run_end(dev);
out:
    b->close(dev);
    close(efd);
    return rc;
}
