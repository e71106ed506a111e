/* Policies: every knob read from YAML, every malformed value refused at FILE:LINE:COLUMN,
 * the shipped policies, the lookup of a policy by name, keep globs, and hooks' ownership. */
#include "test_util.h"

#include "ferry/policy.h"

static fy_policy *load_text(const char *text, fy_error *err)
{
    fy_policy *p = NULL;
    int rc = fy_policy_load_string("p.yaml", text, strlen(text), &p, err);
    if (rc < 0) assert_null(p);
    return p;
}

static void test_policy_reads_every_knob(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_policy *p;
    assert_int_equal(fy_policy_load(fy_test_data("policies/all-knobs.yaml"), &p, &err), 0);
    const fy_policy_knobs *k = fy_policy_get_knobs(p);
    assert_string_equal(fy_policy_name(p), "all-knobs");
    assert_int_equal(k->prefetch, 3);
    assert_int_equal(k->evict, FY_EVICT_FIFO);
    assert_int_equal(k->load, FY_LOAD_EAGER);
    assert_int_equal(k->keep_count, 2);
    assert_string_equal(k->keep[1], "layers.0.*");
    assert_int_equal(k->activations_offload, FY_TIER_NVME);
    assert_int_equal(k->activations_idle, 5);
    assert_int_equal(k->staging_buffers, 2);
    assert_null(k->lua);
    assert_non_null(strstr(fy_policy_path(p), "all-knobs.yaml"));
    fy_policy_destroy(p);
}

static void test_policy_defaults_when_knobs_are_absent(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_policy *p = load_text("ferry: policy/1\n", &err);
    assert_non_null(p);
    const fy_policy_knobs *k = fy_policy_get_knobs(p);
    assert_int_equal(k->prefetch, 1);
    assert_int_equal(k->evict, FY_EVICT_BELADY);
    assert_int_equal(k->load, FY_LOAD_LAZY);
    assert_int_equal(k->keep_count, 0);
    assert_int_equal(k->activations_offload, FY_TIER_NONE);
    assert_int_equal(k->staging_buffers, 0);
    assert_string_equal(fy_policy_name(p), "p.yaml");
    fy_policy_destroy(p);
}

typedef struct bad_case {
    const char *text;
    unsigned line, column;
    const char *message;
} bad_case;

static const bad_case bad_cases[] = {
    {"ferry: policy/1\nprefetch: two\n", 2, 11, "prefetch"},
    {"ferry: policy/1\nprefetch: -1\n", 2, 11, "prefetch"},
    {"ferry: policy/1\nevict: random\n", 2, 8, "random"},
    {"ferry: policy/1\nload: sometimes\n", 2, 7, "sometimes"},
    {"ferry: policy/1\nkeep: embed\n", 2, 7, "keep (a list of globs) must be a sequence"},
    {"ferry: policy/1\nkeep: [\"\"]\n", 2, 8, "a keep glob cannot be empty"},
    {"ferry: policy/1\nactivations: {idle: 3}\n", 2, 14, "needs 'offload: host'"},
    {"ferry: policy/1\nactivations: {offload: host, idle: 0}\n", 2, 36,
     "activations idle must be 1 to"},
    {"ferry: policy/1\nactivations: {offload: host, sleep: 3}\n", 2, 30, "unknown key 'sleep'"},
    {"ferry: policy/1\nstaging: {buffers: 0}\n", 2, 20, "staging buffers must be 1 to 1024"},
    {"ferry: policy/1\nstaging: {}\n", 2, 10, "'staging' needs 'buffers: K'"},
    {"ferry: policy/1\nlua: \"\"\n", 2, 6, "lua needs a file name"},
    {"ferry: plan/1\n", 1, 8, "wrong header 'plan/1'"},
    {"name: x\n", 1, 1, "missing header"},
    {"ferry: policy/1\nprefetch: 1\nprefetch: 2\n", 3, 1, "duplicate key 'prefetch'"},
    {"- 1\n", 1, 1, "the policy must be a mapping"},
};

