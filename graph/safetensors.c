/* Reading and validating one safetensors file's header. A file is returned only after every
 * entry has passed every check (dtype known, shape and byte count in agreement without
 * overflow, offsets inside the data region, no two tensors sharing a byte, names unique and
 * printable as C strings), so callers never re-check. Only the 8-byte length and the header
 * are read; the data region is never touched.
 */
#include "graph/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const fy_st_dtype dtypes[] = {
    {"BOOL", 8, FY_DTYPE_BOOL},
    {"U8", 8, FY_DTYPE_U8},
    {"I8", 8, FY_DTYPE_I8},
    {"F8_E5M2", 8, FY_DTYPE_F8_E5M2},
    {"F8_E4M3", 8, FY_DTYPE_F8_E4M3},
    {"F8_E8M0", 8, FY_DTYPE_NONE},
    {"F8_E4M3FNUZ", 8, FY_DTYPE_NONE},
    {"F8_E5M2FNUZ", 8, FY_DTYPE_NONE},
    {"I16", 16, FY_DTYPE_I16},
    {"U16", 16, FY_DTYPE_NONE},
    {"F16", 16, FY_DTYPE_F16},
    {"BF16", 16, FY_DTYPE_BF16},
    {"I32", 32, FY_DTYPE_I32},
    {"U32", 32, FY_DTYPE_NONE},
    {"F32", 32, FY_DTYPE_F32},
    {"I64", 64, FY_DTYPE_I64},
    {"U64", 64, FY_DTYPE_NONE},
    {"F64", 64, FY_DTYPE_F64},
    {"C64", 64, FY_DTYPE_NONE},
    {"F4", 4, FY_DTYPE_NONE},
    {"F6_E2M3", 6, FY_DTYPE_NONE},
    {"F6_E3M2", 6, FY_DTYPE_NONE},
};

const fy_st_dtype *fy_st_dtype_find(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strlen(dtypes[i].name) == len && !memcmp(dtypes[i].name, name, len)) return &dtypes[i];
    return NULL;
}

const char *fy_st_dtype_names(void)
{
    /* kept in the table's order; the tests check that the two agree */
    return "BOOL, U8, I8, F8_E5M2, F8_E4M3, F8_E8M0, F8_E4M3FNUZ, F8_E5M2FNUZ, I16, U16, F16, "
           "BF16, I32, U32, F32, I64, U64, F64, C64, F4, F6_E2M3, F6_E3M2";
}

void fy_st_file_destroy(fy_st_file *f)
{
    if (!f) return;
    fy_jdoc_destroy(f->doc);
    free(f->tensors);
    free(f->meta);
    free(f->dims);
    free(f->path);
    free(f);
}

typedef struct reader {
    fy_st_file *f;
    fy_error *err;
    uint64_t data_size; /* bytes after the header */
} reader;

