/* Importing safetensors checkpoints as graphs: layers recognised by their names or the
 * caller's patterns, embedding first and head last, activations and flops, and a round trip
 * (import, save, load) whose every weight points at the bytes the test wrote. */
#include "st_util.h"

#include "ferry/import.h"

#include <limits.h>
#include <sys/stat.h>

static char *scratch;

static int setup(void **state)
{
    (void)state;
    scratch = fy_test_scratch("import");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fy_test_scratch_remove(scratch);
    return 0;
}

static char *path_of(const char *name)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", scratch, name);
    return strdup(buf);
}

#define H 16
#define V 64
#define F 32

/* A llama-shaped checkpoint of two layers, stored out of name order. */
static const st_spec llama[] = {
    {"model.layers.1.self_attn.q_proj.weight", "BF16", 16, 2, {H, H}},
    {"model.embed_tokens.weight", "BF16", 16, 2, {V, H}},
    {"model.layers.0.input_layernorm.weight", "BF16", 16, 1, {H}},
    {"model.layers.0.self_attn.q_proj.weight", "BF16", 16, 2, {H, H}},
    {"model.layers.0.mlp.down_proj.weight", "BF16", 16, 2, {H, F}},
    {"lm_head.weight", "BF16", 16, 2, {V, H}},
    {"model.layers.1.input_layernorm.weight", "BF16", 16, 1, {H}},
    {"model.layers.1.mlp.down_proj.weight", "BF16", 16, 2, {H, F}},
    {"model.norm.weight", "BF16", 16, 1, {H}},
    {"model.layers.10.input_layernorm.weight", "BF16", 16, 1, {H}},
};
#define LLAMA_COUNT (sizeof llama / sizeof llama[0])

static fy_graph *import_ok(const char *ck, const fy_import_params *p, fy_import_info *info)
{
    fy_graph *g = NULL;
    fy_error err = {0};
    if (fy_import_safetensors(ck, p, &g, info, &err) < 0)
        fail_msg("%s:%u: %s", err.file, err.line, err.message);
    return g;
}

static void assert_reads(const fy_graph *g, const char *op, const char *const *names)
{
    long i = fy_graph_find_op(g, op);
    if (i < 0) fail_msg("no op '%s'", op);
    const fy_op *o = fy_graph_op(g, (size_t)i);
    size_t n = 0;
    while (names[n])
        n++;
    if (o->read_count != n) fail_msg("op '%s' reads %u tensors, want %zu", op, o->read_count, n);
    for (size_t r = 0; r < n; r++)
        assert_string_equal(fy_graph_tensor(g, o->reads[r])->name, names[r]);
}

static const fy_tensor *tensor(const fy_graph *g, const char *name)
{
    long i = fy_graph_find_tensor(g, name);
    if (i < 0) fail_msg("no tensor '%s'", name);
    return fy_graph_tensor(g, (size_t)i);
}

/* Every weight of g has the size the spec gives and points at the pattern bytes of its
 * tensor in the file written with seed. */
static void assert_weights_point_at_their_bytes(const fy_graph *g, const st_spec *specs, size_t n,
                                                unsigned seed, const char *file_end)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t bytes = st_spec_bytes(&specs[i]);
        if (!bytes) continue;
        long ti = fy_graph_find_tensor(g, specs[i].name);
        if (ti < 0) fail_msg("weight '%s' is missing", specs[i].name);
        const fy_tensor *t = fy_graph_tensor(g, (size_t)ti);
        assert_int_equal(t->kind, FY_TENSOR_WEIGHT);
        assert_int_equal(t->home, FY_TIER_NVME);
        assert_int_equal(t->size, bytes);
        char *src = fy_graph_source_path(g, (size_t)ti);
        assert_non_null(src);
        if (file_end && !strstr(src, file_end))
            fail_msg("'%s' points into %s, not %s", specs[i].name, src, file_end);
        if (!st_bytes_match(src, seed, i, t->source_offset, t->size))
            fail_msg("'%s' at %s:%llu does not hold its bytes", specs[i].name, src,
                     (unsigned long long)t->source_offset);
        free(src);
    }
}

