/* Reads a `ferry: plan/1` file. Structure errors (YAML, unknown or missing keys, duplicate
 * ids, `after` naming an unknown or later id) refuse the file with FILE:LINE:COLUMN; names
 * the graph does not know are kept for the checker's bad-reference class. Events are read
 * with a hand-written key dispatch and a dense id fast path, because plans run to millions
 * of events and this loop is most of their load time. */
#include "plans/plan_model.h"

#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const top_keys[] = {"ferry",  "policy", "graph", "machine",
                                       "arenas", "events", NULL};
static const char *const graph_keys[] = {"file", "sha256", NULL};
static const char *const arena_keys[] = {"gpu", "host", "nvme", NULL};

enum { K_ID, K_DO, K_TENSOR, K_OP, K_FROM, K_TO, K_AT, K_AFTER, K_COUNT };
static const char *const key_names[K_COUNT] = {"id",   "do", "tensor", "op",
                                               "from", "to", "at",     "after"};
/* Keys each kind takes, and those it needs. */
#define BIT(k) (1u << (k))
static const unsigned kind_allows[FY_EVENT_KIND_COUNT] = {
    [FY_EVENT_LOAD] =
        BIT(K_ID) | BIT(K_DO) | BIT(K_TENSOR) | BIT(K_FROM) | BIT(K_TO) | BIT(K_AT) | BIT(K_AFTER),
    [FY_EVENT_OFFLOAD] =
        BIT(K_ID) | BIT(K_DO) | BIT(K_TENSOR) | BIT(K_FROM) | BIT(K_TO) | BIT(K_AT) | BIT(K_AFTER),
    [FY_EVENT_EVICT] = BIT(K_ID) | BIT(K_DO) | BIT(K_TENSOR) | BIT(K_FROM) | BIT(K_AFTER),
    [FY_EVENT_COMPUTE] = BIT(K_ID) | BIT(K_DO) | BIT(K_OP) | BIT(K_AT) | BIT(K_AFTER),
};
static const unsigned kind_needs[FY_EVENT_KIND_COUNT] = {
    [FY_EVENT_LOAD] = BIT(K_ID) | BIT(K_DO) | BIT(K_TENSOR) | BIT(K_FROM) | BIT(K_TO) | BIT(K_AT),
    [FY_EVENT_OFFLOAD] =
        BIT(K_ID) | BIT(K_DO) | BIT(K_TENSOR) | BIT(K_FROM) | BIT(K_TO) | BIT(K_AT),
    [FY_EVENT_EVICT] = BIT(K_ID) | BIT(K_DO) | BIT(K_TENSOR) | BIT(K_FROM),
    [FY_EVENT_COMPUTE] = BIT(K_ID) | BIT(K_DO) | BIT(K_OP),
};

/* strlen of each key_names[k]: keys are matched by length, then bytes. */
static const uint32_t key_lengths[K_COUNT] = {2, 2, 6, 2, 4, 2, 2, 5};

static int classify_key(const fy_ynode *key)
{
    for (int i = 0; i < K_COUNT; i++)
        if (key->count == key_lengths[i] && memcmp(key->u.text, key_names[i], key->count) == 0)
            return i;
    return -1;
}

/* Names a field of an event in a message ("at of event 7"), or field alone when id is NULL.
 * Messages are made only on the error path: the success path runs millions of times. */
static const char *field_name(char *buf, size_t size, const char *field, const uint64_t *id)
{
    if (!id) return field;
    snprintf(buf, size, "%s event %llu", field, (unsigned long long)*id);
    return buf;
}

/* True when fy_ynode_string would accept n: a scalar, not empty, ~ or null unless quoted. */
static bool is_string(const fy_ynode *n)
{
    return n->kind == FY_YSCALAR &&
           (n->quoted || (n->count > 0 && !(n->count == 1 && n->u.text[0] == '~') &&
                          !(n->count == 4 && memcmp(n->u.text, "null", 4) == 0)));
}

/* ids -> event index: while ids equal their index (the usual case) no map is needed; the
 * first id that breaks this moves every id so far into an open-addressing map. */
typedef struct id_map {
    bool dense;
    size_t count;
    uint64_t *ids;
    uint32_t *index; /* UINT32_MAX: empty slot */
    size_t cap;
} id_map;

static size_t id_slot(const id_map *m, uint64_t id)
{
    uint64_t h = id * 0x9E3779B97F4A7C15ull;
    size_t mask = m->cap - 1, i = (size_t)(h >> 17) & mask;
    while (m->index[i] != UINT32_MAX && m->ids[i] != id)
        i = (i + 1) & mask;
    return i;
}

