/* `ferry run PLAN`: runs a checked plan on a device (sim or cuda) and prints the measured
 * report; --trace writes the measured timeline, --inputs/--outputs exchange tensors as
 * DIR/<tensor>.bin files. On a terminal (and without --quiet) a progress line is redrawn at
 * most ten times a second on stderr; it never goes to a pipe or a file. */
#include "cli/commands.h"

#include "core/buf.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ferry run PLAN [OPTIONS]\n\n"
            "Runs a plan (ferry: plan/1) that passes `ferry check`, and reports the measured\n"
            "time, bytes and busy time per queue, compute stalls and arena peaks.\n\n"
            "options:\n"
            "  --device D      sim, cuda or auto (default auto: cuda when there is one)\n"
            "  --emulate       run every compute as the `spin` kernel for the op's predicted\n"
            "                  time (its time, else flops / the machine's compute rate)\n"
            "                  instead of its kind's kernel: any graph runs (an imported\n"
            "                  checkpoint, a generated transformer), and the run measures how\n"
            "                  fast the plan streams its real bytes here. Without it, an op\n"
            "                  whose kind has no kernel stops the run before it starts\n"
            "  --verify-weights  check every weight against its source file as it lands\n"
            "                  (host arena after each read; gpu copies too on sim): the file\n"
            "                  bytes are hashed (crc32c) before the run, and a mismatch is an\n"
            "                  error naming the tensor and the file (slower: measure\n"
            "                  without it)\n"
            "  --io B          auto, io_uring or threads (default auto)\n"
            "  --trace F       write the measured timeline as Chrome trace JSON\n"
            "  --inputs DIR    read each input (host-home tensor) from DIR/<tensor>.bin; a\n"
            "                  missing file (or no --inputs) gives deterministic pseudo-random\n"
            "                  values drawn from the tensor's name\n"
            "  --outputs DIR   write each output to DIR/<tensor>.bin ('/' in names becomes '_')\n"
            "  --nvme-dir DIR  where the spill file goes (default: the plan machine's nvme dir)\n"
            "  --chunk SIZE    io chunk size (default 1MiB); --depth N: chunks in flight (32)\n"
            "  --threads N     CPU threads per kernel (default: all)\n"
            "  --buffered      never use O_DIRECT\n"
            "  --no-pin        leave the input buffers pageable (cuda pins them for the run)\n"
            "  --warmup N      run the plan N times first, untimed (default 0)\n"
            "  --repeat N      timed runs (default 1); the report and trace are the run of\n"
            "                  median wall time, and every run's wall time is listed\n"
            "  --quiet         no progress line and no report\n\n"
            "The report ends with the bytes read from weights' source files (a checkpoint\n"
            "streamed by the plan) and, with --verify-weights, how many copies were verified.\n");
}

/* ---- inputs and outputs ------------------------------------------------------------ */

static uint64_t name_seed(const char *name)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *p = name; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return h ? h : 1;
}

/* Values in [-1, 1) for float types (so matmuls stay finite), bytes otherwise. The same name
 * always gives the same content: docs/engine.md documents the generator. */
static void fill_pseudo_random(const fy_tensor *t, uint8_t *buf)
{
    uint64_t s = name_seed(t->name);
    size_t n = (size_t)t->size;
    for (size_t i = 0; i < n;) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        float v = (float)((double)(s >> 40) / 8388608.0 - 1.0);
        if (t->dtype == FY_DTYPE_F32 && i + 4 <= n) {
            memcpy(buf + i, &v, 4);
            i += 4;
        } else if (t->dtype == FY_DTYPE_BF16 && i + 2 <= n) {
            uint16_t b = fy_bf16_from_f32(v);
            memcpy(buf + i, &b, 2);
            i += 2;
        } else {
            buf[i++] = (uint8_t)(s >> 56);
        }
    }
}

