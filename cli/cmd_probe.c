/* `ferry probe`: measures this machine's nvme (and, with a GPU, its links and matmul rate)
 * and writes a machine file, so that `ferry simulate --machine` and `ferry plan` predict
 * this machine. */
#include "cli/commands.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ferry probe [--dir PATH] [--size SIZE] [--depth N] [--no-gpu] [--no-host]\n"
            "                   -o MACHINE.yaml\n\n"
            "Measures the machine it runs on and writes a machine file (ferry: machine/1):\n"
            "nvme write and read rates in PATH (a temporary file of SIZE, O_DIRECT through\n"
            "io_uring, many chunks in flight), with a GPU the pinned h2d and d2h rates and the\n"
            "bf16 matmul rate, and the host's matmul rate. The gpu and host capacities are\n"
            "budgets: they keep the default's values (or --machine's); edit them as needed.\n\n"
            "options:\n"
            "  --dir PATH       where to measure the nvme (default: the machine's nvme dir)\n"
            "  --size SIZE      bytes written then read back (default 1GiB)\n"
            "  --depth N        1MiB chunks in flight (default 32)\n"
            "  --machine M      start from this machine file instead of the default\n"
            "  --no-gpu         do not measure the gpu\n"
            "  --no-host        do not measure the host's matmul rate\n"
            "  -o, --output F   the machine file to write (required; - for standard output)\n");
}

int fy_cmd_probe(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
                                         {"size", required_argument, NULL, 's'},
                                         {"depth", required_argument, NULL, 'q'},
                                         {"machine", required_argument, NULL, 'm'},
                                         {"no-gpu", no_argument, NULL, 'G'},
                                         {"no-host", no_argument, NULL, 'H'},
                                         {"output", required_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    fy_probe_options o = {.gpu = true, .host = true};
    const char *out = NULL, *base = NULL;
    uint64_t depth = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            o.dir = optarg;
            break;
        case 's':
            if (fy_cli_size("probe", "--size", optarg, &o.size) != 0) return FY_EXIT_FAILURE;
            break;
        case 'q':
            if (fy_cli_uint("probe", "--depth", optarg, &depth) != 0) return FY_EXIT_FAILURE;
            if (depth > 4096) return fy_cli_fail("probe", "--depth: at most 4096");
            o.depth = (unsigned)depth;
            break;
        case 'm':
            base = optarg;
            break;
        case 'G':
            o.gpu = false;
            break;
        case 'H':
            o.host = false;
            break;
        case 'o':
            out = optarg;
            break;
        case 'h':
            usage(stdout);
            return FY_EXIT_OK;
        default:
            usage(stderr);
            return FY_EXIT_FAILURE;
        }
    }
    if (optind != argc || !out) {
        usage(stderr);
        return FY_EXIT_FAILURE;
    }
    fy_error err = {0};
    fy_machine m;
    fy_machine_default(&m);
    if (base && fy_machine_load(base, &m, &err) < 0) return fy_cli_report(&err);
    fy_probe_report rep;
    if (fy_machine_probe(&o, &m, &rep, &err) < 0) return fy_cli_report(&err);
    if (fy_machine_save(&m, out, &err) < 0) return fy_cli_report(&err);
    FILE *msg = strcmp(out, "-") ? stdout : stderr;
    char a[32], b[32], s[32];
    fprintf(msg, "nvme %s (%s, %s, %s each way): write %s, read %s\n", m.nvme_dir, rep.io_backend,
            rep.direct ? "O_DIRECT" : "page cache", fy_size_format_human(rep.bytes, s, sizeof s),
            fy_rate_format(m.nvme_write, a, sizeof a), fy_rate_format(m.nvme_read, b, sizeof b));
    if (rep.io_note[0]) fprintf(msg, "  note: %s\n", rep.io_note);
    if (rep.gpu_measured)
        fprintf(msg, "gpu %s: h2d %s, d2h %s, matmul %.1f TFLOPS\n", rep.gpu,
                fy_rate_format(m.h2d, a, sizeof a), fy_rate_format(m.d2h, b, sizeof b),
                m.gpu_compute / 1e12);
    else if (o.gpu)
        fprintf(msg, "gpu %s; its rates keep their values\n", rep.gpu);
    if (rep.host_measured) fprintf(msg, "host matmul %.1f GFLOPS\n", m.host_compute / 1e9);
    if (strcmp(out, "-")) fprintf(msg, "wrote %s\n", out);
    return FY_EXIT_OK;
}
