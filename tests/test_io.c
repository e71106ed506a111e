/* I/O backends: every case runs under io_uring and under the threads backend (io_uring
 * cases skip, saying why, where the kernel refuses it). Files are small and live in a
 * scratch folder; their bytes are a function of their offset, so any slice can be checked. */
#include "test_util.h"
#include "core/clock.h"

#include "engine/io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

static uint8_t pattern(uint64_t at)
{
    uint64_t x = (at + 0x9E3779B97F4A7C15ull) * 0xBF58476D1CE4E5B9ull;
    return (uint8_t)(x >> 56 ^ x >> 29);
}

static void check_bytes(const uint8_t *buf, uint64_t offset, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (buf[i] != pattern(offset + i))
            fail_msg("byte %zu of a read at %llu: %u, expected %u", i, (unsigned long long)offset,
                     buf[i], pattern(offset + i));
}

static char *make_file(const char *dir, const char *name, uint64_t size)
{
    char *path = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint8_t block[8192];
    for (uint64_t at = 0; at < size; at += sizeof block) {
        size_t n = size - at < sizeof block ? (size_t)(size - at) : sizeof block;
        for (size_t i = 0; i < n; i++)
            block[i] = pattern(at + i);
        assert_int_equal(fwrite(block, 1, n, f), n);
    }
    assert_int_equal(fclose(f), 0);
    return path;
}

static void *aligned(size_t size)
{
    void *p = NULL;
    assert_int_equal(posix_memalign(&p, 4096, size), 0);
    return p;
}

/* The backend under test, or a skip naming why io_uring cannot run here. */
static const fy_io_backend *backend_of(void **state)
{
    const fy_io_backend *b = *state;
    if (b == &fy_io_backend_uring) {
        fy_error err = {0};
        if (fy_io_uring_probe(&err) < 0) {
            print_message("skipped: %s\n", err.message);
            skip();
        }
    }
    return b;
}

static fy_io *open_io(const fy_io_backend *b, fy_io_config cfg)
{
    fy_io *io = NULL;
    fy_error err = {0};
    if (b->open(&cfg, &io, &err) < 0) fail_msg("%s open: %s", b->name, err.message);
    return io;
}

static fy_io_file *open_file(const fy_io_backend *b, fy_io *io, const char *path, int mode)
{
    fy_io_file *f = NULL;
    fy_error err = {0};
    if (b->file_open(io, path, mode, &f, &err) < 0) fail_msg("open '%s': %s", path, err.message);
    return f;
}

/* Waits for exactly one completion and returns it. */
static fy_io_completion wait_one(const fy_io_backend *b, fy_io *io)
{
    fy_io_completion c;
    fy_error err = {0};
    int n = b->wait(io, &c, 1, &err);
    if (n != 1) fail_msg("wait: %d %s", n, err.message);
    return c;
}

static void read_ok(const fy_io_backend *b, fy_io *io, fy_io_file *f, uint64_t offset, uint8_t *buf,
                    size_t len)
{
    fy_error err = {0};
    memset(buf, 0xEE, len);
    if (b->submit_read(io, f, offset, buf, len, 1000 + offset, &err) < 0)
        fail_msg("submit: %s", err.message);
    fy_io_completion c = wait_one(b, io);
    if (c.status != 0) fail_msg("read %zu at %llu: %s", len, (unsigned long long)offset, c.detail);
    assert_int_equal(c.tag, 1000 + offset);
    assert_false(c.watch);
    assert_int_equal(c.bytes, len);
    check_bytes(buf, offset, len);
}

/* Whether this folder's filesystem takes O_DIRECT (ext4 does, old tmpfs does not). */
static bool fs_takes_direct(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECT);
    if (fd >= 0) close(fd);
    return fd >= 0;
}

#define FILE_SIZE (3u * 1024 * 1024 + 777)

