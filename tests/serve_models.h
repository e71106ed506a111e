/* Test helpers for serving: a set of random f32 models (tests/engine_plans.h graphs, each with
 * its own weight file), the output of each model run alone on a fresh engine with a roomy
 * budget (the reference every serving test compares with, bitwise), and one request's
 * buffers. */
#ifndef FERRY_TESTS_SERVE_MODELS_H
#define FERRY_TESTS_SERVE_MODELS_H

#include "engine_plans.h"

typedef struct sv_model {
    fy_graph *g;
    char name[16];
    uint64_t x_size, y_size;
    float *x;   /* the input every request of this model gets */
    float *ref; /* y of the model run alone */
    uint64_t working_set;
} sv_model;

typedef struct sv_models {
    sv_model *m;
    size_t count;
    char *dir;
    uint64_t max_working_set;
} sv_models;

/* A request of model m: x in, y out into y. */
static inline fy_engine_run_args sv_args(const sv_model *m, void *y, fy_engine_buffer bufs[2])
{
    bufs[0] = (fy_engine_buffer){"x", m->x, m->x_size};
    bufs[1] = (fy_engine_buffer){"y", y, m->y_size};
    return (fy_engine_run_args){
        .inputs = &bufs[0], .input_count = 1, .outputs = &bufs[1], .output_count = 1};
}

/* count models under dir (weights in dir/w<i>.bin); returns 0 or -1 with a message. */
static inline int sv_models_make(sv_models *s, size_t count, const char *dir, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->m = calloc(count, sizeof *s->m);
    s->count = count;
    fy_error err = {0};
    fy_engine *eng;
    if (fy_engine_open(&(fy_engine_config){.device = "sim", .threads = 1}, &eng, &err) < 0)
        return -1;
    for (size_t i = 0; i < count; i++) {
        sv_model *m = &s->m[i];
        char path[4200];
        snprintf(path, sizeof path, "%s/w%zu.bin", dir, i);
        snprintf(m->name, sizeof m->name, "m%zu", i);
        eg_graph_params gp = {.seed = seed + i * 7,
                              .ops = 4 + (unsigned)(i % 5),
                              .batch = 2 + (unsigned)(i % 3),
                              .hidden = 32,
                              .weights = 2 + (unsigned)(i % 3),
                              .weights_path = path};
        if (!(m->g = eg_graph(&gp))) return -1;
        m->x_size = fy_graph_tensor(m->g, (size_t)fy_graph_find_tensor(m->g, "x"))->size;
        m->y_size = fy_graph_tensor(m->g, (size_t)fy_graph_find_tensor(m->g, "y"))->size;
        m->x = malloc(m->x_size);
        m->ref = calloc(1, m->y_size);
        eg_fill(m->x, m->x_size, seed + i);
        fy_graph_summary sum;
        fy_graph_summarize(m->g, &sum);
        m->working_set = sum.max_working_set;
        if (sum.max_working_set > s->max_working_set) s->max_working_set = sum.max_working_set;
        fy_machine mach;
        fy_machine_default(&mach);
        fy_plan *plan;
        fy_engine_buffer b[2];
        fy_engine_run_args a = sv_args(m, m->ref, b);
        if (fy_plan_make(m->g, &mach, NULL, &plan, NULL, &err) < 0 ||
            fy_engine_run(eng, plan, &a, NULL, &err) < 0) {
            fprintf(stderr, "sv_models_make: %s\n", err.message);
            return -1;
        }
        fy_plan_destroy(plan);
    }
    fy_engine_close(eng);
    return 0;
}

static inline void sv_models_free(sv_models *s)
{
    for (size_t i = 0; i < s->count; i++) {
        fy_graph_destroy(s->m[i].g);
        free(s->m[i].x);
        free(s->m[i].ref);
    }
    free(s->m);
}

#endif