static int id_put_sparse(id_map *m, uint64_t id, uint32_t index)
{
    if ((m->count + 1) * 2 > m->cap) {
        id_map bigger = {.cap = m->cap ? m->cap * 2 : 1024};
        bigger.ids = malloc(bigger.cap * sizeof *bigger.ids);
        bigger.index = malloc(bigger.cap * sizeof *bigger.index);
        if (!bigger.ids || !bigger.index) {
            free(bigger.ids);
            free(bigger.index);
            return FY_ENOMEM;
        }
        memset(bigger.index, 0xff, bigger.cap * sizeof *bigger.index);
        for (size_t i = 0; i < m->cap; i++) {
            if (m->index[i] == UINT32_MAX) continue;
            size_t s = id_slot(&bigger, m->ids[i]);
            bigger.ids[s] = m->ids[i];
            bigger.index[s] = m->index[i];
        }
        free(m->ids);
        free(m->index);
        m->ids = bigger.ids;
        m->index = bigger.index;
        m->cap = bigger.cap;
    }
    size_t s = id_slot(m, id);
    m->ids[s] = id;
    m->index[s] = index;
    return 0;
}

static bool id_get(const id_map *m, uint64_t id, uint32_t *index)
{
    if (m->dense) {
        if (id < m->count) {
            *index = (uint32_t)id;
            return true;
        }
        return false;
    }
    if (!m->cap) return false;
    size_t s = id_slot(m, id);
    if (m->index[s] == UINT32_MAX) return false;
    *index = m->index[s];
    return true;
}

/* Adds id for the next index; the caller has checked it is new. */
static int id_add(id_map *m, uint64_t id)
{
    uint32_t index = (uint32_t)m->count;
    if (m->dense && id == index) {
        m->count++;
        return 0;
    }
    if (m->dense) {
        m->dense = false;
        for (uint32_t i = 0; i < index; i++)
            if (id_put_sparse(m, i, i) < 0) return FY_ENOMEM;
    }
    if (id_put_sparse(m, id, index) < 0) return FY_ENOMEM;
    m->count++;
    return 0;
}

typedef struct reader {
    const fy_ydoc *doc;
    fy_plan *plan;
    const fy_ynode *events; /* the sequence, for looking ahead on errors */
    id_map ids;
    uint32_t *after; /* scratch for one event's after list */
    size_t after_cap;
    fy_placement *places;
    size_t places_cap;
} reader;

/* Fast path for the plain decimal integers that fill plans; anything else (units, quotes,
 * errors) goes through the typed getter. */
static int read_u64(const reader *r, const fy_ynode *n, const char *field, const uint64_t *id,
                    bool size, uint64_t *out, fy_error *err)
{
    if (n->kind == FY_YSCALAR && !n->quoted && n->count > 0 && n->count < 20) {
        uint64_t v = 0;
        const char *s = n->u.text;
        for (; *s >= '0' && *s <= '9'; s++)
            v = v * 10 + (uint64_t)(*s - '0');
        if (*s == '\0') {
            *out = v;
            return 0;
        }
    }
    char buf[64];
    const char *what = field_name(buf, sizeof buf, field, id);
    return size ? fy_ynode_size(r->doc, n, what, out, err)
                : fy_ynode_u64(r->doc, n, what, out, err);
}

/* fy_tier_parse, with one comparison: the tier names differ in their first letter. */
static fy_tier tier_of(const fy_ynode *n)
{
    fy_tier t = FY_TIER_NONE;
    switch (n->u.text[0]) {
    case 'g':
        t = FY_TIER_GPU;
        break;
    case 'h':
        t = FY_TIER_HOST;
        break;
    case 'n':
        t = FY_TIER_NVME;
        break;
    }
    return t != FY_TIER_NONE && strcmp(n->u.text, fy_tier_name(t)) == 0 ? t : FY_TIER_NONE;
}

/* Finds the id of a later event (from index on) equal to id, for a precise message. */
static const fy_ynode *find_later_id(const reader *r, size_t from, uint64_t id)
{
    for (size_t i = from; i < r->events->count; i++) {
        const fy_ynode *v = fy_ymap_get(fy_yseq_item(r->events, i), "id");
        uint64_t other;
        if (v && read_u64(r, v, "id", NULL, false, &other, NULL) == 0 && other == id) return v;
    }
    return NULL;
}

