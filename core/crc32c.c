/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) in two implementations that compute
 * the same function: the SSE4.2 crc32 instruction, chosen at run time when the CPU has it,
 * and a portable slicing-by-8 table. The hardware path runs three independent streams so the
 * instruction's latency is hidden, then joins them by multiplying in GF(2)[x] mod P. */
#include "core/hash.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define FY_CRC_HAVE_X86 1
#else
#define FY_CRC_HAVE_X86 0
#endif

#define CRC32C_POLY 0x82F63B78u

/* ---- slicing-by-8 ---- */

static uint32_t crc_table[8][256];
static pthread_once_t crc_table_once = PTHREAD_ONCE_INIT;

static void crc_table_build(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        crc_table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++)
        for (int t = 1; t < 8; t++)
            crc_table[t][n] = (crc_table[t - 1][n] >> 8) ^ crc_table[0][crc_table[t - 1][n] & 0xff];
}

static uint32_t load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint32_t fy_crc32c_sw(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&crc_table_once, crc_table_build);
    const uint8_t *p = data;
    uint32_t c = ~crc;
    while (len && ((uintptr_t)p & 7)) {
        c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff];
        len--;
    }
    while (len >= 8) {
        uint32_t lo = c ^ load_le32(p), hi = load_le32(p + 4);
        c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
            crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xff] ^
            crc_table[2][(hi >> 8) & 0xff] ^ crc_table[1][(hi >> 16) & 0xff] ^
            crc_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--)
        c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff];
    return ~c;
}

/* ---- SSE4.2 ---- */

#if FY_CRC_HAVE_X86

/* ---- GF(2) arithmetic on CRC registers ----
 * A register r stands for the polynomial whose x^i coefficient is bit 31-i (the reflected
 * order the CRC uses). Feeding one zero bit multiplies the register by x, so feeding n zero
 * bytes multiplies it by x^(8n) mod P: that is how two streams' registers are joined. */

static uint32_t gf_mul(uint32_t a, uint32_t b)
{
    uint32_t product = 0;
    for (int i = 0; i < 32; i++) {
        if (a & (0x80000000u >> i)) product ^= b;
        b = (b & 1) ? (b >> 1) ^ CRC32C_POLY : b >> 1;
    }
    return product;
}

/* Each stream covers HW_BLOCK bytes per round. The join constants are x^(8*HW_BLOCK) and
 * x^(16*HW_BLOCK) mod P (register form); the tests check the three-stream path against the
 * table on lengths that span several rounds, which would fail with a wrong constant. */
#define HW_BLOCK 8192
#define HW_SHIFT_1 0x28461564u /* x^(8 * 8192) mod P */
#define HW_SHIFT_2 0xbf455269u /* x^(16 * 8192) mod P */

__attribute__((target("sse4.2"))) static uint32_t hw_run(uint32_t c, const uint8_t *p, size_t len)
{
    while (len && ((uintptr_t)p & 7)) {
        c = _mm_crc32_u8(c, *p++);
        len--;
    }
    uint64_t c64 = c;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = _mm_crc32_u64(c64, v);
        p += 8;
        len -= 8;
    }
    c = (uint32_t)c64;
    while (len--)
        c = _mm_crc32_u8(c, *p++);
    return c;
}

__attribute__((target("sse4.2"))) static uint32_t hw_three(uint32_t c, const uint8_t *p, size_t len,
                                                           size_t *done)
{
    *done = 0;
    while (len - *done >= 3 * HW_BLOCK) {
        const uint8_t *q = p + *done;
        uint64_t a = c, b = 0, d = 0;
        for (size_t i = 0; i < HW_BLOCK; i += 8) {
            uint64_t va, vb, vd;
            memcpy(&va, q + i, 8);
            memcpy(&vb, q + HW_BLOCK + i, 8);
            memcpy(&vd, q + 2 * HW_BLOCK + i, 8);
            a = _mm_crc32_u64(a, va);
            b = _mm_crc32_u64(b, vb);
            d = _mm_crc32_u64(d, vd);
        }
        /* The register after all three blocks is a's moved past two blocks, b's past one,
         * and d's: CRC registers are linear in their start state and in the data. */
        c = gf_mul((uint32_t)a, HW_SHIFT_2) ^ gf_mul((uint32_t)b, HW_SHIFT_1) ^ (uint32_t)d;
        *done += 3 * HW_BLOCK;
    }
    return c;
}

bool fy_crc32c_hw_available(void)
{
    return __builtin_cpu_supports("sse4.2");
}

uint32_t fy_crc32c_hw(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;
    uint32_t c = ~crc;
    size_t done = 0;
    c = hw_three(c, p, len, &done);
    c = hw_run(c, p + done, len - done);
    return ~c;
}

#else

bool fy_crc32c_hw_available(void)
{
    return false;
}

/* No hardware path on this architecture: the table gives the same result. */
uint32_t fy_crc32c_hw(uint32_t crc, const void *data, size_t len)
{
    return fy_crc32c_sw(crc, data, len);
}

#endif

uint32_t fy_crc32c(uint32_t crc, const void *data, size_t len)
{
    if (fy_crc32c_hw_available()) return fy_crc32c_hw(crc, data, len);
    return fy_crc32c_sw(crc, data, len);
}