static void test_import_llama_round_trip_points_at_the_right_bytes(void **state)
{
    (void)state;
    char *ck = path_of("llama.safetensors"), *graph = path_of("llama.yaml");
    st_write(ck, 5, llama, LLAMA_COUNT, "{\"format\":\"pt\"}", 8, NULL);
    fy_import_params p = {.seq = 32, .batch = 2, .graph_path = graph};
    fy_import_info info;
    fy_graph *g = import_ok(ck, &p, &info);
    assert_string_equal(fy_graph_name(g), "llama");
    assert_int_equal(info.files, 1);
    assert_int_equal(info.tensors, LLAMA_COUNT);
    assert_int_equal(info.layers, 3);
    assert_int_equal(info.stacks, 1);
    assert_string_equal(info.patterns, "model.layers.{i}.");
    assert_int_equal(info.hidden, H);
    assert_int_equal(info.vocab, V);
    assert_int_equal(info.act_dtype, FY_DTYPE_BF16);
    assert_false(info.tied_head);
    assert_int_equal(info.embed_tensors, 1);
    assert_int_equal(info.head_tensors, 2);
    fy_import_info_free(&info);

    fy_error err = {0};
    assert_int_equal(fy_graph_save(g, graph, &err), 0);
    fy_graph_destroy(g);
    g = NULL;
    if (fy_graph_load(graph, &g, &err) < 0)
        fail_msg("reload: %s:%u: %s", err.file, err.line, err.message);

    /* Embedding first, layers in numeric order (10 after 1), head last. */
    assert_int_equal(fy_graph_op_count(g), 5);
    const char *order[] = {"embed", "model.layers.0", "model.layers.1", "model.layers.10", "head"};
    const char *kinds[] = {"embedding", "block", "block", "block", "head"};
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(fy_graph_op(g, i)->name, order[i]);
        assert_string_equal(fy_graph_op(g, i)->kind, kinds[i]);
    }
    assert_reads(g, "embed", (const char *const[]){"tokens", "model.embed_tokens.weight", NULL});
    assert_reads(g, "model.layers.0",
                 (const char *const[]){"hidden.0", "model.layers.0.input_layernorm.weight",
                                       "model.layers.0.mlp.down_proj.weight",
                                       "model.layers.0.self_attn.q_proj.weight", NULL});
    assert_reads(g, "model.layers.10",
                 (const char *const[]){"hidden.2", "model.layers.10.input_layernorm.weight", NULL});
    assert_reads(g, "head",
                 (const char *const[]){"hidden.3", "lm_head.weight", "model.norm.weight", NULL});

    /* Activations are [batch*seq, hidden]; the logits [batch*seq, vocab]. */
    const fy_tensor *tok = tensor(g, "tokens");
    assert_int_equal(tok->kind, FY_TENSOR_INPUT);
    assert_int_equal(tok->dtype, FY_DTYPE_I32);
    assert_int_equal(tok->size, 2 * 32 * 4);
    for (int i = 0; i < 4; i++) {
        char name[32];
        snprintf(name, sizeof name, "hidden.%d", i);
        const fy_tensor *a = tensor(g, name);
        assert_int_equal(a->kind, FY_TENSOR_ACTIVATION);
        assert_int_equal(a->size, 64 * H * 2);
    }
    const fy_tensor *logits = tensor(g, "logits");
    assert_int_equal(logits->kind, FY_TENSOR_OUTPUT);
    assert_int_equal(logits->size, 64 * V * 2);

    /* flops: a lookup per element for the embedding, 2 x params x tokens for the rest. */
    assert_true(fy_graph_op(g, 0)->flops == 64.0 * H);
    assert_true(fy_graph_op(g, 1)->flops == 2.0 * (H + H * H + H * F) * 64);
    assert_true(fy_graph_op(g, 3)->flops == 2.0 * H * 64);
    assert_true(fy_graph_op(g, 4)->flops == 2.0 * (V * H + H) * 64);

    /* The graph sits beside the checkpoint, so its source is relative. */
    assert_string_equal(tensor(g, "lm_head.weight")->source_file, "llama.safetensors");
    assert_weights_point_at_their_bytes(g, llama, LLAMA_COUNT, 5, "/llama.safetensors");
    fy_graph_destroy(g);
    free(ck);
    free(graph);
}