static void test_io_reads_any_offset_and_length(void **state)
{
    const fy_io_backend *b = backend_of(state);
    char *dir = fy_test_scratch("io");
    char *path = make_file(dir, "data", FILE_SIZE);
    /* Small chunks and depth, so that a request spans many chunks and more than one round. */
    fy_io *io =
        open_io(b, (fy_io_config){.queue_depth = 4, .chunk_size = 64 * 1024, .allow_direct = true});
    fy_io_file *f = open_file(b, io, path, FY_IO_READ);
    assert_int_equal(fy_io_file_size(f), FILE_SIZE);
    assert_string_equal(fy_io_file_path(f), path);
    assert_int_equal(fy_io_file_direct(f), fs_takes_direct(path));
    if (!fy_io_file_direct(f)) assert_true(strlen(fy_io_file_note(f)) > 0);
    uint8_t *mem = aligned(FILE_SIZE + 8192);
    static const struct {
        uint64_t offset;
        size_t len, misalign;
    } cases[] = {
        {0, 1 << 20, 0},              /* aligned everything */
        {100, 300000, 100},           /* same misalignment: buffered head, direct body, tail */
        {4095, 8193, 4095},           /* head of 1 byte, one block, tail of 2 */
        {5, 10000, 3},                /* different misalignment: all buffered */
        {4096, 5000, 0},              /* length not a multiple of the block */
        {8192, 0, 0},                 /* nothing */
        {0, FILE_SIZE, 0},            /* the whole file, more than chunk * depth */
        {FILE_SIZE - 1000, 1000, 0},  /* up to the last byte */
        {12288, 4096, 0},             /* exactly one block */
        {65535, 2 * 65536 + 3, 4095}, /* across chunk edges */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        read_ok(b, io, f, cases[i].offset, mem + cases[i].misalign, cases[i].len);
    /* Still direct: no chunk was sent to O_DIRECT misaligned (the kernel would refuse it). */
    assert_int_equal(fy_io_file_direct(f), fs_takes_direct(path));
    b->file_close(io, f);
    b->close(io);
    free(mem);
    free(path);
    fy_test_scratch_remove(dir);
}

static void test_io_many_requests_complete_in_any_order(void **state)
{
    const fy_io_backend *b = backend_of(state);
    char *dir = fy_test_scratch("io");
    char *path = make_file(dir, "data", FILE_SIZE);
    fy_io *io =
        open_io(b, (fy_io_config){.queue_depth = 8, .chunk_size = 16 * 1024, .allow_direct = true});
    fy_io_file *f = open_file(b, io, path, FY_IO_READ);
    enum { N = 150, SLOT = 80 * 1024 };
    uint8_t *mem = aligned((size_t)N * SLOT);
    uint64_t offsets[N];
    size_t lens[N], misalign[N];
    bool seen[N] = {false};
    uint64_t x = 88172645463325252ull;
    fy_error err = {0};
    for (int i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        lens[i] = (size_t)(x % (SLOT - 4096));
        offsets[i] = (x >> 20) % (FILE_SIZE - lens[i]);
        misalign[i] = i % 3 == 0 ? 0 : (i % 3 == 1 ? offsets[i] % 4096 : (x >> 40) % 4096);
        if (b->submit_read(io, f, offsets[i], mem + (size_t)i * SLOT + misalign[i], lens[i],
                           (uint64_t)i, &err) < 0)
            fail_msg("submit %d: %s", i, err.message);
    }
    fy_io_completion done[7]; /* fewer than N: wait() is called many times */
    int got = 0;
    while (got < N) {
        int n = b->wait(io, done, 7, &err);
        if (n <= 0) fail_msg("wait: %s", err.message);
        for (int k = 0; k < n; k++) {
            uint64_t i = done[k].tag;
            assert_true(i < N);
            assert_false(seen[i]);
            seen[i] = true;
            if (done[k].status != 0)
                fail_msg("request %llu: %s", (unsigned long long)i, done[k].detail);
            assert_int_equal(done[k].bytes, lens[i]);
            check_bytes(mem + i * SLOT + misalign[i], offsets[i], lens[i]);
        }
        got += n;
    }
    /* All returned: waiting again would block forever, so it is refused. */
    assert_int_equal(b->wait(io, done, 7, &err), FY_ESTATE);
    b->close(io);
    free(mem);
    free(path);
    fy_test_scratch_remove(dir);
}

static void submit_write_ok(const fy_io_backend *b, fy_io *io, fy_io_file *f, uint64_t offset,
                            const uint8_t *buf, size_t len)
{
    fy_error err = {0};
    if (b->submit_write(io, f, offset, buf, len, 7, &err) < 0)
        fail_msg("submit write: %s", err.message);
    fy_io_completion c = wait_one(b, io);
    if (c.status != 0) fail_msg("write %zu at %llu: %s", len, (unsigned long long)offset, c.detail);
    assert_int_equal(c.bytes, len);
}

static void test_io_write_then_read_back(void **state)
{
    const fy_io_backend *b = backend_of(state);
    char *dir = fy_test_scratch("io");
    fy_io *io =
        open_io(b, (fy_io_config){.queue_depth = 3, .chunk_size = 32 * 1024, .allow_direct = true});
    enum { SIZE = 1 << 20 };
    uint8_t *src = aligned(SIZE + 4096), *back = aligned(SIZE + 4096);
    for (size_t i = 0; i < SIZE + 4096; i++)
        src[i] = pattern(i);
    for (int mode = FY_IO_WRITE; mode <= FY_IO_CREATE_TEMP; mode++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/written", dir);
        fy_io_file *f = open_file(b, io, mode == FY_IO_WRITE ? path : dir, mode);
        /* Pieces in an order that leaves holes then fills them; aligned and not. */
        submit_write_ok(b, io, f, 500000, src + 500000, SIZE - 500000); /* same misalign */
        submit_write_ok(b, io, f, 0, src, 4096);                        /* one block */
        submit_write_ok(b, io, f, 4096, src + 4096 + 1, 1);             /* misaligned byte */
        submit_write_ok(b, io, f, 4096, src + 4096, 100000);            /* overwrites it */
        submit_write_ok(b, io, f, 104096, src + 104096, 500000 - 104096);
        read_ok(b, io, f, 0, back, SIZE);
        read_ok(b, io, f, 3, back + 1, SIZE - 3);
        assert_int_equal(fy_io_file_direct(f), fs_takes_direct(fy_io_file_path(f)));
        b->file_close(io, f);
    }
    b->close(io);
    free(src);
    free(back);
    fy_test_scratch_remove(dir);
}

static void test_io_temp_file_is_private_new_and_removed(void **state)
{
    const fy_io_backend *b = backend_of(state);
    char *dir = fy_test_scratch("io");
    fy_io *io = open_io(b, (fy_io_config){0});
    fy_io_file *f = open_file(b, io, dir, FY_IO_CREATE_TEMP);
    char first[4200];
    snprintf(first, sizeof first, "%s", fy_io_file_path(f));
    assert_memory_equal(first, dir, strlen(dir));
    struct stat st;
    assert_int_equal(stat(first, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    b->file_close(io, f);
    assert_int_equal(stat(first, &st), -1);
    assert_int_equal(errno, ENOENT);

    /* The next names (same prefix, counter + 1...) already exist: none may be touched. */
    char *dash = strrchr(first, '-');
    assert_non_null(dash);
    unsigned long long seq = strtoull(dash + 1, NULL, 10);
    *dash = '\0';
    char taken[20][4300];
    for (int i = 0; i < 20; i++) {
        snprintf(taken[i], sizeof taken[i], "%s-%llu.tmp", first, seq + 1 + i);
        FILE *o = fopen(taken[i], "w");
        assert_non_null(o);
        fputs("precious", o);
        fclose(o);
    }
    f = open_file(b, io, dir, FY_IO_CREATE_TEMP);
    for (int i = 0; i < 20; i++) {
        assert_string_not_equal(fy_io_file_path(f), taken[i]);
        char buf[16] = {0};
        FILE *o = fopen(taken[i], "r");
        assert_non_null(o);
        assert_int_equal(fread(buf, 1, sizeof buf, o), 8);
        fclose(o);
        assert_string_equal(buf, "precious");
    }
    /* A temp file left open is removed by close() too. */
    char second[4200];
    snprintf(second, sizeof second, "%s", fy_io_file_path(f));
    assert_int_equal(stat(second, &st), 0);
    b->close(io);
    assert_int_equal(stat(second, &st), -1);
    fy_test_scratch_remove(dir);
}

static void test_io_truncated_file_read_fails_naming_the_end(void **state)
{
    const fy_io_backend *b = backend_of(state);
    char *dir = fy_test_scratch("io");
    char *path = make_file(dir, "short", 10000);
    uint8_t *mem = aligned(1 << 20);
    for (int direct = 0; direct <= 1; direct++) {
        fy_io *io = open_io(
            b, (fy_io_config){.queue_depth = 4, .chunk_size = 4096, .allow_direct = direct});
        fy_io_file *f = open_file(b, io, path, FY_IO_READ);
        fy_error err = {0};
        static const uint64_t at[][2] = {{0, 20000}, {8192, 4096}, {50000, 100}, {9999, 2}};
        for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
            assert_int_equal(b->submit_read(io, f, at[i][0], mem, at[i][1], 5, &err), 0);
            fy_io_completion c = wait_one(b, io);
            assert_int_equal(c.status, FY_EIO);
            char want[128];
            snprintf(want, sizeof want, "ends at byte 10000, needed %llu",
                     (unsigned long long)(at[i][0] + at[i][1]));
            if (!strstr(c.detail, want) || !strstr(c.detail, path))
                fail_msg("detail '%s' lacks '%s'", c.detail, want);
            assert_true(c.bytes < at[i][1]);
        }
        b->close(io); /* the file too */
    }
    free(mem);
    free(path);
    fy_test_scratch_remove(dir);
}

/* /dev/full takes every open and refuses every write with ENOSPC, unprivileged; it also
 * refuses O_DIRECT, so it shows the fallback at open as well. */
static void test_io_write_to_full_device_is_no_space(void **state)
{
    const fy_io_backend *b = backend_of(state);
    if (access("/dev/full", W_OK) != 0) {
        print_message("skipped: no writable /dev/full\n");
        skip();
    }
    fy_io *io = open_io(b, (fy_io_config){.chunk_size = 4096, .allow_direct = true});
    fy_io_file *f = open_file(b, io, "/dev/full", FY_IO_WRITE);
    assert_false(fy_io_file_direct(f));
    assert_non_null(strstr(fy_io_file_note(f), "O_DIRECT refused at open"));
    uint8_t *buf = aligned(100000);
    memset(buf, 1, 100000);
    fy_error err = {0};
    assert_int_equal(b->submit_write(io, f, 0, buf, 100000, 3, &err), 0);
    fy_io_completion c = wait_one(b, io);
    assert_int_equal(c.tag, 3);
    assert_int_equal(c.status, FY_ENOSPC);
    assert_non_null(strstr(c.detail, "/dev/full"));
    assert_non_null(strstr(c.detail, "write"));
    /* 25 chunks failed, one completion: nothing more to wait for. */
    assert_int_equal(b->wait(io, &c, 1, &err), FY_ESTATE);
    b->file_close(io, f);
    b->close(io);
    free(buf);
}

static void test_io_direct_refused_at_open_reads_buffered(void **state)
{
    const fy_io_backend *b = backend_of(state);
    fy_io *io = open_io(b, (fy_io_config){.allow_direct = true});
    fy_io_file *f = open_file(b, io, "/dev/zero", FY_IO_READ);
    assert_false(fy_io_file_direct(f));
    assert_non_null(strstr(fy_io_file_note(f), "O_DIRECT refused at open"));
    uint8_t buf[10000];
    memset(buf, 7, sizeof buf);
    fy_error err = {0};
    assert_int_equal(b->submit_read(io, f, 0, buf, sizeof buf, 1, &err), 0);
    fy_io_completion c = wait_one(b, io);
    assert_int_equal(c.status, 0);
    for (size_t i = 0; i < sizeof buf; i++)
        assert_int_equal(buf[i], 0);
    b->close(io);
}

/* Forcing an alignment of 1 sends misaligned chunks to O_DIRECT; a filesystem that wants
 * its blocks (ext4, xfs) answers EINVAL and the file goes on buffered. */
static void test_io_direct_refused_at_run_time_reads_buffered(void **state)
{
    const fy_io_backend *b = backend_of(state);
    char *dir = fy_test_scratch("io");
    char *path = make_file(dir, "data", 100000);
    if (!fs_takes_direct(path)) {
        print_message("skipped: the scratch filesystem refuses O_DIRECT\n");
        free(path);
        fy_test_scratch_remove(dir);
        skip();
    }
    int fd = open(path, O_RDONLY | O_DIRECT);
    uint8_t *mem = aligned(200000);
    bool strict = pread(fd, mem + 1, 4096, 3) < 0 && errno == EINVAL;
    close(fd);
    fy_io *io = open_io(
        b, (fy_io_config){
               .queue_depth = 4, .chunk_size = 8192, .allow_direct = true, .direct_align = 1});
    fy_io_file *f = open_file(b, io, path, FY_IO_READ);
    assert_true(fy_io_file_direct(f));
    read_ok(b, io, f, 3, mem + 1, 90000);
    if (strict) {
        assert_false(fy_io_file_direct(f));
        assert_non_null(strstr(fy_io_file_note(f), "run time"));
    }
    read_ok(b, io, f, 5, mem, 1000);
    b->close(io);
    free(mem);
    free(path);
    fy_test_scratch_remove(dir);
}

static void *write_eventfd_later(void *arg)
{
    int fd = *(int *)arg;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    uint64_t one = 1;
    assert_int_equal(write(fd, &one, sizeof one), 8);
    return NULL;
}

static void test_io_watched_eventfd_wakes_wait(void **state)
{
    const fy_io_backend *b = backend_of(state);
    fy_io *io = open_io(b, (fy_io_config){0});
    int efd = eventfd(0, EFD_CLOEXEC);
    assert_true(efd >= 0);
    fy_error err = {0};
    assert_int_equal(b->watch_fd(io, efd, 99, &err), 0);
    for (int round = 0; round < 3; round++) { /* re-armed after each wake-up */
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, write_eventfd_later, &efd), 0);
        fy_io_completion c = wait_one(b, io);
        pthread_join(th, NULL);
        assert_int_equal(c.tag, 99);
        assert_true(c.watch);
        assert_int_equal(c.status, 0);
        assert_int_equal(c.bytes, 1);
    }
    /* Writes before the wait coalesce into one completion carrying the count. */
    uint64_t three = 3;
    assert_int_equal(write(efd, &three, 8), 8);
    assert_int_equal(write(efd, &three, 8), 8);
    fy_io_completion c = wait_one(b, io);
    assert_true(c.watch);
    assert_int_equal(c.bytes, 6);
    b->close(io);
    close(efd);
}

