/* `ferry probe`'s measurements (include/ferry/probe.h). The nvme rates are taken the way the
 * engine moves data: through the io backend it picks, O_DIRECT where the filesystem allows,
 * requests of up to 64 MiB cut into 1 MiB chunks with many in flight; the write phase ends
 * with fdatasync so that nothing left in a cache counts as written, and the read phase drops
 * the file's cached pages first. Buffers hold pseudo-random bytes (a drive may compress
 * zeros). The gpu and host rates come from fy_device_probe on the cuda and sim devices. */
#include "ferry/probe.h"

#include "engine/device_probe.h"
#include "engine/io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define INFLIGHT 4
#define REQUEST_MAX ((size_t)64 << 20)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Moves total bytes through the file in requests of req bytes, INFLIGHT at once. */
static int stream(const fy_io_backend *b, fy_io *io, fy_io_file *f, bool write, uint64_t total,
                  size_t req, void **bufs, fy_error *err)
{
    uint64_t next = 0, done = 0;
    int out = 0, rc = 0;
    bool busy[INFLIGHT] = {false};
    while (done < total && rc == 0) {
        for (int k = 0; k < INFLIGHT && next < total; k++) {
            if (busy[k]) continue;
            size_t n = total - next < req ? (size_t)(total - next) : req;
            rc = write ? b->submit_write(io, f, next, bufs[k], n, (uint64_t)k, err)
                       : b->submit_read(io, f, next, bufs[k], n, (uint64_t)k, err);
            if (rc < 0) break;
            busy[k] = true;
            out++;
            next += n;
        }
        if (rc < 0 || !out) break;
        fy_io_completion c[INFLIGHT];
        int got = b->wait(io, c, INFLIGHT, err);
        if (got < 0) return got;
        for (int i = 0; i < got; i++) {
            if (c[i].watch || c[i].tag >= INFLIGHT) continue;
            busy[c[i].tag] = false;
            out--;
            done += c[i].bytes;
            if (c[i].status < 0 && rc == 0)
                rc = fy_error_set(err, c[i].status, "probe: %s", c[i].detail);
        }
    }
    /* what is still out must come back before the buffers go */
    while (out > 0) {
        fy_io_completion c[INFLIGHT];
        int got = b->wait(io, c, INFLIGHT, NULL);
        if (got < 0) break;
        out -= got;
    }
    return rc;
}

static int sync_and_drop(const char *path, fy_error *err)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return fy_error_set(err, fy_status_from_errno(errno), "probe: cannot reopen '%s': %s", path,
                            strerror(errno));
    int rc = 0;
    if (fdatasync(fd) < 0)
        rc = fy_error_set(err, fy_status_from_errno(errno), "probe: fdatasync of '%s': %s", path,
                          strerror(errno));
    else
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED); /* advice: the read may still hit */
    close(fd);
    return rc;
}

static int probe_nvme(const fy_probe_options *o, const char *dir, fy_machine *m,
                      fy_probe_report *rep, fy_error *err)
{
    uint64_t total = o->size ? o->size : (uint64_t)1 << 30;
    total = (total + 4095) & ~(uint64_t)4095;
    size_t req = total < REQUEST_MAX ? (size_t)total : REQUEST_MAX;
    rep->bytes = total;
    const fy_io_backend *b;
    int rc = fy_io_backend_pick("auto", &b, rep->io_note, sizeof rep->io_note, err);
    if (rc < 0) return rc;
    snprintf(rep->io_backend, sizeof rep->io_backend, "%s", b->name);
    fy_io *io;
    if ((rc = b->open(&(fy_io_config){.queue_depth = o->depth, .allow_direct = true}, &io, err)) <
        0)
        return rc;
    void *bufs[INFLIGHT] = {NULL};
    fy_io_file *f = NULL;
    for (int k = 0; k < INFLIGHT && rc == 0; k++) {
        if (posix_memalign(&bufs[k], 4096, req) != 0) {
            rc = fy_error_set(err, FY_ENOMEM, "probe: out of memory for %zu-byte buffers", req);
            break;
        }
        uint64_t s = 0x9e3779b97f4a7c15ull * (uint64_t)(k + 1);
        for (uint64_t *p = bufs[k], *end = p + req / 8; p < end; p++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            *p = s;
        }
    }
    if (rc == 0 && (rc = b->file_open(io, dir, FY_IO_CREATE_TEMP, &f, err)) < 0 && err)
        fy_error_prefix(err, "probe: cannot create a file in '%s'", dir);
    double t0 = now_s();
    if (rc == 0) rc = stream(b, io, f, true, total, req, bufs, err);
    if (rc == 0) rc = sync_and_drop(fy_io_file_path(f), err);
    double t1 = now_s();
    if (rc == 0) rc = stream(b, io, f, false, total, req, bufs, err);
    double t2 = now_s();
    if (rc == 0) {
        rep->write_s = t1 - t0;
        rep->read_s = t2 - t1;
        rep->direct = fy_io_file_direct(f);
        if (!rep->direct && !rep->io_note[0])
            snprintf(rep->io_note, sizeof rep->io_note, "O_DIRECT off: %s", fy_io_file_note(f));
        m->nvme_write = (double)total / (rep->write_s > 1e-9 ? rep->write_s : 1e-9);
        m->nvme_read = (double)total / (rep->read_s > 1e-9 ? rep->read_s : 1e-9);
    }
    if (f) b->file_close(io, f);
    b->close(io);
    for (int k = 0; k < INFLIGHT; k++)
        free(bufs[k]);
    return rc;
}

int fy_machine_probe(const fy_probe_options *o, fy_machine *m, fy_probe_report *rep, fy_error *err)
{
    memset(rep, 0, sizeof *rep);
    const char *dir = o->dir ? o->dir : m->nvme_dir;
    if (strlen(dir) >= sizeof m->nvme_dir)
        return fy_error_set(err, FY_ERANGE, "probe: folder name longer than %zu bytes",
                            sizeof m->nvme_dir - 1);
    char real[FY_MACHINE_DIR_MAX];
    if (!realpath(dir, real))
        return fy_error_set(err, fy_status_from_errno(errno), "probe: folder '%s': %s", dir,
                            strerror(errno));
    int rc = probe_nvme(o, real, m, rep, err);
    if (rc < 0) return rc;
    snprintf(m->nvme_dir, sizeof m->nvme_dir, "%s", real);
    struct statvfs vfs;
    if (statvfs(real, &vfs) == 0) m->capacity[FY_TIER_NVME] = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    if (o->gpu) {
        const fy_device_backend *b;
        fy_device_probe_result r;
        fy_error gerr = {0};
        if (fy_device_backend_cuda(&b, &gerr) == 0 && fy_device_probe(b, 0, &r, &gerr) == 0) {
            m->h2d = r.h2d;
            m->d2h = r.d2h;
            m->gpu_compute = r.matmul_flops;
            rep->gpu_measured = true;
            snprintf(rep->gpu, sizeof rep->gpu, "%s", r.description);
        } else {
            snprintf(rep->gpu, sizeof rep->gpu, "not measured: %s", gerr.message);
        }
    }
    if (o->host) {
        fy_device_probe_result r;
        /* 1024^3 bf16 matmuls: long enough to time, short enough for a probe */
        if ((rc = fy_device_probe(&fy_device_backend_sim, 1024, &r, err)) < 0) return rc;
        m->host_compute = r.matmul_flops;
        rep->host_measured = true;
    }
    return 0;
}
