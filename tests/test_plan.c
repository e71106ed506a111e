/* Plans and machines: loading (every malformed form refused at its line and column),
 * unknown names kept for the checker, writing (load -> save -> load -> save identical), the
 * builder's rules, the graph digest, and machine files. */
#include "test_util.h"

#include "ferry/ferry.h"

#include <math.h>

typedef struct bad_case {
    const char *file;
    unsigned line, column;
    const char *message;
} bad_case;

static const bad_case bad_plans[] = {
    {"bad-yaml.yaml", 6, 72, "bad YAML"},
    {"bad-unknown-event-key.yaml", 6, 63, "unknown key 'afterr' in event 1"},
    {"bad-key-for-kind.yaml", 6, 48, "unknown key 'to' in evict event 1"},
    {"bad-missing-at.yaml", 6, 5, "load event 1 needs 'at'"},
    {"bad-duplicate-id.yaml", 6, 10, "duplicate event id 0 (first used on line 5)"},
    {"bad-after-later.yaml", 6, 70, "after names event 2, which is not earlier (line 7)"},
    {"bad-after-self.yaml", 6, 70, "after names event 1, which is not earlier (line 6)"},
    {"bad-after-unknown.yaml", 6, 70, "after names unknown event 7"},
    {"bad-do.yaml", 6, 17, "do of event 1 must be one of load, offload, evict, compute"},
    {"bad-at-unit.yaml", 6, 59, "at of event 1: bad size '12 GiBB'"},
    {"bad-compute-at.yaml", 6, 39, "at of compute event 1 must be a mapping"},
    {"bad-event-not-map.yaml", 6, 5, "event number 2 of the plan must be a mapping"},
    {"bad-id.yaml", 6, 10, "event id must be a non-negative integer, not '-1'"},
    {"bad-missing-id.yaml", 6, 5, "event number 2 of the plan needs an id"},
    {"bad-arena-key.yaml", 3, 23, "unknown key 'hosts' in 'arenas'"},
    {"bad-machine-key.yaml", 3, 33, "unknown key 'speed' in machine tier 'gpu'"},
    {"bad-unknown-top-key.yaml", 4, 1, "unknown key 'typo' in the plan"},
    {"bad-wrong-header.yaml", 1, 8, "wrong header 'plan/2'"},
    {"bad-missing-header.yaml", 1, 1, "missing header"},
    {"bad-no-graph.yaml", 1, 1, "the plan names no graph"},
    {"bad-graph-missing.yaml", 2, 15, "the plan's graph 'missing-graph.yaml'"},
    {"bad-graph-sha.yaml", 2, 34, "graph 'mlp2.yaml' has changed since the plan was made"},
    {"bad-no-events.yaml", 1, 1, "the plan needs an 'events' list"},
    {"bad-events-not-list.yaml", 3, 9, "'events' must be a sequence"},
    {"bad-empty.yaml", 0, 0, "empty file"},
};

static void test_plan_refuses_each_malformed_file(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_plans / sizeof bad_plans[0]; i++) {
        const bad_case *c = &bad_plans[i];
        char rel[256];
        snprintf(rel, sizeof rel, "plans/%s", c->file);
        fy_error err = {0};
        fy_plan *plan = (fy_plan *)1;
        int rc = fy_plan_load(fy_test_data(rel), NULL, &plan, &err);
        if (rc >= 0) fail_msg("%s was accepted", c->file);
        assert_null(plan);
        if (!strstr(err.message, c->message) || err.line != c->line || err.column != c->column)
            fail_msg("%s: got %u:%u '%s', want %u:%u '%s'", c->file, err.line, err.column,
                     err.message, c->line, c->column, c->message);
        assert_non_null(strstr(err.file, c->file));
    }
}

static void test_plan_missing_file_is_named(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_plan *plan;
    assert_int_equal(fy_plan_load("/nonexistent/p.yaml", NULL, &plan, &err), FY_ENOENT);
    assert_string_equal(err.file, "/nonexistent/p.yaml");
}