/* wait_for gives up after its timeout with 0 completions, and otherwise returns what is ready
 * as wait does: a watch's wake-up, a request's completion. */
static void test_io_wait_for_times_out_or_returns_what_is_ready(void **state)
{
    const fy_io_backend *b = backend_of(state);
    assert_non_null(b->wait_for);
    char *dir = fy_test_scratch("io");
    char *path = make_file(dir, "f", 4096);
    fy_io *io = open_io(b, (fy_io_config){0});
    fy_io_completion c[4];
    fy_error err = {0};
    assert_int_equal(b->wait_for(io, c, 4, 1000000, &err), FY_ESTATE); /* nothing to wait for */
    int efd = eventfd(0, EFD_CLOEXEC);
    assert_true(efd >= 0);
    assert_int_equal(b->watch_fd(io, efd, 5, &err), 0);
    for (int round = 0; round < 3; round++) {
        uint64_t t0 = fy_now_ns();
        assert_int_equal(b->wait_for(io, c, 4, 2000000, &err), 0);
        uint64_t waited = fy_now_ns() - t0;
        assert_true(waited >= 1900000);   /* it waited its 2 ms... */
        assert_true(waited < 1000000000); /* ...and did not block for good */
    }
    uint64_t one = 1;
    assert_int_equal(write(efd, &one, 8), 8);
    assert_int_equal(b->wait_for(io, c, 4, 1000000000, &err), 1);
    assert_true(c[0].watch);
    assert_int_equal(c[0].tag, 5);
    fy_io_file *f = open_file(b, io, path, FY_IO_READ);
    uint8_t *buf = aligned(4096);
    assert_int_equal(b->submit_read(io, f, 0, buf, 4096, 77, &err), 0);
    int n = 0;
    for (int tries = 0; tries < 100000 && n == 0; tries++) {
        n = b->wait_for(io, c, 4, 100000, &err);
        assert_true(n >= 0);
    }
    assert_int_equal(n, 1);
    assert_int_equal(c[0].tag, 77);
    assert_int_equal(c[0].status, 0);
    check_bytes(buf, 0, 4096);
    assert_int_equal(b->wait_for(io, c, 0, 1000, &err), FY_EINVAL);
    b->file_close(io, f);
    b->close(io);
    close(efd);
    free(buf);
    free(path);
    fy_test_scratch_remove(dir);
}

