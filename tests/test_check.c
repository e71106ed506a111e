/* The checker: a fixture per class that triggers it and nothing else (with its exact line
 * and message), clean plans that stay clean, the class names, and the mutation test: valid
 * plans built over generated graphs, each changed in one way, must be reported with the
 * right class. */
#include "test_util.h"

#include "ferry/ferry.h"
#include "plans/hb.h"
#include "plans/plan_gen.h"
#include "plans/replay.h"

typedef struct fixture {
    const char *file;
    fy_check_class cls;
    unsigned line;
    const char *message;
} fixture;

static const fixture fixtures[] = {
    {"check-never-loaded.yaml", FY_CHECK_NEVER_LOADED, 10,
     "op 'fc0' (event 3) reads 'x', which was never on gpu"},
    {"check-reuse-after-evict.yaml", FY_CHECK_REUSE_AFTER_EVICT, 20,
     "op 'fc1' (event 9) reads 'a0', evicted from gpu by event 16 and not loaded again"},
    {"check-unordered-use.yaml", FY_CHECK_UNORDERED_USE, 10,
     "load of 'w0' (event 1) copies 'w0' from host but may start before load of 'w0' "
     "(event 0), which puts it there, completes"},
    {"check-evict-in-use.yaml", FY_CHECK_EVICT_IN_USE, 14,
     "evict of 'w0' (event 5) drops 'w0' from gpu while op 'fc0' (event 3) may still read it"},
    {"check-overlap-freed.yaml", FY_CHECK_OVERLAP, 17,
     "load of 'w1' (event 8) places 'w1' at [0, 134217728) on gpu, over bytes [0, 134217728) "
     "of 'w0' that evict of 'w0' (event 5) may not have freed yet"},
    {"check-over-capacity-beyond.yaml", FY_CHECK_OVER_CAPACITY, 11,
     "op 'fc0' (event 3) places 'a0' at [135266304, 136314880) on gpu, beyond the gpu arena "
     "of 129MiB"},
    {"check-overlap.yaml", FY_CHECK_OVERLAP, 11,
     "op 'fc0' (event 3) places 'a0' at [135266304, 136314880) on gpu, over bytes "
     "[135266304, 136314880) of 'x' (placed by event 2), which is still there"},
    {"check-over-capacity.yaml", FY_CHECK_OVER_CAPACITY, 6,
     "the gpu arena (130MiB) is larger than the machine's gpu capacity (100MiB)"},
    {"check-data-loss.yaml", FY_CHECK_DATA_LOSS, 15,
     "evict of 'a0' (event 10) drops the only up-to-date copy of 'a0' (version 1, on gpu), "
     "which op 'fc1' reads later"},
    {"check-stale-copy.yaml", FY_CHECK_STALE_COPY, 13,
     "load of 'w' (event 6) copies a stale copy of 'w' from nvme (version 0; op 'f' (event 3) "
     "wrote version 1)"},
    {"check-incomplete.yaml", FY_CHECK_INCOMPLETE, 7,
     "output 'y' never reaches host: its final version (written by op 'fc1' (event 9)) is not "
     "on host when the plan ends"},
    {"check-bad-reference.yaml", FY_CHECK_BAD_REFERENCE, 15,
     "load of 'w1' (event 8) goes nvme->gpu: there is no such link"},
    {"check-incomplete-order.yaml", FY_CHECK_INCOMPLETE, 10,
     "op 'g1' (event 4) runs after op 'g2' (event 1), which the graph orders after it"},
    {"check-redundant-load.yaml", FY_CHECK_REDUNDANT_LOAD, 11,
     "load of 'x' (event 15) copies 'x' to gpu, where load of 'x' (event 2) already put it"},
    {"check-unused-load.yaml", FY_CHECK_UNUSED_LOAD, 23,
     "load of 'w0' (event 15) puts 'w0' on host, and nothing reads it before the plan ends"},
};

static fy_check_report *check_file(const char *rel, fy_plan **plan_out)
{
    char path[512];
    snprintf(path, sizeof path, "plans/%s", rel);
    fy_error err = {0};
    fy_plan *plan;
    if (fy_plan_load(fy_test_data(path), NULL, &plan, &err) < 0)
        fail_msg("%s: %s", rel, err.message);
    fy_check_report *rep;
    assert_true(fy_check_plan(plan, NULL, &rep, &err) >= 0);
    if (plan_out)
        *plan_out = plan;
    else
        fy_plan_destroy(plan);
    return rep;
}

static void test_check_each_fixture_reports_exactly_its_class(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
        const fixture *f = &fixtures[i];
        fy_plan *plan;
        fy_check_report *rep = check_file(f->file, &plan);
        if (fy_check_report_count(rep) != 1) {
            for (size_t k = 0; k < fy_check_report_count(rep); k++)
                print_message("  %s: %s\n", fy_check_class_name(fy_check_report_get(rep, k)->cls),
                              fy_check_report_get(rep, k)->message);
            fail_msg("%s: %zu violations, want 1", f->file, fy_check_report_count(rep));
        }
        const fy_violation *v = fy_check_report_get(rep, 0);
        assert_int_equal(v->cls, f->cls);
        assert_int_equal(fy_check_report_count_class(rep, f->cls), 1);
        if (v->line != f->line || !strstr(v->message, f->message))
            fail_msg("%s: got %u '%s', want %u '%s'", f->file, v->line, v->message, f->line,
                     f->message);
        bool warning = f->cls == FY_CHECK_REDUNDANT_LOAD || f->cls == FY_CHECK_UNUSED_LOAD;
        assert_int_equal(v->warning, warning);
        assert_int_equal(fy_check_report_errors(rep), warning ? 0 : 1);
        assert_int_equal(fy_check_report_warnings(rep), warning ? 1 : 0);
        assert_true(v->event < fy_plan_event_count(plan));
        fy_check_report_destroy(rep);
        fy_plan_destroy(plan);
    }
}

