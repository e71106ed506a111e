/* The kernel registry (add, find, replace, unknown kinds, dispatch through fy_kernel_run),
 * the spin-time rule, the CPU kernels' thread-count rule, and bf16 rounding. */
#include "kernel_fixtures.h"

/* ---- bf16 ---- */

static float f32_of(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static void test_bf16_rounds_to_nearest_even_and_keeps_nan(void **state)
{
    (void)state;
    assert_int_equal(fy_bf16_from_f32(1.0f), 0x3f80);
    assert_int_equal(fy_bf16_from_f32(-2.0f), 0xc000);
    assert_int_equal(fy_bf16_from_f32(f32_of(0x3f808000)), 0x3f80); /* tie, even stays */
    assert_int_equal(fy_bf16_from_f32(f32_of(0x3f818000)), 0x3f82); /* tie, odd rounds up */
    assert_int_equal(fy_bf16_from_f32(f32_of(0x3f808001)), 0x3f81); /* above half */
    assert_int_equal(fy_bf16_from_f32(f32_of(0x3f807fff)), 0x3f80); /* below half */
    assert_int_equal(fy_bf16_from_f32(f32_of(0xbf818000)), 0xbf82); /* sign-symmetric */
    assert_int_equal(fy_bf16_from_f32(f32_of(0x7f7fffff)), 0x7f80); /* past max: inf */
    assert_int_equal(fy_bf16_from_f32(INFINITY), 0x7f80);
    assert_int_equal(fy_bf16_from_f32(-INFINITY), 0xff80);
    assert_int_equal(fy_bf16_from_f32(f32_of(0x00018000)), 0x0002); /* subnormal tie */
    assert_int_equal(fy_bf16_from_f32(-0.0f), 0x8000);
    /* NaNs whose payload sits only in the dropped half must not become infinities. */
    uint16_t n = fy_bf16_from_f32(f32_of(0x7f800001));
    assert_true((n & 0x7f80) == 0x7f80 && (n & 0x7f) != 0 && !(n & 0x8000));
    n = fy_bf16_from_f32(f32_of(0xffffffff));
    assert_true((n & 0x7f80) == 0x7f80 && (n & 0x7f) != 0 && (n & 0x8000));
    /* Every bf16 widens exactly and narrows back to itself (NaNs to a NaN). */
    for (uint32_t b = 0; b < 65536; b++) {
        float f = fy_bf16_to_f32((uint16_t)b);
        uint32_t bits;
        memcpy(&bits, &f, 4);
        assert_int_equal(bits, b << 16);
        if (isnan(f))
            assert_true(isnan(fy_bf16_to_f32(fy_bf16_from_f32(f))));
        else
            assert_int_equal(fy_bf16_from_f32(f), b);
    }
}

/* ---- the registry ---- */

static int custom_kernel(const fy_kernel_call *call, fy_error *err)
{
    int *counter = call->user;
    (*counter)++;
    return 0;
}

static int silent_failure(const fy_kernel_call *call, fy_error *err)
{
    return FY_EKERNEL;
}

static void test_registry_finds_builtins_and_replaces_them(void **state)
{
    (void)state;
    fy_kernel_registry *reg;
    fy_error err = {0};
    assert_int_equal(fy_kernel_registry_create(&reg, &err), 0);
    assert_int_equal(fy_kernel_registry_count(reg), 0);
    assert_null(fy_kernel_registry_find(reg, "matmul"));
    assert_int_equal(fy_kernel_registry_add_builtin_cpu(reg, &err), 0);
    static const char *kinds[] = {"matmul", "relu", "add", "copy", "spin"};
    assert_int_equal(fy_kernel_registry_count(reg), 5);
    for (size_t i = 0; i < 5; i++) {
        const fy_kernel *k = fy_kernel_registry_find(reg, kinds[i]);
        assert_non_null(k);
        assert_string_equal(k->kind, kinds[i]);
        assert_ptr_equal(fy_kernel_registry_at(reg, i), k);
    }
    assert_ptr_equal(fy_kernel_registry_find(reg, "matmul")->fn, fy_cpu_kernel_matmul);
    assert_null(fy_kernel_registry_at(reg, 5));
    assert_null(fy_kernel_registry_find(reg, "conv2d"));
    assert_null(fy_kernel_registry_find(reg, NULL));

    const fy_kernel *relu = fy_kernel_registry_find(reg, "relu");
    int counter = 0;
    assert_int_equal(fy_kernel_registry_add(reg, "relu", custom_kernel, &counter, &err), 1);
    assert_ptr_equal(relu->fn, custom_kernel); /* the same entry, updated in place */
    assert_ptr_equal(relu->user, &counter);
    /* Growing past the first allocation keeps earlier entries where they were. */
    char name[32];
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "custom%d", i);
        assert_int_equal(fy_kernel_registry_add(reg, name, custom_kernel, &counter, &err), 0);
    }
    assert_ptr_equal(fy_kernel_registry_find(reg, "relu"), relu);
    assert_int_equal(fy_kernel_registry_count(reg), 45);
    assert_string_equal(fy_kernel_registry_at(reg, 44)->kind, "custom39");
    /* add_builtin_cpu puts the built-ins back. */
    assert_int_equal(fy_kernel_registry_add_builtin_cpu(reg, &err), 0);
    assert_ptr_equal(relu->fn, fy_cpu_kernel_relu);

    assert_int_equal(fy_kernel_registry_add(reg, "", custom_kernel, NULL, &err), FY_EINVAL);
    assert_int_equal(fy_kernel_registry_add(reg, NULL, custom_kernel, NULL, &err), FY_EINVAL);
    assert_int_equal(fy_kernel_registry_add(reg, "x", NULL, NULL, &err), FY_EINVAL);
    assert_non_null(strstr(err.message, "'x'"));
    assert_int_equal(fy_kernel_registry_add(NULL, "x", custom_kernel, NULL, &err), FY_EINVAL);
    assert_int_equal(fy_kernel_registry_count(NULL), 0);
    fy_kernel_registry_destroy(reg);
    fy_kernel_registry_destroy(NULL);
}