/* A watched fd that breaks (here a pipe whose writer is gone: readable, but reads 0 bytes)
 * is reported once, with its tag, and then no longer watched. */
static void test_io_broken_watch_is_reported_once(void **state)
{
    const fy_io_backend *b = backend_of(state);
    fy_io *io = open_io(b, (fy_io_config){0});
    int p[2];
    assert_int_equal(pipe(p), 0);
    fy_error err = {0};
    assert_int_equal(b->watch_fd(io, p[0], 31, &err), 0);
    close(p[1]);
    fy_io_completion c = wait_one(b, io);
    assert_int_equal(c.tag, 31);
    assert_true(c.watch);
    assert_int_equal(c.status, FY_EIO);
    assert_non_null(strstr(c.detail, "watched fd"));
    assert_int_equal(b->wait(io, &c, 1, &err), FY_ESTATE);
    b->close(io);
    close(p[0]);
}

static void test_io_watch_and_requests_share_wait(void **state)
{
    const fy_io_backend *b = backend_of(state);
    char *dir = fy_test_scratch("io");
    char *path = make_file(dir, "data", 200000);
    fy_io *io = open_io(b, (fy_io_config){.chunk_size = 4096});
    fy_io_file *f = open_file(b, io, path, FY_IO_READ);
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    fy_error err = {0};
    assert_int_equal(b->watch_fd(io, efd, 5, &err), 0);
    uint8_t *mem = aligned(200000);
    assert_int_equal(b->submit_read(io, f, 0, mem, 200000, 6, &err), 0);
    uint64_t one = 1;
    assert_int_equal(write(efd, &one, 8), 8);
    bool got_watch = false, got_read = false;
    while (!got_watch || !got_read) {
        fy_io_completion c = wait_one(b, io);
        if (c.watch) {
            assert_int_equal(c.tag, 5);
            got_watch = true;
        } else {
            assert_int_equal(c.tag, 6);
            assert_int_equal(c.status, 0);
            got_read = true;
        }
    }
    check_bytes(mem, 0, 200000);
    b->close(io);
    close(efd);
    free(mem);
    free(path);
    fy_test_scratch_remove(dir);
}

