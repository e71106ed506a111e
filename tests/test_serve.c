/* Serving: several models on one workspace. Interleaved requests give, bitwise, each model's
 * output run alone; the workspace's arenas stay at its budget however many models are
 * attached; two workspaces reading one model hold one host copy of its weights; detach waits
 * for requests in flight (or defers when called from one), and use after detach is an error
 * naming the model. All on the sim device. */
#include "test_util.h"

#include "serve_models.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>

static sv_models models;
static char *scratch;

static int setup(void **state)
{
    (void)state;
    scratch = fy_test_scratch("serve");
    return sv_models_make(&models, 8, scratch, 11);
}

static int teardown(void **state)
{
    (void)state;
    sv_models_free(&models);
    fy_test_scratch_remove(scratch);
    return 0;
}

/* A small workspace: room for about two of the largest op's working sets on the gpu. */
static fy_workspace *small_workspace(fy_weight_cache *cache)
{
    fy_error err = {0};
    fy_workspace *ws;
    fy_workspace_config cfg = {.engine = {.device = "sim", .threads = 1, .nvme_dir = scratch},
                               .gpu_bytes = models.max_working_set * 2 + 4096,
                               .host_bytes = 1 << 20,
                               .weights = cache};
    if (fy_workspace_create(&cfg, &ws, &err) < 0) fail_msg("workspace: %s", err.message);
    return ws;
}

static fy_model *attach(fy_workspace *ws, size_t i)
{
    fy_error err = {0};
    fy_model *m;
    fy_model_config mc = {.name = models.m[i].name, .graph = models.m[i].g};
    if (fy_workspace_attach(ws, &mc, &m, &err) < 0) fail_msg("attach m%zu: %s", i, err.message);
    return m;
}

static void request_ok(fy_workspace *ws, fy_model *model, size_t i)
{
    fy_error err = {0};
    fy_engine_buffer b[2];
    void *y = calloc(1, models.m[i].y_size);
    fy_engine_run_args a = sv_args(&models.m[i], y, b);
    fy_engine_report rep;
    if (fy_workspace_run(ws, model, &a, &rep, &err) < 0)
        fail_msg("request for m%zu: %s", i, err.message);
    fy_workspace_stats st;
    fy_workspace_stats_get(ws, &st);
    assert_true(rep.arena[FY_TIER_GPU] <= st.arena[FY_TIER_GPU]);
    assert_true(rep.arena[FY_TIER_HOST] <= st.arena[FY_TIER_HOST]);
    fy_engine_report_free(&rep);
    if (memcmp(y, models.m[i].ref, models.m[i].y_size) != 0)
        fail_msg("m%zu: the served output differs from the model run alone", i);
    free(y);
}

/* Verifying weights is a property of one request: a verified request leaves nothing in the
 * model's shared lowered plan that makes the next, unverified request verify (or read a
 * checksum table it does not have). */
static void test_serve_weight_verification_is_per_request(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_workspace *ws = small_workspace(NULL);
    fy_model *m = attach(ws, 0);
    for (int round = 0; round < 3; round++) {
        bool verify = round == 1;
        fy_engine_buffer b[2];
        void *y = calloc(1, models.m[0].y_size);
        fy_engine_run_args a = sv_args(&models.m[0], y, b);
        a.verify_weights = verify;
        fy_engine_report rep;
        if (fy_workspace_run(ws, m, &a, &rep, &err) < 0)
            fail_msg("round %d: %s", round, err.message);
        if (verify)
            assert_true(rep.verified_count > 0);
        else
            assert_int_equal(rep.verified_count, 0);
        assert_memory_equal(y, models.m[0].ref, models.m[0].y_size);
        fy_engine_report_free(&rep);
        free(y);
    }
    fy_workspace_destroy(ws);
}

