/* Safetensors headers: checkpoints written byte by byte (one file with every common dtype,
 * shards with an index, folders), and hostile headers, one test each, whose errors must
 * name the file and the tensor. */
#include "st_util.h"

#include "graph/safetensors.h"

#include <sys/stat.h>
#include <unistd.h>

static char *scratch;

static int setup(void **state)
{
    (void)state;
    scratch = fy_test_scratch("st");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fy_test_scratch_remove(scratch);
    return 0;
}

static const char *path_of(const char *name)
{
    static char buf[2][4096];
    static int which;
    which ^= 1;
    snprintf(buf[which], sizeof buf[which], "%s/%s", scratch, name);
    return buf[which];
}

static const st_spec every_dtype[] = {
    {"f64", "F64", 64, 2, {3, 5}},     {"f32", "F32", 32, 1, {7}},
    {"f16", "F16", 16, 3, {2, 3, 4}},  {"bf16", "BF16", 16, 2, {4, 4}},
    {"i64", "I64", 64, 1, {3}},        {"i32", "I32", 32, 2, {1, 9}},
    {"i16", "I16", 16, 1, {5}},        {"i8", "I8", 8, 1, {13}},
    {"u8", "U8", 8, 2, {3, 3}},        {"bool", "BOOL", 8, 1, {6}},
    {"e4m3", "F8_E4M3", 8, 2, {2, 8}}, {"e5m2", "F8_E5M2", 8, 1, {9}},
    {"scalar", "F32", 32, 0, {0}},     {"empty", "F16", 16, 2, {0, 4096}},
    {"u16", "U16", 16, 1, {3}},        {"fp4", "F4", 4, 1, {6}},
    {"c64", "C64", 64, 1, {2}},        {"u8.after.empty", "U8", 8, 1, {1}},
};
#define EVERY_DTYPE_COUNT (sizeof every_dtype / sizeof every_dtype[0])

static void check_every_dtype(const fy_st_file *f, uint64_t header, const uint64_t *begins,
                              const char *path)
{
    static const fy_dtype ferry[] = {
        FY_DTYPE_F64,     FY_DTYPE_F32,     FY_DTYPE_F16, FY_DTYPE_BF16, FY_DTYPE_I64,
        FY_DTYPE_I32,     FY_DTYPE_I16,     FY_DTYPE_I8,  FY_DTYPE_U8,   FY_DTYPE_BOOL,
        FY_DTYPE_F8_E4M3, FY_DTYPE_F8_E5M2, FY_DTYPE_F32, FY_DTYPE_F16,  FY_DTYPE_NONE,
        FY_DTYPE_NONE,    FY_DTYPE_NONE,    FY_DTYPE_U8};
    assert_int_equal(f->tensor_count, EVERY_DTYPE_COUNT);
    assert_int_equal(f->header_len, header);
    assert_int_equal(f->data_start, 8 + header);
    assert_int_equal(f->header_len % 8, 0);
    for (size_t i = 0; i < EVERY_DTYPE_COUNT; i++) {
        const fy_st_tensor *t = &f->tensors[i];
        const st_spec *s = &every_dtype[i];
        assert_string_equal(t->name, s->name);
        assert_string_equal(t->dtype->name, s->dtype);
        assert_int_equal(t->dtype->bits, s->bits);
        assert_int_equal(t->dtype->dtype, ferry[i]);
        assert_int_equal(t->rank, s->rank);
        uint64_t elements = 1;
        for (int d = 0; d < s->rank; d++) {
            assert_int_equal(t->shape[d], s->shape[d]);
            elements *= s->shape[d];
        }
        assert_int_equal(t->elements, elements);
        assert_int_equal(t->bytes, st_spec_bytes(s));
        assert_int_equal(t->begin, begins[i]);
        assert_int_equal(t->end, begins[i] + t->bytes);
        assert_int_equal(t->offset, 8 + header + begins[i]);
        assert_int_equal(t->line, 1);
        if (path) assert_true(st_bytes_match(path, 1, i, t->offset, t->bytes));
    }
    assert_int_equal(f->meta_count, 2);
    assert_string_equal(f->meta[0].key, "format");
    assert_string_equal(f->meta[0].value, "pt");
    assert_string_equal(f->meta[1].key, "note");
    assert_string_equal(f->meta[1].value, "caf\xc3\xa9 \xe2\x82\xac");
}

