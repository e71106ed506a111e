/* Writing safetensors checkpoints byte by byte for the tests: an 8-byte little-endian header
 * length, the JSON header (padded with spaces as the reference writer does), then each
 * tensor's bytes, drawn from a pattern that a test can recompute to verify what it reads. */
#ifndef FERRY_TESTS_ST_UTIL_H
#define FERRY_TESTS_ST_UTIL_H

#include "test_util.h"

#include <stdbool.h>

typedef struct st_spec {
    const char *name;
    const char *dtype; /* safetensors name */
    unsigned bits;     /* per element */
    int rank;
    uint64_t shape[4];
} st_spec;

/* The byte j of tensor i of a file written with seed. */
static inline unsigned char st_pattern(unsigned seed, size_t i, uint64_t j)
{
    return (unsigned char)(seed * 101u + i * 37u + j * 11u + (j >> 8) * 3u + 5u);
}

static inline uint64_t st_spec_bytes(const st_spec *s)
{
    uint64_t n = 1;
    for (int d = 0; d < s->rank; d++)
        n *= s->shape[d];
    return n * s->bits / 8;
}

/* Writes len bytes of json as a header followed by data; returns the header length N. */
static inline uint64_t st_write_raw(const char *path, const char *json, size_t json_len,
                                    const void *data, size_t data_len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    unsigned char le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (unsigned char)((uint64_t)json_len >> (8 * i));
    assert_int_equal(fwrite(le, 1, 8, f), 8);
    if (json_len) assert_int_equal(fwrite(json, 1, json_len, f), json_len);
    if (data_len) assert_int_equal(fwrite(data, 1, data_len, f), data_len);
    assert_int_equal(fclose(f), 0);
    return json_len;
}

/* Writes a valid checkpoint of n tensors (in that order in the data region, a gap of `gap`
 * bytes before each) with an optional metadata JSON object. Returns the header length N;
 * begins[i] receives each tensor's data_offsets[0]. */
static inline uint64_t st_write(const char *path, unsigned seed, const st_spec *specs, size_t n,
                                const char *metadata, uint64_t gap, uint64_t *begins)
{
    size_t cap = 4096 + n * 256 + (metadata ? strlen(metadata) : 0);
    char *json = malloc(cap);
    size_t o = (size_t)snprintf(json, cap, "{");
    if (metadata) o += (size_t)snprintf(json + o, cap - o, "\"__metadata__\":%s", metadata);
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const st_spec *s = &specs[i];
        at += gap;
        if (begins) begins[i] = at;
        o += (size_t)snprintf(json + o, cap - o, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[",
                              (i || metadata) ? "," : "", s->name, s->dtype);
        for (int d = 0; d < s->rank; d++)
            o += (size_t)snprintf(json + o, cap - o, "%s%llu", d ? "," : "",
                                  (unsigned long long)s->shape[d]);
        uint64_t bytes = st_spec_bytes(s);
        o += (size_t)snprintf(json + o, cap - o, "],\"data_offsets\":[%llu,%llu]}",
                              (unsigned long long)at, (unsigned long long)(at + bytes));
        at += bytes;
    }
    o += (size_t)snprintf(json + o, cap - o, "}");
    while (o % 8) /* the reference writer pads the header to 8 bytes with spaces */
        json[o++] = ' ';
    unsigned char *data = calloc(1, at ? at : 1);
    uint64_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        pos += gap;
        uint64_t bytes = st_spec_bytes(&specs[i]);
        for (uint64_t j = 0; j < bytes; j++)
            data[pos + j] = st_pattern(seed, i, j);
        pos += bytes;
    }
    uint64_t header = st_write_raw(path, json, o, data, at);
    free(data);
    free(json);
    return header;
}

/* True when the file at path holds tensor i's pattern bytes at offset. */
static inline bool st_bytes_match(const char *path, unsigned seed, size_t i, uint64_t offset,
                                  uint64_t bytes)
{
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    bool ok = fseek(f, (long)offset, SEEK_SET) == 0;
    for (uint64_t j = 0; ok && j < bytes; j++)
        ok = fgetc(f) == st_pattern(seed, i, j);
    fclose(f);
    return ok;
}

static inline void st_write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

#endif
