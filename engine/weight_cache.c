/* The weight cache: one read-only host copy of each weight, keyed by (real path of its file,
 * offset, size), shared by every workspace and thread that acquires it. The invariant: an
 * entry lives exactly while its reference count is above zero (an entry at zero is freed at
 * once, under the lock, so no one can find it), and its bytes never change after the read
 * that created it. The cache itself is reference-counted too: its creator and each workspace
 * using it hold one. */
#include "engine/weight_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fy_weight {
    char *path;
    uint64_t offset, size;
    void *data;
    size_t refs;
    uint64_t hash;
    struct fy_weight *next; /* bucket chain */
};

struct fy_weight_cache {
    pthread_mutex_t lock;
    size_t refs; /* the creator's and every workspace's */
    fy_weight **bucket;
    size_t bucket_count, entries;
    fy_weight_cache_stats stats;
};

/* FNV-1a over the key. */
static uint64_t key_hash(const char *path, uint64_t offset, uint64_t size)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = path; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    for (int i = 0; i < 8; i++)
        h = (h ^ ((offset >> (8 * i)) & 0xff)) * 1099511628211ull;
    for (int i = 0; i < 8; i++)
        h = (h ^ ((size >> (8 * i)) & 0xff)) * 1099511628211ull;
    return h;
}

int fy_weight_cache_create(fy_weight_cache **out, fy_error *err)
{
    fy_weight_cache *c = calloc(1, sizeof *c);
    if (c) c->bucket = calloc(64, sizeof *c->bucket);
    if (!c || !c->bucket) {
        free(c);
        return fy_error_set(err, FY_ENOMEM, "out of memory for the weight cache");
    }
    c->bucket_count = 64;
    c->refs = 1;
    pthread_mutex_init(&c->lock, NULL);
    *out = c;
    return 0;
}

void fy_weight_cache_retain(fy_weight_cache *c)
{
    pthread_mutex_lock(&c->lock);
    c->refs++;
    pthread_mutex_unlock(&c->lock);
}

static void entry_free(fy_weight *w)
{
    free(w->path);
    free(w->data);
    free(w);
}

void fy_weight_cache_destroy(fy_weight_cache *c)
{
    if (!c) return;
    pthread_mutex_lock(&c->lock);
    bool last = --c->refs == 0;
    pthread_mutex_unlock(&c->lock);
    if (!last) return;
    /* Entries still referenced here belong to acquisitions never released (a caller's bug);
     * freeing them is all that is left to do. */
    for (size_t b = 0; b < c->bucket_count; b++)
        for (fy_weight *w = c->bucket[b], *next; w; w = next) {
            next = w->next;
            entry_free(w);
        }
    free(c->bucket);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

void fy_weight_cache_stats_get(fy_weight_cache *c, fy_weight_cache_stats *out)
{
    pthread_mutex_lock(&c->lock);
    *out = c->stats;
    out->entries = c->entries;
    pthread_mutex_unlock(&c->lock);
}

static int read_weight(fy_weight *w, fy_error *err)
{
    int fd = open(w->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fy_error_set(err, fy_status_from_errno(errno), "cannot open the weight file %s: %s",
                            w->path, strerror(errno));
    size_t cap = (size_t)(w->size ? w->size : 1);
    w->data = malloc(cap);
    if (!w->data) {
        close(fd);
        return fy_error_set(err, FY_ENOMEM, "out of memory for %llu bytes of %s",
                            (unsigned long long)w->size, w->path);
    }
    uint64_t done = 0;
    while (done < w->size) {
        ssize_t n =
            pread(fd, (char *)w->data + done, (size_t)(w->size - done), (off_t)(w->offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int e = n < 0 ? errno : 0;
            close(fd);
            if (e)
                return fy_error_set(err, fy_status_from_errno(e), "reading %s at offset %llu: %s",
                                    w->path, (unsigned long long)(w->offset + done), strerror(e));
            return fy_error_set(err, FY_EIO,
                                "%s holds %llu bytes, but the weight needs bytes %llu..%llu "
                                "(a truncated weight file?)",
                                w->path, (unsigned long long)(w->offset + done),
                                (unsigned long long)w->offset,
                                (unsigned long long)(w->offset + w->size));
        }
        done += (uint64_t)n;
    }
    close(fd);
    return 0;
}

static int grow(fy_weight_cache *c)
{
    size_t n = c->bucket_count * 2;
    fy_weight **b = calloc(n, sizeof *b);
    if (!b) return FY_ENOMEM;
    for (size_t i = 0; i < c->bucket_count; i++)
        for (fy_weight *w = c->bucket[i], *next; w; w = next) {
            next = w->next;
            w->next = b[w->hash % n];
            b[w->hash % n] = w;
        }
    free(c->bucket);
    c->bucket = b;
    c->bucket_count = n;
    return 0;
}

int fy_weight_cache_acquire(fy_weight_cache *c, const char *path, uint64_t offset, uint64_t size,
                            const fy_weight **out, fy_error *err)
{
    char real[PATH_MAX];
    if (!path || !realpath(path, real))
        return fy_error_set(err, path ? fy_status_from_errno(errno) : FY_EINVAL,
                            "cannot find the weight file %s: %s", path ? path : "(null)",
                            path ? strerror(errno) : "no path");
    uint64_t h = key_hash(real, offset, size);
    pthread_mutex_lock(&c->lock);
    for (fy_weight *w = c->bucket[h % c->bucket_count]; w; w = w->next)
        if (w->hash == h && w->offset == offset && w->size == size && !strcmp(w->path, real)) {
            w->refs++;
            c->stats.hits++;
            pthread_mutex_unlock(&c->lock);
            *out = w;
            return 0;
        }
    /* The read happens under the lock: attaching is rare, and two workers attaching the
     * same model then read its weights once. */
    int rc = 0;
    fy_weight *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(real))) rc = fy_error_set(err, FY_ENOMEM, "out of memory");
    if (rc == 0) {
        w->offset = offset;
        w->size = size;
        w->hash = h;
        w->refs = 1;
        rc = read_weight(w, err);
    }
    if (rc == 0 && c->entries + 1 > c->bucket_count * 2 && grow(c) < 0)
        rc = fy_error_set(err, FY_ENOMEM, "out of memory");
    if (rc < 0) {
        pthread_mutex_unlock(&c->lock);
        if (w) entry_free(w);
        return rc;
    }
    w->next = c->bucket[h % c->bucket_count];
    c->bucket[h % c->bucket_count] = w;
    c->entries++;
    c->stats.bytes += size;
    c->stats.reads++;
    c->stats.read_bytes += size;
    pthread_mutex_unlock(&c->lock);
    *out = w;
    return 0;
}

void fy_weight_cache_release(fy_weight_cache *c, const fy_weight *weight)
{
    if (!weight) return;
    pthread_mutex_lock(&c->lock);
    fy_weight **link = &c->bucket[weight->hash % c->bucket_count];
    while (*link && *link != weight)
        link = &(*link)->next;
    fy_weight *w = *link;
    if (w && --w->refs == 0) {
        *link = w->next;
        c->entries--;
        c->stats.bytes -= w->size;
        entry_free(w);
    }
    pthread_mutex_unlock(&c->lock);
}

const void *fy_weight_data(const fy_weight *w)
{
    return w->data;
}

uint64_t fy_weight_size(const fy_weight *w)
{
    return w->size;
}
