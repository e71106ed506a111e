/* Parsing and printing of sizes, rates, flops, times and counts. Sizes are parsed exactly
 * (decimal digits times a power of ten times the unit, in 128-bit arithmetic), so "1.5GiB"
 * is 1610612736 bytes and anything that is not a whole number of bytes, is negative, or
 * overflows 64 bits is refused with a message saying which. */
#include "ferry/core.h"

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

typedef struct number {
    const char *start;
    unsigned __int128 digits; /* all digits, the decimal point removed */
    int exp10;                /* value = digits * 10^exp10 */
    bool negative;
    const char *end; /* first character after the number */
} number;

/* Scans [+-]digits[.digits][e[+-]digits]. Returns false when no digit is there or the
 * mantissa has more than 36 significant digits (more cannot be meant). */
static bool scan_number(const char *s, number *n)
{
    memset(n, 0, sizeof *n);
    n->start = s;
    if (*s == '+' || *s == '-') n->negative = *s++ == '-';
    int count = 0, significant = 0;
    bool seen_dot = false;
    for (;; s++) {
        if (*s >= '0' && *s <= '9') {
            count++;
            if (n->digits == 0 && *s == '0') {
                if (seen_dot) n->exp10--;
                continue;
            }
            if (++significant > 36) return false;
            n->digits = n->digits * 10 + (unsigned)(*s - '0');
            if (seen_dot) n->exp10--;
        } else if (*s == '.' && !seen_dot) {
            seen_dot = true;
        } else {
            break;
        }
    }
    if (count == 0) return false;
    if ((*s == 'e' || *s == 'E') &&
        ((s[1] >= '0' && s[1] <= '9') ||
         ((s[1] == '+' || s[1] == '-') && s[2] >= '0' && s[2] <= '9'))) {
        s++;
        bool neg = *s == '-';
        if (*s == '+' || *s == '-') s++;
        int e = 0;
        while (*s >= '0' && *s <= '9') {
            if (e < 100000) e = e * 10 + (*s - '0');
            s++;
        }
        n->exp10 += neg ? -e : e;
    }
    n->end = s;
    return true;
}

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void make_c_locale(void)
{
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/* The number's value, correctly rounded (strtod in the C locale, whatever locale the host
 * program set), so that printing with %.17g and reading back gives the same double. */
static double number_value(const number *n)
{
    char text[128];
    size_t len = (size_t)(n->end - n->start);
    pthread_once(&c_locale_once, make_c_locale);
    if (len < sizeof text && c_locale) {
        memcpy(text, n->start, len);
        text[len] = '\0';
        return strtod_l(text, NULL, c_locale);
    }
    double v = (double)n->digits * pow(10.0, n->exp10);
    return n->negative ? -v : v;
}

static const char *skip_blanks(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

static bool only_blanks(const char *s)
{
    return *skip_blanks(s) == '\0';
}

typedef struct unit {
    const char *name;
    double scale;
} unit;

/* Finds the unit named exactly by text (blanks after it allowed). */
static const unit *match_unit(const unit *units, const char *text)
{
    const char *end = text;
    while (*end && *end != ' ' && *end != '\t')
        end++;
    if (!only_blanks(end)) return NULL;
    size_t len = (size_t)(end - text);
    for (const unit *u = units; u->name; u++)
        if (strlen(u->name) == len && memcmp(u->name, text, len) == 0) return u;
    return NULL;
}

static const unit size_units[] = {
    {"", 1},
    {"B", 1},
    {"KB", 1e3},
    {"MB", 1e6},
    {"GB", 1e9},
    {"TB", 1e12},
    {"PB", 1e15},
    {"KiB", 1024.0},
    {"MiB", 1048576.0},
    {"GiB", 1073741824.0},
    {"TiB", 1099511627776.0},
    {"PiB", 1125899906842624.0},
    {NULL, 0},
};

static int unit_error(fy_error *err, const char *what, const char *text, const char *expected)
{
    return fy_error_set(err, FY_EPARSE, "bad %s '%s': expected %s", what, text, expected);
}

int fy_size_parse(const char *text, uint64_t *out, fy_error *err)
{
    static const char *expected = "a whole number of bytes, optionally with a unit "
                                  "B, KB, MB, GB, TB, KiB, MiB, GiB or TiB (e.g. 128MiB)";
    number n;
    const char *s = skip_blanks(text);
    if (!scan_number(s, &n)) return unit_error(err, "size", text, expected);
    const char *u_text = skip_blanks(n.end);
    const unit *u = match_unit(size_units, u_text);
    if (!u) return unit_error(err, "size", text, expected);
    if (n.negative && n.digits != 0)
        return fy_error_set(err, FY_ERANGE, "bad size '%s': a size cannot be negative", text);
    if (u->scale == 1 && u->name[0] == '\0' && n.exp10 < 0 && n.digits != 0)
        return fy_error_set(err, FY_EPARSE, "bad size '%s': not a whole number of bytes", text);
    /* bytes = digits * scale * 10^exp10, exactly: scale is an integer below 2^51, so with
     * digits below 2^64 (after dropping fraction zeros) the product cannot wrap. */
    while (n.exp10 < 0 && n.digits != 0 && n.digits % 10 == 0) {
        n.digits /= 10;
        n.exp10++;
    }
    if (n.digits > UINT64_MAX) {
        if (number_value(&n) * u->scale >= 18446744073709551616.0)
            return fy_error_set(err, FY_ERANGE, "bad size '%s': larger than 2^64-1 bytes", text);
        return fy_error_set(err, FY_EPARSE, "bad size '%s': not a whole number of bytes", text);
    }
    unsigned __int128 v = n.digits * (unsigned __int128)(uint64_t)u->scale;
    const unsigned __int128 limit = UINT64_MAX;
    int e = n.exp10;
    for (; e > 0; e--) {
        if (v > limit) break;
        v *= 10;
    }
    for (; e < 0; e++) {
        if (v % 10 != 0)
            return fy_error_set(err, FY_EPARSE, "bad size '%s': not a whole number of bytes", text);
        v /= 10;
    }
    if (v > limit || e > 0)
        return fy_error_set(err, FY_ERANGE, "bad size '%s': larger than 2^64-1 bytes", text);
    *out = (uint64_t)v;
    return 0;
}

/* Parses number + unit from units into a non-negative double. */
static int parse_scaled(const char *text, const unit *units, const char *what, const char *expected,
                        double *out, fy_error *err)
{
    number n;
    const char *s = skip_blanks(text);
    if (!scan_number(s, &n)) return unit_error(err, what, text, expected);
    const unit *u = match_unit(units, skip_blanks(n.end));
    if (!u) return unit_error(err, what, text, expected);
    double v = number_value(&n) * u->scale;
    if (n.negative && n.digits != 0)
        return fy_error_set(err, FY_ERANGE, "bad %s '%s': cannot be negative", what, text);
    if (!isfinite(v)) return fy_error_set(err, FY_ERANGE, "bad %s '%s': out of range", what, text);
    *out = v;
    return 0;
}

int fy_rate_parse(const char *text, double *bytes_per_s, fy_error *err)
{
    static const unit units[] = {
        {"B/s", 1},
        {"KB/s", 1e3},
        {"MB/s", 1e6},
        {"GB/s", 1e9},
        {"TB/s", 1e12},
        {"KiB/s", 1024.0},
        {"MiB/s", 1048576.0},
        {"GiB/s", 1073741824.0},
        {"TiB/s", 1099511627776.0},
        {NULL, 0},
    };
    return parse_scaled(text, units, "rate", "bytes per second with a unit such as 55GB/s",
                        bytes_per_s, err);
}

int fy_flops_rate_parse(const char *text, double *flops_per_s, fy_error *err)
{
    static const unit units[] = {
        {"FLOPS", 1},      {"KFLOPS", 1e3},   {"MFLOPS", 1e6}, {"GFLOPS", 1e9},
        {"TFLOPS", 1e12},  {"PFLOPS", 1e15},  {"FLOP/s", 1},   {"GFLOP/s", 1e9},
        {"TFLOP/s", 1e12}, {"PFLOP/s", 1e15}, {NULL, 0},
    };
    return parse_scaled(text, units, "compute rate", "a rate such as 700TFLOPS", flops_per_s, err);
}

int fy_time_parse(const char *text, double *seconds, fy_error *err)
{
    static const unit units[] = {
        {"ns", 1e-9}, {"us", 1e-6}, {"\xc2\xb5s", 1e-6}, {"ms", 1e-3},
        {"s", 1},     {"min", 60},  {NULL, 0},
    };
    return parse_scaled(text, units, "time", "a time with a unit: ns, us, ms, s or min (e.g. 35us)",
                        seconds, err);
}

int fy_count_parse(const char *text, double *out, fy_error *err)
{
    static const unit units[] = {
        {"", 1}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"P", 1e15}, {NULL, 0},
    };
    return parse_scaled(text, units, "count", "a number such as 8.6e9 or 8.6G", out, err);
}

char *fy_size_format_exact(uint64_t bytes, char *buf, size_t size)
{
    static const struct {
        const char *name;
        uint64_t scale;
    } units[] = {
        {"TiB", 1ull << 40}, {"TB", 1000000000000ull}, {"GiB", 1ull << 30}, {"GB", 1000000000ull},
        {"MiB", 1ull << 20}, {"MB", 1000000ull},       {"KiB", 1ull << 10}, {"KB", 1000ull},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (bytes >= units[i].scale && bytes % units[i].scale == 0) {
            snprintf(buf, size, "%llu%s", (unsigned long long)(bytes / units[i].scale),
                     units[i].name);
            return buf;
        }
    }
    snprintf(buf, size, "%llu", (unsigned long long)bytes);
    return buf;
}

/* Prints v with up to three significant digits and no trailing zeros. */
static void print_short(double v, const char *suffix, char *buf, size_t size)
{
    int decimals = v >= 100 ? 0 : v >= 10 ? 1 : 2;
    char num[48];
    snprintf(num, sizeof num, "%.*f", decimals, v);
    if (strchr(num, '.')) {
        char *end = num + strlen(num) - 1;
        while (*end == '0')
            *end-- = '\0';
        if (*end == '.') *end = '\0';
    }
    snprintf(buf, size, "%s%s", num, suffix);
}

char *fy_size_format_human(uint64_t bytes, char *buf, size_t size)
{
    static const char *const names[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)bytes;
    int i = 0;
    while (v >= 1024 && i < 6) {
        v /= 1024;
        i++;
    }
    if (i == 0)
        snprintf(buf, size, "%lluB", (unsigned long long)bytes);
    else
        print_short(v, names[i], buf, size);
    return buf;
}

/* Prints v scaled by powers of 1000 with the given unit names (index 0 = unscaled). */
static char *format_decimal(double v, const char *const *names, int count, char *buf, size_t size)
{
    int i = 0;
    while (fabs(v) >= 1000 && i < count - 1) {
        v /= 1000;
        i++;
    }
    print_short(v, names[i], buf, size);
    return buf;
}

char *fy_rate_format(double bytes_per_s, char *buf, size_t size)
{
    static const char *const names[] = {"B/s", "KB/s", "MB/s", "GB/s", "TB/s"};
    return format_decimal(bytes_per_s, names, 5, buf, size);
}

char *fy_flops_format(double flops, char *buf, size_t size)
{
    static const char *const names[] = {"", "K", "M", "G", "T", "P"};
    return format_decimal(flops, names, 6, buf, size);
}

char *fy_time_format(double seconds, char *buf, size_t size)
{
    if (seconds == 0)
        snprintf(buf, size, "0s");
    else if (seconds < 1e-6)
        print_short(seconds * 1e9, "ns", buf, size);
    else if (seconds < 1e-3)
        print_short(seconds * 1e6, "us", buf, size);
    else if (seconds < 1)
        print_short(seconds * 1e3, "ms", buf, size);
    else
        print_short(seconds, "s", buf, size);
    return buf;
}