static void interleaved(fy_weight_cache *cache)
{
    fy_workspace *ws = small_workspace(cache);
    fy_model *m[8];
    m[0] = attach(ws, 0);
    fy_workspace_stats one, all;
    fy_workspace_stats_get(ws, &one);
    request_ok(ws, m[0], 0);
    for (size_t i = 1; i < 8; i++)
        m[i] = attach(ws, i);
    fy_workspace_stats_get(ws, &all);
    assert_int_equal(all.models, 8);
    for (int t = 0; t < FY_TIER_COUNT; t++)
        assert_int_equal(one.arena[t], all.arena[t]);
    assert_int_equal(all.arena[FY_TIER_GPU], models.max_working_set * 2 + 4096);
    /* A request order that switches model on every request and comes back to each. */
    for (size_t r = 0; r < 24; r++) {
        size_t i = (r * 5 + r / 8) % 8;
        request_ok(ws, m[i], i);
    }
    fy_workspace_stats_get(ws, &all);
    assert_int_equal(all.requests, 25);
    for (int t = 0; t < FY_TIER_COUNT; t++)
        assert_int_equal(one.arena[t], all.arena[t]);
    fy_workspace_destroy(ws);
}

static void test_serve_interleaved_requests_equal_isolated_runs_in_a_fixed_workspace(void **state)
{
    (void)state;
    interleaved(NULL); /* weights read from their files by every request */
    fy_error err = {0};
    fy_weight_cache *cache;
    assert_int_equal(fy_weight_cache_create(&cache, &err), 0);
    interleaved(cache); /* weights from the host cache */
    fy_weight_cache_stats cs;
    fy_weight_cache_stats_get(cache, &cs);
    assert_int_equal(cs.entries, 0); /* the workspace's models were detached: all freed */
    assert_true(cs.reads > 0);
    fy_weight_cache_destroy(cache);
}

static void test_serve_two_workspaces_hold_one_host_copy(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_weight_cache *cache;
    assert_int_equal(fy_weight_cache_create(&cache, &err), 0);
    fy_workspace *w1 = small_workspace(cache), *w2 = small_workspace(cache);
    fy_weight_cache_destroy(cache); /* the workspaces keep it alive */
    const fy_graph *g = models.m[3].g;
    uint64_t bytes = 0;
    size_t weights = 0;
    for (size_t t = 0; t < fy_graph_tensor_count(g); t++)
        if (fy_graph_tensor(g, t)->kind == FY_TENSOR_WEIGHT) {
            bytes += fy_graph_tensor(g, t)->size;
            weights++;
        }
    fy_model *a = attach(w1, 3), *b = attach(w2, 3);
    fy_weight_cache_stats cs;
    fy_weight_cache_stats_get(cache, &cs);
    assert_int_equal(cs.entries, weights);
    assert_int_equal(cs.bytes, bytes);
    assert_int_equal(cs.reads, weights);
    assert_int_equal(cs.hits, weights);
    request_ok(w1, a, 3);
    request_ok(w2, b, 3);
    assert_int_equal(fy_workspace_detach(w1, a, &err), 0);
    fy_weight_cache_stats_get(cache, &cs);
    assert_int_equal(cs.bytes, bytes); /* w2 still reads them */
    request_ok(w2, b, 3);
    assert_int_equal(fy_workspace_detach(w2, b, &err), 0);
    fy_weight_cache_stats_get(cache, &cs);
    assert_int_equal(cs.entries, 0);
    assert_int_equal(cs.bytes, 0);
    fy_workspace_destroy(w1);
    fy_workspace_destroy(w2);
}

/* ---- lifetime ---------------------------------------------------------------------------- */

typedef struct blocker {
    fy_workspace *ws;
    fy_model *model;
    size_t index;
    atomic_int started, release, detach_done;
    int run_rc, detach_rc;
    bool detach_in_callback;
} blocker;

static void block_on_event(void *user, const fy_plan *plan, size_t index)
{
    (void)plan;
    blocker *b = user;
    if (index != 0) return;
    if (b->detach_in_callback) {
        b->detach_rc = fy_workspace_detach(b->ws, b->model, NULL);
        return;
    }
    atomic_store(&b->started, 1);
    while (!atomic_load(&b->release))
        usleep(1000);
}

