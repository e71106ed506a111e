/* Emulation and weight verification on real checkpoints: a checkpoint the test writes byte by
 * byte (one file, then shards) is imported, planned under a small gpu budget, checked and run
 * on sim with `spin` standing in for its compute, and every weight's bytes are verified to
 * arrive intact — by the engine against the files, and independently by kernels of the
 * test's own that compare what they are handed with the pattern the test wrote. */
#include "st_util.h"

#include "engine/io.h"
#include "ferry/check.h"
#include "ferry/engine.h"
#include "ferry/import.h"
#include "ferry/planner.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

static char *scratch;

static int setup(void **state)
{
    (void)state;
    scratch = fy_test_scratch("emulate");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fy_test_scratch_remove(scratch);
    return 0;
}

static void path_of(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", scratch, name);
}

#define H 32
#define V 96
#define F 64

/* A llama-shaped checkpoint of three layers in the common dtypes, out of name order. */
static const st_spec llama[] = {
    {"model.embed_tokens.weight", "BF16", 16, 2, {V, H}},
    {"model.layers.0.input_layernorm.weight", "F32", 32, 1, {H}},
    {"model.layers.0.self_attn.q_proj.weight", "F16", 16, 2, {H, H}},
    {"model.layers.0.mlp.down_proj.weight", "BF16", 16, 2, {H, F}},
    {"model.layers.2.self_attn.q_proj.weight", "F32", 32, 2, {H, H}},
    {"model.layers.1.input_layernorm.weight", "F16", 16, 1, {H}},
    {"model.layers.1.self_attn.q_proj.weight", "I8", 8, 2, {H, H}},
    {"model.layers.1.mlp.down_proj.weight", "U8", 8, 2, {H, F}},
    {"model.layers.2.input_layernorm.weight", "F64", 64, 1, {H}},
    {"model.layers.2.mlp.down_proj.weight", "BF16", 16, 2, {H, F}},
    {"model.norm.weight", "BF16", 16, 1, {H}},
    {"lm_head.weight", "BF16", 16, 2, {V, H}},
};
#define LLAMA_COUNT (sizeof llama / sizeof llama[0])
#define SPLIT 5 /* the sharded checkpoint: llama[0..SPLIT) in one file, the rest in another */

/* Where each weight's pattern comes from: its file's seed and its index in that file. */
typedef struct origin {
    unsigned seed[LLAMA_COUNT];
    size_t index[LLAMA_COUNT];
} origin;

static origin write_single(const char *path)
{
    origin o;
    st_write(path, 7, llama, LLAMA_COUNT, "{\"format\":\"pt\"}", 8, NULL);
    for (size_t i = 0; i < LLAMA_COUNT; i++) {
        o.seed[i] = 7;
        o.index[i] = i;
    }
    return o;
}

static origin write_sharded(const char *dir)
{
    origin o;
    char a[4200], b[4200], index[4200], json[8192];
    mkdir(dir, 0700);
    snprintf(a, sizeof a, "%s/model-00001-of-00002.safetensors", dir);
    snprintf(b, sizeof b, "%s/model-00002-of-00002.safetensors", dir);
    snprintf(index, sizeof index, "%s/model.safetensors.index.json", dir);
    st_write(a, 31, llama, SPLIT, NULL, 0, NULL);
    st_write(b, 32, llama + SPLIT, LLAMA_COUNT - SPLIT, NULL, 24, NULL);
    size_t n = (size_t)snprintf(json, sizeof json, "{\"metadata\": {}, \"weight_map\": {");
    for (size_t i = 0; i < LLAMA_COUNT; i++) {
        n += (size_t)snprintf(json + n, sizeof json - n,
                              "%s\"%s\": \"model-0000%d-of-00002.safetensors\"", i ? "," : "",
                              llama[i].name, i < SPLIT ? 1 : 2);
        o.seed[i] = i < SPLIT ? 31 : 32;
        o.index[i] = i < SPLIT ? i : i - SPLIT;
    }
    snprintf(json + n, sizeof json - n, "}}");
    st_write_text(index, json);
    return o;
}

