/* The simulator: times and peaks on plans small enough to work out by hand (rates in round
 * decimal units so every span is exact), the io link's processor sharing and depth, stall
 * causes, the refusals, and the files it writes: the trace parses as JSON and holds every
 * event, the SVG is well-formed XML, the JSON summary says what the summary says. */
#include "test_util.h"

#include "ferry/ferry.h"

#include "core/json.h"

#include <math.h>

static void near(double a, double b, int line)
{
    if (!(fabs(a - b) < 1e-9 * (1 + fabs(b)))) fail_msg("line %d: %.12g is not %.12g", line, a, b);
}
#define NEAR(a, b) near((a), (b), __LINE__)

static const char *const GRAPH2 =
    "ferry: graph/1\nname: two\ntensors:\n"
    "  w0: {size: 1GB, kind: weight, source: {file: w.bin, offset: 0}}\n"
    "  w1: {size: 1GB, kind: weight, source: {file: w.bin, offset: 1000000000}}\n"
    "  a:  {size: 1MB, kind: activation}\n"
    "  y:  {size: 1MB, kind: output}\n"
    "ops:\n"
    "  - {name: op0, kind: spin, reads: [w0], writes: [a], time: 1s}\n"
    "  - {name: op1, kind: spin, reads: [w1, a], writes: [y], flops: 2T}\n";

/* Two weights read together from nvme (sharing the link), each copied to the gpu on h2d,
 * two ops on the gpu (one timed, one by flops), the output offloaded. */
static const char *const PLAN2 =
    "ferry: plan/1\n"
    "machine: {gpu: {capacity: 8GB, compute: 2TFLOPS, h2d: 1GB/s, d2h: 1GB/s},"
    " nvme: {read: 2GB/s, write: 1GB/s}}\n"
    "arenas: {gpu: 3GB, host: 2001MB}\n"
    "events:\n"
    "  - {id: 0, do: load, tensor: w0, from: nvme, to: host, at: 0}\n"
    "  - {id: 1, do: load, tensor: w0, from: host, to: gpu, at: 0, after: [0]}\n"
    "  - {id: 2, do: load, tensor: w1, from: nvme, to: host, at: 1GB}\n"
    "  - {id: 3, do: compute, op: op0, at: {a: 2GB}, after: [1]}\n"
    "  - {id: 4, do: load, tensor: w1, from: host, to: gpu, at: 1GB, after: [2]}\n"
    "  - {id: 5, do: compute, op: op1, at: {y: 2001MB}, after: [3, 4]}\n"
    "  - {id: 6, do: offload, tensor: y, from: gpu, to: host, at: 2GB, after: [5]}\n"
    "  - {id: 7, do: evict, tensor: w0, from: gpu, after: [3]}\n"
    "  - {id: 8, do: evict, tensor: w1, from: gpu, after: [5]}\n"
    "  - {id: 9, do: evict, tensor: a, from: gpu, after: [5]}\n"
    "  - {id: 10, do: evict, tensor: y, from: gpu, after: [6]}\n"
    "  - {id: 11, do: evict, tensor: w0, from: host, after: [1]}\n"
    "  - {id: 12, do: evict, tensor: w1, from: host, after: [4]}\n";

typedef struct fixture {
    fy_graph *g;
    fy_plan *plan;
} fixture;

static void load(fixture *f, const char *graph, const char *plan)
{
    fy_error err = {0};
    if (fy_graph_load_string("g.yaml", graph, strlen(graph), &f->g, &err) < 0)
        fail_msg("%s", err.message);
    if (fy_plan_load_string("p.yaml", plan, strlen(plan), f->g, &f->plan, &err) < 0)
        fail_msg("%s:%u: %s", err.file, err.line, err.message);
}

static void unload(fixture *f)
{
    fy_plan_destroy(f->plan);
    fy_graph_destroy(f->g);
}

static fy_sim *simulate(const fixture *f, unsigned depth)
{
    fy_error err = {0};
    fy_sim *sim;
    fy_sim_options o = {.io_depth = depth};
    if (fy_simulate(f->plan, NULL, &o, &sim, &err) < 0) fail_msg("%s", err.message);
    return sim;
}