static void *request_thread(void *arg)
{
    blocker *b = arg;
    fy_engine_buffer bufs[2];
    void *y = calloc(1, models.m[b->index].y_size);
    fy_engine_run_args a = sv_args(&models.m[b->index], y, bufs);
    a.on_event = block_on_event;
    a.user = b;
    fy_error err = {0};
    b->run_rc = fy_workspace_run(b->ws, b->model, &a, NULL, &err);
    if (b->run_rc == 0 && memcmp(y, models.m[b->index].ref, models.m[b->index].y_size))
        b->run_rc = -1000;
    free(y);
    return NULL;
}

static void *detach_thread(void *arg)
{
    blocker *b = arg;
    b->detach_rc = fy_workspace_detach(b->ws, b->model, NULL);
    atomic_store(&b->detach_done, 1);
    return NULL;
}

static void test_serve_detach_waits_for_the_request_in_flight(void **state)
{
    (void)state;
    fy_workspace *ws = small_workspace(NULL);
    blocker b = {.ws = ws, .index = 2};
    b.model = attach(ws, 2);
    fy_model *other = attach(ws, 5);
    pthread_t rt, dt;
    pthread_create(&rt, NULL, request_thread, &b);
    while (!atomic_load(&b.started))
        usleep(1000);
    pthread_create(&dt, NULL, detach_thread, &b);
    usleep(100 * 1000);
    /* The request is still running: detach has not returned, the plan is still there. */
    assert_int_equal(atomic_load(&b.detach_done), 0);
    assert_non_null(fy_model_plan(b.model));
    /* New requests are refused at once, while the model's copies wait for the one in flight. */
    fy_error err = {0};
    fy_engine_buffer bufs[2];
    char y[4096];
    fy_engine_run_args a = sv_args(&models.m[2], y, bufs);
    assert_int_equal(fy_workspace_run(ws, b.model, &a, NULL, &err), FY_ESTATE);
    assert_non_null(strstr(err.message, "model 'm2' is detached"));
    assert_null(fy_workspace_find(ws, "m2"));
    atomic_store(&b.release, 1);
    pthread_join(rt, NULL);
    pthread_join(dt, NULL);
    assert_int_equal(b.run_rc, 0); /* the request in flight finished, with the right output */
    assert_int_equal(b.detach_rc, 0);
    assert_null(fy_model_plan(b.model)); /* freed */
    request_ok(ws, other, 5);
    fy_workspace_destroy(ws);
}

static void test_serve_detach_from_a_callback_defers(void **state)
{
    (void)state;
    fy_workspace *ws = small_workspace(NULL);
    blocker b = {.ws = ws, .index = 1, .detach_in_callback = true};
    b.model = attach(ws, 1);
    request_thread(&b);
    assert_int_equal(b.detach_rc, 1);
    assert_int_equal(b.run_rc, 0);
    assert_null(fy_model_plan(b.model)); /* freed when that request returned */
    fy_workspace_stats st;
    fy_workspace_stats_get(ws, &st);
    assert_int_equal(st.models, 0);
    assert_int_equal(st.detached, 1);
    fy_workspace_destroy(ws);
}

static void test_serve_use_after_detach_is_an_error_naming_the_model(void **state)
{
    (void)state;
    fy_workspace *ws = small_workspace(NULL);
    fy_model *m = attach(ws, 4);
    fy_error err = {0};
    assert_int_equal(fy_workspace_detach(ws, m, &err), 0);
    assert_int_equal(fy_workspace_detach(ws, m, &err), FY_ESTATE);
    assert_non_null(strstr(err.message, "model 'm4' is already detached"));
    fy_engine_buffer bufs[2];
    char y[4096];
    fy_engine_run_args a = sv_args(&models.m[4], y, bufs);
    memset(&err, 0, sizeof err);
    assert_int_equal(fy_workspace_run(ws, m, &a, NULL, &err), FY_ESTATE);
    assert_non_null(strstr(err.message, "model 'm4' is detached"));
    /* The name is free again. */
    fy_model *again = attach(ws, 4);
    assert_ptr_equal(fy_workspace_find(ws, "m4"), again);
    request_ok(ws, again, 4);
    fy_workspace_destroy(ws);
}