static void test_safetensors_reads_every_common_dtype(void **state)
{
    (void)state;
    const char *path = path_of("every.safetensors");
    uint64_t begins[EVERY_DTYPE_COUNT];
    uint64_t header =
        st_write(path, 1, every_dtype, EVERY_DTYPE_COUNT,
                 "{\"format\":\"pt\",\"note\":\"caf\\u00e9 \xe2\x82\xac\"}", 3, begins);
    fy_st_file *f = NULL;
    fy_error err = {0};
    if (fy_st_file_read(path, &f, &err) < 0) fail_msg("%s", err.message);
    assert_string_equal(f->path, path);
    check_every_dtype(f, header, begins, path);
    fy_st_file_destroy(f);

    /* The same bytes from memory give the same description. */
    FILE *in = fopen(path, "rb");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    char *data = malloc((size_t)st.st_size);
    assert_int_equal(fread(data, 1, (size_t)st.st_size, in), (size_t)st.st_size);
    fclose(in);
    assert_int_equal(fy_st_file_parse("mem", data, (size_t)st.st_size, &f, &err), 0);
    assert_string_equal(f->path, "mem");
    check_every_dtype(f, header, begins, NULL);
    fy_st_file_destroy(f);
    free(data);
    fy_st_file_destroy(NULL);
}

static void test_safetensors_knows_the_dtype_names_it_lists(void **state)
{
    (void)state;
    char names[512];
    snprintf(names, sizeof names, "%s", fy_st_dtype_names());
    size_t count = 0;
    for (char *tok = strtok(names, ", "); tok; tok = strtok(NULL, ", ")) {
        const fy_st_dtype *d = fy_st_dtype_find(tok, strlen(tok));
        assert_non_null(d);
        assert_string_equal(d->name, tok);
        count++;
    }
    assert_int_equal(count, 22);
    assert_null(fy_st_dtype_find("F32 ", 4 + 1));
    assert_null(fy_st_dtype_find("f32", 3)); /* the format spells them in capitals */
    assert_non_null(fy_st_dtype_find("F32xyz", 3));
}

static void test_safetensors_reads_an_empty_header(void **state)
{
    (void)state;
    const char *path = path_of("empty.safetensors");
    st_write_raw(path, "{}      ", 8, NULL, 0);
    fy_st_checkpoint *ck = NULL;
    assert_int_equal(fy_st_checkpoint_open(path, &ck, NULL), 0);
    assert_int_equal(ck->file_count, 1);
    assert_int_equal(ck->tensor_count, 0);
    fy_st_checkpoint_destroy(ck);
    /* Null metadata is the same as none. */
    st_write_raw(path, "{\"__metadata__\":null}", 21, NULL, 0);
    fy_st_file *f = NULL;
    assert_int_equal(fy_st_file_read(path, &f, NULL), 0);
    assert_int_equal(f->meta_count, 0);
    fy_st_file_destroy(f);
}

static const st_spec shard1[] = {{"model.embed.weight", "BF16", 16, 2, {16, 8}},
                                 {"model.layers.0.w", "BF16", 16, 2, {8, 8}}};
static const st_spec shard2[] = {{"model.layers.1.w", "BF16", 16, 2, {8, 8}},
                                 {"lm_head.weight", "F32", 32, 2, {16, 8}},
                                 {"model.norm.weight", "F16", 16, 1, {8}}};

static char *write_sharded(const char *dir_name, const char *extra_map)
{
    char *dir = strdup(path_of(dir_name));
    assert_int_equal(mkdir(dir, 0755), 0);
    char p[4200];
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    st_write(p, 11, shard1, 2, "{\"format\":\"pt\"}", 0, NULL);
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    st_write(p, 12, shard2, 3, NULL, 0, NULL);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    char text[2048];
    snprintf(text, sizeof text,
             "{\n  \"metadata\": {\"total_size\": 864},\n  \"weight_map\": {\n"
             "    \"lm_head.weight\": \"model-00002-of-00002.safetensors\",\n"
             "    \"model.embed.weight\": \"model-00001-of-00002.safetensors\",\n"
             "    \"model.layers.0.w\": \"model-00001-of-00002.safetensors\",\n"
             "    \"model.layers.1.w\": \"model-00002-of-00002.safetensors\",\n"
             "    \"model.norm.weight\": \"model-00002-of-00002.safetensors\"%s\n  }\n}\n",
             extra_map ? extra_map : "");
    st_write_text(p, text);
    return dir;
}

