/* `ferry plan --sequence A.yaml,B.yaml,A.yaml` and `ferry plan --trace FILE`: reads the graphs
 * of a request sequence, builds the one graph that runs them in order (fy_sequence_graph:
 * shared weights "MODEL/NAME", per-request tensors and ops "MODEL@K/NAME"), and writes it
 * beside the plan; after planning, tells per request how many weight bytes it loads to the
 * gpu. A model is a graph FILE: the same file twice is the same model, named by its file's
 * stem (made unique when two files share a stem). */
#include "cli/commands.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

typedef struct seq {
    char **paths; /* distinct models' real paths */
    char **names;
    fy_graph **graphs;
    size_t count, cap;
    size_t *req;
    size_t req_count, req_cap;
} seq;

static void seq_free(seq *s)
{
    for (size_t i = 0; i < s->count; i++) {
        free(s->paths[i]);
        free(s->names[i]);
        fy_graph_destroy(s->graphs[i]);
    }
    free(s->paths);
    free(s->names);
    free(s->graphs);
    free(s->req);
}

static char *stem(const char *path)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    char *b = basename(buf), *dot = strchr(b, '.');
    if (dot && dot != b) *dot = '\0';
    for (char *p = b; *p; p++)
        if (*p == '/' || *p == '@') *p = '_';
    return strdup(b);
}

/* Adds one request of the graph at path (where: "file:line" or "--sequence" for messages). */
static int seq_add(seq *s, const char *path, const char *where, fy_error *err)
{
    char real[PATH_MAX];
    if (!realpath(path, real))
        return fy_error_set(err, fy_status_from_errno(errno), "%s: cannot open the graph %s: %s",
                            where, path, strerror(errno));
    size_t m = 0;
    while (m < s->count && strcmp(s->paths[m], real))
        m++;
    if (m == s->count) {
        if (s->count == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 4;
            char **p = realloc(s->paths, cap * sizeof *p), **n = NULL;
            if (p) s->paths = p;
            if (p) n = realloc(s->names, cap * sizeof *n);
            if (n) s->names = n;
            fy_graph **g = n ? realloc(s->graphs, cap * sizeof *g) : NULL;
            if (!g) return fy_error_set(err, FY_ENOMEM, "out of memory");
            s->graphs = g;
            s->cap = cap;
        }
        char *name = stem(real);
        if (!name) return fy_error_set(err, FY_ENOMEM, "out of memory");
        for (size_t k = 0, clash = 1; k < s->count; k++)
            if (!strcmp(s->names[k], name)) { /* a.yaml in two folders: a, a-2, ... */
                char buf[PATH_MAX];
                snprintf(buf, sizeof buf, "%.200s-%zu", name, ++clash);
                free(name);
                if (!(name = strdup(buf))) return fy_error_set(err, FY_ENOMEM, "out of memory");
                k = (size_t)-1;
            }
        fy_graph *g;
        int rc = fy_graph_load(path, &g, err);
        if (rc < 0) {
            free(name);
            return rc;
        }
        s->paths[s->count] = strdup(real);
        s->names[s->count] = name;
        s->graphs[s->count++] = g;
    }
    if (s->req_count == s->req_cap) {
        size_t cap = s->req_cap ? s->req_cap * 2 : 16;
        size_t *r = realloc(s->req, cap * sizeof *r);
        if (!r) return fy_error_set(err, FY_ENOMEM, "out of memory");
        s->req = r;
        s->req_cap = cap;
    }
    s->req[s->req_count++] = m;
    return 0;
}

static int read_list(seq *s, const char *list, fy_error *err)
{
    char *copy = strdup(list), *save = NULL;
    if (!copy) return fy_error_set(err, FY_ENOMEM, "out of memory");
    int rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save))
        rc = seq_add(s, tok, "--sequence", err);
    free(copy);
    return rc;
}

/* A trace: one graph path per line (relative to the trace's folder), '#' comments. */
static int read_trace(seq *s, const char *path, fy_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return fy_error_set(err, fy_status_from_errno(errno), "cannot open the trace %s: %s", path,
                            strerror(errno));
    char dirbuf[PATH_MAX], line[PATH_MAX], where[PATH_MAX + 32], full[2 * PATH_MAX + 2];
    snprintf(dirbuf, sizeof dirbuf, "%s", path);
    const char *dir = dirname(dirbuf);
    int rc = 0;
    unsigned n = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        n++;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *b = line, *e = line + strlen(line);
        while (*b == ' ' || *b == '\t')
            b++;
        while (e > b && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
            *--e = '\0';
        if (!*b) continue;
        snprintf(where, sizeof where, "%s:%u", path, n);
        snprintf(full, sizeof full, "%s/%s", dir, b);
        rc = seq_add(s, b[0] == '/' ? b : full, where, err);
    }
    fclose(f);
    return rc;
}

