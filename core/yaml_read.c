/* Reads YAML into the compact positioned tree of yaml.h: first through the fast reader of
 * core/yaml_fast.c, which knows the subset ferry's writers emit, and when it declines,
 * through libyaml's event API, which reads everything else and reports every error. Both
 * build through the same calls: children of open collections are collected on one shared
 * stack; when a collection ends they are copied into one contiguous array in the document's
 * arena, so a node costs 24 bytes. Aliases are refused. */
#include "core/yaml_fast.h"

#include "core/arena.h"
#include "core/buf.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

struct fy_ydoc {
    char *name;
    fy_arena arena; /* 1 MiB blocks: plans run to hundreds of MiB of nodes */
    fy_ynode *root;
};

/* Nodes take align 8; scalar texts take align 1, packed end to end. */
static void *arena_alloc(fy_ydoc *doc, size_t size, size_t align)
{
    return fy_arena_alloc(&doc->arena, size, align);
}

void fy_ydoc_destroy(fy_ydoc *doc)
{
    if (!doc) return;
    fy_arena_free(&doc->arena);
    free(doc->name);
    free(doc);
}

const fy_ynode *fy_ydoc_root(const fy_ydoc *doc)
{
    return doc ? doc->root : NULL;
}

const char *fy_ydoc_name(const fy_ydoc *doc)
{
    return doc ? doc->name : "";
}

enum { INTERN_MAX = 8, INTERN_SLOTS = 1024 };

struct fy_ybuild {
    fy_ydoc *doc;
    fy_ynode *stack; /* finished nodes whose parent is still open */
    size_t top, cap;
    size_t *frames;        /* stack index where each open collection's children start */
    fy_ynode *frame_nodes; /* the open collections themselves (position, kind) */
    size_t depth, frame_cap;
    /* Short texts seen lately, by hash: keys, kinds and tiers repeat on every line of a
     * big file, and sharing their copies saves about a sixth of a plan's tree. */
    const char *recent[INTERN_SLOTS];
    uint64_t recent_bytes[INTERN_SLOTS]; /* the text, zero-padded: compared as one word */
    uint8_t recent_len[INTERN_SLOTS];
};
typedef struct fy_ybuild builder;

static int grow_stack(builder *b)
{
    size_t cap = b->cap ? b->cap * 2 : 256;
    fy_ynode *s = realloc(b->stack, cap * sizeof *s);
    if (!s) return FY_ENOMEM;
    b->stack = s;
    b->cap = cap;
    return 0;
}

/* Inline: it runs once per node of every document. */
static inline int push_node(builder *b, const fy_ynode *n)
{
    if (b->top == b->cap && grow_stack(b) < 0) return FY_ENOMEM;
    b->stack[b->top++] = *n;
    return 0;
}

static int open_frame(builder *b, const fy_ynode *n)
{
    if (b->depth == b->frame_cap) {
        size_t cap = b->frame_cap ? b->frame_cap * 2 : 32;
        size_t *f = realloc(b->frames, cap * sizeof *f);
        if (!f) return FY_ENOMEM;
        b->frames = f;
        fy_ynode *fn = realloc(b->frame_nodes, cap * sizeof *fn);
        if (!fn) return FY_ENOMEM;
        b->frame_nodes = fn;
        b->frame_cap = cap;
    }
    b->frames[b->depth] = b->top;
    b->frame_nodes[b->depth] = *n;
    b->depth++;
    return 0;
}

static int close_frame(builder *b)
{
    b->depth--;
    fy_ynode n = b->frame_nodes[b->depth];
    size_t start = b->frames[b->depth];
    size_t count = b->top - start;
    if (count > UINT32_MAX) return FY_ERANGE;
    n.count = (uint32_t)(n.kind == FY_YMAP ? count / 2 : count);
    n.u.items = NULL;
    if (count) {
        n.u.items = arena_alloc(b->doc, count * sizeof(fy_ynode), 8);
        if (!n.u.items) return FY_ENOMEM;
        memcpy(n.u.items, b->stack + start, count * sizeof(fy_ynode));
    }
    b->top = start;
    return push_node(b, &n);
}