typedef struct worker_arg {
    fy_workspace *ws;
    fy_model **m;
    unsigned seed;
    int bad;
} worker_arg;

static void *serve_worker(void *arg)
{
    worker_arg *w = arg;
    for (unsigned r = 0; r < 12; r++) {
        size_t i = (w->seed * 3 + r * 5) % 8;
        fy_engine_buffer bufs[2];
        void *y = calloc(1, models.m[i].y_size);
        fy_engine_run_args a = sv_args(&models.m[i], y, bufs);
        if (fy_workspace_run(w->ws, w->m[i], &a, NULL, NULL) < 0 ||
            memcmp(y, models.m[i].ref, models.m[i].y_size))
            w->bad++;
        free(y);
    }
    return NULL;
}

static void test_serve_requests_from_several_threads(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_weight_cache *cache;
    assert_int_equal(fy_weight_cache_create(&cache, &err), 0);
    fy_workspace *ws = small_workspace(cache);
    fy_model *m[8];
    for (size_t i = 0; i < 8; i++)
        m[i] = attach(ws, i);
    pthread_t t[4];
    worker_arg w[4];
    for (unsigned k = 0; k < 4; k++) {
        w[k] = (worker_arg){.ws = ws, .m = m, .seed = k};
        pthread_create(&t[k], NULL, serve_worker, &w[k]);
    }
    for (unsigned k = 0; k < 4; k++) {
        pthread_join(t[k], NULL);
        assert_int_equal(w[k].bad, 0);
    }
    fy_workspace_stats st;
    fy_workspace_stats_get(ws, &st);
    assert_int_equal(st.requests, 48);
    fy_workspace_destroy(ws); /* detaches all */
    fy_weight_cache_destroy(cache);
}

/* ---- errors -------------------------------------------------------------------------------- */

static void test_serve_refuses_bad_models_and_budgets(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_workspace *ws;
    assert_int_equal(
        fy_workspace_create(&(fy_workspace_config){.engine = {.device = "sim"}}, &ws, &err),
        FY_EINVAL);
    assert_int_equal(fy_workspace_create(NULL, &ws, &err), FY_EINVAL);
    assert_int_equal(
        fy_workspace_create(&(fy_workspace_config){.engine = {.device = "tpu"}, .gpu_bytes = 4096},
                            &ws, &err),
        FY_EINVAL);
    ws = small_workspace(NULL);
    fy_model *m;
    assert_int_equal(fy_workspace_attach(ws, &(fy_model_config){.graph = models.m[0].g}, &m, &err),
                     FY_EINVAL);
    assert_int_equal(fy_workspace_attach(ws, &(fy_model_config){.name = "a"}, &m, &err), FY_EINVAL);
    assert_int_equal(fy_workspace_attach(ws, NULL, &m, &err), FY_EINVAL);
    fy_model *m0 = attach(ws, 0);
    memset(&err, 0, sizeof err);
    assert_int_equal(
        fy_workspace_attach(ws, &(fy_model_config){.name = "m0", .graph = models.m[1].g}, &m, &err),
        FY_EINVAL);
    assert_non_null(strstr(err.message, "'m0' is already attached"));
    /* A workspace too small for the graph. */
    fy_workspace *tiny;
    fy_workspace_config tc = {.engine = {.device = "sim"}, .gpu_bytes = 4096, .host_bytes = 4096};
    assert_int_equal(fy_workspace_create(&tc, &tiny, &err), 0);
    memset(&err, 0, sizeof err);
    assert_int_equal(fy_workspace_attach(
                         tiny, &(fy_model_config){.name = "big", .graph = models.m[0].g}, &m, &err),
                     FY_EINFEASIBLE);
    assert_non_null(strstr(err.message, "model 'big'"));
    /* A caller's plan whose arenas exceed the budget; one of another graph; a good one. */
    fy_machine mach;
    fy_machine_default(&mach);
    fy_plan *plan;
    assert_int_equal(fy_plan_make(models.m[0].g, &mach, NULL, &plan, NULL, &err), 0);
    memset(&err, 0, sizeof err);
    assert_int_equal(
        fy_workspace_attach(tiny, &(fy_model_config){.name = "p", .plan = plan}, &m, &err),
        FY_EINFEASIBLE);
    assert_non_null(strstr(err.message, "exceeds the workspace's gpu budget"));
    assert_int_equal(
        fy_workspace_attach(
            ws, &(fy_model_config){.name = "p", .plan = plan, .graph = models.m[1].g}, &m, &err),
        FY_EINVAL);
    fy_machine small = mach;
    small.capacity[FY_TIER_GPU] = models.max_working_set * 2;
    small.capacity[FY_TIER_HOST] = 1 << 20;
    fy_plan *fits;
    assert_int_equal(fy_plan_make(models.m[0].g, &small, NULL, &fits, NULL, &err), 0);
    assert_int_equal(
        fy_workspace_attach(ws, &(fy_model_config){.name = "p", .plan = fits}, &m, &err), 0);
    request_ok(ws, m, 0);
    /* A model of another workspace. */
    memset(&err, 0, sizeof err);
    assert_int_equal(fy_workspace_detach(tiny, m0, &err), FY_EINVAL);
    assert_int_equal(fy_workspace_run(tiny, m0, NULL, NULL, &err), FY_EINVAL);
    assert_non_null(strstr(err.message, "'m0' is not of this workspace"));
    fy_workspace_destroy(tiny);
    fy_workspace_destroy(ws); /* detaches "p" before its plan goes */
    fy_plan_destroy(fits);
    fy_plan_destroy(plan);
}