static void test_plan_loads_the_design_example(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_plan *plan;
    assert_int_equal(fy_plan_load(fy_test_data("plans/good-design.yaml"), NULL, &plan, &err), 0);
    const fy_graph *g = fy_plan_graph(plan);
    assert_string_equal(fy_graph_name(g), "mlp-2");
    assert_string_equal(fy_plan_policy_name(plan), "hand-written");
    assert_non_null(strstr(fy_plan_path(plan), "good-design.yaml"));
    assert_int_equal(fy_plan_event_count(plan), 15);
    assert_int_equal(fy_plan_arena(plan, FY_TIER_GPU), 130ull << 20);
    assert_int_equal(fy_plan_arena(plan, FY_TIER_HOST), 129ull << 20);
    assert_int_equal(fy_plan_arena(plan, FY_TIER_NVME), 0);
    const fy_machine *m = fy_plan_machine(plan);
    assert_int_equal(m->capacity[FY_TIER_GPU], 8ull << 30);
    assert_int_equal(m->capacity[FY_TIER_NVME], 1ull << 40); /* the default shows through */
    assert_true(m->h2d == 55e9);

    const fy_event *e1 = fy_plan_event(plan, 1);
    assert_int_equal(e1->kind, FY_EVENT_LOAD);
    assert_int_equal(e1->tensor, fy_graph_find_tensor(g, "w0"));
    assert_string_equal(e1->ref, "w0");
    assert_int_equal(e1->from, FY_TIER_HOST);
    assert_int_equal(e1->to, FY_TIER_GPU);
    assert_int_equal(e1->after_count, 1);
    assert_int_equal(e1->after[0], 0);
    assert_int_equal(e1->line, 10);
    const fy_event *e3 = fy_plan_event(plan, 3);
    assert_int_equal(e3->kind, FY_EVENT_COMPUTE);
    assert_int_equal(e3->op, 0);
    assert_int_equal(e3->tensor, -1);
    assert_int_equal(e3->place_count, 1);
    assert_int_equal(e3->places[0].tensor, fy_graph_find_tensor(g, "a0"));
    assert_int_equal(e3->places[0].offset, 135266304);
    assert_int_equal(e3->after_count, 2);
    const fy_event *e4 = fy_plan_event(plan, 4);
    assert_int_equal(e4->kind, FY_EVENT_EVICT);
    assert_int_equal(e4->from, FY_TIER_HOST);
    assert_null(fy_plan_event(plan, 15));
    fy_plan_destroy(plan);
}

static void test_plan_keeps_unknown_names_and_sparse_ids(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_plan *plan;
    assert_int_equal(fy_plan_load(fy_test_data("plans/good-names-unknown.yaml"), NULL, &plan, &err),
                     0);
    const fy_event *e0 = fy_plan_event(plan, 0), *e1 = fy_plan_event(plan, 1),
                   *e2 = fy_plan_event(plan, 2);
    assert_int_equal(e0->tensor, -1);
    assert_string_equal(e0->ref, "zz");
    assert_int_equal(e0->to, FY_TIER_NONE);
    assert_int_equal(e0->id, 10);
    assert_int_equal(e1->op, -1);
    assert_string_equal(e1->ref, "nope");
    assert_int_equal(e1->places[0].tensor, -1);
    assert_string_equal(e1->places[0].name, "qq");
    assert_true(e1->places[1].tensor >= 0);
    assert_int_equal(e1->after[0], 0);
    assert_string_equal(e2->ref, "we ird");
    assert_int_equal(e2->after_count, 2);
    assert_int_equal(e2->after[0], 1);
    assert_int_equal(e2->after[1], 0);
    fy_plan_destroy(plan);
}

/* Saves plan into dir/name and returns the text (malloc'ed). */
static char *save_and_read(const fy_plan *plan, const char *dir, const char *name,
                           const char *graph_file)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    fy_error err = {0};
    if (fy_plan_save(plan, path, graph_file, &err) < 0) fail_msg("save: %s", err.message);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(fy_file_read_all_for_test(path, &text, &len), 0);
    text[len] = '\0';
    return text;
}

static void test_plan_round_trip_is_identical(void **state)
{
    (void)state;
    char *dir = fy_test_scratch("plan");
    const char *inputs[] = {"plans/good-design.yaml", "plans/good-names-unknown.yaml"};
    for (size_t i = 0; i < 2; i++) {
        fy_error err = {0};
        fy_plan *a, *b;
        assert_int_equal(fy_plan_load(fy_test_data(inputs[i]), NULL, &a, &err), 0);
        char *first = save_and_read(a, dir, "a.yaml", "g.yaml");
        char path[4200];
        snprintf(path, sizeof path, "%s/a.yaml", dir);
        if (fy_plan_load(path, fy_plan_graph(a), &b, &err) < 0)
            fail_msg("reload: %u:%u %s", err.line, err.column, err.message);
        char *second = save_and_read(b, dir, "b.yaml", "g.yaml");
        assert_string_equal(first, second);
        assert_non_null(strstr(first, "graph: {file: g.yaml, sha256: "));
        if (i == 0) {
            assert_non_null(strstr(first, "\n  - {id: 3, do: compute, op: fc0, at: {a0: "
                                          "135266304}, after: [1, 2]}\n"));
            assert_non_null(strstr(first, "\n  - {id: 2, do: load, tensor: x, from: host, "
                                          "to: gpu, at: 134217728}\n"));
            assert_non_null(strstr(first, "arenas: {gpu: 130MiB, host: 129MiB}\n"));
            assert_non_null(strstr(first, "machine: {gpu: {capacity: 8GiB}, host: {capacity: "
                                          "64GiB}, nvme: {capacity: 1TiB}}\n"));
        } else {
            assert_non_null(strstr(first, "tensor: \"we ird\""));
            assert_non_null(strstr(first, "after: [20, 10]"));
        }
        free(first);
        free(second);
        fy_plan_destroy(a);
        fy_plan_destroy(b);
    }
    fy_test_scratch_remove(dir);
}

