/* `ferry import CHECKPOINT ...` writes the graph of a safetensors checkpoint (one file, an
 * index of shards, or a folder holding either) whose weights point into its files. */
#include "cli/commands.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ferry import CHECKPOINT [--layers PATTERN]... [--seq N] [--batch B]\n"
            "                    [--hidden H] [--name NAME] [-o graph.yaml]\n\n"
            "Writes a graph (ferry: graph/1) of a safetensors checkpoint: a .safetensors file,\n"
            "a *.safetensors.index.json naming shards, or a folder holding one of them. Only\n"
            "the headers are read; every weight points at its bytes in the checkpoint\n"
            "(source: {file, offset}). Weights are grouped into one op per layer, an\n"
            "embedding op first and a head op last, with an activation of batch x seq x\n"
            "hidden between ops; flops are 2 x parameters x tokens per op.\n\n"
            "options:\n"
            "  --layers P      a layer's name prefix with {i} for its number, e.g.\n"
            "                  'model.layers.{i}.'; repeat for several stacks (encoder, then\n"
            "                  decoder). Default: the common names of llama, mistral, gpt-2,\n"
            "                  gpt-neox, opt, t5, bert, ... checkpoints\n"
            "  --seq N         tokens per sequence (default 2048)\n"
            "  --batch B       sequences per batch (default 1)\n"
            "  --hidden H      activation width (default: from the embedding or the norms)\n"
            "  --name NAME     the graph's name (default: from the checkpoint's name)\n"
            "  -o, --output F  where to write the graph (default: standard output)\n");
}

static void print_info(const fy_import_info *info, const fy_graph *g, FILE *out)
{
    char a[32];
    fprintf(out, "imported %zu weights (%s) from %zu file%s", info->tensors,
            fy_size_format_human(info->weight_bytes, a, sizeof a), info->files,
            info->files == 1 ? "" : "s");
    if (info->skipped_empty)
        fprintf(out, ", leaving out %zu empty tensor%s", info->skipped_empty,
                info->skipped_empty == 1 ? "" : "s");
    fprintf(out, "\n  %zu layers (%s)", info->layers, info->patterns);
    if (info->embed_tensors)
        fprintf(out, ", embedding %zu weight%s", info->embed_tensors,
                info->embed_tensors == 1 ? "" : "s");
    if (info->head_tensors)
        fprintf(out, ", head %zu weight%s%s", info->head_tensors,
                info->head_tensors == 1 ? "" : "s", info->tied_head ? " + the tied embedding" : "");
    fprintf(out, "\n  hidden %llu", (unsigned long long)info->hidden);
    if (info->vocab) fprintf(out, ", vocab %llu", (unsigned long long)info->vocab);
    fprintf(out, ", activations %s\n", fy_dtype_name(info->act_dtype));
    fy_cli_print_graph_summary(g, out);
}

enum { OPT_LAYERS = 256, OPT_SEQ, OPT_BATCH, OPT_HIDDEN, OPT_NAME };

int fy_cmd_import(int argc, char **argv)
{
    static const struct option opts[] = {
        {"layers", required_argument, 0, OPT_LAYERS},
        {"seq", required_argument, 0, OPT_SEQ},
        {"batch", required_argument, 0, OPT_BATCH},
        {"hidden", required_argument, 0, OPT_HIDDEN},
        {"name", required_argument, 0, OPT_NAME},
        {"output", required_argument, 0, 'o'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char **layers = calloc((size_t)argc + 1, sizeof *layers);
    if (!layers) return fy_cli_fail("import", "out of memory");
    fy_import_params p = {.layers = layers, .seq = 2048, .batch = 1};
    const char *output = "-";
    int c, rc = 0;
    optind = 1;
    while (rc == 0 && (c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_LAYERS:
            layers[p.layer_count++] = optarg;
            break;
        case OPT_SEQ:
            rc = fy_cli_uint("import", "--seq", optarg, &p.seq);
            break;
        case OPT_BATCH:
            rc = fy_cli_uint("import", "--batch", optarg, &p.batch);
            break;
        case OPT_HIDDEN:
            rc = fy_cli_uint("import", "--hidden", optarg, &p.hidden);
            break;
        case OPT_NAME:
            p.name = optarg;
            break;
        case 'o':
            output = optarg;
            break;
        case 'h':
            free(layers);
            usage(stdout);
            return FY_EXIT_OK;
        default:
            free(layers);
            usage(stderr);
            return FY_EXIT_FAILURE;
        }
    }
    if (rc == 0 && optind + 1 != argc)
        rc = optind == argc ? fy_cli_fail("import", "which checkpoint? (see --help)")
                            : fy_cli_fail("import", "unexpected argument '%s'", argv[optind + 1]);
    if (rc == 0 && (p.seq == 0 || p.batch == 0))
        rc = fy_cli_fail("import", "--seq and --batch must be at least 1");
    if (rc) {
        free(layers);
        return rc;
    }
    p.graph_path = output;
    fy_error err = {0};
    fy_graph *g = NULL;
    fy_import_info info;
    rc = fy_import_safetensors(argv[optind], &p, &g, &info, &err);
    free(layers);
    if (rc < 0) return fy_cli_report(&err);
    rc = fy_graph_save(g, output, &err);
    if (rc == 0 && strcmp(output, "-") != 0) print_info(&info, g, stderr);
    fy_import_info_free(&info);
    fy_graph_destroy(g);
    return rc < 0 ? fy_cli_report(&err) : FY_EXIT_OK;
}
