/* Fault injection: a truncated weight file, a spill directory that fills up (a file-size
 * limit, and a wrapped io backend returning ENOSPC), a flipped byte in the spill file, an
 * io error, a plan failing its check. Each run must end with the right status and a message
 * naming event, tensor, file and cause, leave no spill file, leak nothing (ASan), and never
 * hang (alarm). The wrapped backend delegates to the threads backend. */
#include "test_util.h"

#include "engine/io.h"
#include "engine_plans.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

/* ---- a wrapped io backend ---------------------------------------------------------- */

enum { FAULT_NONE, FAULT_READ_EIO, FAULT_WRITE_ENOSPC, FAULT_FLIP, FAULT_SUBMIT };

static int fault_mode;
static int fault_after; /* the fault hits the n-th matching request (0: the first) */
static int fault_hits;

typedef struct flip_rec {
    uint64_t tag, offset;
    const fy_io_file *file;
} flip_rec;

typedef struct wrap {
    fy_io *inner;
    fy_io_completion injected[64];
    size_t ninjected;
    flip_rec flips[256];
    size_t nflips;
} wrap;

static const fy_io_backend *inner_b(void)
{
    return &fy_io_backend_threads;
}

static int w_open(const fy_io_config *cfg, fy_io **out, fy_error *err)
{
    wrap *w = calloc(1, sizeof *w);
    int rc = inner_b()->open(cfg, &w->inner, err);
    if (rc < 0) {
        free(w);
        return rc;
    }
    *out = (fy_io *)w;
    return 0;
}

static void w_close(fy_io *io)
{
    wrap *w = (wrap *)io;
    if (!w) return;
    inner_b()->close(w->inner);
    free(w);
}

static int w_register(fy_io *io, void *base, size_t len, fy_error *err)
{
    return inner_b()->register_buffer(((wrap *)io)->inner, base, len, err);
}

static int w_file_open(fy_io *io, const char *path, int mode, fy_io_file **out, fy_error *err)
{
    return inner_b()->file_open(((wrap *)io)->inner, path, mode, out, err);
}

static void w_file_close(fy_io *io, fy_io_file *f)
{
    inner_b()->file_close(((wrap *)io)->inner, f);
}

static bool is_spill(const fy_io_file *f)
{
    return strstr(fy_io_file_path(f), ".tmp") != NULL;
}

static bool hit(void)
{
    return fault_hits++ == fault_after;
}

static void inject(wrap *w, uint64_t tag, int status, const char *detail)
{
    fy_io_completion *c = &w->injected[w->ninjected++];
    memset(c, 0, sizeof *c);
    c->tag = tag;
    c->status = status;
    snprintf(c->detail, sizeof c->detail, "%s", detail);
}

static int w_read(fy_io *io, fy_io_file *f, uint64_t off, void *buf, size_t len, uint64_t tag,
                  fy_error *err)
{
    wrap *w = (wrap *)io;
    if (fault_mode == FAULT_READ_EIO && hit()) {
        inject(w, tag, FY_EIO, "Input/output error (injected)");
        return 0;
    }
    if (fault_mode == FAULT_SUBMIT && hit())
        return fy_error_set(err, FY_ENOMEM, "cannot queue the read (injected)");
    return inner_b()->submit_read(w->inner, f, off, buf, len, tag, err);
}

static int w_write(fy_io *io, fy_io_file *f, uint64_t off, const void *buf, size_t len,
                   uint64_t tag, fy_error *err)
{
    wrap *w = (wrap *)io;
    if (fault_mode == FAULT_WRITE_ENOSPC && is_spill(f) && hit()) {
        inject(w, tag, FY_ENOSPC, "No space left on device (injected)");
        return 0;
    }
    if (fault_mode == FAULT_FLIP && is_spill(f) && len && w->nflips < 256)
        w->flips[w->nflips++] = (flip_rec){tag, off + len / 2, f};
    return inner_b()->submit_write(w->inner, f, off, buf, len, tag, err);
}

static int w_watch(fy_io *io, int fd, uint64_t tag, fy_error *err)
{
    return inner_b()->watch_fd(((wrap *)io)->inner, fd, tag, err);
}

/* Flips one byte of the file after its write completed, behind the engine's back. */
static void flip(const fy_io_file *f, uint64_t off)
{
    int fd = open(fy_io_file_path(f), O_RDWR);
    unsigned char b = 0;
    if (fd < 0 || pread(fd, &b, 1, (off_t)off) != 1) fail_msg("cannot corrupt the spill file");
    b ^= 0x40;
    if (pwrite(fd, &b, 1, (off_t)off) != 1) fail_msg("cannot corrupt the spill file");
    close(fd);
}

