/* Reads a `ferry: policy/1` file into knobs. Every key is known or refused with
 * FILE:LINE:COLUMN, every value is range-checked where it is read, and relative paths
 * (lua:) are resolved against the policy file's folder, so a loaded policy is complete. */
#include "policies/policy_model.h"

#include "core/buf.h"
#include "core/yaml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const top_keys[] = {"ferry", "name",   "prefetch",    "evict",
                                       "keep",  "load",   "activations", "staging",
                                       "lua",   "limits", NULL};
static const char *const act_keys[] = {"offload", "idle", NULL};
static const char *const staging_keys[] = {"buffers", NULL};
static const char *const limits_keys[] = {"instructions", "memory", "seconds", NULL};
static const char *const load_names[] = {"lazy", "eager"};
static const char *const offload_names[] = {"host", "nvme"};

/* Reads a whole number in [lo, hi] at node. */
static int read_count(const fy_ydoc *doc, const fy_ynode *node, const char *what, uint64_t lo,
                      uint64_t hi, unsigned *out, fy_error *err)
{
    uint64_t v;
    int rc = fy_ynode_u64(doc, node, what, &v, err);
    if (rc < 0) return rc;
    if (v < lo || v > hi)
        return fy_ydoc_error(doc, node, err, FY_ERANGE, "%s must be %llu to %llu, not %llu", what,
                             (unsigned long long)lo, (unsigned long long)hi, (unsigned long long)v);
    *out = (unsigned)v;
    return 0;
}

static int read_activations(const fy_ydoc *doc, const fy_ynode *node, fy_policy_knobs *k,
                            fy_error *err)
{
    int rc = fy_ymap_check(doc, node, act_keys, "'activations'", err);
    if (rc < 0) return rc;
    const fy_ynode *off = fy_ymap_get(node, "offload");
    if (!off)
        return fy_ydoc_error(doc, node, err, FY_EPARSE,
                             "'activations' needs 'offload: host' or 'offload: nvme'");
    int which;
    if ((rc = fy_ynode_enum(doc, off, "activations offload", offload_names, 2, &which, err)) < 0)
        return rc;
    k->activations_offload = which == 0 ? FY_TIER_HOST : FY_TIER_NVME;
    k->activations_idle = 1;
    const fy_ynode *idle = fy_ymap_get(node, "idle");
    if (idle && (rc = read_count(doc, idle, "activations idle", 1, 1u << 30, &k->activations_idle,
                                 err)) < 0)
        return rc;
    return 0;
}

/* `limits: {instructions: 10M, memory: 64MiB, seconds: 10s}`: the Lua sandbox's budgets. */
static int read_limits(const fy_ydoc *doc, const fy_ynode *node, fy_policy_lua_limits *l,
                       fy_error *err)
{
    int rc = fy_ymap_check(doc, node, limits_keys, "'limits'", err);
    if (rc < 0) return rc;
    const fy_ynode *v;
    if ((v = fy_ymap_get(node, "instructions"))) {
        double n;
        if ((rc = fy_ynode_count(doc, v, "limits instructions", &n, err)) < 0) return rc;
        if (!(n >= 1 && n <= 1e15) || n != (double)(uint64_t)n)
            return fy_ydoc_error(doc, v, err, FY_ERANGE,
                                 "limits instructions must be a whole number from 1 to 1e15");
        l->instructions = (uint64_t)n;
    }
    if ((v = fy_ymap_get(node, "memory"))) {
        if ((rc = fy_ynode_size(doc, v, "limits memory", &l->memory, err)) < 0) return rc;
        if (l->memory == 0)
            return fy_ydoc_error(doc, v, err, FY_ERANGE, "limits memory must be more than 0");
    }
    if ((v = fy_ymap_get(node, "seconds"))) {
        if ((rc = fy_ynode_time(doc, v, "limits seconds", &l->seconds, err)) < 0) return rc;
        if (!(l->seconds > 0))
            return fy_ydoc_error(doc, v, err, FY_ERANGE, "limits seconds must be more than 0");
    }
    return 0;
}