static void check_sharded(const fy_st_checkpoint *ck)
{
    assert_int_equal(ck->file_count, 2);
    assert_int_equal(ck->tensor_count, 5);
    assert_non_null(strstr(ck->files[0]->path, "model-00001-of-00002.safetensors"));
    assert_non_null(strstr(ck->files[1]->path, "model-00002-of-00002.safetensors"));
    for (size_t i = 0; i < ck->tensor_count; i++) {
        const fy_st_tensor *t = ck->tensors[i];
        size_t shard = i < 2 ? 0 : 1, index = i < 2 ? i : i - 2;
        assert_int_equal(t->file, shard);
        assert_string_equal(t->name, shard ? shard2[index].name : shard1[index].name);
        assert_true(
            st_bytes_match(ck->files[shard]->path, shard ? 12 : 11, index, t->offset, t->bytes));
    }
}

static void test_safetensors_reads_sharded_checkpoint_with_index(void **state)
{
    (void)state;
    char *dir = write_sharded("sharded", NULL);
    fy_st_checkpoint *ck = NULL;
    fy_error err = {0};
    char index[4200];
    snprintf(index, sizeof index, "%s/model.safetensors.index.json", dir);
    if (fy_st_checkpoint_open(index, &ck, &err) < 0) fail_msg("%s: %s", err.file, err.message);
    assert_string_equal(ck->path, index);
    check_sharded(ck);
    fy_st_checkpoint_destroy(ck);
    /* The folder finds its index. */
    assert_int_equal(fy_st_checkpoint_open(dir, &ck, &err), 0);
    assert_non_null(strstr(ck->path, "model.safetensors.index.json"));
    check_sharded(ck);
    fy_st_checkpoint_destroy(ck);
    free(dir);
}

static void test_safetensors_folder_with_one_file_opens_it(void **state)
{
    (void)state;
    char *dir = strdup(path_of("single"));
    assert_int_equal(mkdir(dir, 0755), 0);
    char p[4200];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    st_write(p, 3, shard2, 3, NULL, 0, NULL);
    snprintf(p, sizeof p, "%s/config.json", dir);
    st_write_text(p, "{}");
    fy_st_checkpoint *ck = NULL;
    assert_int_equal(fy_st_checkpoint_open(dir, &ck, NULL), 0);
    assert_int_equal(ck->file_count, 1);
    assert_int_equal(ck->tensor_count, 3);
    assert_non_null(strstr(ck->path, "/model.safetensors"));
    fy_st_checkpoint_destroy(ck);
    free(dir);
}

/* ---- refusals ------------------------------------------------------------------------ */

/* Expects opening path as a checkpoint to fail with status, in a file whose name ends with
 * file_end, with a message holding each of want (NULL-terminated). */
static void expect_refusal(const char *path, int status, const char *file_end, unsigned line,
                           const char *const *want)
{
    fy_st_checkpoint *ck = (fy_st_checkpoint *)1;
    fy_error err = {0};
    int rc = fy_st_checkpoint_open(path, &ck, &err);
    assert_null(ck);
    size_t fl = strlen(err.file), el = strlen(file_end);
    bool ok = rc == status && fl >= el && !strcmp(err.file + fl - el, file_end) &&
              (line == 0 || err.line == line);
    for (const char *const *w = want; ok && *w; w++)
        ok = strstr(err.message, *w) != NULL;
    if (!ok)
        fail_msg("%s: got %d %s:%u:%u '%s'; want %d %s:%u", path, rc, err.file, err.line,
                 err.column, err.message, status, file_end, line);
}

