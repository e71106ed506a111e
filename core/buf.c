/* Growable text, YAML/JSON scalar quoting, and atomic whole-file writes. An allocation
 * failure marks the buffer failed instead of aborting; the final write reports it. */
#include "core/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void fy_buf_free(fy_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

static bool reserve(fy_buf *b, size_t extra)
{
    if (b->failed) return false;
    if (b->len + extra + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) {
        b->failed = true;
        return false;
    }
    b->data = d;
    b->cap = cap;
    return true;
}

void fy_buf_append(fy_buf *b, const char *text, size_t len)
{
    if (!reserve(b, len)) return;
    memcpy(b->data + b->len, text, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void fy_buf_puts(fy_buf *b, const char *text)
{
    fy_buf_append(b, text, strlen(text));
}

void fy_buf_u64(fy_buf *b, uint64_t v)
{
    char text[24];
    size_t i = sizeof text;
    do {
        text[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    fy_buf_append(b, text + i, sizeof text - i);
}

void fy_buf_printf(fy_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        fy_buf_append(b, small, (size_t)n);
        return;
    }
    if (!reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

bool fy_yaml_plain_ok(const char *text)
{
    static const char *const reserved[] = {"null",  "Null",  "NULL",  "~",   "true", "True", "TRUE",
                                           "false", "False", "FALSE", "yes", "no",   "on",   "off",
                                           "Yes",   "No",    "On",    "Off", "y",    "n",    NULL};
    if (!text[0]) return false;
    /* Letters, digits and a few punctuation marks that YAML gives no meaning inside a plain
     * scalar; the first character must not start an indicator. */
    if (strchr("-?:,[]{}#&*!|>'\"%@` .", text[0])) return false;
    size_t len = 0;
    for (const char *s = text; *s; s++, len++) {
        unsigned char c = (unsigned char)*s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  strchr("_.-/+()$=~^", c) != NULL;
        if (!ok) return false;
    }
    /* The words YAML reads as null or booleans (none is longer than 5 letters); checked last
     * because the graph digest writes every name of a big graph through here. */
    for (const char *const *r = reserved; len <= 5 && *r; r++)
        if (strcmp(*r, text) == 0) return false;
    return true;
}

static void append_escaped(fy_buf *b, const char *text, bool json)
{
    fy_buf_append(b, "\"", 1);
    for (const unsigned char *s = (const unsigned char *)text; *s; s++) {
        switch (*s) {
        case '"':
            fy_buf_puts(b, "\\\"");
            break;
        case '\\':
            fy_buf_puts(b, "\\\\");
            break;
        case '\n':
            fy_buf_puts(b, "\\n");
            break;
        case '\t':
            fy_buf_puts(b, "\\t");
            break;
        case '\r':
            fy_buf_puts(b, "\\r");
            break;
        default:
            if (*s < 0x20 || *s == 0x7f)
                fy_buf_printf(b, json ? "\\u%04x" : "\\x%02x", *s);
            else
                fy_buf_append(b, (const char *)s, 1);
        }
    }
    fy_buf_append(b, "\"", 1);
}

void fy_buf_scalar(fy_buf *b, const char *text)
{
    if (fy_yaml_plain_ok(text))
        fy_buf_puts(b, text);
    else
        append_escaped(b, text, false);
}

void fy_buf_json_string(fy_buf *b, const char *text)
{
    append_escaped(b, text, true);
}

static int write_fd_all(int fd, const char *data, size_t len)
{
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int fy_file_write_atomic(const char *path, const void *data, size_t len, fy_error *err)
{
    if (strcmp(path, "-") == 0) {
        int rc = write_fd_all(STDOUT_FILENO, data, len);
        if (rc < 0)
            return fy_error_set(err, fy_status_from_errno(rc), "writing standard output: %s",
                                strerror(-rc));
        return 0;
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) return fy_error_set(err, FY_ENOMEM, "out of memory");
    snprintf(tmp, plen + 16, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return fy_error_set_at(err, fy_status_from_errno(e), path, 0, 0, "cannot create: %s",
                               strerror(e));
    }
    int rc = write_fd_all(fd, data, len);
    if (rc == 0 && fsync(fd) < 0) rc = -errno;
    /* mkstemp makes 0600; a written file gets the usual 0644 less the umask. */
    mode_t mask = umask(0);
    umask(mask);
    if (rc == 0 && fchmod(fd, 0666 & ~mask) < 0) rc = -errno;
    if (close(fd) < 0 && rc == 0) rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0) rc = -errno;
    if (rc < 0) {
        unlink(tmp);
        free(tmp);
        return fy_error_set_at(err, fy_status_from_errno(rc), path, 0, 0, "cannot write: %s",
                               strerror(-rc));
    }
    free(tmp);
    return 0;
}

int fy_buf_write_file(const fy_buf *b, const char *path, fy_error *err)
{
    if (b->failed)
        return fy_error_set_at(err, FY_ENOMEM, path, 0, 0, "out of memory building the file");
    return fy_file_write_atomic(path, b->data ? b->data : "", b->len, err);
}

int fy_file_read_all(const char *path, char **data, size_t *len, fy_error *err)
{
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fy_error_set_at(err, fy_status_from_errno(errno), path, 0, 0, "cannot open: %s",
                               strerror(errno));
    fy_buf b = {0};
    char chunk[65536];
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
        reserve(&b, (size_t)st.st_size); /* a regular file: read in place, one allocation */
    for (;;) {
        size_t room = b.cap > b.len + 1 ? b.cap - b.len - 1 : 0;
        ssize_t n = read(fd, room ? b.data + b.len : chunk, room ? room : sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            fy_buf_free(&b);
            return fy_error_set_at(err, fy_status_from_errno(e), path, 0, 0, "read error: %s",
                                   strerror(e));
        }
        if (n == 0) break;
        if (room) {
            b.len += (size_t)n;
            b.data[b.len] = '\0';
        } else {
            fy_buf_append(&b, chunk, (size_t)n);
        }
    }
    close(fd);
    if (b.failed) {
        fy_buf_free(&b);
        return fy_error_set_at(err, FY_ENOMEM, path, 0, 0, "out of memory reading the file");
    }
    if (!b.data) {
        b.data = calloc(1, 1);
        if (!b.data) return fy_error_set(err, FY_ENOMEM, "out of memory");
    }
    *data = b.data;
    *len = b.len;
    return 0;
}

char *fy_path_relative_to(const char *base_file, const char *path)
{
    const char *slash = base_file ? strrchr(base_file, '/') : NULL;
    if (path[0] == '/' || !slash) return strdup(path);
    size_t dir_len = (size_t)(slash - base_file) + 1;
    size_t plen = strlen(path);
    char *out = malloc(dir_len + plen + 1);
    if (!out) return NULL;
    memcpy(out, base_file, dir_len);
    memcpy(out + dir_len, path, plen + 1);
    return out;
}
