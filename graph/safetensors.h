/* graph/safetensors.h — reading the headers of safetensors checkpoints (library-internal).
 *
 * A safetensors file is an 8-byte little-endian header length N, N bytes of JSON, then the
 * data region. The header maps each tensor name to {dtype, shape, data_offsets: [begin,
 * end]} (offsets relative to the data region) and may hold "__metadata__", a map of strings.
 * A sharded checkpoint adds an index, model.safetensors.index.json, whose "weight_map" names
 * the shard holding each tensor.
 *
 * Everything is validated before a caller sees it: once a file or checkpoint is open, every
 * tensor's bytes lie inside its file's data region, agree with its dtype and shape, and
 * overlap no other tensor's; names are unique, non-empty UTF-8 without NUL. Gaps between
 * tensors and bytes after the last one are allowed (they carry nothing we read). Errors
 * name the file and the tensor, positioned (line:column) in the header's JSON text, which
 * starts at byte 8 of the file. Only headers are read, never tensor data.
 *
 * Example:
 *     fy_st_checkpoint *ck;
 *     if (fy_st_checkpoint_open("llama/", &ck, &err) < 0) return report(&err);
 *     for (size_t i = 0; i < ck->tensor_count; i++) {
 *         const fy_st_tensor *t = ck->tensors[i];
 *         printf("%s in %s at %llu\n", t->name, ck->files[t->file]->path,
 *                (unsigned long long)t->offset);
 *     }
 *     fy_st_checkpoint_destroy(ck);
 */
#ifndef FERRY_GRAPH_SAFETENSORS_H
#define FERRY_GRAPH_SAFETENSORS_H

#include "core/json.h"
#include "ferry/graph.h"

/* Headers longer than this are refused as absurd: real ones take kilobytes to megabytes. */
#define FY_ST_HEADER_MAX (100ull * 1024 * 1024)

typedef struct fy_st_dtype {
    const char *name; /* as safetensors writes it: "BF16" */
    unsigned bits;    /* per element: 4, 6, 8, 16, 32 or 64 */
    fy_dtype dtype;   /* FY_DTYPE_NONE where ferry has no such dtype (U16, F4, C64, ...) */
} fy_st_dtype;

/* The safetensors dtype named by the len bytes at name, or NULL when there is none. */
const fy_st_dtype *fy_st_dtype_find(const char *name, size_t len);
/* Every known dtype name, comma-separated, for messages. */
const char *fy_st_dtype_names(void);

typedef struct fy_st_tensor {
    const char *name; /* UTF-8, non-empty, no NUL */
    const fy_st_dtype *dtype;
    int rank;
    const uint64_t *shape; /* rank entries; a rank-0 tensor holds one element */
    uint64_t elements;
    uint64_t bytes;        /* end - begin */
    uint64_t begin, end;   /* data_offsets, relative to the data region */
    uint64_t offset;       /* in the file: 8 + header length + begin */
    uint32_t line, column; /* of its name in the header JSON */
    size_t file;           /* index of its file in a checkpoint's files; 0 for one file */
} fy_st_tensor;

typedef struct fy_st_meta {
    const char *key, *value;
} fy_st_meta;

typedef struct fy_st_file {
    char *path;          /* as given */
    uint64_t size;       /* bytes in the file */
    uint64_t header_len; /* N */
    uint64_t data_start; /* 8 + N */
    size_t tensor_count;
    fy_st_tensor *tensors; /* in header order */
    size_t meta_count;
    fy_st_meta *meta; /* "__metadata__", in header order */
    /* private: owns the strings above */
    fy_jdoc *doc;
    uint64_t *dims;
} fy_st_file;

/* Reads and validates the header of the safetensors file at path. */
int fy_st_file_read(const char *path, fy_st_file **out, fy_error *err);
/* The same on a whole file already in memory (len bytes); name is used in messages. */
int fy_st_file_parse(const char *name, const void *data, size_t len, fy_st_file **out,
                     fy_error *err);
void fy_st_file_destroy(fy_st_file *f);

typedef struct fy_st_checkpoint {
    char *path; /* what was opened: a .safetensors file or an index */
    size_t file_count;
    fy_st_file **files; /* one, or the shards sorted by path */
    size_t tensor_count;
    const fy_st_tensor **tensors; /* of every file: by file, then in header order */
} fy_st_checkpoint;

/* Opens a checkpoint: a .safetensors file, an index (*.json) naming shards in its folder,
 * or a folder holding exactly one index or, lacking one, exactly one .safetensors file.
 * For an index, every tensor it maps must be in the shard it names, and every tensor of
 * those shards must be mapped to it. */
int fy_st_checkpoint_open(const char *path, fy_st_checkpoint **out, fy_error *err);
void fy_st_checkpoint_destroy(fy_st_checkpoint *ck);

#endif
