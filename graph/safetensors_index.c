/* Opening a safetensors checkpoint: one file, or the shards that an index
 * (model.safetensors.index.json: {"metadata": {...}, "weight_map": {tensor: shard}}) names.
 * The index and the shards' headers must agree exactly: each mapped tensor is in the shard
 * the index names, and each tensor of a shard is mapped to that shard. So a checkpoint's
 * tensor list holds every name once, each with the file that really holds its bytes.
 */
#include "core/buf.h"
#include "graph/safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void fy_st_checkpoint_destroy(fy_st_checkpoint *ck)
{
    if (!ck) return;
    for (size_t i = 0; i < ck->file_count; i++)
        fy_st_file_destroy(ck->files[i]);
    free(ck->files);
    free(ck->tensors);
    free(ck->path);
    free(ck);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir);
    bool slash = n && dir[n - 1] == '/';
    size_t len = n + !slash + strlen(name) + 1;
    char *p = malloc(len);
    if (p) snprintf(p, len, "%s%s%s", dir, slash ? "" : "/", name);
    return p;
}

/* Picks the one index, or lacking one the one .safetensors file, in folder dir. */
static int find_in_folder(const char *dir, char **found, fy_error *err)
{
    *found = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return fy_error_set_at(err, fy_status_from_errno(errno), dir, 0, 0, "cannot open: %s",
                               strerror(errno));
    char **names[2] = {NULL, NULL}; /* [0] indexes, [1] single files */
    size_t count[2] = {0, 0}, cap[2] = {0, 0};
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        int kind = ends_with(e->d_name, ".safetensors.index.json") ? 0
                   : ends_with(e->d_name, ".safetensors")          ? 1
                                                                   : -1;
        if (kind < 0) continue;
        if (count[kind] == cap[kind]) {
            size_t nc = cap[kind] ? 2 * cap[kind] : 8;
            char **grown = realloc(names[kind], nc * sizeof *grown);
            if (!grown) {
                rc = fy_error_set(err, FY_ENOMEM, "out of memory listing %s", dir);
                break;
            }
            names[kind] = grown;
            cap[kind] = nc;
        }
        if (!(names[kind][count[kind]] = strdup(e->d_name)))
            rc = fy_error_set(err, FY_ENOMEM, "out of memory listing %s", dir);
        else
            count[kind]++;
    }
    closedir(d);
    for (int k = 0; k < 2; k++)
        if (count[k]) qsort(names[k], count[k], sizeof *names[k], compare_strings);
    if (rc == 0) {
        int pick = count[0] ? 0 : 1;
        if (count[pick] == 1) {
            if (!(*found = join(dir, names[pick][0])))
                rc = fy_error_set(err, FY_ENOMEM, "out of memory");
        } else if (count[0] > 1) {
            rc = fy_error_set_at(err, FY_EINVAL, dir, 0, 0,
                                 "the folder holds %zu index files ('%s', '%s'%s); name one",
                                 count[0], names[0][0], names[0][1], count[0] > 2 ? ", ..." : "");
        } else if (count[1] > 1) {
            rc = fy_error_set_at(err, FY_EINVAL, dir, 0, 0,
                                 "the folder holds %zu .safetensors files ('%s', '%s'%s) and no "
                                 "*.safetensors.index.json; name one file, or the index",
                                 count[1], names[1][0], names[1][1], count[1] > 2 ? ", ..." : "");
        } else {
            rc = fy_error_set_at(err, FY_ENOENT, dir, 0, 0,
                                 "the folder holds no .safetensors file and no "
                                 "*.safetensors.index.json");
        }
    }
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < count[k]; i++)
            free(names[k][i]);
        free(names[k]);
    }
    return rc;
}

/* One tensor of the index's weight_map. */
typedef struct mapping {
    const fy_jnode *name, *shard;
    size_t file; /* index of the shard in the checkpoint's files */
    bool seen;   /* found in that shard's header */
} mapping;

static int compare_shard(const void *a, const void *b)
{
    const mapping *x = a, *y = b;
    int c = strcmp(x->shard->u.text, y->shard->u.text);
    return c ? c : (x->name > y->name) - (x->name < y->name);
}

static int compare_name(const void *a, const void *b)
{
    const mapping *x = a, *y = b;
    return strcmp(x->name->u.text, y->name->u.text);
}

/* A shard must be a path inside the index's folder: relative, with no ".." part. */
static bool shard_path_ok(const char *p)
{
    if (!p[0] || p[0] == '/') return false;
    for (const char *s = p; *s;) {
        size_t n = strcspn(s, "/");
        if ((n == 2 && !strncmp(s, "..", 2)) || n == 0) return false;
        s += n;
        if (*s == '/') s++;
    }
    return p[strlen(p) - 1] != '/';
}