static int w_wait(fy_io *io, fy_io_completion *out, size_t max, fy_error *err)
{
    wrap *w = (wrap *)io;
    if (w->ninjected) {
        size_t n = w->ninjected < max ? w->ninjected : max;
        memcpy(out, w->injected, n * sizeof *out);
        memmove(w->injected, w->injected + n, (w->ninjected - n) * sizeof *out);
        w->ninjected -= n;
        return (int)n;
    }
    int n = inner_b()->wait(w->inner, out, max, err);
    for (int k = 0; k < n; k++)
        for (size_t m = 0; m < w->nflips; m++)
            if (!out[k].watch && out[k].tag == w->flips[m].tag && out[k].status == 0 && hit()) {
                flip(w->flips[m].file, w->flips[m].offset);
                w->flips[m].tag = UINT64_MAX;
            }
    return n;
}

static void w_info(fy_io *io, fy_io_info *out)
{
    inner_b()->info(((wrap *)io)->inner, out);
}

static const fy_io_backend wrapped = {
    .name = "wrapped-threads",
    .open = w_open,
    .close = w_close,
    .register_buffer = w_register,
    .file_open = w_file_open,
    .file_close = w_file_close,
    .submit_read = w_read,
    .submit_write = w_write,
    .watch_fd = w_watch,
    .wait = w_wait,
    .info = w_info,
};

/* ---- fixture ----------------------------------------------------------------------- */

typedef struct fixture {
    char *dir;
    char weights[4200], nvme[4200];
    fy_graph *g;
    fy_plan *plan;
    fy_engine_buffer in[4], out[4];
    size_t nin, nout;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = fy_test_scratch("faults");
    snprintf(f->weights, sizeof f->weights, "%s/w.bin", f->dir);
    snprintf(f->nvme, sizeof f->nvme, "%s/nvme", f->dir);
    mkdir(f->nvme, 0700);
    /* Tensors of 16 KiB: checksums run on the worker for none, inline for all. */
    eg_graph_params gp = {.seed = 11,
                          .ops = 8,
                          .batch = 64,
                          .hidden = 64,
                          .weights = 3,
                          .host_ops = false,
                          .weights_path = f->weights};
    f->g = eg_graph(&gp);
    assert_non_null(f->g);
    eg_policy spill = {.seed = 2, .p_evict = 1, .p_spill = 1, .reuse = true};
    f->plan = eg_plan(f->g, &spill);
    assert_non_null(f->plan);
    for (size_t t = 0; t < fy_graph_tensor_count(f->g); t++) {
        const fy_tensor *tn = fy_graph_tensor(f->g, t);
        if (tn->home == FY_TIER_HOST) {
            f->in[f->nin] = (fy_engine_buffer){tn->name, malloc(tn->size), tn->size};
            eg_fill(f->in[f->nin++].data, tn->size, t);
        }
        if (tn->kind == FY_TENSOR_OUTPUT)
            f->out[f->nout++] = (fy_engine_buffer){tn->name, malloc(tn->size), tn->size};
    }
    fault_mode = FAULT_NONE;
    fault_after = fault_hits = 0;
    *state = f;
    alarm(120);
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    alarm(0);
    for (size_t k = 0; k < f->nin; k++)
        free(f->in[k].data);
    for (size_t k = 0; k < f->nout; k++)
        free(f->out[k].data);
    fy_plan_destroy(f->plan);
    fy_graph_destroy(f->g);
    fy_test_scratch_remove(f->dir);
    free(f);
    return 0;
}

/* Runs the fixture's plan with the wrapped backend (or io by name); returns the status. */
static int run(fixture *f, const char *io, fy_error *err)
{
    fy_engine *eng;
    fy_engine_config cfg = {.device = "sim",
                            .nvme_dir = f->nvme,
                            .threads = 1,
                            .io = io,
                            .io_backend = io ? NULL : &wrapped};
    int rc = fy_engine_open(&cfg, &eng, err);
    if (rc < 0) return rc;
    fy_engine_run_args a = {
        .inputs = f->in, .input_count = f->nin, .outputs = f->out, .output_count = f->nout};
    fy_engine_report rep;
    rc = fy_engine_run(eng, f->plan, &a, &rep, err);
    if (rc < 0) assert_null(rep.events);
    fy_engine_report_free(&rep);
    fy_engine_close(eng);
    assert_int_equal(fy_test_dir_entries(f->nvme), 0); /* nothing left behind, ever */
    return rc;
}

static void test_engine_faults_clean_run_passes_through_the_wrapper(void **state)
{
    fixture *f = *state;
    fy_error err = {0};
    if (run(f, NULL, &err) < 0) fail_msg("%s", err.message);
}

static void test_engine_faults_truncated_weights_name_event_tensor_and_file(void **state)
{
    fixture *f = *state;
    assert_int_equal(truncate(f->weights, 5000), 0);
    fy_error err = {0};
    assert_int_equal(run(f, "threads", &err), FY_EIO);
    assert_non_null(strstr(err.message, "(load 'w"));
    assert_non_null(strstr(err.message, "nvme->host"));
    assert_non_null(strstr(err.message, "w.bin holds 5000 bytes"));
    assert_non_null(strstr(err.message, "truncated"));
}