static void test_plan_saved_with_its_graph_reloads_and_verifies_digest(void **state)
{
    (void)state;
    char *dir = fy_test_scratch("plan");
    fy_error err = {0};
    fy_plan *a, *b;
    assert_int_equal(fy_plan_load(fy_test_data("plans/good-design.yaml"), NULL, &a, &err), 0);
    char gpath[4200], ppath[4200];
    snprintf(gpath, sizeof gpath, "%s/g.yaml", dir);
    snprintf(ppath, sizeof ppath, "%s/p.yaml", dir);
    assert_int_equal(fy_graph_save(fy_plan_graph(a), gpath, &err), 0);
    assert_int_equal(fy_plan_save(a, ppath, "g.yaml", &err), 0);
    if (fy_plan_load(ppath, NULL, &b, &err) < 0) fail_msg("%s", err.message);
    assert_int_equal(fy_plan_event_count(b), 15);
    fy_plan_destroy(b);
    /* Change the graph under the plan: the recorded digest no longer matches. */
    FILE *f = fopen(gpath, "a");
    fputs("  - {name: extra, kind: relu, reads: [y], writes: [a0]}\n", f);
    fclose(f);
    assert_int_equal(fy_plan_load(ppath, NULL, &b, &err), FY_EPARSE);
    assert_non_null(strstr(err.message, "has changed since the plan was made"));
    assert_int_equal(err.line, 3); /* policy: comes first */
    fy_plan_destroy(a);
    fy_test_scratch_remove(dir);
}

static void test_graph_digest_is_stable_and_sensitive(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_graph *g1, *g2;
    const char *a = "ferry: graph/1\nname: t\ntensors:\n  x: {size: 1KiB, kind: input}\n"
                    "  y: {size: 1KiB, kind: output}\nops:\n  - {name: f, kind: copy, "
                    "reads: [x], writes: [y]}\n";
    const char *b = "ferry: graph/1\nname: t\ntensors:\n  x: {kind: input, size: 1024}\n"
                    "  y:\n    size: 1KiB\n    kind: output\nops:\n  - name: f\n    kind: copy\n"
                    "    reads: [x]\n    writes: [y]\n";
    assert_int_equal(fy_graph_load_string("a", a, strlen(a), &g1, &err), 0);
    assert_int_equal(fy_graph_load_string("b", b, strlen(b), &g2, &err), 0);
    char h1[65], h2[65];
    assert_int_equal(fy_graph_digest(g1, h1, &err), 0);
    assert_int_equal(fy_graph_digest(g2, h2, &err), 0);
    assert_string_equal(h1, h2);
    assert_int_equal(strlen(h1), 64);
    fy_graph_destroy(g2);
    const char *c = "ferry: graph/1\nname: t\ntensors:\n  x: {size: 2KiB, kind: input}\n"
                    "  y: {size: 1KiB, kind: output}\nops:\n  - {name: f, kind: copy, "
                    "reads: [x], writes: [y]}\n";
    assert_int_equal(fy_graph_load_string("c", c, strlen(c), &g2, &err), 0);
    assert_int_equal(fy_graph_digest(g2, h2, &err), 0);
    assert_string_not_equal(h1, h2);
    fy_graph_destroy(g1);
    fy_graph_destroy(g2);
}

