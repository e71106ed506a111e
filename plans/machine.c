/* The machine file (`ferry: machine/1`): the built-in default, the reader (shared with a
 * plan's `machine:` section) and the writer. Values are written in exact unit forms that
 * read back to the same numbers, so a machine saved and loaded is the same machine. */
#include "plans/plan_model.h"

#include "core/buf.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void fy_machine_default(fy_machine *m)
{
    memset(m, 0, sizeof *m);
    m->capacity[FY_TIER_GPU] = 80ull << 30;
    m->capacity[FY_TIER_HOST] = 64ull << 30;
    m->capacity[FY_TIER_NVME] = 1ull << 40;
    m->gpu_compute = 700e12;
    m->host_compute = 1e12;
    m->h2d = 55e9;
    m->d2h = 55e9;
    m->nvme_read = 3e9;
    m->nvme_write = 2e9;
    snprintf(m->nvme_dir, sizeof m->nvme_dir, "/var/tmp/ferry");
}

static const char *const machine_keys[] = {"ferry", "gpu", "host", "nvme", NULL};
static const char *const section_keys[] = {"gpu", "host", "nvme", NULL};
static const char *const gpu_keys[] = {"capacity", "compute", "h2d", "d2h", NULL};
static const char *const host_keys[] = {"capacity", "compute", NULL};
static const char *const nvme_keys[] = {"dir", "capacity", "read", "write", NULL};

/* Reads the rate-like field key of tier mapping t, if present. */
static int read_rate(const fy_ydoc *doc, const fy_ynode *t, const char *tier, const char *key,
                     bool flops, double *out, fy_error *err)
{
    const fy_ynode *v = fy_ymap_get(t, key);
    if (!v) return 0;
    char what[64];
    snprintf(what, sizeof what, "%s %s", tier, key);
    int rc =
        flops ? fy_ynode_flops_rate(doc, v, what, out, err) : fy_ynode_rate(doc, v, what, out, err);
    if (rc == 0 && *out <= 0)
        return fy_ydoc_error(doc, v, err, FY_ERANGE, "%s must be more than zero", what);
    return rc;
}

static int read_tier(const fy_ydoc *doc, const fy_ynode *t, fy_tier tier, fy_machine *m,
                     fy_error *err)
{
    static const char *const *const keys[] = {gpu_keys, host_keys, nvme_keys};
    const char *name = fy_tier_name(tier);
    char what[64];
    snprintf(what, sizeof what, "machine tier '%s'", name);
    int rc = fy_ymap_check(doc, t, keys[tier], what, err);
    if (rc < 0) return rc;
    const fy_ynode *v = fy_ymap_get(t, "capacity");
    snprintf(what, sizeof what, "%s capacity", name);
    if (v && (rc = fy_ynode_size(doc, v, what, &m->capacity[tier], err)) < 0) return rc;
    switch (tier) {
    case FY_TIER_GPU:
        if ((rc = read_rate(doc, t, name, "compute", true, &m->gpu_compute, err)) < 0 ||
            (rc = read_rate(doc, t, name, "h2d", false, &m->h2d, err)) < 0 ||
            (rc = read_rate(doc, t, name, "d2h", false, &m->d2h, err)) < 0)
            return rc;
        break;
    case FY_TIER_HOST:
        if ((rc = read_rate(doc, t, name, "compute", true, &m->host_compute, err)) < 0) return rc;
        break;
    default:
        if ((rc = read_rate(doc, t, name, "read", false, &m->nvme_read, err)) < 0 ||
            (rc = read_rate(doc, t, name, "write", false, &m->nvme_write, err)) < 0)
            return rc;
        if ((v = fy_ymap_get(t, "dir"))) {
            const char *dir;
            if ((rc = fy_ynode_string(doc, v, "nvme dir", &dir, err)) < 0) return rc;
            if (strlen(dir) >= sizeof m->nvme_dir)
                return fy_ydoc_error(doc, v, err, FY_ERANGE, "nvme dir is longer than %d bytes",
                                     FY_MACHINE_DIR_MAX - 1);
            snprintf(m->nvme_dir, sizeof m->nvme_dir, "%s", dir);
        }
        break;
    }
    return 0;
}

int fy_machine_read(const fy_ydoc *doc, const fy_ynode *map, bool file, fy_machine *m,
                    unsigned lines[FY_TIER_COUNT], fy_error *err)
{
    if (file && !map)
        return fy_ydoc_error(doc, NULL, err, FY_EPARSE,
                             "empty file: expected a machine (ferry: machine/1)");
    int rc = fy_ymap_check(doc, map, file ? machine_keys : section_keys,
                           file ? "the machine" : "the plan's machine", err);
    if (rc < 0) return rc;
    if (file) {
        const fy_ynode *header = fy_ymap_get(map, "ferry");
        if (!header)
            return fy_ydoc_error(doc, map, err, FY_EPARSE,
                                 "missing header: the file must start with 'ferry: machine/1'");
        if (!fy_ynode_is(header, "machine/1"))
            return fy_ydoc_error(doc, header, err, FY_EPARSE,
                                 "wrong header '%s': expected 'ferry: machine/1'",
                                 header->kind == FY_YSCALAR ? header->u.text : "(not a scalar)");
    }
    /* Read into a copy so that a failure leaves m as it was. */
    fy_machine next = *m;
    for (int t = 0; t < FY_TIER_COUNT; t++) {
        const fy_ynode *v = fy_ymap_get(map, fy_tier_name((fy_tier)t));
        if (!v) continue;
        if ((rc = read_tier(doc, v, (fy_tier)t, &next, err)) < 0) return rc;
        if (lines) lines[t] = v->line;
    }
    *m = next;
    return 0;
}