static void tensor_file(char *path, size_t size, const char *dir, const char *name)
{
    int n = snprintf(path, size, "%s/", dir);
    for (const char *p = name; *p && n + 1 < (int)size; p++)
        path[n++] = *p == '/' ? '_' : *p;
    snprintf(path + n, size - (size_t)n, ".bin");
}

typedef struct buffers {
    fy_engine_buffer *in, *out;
    size_t nin, nout;
} buffers;

static void buffers_free(buffers *b)
{
    for (size_t k = 0; k < b->nin; k++)
        free(b->in[k].data);
    for (size_t k = 0; k < b->nout; k++)
        free(b->out[k].data);
    free(b->in);
    free(b->out);
}

static int buffers_make(const fy_graph *g, const char *inputs, bool quiet, buffers *b)
{
    size_t nt = fy_graph_tensor_count(g);
    b->in = calloc(nt ? nt : 1, sizeof *b->in);
    b->out = calloc(nt ? nt : 1, sizeof *b->out);
    if (!b->in || !b->out) return fy_cli_fail("run", "out of memory");
    size_t generated = 0;
    for (size_t t = 0; t < nt; t++) {
        const fy_tensor *tn = fy_graph_tensor(g, t);
        if (tn->kind == FY_TENSOR_OUTPUT) {
            void *p = calloc(1, tn->size ? tn->size : 1);
            if (!p) return fy_cli_fail("run", "out of memory for output '%s'", tn->name);
            b->out[b->nout++] = (fy_engine_buffer){tn->name, p, tn->size};
        }
        if (tn->home != FY_TIER_HOST) continue;
        /* Page-aligned, as a pinned allocation is: malloc puts a large block 16 bytes past a page
         * boundary, and the copy engine reads such a source measurably slower (docs/performance.md,
         * "The batch-64 gap"). */
        uint8_t *p = NULL;
        if (posix_memalign((void **)&p, FY_ENGINE_INPUT_ALIGN, tn->size ? tn->size : 1) != 0)
            p = NULL;
        if (!p) return fy_cli_fail("run", "out of memory for input '%s'", tn->name);
        b->in[b->nin++] = (fy_engine_buffer){tn->name, p, tn->size};
        char path[4200];
        FILE *f = NULL;
        if (inputs) {
            tensor_file(path, sizeof path, inputs, tn->name);
            f = fopen(path, "rb");
            if (!f && errno != ENOENT)
                return fy_cli_fail("run", "cannot read %s: %s", path, strerror(errno));
        }
        if (!f) {
            fill_pseudo_random(tn, p);
            generated++;
            continue;
        }
        struct stat st;
        bool ok = fstat(fileno(f), &st) == 0 && (uint64_t)st.st_size == tn->size &&
                  fread(p, 1, (size_t)tn->size, f) == tn->size;
        fclose(f);
        if (!ok)
            return fy_cli_fail("run", "%s: input '%s' needs exactly %llu bytes", path, tn->name,
                               (unsigned long long)tn->size);
    }
    if (generated && inputs && !quiet)
        fprintf(stderr, "ferry run: %zu input(s) not in %s: using pseudo-random values\n",
                generated, inputs);
    return 0;
}

static int write_outputs(const buffers *b, const char *dir)
{
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return fy_cli_fail("run", "cannot create %s: %s", dir, strerror(errno));
    for (size_t k = 0; k < b->nout; k++) {
        char path[4200];
        fy_error err = {0};
        tensor_file(path, sizeof path, dir, b->out[k].name);
        if (fy_file_write_atomic(path, b->out[k].data, (size_t)b->out[k].size, &err) < 0)
            return fy_cli_report(&err);
    }
    return 0;
}

/* ---- progress and report ----------------------------------------------------------- */

typedef struct progress_state {
    double last_t;
    uint64_t last_bytes;
    double rate; /* smoothed bytes/s */
    bool drawn;
} progress_state;