static void test_plan_builder_numbers_events_and_refuses_forward_after(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_graph *g;
    assert_int_equal(fy_graph_load(fy_test_data("plans/mlp2.yaml"), &g, &err), 0);
    fy_machine m;
    fy_machine_default(&m);
    m.capacity[FY_TIER_GPU] = 1ull << 30;
    fy_plan *plan;
    assert_int_equal(fy_plan_create(g, &m, &plan, &err), 0);
    assert_int_equal(fy_plan_machine(plan)->capacity[FY_TIER_GPU], 1ull << 30);
    fy_event load = {.kind = FY_EVENT_LOAD,
                     .tensor = (int32_t)fy_graph_find_tensor(g, "x"),
                     .from = FY_TIER_HOST,
                     .to = FY_TIER_GPU,
                     .at = 64};
    assert_int_equal(fy_plan_add(plan, &load, &err), 0);
    uint32_t after[] = {0};
    fy_placement place = {.tensor = (int32_t)fy_graph_find_tensor(g, "a0"), .offset = 4096};
    fy_event comp = {.kind = FY_EVENT_COMPUTE,
                     .op = 0,
                     .places = &place,
                     .place_count = 1,
                     .after = after,
                     .after_count = 1,
                     .id = 99};
    assert_int_equal(fy_plan_add(plan, &comp, &err), 1);
    assert_int_equal(fy_plan_event(plan, 1)->id, 1);
    assert_string_equal(fy_plan_event(plan, 1)->ref, "fc0");
    assert_string_equal(fy_plan_event(plan, 1)->places[0].name, "a0");
    uint32_t later[] = {2};
    fy_event bad = {
        .kind = FY_EVENT_EVICT, .tensor = 0, .from = FY_TIER_GPU, .after = later, .after_count = 1};
    assert_int_equal(fy_plan_add(plan, &bad, &err), FY_EINVAL);
    assert_non_null(strstr(err.message, "not earlier"));
    fy_event range = {.kind = FY_EVENT_EVICT, .tensor = 1000, .from = FY_TIER_GPU};
    assert_int_equal(fy_plan_add(plan, &range, &err), FY_EINVAL);
    fy_event nameless = {.kind = FY_EVENT_COMPUTE, .op = -1};
    assert_int_equal(fy_plan_add(plan, &nameless, &err), FY_EINVAL);
    fy_event unknown = {.kind = FY_EVENT_EVICT, .tensor = -1, .ref = "ghost", .from = FY_TIER_GPU};
    assert_int_equal(fy_plan_add(plan, &unknown, &err), 2);
    assert_string_equal(fy_plan_event(plan, 2)->ref, "ghost");
    fy_event badkind = {.kind = (fy_event_kind)9};
    assert_int_equal(fy_plan_add(plan, &badkind, &err), FY_EINVAL);
    assert_int_equal(fy_plan_event_count(plan), 3);
    fy_plan_set_arena(plan, FY_TIER_GPU, 1 << 20);
    assert_int_equal(fy_plan_arena(plan, FY_TIER_GPU), 1 << 20);
    assert_int_equal(fy_plan_set_policy_name(plan, "window", &err), 0);
    assert_string_equal(fy_plan_policy_name(plan), "window");
    assert_null(fy_plan_path(plan));

    char *dir = fy_test_scratch("plan");
    char *text = save_and_read(plan, dir, "p.yaml", NULL);
    assert_non_null(strstr(text, "policy: window\n"));
    assert_non_null(strstr(text, "machine: {gpu: {capacity: 1GiB}"));
    assert_non_null(strstr(text, "  - {id: 1, do: compute, op: fc0, at: {a0: 4096}, after: [0]}"));
    fy_plan *back;
    if (fy_plan_load_string("p.yaml", text, strlen(text), g, &back, &err) < 0)
        fail_msg("%s", err.message);
    assert_int_equal(fy_plan_machine(back)->capacity[FY_TIER_GPU], 1ull << 30);
    assert_int_equal(fy_plan_event(back, 0)->at, 64);
    fy_plan_destroy(back);
    free(text);
    fy_test_scratch_remove(dir);
    fy_plan_destroy(plan);
    fy_graph_destroy(g);
}

static void test_plan_with_many_sparse_ids_resolves_after(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_graph *g;
    assert_int_equal(fy_graph_load(fy_test_data("plans/mlp2.yaml"), &g, &err), 0);
    /* ids 7, 10, 13, ... force the id map, which must grow past its first size. */
    size_t n = 5000;
    char *text = malloc(n * 96 + 128), *p = text;
    p += sprintf(p, "ferry: plan/1\nevents:\n");
    for (size_t i = 0; i < n; i++) {
        p += sprintf(p, "  - {id: %zu, do: evict, tensor: x, from: gpu", 7 + 3 * i);
        p += i ? sprintf(p, ", after: [%zu, 7]}\n", 7 + 3 * (i - 1)) : sprintf(p, "}\n");
    }
    fy_plan *plan;
    if (fy_plan_load_string("sparse", text, (size_t)(p - text), g, &plan, &err) < 0)
        fail_msg("%s", err.message);
    assert_int_equal(fy_plan_event_count(plan), n);
    for (size_t i = 1; i < n; i++) {
        const fy_event *e = fy_plan_event(plan, i);
        assert_int_equal(e->after[0], i - 1);
        assert_int_equal(e->after[1], 0);
    }
    fy_plan_destroy(plan);
    free(text);
    fy_graph_destroy(g);
}