static int node_error(reader *r, const fy_jnode *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int node_error(reader *r, const fy_jnode *at, const char *fmt, ...)
{
    char msg[FY_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fy_jdoc_error(r->f->doc, at, r->err, FY_EPARSE, "%s", msg);
}

/* An error about the tensor whose name is key, positioned at node `at`. */
static int tensor_error(reader *r, const fy_jnode *key, const fy_jnode *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int tensor_error(reader *r, const fy_jnode *key, const fy_jnode *at, const char *fmt, ...)
{
    char msg[FY_ERROR_MESSAGE_MAX / 2], name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return node_error(r, at, "tensor '%s': %s",
                      fy_text_excerpt(key->u.text, key->count, name, sizeof name), msg);
}

static const char *shape_text(const uint64_t *shape, int rank, char *buf, size_t size)
{
    size_t o = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < rank && o < size; i++)
        o += (size_t)snprintf(buf + o, size - o, "%s%llu", i ? ", " : "",
                              (unsigned long long)shape[i]);
    if (o < size) snprintf(buf + o, size - o, "]");
    return buf;
}

/* A whole non-negative number of 64 bits at node, or an error naming what it is. */
static int read_u64(reader *r, const fy_jnode *key, const fy_jnode *node, const char *what,
                    uint64_t *out)
{
    if (node->kind != FY_JNUMBER)
        return tensor_error(r, key, node, "%s must be a whole number, not %s", what,
                            fy_jkind_name(node));
    int rc = fy_jnum_u64(node, out);
    if (rc == FY_EINVAL)
        return tensor_error(r, key, node, "%s must be a whole number, not %s", what, node->u.text);
    if (rc < 0 && (node->flags & FY_JNUM_NEGATIVE))
        return tensor_error(r, key, node, "%s must not be negative (%s)", what, node->u.text);
    if (rc < 0) return tensor_error(r, key, node, "%s is too large (%s)", what, node->u.text);
    return 0;
}

static int read_entry(reader *r, const fy_jnode *key, const fy_jnode *entry, fy_st_tensor *t,
                      uint64_t *dims)
{
    if (entry->kind != FY_JOBJECT)
        return tensor_error(r, key, entry, "its entry must be an object, not %s",
                            fy_jkind_name(entry));
    const fy_jnode *first, *repeat;
    int rc = fy_jobj_find_duplicate(entry, &first, &repeat);
    if (rc < 0) return fy_error_set(r->err, rc, "out of memory reading %s", r->f->path);
    if (rc > 0) {
        char k[64];
        return tensor_error(r, key, repeat, "'%s' is given twice",
                            fy_text_excerpt(repeat->u.text, repeat->count, k, sizeof k));
    }
    const fy_jnode *dtype = NULL, *shape = NULL, *offsets = NULL;
    for (size_t i = 0; i < entry->count; i++) {
        const fy_jnode *k = fy_jobj_key(entry, i), *v = fy_jobj_value(entry, i);
        if (fy_jnode_is(k, "dtype"))
            dtype = v;
        else if (fy_jnode_is(k, "shape"))
            shape = v;
        else if (fy_jnode_is(k, "data_offsets"))
            offsets = v;
        else {
            char kt[64];
            return tensor_error(r, key, k,
                                "unknown key '%s' (an entry holds dtype, shape and "
                                "data_offsets)",
                                fy_text_excerpt(k->u.text, k->count, kt, sizeof kt));
        }
    }
    const char *missing = !dtype ? "dtype" : !shape ? "shape" : !offsets ? "data_offsets" : NULL;
    if (missing) return tensor_error(r, key, entry, "its entry has no '%s'", missing);

    if (dtype->kind != FY_JSTRING)
        return tensor_error(r, key, dtype, "dtype must be a string, not %s", fy_jkind_name(dtype));
    t->dtype = fy_st_dtype_find(dtype->u.text, dtype->count);
    if (!t->dtype) {
        char d[64];
        return tensor_error(r, key, dtype, "unknown dtype '%s' (known: %s)",
                            fy_text_excerpt(dtype->u.text, dtype->count, d, sizeof d),
                            fy_st_dtype_names());
    }

    if (shape->kind != FY_JARRAY)
        return tensor_error(r, key, shape, "shape must be an array, not %s", fy_jkind_name(shape));
    t->rank = (int)shape->count;
    t->shape = dims;
    bool has_zero = false, overflow = false;
    uint64_t elements = 1;
    for (size_t i = 0; i < shape->count; i++) {
        char what[32];
        snprintf(what, sizeof what, "shape[%zu]", i);
        if ((rc = read_u64(r, key, fy_jarr_item(shape, i), what, &dims[i])) < 0) return rc;
        if (dims[i] == 0)
            has_zero = true;
        else if (elements > UINT64_MAX / dims[i])
            overflow = true;
        else
            elements *= dims[i];
    }
    char st[256];
    /* A zero anywhere makes the product zero, however large the other dimensions are. */
    if (has_zero)
        elements = 0;
    else if (overflow)
        return tensor_error(r, key, shape, "shape %s has more than 2^64 elements",
                            shape_text(dims, t->rank, st, sizeof st));
    t->elements = elements;
    unsigned bits = t->dtype->bits;
    uint64_t need;
    if (bits % 8 == 0) {
        if (elements > UINT64_MAX / (bits / 8))
            return tensor_error(r, key, shape, "shape %s of %s takes more than 2^64 bytes",
                                shape_text(dims, t->rank, st, sizeof st), t->dtype->name);
        need = elements * (bits / 8);
    } else {
        if (elements > UINT64_MAX / bits)
            return tensor_error(r, key, shape, "shape %s of %s takes more than 2^64 bytes",
                                shape_text(dims, t->rank, st, sizeof st), t->dtype->name);
        if (elements * bits % 8)
            return tensor_error(r, key, shape,
                                "shape %s of %s (%u bits each) does not fill whole bytes",
                                shape_text(dims, t->rank, st, sizeof st), t->dtype->name, bits);
        need = elements * bits / 8;
    }

    if (offsets->kind != FY_JARRAY || offsets->count != 2)
        return tensor_error(r, key, offsets, "data_offsets must be an array [begin, end], not %s",
                            offsets->kind == FY_JARRAY ? "an array of another length"
                                                       : fy_jkind_name(offsets));
    if ((rc = read_u64(r, key, fy_jarr_item(offsets, 0), "data_offsets[0]", &t->begin)) < 0 ||
        (rc = read_u64(r, key, fy_jarr_item(offsets, 1), "data_offsets[1]", &t->end)) < 0)
        return rc;
    if (t->end < t->begin)
        return tensor_error(r, key, offsets, "data_offsets [%llu, %llu] end before they begin",
                            (unsigned long long)t->begin, (unsigned long long)t->end);
    t->bytes = t->end - t->begin;
    if (t->bytes != need)
        return tensor_error(r, key, offsets,
                            "shape %s of %s is %llu bytes, but data_offsets [%llu, %llu] span "
                            "%llu",
                            shape_text(dims, t->rank, st, sizeof st), t->dtype->name,
                            (unsigned long long)need, (unsigned long long)t->begin,
                            (unsigned long long)t->end, (unsigned long long)t->bytes);
    if (t->end > r->data_size)
        return tensor_error(r, key, offsets,
                            "data_offsets [%llu, %llu] go beyond the data region (%llu bytes "
                            "after the header)",
                            (unsigned long long)t->begin, (unsigned long long)t->end,
                            (unsigned long long)r->data_size);
    t->offset = r->f->data_start + t->begin;
    return 0;
}

static int read_metadata(reader *r, const fy_jnode *key, const fy_jnode *meta)
{
    if (meta->kind == FY_JNULL) return 0;
    if (meta->kind != FY_JOBJECT)
        return node_error(r, meta, "__metadata__ must be an object of strings, not %s",
                          fy_jkind_name(meta));
    const fy_jnode *first, *repeat;
    int rc = fy_jobj_find_duplicate(meta, &first, &repeat);
    if (rc < 0) return fy_error_set(r->err, rc, "out of memory reading %s", r->f->path);
    char k[128];
    if (rc > 0)
        return node_error(r, repeat, "__metadata__: key '%s' is given twice",
                          fy_text_excerpt(repeat->u.text, repeat->count, k, sizeof k));
    r->f->meta = calloc(meta->count ? meta->count : 1, sizeof *r->f->meta);
    if (!r->f->meta) return fy_error_set(r->err, FY_ENOMEM, "out of memory reading %s", r->f->path);
    for (size_t i = 0; i < meta->count; i++) {
        const fy_jnode *mk = fy_jobj_key(meta, i), *mv = fy_jobj_value(meta, i);
        fy_text_excerpt(mk->u.text, mk->count, k, sizeof k);
        if (mv->kind != FY_JSTRING)
            return node_error(r, mv, "__metadata__: '%s' must be a string, not %s", k,
                              fy_jkind_name(mv));
        if ((mk->flags | mv->flags) & FY_JSTR_HAS_NUL)
            return node_error(r, (mk->flags & FY_JSTR_HAS_NUL) ? mk : mv,
                              "__metadata__: '%s' holds a NUL character", k);
        r->f->meta[i].key = mk->u.text;
        r->f->meta[i].value = mv->u.text;
    }
    r->f->meta_count = meta->count;
    (void)key;
    return 0;
}

static int compare_begin(const void *a, const void *b)
{
    const fy_st_tensor *x = *(const fy_st_tensor *const *)a, *y = *(const fy_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* Two tensors overlap when they share a byte; empty tensors share none. */
static int check_overlaps(reader *r)
{
    fy_st_file *f = r->f;
    if (f->tensor_count < 2) return 0;
    fy_st_tensor **order = malloc(f->tensor_count * sizeof *order);
    if (!order) return fy_error_set(r->err, FY_ENOMEM, "out of memory reading %s", f->path);
    for (size_t i = 0; i < f->tensor_count; i++)
        order[i] = &f->tensors[i];
    qsort(order, f->tensor_count, sizeof *order, compare_begin);
    const fy_st_tensor *reach = NULL; /* the non-empty tensor ending last so far */
    int rc = 0;
    for (size_t i = 0; i < f->tensor_count && rc == 0; i++) {
        const fy_st_tensor *t = order[i];
        if (t->bytes == 0) continue;
        if (reach && reach->end > t->begin) {
            char other[256];
            fy_text_excerpt(reach->name, strlen(reach->name), other, sizeof other);
            fy_jnode at = {.kind = FY_JSTRING, .line = t->line, .column = t->column};
            fy_jnode key = {
                .kind = FY_JSTRING, .u.text = t->name, .count = (uint32_t)strlen(t->name)};
            rc = tensor_error(r, &key, &at,
                              "its bytes [%llu, %llu) overlap those of tensor '%s' [%llu, %llu)",
                              (unsigned long long)t->begin, (unsigned long long)t->end, other,
                              (unsigned long long)reach->begin, (unsigned long long)reach->end);
        }
        if (!reach || t->end > reach->end) reach = t;
    }
    free(order);
    return rc;
}

static int read_root(reader *r)
{
    fy_st_file *f = r->f;
    const fy_jnode *root = fy_jdoc_root(f->doc);
    if (root->kind != FY_JOBJECT)
        return node_error(r, root, "the header must be a JSON object, not %s", fy_jkind_name(root));
    const fy_jnode *first, *repeat;
    int rc = fy_jobj_find_duplicate(root, &first, &repeat);
    if (rc < 0) return fy_error_set(r->err, rc, "out of memory reading %s", f->path);
    if (rc > 0) {
        if (fy_jnode_is(repeat, "__metadata__"))
            return node_error(r, repeat,
                              "__metadata__ is given twice (first at line %u, "
                              "column %u)",
                              (unsigned)first->line, (unsigned)first->column);
        return tensor_error(r, repeat, repeat,
                            "the name appears twice in the header (first at line %u, column %u)",
                            (unsigned)first->line, (unsigned)first->column);
    }
    /* Shapes of every entry go in one array, so count their dimensions first. */
    size_t ndims = 0;
    for (size_t i = 0; i < root->count; i++) {
        const fy_jnode *shape = fy_jobj_get(fy_jobj_value(root, i), "shape");
        if (shape && shape->kind == FY_JARRAY) ndims += shape->count;
    }
    f->dims = malloc((ndims ? ndims : 1) * sizeof *f->dims);
    f->tensors = calloc(root->count ? root->count : 1, sizeof *f->tensors);
    if (!f->dims || !f->tensors)
        return fy_error_set(r->err, FY_ENOMEM, "out of memory reading %s", f->path);
    size_t used = 0;
    for (size_t i = 0; i < root->count; i++) {
        const fy_jnode *key = fy_jobj_key(root, i), *value = fy_jobj_value(root, i);
        if (fy_jnode_is(key, "__metadata__")) {
            if ((rc = read_metadata(r, key, value)) < 0) return rc;
            continue;
        }
        if (key->count == 0) return node_error(r, key, "a tensor has an empty name");
        if (key->flags & FY_JSTR_HAS_NUL)
            return tensor_error(r, key, key, "the name holds a NUL character");
        fy_st_tensor *t = &f->tensors[f->tensor_count];
        t->name = key->u.text;
        t->line = key->line;
        t->column = key->column;
        if ((rc = read_entry(r, key, value, t, f->dims + used)) < 0) return rc;
        used += (size_t)t->rank;
        f->tensor_count++;
    }
    return check_overlaps(r);
}

static uint64_t le64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

/* Checks the header length N against the file's size. */
static int check_length(const char *name, uint64_t size, const unsigned char *prefix, uint64_t *n,
                        fy_error *err)
{
    if (size < 8)
        return fy_error_set_at(err, FY_EPARSE, name, 0, 0,
                               "file of %llu bytes is too short for safetensors (it starts "
                               "with an 8-byte header length)",
                               (unsigned long long)size);
    *n = le64(prefix);
    if (*n > FY_ST_HEADER_MAX)
        return fy_error_set_at(err, FY_EPARSE, name, 0, 0,
                               "header length %llu is absurd (over the %llu MiB limit): not a "
                               "safetensors file, or a damaged one",
                               (unsigned long long)*n, FY_ST_HEADER_MAX >> 20);
    if (*n > size - 8)
        return fy_error_set_at(err, FY_EPARSE, name, 0, 0,
                               "header length %llu goes beyond the end of the file (%llu bytes)",
                               (unsigned long long)*n, (unsigned long long)size);
    return 0;
}

/* Parses the header (n bytes of JSON) of a file of size bytes. */
static int parse_header(const char *name, const char *json, uint64_t n, uint64_t size,
                        fy_st_file **out, fy_error *err)
{
    *out = NULL;
    fy_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(name))) {
        free(f);
        return fy_error_set(err, FY_ENOMEM, "out of memory reading %s", name);
    }
    f->size = size;
    f->header_len = n;
    f->data_start = 8 + n;
    int rc = fy_json_parse(name, json, (size_t)n, NULL, &f->doc, err);
    if (rc < 0) {
        if (err) fy_error_prefix(err, "header JSON");
    } else {
        reader r = {.f = f, .err = err, .data_size = size - f->data_start};
        rc = read_root(&r);
    }
    if (rc < 0) {
        fy_st_file_destroy(f);
        return rc;
    }
    *out = f;
    return 0;
}

int fy_st_file_parse(const char *name, const void *data, size_t len, fy_st_file **out,
                     fy_error *err)
{
    *out = NULL;
    uint64_t n = 0;
    int rc = check_length(name, len, data, &n, err);
    if (rc < 0) return rc;
    return parse_header(name, (const char *)data + 8, n, len, out, err);
}

static int read_exact(int fd, void *buf, size_t len, uint64_t at, const char *path, fy_error *err)
{
    char *p = buf;
    while (len) {
        ssize_t got = pread(fd, p, len, (off_t)at);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0)
            return fy_error_set_at(err, fy_status_from_errno(errno), path, 0, 0, "cannot read: %s",
                                   strerror(errno));
        if (got == 0)
            return fy_error_set_at(err, FY_EIO, path, 0, 0,
                                   "the file ended early (was it changed while being read?)");
        p += got;
        len -= (size_t)got;
        at += (uint64_t)got;
    }
    return 0;
}

int fy_st_file_read(const char *path, fy_st_file **out, fy_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fy_error_set_at(err, fy_status_from_errno(errno), path, 0, 0, "cannot open: %s",
                               strerror(errno));
    struct stat st;
    int rc = 0;
    char *json = NULL;
    unsigned char prefix[8] = {0};
    uint64_t n = 0;
    if (fstat(fd, &st) < 0)
        rc = fy_error_set_at(err, fy_status_from_errno(errno), path, 0, 0, "cannot stat: %s",
                             strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = fy_error_set_at(err, FY_EINVAL, path, 0, 0, "not a regular file");
    if (rc == 0 && st.st_size >= 8) rc = read_exact(fd, prefix, 8, 0, path, err);
    if (rc == 0) rc = check_length(path, (uint64_t)st.st_size, prefix, &n, err);
    if (rc == 0 && !(json = malloc(n ? (size_t)n : 1)))
        rc = fy_error_set(err, FY_ENOMEM, "out of memory reading %s", path);
    if (rc == 0) rc = read_exact(fd, json, (size_t)n, 8, path, err);
    close(fd);
    if (rc == 0) rc = parse_header(path, json, n, (uint64_t)st.st_size, out, err);
    free(json);
    return rc;
}