/* Imports ck (the graph saved at graph_path and loaded back, as `ferry import -o` does) and
 * plans it under a gpu budget of `slack` times its largest working set, so that layers
 * stream through the gpu and leave it again. The plan passes the checker. */
static fy_plan *import_and_plan(const char *ck, const char *graph_path, double slack,
                                fy_graph **graph)
{
    fy_error err = {0};
    fy_graph *g = NULL;
    fy_import_params p = {.seq = 16, .batch = 2, .graph_path = graph_path};
    if (fy_import_safetensors(ck, &p, &g, NULL, &err) < 0) fail_msg("import: %s", err.message);
    assert_int_equal(fy_graph_save(g, graph_path, &err), 0);
    fy_graph_destroy(g);
    if (fy_graph_load(graph_path, &g, &err) < 0) fail_msg("load: %s", err.message);
    fy_graph_summary sum;
    fy_graph_summarize(g, &sum);
    fy_machine m;
    fy_machine_default(&m);
    m.capacity[FY_TIER_GPU] = (uint64_t)((double)sum.max_working_set * slack);
    fy_plan *plan = NULL;
    if (fy_plan_make(g, &m, NULL, &plan, NULL, &err) < 0) fail_msg("plan: %s", err.message);
    fy_check_report *rep;
    int n = fy_check_plan(plan, NULL, &rep, &err);
    if (n != 0) fail_msg("the plan fails its check (%d): %s", n, err.message);
    fy_check_report_destroy(rep);
    *graph = g;
    return plan;
}

/* What a run saw, through its per-event callback. */
typedef struct seen {
    size_t events;
    size_t pristine_loads; /* nvme->host and host->gpu loads of weights with a source */
    uint64_t pristine_bytes;
    size_t gpu_loads[LLAMA_COUNT];
} seen;

static void on_event(void *user, const fy_plan *plan, size_t index)
{
    seen *s = user;
    const fy_event *e = fy_plan_event(plan, index);
    s->events++;
    if (e->kind != FY_EVENT_LOAD) return;
    const fy_tensor *t = fy_graph_tensor(fy_plan_graph(plan), (size_t)e->tensor);
    if (t->kind != FY_TENSOR_WEIGHT || !t->source_file) return;
    s->pristine_loads++;
    s->pristine_bytes += t->size;
    for (size_t i = 0; i < LLAMA_COUNT; i++)
        if (e->to == FY_TIER_GPU && strcmp(t->name, llama[i].name) == 0) s->gpu_loads[i]++;
}

/* The caller's buffers: every host-home tensor (zeros) and every output. */
typedef struct io_bufs {
    fy_engine_buffer *in, *out;
    size_t nin, nout;
} io_bufs;

static void bufs_make(const fy_graph *g, io_bufs *b)
{
    size_t nt = fy_graph_tensor_count(g);
    memset(b, 0, sizeof *b);
    b->in = calloc(nt, sizeof *b->in);
    b->out = calloc(nt, sizeof *b->out);
    assert_true(b->in && b->out);
    for (size_t t = 0; t < fy_graph_tensor_count(g); t++) {
        const fy_tensor *tn = fy_graph_tensor(g, t);
        if (tn->home == FY_TIER_HOST) {
            b->in[b->nin++] = (fy_engine_buffer){tn->name, calloc(1, tn->size + 1), tn->size};
        }
        if (tn->kind == FY_TENSOR_OUTPUT) {
            b->out[b->nout++] = (fy_engine_buffer){tn->name, calloc(1, tn->size + 1), tn->size};
        }
    }
}

static void bufs_free(io_bufs *b)
{
    for (size_t k = 0; k < b->nin; k++)
        free(b->in[k].data);
    for (size_t k = 0; k < b->nout; k++)
        free(b->out[k].data);
    free(b->in);
    free(b->out);
}