static void test_machine_default_load_save(void **state)
{
    (void)state;
    fy_machine m;
    fy_machine_default(&m);
    assert_int_equal(m.capacity[FY_TIER_GPU], 80ull << 30);
    assert_true(m.gpu_compute == 700e12);
    assert_string_equal(m.nvme_dir, "/var/tmp/ferry");
    char *dir = fy_test_scratch("machine");
    char path[4200];
    snprintf(path, sizeof path, "%s/m.yaml", dir);
    fy_error err = {0};
    assert_int_equal(fy_machine_save(&m, path, &err), 0);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(fy_file_read_all_for_test(path, &text, &len), 0);
    text[len] = '\0';
    assert_string_equal(text,
                        "ferry: machine/1\n"
                        "gpu:  {capacity: 80GiB, compute: 700TFLOPS, h2d: 55GB/s, d2h: 55GB/s}\n"
                        "host: {capacity: 64GiB, compute: 1TFLOPS}\n"
                        "nvme: {dir: /var/tmp/ferry, capacity: 1TiB, read: 3GB/s, write: 2GB/s}\n");
    free(text);

    fy_machine_default(&m);
    assert_int_equal(fy_machine_load(fy_test_data("plans/machine-good.yaml"), &m, &err), 0);
    assert_int_equal(m.capacity[FY_TIER_GPU], 24ull << 30);
    assert_int_equal(m.capacity[FY_TIER_HOST], 128ull << 30);
    assert_int_equal(m.capacity[FY_TIER_NVME], 1ull << 40);
    assert_true(m.gpu_compute == 165e12);
    assert_true(m.d2h == 26.5e9);
    assert_true(m.nvme_read == 7e9);
    assert_string_equal(m.nvme_dir, "/tmp/spill");
    /* Odd values still round-trip exactly. */
    m.h2d = 12345678.9;
    m.host_compute = 3.3e11;
    assert_int_equal(fy_machine_save(&m, path, &err), 0);
    fy_machine back;
    fy_machine_default(&back);
    assert_int_equal(fy_machine_load(path, &back, &err), 0);
    assert_memory_equal(&m, &back, sizeof m);
    fy_test_scratch_remove(dir);
}

static void test_machine_refuses_bad_files(void **state)
{
    (void)state;
    static const bad_case cases[] = {
        {"machine-bad-key.yaml", 3, 25, "unknown key 'red' in machine tier 'nvme'"},
        {"machine-bad-unit.yaml", 2, 18, "host capacity: bad size '12 GiBB'"},
        {"machine-bad-header.yaml", 1, 8, "wrong header 'graph/1'"},
        {"machine-bad-zero.yaml", 2, 12, "gpu h2d must be more than zero"},
        {"bad-empty.yaml", 0, 0, "empty file"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "plans/%s", cases[i].file);
        fy_machine m, before;
        fy_machine_default(&m);
        before = m;
        fy_error err = {0};
        assert_true(fy_machine_load(fy_test_data(rel), &m, &err) < 0);
        if (!strstr(err.message, cases[i].message) || err.line != cases[i].line ||
            err.column != cases[i].column)
            fail_msg("%s: got %u:%u '%s'", cases[i].file, err.line, err.column, err.message);
        assert_memory_equal(&m, &before, sizeof m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_refuses_each_malformed_file),
        cmocka_unit_test(test_plan_missing_file_is_named),
        cmocka_unit_test(test_plan_loads_the_design_example),
        cmocka_unit_test(test_plan_keeps_unknown_names_and_sparse_ids),
        cmocka_unit_test(test_plan_round_trip_is_identical),
        cmocka_unit_test(test_plan_saved_with_its_graph_reloads_and_verifies_digest),
        cmocka_unit_test(test_graph_digest_is_stable_and_sensitive),
        cmocka_unit_test(test_plan_builder_numbers_events_and_refuses_forward_after),
        cmocka_unit_test(test_plan_with_many_sparse_ids_resolves_after),
        cmocka_unit_test(test_machine_default_load_save),
        cmocka_unit_test(test_machine_refuses_bad_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
