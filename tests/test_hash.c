/* Hashing: CRC-32C against the standard check value and the iSCSI (RFC 3720) vectors on both
 * implementations, the hardware and table paths agreeing on every length and alignment, and
 * SHA-256 against the FIPS 180 vectors and block-boundary lengths (digests from an
 * independent implementation, Python's hashlib). */
#include "test_util.h"

#include "core/hash.h"

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);

/* The implementations this machine can run: the table always, the instruction when present. */
static size_t crc_impls(crc_fn fns[2])
{
    size_t n = 0;
    fns[n++] = fy_crc32c_sw;
    if (fy_crc32c_hw_available())
        fns[n++] = fy_crc32c_hw;
    else
        print_message("note: no SSE4.2 crc32 on this CPU; testing the table path only\n");
    return n;
}

static uint64_t rng_next(uint64_t *s)
{
    *s += 0x9e3779b97f4a7c15ull;
    uint64_t z = *s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void test_crc32c_check_value_on_every_path(void **state)
{
    (void)state;
    crc_fn fns[2];
    size_t n = crc_impls(fns);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(fns[i](0, "123456789", 9), 0xE3069283u);
        assert_int_equal(fns[i](0, "", 0), 0);
        assert_int_equal(fns[i](0, NULL, 0), 0);
    }
    assert_int_equal(fy_crc32c(0, "123456789", 9), 0xE3069283u);
}

static void test_crc32c_matches_rfc3720_vectors(void **state)
{
    (void)state;
    uint8_t zeros[32] = {0}, ones[32], up[32], down[32];
    for (int i = 0; i < 32; i++) {
        ones[i] = 0xff;
        up[i] = (uint8_t)i;
        down[i] = (uint8_t)(31 - i);
    }
    crc_fn fns[2];
    size_t n = crc_impls(fns);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(fns[i](0, zeros, 32), 0x8A9136AAu);
        assert_int_equal(fns[i](0, ones, 32), 0x62A8AB43u);
        assert_int_equal(fns[i](0, up, 32), 0x46DD794Eu);
        assert_int_equal(fns[i](0, down, 32), 0x113FDB5Cu);
    }
}

/* Lengths around the three-stream rounds (3 x 8 KiB) and every alignment: a wrong join
 * constant or a mishandled head or tail shows up as a mismatch with the table. */
static void test_crc32c_paths_agree_on_every_length_and_alignment(void **state)
{
    (void)state;
    size_t cap = 3 * 24576 + 64;
    uint8_t *buf = malloc(cap);
    assert_non_null(buf);
    uint64_t s = 42;
    for (size_t i = 0; i < cap; i++)
        buf[i] = (uint8_t)rng_next(&s);
    static const size_t lengths[] = {0,     1,     7,     8,     9,     63,        64,
                                     65,    4095,  4096,  8193,  24575, 24576,     24577,
                                     49151, 49152, 49160, 73727, 73728, 3 * 24576, 50000};
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        for (size_t off = 0; off < 9; off++) {
            size_t len = lengths[li];
            if (off + len > cap) continue;
            uint32_t want = fy_crc32c_sw(0, buf + off, len);
            assert_int_equal(fy_crc32c(0, buf + off, len), want);
            if (fy_crc32c_hw_available()) assert_int_equal(fy_crc32c_hw(0, buf + off, len), want);
        }
    }
    for (int trial = 0; trial < 200; trial++) {
        size_t off = rng_next(&s) % 64, len = rng_next(&s) % (cap - 64);
        uint32_t seed = (uint32_t)rng_next(&s);
        uint32_t want = fy_crc32c_sw(seed, buf + off, len);
        if (fy_crc32c_hw_available()) assert_int_equal(fy_crc32c_hw(seed, buf + off, len), want);
    }
    free(buf);
}

