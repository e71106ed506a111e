/* bench_io_stream: streams a file into memory with a ferry I/O backend, or with a plain
 * pread loop as the baseline, and prints the rate. It also creates the test file (with a
 * pattern it checks on each read, so a fast number cannot come from reads that did nothing)
 * and evicts a file from the page cache. bench/io_stream.sh drives it.
 *
 *   bench_io_stream create FILE SIZE
 *   bench_io_stream evict FILE
 *   bench_io_stream read FILE [--backend auto|io_uring|threads] [--depth N] [--chunk SIZE]
 *                   [--request SIZE] [--buffer SIZE] [--buffered] [--register]
 *   bench_io_stream pread FILE [--block SIZE] [--direct]
 */
#include "engine/io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The file holds word(i) at byte 8 * i. */
static uint64_t word(uint64_t i)
{
    uint64_t z = i + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    return z ^ (z >> 31);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int usage(void)
{
    fprintf(stderr, "usage: bench_io_stream create FILE SIZE | evict FILE |\n"
                    "       read FILE [--backend NAME] [--depth N] [--chunk SIZE] "
                    "[--request SIZE] [--buffer SIZE] [--buffered] [--register] |\n"
                    "       pread FILE [--block SIZE] [--direct]\n");
    return 2;
}

static void *alloc_aligned(size_t size)
{
    void *p = NULL;
    if (posix_memalign(&p, 4096, size) != 0) {
        fprintf(stderr, "bench_io_stream: out of memory for %zu bytes\n", size);
        exit(1);
    }
    memset(p, 0, size); /* fault the pages in now, not inside the timed part */
    return p;
}

/* Checks the first word of every 4 KiB page of a piece read from file offset `at`. */
static int verify(const char *buf, uint64_t at, size_t len)
{
    for (size_t off = 0; off + 8 <= len; off += 4096) {
        uint64_t w;
        memcpy(&w, buf + off, 8);
        if ((at + off) % 8 == 0 && w != word((at + off) / 8)) {
            fprintf(stderr, "bench_io_stream: wrong data at byte %llu\n",
                    (unsigned long long)(at + off));
            return -1;
        }
    }
    return 0;
}

static int do_create(const char *path, uint64_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "bench_io_stream: %s: %s\n", path, strerror(errno));
        return 1;
    }
    size_t block = 8 << 20;
    uint64_t *buf = alloc_aligned(block);
    for (uint64_t at = 0; at < size; at += block) {
        size_t n = size - at < block ? (size_t)(size - at) : block;
        for (size_t i = 0; i < block / 8; i++)
            buf[i] = word(at / 8 + i);
        if (pwrite(fd, buf, n, (off_t)at) != (ssize_t)n) {
            fprintf(stderr, "bench_io_stream: writing %s: %s\n", path, strerror(errno));
            return 1;
        }
        /* Keep the page cache clean as we go: the file is meant to be read from disk. */
        if ((at / block) % 16 == 15) {
            fdatasync(fd);
            posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        }
    }
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
    free(buf);
    return 0;
}

static int do_evict(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "bench_io_stream: %s: %s\n", path, strerror(errno));
        return 1;
    }
    fdatasync(fd);
    int rc = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
    if (rc != 0) {
        fprintf(stderr, "bench_io_stream: evicting %s: %s\n", path, strerror(rc));
        return 1;
    }
    return 0;
}

static void report(const char *what, uint64_t bytes, double secs)
{
    char human[32];
    printf("%s: %s in %.3f s = %.3f GB/s\n", what, fy_size_format_human(bytes, human, sizeof human),
           secs, (double)bytes / secs / 1e9);
}

static int do_pread(const char *path, size_t block, bool direct)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0));
    if (fd < 0) {
        fprintf(stderr, "bench_io_stream: %s: %s\n", path, strerror(errno));
        return 1;
    }
    char *buf = alloc_aligned(block);
    uint64_t total = 0;
    double t0 = now();
    for (;;) {
        ssize_t n = pread(fd, buf, block, (off_t)total);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            fprintf(stderr, "bench_io_stream: reading %s: %s\n", path, strerror(errno));
            return 1;
        }
        if (n == 0) break;
        if (verify(buf, total, (size_t)n) < 0) return 1;
        total += (uint64_t)n;
    }
    double t = now() - t0;
    char what[128], bs[32];
    snprintf(what, sizeof what, "pread loop block=%s%s", fy_size_format_exact(block, bs, sizeof bs),
             direct ? " O_DIRECT" : "");
    report(what, total, t);
    close(fd);
    free(buf);
    return 0;
}

typedef struct read_opts {
    const char *backend;
    fy_io_config cfg;
    size_t request, buffer;
    bool reg;
} read_opts;

static int fail(const fy_error *err)
{
    fprintf(stderr, "bench_io_stream: %s\n", err->message);
    return 1;
}

