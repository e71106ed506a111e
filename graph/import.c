/* A graph from a safetensors checkpoint. The tensors are sorted into groups, the embedding,
 * each layer of each stack, and the head, and each group becomes one op reading its weights
 * and the activation the op before wrote; so the ops form a chain that a planner can stream
 * group by group. The weights keep the checkpoint's names and point at their bytes in its
 * files; nothing but the headers is read.
 */
#include "ferry/import.h"

#include "core/buf.h"
#include "graph/safetensors.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Encoders before decoders, so that an encoder-decoder's stacks come in the order they run. */
static const char *const default_patterns[] = {
    "model.encoder.layers.{i}.",
    "encoder.block.{i}.",
    "bert.encoder.layer.{i}.",
    "encoder.layer.{i}.",
    "model.layers.{i}.",
    "model.decoder.layers.{i}.",
    "decoder.block.{i}.",
    "transformer.h.{i}.",
    "h.{i}.",
    "layers.{i}.",
    "transformer.blocks.{i}.",
    "transformer.layers.{i}.",
    "gpt_neox.layers.{i}.",
    "model.language_model.layers.{i}.",
    "language_model.model.layers.{i}.",
    "backbone.layers.{i}.",
    "blocks.{i}.",
    NULL,
};

const char *const *fy_import_default_patterns(void)
{
    return default_patterns;
}

typedef struct pattern {
    const char *text;
    size_t prefix_len;
    const char *suffix;
    size_t matches;
} pattern;

static int pattern_parse(const char *text, pattern *p, fy_error *err)
{
    const char *at = strstr(text, "{i}");
    if (!at)
        return fy_error_set(err, FY_EINVAL,
                            "layer pattern '%s' needs {i} where the layer number goes", text);
    if (strstr(at + 3, "{i}"))
        return fy_error_set(err, FY_EINVAL, "layer pattern '%s' has {i} more than once", text);
    *p = (pattern){.text = text, .prefix_len = (size_t)(at - text), .suffix = at + 3};
    return 0;
}

/* True when name is prefix, a decimal number, suffix, and anything after. */
static bool pattern_match(const pattern *p, const char *name, uint64_t *layer)
{
    if (strncmp(name, p->text, p->prefix_len)) return false;
    const char *s = name + p->prefix_len;
    uint64_t v = 0;
    size_t digits = 0;
    for (; *s >= '0' && *s <= '9'; s++, digits++) {
        if (digits == 18) return false; /* no model has 10^18 layers: not a layer number */
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (!digits || strncmp(s, p->suffix, strlen(p->suffix))) return false;
    *layer = v;
    return true;
}

enum { GROUP_EMBED, GROUP_LAYER, GROUP_HEAD };

typedef struct item {
    const fy_st_tensor *t;
    int group;
    size_t stack;
    uint64_t layer;
} item;

static int compare_items(const void *a, const void *b)
{
    const item *x = a, *y = b;
    if (x->group != y->group) return x->group - y->group;
    if (x->stack != y->stack) return x->stack < y->stack ? -1 : 1;
    if (x->layer != y->layer) return x->layer < y->layer ? -1 : 1;
    return strcmp(x->t->name, y->t->name);
}

static bool is_embedding(const char *name)
{
    return strstr(name, "embed") || strstr(name, "wte") || strstr(name, "wpe") ||
           !strcmp(name, "shared.weight");
}

static bool is_float(fy_dtype d)
{
    return d == FY_DTYPE_F64 || d == FY_DTYPE_F32 || d == FY_DTYPE_F16 || d == FY_DTYPE_BF16;
}

/* A source file as the graph should record it: relative when it lies in the graph's
 * folder, else absolute. The file's own name is kept (not resolved through symlinks), since
 * checkpoint caches link names to content-addressed blobs. */
static char *source_reference(const char *graph_path, const char *file)
{
    char dir_buf[PATH_MAX], name_buf[PATH_MAX], fdir[PATH_MAX], full[2 * PATH_MAX + 2];
    snprintf(dir_buf, sizeof dir_buf, "%s", file);
    snprintf(name_buf, sizeof name_buf, "%s", file);
    if (!realpath(dirname(dir_buf), fdir)) return strdup(file);
    snprintf(full, sizeof full, "%s/%s", strcmp(fdir, "/") ? fdir : "", basename(name_buf));
    if (graph_path && strcmp(graph_path, "-")) {
        char gbuf[PATH_MAX], gdir[PATH_MAX];
        snprintf(gbuf, sizeof gbuf, "%s", graph_path);
        if (realpath(dirname(gbuf), gdir)) {
            size_t gl = strcmp(gdir, "/") ? strlen(gdir) : 0;
            if (!strncmp(full, gdir, gl) && full[gl] == '/') return strdup(full + gl + 1);
        }
    }
    return strdup(full);
}

/* The graph's name: the checkpoint's file name without its extension, or its folder's name
 * for the usual "model.safetensors" and "model-0000N-of-0000M" names. */
static void graph_name(const char *checkpoint, char *out, size_t size)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", checkpoint);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/')
        buf[--n] = '\0';
    char *base = strrchr(buf, '/') ? strrchr(buf, '/') + 1 : buf;
    char full[PATH_MAX];
    if ((!strcmp(base, ".") || !strcmp(base, "..")) && realpath(checkpoint, full)) {
        snprintf(buf, sizeof buf, "%s", full); /* "." names the current folder */
        base = strrchr(buf, '/') ? strrchr(buf, '/') + 1 : buf;
    }
    static const char *const exts[] = {".safetensors.index.json", ".safetensors", ".json"};
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        size_t bl = strlen(base), el = strlen(exts[i]);
        if (bl > el && !strcmp(base + bl - el, exts[i])) {
            base[bl - el] = '\0';
            break;
        }
    }
    if ((!strcmp(base, "model") || !strncmp(base, "model-", 6)) && base != buf) {
        base[-1] = '\0';
        char *parent = strrchr(buf, '/') ? strrchr(buf, '/') + 1 : buf;
        if (*parent && strcmp(parent, ".") && strcmp(parent, "..")) base = parent;
    }
    snprintf(out, size, "%s", *base ? base : "checkpoint");
}

