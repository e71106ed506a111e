/* The strict JSON reader: a corpus of valid and invalid texts with the position and message
 * of each refusal, nesting limits, exact 64-bit integers, Unicode escapes and UTF-8
 * validation, and duplicate keys. */
#include "test_util.h"

#include "core/json.h"

#include <math.h>

static fy_jdoc *parse_ok(const char *text)
{
    fy_jdoc *doc = NULL;
    fy_error err = {0};
    int rc = fy_json_parse("t.json", text, strlen(text), NULL, &doc, &err);
    if (rc != 0) fail_msg("'%s' refused: %u:%u: %s", text, err.line, err.column, err.message);
    return doc;
}

/* Parses text (len bytes), expects status and an error at line:column whose message holds
 * want. */
static void refused_len(const char *text, size_t len, const fy_json_options *opt, int status,
                        unsigned line, unsigned column, const char *want)
{
    fy_jdoc *doc = (fy_jdoc *)1;
    fy_error err = {0};
    int rc = fy_json_parse("t.json", text, len, opt, &doc, &err);
    if (rc != status || err.line != line || err.column != column || !strstr(err.message, want))
        fail_msg("'%.*s': got %d at %u:%u '%s'; want %d at %u:%u '%s'", (int)len, text, rc,
                 err.line, err.column, err.message, status, line, column, want);
    assert_null(doc);
    assert_string_equal(err.file, "t.json");
}

static void refused(const char *text, unsigned line, unsigned column, const char *want)
{
    refused_len(text, strlen(text), NULL, FY_EPARSE, line, column, want);
}

static void test_json_reads_every_kind_with_positions(void **state)
{
    (void)state;
    fy_jdoc *doc = parse_ok("{\"a\": [1, -2.5e3, \"x\"],\n  \"b\": {\"t\": true, \"f\": false},\n"
                            "  \"n\": null, \"e\": [], \"o\": {}}\n");
    const fy_jnode *root = fy_jdoc_root(doc);
    assert_int_equal(root->kind, FY_JOBJECT);
    assert_int_equal(root->count, 5);
    assert_int_equal(root->line, 1);
    assert_int_equal(root->column, 1);
    const fy_jnode *a = fy_jobj_get(root, "a");
    assert_int_equal(a->kind, FY_JARRAY);
    assert_int_equal(a->count, 3);
    assert_int_equal(a->column, 7);
    assert_int_equal(fy_jarr_item(a, 0)->kind, FY_JNUMBER);
    assert_string_equal(fy_jarr_item(a, 1)->u.text, "-2.5e3");
    assert_int_equal(fy_jarr_item(a, 1)->flags, FY_JNUM_NEGATIVE);
    assert_true(fy_jnode_is(fy_jarr_item(a, 2), "x"));
    const fy_jnode *b = fy_jobj_get(root, "b");
    assert_int_equal(b->line, 2);
    assert_int_equal(b->column, 8);
    assert_int_equal(b->offset, 31);
    assert_int_equal(fy_jobj_get(b, "t")->kind, FY_JTRUE);
    assert_int_equal(fy_jobj_get(b, "f")->kind, FY_JFALSE);
    const fy_jnode *n = fy_jobj_get(root, "n");
    assert_int_equal(n->kind, FY_JNULL);
    assert_int_equal(n->line, 3);
    assert_int_equal(n->column, 8);
    assert_int_equal(fy_jobj_get(root, "e")->count, 0);
    assert_int_equal(fy_jobj_get(root, "o")->kind, FY_JOBJECT);
    assert_null(fy_jobj_get(root, "missing"));
    assert_null(fy_jobj_get(a, "a")); /* not an object */
    assert_string_equal(fy_jkind_name(root), "an object");
    assert_string_equal(fy_jkind_name(a), "an array");
    assert_string_equal(fy_jkind_name(n), "null");
    assert_string_equal(fy_jdoc_name(doc), "t.json");

    fy_error err = {0};
    assert_int_equal(fy_jdoc_error(doc, b, &err, FY_EPARSE, "bad %s", "b"), FY_EPARSE);
    assert_string_equal(err.file, "t.json");
    assert_int_equal(err.line, 2);
    assert_int_equal(err.column, 8);
    assert_string_equal(err.message, "bad b");
    fy_jdoc_destroy(doc);
    fy_jdoc_destroy(NULL);
}