static void on_progress(void *user, const fy_engine_progress *p)
{
    progress_state *s = user;
    double dt = p->elapsed_s - s->last_t;
    if (dt <= 0) return;
    double r = (double)(p->bytes_done - s->last_bytes) / dt;
    s->rate = s->drawn ? 0.7 * s->rate + 0.3 * r : r;
    s->last_t = p->elapsed_s;
    s->last_bytes = p->bytes_done;
    double frac = p->bytes_total
                      ? (double)p->bytes_done / (double)p->bytes_total
                      : (double)p->events_done / (double)(p->events_total + !p->events_total);
    char moved[32], rate[32], left[32] = "?";
    if (frac > 0.001) fy_time_format(p->elapsed_s * (1 - frac) / frac, left, sizeof left);
    fprintf(stderr, "\r\033[K%zu/%zu events, %s moved, %s, %s left", p->events_done,
            p->events_total, fy_size_format_human(p->bytes_done, moved, sizeof moved),
            fy_rate_format(s->rate, rate, sizeof rate), left);
    fflush(stderr);
    s->drawn = true;
}

/* The simulator's prediction for the plan on its machine, printed beside the measurement
 * (the same replay as `ferry simulate PLAN`). */
typedef struct prediction {
    double wall_s;
    double busy_s[FY_ENGINE_QUEUE_COUNT];
    double stall_s;
} prediction;

/* Fills pred from the simulator; returns 0, or -1 when it could not run (the report then
 * says the prediction is not available). */
static int predict(const fy_plan *plan, prediction *pred)
{
    fy_sim *sim;
    if (fy_simulate(plan, NULL, NULL, &sim, NULL) < 0) return -1;
    const fy_sim_summary *s = fy_sim_summary_get(sim);
    pred->wall_s = s->total_s;
    pred->stall_s = s->stall_s;
    /* The engine's queues and the simulator's are the same five, in the same order. */
    _Static_assert(FY_ENGINE_QUEUE_IO == (int)FY_SIM_QUEUE_IO &&
                       FY_ENGINE_QUEUE_H2D == (int)FY_SIM_QUEUE_H2D &&
                       FY_ENGINE_QUEUE_D2H == (int)FY_SIM_QUEUE_D2H &&
                       FY_ENGINE_QUEUE_GPU == (int)FY_SIM_QUEUE_GPU &&
                       FY_ENGINE_QUEUE_HOST == (int)FY_SIM_QUEUE_HOST,
                   "engine and simulator queues differ");
    for (int q = 0; q < FY_ENGINE_QUEUE_COUNT && q < FY_SIM_QUEUE_COUNT; q++)
        pred->busy_s[q] = s->queue[q].busy_s;
    fy_sim_destroy(sim);
    return 0;
}

