/* The simulator: peaks, times, busy shares and stalls on plans small enough to compute by
 * hand; the io link shared between concurrent reads; the Chrome trace (valid JSON with
 * every event) and the SVG plot (well-formed, one lane per queue used). */
#include "test_util.h"

#include "ferry/ferry.h"

#include "core/buf.h"
#include "core/json.h"

#include <math.h>

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

static void test_simulate_trace_is_json_with_every_event_and_svg_is_well_formed(void **state)
{
    (void)state;
    char *dir = fy_test_scratch("sim");
    fy_error err = {0};
    fy_graph *g = two_input_graph();
    fy_machine m = slow_machine();
    fy_plan *p = hand_plan(g, &m);
    fy_sim *sim;
    assert_int_equal(fy_simulate(p, NULL, NULL, &sim, &err), 0);
    char trace[4200], svg[4200];
    snprintf(trace, sizeof trace, "%s/t.json", dir);
    snprintf(svg, sizeof svg, "%s/p.svg", dir);
    assert_int_equal(fy_timeline_write_trace(fy_sim_timeline(sim), trace, &err), 0);
    assert_int_equal(fy_timeline_write_svg(fy_sim_timeline(sim), svg, &err), 0);

    char *text;
    size_t len;
    assert_int_equal(fy_file_read_all(trace, &text, &len, &err), 0);
    fy_jdoc *doc = NULL;
    if (fy_json_parse("t.json", text, len, NULL, &doc, &err) < 0)
        fail_msg("trace is not JSON: %s", err.message);
    fy_jdoc_destroy(doc);
    /* Every event appears: those with a duration as complete ("X") events naming their
     * tensor or op, evicts (no time) as instants ("i"); memory as counters ("C"). */
    size_t complete = 0, instants = 0;
    for (const char *s = text; (s = strstr(s, "\"ph\": \"X\"")); s++)
        complete++;
    for (const char *s = text; (s = strstr(s, "\"ph\": \"i\"")); s++)
        instants++;
    assert_int_equal(complete, 4); /* 2 loads, 1 compute, 1 offload */
    assert_int_equal(instants, 3); /* 3 evicts */
    assert_non_null(strstr(text, "\"tensor\": \"w\""));
    assert_non_null(strstr(text, "\"ph\": \"C\""));
    free(text);

    assert_int_equal(fy_file_read_all(svg, &text, &len, &err), 0);
    assert_non_null(strstr(text, "<svg"));
    assert_non_null(strstr(text, "</svg>"));
    /* Well formed at the level that matters to a viewer: tags balance. */
    long depth = 0;
    for (const char *s = text; *s; s++) {
        if (s[0] == '<' && s[1] == '/')
            depth--;
        else if (s[0] == '<' && s[1] != '?' && s[1] != '!')
            depth++;
        else if (s[0] == '/' && s[1] == '>')
            depth--;
        assert_true(depth >= 0);
    }
    assert_int_equal(depth, 0);
    assert_non_null(strstr(text, ">h2d<"));
    assert_non_null(strstr(text, ">d2h<"));
    free(text);
    fy_sim_destroy(sim);
    fy_plan_destroy(p);
    fy_graph_destroy(g);
    fy_test_scratch_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simulate_times_and_peaks_of_a_hand_plan),
        cmocka_unit_test(test_simulate_io_reads_share_the_nvme_link),
        cmocka_unit_test(test_simulate_trace_is_json_with_every_event_and_svg_is_well_formed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