/* Our threads. The kernel's io_uring workers come and go on their own (and carry our name
 * for a moment after they start), so they are told apart by PF_IO_WORKER in their flags. */
static int thread_count(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[300], line[1024];
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue; /* it ended meanwhile */
        char *close_paren = fgets(line, sizeof line, f) ? strrchr(line, ')') : NULL;
        fclose(f);
        unsigned long flags = 0;
        if (close_paren && sscanf(close_paren + 2, "%*c %*d %*d %*d %*d %*d %lu", &flags) == 1 &&
            !(flags & 0x10 /* PF_IO_WORKER */))
            n++;
    }
    closedir(d);
    return n;
}

/* The thread count, once it settles at want (up to 2 s). pthread_join returns when the
 * kernel clears the thread's tid, a moment before its /proc/self/task entry goes, so a
 * joined thread can still be counted briefly; a thread really left behind stays counted. */
static int thread_count_settled(int want)
{
    int n = thread_count();
    for (int i = 0; i < 200 && n != want; i++) {
        usleep(10000);
        n = thread_count();
    }
    return n;
}

/* The thread count once it holds still for 50 ms (a previous test's joined threads may
 * still be listed for a moment). */
static int thread_count_stable(void)
{
    int n = thread_count();
    for (int i = 0; i < 40; i++) {
        usleep(50000);
        int again = thread_count();
        if (again == n) break;
        n = again;
    }
    return n;
}