static void test_crc32c_continues_across_pieces(void **state)
{
    (void)state;
    size_t len = 100000;
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    uint64_t s = 7;
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)rng_next(&s);
    crc_fn fns[2];
    size_t n = crc_impls(fns);
    for (size_t f = 0; f < n; f++) {
        uint32_t whole = fns[f](0, buf, len);
        static const size_t cuts[] = {1, 13, 4096, 30000, 99999};
        for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
            uint32_t part = fns[f](0, buf, cuts[c]);
            assert_int_equal(fns[f](part, buf + cuts[c], len - cuts[c]), whole);
        }
        /* Any change of one bit changes the checksum (what verify-on-reload relies on). */
        buf[len / 2] ^= 0x10;
        assert_int_not_equal(fns[f](0, buf, len), whole);
        buf[len / 2] ^= 0x10;
    }
    free(buf);
}

static void expect_sha(const void *data, size_t len, const char *want)
{
    char hex[65];
    fy_sha256_hex(data, len, hex);
    assert_string_equal(hex, want);
}

static void test_sha256_matches_fips180_vectors(void **state)
{
    (void)state;
    expect_sha("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect_sha("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect_sha(NULL, 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    expect_sha(m448, strlen(m448),
               "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *m896 =
        "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmn"
        "opqrlmnopqrsmnopqrstnopqrstu";
    expect_sha(m896, strlen(m896),
               "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void test_sha256_million_a_streamed_in_odd_pieces(void **state)
{
    (void)state;
    size_t total = 1000000;
    char *a = malloc(total);
    assert_non_null(a);
    memset(a, 'a', total);
    const char *want = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
    expect_sha(a, total, want);

    fy_sha256 ctx;
    uint8_t digest[32];
    char hex[65];
    fy_sha256_init(&ctx);
    size_t done = 0, step = 1;
    while (done < total) {
        size_t take = step < total - done ? step : total - done;
        fy_sha256_update(&ctx, a + done, take);
        done += take;
        step = step * 3 % 1000 + 1; /* 1, 4, 13, 40, ...: crosses every block offset */
    }
    fy_sha256_final(&ctx, digest);
    fy_sha256_digest_hex(digest, hex);
    assert_string_equal(hex, want);
    free(a);
}

/* Lengths where the padding needs one more block (55 fits, 56 does not). */
static void test_sha256_block_boundary_lengths(void **state)
{
    (void)state;
    static const struct {
        size_t len;
        const char *hex;
    } cases[] = {
        {55, "e7313d333c272e639f790978283f9eb392e843d0f29b7016828bb1daa4aac70b"},
        {56, "4324d65f3c103567f5589c710bc08f8523f929a9272e3af36fc968e52abc6c27"},
        {57, "35df609437dcfea3279283ab79fd554e2bf78f8f7ae2de532d8ee300b09e8f73"},
        {63, "81c80242132f230c3bd41b3e63bbcff16107339549214a99614ff26664625055"},
        {64, "39e3d7b6b5d075d37d053ad89b24b41bef4f3c29760c84447cab3f3be1882241"},
        {65, "aacca6ff74fdbb296d165a45cecfa04e5127bc008770fbbdd48006f2d2fae95e"},
        {119, "9ce7368e4daf32341631b492e80359dc9f594b48453cd0dd5bf0b19279cc177e"},
        {120, "7836b787757e95e58b3ca5aec90b1b004e8deba1e50e9675af9cabf1a13a04b5"},
    };
    uint8_t data[128];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7 + 3);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        expect_sha(data, cases[c].len, cases[c].hex);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_check_value_on_every_path),
        cmocka_unit_test(test_crc32c_matches_rfc3720_vectors),
        cmocka_unit_test(test_crc32c_paths_agree_on_every_length_and_alignment),
        cmocka_unit_test(test_crc32c_continues_across_pieces),
        cmocka_unit_test(test_sha256_matches_fips180_vectors),
        cmocka_unit_test(test_sha256_million_a_streamed_in_odd_pieces),
        cmocka_unit_test(test_sha256_block_boundary_lengths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