/* Writes header json over data as bad.safetensors, expects a refusal naming the file and
 * the texts in want, both from the file and from memory. */
static void hostile_data(const char *json, const void *data, size_t data_len,
                         const char *const *want)
{
    const char *path = path_of("bad.safetensors");
    st_write_raw(path, json, strlen(json), data, data_len);
    expect_refusal(path, FY_EPARSE, "bad.safetensors", 0, want);
    /* the same from memory */
    size_t len = 8 + strlen(json) + data_len;
    unsigned char *mem = malloc(len);
    FILE *f = fopen(path, "rb");
    assert_int_equal(fread(mem, 1, len, f), len);
    fclose(f);
    fy_st_file *st = (fy_st_file *)1;
    fy_error err = {0};
    assert_int_equal(fy_st_file_parse("mem.safetensors", mem, len, &st, &err), FY_EPARSE);
    assert_null(st);
    assert_string_equal(err.file, "mem.safetensors");
    for (const char *const *w = want; *w; w++)
        if (!strstr(err.message, *w)) fail_msg("from memory: '%s' lacks '%s'", err.message, *w);
    free(mem);
}

static void hostile(const char *json, const char *const *want)
{
    static const unsigned char zeros[64];
    hostile_data(json, zeros, sizeof zeros, want);
}

#define WANT(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_safetensors_refuses_file_too_short(void **state)
{
    (void)state;
    const char *path = path_of("short.safetensors");
    FILE *f = fopen(path, "wb");
    assert_int_equal(fwrite("\x10\0\0", 1, 3, f), 3);
    fclose(f);
    expect_refusal(path, FY_EPARSE, "short.safetensors", 0, WANT("file of 3 bytes", "too short"));
    fy_st_file *st;
    assert_int_equal(fy_st_file_parse("m", "", 0, &st, NULL), FY_EPARSE);
}

static void test_safetensors_refuses_header_length_beyond_file(void **state)
{
    (void)state;
    const char *path = path_of("long.safetensors");
    FILE *f = fopen(path, "wb");
    unsigned char head[8 + 10] = {0xe8, 0x03, 0, 0, 0, 0, 0, 0, '{', '}'}; /* N = 1000 */
    fwrite(head, 1, sizeof head, f);
    fclose(f);
    expect_refusal(path, FY_EPARSE, "long.safetensors", 0,
                   WANT("header length 1000 goes beyond the end of the file (18 bytes)"));
}

