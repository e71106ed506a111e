/* Differential test of the fast YAML reader (core/yaml_fast.c) against libyaml: on every
 * fixture, on files ferry's writers make, and on thousands of mutated documents, the fast
 * reader either declines or builds the very tree libyaml builds (kind, quoted, line, column,
 * text, node for node), and every error still comes from libyaml with the same message. */
#include "test_util.h"

#include "core/yaml_fast.h"
#include "ferry/ferry.h"
#include "plans/plan_gen.h"

#include <dirent.h>
#include <sys/stat.h>

typedef struct tally {
    unsigned fast, declined, errors;
} tally;

static bool same_tree(const fy_ynode *a, const fy_ynode *b, char *why, size_t size)
{
    if (a->kind != b->kind || a->quoted != b->quoted || a->line != b->line ||
        a->column != b->column || a->count != b->count) {
        snprintf(why, size, "node at %u:%u (kind %d, quoted %d, count %u) vs %u:%u (%d, %d, %u)",
                 a->line, a->column, a->kind, a->quoted, a->count, b->line, b->column, b->kind,
                 b->quoted, b->count);
        return false;
    }
    if (a->kind == FY_YSCALAR) {
        if (memcmp(a->u.text, b->u.text, a->count + 1) != 0) {
            snprintf(why, size, "scalar at %u:%u: '%s' vs '%s'", a->line, a->column, a->u.text,
                     b->u.text);
            return false;
        }
        return true;
    }
    size_t n = a->kind == FY_YMAP ? 2 * (size_t)a->count : a->count;
    for (size_t i = 0; i < n; i++)
        if (!same_tree(&a->u.items[i], &b->u.items[i], why, size)) return false;
    return true;
}

/* Reads text three ways (fast alone, libyaml alone, the usual way) and checks the invariant;
 * returns whether the fast reader took it. */
static bool compare(const char *name, const char *text, size_t len, tally *t)
{
    fy_ydoc *lib = NULL, *fast = NULL, *usual = NULL;
    fy_error lib_err = {0}, fast_err = {0}, usual_err = {0};
    int lib_rc = fy_ydoc_load_string_with(name, text, len, FY_YREAD_LIBYAML, &lib, &lib_err);
    int fast_rc = fy_ydoc_load_string_with(name, text, len, FY_YREAD_FAST, &fast, &fast_err);
    int usual_rc = fy_ydoc_load_string(name, text, len, &usual, &usual_err);
    char why[512] = "";
    if (fast_rc == 0 && lib_rc != 0)
        fail_msg("%s: the fast reader took a document libyaml refuses (%s)\n---\n%.*s\n---", name,
                 lib_err.message, (int)len, text);
    assert_true(fast_rc == 0 || fast_rc == FY_YAML_DECLINED);
    if (fast_rc == 0) {
        const fy_ynode *a = fy_ydoc_root(fast), *b = fy_ydoc_root(lib);
        assert_non_null(a);
        assert_non_null(b);
        if (!same_tree(a, b, why, sizeof why))
            fail_msg("%s: trees differ: %s\n---\n%.*s\n---", name, why, (int)len, text);
    }
    assert_int_equal(usual_rc, lib_rc);
    if (lib_rc < 0) {
        assert_int_equal(usual_err.status, lib_err.status);
        assert_string_equal(usual_err.message, lib_err.message);
        assert_string_equal(usual_err.file, lib_err.file);
        assert_int_equal(usual_err.line, lib_err.line);
        assert_int_equal(usual_err.column, lib_err.column);
        t->errors++;
    } else {
        const fy_ynode *a = fy_ydoc_root(usual), *b = fy_ydoc_root(lib);
        assert_true((a == NULL) == (b == NULL));
        if (a && !same_tree(a, b, why, sizeof why)) fail_msg("%s: trees differ: %s", name, why);
    }
    if (fast_rc == 0)
        t->fast++;
    else
        t->declined++;
    fy_ydoc_destroy(lib);
    fy_ydoc_destroy(fast);
    fy_ydoc_destroy(usual);
    return fast_rc == 0;
}

