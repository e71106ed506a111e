/* `ferry plan GRAPH [--policy P] [--machine M] [--gpu S --host S --nvme S] -o PLAN`: plans a
 * graph under a policy and prints what the plan moves and how much memory it takes. A bare
 * policy NAME is looked up as NAME.yaml/NAME.lua in $FERRY_POLICY_PATH (folders separated
 * by ':'), then in the installed share/ferry/policies beside the binary, then in the
 * source tree's policies/ folder (for builds that are not installed). */
#include "cli/commands.h"

#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ferry plan GRAPH [--policy P] [--machine M.yaml] [--gpu SIZE] [--host SIZE]\n"
            "                  [--nvme SIZE] [--lua-instructions N] [--lua-memory SIZE]\n"
            "                  [--lua-seconds TIME] [--search] -o PLAN\n"
            "       ferry plan --sequence A.yaml,B.yaml,A.yaml [options] -o PLAN\n"
            "       ferry plan --trace TRACE [options] -o PLAN\n\n"
            "Turns a graph into a plan (ferry: plan/1) that ferry check accepts.\n\n"
            "A request sequence (one model graph per request) is planned as one timeline on one\n"
            "budget: its graph (shared weights MODEL/NAME, per-request MODEL@K/NAME) is written\n"
            "beside the plan as PLAN-stem.graph.yaml. A TRACE file names one graph per line\n"
            "(relative to the trace's folder; '#' starts a comment). docs/serving.md.\n\n"
            "options:\n"
            "  --policy P     a policy file (.yaml or .lua) or the NAME of a shipped one:\n"
            "                 default, stream, train-offload, plaid, ... (default: default)\n"
            "  --machine M    machine file (capacities and rates; default: the built-in one)\n"
            "  --gpu SIZE     override the gpu capacity (e.g. 8GiB); likewise --host, --nvme\n"
            "  -o, --output F where to write the plan ('-': standard output)\n"
            "  -q, --quiet    print nothing but errors\n"
            "  --search       try the policy's knobs over ranges (prefetch, evict, staging,\n"
            "                 activation offload), print the table, keep the fastest plan\n"
            "                 (predicted by ferry simulate) that fits (docs/policies.md)\n"
            "  --lua-instructions N  instruction budget per Lua hook call (default 10M)\n"
            "  --lua-memory SIZE     memory budget of the Lua policy (default 64MiB)\n"
            "  --lua-seconds TIME    time limit per Lua hook call (default 10s)\n"
            "                 (these override a policy file's limits: {...})\n"
            "A bare NAME is searched in $FERRY_POLICY_PATH (':'-separated folders), then\n"
            "<prefix>/share/ferry/policies beside the ferry binary, then the source tree's\n"
            "policies/ folder.\n");
}

/* The folders a bare policy name is searched in; strings are malloc'ed into dirs. */
static size_t policy_dirs(char **dirs, size_t max)
{
    size_t n = 0;
    const char *env = getenv("FERRY_POLICY_PATH");
    if (env && *env) {
        char *copy = strdup(env), *save = NULL;
        for (char *tok = copy ? strtok_r(copy, ":", &save) : NULL; tok && n < max - 2;
             tok = strtok_r(NULL, ":", &save))
            dirs[n++] = strdup(tok);
        free(copy);
    }
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0 && n < max) {
        exe[len] = '\0';
        char buf[PATH_MAX + 64];
        snprintf(buf, sizeof buf, "%s/../share/ferry/policies", dirname(exe));
        dirs[n++] = strdup(buf);
    }
    /* This file is compiled from SOURCE/cli/cmd_plan.c; its policies are in SOURCE/policies. */
    if (__FILE__[0] == '/' && n < max) {
        char src[PATH_MAX];
        snprintf(src, sizeof src, "%s", __FILE__);
        char buf[PATH_MAX + 64];
        snprintf(buf, sizeof buf, "%s/policies", dirname(dirname(src)));
        dirs[n++] = strdup(buf);
    }
    return n;
}