static void test_safetensors_refuses_absurd_header_length(void **state)
{
    (void)state;
    /* A sparse file big enough to hold the claimed header: only the limit refuses it. */
    const char *path = path_of("absurd.safetensors");
    FILE *f = fopen(path, "wb");
    uint64_t n = FY_ST_HEADER_MAX + 1;
    unsigned char le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (unsigned char)(n >> (8 * i));
    fwrite(le, 1, 8, f);
    fclose(f);
    assert_int_equal(truncate(path, (off_t)(n + 4096)), 0);
    expect_refusal(path, FY_EPARSE, "absurd.safetensors", 0,
                   WANT("header length 104857601 is absurd", "100 MiB"));
    /* and a length no file could have */
    unsigned char all[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    fy_st_file *st;
    fy_error err = {0};
    assert_int_equal(fy_st_file_parse("m", all, sizeof all, &st, &err), FY_EPARSE);
    assert_non_null(strstr(err.message, "header length 18446744073709551615 is absurd"));
}

static void test_safetensors_refuses_json_errors_with_position(void **state)
{
    (void)state;
    const char *path = path_of("json.safetensors");
    const char *json = "{\"a\": {\"dtype\": \"F32\",, }}";
    st_write_raw(path, json, strlen(json), NULL, 0);
    fy_st_checkpoint *ck;
    fy_error err = {0};
    assert_int_equal(fy_st_checkpoint_open(path, &ck, &err), FY_EPARSE);
    assert_string_equal(err.file, path);
    assert_int_equal(err.line, 1);
    assert_int_equal(err.column, 23);
    assert_non_null(strstr(err.message, "header JSON: expected a string key, found ','"));
    hostile("[1, 2]", WANT("the header must be a JSON object, not an array"));
    hostile("", WANT("header JSON: empty text"));
}

static void test_safetensors_refuses_unknown_dtype(void **state)
{
    (void)state;
    hostile("{\"w.q\":{\"dtype\":\"F17\",\"shape\":[1],\"data_offsets\":[0,4]}}",
            WANT("tensor 'w.q'", "unknown dtype 'F17'", "known: BOOL"));
    hostile("{\"w.q\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}",
            WANT("tensor 'w.q'", "dtype must be a string, not a number"));
}

static void test_safetensors_refuses_shape_and_bytes_that_disagree(void **state)
{
    (void)state;
    hostile("{\"ok\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
            "\"blk.3.w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[2,22]}}",
            WANT("tensor 'blk.3.w'", "shape [2, 3] of F32 is 24 bytes",
                 "data_offsets [2, 22] span 20"));
    hostile("{\"q4\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}",
            WANT("tensor 'q4'", "shape [3] of F4 (4 bits each) does not fill whole bytes"));
}

static void test_safetensors_refuses_offsets_out_of_the_data_region(void **state)
{
    (void)state;
    hostile("{\"tail\":{\"dtype\":\"F32\",\"shape\":[16,2],\"data_offsets\":[0,128]}}",
            WANT("tensor 'tail'", "data_offsets [0, 128] go beyond the data region",
                 "64 bytes after the header"));
    hostile("{\"rev\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[9,8]}}",
            WANT("tensor 'rev'", "data_offsets [9, 8] end before they begin"));
    hostile("{\"far\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[99,99]}}",
            WANT("tensor 'far'", "go beyond the data region"));
}

static void test_safetensors_refuses_overlapping_tensors(void **state)
{
    (void)state;
    /* Header order is not data order: the reader sorts by begin. */
    hostile("{\"late\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[40,48]},"
            "\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
            "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[12,28]}}",
            WANT("tensor 'b'", "its bytes [12, 28) overlap those of tensor 'a' [0, 16)"));
    /* A tensor inside a longer one, after a short one that ends early. */
    hostile("{\"big\":{\"dtype\":\"U8\",\"shape\":[32],\"data_offsets\":[0,32]},"
            "\"small\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]},"
            "\"inner\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[8,12]}}",
            WANT("overlap those of tensor 'big' [0, 32)"));
    /* Empty tensors share no byte with anything; exact neighbours do not overlap. */
    const char *path = path_of("touch.safetensors");
    const char *json = "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                       "\"e\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[2,2]},"
                       "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}";
    st_write_raw(path, json, strlen(json), "01234567", 8);
    fy_st_file *f = NULL;
    assert_int_equal(fy_st_file_read(path, &f, NULL), 0);
    assert_int_equal(f->tensor_count, 3);
    fy_st_file_destroy(f);
}

static void test_safetensors_refuses_non_utf8_names(void **state)
{
    (void)state;
    hostile("{\"layer\xff.w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
            WANT("invalid UTF-8 (byte 0xff) in object key \"layer\\xff.w\""));
    hostile("{\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
            WANT("tensor 'a\\x00b'", "holds a NUL character"));
    hostile("{\"\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
            WANT("a tensor has an empty name"));
}

static void test_safetensors_refuses_duplicate_names(void **state)
{
    (void)state;
    hostile("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
            "\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
            WANT("tensor 'w': the name appears twice", "first at line 1, column 2"));
    hostile("{\"__metadata__\":{},\"__metadata__\":{}}", WANT("__metadata__ is given twice"));
}

static void test_safetensors_refuses_negative_numbers(void **state)
{
    (void)state;
    hostile("{\"neg\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,1]}}",
            WANT("tensor 'neg'", "shape[0] must not be negative (-1)"));
    hostile("{\"neg\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-4,1]}}",
            WANT("tensor 'neg'", "data_offsets[0] must not be negative (-4)"));
}

static void test_safetensors_refuses_overflowing_numbers(void **state)
{
    (void)state;
    hostile("{\"big\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,18446744073709551616]}}",
            WANT("tensor 'big'", "data_offsets[1] is too large (18446744073709551616)"));
    hostile("{\"many\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],"
            "\"data_offsets\":[0,1]}}",
            WANT("tensor 'many'", "shape [4294967296, 4294967296] has more than 2^64 elements"));
    hostile("{\"wide\":{\"dtype\":\"F64\",\"shape\":[4294967296,536870912],"
            "\"data_offsets\":[0,1]}}",
            WANT("tensor 'wide'", "of F64 takes more than 2^64 bytes"));
    hostile("{\"nib\":{\"dtype\":\"F4\",\"shape\":[4611686018427387904,2],"
            "\"data_offsets\":[0,1]}}",
            WANT("tensor 'nib'", "of F4 takes more than 2^64 bytes"));
    /* A zero makes the product zero, however large the rest. */
    const char *path = path_of("zero.safetensors");
    const char *json = "{\"z\":{\"dtype\":\"F64\",\"shape\":[18446744073709551615,0,"
                       "18446744073709551615],\"data_offsets\":[0,0]}}";
    st_write_raw(path, json, strlen(json), NULL, 0);
    fy_st_file *f = NULL;
    assert_int_equal(fy_st_file_read(path, &f, NULL), 0);
    assert_int_equal(f->tensors[0].elements, 0);
    fy_st_file_destroy(f);
}

static void test_safetensors_refuses_malformed_entries(void **state)
{
    (void)state;
    hostile("{\"x\":[1]}", WANT("tensor 'x': its entry must be an object, not an array"));
    hostile("{\"x\":{\"dtype\":\"U8\",\"shape\":[1]}}", WANT("tensor 'x'", "no 'data_offsets'"));
    hostile("{\"x\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", WANT("no 'shape'"));
    hostile("{\"x\":{\"shape\":[1],\"data_offsets\":[0,1]}}", WANT("no 'dtype'"));
    hostile("{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"sha\":\"0\"}}",
            WANT("tensor 'x'", "unknown key 'sha'"));
    hostile("{\"x\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
            WANT("tensor 'x'", "'dtype' is given twice"));
    hostile("{\"x\":{\"dtype\":\"U8\",\"shape\":1,\"data_offsets\":[0,1]}}",
            WANT("tensor 'x'", "shape must be an array, not a number"));
    hostile("{\"x\":{\"dtype\":\"U8\",\"shape\":[\"1\"],\"data_offsets\":[0,1]}}",
            WANT("shape[0] must be a whole number, not a string"));
    hostile("{\"x\":{\"dtype\":\"U8\",\"shape\":[1.0],\"data_offsets\":[0,1]}}",
            WANT("shape[0] must be a whole number, not 1.0"));
    hostile("{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}",
            WANT("data_offsets must be an array [begin, end], not an array of another length"));
    hostile("{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":{}}}",
            WANT("data_offsets must be an array [begin, end], not an object"));
}

