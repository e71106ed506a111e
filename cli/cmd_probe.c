/* `ferry probe`: measures the machine it runs on and writes a machine file, so that
 * `ferry simulate` and `ferry plan` predict for this machine. Every field it cannot measure
 * keeps fy_machine_default's value; the temporary file it streams is removed on every path. */
#include "cli/commands.h"
#include "core/clock.h"
#include "engine/device_probe.h"
#include "engine/io.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* Bytes per request: large enough to keep the queue full of 1 MiB chunks, small enough that
 * a 1 GiB probe does not need 1 GiB of memory. */
#define PROBE_REQUEST ((size_t)64 << 20)
#define PROBE_DEPTH 32u

static void usage(FILE *out)
{
    fprintf(out, "usage: ferry probe [--dir PATH] [--size SIZE] [-o machine.yaml]\n\n"
                 "Measures this machine and writes a machine file (ferry simulate --machine,\n"
                 "ferry plan --machine) so predictions use its rates instead of the defaults:\n"
                 "  nvme  write then read a temporary file of SIZE in PATH through the engine's\n"
                 "        io backend (io_uring, or threads where refused; O_DIRECT where the\n"
                 "        filesystem allows it, the page cache dropped before the read); the\n"
                 "        capacity is the free space of PATH's filesystem (statvfs)\n"
                 "  host  capacity: physical memory (sysconf _SC_PHYS_PAGES x page size);\n"
                 "        compute keeps the default\n"
                 "  gpu   with a CUDA device: pinned h2d and d2h copy rates and the bf16 matmul\n"
                 "        rate; the capacity keeps the default; without one, all gpu fields keep\n"
                 "        the default\n\n"
                 "options:\n"
                 "  --dir PATH   where the nvme test file goes, created if missing (default: the\n"
                 "               default machine's nvme dir, /var/tmp/ferry); written as nvme dir\n"
                 "  --size SIZE  bytes to write and read (default 1GiB; more is steadier)\n"
                 "  -o FILE      the machine file (default or '-': stdout)\n"
                 "exit status: 0 measured and written, 2 unusable dir, failed I/O or write\n");
}

/* Makes dir if it is missing (not its parents) and checks it is a writable folder. */
static int prepare_dir(const char *dir, fy_error *err)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return fy_error_set(err, fy_status_from_errno(errno), "%s: cannot create the probe dir: %s",
                            dir, strerror(errno));
    struct stat st;
    if (stat(dir, &st) != 0)
        return fy_error_set(err, fy_status_from_errno(errno), "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return fy_error_set(err, FY_EINVAL, "%s: not a directory", dir);
    if (access(dir, W_OK | X_OK) != 0)
        return fy_error_set(err, fy_status_from_errno(errno), "%s: cannot write there: %s", dir,
                            strerror(errno));
    return 0;
}

/* Streams [0, size) of f through b, one PROBE_REQUEST at a time (each cut into chunks that
 * keep the queue full). */
static int stream(const fy_io_backend *b, fy_io *io, fy_io_file *f, bool write, char *buf,
                  uint64_t size, fy_error *err)
{
    for (uint64_t off = 0; off < size;) {
        size_t len = size - off < PROBE_REQUEST ? (size_t)(size - off) : PROBE_REQUEST;
        int rc = write ? b->submit_write(io, f, off, buf, len, off, err)
                       : b->submit_read(io, f, off, buf, len, off, err);
        if (rc < 0) return rc;
        fy_io_completion done;
        rc = b->wait(io, &done, 1, err);
        if (rc < 0) return rc;
        if (done.status < 0) return fy_error_set(err, done.status, "%s", done.detail);
        off += len;
    }
    return 0;
}

typedef struct nvme_result {
    double write, read;
    bool direct;
    const char *backend;
    char note[256];
} nvme_result;

