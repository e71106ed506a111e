/* Statuses and error details. The names and messages come from FY_STATUS_TABLE in core.h,
 * so the enum and its text cannot drift apart. Setting an error never allocates: it writes
 * into the caller's fixed buffers and truncates what does not fit. */
#include "ferry/core.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *fy_status_name(int status)
{
    switch (status) {
    case FY_OK:
        return "ok";
#define FY_STATUS_NAME(sym, num, name, msg)                                                        \
    case sym:                                                                                      \
        return name;
        FY_STATUS_TABLE(FY_STATUS_NAME)
#undef FY_STATUS_NAME
    }
    return "unknown";
}

const char *fy_status_message(int status)
{
    switch (status) {
    case FY_OK:
        return "success";
#define FY_STATUS_MSG(sym, num, name, msg)                                                         \
    case sym:                                                                                      \
        return msg;
        FY_STATUS_TABLE(FY_STATUS_MSG)
#undef FY_STATUS_MSG
    }
    return "unknown status";
}

int fy_status_from_errno(int err)
{
    if (err < 0) err = -err;
    switch (err) {
    case 0:
        return FY_OK;
    case ENOMEM:
        return FY_ENOMEM;
    case EINVAL:
        return FY_EINVAL;
    case ENOSPC:
    case EDQUOT:
        return FY_ENOSPC;
    case ENOENT:
        return FY_ENOENT;
    case ERANGE:
    case EOVERFLOW:
        return FY_ERANGE;
    case EBUSY:
        return FY_EBUSY;
    case ENOSYS:
    case EOPNOTSUPP:
    case EPERM:
        return FY_EUNSUPPORTED;
    default:
        return FY_EIO;
    }
}

static void set_message(fy_error *err, const char *fmt, va_list ap)
{
    vsnprintf(err->message, sizeof err->message, fmt, ap);
}

int fy_error_set(fy_error *err, int status, const char *fmt, ...)
{
    if (!err) return status;
    err->status = status;
    err->file[0] = '\0';
    err->line = err->column = 0;
    va_list ap;
    va_start(ap, fmt);
    set_message(err, fmt, ap);
    va_end(ap);
    return status;
}

int fy_error_set_at(fy_error *err, int status, const char *file, unsigned line, unsigned column,
                    const char *fmt, ...)
{
    if (!err) return status;
    err->status = status;
    snprintf(err->file, sizeof err->file, "%s", file ? file : "");
    err->line = line;
    err->column = column;
    va_list ap;
    va_start(ap, fmt);
    set_message(err, fmt, ap);
    va_end(ap);
    return status;
}

int fy_error_prefix(fy_error *err, const char *fmt, ...)
{
    if (!err) return FY_EINVAL;
    char prefix[FY_ERROR_MESSAGE_MAX];
    char old[FY_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->message, sizeof old);
    snprintf(err->message, sizeof err->message, "%s: %s", prefix, old);
    return err->status;
}

int fy_error_format(const fy_error *err, char *buf, size_t size)
{
    if (!err) return snprintf(buf, size, "error: unknown error");
    const char *msg = err->message[0] ? err->message : fy_status_message(err->status);
    if (err->file[0] && err->line && err->column)
        return snprintf(buf, size, "%s:%u:%u: error: %s", err->file, err->line, err->column, msg);
    if (err->file[0] && err->line)
        return snprintf(buf, size, "%s:%u: error: %s", err->file, err->line, msg);
    if (err->file[0]) return snprintf(buf, size, "%s: error: %s", err->file, msg);
    return snprintf(buf, size, "error: %s", msg);
}