static void test_check_names_the_related_events(void **state)
{
    (void)state;
    fy_plan *plan;
    fy_check_report *rep = check_file("check-reuse-after-evict.yaml", &plan);
    const fy_violation *v = fy_check_report_get(rep, 0);
    assert_int_equal(fy_plan_event(plan, v->event)->id, 9);
    assert_true(v->related_event >= 0);
    assert_int_equal(fy_plan_event(plan, (size_t)v->related_event)->id, 16);
    fy_check_report_destroy(rep);
    fy_plan_destroy(plan);
}

static void test_check_clean_plans_stay_clean(void **state)
{
    (void)state;
    const char *clean[] = {"good-design.yaml", "good-update.yaml", "good-acc.yaml"};
    for (size_t i = 0; i < 3; i++) {
        fy_check_report *rep = check_file(clean[i], NULL);
        if (fy_check_report_count(rep))
            fail_msg("%s: %s", clean[i], fy_check_report_get(rep, 0)->message);
        fy_check_report_destroy(rep);
    }
}

static void test_check_class_names_are_stable(void **state)
{
    (void)state;
    const char *names[] = {"never-loaded", "reuse-after-evict", "unordered-use",  "evict-in-use",
                           "overlap",      "over-capacity",     "data-loss",      "stale-copy",
                           "incomplete",   "bad-reference",     "redundant-load", "unused-load"};
    assert_int_equal(FY_CHECK_CLASS_COUNT, 12);
    for (int i = 0; i < FY_CHECK_CLASS_COUNT; i++) {
        assert_string_equal(fy_check_class_name((fy_check_class)i), names[i]);
        fy_check_class c;
        assert_int_equal(fy_check_class_parse(names[i], &c), 0);
        assert_int_equal(c, i);
    }
    fy_check_class c;
    assert_int_equal(fy_check_class_parse("overlapping", &c), FY_EPARSE);
    assert_string_equal(fy_check_class_name((fy_check_class)99), "unknown");
    assert_int_equal(fy_check_report_count(NULL), 0);
    assert_null(fy_check_report_get(NULL, 0));
    fy_check_report_destroy(NULL);
}

/* ---- happens-before against brute force ------------------------------------------ */

static void test_check_hb_matches_brute_force_on_random_plans(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_graph *g;
    assert_int_equal(fy_graph_load(fy_test_data("plans/train1.yaml"), &g, &err), 0);
    int32_t w = (int32_t)fy_graph_find_tensor(g, "w");
    enum { N = 400 };
    static bool reach[N][N];
    uint64_t seed = 12345;
    for (int round = 0; round < 12; round++) {
        fy_plan *plan;
        assert_int_equal(fy_plan_create(g, NULL, &plan, &err), 0);
        long last_on[5] = {-1, -1, -1, -1, -1};
        static long stream_prev[N];
        for (int i = 0; i < N; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            unsigned r = (unsigned)(seed >> 33);
            /* Kinds: h2d, d2h, gpu op, host op, io, evict (io and evicts dominate some
             * rounds, so that io lanes fill up and lane-less walks happen). */
            unsigned kind = round % 3 == 0 ? r % 6 : (r % 10 < 6 ? 4 + r % 2 : r % 4);
            fy_event ev = {.tensor = w, .from = FY_TIER_HOST, .to = FY_TIER_GPU};
            switch (kind) {
            case 0:
                ev.kind = FY_EVENT_LOAD;
                break;
            case 1:
                ev.kind = FY_EVENT_OFFLOAD, ev.from = FY_TIER_GPU, ev.to = FY_TIER_HOST;
                break;
            case 2:
                ev.kind = FY_EVENT_COMPUTE, ev.op = 0;
                break;
            case 3:
                ev.kind = FY_EVENT_COMPUTE, ev.op = 1;
                break;
            case 4:
                ev.kind = FY_EVENT_LOAD, ev.from = FY_TIER_NVME, ev.to = FY_TIER_HOST;
                break;
            default:
                ev.kind = FY_EVENT_EVICT;
                break;
            }
            uint32_t after[3];
            unsigned na = i ? (r >> 8) % 3 : 0;
            for (unsigned k = 0; k < na; k++) {
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                unsigned span = (seed >> 40) % 4 == 0 ? (unsigned)i : (i < 8 ? (unsigned)i : 8u);
                after[k] = (uint32_t)(i - 1 - (int)((seed >> 20) % span));
            }
            ev.after = after;
            ev.after_count = na;
            assert_int_equal(fy_plan_add(plan, &ev, &err), i);
            int q = kind < 4 ? (int)kind : 4;
            stream_prev[i] = q < 4 ? last_on[q] : -1;
            if (q < 4) last_on[q] = i;
        }
        /* Brute force: reach[a][b] by forward closure in plan order. */
        for (int b = 0; b < N; b++) {
            for (int a = 0; a < N; a++)
                reach[a][b] = a == b;
            const fy_event *e = fy_plan_event(plan, (size_t)b);
            for (int a = 0; a < b; a++) {
                bool hit = stream_prev[b] >= 0 && reach[a][stream_prev[b]];
                for (uint32_t k = 0; k < e->after_count && !hit; k++)
                    hit = reach[a][e->after[k]];
                reach[a][b] = hit;
            }
        }
        fy_hb *hb;
        assert_int_equal(fy_hb_build(plan, &hb, &err), 0);
        for (int b = 0; b < N; b++)
            for (int a = 0; a < N; a++)
                if (fy_hb_before(hb, (size_t)a, (size_t)b) != reach[a][b])
                    fail_msg("round %d: hb(%d, %d) = %d, want %d", round, a, b, !reach[a][b],
                             reach[a][b]);
        fy_hb_destroy(hb);
        fy_plan_destroy(plan);
    }
    fy_graph_destroy(g);
}

