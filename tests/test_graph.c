/* The graph: loading (every malformed form refused at the right line and column with the
 * right message), writing (round trip to identical text), the builder's rules, the
 * summary, the generators and the weight file. */
#include "test_util.h"

#include "ferry/graph.h"

#include <math.h>
#include <sys/stat.h>

typedef struct bad_case {
    const char *file;
    unsigned line, column;
    const char *message;
} bad_case;

static const bad_case bad_cases[] = {
    {"bad-yaml.yaml", 5, 4, "bad YAML"},
    {"bad-missing-header.yaml", 1, 1, "missing header"},
    {"bad-wrong-header.yaml", 1, 8, "wrong header 'plan/1'"},
    {"bad-duplicate-tensor.yaml", 5, 3, "duplicate tensor name 'x'"},
    {"bad-duplicate-op.yaml", 7, 5, "duplicate op name 'f'"},
    {"bad-unknown-tensor.yaml", 6, 38, "reads unknown tensor 'z'"},
    {"bad-never-produced.yaml", 7, 37, "reads 'a', which no earlier op writes"},
    {"bad-unit.yaml", 3, 13, "bad size '12 GiBB'"},
    {"bad-negative.yaml", 3, 13, "cannot be negative"},
    {"bad-overflow.yaml", 3, 13, "larger than 2^64-1 bytes"},
    {"bad-shape-overflow.yaml", 3, 3, "more than 2^64-1 bytes"},
    {"bad-shape-size.yaml", 3, 3, "disagrees with shape and dtype"},
    {"bad-unknown-key.yaml", 3, 7, "unknown key 'sise' in tensor 'x'"},
    {"bad-unknown-op-key.yaml", 6, 52, "unknown key 'flopz' in op 'f'"},
    {"bad-unknown-top-key.yaml", 5, 1, "unknown key 'typo'"},
    {"bad-output-never-written.yaml", 5, 3, "output 'y' is never written"},
    {"bad-dtype.yaml", 3, 39, "unknown dtype 'f17'"},
    {"bad-flops.yaml", 6, 59, "bad count '3 apples'"},
    {"bad-alias.yaml", 4, 6, "aliases"},
    {"bad-home-gpu.yaml", 3, 3, "home must be host or nvme"},
    {"bad-empty.yaml", 0, 0, "empty file"},
};

static void test_graph_refuses_each_malformed_file(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *c = &bad_cases[i];
        char rel[256];
        snprintf(rel, sizeof rel, "graphs/%s", c->file);
        fy_error err = {0};
        fy_graph *g = (fy_graph *)1;
        int rc = fy_graph_load(fy_test_data(rel), &g, &err);
        if (rc >= 0) fail_msg("%s was accepted", c->file);
        assert_null(g);
        if (!strstr(err.message, c->message) || err.line != c->line || err.column != c->column)
            fail_msg("%s: got %u:%u '%s', want %u:%u '%s'", c->file, err.line, err.column,
                     err.message, c->line, c->column, c->message);
        assert_non_null(strstr(err.file, c->file));
    }
}

static void test_graph_missing_file_is_named(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_graph *g;
    assert_int_equal(fy_graph_load("/nonexistent/g.yaml", &g, &err), FY_ENOENT);
    assert_string_equal(err.file, "/nonexistent/g.yaml");
}

static void test_graph_loads_the_design_example(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_graph *g;
    assert_int_equal(fy_graph_load(fy_test_data("graphs/good-mlp2.yaml"), &g, &err), 0);
    assert_string_equal(fy_graph_name(g), "mlp-2");
    assert_int_equal(fy_graph_tensor_count(g), 5);
    assert_int_equal(fy_graph_op_count(g), 2);
    const fy_tensor *w0 = fy_graph_tensor(g, (size_t)fy_graph_find_tensor(g, "w0"));
    assert_int_equal(w0->size, 8192ull * 8192 * 2);
    assert_int_equal(w0->home, FY_TIER_NVME);
    assert_int_equal(w0->line, 5);
    const fy_tensor *x = fy_graph_tensor(g, (size_t)fy_graph_find_tensor(g, "x"));
    assert_int_equal(x->home, FY_TIER_HOST);
    const fy_tensor *a0 = fy_graph_tensor(g, (size_t)fy_graph_find_tensor(g, "a0"));
    assert_int_equal(a0->home, FY_TIER_NONE);
    const fy_op *fc1 = fy_graph_op(g, 1);
    assert_string_equal(fc1->name, "fc1");
    assert_true(fabs(fc1->flops - 17.2e9) < 1);
    assert_true(fabs(fc1->time - 35e-6) < 1e-12);
    assert_int_equal(fc1->read_count, 2);
    assert_string_equal(fy_graph_tensor(g, fc1->reads[0])->name, "a0");
    char *src = fy_graph_source_path(g, (size_t)fy_graph_find_tensor(g, "w1"));
    assert_non_null(strstr(src, "tests/data/graphs/w.bin"));
    free(src);
    assert_int_equal(fy_graph_find_op(g, "nope"), -1);
    fy_graph_destroy(g);
}