/* How the plan names its graph: relative to the plan's folder when the graph lies inside
 * it, else absolute. Returns a malloc'ed string. */
static char *graph_reference(const char *plan_path, const char *graph_path)
{
    char pbuf[PATH_MAX], pdir[PATH_MAX], gabs[PATH_MAX];
    if (!strcmp(plan_path, "-") || !realpath(graph_path, gabs)) return strdup(graph_path);
    snprintf(pbuf, sizeof pbuf, "%s", plan_path);
    if (!realpath(dirname(pbuf), pdir)) return strdup(gabs);
    size_t n = strlen(pdir);
    if (strncmp(gabs, pdir, n) == 0 && gabs[n] == '/') return strdup(gabs + n + 1);
    return strdup(gabs);
}

static void print_summary(const fy_plan_stats *s, const fy_machine *m, const char *policy,
                          const char *output, FILE *out)
{
    char a[32], b[32], c[32];
    fprintf(out,
            "plan: %zu events (%zu loads, %zu offloads, %zu evicts, %zu computes) -> %s\n"
            "  policy %s; %u pass%s, %.3fs\n",
            s->events, s->count_by_kind[FY_EVENT_LOAD], s->count_by_kind[FY_EVENT_OFFLOAD],
            s->count_by_kind[FY_EVENT_EVICT], s->count_by_kind[FY_EVENT_COMPUTE], output, policy,
            s->passes, s->passes == 1 ? "" : "es", s->seconds);
    fprintf(out, "  moved %s:", fy_size_format_human(s->bytes_total, a, sizeof a));
    for (int l = 0; l < FY_LINK_COUNT; l++)
        if (s->transfers[l])
            fprintf(out, " %s %s (%llu)", fy_plan_link_name((fy_plan_link)l),
                    fy_size_format_human(s->bytes[l], a, sizeof a),
                    (unsigned long long)s->transfers[l]);
    fprintf(out, "\n  %-5s %10s %10s %7s %10s\n", "tier", "peak", "arena", "ratio", "capacity");
    for (int t = 0; t < FY_TIER_COUNT; t++)
        fprintf(out, "  %-5s %10s %10s %7.3f %10s\n", fy_tier_name((fy_tier)t),
                fy_size_format_human(s->tier[t].peak, a, sizeof a),
                fy_size_format_human(s->tier[t].arena, b, sizeof b), s->tier[t].ratio,
                fy_size_format_human(m->capacity[t], c, sizeof c));
    if (s->log) fprintf(out, "%s", s->log);
}

enum {
    OPT_POLICY = 256,
    OPT_MACHINE,
    OPT_GPU,
    OPT_HOST,
    OPT_NVME,
    OPT_LUA_INSTRUCTIONS,
    OPT_LUA_MEMORY,
    OPT_LUA_SECONDS,
    OPT_SEQUENCE,
    OPT_TRACE,
    OPT_SEARCH
};

/* Parses --lua-instructions N and --lua-seconds TIME. */
static int lua_limit(const char *option, const char *text, fy_policy_lua_limits *l)
{
    fy_error err = {0};
    double v;
    bool is_time = strcmp(option, "--lua-seconds") == 0;
    int rc = is_time ? fy_time_parse(text, &v, &err) : fy_count_parse(text, &v, &err);
    if (rc < 0) return fy_cli_fail("plan", "%s: %s", option, err.message);
    if (is_time ? !(v > 0) : !(v >= 1 && v <= 1e15 && v == (double)(uint64_t)v))
        return fy_cli_fail("plan", "%s: must be %s, not '%s'", option,
                           is_time ? "more than 0" : "a whole number from 1 to 1e15", text);
    if (is_time)
        l->seconds = v;
    else
        l->instructions = (uint64_t)v;
    return 0;
}