/* ---- the replay's hooks, as the simulator uses them -------------------------------- */

typedef struct tally {
    size_t changes[3];
    uint64_t live[FY_TIER_COUNT], peak[FY_TIER_COUNT];
    size_t issues;
} tally;

static void on_change(void *ctx, const fy_replay_change *ch)
{
    tally *t = ctx;
    t->changes[ch->kind]++;
    if (!ch->in_arena) return;
    if (ch->kind == FY_CHANGE_PLACE)
        t->live[ch->tier] += ch->size;
    else if (ch->kind == FY_CHANGE_DROP)
        t->live[ch->tier] -= ch->size;
    if (t->live[ch->tier] > t->peak[ch->tier]) t->peak[ch->tier] = t->live[ch->tier];
}

static void on_issue(void *ctx, const fy_replay_issue *issue)
{
    (void)issue;
    ((tally *)ctx)->issues++;
}

static void test_check_replay_reports_every_change_and_the_peaks(void **state)
{
    (void)state;
    fy_plan *plan;
    fy_check_report_destroy(check_file("good-design.yaml", &plan));
    tally t = {0};
    fy_replay_hooks hooks = {.ctx = &t, .issue = on_issue, .change = on_change};
    fy_replay_stats stats;
    fy_error err = {0};
    assert_int_equal(fy_replay_run(plan, NULL, NULL, &hooks, &stats, &err), 0);
    /* w0, w1, y to host; w0, x, a0, w1, y on the gpu; seven evicts; no in-place write. */
    assert_int_equal(t.changes[FY_CHANGE_PLACE], 8);
    assert_int_equal(t.changes[FY_CHANGE_DROP], 7);
    assert_int_equal(t.changes[FY_CHANGE_WRITE], 0);
    assert_int_equal(t.issues, 0);
    assert_int_equal(stats.peak_live[FY_TIER_GPU], 130ull << 20);
    assert_int_equal(stats.peak_live[FY_TIER_HOST], 128ull << 20);
    assert_int_equal(t.peak[FY_TIER_GPU], stats.peak_live[FY_TIER_GPU]);
    assert_int_equal(stats.arena_used[FY_TIER_GPU], 130ull << 20);
    assert_int_equal(stats.arena_used[FY_TIER_HOST], 129ull << 20);
    assert_int_equal(stats.issues, 0);
    fy_plan_destroy(plan);

    /* Without hb the ordering rules are off: the unordered fixture replays clean... */
    fy_check_report_destroy(check_file("check-unordered-use.yaml", &plan));
    t = (tally){0};
    assert_int_equal(fy_replay_run(plan, NULL, NULL, &hooks, &stats, &err), 0);
    assert_int_equal(t.issues, 0);
    fy_plan_destroy(plan);
    /* ...while the rest still hold, and in-place writes are reported as such. */
    fy_check_report_destroy(check_file("good-acc.yaml", &plan));
    t = (tally){0};
    assert_int_equal(fy_replay_run(plan, NULL, NULL, &hooks, NULL, &err), 0);
    assert_int_equal(t.changes[FY_CHANGE_WRITE], 2); /* g2 on the gpu, the offload over host */
    fy_plan_destroy(plan);
    fy_check_report_destroy(check_file("check-never-loaded.yaml", &plan));
    t = (tally){0};
    assert_int_equal(fy_replay_run(plan, NULL, NULL, &hooks, &stats, &err), 0);
    assert_int_equal(t.issues, 1);
    assert_int_equal(stats.issues, 1);
    fy_plan_destroy(plan);
}

/* ---- every message: small edits of the clean plans ------------------------------ */

typedef struct variant {
    const char *base;      /* a clean fixture; "": no events at all */
    const char *edits[12]; /* pairs: text to find, its replacement; NULL ends */
    fy_check_class cls;    /* the one error (or, for a warning, the one violation) */
    const char *message;
} variant;

#define E14 "{id: 14, do: evict, tensor: y, from: gpu, after: [13]}"
#define APPEND(ev) E14, E14 "\n  - " ev