static void test_json_accepts_valid_corpus(void **state)
{
    (void)state;
    static const char *const valid[] = {
        "0",
        "-0",
        "1",
        "-1",
        "0.5",
        "1e5",
        "1E+5",
        "1e-5",
        "-0.0e0",
        "123456789012345678901234567890",
        "\"\"",
        "\" \"",
        "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
        "\"\\u00e9\"",
        "\"\x7f\"",
        "true",
        "false",
        "null",
        " \t\r\n[ ] ",
        "[[[]]]",
        "{\"\":0}",
        "[1,[2,[3]],{\"a\":{}}]",
        "{\"a\":1,\"a\":2}", /* duplicates are kept unless the caller refuses them */
        "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"",
        "\r\n\r\n1\r\n",
        "{ \"k\" : [ 1 , 2 ] }"};
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
        fy_jdoc_destroy(parse_ok(valid[i]));
}

static void test_json_refuses_invalid_corpus_at_the_right_place(void **state)
{
    (void)state;
    refused("", 1, 1, "empty text");
    refused("  \n ", 2, 2, "empty text");
    refused("\xef\xbb\xbf{}", 1, 1, "byte order mark");
    refused("[1,]", 1, 3, "trailing comma before ']'");
    refused("{\"a\":1,}", 1, 7, "trailing comma before '}'");
    refused("[1 2]", 1, 4, "expected ',' or ']' after an array item, found '2'");
    refused("{\"a\":1 \"b\":2}", 1, 8, "expected ',' or '}' after an object member");
    refused("{\"a\" 1}", 1, 6, "expected ':' after the key \"a\", found '1'");
    refused("{a:1}", 1, 2, "expected a string key, found 'a'");
    refused("{'a':1}", 1, 2, "expected a string key, found '''");
    refused("[1,,2]", 1, 4, "expected a value, found ','");
    refused("[", 1, 2, "the array opened at line 1, column 1 is not closed");
    refused("{\"a\":\n[1,", 2, 4, "the array opened at line 2, column 1 is not closed");
    refused("{\"a\":1", 1, 7, "the object opened at line 1, column 1 is not closed");
    refused("[1]]", 1, 4, "unexpected ']' after the JSON value");
    refused("1 2", 1, 3, "unexpected '2' after the JSON value");
    refused("{} x", 1, 4, "unexpected 'x'");
    refused("[01]", 1, 2, "leading zeros");
    refused("-", 1, 2, "expected a digit after '-'");
    refused("-a", 1, 2, "expected a digit after '-'");
    refused("1.", 1, 3, "expected a digit after '.'");
    refused("1.e5", 1, 3, "expected a digit after '.'");
    refused("1e", 1, 3, "expected a digit in the exponent");
    refused("1e+", 1, 4, "expected a digit in the exponent");
    refused("+1", 1, 1, "expected a value, found '+'");
    refused(".5", 1, 1, "expected a value, found '.'");
    refused("[NaN]", 1, 2, "expected a value, found 'NaN'");
    refused("Infinity", 1, 1, "found 'Infinity'");
    refused("True", 1, 1, "found 'True'");
    refused("nul", 1, 1, "found 'nul'");
    refused("truex", 1, 1, "found 'truex'");
    refused("/* c */ 1", 1, 1, "expected a value, found '/'");
    refused("\"abc", 1, 1, "unterminated string");
    refused("{\"abc", 1, 2, "unterminated object key");
    refused("\"a\\\"", 1, 1, "unterminated string");
    refused("\"a\nb\"", 1, 3, "control character 0x0a in a string");
    refused("{\"a\tb\":1}", 1, 4, "control character 0x09 in an object key");
    refused("\"\\x\"", 1, 2, "invalid escape: backslash before 'x'");
    refused("\"\\u12\"", 1, 2, "four hex digits");
    refused("\"\\u12G4\"", 1, 2, "four hex digits");
    refused("\"\\uD800\"", 1, 2, "unpaired high surrogate \\uD800");
    refused("\"\\uD800\\u0041\"", 1, 2, "unpaired high surrogate");
    refused("\"\\uDBFF x\"", 1, 2, "unpaired high surrogate \\uDBFF");
    refused("\"\\uDC00\"", 1, 2, "unpaired low surrogate \\uDC00");
    refused("[\x01]", 1, 2, "expected a value, found byte 0x01");
    refused_len("[\0]", 3, NULL, FY_EPARSE, 1, 2, "found byte 0x00");
    refused("\n\n   [1,\n  x]", 4, 3, "expected a value, found 'x'");
    refused("\r\n\r\n@", 3, 1, "found '@'");
}