/* Written, read back and written again: the same bytes. */
static void assert_round_trip(fy_graph *g)
{
    fy_error err = {0};
    char *text1, *text2;
    size_t len1, len2;
    assert_int_equal(fy_graph_to_yaml(g, &text1, &len1, &err), 0);
    fy_graph *back;
    if (fy_graph_load_string("round-trip.yaml", text1, len1, &back, &err) < 0)
        fail_msg("written graph does not load: %u:%u %s", err.line, err.column, err.message);
    assert_int_equal(fy_graph_to_yaml(back, &text2, &len2, &err), 0);
    assert_int_equal(len1, len2);
    assert_memory_equal(text1, text2, len1);
    assert_int_equal(fy_graph_tensor_count(back), fy_graph_tensor_count(g));
    for (size_t i = 0; i < fy_graph_op_count(g); i++) {
        assert_true(fy_graph_op(back, i)->flops == fy_graph_op(g, i)->flops);
        assert_true(fy_graph_op(back, i)->time == fy_graph_op(g, i)->time);
    }
    free(text1);
    free(text2);
    fy_graph_destroy(back);
}

static void test_graph_round_trip_is_identical(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_graph *g;
    assert_int_equal(fy_graph_load(fy_test_data("graphs/good-mlp2.yaml"), &g, &err), 0);
    assert_round_trip(g);
    fy_graph_destroy(g);
    fy_transformer_params tp = {.layers = 2,
                                .hidden = 64,
                                .ffn = 172,
                                .heads = 4,
                                .seq = 16,
                                .batch = 2,
                                .vocab = 100,
                                .dtype = FY_DTYPE_BF16,
                                .train = true,
                                .weights_file = "odd name: w.bin"};
    assert_int_equal(fy_graph_generate_transformer(&tp, &g, &err), 0);
    assert_round_trip(g);
    fy_graph_destroy(g);
}

static void test_graph_builder_enforces_rules(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_graph *g;
    assert_int_equal(fy_graph_create("b", &g, &err), 0);
    fy_tensor_desc x = {.name = "x", .kind = FY_TENSOR_INPUT, .size = 16};
    assert_int_equal(fy_graph_add_tensor(g, &x, &err), 0);
    assert_int_equal(fy_graph_add_tensor(g, &x, &err), FY_EINVAL);
    assert_non_null(strstr(err.message, "duplicate tensor name 'x'"));
    fy_tensor_desc noshape = {.name = "n", .kind = FY_TENSOR_INPUT};
    assert_int_equal(fy_graph_add_tensor(g, &noshape, &err), FY_EINVAL);
    assert_non_null(strstr(err.message, "needs a size"));
    fy_tensor_desc nvme = {
        .name = "v", .kind = FY_TENSOR_WEIGHT, .size = 4, .home_set = true, .home = FY_TIER_NVME};
    assert_int_equal(fy_graph_add_tensor(g, &nvme, &err), FY_EINVAL);
    assert_non_null(strstr(err.message, "needs a source file"));
    fy_tensor_desc y = {.name = "y", .kind = FY_TENSOR_OUTPUT, .size = 16};
    assert_int_equal(fy_graph_add_tensor(g, &y, &err), 0);
    assert_int_equal(fy_graph_validate(g, &err), FY_EINVAL);
    assert_non_null(strstr(err.message, "no ops"));
    const char *reads[] = {"x"}, *writes[] = {"y", "y"};
    fy_op_desc op = {.name = "f",
                     .kind = "copy",
                     .reads = reads,
                     .read_count = 1,
                     .writes = writes,
                     .write_count = 2};
    assert_int_equal(fy_graph_add_op(g, &op, &err), FY_EINVAL);
    assert_non_null(strstr(err.message, "writes 'y' twice"));
    op.write_count = 1;
    op.device = FY_TIER_NVME;
    assert_int_equal(fy_graph_add_op(g, &op, &err), FY_EINVAL);
    op.device = FY_TIER_HOST;
    assert_int_equal(fy_graph_add_op(g, &op, &err), 0);
    assert_int_equal(fy_graph_validate(g, &err), 0);
    assert_int_equal(fy_graph_add_tensor(g, &noshape, &err), FY_ESTATE);
    fy_graph_destroy(g);
    fy_graph_destroy(NULL);
}