/* PLAN.yaml -> PLAN.graph.yaml (malloc'ed). */
static char *sequence_graph_path(const char *plan)
{
    size_t n = strlen(plan);
    if (n > 5 && !strcmp(plan + n - 5, ".yaml")) n -= 5;
    char *p = malloc(n + 16);
    if (p) snprintf(p, n + 16, "%.*s.graph.yaml", (int)n, plan);
    return p;
}

int fy_cmd_plan(int argc, char **argv)
{
    static const struct option opts[] = {
        {"policy", required_argument, 0, OPT_POLICY},
        {"machine", required_argument, 0, OPT_MACHINE},
        {"gpu", required_argument, 0, OPT_GPU},
        {"host", required_argument, 0, OPT_HOST},
        {"nvme", required_argument, 0, OPT_NVME},
        {"lua-instructions", required_argument, 0, OPT_LUA_INSTRUCTIONS},
        {"lua-memory", required_argument, 0, OPT_LUA_MEMORY},
        {"lua-seconds", required_argument, 0, OPT_LUA_SECONDS},
        {"sequence", required_argument, 0, OPT_SEQUENCE},
        {"trace", required_argument, 0, OPT_TRACE},
        {"search", no_argument, 0, OPT_SEARCH},
        {"output", required_argument, 0, 'o'},
        {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *policy_arg = "default", *machine_path = NULL, *output = NULL;
    const char *sequence = NULL, *trace = NULL;
    uint64_t cap[FY_TIER_COUNT];
    bool cap_set[FY_TIER_COUNT] = {false, false, false}, quiet = false, search = false;
    fy_policy_lua_limits limits = {0};
    int c, rc = 0;
    optind = 1;
    while (rc == 0 && (c = getopt_long(argc, argv, "o:qh", opts, NULL)) != -1) {
        switch (c) {
        case OPT_POLICY:
            policy_arg = optarg;
            break;
        case OPT_MACHINE:
            machine_path = optarg;
            break;
        case OPT_GPU:
            rc = fy_cli_size("plan", "--gpu", optarg, &cap[FY_TIER_GPU]);
            cap_set[FY_TIER_GPU] = true;
            break;
        case OPT_HOST:
            rc = fy_cli_size("plan", "--host", optarg, &cap[FY_TIER_HOST]);
            cap_set[FY_TIER_HOST] = true;
            break;
        case OPT_NVME:
            rc = fy_cli_size("plan", "--nvme", optarg, &cap[FY_TIER_NVME]);
            cap_set[FY_TIER_NVME] = true;
            break;
        case OPT_LUA_INSTRUCTIONS:
        case OPT_LUA_SECONDS:
            rc = lua_limit(c == OPT_LUA_SECONDS ? "--lua-seconds" : "--lua-instructions", optarg,
                           &limits);
            break;
        case OPT_LUA_MEMORY:
            rc = fy_cli_size("plan", "--lua-memory", optarg, &limits.memory);
            if (rc == 0 && limits.memory == 0)
                rc = fy_cli_fail("plan", "--lua-memory: must be more than 0");
            break;
        case OPT_SEQUENCE:
            sequence = optarg;
            break;
        case OPT_TRACE:
            trace = optarg;
            break;
        case OPT_SEARCH:
            search = true;
            break;
        case 'o':
            output = optarg;
            break;
        case 'q':
            quiet = true;
            break;
        case 'h':
            usage(stdout);
            return FY_EXIT_OK;
        default:
            usage(stderr);
            return FY_EXIT_FAILURE;
        }
    }
    if (rc) return rc;
    bool seq = sequence || trace;
    if (sequence && trace) return fy_cli_fail("plan", "give --sequence or --trace, not both");
    if (seq && optind < argc)
        return fy_cli_fail("plan", "a sequence takes no GRAPH argument ('%s')", argv[optind]);
    if (seq && output && !strcmp(output, "-"))
        return fy_cli_fail("plan",
                           "a sequence plan needs -o FILE (its graph is written beside it)");
    if (!seq && optind + 1 != argc) {
        usage(stderr);
        return optind >= argc ? fy_cli_fail("plan", "needs a GRAPH file")
                              : fy_cli_fail("plan", "unexpected argument '%s'", argv[optind + 1]);
    }
    if (!output) return fy_cli_fail("plan", "needs -o PLAN (use '-o -' for standard output)");
    const char *graph_path = seq ? NULL : argv[optind];

    fy_error err = {0};
    fy_machine machine;
    fy_machine_default(&machine);
    if (machine_path && fy_machine_load(machine_path, &machine, &err) < 0)
        return fy_cli_report(&err);
    for (int t = 0; t < FY_TIER_COUNT; t++)
        if (cap_set[t]) machine.capacity[t] = cap[t];

    char *dirs[16] = {0};
    size_t ndirs = policy_dirs(dirs, 16);
    char *policy_path = NULL;
    fy_graph *g = NULL;
    fy_policy *policy = NULL;
    fy_plan *plan = NULL;
    fy_plan_stats stats = {0};
    char *ref = NULL, *seq_graph = NULL, *seq_text = NULL;
    rc = fy_policy_find(policy_arg, (const char *const *)dirs, ndirs, &policy_path, &err);
    if (rc == 0) rc = fy_policy_open(policy_path, &limits, &policy, &err);
    if (rc == 0 && seq) {
        rc = fy_cli_sequence_graph(sequence, trace, &g, &seq_text, &err);
        if (rc == 0 && !(seq_graph = sequence_graph_path(output)))
            rc = fy_error_set(&err, FY_ENOMEM, "out of memory");
        if (rc == 0) rc = fy_graph_save(g, seq_graph, &err);
        graph_path = seq_graph;
    } else if (rc == 0) {
        rc = fy_graph_load(graph_path, &g, &err);
    }
    fy_search_result found = {0};
    char *table = NULL;
    if (rc == 0 && search) {
        rc = fy_plan_search(g, &machine, policy, &found, &plan, &err);
        /* The table shows what was tried even when nothing fits. */
        if (found.count && !(table = fy_search_format(&found)) && rc == 0)
            rc = fy_error_set(&err, FY_ENOMEM, "out of memory");
        if (table && !quiet && (rc < 0 || !strcmp(output, "-"))) fputs(table, stderr);
    } else if (rc == 0) {
        rc = fy_plan_make(g, &machine, policy, &plan, &stats, &err);
    }
    if (rc == 0 && !(ref = graph_reference(output, graph_path)))
        rc = fy_error_set(&err, FY_ENOMEM, "out of memory");
    if (rc == 0) rc = fy_plan_save(plan, output, ref, &err);
    int exit_code = FY_EXIT_OK;
    if (rc < 0)
        exit_code = fy_cli_report(&err);
    else if (!quiet) {
        FILE *out = strcmp(output, "-") ? stdout : stderr;
        if (search) {
            if (out == stdout) fputs(table, out);
            fprintf(out, "plan: %zu events -> %s\n  policy %s\n", fy_plan_event_count(plan), output,
                    fy_plan_policy_name(plan));
        } else
            print_summary(&stats, &machine, fy_policy_name(policy), output, out);
        if (seq) {
            fprintf(out, "  sequence graph -> %s\n%s", seq_graph, seq_text ? seq_text : "");
            fy_cli_print_sequence(plan, out);
        }
    }
    free(table);
    fy_search_result_free(&found);
    free(seq_graph);
    free(seq_text);
    fy_plan_stats_free(&stats);
    free(ref);
    fy_plan_destroy(plan);
    fy_graph_destroy(g);
    fy_policy_destroy(policy);
    free(policy_path);
    for (size_t i = 0; i < ndirs; i++)
        free(dirs[i]);
    return exit_code;
}