static void test_json_validates_utf8_in_strings(void **state)
{
    (void)state;
    refused("\"ab\xff\"", 1, 4, "invalid UTF-8 (byte 0xff) in string \"ab\\xff\"");
    refused("{\"layer\xc0\x80.w\":1}", 1, 8, "in object key \"layer\\xc0\\x80.w\""); /* overlong */
    refused("\"\xe0\x80\x80\"", 1, 2, "byte 0xe0");     /* overlong three-byte form */
    refused("\"\xed\xa0\x80\"", 1, 2, "byte 0xed");     /* an encoded surrogate */
    refused("\"\xf4\x90\x80\x80\"", 1, 2, "byte 0xf4"); /* beyond U+10FFFF */
    refused("\"\xf5\x80\x80\x80\"", 1, 2, "byte 0xf5");
    refused("\"\x80\"", 1, 2, "byte 0x80"); /* a lone continuation byte */
    refused("\"\xc3\"", 1, 2, "byte 0xc3"); /* cut short by the closing quote */
    refused("\"\xe2\x82\"", 1, 2, "byte 0xe2");
    refused("\"\xf0\x9f\x98x\"", 1, 2, "byte 0xf0");

    fy_jdoc *doc = parse_ok("[\"\\u00e9\\u20AC\\ud83d\\ude00\", \"\xf4\x8f\xbf\xbf\", "
                            "\"a\\u0000b\", \"\\/\"]");
    const fy_jnode *root = fy_jdoc_root(doc);
    const fy_jnode *s = fy_jarr_item(root, 0);
    assert_int_equal(s->count, 9);
    assert_memory_equal(s->u.text, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10);
    assert_int_equal(s->flags, 0);
    assert_int_equal(fy_jarr_item(root, 1)->count, 4);
    const fy_jnode *nul = fy_jarr_item(root, 2);
    assert_int_equal(nul->count, 3);
    assert_int_equal(nul->flags, FY_JSTR_HAS_NUL);
    assert_memory_equal(nul->u.text, "a\0b", 4);
    assert_false(fy_jnode_is(nul, "a")); /* not the C string "a" */
    assert_true(fy_jnode_is(fy_jarr_item(root, 3), "/"));
    fy_jdoc_destroy(doc);
}

static void test_json_refuses_deep_nesting_without_crashing(void **state)
{
    (void)state;
    size_t n = 1000000;
    char *deep = malloc(2 * n);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    /* The default limit refuses a million levels at the first bracket past it. */
    refused_len(deep, 2 * n, NULL, FY_ERANGE, 1, FY_JSON_DEFAULT_DEPTH + 1,
                "nesting deeper than 256");
    /* Exactly at the limit is fine; the limit is the caller's to raise. */
    fy_jdoc *doc = NULL;
    size_t at = FY_JSON_DEFAULT_DEPTH;
    assert_int_equal(fy_json_parse("t.json", deep + n - at, 2 * at, NULL, &doc, NULL), 0);
    fy_jdoc_destroy(doc);
    fy_json_options big = {.max_depth = (unsigned)n};
    assert_int_equal(fy_json_parse("t.json", deep, 2 * n, &big, &doc, NULL), 0);
    const fy_jnode *node = fy_jdoc_root(doc);
    size_t depth = 0;
    while (node->count) {
        node = fy_jarr_item(node, 0);
        depth++;
    }
    assert_int_equal(depth, n - 1);
    fy_jdoc_destroy(doc);
    fy_json_options small = {.max_depth = 2};
    refused_len("[{\"a\":[1]}]", 11, &small, FY_ERANGE, 1, 7, "nesting deeper than 2");
    /* Objects count as levels too. */
    refused_len("{\"a\":{\"b\":{}}}", 14, &small, FY_ERANGE, 1, 11, "deeper than 2");
    free(deep);
}

