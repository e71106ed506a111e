/* `ferry check PLAN [--graph G] [--machine M] [--gpu SIZE ...] [--json]`: checks a plan and
 * prints every violation compiler style (`PLAN:LINE: error[CLASS]: message`) or as a JSON
 * array. Exit 0 clean (warnings allowed), 1 violations, 2 unusable input. */
#include "cli/commands.h"

#include "core/buf.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: ferry check PLAN [--graph G] [--machine M] [--gpu SIZE] [--host SIZE]\n"
                 "                   [--nvme SIZE] [--json]\n\n"
                 "Replays a plan against its graph and machine and reports every violation\n"
                 "(classes: never-loaded reuse-after-evict unordered-use evict-in-use overlap\n"
                 "over-capacity data-loss stale-copy incomplete bad-reference; warnings:\n"
                 "redundant-load unused-load), one line each: PLAN:LINE: error[CLASS]: message.\n\n"
                 "options:\n"
                 "  --graph G      the graph to check against (default: the plan's graph file)\n"
                 "  --machine M    a machine file (default: the plan's machine section)\n"
                 "  --gpu SIZE     override a tier's capacity (also --host, --nvme)\n"
                 "  --json         print a JSON array of {file, line, class, severity, event,\n"
                 "                 related_event, message}; events are ids as in the plan\n"
                 "exit status: 0 no errors, 1 violations found, 2 unusable input\n");
}

static void print_json(const fy_plan *plan, const char *path, const fy_check_report *rep)
{
    fy_buf b = {0};
    fy_buf_puts(&b, "[");
    for (size_t i = 0; i < fy_check_report_count(rep); i++) {
        const fy_violation *v = fy_check_report_get(rep, i);
        const fy_event *ev = fy_plan_event(plan, v->event);
        fy_buf_puts(&b, i ? ",\n {\"file\": " : "\n {\"file\": ");
        fy_buf_json_string(&b, path);
        fy_buf_printf(&b, ", \"line\": %u, \"class\": \"%s\", \"severity\": \"%s\", \"event\": ",
                      v->line, fy_check_class_name(v->cls), v->warning ? "warning" : "error");
        if (ev)
            fy_buf_printf(&b, "%llu", (unsigned long long)ev->id);
        else
            fy_buf_puts(&b, "null");
        fy_buf_puts(&b, ", \"related_event\": ");
        if (v->related_event >= 0)
            fy_buf_printf(&b, "%llu",
                          (unsigned long long)fy_plan_event(plan, (size_t)v->related_event)->id);
        else
            fy_buf_puts(&b, "null");
        fy_buf_puts(&b, ", \"message\": ");
        fy_buf_json_string(&b, v->message);
        fy_buf_puts(&b, "}");
    }
    fy_buf_puts(&b, fy_check_report_count(rep) ? "\n]\n" : "]\n");
    if (b.data) fwrite(b.data, 1, b.len, stdout);
    fy_buf_free(&b);
}

static void print_text(const char *path, const fy_check_report *rep)
{
    for (size_t i = 0; i < fy_check_report_count(rep); i++) {
        const fy_violation *v = fy_check_report_get(rep, i);
        if (v->line)
            printf("%s:%u: ", path, v->line);
        else
            printf("%s: ", path);
        printf("%s[%s]: %s\n", v->warning ? "warning" : "error", fy_check_class_name(v->cls),
               v->message);
    }
    size_t e = fy_check_report_errors(rep), w = fy_check_report_warnings(rep);
    printf("%zu error%s, %zu warning%s\n", e, e == 1 ? "" : "s", w, w == 1 ? "" : "s");
}

int fy_cmd_check(int argc, char **argv)
{
    enum { OPT_GRAPH = 256, OPT_MACHINE, OPT_GPU, OPT_HOST, OPT_NVME, OPT_JSON };
    static const struct option opts[] = {
        {"graph", required_argument, NULL, OPT_GRAPH},
        {"machine", required_argument, NULL, OPT_MACHINE},
        {"gpu", required_argument, NULL, OPT_GPU},
        {"host", required_argument, NULL, OPT_HOST},
        {"nvme", required_argument, NULL, OPT_NVME},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *graph_path = NULL, *machine_path = NULL;
    bool json = false, override[FY_TIER_COUNT] = {false};
    uint64_t capacity[FY_TIER_COUNT] = {0};
    int c, rc = 0;
    optind = 1;
    while (rc == 0 && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_GRAPH:
            graph_path = optarg;
            break;
        case OPT_MACHINE:
            machine_path = optarg;
            break;
        case OPT_GPU:
        case OPT_HOST:
        case OPT_NVME: {
            int t = c - OPT_GPU;
            rc = fy_cli_size("check", opts[2 + t].name, optarg, &capacity[t]);
            override[t] = true;
            break;
        }
        case OPT_JSON:
            json = true;
            break;
        case 'h':
            usage(stdout);
            return FY_EXIT_OK;
        default:
            usage(stderr);
            return FY_EXIT_FAILURE;
        }
    }
    if (rc != 0) return FY_EXIT_FAILURE;
    if (optind + 1 != argc) {
        usage(stderr);
        return FY_EXIT_FAILURE;
    }
    const char *path = argv[optind];
    fy_error err = {0};
    fy_graph *graph = NULL;
    fy_plan *plan = NULL;
    fy_check_report *rep = NULL;
    fy_machine machine;
    int status = FY_EXIT_FAILURE;
    if (graph_path && fy_graph_load(graph_path, &graph, &err) < 0) goto fail;
    if (fy_plan_load(path, graph, &plan, &err) < 0) goto fail;
    machine = *fy_plan_machine(plan);
    if (machine_path) {
        fy_machine_default(&machine);
        if (fy_machine_load(machine_path, &machine, &err) < 0) goto fail;
    }
    for (int t = 0; t < FY_TIER_COUNT; t++)
        if (override[t]) machine.capacity[t] = capacity[t];
    if (fy_check_plan(plan, &machine, &rep, &err) < 0) goto fail;
    if (json)
        print_json(plan, path, rep);
    else
        print_text(path, rep);
    status = fy_check_report_errors(rep) ? FY_EXIT_VIOLATIONS : FY_EXIT_OK;
    goto done;
fail:
    fy_cli_report(&err);
done:
    fy_check_report_destroy(rep);
    fy_plan_destroy(plan);
    fy_graph_destroy(graph);
    return status;
}
