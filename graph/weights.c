/* Writes a weight file for a graph: every tensor with a source gets deterministic
 * pseudo-random values of its dtype at its offset. Values are uniform in
 * [-sqrt(3/fan_in), sqrt(3/fan_in)] (fan_in = the first dimension), which keeps
 * activations of a deep matmul chain near unit variance instead of overflowing. Each
 * tensor's stream is seeded from the seed and its name, so content does not depend on
 * order. The file is streamed in chunks and replaced atomically. */
#include "graph/graph_model.h"

#include "core/bf16.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint16_t f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    int32_t exp = (int32_t)((u >> 23) & 0xff) - 127 + 15;
    uint32_t mant = u & 0x7fffffu;
    if (exp <= 0) { /* subnormal or zero: our values are small but not that small */
        if (exp < -10) return (uint16_t)sign;
        mant |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    if (exp >= 31) return (uint16_t)(sign | 0x7c00u);
    uint32_t half = sign | ((uint32_t)exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) half++;
    return (uint16_t)half;
}

/* Fills n bytes of tensor data (element-aligned start) from the stream. */
static void fill(uint8_t *out, size_t n, fy_dtype dtype, float scale, uint64_t *state)
{
    size_t es = fy_dtype_bytes(dtype);
    if (es == 0) es = 1;
    for (size_t i = 0; i + es <= n; i += es) {
        uint64_t r = splitmix64(state);
        float u = (float)((double)(r >> 40) / 16777216.0 * 2.0 - 1.0) * scale;
        switch (dtype) {
        case FY_DTYPE_F64: {
            double d = u;
            memcpy(out + i, &d, 8);
            break;
        }
        case FY_DTYPE_F32:
            memcpy(out + i, &u, 4);
            break;
        case FY_DTYPE_BF16: {
            uint16_t h = bf16_from_f32(u);
            memcpy(out + i, &h, 2);
            break;
        }
        case FY_DTYPE_F16: {
            uint16_t h = f32_to_f16(u);
            memcpy(out + i, &h, 2);
            break;
        }
        case FY_DTYPE_BOOL:
            out[i] = (uint8_t)(r & 1);
            break;
        default: /* integers and fp8: random bits */
            memcpy(out + i, &r, es);
            break;
        }
    }
}

static int write_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -errno;
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

int fy_graph_write_weights(const fy_graph *g, const char *path, uint64_t seed, fy_error *err)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    const size_t chunk = 8u << 20;
    uint8_t *buf = malloc(chunk);
    if (!tmp || !buf) {
        free(tmp);
        free(buf);
        return fy_error_set(err, FY_ENOMEM, "out of memory");
    }
    snprintf(tmp, plen + 16, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(tmp);
    int rc = 0;
    if (fd < 0) {
        rc = fy_error_set_at(err, fy_status_from_errno(errno), path, 0, 0, "cannot create: %s",
                             strerror(errno));
        goto out;
    }
    uint64_t end = 0;
    for (size_t t = 0; t < fy_graph_tensor_count(g) && rc == 0; t++) {
        const fy_tensor *ten = fy_graph_tensor(g, t);
        if (!ten->source_file) continue;
        uint64_t state = seed * 0x9e3779b97f4a7c15ull + 1469598103934665603ull;
        for (const char *s = ten->name; *s; s++) /* FNV-1a of the name */
            state = (state ^ (unsigned char)*s) * 1099511628211ull;
        float fan_in = ten->rank > 0 && ten->shape[0] ? (float)ten->shape[0] : 1.0f;
        float scale = sqrtf(3.0f / fan_in);
        size_t es = fy_dtype_bytes(ten->dtype) ? fy_dtype_bytes(ten->dtype) : 1;
        size_t step = chunk / es * es;
        for (uint64_t done = 0; done < ten->size && rc == 0;) {
            size_t n = ten->size - done < step ? (size_t)(ten->size - done) : step;
            fill(buf, n, ten->dtype, scale, &state);
            int w = write_all(fd, buf, n, ten->source_offset + done);
            if (w < 0)
                rc = fy_error_set_at(err, fy_status_from_errno(w), path, 0, 0,
                                     "writing tensor '%s': %s", ten->name, strerror(-w));
            done += n;
        }
        if (ten->source_offset + ten->size > end) end = ten->source_offset + ten->size;
    }
    if (rc == 0 && ftruncate(fd, (off_t)end) < 0)
        rc = fy_error_set_at(err, fy_status_from_errno(errno), path, 0, 0, "cannot size: %s",
                             strerror(errno));
    if (rc == 0 && fsync(fd) < 0)
        rc = fy_error_set_at(err, fy_status_from_errno(errno), path, 0, 0, "cannot sync: %s",
                             strerror(errno));
    if (rc == 0 && fchmod(fd, 0644) < 0)
        rc = fy_error_set_at(err, fy_status_from_errno(errno), path, 0, 0, "cannot chmod: %s",
                             strerror(errno));
    if (close(fd) < 0 && rc == 0)
        rc = fy_error_set_at(err, fy_status_from_errno(errno), path, 0, 0, "cannot close: %s",
                             strerror(errno));
    if (rc == 0 && rename(tmp, path) < 0)
        rc = fy_error_set_at(err, fy_status_from_errno(errno), path, 0, 0, "cannot rename: %s",
                             strerror(errno));
    if (rc < 0) unlink(tmp);
out:
    free(tmp);
    free(buf);
    return rc;
}