static void test_simulate_times_two_queues_by_hand(void **state)
{
    (void)state;
    fixture f;
    load(&f, GRAPH2, PLAN2);
    fy_sim *sim = simulate(&f, 0);
    const fy_span *s = fy_sim_timeline(sim)->spans;
    /* both reads share 2GB/s: 1GB/s each, both done at 1s */
    NEAR(s[0].start_s, 0), NEAR(s[0].end_s, 1.0);
    NEAR(s[2].start_s, 0), NEAR(s[2].end_s, 1.0);
    NEAR(s[1].start_s, 1.0), NEAR(s[1].end_s, 2.0); /* h2d at 1GB/s */
    NEAR(s[3].start_s, 2.0), NEAR(s[3].end_s, 3.0); /* op0: time 1s */
    NEAR(s[4].start_s, 2.0), NEAR(s[4].end_s, 3.0); /* h2d stream: after event 1 */
    NEAR(s[5].start_s, 3.0), NEAR(s[5].end_s, 4.0); /* op1: 2T / 2TFLOPS */
    NEAR(s[6].start_s, 4.0), NEAR(s[6].end_s, 4.001);
    NEAR(s[7].start_s, 3.0), NEAR(s[7].end_s, 3.0); /* an evict takes no time */
    const fy_sim_summary *sum = fy_sim_summary_get(sim);
    NEAR(sum->total_s, 4.001);
    NEAR(sum->queue[FY_SIM_QUEUE_IO].busy_s, 1.0);
    NEAR(sum->queue[FY_SIM_QUEUE_H2D].busy_s, 2.0);
    NEAR(sum->queue[FY_SIM_QUEUE_GPU].busy_s, 2.0);
    NEAR(sum->queue[FY_SIM_QUEUE_D2H].busy_s, 0.001);
    NEAR(sum->queue[FY_SIM_QUEUE_GPU].share, 2.0 / 4.001);
    assert_int_equal(sum->queue[FY_SIM_QUEUE_IO].events, 2);
    assert_int_equal(sum->queue[FY_SIM_QUEUE_IO].bytes, 2000000000ull);
    NEAR(sum->queue[FY_SIM_QUEUE_GPU].flops, 2e12);
    assert_int_equal(sum->event_count, 13);
    fy_sim_destroy(sim);
    unload(&f);
}

static void test_simulate_io_depth_one_serves_in_order(void **state)
{
    (void)state;
    fixture f;
    load(&f, GRAPH2, PLAN2);
    fy_sim *sim = simulate(&f, 1);
    const fy_span *s = fy_sim_timeline(sim)->spans;
    NEAR(s[0].end_s, 0.5);
    NEAR(s[2].start_s, 0.5), NEAR(s[2].end_s, 1.0);
    NEAR(s[1].start_s, 0.5), NEAR(s[1].end_s, 1.5);
    NEAR(fy_sim_summary_get(sim)->total_s, 3.501);
    fy_sim_destroy(sim);
    unload(&f);
}

static void test_simulate_peaks_by_hand(void **state)
{
    (void)state;
    fixture f;
    load(&f, GRAPH2, PLAN2);
    fy_sim *sim = simulate(&f, 0);
    const fy_sim_summary *sum = fy_sim_summary_get(sim);
    /* gpu: w0 [1,3), w1 [2,4), a [2,4), y [3,4.001): most in [2,3) */
    const fy_sim_tier *gpu = &sum->tier[FY_TIER_GPU];
    assert_int_equal(gpu->peak, 2001000000ull);
    NEAR(gpu->peak_s, 2.0);
    assert_int_equal(gpu->peak_copy_count, 3);
    assert_string_equal(fy_graph_tensor(f.g, (size_t)gpu->peak_copies[0].tensor)->name, "w0");
    assert_string_equal(fy_graph_tensor(f.g, (size_t)gpu->peak_copies[1].tensor)->name, "w1");
    assert_string_equal(fy_graph_tensor(f.g, (size_t)gpu->peak_copies[2].tensor)->name, "a");
    assert_int_equal(gpu->arena, 3000000000ull);  /* the plan's, what the engine allocates */
    assert_int_equal(gpu->extent, 2002000000ull); /* y at 2001MB + 1MB */
    assert_int_equal(gpu->capacity, 8000000000ull);
    /* host: both weights from the start (placed at their load's start); y from 4s */
    const fy_sim_tier *host = &sum->tier[FY_TIER_HOST];
    assert_int_equal(host->peak, 2000000000ull);
    NEAR(host->peak_s, 0);
    assert_int_equal(host->arena, 2001000000ull);
    assert_int_equal(sum->tier[FY_TIER_NVME].peak, 0); /* source files are home copies */
    fy_sim_destroy(sim);
    unload(&f);
}

