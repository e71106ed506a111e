/* `ferry demo`: the whole path on a built-in example, as far as it exists: generate a
 * small mlp and its weights, load the graph back and print its summary. */
#include "cli/commands.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int fy_cmd_demo(int argc, char **argv)
{
    const char *dir = "ferry-demo";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
            dir = argv[++i];
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: ferry demo [--dir DIR]\n\nRuns ferry's path on a built-in example "
                   "and leaves its files in DIR (default ./ferry-demo).\n");
            return FY_EXIT_OK;
        } else {
            return fy_cli_fail("demo", "unknown argument '%s'", argv[i]);
        }
    }
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return fy_cli_fail("demo", "cannot create %s: %s", dir, strerror(errno));
    char graph_path[4096], weights_path[4096];
    snprintf(graph_path, sizeof graph_path, "%s/mlp.yaml", dir);
    snprintf(weights_path, sizeof weights_path, "%s/w.bin", dir);

    fy_error err = {0};
    fy_graph *g = NULL;
    fy_mlp_params p = {.layers = 8, .hidden = 1024, .batch = 16, .dtype = FY_DTYPE_BF16,
                       .weights_file = "w.bin"};
    printf("1. generate: an mlp of %u layers, %llu wide, batch %llu, %s -> %s\n", p.layers,
           (unsigned long long)p.hidden, (unsigned long long)p.batch, fy_dtype_name(p.dtype),
           graph_path);
    if (fy_graph_generate_mlp(&p, &g, &err) < 0 ||
        fy_graph_write_weights(g, weights_path, 1, &err) < 0 ||
        fy_graph_save(g, graph_path, &err) < 0) {
        fy_graph_destroy(g);
        return fy_cli_report(&err);
    }
    fy_graph_destroy(g);
    printf("2. load it back and summarise:\n");
    if (fy_graph_load(graph_path, &g, &err) < 0)
        return fy_cli_report(&err);
    fy_cli_print_graph_summary(g, stdout);
    fy_graph_destroy(g);
    printf("demo files are in %s/\n", dir);
    return FY_EXIT_OK;
}
