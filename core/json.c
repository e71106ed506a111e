/* A strict JSON reader (RFC 8259). It reads the whole text in one iterative pass: finished
 * values wait on a value stack until the array or object that holds them closes, and are then
 * copied into the document's arena as one contiguous run of nodes. So the depth of nesting
 * costs heap, not C stack, and is bounded only by the caller's limit; every failure is an
 * error at a byte position and leaves nothing allocated.
 */
#include "core/json.h"

#include "core/arena.h"

#include <assert.h>
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fy_jdoc {
    char *name;
    fy_jnode root;
    fy_arena arena;
};

static void *arena_alloc(fy_jdoc *doc, size_t size)
{
    return fy_arena_alloc(&doc->arena, size, 8);
}

void fy_jdoc_destroy(fy_jdoc *doc)
{
    if (!doc) return;
    fy_arena_free(&doc->arena);
    free(doc->name);
    free(doc);
}

const fy_jnode *fy_jdoc_root(const fy_jdoc *doc)
{
    return &doc->root;
}

const char *fy_jdoc_name(const fy_jdoc *doc)
{
    return doc->name;
}

/* ---- UTF-8 and message excerpts ------------------------------------------------------ */

/* Length (2-4) of the well-formed UTF-8 sequence of a non-ASCII byte at s, or 0 when it is
 * not one: overlong forms, surrogates and code points beyond U+10FFFF are refused. */
static size_t utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f; /* U+D800..U+DFFF are surrogates, not characters */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (avail < n || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf) return 0;
    return n;
}

/* The printed form of the character at s[0]: its width in unit, and the bytes it takes. */
static size_t excerpt_unit(const unsigned char *s, size_t avail, char unit[8], size_t *width)
{
    size_t n = 1;
    if (s[0] < 0x20 || s[0] == 0x7f) {
        *width = (size_t)snprintf(unit, 8, "\\x%02x", s[0]);
    } else if (s[0] < 0x80) {
        unit[0] = (char)s[0];
        *width = 1;
    } else if ((n = utf8_seq(s, avail)) != 0) {
        memcpy(unit, s, n);
        *width = n;
    } else {
        n = 1;
        *width = (size_t)snprintf(unit, 8, "\\x%02x", s[0]);
    }
    return n;
}