static void test_import_sharded_checkpoint_points_into_each_shard(void **state)
{
    (void)state;
    char *dir = path_of("sharded-llama");
    assert_int_equal(mkdir(dir, 0755), 0);
    char a[4200], b[4200], index[4200];
    snprintf(a, sizeof a, "%s/model-00001-of-00002.safetensors", dir);
    snprintf(b, sizeof b, "%s/model-00002-of-00002.safetensors", dir);
    snprintf(index, sizeof index, "%s/model.safetensors.index.json", dir);
    st_write(a, 21, llama, 5, NULL, 0, NULL);
    st_write(b, 22, llama + 5, LLAMA_COUNT - 5, NULL, 24, NULL);
    char text[4096];
    size_t o = (size_t)snprintf(text, sizeof text, "{\"metadata\":{},\"weight_map\":{");
    for (size_t i = 0; i < LLAMA_COUNT; i++)
        o += (size_t)snprintf(text + o, sizeof text - o,
                              "%s\"%s\":\"model-0000%d-of-00002."
                              "safetensors\"",
                              i ? "," : "", llama[i].name, i < 5 ? 1 : 2);
    snprintf(text + o, sizeof text - o, "}}");
    st_write_text(index, text);

    /* The graph goes elsewhere: sources are then absolute. */
    char *elsewhere = path_of("elsewhere");
    assert_int_equal(mkdir(elsewhere, 0755), 0);
    free(elsewhere);
    char *graph = path_of("elsewhere/g.yaml");
    fy_import_params p = {.seq = 8, .graph_path = graph};
    fy_import_info info;
    fy_graph *g = import_ok(dir, &p, &info);
    assert_string_equal(fy_graph_name(g), "sharded-llama");
    assert_int_equal(info.files, 2);
    fy_import_info_free(&info);
    fy_error err = {0};
    assert_int_equal(fy_graph_save(g, graph, &err), 0);
    fy_graph_destroy(g);
    assert_int_equal(fy_graph_load(graph, &g, &err), 0);
    assert_int_equal(fy_graph_op_count(g), 5);
    const char *src = tensor(g, "model.embed_tokens.weight")->source_file;
    assert_true(src[0] == '/');
    assert_non_null(strstr(src, "sharded-llama/model-00001-of-00002.safetensors"));
    assert_weights_point_at_their_bytes(g, llama, 5, 21, "model-00001-of-00002");
    assert_weights_point_at_their_bytes(g, llama + 5, LLAMA_COUNT - 5, 22, "model-00002-of");
    fy_graph_destroy(g);
    free(graph);
    free(dir);
}