static void print_report(const char *plan_path, const fy_engine_report *r, const prediction *pr,
                         bool verify)
{
    char a[32], b[32], c[32], d[32];
    printf("ran %s on %s; io: %s\n", plan_path, r->device, r->io);
    if (r->pinned_bytes || r->unpinned_bytes) {
        printf("  input buffers page-locked for the run: %s in %s (before the clock started)",
               fy_size_format_human(r->pinned_bytes, a, sizeof a),
               fy_time_format(r->pin_s, b, sizeof b));
        if (r->unpinned_bytes)
            printf("; %s left pageable: %s", fy_size_format_human(r->unpinned_bytes, c, sizeof c),
                   r->pin_note);
        printf("\n");
        if (r->misaligned_bytes)
            printf("  note: %s of them off page boundaries: %s\n",
                   fy_size_format_human(r->misaligned_bytes, c, sizeof c), r->align_note);
    }
    printf("  wall time %s", fy_time_format(r->wall_s, a, sizeof a));
    if (pr)
        printf("   (predicted %s on the plan's machine; `ferry simulate` for more)",
               fy_time_format(pr->wall_s, b, sizeof b));
    else
        printf("   (predicted: not available here; see `ferry simulate`)");
    printf("\n  %-5s %8s %10s %10s %6s %10s %10s\n", "queue", "events", "bytes", "busy", "share",
           "rate", "predicted");
    for (int q = 0; q < FY_ENGINE_QUEUE_COUNT; q++) {
        const fy_engine_queue_stats *s = &r->queue[q];
        if (!s->events) continue;
        double share = r->wall_s > 0 ? 100.0 * s->busy_s / r->wall_s : 0;
        printf("  %-5s %8zu %10s %10s %5.1f%% %10s %10s\n",
               fy_engine_queue_name((fy_engine_queue)q), s->events,
               fy_size_format_human(s->bytes, a, sizeof a), fy_time_format(s->busy_s, b, sizeof b),
               share,
               s->bytes && s->busy_s > 0 ? fy_rate_format((double)s->bytes / s->busy_s, c, sizeof c)
                                         : "-",
               pr ? fy_time_format(pr->busy_s[q], d, sizeof d) : "-");
    }
    printf("  compute stalls: %s in %zu", fy_time_format(r->stall_s, a, sizeof a), r->stall_count);
    if (r->stall_worst >= 0)
        printf("; longest %s before event %ld: %s", fy_time_format(r->stall_worst_s, b, sizeof b),
               r->stall_worst, r->stall_cause);
    printf("\n  arenas (peak of live copies / allocated):");
    const char *sep = " ";
    for (int t = 0; t < FY_TIER_COUNT; t++) {
        if (!r->arena[t]) continue;
        printf("%s%s %s / %s", sep, fy_tier_name((fy_tier)t),
               fy_size_format_human(r->peak[t], a, sizeof a),
               fy_size_format_human(r->arena[t], b, sizeof b));
        sep = ", ";
    }
    printf("\n");
    if (r->emulated_count)
        printf("  emulated: %zu computes ran `spin` for their predicted time\n", r->emulated_count);
    if (r->source_reads)
        printf("  read from source files: %llu bytes in %zu loads (%s)\n",
               (unsigned long long)r->source_bytes, r->source_reads,
               fy_size_format_human(r->source_bytes, a, sizeof a));
    if (verify)
        printf("  verified against source files: %zu copies, %llu bytes, all intact\n",
               r->verified_count, (unsigned long long)r->verified_bytes);
}

/* ---- repeated runs ----------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Runs the plan warmup + repeat times; keeps in rep the timed run of median wall time (the
 * lower middle one for an even count) and, with more than one run, lists the wall times. */
static int run_repeated(fy_engine *eng, const fy_plan *plan, const fy_engine_run_args *args,
                        size_t warmup, size_t repeat, bool quiet, fy_engine_report *rep,
                        progress_state *ps)
{
    fy_engine_report *runs = calloc(repeat, sizeof *runs);
    double *sorted = calloc(repeat, sizeof *sorted);
    if (!runs || !sorted) {
        free(runs);
        free(sorted);
        return fy_cli_fail("run", "out of memory");
    }
    int rc = 0;
    for (size_t k = 0; k < warmup + repeat && rc == 0; k++) {
        fy_engine_report r = {0};
        fy_error err = {0};
        int run_rc = fy_engine_run(eng, plan, args, &r, &err);
        if (ps->drawn) fprintf(stderr, "\r\033[K");
        *ps = (progress_state){0};
        if (run_rc < 0)
            rc = fy_cli_report(&err);
        else if (k < warmup)
            fy_engine_report_free(&r);
        else
            runs[k - warmup] = r;
    }
    if (rc == 0) {
        for (size_t k = 0; k < repeat; k++)
            sorted[k] = runs[k].wall_s;
        qsort(sorted, repeat, sizeof *sorted, cmp_double);
        double median = sorted[(repeat - 1) / 2];
        size_t pick = 0;
        while (runs[pick].wall_s != median)
            pick++;
        *rep = runs[pick];
        runs[pick] = (fy_engine_report){0};
        if (!quiet && (repeat > 1 || warmup)) {
            printf("runs: %zu timed after %zu warm-up; wall times (ms):", repeat, warmup);
            for (size_t k = 0; k < repeat; k++)
                printf(" %.3f", (k == pick ? rep : &runs[k])->wall_s * 1e3);
            printf("; median %.3f ms\n", median * 1e3);
        }
    }
    for (size_t k = 0; k < repeat; k++)
        fy_engine_report_free(&runs[k]);
    free(runs);
    free(sorted);
    return rc;
}

