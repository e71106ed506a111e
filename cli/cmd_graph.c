/* `ferry graph mlp|transformer ...` writes a synthetic graph (and optionally its weight
 * file); `ferry graph show FILE` and `ferry info FILE` print a graph's summary. */
#include "cli/commands.h"

#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ferry graph mlp [--layers N] [--hidden N] [--batch N] [OPTIONS]\n"
            "       ferry graph transformer [--layers N] [--hidden N] [--ffn N] [--heads N]\n"
            "                               [--seq N] [--batch N] [--vocab N] [OPTIONS]\n"
            "       ferry graph show FILE\n\n"
            "Writes a synthetic model graph (ferry: graph/1), or summarises one.\n\n"
            "options:\n"
            "  --dtype T        element type of weights and activations (default bf16)\n"
            "  --train          add backward ops, gradients and an adam step per weight\n"
            "  -o, --output F   where to write the graph (default: standard output)\n"
            "  --weights F      also write a weight file F; weights point into it\n"
            "  --seed N         seed of the weight file's pseudo-random content (default 1)\n"
            "defaults: mlp 8 layers, hidden 4096, batch 16; transformer 32 layers, hidden\n"
            "4096, ffn 11008, heads 32, seq 2048, batch 1, vocab 32000 (0: no embedding/head)\n");
}

void fy_cli_print_graph_summary(const fy_graph *g, FILE *out)
{
    fy_graph_summary s;
    fy_graph_summarize(g, &s);
    char a[32], b[32];
    fprintf(out, "graph %s: %zu ops, %zu tensors, %s in all, %s flops\n", fy_graph_name(g),
            s.op_count, s.tensor_count, fy_size_format_human(s.total_bytes, a, sizeof a),
            fy_flops_format(s.total_flops, b, sizeof b));
    fprintf(out, "  %-11s %8s %12s\n", "kind", "tensors", "bytes");
    for (int k = 0; k < FY_TENSOR_KIND_COUNT; k++) {
        if (!s.count_by_kind[k]) continue;
        fprintf(out, "  %-11s %8zu %12s\n", fy_tensor_kind_name((fy_tensor_kind)k),
                s.count_by_kind[k], fy_size_format_human(s.bytes_by_kind[k], a, sizeof a));
    }
    fprintf(out, "  by home:");
    for (int t = 0; t < FY_TIER_COUNT; t++)
        if (s.bytes_by_home[t])
            fprintf(out, " %s %s,", fy_tier_name((fy_tier)t),
                    fy_size_format_human(s.bytes_by_home[t], a, sizeof a));
    fprintf(out, " created by ops %s\n",
            fy_size_format_human(s.bytes_by_home[FY_TIER_COUNT], a, sizeof a));
    if (s.max_working_set_op >= 0)
        fprintf(out, "  largest op working set: %s (op '%s'): no plan fits a smaller gpu\n",
                fy_size_format_human(s.max_working_set, a, sizeof a),
                fy_graph_op(g, (size_t)s.max_working_set_op)->name);
    if (s.total_time > 0)
        fprintf(out, "  op time given: %s\n", fy_time_format(s.total_time, a, sizeof a));
}

static int show(const char *cmd, int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            printf("usage: ferry %s FILE\n\nPrints a graph's summary: ops, tensors and bytes by "
                   "kind and home,\nthe largest op's working set and total flops.\n",
                   cmd);
            return FY_EXIT_OK;
        }
        fprintf(stderr, "usage: ferry %s FILE\n", cmd);
        return FY_EXIT_FAILURE;
    }
    fy_error err = {0};
    fy_graph *g;
    if (fy_graph_load(argv[1], &g, &err) < 0) return fy_cli_report(&err);
    fy_cli_print_graph_summary(g, stdout);
    fy_graph_destroy(g);
    return FY_EXIT_OK;
}

/* The weight file's name as the graph should record it: relative to the graph's folder
 * when it lies inside it, else absolute. Returns a malloc'ed string. */
static char *weights_reference(const char *graph_path, const char *weights_path)
{
    char gdir_buf[PATH_MAX], wdir_buf[PATH_MAX], gd[PATH_MAX], wd[PATH_MAX];
    snprintf(gdir_buf, sizeof gdir_buf, "%s", strcmp(graph_path, "-") ? graph_path : "./x");
    snprintf(wdir_buf, sizeof wdir_buf, "%s", weights_path);
    const char *base = strrchr(weights_path, '/') ? strrchr(weights_path, '/') + 1 : weights_path;
    if (!realpath(dirname(gdir_buf), gd) || !realpath(dirname(wdir_buf), wd))
        return strdup(weights_path);
    size_t gl = strlen(gd);
    char out[2 * PATH_MAX + 2];
    if (strcmp(gd, wd) == 0)
        snprintf(out, sizeof out, "%s", base);
    else if (strncmp(wd, gd, gl) == 0 && wd[gl] == '/')
        snprintf(out, sizeof out, "%s/%s", wd + gl + 1, base);
    else
        snprintf(out, sizeof out, "%s/%s", wd, base);
    return strdup(out);
}