int fy_cli_sequence_graph(const char *list, const char *trace, fy_graph **out, char **describe,
                          fy_error *err)
{
    seq s = {0};
    int rc = list ? read_list(&s, list, err) : read_trace(&s, trace, err);
    if (rc == 0 && !s.req_count)
        rc = fy_error_set(err, FY_EINVAL, "%s names no request", list ? "--sequence" : trace);
    fy_sequence_model *models = calloc(s.count ? s.count : 1, sizeof *models);
    if (rc == 0 && !models) rc = fy_error_set(err, FY_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < s.count; i++)
        models[i] = (fy_sequence_model){.name = s.names[i], .graph = s.graphs[i]};
    if (rc == 0) rc = fy_sequence_graph(models, s.count, s.req, s.req_count, out, err);
    if (rc == 0) {
        size_t len = 64;
        for (size_t i = 0; i < s.count; i++)
            len += strlen(s.names[i]) + strlen(s.paths[i]) + 8;
        char *d = malloc(len);
        if (d) {
            int w = snprintf(d, len, "  %zu requests of %zu models:", s.req_count, s.count);
            for (size_t i = 0; i < s.count; i++)
                w += snprintf(d + w, len - (size_t)w, " %s=%s", s.names[i], s.paths[i]);
            snprintf(d + w, len - (size_t)w, "\n");
        }
        *describe = d;
    }
    free(models);
    seq_free(&s);
    return rc;
}

/* Per request: the weight bytes it loads to the gpu (a load counts for the request of the
 * next op that reads the weight, since a prefetch may run during another request). */
void fy_cli_print_sequence(const fy_plan *plan, FILE *out)
{
    const fy_graph *g = fy_plan_graph(plan);
    size_t n = fy_plan_event_count(plan), nr = 0;
    for (size_t i = 0; i < fy_graph_op_count(g); i++) {
        const char *at = strchr(fy_graph_op(g, i)->name, '@');
        size_t r = at ? strtoul(at + 1, NULL, 10) : 0;
        if (r + 1 > nr) nr = r + 1;
    }
    uint64_t *bytes = calloc(nr ? nr : 1, sizeof *bytes), *count = calloc(nr ? nr : 1, 8);
    const char **label = calloc(nr ? nr : 1, sizeof *label);
    size_t nt = fy_graph_tensor_count(g), *next = malloc((nt ? nt : 1) * sizeof *next);
    if (!bytes || !count || !label || !next) goto done;
    for (size_t t = 0; t < nt; t++)
        next[t] = nr;
    for (size_t i = n; i-- > 0;) {
        const fy_event *e = fy_plan_event(plan, i);
        if (e->kind == FY_EVENT_COMPUTE && e->op >= 0) {
            const char *name = fy_graph_op(g, (size_t)e->op)->name, *at = strchr(name, '@');
            const fy_op *op = fy_graph_op(g, (size_t)e->op);
            size_t r = at ? strtoul(at + 1, NULL, 10) : 0;
            label[r] = name;
            for (uint32_t k = 0; k < op->read_count; k++)
                next[op->reads[k]] = r;
        } else if (e->kind == FY_EVENT_LOAD && e->to == FY_TIER_GPU && e->tensor >= 0) {
            const fy_tensor *t = fy_graph_tensor(g, (size_t)e->tensor);
            size_t r = next[e->tensor];
            if (t->kind == FY_TENSOR_WEIGHT && r < nr) {
                bytes[r] += t->size;
                count[r]++;
            }
        }
    }
    char a[32];
    for (size_t r = 0; r < nr; r++) {
        if (!label[r]) continue;
        const char *at = strchr(label[r], '@');
        fprintf(out, "  request %zu (%.*s): %llu weight loads to gpu, %s\n", r,
                (int)(at ? (size_t)(at - label[r]) : strlen(label[r])), label[r],
                (unsigned long long)count[r], fy_size_format_human(bytes[r], a, sizeof a));
    }
done:
    free(bytes);
    free(count);
    free(label);
    free(next);
}