/* ---- the command ------------------------------------------------------------------- */

/* Runs the checker and prints its errors as `ferry check` does, on stderr. Returns
 * FY_EXIT_OK, FY_EXIT_VIOLATIONS or FY_EXIT_FAILURE. */
static int check_before_run(const fy_plan *plan, const char *path)
{
    fy_error err = {0};
    fy_check_report *rep;
    int n = fy_check_plan(plan, NULL, &rep, &err);
    if (n < 0) return fy_cli_report(&err);
    for (size_t k = 0; k < fy_check_report_count(rep); k++) {
        const fy_violation *v = fy_check_report_get(rep, k);
        if (!v->warning)
            fprintf(stderr, "%s:%u: error[%s]: %s\n", path, v->line, fy_check_class_name(v->cls),
                    v->message);
    }
    if (n > 0)
        fprintf(stderr, "ferry run: %s fails its check (%d error%s): not running it\n", path, n,
                n == 1 ? "" : "s");
    fy_check_report_destroy(rep);
    return n > 0 ? FY_EXIT_VIOLATIONS : FY_EXIT_OK;
}

enum {
    OPT_DEVICE = 256,
    OPT_IO,
    OPT_TRACE,
    OPT_INPUTS,
    OPT_OUTPUTS,
    OPT_NVME,
    OPT_CHUNK,
    OPT_DEPTH,
    OPT_THREADS,
    OPT_BUFFERED,
    OPT_NO_PIN,
    OPT_WARMUP,
    OPT_REPEAT,
    OPT_QUIET,
    OPT_EMULATE,
    OPT_VERIFY
};

