/* libFuzzer harness for the safetensors header reader and the JSON parser under it. Each
 * input is tried twice: as a whole safetensors file, and as the JSON header of a file
 * built around it (length prefix, then 4 KiB of data), so that the fuzzer reaches the
 * header checks without first having to guess a length. A header that is accepted must
 * keep every promise of graph/safetensors.h; a broken promise aborts, which the fuzzer
 * reports like a crash. Not built by default: see tests/fuzz/README.md.
 */
#include "graph/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DATA_SIZE 4096

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "broken promise: %s\n", what);
        abort();
    }
}

static int by_begin(const void *a, const void *b)
{
    const fy_st_tensor *x = *(const fy_st_tensor *const *)a, *y = *(const fy_st_tensor *const *)b;
    return (x->begin > y->begin) - (x->begin < y->begin);
}

static void check_file(const fy_st_file *f)
{
    check(f->data_start == 8 + f->header_len && f->data_start <= f->size, "data start");
    const fy_st_tensor **order = malloc((f->tensor_count + 1) * sizeof *order);
    check(order != NULL, "memory");
    for (size_t i = 0; i < f->tensor_count; i++) {
        const fy_st_tensor *t = &f->tensors[i];
        check(t->name[0] != '\0', "non-empty name");
        check(t->begin <= t->end && t->end <= f->size - f->data_start, "offsets in the data");
        check(t->bytes == t->end - t->begin, "bytes");
        check(t->offset == f->data_start + t->begin, "file offset");
        unsigned __int128 bits = (unsigned __int128)t->elements * t->dtype->bits;
        check(bits % 8 == 0 && bits / 8 == t->bytes, "dtype, shape and bytes agree");
        unsigned __int128 elements = 1;
        for (int d = 0; d < t->rank; d++)
            elements = elements * t->shape[d] > ((unsigned __int128)1 << 64)
                           ? ((unsigned __int128)1 << 64)
                           : elements * t->shape[d];
        check(elements == t->elements, "elements");
        order[i] = t;
    }
    qsort(order, f->tensor_count, sizeof *order, by_begin);
    uint64_t reach = 0;
    for (size_t i = 0; i < f->tensor_count; i++) {
        if (order[i]->bytes == 0) continue;
        check(order[i]->begin >= reach, "no overlap");
        reach = order[i]->end;
    }
    for (size_t i = 0; i < f->meta_count; i++)
        check(f->meta[i].key && f->meta[i].value, "metadata strings");
    free(order);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fy_st_file *f = NULL;
    fy_error err = {0};
    if (fy_st_file_parse("fuzz.safetensors", data, size, &f, &err) == 0) {
        check_file(f);
        fy_st_file_destroy(f);
    } else {
        check(err.message[0] != '\0' && err.status < 0, "an error has a message");
    }

    unsigned char *file = malloc(8 + size + DATA_SIZE);
    check(file != NULL, "memory");
    for (int i = 0; i < 8; i++)
        file[i] = (unsigned char)((uint64_t)size >> (8 * i));
    memcpy(file + 8, data, size);
    memset(file + 8 + size, 0xa5, DATA_SIZE);
    memset(&err, 0, sizeof err);
    if (fy_st_file_parse("fuzz.safetensors", file, 8 + size + DATA_SIZE, &f, &err) == 0) {
        check_file(f);
        fy_st_file_destroy(f);
    } else {
        check(err.message[0] != '\0' && err.status < 0, "an error has a message");
    }
    free(file);

    /* The JSON parser alone, refusing duplicates and with a small depth limit. */
    fy_json_options opt = {.max_depth = 8, .reject_duplicates = true};
    fy_jdoc *doc = NULL;
    if (fy_json_parse("fuzz.json", (const char *)data, size, &opt, &doc, NULL) == 0) {
        const fy_jnode *root = fy_jdoc_root(doc);
        check(root->kind <= FY_JOBJECT, "kind");
        fy_jdoc_destroy(doc);
    }
    return 0;
}