/* Reads the policy into p (whose strings it allocates). */
static int read_policy(const fy_ydoc *doc, const char *path, fy_policy_knobs *k, const char **name,
                       const fy_ynode **keep, fy_error *err)
{
    const fy_ynode *root = fy_ydoc_root(doc);
    if (!root)
        return fy_ydoc_error(doc, NULL, err, FY_EPARSE,
                             "empty file: a policy starts with 'ferry: policy/1'");
    int rc = fy_ymap_check(doc, root, top_keys, "the policy", err);
    if (rc < 0) return rc;
    const fy_ynode *header = fy_ymap_get(root, "ferry"), *v;
    if (!header)
        return fy_ydoc_error(doc, root, err, FY_EPARSE,
                             "missing header: the file must start with 'ferry: policy/1'");
    if (!fy_ynode_is(header, "policy/1"))
        return fy_ydoc_error(doc, header, err, FY_EPARSE,
                             "wrong header '%s': expected 'ferry: policy/1'",
                             header->kind == FY_YSCALAR ? header->u.text : "(not a scalar)");
    if ((v = fy_ymap_get(root, "name")) &&
        (rc = fy_ynode_string(doc, v, "the policy's name", name, err)) < 0)
        return rc;
    if ((v = fy_ymap_get(root, "prefetch")) &&
        (rc = read_count(doc, v, "prefetch", 0, 1u << 30, &k->prefetch, err)) < 0)
        return rc;
    int e;
    if ((v = fy_ymap_get(root, "evict"))) {
        if ((rc = fy_ynode_enum(doc, v, "evict", fy_policy_evict_names(), FY_EVICT_RULE_COUNT, &e,
                                err)) < 0)
            return rc;
        k->evict = (fy_evict_rule)e;
    }
    if ((v = fy_ymap_get(root, "load"))) {
        if ((rc = fy_ynode_enum(doc, v, "load", load_names, 2, &e, err)) < 0) return rc;
        k->load = (fy_load_mode)e;
    }
    if ((v = fy_ymap_get(root, "keep"))) {
        if ((rc = fy_ynode_expect(doc, v, FY_YSEQ, "keep (a list of globs)", err)) < 0) return rc;
        for (uint32_t i = 0; i < v->count; i++) {
            const char *glob;
            if ((rc = fy_ynode_string(doc, fy_yseq_item(v, i), "a keep glob", &glob, err)) < 0)
                return rc;
            if (!*glob)
                return fy_ydoc_error(doc, fy_yseq_item(v, i), err, FY_EPARSE,
                                     "a keep glob cannot be empty");
        }
        *keep = v;
    }
    if ((v = fy_ymap_get(root, "activations")) && (rc = read_activations(doc, v, k, err)) < 0)
        return rc;
    if ((v = fy_ymap_get(root, "staging"))) {
        if ((rc = fy_ymap_check(doc, v, staging_keys, "'staging'", err)) < 0) return rc;
        const fy_ynode *b = fy_ymap_get(v, "buffers");
        if (!b) return fy_ydoc_error(doc, v, err, FY_EPARSE, "'staging' needs 'buffers: K'");
        if ((rc = read_count(doc, b, "staging buffers", 1, 1024, &k->staging_buffers, err)) < 0)
            return rc;
    }
    if ((v = fy_ymap_get(root, "lua"))) {
        const char *lua;
        if ((rc = fy_ynode_string(doc, v, "lua (a script file)", &lua, err)) < 0) return rc;
        if (!*lua) return fy_ydoc_error(doc, v, err, FY_EPARSE, "lua needs a file name");
        k->lua = path ? fy_path_relative_to(path, lua) : strdup(lua);
        if (!k->lua) return fy_error_set(err, FY_ENOMEM, "out of memory");
    }
    if ((v = fy_ymap_get(root, "limits"))) {
        if (!k->lua)
            return fy_ydoc_error(doc, v, err, FY_EPARSE,
                                 "'limits' are the budgets of a Lua script, and this policy "
                                 "has no 'lua:'");
        if ((rc = read_limits(doc, v, &k->lua_limits, err)) < 0) return rc;
    }
    return 0;
}

static int build(const fy_ydoc *doc, const char *path, const char *fallback, fy_policy **out,
                 fy_error *err)
{
    fy_policy_knobs k;
    fy_policy_knobs_default(&k);
    const char *name = NULL;
    const fy_ynode *keep = NULL;
    int rc = read_policy(doc, path, &k, &name, &keep, err);
    const char **globs = NULL;
    if (rc == 0 && keep && keep->count) {
        globs = calloc(keep->count, sizeof *globs);
        if (!globs) rc = fy_error_set(err, FY_ENOMEM, "out of memory");
        for (uint32_t i = 0; globs && i < keep->count; i++)
            globs[i] = fy_yseq_item(keep, i)->u.text;
        k.keep = globs;
        k.keep_count = globs ? keep->count : 0;
    }
    if (rc == 0) rc = fy_policy_create(name ? name : fallback, &k, out, err);
    if (rc == 0 && path && !((*out)->path = strdup(path))) {
        fy_policy_destroy(*out);
        *out = NULL;
        rc = fy_error_set(err, FY_ENOMEM, "out of memory");
    }
    free(globs);
    free((char *)k.lua);
    return rc;
}

static bool is_lua(const char *path)
{
    size_t n = strlen(path);
    return n >= 4 && strcmp(path + n - 4, ".lua") == 0;
}

int fy_policy_load(const char *path, fy_policy **out, fy_error *err)
{
    *out = NULL;
    if (is_lua(path)) {
        /* A bare script: default knobs plus its hooks (the Lua runtime attaches them). */
        fy_policy_knobs k;
        fy_policy_knobs_default(&k);
        k.lua = path;
        int rc = fy_policy_create(path, &k, out, err);
        if (rc == 0 && !((*out)->path = strdup(path))) {
            fy_policy_destroy(*out);
            *out = NULL;
            return fy_error_set(err, FY_ENOMEM, "out of memory");
        }
        return rc;
    }
    fy_ydoc *doc;
    int rc = fy_ydoc_load_file(path, &doc, err);
    if (rc < 0) return rc;
    rc = build(doc, path, path, out, err);
    fy_ydoc_destroy(doc);
    return rc;
}

int fy_policy_load_string(const char *name, const char *text, size_t len, fy_policy **out,
                          fy_error *err)
{
    *out = NULL;
    fy_ydoc *doc;
    int rc = fy_ydoc_load_string(name, text, len, &doc, err);
    if (rc < 0) return rc;
    rc = build(doc, NULL, name ? name : "policy", out, err);
    fy_ydoc_destroy(doc);
    return rc;
}