static void test_safetensors_refuses_bad_metadata(void **state)
{
    (void)state;
    hostile("{\"__metadata__\":[]}", WANT("__metadata__ must be an object of strings"));
    hostile("{\"__metadata__\":{\"step\":7}}",
            WANT("__metadata__: 'step' must be a string, not a number"));
    hostile("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}",
            WANT("__metadata__: key 'k' is given twice"));
    hostile("{\"__metadata__\":{\"k\":\"a\\u0000\"}}",
            WANT("__metadata__: 'k' holds a NUL character"));
}

static void test_safetensors_refuses_what_is_not_a_file(void **state)
{
    (void)state;
    expect_refusal(path_of("missing.safetensors"), FY_ENOENT, "missing.safetensors", 0,
                   WANT("cannot open"));
    /* A folder opened as a file (through a name that looks like one). */
    const char *dir = path_of("folder.safetensors");
    assert_int_equal(mkdir(dir, 0755), 0);
    fy_st_file *f = (fy_st_file *)1;
    fy_error err = {0};
    assert_int_equal(fy_st_file_read(dir, &f, &err), FY_EINVAL);
    assert_null(f);
    assert_non_null(strstr(err.message, "not a regular file"));
    assert_int_equal(fy_st_file_read(path_of("nope"), &f, &err), FY_ENOENT);
}

/* ---- folders and indexes ----------------------------------------------------------- */