/* ---- the documents: fixtures and what ferry's writers make ---------------------------- */

typedef struct corpus {
    char **text;
    size_t *len;
    size_t count, cap;
} corpus;

static void corpus_add(corpus *c, char *text, size_t len)
{
    if (c->count == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->text = realloc(c->text, c->cap * sizeof *c->text);
        c->len = realloc(c->len, c->cap * sizeof *c->len);
        assert_non_null(c->text);
        assert_non_null(c->len);
    }
    c->text[c->count] = text;
    c->len[c->count++] = len;
}

static void corpus_free(corpus *c)
{
    for (size_t i = 0; i < c->count; i++)
        free(c->text[i]);
    free(c->text);
    free(c->len);
}

/* Every .yaml file under tests/data, its folders walked recursively. */
static void add_folder(corpus *c, const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        size_t n = strlen(e->d_name);
        if (S_ISDIR(st.st_mode)) {
            add_folder(c, path);
        } else if (n >= 5 && strcmp(e->d_name + n - 5, ".yaml") == 0) {
            char *text = NULL;
            size_t len = 0;
            assert_int_equal(fy_file_read_all_for_test(path, &text, &len), 0);
            corpus_add(c, text, len);
        }
    }
    closedir(d);
}

static void add_fixtures(corpus *c)
{
    add_folder(c, FY_TEST_DATA);
    assert_true(c->count > 50);
}

static void add_file(corpus *c, const char *path)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(fy_file_read_all_for_test(path, &text, &len), 0);
    corpus_add(c, text, len);
}

/* Graphs, their plans and a machine file, as ferry writes them; all must take the fast path. */
static void add_written(corpus *c, unsigned layers, bool transformer)
{
    fy_error err = {0};
    fy_graph *g;
    if (transformer) {
        fy_transformer_params p = {.layers = layers,
                                   .hidden = 64,
                                   .ffn = 256,
                                   .heads = 4,
                                   .seq = 16,
                                   .batch = 2,
                                   .vocab = 100,
                                   .dtype = FY_DTYPE_BF16,
                                   .train = true,
                                   .weights_file = "w.bin"};
        assert_int_equal(fy_graph_generate_transformer(&p, &g, &err), 0);
    } else {
        fy_mlp_params p = {.layers = layers,
                           .hidden = 64,
                           .batch = 8,
                           .dtype = FY_DTYPE_BF16,
                           .train = true,
                           .weights_file = "w.bin"};
        assert_int_equal(fy_graph_generate_mlp(&p, &g, &err), 0);
    }
    char *text;
    size_t len;
    assert_int_equal(fy_graph_to_yaml(g, &text, &len, &err), 0);
    corpus_add(c, text, len);
    char *dir = fy_test_scratch("yamlfast");
    char path[4200];
    fy_plan *plan;
    fy_plan_gen_params gp = {.window = 2, .spill_updates = true};
    assert_int_equal(fy_plan_generate(g, NULL, &gp, &plan, &err), 0);
    snprintf(path, sizeof path, "%s/plan.yaml", dir);
    assert_int_equal(fy_plan_save(plan, path, "graph.yaml", &err), 0);
    add_file(c, path);
    fy_machine m;
    fy_machine_default(&m);
    snprintf(path, sizeof path, "%s/machine.yaml", dir);
    assert_int_equal(fy_machine_save(&m, path, &err), 0);
    add_file(c, path);
    fy_plan_destroy(plan);
    fy_graph_destroy(g);
    fy_test_scratch_remove(dir);
}

static void test_yaml_fast_matches_libyaml_on_fixtures(void **state)
{
    corpus c = {0};
    add_fixtures(&c);
    tally t = {0};
    for (size_t i = 0; i < c.count; i++)
        compare("fixture.yaml", c.text[i], c.len[i], &t);
    /* Most fixtures are plain ferry YAML; those with comments or quotes go to libyaml. */
    assert_true(t.fast > 20);
    assert_true(t.declined > 0);
    corpus_free(&c);
}