static void test_serve_plan_failing_the_checker_is_refused(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_machine mach;
    fy_machine_default(&mach);
    fy_plan *bad;
    /* A compute with nothing loaded: never-loaded. */
    const fy_graph *g = models.m[0].g;
    assert_int_equal(fy_plan_create(g, &mach, &bad, &err), 0);
    fy_plan_set_arena(bad, FY_TIER_GPU, 4096);
    fy_event ev = {.kind = FY_EVENT_COMPUTE, .op = 0, .tensor = -1};
    assert_true(fy_plan_add(bad, &ev, &err) >= 0);
    fy_workspace *ws = small_workspace(NULL);
    fy_model *m;
    assert_int_equal(
        fy_workspace_attach(ws, &(fy_model_config){.name = "bad", .plan = bad}, &m, &err),
        FY_ECHECK);
    assert_non_null(strstr(err.message, "model 'bad'"));
    fy_workspace_destroy(ws);
    fy_plan_destroy(bad);
}

static void test_serve_weight_cache_names_a_short_or_missing_file(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_weight_cache *c;
    assert_int_equal(fy_weight_cache_create(&c, &err), 0);
    char path[4200];
    snprintf(path, sizeof path, "%s/short.bin", scratch);
    FILE *f = fopen(path, "wb");
    fwrite("0123456789", 1, 10, f);
    fclose(f);
    const fy_weight *w;
    assert_int_equal(fy_weight_cache_acquire(c, path, 4, 100, &w, &err), FY_EIO);
    assert_non_null(strstr(err.message, "short.bin holds 10 bytes"));
    assert_true(fy_weight_cache_acquire(c, "/nonexistent/w.bin", 0, 4, &w, &err) < 0);
    assert_non_null(strstr(err.message, "/nonexistent/w.bin"));
    assert_int_equal(fy_weight_cache_acquire(c, path, 2, 4, &w, &err), 0);
    assert_memory_equal(fy_weight_data(w), "2345", 4);
    assert_int_equal(fy_weight_size(w), 4);
    fy_weight_cache_release(c, w);
    fy_weight_cache_stats cs;
    fy_weight_cache_stats_get(c, &cs);
    assert_int_equal(cs.entries, 0);
    fy_weight_cache_destroy(c);
    /* A model whose weight file is cut short fails to attach, naming model and weight. */
    fy_workspace *ws;
    assert_int_equal(fy_weight_cache_create(&c, &err), 0);
    ws = small_workspace(c);
    char wpath[4200];
    snprintf(wpath, sizeof wpath, "%s/w6.bin", scratch);
    assert_int_equal(truncate(wpath, 8), 0); /* m6 is not used after this test */
    fy_model *m;
    memset(&err, 0, sizeof err);
    assert_true(fy_workspace_attach(ws, &(fy_model_config){.name = "cut", .graph = models.m[6].g},
                                    &m, &err) < 0);
    assert_non_null(strstr(err.message, "model 'cut', weight 'w"));
    fy_weight_cache_stats_get(c, &cs);
    assert_int_equal(cs.entries, 0); /* what was acquired before the failure is released */
    fy_workspace_destroy(ws);
    fy_weight_cache_destroy(c);
}