static void test_import_gpt2_ties_the_head_to_the_embedding(void **state)
{
    (void)state;
    static const st_spec gpt2[] = {
        {"transformer.wte.weight", "F32", 32, 2, {V, H}},
        {"transformer.wpe.weight", "F32", 32, 2, {8, H}},
        {"transformer.h.0.ln_1.weight", "F32", 32, 1, {H}},
        {"transformer.h.0.attn.c_attn.weight", "F32", 32, 2, {H, 3 * H}},
        {"transformer.h.0.attn.c_attn.bias", "F32", 32, 1, {3 * H}},
        {"transformer.h.0.attn.bias", "BOOL", 8, 4, {1, 1, 8, 8}},
        {"transformer.h.1.ln_1.weight", "F32", 32, 1, {H}},
        {"transformer.ln_f.weight", "F32", 32, 1, {H}},
        {"transformer.ln_f.bias", "F32", 32, 1, {H}},
    };
    char *ck = path_of("gpt2.safetensors");
    st_write(ck, 7, gpt2, sizeof gpt2 / sizeof gpt2[0], NULL, 0, NULL);
    fy_import_params p = {.seq = 8};
    fy_import_info info;
    fy_graph *g = import_ok(ck, &p, &info);
    assert_true(info.tied_head);
    assert_int_equal(info.act_dtype, FY_DTYPE_F32);
    assert_string_equal(info.patterns, "transformer.h.{i}.");
    fy_import_info_free(&info);
    assert_reads(
        g, "embed",
        (const char *const[]){"tokens", "transformer.wpe.weight", "transformer.wte.weight", NULL});
    assert_reads(g, "head",
                 (const char *const[]){"hidden.2", "transformer.ln_f.bias",
                                       "transformer.ln_f.weight", "transformer.wte.weight", NULL});
    assert_int_equal(tensor(g, "logits")->size, 8 * V * 4);
    assert_true(fy_graph_op(g, 3)->flops == 2.0 * (V * H + 2 * H) * 8);
    assert_string_equal(fy_graph_op(g, 1)->name, "transformer.h.0");
    /* With no graph path the source is absolute. */
    assert_true(tensor(g, "transformer.wte.weight")->source_file[0] == '/');
    fy_graph_destroy(g);
    free(ck);
}

static void test_import_follows_user_patterns_in_order(void **state)
{
    (void)state;
    static const st_spec t5ish[] = {
        {"dec_blk3_w", "F16", 16, 2, {H, H}}, {"enc_blk0_w", "F16", 16, 2, {H, H}},
        {"enc_blk1_w", "F16", 16, 2, {H, H}}, {"dec_blk0_w", "F16", 16, 2, {H, H}},
        {"enc_blk0_n", "F16", 16, 1, {H}},    {"final.n", "F16", 16, 1, {H}},
    };
    char *ck = path_of("t5ish.safetensors");
    st_write(ck, 9, t5ish, sizeof t5ish / sizeof t5ish[0], NULL, 0, NULL);
    const char *layers[] = {"enc_blk{i}_", "dec_blk{i}_"};
    fy_import_params p = {.layers = layers, .layer_count = 2, .seq = 4, .name = "t5"};
    fy_import_info info;
    fy_graph *g = import_ok(ck, &p, &info);
    assert_string_equal(fy_graph_name(g), "t5");
    assert_int_equal(info.stacks, 2);
    assert_string_equal(info.patterns, "enc_blk{i}_, dec_blk{i}_");
    assert_int_equal(info.hidden, H); /* from the 1-D weight of the first layer */
    assert_int_equal(info.vocab, 0);
    assert_int_equal(info.act_dtype, FY_DTYPE_F16);
    fy_import_info_free(&info);
    /* No embedding: the hidden state is the input; the head keeps the hidden width. */
    const char *order[] = {"enc_blk0_", "enc_blk1_", "dec_blk0_", "dec_blk3_", "head"};
    assert_int_equal(fy_graph_op_count(g), 5);
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(fy_graph_op(g, i)->name, order[i]);
    assert_int_equal(tensor(g, "hidden.0")->kind, FY_TENSOR_INPUT);
    assert_int_equal(tensor(g, "output")->kind, FY_TENSOR_OUTPUT);
    assert_int_equal(tensor(g, "output")->size, 4 * H * 2);
    assert_reads(g, "head", (const char *const[]){"hidden.4", "final.n", NULL});
    fy_graph_destroy(g);
    free(ck);
}

