/* Reads YAML through libyaml's event API into the compact positioned tree of yaml.h.
 * Children of open collections are collected on one shared stack; when a collection ends
 * they are copied into one contiguous array in the document's arena, so a node costs 24
 * bytes and a million-event plan stays within a few hundred MiB. Aliases are refused. */
#include "core/yaml.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

typedef struct chunk {
    struct chunk *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
} chunk;

struct fy_ydoc {
    char *name;
    chunk *chunks;
    fy_ynode *root;
};

static void *arena_alloc(fy_ydoc *doc, size_t size)
{
    size = (size + 7) & ~(size_t)7;
    chunk *c = doc->chunks;
    if (!c || c->size - c->used < size) {
        size_t want = size > (1u << 20) ? size : (1u << 20);
        c = malloc(sizeof *c + want);
        if (!c)
            return NULL;
        c->used = 0;
        c->size = want;
        c->next = doc->chunks;
        doc->chunks = c;
    }
    void *p = c->data + c->used;
    c->used += size;
    return p;
}

void fy_ydoc_destroy(fy_ydoc *doc)
{
    if (!doc)
        return;
    for (chunk *c = doc->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
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

typedef struct builder {
    fy_ydoc *doc;
    fy_ynode *stack; /* finished nodes whose parent is still open */
    size_t top, cap;
    size_t *frames; /* stack index where each open collection's children start */
    uint8_t *frame_kinds;
    fy_ynode *frame_nodes; /* the open collections themselves (position, kind) */
    size_t depth, frame_cap;
} builder;

static int push_node(builder *b, const fy_ynode *n)
{
    if (b->top == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        fy_ynode *s = realloc(b->stack, cap * sizeof *s);
        if (!s)
            return FY_ENOMEM;
        b->stack = s;
        b->cap = cap;
    }
    b->stack[b->top++] = *n;
    return 0;
}

static int open_frame(builder *b, const fy_ynode *n)
{
    if (b->depth == b->frame_cap) {
        size_t cap = b->frame_cap ? b->frame_cap * 2 : 32;
        size_t *f = realloc(b->frames, cap * sizeof *f);
        if (!f)
            return FY_ENOMEM;
        b->frames = f;
        fy_ynode *fn = realloc(b->frame_nodes, cap * sizeof *fn);
        if (!fn)
            return FY_ENOMEM;
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
    if (count > UINT32_MAX)
        return FY_ERANGE;
    n.count = (uint32_t)(n.kind == FY_YMAP ? count / 2 : count);
    n.u.items = NULL;
    if (count) {
        n.u.items = arena_alloc(b->doc, count * sizeof(fy_ynode));
        if (!n.u.items)
            return FY_ENOMEM;
        memcpy(n.u.items, b->stack + start, count * sizeof(fy_ynode));
    }
    b->top = start;
    return push_node(b, &n);
}

static void set_mark(fy_ynode *n, yaml_mark_t mark)
{
    n->line = (uint32_t)mark.line + 1;
    n->column = (uint32_t)mark.column + 1;
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
    return fy_error_set_at(err, FY_EPARSE, doc->name, (unsigned)m.line + 1,
                           (unsigned)m.column + 1, "bad YAML: %s", problem);
}

static int build(fy_ydoc *doc, yaml_parser_t *parser, fy_error *err)
{
    builder b = {.doc = doc};
    int rc = 0, documents = 0;
    bool done = false;
    while (!done && rc == 0) {
        yaml_event_t ev;
        if (!yaml_parser_parse(parser, &ev)) {
            rc = parser_error(doc, parser, err);
            break;
        }
        fy_ynode n = {0};
        set_mark(&n, ev.start_mark);
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++documents > 1)
                rc = fy_error_set_at(err, FY_EPARSE, doc->name, n.line, n.column,
                                     "bad YAML: only one document per file is allowed");
            break;
        case YAML_ALIAS_EVENT:
            rc = fy_error_set_at(err, FY_EPARSE, doc->name, n.line, n.column,
                                 "bad YAML: aliases (*name) are not supported");
            break;
        case YAML_SCALAR_EVENT: {
            size_t len = ev.data.scalar.length;
            char *text = arena_alloc(doc, len + 1);
            if (!text || len > UINT32_MAX) {
                rc = text ? FY_ERANGE : FY_ENOMEM;
                break;
            }
            memcpy(text, ev.data.scalar.value, len);
            text[len] = '\0';
            n.kind = FY_YSCALAR;
            n.quoted = ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
            n.count = (uint32_t)len;
            n.u.text = text;
            rc = push_node(&b, &n);
            break;
        }
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            n.kind = ev.type == YAML_SEQUENCE_START_EVENT ? FY_YSEQ : FY_YMAP;
            rc = open_frame(&b, &n);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            rc = close_frame(&b);
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
        if (rc == FY_ENOMEM || rc == FY_ERANGE)
            rc = fy_error_set(err, rc, "%s: %s reading YAML", doc->name, fy_status_message(rc));
    }
    if (rc == 0 && b.top == 1) {
        doc->root = arena_alloc(doc, sizeof(fy_ynode));
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
    if (doc)
        doc->name = strdup(name ? name : "<string>");
    if (!doc || !doc->name) {
        free(doc);
        return fy_error_set(err, FY_ENOMEM, "out of memory");
    }
    *out = doc;
    return 0;
}

int fy_ydoc_load_string(const char *name, const char *text, size_t len, fy_ydoc **out,
                        fy_error *err)
{
    *out = NULL;
    fy_ydoc *doc = NULL;
    int rc = new_doc(name, &doc, err);
    if (rc < 0)
        return rc;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        fy_ydoc_destroy(doc);
        return fy_error_set(err, FY_ENOMEM, "out of memory");
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    rc = build(doc, &parser, err);
    yaml_parser_delete(&parser);
    if (rc < 0) {
        fy_ydoc_destroy(doc);
        return rc;
    }
    *out = doc;
    return 0;
}

int fy_ydoc_load_file(const char *path, fy_ydoc **out, fy_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return fy_error_set_at(err, fy_status_from_errno(errno), path, 0, 0, "cannot open: %s",
                               strerror(errno));
    fy_ydoc *doc = NULL;
    int rc = new_doc(path, &doc, err);
    if (rc < 0) {
        fclose(f);
        return rc;
    }
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        fy_ydoc_destroy(doc);
        return fy_error_set(err, FY_ENOMEM, "out of memory");
    }
    yaml_parser_set_input_file(&parser, f);
    rc = build(doc, &parser, err);
    if (rc == 0 && ferror(f))
        rc = fy_error_set_at(err, FY_EIO, path, 0, 0, "read error");
    yaml_parser_delete(&parser);
    fclose(f);
    if (rc < 0) {
        fy_ydoc_destroy(doc);
        return rc;
    }
    *out = doc;
    return 0;
}

int fy_ydoc_error(const fy_ydoc *doc, const fy_ynode *node, fy_error *err, int status,
                  const char *fmt, ...)
{
    if (!err)
        return status;
    char msg[FY_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fy_error_set_at(err, status, fy_ydoc_name(doc), node ? node->line : 0,
                           node ? node->column : 0, "%s", msg);
}
