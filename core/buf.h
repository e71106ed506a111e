/* core/buf.h — a growable text buffer, the YAML scalar writer, and whole-file helpers
 * (library-internal). Writers build a file in memory and replace the target atomically, so a
 * failure (a full disk, a bad path) never leaves a half-written file behind. */
#ifndef FERRY_CORE_BUF_H
#define FERRY_CORE_BUF_H

#include "ferry/core.h"

#include <stdio.h>

typedef struct fy_buf {
    char *data; /* NUL-terminated when len > 0 or after any append */
    size_t len, cap;
    bool failed; /* an allocation failed: later appends do nothing */
} fy_buf;

void fy_buf_free(fy_buf *b);
void fy_buf_append(fy_buf *b, const char *text, size_t len);
void fy_buf_puts(fy_buf *b, const char *text);
/* Appends v in decimal, without printf: the writers of big graphs and million-event plans
 * call it millions of times, and printf's format parsing would dominate. */
void fy_buf_u64(fy_buf *b, uint64_t v);
void fy_buf_printf(fy_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends text as a YAML scalar: plain when that reads back as the same string, else
 * double-quoted with escapes. */
void fy_buf_scalar(fy_buf *b, const char *text);
/* Appends text as a JSON string (quoted, escaped). */
void fy_buf_json_string(fy_buf *b, const char *text);
/* True when text can be written as a plain YAML scalar and read back unchanged as a name. */
bool fy_yaml_plain_ok(const char *text);

/* Writes data to path atomically (a temporary file in the same folder, fsync, rename).
 * "-" writes to standard output. */
int fy_file_write_atomic(const char *path, const void *data, size_t len, fy_error *err);
/* Writes a buffer the same way; a buffer whose allocation failed is FY_ENOMEM. */
int fy_buf_write_file(const fy_buf *b, const char *path, fy_error *err);
/* Reads a whole file into a NUL-terminated malloc'ed buffer. */
int fy_file_read_all(const char *path, char **data, size_t *len, fy_error *err);
/* Resolves path relative to the folder of base_file (unless path is absolute). Returns a
 * malloc'ed string or NULL when out of memory. */
char *fy_path_relative_to(const char *base_file, const char *path);

#endif
