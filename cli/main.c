/* The `ferry` command: dispatches to one subcommand per file. */
#include "cli/commands.h"

#include <stdio.h>
#include <string.h>

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"graph", fy_cmd_graph, "generate a synthetic graph (mlp, transformer) or show one"},
    {"import", fy_cmd_import, "write the graph of a safetensors checkpoint"},
    {"plan", fy_cmd_plan, "turn a graph and a policy into a plan"},
    {"info", fy_cmd_info, "print a summary of a graph file"},
    {"check", fy_cmd_check, "check a plan: every violation with its line (exit 1 if any)"},
    {"simulate", fy_cmd_simulate, "dry-run a plan: peaks per tier, time, stalls, trace, plot"},
    {"probe", fy_cmd_probe, "measure this machine (nvme, gpu rates) and write a machine file"},
    {"run", fy_cmd_run, "run a checked plan on a device (sim, cuda) and report the timing"},
    {"demo", fy_cmd_demo, "run the whole path on a built-in example"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: ferry COMMAND [ARGS]\n\n"
                 "Schedules deep-learning tensors across GPU memory, pinned host RAM and NVMe\n"
                 "from declarative, checkable offload plans.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n`ferry COMMAND --help` describes each. Exit status: 0 success, 1 violations "
                 "found, 2 unusable input or failure.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return FY_EXIT_FAILURE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return FY_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("ferry %s\n", FY_VERSION_STRING);
        return FY_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "ferry: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return FY_EXIT_FAILURE;
}