/* Keeps every slot of the buffer busy with one request each, until the file is read. */
static int do_read(const char *path, const read_opts *o)
{
    fy_error err = {0};
    const fy_io_backend *b;
    char why[256];
    if (fy_io_backend_pick(o->backend, &b, why, sizeof why, &err) < 0) return fail(&err);
    if (why[0]) fprintf(stderr, "bench_io_stream: %s\n", why);
    fy_io *io;
    if (b->open(&o->cfg, &io, &err) < 0) return fail(&err);
    fy_io_file *f;
    if (b->file_open(io, path, FY_IO_READ, &f, &err) < 0) return fail(&err);
    if (o->cfg.allow_direct && !fy_io_file_direct(f))
        fprintf(stderr, "bench_io_stream: %s\n", fy_io_file_note(f));
    uint64_t size = fy_io_file_size(f);
    size_t buffer = o->buffer < size ? o->buffer : (size_t)size;
    size_t request = o->request < buffer ? o->request : buffer;
    size_t slots = buffer / request;
    if (slots > 0xffff) /* the slot travels in the low 16 bits of the tag */
        slots = 0xffff;
    char *mem = alloc_aligned(slots * request);
    if (o->reg && b->register_buffer(io, mem, slots * request, &err) < 0) return fail(&err);
    fy_io_info info;
    b->info(io, &info);
    if (o->reg && !info.buffer_registered) fprintf(stderr, "bench_io_stream: %s\n", info.note);

    uint64_t next = 0, total = 0;
    size_t out = 0;
    double t0 = now();
    for (size_t s = 0; s < slots && next < size; s++, out++) {
        size_t n = size - next < request ? (size_t)(size - next) : request;
        if (b->submit_read(io, f, next, mem + s * request, n, next << 16 | s, &err) < 0)
            return fail(&err);
        next += n;
    }
    fy_io_completion done[64];
    while (out > 0) {
        int n = b->wait(io, done, 64, &err);
        if (n < 0) return fail(&err);
        for (int k = 0; k < n; k++) {
            if (done[k].status != 0) {
                fprintf(stderr, "bench_io_stream: %s\n", done[k].detail);
                return 1;
            }
            size_t s = (size_t)(done[k].tag & 0xffff);
            if (verify(mem + s * request, done[k].tag >> 16, done[k].bytes) < 0) return 1;
            total += done[k].bytes;
            out--;
            if (next < size) {
                size_t len = size - next < request ? (size_t)(size - next) : request;
                if (b->submit_read(io, f, next, mem + s * request, len, next << 16 | s, &err) < 0)
                    return fail(&err);
                next += len;
                out++;
            }
        }
    }
    double t = now() - t0;
    char what[256], cs[32], rs[32];
    snprintf(what, sizeof what, "ferry %s depth=%u chunk=%s request=%s%s%s", info.backend,
             info.queue_depth, fy_size_format_exact(info.chunk_size, cs, sizeof cs),
             fy_size_format_exact(request, rs, sizeof rs),
             fy_io_file_direct(f) ? " O_DIRECT" : " buffered",
             info.buffer_registered ? " registered" : "");
    report(what, total, t);
    b->file_close(io, f);
    b->close(io);
    free(mem);
    return 0;
}

static int size_arg(const char *text, size_t *out)
{
    uint64_t v;
    fy_error err = {0};
    if (fy_size_parse(text, &v, &err) < 0 || v == 0 || v > SIZE_MAX) {
        fprintf(stderr, "bench_io_stream: bad size '%s'\n", text);
        return -1;
    }
    *out = (size_t)v;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) return usage();
    const char *mode = argv[1], *path = argv[2];
    if (strcmp(mode, "create") == 0) {
        size_t size;
        if (argc != 4 || size_arg(argv[3], &size) < 0) return usage();
        return do_create(path, size);
    }
    if (strcmp(mode, "evict") == 0) return argc == 3 ? do_evict(path) : usage();
    read_opts o = {.backend = "auto",
                   .cfg = {.allow_direct = true},
                   .request = 64 << 20,
                   .buffer = (size_t)1 << 30};
    size_t block = 4 << 20;
    bool direct = false;
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        size_t n;
        if (strcmp(a, "--buffered") == 0)
            o.cfg.allow_direct = false;
        else if (strcmp(a, "--direct") == 0)
            direct = true;
        else if (strcmp(a, "--register") == 0)
            o.reg = true;
        else if (!v)
            return usage();
        else if (strcmp(a, "--backend") == 0)
            o.backend = v, i++;
        else if (strcmp(a, "--depth") == 0)
            o.cfg.queue_depth = (unsigned)strtoul(v, NULL, 10), i++;
        else if (size_arg(v, &n) < 0)
            return usage();
        else if (strcmp(a, "--chunk") == 0)
            o.cfg.chunk_size = n, i++;
        else if (strcmp(a, "--request") == 0)
            o.request = n, i++;
        else if (strcmp(a, "--buffer") == 0)
            o.buffer = n, i++;
        else if (strcmp(a, "--block") == 0)
            block = n, i++;
        else
            return usage();
    }
    if (strcmp(mode, "read") == 0) return do_read(path, &o);
    if (strcmp(mode, "pread") == 0) return do_pread(path, block, direct);
    return usage();
}