static void test_graph_summary_counts_kinds_and_working_set(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_graph *g;
    assert_int_equal(fy_graph_load(fy_test_data("graphs/good-mlp2.yaml"), &g, &err), 0);
    fy_graph_summary s;
    fy_graph_summarize(g, &s);
    assert_int_equal(s.op_count, 2);
    assert_int_equal(s.count_by_kind[FY_TENSOR_WEIGHT], 2);
    assert_int_equal(s.bytes_by_kind[FY_TENSOR_WEIGHT], 256ull << 20);
    assert_int_equal(s.bytes_by_home[FY_TIER_NVME], 256ull << 20);
    assert_int_equal(s.bytes_by_home[FY_TIER_HOST], 1ull << 20);
    assert_int_equal(s.bytes_by_home[FY_TIER_COUNT], 2ull << 20);
    assert_int_equal(s.max_working_set, (128ull << 20) + (2ull << 20));
    assert_true(fabs(s.total_flops - 34.4e9) < 1);
    fy_graph_destroy(g);
}

/* Every activation a forward op reads is read again by a backward op, and every weight
 * gets exactly one optimizer step after all backward ops. */
static void assert_training_structure(const fy_graph *g)
{
    size_t n = fy_graph_op_count(g);
    size_t first_bwd = n, first_step = n;
    for (size_t i = 0; i < n; i++) {
        const char *k = fy_graph_op(g, i)->kind;
        if (first_bwd == n && !strcmp(k, "loss"))
            first_bwd = i; /* the forward ops are the ones before the loss */
        if (first_step == n && !strcmp(k, "adam")) first_step = i;
    }
    assert_true(first_bwd < first_step && first_step < n);
    for (size_t i = 0; i < first_bwd; i++) {
        const fy_op *op = fy_graph_op(g, i);
        for (uint32_t r = 0; r < op->read_count; r++) {
            const fy_tensor *t = fy_graph_tensor(g, op->reads[r]);
            if (t->kind != FY_TENSOR_ACTIVATION) continue;
            bool reread = false;
            for (size_t j = first_bwd; j < first_step && !reread; j++) {
                const fy_op *b = fy_graph_op(g, j);
                for (uint32_t q = 0; q < b->read_count; q++)
                    reread |= b->reads[q] == op->reads[r];
            }
            if (!reread)
                fail_msg("activation '%s' read by '%s' is never read in backward", t->name,
                         op->name);
        }
    }
    size_t weights = 0, steps = n - first_step;
    for (size_t t = 0; t < fy_graph_tensor_count(g); t++)
        weights += fy_graph_tensor(g, t)->kind == FY_TENSOR_WEIGHT;
    assert_int_equal(weights, steps);
}

static void test_graph_generators_make_loadable_training_graphs(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_graph *g;
    fy_mlp_params mp = {.layers = 48, .hidden = 8192, .batch = 64, .dtype = FY_DTYPE_BF16};
    assert_int_equal(fy_graph_generate_mlp(&mp, &g, &err), 0);
    assert_int_equal(fy_graph_op_count(g), 48);
    fy_graph_summary s;
    fy_graph_summarize(g, &s);
    assert_int_equal(s.bytes_by_kind[FY_TENSOR_WEIGHT], 48ull * 8192 * 8192 * 2);
    fy_graph_destroy(g);

    mp.train = true;
    mp.layers = 4;
    assert_int_equal(fy_graph_generate_mlp(&mp, &g, &err), 0);
    assert_training_structure(g);
    assert_round_trip(g);
    fy_graph_destroy(g);

    fy_transformer_params tp = {.layers = 32,
                                .hidden = 4096,
                                .ffn = 11008,
                                .heads = 32,
                                .seq = 2048,
                                .batch = 1,
                                .dtype = FY_DTYPE_BF16};
    assert_int_equal(fy_graph_generate_transformer(&tp, &g, &err), 0);
    assert_int_equal(fy_graph_op_count(g), 32 * 13); /* 13 ops per decoder layer */
    fy_graph_summarize(g, &s);
    /* 4 attention projections + 3 mlp matrices + 2 norms per layer. */
    uint64_t per_layer = (4ull * 4096 * 4096 + 3ull * 4096 * 11008 + 2 * 4096) * 2;
    assert_int_equal(s.bytes_by_kind[FY_TENSOR_WEIGHT], 32 * per_layer);
    for (size_t i = 0; i < fy_graph_op_count(g); i++)
        assert_true(fy_graph_op(g, i)->flops > 0);
    fy_graph_destroy(g);

    tp.train = true;
    tp.vocab = 32000;
    tp.layers = 2;
    assert_int_equal(fy_graph_generate_transformer(&tp, &g, &err), 0);
    assert_training_structure(g);
    for (size_t i = 0; i < fy_graph_op_count(g); i++)
        assert_true(fy_graph_op(g, i)->flops > 0);
    fy_graph_destroy(g);

    tp.heads = 5;
    assert_int_equal(fy_graph_generate_transformer(&tp, &g, &err), FY_EINVAL);
    assert_non_null(strstr(err.message, "multiple of heads"));
}

