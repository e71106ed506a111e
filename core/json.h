/* core/json.h — a strict JSON reader (RFC 8259) for the formats ferry reads but does not
 * own, such as safetensors headers and their index files (library-internal).
 *
 * A document is read whole into a compact tree whose nodes keep their byte offset, line and
 * column, so that later errors can point at the value they concern. Nothing outside the RFC
 * is accepted: no comments, trailing commas, single quotes, NaN, leading zeros, byte order
 * mark, raw control characters or invalid UTF-8 in strings, or unpaired surrogates in \u
 * escapes. The parser is iterative: nesting deeper than the caller's limit is refused with
 * an error, never a stack overflow. Numbers keep their text; the getters convert integers
 * exactly (64-bit) and refuse what does not fit. Duplicate keys are kept as written;
 * fy_jobj_find_duplicate finds them, and an option makes the parser refuse them.
 *
 * Nodes live in the document's arena and stay valid until fy_jdoc_destroy. Lines and columns
 * are 1-based; a column counts bytes from the start of its line.
 */
#ifndef FERRY_CORE_JSON_H
#define FERRY_CORE_JSON_H

#include "ferry/core.h"

typedef enum fy_jkind {
    FY_JNULL = 0,
    FY_JFALSE,
    FY_JTRUE,
    FY_JNUMBER,
    FY_JSTRING,
    FY_JARRAY,
    FY_JOBJECT,
} fy_jkind;

/* Flags of a number node. */
#define FY_JNUM_INTEGER 0x1u  /* written without fraction or exponent */
#define FY_JNUM_NEGATIVE 0x2u /* written with a leading '-' */
/* Flag of a string node: it holds U+0000 (from \u0000), so it is not a C string. */
#define FY_JSTR_HAS_NUL 0x1u

typedef struct fy_jnode fy_jnode;
struct fy_jnode {
    uint8_t kind;  /* fy_jkind */
    uint8_t flags; /* FY_JNUM_* or FY_JSTR_* */
    uint32_t line;
    uint32_t column;
    uint32_t offset; /* bytes from the start of the text */
    uint32_t count;  /* string: decoded bytes; number: bytes of text; array: items;
                        object: members */
    union {
        const char *text; /* string: decoded UTF-8; number: as written; NUL-terminated */
        fy_jnode *items;  /* array: items[i]; object: items[2i] key, items[2i+1] value */
    } u;
};

#define FY_JSON_DEFAULT_DEPTH 256

typedef struct fy_json_options {
    unsigned max_depth;     /* arrays and objects open at once; 0: FY_JSON_DEFAULT_DEPTH */
    bool reject_duplicates; /* a key repeated in one object is an error at the repeat */
} fy_json_options;

typedef struct fy_jdoc fy_jdoc;

/* Parses len bytes of text (which need not be NUL-terminated). name is used in error
 * messages and kept by the document; opt may be NULL for the defaults. Texts over 4 GiB are
 * refused (positions are 32-bit). Errors are FY_EPARSE (syntax, encoding, duplicates),
 * FY_ERANGE (nesting too deep, text too long) or FY_ENOMEM, positioned at the offending
 * byte. */
int fy_json_parse(const char *name, const char *text, size_t len, const fy_json_options *opt,
                  fy_jdoc **out, fy_error *err);
void fy_jdoc_destroy(fy_jdoc *doc);
const fy_jnode *fy_jdoc_root(const fy_jdoc *doc);
const char *fy_jdoc_name(const fy_jdoc *doc);

/* Sets err to NAME:LINE:COLUMN of node (or of the document alone when node is NULL). */
int fy_jdoc_error(const fy_jdoc *doc, const fy_jnode *node, fy_error *err, int status,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* "null", "false", "true", "a number", "a string", "an array", "an object". */
const char *fy_jkind_name(const fy_jnode *node);

static inline const fy_jnode *fy_jobj_key(const fy_jnode *obj, size_t i)
{
    return &obj->u.items[2 * i];
}
static inline const fy_jnode *fy_jobj_value(const fy_jnode *obj, size_t i)
{
    return &obj->u.items[2 * i + 1];
}
static inline const fy_jnode *fy_jarr_item(const fy_jnode *arr, size_t i)
{
    return &arr->u.items[i];
}
/* The value of the first member named key, or NULL (also when obj is not an object).
 * Linear in the members: for the small objects of a format, not for big maps. */
const fy_jnode *fy_jobj_get(const fy_jnode *obj, const char *key);
/* Finds the first key (in document order) that repeats an earlier key of obj. Returns 1 and
 * sets *first and *repeat, 0 when every key is unique, FY_ENOMEM. O(n log n). */
int fy_jobj_find_duplicate(const fy_jnode *obj, const fy_jnode **first, const fy_jnode **repeat);
/* True when node is a string equal to text (which holds no NUL). */
bool fy_jnode_is(const fy_jnode *node, const char *text);

/* Exact conversions of a number node. They return 0 and store the value, FY_EINVAL when
 * node is not a number (or, for the integer getters, not written as an integer) and
 * FY_ERANGE when the value does not fit. fy_jnum_f64 rounds to the nearest double (always
 * in the C locale) and refuses only values beyond the double range. */
int fy_jnum_i64(const fy_jnode *node, int64_t *out);
int fy_jnum_u64(const fy_jnode *node, uint64_t *out);
int fy_jnum_f64(const fy_jnode *node, double *out);

/* Writes text (len bytes) for a message: control bytes and bytes that are not UTF-8 become
 * \xNN, and an over-long text is cut at a character boundary and ends with "...". Always
 * NUL-terminates buf (size >= 8). Returns buf. */
char *fy_text_excerpt(const char *text, size_t len, char *buf, size_t size);

#endif