static int read_after(reader *r, const fy_ynode *seq, uint64_t id, size_t index, fy_event *ev,
                      fy_error *err)
{
    char what[64];
    int rc;
    if (seq->kind != FY_YSEQ)
        return fy_ynode_expect(r->doc, seq, FY_YSEQ, field_name(what, sizeof what, "after of", &id),
                               err);
    if (seq->count > r->after_cap) {
        size_t cap = seq->count * 2;
        uint32_t *a = realloc(r->after, cap * sizeof *a);
        if (!a) return fy_error_set(err, FY_ENOMEM, "out of memory");
        r->after = a;
        r->after_cap = cap;
    }
    for (uint32_t i = 0; i < seq->count; i++) {
        const fy_ynode *item = fy_yseq_item(seq, i);
        uint64_t dep;
        if ((rc = read_u64(r, item, "after of", &id, false, &dep, err)) < 0) return rc;
        uint32_t at;
        if (!id_get(&r->ids, dep, &at)) {
            const fy_ynode *later = find_later_id(r, index, dep);
            if (later)
                return fy_ydoc_error(r->doc, item, err, FY_EPARSE,
                                     "event %llu: after names event %llu, which is not earlier "
                                     "(line %u): after may name only earlier events",
                                     (unsigned long long)id, (unsigned long long)dep, later->line);
            return fy_ydoc_error(r->doc, item, err, FY_EPARSE,
                                 "event %llu: after names unknown event %llu",
                                 (unsigned long long)id, (unsigned long long)dep);
        }
        r->after[i] = at;
    }
    ev->after = r->after;
    ev->after_count = seq->count;
    return 0;
}

static int read_places(reader *r, const fy_ynode *map, uint64_t id, fy_event *ev, fy_error *err)
{
    char what[64];
    int rc;
    if (map->kind != FY_YMAP)
        return fy_ynode_expect(r->doc, map, FY_YMAP,
                               field_name(what, sizeof what, "at of compute", &id), err);
    if (map->count > r->places_cap) {
        size_t cap = map->count * 2;
        fy_placement *p = realloc(r->places, cap * sizeof *p);
        if (!p) return fy_error_set(err, FY_ENOMEM, "out of memory");
        r->places = p;
        r->places_cap = cap;
    }
    const fy_graph *g = r->plan->graph;
    for (uint32_t i = 0; i < map->count; i++) {
        const fy_ynode *key = fy_ymap_key(map, i);
        if ((rc = fy_ynode_expect(r->doc, key, FY_YSCALAR, "a tensor name", err)) < 0) return rc;
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(fy_ymap_key(map, j)->u.text, key->u.text) == 0)
                return fy_ydoc_error(r->doc, key, err, FY_EPARSE, "duplicate tensor '%s' in %s",
                                     key->u.text,
                                     field_name(what, sizeof what, "at of compute", &id));
        fy_placement *p = &r->places[i];
        long t = fy_graph_find_tensor(g, key->u.text);
        p->tensor = (int32_t)t;
        p->name = t >= 0 ? fy_graph_tensor(g, (size_t)t)->name
                         : fy_plan_pool_strdup(r->plan, key->u.text);
        if (!p->name) return fy_error_set(err, FY_ENOMEM, "out of memory");
        rc = read_u64(r, fy_ymap_value(map, i), "at of compute", &id, true, &p->offset, err);
        if (rc < 0) return rc;
    }
    ev->places = r->places;
    ev->place_count = map->count;
    return 0;
}

static const char *allowed_list(fy_event_kind kind, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int k = 0; k < K_COUNT; k++)
        if (kind_allows[kind] & BIT(k))
            used += (size_t)snprintf(buf + used, size > used ? size - used : 0, "%s%s",
                                     used ? ", " : "", key_names[k]);
    return buf;
}

/* Names an event in a message before its fields are read: by its id when it has a plain
 * one, else by its position. */
static const char *event_label(const fy_ynode *node, size_t index, char *buf, size_t size)
{
    const fy_ynode *id = fy_ymap_get(node, "id");
    if (id && id->kind == FY_YSCALAR && id->count > 0 &&
        strspn(id->u.text, "0123456789") == id->count)
        snprintf(buf, size, "event %s", id->u.text);
    else
        snprintf(buf, size, "event number %zu of the plan", index + 1);
    return buf;
}