static void test_safetensors_folder_needs_one_checkpoint(void **state)
{
    (void)state;
    char *dir = strdup(path_of("none"));
    assert_int_equal(mkdir(dir, 0755), 0);
    expect_refusal(dir, FY_ENOENT, "none", 0, WANT("holds no .safetensors file"));
    char p[4200];
    snprintf(p, sizeof p, "%s/a.safetensors", dir);
    st_write(p, 1, shard1, 1, NULL, 0, NULL);
    snprintf(p, sizeof p, "%s/b.safetensors", dir);
    st_write(p, 1, shard1, 1, NULL, 0, NULL);
    expect_refusal(dir, FY_EINVAL, "none", 0,
                   WANT("holds 2 .safetensors files ('a.safetensors', 'b.safetensors')",
                        "name one file, or the index"));
    snprintf(p, sizeof p, "%s/a.safetensors.index.json", dir);
    st_write_text(p, "{}");
    snprintf(p, sizeof p, "%s/b.safetensors.index.json", dir);
    st_write_text(p, "{}");
    expect_refusal(dir, FY_EINVAL, "none", 0, WANT("holds 2 index files"));
    expect_refusal(path_of("absent-folder/"), FY_ENOENT, "absent-folder/", 0, WANT("cannot open"));
    free(dir);
}

/* Writes the sharded checkpoint with index text replaced by `index`; expects refusal. */
static void bad_index(const char *index, const char *file_end, unsigned line,
                      const char *const *want)
{
    static int serial;
    char name[64];
    snprintf(name, sizeof name, "idx%d", serial++);
    char *dir = write_sharded(name, NULL);
    char p[4200];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    if (index) st_write_text(p, index);
    expect_refusal(dir, FY_EPARSE, file_end, line, want);
    free(dir);
}

static void test_safetensors_refuses_malformed_index(void **state)
{
    (void)state;
    const char *idx = "model.safetensors.index.json";
    bad_index("[]", idx, 1, WANT("an index must be a JSON object, not an array"));
    bad_index("{\"weight_map\":{},\"weight_map\":{}}", idx, 1, WANT("'weight_map' is given twice"));
    bad_index("{\"weights\":{}}", idx, 1, WANT("unknown key 'weights'"));
    bad_index("{\"metadata\":{}}", idx, 1, WANT("an index needs a weight_map object"));
    bad_index("{\"weight_map\":[]}", idx, 1, WANT("needs a weight_map object", "not an array"));
    bad_index("{\"metadata\":1,\"weight_map\":{}}", idx, 1, WANT("metadata must be an object"));
    bad_index("{\"weight_map\":{\"a\":1}}", idx, 1,
              WANT("tensor 'a': the shard must be a string, not a number"));
    bad_index("{\"weight_map\":{\"\":\"x\"}}", idx, 1, WANT("a name must be non-empty"));
    bad_index("{\"weight_map\":{\"a\":\"../x.safetensors\"}}", idx, 1,
              WANT("tensor 'a': shard '../x.safetensors' must be a relative path"));
    bad_index("{\"weight_map\":{\"a\":\"/etc/x.safetensors\"}}", idx, 1,
              WANT("shard '/etc/x.safetensors' must be a relative path"));
    bad_index("{\"weight_map\":{\"a\":\"x//y\"}}", idx, 1, WANT("must be a relative path"));
    bad_index("{\"weight_map\":{\"a\":\"sub/\"}}", idx, 1, WANT("must be a relative path"));
    bad_index("{\"weight_map\":{\"a\":\"x\",\n\"a\":\"y\"}}", idx, 2,
              WANT("tensor 'a' is mapped twice (first at line 1, column 16)"));
    bad_index("{\"weight_map\":", idx, 1, WANT("the object opened at line 1", "not closed"));
}