typedef struct importer {
    const fy_st_checkpoint *ck;
    item *items;
    size_t count;
    pattern *patterns;
    size_t pattern_count;
    char **refs; /* source reference of each checkpoint file */
    fy_graph *g;
    uint64_t batch, seq, tokens, hidden, vocab;
    fy_dtype act;
    const fy_st_tensor *embedding; /* the token embedding matrix, or NULL */
    bool tied;
    fy_import_info *info;
    fy_error *err;
} importer;

/* The hidden size: the embedding's width, else the commonest length of the first layer's
 * 1-D weights (norms and most biases are that wide; a fused qkv bias is wider but alone). */
static int find_shapes(importer *im)
{
    uint64_t best_elems = 0;
    size_t head_2d = 0;
    for (size_t i = 0; i < im->count; i++) {
        const fy_st_tensor *t = im->items[i].t;
        if (im->items[i].group == GROUP_EMBED && t->rank == 2 && t->elements > best_elems) {
            best_elems = t->elements;
            im->embedding = t;
        }
        if (im->items[i].group == GROUP_HEAD && t->rank >= 2) head_2d++;
    }
    if (im->embedding) {
        im->vocab = im->embedding->shape[0];
        if (!im->hidden) im->hidden = im->embedding->shape[1];
    }
    if (!im->hidden) {
        size_t first = 0;
        while (first < im->count && im->items[first].group != GROUP_LAYER)
            first++;
        size_t best_count = 0;
        for (size_t i = first; i < im->count && im->items[i].group == GROUP_LAYER &&
                               im->items[i].stack == im->items[first].stack &&
                               im->items[i].layer == im->items[first].layer;
             i++) {
            const fy_st_tensor *t = im->items[i].t;
            if (t->rank != 1) continue;
            size_t same = 0;
            for (size_t j = first; j < im->count && im->items[j].layer == im->items[i].layer &&
                                   im->items[j].stack == im->items[i].stack;
                 j++)
                same += im->items[j].t->rank == 1 && im->items[j].t->shape[0] == t->shape[0];
            if (same > best_count || (same == best_count && t->shape[0] < im->hidden)) {
                best_count = same;
                im->hidden = t->shape[0];
            }
        }
    }
    if (!im->hidden)
        return fy_error_set_at(im->err, FY_EINVAL, im->ck->path, 0, 0,
                               "cannot tell the hidden size (no embedding matrix and no 1-D "
                               "weight in the first layer); give it with --hidden");
    /* The head's output matrix, its largest, is [vocab, hidden] or [hidden, vocab]. */
    const fy_st_tensor *out = NULL;
    for (size_t i = 0; i < im->count && !im->vocab; i++) {
        const fy_st_tensor *t = im->items[i].t;
        if (im->items[i].group == GROUP_HEAD && t->rank == 2 &&
            (!out || t->elements > out->elements))
            out = t;
    }
    if (out) im->vocab = out->shape[0] == im->hidden ? out->shape[1] : out->shape[0];
    size_t head_count = 0;
    for (size_t i = 0; i < im->count; i++)
        head_count += im->items[i].group == GROUP_HEAD;
    im->tied = im->embedding && head_count > 0 && head_2d == 0;

    /* Activations take the embedding's float type, else the weights' commonest one. */
    uint64_t bytes[FY_DTYPE_COUNT] = {0};
    for (size_t i = 0; i < im->count; i++)
        bytes[im->items[i].t->dtype->dtype] += im->items[i].t->bytes;
    im->act = FY_DTYPE_BF16;
    if (im->embedding && is_float(im->embedding->dtype->dtype))
        im->act = im->embedding->dtype->dtype;
    else {
        uint64_t most = 0;
        for (int d = 1; d < FY_DTYPE_COUNT; d++)
            if (is_float((fy_dtype)d) && bytes[d] > most) {
                most = bytes[d];
                im->act = (fy_dtype)d;
            }
    }
    return 0;
}