static void test_json_converts_big_numbers_exactly(void **state)
{
    (void)state;
    fy_jdoc *doc = parse_ok("[18446744073709551615, 18446744073709551616, 9223372036854775807,"
                            " -9223372036854775808, -9223372036854775809, -0, 1.5, 1e3,"
                            " 1e400, 1e-400, -12, 100000000000000000000000000000000000001]");
    const fy_jnode *a = fy_jdoc_root(doc);
    uint64_t u = 0;
    int64_t i = 0;
    double d = 0;
    assert_int_equal(fy_jnum_u64(fy_jarr_item(a, 0), &u), 0);
    assert_true(u == UINT64_MAX);
    assert_int_equal(fy_jnum_i64(fy_jarr_item(a, 0), &i), FY_ERANGE);
    assert_int_equal(fy_jnum_u64(fy_jarr_item(a, 1), &u), FY_ERANGE);
    assert_string_equal(fy_jarr_item(a, 1)->u.text, "18446744073709551616"); /* text kept */
    assert_int_equal(fy_jnum_i64(fy_jarr_item(a, 2), &i), 0);
    assert_true(i == INT64_MAX);
    assert_int_equal(fy_jnum_i64(fy_jarr_item(a, 3), &i), 0);
    assert_true(i == INT64_MIN);
    assert_int_equal(fy_jnum_u64(fy_jarr_item(a, 3), &u), FY_ERANGE); /* negative */
    assert_int_equal(fy_jnum_i64(fy_jarr_item(a, 4), &i), FY_ERANGE);
    assert_int_equal(fy_jnum_u64(fy_jarr_item(a, 5), &u), 0);
    assert_true(u == 0);
    assert_int_equal(fy_jnum_i64(fy_jarr_item(a, 6), &i), FY_EINVAL); /* not an integer */
    assert_int_equal(fy_jnum_u64(fy_jarr_item(a, 7), &u), FY_EINVAL); /* 1e3: exponent */
    assert_int_equal(fy_jnum_f64(fy_jarr_item(a, 7), &d), 0);
    assert_true(d == 1000.0);
    assert_int_equal(fy_jnum_f64(fy_jarr_item(a, 6), &d), 0);
    assert_true(d == 1.5);
    assert_int_equal(fy_jnum_f64(fy_jarr_item(a, 8), &d), FY_ERANGE);
    assert_int_equal(fy_jnum_f64(fy_jarr_item(a, 9), &d), 0); /* underflow rounds to 0 */
    assert_true(d == 0.0);
    assert_int_equal(fy_jnum_i64(fy_jarr_item(a, 10), &i), 0);
    assert_true(i == -12);
    assert_int_equal(fy_jnum_u64(fy_jarr_item(a, 10), &u), FY_ERANGE);
    assert_int_equal(fy_jnum_u64(fy_jarr_item(a, 11), &u), FY_ERANGE);
    assert_int_equal(fy_jnum_f64(fy_jarr_item(a, 11), &d), 0);
    assert_true(fabs(d - 1e38) < 1e23);
    /* Not a number at all. */
    assert_int_equal(fy_jnum_u64(a, &u), FY_EINVAL);
    assert_int_equal(fy_jnum_i64(NULL, &i), FY_EINVAL);
    assert_int_equal(fy_jnum_f64(a, &d), FY_EINVAL);
    fy_jdoc_destroy(doc);
}

static void test_json_finds_and_refuses_duplicate_keys(void **state)
{
    (void)state;
    fy_jdoc *doc = parse_ok("{\"b\":1, \"a\":2, \"c\":3, \"a\":4, \"b\":5, \"a\":6}");
    const fy_jnode *root = fy_jdoc_root(doc), *first = NULL, *repeat = NULL;
    assert_int_equal(fy_jobj_find_duplicate(root, &first, &repeat), 1);
    /* the first repeat met reading the text is the second "a" */
    assert_true(fy_jnode_is(repeat, "a"));
    assert_int_equal(repeat->column, 23);
    assert_int_equal(first->column, 9);
    assert_int_equal(fy_jobj_get(root, "a")->u.text[0], '2'); /* get finds the first */
    fy_jdoc_destroy(doc);

    doc = parse_ok("{\"a\":1, \"ab\":2, \"b\":{\"a\":1}}");
    assert_int_equal(fy_jobj_find_duplicate(fy_jdoc_root(doc), &first, &repeat), 0);
    assert_int_equal(fy_jobj_find_duplicate(fy_jarr_item(fy_jdoc_root(doc), 0), &first, &repeat),
                     0); /* not an object: nothing to find */
    fy_jdoc_destroy(doc);

    fy_json_options strict = {.reject_duplicates = true};
    const char *text = "{\"x\": {\"k\": 1,\n \"k\": 2}}";
    refused_len(text, strlen(text), &strict, FY_EPARSE, 2, 2,
                "duplicate key \"k\" (first at line 1, column 8)");
    /* Keys that differ only after an escape are different keys. */
    text = "{\"a\\u0000\": 1, \"a\": 2}";
    fy_jdoc *ok = NULL;
    assert_int_equal(fy_json_parse("t.json", text, strlen(text), &strict, &ok, NULL), 0);
    fy_jdoc_destroy(ok);
    /* Escaped and raw spellings of one key are the same key. */
    text = "{\"\\u0061\": 1, \"a\": 2}";
    refused_len(text, strlen(text), &strict, FY_EPARSE, 1, 15, "duplicate key \"a\"");
}