static int read_event(reader *r, const fy_ynode *node, size_t index, fy_error *err)
{
    const fy_ydoc *doc = r->doc;
    char what[64];
    if (node->kind != FY_YMAP) {
        snprintf(what, sizeof what, "event number %zu of the plan", index + 1);
        return fy_ynode_expect(doc, node, FY_YMAP, what, err);
    }
    const fy_ynode *val[K_COUNT] = {0}, *keys[K_COUNT] = {0};
    unsigned seen = 0;
    for (uint32_t i = 0; i < node->count; i++) {
        const fy_ynode *key = fy_ymap_key(node, i);
        int k = key->kind == FY_YSCALAR ? classify_key(key) : -1;
        if (k < 0)
            return fy_ydoc_error(doc, key, err, FY_EPARSE,
                                 "unknown key '%s' in %s (expected one of: id, do, tensor, op, "
                                 "from, to, at, after)",
                                 key->kind == FY_YSCALAR ? key->u.text : "(not a scalar)",
                                 event_label(node, index, what, sizeof what));
        if (seen & BIT(k))
            return fy_ydoc_error(doc, key, err, FY_EPARSE, "duplicate key '%s' in %s", key->u.text,
                                 event_label(node, index, what, sizeof what));
        seen |= BIT(k);
        keys[k] = key;
        val[k] = fy_ymap_value(node, i);
    }
    if (!val[K_ID])
        return fy_ydoc_error(doc, node, err, FY_EPARSE, "%s needs an id",
                             event_label(node, index, what, sizeof what));
    fy_event ev = {
        .tensor = -1, .op = -1, .from = FY_TIER_NONE, .to = FY_TIER_NONE, .line = node->line};
    int rc = read_u64(r, val[K_ID], "event id", NULL, false, &ev.id, err);
    if (rc < 0) return rc;
    unsigned long long id = (unsigned long long)ev.id;
    uint32_t first;
    if (id_get(&r->ids, ev.id, &first))
        return fy_ydoc_error(doc, val[K_ID], err, FY_EPARSE,
                             "duplicate event id %llu (first used on line %u)", id,
                             r->plan->events[first].line);
    if (!val[K_DO])
        return fy_ydoc_error(doc, node, err, FY_EPARSE,
                             "event %llu needs 'do' (load, offload, evict or compute)", id);
    static const char *const kinds[] = {"load", "offload", "evict", "compute"};
    int kind = -1;
    for (int k = 0; k < FY_EVENT_KIND_COUNT && val[K_DO]->kind == FY_YSCALAR; k++)
        if (strcmp(val[K_DO]->u.text, kinds[k]) == 0) kind = k;
    if (kind < 0 &&
        (rc = fy_ynode_enum(doc, val[K_DO], field_name(what, sizeof what, "do of", &ev.id), kinds,
                            FY_EVENT_KIND_COUNT, &kind, err)) < 0)
        return rc;
    ev.kind = (fy_event_kind)kind;
    for (int k = 0; k < K_COUNT; k++) {
        char list[128];
        if (val[k] && !(kind_allows[kind] & BIT(k)))
            return fy_ydoc_error(doc, keys[k], err, FY_EPARSE,
                                 "unknown key '%s' in %s event %llu (expected one of: %s)",
                                 key_names[k], kinds[kind], id,
                                 allowed_list(ev.kind, list, sizeof list));
        if (!val[k] && (kind_needs[kind] & BIT(k)))
            return fy_ydoc_error(doc, node, err, FY_EPARSE, "%s event %llu needs '%s'", kinds[kind],
                                 id, key_names[k]);
    }
    const fy_graph *g = r->plan->graph;
    bool known;
    if (ev.kind == FY_EVENT_COMPUTE) {
        ev.ref = val[K_OP]->u.text;
        if (!is_string(val[K_OP]) &&
            (rc = fy_ynode_string(doc, val[K_OP], field_name(what, sizeof what, "op of", &ev.id),
                                  &ev.ref, err)) < 0)
            return rc;
        long op = fy_graph_find_op(g, ev.ref);
        ev.op = (int32_t)op;
        known = op >= 0;
        if (known) ev.ref = fy_graph_op(g, (size_t)op)->name;
        if (val[K_AT] && (rc = read_places(r, val[K_AT], ev.id, &ev, err)) < 0) return rc;
    } else {
        ev.ref = val[K_TENSOR]->u.text;
        if (!is_string(val[K_TENSOR]) &&
            (rc = fy_ynode_string(doc, val[K_TENSOR],
                                  field_name(what, sizeof what, "tensor of", &ev.id), &ev.ref,
                                  err)) < 0)
            return rc;
        long t = fy_graph_find_tensor(g, ev.ref);
        ev.tensor = (int32_t)t;
        known = t >= 0;
        if (known) ev.ref = fy_graph_tensor(g, (size_t)t)->name;
        if (val[K_FROM]->kind != FY_YSCALAR)
            return fy_ynode_expect(doc, val[K_FROM], FY_YSCALAR,
                                   field_name(what, sizeof what, "from of", &ev.id), err);
        ev.from = tier_of(val[K_FROM]);
        if (val[K_TO]) {
            if (val[K_TO]->kind != FY_YSCALAR)
                return fy_ynode_expect(doc, val[K_TO], FY_YSCALAR,
                                       field_name(what, sizeof what, "to of", &ev.id), err);
            ev.to = tier_of(val[K_TO]);
        }
        if (val[K_AT]) {
            if ((rc = read_u64(r, val[K_AT], "at of", &ev.id, true, &ev.at, err)) < 0) return rc;
        }
    }
    /* The document's text goes away after loading: keep unknown names in the pool. */
    if (!known && !(ev.ref = fy_plan_pool_strdup(r->plan, ev.ref)))
        return fy_error_set(err, FY_ENOMEM, "out of memory");
    if (val[K_AFTER] && (rc = read_after(r, val[K_AFTER], ev.id, index, &ev, err)) < 0) return rc;
    if (id_add(&r->ids, ev.id) < 0) return fy_error_set(err, FY_ENOMEM, "out of memory");
    long added = fy_plan_append(r->plan, &ev, err);
    return added < 0 ? (int)added : 0;
}