static int add_weight(importer *im, const fy_st_tensor *t)
{
    fy_tensor_desc d = {.name = t->name,
                        .kind = FY_TENSOR_WEIGHT,
                        .source_file = im->refs[t->file],
                        .source_offset = t->offset};
    /* A dtype ferry knows keeps its shape; any other (U16, F4, ...) and shapes of more than
     * FY_MAX_RANK dimensions keep the byte size, which is all a plan moves. */
    if (t->dtype->dtype != FY_DTYPE_NONE && t->rank <= FY_MAX_RANK && t->rank > 0) {
        d.dtype = t->dtype->dtype;
        d.rank = t->rank;
        memcpy(d.shape, t->shape, (size_t)t->rank * sizeof *t->shape);
    } else {
        d.dtype = t->dtype->dtype;
        d.size = t->bytes;
    }
    int rc = fy_graph_add_tensor(im->g, &d, im->err);
    if (rc < 0) fy_error_prefix(im->err, "%s", im->ck->files[t->file]->path);
    return rc;
}

/* A name for a tensor we add, kept apart from the checkpoint's names. */
static void unique_name(importer *im, const char *base, char *out, size_t size)
{
    snprintf(out, size, "%s", base);
    while (fy_graph_find_tensor(im->g, out) >= 0 && strlen(out) + 2 < size) {
        memmove(out + 1, out, strlen(out) + 1);
        out[0] = '_';
    }
}

static int add_activation(importer *im, const char *name, fy_tensor_kind kind, uint64_t width)
{
    fy_tensor_desc d = {
        .name = name, .kind = kind, .dtype = im->act, .rank = 2, .shape = {im->tokens, width}};
    return fy_graph_add_tensor(im->g, &d, im->err);
}

/* Adds the op for items[first, end): reads `in` (and the tied embedding for the head),
 * writes `out`. */
static int add_op(importer *im, const char *name, const char *kind, size_t first, size_t end,
                  const char *in, const char *out, bool embed_op, bool read_embedding)
{
    size_t n = end - first + 2;
    const char **reads = malloc(n * sizeof *reads);
    if (!reads) return fy_error_set(im->err, FY_ENOMEM, "out of memory");
    size_t r = 0;
    double params = 0;
    reads[r++] = in;
    for (size_t i = first; i < end; i++) {
        reads[r++] = im->items[i].t->name;
        params += (double)im->items[i].t->elements;
    }
    if (read_embedding) {
        reads[r++] = im->embedding->name;
        params += (double)im->embedding->elements;
    }
    /* A lookup costs one operation per element it copies, not a matmul over the table. */
    double flops =
        embed_op ? (double)im->tokens * (double)im->hidden : 2.0 * params * (double)im->tokens;
    const char *writes[] = {out};
    fy_op_desc d = {.name = name,
                    .kind = kind,
                    .reads = reads,
                    .read_count = r,
                    .writes = writes,
                    .write_count = 1,
                    .flops = flops};
    int rc = fy_graph_add_op(im->g, &d, im->err);
    free(reads);
    return rc;
}

/* The op name of a layer: its pattern with the number in, less a trailing dot. */
static void layer_name(const pattern *p, uint64_t layer, char *out, size_t size)
{
    int n = snprintf(out, size, "%.*s%llu%s", (int)p->prefix_len, p->text,
                     (unsigned long long)layer, p->suffix);
    if (n > 0 && (size_t)n < size && out[n - 1] == '.') out[n - 1] = '\0';
}