int fy_cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"device", required_argument, 0, OPT_DEVICE},
        {"io", required_argument, 0, OPT_IO},
        {"trace", required_argument, 0, OPT_TRACE},
        {"inputs", required_argument, 0, OPT_INPUTS},
        {"outputs", required_argument, 0, OPT_OUTPUTS},
        {"nvme-dir", required_argument, 0, OPT_NVME},
        {"chunk", required_argument, 0, OPT_CHUNK},
        {"depth", required_argument, 0, OPT_DEPTH},
        {"threads", required_argument, 0, OPT_THREADS},
        {"buffered", no_argument, 0, OPT_BUFFERED},
        {"no-pin", no_argument, 0, OPT_NO_PIN},
        {"warmup", required_argument, 0, OPT_WARMUP},
        {"repeat", required_argument, 0, OPT_REPEAT},
        {"quiet", no_argument, 0, OPT_QUIET},
        {"emulate", no_argument, 0, OPT_EMULATE},
        {"verify-weights", no_argument, 0, OPT_VERIFY},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    fy_engine_config cfg = {0};
    const char *trace = NULL, *inputs = NULL, *outputs = NULL;
    bool quiet = false, verify = false;
    uint64_t v, warmup = 0, repeat = 1;
    int c, rc = 0;
    optind = 1;
    while (rc == 0 && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_DEVICE:
            cfg.device = optarg;
            break;
        case OPT_IO:
            cfg.io = optarg;
            break;
        case OPT_TRACE:
            trace = optarg;
            break;
        case OPT_INPUTS:
            inputs = optarg;
            break;
        case OPT_OUTPUTS:
            outputs = optarg;
            break;
        case OPT_NVME:
            cfg.nvme_dir = optarg;
            break;
        case OPT_CHUNK:
            rc = fy_cli_size("run", "--chunk", optarg, &v);
            cfg.chunk_size = (size_t)v;
            break;
        case OPT_DEPTH:
            rc = fy_cli_uint("run", "--depth", optarg, &v);
            if (rc == 0 && (v == 0 || v > 65536))
                rc = fy_cli_fail("run", "--depth must be between 1 and 65536");
            cfg.queue_depth = (unsigned)v;
            break;
        case OPT_THREADS:
            rc = fy_cli_uint("run", "--threads", optarg, &v);
            if (rc == 0 && v > 4096) rc = fy_cli_fail("run", "--threads must be at most 4096");
            cfg.threads = (unsigned)v;
            break;
        case OPT_BUFFERED:
            cfg.buffered_io = true;
            break;
        case OPT_NO_PIN:
            cfg.keep_pageable = true;
            break;
        case OPT_WARMUP:
            rc = fy_cli_uint("run", "--warmup", optarg, &warmup);
            if (rc == 0 && warmup > 1000) rc = fy_cli_fail("run", "--warmup must be at most 1000");
            break;
        case OPT_REPEAT:
            rc = fy_cli_uint("run", "--repeat", optarg, &repeat);
            if (rc == 0 && (repeat == 0 || repeat > 1000))
                rc = fy_cli_fail("run", "--repeat must be between 1 and 1000");
            break;
        case OPT_QUIET:
            quiet = true;
            break;
        case OPT_EMULATE:
            cfg.emulate = true;
            break;
        case OPT_VERIFY:
            verify = true;
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
    if (optind + 1 != argc) {
        usage(stderr);
        return FY_EXIT_FAILURE;
    }
    const char *plan_path = argv[optind];
    fy_error err = {0};
    fy_plan *plan;
    if (fy_plan_load(plan_path, NULL, &plan, &err) < 0) return fy_cli_report(&err);
    rc = check_before_run(plan, plan_path);
    if (rc != FY_EXIT_OK) {
        fy_plan_destroy(plan);
        return rc;
    }
    fy_engine *eng = NULL;
    buffers bufs = {0};
    fy_engine_report rep = {0};
    if (fy_engine_open(&cfg, &eng, &err) < 0) {
        rc = fy_cli_report(&err);
        goto done;
    }
    if (fy_engine_note(eng)[0] && !quiet) fprintf(stderr, "ferry run: %s\n", fy_engine_note(eng));
    rc = buffers_make(fy_plan_graph(plan), inputs, quiet, &bufs);
    if (rc) goto done;
    progress_state ps = {0};
    bool live = !quiet && isatty(STDERR_FILENO) && isatty(STDOUT_FILENO);
    fy_engine_run_args args = {.inputs = bufs.in,
                               .input_count = bufs.nin,
                               .outputs = bufs.out,
                               .output_count = bufs.nout,
                               .user = &ps,
                               .on_progress = live ? on_progress : NULL,
                               .progress_interval_s = 0.1,
                               .verify_weights = verify};
    rc = run_repeated(eng, plan, &args, (size_t)warmup, (size_t)repeat, quiet, &rep, &ps);
    if (rc) goto done;
    if (!quiet) {
        prediction pred, *pr = predict(plan, &pred) == 0 ? &pred : NULL;
        print_report(plan_path, &rep, pr, verify);
    }
    if (trace && fy_engine_report_trace(&rep, plan, trace, &err) < 0) {
        rc = fy_cli_report(&err);
        goto done;
    }
    if (outputs) rc = write_outputs(&bufs, outputs);
done:
    fy_engine_report_free(&rep);
    buffers_free(&bufs);
    fy_engine_close(eng);
    fy_plan_destroy(plan);
    return rc;
}
