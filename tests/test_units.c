/* Units: every accepted and refused form of sizes, rates, flops, times and counts, their
 * boundaries and overflow, and the printers reading back to the same value. */
#include "test_util.h"

#include "ferry/core.h"

#include <math.h>

static uint64_t size_ok(const char *text)
{
    uint64_t v = 0;
    fy_error err = {0};
    int rc = fy_size_parse(text, &v, &err);
    if (rc != 0) fail_msg("'%s' refused: %s", text, err.message);
    return v;
}

static int size_refused(const char *text, fy_error *err)
{
    uint64_t v = 12345;
    int rc = fy_size_parse(text, &v, err);
    assert_true(rc < 0);
    assert_int_equal(v, 12345); /* untouched on failure */
    return rc;
}

static void test_size_accepts_every_unit(void **state)
{
    (void)state;
    assert_int_equal(size_ok("0"), 0);
    assert_int_equal(size_ok("4096"), 4096);
    assert_int_equal(size_ok("7B"), 7);
    assert_int_equal(size_ok("1KB"), 1000);
    assert_int_equal(size_ok("1MB"), 1000000);
    assert_int_equal(size_ok("1GB"), 1000000000);
    assert_int_equal(size_ok("1TB"), 1000000000000ull);
    assert_int_equal(size_ok("1KiB"), 1024);
    assert_int_equal(size_ok("128MiB"), 134217728);
    assert_int_equal(size_ok("8GiB"), 8589934592ull);
    assert_int_equal(size_ok("1TiB"), 1099511627776ull);
    assert_int_equal(size_ok("1.5GiB"), 1610612736ull);
    assert_int_equal(size_ok("0.5KiB"), 512);
    assert_int_equal(size_ok(" 12 GiB "), 12ull << 30);
    assert_int_equal(size_ok("1e3"), 1000);
    assert_int_equal(size_ok("2.50MB"), 2500000);
}

static void test_size_boundaries(void **state)
{
    (void)state;
    assert_true(size_ok("18446744073709551615") == UINT64_MAX);
    assert_true(size_ok("16383PiB") == 16383ull << 50);
    assert_true(size_ok("17179869183GiB") == 17179869183ull << 30);
}

static void test_size_refuses_bad_forms(void **state)
{
    (void)state;
    fy_error err = {0};
    assert_int_equal(size_refused("12 GiBB", &err), FY_EPARSE);
    assert_non_null(strstr(err.message, "12 GiBB"));
    assert_int_equal(size_refused("-3MiB", &err), FY_ERANGE);
    assert_non_null(strstr(err.message, "negative"));
    assert_int_equal(size_refused("18446744073709551616", &err), FY_ERANGE);
    assert_non_null(strstr(err.message, "2^64"));
    assert_int_equal(size_refused("16777216TiB", &err), FY_ERANGE);
    assert_int_equal(size_refused("99999999999999999999999999999999999TiB", &err), FY_ERANGE);
    assert_int_equal(size_refused("1e30", &err), FY_ERANGE);
    assert_int_equal(size_refused("1.5", &err), FY_EPARSE);
    assert_non_null(strstr(err.message, "whole number"));
    assert_int_equal(size_refused("1.0000001KiB", &err), FY_EPARSE);
    assert_int_equal(size_refused("", &err), FY_EPARSE);
    assert_int_equal(size_refused("MiB", &err), FY_EPARSE);
    assert_int_equal(size_refused("12 mib", &err), FY_EPARSE);
    assert_int_equal(size_refused("12MiB/s", &err), FY_EPARSE);
    assert_int_equal(size_refused("1..2MiB", &err), FY_EPARSE);
    assert_int_equal(size_refused("0x10", &err), FY_EPARSE);
    assert_int_equal(size_refused("12 MiB x", &err), FY_EPARSE);
}