static void test_simulate_stalls_name_the_load_waited_for(void **state)
{
    (void)state;
    fixture f;
    load(&f, GRAPH2, PLAN2);
    fy_sim *sim = simulate(&f, 0);
    const fy_sim_summary *sum = fy_sim_summary_get(sim);
    /* op0 waited from 0 to 2 for w0's h2d copy; op1 started as op0 ended */
    NEAR(sum->stall_s, 2.0);
    NEAR(sum->queue[FY_SIM_QUEUE_GPU].stall_s, 2.0);
    NEAR(sum->queue[FY_SIM_QUEUE_HOST].stall_s, 0);
    assert_int_equal(sum->stall_tensor_count, 1);
    assert_string_equal(sum->stall_by_tensor[0].what, "w0");
    NEAR(sum->stall_by_tensor[0].wait_s, 2.0);
    assert_int_equal(sum->stall_by_tensor[0].count, 1);
    assert_int_equal(sum->stall_kind_count, 1);
    assert_string_equal(sum->stall_by_kind[0].what, "load host->gpu weight");
    fy_sim_destroy(sim);
    unload(&f);
}

/* The nvme link shared by a read and a write: each at half its own rate while both run. */
static void test_simulate_io_shares_the_link_between_read_and_write(void **state)
{
    (void)state;
    static const char *const g =
        "ferry: graph/1\nname: rw\ntensors:\n"
        "  w: {size: 1GB, kind: weight, source: {file: w.bin, offset: 0}}\n"
        "  v: {size: 3GB, kind: weight, source: {file: w.bin, offset: 1000000000}}\n"
        "  x: {size: 1GB, kind: input}\n"
        "  y: {size: 1MB, kind: output}\n"
        "ops:\n  - {name: f, kind: spin, device: host, reads: [w, v, x], writes: [y], time: 1s}\n";
    static const char *const p =
        "ferry: plan/1\nmachine: {nvme: {read: 2GB/s, write: 1GB/s}}\n"
        "arenas: {host: 5GB, nvme: 1GB}\n"
        "events:\n"
        "  - {id: 0, do: load, tensor: w, from: nvme, to: host, at: 0}\n"
        "  - {id: 1, do: offload, tensor: x, from: host, to: nvme, at: 0}\n"
        "  - {id: 2, do: load, tensor: v, from: nvme, to: host, at: 1GB, after: [0]}\n"
        "  - {id: 3, do: compute, op: f, at: {y: 4GB}, after: [0, 2]}\n";
    fixture f;
    load(&f, g, p);
    fy_sim *sim = simulate(&f, 0);
    const fy_span *s = fy_sim_timeline(sim)->spans;
    /* w (0.5 s of link time) and x (1 s) together: w done at 1 s, x has 0.5 s left; v (1.5 s)
     * joins at 1 s; x done at 2 s; v then has 1 s left alone: done at 3 s */
    NEAR(s[0].end_s, 1.0);
    NEAR(s[1].end_s, 2.0);
    NEAR(s[2].start_s, 1.0), NEAR(s[2].end_s, 3.0);
    NEAR(s[3].start_s, 3.0), NEAR(s[3].end_s, 4.0);
    const fy_sim_summary *sum = fy_sim_summary_get(sim);
    NEAR(sum->queue[FY_SIM_QUEUE_IO].busy_s, 3.0);
    NEAR(sum->queue[FY_SIM_QUEUE_HOST].stall_s, 3.0);
    assert_string_equal(sum->stall_by_kind[0].what, "load nvme->host weight");
    assert_string_equal(sum->stall_by_tensor[0].what, "v");
    assert_int_equal(sum->tier[FY_TIER_NVME].peak, 1000000000ull); /* x's spill copy */
    assert_int_equal(sum->tier[FY_TIER_HOST].peak, 4001000000ull);
    fy_sim_destroy(sim);
    unload(&f);
}