static void test_safetensors_index_and_shards_must_agree(void **state)
{
    (void)state;
    /* A mapped tensor that its shard lacks: the error is in the index, at that line. */
    char *dir =
        write_sharded("agree1", ",\n    \"ghost.weight\": \"model-00001-of-00002.safetensors\"");
    expect_refusal(dir, FY_EPARSE, "model.safetensors.index.json", 9,
                   WANT("tensor 'ghost.weight' is mapped to", "model-00001-of-00002",
                        "which has no such tensor"));
    free(dir);
    /* A shard's tensor that the index does not map: the error is in the shard. */
    bad_index("{\"weight_map\":{\"lm_head.weight\":\"model-00002-of-00002.safetensors\"}}",
              "model-00002-of-00002.safetensors", 1,
              WANT("tensor 'model.layers.1.w' is in this shard but not in the weight_map"));
    /* A tensor mapped to another shard than the one holding it. */
    bad_index("{\"weight_map\":{\"lm_head.weight\":\"model-00001-of-00002.safetensors\","
              "\"model.embed.weight\":\"model-00001-of-00002.safetensors\","
              "\"model.layers.0.w\":\"model-00001-of-00002.safetensors\","
              "\"model.layers.1.w\":\"model-00002-of-00002.safetensors\","
              "\"model.norm.weight\":\"model-00002-of-00002.safetensors\"}}",
              "model-00002-of-00002.safetensors", 1,
              WANT("tensor 'lm_head.weight' is in this shard but", "maps it to "
                                                                   "'model-00001-of-00002"));
    /* A shard that is missing, and one whose header is hostile. */
    dir = write_sharded("agree2", ",\n    \"x\": \"model-00003-of-00002.safetensors\"");
    expect_refusal(dir, FY_ENOENT, "model-00003-of-00002.safetensors", 0, WANT("cannot open"));
    char p[4200];
    snprintf(p, sizeof p, "%s/model-00003-of-00002.safetensors", dir);
    st_write_raw(p, "{\"x\":{}}", 8, NULL, 0);
    expect_refusal(dir, FY_EPARSE, "model-00003-of-00002.safetensors", 1,
                   WANT("tensor 'x': its entry has no 'dtype'"));
    free(dir);
}

static void test_safetensors_refuses_absurd_index(void **state)
{
    (void)state;
    const char *path = path_of("huge.safetensors.index.json");
    st_write_text(path, "{}");
    assert_int_equal(truncate(path, (off_t)FY_ST_HEADER_MAX + 1), 0);
    expect_refusal(path, FY_EPARSE, "huge.safetensors.index.json", 0,
                   WANT("an index of 104857601 bytes is absurd"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_safetensors_reads_every_common_dtype),
        cmocka_unit_test(test_safetensors_knows_the_dtype_names_it_lists),
        cmocka_unit_test(test_safetensors_reads_an_empty_header),
        cmocka_unit_test(test_safetensors_reads_sharded_checkpoint_with_index),
        cmocka_unit_test(test_safetensors_folder_with_one_file_opens_it),
        cmocka_unit_test(test_safetensors_refuses_file_too_short),
        cmocka_unit_test(test_safetensors_refuses_header_length_beyond_file),
        cmocka_unit_test(test_safetensors_refuses_absurd_header_length),
        cmocka_unit_test(test_safetensors_refuses_json_errors_with_position),
        cmocka_unit_test(test_safetensors_refuses_unknown_dtype),
        cmocka_unit_test(test_safetensors_refuses_shape_and_bytes_that_disagree),
        cmocka_unit_test(test_safetensors_refuses_offsets_out_of_the_data_region),
        cmocka_unit_test(test_safetensors_refuses_overlapping_tensors),
        cmocka_unit_test(test_safetensors_refuses_non_utf8_names),
        cmocka_unit_test(test_safetensors_refuses_duplicate_names),
        cmocka_unit_test(test_safetensors_refuses_negative_numbers),
        cmocka_unit_test(test_safetensors_refuses_overflowing_numbers),
        cmocka_unit_test(test_safetensors_refuses_malformed_entries),
        cmocka_unit_test(test_safetensors_refuses_bad_metadata),
        cmocka_unit_test(test_safetensors_refuses_what_is_not_a_file),
        cmocka_unit_test(test_safetensors_folder_needs_one_checkpoint),
        cmocka_unit_test(test_safetensors_refuses_malformed_index),
        cmocka_unit_test(test_safetensors_index_and_shards_must_agree),
        cmocka_unit_test(test_safetensors_refuses_absurd_index),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
