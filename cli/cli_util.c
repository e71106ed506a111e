/* Helpers shared by the subcommands: error reporting and option values. The library never
 * prints; everything a user reads on stderr goes through here. */
#include "cli/commands.h"

#include <stdarg.h>
#include <stdio.h>

int fy_cli_report(const fy_error *err)
{
    char line[FY_ERROR_MESSAGE_MAX + FY_ERROR_PATH_MAX + 64];
    fy_error_format(err, line, sizeof line);
    fprintf(stderr, "%s\n", line);
    return FY_EXIT_FAILURE;
}

int fy_cli_fail(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ferry %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return FY_EXIT_FAILURE;
}

int fy_cli_size(const char *cmd, const char *option, const char *text, uint64_t *out)
{
    fy_error err = {0};
    if (fy_size_parse(text, out, &err) < 0) return fy_cli_fail(cmd, "%s: %s", option, err.message);
    return 0;
}

int fy_cli_uint(const char *cmd, const char *option, const char *text, uint64_t *out)
{
    uint64_t v = 0;
    if (!*text) return fy_cli_fail(cmd, "%s needs a number", option);
    for (const char *s = text; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return fy_cli_fail(cmd, "%s: '%s' is not a whole number", option, text);
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}