static int read_weight_map(const fy_jdoc *doc, const fy_jnode *map, mapping *maps, fy_error *err)
{
    char name[256], shard[256];
    for (size_t i = 0; i < map->count; i++) {
        const fy_jnode *k = fy_jobj_key(map, i), *v = fy_jobj_value(map, i);
        fy_text_excerpt(k->u.text, k->count, name, sizeof name);
        if (k->count == 0 || (k->flags & FY_JSTR_HAS_NUL))
            return fy_jdoc_error(doc, k, err, FY_EPARSE,
                                 "weight_map: tensor '%s': a name must be non-empty, without NUL",
                                 name);
        if (v->kind != FY_JSTRING)
            return fy_jdoc_error(doc, v, err, FY_EPARSE,
                                 "weight_map: tensor '%s': the shard must be a string, not %s",
                                 name, fy_jkind_name(v));
        fy_text_excerpt(v->u.text, v->count, shard, sizeof shard);
        if ((v->flags & FY_JSTR_HAS_NUL) || !shard_path_ok(v->u.text))
            return fy_jdoc_error(doc, v, err, FY_EPARSE,
                                 "weight_map: tensor '%s': shard '%s' must be a relative path "
                                 "inside the index's folder",
                                 name, shard);
        maps[i] = (mapping){.name = k, .shard = v};
    }
    return 0;
}