/* Runs plan on sim; returns fy_engine_run's status, with err, rep and s filled. */
static int run_plan(const fy_plan *plan, bool emulate, bool verify, const fy_io_backend *iob,
                    const char *nvme_dir, fy_engine **with, fy_engine_report *rep, seen *s,
                    fy_error *err)
{
    fy_engine *eng = with ? *with : NULL;
    fy_engine_config cfg = {.device = "sim",
                            .io = "threads",
                            .emulate = emulate,
                            .nvme_dir = nvme_dir,
                            .io_backend = iob};
    if (!eng && fy_engine_open(&cfg, &eng, err) < 0) fail_msg("open: %s", err->message);
    io_bufs b;
    bufs_make(fy_plan_graph(plan), &b);
    memset(s, 0, sizeof *s);
    fy_engine_run_args args = {.inputs = b.in,
                               .input_count = b.nin,
                               .outputs = b.out,
                               .output_count = b.nout,
                               .on_event = on_event,
                               .user = s,
                               .verify_weights = verify};
    int rc = fy_engine_run(eng, plan, &args, rep, err);
    bufs_free(&b);
    if (!with) fy_engine_close(eng);
    return rc;
}

static uint64_t weights_total(void)
{
    uint64_t n = 0;
    for (size_t i = 0; i < LLAMA_COUNT; i++)
        n += st_spec_bytes(&llama[i]);
    return n;
}

/* The emulated run with verification: every weight reached the gpu, every copy of a weight
 * that still held its file's bytes was verified (each nvme->host and host->gpu load), and
 * the bytes read from the checkpoint are at least the weights' total. */
static void assert_emulated_run_verifies_every_weight(const fy_plan *plan)
{
    fy_error err = {0};
    fy_engine_report rep;
    seen s;
    char nvme[4200];
    path_of(nvme, sizeof nvme, "nvme");
    if (run_plan(plan, true, true, NULL, nvme, NULL, &rep, &s, &err) < 0)
        fail_msg("emulated run: %s", err.message);
    assert_int_equal(s.events, fy_plan_event_count(plan));
    size_t computes = 0;
    for (size_t i = 0; i < fy_plan_event_count(plan); i++)
        computes += fy_plan_event(plan, i)->kind == FY_EVENT_COMPUTE;
    assert_int_equal(rep.emulated_count, computes);
    for (size_t i = 0; i < LLAMA_COUNT; i++)
        if (!s.gpu_loads[i]) fail_msg("weight '%s' never reached the gpu", llama[i].name);
    assert_int_equal(rep.verified_count, s.pristine_loads);
    assert_int_equal(rep.verified_bytes, s.pristine_bytes);
    assert_true(rep.source_bytes >= weights_total());
    assert_true(rep.source_reads >= LLAMA_COUNT);
    /* The budget made the plan evict weights from the gpu: a real stream, not a preload. */
    assert_true(rep.peak[FY_TIER_GPU] < weights_total());
    fy_engine_report_free(&rep);
}

/* Kernels of the test's own for the imported kinds: each compares every weight it is handed
 * with the pattern the test wrote into the checkpoint, byte by byte, and zeroes its outputs. */
typedef struct checker {
    const origin *o;
    size_t checked[LLAMA_COUNT];
} checker;

static int check_weights_kernel(const fy_kernel_call *call, fy_error *err)
{
    checker *ck = call->user;
    for (size_t k = 0; k < call->input_count; k++) {
        const fy_tensor *t = call->inputs[k].tensor;
        if (t->kind != FY_TENSOR_WEIGHT) continue;
        size_t i = 0;
        while (i < LLAMA_COUNT && strcmp(llama[i].name, t->name))
            i++;
        if (i == LLAMA_COUNT) return fy_error_set(err, FY_EKERNEL, "unknown weight '%s'", t->name);
        const unsigned char *p = call->inputs[k].data;
        for (uint64_t j = 0; j < t->size; j++)
            if (p[j] != st_pattern(ck->o->seed[i], ck->o->index[i], j))
                return fy_error_set(err, FY_EKERNEL,
                                    "op '%s': '%s' byte %llu is 0x%02x, want 0x%02x",
                                    call->op->name, t->name, (unsigned long long)j, p[j],
                                    st_pattern(ck->o->seed[i], ck->o->index[i], j));
        ck->checked[i]++;
    }
    for (size_t k = 0; k < call->output_count; k++)
        memset(call->outputs[k].data, 0, (size_t)call->outputs[k].size);
    return 0;
}