/* The machine given overrides the plan's, and a rate of zero is refused. */
static void test_simulate_uses_the_given_machine(void **state)
{
    (void)state;
    fixture f;
    load(&f, GRAPH2, PLAN2);
    fy_machine m = *fy_plan_machine(f.plan);
    m.h2d = 2e9;
    fy_error err = {0};
    fy_sim *sim;
    assert_int_equal(fy_simulate(f.plan, &m, NULL, &sim, &err), 0);
    NEAR(fy_sim_timeline(sim)->spans[1].end_s, 1.5);
    NEAR(fy_sim_machine(sim)->h2d, 2e9);
    fy_sim_destroy(sim);
    m.h2d = 0;
    assert_int_equal(fy_simulate(f.plan, &m, NULL, &sim, &err), FY_EINVAL);
    assert_null(sim);
    assert_non_null(strstr(err.message, "event 1 (line 6)"));
    assert_non_null(strstr(err.message, "not positive"));
    unload(&f);
}

static void expect_refused(const char *events, const char *message)
{
    char plan[1024];
    snprintf(plan, sizeof plan, "ferry: plan/1\nevents:\n%s", events);
    fixture f;
    load(&f, GRAPH2, plan);
    fy_error err = {0};
    fy_sim *sim = (fy_sim *)&err;
    assert_int_equal(fy_simulate(f.plan, NULL, NULL, &sim, &err), FY_EINVAL);
    assert_null(sim);
    if (!strstr(err.message, message)) fail_msg("'%s' lacks '%s'", err.message, message);
    unload(&f);
}

static void test_simulate_refuses_what_it_cannot_cost(void **state)
{
    (void)state;
    expect_refused("  - {id: 0, do: load, tensor: zz, from: nvme, to: host, at: 0}\n",
                   "event 0 (line 3): load zz nvme->host names an unknown tensor");
    expect_refused("  - {id: 4, do: compute, op: nope, at: {}}\n",
                   "event 4 (line 3): compute nope names an unknown op");
    expect_refused("  - {id: 0, do: evict, tensor: w0, from: disk}\n", "names an unknown tier");
    expect_refused("  - {id: 0, do: load, tensor: w0, from: nvme, to: gpu, at: 0}\n",
                   "load w0 nvme->gpu: no such link");
}

static void test_simulate_empty_plan_takes_no_time(void **state)
{
    (void)state;
    fixture f;
    load(&f, GRAPH2, "ferry: plan/1\nevents: []\n");
    fy_sim *sim = simulate(&f, 0);
    const fy_sim_summary *s = fy_sim_summary_get(sim);
    assert_true(s->total_s == 0);
    assert_int_equal(s->tier[FY_TIER_GPU].peak, 0);
    assert_true(s->queue[FY_SIM_QUEUE_IO].share == 0);
    char *text = fy_sim_format_text(sim);
    assert_non_null(strstr(text, "compute stalls none"));
    free(text);
    fy_sim_destroy(sim);
    unload(&f);
}

static fy_jdoc *parse_json(const char *text, size_t len)
{
    fy_error err = {0};
    fy_jdoc *doc;
    if (fy_json_parse("out.json", text, len, NULL, &doc, &err) < 0)
        fail_msg("%s:%u:%u: %s", err.file, err.line, err.column, err.message);
    return doc;
}

static void test_simulate_trace_holds_every_event(void **state)
{
    (void)state;
    fixture f;
    load(&f, GRAPH2, PLAN2);
    fy_sim *sim = simulate(&f, 0);
    char *dir = fy_test_scratch("simtrace"), path[4200];
    snprintf(path, sizeof path, "%s/t.json", dir);
    fy_error err = {0};
    assert_int_equal(fy_timeline_write_trace(fy_sim_timeline(sim), path, &err), 0);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(fy_file_read_all_for_test(path, &text, &len), 0);
    fy_jdoc *doc = parse_json(text, len);
    const fy_jnode *evs = fy_jobj_get(fy_jdoc_root(doc), "traceEvents");
    assert_non_null(evs);
    bool seen[13] = {false};
    size_t complete = 0, instants = 0, counters = 0, io_tracks = 0;
    for (size_t k = 0; k < evs->count; k++) {
        const fy_jnode *e = fy_jarr_item(evs, k), *ph = fy_jobj_get(e, "ph");
        const fy_jnode *args = fy_jobj_get(e, "args");
        if (fy_jnode_is(ph, "C")) {
            counters++;
            continue;
        }
        if (fy_jnode_is(ph, "M")) {
            const fy_jnode *name = fy_jobj_get(args, "name");
            if (name && name->kind == FY_JSTRING && !strncmp(name->u.text, "io", 2)) io_tracks++;
            continue;
        }
        uint64_t id;
        assert_int_equal(fy_jnum_u64(fy_jobj_get(args, "id"), &id), 0);
        assert_true(id < 13);
        assert_false(seen[id]);
        seen[id] = true;
        complete += fy_jnode_is(ph, "X");
        instants += fy_jnode_is(ph, "i");
        if (id == 1) {
            uint64_t bytes;
            double ts, dur;
            assert_int_equal(fy_jnum_u64(fy_jobj_get(args, "bytes"), &bytes), 0);
            assert_int_equal(bytes, 1000000000ull);
            assert_int_equal(fy_jnum_f64(fy_jobj_get(e, "ts"), &ts), 0);
            assert_int_equal(fy_jnum_f64(fy_jobj_get(e, "dur"), &dur), 0);
            NEAR(ts, 1e6), NEAR(dur, 1e6);
            assert_true(fy_jnode_is(fy_jobj_get(e, "name"), "load w0 host->gpu"));
        }
    }
    for (int i = 0; i < 13; i++)
        assert_true(seen[i]);
    assert_int_equal(complete, 7);
    assert_int_equal(instants, 6);
    assert_true(counters >= 3 + 8);
    assert_int_equal(io_tracks, 2); /* two reads at once: two io tracks */
    fy_jdoc_destroy(doc);
    free(text);
    assert_int_equal(fy_timeline_write_trace(fy_sim_timeline(sim), "/nonexistent/dir/t.json", &err),
                     FY_ENOENT);
    fy_sim_destroy(sim);
    fy_test_scratch_remove(dir);
    unload(&f);
}