static const variant variants[] = {
    {"good-design.yaml",
     {"arenas: {gpu: 130MiB, host: 129MiB}", "arenas: {gpu: 130MiB, host: 129MiB, nvme: 1MiB}",
      APPEND("{id: 15, do: offload, tensor: a0, from: host, to: nvme, at: 0, after: [3]}")},
     FY_CHECK_NEVER_LOADED,
     "offload of 'a0' (event 15) copies 'a0' from host, where it never was"},
    {"good-design.yaml",
     {APPEND("{id: 15, do: evict, tensor: a0, from: host}")},
     FY_CHECK_NEVER_LOADED,
     "evict of 'a0' (event 15) drops 'a0' from host, where it never was"},
    {"good-design.yaml",
     {APPEND("{id: 15, do: load, tensor: w1, from: host, to: gpu, at: 0, after: [11, 12]}")},
     FY_CHECK_REUSE_AFTER_EVICT,
     "load of 'w1' (event 15) copies 'w1' from host, evicted from there by event 11 and not "
     "loaded again"},
    {"good-design.yaml",
     {APPEND("{id: 15, do: evict, tensor: a0, from: gpu, after: [10]}")},
     FY_CHECK_REUSE_AFTER_EVICT,
     "evict of 'a0' (event 15) drops 'a0' from gpu, already evicted from there by event 10"},
    {"good-design.yaml",
     {"{id: 4, do: evict, tensor: w0, from: host, after: [1]}",
      "{id: 4, do: evict, tensor: w0, from: host}"},
     FY_CHECK_UNORDERED_USE,
     "evict of 'w0' (event 4) may drop 'w0' from host before load of 'w0' (event 0), which "
     "puts it there, completes"},
    {"good-acc.yaml",
     {"{id: 4, do: compute, op: g2, after: [2]}",
      "{id: 6, do: evict, tensor: z, from: gpu, after: [2]}\n"
      "  - {id: 7, do: load, tensor: z, from: host, to: gpu, at: 1048576, after: [6]}\n"
      "  - {id: 4, do: compute, op: g2, after: [0]}",
      "after: [3, 4]}", "after: [3, 4, 7]}"},
     FY_CHECK_UNORDERED_USE,
     "op 'g2' (event 4) updates 'z' on gpu in place but may start before load of 'z' (event 7), "
     "which puts it there, completes"},
    {"good-acc.yaml",
     {"{id: 4, do: compute, op: g2, after: [2]}", "{id: 4, do: compute, op: g2, after: [1]}"},
     FY_CHECK_EVICT_IN_USE,
     "op 'g2' (event 4) overwrites 'z' on gpu while offload of 'z' (event 2) may still read it"},
    {"good-acc.yaml",
     {"after: [3, 4]}", "after: [4]}"},
     FY_CHECK_EVICT_IN_USE,
     "offload of 'z' (event 5) overwrites the stale copy of 'z' on host while offload of 'z' "
     "(event 3) may still read it"},
    {"good-design.yaml",
     {"  - {id: 13, do: offload, tensor: y, from: gpu, to: host, at: 134217728, after: [9]}\n"
      "  - " E14 "\n",
      "  - {id: 13, do: evict, tensor: y, from: gpu, after: [9]}\n"},
     FY_CHECK_DATA_LOSS,
     "evict of 'y' (event 13) drops the only up-to-date copy of output 'y' (version 1, on gpu) "
     "before it ends on host"},
    {"good-update.yaml",
     {"  - {id: 4, do: evict, tensor: w, from: host, after: [1]}\n", "",
      "  - {id: 6, do: offload, tensor: w, from: gpu, to: host, at: 0, after: [3, 4]}\n", "",
      "after: [6]}", "after: [3]}", "after: [6]}", "after: [3]}"},
     FY_CHECK_STALE_COPY,
     "op 'g' (event 7) reads a stale copy of 'w' on host (version 0; op 'f' (event 3) wrote "
     "version 1)"},
    {"good-design.yaml",
     {"{id: 9, do: compute, op: fc1, at: {y: 134217728}, after: [6, 8]}",
      "{id: 9, do: compute, op: fc1, at: {y: 134217728}, after: [6, 8]}\n"
      "  - {id: 15, do: compute, op: fc1, after: [9]}",
      "a0, from: gpu, after: [9]}", "a0, from: gpu, after: [15]}", "w1, from: gpu, after: [9]}",
      "w1, from: gpu, after: [15]}", "at: 134217728, after: [9]}", "at: 134217728, after: [15]}"},
     FY_CHECK_INCOMPLETE,
     "op 'fc1' (event 15) is computed again (first by event 9)"},
    {"", {NULL}, FY_CHECK_INCOMPLETE, "ops 'fc0' to 'fc1' (2 ops) are never computed"},
    {"good-acc.yaml",
     {"  - {id: 4, do: compute, op: g2, after: [2]}\n", "", "after: [3, 4]", "after: [3]"},
     FY_CHECK_INCOMPLETE,
     "op 'g2' is never computed"},
    {"good-design.yaml",
     {APPEND("{id: 15, do: evict, tensor: ghost, from: gpu}")},
     FY_CHECK_BAD_REFERENCE,
     "event 15 names 'ghost', which is not a tensor of the graph"},
    {"good-design.yaml",
     {APPEND("{id: 15, do: load, tensor: ghost, from: host, to: gpu, at: 0}")},
     FY_CHECK_BAD_REFERENCE,
     "event 15 names 'ghost', which is not a tensor of the graph"},
    {"good-design.yaml",
     {APPEND("{id: 15, do: compute, op: fc9}")},
     FY_CHECK_BAD_REFERENCE,
     "event 15 runs 'fc9', which is not an op of the graph"},
    {"good-design.yaml",
     {APPEND("{id: 15, do: evict, tensor: a0, from: gpux}")},
     FY_CHECK_BAD_REFERENCE,
     "evict of 'a0' (event 15) names an unknown tier"},
    {"good-design.yaml",
     {APPEND("{id: 15, do: load, tensor: y, from: host, to: host, at: 0, after: [13]}")},
     FY_CHECK_BAD_REFERENCE,
     "load of 'y' (event 15) names the same tier twice"},
    {"good-design.yaml",
     {"do: offload, tensor: y, from: gpu", "do: load, tensor: y, from: gpu"},
     FY_CHECK_BAD_REFERENCE,
     "load of 'y' (event 13) goes gpu->host, which is an offload, not a load"},
    {"good-design.yaml",
     {"at: {a0: 135266304}, ", ""},
     FY_CHECK_BAD_REFERENCE,
     "op 'fc0' (event 3) creates 'a0' but gives no offset (at: {a0: OFFSET})"},
    {"good-design.yaml",
     {"at: {a0: 135266304}", "at: {a0: 135266304, qq: 0}"},
     FY_CHECK_BAD_REFERENCE,
     "op 'fc0' (event 3) places 'qq', which is not a tensor of the graph"},
    {"good-design.yaml",
     {"at: {a0: 135266304}", "at: {a0: 135266304, x: 0}"},
     FY_CHECK_BAD_REFERENCE,
     "op 'fc0' (event 3) places 'x', which the op does not write"},
    {"good-acc.yaml",
     {"op: g2, after", "op: g2, at: {z: 0}, after"},
     FY_CHECK_BAD_REFERENCE,
     "op 'g2' (event 4) places 'z' at 0, but 'z' is already on gpu elsewhere and is updated in "
     "place"},
    {"good-acc.yaml",
     {"host, at: 0, after: [3, 4]", "host, at: 4096, after: [3, 4]"},
     FY_CHECK_BAD_REFERENCE,
     "offload of 'z' (event 5) replaces the stale copy of 'z' on host, which is replaced in place "
     "at 0, but gives at: 4096"},
    {"good-design.yaml",
     {"{id: 2, do: load, tensor: x, from: host, to: gpu, at: 134217728}",
      "{id: 2, do: load, tensor: x, from: host, to: gpu, at: 134217728}\n"
      "  - {id: 15, do: offload, tensor: x, from: gpu, to: host, at: 0, after: [2]}",
      "{id: 6, do: evict, tensor: x, from: gpu, after: [3]}",
      "{id: 6, do: evict, tensor: x, from: gpu, after: [3, 15]}"},
     FY_CHECK_REDUNDANT_LOAD,
     "offload of 'x' (event 15) copies 'x' to host, where it rests from the start and is up to "
     "date"},
    {"good-design.yaml",
     {APPEND("{id: 15, do: load, tensor: w0, from: nvme, to: host, at: 0, after: [11]}\n"
             "  - {id: 16, do: evict, tensor: w0, from: host, after: [15]}")},
     FY_CHECK_UNUSED_LOAD,
     "load of 'w0' (event 15) puts 'w0' on host, and evict of 'w0' (event 16) drops it without "
     "any event reading it"},
};

