/* ferry probe's measurement: the nvme rates of a scratch folder land in the machine, which
 * saves and loads back to the same values; a folder that is missing or not a folder is
 * refused naming it. (The gpu part is measured on GPU machines by test_cuda's device.) */
#include "test_util.h"

#include "ferry/ferry.h"

#include <limits.h>
#include <math.h>
#include <sys/stat.h>

static void test_probe_writes_a_machine_file_that_loads(void **state)
{
    (void)state;
    char *dir = fy_test_scratch("probe"), path[4200], real[PATH_MAX];
    assert_non_null(realpath(dir, real));
    fy_machine m;
    fy_machine_default(&m);
    double h2d = m.h2d;
    fy_probe_options o = {.dir = dir, .size = (4 << 20) + 100, .depth = 8};
    fy_probe_report rep;
    fy_error err = {0};
    if (fy_machine_probe(&o, &m, &rep, &err) < 0) fail_msg("%s", err.message);
    assert_int_equal(rep.bytes, (4 << 20) + 4096); /* rounded up to 4 KiB */
    assert_true(m.nvme_read > 0 && m.nvme_write > 0);
    assert_true(rep.read_s > 0 && rep.write_s > 0);
    assert_true(fabs(m.nvme_read - (double)rep.bytes / rep.read_s) < 1e-6 * m.nvme_read);
    assert_string_equal(m.nvme_dir, real);
    assert_true(m.capacity[FY_TIER_NVME] > 0);
    assert_true(m.h2d == h2d); /* not asked: unchanged */
    assert_false(rep.gpu_measured);
    assert_false(rep.host_measured);
    assert_true(strcmp(rep.io_backend, "io_uring") == 0 || strcmp(rep.io_backend, "threads") == 0);

    snprintf(path, sizeof path, "%s/machine.yaml", dir);
    assert_int_equal(fy_machine_save(&m, path, &err), 0);
    fy_machine back;
    fy_machine_default(&back);
    if (fy_machine_load(path, &back, &err) < 0) fail_msg("%s", err.message);
    assert_true(back.nvme_read == m.nvme_read && back.nvme_write == m.nvme_write);
    assert_string_equal(back.nvme_dir, m.nvme_dir);
    /* the temporary file is gone: only the machine file is left */
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "test \"$(ls -A '%s' | wc -l)\" -eq 1", dir);
    assert_int_equal(system(cmd), 0);
    fy_test_scratch_remove(dir);
}

static void test_probe_refuses_a_folder_it_cannot_use(void **state)
{
    (void)state;
    fy_machine m;
    fy_machine_default(&m);
    fy_probe_report rep;
    fy_error err = {0};
    fy_probe_options o = {.dir = "/nonexistent/ferry-probe", .size = 4096};
    assert_int_equal(fy_machine_probe(&o, &m, &rep, &err), FY_ENOENT);
    assert_non_null(strstr(err.message, "/nonexistent/ferry-probe"));

    char *dir = fy_test_scratch("probe"), file[4200];
    snprintf(file, sizeof file, "%s/plain", dir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    o.dir = file;
    assert_true(fy_machine_probe(&o, &m, &rep, &err) < 0);
    assert_non_null(strstr(err.message, "plain"));
    fy_test_scratch_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_writes_a_machine_file_that_loads),
        cmocka_unit_test(test_probe_refuses_a_folder_it_cannot_use),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