/* Minimal well-formedness: every tag closes in order, attributes are quoted, text holds no
 * raw '<' or '&' that is not an entity. */
static void assert_xml_well_formed(const char *s)
{
    const char *stack[64];
    size_t sl[64], depth = 0;
    assert_true(!strncmp(s, "<?xml", 5));
    s = strstr(s, "?>") + 2;
    bool root_seen = false;
    while (*s) {
        if (*s == '&') {
            assert_true(!strncmp(s, "&lt;", 4) || !strncmp(s, "&gt;", 4) ||
                        !strncmp(s, "&amp;", 5));
            s++;
            continue;
        }
        if (*s != '<') {
            s++;
            continue;
        }
        bool closing = s[1] == '/';
        const char *name = s + 1 + closing;
        size_t nl = strcspn(name, " />\n");
        assert_true(nl > 0);
        const char *p = name + nl;
        char quote = 0;
        for (; *p && (quote || *p != '>'); p++) {
            if (quote && *p == quote)
                quote = 0;
            else if (!quote && (*p == '"' || *p == '\''))
                quote = *p;
            else if (!quote)
                assert_true(*p != '<');
        }
        assert_int_equal(*p, '>');
        bool self = p[-1] == '/';
        if (closing) {
            assert_true(depth > 0);
            depth--;
            assert_true(sl[depth] == nl && !strncmp(stack[depth], name, nl));
        } else if (!self) {
            assert_true(depth < 64);
            assert_true(depth > 0 || !root_seen);
            root_seen = true;
            stack[depth] = name;
            sl[depth++] = nl;
        }
        s = p + 1;
    }
    assert_int_equal(depth, 0);
    assert_true(root_seen);
}

static void test_simulate_svg_is_well_formed(void **state)
{
    (void)state;
    fixture f;
    load(&f, GRAPH2, PLAN2);
    fy_sim *sim = simulate(&f, 0);
    char *dir = fy_test_scratch("simsvg"), path[4200];
    snprintf(path, sizeof path, "%s/p.svg", dir);
    fy_error err = {0};
    assert_int_equal(fy_timeline_write_svg(fy_sim_timeline(sim), path, &err), 0);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(fy_file_read_all_for_test(path, &text, &len), 0);
    assert_xml_well_formed(text);
    assert_non_null(strstr(text, "gpu memory"));
    assert_non_null(strstr(text, "host memory"));
    assert_non_null(strstr(text, "capacity"));
    assert_null(strstr(text, "nvme memory")); /* nothing ever on nvme: no panel */
    if (system("command -v xmllint >/dev/null 2>&1") == 0) {
        char cmd[4300];
        snprintf(cmd, sizeof cmd, "xmllint --noout '%s'", path);
        assert_int_equal(system(cmd), 0);
    }
    free(text);
    assert_int_equal(fy_timeline_write_svg(fy_sim_timeline(sim), "/nonexistent/dir/p.svg", &err),
                     FY_ENOENT);
    fy_sim_destroy(sim);
    fy_test_scratch_remove(dir);
    unload(&f);
}