static int build_ops(importer *im)
{
    size_t embed_end = 0, layer_end;
    while (embed_end < im->count && im->items[embed_end].group == GROUP_EMBED)
        embed_end++;
    layer_end = embed_end;
    while (layer_end < im->count && im->items[layer_end].group == GROUP_LAYER)
        layer_end++;
    bool has_embed = embed_end > 0, has_head = layer_end < im->count;
    char in[256], out[256], name[512];
    size_t serial = 0; /* of the next hidden.<n> */
    int rc;
    /* The input: token ids for an embedding, else the hidden state itself. */
    if (has_embed) {
        unique_name(im, "tokens", in, sizeof in);
        fy_tensor_desc tok = {.name = in,
                              .kind = FY_TENSOR_INPUT,
                              .dtype = FY_DTYPE_I32,
                              .rank = 2,
                              .shape = {im->batch, im->seq}};
        rc = fy_graph_add_tensor(im->g, &tok, im->err);
    } else {
        unique_name(im, "hidden.0", in, sizeof in);
        rc = add_activation(im, in, FY_TENSOR_INPUT, im->hidden);
        serial = 1;
    }
    size_t ops = (has_embed ? 1 : 0) + (has_head ? 1 : 0), layers = 0;
    for (size_t i = embed_end; i < layer_end; i++)
        layers += i == embed_end || im->items[i].layer != im->items[i - 1].layer ||
                  im->items[i].stack != im->items[i - 1].stack;
    ops += layers;
    if (im->info) im->info->layers = layers;

    for (size_t done = 0, start = 0; rc == 0 && done < ops; done++) {
        size_t end = start;
        const char *kind;
        bool head = false;
        if (start < embed_end) {
            end = embed_end;
            kind = "embedding";
            snprintf(name, sizeof name, "embed");
        } else if (start < layer_end) {
            while (end < layer_end && im->items[end].layer == im->items[start].layer &&
                   im->items[end].stack == im->items[start].stack)
                end++;
            kind = "block";
            layer_name(&im->patterns[im->items[start].stack], im->items[start].layer, name,
                       sizeof name);
        } else {
            end = im->count;
            kind = "head";
            head = true;
            snprintf(name, sizeof name, "head");
        }
        /* Only the last op's result leaves the graph: logits when the head's width is the
         * vocabulary, else the final hidden state. */
        bool last = done + 1 == ops, logits = head && im->vocab;
        char base[64];
        if (last)
            snprintf(base, sizeof base, "%s", logits ? "logits" : "output");
        else
            snprintf(base, sizeof base, "hidden.%zu", serial++);
        unique_name(im, base, out, sizeof out);
        rc = add_activation(im, out, last ? FY_TENSOR_OUTPUT : FY_TENSOR_ACTIVATION,
                            logits ? im->vocab : im->hidden);
        if (rc == 0)
            rc = add_op(im, name, kind, start, end, in, out, start < embed_end, head && im->tied);
        snprintf(in, sizeof in, "%s", out);
        start = end;
    }
    return rc;
}

static int classify(importer *im, const fy_import_params *p)
{
    const char *const *texts = p && p->layer_count ? p->layers : default_patterns;
    size_t n = 0;
    while (p && p->layer_count ? n < p->layer_count : texts[n] != NULL)
        n++;
    im->patterns = calloc(n ? n : 1, sizeof *im->patterns);
    im->items = calloc(im->ck->tensor_count ? im->ck->tensor_count : 1, sizeof *im->items);
    if (!im->patterns || !im->items) return fy_error_set(im->err, FY_ENOMEM, "out of memory");
    im->pattern_count = n;
    for (size_t i = 0; i < n; i++) {
        int rc = pattern_parse(texts[i], &im->patterns[i], im->err);
        if (rc < 0) return rc;
    }
    for (size_t i = 0; i < im->ck->tensor_count; i++) {
        const fy_st_tensor *t = im->ck->tensors[i];
        if (t->bytes == 0) {
            if (im->info) im->info->skipped_empty++;
            continue;
        }
        item *it = &im->items[im->count++];
        *it = (item){.t = t, .group = is_embedding(t->name) ? GROUP_EMBED : GROUP_HEAD};
        for (size_t s = 0; s < n; s++) {
            if (pattern_match(&im->patterns[s], t->name, &it->layer)) {
                it->group = GROUP_LAYER;
                it->stack = s;
                im->patterns[s].matches++;
                break;
            }
        }
    }
    if (im->count == 0)
        return fy_error_set_at(im->err, FY_EINVAL, im->ck->path, 0, 0,
                               "the checkpoint holds no tensor with bytes to import");
    size_t matched = 0;
    for (size_t s = 0; s < n; s++) {
        if (p && p->layer_count && !im->patterns[s].matches)
            return fy_error_set_at(im->err, FY_EINVAL, im->ck->path, 0, 0,
                                   "layer pattern '%s' matches no tensor name",
                                   im->patterns[s].text);
        matched += im->patterns[s].matches > 0;
    }
    if (!matched)
        return fy_error_set_at(im->err, FY_EINVAL, im->ck->path, 0, 0,
                               "no tensor name looks like a layer's (such as '%s' or '%s', "
                               "e.g. '%s'); give the pattern with --layers 'PREFIX{i}.'",
                               default_patterns[4], default_patterns[7], im->items[0].t->name);
    qsort(im->items, im->count, sizeof *im->items, compare_items);
    return 0;
}