static uint16_t read_u16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static void test_graph_weight_file_follows_the_seed(void **state)
{
    (void)state;
    char *dir = fy_test_scratch("weights");
    fy_error err = {0};
    fy_graph *g;
    fy_mlp_params mp = {
        .layers = 3, .hidden = 100, .batch = 2, .dtype = FY_DTYPE_BF16, .weights_file = "w.bin"};
    assert_int_equal(fy_graph_generate_mlp(&mp, &g, &err), 0);
    char a[4200], b[4200], c[4200];
    snprintf(a, sizeof a, "%s/a.bin", dir);
    snprintf(b, sizeof b, "%s/b.bin", dir);
    snprintf(c, sizeof c, "%s/c.bin", dir);
    assert_int_equal(fy_graph_write_weights(g, a, 7, &err), 0);
    assert_int_equal(fy_graph_write_weights(g, b, 7, &err), 0);
    assert_int_equal(fy_graph_write_weights(g, c, 8, &err), 0);
    char *da = NULL, *db = NULL, *dc = NULL;
    size_t la = 0, lb = 0, lc = 0;
    assert_int_equal(fy_file_read_all_for_test(a, &da, &la), 0);
    assert_int_equal(fy_file_read_all_for_test(b, &db, &lb), 0);
    assert_int_equal(fy_file_read_all_for_test(c, &dc, &lc), 0);
    /* Three weights of 100x100 bf16 (20000 bytes), each at a 4096-aligned offset. */
    const fy_tensor *w2 = fy_graph_tensor(g, (size_t)fy_graph_find_tensor(g, "w2"));
    assert_int_equal(w2->source_offset, 2 * 20480);
    assert_int_equal(la, 2 * 20480 + 20000);
    assert_int_equal(la, lb);
    assert_memory_equal(da, db, la);
    assert_true(memcmp(da, dc, la) != 0);
    /* Every value is a finite bf16 within +-sqrt(3/fan_in), and not all equal. */
    float bound = sqrtf(3.0f / 100.0f) * 1.01f;
    int distinct = 0;
    for (size_t i = 0; i < 10000; i++) {
        uint32_t bits = (uint32_t)read_u16((unsigned char *)da + 2 * i) << 16;
        float f;
        memcpy(&f, &bits, 4);
        assert_true(isfinite(f) && fabsf(f) <= bound);
        distinct += i > 0 && read_u16((unsigned char *)da + 2 * i) !=
                                 read_u16((unsigned char *)da + 2 * i - 2);
    }
    assert_true(distinct > 9000);
    /* A folder that does not exist is named in the error and nothing is left behind. */
    assert_true(fy_graph_write_weights(g, "/nonexistent/dir/w.bin", 1, &err) < 0);
    assert_non_null(strstr(err.file, "/nonexistent/dir/w.bin"));
    free(da);
    free(db);
    free(dc);
    fy_graph_destroy(g);
    fy_test_scratch_remove(dir);
}

static void test_graph_digest_names_the_content(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_graph *a, *b;
    fy_mlp_params mp = {.layers = 2, .hidden = 8, .batch = 2, .dtype = FY_DTYPE_F32};
    assert_int_equal(fy_graph_generate_mlp(&mp, &a, &err), 0);
    mp.batch = 3;
    assert_int_equal(fy_graph_generate_mlp(&mp, &b, &err), 0);
    char ha[65], ha2[65], hb[65];
    assert_int_equal(fy_graph_digest(a, ha, &err), 0);
    assert_int_equal(fy_graph_digest(a, ha2, &err), 0);
    assert_int_equal(fy_graph_digest(b, hb, &err), 0);
    assert_int_equal(strlen(ha), 64);
    assert_string_equal(ha, ha2);
    assert_string_not_equal(ha, hb);
    fy_graph_destroy(a);
    fy_graph_destroy(b);
}

/* An op copied into another graph keeps its kind, device, flops and time, reads and writes
 * the tensors its names map to, and an op index past the end is refused. */