int fy_machine_load(const char *path, fy_machine *m, fy_error *err)
{
    fy_ydoc *doc;
    int rc = fy_ydoc_load_file(path, &doc, err);
    if (rc < 0) return rc;
    rc = fy_machine_read(doc, fy_ydoc_root(doc), true, m, NULL, err);
    fy_ydoc_destroy(doc);
    return rc;
}

typedef int (*parse_fn)(const char *, double *, fy_error *);

/* Writes v as "<number><unit>" in the largest unit whose shortest number reads back (through
 * parse) as exactly v; units run from largest to smallest, the last with scale 1. */
static void put_exact(fy_buf *b, double v, const char *const *names, const double *scales,
                      int count, parse_fn parse)
{
    char text[64];
    for (int u = 0; u < count; u++) {
        if (v < scales[u] && u < count - 1) continue;
        for (int digits = 1; digits <= 17; digits++) {
            double back;
            snprintf(text, sizeof text, "%.*g%s", digits, v / scales[u], names[u]);
            /* "7e+02TFLOPS" reads back but nobody writes it so: want "700TFLOPS". */
            if (strchr(text, 'e') && digits < 17) continue;
            if (parse(text, &back, NULL) == 0 && back == v) {
                fy_buf_puts(b, text);
                return;
            }
        }
    }
    /* No unit reproduced v exactly (it cannot happen for finite v with scale 1, since
     * %.17g is exact); write the plain form anyway rather than nothing. */
    snprintf(text, sizeof text, "%.17g%s", v, names[count - 1]);
    fy_buf_puts(b, text);
}

static void put_rate(fy_buf *b, double v)
{
    static const char *const names[] = {"TB/s", "GB/s", "MB/s", "KB/s", "B/s"};
    static const double scales[] = {1e12, 1e9, 1e6, 1e3, 1};
    put_exact(b, v, names, scales, 5, fy_rate_parse);
}

static void put_flops(fy_buf *b, double v)
{
    static const char *const names[] = {"PFLOPS", "TFLOPS", "GFLOPS", "MFLOPS", "KFLOPS", "FLOPS"};
    static const double scales[] = {1e15, 1e12, 1e9, 1e6, 1e3, 1};
    put_exact(b, v, names, scales, 6, fy_flops_rate_parse);
}

typedef struct rate_field {
    const char *key;
    double v, def;
    bool flops;
} rate_field;

void fy_machine_write_tier(fy_buf *b, const fy_machine *m, fy_tier tier, bool only_changed)
{
    fy_machine d;
    fy_machine_default(&d);
    char size[32];
    fy_buf_puts(b, "{");
    if (tier == FY_TIER_NVME && (!only_changed || strcmp(m->nvme_dir, d.nvme_dir) != 0)) {
        fy_buf_puts(b, "dir: ");
        fy_buf_scalar(b, m->nvme_dir);
        fy_buf_puts(b, ", ");
    }
    fy_buf_printf(b, "capacity: %s", fy_size_format_exact(m->capacity[tier], size, sizeof size));
    rate_field f[3];
    int n = 0;
    if (tier == FY_TIER_GPU) {
        f[n++] = (rate_field){"compute", m->gpu_compute, d.gpu_compute, true};
        f[n++] = (rate_field){"h2d", m->h2d, d.h2d, false};
        f[n++] = (rate_field){"d2h", m->d2h, d.d2h, false};
    } else if (tier == FY_TIER_HOST) {
        f[n++] = (rate_field){"compute", m->host_compute, d.host_compute, true};
    } else {
        f[n++] = (rate_field){"read", m->nvme_read, d.nvme_read, false};
        f[n++] = (rate_field){"write", m->nvme_write, d.nvme_write, false};
    }
    for (int i = 0; i < n; i++) {
        if (only_changed && f[i].v == f[i].def) continue;
        fy_buf_printf(b, ", %s: ", f[i].key);
        if (f[i].flops)
            put_flops(b, f[i].v);
        else
            put_rate(b, f[i].v);
    }
    fy_buf_puts(b, "}");
}

int fy_machine_save(const fy_machine *m, const char *path, fy_error *err)
{
    const double rates[] = {m->gpu_compute, m->host_compute, m->h2d,
                            m->d2h,         m->nvme_read,    m->nvme_write};
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++)
        if (!isfinite(rates[i]) || rates[i] <= 0)
            return fy_error_set(err, FY_EINVAL, "machine rates must be finite and positive");
    fy_buf b = {0};
    fy_buf_puts(&b, "ferry: machine/1\ngpu:  ");
    fy_machine_write_tier(&b, m, FY_TIER_GPU, false);
    fy_buf_puts(&b, "\nhost: ");
    fy_machine_write_tier(&b, m, FY_TIER_HOST, false);
    fy_buf_puts(&b, "\nnvme: ");
    fy_machine_write_tier(&b, m, FY_TIER_NVME, false);
    fy_buf_puts(&b, "\n");
    int rc = fy_buf_write_file(&b, path, err);
    fy_buf_free(&b);
    return rc;
}
