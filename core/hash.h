/* core/hash.h — CRC-32C (Castagnoli) and SHA-256 (library-internal).
 *
 * The engine checksums offloaded tensors with CRC-32C and verifies them on reload; plans
 * record the SHA-256 of their graph. Every CRC-32C path (the SSE4.2 instruction, the
 * slicing-by-8 table) computes the same function, so a checksum written on one machine
 * verifies on another.
 */
#ifndef FERRY_CORE_HASH_H
#define FERRY_CORE_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* CRC-32C of data, continuing from crc (0 to start): the usual pre- and post-inverted form,
 * so fy_crc32c(0, "123456789", 9) == 0xE3069283 and fy_crc32c(fy_crc32c(0, a, n), b, m)
 * equals the CRC of a followed by b. Uses the SSE4.2 instruction when the CPU has it. */
uint32_t fy_crc32c(uint32_t crc, const void *data, size_t len);

/* The two implementations behind fy_crc32c, for tests and benchmarks. fy_crc32c_hw may be
 * called only when fy_crc32c_hw_available() is true. */
uint32_t fy_crc32c_sw(uint32_t crc, const void *data, size_t len);
uint32_t fy_crc32c_hw(uint32_t crc, const void *data, size_t len);
bool fy_crc32c_hw_available(void);

/* SHA-256 (FIPS 180-4). init, then update any number of times, then final, which writes the
 * 32-byte digest; the context must be initialised again before reuse. */
typedef struct fy_sha256 {
    uint32_t state[8];
    uint64_t length; /* bytes hashed so far */
    uint8_t block[64];
    size_t fill; /* bytes waiting in block */
} fy_sha256;

void fy_sha256_init(fy_sha256 *ctx);
void fy_sha256_update(fy_sha256 *ctx, const void *data, size_t len);
void fy_sha256_final(fy_sha256 *ctx, uint8_t digest[32]);
/* The digest of data as 64 lowercase hex digits and a NUL. */
void fy_sha256_hex(const void *data, size_t len, char hex[65]);
/* Writes a 32-byte digest as 64 lowercase hex digits and a NUL. */
void fy_sha256_digest_hex(const uint8_t digest[32], char hex[65]);

#endif