/* base with each edit applied once (the text to find must be there). */
static char *apply_edits(const char *base, const char *const *edits)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(fy_file_read_all_for_test(fy_test_data(base), &text, &len), 0);
    text[len] = '\0';
    for (size_t i = 0; edits[i]; i += 2) {
        char *at = strstr(text, edits[i]);
        if (!at) fail_msg("%s: no '%s' to edit", base, edits[i]);
        size_t head = (size_t)(at - text), old = strlen(edits[i]), add = strlen(edits[i + 1]);
        char *next = malloc(strlen(text) - old + add + 1);
        memcpy(next, text, head);
        memcpy(next + head, edits[i + 1], add);
        strcpy(next + head + add, at + old);
        free(text);
        text = next;
    }
    return text;
}

static void test_check_reports_every_message_once(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        const variant *v = &variants[i];
        char rel[256];
        snprintf(rel, sizeof rel, "plans/%s", v->base);
        /* base "": a plan of no events over the design's graph. */
        char *text = *v->base ? apply_edits(rel, v->edits)
                              : strdup("ferry: plan/1\ngraph: {file: mlp2.yaml}\nevents: []\n");
        char name[4200];
        snprintf(name, sizeof name, "%s", fy_test_data(rel)); /* the graph is found beside it */
        fy_error err = {0};
        fy_plan *plan;
        if (fy_plan_load_string(name, text, strlen(text), NULL, &plan, &err) < 0)
            fail_msg("variant %zu: %u:%u %s", i, err.line, err.column, err.message);
        fy_check_report *rep;
        assert_true(fy_check_plan(plan, NULL, &rep, &err) >= 0);
        bool warning = v->cls == FY_CHECK_REDUNDANT_LOAD || v->cls == FY_CHECK_UNUSED_LOAD;
        size_t want_errors = warning ? 0 : 1;
        const fy_violation *got = NULL;
        for (size_t k = 0; k < fy_check_report_count(rep); k++)
            if (fy_check_report_get(rep, k)->cls == v->cls) got = fy_check_report_get(rep, k);
        if (!got || fy_check_report_errors(rep) != want_errors ||
            fy_check_report_count_class(rep, v->cls) != 1 || !strstr(got->message, v->message)) {
            for (size_t k = 0; k < fy_check_report_count(rep); k++)
                print_message("  %s: %s\n", fy_check_class_name(fy_check_report_get(rep, k)->cls),
                              fy_check_report_get(rep, k)->message);
            fail_msg("variant %zu (%s): want one %s: '%s'", i, v->base, fy_check_class_name(v->cls),
                     v->message);
        }
        fy_check_report_destroy(rep);
        fy_plan_destroy(plan);
        free(text);
    }
}