static void test_import_without_head_ends_at_the_last_layer(void **state)
{
    (void)state;
    static const st_spec bare[] = {
        {"layers.0.w", "BF16", 16, 2, {H, 2 * H}}, {"layers.0.norm", "BF16", 16, 1, {H}},
        {"layers.0.bias", "BF16", 16, 1, {2 * H}}, {"layers.0.norm2", "BF16", 16, 1, {H}},
        {"layers.1.w", "BF16", 16, 2, {H, 2 * H}},
    };
    char *ck = path_of("bare.safetensors");
    st_write(ck, 4, bare, 5, NULL, 0, NULL);
    fy_import_info info;
    fy_graph *g = import_ok(ck, NULL, &info);
    assert_int_equal(info.hidden, H); /* two 1-D weights of H beat one of 2H */
    assert_int_equal(info.layers, 2);
    fy_import_info_free(&info);
    assert_int_equal(fy_graph_op_count(g), 2);
    assert_string_equal(fy_graph_op(g, 1)->name, "layers.1");
    const fy_tensor *out = fy_graph_tensor(g, fy_graph_op(g, 1)->writes[0]);
    assert_string_equal(out->name, "output");
    assert_int_equal(out->kind, FY_TENSOR_OUTPUT);
    assert_int_equal(out->size, 2048ull * H * 2); /* default seq 2048, batch 1 */
    fy_graph_destroy(g);
    free(ck);
}

static void test_import_keeps_sizes_of_dtypes_ferry_lacks(void **state)
{
    (void)state;
    static const st_spec odd[] = {
        {"model.embed_tokens.weight", "U16", 16, 2, {V, H}},
        {"model.layers.0.q", "F4", 4, 2, {H, H}},
        {"model.layers.0.deep", "I8", 8, 4, {1, 2, 3, 4}},
        {"model.layers.0.empty", "F32", 32, 2, {0, H}},
        {"model.layers.0.scalar", "F32", 32, 0, {0}},
        {"model.layers.0.bf", "BF16", 16, 2, {H, H}},
    };
    char *ck = path_of("odd.safetensors");
    st_write(ck, 2, odd, sizeof odd / sizeof odd[0], NULL, 0, NULL);
    fy_import_info info;
    fy_graph *g = import_ok(ck, NULL, &info);
    assert_int_equal(info.skipped_empty, 1);
    assert_int_equal(info.tensors, 5);
    /* A U16 embedding gives no float type: activations take the weights' commonest one. */
    assert_int_equal(info.act_dtype, FY_DTYPE_BF16);
    fy_import_info_free(&info);
    const fy_tensor *u16 = tensor(g, "model.embed_tokens.weight");
    assert_int_equal(u16->dtype, FY_DTYPE_NONE);
    assert_int_equal(u16->rank, 0);
    assert_int_equal(u16->size, V * H * 2);
    assert_int_equal(tensor(g, "model.layers.0.q")->size, H * H / 2);
    assert_int_equal(tensor(g, "model.layers.0.deep")->rank, 4);
    assert_int_equal(tensor(g, "model.layers.0.scalar")->size, 4);
    assert_int_equal(fy_graph_find_tensor(g, "model.layers.0.empty"), -1);
    assert_weights_point_at_their_bytes(g, odd, sizeof odd / sizeof odd[0], 2, NULL);
    fy_graph_destroy(g);
    free(ck);
}

static void test_import_keeps_its_names_apart_from_the_checkpoints(void **state)
{
    (void)state;
    static const st_spec clash[] = {
        {"tokens", "F32", 32, 2, {V, H}}, /* not an embedding's name: a head weight */
        {"embed.tokens", "F32", 32, 2, {V, H}}, {"layers.0.hidden.1", "F32", 32, 1, {H}},
        {"hidden.0", "F32", 32, 1, {H}},        {"logits", "F32", 32, 1, {H}},
    };
    char *ck = path_of("clash.safetensors");
    st_write(ck, 3, clash, sizeof clash / sizeof clash[0], NULL, 0, NULL);
    fy_graph *g = import_ok(ck, NULL, NULL);
    assert_int_equal(tensor(g, "_tokens")->kind, FY_TENSOR_INPUT);
    assert_int_equal(tensor(g, "tokens")->kind, FY_TENSOR_WEIGHT);
    assert_int_equal(tensor(g, "_hidden.0")->kind, FY_TENSOR_ACTIVATION);
    assert_int_equal(tensor(g, "_logits")->kind, FY_TENSOR_OUTPUT);
    assert_reads(g, "head",
                 (const char *const[]){"hidden.1", "hidden.0", "logits", "tokens", NULL});
    fy_graph_destroy(g);
    free(ck);
}

