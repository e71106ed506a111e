/* A fast reader for the YAML that ferry's own writers emit (plans, graphs, machines), which
 * builds the tree of yaml.h straight from the text instead of through libyaml's token and
 * event queues. Invariant: for any input it either builds EXACTLY the tree libyaml's path
 * would build (same kinds, texts, quoted flags, lines and columns, node for node) or
 * declines, and then the caller reads the text with libyaml, so every error message and
 * every piece of YAML outside the subset keeps libyaml's meaning. tests/test_yaml_fast.c
 * checks this invariant against libyaml on fixtures, generated files and mutations.
 *
 * The subset, line by line (anything else declines):
 * - The text is ASCII; lines end with '\n' (the last may end the text instead); no tabs,
 *   carriage returns, directives, document markers, anchors, tags or quotes.
 * - Empty lines and whole-line comments (`# ...` after spaces, printable ASCII) are
 *   skipped; a line of spaces only, trailing spaces, or a comment after a value declines.
 * - The root is a block mapping or block sequence. A block mapping line is `KEY: VALUE` or
 *   `KEY:` followed by a more indented block node, or by a block sequence at the key's own
 *   indentation (an "indentless" sequence). A block sequence line is `- VALUE`.
 * - A VALUE is a plain scalar or a flow collection ending on the same line: `{KEY: VALUE,
 *   ...}` or `[VALUE, ...]`, nested at most 64 deep, no empty values, no trailing comma.
 * - A plain scalar is one or more of the letters, digits and `_.-/+()$=~^` that
 *   fy_yaml_plain_ok writes (so no spaces inside), not starting with `-` or `.`; a KEY is
 *   such a scalar of at most 512 bytes followed directly by ':' and a space or line end.
 * Within it, YAML's meaning is plain: a scalar's text is its bytes, never quoted; a
 * collection's position is its bracket, a block mapping's its first key and a block
 * sequence's its first '-', as libyaml reports them. */
#include "core/yaml_fast.h"

#include <stddef.h>

enum { MAX_DEPTH = 64, MAX_KEY = 512 };

typedef struct scan {
    fy_ybuild *b;
    const char *p, *end;
    const char *line_start;
    uint32_t line;
    long indent; /* indentation of the line p is on, -1 at the end of the text */
    int depth;
} scan;

static bool plain_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-' || c == '/' || c == '+' || c == '(' || c == ')' || c == '$' ||
           c == '=' || c == '~' || c == '^';
}

static uint32_t column(const scan *s, const char *at)
{
    return (uint32_t)(at - s->line_start + 1);
}

static void skip_spaces(scan *s)
{
    while (s->p < s->end && *s->p == ' ')
        s->p++;
}

static bool at(const scan *s, char c)
{
    return s->p < s->end && *s->p == c;
}

static int plain(scan *s, bool key)
{
    const char *start = s->p;
    if (s->p == s->end || !plain_char((unsigned char)*s->p) || *s->p == '-' || *s->p == '.')
        return FY_YAML_DECLINED;
    while (s->p < s->end && plain_char((unsigned char)*s->p))
        s->p++;
    size_t len = (size_t)(s->p - start);
    if (key && len > MAX_KEY) return FY_YAML_DECLINED;
    return fy_ybuild_scalar(s->b, s->line, column(s, start), start, len, false);
}

static int flow(scan *s);

static int flow_value(scan *s)
{
    return at(s, '{') || at(s, '[') ? flow(s) : plain(s, false);
}

/* A flow collection at p, up to its closing bracket on the same line. */
static int flow(scan *s)
{
    bool map = *s->p == '{';
    char close = map ? '}' : ']';
    if (++s->depth > MAX_DEPTH) return FY_YAML_DECLINED;
    int rc = fy_ybuild_open(s->b, map ? FY_YMAP : FY_YSEQ, s->line, column(s, s->p));
    s->p++;
    skip_spaces(s);
    if (rc == 0 && at(s, close)) {
        s->p++;
        s->depth--;
        return fy_ybuild_close(s->b);
    }
    while (rc == 0) {
        if (map) {
            if ((rc = plain(s, true)) != 0) return rc;
            if (!at(s, ':')) return FY_YAML_DECLINED;
            s->p++;
            if (!at(s, ' ')) return FY_YAML_DECLINED;
            skip_spaces(s);
        }
        if ((rc = flow_value(s)) != 0) return rc;
        skip_spaces(s);
        if (at(s, close)) {
            s->p++;
            s->depth--;
            return fy_ybuild_close(s->b);
        }
        if (!at(s, ',')) return FY_YAML_DECLINED;
        s->p++;
        skip_spaces(s); /* a trailing comma leaves p at the bracket: the next item declines */
    }
    return rc;
}