static void test_yaml_fast_reads_what_ferry_writes(void **state)
{
    corpus c = {0};
    add_written(&c, 3, false);
    add_written(&c, 2, true);
    tally t = {0};
    for (size_t i = 0; i < c.count; i++)
        if (!compare("written.yaml", c.text[i], c.len[i], &t))
            fail_msg("the fast reader declined a file ferry wrote:\n%.*s", (int)c.len[i],
                     c.text[i]);
    corpus_free(&c);
}

/* ---- mutations ------------------------------------------------------------------------ */

static uint64_t next_random(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* One random edit of text[0..*len) in place (text has room for 16 more bytes). */
static void mutate(char *text, size_t *len, uint64_t *rng)
{
    static const char chars[] = " :#{}[],-'\"&*!|>%@`?\t\r\n.~^$=()+/_aZ09\xc3\xff";
    static const char *const tokens[] = {
        ": ",    " #c",   "#",  "'",   "\"",  "&a ",  "*a",   "!t ",      "[",      "]",
        "{",     "}",     ",",  "- ",  "-",   "\n",   "\n  ", "  ",       "\t",     "\r\n",
        "---\n", "...\n", "? ", "|\n", ">\n", "%Y\n", "@",    "\xc3\xa9", "\n\n",   ":",
        "[]",    "{}",    ", ", "a: ", "a:",  "\n- ", "  - ", " ",        "x\n  y", "\0"};
    size_t n = *len, pos = n ? (size_t)(next_random(rng) % n) : 0;
    switch (next_random(rng) % 7) {
    case 0: /* replace a byte */
        if (n) text[pos] = chars[next_random(rng) % (sizeof chars - 1)];
        break;
    case 1: { /* insert a token */
        const char *tok = tokens[next_random(rng) % (sizeof tokens / sizeof *tokens)];
        size_t k = tok[0] ? strlen(tok) : 1;
        memmove(text + pos + k, text + pos, n - pos);
        memcpy(text + pos, tok, k);
        *len = n + k;
        break;
    }
    case 2: /* delete a byte */
        if (n) {
            memmove(text + pos, text + pos + 1, n - pos - 1);
            *len = n - 1;
        }
        break;
    case 3: /* truncate */
        *len = pos;
        break;
    case 4: { /* add or remove a space at the start of a line */
        while (pos > 0 && text[pos - 1] != '\n')
            pos--;
        if (next_random(rng) % 2 && pos < n && text[pos] == ' ') {
            memmove(text + pos, text + pos + 1, n - pos - 1);
            *len = n - 1;
        } else {
            memmove(text + pos + 1, text + pos, n - pos);
            text[pos] = ' ';
            *len = n + 1;
        }
        break;
    }
    case 5: /* swap two bytes */
        if (n) {
            size_t other = (size_t)(next_random(rng) % n);
            char c = text[pos];
            text[pos] = text[other];
            text[other] = c;
        }
        break;
    default: /* insert a byte */
        memmove(text + pos + 1, text + pos, n - pos);
        text[pos] = chars[next_random(rng) % (sizeof chars - 1)];
        *len = n + 1;
        break;
    }
}

static void test_yaml_fast_matches_libyaml_on_mutations(void **state)
{
    corpus c = {0};
    add_fixtures(&c);
    add_written(&c, 1, false);
    add_written(&c, 1, true);
    tally t = {0};
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    enum { ROUNDS = 100, MAX_EDITS = 3 };
    for (size_t i = 0; i < c.count; i++) {
        if (c.len[i] > 16384)
            continue; /* keep the test fast: a few big files add nothing small ones lack */
        char *text = malloc(c.len[i] + 16 * MAX_EDITS + 1);
        assert_non_null(text);
        /* Seeds in the subset get more mutants: near misses are where a fast reader errs. */
        fy_ydoc *doc;
        bool fast =
            fy_ydoc_load_string_with("seed", c.text[i], c.len[i], FY_YREAD_FAST, &doc, NULL) == 0;
        fy_ydoc_destroy(doc);
        for (int r = 0; r < (fast ? 4 * ROUNDS : ROUNDS); r++) {
            size_t len = c.len[i];
            memcpy(text, c.text[i], len);
            int edits = 1 + (int)(next_random(&rng) % MAX_EDITS);
            for (int e = 0; e < edits; e++)
                mutate(text, &len, &rng);
            compare("mutant.yaml", text, len, &t);
        }
        free(text);
    }
    print_message("mutants: %u read fast, %u declined, %u libyaml errors\n", t.fast, t.declined,
                  t.errors);
    /* The mutants must exercise all three outcomes, or the test proves little. */
    assert_true(t.fast + t.declined > 20000);
    assert_true(t.fast > 2000);
    assert_true(t.declined > 2000);
    assert_true(t.errors > 2000);
    corpus_free(&c);
}

/* Each rule of the subset, from both sides: small documents the fast reader must take, and
 * ones it must leave to libyaml (valid YAML outside the subset, and invalid YAML). */
static void test_yaml_fast_declines_outside_its_subset(void **state)
{
    static const char *const taken[] = {
        "a: 1\n",
        "a: 1",
        "a: 1\n\nb: [x, y]\n",
        "a:\n  b: {c: d, e: [1, 2]}\n",
        "a:\n- x\n- {y: z}\nb: 2\n",
        "- a\n-   [b,c ,d]\n",
        "a:  {}\nb: []\n",
        "k: (x)$=~^+/_.-\n",
        "\n\na: b\n",
        "# c\na: 1\n  # c\n\nb:\n# c\n  - x\n#",
    };
    static const char *const declined[] = {
        "",
        "\n",
        "a: 1 # c\n",
        "# \xc3\xa9\na: 1\n",
        "a: 1\n#\t\n",
        "a: 'q'\n",
        "a: \"q\"\n",
        "a: &x 1\n",
        "a: *x\n",
        "a: !t 1\n",
        "---\na: 1\n",
        "a: 1\n...\n",
        "%YAML 1.2\n",
        "a:\tb\n",
        "a: 1\r\n",
        "a: b c\n",
        "a: 1 \n",
        "a:\n",
        "a:\nb: 1\n",
        "a: {b: 1,}\n",
        "a: {b:\n 1}\n",
        "a: -1\n",
        "a: .5\n",
        "a: 1\n  b\n",
        "a b: 1\n",
        "a : 1\n",
        "- - a\n",
        "- a: b\n",
        "-\n  - a\n",
        "a: |\n  x\n",
        "a: \xc3\xa9\n",
        "[a, b]\n",
        "a\n",
        "a:\n  b: 1\n c: 2\n",
        "? a\n: b\n",
        "a: {b: c}x\n",
        "  \na: 1\n",
        "a: [b: c]\n",
        "a: 1\n - b\n",
    };
    tally t = {0};
    for (size_t i = 0; i < sizeof taken / sizeof *taken; i++)
        if (!compare("taken.yaml", taken[i], strlen(taken[i]), &t))
            fail_msg("declined: %s", taken[i]);
    for (size_t i = 0; i < sizeof declined / sizeof *declined; i++)
        if (compare("declined.yaml", declined[i], strlen(declined[i]), &t))
            fail_msg("taken: %s", declined[i]);
    char deep[400] = "a: ";
    for (int i = 0; i < 70; i++)
        strcat(deep, "[");
    strcat(deep, "x");
    for (int i = 0; i < 70; i++)
        strcat(deep, "]");
    assert_false(compare("deep.yaml", deep, strlen(deep), &t));
    char key[1200];
    memset(key, 'k', 600);
    snprintf(key + 600, sizeof key - 600, ": 1\n");
    assert_false(compare("longkey.yaml", key, strlen(key), &t));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yaml_fast_matches_libyaml_on_fixtures),
        cmocka_unit_test(test_yaml_fast_reads_what_ferry_writes),
        cmocka_unit_test(test_yaml_fast_declines_outside_its_subset),
        cmocka_unit_test(test_yaml_fast_matches_libyaml_on_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