/* Opens every shard the index names and checks that they and the index agree. */
static int open_shards(fy_st_checkpoint *ck, const fy_jdoc *doc, mapping *maps, size_t n,
                       fy_error *err)
{
    qsort(maps, n, sizeof *maps, compare_shard);
    ck->files = calloc(n ? n : 1, sizeof *ck->files);
    if (!ck->files) return fy_error_set(err, FY_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (i && !strcmp(maps[i].shard->u.text, maps[i - 1].shard->u.text)) {
            maps[i].file = maps[i - 1].file;
            continue;
        }
        char *path = fy_path_relative_to(ck->path, maps[i].shard->u.text);
        if (!path) return fy_error_set(err, FY_ENOMEM, "out of memory");
        int rc = fy_st_file_read(path, &ck->files[ck->file_count], err);
        free(path);
        if (rc < 0) return rc;
        maps[i].file = ck->file_count++;
    }
    qsort(maps, n, sizeof *maps, compare_name);
    char name[256], other[256];
    for (size_t f = 0; f < ck->file_count; f++) {
        fy_st_file *file = ck->files[f];
        for (size_t t = 0; t < file->tensor_count; t++) {
            fy_st_tensor *ten = &file->tensors[t];
            fy_jnode probe_name = {.kind = FY_JSTRING, .u.text = ten->name};
            mapping probe = {.name = &probe_name};
            mapping *m = bsearch(&probe, maps, n, sizeof *maps, compare_name);
            fy_text_excerpt(ten->name, strlen(ten->name), name, sizeof name);
            if (!m)
                return fy_error_set_at(err, FY_EPARSE, file->path, ten->line, ten->column,
                                       "tensor '%s' is in this shard but not in the "
                                       "weight_map of %s",
                                       name, ck->path);
            if (m->file != f)
                return fy_error_set_at(
                    err, FY_EPARSE, file->path, ten->line, ten->column,
                    "tensor '%s' is in this shard but %s maps it to '%s'", name, ck->path,
                    fy_text_excerpt(m->shard->u.text, m->shard->count, other, sizeof other));
            m->seen = true;
            ten->file = f;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (maps[i].seen) continue;
        fy_text_excerpt(maps[i].name->u.text, maps[i].name->count, name, sizeof name);
        return fy_jdoc_error(doc, maps[i].name, err, FY_EPARSE,
                             "weight_map: tensor '%s' is mapped to '%s', which has no such "
                             "tensor",
                             name, ck->files[maps[i].file]->path);
    }
    return 0;
}

static int open_index(fy_st_checkpoint *ck, fy_error *err)
{
    struct stat st;
    if (stat(ck->path, &st) == 0 && (uint64_t)st.st_size > FY_ST_HEADER_MAX)
        return fy_error_set_at(err, FY_EPARSE, ck->path, 0, 0,
                               "an index of %llu bytes is absurd (over the %llu MiB limit)",
                               (unsigned long long)st.st_size, FY_ST_HEADER_MAX >> 20);
    char *text;
    size_t len;
    int rc = fy_file_read_all(ck->path, &text, &len, err);
    if (rc < 0) return rc;
    fy_jdoc *doc = NULL;
    rc = fy_json_parse(ck->path, text, len, NULL, &doc, err);
    free(text);
    if (rc < 0) return rc;
    const fy_jnode *root = fy_jdoc_root(doc), *first, *repeat, *map = NULL;
    mapping *maps = NULL;
    char k[128];
    if (root->kind != FY_JOBJECT) {
        rc = fy_jdoc_error(doc, root, err, FY_EPARSE, "an index must be a JSON object, not %s",
                           fy_jkind_name(root));
        goto done;
    }
    if ((rc = fy_jobj_find_duplicate(root, &first, &repeat)) != 0) {
        if (rc > 0)
            rc = fy_jdoc_error(doc, repeat, err, FY_EPARSE, "'%s' is given twice",
                               fy_text_excerpt(repeat->u.text, repeat->count, k, sizeof k));
        goto done;
    }
    for (size_t i = 0; i < root->count; i++) {
        const fy_jnode *key = fy_jobj_key(root, i), *value = fy_jobj_value(root, i);
        if (fy_jnode_is(key, "weight_map")) {
            map = value;
        } else if (fy_jnode_is(key, "metadata")) {
            if (value->kind != FY_JOBJECT && value->kind != FY_JNULL) {
                rc = fy_jdoc_error(doc, value, err, FY_EPARSE, "metadata must be an object, not %s",
                                   fy_jkind_name(value));
                goto done;
            }
        } else {
            rc = fy_jdoc_error(doc, key, err, FY_EPARSE,
                               "unknown key '%s' (an index holds metadata and weight_map)",
                               fy_text_excerpt(key->u.text, key->count, k, sizeof k));
            goto done;
        }
    }
    if (!map || map->kind != FY_JOBJECT) {
        rc = fy_jdoc_error(doc, map ? map : root, err, FY_EPARSE,
                           "an index needs a weight_map object (tensor name: shard file)%s%s",
                           map ? ", not " : "", map ? fy_jkind_name(map) : "");
        goto done;
    }
    if ((rc = fy_jobj_find_duplicate(map, &first, &repeat)) != 0) {
        if (rc > 0)
            rc = fy_jdoc_error(doc, repeat, err, FY_EPARSE,
                               "weight_map: tensor '%s' is mapped twice (first at line %u, "
                               "column %u)",
                               fy_text_excerpt(repeat->u.text, repeat->count, k, sizeof k),
                               (unsigned)first->line, (unsigned)first->column);
        goto done;
    }
    maps = calloc(map->count ? map->count : 1, sizeof *maps);
    if (!maps) {
        rc = fy_error_set(err, FY_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = read_weight_map(doc, map, maps, err)) == 0)
        rc = open_shards(ck, doc, maps, map->count, err);
done:
    free(maps);
    fy_jdoc_destroy(doc);
    return rc;
}

int fy_st_checkpoint_open(const char *path, fy_st_checkpoint **out, fy_error *err)
{
    *out = NULL;
    fy_st_checkpoint *ck = calloc(1, sizeof *ck);
    if (!ck) return fy_error_set(err, FY_ENOMEM, "out of memory");
    struct stat st;
    int rc = 0;
    if (stat(path, &st) < 0)
        rc = fy_error_set_at(err, fy_status_from_errno(errno), path, 0, 0, "cannot open: %s",
                             strerror(errno));
    else if (S_ISDIR(st.st_mode))
        rc = find_in_folder(path, &ck->path, err);
    else if (!(ck->path = strdup(path)))
        rc = fy_error_set(err, FY_ENOMEM, "out of memory");
    if (rc == 0 && ends_with(ck->path, ".json")) {
        rc = open_index(ck, err);
    } else if (rc == 0) {
        ck->files = calloc(1, sizeof *ck->files);
        if (!ck->files)
            rc = fy_error_set(err, FY_ENOMEM, "out of memory");
        else if ((rc = fy_st_file_read(ck->path, &ck->files[0], err)) == 0)
            ck->file_count = 1;
    }
    size_t total = 0;
    for (size_t f = 0; rc == 0 && f < ck->file_count; f++)
        total += ck->files[f]->tensor_count;
    if (rc == 0 && !(ck->tensors = calloc(total ? total : 1, sizeof *ck->tensors)))
        rc = fy_error_set(err, FY_ENOMEM, "out of memory");
    for (size_t f = 0; rc == 0 && f < ck->file_count; f++)
        for (size_t t = 0; t < ck->files[f]->tensor_count; t++)
            ck->tensors[ck->tensor_count++] = &ck->files[f]->tensors[t];
    if (rc < 0) {
        fy_st_checkpoint_destroy(ck);
        return rc;
    }
    *out = ck;
    return 0;
}
