/* `ferry simulate PLAN`: the dry-run. Replays the plan with the machine's cost model and
 * prints the peaks per tier, the predicted time, the queues' busy shares and the compute
 * stalls; writes the trace, the plot and the JSON summary on request. */
#include "cli/commands.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: ferry simulate PLAN [--machine M] [--trace OUT.json] [--svg OUT.svg] [--json]\n\n"
        "Replays a plan with the cost model of a machine, before a GPU is touched: the\n"
        "peak of live bytes per tier (when, and which tensors make it up), the arena sizes\n"
        "the engine will allocate, the predicted time, each queue's busy share, and how\n"
        "long the compute queues waited for transfers, by tensor and by kind.\n\n"
        "options:\n"
        "  --machine M      a machine file (ferry probe writes one) over the plan's machine\n"
        "  --io-depth N     io events running at once on the nvme link (default 0: all\n"
        "                   ready ones, sharing its bandwidth)\n"
        "  --trace F        write a Chrome/Perfetto trace (open in ui.perfetto.dev)\n"
        "  --svg F          write a plot of memory per tier over time and the queues\n"
        "  --json           print the summary as JSON instead of text\n"
        "exit status: 0 done (1 when a tier's peak exceeds its capacity), 2 unusable input\n");
}

int fy_cmd_simulate(int argc, char **argv)
{
    static const struct option opts[] = {{"machine", required_argument, NULL, 'm'},
                                         {"io-depth", required_argument, NULL, 'd'},
                                         {"trace", required_argument, NULL, 't'},
                                         {"svg", required_argument, NULL, 's'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *machine_path = NULL, *trace = NULL, *svg = NULL;
    bool json = false;
    uint64_t depth = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            machine_path = optarg;
            break;
        case 'd':
            if (fy_cli_uint("simulate", "--io-depth", optarg, &depth) != 0 || depth > UINT32_MAX)
                return FY_EXIT_FAILURE;
            break;
        case 't':
            trace = optarg;
            break;
        case 's':
            svg = optarg;
            break;
        case 'j':
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
    if (optind + 1 != argc) {
        usage(stderr);
        return FY_EXIT_FAILURE;
    }
    fy_error err = {0};
    fy_plan *plan;
    if (fy_plan_load(argv[optind], NULL, &plan, &err) < 0) return fy_cli_report(&err);
    fy_machine m = *fy_plan_machine(plan);
    int status = FY_EXIT_OK;
    fy_sim *sim = NULL;
    fy_sim_options o = {.io_depth = (unsigned)depth};
    if ((machine_path && fy_machine_load(machine_path, &m, &err) < 0) ||
        fy_simulate(plan, &m, &o, &sim, &err) < 0 ||
        (trace && fy_timeline_write_trace(fy_sim_timeline(sim), trace, &err) < 0) ||
        (svg && fy_timeline_write_svg(fy_sim_timeline(sim), svg, &err) < 0)) {
        status = fy_cli_report(&err);
    } else {
        char *text = json ? fy_sim_format_json(sim) : fy_sim_format_text(sim);
        if (!text) {
            status = fy_cli_fail("simulate", "out of memory");
        } else {
            fputs(text, stdout);
            free(text);
        }
        const fy_sim_summary *s = fy_sim_summary_get(sim);
        for (int t = 0; t < FY_TIER_COUNT && status == FY_EXIT_OK; t++)
            if (s->tier[t].peak > s->tier[t].capacity) {
                fprintf(stderr, "ferry simulate: the %s peak exceeds the machine's capacity\n",
                        fy_tier_name((fy_tier)t));
                status = FY_EXIT_VIOLATIONS;
            }
    }
    fy_sim_destroy(sim);
    fy_plan_destroy(plan);
    return status;
}