static void test_simulate_json_summary_matches(void **state)
{
    (void)state;
    fixture f;
    load(&f, GRAPH2, PLAN2);
    fy_sim *sim = simulate(&f, 0);
    char *text = fy_sim_format_json(sim);
    fy_jdoc *doc = parse_json(text, strlen(text));
    const fy_jnode *root = fy_jdoc_root(doc);
    double total;
    uint64_t peak, arena;
    assert_int_equal(fy_jnum_f64(fy_jobj_get(root, "total_s"), &total), 0);
    NEAR(total, 4.001);
    const fy_jnode *gpu = fy_jobj_get(fy_jobj_get(root, "tiers"), "gpu");
    assert_int_equal(fy_jnum_u64(fy_jobj_get(gpu, "peak"), &peak), 0);
    assert_int_equal(fy_jnum_u64(fy_jobj_get(gpu, "arena"), &arena), 0);
    assert_int_equal(peak, 2001000000ull);
    assert_int_equal(arena, 3000000000ull);
    assert_int_equal(fy_jobj_get(gpu, "peak_tensors")->count, 3);
    const fy_jnode *stalls = fy_jobj_get(root, "stalls");
    assert_true(
        fy_jnode_is(fy_jobj_get(fy_jarr_item(fy_jobj_get(stalls, "by_tensor"), 0), "what"), "w0"));
    fy_jdoc_destroy(doc);
    free(text);
    text = fy_sim_format_text(sim);
    assert_non_null(strstr(text, "predicted time 4s"));
    assert_non_null(strstr(text, "by kind: load host->gpu weight 2s (1)"));
    free(text);
    fy_sim_measured m = {.wall_s = 4.4, .peak = {2001000000ull}, .arena = {3000000000ull}};
    text = fy_sim_format_compare(sim, &m);
    assert_non_null(strstr(text, "+10.0%"));
    assert_non_null(strstr(text, "gpu arena"));
    free(text);
    fy_sim_destroy(sim);
    unload(&f);
}

/* ---- plans built with the builder (and clean for the checker) ---- */

/* A machine whose rates make times whole seconds: h2d, d2h 1000 B/s, gpu 1000 FLOPS,
 * nvme read 1000 B/s. */
static fy_machine slow_machine(void)
{
    fy_machine m;
    fy_machine_default(&m);
    m.h2d = m.d2h = 1000;
    m.gpu_compute = 1000;
    m.host_compute = 1000;
    m.nvme_read = m.nvme_write = 1000;
    m.capacity[FY_TIER_GPU] = 1 << 20;
    return m;
}

static fy_graph *two_input_graph(void)
{
    static const char text[] =
        "ferry: graph/1\n"
        "name: hand\n"
        "tensors:\n"
        "  w: {kind: weight, size: 1000}\n"
        "  x: {kind: input, size: 1000}\n"
        "  y: {kind: output, size: 1000}\n"
        "ops:\n"
        "  - {name: f, kind: matmul, reads: [x, w], writes: [y], flops: 2000}\n";
    fy_error err = {0};
    fy_graph *g;
    if (fy_graph_load_string("hand.yaml", text, sizeof text - 1, &g, &err) < 0)
        fail_msg("graph: %s", err.message);
    return g;
}

static long add(fy_plan *p, fy_event ev)
{
    fy_error err = {0};
    long i = fy_plan_add(p, &ev, &err);
    if (i < 0) fail_msg("plan_add: %s", err.message);
    return i;
}

static fy_event transfer(fy_event_kind kind, int32_t tensor, fy_tier from, fy_tier to, uint64_t at,
                         const uint32_t *after, uint32_t n)
{
    return (fy_event){.kind = kind,
                      .tensor = tensor,
                      .op = -1,
                      .from = from,
                      .to = to,
                      .at = at,
                      .after = after,
                      .after_count = n};
}