/* A read that fails in flight (a media error) stops the run after draining the rest. */
static void test_engine_faults_io_error_names_event_and_cause(void **state)
{
    fixture *f = *state;
    fy_error err = {0};
    fault_mode = FAULT_READ_EIO;
    fault_after = 1;
    int rc = run(f, NULL, &err);
    assert_int_equal(rc, FY_EIO);
    assert_non_null(strstr(err.message, "Input/output error (injected)"));
    assert_non_null(strstr(err.message, "event "));
    assert_non_null(strstr(err.message, "nvme->host"));
}

static void test_engine_faults_spill_dir_full_enospc(void **state)
{
    fixture *f = *state;
    fault_mode = FAULT_WRITE_ENOSPC;
    fy_error err = {0};
    assert_int_equal(run(f, NULL, &err), FY_ENOSPC);
    assert_non_null(strstr(err.message, "host->nvme"));
    assert_non_null(strstr(err.message, "the spill file"));
    assert_non_null(strstr(err.message, "No space left on device"));
}

/* An unprivileged full disk: a file-size limit (SIGXFSZ ignored), so spill writes past it
 * fail with EFBIG, on every io backend. */
static void test_engine_faults_spill_file_size_limit(void **state)
{
    fixture *f = *state;
    const char *ios[] = {"threads", "io_uring"};
    for (int k = 0; k < 2; k++) {
        struct rlimit old, lim;
        getrlimit(RLIMIT_FSIZE, &old);
        lim = old;
        lim.rlim_cur = 20000;
        signal(SIGXFSZ, SIG_IGN);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        fy_error err = {0};
        int rc = run(f, ios[k], &err);
        setrlimit(RLIMIT_FSIZE, &old);
        signal(SIGXFSZ, SIG_DFL);
        if (rc == FY_EUNSUPPORTED) {
            fprintf(stderr, "skipping %s: %s\n", ios[k], err.message);
            continue;
        }
        assert_true(rc < 0);
        assert_non_null(strstr(err.message, "host->nvme"));
        assert_non_null(strstr(err.message, "spill file"));
        assert_non_null(strstr(err.message, "large")); /* "File too large" */
    }
}

static void test_engine_faults_flipped_spill_byte_is_a_checksum_mismatch(void **state)
{
    fixture *f = *state;
    fault_mode = FAULT_FLIP;
    fy_error err = {0};
    assert_int_equal(run(f, NULL, &err), FY_ECHECKSUM);
    assert_non_null(strstr(err.message, "checksum mismatch"));
    assert_non_null(strstr(err.message, "nvme->host"));
    assert_non_null(strstr(err.message, "read back from the spill file"));
    assert_non_null(strstr(err.message, "into the host arena at offset"));
    assert_non_null(strstr(err.message, "crc32c 0x"));
}

static void test_engine_faults_refused_submission_stops_the_run(void **state)
{
    fixture *f = *state;
    fault_mode = FAULT_SUBMIT;
    fault_after = 2;
    fy_error err = {0};
    assert_int_equal(run(f, NULL, &err), FY_ENOMEM);
    assert_non_null(strstr(err.message, "cannot queue the read (injected)"));
}

static void test_engine_faults_plan_failing_its_check_is_refused(void **state)
{
    fixture *f = *state;
    fy_error err = {0};
    fy_plan *bad;
    assert_int_equal(fy_plan_create(f->g, NULL, &bad, &err), 0);
    /* The first op with none of its operands loaded. */
    fy_placement p = {.tensor = (int32_t)fy_graph_op(f->g, 0)->writes[0], .offset = 0};
    assert_true(
        fy_plan_add(bad,
                    &(fy_event){.kind = FY_EVENT_COMPUTE, .op = 0, .places = &p, .place_count = 1},
                    &err) >= 0);
    fy_plan_set_arena(bad, FY_TIER_GPU, 1 << 20);
    fy_engine *eng;
    assert_int_equal(fy_engine_open(&(fy_engine_config){.device = "sim"}, &eng, &err), 0);
    fy_engine_run_args a = {.inputs = f->in, .input_count = f->nin};
    assert_int_equal(fy_engine_run(eng, bad, &a, NULL, &err), FY_ECHECK);
    assert_non_null(strstr(err.message, "fails its check"));
    assert_non_null(strstr(err.message, "never-loaded"));
    fy_engine_close(eng);
    fy_plan_destroy(bad);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_engine_faults_clean_run_passes_through_the_wrapper),
        T(test_engine_faults_truncated_weights_name_event_tensor_and_file),
        T(test_engine_faults_io_error_names_event_and_cause),
        T(test_engine_faults_spill_dir_full_enospc),
        T(test_engine_faults_spill_file_size_limit),
        T(test_engine_faults_flipped_spill_byte_is_a_checksum_mismatch),
        T(test_engine_faults_refused_submission_stops_the_run),
        T(test_engine_faults_plan_failing_its_check_is_refused),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