static void assert_kernels_see_every_weight_intact(const fy_plan *plan, const origin *o)
{
    fy_error err = {0};
    fy_engine *eng;
    checker ck = {.o = o};
    fy_engine_config cfg = {.device = "sim"};
    assert_int_equal(fy_engine_open(&cfg, &eng, &err), 0);
    const char *kinds[] = {"embedding", "block", "head"};
    for (size_t k = 0; k < 3; k++)
        assert_int_equal(
            fy_engine_add_kernel(eng, FY_TIER_GPU, kinds[k], check_weights_kernel, &ck, &err), 0);
    fy_engine_report rep;
    seen s;
    if (run_plan(plan, false, false, NULL, NULL, &eng, &rep, &s, &err) < 0)
        fail_msg("run with checking kernels: %s", err.message);
    for (size_t i = 0; i < LLAMA_COUNT; i++)
        if (!ck.checked[i]) fail_msg("no kernel was handed '%s'", llama[i].name);
    assert_int_equal(rep.emulated_count, 0);
    fy_engine_report_free(&rep);
    fy_engine_close(eng);
}

static void test_emulate_single_file_checkpoint_streams_every_weight_intact(void **state)
{
    (void)state;
    char ck[4200], graph[4200];
    path_of(ck, sizeof ck, "llama.safetensors");
    path_of(graph, sizeof graph, "llama.yaml");
    origin o = write_single(ck);
    fy_graph *g;
    fy_plan *plan = import_and_plan(ck, graph, 1.5, &g);
    assert_emulated_run_verifies_every_weight(plan);
    assert_kernels_see_every_weight_intact(plan, &o);
    fy_plan_destroy(plan);
    fy_graph_destroy(g);
}

static void test_emulate_sharded_checkpoint_streams_every_weight_intact(void **state)
{
    (void)state;
    char dir[4200], graph[4200];
    path_of(dir, sizeof dir, "sharded");
    origin o = write_sharded(dir);
    snprintf(graph, sizeof graph, "%s/graph.yaml", dir);
    fy_graph *g;
    fy_plan *plan = import_and_plan(dir, graph, 1.5, &g);
    assert_emulated_run_verifies_every_weight(plan);
    assert_kernels_see_every_weight_intact(plan, &o);
    fy_plan_destroy(plan);
    fy_graph_destroy(g);
}

static void test_emulate_missing_kernel_fails_before_the_run_naming_op_and_kind(void **state)
{
    (void)state;
    char ck[4200], graph[4200], nvme[4200];
    path_of(ck, sizeof ck, "nokernel.safetensors");
    path_of(graph, sizeof graph, "nokernel.yaml");
    path_of(nvme, sizeof nvme, "nvme-nokernel");
    write_single(ck);
    fy_graph *g;
    fy_plan *plan = import_and_plan(ck, graph, 1.5, &g);
    fy_error err = {0};
    fy_engine_report rep;
    seen s;
    assert_int_equal(run_plan(plan, false, true, NULL, nvme, NULL, &rep, &s, &err), FY_ENOENT);
    const char *want[] = {"compute 'embed'",
                          "op 'embed' (",
                          "nokernel.yaml:",
                          "kind 'embedding'",
                          "sim device has no kernel",
                          "register one for 'embedding'",
                          "--emulate",
                          "kinds without a kernel too: 'block', 'head'"};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++)
        if (!strstr(err.message, want[k])) fail_msg("'%s' not in: %s", want[k], err.message);
    assert_int_equal(s.events, 0); /* nothing ran */
    assert_int_equal(fy_test_dir_entries(nvme), 0);
    assert_int_equal(rep.event_count, 0);
    fy_plan_destroy(plan);
    fy_graph_destroy(g);
}