/* Run under ASan: nothing leaks, no thread is left, no buffer is written after close. */
static void test_io_close_with_requests_in_flight_releases_all(void **state)
{
    const fy_io_backend *b = backend_of(state);
    int threads_before = thread_count_stable();
    char *dir = fy_test_scratch("io");
    char *path = make_file(dir, "data", 1 << 20);
    for (int direct = 0; direct <= 1; direct++) {
        fy_io *io = open_io(
            b, (fy_io_config){.queue_depth = 4, .chunk_size = 8192, .allow_direct = direct});
        fy_io_info info;
        b->info(io, &info); /* the count sees the backend's own threads */
        assert_int_equal(thread_count_settled(threads_before + (int)info.workers),
                         threads_before + (int)info.workers);
        fy_io_file *f = open_file(b, io, path, FY_IO_READ);
        fy_io_file *t = open_file(b, io, dir, FY_IO_CREATE_TEMP);
        int efd = eventfd(0, EFD_CLOEXEC);
        fy_error err = {0};
        assert_int_equal(b->watch_fd(io, efd, 1, &err), 0);
        uint8_t *mem = aligned(64 << 20), *out = aligned(1 << 16);
        memset(out, 9, 1 << 16);
        for (int i = 0; i < 64; i++) {
            assert_int_equal(b->submit_read(io, f, 0, mem + ((size_t)i << 20), 1 << 20, i, &err),
                             0);
            assert_int_equal(b->submit_write(io, t, (uint64_t)i << 16, out, 1 << 16, i, &err), 0);
        }
        /* A file closed while its requests are out stays usable to them. */
        b->file_close(io, f);
        b->close(io);
        free(mem);
        free(out);
        close(efd);
        assert_int_equal(thread_count_settled(threads_before), threads_before);
    }
    free(path);
    fy_test_scratch_remove(dir);
}

static void test_io_file_closed_early_completes_its_requests(void **state)
{
    const fy_io_backend *b = backend_of(state);
    char *dir = fy_test_scratch("io");
    char *path = make_file(dir, "data", 300000);
    fy_io *io = open_io(b, (fy_io_config){.queue_depth = 2, .chunk_size = 4096});
    fy_io_file *f = open_file(b, io, path, FY_IO_READ);
    uint8_t *mem = aligned(300000);
    fy_error err = {0};
    assert_int_equal(b->submit_read(io, f, 0, mem, 300000, 4, &err), 0);
    b->file_close(io, f);
    fy_io_completion c = wait_one(b, io);
    assert_int_equal(c.status, 0);
    check_bytes(mem, 0, 300000);
    b->close(io);
    free(mem);
    free(path);
    fy_test_scratch_remove(dir);
}

/* Reads into and around a registered region without cmocka's asserts, so that it can run in
 * a child: returns 0, or the line of the check that failed. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) return __LINE__;                                                              \
    } while (0)

static int read_check(const fy_io_backend *b, fy_io *io, fy_io_file *f, uint64_t offset,
                      uint8_t *buf, size_t len)
{
    fy_error err = {0};
    fy_io_completion c;
    memset(buf, 0xEE, len);
    CHECK(b->submit_read(io, f, offset, buf, len, 1, &err) == 0);
    CHECK(b->wait(io, &c, 1, &err) == 1 && c.status == 0 && c.bytes == len);
    for (size_t i = 0; i < len; i++)
        CHECK(buf[i] == pattern(offset + i));
    return 0;
}

enum { REGION = 2 << 20 };

static int registered_reads(const fy_io_backend *b, const char *path, uint8_t *region, int want_rc,
                            const char *want_note)
{
    fy_io *io = NULL;
    fy_error err = {0};
    fy_io_config cfg = {.chunk_size = 64 * 1024, .allow_direct = true};
    CHECK(b->open(&cfg, &io, &err) == 0);
    int rc = b->register_buffer(io, region, REGION, &err);
    fy_io_info info;
    b->info(io, &info);
    CHECK(strcmp(info.backend, b->name) == 0);
    CHECK(rc == 0 || rc == 1);
    CHECK(info.buffer_registered == (rc == 1));
    CHECK(want_rc < 0 || rc == want_rc);
    CHECK(!want_note || strstr(info.note, want_note));
    CHECK(b->register_buffer(io, region, REGION, &err) == FY_ESTATE);
    fy_io_file *f = NULL;
    CHECK(b->file_open(io, path, FY_IO_READ, &f, &err) == 0);
    int line = read_check(b, io, f, 0, region, 1 << 20); /* inside the region */
    if (!line) line = read_check(b, io, f, 4096, region + REGION - 5000, 5000); /* at its end */
    uint8_t *outside = aligned(1 << 20);
    if (!line) line = read_check(b, io, f, 77, outside + 77, 500000); /* an ordinary buffer */
    free(outside);
    b->close(io);
    return line;
}

