/* cli/commands.h — the subcommands of the `ferry` command, one file each, and the helpers
 * they share. A command returns the process exit status: 0 success, 1 violations found
 * (check), 2 unusable input or failure. */
#ifndef FERRY_CLI_COMMANDS_H
#define FERRY_CLI_COMMANDS_H

#include "ferry/ferry.h"

#include <stdio.h>

#define FY_EXIT_OK 0
#define FY_EXIT_VIOLATIONS 1
#define FY_EXIT_FAILURE 2

int fy_cmd_graph(int argc, char **argv);
int fy_cmd_info(int argc, char **argv);
int fy_cmd_import(int argc, char **argv);
int fy_cmd_demo(int argc, char **argv);
int fy_cmd_simulate(int argc, char **argv);
int fy_cmd_plan(int argc, char **argv);
int fy_cmd_check(int argc, char **argv);
int fy_cmd_run(int argc, char **argv);
int fy_cmd_probe(int argc, char **argv);

/* Prints a graph's summary (ops, bytes by kind and home, largest working set). */
void fy_cli_print_graph_summary(const fy_graph *g, FILE *out);
/* Prints err as "FILE:LINE:COL: error: message" on stderr; returns FY_EXIT_FAILURE. */
int fy_cli_report(const fy_error *err);
/* Prints "ferry CMD: message" on stderr; returns FY_EXIT_FAILURE. */
int fy_cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses a size option's value or fails naming the option. */
int fy_cli_size(const char *cmd, const char *option, const char *text, uint64_t *out);
/* Parses a whole non-negative number option (decimal) or fails naming the option. */
int fy_cli_uint(const char *cmd, const char *option, const char *text, uint64_t *out);

/* --sequence LIST / --trace FILE of `ferry plan` (cli/plan_sequence.c): the graph of the
 * whole request sequence, and a line naming its models (malloc'ed). */
int fy_cli_sequence_graph(const char *list, const char *trace, fy_graph **out, char **describe,
                          fy_error *err);
/* Per request of a sequence plan: weight loads to the gpu and their bytes. */
void fy_cli_print_sequence(const fy_plan *plan, FILE *out);

#endif
