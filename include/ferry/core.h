/* ferry/core.h — statuses, errors with file:line:column, tiers, and units.
 *
 * Example:
 *     fy_error err = {0};
 *     uint64_t bytes;
 *     if (fy_size_parse("128MiB", &bytes, &err) < 0)
 *         fprintf(stderr, "%s\n", err.message);
 *
 * Every ferry function returns 0 (or a count) on success and a negative FY_E* status on
 * failure. A caller may pass a fy_error that receives the message and, when the error comes
 * from a file, its path, line and column. The library never prints and never exits.
 */
#ifndef FERRY_CORE_H
#define FERRY_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The one table of statuses: enum value, stable name, message. */
#define FY_STATUS_TABLE(X)                                                                         \
    X(FY_ENOMEM, 1, "out-of-memory", "out of memory")                                              \
    X(FY_EINVAL, 2, "invalid-argument", "invalid argument")                                        \
    X(FY_EPARSE, 3, "parse", "malformed input")                                                    \
    X(FY_EIO, 4, "io", "input/output error")                                                       \
    X(FY_ENOSPC, 5, "no-space", "no space left on device")                                         \
    X(FY_ENOENT, 6, "not-found", "not found")                                                      \
    X(FY_ERANGE, 7, "out-of-range", "value out of range")                                          \
    X(FY_ECHECK, 8, "check-failed", "the plan failed its check")                                   \
    X(FY_EINFEASIBLE, 9, "infeasible", "no plan fits the budget")                                  \
    X(FY_ESCRIPT, 10, "script", "policy script error")                                             \
    X(FY_EDEVICE, 11, "device", "device error")                                                    \
    X(FY_ECHECKSUM, 12, "checksum", "checksum mismatch")                                           \
    X(FY_EUNSUPPORTED, 13, "unsupported", "not supported here")                                    \
    X(FY_EBUSY, 14, "busy", "in use")                                                              \
    X(FY_ESTATE, 15, "bad-state", "operation not allowed in this state")                           \
    X(FY_EKERNEL, 16, "kernel", "kernel failed")

typedef enum fy_status {
    FY_OK = 0,
#define FY_STATUS_ENUM(sym, num, name, msg) sym = -(num),
    FY_STATUS_TABLE(FY_STATUS_ENUM)
#undef FY_STATUS_ENUM
} fy_status;

/* Stable short name of a status ("parse"), and its one-line message. Unknown: "unknown". */
const char *fy_status_name(int status);
const char *fy_status_message(int status);
/* Converts a positive or negative errno value to the nearest FY_E* status. */
int fy_status_from_errno(int err);

#define FY_ERROR_MESSAGE_MAX 1024
#define FY_ERROR_PATH_MAX 4096

/* An error's details. Zero-initialise it; functions fill it on failure only. Text longer
 * than the buffers is truncated, never refused. line and column are 1-based; 0 = unknown. */
typedef struct fy_error {
    int status;
    char message[FY_ERROR_MESSAGE_MAX];
    char file[FY_ERROR_PATH_MAX];
    unsigned line;
    unsigned column;
} fy_error;

/* Sets err (which may be NULL) and returns status, so `return fy_error_set(...)` reads well. */
int fy_error_set(fy_error *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int fy_error_set_at(fy_error *err, int status, const char *file, unsigned line, unsigned column,
                    const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Prefixes the message with "context: ", keeping file and position. Returns err->status. */
int fy_error_prefix(fy_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes "file:line:column: error: message" (parts that are unknown are left out) into buf,
 * truncating to size. Returns the length the full text would have. */
int fy_error_format(const fy_error *err, char *buf, size_t size);

/* Memory tiers. */
typedef enum fy_tier { FY_TIER_NONE = -1, FY_TIER_GPU = 0, FY_TIER_HOST, FY_TIER_NVME } fy_tier;
#define FY_TIER_COUNT 3
const char *fy_tier_name(fy_tier tier); /* "gpu", "host", "nvme", "none" */
/* Parses "gpu", "host" or "nvme"; returns 0 or FY_EPARSE. */
int fy_tier_parse(const char *text, fy_tier *out);

/* Units. Every parser takes the whole text (surrounding blanks allowed, nothing else) and
 * on failure sets err's message (no position: the caller knows where the text came from).
 *
 * sizes:  an integer (bytes) or a number with B, KB MB GB TB (powers of 1000) or KiB MiB GiB
 *         TiB (powers of 1024): "4096", "128MiB", "1.5GiB". The result must be a whole number
 *         of bytes that fits in 64 bits.
 * rates:  bytes per second, "55GB/s", "900MiB/s".
 * flops:  "700TFLOPS" (also GFLOPS, PFLOPS, FLOPS); operations per second.
 * times:  "35us", "2ms", "1.5s", "20ns", "1min"; seconds.
 * counts: "8.6e9", "8.6G", "17.2G", "12K", "3M", "1T", "2P" (powers of 1000). */
int fy_size_parse(const char *text, uint64_t *out, fy_error *err);
int fy_rate_parse(const char *text, double *bytes_per_s, fy_error *err);
int fy_flops_rate_parse(const char *text, double *flops_per_s, fy_error *err);
int fy_time_parse(const char *text, double *seconds, fy_error *err);
int fy_count_parse(const char *text, double *out, fy_error *err);

/* Formatting. The exact forms read back to the same value; the human forms are for people.
 * Each writes a NUL-terminated string into buf (32 bytes always suffice) and returns buf. */
char *fy_size_format_exact(uint64_t bytes, char *buf, size_t size); /* "128MiB", "1000003" */
char *fy_size_format_human(uint64_t bytes, char *buf, size_t size); /* "1.3GiB" */
char *fy_rate_format(double bytes_per_s, char *buf, size_t size);   /* "55GB/s" */
char *fy_flops_format(double flops, char *buf, size_t size);        /* "17.2G" (a count) */
char *fy_time_format(double seconds, char *buf, size_t size);       /* "1.25ms" */

#ifdef __cplusplus
}
#endif
#endif