static int fill_info(importer *im)
{
    fy_import_info *info = im->info;
    if (!info) return 0;
    info->files = im->ck->file_count;
    info->tensors = im->count;
    info->hidden = im->hidden;
    info->vocab = im->vocab;
    info->act_dtype = im->act;
    info->tied_head = im->tied;
    fy_buf b = {0};
    for (size_t s = 0; s < im->pattern_count; s++) {
        if (!im->patterns[s].matches) continue;
        fy_buf_printf(&b, "%s%s", info->stacks ? ", " : "", im->patterns[s].text);
        info->stacks++;
    }
    for (size_t i = 0; i < im->count; i++) {
        info->embed_tensors += im->items[i].group == GROUP_EMBED;
        info->head_tensors += im->items[i].group == GROUP_HEAD;
        info->weight_bytes += im->items[i].t->bytes;
    }
    if (b.failed || !b.data) {
        fy_buf_free(&b);
        return fy_error_set(im->err, FY_ENOMEM, "out of memory");
    }
    info->patterns = b.data;
    return 0;
}

int fy_import_safetensors(const char *checkpoint, const fy_import_params *params, fy_graph **out,
                          fy_import_info *info, fy_error *err)
{
    *out = NULL;
    if (info) memset(info, 0, sizeof *info);
    if (params && params->layer_count && !params->layers)
        return fy_error_set(err, FY_EINVAL, "layer_count is %zu but layers is NULL",
                            params->layer_count);
    uint64_t seq = params && params->seq ? params->seq : 2048;
    uint64_t batch = params && params->batch ? params->batch : 1;
    if (seq > UINT64_MAX / batch)
        return fy_error_set(err, FY_ERANGE, "batch x seq overflows 64 bits");
    fy_st_checkpoint *ck = NULL;
    int rc = fy_st_checkpoint_open(checkpoint, &ck, err);
    if (rc < 0) return rc;
    importer im = {.ck = ck,
                   .batch = batch,
                   .seq = seq,
                   .tokens = seq * batch,
                   .hidden = params ? params->hidden : 0,
                   .info = info,
                   .err = err};
    im.refs = calloc(ck->file_count, sizeof *im.refs);
    if (!im.refs) rc = fy_error_set(err, FY_ENOMEM, "out of memory");
    for (size_t f = 0; rc == 0 && f < ck->file_count; f++)
        if (!(im.refs[f] =
                  source_reference(params ? params->graph_path : NULL, ck->files[f]->path)))
            rc = fy_error_set(err, FY_ENOMEM, "out of memory");
    if (rc == 0) rc = classify(&im, params);
    if (rc == 0) rc = find_shapes(&im);
    char name[256];
    if (params && params->name)
        snprintf(name, sizeof name, "%s", params->name);
    else
        graph_name(checkpoint, name, sizeof name);
    if (rc == 0) rc = fy_graph_create(name, &im.g, err);
    for (size_t i = 0; rc == 0 && i < im.count; i++)
        rc = add_weight(&im, im.items[i].t);
    if (rc == 0) rc = build_ops(&im);
    if (rc == 0) rc = fy_graph_validate(im.g, err);
    if (rc == 0) rc = fill_info(&im);
    for (size_t f = 0; im.refs && f < ck->file_count; f++)
        free(im.refs[f]);
    free(im.refs);
    free(im.items);
    free(im.patterns);
    fy_st_checkpoint_destroy(ck);
    if (rc < 0) {
        fy_graph_destroy(im.g);
        if (info) fy_import_info_free(info);
        return rc;
    }
    *out = im.g;
    return 0;
}

void fy_import_info_free(fy_import_info *info)
{
    if (!info) return;
    free(info->patterns);
    info->patterns = NULL;
}