/* ---- the mutation test ------------------------------------------------------------ */

typedef void (*edit_fn)(fy_event *ev, uint32_t *after, size_t old_index, void *ctx);

/* Rebuilds src over g with its events in `order` (old indices). An after edge to an event
 * that is not earlier in the new order is dropped; names are looked up again in g. */
static fy_plan *rebuild(const fy_plan *src, const fy_graph *g, const fy_machine *m,
                        const size_t *order, size_t n, edit_fn edit, void *ctx)
{
    size_t total = fy_plan_event_count(src);
    long *index = malloc((total + 1) * sizeof *index);
    for (size_t i = 0; i < total; i++)
        index[i] = -1;
    fy_error err = {0};
    fy_plan *p;
    assert_int_equal(fy_plan_create(g, m ? m : fy_plan_machine(src), &p, &err), 0);
    for (int t = 0; t < FY_TIER_COUNT; t++)
        fy_plan_set_arena(p, (fy_tier)t, fy_plan_arena(src, (fy_tier)t));
    for (size_t k = 0; k < n; k++) {
        const fy_event *e = fy_plan_event(src, order[k]);
        fy_event ev = *e;
        uint32_t after[512];
        fy_placement places[64];
        assert_true(e->after_count <= 512 && e->place_count <= 64);
        uint32_t na = 0;
        for (uint32_t a = 0; a < e->after_count; a++)
            if (index[e->after[a]] >= 0) after[na++] = (uint32_t)index[e->after[a]];
        ev.after = after;
        ev.after_count = na;
        if (e->kind == FY_EVENT_COMPUTE)
            ev.op = (int32_t)fy_graph_find_op(g, e->ref);
        else
            ev.tensor = (int32_t)fy_graph_find_tensor(g, e->ref);
        for (uint32_t i = 0; i < e->place_count; i++) {
            places[i] = e->places[i];
            places[i].tensor = (int32_t)fy_graph_find_tensor(g, e->places[i].name);
        }
        ev.places = places;
        if (edit) edit(&ev, after, order[k], ctx);
        long at = fy_plan_add(p, &ev, &err);
        if (at < 0) fail_msg("rebuild: %s", err.message);
        index[order[k]] = at;
    }
    free(index);
    return p;
}

/* The identity order without skip (skip = total: keep all), moving event `move` (if not
 * total) to just after event `to`. */
static size_t *make_order(size_t total, size_t skip, size_t move, size_t to, size_t *n)
{
    size_t *order = calloc(total + 1, sizeof *order), k = 0;
    assert_non_null(order);
    for (size_t i = 0; i < total; i++) {
        if (i == skip || i == move) continue;
        order[k++] = i;
        if (i == to && move < total) order[k++] = move;
    }
    *n = k;
    return order;
}

static bool is_transfer(const fy_event *e, fy_tier from, fy_tier to)
{
    return (e->kind == FY_EVENT_LOAD || e->kind == FY_EVENT_OFFLOAD) && e->from == from &&
           e->to == to;
}

static fy_tensor_kind kind_of(const fy_plan *p, const fy_event *e)
{
    return fy_graph_tensor(fy_plan_graph(p), (size_t)e->tensor)->kind;
}

/* Checks plan; asserts want is among the errors and is the first one reported. */
static void expect_class(const fy_plan *plan, const fy_machine *m, fy_check_class want,
                         const char *what)
{
    fy_error err = {0};
    fy_check_report *rep;
    int errors = fy_check_plan(plan, m, &rep, &err);
    assert_true(errors >= 0);
    const fy_violation *first = NULL;
    for (size_t i = 0; i < fy_check_report_count(rep) && !first; i++)
        if (!fy_check_report_get(rep, i)->warning) first = fy_check_report_get(rep, i);
    if (!first || first->cls != want || fy_check_report_count_class(rep, want) == 0) {
        for (size_t i = 0; i < fy_check_report_count(rep); i++)
            print_message("  %s: %s\n", fy_check_class_name(fy_check_report_get(rep, i)->cls),
                          fy_check_report_get(rep, i)->message);
        fail_msg("%s: want %s first", what, fy_check_class_name(want));
    }
    fy_check_report_destroy(rep);
}

static void drop_io_edge(fy_event *ev, uint32_t *after, size_t old, void *ctx)
{
    (void)ev;
    (void)after;
    if (old == *(size_t *)ctx)
        ev->after_count = 0; /* its only edges: the io read and perhaps a freed slot */
}

static void keep_only_first_edge(fy_event *ev, uint32_t *after, size_t old, void *ctx)
{
    (void)after;
    if (old == *(size_t *)ctx && ev->after_count > 1)
        ev->after_count = 1; /* the placing load; drops the computes that read it */
}

typedef struct retarget {
    size_t event;
    uint64_t at;
} retarget;

static void move_offset(fy_event *ev, uint32_t *after, size_t old, void *ctx)
{
    (void)after;
    const retarget *r = ctx;
    if (old == r->event) ev->at = r->at;
}

static void load_from_nvme(fy_event *ev, uint32_t *after, size_t old, void *ctx)
{
    (void)after;
    if (old == *(size_t *)ctx) {
        ev->kind = FY_EVENT_LOAD;
        ev->from = FY_TIER_NVME;
    }
}