int fy_ybuild_scalar(fy_ybuild *b, uint32_t line, uint32_t column, const char *text, size_t len,
                     bool quoted)
{
    if (len > UINT32_MAX) return FY_ERANGE;
    size_t slot = INTERN_SLOTS;
    uint64_t bytes = 0;
    if (len <= INTERN_MAX) {
        for (size_t i = 0; i < len; i++) /* a loop, not a call: len is at most 8 */
            bytes |= (uint64_t)(unsigned char)text[i] << (8 * i);
        slot = (size_t)(((bytes ^ len) * 0x9E3779B97F4A7C15ull) >> 54); /* 10 bits */
    }
    const char *copy = NULL;
    if (slot < INTERN_SLOTS && b->recent[slot] && b->recent_len[slot] == len &&
        b->recent_bytes[slot] == bytes) {
        copy = b->recent[slot];
    } else {
        char *fresh = arena_alloc(b->doc, len + 1, 1);
        if (!fresh) return FY_ENOMEM;
        memcpy(fresh, text, len);
        fresh[len] = '\0';
        copy = fresh;
        if (slot < INTERN_SLOTS) {
            b->recent[slot] = fresh;
            b->recent_bytes[slot] = bytes;
            b->recent_len[slot] = (uint8_t)len;
        }
    }
    fy_ynode n = {.kind = FY_YSCALAR,
                  .quoted = quoted,
                  .line = line,
                  .column = column,
                  .count = (uint32_t)len,
                  .u.text = copy};
    return push_node(b, &n);
}

int fy_ybuild_open(fy_ybuild *b, fy_ykind kind, uint32_t line, uint32_t column)
{
    fy_ynode n = {.kind = (uint8_t)kind, .line = line, .column = column};
    return open_frame(b, &n);
}

int fy_ybuild_close(fy_ybuild *b)
{
    return close_frame(b);
}

static int parser_error(const fy_ydoc *doc, const yaml_parser_t *p, fy_error *err)
{
    if (p->error == YAML_MEMORY_ERROR)
        return fy_error_set(err, FY_ENOMEM, "%s: out of memory reading YAML", doc->name);
    yaml_mark_t m = p->problem_mark;
    const char *problem = p->problem ? p->problem : "unreadable YAML";
    if (p->context)
        return fy_error_set_at(err, FY_EPARSE, doc->name, (unsigned)m.line + 1,
                               (unsigned)m.column + 1, "bad YAML: %s %s", problem, p->context);
    return fy_error_set_at(err, FY_EPARSE, doc->name, (unsigned)m.line + 1, (unsigned)m.column + 1,
                           "bad YAML: %s", problem);
}

static int build_libyaml(builder *b, yaml_parser_t *parser, fy_error *err)
{
    fy_ydoc *doc = b->doc;
    int rc = 0, documents = 0;
    bool done = false;
    while (!done && rc == 0) {
        yaml_event_t ev;
        if (!yaml_parser_parse(parser, &ev)) {
            rc = parser_error(doc, parser, err);
            break;
        }
        uint32_t line = (uint32_t)ev.start_mark.line + 1;
        uint32_t column = (uint32_t)ev.start_mark.column + 1;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++documents > 1)
                rc = fy_error_set_at(err, FY_EPARSE, doc->name, line, column,
                                     "bad YAML: only one document per file is allowed");
            break;
        case YAML_ALIAS_EVENT:
            rc = fy_error_set_at(err, FY_EPARSE, doc->name, line, column,
                                 "bad YAML: aliases (*name) are not supported");
            break;
        case YAML_SCALAR_EVENT:
            rc = fy_ybuild_scalar(b, line, column, (const char *)ev.data.scalar.value,
                                  ev.data.scalar.length,
                                  ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE);
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            rc = fy_ybuild_open(b, ev.type == YAML_SEQUENCE_START_EVENT ? FY_YSEQ : FY_YMAP, line,
                                column);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            rc = fy_ybuild_close(b);
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    return rc;
}