static int read_arenas(reader *r, const fy_ynode *map, fy_error *err)
{
    int rc = fy_ymap_check(r->doc, map, arena_keys, "'arenas'", err);
    for (int t = 0; rc == 0 && t < FY_TIER_COUNT; t++) {
        const fy_ynode *v = fy_ymap_get(map, fy_tier_name((fy_tier)t));
        char what[32];
        snprintf(what, sizeof what, "%s arena", fy_tier_name((fy_tier)t));
        if (v && (rc = fy_ynode_size(r->doc, v, what, &r->plan->arena[t], err)) == 0)
            r->plan->arena_line[t] = v->line;
    }
    return rc;
}

/* Loads the plan's own graph (relative to the plan's folder) and checks its digest. */
static int read_graph_ref(reader *r, const fy_ynode *root, const fy_ynode *ref, fy_error *err)
{
    const fy_ydoc *doc = r->doc;
    if (!ref)
        return fy_ydoc_error(doc, root, err, FY_EPARSE,
                             "the plan names no graph (graph: {file: ...}); give one");
    int rc = fy_ymap_check(doc, ref, graph_keys, "'graph'", err);
    if (rc < 0) return rc;
    const fy_ynode *file = fy_ymap_get(ref, "file"), *sha = fy_ymap_get(ref, "sha256");
    const char *name, *want = NULL;
    if (!file)
        return fy_ydoc_error(doc, ref, err, FY_EPARSE,
                             "the plan's graph has no file; give the graph");
    if ((rc = fy_ynode_string(doc, file, "graph file", &name, err)) < 0 ||
        (sha && (rc = fy_ynode_string(doc, sha, "graph sha256", &want, err)) < 0))
        return rc;
    char *path = fy_path_relative_to(fy_ydoc_name(doc), name);
    if (!path) return fy_error_set(err, FY_ENOMEM, "out of memory");
    rc = fy_graph_load(path, &r->plan->owned_graph, err);
    if (rc < 0 && err && err->line == 0) {
        /* The graph could not be opened at all: point at the plan's line that names it. */
        char msg[FY_ERROR_MESSAGE_MAX];
        snprintf(msg, sizeof msg, "%s", err->message);
        rc = fy_ydoc_error(doc, file, err, rc, "the plan's graph '%s' (%s): %s", name, path, msg);
    }
    free(path);
    if (rc < 0) return rc;
    r->plan->graph = r->plan->owned_graph;
    if (want) {
        char have[65];
        if ((rc = fy_graph_digest(r->plan->graph, have, err)) < 0) return rc;
        if (strcmp(have, want) != 0)
            return fy_ydoc_error(doc, sha, err, FY_EPARSE,
                                 "graph '%s' has changed since the plan was made: its sha256 is "
                                 "%s, the plan records %s",
                                 name, have, want);
    }
    return 0;
}