enum {
    OPT_LAYERS = 256,
    OPT_HIDDEN,
    OPT_BATCH,
    OPT_FFN,
    OPT_HEADS,
    OPT_SEQ,
    OPT_VOCAB,
    OPT_DTYPE,
    OPT_TRAIN,
    OPT_WEIGHTS,
    OPT_SEED
};

static int generate(const char *family, int argc, char **argv)
{
    static const struct option opts[] = {
        {"layers", required_argument, 0, OPT_LAYERS},
        {"hidden", required_argument, 0, OPT_HIDDEN},
        {"batch", required_argument, 0, OPT_BATCH},
        {"ffn", required_argument, 0, OPT_FFN},
        {"heads", required_argument, 0, OPT_HEADS},
        {"seq", required_argument, 0, OPT_SEQ},
        {"vocab", required_argument, 0, OPT_VOCAB},
        {"dtype", required_argument, 0, OPT_DTYPE},
        {"train", no_argument, 0, OPT_TRAIN},
        {"output", required_argument, 0, 'o'},
        {"weights", required_argument, 0, OPT_WEIGHTS},
        {"seed", required_argument, 0, OPT_SEED},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    bool mlp = strcmp(family, "mlp") == 0;
    uint64_t layers = mlp ? 8 : 32, hidden = 4096, batch = mlp ? 16 : 1, ffn = 11008, heads = 32,
             seq = 2048, vocab = 32000, seed = 1;
    fy_dtype dtype = FY_DTYPE_BF16;
    bool train = false;
    const char *output = "-", *weights = NULL;
    int c, rc = 0;
    optind = 1;
    while (rc == 0 && (c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_LAYERS:
            rc = fy_cli_uint("graph", "--layers", optarg, &layers);
            break;
        case OPT_HIDDEN:
            rc = fy_cli_uint("graph", "--hidden", optarg, &hidden);
            break;
        case OPT_BATCH:
            rc = fy_cli_uint("graph", "--batch", optarg, &batch);
            break;
        case OPT_FFN:
            rc = fy_cli_uint("graph", "--ffn", optarg, &ffn);
            break;
        case OPT_HEADS:
            rc = fy_cli_uint("graph", "--heads", optarg, &heads);
            break;
        case OPT_SEQ:
            rc = fy_cli_uint("graph", "--seq", optarg, &seq);
            break;
        case OPT_VOCAB:
            rc = fy_cli_uint("graph", "--vocab", optarg, &vocab);
            break;
        case OPT_SEED:
            rc = fy_cli_uint("graph", "--seed", optarg, &seed);
            break;
        case OPT_TRAIN:
            train = true;
            break;
        case 'o':
            output = optarg;
            break;
        case OPT_WEIGHTS:
            weights = optarg;
            break;
        case OPT_DTYPE:
            if (fy_dtype_parse(optarg, &dtype) < 0)
                rc = fy_cli_fail("graph", "--dtype: unknown dtype '%s'", optarg);
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
    if (optind != argc) return fy_cli_fail("graph", "unexpected argument '%s'", argv[optind]);
    if (layers > 1000000)
        return fy_cli_fail("graph", "--layers %llu is more than 1000000",
                           (unsigned long long)layers);
    char *ref = weights ? weights_reference(output, weights) : NULL;
    if (weights && !ref) return fy_cli_fail("graph", "out of memory");
    fy_error err = {0};
    fy_graph *g = NULL;
    if (mlp) {
        fy_mlp_params p = {.layers = (unsigned)layers,
                           .hidden = hidden,
                           .batch = batch,
                           .dtype = dtype,
                           .train = train,
                           .weights_file = ref};
        rc = fy_graph_generate_mlp(&p, &g, &err);
    } else {
        fy_transformer_params p = {.layers = (unsigned)layers,
                                   .hidden = hidden,
                                   .ffn = ffn,
                                   .heads = heads,
                                   .seq = seq,
                                   .batch = batch,
                                   .vocab = vocab,
                                   .dtype = dtype,
                                   .train = train,
                                   .weights_file = ref};
        rc = fy_graph_generate_transformer(&p, &g, &err);
    }
    free(ref);
    if (rc < 0) return fy_cli_report(&err);
    if (weights && fy_graph_write_weights(g, weights, seed, &err) < 0) rc = -1;
    if (rc == 0 && fy_graph_save(g, output, &err) < 0) rc = -1;
    if (rc == 0 && strcmp(output, "-") != 0) fy_cli_print_graph_summary(g, stderr);
    fy_graph_destroy(g);
    return rc ? fy_cli_report(&err) : FY_EXIT_OK;
}

int fy_cmd_graph(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return FY_EXIT_FAILURE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return FY_EXIT_OK;
    }
    if (!strcmp(argv[1], "show")) return show("graph show", argc - 1, argv + 1);
    if (!strcmp(argv[1], "mlp") || !strcmp(argv[1], "transformer"))
        return generate(argv[1], argc - 1, argv + 1);
    fprintf(stderr, "ferry graph: unknown family '%s' (mlp, transformer, show)\n", argv[1]);
    return FY_EXIT_FAILURE;
}

int fy_cmd_info(int argc, char **argv)
{
    return show("info", argc, argv);
}