/* Frees what a declined fast read built, keeping the builder's stacks for reuse. */
static void builder_reset(builder *b)
{
    fy_arena_free(&b->doc->arena);
    b->top = b->depth = 0;
    memset(b->recent, 0, sizeof b->recent);
    memset(b->recent_len, 0, sizeof b->recent_len);
}

static int build(fy_ydoc *doc, const char *text, size_t len, fy_yread_mode mode, fy_error *err)
{
    static_assert(INTERN_SLOTS == 1 << 10, "the hash keeps 10 bits");
    builder b = {.doc = doc};
    int rc = mode == FY_YREAD_LIBYAML ? FY_YAML_DECLINED : fy_yaml_fast_read(&b, text, len);
    if (rc == FY_YAML_DECLINED && mode != FY_YREAD_FAST) {
        builder_reset(&b);
        yaml_parser_t parser;
        if (!yaml_parser_initialize(&parser)) {
            rc = FY_ENOMEM;
        } else {
            yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
            rc = build_libyaml(&b, &parser, err);
            yaml_parser_delete(&parser);
        }
    }
    if (rc == FY_ENOMEM || rc == FY_ERANGE)
        rc = fy_error_set(err, rc, "%s: %s reading YAML", doc->name, fy_status_message(rc));
    if (rc == 0 && b.top == 1) {
        doc->root = arena_alloc(doc, sizeof(fy_ynode), 8);
        if (!doc->root)
            rc = fy_error_set(err, FY_ENOMEM, "%s: out of memory", doc->name);
        else
            *doc->root = b.stack[0];
    }
    free(b.stack);
    free(b.frames);
    free(b.frame_nodes);
    return rc;
}

static int new_doc(const char *name, fy_ydoc **out, fy_error *err)
{
    fy_ydoc *doc = calloc(1, sizeof *doc);
    if (doc) doc->name = strdup(name ? name : "<string>");
    if (!doc || !doc->name) {
        free(doc);
        return fy_error_set(err, FY_ENOMEM, "out of memory");
    }
    doc->arena.block_size = 1u << 20;
    *out = doc;
    return 0;
}

int fy_ydoc_load_string_with(const char *name, const char *text, size_t len, fy_yread_mode mode,
                             fy_ydoc **out, fy_error *err)
{
    *out = NULL;
    fy_ydoc *doc = NULL;
    int rc = new_doc(name, &doc, err);
    if (rc == 0) rc = build(doc, text, len, mode, err);
    if (rc != 0) {
        fy_ydoc_destroy(doc);
        return rc;
    }
    *out = doc;
    return 0;
}

int fy_ydoc_load_string(const char *name, const char *text, size_t len, fy_ydoc **out,
                        fy_error *err)
{
    return fy_ydoc_load_string_with(name, text, len, FY_YREAD_AUTO, out, err);
}

int fy_ydoc_load_file(const char *path, fy_ydoc **out, fy_error *err)
{
    *out = NULL;
    char *text;
    size_t len;
    int rc = fy_file_read_all(path, &text, &len, err);
    if (rc < 0) return rc;
    rc = fy_ydoc_load_string(path, text, len, out, err);
    free(text);
    return rc;
}

int fy_ydoc_error(const fy_ydoc *doc, const fy_ynode *node, fy_error *err, int status,
                  const char *fmt, ...)
{
    if (!err) return status;
    char msg[FY_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fy_error_set_at(err, status, fy_ydoc_name(doc), node ? node->line : 0,
                           node ? node->column : 0, "%s", msg);
}
