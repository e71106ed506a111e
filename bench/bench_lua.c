/* Lua policy overhead: the cost of one hook call (called directly through the policy's
 * hooks with a stand-in view of the planner, so that nothing but the hook is timed), and the
 * planning time of a 1,000-layer mlp training graph with the default prefetch written as a
 * Lua hook against the same policy as YAML knobs. Usage: bench_lua [runs] [layers].
 * Results go to docs/performance.md (## Lua policies). */
#include "ferry/ferry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char PREFETCH1[] =
    "function prefetch(ctx, i)\n"
    "  local want, free = {}, ctx:capacity('gpu') - ctx:used('gpu')\n"
    "  for _, name in ipairs(ctx:op(i).reads) do\n"
    "    if not ctx:resident(name, 'gpu') and (ctx:resident(name, 'host') or\n"
    "        ctx:resident(name, 'nvme')) then\n"
    "      local size = ctx:tensor(name).size\n"
    "      if size <= free then want[#want + 1] = name; free = free - size end\n"
    "    end\n"
    "  end\n"
    "  return want\n"
    "end\n";
static const char NOOP[] = "function prefetch(ctx, i) end\n";
static const char VICTIM[] = "function victim(ctx, tier, need, c) return c end\n";

/* The stand-in planner: nothing resident but home copies, an empty gpu. */
static long sv_next_use(void *s, uint32_t t, long op)
{
    (void)s, (void)t;
    return op + 1;
}
static bool sv_resident(void *s, uint32_t t, fy_tier tier)
{
    (void)s, (void)t;
    return tier == FY_TIER_HOST;
}
static uint64_t sv_used(void *s, fy_tier tier)
{
    (void)s, (void)tier;
    return 0;
}
static uint64_t sv_capacity(void *s, fy_tier tier)
{
    (void)s, (void)tier;
    return 1ull << 40;
}
static void sv_log(void *s, const char *m)
{
    (void)s, (void)m;
}

static fy_policy *lua_policy(const char *text, unsigned prefetch)
{
    fy_policy_knobs k;
    fy_policy_knobs_default(&k);
    k.prefetch = prefetch;
    fy_policy *p;
    fy_error err = {0};
    if (fy_policy_create("bench-lua", &k, &p, &err) < 0 ||
        fy_policy_attach_lua_string(p, "bench.lua", text, strlen(text), NULL, &err) < 0) {
        fprintf(stderr, "%s\n", err.message);
        exit(1);
    }
    return p;
}

/* Microseconds per call of the policy's prefetch (or victim, with count candidates). */
static double per_call(const fy_graph *g, const char *text, bool victim, size_t count)
{
    fy_policy *p = lua_policy(text, 1);
    const fy_policy_hooks *h = fy_policy_get_hooks(p);
    fy_policy_view v = {.graph = g,
                        .next_use = sv_next_use,
                        .resident = sv_resident,
                        .used = sv_used,
                        .capacity = sv_capacity,
                        .log = sv_log};
    fy_error err = {0};
    if (h->begin(h->ctx, &v, &err) < 0) return fprintf(stderr, "%s\n", err.message), -1;
    uint32_t *cand = calloc(count ? count : 1, sizeof *cand);
    for (size_t i = 0; i < count; i++)
        cand[i] = (uint32_t)i;
    size_t n = fy_graph_op_count(g), calls = 0;
    double t0 = now();
    for (int rep = 0; rep < 3; rep++)
        for (size_t op = 0; op < n; op++, calls++) {
            fy_tensor_list out = {0};
            int rc = victim ? h->victim(h->ctx, &v, FY_TIER_GPU, 1, cand, count, &out, &err)
                            : h->prefetch(h->ctx, &v, op, &out, &err);
            free(out.items);
            if (rc < 0) return fprintf(stderr, "%s\n", err.message), -1;
        }
    double us = (now() - t0) / (double)calls * 1e6;
    h->end(h->ctx);
    free(cand);
    fy_policy_destroy(p);
    return us;
}

static double plan_time(const fy_graph *g, fy_policy *p, int runs, fy_plan_stats *st)
{
    fy_machine m;
    fy_machine_default(&m);
    double best = 1e9;
    for (int r = 0; r < runs; r++) {
        fy_plan *plan;
        fy_error err = {0};
        fy_plan_stats_free(st);
        double t0 = now();
        if (fy_plan_make(g, &m, p, &plan, st, &err) < 0)
            return fprintf(stderr, "%s\n", err.message), -1;
        double t = now() - t0;
        best = t < best ? t : best;
        fy_plan_destroy(plan);
    }
    return best;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 3;
    unsigned layers = argc > 2 ? (unsigned)atoi(argv[2]) : 1000;
    fy_mlp_params mp = {.layers = layers,
                        .hidden = 4096,
                        .batch = 16,
                        .dtype = FY_DTYPE_BF16,
                        .train = true,
                        .weights_file = "w.bin"};
    fy_graph *g;
    fy_error err = {0};
    if (fy_graph_generate_mlp(&mp, &g, &err) < 0) return fprintf(stderr, "%s\n", err.message), 1;
    printf("mlp-%u train: %zu ops, %zu tensors\n", layers, fy_graph_op_count(g),
           fy_graph_tensor_count(g));
    printf("per hook call: prefetch no-op %.2f us, prefetch = default knob %.2f us, victim "
           "returning 16 candidates %.2f us, 256 candidates %.2f us\n",
           per_call(g, NOOP, false, 0), per_call(g, PREFETCH1, false, 0),
           per_call(g, VICTIM, true, 16), per_call(g, VICTIM, true, 256));

    fy_policy_knobs k;
    fy_policy_knobs_default(&k);
    fy_policy *yaml, *yaml0;
    if (fy_policy_create("yaml", &k, &yaml, &err) < 0) return 1;
    k.prefetch = 0;
    if (fy_policy_create("yaml-prefetch0", &k, &yaml0, &err) < 0) return 1;
    fy_policy *lua = lua_policy(PREFETCH1, 0), *noop = lua_policy(NOOP, 0);
    fy_plan_stats a = {0}, b = {0}, c = {0}, d = {0};
    double ty = plan_time(g, yaml, runs, &a), tl = plan_time(g, lua, runs, &b);
    double t0 = plan_time(g, yaml0, runs, &c), tn = plan_time(g, noop, runs, &d);
    printf("plan, 80GiB gpu, best of %d: YAML prefetch 1 %.3f s (%zu events, %u passes); Lua "
           "prefetch hook %.3f s (%zu events, %u passes): ratio %.3f\n",
           runs, ty, a.events, a.passes, tl, b.events, b.passes, tl / ty);
    printf("plan: YAML prefetch 0 %.3f s; + no-op Lua prefetch %.3f s: ratio %.3f\n", t0, tn,
           tn / t0);
    fy_plan_stats_free(&a);
    fy_plan_stats_free(&b);
    fy_plan_stats_free(&c);
    fy_plan_stats_free(&d);
    fy_policy_destroy(yaml);
    fy_policy_destroy(yaml0);
    fy_policy_destroy(lua);
    fy_policy_destroy(noop);
    fy_graph_destroy(g);
    return 0;
}