char *fy_text_excerpt(const char *text, size_t len, char *buf, size_t size)
{
    const unsigned char *s = (const unsigned char *)text;
    char unit[8];
    size_t width, total = 0;
    /* First the printed width of the whole text (counting stops once it cannot fit). */
    for (size_t i = 0; i < len && total < size;) {
        i += excerpt_unit(s + i, len - i, unit, &width);
        total += width;
    }
    bool cut = total > size - 1;
    size_t limit = cut ? size - 4 : size - 1, o = 0;
    for (size_t i = 0; i < len;) {
        size_t n = excerpt_unit(s + i, len - i, unit, &width);
        if (o + width > limit) break;
        memcpy(buf + o, unit, width);
        o += width;
        i += n;
    }
    if (cut) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

/* ---- the parser --------------------------------------------------------------------- */

typedef struct frame {
    uint8_t kind; /* FY_JARRAY or FY_JOBJECT */
    size_t start; /* index of its first child on the value stack */
    uint32_t line, column, offset;
} frame;

typedef struct parser {
    const unsigned char *s;
    size_t len, pos;
    uint32_t line;
    size_t line_start;
    fy_jdoc *doc;
    fy_jnode *stack;
    size_t nstack, stack_cap;
    frame *frames;
    size_t nframes, frames_cap;
    unsigned max_depth;
    bool reject_duplicates;
    fy_error *err;
} parser;

static uint32_t column_at(const parser *p, size_t pos)
{
    return (uint32_t)(pos - p->line_start + 1);
}

static int fail_at(parser *p, int status, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_at(parser *p, int status, size_t pos, const char *fmt, ...)
{
    if (!p->err) return status;
    char msg[FY_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fy_error_set_at(p->err, status, p->doc->name, p->line, column_at(p, pos), "%s", msg);
}

/* Describes the byte at pos for "found ..." in messages. */
static const char *describe(const parser *p, size_t pos, char *buf, size_t size)
{
    if (pos >= p->len) return "the end of the text";
    unsigned char c = p->s[pos];
    if (c > 0x20 && c < 0x7f)
        snprintf(buf, size, "'%c'", c);
    else
        snprintf(buf, size, "byte 0x%02x", c);
    return buf;
}

static void skip_ws(parser *p)
{
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c == ' ' || c == '\t') {
            p->pos++;
        } else if (c == '\n' || c == '\r') {
            p->pos++;
            if (c == '\r' && p->pos < p->len && p->s[p->pos] == '\n') p->pos++;
            p->line++;
            p->line_start = p->pos;
        } else {
            break;
        }
    }
}

static int push(parser *p, const fy_jnode *node)
{
    if (p->nstack == p->stack_cap) {
        size_t cap = p->stack_cap ? 2 * p->stack_cap : 64;
        fy_jnode *s = realloc(p->stack, cap * sizeof *s);
        if (!s) return fy_error_set(p->err, FY_ENOMEM, "out of memory reading JSON");
        p->stack = s;
        p->stack_cap = cap;
    }
    p->stack[p->nstack++] = *node;
    return 0;
}

static void start_node(const parser *p, fy_jnode *node, fy_jkind kind)
{
    memset(node, 0, sizeof *node);
    node->kind = (uint8_t)kind;
    node->line = p->line;
    node->column = column_at(p, p->pos);
    node->offset = (uint32_t)p->pos;
}

static int open_container(parser *p, fy_jkind kind)
{
    if (p->nframes >= p->max_depth)
        return fail_at(p, FY_ERANGE, p->pos, "nesting deeper than %u arrays and objects",
                       p->max_depth);
    if (p->nframes == p->frames_cap) {
        size_t cap = p->frames_cap ? 2 * p->frames_cap : 32;
        frame *f = realloc(p->frames, cap * sizeof *f);
        if (!f) return fy_error_set(p->err, FY_ENOMEM, "out of memory reading JSON");
        p->frames = f;
        p->frames_cap = cap;
    }
    frame *f = &p->frames[p->nframes++];
    f->kind = (uint8_t)kind;
    f->start = p->nstack;
    f->line = p->line;
    f->column = column_at(p, p->pos);
    f->offset = (uint32_t)p->pos;
    p->pos++;
    return 0;
}

static int check_duplicates(parser *p, const fy_jnode *obj)
{
    const fy_jnode *first, *repeat;
    int rc = fy_jobj_find_duplicate(obj, &first, &repeat);
    if (rc < 0) return fy_error_set(p->err, rc, "out of memory reading JSON");
    if (rc == 0) return 0;
    char name[128];
    fy_text_excerpt(repeat->u.text, repeat->count, name, sizeof name);
    return fy_error_set_at(p->err, FY_EPARSE, p->doc->name, repeat->line, repeat->column,
                           "duplicate key \"%s\" (first at line %u, column %u)", name,
                           (unsigned)first->line, (unsigned)first->column);
}

/* Moves the children of the innermost open container into the arena and leaves the
 * container itself on the value stack. */
static int close_container(parser *p)
{
    frame *f = &p->frames[p->nframes - 1];
    size_t n = p->nstack - f->start;
    fy_jnode node = {.kind = f->kind, .line = f->line, .column = f->column, .offset = f->offset};
    if (n) {
        node.u.items = arena_alloc(p->doc, n * sizeof(fy_jnode));
        if (!node.u.items) return fy_error_set(p->err, FY_ENOMEM, "out of memory reading JSON");
        memcpy(node.u.items, p->stack + f->start, n * sizeof(fy_jnode));
    }
    node.count = (uint32_t)(f->kind == FY_JOBJECT ? n / 2 : n);
    p->nstack = f->start;
    p->nframes--;
    p->pos++;
    if (node.kind == FY_JOBJECT && p->reject_duplicates) {
        int rc = check_duplicates(p, &node);
        if (rc < 0) return rc;
    }
    return push(p, &node);
}

static int hex4(const unsigned char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    *out = v;
    return 0;
}

static size_t utf8_put(char *dst, unsigned cp)
{
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        dst[0] = (char)(0xc0 | (cp >> 6));
        dst[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        dst[0] = (char)(0xe0 | (cp >> 12));
        dst[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        dst[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    dst[0] = (char)(0xf0 | (cp >> 18));
    dst[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    dst[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    dst[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Reads the \u escape at pos (pointing at the backslash; end is the closing quote) into a
 * code point, joining a surrogate pair. Returns the bytes consumed, or a negative status. */
static int unicode_escape(parser *p, size_t pos, size_t end, unsigned *cp)
{
    unsigned hi, lo;
    if (pos + 6 > end || hex4(p->s + pos + 2, &hi) < 0)
        return fail_at(p, FY_EPARSE, pos, "\\u must be followed by four hex digits");
    if (hi >= 0xdc00 && hi <= 0xdfff)
        return fail_at(p, FY_EPARSE, pos, "unpaired low surrogate \\u%04X", hi);
    if (hi < 0xd800 || hi > 0xdbff) {
        *cp = hi;
        return 6;
    }
    if (pos + 12 > end || p->s[pos + 6] != '\\' || p->s[pos + 7] != 'u' ||
        hex4(p->s + pos + 8, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
        return fail_at(p, FY_EPARSE, pos,
                       "unpaired high surrogate \\u%04X (it must be followed by a \\u escape "
                       "of a low surrogate, \\uDC00 to \\uDFFF)",
                       hi);
    *cp = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
    return 12;
}

static int parse_string(parser *p, bool key)
{
    const char *what = key ? "object key" : "string";
    const char *a_what = key ? "an object key" : "a string";
    size_t start = p->pos;
    fy_jnode node;
    start_node(p, &node, FY_JSTRING);
    /* First find the closing quote: the decoded text is never longer than the raw one. */
    size_t end = start + 1;
    while (end < p->len && p->s[end] != '"')
        end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->len) return fail_at(p, FY_EPARSE, start, "unterminated %s", what);
    char *dst = arena_alloc(p->doc, end - start);
    if (!dst) return fy_error_set(p->err, FY_ENOMEM, "out of memory reading JSON");
    size_t o = 0, i = start + 1;
    while (i < end) {
        unsigned char c = p->s[i];
        if (c == '\\') {
            unsigned char e = p->s[i + 1];
            const char *simple = strchr("\"\\/bfnrt", e);
            if (e && simple) {
                dst[o++] = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
                i += 2;
            } else if (e == 'u') {
                unsigned cp = 0;
                int n = unicode_escape(p, i, end, &cp);
                if (n < 0) return n;
                if (cp == 0) node.flags |= FY_JSTR_HAS_NUL;
                o += utf8_put(dst + o, cp);
                i += (size_t)n;
            } else {
                char d[16];
                return fail_at(p, FY_EPARSE, i, "invalid escape: backslash before %s",
                               describe(p, i + 1, d, sizeof d));
            }
        } else if (c < 0x20) {
            return fail_at(p, FY_EPARSE, i,
                           "control character 0x%02x in %s (write it as a \\u escape)", c, a_what);
        } else if (c < 0x80) {
            dst[o++] = (char)c;
            i++;
        } else {
            size_t n = utf8_seq(p->s + i, end - i);
            if (!n) {
                char text[160];
                fy_text_excerpt((const char *)p->s + start + 1, end - start - 1, text, sizeof text);
                return fail_at(p, FY_EPARSE, i, "invalid UTF-8 (byte 0x%02x) in %s \"%s\"", c, what,
                               text);
            }
            memcpy(dst + o, p->s + i, n);
            o += n;
            i += n;
        }
    }
    dst[o] = '\0';
    node.u.text = dst;
    node.count = (uint32_t)o;
    p->pos = end + 1;
    return push(p, &node);
}

static bool is_digit(const parser *p, size_t pos)
{
    return pos < p->len && p->s[pos] >= '0' && p->s[pos] <= '9';
}

static int parse_number(parser *p)
{
    fy_jnode node;
    start_node(p, &node, FY_JNUMBER);
    size_t start = p->pos, i = p->pos;
    node.flags = FY_JNUM_INTEGER;
    if (p->s[i] == '-') {
        node.flags |= FY_JNUM_NEGATIVE;
        i++;
        if (!is_digit(p, i)) return fail_at(p, FY_EPARSE, i, "expected a digit after '-'");
    }
    if (p->s[i] == '0') {
        i++;
        if (is_digit(p, i))
            return fail_at(p, FY_EPARSE, start, "numbers must not have leading zeros");
    } else {
        while (is_digit(p, i))
            i++;
    }
    if (i < p->len && p->s[i] == '.') {
        node.flags &= (uint8_t)~FY_JNUM_INTEGER;
        if (!is_digit(p, ++i)) return fail_at(p, FY_EPARSE, i, "expected a digit after '.'");
        while (is_digit(p, i))
            i++;
    }
    if (i < p->len && (p->s[i] == 'e' || p->s[i] == 'E')) {
        node.flags &= (uint8_t)~FY_JNUM_INTEGER;
        i++;
        if (i < p->len && (p->s[i] == '+' || p->s[i] == '-')) i++;
        if (!is_digit(p, i)) return fail_at(p, FY_EPARSE, i, "expected a digit in the exponent");
        while (is_digit(p, i))
            i++;
    }
    char *text = arena_alloc(p->doc, i - start + 1);
    if (!text) return fy_error_set(p->err, FY_ENOMEM, "out of memory reading JSON");
    memcpy(text, p->s + start, i - start);
    text[i - start] = '\0';
    node.u.text = text;
    node.count = (uint32_t)(i - start);
    p->pos = i;
    return push(p, &node);
}

static int parse_word(parser *p)
{
    static const struct {
        const char *text;
        fy_jkind kind;
    } words[] = {{"true", FY_JTRUE}, {"false", FY_JFALSE}, {"null", FY_JNULL}};
    size_t n = 0;
    while (p->pos + n < p->len && n < 24) {
        unsigned char c = p->s[p->pos + n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) break;
        n++;
    }
    for (size_t w = 0; w < sizeof words / sizeof words[0]; w++) {
        if (strlen(words[w].text) == n && !memcmp(p->s + p->pos, words[w].text, n)) {
            fy_jnode node;
            start_node(p, &node, words[w].kind);
            p->pos += n;
            return push(p, &node);
        }
    }
    return fail_at(p, FY_EPARSE, p->pos, "expected a value, found '%.*s'", (int)n,
                   (const char *)p->s + p->pos);
}

enum { WANT_VALUE, WANT_KEY, AFTER_VALUE };

static int parse_value(parser *p, int *state)
{
    char d[16];
    unsigned char c = p->s[p->pos];
    switch (c) {
    case '[':
    case '{': {
        int rc = open_container(p, c == '[' ? FY_JARRAY : FY_JOBJECT);
        if (rc < 0) return rc;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == (c == '[' ? ']' : '}')) {
            *state = AFTER_VALUE;
            return close_container(p);
        }
        *state = c == '[' ? WANT_VALUE : WANT_KEY;
        return 0;
    }
    case '"':
        *state = AFTER_VALUE;
        return parse_string(p, false);
    default:
        break;
    }
    *state = AFTER_VALUE;
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return parse_word(p);
    return fail_at(p, FY_EPARSE, p->pos, "expected a value, found %s",
                   describe(p, p->pos, d, sizeof d));
}

static int parse(parser *p)
{
    char d[16];
    int state = WANT_VALUE;
    size_t comma = 0; /* position of the comma just read, 0 when none */
    for (;;) {
        skip_ws(p);
        int rc = 0;
        if (state == WANT_VALUE || state == WANT_KEY) {
            bool at_end = p->pos >= p->len;
            unsigned char c = at_end ? 0 : p->s[p->pos];
            if (comma && c == (p->frames[p->nframes - 1].kind == FY_JARRAY ? ']' : '}'))
                return fail_at(p, FY_EPARSE, comma, "trailing comma before '%c'", c);
            if (at_end && p->nframes == 0)
                return fail_at(p, FY_EPARSE, p->pos, "empty text: expected a JSON value");
            if (at_end) {
                const frame *f = &p->frames[p->nframes - 1];
                return fail_at(p, FY_EPARSE, p->pos,
                               "unexpected end of the text: the %s opened at line %u, column "
                               "%u is not closed",
                               f->kind == FY_JARRAY ? "array" : "object", (unsigned)f->line,
                               (unsigned)f->column);
            }
            comma = 0;
            if (state == WANT_VALUE) {
                rc = parse_value(p, &state);
            } else if (c != '"') {
                return fail_at(p, FY_EPARSE, p->pos, "expected a string key, found %s",
                               describe(p, p->pos, d, sizeof d));
            } else {
                rc = parse_string(p, true);
                if (rc == 0) {
                    const fy_jnode *k = &p->stack[p->nstack - 1];
                    skip_ws(p);
                    if (p->pos >= p->len || p->s[p->pos] != ':') {
                        char name[128];
                        return fail_at(p, FY_EPARSE, p->pos,
                                       "expected ':' after the key \"%s\", found %s",
                                       fy_text_excerpt(k->u.text, k->count, name, sizeof name),
                                       describe(p, p->pos, d, sizeof d));
                    }
                    p->pos++;
                    state = WANT_VALUE;
                }
            }
        } else if (p->nframes == 0) {
            if (p->pos < p->len)
                return fail_at(p, FY_EPARSE, p->pos, "unexpected %s after the JSON value",
                               describe(p, p->pos, d, sizeof d));
            return 0;
        } else {
            const frame *f = &p->frames[p->nframes - 1];
            bool array = f->kind == FY_JARRAY;
            if (p->pos < p->len && p->s[p->pos] == ',') {
                comma = p->pos++;
                state = array ? WANT_VALUE : WANT_KEY;
            } else if (p->pos < p->len && p->s[p->pos] == (array ? ']' : '}')) {
                rc = close_container(p);
            } else if (p->pos >= p->len) {
                return fail_at(p, FY_EPARSE, p->pos,
                               "unexpected end of the text: the %s opened at line %u, column "
                               "%u is not closed",
                               array ? "array" : "object", (unsigned)f->line, (unsigned)f->column);
            } else {
                return fail_at(p, FY_EPARSE, p->pos, "expected ',' or '%c' after %s, found %s",
                               array ? ']' : '}', array ? "an array item" : "an object member",
                               describe(p, p->pos, d, sizeof d));
            }
        }
        if (rc < 0) return rc;
    }
}

int fy_json_parse(const char *name, const char *text, size_t len, const fy_json_options *opt,
                  fy_jdoc **out, fy_error *err)
{
    *out = NULL;
    if (!name) name = "<json>";
    if (len > UINT32_MAX)
        return fy_error_set_at(err, FY_ERANGE, name, 0, 0,
                               "JSON text of %zu bytes is over the 4 GiB limit", len);
    fy_jdoc *doc = calloc(1, sizeof *doc);
    if (!doc || !(doc->name = strdup(name))) {
        free(doc);
        return fy_error_set(err, FY_ENOMEM, "out of memory reading JSON");
    }
    parser p = {.s = (const unsigned char *)text,
                .len = len,
                .line = 1,
                .doc = doc,
                .max_depth = opt && opt->max_depth ? opt->max_depth : FY_JSON_DEFAULT_DEPTH,
                .reject_duplicates = opt && opt->reject_duplicates,
                .err = err};
    int rc;
    if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
        rc = fail_at(&p, FY_EPARSE, 0, "a byte order mark is not allowed before JSON text");
    else
        rc = parse(&p);
    if (rc == 0) {
        assert(p.nstack == 1 && p.nframes == 0);
        doc->root = p.stack[0];
    }
    free(p.stack);
    free(p.frames);
    if (rc < 0) {
        fy_jdoc_destroy(doc);
        return rc;
    }
    *out = doc;
    return 0;
}

/* ---- reading the tree --------------------------------------------------------------- */

int fy_jdoc_error(const fy_jdoc *doc, const fy_jnode *node, fy_error *err, int status,
                  const char *fmt, ...)
{
    if (!err) return status;
    char msg[FY_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fy_error_set_at(err, status, doc->name, node ? node->line : 0, node ? node->column : 0,
                           "%s", msg);
}

const char *fy_jkind_name(const fy_jnode *node)
{
    static const char *const names[] = {"null",     "false",    "true",     "a number",
                                        "a string", "an array", "an object"};
    return node && node->kind <= FY_JOBJECT ? names[node->kind] : "nothing";
}

const fy_jnode *fy_jobj_get(const fy_jnode *obj, const char *key)
{
    if (!obj || obj->kind != FY_JOBJECT) return NULL;
    for (size_t i = 0; i < obj->count; i++)
        if (fy_jnode_is(fy_jobj_key(obj, i), key)) return fy_jobj_value(obj, i);
    return NULL;
}

bool fy_jnode_is(const fy_jnode *node, const char *text)
{
    size_t n = strlen(text);
    return node && node->kind == FY_JSTRING && node->count == n && !memcmp(node->u.text, text, n);
}

static int compare_keys(const void *a, const void *b)
{
    const fy_jnode *x = *(const fy_jnode *const *)a, *y = *(const fy_jnode *const *)b;
    size_t n = x->count < y->count ? x->count : y->count;
    int c = memcmp(x->u.text, y->u.text, n);
    if (c) return c;
    if (x->count != y->count) return x->count < y->count ? -1 : 1;
    /* equal keys keep document order, which is address order in the items array */
    return (uintptr_t)x < (uintptr_t)y ? -1 : (uintptr_t)x > (uintptr_t)y;
}

static bool same_key(const fy_jnode *a, const fy_jnode *b)
{
    return a->count == b->count && !memcmp(a->u.text, b->u.text, a->count);
}

int fy_jobj_find_duplicate(const fy_jnode *obj, const fy_jnode **first, const fy_jnode **repeat)
{
    if (!obj || obj->kind != FY_JOBJECT || obj->count < 2) return 0;
    const fy_jnode **keys = malloc(obj->count * sizeof *keys);
    if (!keys) return FY_ENOMEM;
    for (size_t i = 0; i < obj->count; i++)
        keys[i] = fy_jobj_key(obj, i);
    qsort(keys, obj->count, sizeof *keys, compare_keys);
    /* Equal keys sort together in document order, so the second key of each run is that
     * key's first repeat; the earliest of those is the one a reader meets first. */
    const fy_jnode *best_first = NULL, *best_repeat = NULL;
    for (size_t i = 1; i < obj->count; i++) {
        if (!same_key(keys[i - 1], keys[i]) || (i >= 2 && same_key(keys[i - 2], keys[i]))) continue;
        if (!best_repeat || (uintptr_t)keys[i] < (uintptr_t)best_repeat) {
            best_first = keys[i - 1];
            best_repeat = keys[i];
        }
    }
    free(keys);
    if (!best_repeat) return 0;
    *first = best_first;
    *repeat = best_repeat;
    return 1;
}

/* ---- numbers ------------------------------------------------------------------------ */

/* The magnitude of an integer number node, exactly; FY_ERANGE beyond 64 bits. */
static int magnitude(const fy_jnode *node, uint64_t *out)
{
    if (!node || node->kind != FY_JNUMBER || !(node->flags & FY_JNUM_INTEGER)) return FY_EINVAL;
    const char *s = node->u.text + ((node->flags & FY_JNUM_NEGATIVE) ? 1 : 0);
    uint64_t v = 0;
    for (; *s; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return FY_ERANGE;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int fy_jnum_u64(const fy_jnode *node, uint64_t *out)
{
    uint64_t v;
    int rc = magnitude(node, &v);
    if (rc < 0) return rc;
    if ((node->flags & FY_JNUM_NEGATIVE) && v != 0) return FY_ERANGE;
    *out = v;
    return 0;
}

int fy_jnum_i64(const fy_jnode *node, int64_t *out)
{
    uint64_t v;
    int rc = magnitude(node, &v);
    if (rc < 0) return rc;
    if (node->flags & FY_JNUM_NEGATIVE) {
        if (v > (uint64_t)INT64_MAX + 1) return FY_ERANGE;
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX) return FY_ERANGE;
        *out = (int64_t)v;
    }
    return 0;
}

int fy_jnum_f64(const fy_jnode *node, double *out)
{
    if (!node || node->kind != FY_JNUMBER) return FY_EINVAL;
    /* JSON's decimal point is '.', whatever locale the program that embeds us has set. */
    locale_t c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    if (c_locale == (locale_t)0) return FY_ENOMEM;
    errno = 0;
    double v = strtod_l(node->u.text, NULL, c_locale);
    int saved = errno;
    freelocale(c_locale);
    if (saved == ERANGE && isinf(v)) return FY_ERANGE;
    *out = v;
    return 0;
}