static void test_policy_refuses_each_malformed_value(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *c = &bad_cases[i];
        fy_error err = {0};
        fy_policy *p = load_text(c->text, &err);
        if (p) fail_msg("case %zu was accepted", i);
        if (!strstr(err.message, c->message) || err.line != c->line || err.column != c->column)
            fail_msg("case %zu: got %u:%u '%s', want %u:%u '%s'", i, err.line, err.column,
                     err.message, c->line, c->column, c->message);
        assert_string_equal(err.file, "p.yaml");
    }
}

static void test_policy_file_errors_name_file_line_column(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_policy *p = NULL;
    assert_int_equal(fy_policy_load(fy_test_data("policies/bad-unknown-key.yaml"), &p, &err),
                     FY_EPARSE);
    assert_null(p);
    assert_non_null(strstr(err.file, "bad-unknown-key.yaml"));
    assert_int_equal(err.line, 4);
    assert_int_equal(err.column, 1);
    assert_non_null(strstr(err.message, "unknown key 'evcit' in the policy"));
    memset(&err, 0, sizeof err);
    assert_true(fy_policy_load(fy_test_data("policies/bad-offload-tier.yaml"), &p, &err) < 0);
    assert_int_equal(err.line, 2);
    assert_int_equal(err.column, 24);
    memset(&err, 0, sizeof err);
    assert_int_equal(fy_policy_load(fy_test_data("policies/nonexistent.yaml"), &p, &err),
                     FY_ENOENT);
    memset(&err, 0, sizeof err);
    assert_true(fy_policy_load_string("empty.yaml", "", 0, &p, &err) < 0);
    assert_non_null(strstr(err.message, "empty file"));
}

static void test_policy_loads_every_shipped_policy(void **state)
{
    (void)state;
    static const char *const names[] = {"default", "stream", "train-offload", "plaid", "eager"};
    const char *dirs[] = {FY_SOURCE_DIR "/policies"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        fy_error err = {0};
        char *path;
        fy_policy *p;
        assert_int_equal(fy_policy_find(names[i], dirs, 1, &path, &err), 0);
        if (fy_policy_load(path, &p, &err) < 0) fail_msg("%s: %s", path, err.message);
        assert_string_equal(fy_policy_name(p), names[i]);
        const fy_policy_knobs *k = fy_policy_get_knobs(p);
        if (!strcmp(names[i], "plaid")) assert_int_equal(k->staging_buffers, 1);
        if (!strcmp(names[i], "stream")) assert_int_equal(k->evict, FY_EVICT_AFTER_LAST_USE);
        if (!strcmp(names[i], "train-offload"))
            assert_int_equal(k->activations_offload, FY_TIER_HOST);
        fy_policy_destroy(p);
        free(path);
    }
}

static void test_policy_find_takes_paths_and_searches_names(void **state)
{
    (void)state;
    fy_error err = {0};
    char *path;
    const char *dirs[] = {"/nonexistent-ferry", FY_SOURCE_DIR "/policies"};
    assert_int_equal(fy_policy_find("my/own.yaml", dirs, 2, &path, &err), 0);
    assert_string_equal(path, "my/own.yaml");
    free(path);
    assert_int_equal(fy_policy_find("x.lua", dirs, 2, &path, &err), 0);
    assert_string_equal(path, "x.lua");
    free(path);
    assert_int_equal(fy_policy_find("plaid", dirs, 2, &path, &err), 0);
    assert_string_equal(path, FY_SOURCE_DIR "/policies/plaid.yaml");
    free(path);
    assert_int_equal(fy_policy_find("nosuch", dirs, 2, &path, &err), FY_ENOENT);
    assert_null(path);
    assert_non_null(strstr(err.message, "no policy named 'nosuch'"));
    assert_non_null(strstr(err.message, "/nonexistent-ferry"));
    assert_int_equal(fy_policy_find("", dirs, 2, &path, &err), FY_EINVAL);
}