static void test_emulate_truncated_checkpoint_fails_naming_tensor_and_file(void **state)
{
    (void)state;
    char ck[4200], graph[4200], nvme[4200];
    path_of(ck, sizeof ck, "cut.safetensors");
    path_of(graph, sizeof graph, "cut.yaml");
    path_of(nvme, sizeof nvme, "nvme-cut");
    write_single(ck);
    fy_graph *g;
    fy_plan *plan = import_and_plan(ck, graph, 1.5, &g);
    /* Cut the file in the middle of the last tensor, after the import read its header. */
    const fy_tensor *head = fy_graph_tensor(g, (size_t)fy_graph_find_tensor(g, "lm_head.weight"));
    assert_int_equal(truncate(ck, (off_t)(head->source_offset + head->size / 2)), 0);
    for (int verify = 0; verify < 2; verify++) {
        fy_error err = {0};
        fy_engine_report rep;
        seen s;
        assert_int_equal(run_plan(plan, true, verify, NULL, nvme, NULL, &rep, &s, &err), FY_EIO);
        if (!strstr(err.message, "'lm_head.weight'") || !strstr(err.message, "cut.safetensors") ||
            !strstr(err.message, "truncated"))
            fail_msg("message: %s", err.message);
        assert_int_equal(s.events, 0);
        assert_int_equal(fy_test_dir_entries(nvme), 0);
    }
    fy_plan_destroy(plan);
    fy_graph_destroy(g);
}

/* An io backend that flips one byte of the n-th read from a checkpoint file once it has
 * landed in the host arena, behind the engine's back. */
static int flip_at;
static int flip_count;
typedef struct flip_io {
    fy_io *inner;
    uint64_t tag;
    unsigned char *buf;
    bool armed;
} flip_io;

static int f_open(const fy_io_config *cfg, fy_io **out, fy_error *err)
{
    flip_io *w = calloc(1, sizeof *w);
    int rc = fy_io_backend_threads.open(cfg, &w->inner, err);
    if (rc < 0) {
        free(w);
        return rc;
    }
    *out = (fy_io *)w;
    return 0;
}

static void f_close(fy_io *io)
{
    flip_io *w = (flip_io *)io;
    if (!w) return;
    fy_io_backend_threads.close(w->inner);
    free(w);
}

static int f_register(fy_io *io, void *base, size_t len, fy_error *err)
{
    return fy_io_backend_threads.register_buffer(((flip_io *)io)->inner, base, len, err);
}

static int f_file_open(fy_io *io, const char *path, int mode, fy_io_file **out, fy_error *err)
{
    return fy_io_backend_threads.file_open(((flip_io *)io)->inner, path, mode, out, err);
}

static void f_file_close(fy_io *io, fy_io_file *f)
{
    fy_io_backend_threads.file_close(((flip_io *)io)->inner, f);
}

static int f_read(fy_io *io, fy_io_file *f, uint64_t off, void *buf, size_t len, uint64_t tag,
                  fy_error *err)
{
    flip_io *w = (flip_io *)io;
    if (strstr(fy_io_file_path(f), ".safetensors") && len && flip_count++ == flip_at) {
        w->armed = true;
        w->tag = tag;
        w->buf = (unsigned char *)buf + len / 2;
    }
    return fy_io_backend_threads.submit_read(w->inner, f, off, buf, len, tag, err);
}

static int f_write(fy_io *io, fy_io_file *f, uint64_t off, const void *buf, size_t len,
                   uint64_t tag, fy_error *err)
{
    return fy_io_backend_threads.submit_write(((flip_io *)io)->inner, f, off, buf, len, tag, err);
}

static int f_watch(fy_io *io, int fd, uint64_t tag, fy_error *err)
{
    return fy_io_backend_threads.watch_fd(((flip_io *)io)->inner, fd, tag, err);
}

static int f_wait(fy_io *io, fy_io_completion *out, size_t max, fy_error *err)
{
    flip_io *w = (flip_io *)io;
    int n = fy_io_backend_threads.wait(w->inner, out, max, err);
    for (int k = 0; k < n; k++)
        if (w->armed && !out[k].watch && out[k].tag == w->tag && out[k].status == 0) {
            *w->buf ^= 0x10;
            w->armed = false;
        }
    return n;
}

static void f_info(fy_io *io, fy_io_info *out)
{
    fy_io_backend_threads.info(((flip_io *)io)->inner, out);
}