static int read_plan(reader *r, const fy_graph *graph, fy_error *err)
{
    const fy_ydoc *doc = r->doc;
    const fy_ynode *root = fy_ydoc_root(doc);
    if (!root)
        return fy_ydoc_error(doc, NULL, err, FY_EPARSE,
                             "empty file: expected a ferry plan (ferry: plan/1)");
    int rc = fy_ymap_check(doc, root, top_keys, "the plan", err);
    if (rc < 0) return rc;
    const fy_ynode *header = fy_ymap_get(root, "ferry");
    if (!header)
        return fy_ydoc_error(doc, root, err, FY_EPARSE,
                             "missing header: the file must start with 'ferry: plan/1'");
    if (!fy_ynode_is(header, "plan/1"))
        return fy_ydoc_error(doc, header, err, FY_EPARSE,
                             "wrong header '%s': expected 'ferry: plan/1'",
                             header->kind == FY_YSCALAR ? header->u.text : "(not a scalar)");
    const fy_ynode *v;
    if ((v = fy_ymap_get(root, "policy"))) {
        const char *policy;
        if ((rc = fy_ynode_string(doc, v, "policy", &policy, err)) < 0 ||
            (rc = fy_plan_set_policy_name(r->plan, policy, err)) < 0)
            return rc;
    }
    if (!graph && (rc = read_graph_ref(r, root, fy_ymap_get(root, "graph"), err)) < 0) return rc;
    if ((v = fy_ymap_get(root, "graph")) &&
        (rc = fy_ymap_check(doc, v, graph_keys, "'graph'", err)) < 0)
        return rc;
    if ((v = fy_ymap_get(root, "machine")) &&
        (rc = fy_machine_read(doc, v, false, &r->plan->machine, NULL, err)) < 0)
        return rc;
    if ((v = fy_ymap_get(root, "arenas")) && (rc = read_arenas(r, v, err)) < 0) return rc;
    const fy_ynode *events = fy_ymap_get(root, "events");
    if (!events) return fy_ydoc_error(doc, root, err, FY_EPARSE, "the plan needs an 'events' list");
    if ((rc = fy_ynode_expect(doc, events, FY_YSEQ, "'events'", err)) < 0) return rc;
    r->events = events;
    for (uint32_t i = 0; i < root->count; i++)
        if (fy_ynode_is(fy_ymap_key(root, i), "events"))
            r->plan->events_line = fy_ymap_key(root, i)->line;
    r->plan->events = malloc((events->count ? events->count : 1) * sizeof *r->plan->events);
    if (!r->plan->events)
        return fy_error_set(err, FY_ENOMEM, "out of memory for %u events", events->count);
    r->plan->cap = events->count ? events->count : 1;
    for (uint32_t i = 0; i < events->count; i++)
        if ((rc = read_event(r, fy_yseq_item(events, i), i, err)) < 0) return rc;
    return 0;
}

static int load_doc(fy_ydoc *doc, const char *path, const fy_graph *graph, fy_plan **out,
                    fy_error *err)
{
    reader r = {.doc = doc, .plan = fy_plan_new(graph), .ids = {.dense = true}};
    int rc = 0;
    if (!r.plan || !(r.plan->path = strdup(path)))
        rc = fy_error_set(err, FY_ENOMEM, "out of memory");
    if (rc == 0) rc = read_plan(&r, graph, err);
    free(r.ids.ids);
    free(r.ids.index);
    free(r.after);
    free(r.places);
    if (rc < 0) {
        fy_plan_destroy(r.plan);
        return rc;
    }
    *out = r.plan;
    return 0;
}

int fy_plan_load(const char *path, const fy_graph *graph, fy_plan **out, fy_error *err)
{
    *out = NULL;
    fy_ydoc *doc;
    int rc = fy_ydoc_load_file(path, &doc, err);
    if (rc < 0) return rc;
    rc = load_doc(doc, path, graph, out, err);
    fy_ydoc_destroy(doc);
    return rc;
}

int fy_plan_load_string(const char *name, const char *text, size_t len, const fy_graph *graph,
                        fy_plan **out, fy_error *err)
{
    *out = NULL;
    fy_ydoc *doc;
    if (!name) name = "<string>";
    int rc = fy_ydoc_load_string(name, text, len, &doc, err);
    if (rc < 0) return rc;
    rc = load_doc(doc, name, graph, out, err);
    fy_ydoc_destroy(doc);
    return rc;
}