static void test_json_reads_only_len_bytes(void **state)
{
    (void)state;
    const char *text = "[1, 2] trailing garbage";
    fy_jdoc *doc = NULL;
    assert_int_equal(fy_json_parse(NULL, text, 6, NULL, &doc, NULL), 0);
    assert_int_equal(fy_jdoc_root(doc)->count, 2);
    assert_string_equal(fy_jdoc_name(doc), "<json>");
    fy_jdoc_destroy(doc);
    /* A number cut by the length ends where the length does. */
    assert_int_equal(fy_json_parse("t", "12345", 2, NULL, &doc, NULL), 0);
    assert_string_equal(fy_jdoc_root(doc)->u.text, "12");
    fy_jdoc_destroy(doc);
    refused_len("\"abc\"", 4, NULL, FY_EPARSE, 1, 1, "unterminated string");
    refused_len("tru", 2, NULL, FY_EPARSE, 1, 1, "found 'tr'");
}

static void test_json_refuses_texts_over_4gib(void **state)
{
    (void)state;
    /* The length is checked before a byte is read, so no such buffer is needed. */
    fy_jdoc *doc = NULL;
    fy_error err = {0};
    assert_int_equal(fy_json_parse("big.json", "", (size_t)UINT32_MAX + 1, NULL, &doc, &err),
                     FY_ERANGE);
    assert_null(doc);
    assert_non_null(strstr(err.message, "over the 4 GiB limit"));
    assert_string_equal(err.file, "big.json");
}

static void test_json_excerpt_escapes_and_cuts(void **state)
{
    (void)state;
    char buf[16];
    assert_string_equal(fy_text_excerpt("abc", 3, buf, sizeof buf), "abc");
    assert_string_equal(fy_text_excerpt("a\nb\x7f", 4, buf, sizeof buf), "a\\x0ab\\x7f");
    assert_string_equal(fy_text_excerpt("a\xff", 2, buf, sizeof buf), "a\\xff");
    assert_string_equal(fy_text_excerpt("\xc3\xa9", 2, buf, sizeof buf), "\xc3\xa9");
    assert_string_equal(fy_text_excerpt("0123456789abcdef", 16, buf, sizeof buf),
                        "0123456789ab...");
    assert_string_equal(fy_text_excerpt("0123456789abcde", 15, buf, sizeof buf), "0123456789abcde");
    /* never cut inside a character or an escape */
    assert_string_equal(fy_text_excerpt("0123456789\xe2\x82\xac\xe2\x82\xac", 16, buf, 16),
                        "0123456789...");
    assert_string_equal(fy_text_excerpt("0123456789\x01\x02", 12, buf, 16), "0123456789...");
    assert_string_equal(fy_text_excerpt("", 0, buf, sizeof buf), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_reads_every_kind_with_positions),
        cmocka_unit_test(test_json_accepts_valid_corpus),
        cmocka_unit_test(test_json_refuses_invalid_corpus_at_the_right_place),
        cmocka_unit_test(test_json_validates_utf8_in_strings),
        cmocka_unit_test(test_json_refuses_deep_nesting_without_crashing),
        cmocka_unit_test(test_json_converts_big_numbers_exactly),
        cmocka_unit_test(test_json_finds_and_refuses_duplicate_keys),
        cmocka_unit_test(test_json_reads_only_len_bytes),
        cmocka_unit_test(test_json_refuses_texts_over_4gib),
        cmocka_unit_test(test_json_excerpt_escapes_and_cuts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