/* p is at the start of a line: skips empty lines and comment lines and stops at the first character
 * of the next non-empty one, setting indent. */
static int enter_line(scan *s)
{
    for (;;) {
        const char *q = s->p;
        while (q < s->end && *q == ' ')
            q++;
        if (q < s->end && *q == '#') { /* a whole-line comment, in printable ASCII */
            for (; q < s->end && *q != '\n'; q++)
                if (*q < ' ' || *q > '~') return FY_YAML_DECLINED;
        } else if (q < s->end && *q != '\n') {
            s->indent = q - s->p;
            s->p = q;
            return 0;
        } else if (q != s->p) {
            return FY_YAML_DECLINED; /* spaces only */
        }
        if (q == s->end) {
            s->indent = -1;
            return 0;
        }
        s->p = q + 1;
        s->line++;
        s->line_start = s->p;
    }
}

/* After a value: the line must end here. */
static int end_line(scan *s)
{
    if (s->p == s->end) {
        s->indent = -1;
        return 0;
    }
    if (*s->p != '\n') return FY_YAML_DECLINED;
    s->p++;
    s->line++;
    s->line_start = s->p;
    return enter_line(s);
}

static int block_node(scan *s);

/* A value after `KEY: ` or `- `, then the end of its line. */
static int line_value(scan *s)
{
    int rc = flow_value(s);
    return rc ? rc : end_line(s);
}

/* A block sequence whose first '-' is at p; indentless when it sits at its parent key's
 * indentation, in which case a key at that indentation ends it. */
static int block_seq(scan *s, bool indentless)
{
    long indent = s->indent;
    if (++s->depth > MAX_DEPTH) return FY_YAML_DECLINED;
    int rc = fy_ybuild_open(s->b, FY_YSEQ, s->line, column(s, s->p));
    while (rc == 0) {
        s->p++; /* the '-' */
        if (!at(s, ' ')) return FY_YAML_DECLINED;
        skip_spaces(s);
        if ((rc = line_value(s)) != 0) return rc;
        if (s->indent == indent && at(s, '-')) continue;
        if (s->indent > indent || (s->indent == indent && !indentless)) return FY_YAML_DECLINED;
        s->depth--;
        return fy_ybuild_close(s->b);
    }
    return rc;
}

static int block_map(scan *s)
{
    long indent = s->indent;
    if (++s->depth > MAX_DEPTH) return FY_YAML_DECLINED;
    int rc = fy_ybuild_open(s->b, FY_YMAP, s->line, column(s, s->p));
    while (rc == 0) {
        if ((rc = plain(s, true)) != 0) return rc;
        if (!at(s, ':')) return FY_YAML_DECLINED;
        s->p++;
        if (s->p == s->end || *s->p == '\n') {
            if ((rc = end_line(s)) != 0) return rc;
            if (s->indent > indent)
                rc = block_node(s);
            else if (s->indent == indent && at(s, '-'))
                rc = block_seq(s, true);
            else
                return FY_YAML_DECLINED; /* an empty value */
        } else {
            if (!at(s, ' ')) return FY_YAML_DECLINED;
            skip_spaces(s);
            rc = line_value(s);
        }
        if (rc != 0) return rc;
        if (s->indent == indent) continue;
        if (s->indent > indent) return FY_YAML_DECLINED;
        s->depth--;
        return fy_ybuild_close(s->b);
    }
    return rc;
}

static int block_node(scan *s)
{
    return at(s, '-') ? block_seq(s, false) : block_map(s);
}

int fy_yaml_fast_read(fy_ybuild *b, const char *text, size_t len)
{
    scan s = {.b = b, .p = text, .end = text + len, .line_start = text, .line = 1};
    int rc = enter_line(&s);
    if (rc != 0 || s.indent < 0)
        return FY_YAML_DECLINED; /* an empty document is libyaml's to describe */
    if ((rc = block_node(&s)) != 0) return rc;
    return s.indent < 0 ? 0 : FY_YAML_DECLINED;
}