/* load w, load x (h2d: 1 s each, in order), compute f (2 s), offload y (d2h, 1 s), evicts. */
static fy_plan *hand_plan(const fy_graph *g, const fy_machine *m)
{
    fy_error err = {0};
    fy_plan *p;
    assert_int_equal(fy_plan_create(g, m, &p, &err), 0);
    int32_t w = (int32_t)fy_graph_find_tensor(g, "w"), x = (int32_t)fy_graph_find_tensor(g, "x"),
            y = (int32_t)fy_graph_find_tensor(g, "y");
    long e0 = add(p, transfer(FY_EVENT_LOAD, w, FY_TIER_HOST, FY_TIER_GPU, 0, NULL, 0));
    long e1 = add(p, transfer(FY_EVENT_LOAD, x, FY_TIER_HOST, FY_TIER_GPU, 1000, NULL, 0));
    uint32_t c_after[] = {(uint32_t)e0, (uint32_t)e1};
    fy_placement place = {.tensor = y, .name = "y", .offset = 2000};
    long c = add(p, (fy_event){.kind = FY_EVENT_COMPUTE,
                               .tensor = -1,
                               .op = 0,
                               .places = &place,
                               .place_count = 1,
                               .after = c_after,
                               .after_count = 2});
    uint32_t after_c[] = {(uint32_t)c};
    long off = add(p, transfer(FY_EVENT_OFFLOAD, y, FY_TIER_GPU, FY_TIER_HOST, 0, after_c, 1));
    add(p, transfer(FY_EVENT_EVICT, w, FY_TIER_GPU, FY_TIER_NONE, 0, after_c, 1));
    add(p, transfer(FY_EVENT_EVICT, x, FY_TIER_GPU, FY_TIER_NONE, 0, after_c, 1));
    uint32_t after_off[] = {(uint32_t)off};
    add(p, transfer(FY_EVENT_EVICT, y, FY_TIER_GPU, FY_TIER_NONE, 0, after_off, 1));
    fy_plan_set_arena(p, FY_TIER_GPU, 3000);
    fy_plan_set_arena(p, FY_TIER_HOST, 1000);
    return p;
}

static void test_simulate_times_and_peaks_of_a_hand_plan(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_graph *g = two_input_graph();
    fy_machine m = slow_machine();
    fy_plan *p = hand_plan(g, &m);
    fy_check_report *rep;
    assert_int_equal(fy_check_plan(p, NULL, &rep, &err), 0); /* the plan itself is clean */
    fy_check_report_destroy(rep);

    fy_sim *sim;
    assert_int_equal(fy_simulate(p, NULL, NULL, &sim, &err), 0);
    const fy_sim_summary *s = fy_sim_summary_get(sim);
    /* h2d [0,1] w, [1,2] x; gpu [2,4]; d2h [4,5]. */
    assert_true(fabs(s->total_s - 5.0) < 1e-9);
    assert_true(fabs(s->queue[FY_SIM_QUEUE_H2D].busy_s - 2.0) < 1e-9);
    assert_true(fabs(s->queue[FY_SIM_QUEUE_GPU].busy_s - 2.0) < 1e-9);
    assert_true(fabs(s->queue[FY_SIM_QUEUE_D2H].busy_s - 1.0) < 1e-9);
    assert_true(fabs(s->queue[FY_SIM_QUEUE_GPU].share - 0.4) < 1e-9);
    assert_int_equal(s->queue[FY_SIM_QUEUE_H2D].bytes, 2000);
    /* The compute waited 2 s for its loads, the last of them x's. */
    assert_true(fabs(s->stall_s - 2.0) < 1e-9);
    assert_true(s->stall_tensor_count >= 1);
    /* gpu: w, x and y live together from the compute's start (2 s) to its end. */
    assert_int_equal(s->tier[FY_TIER_GPU].peak, 3000);
    assert_true(fabs(s->tier[FY_TIER_GPU].peak_s - 2.0) < 1e-9);
    assert_int_equal(s->tier[FY_TIER_GPU].peak_copy_count, 3);
    assert_int_equal(s->tier[FY_TIER_GPU].arena, 3000);
    /* host: only y's offloaded copy counts (inputs rest in the caller's memory). */
    assert_int_equal(s->tier[FY_TIER_HOST].peak, 1000);
    assert_true(fabs(s->tier[FY_TIER_HOST].peak_s - 4.0) < 1e-9);

    /* The same plan on a machine twice as fast everywhere takes half the time. */
    fy_machine fast = m;
    fast.h2d = fast.d2h = 2000;
    fast.gpu_compute = 2000;
    fy_sim *sim2;
    assert_int_equal(fy_simulate(p, &fast, NULL, &sim2, &err), 0);
    assert_true(fabs(fy_sim_summary_get(sim2)->total_s - 2.5) < 1e-9);
    fy_sim_destroy(sim2);
    fy_sim_destroy(sim);
    fy_plan_destroy(p);
    fy_graph_destroy(g);
}