/* Writes then reads a temporary file of size bytes in dir; the file is removed on close. */
static int probe_nvme(const char *dir, uint64_t size, nvme_result *out, fy_error *err)
{
    const fy_io_backend *b;
    char why[256] = "";
    fy_io *io = NULL;
    fy_io_file *f = NULL;
    char *buf = NULL;
    int fd = -1;
    size_t blen = size < PROBE_REQUEST ? (size_t)size : PROBE_REQUEST;
    int rc = fy_io_backend_pick("auto", &b, why, sizeof why, err);
    if (rc == 0)
        rc = b->open(&(fy_io_config){.queue_depth = PROBE_DEPTH,
                                     .chunk_size = FY_IO_DEFAULT_CHUNK,
                                     .allow_direct = true},
                     &io, err);
    if (rc == 0 && posix_memalign((void **)&buf, 4096, blen) != 0)
        rc = fy_error_set(err, FY_ENOMEM, "out of memory for a %zu-byte probe buffer", blen);
    if (rc == 0) {
        for (size_t i = 0; i < blen; i++)
            buf[i] = (char)(i * 131 + 7); /* not all zeros */
        rc = b->file_open(io, dir, FY_IO_CREATE_TEMP, &f, err);
    }
    if (rc < 0) goto done;
    snprintf(out->note, sizeof out->note, "%s", why);
    out->backend = b->name;
    out->direct = fy_io_file_direct(f);
    /* A second descriptor of the same file: fdatasync counts the flush in the write time
     * (buffered writes otherwise measure memory), and fadvise drops the cached pages. */
    fd = open(fy_io_file_path(f), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = fy_error_set(err, fy_status_from_errno(errno), "%s: %s", fy_io_file_path(f),
                          strerror(errno));
        goto done;
    }
    double t0 = fy_now_s();
    rc = stream(b, io, f, true, buf, size, err);
    if (rc == 0 && fdatasync(fd) != 0)
        rc = fy_error_set(err, fy_status_from_errno(errno), "%s: fdatasync: %s", fy_io_file_path(f),
                          strerror(errno));
    double t1 = fy_now_s();
    if (rc < 0) goto done;
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED); /* advice: a refusal only slows us */
    double t2 = fy_now_s();
    rc = stream(b, io, f, false, buf, size, err);
    double t3 = fy_now_s();
    if (rc < 0) goto done;
    /* A clock tick of 0 on a tiny file would give an infinite rate; 1ns is the floor. */
    out->write = (double)size / (t1 - t0 > 1e-9 ? t1 - t0 : 1e-9);
    out->read = (double)size / (t3 - t2 > 1e-9 ? t3 - t2 : 1e-9);
done:
    if (rc < 0) fy_error_prefix(err, "probing nvme in %s: ", dir);
    if (fd >= 0) close(fd);
    if (io) {
        b->file_close(io, f);
        b->close(io);
    }
    free(buf);
    return rc;
}

/* Measures the gpu when a CUDA device answers; keeps m's defaults otherwise. */
static void probe_gpu(fy_machine *m)
{
    const fy_device_backend *b = NULL;
    fy_error err = {0};
    if (fy_device_backend_cuda(&b, &err) < 0) {
        fprintf(stderr, "gpu: none found, keeping the default rates (%s)\n", err.message);
        return;
    }
    fy_device_probe_result r;
    int rc = fy_device_probe(b, 0, &r, &err);
    if (rc == FY_EUNSUPPORTED) { /* built with CUDA, but no device or driver here */
        fprintf(stderr, "gpu: none found, keeping the default rates (%s)\n", err.message);
        return;
    }
    if (rc < 0) {
        fprintf(stderr, "gpu: the probe failed, keeping the default rates: %s\n", err.message);
        return;
    }
    char h[32], d[32], c[32];
    fprintf(stderr, "gpu: %s: h2d %s, d2h %s, matmul %sFLOPS (%llu^3 bf16)\n", r.description,
            fy_rate_format(r.h2d, h, sizeof h), fy_rate_format(r.d2h, d, sizeof d),
            fy_flops_format(r.matmul_flops, c, sizeof c), (unsigned long long)r.matmul_size);
    if (r.h2d > 0) m->h2d = r.h2d;
    if (r.d2h > 0) m->d2h = r.d2h;
    if (r.matmul_flops > 0) m->gpu_compute = r.matmul_flops;
}