/* Whether this process may pin memory past RLIMIT_MEMLOCK. */
static bool has_ipc_lock(void)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2] = {{0}};
    return syscall(SYS_capget, &h, d) == 0 &&
           (d[CAP_IPC_LOCK / 32].effective & (1u << (CAP_IPC_LOCK % 32)));
}

static void test_io_registered_buffer_and_its_refusal(void **state)
{
    const fy_io_backend *b = backend_of(state);
    char *dir = fy_test_scratch("io");
    char *path = make_file(dir, "data", 1 << 20);
    uint8_t *region = aligned(REGION);
    struct rlimit lim;
    assert_int_equal(getrlimit(RLIMIT_MEMLOCK, &lim), 0);
    /* Registered where the limit leaves room; the threads backend never registers. */
    int want = b == &fy_io_backend_threads ? 0 : -1;
    if (want < 0 && (has_ipc_lock() || lim.rlim_cur == RLIM_INFINITY || lim.rlim_cur >= 4 * REGION))
        want = 1;
    int line = registered_reads(b, path, region, want, NULL);
    if (line) fail_msg("check at line %d failed", line);

    /* A child without CAP_IPC_LOCK and with a limit below the region: refused, plain reads. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
        struct __user_cap_data_struct d[2] = {{0}};
        if (syscall(SYS_capget, &h, d) != 0) _exit(255);
        d[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
        struct rlimit low = {64 * 1024, lim.rlim_max};
        if (syscall(SYS_capset, &h, d) != 0 || setrlimit(RLIMIT_MEMLOCK, &low) != 0) _exit(255);
        _exit(registered_reads(b, path, region, 0,
                               b == &fy_io_backend_threads ? NULL : "RLIMIT_MEMLOCK") &
              0xff);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0)
        fail_msg("refusal child: %s", WEXITSTATUS(status) == 255
                                          ? "cannot drop CAP_IPC_LOCK"
                                          : "a check failed (line mod 256 in the exit code)");
    free(region);
    free(path);
    fy_test_scratch_remove(dir);
}

static void test_io_refuses_bad_calls_with_reasons(void **state)
{
    const fy_io_backend *b = backend_of(state);
    char *dir = fy_test_scratch("io");
    char *path = make_file(dir, "data", 4096);
    fy_error err = {0};
    fy_io *io = NULL;
    assert_int_equal(b->open(&(fy_io_config){.queue_depth = 1u << 20}, &io, &err), FY_EINVAL);
    assert_null(io);
    assert_int_equal(b->open(&(fy_io_config){.chunk_size = (size_t)2 << 30}, &io, &err), FY_EINVAL);
    assert_int_equal(b->open(&(fy_io_config){.direct_align = 3000}, &io, &err), FY_EINVAL);
    assert_non_null(strstr(err.message, "power of two"));
    assert_int_equal(b->open(&(fy_io_config){.workers = 5000}, &io, &err), FY_EINVAL);
    assert_int_equal(b->open(NULL, &io, &err), 0); /* all defaults */
    fy_io_info info;
    b->info(io, &info);
    assert_int_equal(info.queue_depth, FY_IO_DEFAULT_DEPTH);
    assert_int_equal(info.chunk_size, FY_IO_DEFAULT_CHUNK);

    fy_io_completion c;
    assert_int_equal(b->wait(io, &c, 1, &err), FY_ESTATE); /* nothing to wait for */
    assert_int_equal(b->wait(io, &c, 0, &err), FY_EINVAL);

    fy_io_file *f = NULL;
    char missing[4200];
    snprintf(missing, sizeof missing, "%s/nope", dir);
    assert_int_equal(b->file_open(io, missing, FY_IO_READ, &f, &err), FY_ENOENT);
    assert_non_null(strstr(err.message, missing));
    assert_int_equal(b->file_open(io, missing, FY_IO_CREATE_TEMP, &f, &err), FY_ENOENT);
    assert_int_equal(b->file_open(io, dir, FY_IO_READ, &f, &err), FY_EINVAL);
    assert_non_null(strstr(err.message, "folder"));
    assert_int_equal(b->file_open(io, path, 42, &f, &err), FY_EINVAL);
    assert_int_equal(b->file_open(io, NULL, FY_IO_READ, &f, &err), FY_EINVAL);

    f = open_file(b, io, path, FY_IO_READ);
    uint8_t buf[64];
    assert_int_equal(b->submit_write(io, f, 0, buf, 64, 1, &err), FY_EINVAL);
    assert_non_null(strstr(err.message, "opened for reading"));
    assert_int_equal(b->submit_read(io, f, 0, NULL, 64, 1, &err), FY_EINVAL);
    assert_int_equal(b->submit_read(io, NULL, 0, buf, 64, 1, &err), FY_EINVAL);
    assert_int_equal(b->submit_read(io, f, UINT64_MAX - 10, buf, 64, 1, &err), FY_ERANGE);
    assert_int_equal(b->register_buffer(io, NULL, 64, &err), FY_EINVAL);

    /* A closed file whose request is still out refuses new ones. */
    assert_int_equal(b->submit_read(io, f, 0, buf, 64, 1, &err), 0);
    b->file_close(io, f);
    assert_int_equal(b->submit_read(io, f, 0, buf, 64, 2, &err), FY_ESTATE);
    assert_int_equal(b->register_buffer(io, buf, 64, &err), FY_ESTATE); /* after submits */
    c = wait_one(b, io);
    assert_int_equal(c.status, 0);

    assert_int_equal(b->watch_fd(io, -1, 1, &err), FY_EINVAL);
    int efd = eventfd(0, EFD_CLOEXEC);
    assert_int_equal(b->watch_fd(io, efd, 1, &err), 0);
    assert_int_equal(b->watch_fd(io, efd, 2, &err), FY_EINVAL);
    assert_non_null(strstr(err.message, "already watched"));
    b->close(io);
    b->close(NULL);
    close(efd);
    free(path);
    fy_test_scratch_remove(dir);
}