static void test_policy_keep_globs_match_names(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_policy *p = load_text("ferry: policy/1\nkeep: [\"embed*\", \"layers.?.wq\"]\n", &err);
    assert_non_null(p);
    assert_true(fy_policy_keeps(p, "embed"));
    assert_true(fy_policy_keeps(p, "embed.tokens"));
    assert_true(fy_policy_keeps(p, "layers.3.wq"));
    assert_false(fy_policy_keeps(p, "layers.12.wq"));
    assert_false(fy_policy_keeps(p, "head"));
    fy_policy_destroy(p);
}

static void test_policy_lua_path_is_resolved_against_the_policy(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_policy *p;
    assert_int_equal(fy_policy_load(fy_test_data("policies/with-lua.yaml"), &p, &err), 0);
    const char *lua = fy_policy_get_knobs(p)->lua;
    assert_non_null(lua);
    assert_non_null(strstr(lua, "tests/data/policies/hooks/my.lua"));
    fy_policy_destroy(p);
    assert_int_equal(fy_policy_load("some/where/x.lua", &p, &err), 0);
    assert_string_equal(fy_policy_get_knobs(p)->lua, "some/where/x.lua");
    assert_int_equal(fy_policy_get_knobs(p)->evict, FY_EVICT_BELADY);
    fy_policy_destroy(p);
}

static int destroyed;
static void count_destroy(void *ctx)
{
    destroyed += *(int *)ctx;
}

static void test_policy_owns_its_hooks(void **state)
{
    (void)state;
    fy_policy_knobs k;
    fy_policy_knobs_default(&k);
    const char *keep[] = {"a*"};
    k.keep = keep;
    k.keep_count = 1;
    fy_policy *p;
    fy_error err = {0};
    assert_int_equal(fy_policy_create(NULL, &k, &p, &err), 0);
    assert_string_equal(fy_policy_name(p), "custom");
    assert_true(fy_policy_keeps(p, "abc"));
    assert_null(fy_policy_get_hooks(p));
    static int one = 1, ten = 10;
    fy_policy_hooks h = {.ctx = &one, .destroy = count_destroy};
    destroyed = 0;
    fy_policy_set_hooks(p, &h);
    assert_ptr_equal(fy_policy_get_hooks(p)->ctx, &one);
    h.ctx = &ten;
    fy_policy_set_hooks(p, &h); /* replacing destroys the old context */
    assert_int_equal(destroyed, 1);
    fy_policy_destroy(p);
    assert_int_equal(destroyed, 11);
    fy_policy_destroy(NULL);
    k.evict = (fy_evict_rule)9;
    assert_int_equal(fy_policy_create("x", &k, &p, &err), FY_EINVAL);
    fy_policy_knobs_default(&k);
    k.activations_offload = FY_TIER_GPU;
    assert_int_equal(fy_policy_create("x", &k, &p, &err), FY_EINVAL);
    assert_string_equal(fy_evict_rule_name(FY_EVICT_AFTER_LAST_USE), "after-last-use");
    assert_string_equal(fy_evict_rule_name((fy_evict_rule)7), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_reads_every_knob),
        cmocka_unit_test(test_policy_defaults_when_knobs_are_absent),
        cmocka_unit_test(test_policy_refuses_each_malformed_value),
        cmocka_unit_test(test_policy_file_errors_name_file_line_column),
        cmocka_unit_test(test_policy_loads_every_shipped_policy),
        cmocka_unit_test(test_policy_find_takes_paths_and_searches_names),
        cmocka_unit_test(test_policy_keep_globs_match_names),
        cmocka_unit_test(test_policy_lua_path_is_resolved_against_the_policy),
        cmocka_unit_test(test_policy_owns_its_hooks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