static void test_kernel_run_dispatches_by_kind_with_user_pointer(void **state)
{
    (void)state;
    fy_kernel_registry *reg;
    fy_error err = {0};
    assert_int_equal(fy_kernel_registry_create(&reg, &err), 0);
    fy_op op;
    fy_kernel_call call = make_call(&op, "mine", NULL, 0, NULL, 0);
    assert_int_equal(fy_kernel_run(reg, &call, &err), FY_ENOENT);
    assert_non_null(strstr(err.message, "'mine'"));
    assert_non_null(strstr(err.message, "known: none"));

    assert_int_equal(fy_kernel_registry_add_builtin_cpu(reg, &err), 0);
    int counter = 0;
    assert_int_equal(fy_kernel_registry_add(reg, "mine", custom_kernel, &counter, &err), 0);
    call.user = NULL; /* the registry's pointer is what the kernel gets */
    assert_int_equal(fy_kernel_run(reg, &call, &err), 0);
    assert_int_equal(fy_kernel_run(reg, &call, NULL), 0);
    assert_int_equal(counter, 2);

    op.kind = "conv2d";
    memset(&err, 0, sizeof err);
    assert_int_equal(fy_kernel_run(reg, &call, &err), FY_ENOENT);
    assert_non_null(strstr(err.message, "'op0'"));
    assert_non_null(strstr(err.message, "known: matmul, relu, add, copy, spin, mine"));
    op.kind = NULL;
    assert_int_equal(fy_kernel_run(reg, &call, &err), FY_ENOENT);

    /* A kernel that fails without a message still yields one naming the op. */
    assert_int_equal(fy_kernel_registry_add(reg, "quiet", silent_failure, NULL, &err), 0);
    op.kind = "quiet";
    memset(&err, 0, sizeof err);
    assert_int_equal(fy_kernel_run(reg, &call, &err), FY_EKERNEL);
    assert_int_equal(err.status, FY_EKERNEL);
    assert_non_null(strstr(err.message, "op 'op0' (quiet, line 12)"));

    /* A built-in through the registry, with its own message. */
    op.kind = "copy";
    fy_tensor tx = tensor("X", FY_DTYPE_F32, 1, 2, 0, 0),
              ty = tensor("Y", FY_DTYPE_F32, 1, 3, 0, 0);
    fy_kernel_buffer in, out;
    attach(&in, &tx);
    attach(&out, &ty);
    call = make_call(&op, "copy", &in, 1, &out, 1);
    assert_int_equal(fy_kernel_run(reg, &call, &err), FY_EINVAL);
    assert_non_null(strstr(err.message, "copy needs equal sizes"));
    assert_int_equal(fy_kernel_run(NULL, &call, &err), FY_EINVAL);
    assert_int_equal(fy_kernel_run(reg, NULL, &err), FY_EINVAL);
    free(in.data);
    free(out.data);
    fy_kernel_registry_destroy(reg);
}

static void test_spin_seconds_prefers_time_then_flops(void **state)
{
    (void)state;
    fy_op op = {.name = "x", .kind = "spin", .time = 0.25, .flops = 1e12};
    assert_true(fy_kernel_spin_seconds(&op, 1e12) == 0.25);
    op.time = 0;
    assert_true(fy_kernel_spin_seconds(&op, 4e12) == 0.25);
    assert_true(fy_kernel_spin_seconds(&op, 0) == 0);
    op.flops = 0;
    assert_true(fy_kernel_spin_seconds(&op, 4e12) == 0);
    assert_true(fy_kernel_spin_seconds(NULL, 4e12) == 0);
}

static void test_thread_count_follows_request_work_and_parts(void **state)
{
    (void)state;
    fy_kernel_call call = {.threads = 2};
    assert_int_equal(fy_cpu_threads(&call, 1e9, 100), 2);
    assert_int_equal(fy_cpu_threads(&call, 1e9, 1), 1);   /* one piece of work */
    assert_int_equal(fy_cpu_threads(&call, 1e5, 100), 1); /* too little work */
    call.threads = 8;
    assert_int_equal(fy_cpu_threads(&call, 1e12, 100), 8);
    call.threads = 0;
    assert_true(fy_cpu_threads(&call, 1e12, 100) >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bf16_rounds_to_nearest_even_and_keeps_nan),
        cmocka_unit_test(test_registry_finds_builtins_and_replaces_them),
        cmocka_unit_test(test_kernel_run_dispatches_by_kind_with_user_pointer),
        cmocka_unit_test(test_spin_seconds_prefers_time_then_flops),
        cmocka_unit_test(test_thread_count_follows_request_work_and_parts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