static void test_io_pick_by_name(void **state)
{
    (void)state;
    const fy_io_backend *b = NULL;
    char why[256];
    fy_error err = {0};
    assert_int_equal(fy_io_backend_pick("threads", &b, why, sizeof why, &err), 0);
    assert_ptr_equal(b, &fy_io_backend_threads);
    assert_int_equal(fy_io_backend_pick("bogus", &b, why, sizeof why, &err), FY_EINVAL);
    assert_non_null(strstr(err.message, "bogus"));
    fy_error probe = {0};
    bool uring = fy_io_uring_probe(&probe) == 0;
    assert_int_equal(fy_io_backend_pick("auto", &b, why, sizeof why, &err), 0);
    assert_ptr_equal(b, uring ? &fy_io_backend_uring : &fy_io_backend_threads);
    assert_int_equal(why[0] != '\0', !uring);
    assert_int_equal(fy_io_backend_pick("io_uring", &b, NULL, 0, &err),
                     uring ? 0 : FY_EUNSUPPORTED);
}

/* In a child that seccomp forbids io_uring_setup (as container runtimes do), "auto" falls
 * back to threads and says why, and "io_uring" is refused. */
static void test_io_pick_falls_back_when_io_uring_is_refused(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct sock_filter prog[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_io_uring_setup, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog fprog = {.len = sizeof prog / sizeof prog[0], .filter = prog};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
            prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog) != 0)
            _exit(10);
        const fy_io_backend *b = NULL;
        char why[256];
        fy_error err = {0};
        if (fy_io_backend_pick("auto", &b, why, sizeof why, &err) != 0) _exit(1);
        if (b != &fy_io_backend_threads || !strstr(why, "Operation not permitted") ||
            !strstr(why, "threads"))
            _exit(2);
        if (fy_io_backend_pick("io_uring", &b, why, sizeof why, &err) != FY_EUNSUPPORTED ||
            !strstr(err.message, "refuses io_uring"))
            _exit(3);
        fy_io *io = NULL;
        if (fy_io_backend_uring.open(NULL, &io, &err) != FY_EUNSUPPORTED || io) _exit(4);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 10) {
        print_message("skipped: cannot install a seccomp filter here\n");
        skip();
    }
    assert_int_equal(WEXITSTATUS(status), 0);
}

#define BOTH(f)                                                                                    \
    {#f "/io_uring", f, NULL, NULL, (void *)&fy_io_backend_uring},                                 \
    {                                                                                              \
#f "/threads", f, NULL, NULL, (void *)&fy_io_backend_threads                               \
    }

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_io_reads_any_offset_and_length),
        BOTH(test_io_many_requests_complete_in_any_order),
        BOTH(test_io_write_then_read_back),
        BOTH(test_io_temp_file_is_private_new_and_removed),
        BOTH(test_io_truncated_file_read_fails_naming_the_end),
        BOTH(test_io_write_to_full_device_is_no_space),
        BOTH(test_io_direct_refused_at_open_reads_buffered),
        BOTH(test_io_direct_refused_at_run_time_reads_buffered),
        BOTH(test_io_watched_eventfd_wakes_wait),
        BOTH(test_io_wait_for_times_out_or_returns_what_is_ready),
        BOTH(test_io_watch_and_requests_share_wait),
        BOTH(test_io_broken_watch_is_reported_once),
        BOTH(test_io_close_with_requests_in_flight_releases_all),
        BOTH(test_io_file_closed_early_completes_its_requests),
        BOTH(test_io_registered_buffer_and_its_refusal),
        BOTH(test_io_refuses_bad_calls_with_reasons),
        cmocka_unit_test(test_io_pick_by_name),
        cmocka_unit_test(test_io_pick_falls_back_when_io_uring_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