static void test_graph_add_op_from_copies_an_op_under_new_names(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_graph *src, *dst;
    assert_int_equal(fy_graph_load(fy_test_data("graphs/good-mlp2.yaml"), &src, &err), 0);
    assert_int_equal(fy_graph_create("copy", &dst, &err), 0);
    const char *names[8] = {0};
    char buf[8][32];
    assert_true(fy_graph_tensor_count(src) <= 8);
    for (size_t t = 0; t < fy_graph_tensor_count(src); t++) {
        const fy_tensor *ten = fy_graph_tensor(src, t);
        snprintf(buf[t], sizeof buf[t], "m/%s", ten->name);
        names[t] = buf[t];
        /* Sources are not copied: a weight of the copy rests on host instead. */
        fy_tensor_desc d = {.name = names[t],
                            .kind = ten->kind,
                            .size = ten->size,
                            .home_set = ten->home != FY_TIER_NONE,
                            .home = FY_TIER_HOST};
        assert_int_equal(fy_graph_add_tensor(dst, &d, &err), 0);
    }
    assert_int_equal(fy_graph_add_op_from(dst, src, 0, names, "m/fc0", &err), 0);
    assert_int_equal(fy_graph_add_op_from(dst, src, 1, names, NULL, &err), 0);
    assert_int_equal(fy_graph_add_op_from(dst, src, 2, names, NULL, &err), FY_EINVAL);
    assert_non_null(strstr(err.message, "no op 2"));
    assert_int_equal(fy_graph_validate(dst, &err), 0);
    const fy_op *a = fy_graph_op(dst, 0), *b = fy_graph_op(dst, 1), *o = fy_graph_op(src, 1);
    assert_string_equal(a->name, "m/fc0");
    assert_string_equal(b->name, "fc1");
    assert_string_equal(fy_graph_tensor(dst, b->reads[0])->name, "m/a0");
    assert_string_equal(fy_graph_tensor(dst, b->writes[0])->name, "m/y");
    assert_string_equal(b->kind, o->kind);
    assert_true(b->flops == o->flops && b->time == o->time && b->device == o->device);
    fy_graph_destroy(dst);
    fy_graph_destroy(src);
}

/* A tensor described for another graph keeps its kind, dtype, shape, size, home and offset,
 * with its source file resolved against the graph's folder; one without a source has none;
 * an index past the end is refused. */
static void test_graph_describe_tensor_resolves_its_source(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_graph *g;
    assert_int_equal(fy_graph_load(fy_test_data("graphs/good-mlp2.yaml"), &g, &err), 0);
    size_t w1 = (size_t)fy_graph_find_tensor(g, "w1"), x = (size_t)fy_graph_find_tensor(g, "x");
    fy_tensor_desc d;
    char *src;
    assert_int_equal(fy_graph_describe_tensor(g, w1, &d, &src, &err), 0);
    const fy_tensor *t = fy_graph_tensor(g, w1);
    assert_string_equal(d.name, "w1");
    assert_true(d.kind == t->kind && d.dtype == t->dtype && d.rank == t->rank);
    assert_true(d.size == t->size && d.home_set && d.home == t->home);
    assert_int_equal(d.source_offset, 134217728);
    assert_non_null(src);
    assert_ptr_equal(d.source_file, src);
    assert_string_equal(src, fy_test_data("graphs/w.bin"));
    free(src);
    assert_int_equal(fy_graph_describe_tensor(g, x, &d, &src, &err), 0);
    assert_null(src);
    assert_null(d.source_file);
    assert_memory_equal(d.shape, fy_graph_tensor(g, x)->shape, sizeof d.shape);
    size_t n = fy_graph_tensor_count(g);
    assert_int_equal(fy_graph_describe_tensor(g, n, &d, &src, &err), FY_EINVAL);
    assert_null(src);
    assert_non_null(strstr(err.message, "no tensor"));
    fy_graph_destroy(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_graph_refuses_each_malformed_file),
        cmocka_unit_test(test_graph_missing_file_is_named),
        cmocka_unit_test(test_graph_loads_the_design_example),
        cmocka_unit_test(test_graph_round_trip_is_identical),
        cmocka_unit_test(test_graph_builder_enforces_rules),
        cmocka_unit_test(test_graph_summary_counts_kinds_and_working_set),
        cmocka_unit_test(test_graph_generators_make_loadable_training_graphs),
        cmocka_unit_test(test_graph_weight_file_follows_the_seed),
        cmocka_unit_test(test_graph_digest_names_the_content),
        cmocka_unit_test(test_graph_add_op_from_copies_an_op_under_new_names),
        cmocka_unit_test(test_graph_describe_tensor_resolves_its_source),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