static const fy_io_backend flipping = {
    .name = "flipping-threads",
    .open = f_open,
    .close = f_close,
    .register_buffer = f_register,
    .file_open = f_file_open,
    .file_close = f_file_close,
    .submit_read = f_read,
    .submit_write = f_write,
    .watch_fd = f_watch,
    .wait = f_wait,
    .info = f_info,
};

static void test_emulate_verify_weights_catches_a_corrupted_read(void **state)
{
    (void)state;
    char ck[4200], graph[4200], nvme[4200];
    path_of(ck, sizeof ck, "flip.safetensors");
    path_of(graph, sizeof graph, "flip.yaml");
    path_of(nvme, sizeof nvme, "nvme-flip");
    write_single(ck);
    fy_graph *g;
    fy_plan *plan = import_and_plan(ck, graph, 1.5, &g);
    fy_error err = {0};
    fy_engine_report rep;
    seen s;
    /* Without verification the emulated run never looks at the bytes: it passes. */
    flip_at = 3;
    flip_count = 0;
    assert_int_equal(run_plan(plan, true, false, &flipping, nvme, NULL, &rep, &s, &err), 0);
    assert_true(flip_count > flip_at);
    fy_engine_report_free(&rep);
    /* With it, the flipped copy stops the run, naming the tensor, the copy and the file. */
    flip_count = 0;
    assert_int_equal(run_plan(plan, true, true, &flipping, nvme, NULL, &rep, &s, &err),
                     FY_ECHECKSUM);
    const char *want[] = {"load '", "nvme->host", "did not arrive intact",
                          "the host arena at offset", "flip.safetensors at offset"};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++)
        if (!strstr(err.message, want[k])) fail_msg("'%s' not in: %s", want[k], err.message);
    assert_int_equal(fy_test_dir_entries(nvme), 0);
    fy_plan_destroy(plan);
    fy_graph_destroy(g);
}

/* A generated training transformer: kinds (attention, rmsnorm, swiglu, *_bwd, adam) that no
 * built-in kernel runs. Refused without emulation, run with it. */
static void test_emulate_runs_a_generated_training_transformer(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_graph *g;
    fy_transformer_params tp = {.layers = 2,
                                .hidden = 32,
                                .ffn = 64,
                                .heads = 2,
                                .seq = 8,
                                .batch = 1,
                                .vocab = 64,
                                .dtype = FY_DTYPE_BF16,
                                .train = true};
    assert_int_equal(fy_graph_generate_transformer(&tp, &g, &err), 0);
    fy_machine m;
    fy_machine_default(&m);
    fy_plan *plan;
    if (fy_plan_make(g, &m, NULL, &plan, NULL, &err) < 0) fail_msg("plan: %s", err.message);
    fy_engine_report rep;
    seen s;
    assert_int_equal(run_plan(plan, false, false, NULL, NULL, NULL, &rep, &s, &err), FY_ENOENT);
    if (!strstr(err.message, "--emulate") || !strstr(err.message, "has kind '"))
        fail_msg("message: %s", err.message);
    assert_int_equal(s.events, 0);
    if (run_plan(plan, true, true, NULL, NULL, NULL, &rep, &s, &err) < 0)
        fail_msg("emulated: %s", err.message);
    assert_int_equal(s.events, fy_plan_event_count(plan));
    assert_true(rep.emulated_count > 0);
    assert_int_equal(rep.verified_count, 0); /* no weight has a source file */
    fy_engine_report_free(&rep);
    fy_plan_destroy(plan);
    fy_graph_destroy(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_emulate_single_file_checkpoint_streams_every_weight_intact),
        cmocka_unit_test(test_emulate_sharded_checkpoint_streams_every_weight_intact),
        cmocka_unit_test(test_emulate_missing_kernel_fails_before_the_run_naming_op_and_kind),
        cmocka_unit_test(test_emulate_truncated_checkpoint_fails_naming_tensor_and_file),
        cmocka_unit_test(test_emulate_verify_weights_catches_a_corrupted_read),
        cmocka_unit_test(test_emulate_runs_a_generated_training_transformer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