static void expect_import_error(const char *ck, const fy_import_params *p, int status,
                                const char *file_end, const char *want)
{
    fy_graph *g = (fy_graph *)1;
    fy_error err = {0};
    fy_import_info info = {.patterns = (char *)1};
    int rc = fy_import_safetensors(ck, p, &g, &info, &err);
    size_t fl = strlen(err.file), el = file_end ? strlen(file_end) : 0;
    if (rc != status || !strstr(err.message, want) ||
        (file_end && (fl < el || strcmp(err.file + fl - el, file_end))))
        fail_msg("got %d %s: '%s'; want %d %s: '%s'", rc, err.file, err.message, status,
                 file_end ? file_end : "", want);
    assert_null(g);
    assert_null(info.patterns);
}

static void test_import_refuses_what_it_cannot_group(void **state)
{
    (void)state;
    char *ck = path_of("refuse.safetensors");
    st_write(ck, 1, llama, LLAMA_COUNT, NULL, 0, NULL);
    const char *no_i[] = {"model.layers."};
    fy_import_params p = {.layers = no_i, .layer_count = 1};
    expect_import_error(ck, &p, FY_EINVAL, NULL, "needs {i} where the layer number goes");
    const char *two_i[] = {"a.{i}.{i}"};
    p.layers = two_i;
    expect_import_error(ck, &p, FY_EINVAL, NULL, "has {i} more than once");
    const char *unmatched[] = {"model.layers.{i}.", "decoder.{i}."};
    p.layers = unmatched;
    p.layer_count = 2;
    expect_import_error(ck, &p, FY_EINVAL, "refuse.safetensors",
                        "layer pattern 'decoder.{i}.' matches no tensor name");

    static const st_spec flat[] = {{"weight", "F32", 32, 2, {4, 4}}, {"bias", "F32", 32, 1, {4}}};
    st_write(ck, 1, flat, 2, NULL, 0, NULL);
    expect_import_error(ck, NULL, FY_EINVAL, "refuse.safetensors",
                        "no tensor name looks like a layer's");
    static const st_spec empty[] = {{"layers.0.w", "F32", 32, 1, {0}}};
    st_write(ck, 1, empty, 1, NULL, 0, NULL);
    expect_import_error(ck, NULL, FY_EINVAL, "refuse.safetensors", "holds no tensor with bytes");
    static const st_spec no_width[] = {{"layers.0.w", "F32", 32, 2, {4, 4}}};
    st_write(ck, 1, no_width, 1, NULL, 0, NULL);
    expect_import_error(ck, NULL, FY_EINVAL, "refuse.safetensors", "cannot tell the hidden size");
    fy_import_params with_hidden = {.hidden = 4, .seq = 2};
    fy_graph *g = import_ok(ck, &with_hidden, NULL);
    assert_int_equal(tensor(g, "output")->size, 2 * 4 * 4);
    fy_graph_destroy(g);

    /* Bad headers and sizes come through with the file named. */
    const char *bad = "{\"layers.0.w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,9]}}";
    st_write_raw(ck, bad, strlen(bad), NULL, 0);
    expect_import_error(ck, NULL, FY_EPARSE, "refuse.safetensors", "tensor 'layers.0.w'");
    st_write(ck, 1, no_width, 1, NULL, 0, NULL);
    fy_import_params huge = {.seq = UINT64_MAX / 2, .batch = 4};
    expect_import_error(ck, &huge, FY_ERANGE, NULL, "batch x seq overflows");
    fy_import_params wide = {.seq = UINT64_MAX / 4, .hidden = 8};
    expect_import_error(ck, &wide, FY_ERANGE, NULL, "more than 2^64-1 bytes");
    free(ck);
    ck = path_of("absent.safetensors");
    expect_import_error(ck, NULL, FY_ENOENT, "absent.safetensors", "cannot open");
    free(ck);
}