static void test_rates_flops_times_counts(void **state)
{
    (void)state;
    fy_error err = {0};
    double v;
    assert_int_equal(fy_rate_parse("55GB/s", &v, &err), 0);
    assert_true(v == 55e9);
    assert_int_equal(fy_rate_parse("1GiB/s", &v, &err), 0);
    assert_true(v == 1073741824.0);
    assert_int_equal(fy_rate_parse("55GB", &v, &err), FY_EPARSE);
    assert_int_equal(fy_rate_parse("-1GB/s", &v, &err), FY_ERANGE);
    assert_int_equal(fy_flops_rate_parse("700TFLOPS", &v, &err), 0);
    assert_true(v == 700e12);
    assert_int_equal(fy_flops_rate_parse("700T", &v, &err), FY_EPARSE);
    assert_int_equal(fy_time_parse("35us", &v, &err), 0);
    assert_true(fabs(v - 35e-6) < 1e-18);
    assert_int_equal(fy_time_parse("2ms", &v, &err), 0);
    assert_true(fabs(v - 2e-3) < 1e-15);
    assert_int_equal(fy_time_parse("1.5s", &v, &err), 0);
    assert_true(v == 1.5);
    assert_int_equal(fy_time_parse("20ns", &v, &err), 0);
    assert_int_equal(fy_time_parse("1.5", &v, &err), FY_EPARSE);
    assert_non_null(strstr(err.message, "unit"));
    assert_int_equal(fy_time_parse("3 hours", &v, &err), FY_EPARSE);
    assert_int_equal(fy_count_parse("8.6e9", &v, &err), 0);
    assert_true(v == 8.6e9);
    assert_int_equal(fy_count_parse("8.6G", &v, &err), 0);
    assert_true(fabs(v - 8.6e9) < 1);
    assert_int_equal(fy_count_parse("17.2G", &v, &err), 0);
    assert_int_equal(fy_count_parse("12Gi", &v, &err), FY_EPARSE);
    assert_int_equal(fy_count_parse("1e400", &v, &err), FY_ERANGE);
}

static void test_exact_format_reads_back(void **state)
{
    (void)state;
    const uint64_t values[] = {0,         1,       1000,       1024,       1536,
                               134217728, 1000003, 1610612736, UINT64_MAX, 5000000000000ull,
                               3ull << 40};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char buf[32];
        fy_size_format_exact(values[i], buf, sizeof buf);
        assert_true(size_ok(buf) == values[i]);
    }
    char buf[32];
    assert_string_equal(fy_size_format_exact(134217728, buf, sizeof buf), "128MiB");
    assert_string_equal(fy_size_format_exact(1000003, buf, sizeof buf), "1000003");
    assert_string_equal(fy_size_format_exact(2000000000, buf, sizeof buf), "2GB");
}

static void test_human_formats(void **state)
{
    (void)state;
    char buf[32];
    assert_string_equal(fy_size_format_human(512, buf, sizeof buf), "512B");
    assert_string_equal(fy_size_format_human(1395864371, buf, sizeof buf), "1.3GiB");
    assert_string_equal(fy_size_format_human(128ull << 20, buf, sizeof buf), "128MiB");
    assert_string_equal(fy_rate_format(55e9, buf, sizeof buf), "55GB/s");
    assert_string_equal(fy_flops_format(17.2e9, buf, sizeof buf), "17.2G");
    assert_string_equal(fy_time_format(1.25e-3, buf, sizeof buf), "1.25ms");
    assert_string_equal(fy_time_format(35e-6, buf, sizeof buf), "35us");
    assert_string_equal(fy_time_format(2.5, buf, sizeof buf), "2.5s");
}

static void test_status_table(void **state)
{
    (void)state;
    assert_string_equal(fy_status_name(FY_EPARSE), "parse");
    assert_string_equal(fy_status_name(0), "ok");
    assert_string_equal(fy_status_name(-999), "unknown");
    assert_string_equal(fy_status_message(FY_ENOSPC), "no space left on device");
    assert_int_equal(fy_status_from_errno(28 /* ENOSPC */), FY_ENOSPC);
    assert_int_equal(fy_status_from_errno(-2 /* ENOENT */), FY_ENOENT);
    fy_error err = {0};
    assert_int_equal(fy_error_set_at(&err, FY_EPARSE, "g.yaml", 3, 7, "bad %s", "thing"),
                     FY_EPARSE);
    char line[256];
    fy_error_format(&err, line, sizeof line);
    assert_string_equal(line, "g.yaml:3:7: error: bad thing");
    fy_error_prefix(&err, "tensor '%s'", "w0");
    fy_error_format(&err, line, sizeof line);
    assert_string_equal(line, "g.yaml:3:7: error: tensor 'w0': bad thing");
    assert_int_equal(fy_error_set(NULL, FY_EIO, "nobody listens"), FY_EIO);
    fy_tier t;
    assert_int_equal(fy_tier_parse("nvme", &t), 0);
    assert_int_equal(t, FY_TIER_NVME);
    assert_int_equal(fy_tier_parse("disk", &t), FY_EPARSE);
    assert_string_equal(fy_tier_name(FY_TIER_NONE), "none");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_size_accepts_every_unit),
        cmocka_unit_test(test_size_boundaries),
        cmocka_unit_test(test_size_refuses_bad_forms),
        cmocka_unit_test(test_rates_flops_times_counts),
        cmocka_unit_test(test_exact_format_reads_back),
        cmocka_unit_test(test_human_formats),
        cmocka_unit_test(test_status_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