static void mutate_and_check(const fy_graph *g, const char *name)
{
    fy_error err = {0};
    fy_plan *plan;
    fy_plan_gen_params params = {.window = 2, .spill_updates = true};
    assert_int_equal(fy_plan_generate(g, NULL, &params, &plan, &err), 0);
    fy_check_report *rep;
    assert_int_equal(fy_check_plan(plan, NULL, &rep, &err), 0);
    if (fy_check_report_count(rep))
        fail_msg("%s: the generated plan is not clean: %s", name,
                 fy_check_report_get(rep, 0)->message);
    fy_check_report_destroy(rep);
    size_t total = fy_plan_event_count(plan), n;
    char what[128];

    /* 1. drop an after edge: an h2d load no longer waits for the nvme read it copies. */
    size_t h2d = total;
    for (size_t i = 0; i < total && h2d == total; i++) {
        const fy_event *e = fy_plan_event(plan, i);
        if (is_transfer(e, FY_TIER_HOST, FY_TIER_GPU) && e->after_count &&
            is_transfer(fy_plan_event(plan, e->after[0]), FY_TIER_NVME, FY_TIER_HOST))
            h2d = i;
    }
    assert_true(h2d < total);
    size_t *order = make_order(total, total, total, total, &n);
    fy_plan *m = rebuild(plan, g, NULL, order, n, drop_io_edge, &h2d);
    snprintf(what, sizeof what, "%s: drop an after edge", name);
    expect_class(m, NULL, FY_CHECK_UNORDERED_USE, what);
    fy_plan_destroy(m);

    /* 2. delete a load: the first h2d load of a weight. */
    size_t first_w = total;
    for (size_t i = 0; i < total && first_w == total; i++) {
        const fy_event *e = fy_plan_event(plan, i);
        if (is_transfer(e, FY_TIER_HOST, FY_TIER_GPU) && kind_of(plan, e) == FY_TENSOR_WEIGHT)
            first_w = i;
    }
    assert_true(first_w < total);
    free(order);
    order = make_order(total, first_w, total, total, &n);
    m = rebuild(plan, g, NULL, order, n, NULL, NULL);
    snprintf(what, sizeof what, "%s: delete a load", name);
    expect_class(m, NULL, FY_CHECK_NEVER_LOADED, what);
    fy_plan_destroy(m);

    /* 3. move an evict earlier: in time (it waits only for the load) and in the plan. */
    size_t ev_i = total;
    for (size_t i = 0; i < total && ev_i == total; i++) {
        const fy_event *e = fy_plan_event(plan, i);
        if (e->kind == FY_EVENT_EVICT && e->from == FY_TIER_GPU &&
            kind_of(plan, e) == FY_TENSOR_WEIGHT && e->after_count >= 2)
            ev_i = i;
    }
    assert_true(ev_i < total);
    free(order);
    order = make_order(total, total, total, total, &n);
    m = rebuild(plan, g, NULL, order, n, keep_only_first_edge, &ev_i);
    snprintf(what, sizeof what, "%s: evict earlier in time", name);
    expect_class(m, NULL, FY_CHECK_EVICT_IN_USE, what);
    fy_plan_destroy(m);
    free(order);
    order = make_order(total, total, ev_i, fy_plan_event(plan, ev_i)->after[0], &n);
    m = rebuild(plan, g, NULL, order, n, NULL, NULL);
    snprintf(what, sizeof what, "%s: evict earlier in the plan", name);
    expect_class(m, NULL, FY_CHECK_REUSE_AFTER_EVICT, what);
    fy_plan_destroy(m);

    /* 4. two copies at overlapping offsets: the second h2d load of a compute's operands
     * lands on the first. */
    retarget rt = {total, 0};
    for (size_t i = 0; i < total && rt.event == total; i++) {
        const fy_event *e = fy_plan_event(plan, i);
        if (e->kind != FY_EVENT_COMPUTE) continue;
        long a = -1, b = -1;
        for (uint32_t k = 0; k < e->after_count; k++) {
            const fy_event *d = fy_plan_event(plan, e->after[k]);
            if (is_transfer(d, FY_TIER_HOST, FY_TIER_GPU)) {
                if (a < 0)
                    a = e->after[k];
                else
                    b = e->after[k];
            }
        }
        if (b >= 0) {
            rt.event = (size_t)(a > b ? a : b);
            rt.at = fy_plan_event(plan, (size_t)(a > b ? b : a))->at;
        }
    }
    assert_true(rt.event < total);
    free(order);
    m = rebuild(plan, g, NULL, order = make_order(total, total, total, total, &n), n, move_offset,
                &rt);
    snprintf(what, sizeof what, "%s: overlapping offsets", name);
    expect_class(m, NULL, FY_CHECK_OVERLAP, what);
    fy_plan_destroy(m);

    /* 5. shrink a capacity below the arena. */
    fy_machine small = *fy_plan_machine(plan);
    small.capacity[FY_TIER_GPU] = fy_plan_arena(plan, FY_TIER_GPU) - 1;
    snprintf(what, sizeof what, "%s: shrink a capacity", name);
    expect_class(plan, &small, FY_CHECK_OVER_CAPACITY, what);

    /* 7. write a tensor, then load an older copy: an updated weight comes back from nvme
     * (its old source) instead of from the gpu that updated it. */
    size_t back = total;
    for (size_t i = 0; i < total; i++) {
        const fy_event *e = fy_plan_event(plan, i);
        if (is_transfer(e, FY_TIER_GPU, FY_TIER_HOST) && kind_of(plan, e) == FY_TENSOR_WEIGHT)
            back = i;
    }
    if (back < total) {
        m = rebuild(plan, g, NULL, order, n, load_from_nvme, &back);
        snprintf(what, sizeof what, "%s: load an older copy", name);
        expect_class(m, NULL, FY_CHECK_STALE_COPY, what);
        fy_plan_destroy(m);
    }
    free(order);
    fy_plan_destroy(plan);
}