/* Two nvme reads issued together share the link: each of 1000 bytes at 1000 B/s alone would
 * take 1 s; together both end at 2 s. With io_depth 1 they run one after the other. */
static void test_simulate_io_reads_share_the_nvme_link(void **state)
{
    (void)state;
    static const char text[] =
        "ferry: graph/1\n"
        "name: io\n"
        "tensors:\n"
        "  a: {kind: weight, size: 1000, source: {file: w.bin, offset: 0}}\n"
        "  b: {kind: weight, size: 1000, source: {file: w.bin, offset: 4096}}\n"
        "  y: {kind: output, size: 8}\n"
        "ops:\n"
        "  - {name: f, kind: add, device: host, reads: [a, b], writes: [y],"
        " time: 1s}\n";
    fy_error err = {0};
    fy_graph *g;
    assert_int_equal(fy_graph_load_string("io.yaml", text, sizeof text - 1, &g, &err), 0);
    fy_machine m = slow_machine();
    fy_plan *p;
    assert_int_equal(fy_plan_create(g, &m, &p, &err), 0);
    long ea = add(p, transfer(FY_EVENT_LOAD, 0, FY_TIER_NVME, FY_TIER_HOST, 0, NULL, 0));
    long eb = add(p, transfer(FY_EVENT_LOAD, 1, FY_TIER_NVME, FY_TIER_HOST, 4096, NULL, 0));
    uint32_t after[] = {(uint32_t)ea, (uint32_t)eb};
    fy_placement place = {.tensor = 2, .name = "y", .offset = 8192};
    long c = add(p, (fy_event){.kind = FY_EVENT_COMPUTE,
                               .tensor = -1,
                               .op = 0,
                               .places = &place,
                               .place_count = 1,
                               .after = after,
                               .after_count = 2});
    uint32_t after_c[] = {(uint32_t)c};
    add(p, transfer(FY_EVENT_EVICT, 0, FY_TIER_HOST, FY_TIER_NONE, 0, after_c, 1));
    add(p, transfer(FY_EVENT_EVICT, 1, FY_TIER_HOST, FY_TIER_NONE, 0, after_c, 1));
    fy_plan_set_arena(p, FY_TIER_HOST, 8200);
    fy_check_report *rep;
    assert_int_equal(fy_check_plan(p, NULL, &rep, &err), 0);
    fy_check_report_destroy(rep);

    fy_sim *sim;
    assert_int_equal(fy_simulate(p, NULL, NULL, &sim, &err), 0);
    const fy_sim_summary *s = fy_sim_summary_get(sim);
    assert_true(fabs(s->total_s - 3.0) < 1e-9); /* both reads end at 2 s, then 1 s of op */
    assert_true(fabs(s->queue[FY_SIM_QUEUE_IO].busy_s - 2.0) < 1e-9);
    assert_int_equal(s->tier[FY_TIER_HOST].peak, 2008);
    fy_sim_destroy(sim);
    fy_sim_options one = {.io_depth = 1};
    assert_int_equal(fy_simulate(p, NULL, &one, &sim, &err), 0);
    assert_true(fabs(fy_sim_summary_get(sim)->total_s - 3.0) < 1e-9);
    /* One at a time: the first ends at 1 s, so the host peak is reached later but the same. */
    assert_int_equal(fy_sim_summary_get(sim)->tier[FY_TIER_HOST].peak, 2008);
    fy_sim_destroy(sim);
    fy_plan_destroy(p);
    fy_graph_destroy(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simulate_times_two_queues_by_hand),
        cmocka_unit_test(test_simulate_io_depth_one_serves_in_order),
        cmocka_unit_test(test_simulate_peaks_by_hand),
        cmocka_unit_test(test_simulate_stalls_name_the_load_waited_for),
        cmocka_unit_test(test_simulate_io_shares_the_link_between_read_and_write),
        cmocka_unit_test(test_simulate_uses_the_given_machine),
        cmocka_unit_test(test_simulate_refuses_what_it_cannot_cost),
        cmocka_unit_test(test_simulate_empty_plan_takes_no_time),
        cmocka_unit_test(test_simulate_trace_holds_every_event),
        cmocka_unit_test(test_simulate_svg_is_well_formed),
        cmocka_unit_test(test_simulate_json_summary_matches),
        cmocka_unit_test(test_simulate_times_and_peaks_of_a_hand_plan),
        cmocka_unit_test(test_simulate_io_reads_share_the_nvme_link),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