static void test_import_names_graphs_after_their_checkpoint(void **state)
{
    (void)state;
    char *dir = path_of("tiny-llama-v2");
    assert_int_equal(mkdir(dir, 0755), 0);
    char file[4200];
    snprintf(file, sizeof file, "%s/model.safetensors", dir);
    st_write(file, 1, llama, LLAMA_COUNT, NULL, 0, NULL);
    fy_graph *g = import_ok(file, NULL, NULL);
    assert_string_equal(fy_graph_name(g), "tiny-llama-v2");
    fy_graph_destroy(g);
    snprintf(file, sizeof file, "%s/", dir);
    g = import_ok(file, NULL, NULL);
    assert_string_equal(fy_graph_name(g), "tiny-llama-v2");
    fy_graph_destroy(g);
    snprintf(file, sizeof file, "%s/weights-v3.safetensors", dir);
    st_write(file, 1, llama, LLAMA_COUNT, NULL, 0, NULL);
    g = import_ok(file, NULL, NULL);
    assert_string_equal(fy_graph_name(g), "weights-v3");
    fy_graph_destroy(g);
    /* "." names the current folder. */
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(dir), 0);
    unlink("weights-v3.safetensors");
    g = import_ok(".", NULL, NULL);
    assert_string_equal(fy_graph_name(g), "tiny-llama-v2");
    fy_graph_destroy(g);
    assert_int_equal(chdir(cwd), 0);
    free(dir);
    assert_non_null(fy_import_default_patterns()[0]);
}

static void test_import_head_width_comes_from_its_largest_matrix(void **state)
{
    (void)state;
    static const st_spec heads[] = {
        {"blocks.0.w", "F32", 32, 2, {H, H}},
        {"blocks.0.n", "F32", 32, 1, {H}},
        {"pool.dense", "F32", 32, 2, {H, H}},
        {"classifier", "F32", 32, 2, {H, 5 * H}},
    };
    char *ck = path_of("heads.safetensors");
    st_write(ck, 1, heads, 4, NULL, 0, NULL);
    fy_import_params p = {.seq = 3};
    fy_import_info info;
    fy_graph *g = import_ok(ck, &p, &info);
    assert_int_equal(info.vocab, 5 * H); /* the side of [H, 5H] that is not hidden */
    assert_false(info.tied_head);
    fy_import_info_free(&info);
    assert_int_equal(tensor(g, "logits")->size, 3 * 5 * H * 4);
    fy_graph_destroy(g);
    /* layer_count without layers is the caller's mistake, refused. */
    fy_import_params bad = {.layer_count = 1};
    expect_import_error(ck, &bad, FY_EINVAL, NULL, "layers is NULL");
    free(ck);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_import_llama_round_trip_points_at_the_right_bytes),
        cmocka_unit_test(test_import_sharded_checkpoint_points_into_each_shard),
        cmocka_unit_test(test_import_gpt2_ties_the_head_to_the_embedding),
        cmocka_unit_test(test_import_follows_user_patterns_in_order),
        cmocka_unit_test(test_import_without_head_ends_at_the_last_layer),
        cmocka_unit_test(test_import_keeps_sizes_of_dtypes_ferry_lacks),
        cmocka_unit_test(test_import_keeps_its_names_apart_from_the_checkpoints),
        cmocka_unit_test(test_import_refuses_what_it_cannot_group),
        cmocka_unit_test(test_import_names_graphs_after_their_checkpoint),
        cmocka_unit_test(test_import_head_width_comes_from_its_largest_matrix),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