static void test_serve_sequence_graph_shares_weights_and_refuses_bad_sequences(void **state)
{
    (void)state;
    fy_error err = {0};
    fy_sequence_model sm[2] = {{"A", models.m[0].g}, {"B", models.m[1].g}};
    size_t req[] = {0, 1, 0};
    fy_graph *g;
    assert_int_equal(fy_sequence_graph(sm, 2, req, 3, &g, &err), 0);
    assert_true(fy_graph_find_tensor(g, "A/w0") >= 0);
    assert_true(fy_graph_find_tensor(g, "A@0/x") >= 0);
    assert_true(fy_graph_find_tensor(g, "A@2/y") >= 0);
    assert_true(fy_graph_find_tensor(g, "A@2/w0") < 0); /* one copy of A's weights */
    assert_true(fy_graph_find_op(g, "B@1/op0") >= 0);
    assert_int_equal(fy_graph_op_count(g),
                     2 * fy_graph_op_count(models.m[0].g) + fy_graph_op_count(models.m[1].g));
    fy_graph_destroy(g);
    assert_int_equal(fy_sequence_graph(sm, 2, req, 0, &g, &err), FY_EINVAL);
    assert_non_null(strstr(err.message, "empty"));
    size_t far[] = {0, 2};
    assert_int_equal(fy_sequence_graph(sm, 2, far, 2, &g, &err), FY_EINVAL);
    assert_non_null(strstr(err.message, "request 1 names model 2"));
    fy_sequence_model bad[2] = {{"A@x", models.m[0].g}, {"B", models.m[1].g}};
    assert_int_equal(fy_sequence_graph(bad, 2, req, 3, &g, &err), FY_EINVAL);
    assert_non_null(strstr(err.message, "'A@x'"));
    fy_sequence_model twice[2] = {{"A", models.m[0].g}, {"A", models.m[1].g}};
    assert_int_equal(fy_sequence_graph(twice, 2, req, 3, &g, &err), FY_EINVAL);
    assert_non_null(strstr(err.message, "two sequence models are named 'A'"));
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    alarm(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serve_interleaved_requests_equal_isolated_runs_in_a_fixed_workspace),
        cmocka_unit_test(test_serve_two_workspaces_hold_one_host_copy),
        cmocka_unit_test(test_serve_weight_verification_is_per_request),
        cmocka_unit_test(test_serve_detach_waits_for_the_request_in_flight),
        cmocka_unit_test(test_serve_detach_from_a_callback_defers),
        cmocka_unit_test(test_serve_use_after_detach_is_an_error_naming_the_model),
        cmocka_unit_test(test_serve_requests_from_several_threads),
        cmocka_unit_test(test_serve_refuses_bad_models_and_budgets),
        cmocka_unit_test(test_serve_plan_failing_the_checker_is_refused),
        cmocka_unit_test(test_serve_weight_cache_names_a_short_or_missing_file),
        cmocka_unit_test(test_serve_sequence_graph_shares_weights_and_refuses_bad_sequences),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
