/* Weight verification: marks the transfers that land a weight's unchanged file bytes and
 * computes, by reading the files with plain pread (not through the run's io backend, so a
 * fault there cannot hide itself), the crc32c each of those copies must have. The reference
 * read is dropped from the page cache afterwards so that the run still measures reads from
 * the device, not from memory. Invariant: only copies that lowering proved pristine (never
 * written by an op since they left the file) are marked, so a mismatch is always a fault. */
#include "engine/verify.h"

#include "core/hash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_CHUNK ((size_t)1 << 20)

static int hash_range(int fd, const char *path, const char *tensor, uint64_t offset, uint64_t size,
                      char *buf, uint32_t *out, fy_error *err)
{
    uint32_t crc = 0;
    for (uint64_t at = 0; at < size;) {
        size_t want = size - at < READ_CHUNK ? (size_t)(size - at) : READ_CHUNK;
        ssize_t got = pread(fd, buf, want, (off_t)(offset + at));
        if (got < 0 && errno == EINTR) continue;
        if (got < 0)
            return fy_error_set(err, fy_status_from_errno(errno),
                                "%s: reading '%s' at offset %llu to verify it: %s", path, tensor,
                                (unsigned long long)(offset + at), strerror(errno));
        if (got == 0)
            return fy_error_set(err, FY_EIO,
                                "%s: ends at offset %llu, inside '%s' (bytes %llu..%llu): a "
                                "truncated weight file?",
                                path, (unsigned long long)(offset + at), tensor,
                                (unsigned long long)offset, (unsigned long long)(offset + size));
        crc = fy_crc32c(crc, buf, (size_t)got);
        at += (uint64_t)got;
    }
#ifdef POSIX_FADV_DONTNEED
    (void)posix_fadvise(fd, (off_t)offset, (off_t)size, POSIX_FADV_DONTNEED);
#endif
    *out = crc;
    return 0;
}

/* Marks the events in marks[]; fills file_of[t] (the source file index of each tensor to
 * hash, or -1). */
static long mark(const fy_exec *x, bool gpu_copies, uint8_t *marks, int64_t *file_of)
{
    long marked = 0;
    for (size_t i = 0; i < x->count; i++) {
        const fy_xev *xe = &x->ev[i];
        if (!xe->pristine || xe->crc_post != FY_CRC_NONE || xe->tensor < 0) continue;
        bool host = xe->queue == FY_Q_IO && xe->dst.kind == FY_LOC_ARENA;
        bool gpu = xe->queue == FY_Q_H2D && gpu_copies;
        if (!host && !gpu) continue;
        marks[i] = 1;
        marked++;
        if (xe->src.kind == FY_LOC_SOURCE) file_of[xe->tensor] = xe->src.file;
    }
    return marked;
}

long fy_verify_prepare(const fy_exec *x, bool gpu_copies, uint8_t **marks, uint32_t **crc,
                       fy_error *err)
{
    size_t nt = fy_graph_tensor_count(x->graph);
    int64_t *file_of = malloc((nt ? nt : 1) * sizeof *file_of);
    int *fds = malloc((x->file_count ? x->file_count : 1) * sizeof *fds);
    char *buf = malloc(READ_CHUNK);
    *crc = calloc(nt ? nt : 1, sizeof **crc);
    *marks = calloc(x->count ? x->count : 1, 1);
    if (!file_of || !fds || !buf || !*crc || !*marks) {
        free(file_of);
        free(fds);
        free(buf);
        free(*crc);
        free(*marks);
        *crc = NULL;
        *marks = NULL;
        return fy_error_set(err, FY_ENOMEM, "out of memory");
    }
    for (size_t t = 0; t < nt; t++)
        file_of[t] = -1;
    for (size_t f = 0; f < x->file_count; f++)
        fds[f] = -1;
    /* A pristine copy always descends from a read of its source file, so every marked
     * tensor has a file. */
    long marked = mark(x, gpu_copies, *marks, file_of);
    int rc = 0;
    for (size_t t = 0; t < nt && rc == 0; t++) {
        if (file_of[t] < 0) continue;
        const fy_tensor *tn = fy_graph_tensor(x->graph, t);
        const char *path = x->files[file_of[t]];
        int *fd = &fds[file_of[t]];
        if (*fd < 0 && (*fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
            rc =
                fy_error_set(err, fy_status_from_errno(errno), "%s: cannot open to verify '%s': %s",
                             path, tn->name, strerror(errno));
            break;
        }
        rc = hash_range(*fd, path, tn->name, tn->source_offset, tn->size, buf, &(*crc)[t], err);
    }
    for (size_t f = 0; f < x->file_count; f++)
        if (fds[f] >= 0) close(fds[f]);
    free(file_of);
    free(fds);
    free(buf);
    if (rc < 0) {
        free(*crc);
        free(*marks);
        *crc = NULL;
        *marks = NULL;
        return rc;
    }
    return marked;
}