int fy_cmd_probe(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
                                         {"size", required_argument, NULL, 's'},
                                         {"output", required_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    fy_machine m;
    fy_machine_default(&m);
    const char *dir = NULL, *output = "-";
    uint64_t size = 1ull << 30;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            dir = optarg;
            break;
        case 's':
            if (fy_cli_size("probe", "--size", optarg, &size) != 0) return FY_EXIT_FAILURE;
            if (size == 0) return fy_cli_fail("probe", "--size must be more than zero");
            break;
        case 'o':
            output = optarg;
            break;
        case 'h':
            usage(stdout);
            return FY_EXIT_OK;
        default:
            usage(stderr);
            return FY_EXIT_FAILURE;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return FY_EXIT_FAILURE;
    }
    if (!dir) dir = m.nvme_dir;
    if (strlen(dir) >= sizeof m.nvme_dir)
        return fy_cli_fail("probe", "--dir is longer than %zu bytes", sizeof m.nvme_dir - 1);
    char dir_copy[FY_MACHINE_DIR_MAX];
    snprintf(dir_copy, sizeof dir_copy, "%s", dir);

    fy_error err = {0};
    nvme_result nv = {0};
    if (prepare_dir(dir_copy, &err) < 0 || probe_nvme(dir_copy, size, &nv, &err) < 0)
        return fy_cli_fail("probe", "%s", err.message);
    struct statvfs vfs;
    if (statvfs(dir_copy, &vfs) != 0)
        return fy_cli_fail("probe", "%s: statvfs: %s", dir_copy, strerror(errno));
    snprintf(m.nvme_dir, sizeof m.nvme_dir, "%s", dir_copy);
    m.nvme_write = nv.write;
    m.nvme_read = nv.read;
    m.capacity[FY_TIER_NVME] = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
    char w[32], r[32], s[32], cap[32];
    if (nv.note[0]) fprintf(stderr, "nvme: %s\n", nv.note);
    fprintf(stderr, "nvme: %s in %s: write %s, read %s (%s, %s), %s free\n",
            fy_size_format_human(size, s, sizeof s), m.nvme_dir,
            fy_rate_format(nv.write, w, sizeof w), fy_rate_format(nv.read, r, sizeof r), nv.backend,
            nv.direct ? "O_DIRECT" : "buffered, cache dropped before the read",
            fy_size_format_human(m.capacity[FY_TIER_NVME], cap, sizeof cap));

    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) {
        m.capacity[FY_TIER_HOST] = (uint64_t)pages * (uint64_t)page;
        fprintf(stderr, "host: %s of physical memory, compute keeps the default\n",
                fy_size_format_human(m.capacity[FY_TIER_HOST], cap, sizeof cap));
    } else {
        fprintf(stderr, "host: memory size unknown, keeping the default capacity\n");
    }
    probe_gpu(&m);

    if (fy_machine_save(&m, output, &err) < 0) return fy_cli_report(&err);
    if (strcmp(output, "-") != 0) {
        char h[32], d[32], g[32];
        printf("wrote %s: nvme read %s write %s, host %s, gpu h2d %s d2h %s compute %sFLOPS\n",
               output, fy_rate_format(m.nvme_read, r, sizeof r),
               fy_rate_format(m.nvme_write, w, sizeof w),
               fy_size_format_human(m.capacity[FY_TIER_HOST], cap, sizeof cap),
               fy_rate_format(m.h2d, h, sizeof h), fy_rate_format(m.d2h, d, sizeof d),
               fy_flops_format(m.gpu_compute, g, sizeof g));
    }
    return FY_EXIT_OK;
}