/* A copy of g with ops a and b (by name) swapped: independent ops stay a valid graph. */
static fy_graph *swap_ops(const fy_graph *g, const char *a, const char *b)
{
    fy_error err = {0};
    fy_graph *s;
    assert_int_equal(fy_graph_create(fy_graph_name(g), &s, &err), 0);
    for (size_t i = 0; i < fy_graph_tensor_count(g); i++) {
        const fy_tensor *t = fy_graph_tensor(g, i);
        fy_tensor_desc d = {.name = t->name,
                            .kind = t->kind,
                            .size = t->size,
                            .dtype = t->dtype,
                            .rank = t->rank,
                            .home_set = true,
                            .home = t->home,
                            .source_file = t->source_file,
                            .source_offset = t->source_offset};
        memcpy(d.shape, t->shape, sizeof d.shape);
        assert_int_equal(fy_graph_add_tensor(s, &d, &err), 0);
    }
    long ia = fy_graph_find_op(g, a), ib = fy_graph_find_op(g, b);
    assert_true(ia >= 0 && ib >= 0);
    for (size_t i = 0; i < fy_graph_op_count(g); i++) {
        size_t from = i == (size_t)ia ? (size_t)ib : i == (size_t)ib ? (size_t)ia : i;
        const fy_op *op = fy_graph_op(g, from);
        const char *reads[16], *writes[16];
        assert_true(op->read_count <= 16 && op->write_count <= 16);
        for (uint32_t k = 0; k < op->read_count; k++)
            reads[k] = fy_graph_tensor(g, op->reads[k])->name;
        for (uint32_t k = 0; k < op->write_count; k++)
            writes[k] = fy_graph_tensor(g, op->writes[k])->name;
        fy_op_desc d = {.name = op->name,
                        .kind = op->kind,
                        .device = op->device,
                        .reads = reads,
                        .read_count = op->read_count,
                        .writes = writes,
                        .write_count = op->write_count,
                        .flops = op->flops,
                        .time = op->time};
        if (fy_graph_add_op(s, &d, &err) < 0) fail_msg("%s", err.message);
    }
    assert_int_equal(fy_graph_validate(s, &err), 0);
    return s;
}

static void test_check_mutations_of_generated_plans_are_caught(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_graph *g;
    fy_mlp_params mp = {.layers = 6,
                        .hidden = 64,
                        .batch = 4,
                        .dtype = FY_DTYPE_BF16,
                        .train = true,
                        .weights_file = "w.bin"};
    assert_int_equal(fy_graph_generate_mlp(&mp, &g, &err), 0);
    mutate_and_check(g, "mlp");
    fy_graph_destroy(g);
    fy_transformer_params tp = {.layers = 2,
                                .hidden = 64,
                                .ffn = 128,
                                .heads = 4,
                                .seq = 16,
                                .batch = 1,
                                .vocab = 100,
                                .dtype = FY_DTYPE_BF16,
                                .train = true,
                                .weights_file = "w.bin"};
    assert_int_equal(fy_graph_generate_transformer(&tp, &g, &err), 0);
    mutate_and_check(g, "transformer");

    /* 6. swap two computes: a plan made for a graph with q and k swapped runs k first. */
    fy_graph *swapped = swap_ops(g, "layers.1.q", "layers.1.k");
    fy_plan *plan;
    fy_plan_gen_params params = {.window = 2};
    assert_int_equal(fy_plan_generate(swapped, NULL, &params, &plan, &err), 0);
    size_t n;
    size_t *order = make_order(fy_plan_event_count(plan), SIZE_MAX, SIZE_MAX, SIZE_MAX, &n);
    fy_plan *m = rebuild(plan, g, NULL, order, n, NULL, NULL);
    fy_check_report *rep;
    assert_int_equal(fy_check_plan(m, NULL, &rep, &err), 1);
    assert_int_equal(fy_check_report_count(rep), 1);
    assert_int_equal(fy_check_report_get(rep, 0)->cls, FY_CHECK_INCOMPLETE);
    assert_non_null(strstr(fy_check_report_get(rep, 0)->message, "op 'layers.1.q' (event"));
    assert_non_null(strstr(fy_check_report_get(rep, 0)->message, "runs after op 'layers.1.k'"));
    fy_check_report_destroy(rep);
    free(order);
    fy_plan_destroy(m);
    fy_plan_destroy(plan);
    fy_graph_destroy(swapped);
    fy_graph_destroy(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_each_fixture_reports_exactly_its_class),
        cmocka_unit_test(test_check_names_the_related_events),
        cmocka_unit_test(test_check_clean_plans_stay_clean),
        cmocka_unit_test(test_check_class_names_are_stable),
        cmocka_unit_test(test_check_hb_matches_brute_force_on_random_plans),
        cmocka_unit_test(test_check_replay_reports_every_change_and_the_peaks),
        cmocka_unit_test(test_check_reports_every_message_once),
        cmocka_unit_test(test_check_mutations_of_generated_plans_are_caught),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
