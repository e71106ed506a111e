/* The policy object: knobs, owned strings, optional hooks, and the lookup of a policy by
 * name. A policy owns every string its knobs point to, so a caller's buffers may go away
 * after fy_policy_create; hooks' contexts are owned too and destroyed exactly once. */
#include "policies/policy_model.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const evict_names[] = {"belady", "lru", "fifo", "after-last-use"};

const char *fy_evict_rule_name(fy_evict_rule rule)
{
    return (unsigned)rule < FY_EVICT_RULE_COUNT ? evict_names[rule] : "unknown";
}

const char *const *fy_policy_evict_names(void)
{
    return evict_names;
}

void fy_policy_knobs_default(fy_policy_knobs *k)
{
    memset(k, 0, sizeof *k);
    k->prefetch = 1;
    k->evict = FY_EVICT_BELADY;
    k->load = FY_LOAD_LAZY;
    k->activations_offload = FY_TIER_NONE;
    k->activations_idle = 0;
    k->staging_buffers = 0;
}

static char *dup_or_null(const char *s, bool *failed)
{
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *failed = true;
    return d;
}

int fy_policy_create(const char *name, const fy_policy_knobs *knobs, fy_policy **out, fy_error *err)
{
    *out = NULL;
    if (knobs->evict >= FY_EVICT_RULE_COUNT || knobs->load > FY_LOAD_EAGER)
        return fy_error_set(err, FY_EINVAL, "policy knobs: unknown evict rule or load mode");
    if (knobs->activations_offload != FY_TIER_NONE && knobs->activations_offload != FY_TIER_HOST &&
        knobs->activations_offload != FY_TIER_NVME)
        return fy_error_set(err, FY_EINVAL, "policy knobs: activations offload to host or nvme");
    fy_policy *p = calloc(1, sizeof *p);
    if (!p) return fy_error_set(err, FY_ENOMEM, "out of memory");
    bool failed = false;
    p->name = dup_or_null(name ? name : "custom", &failed);
    p->knobs = *knobs;
    p->lua = dup_or_null(knobs->lua, &failed);
    p->knobs.lua = p->lua;
    if (knobs->keep_count) {
        p->keep = calloc(knobs->keep_count, sizeof *p->keep);
        failed |= !p->keep;
        for (size_t i = 0; p->keep && i < knobs->keep_count; i++)
            p->keep[i] = dup_or_null(knobs->keep[i], &failed);
    }
    p->knobs.keep = (const char *const *)p->keep;
    p->keep_count = p->keep ? knobs->keep_count : 0;
    p->knobs.keep_count = p->keep_count;
    if (failed) {
        fy_policy_destroy(p);
        return fy_error_set(err, FY_ENOMEM, "out of memory");
    }
    *out = p;
    return 0;
}

static void release_hooks(fy_policy *p)
{
    if (p->has_hooks && p->hooks.destroy) p->hooks.destroy(p->hooks.ctx);
    p->has_hooks = false;
    memset(&p->hooks, 0, sizeof p->hooks);
}

void fy_policy_destroy(fy_policy *p)
{
    if (!p) return;
    release_hooks(p);
    for (size_t i = 0; p->keep && i < p->keep_count; i++)
        free(p->keep[i]);
    free(p->keep);
    free(p->lua);
    free(p->name);
    free(p->path);
    free(p);
}

const char *fy_policy_name(const fy_policy *p)
{
    return p->name;
}

const char *fy_policy_path(const fy_policy *p)
{
    return p->path;
}

const fy_policy_knobs *fy_policy_get_knobs(const fy_policy *p)
{
    return &p->knobs;
}

bool fy_policy_keeps(const fy_policy *p, const char *name)
{
    for (size_t i = 0; i < p->keep_count; i++)
        if (fnmatch(p->keep[i], name, 0) == 0) return true;
    return false;
}

void fy_policy_set_hooks(fy_policy *p, const fy_policy_hooks *hooks)
{
    release_hooks(p);
    if (!hooks) return;
    p->hooks = *hooks;
    p->has_hooks = true;
}

const fy_policy_hooks *fy_policy_get_hooks(const fy_policy *p)
{
    return p->has_hooks ? &p->hooks : NULL;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int fy_policy_find(const char *text, const char *const *dirs, size_t dir_count, char **path,
                   fy_error *err)
{
    *path = NULL;
    if (!text || !*text) return fy_error_set(err, FY_EINVAL, "empty policy name");
    if (strchr(text, '/') || ends_with(text, ".yaml") || ends_with(text, ".lua")) {
        *path = strdup(text);
        return *path ? 0 : fy_error_set(err, FY_ENOMEM, "out of memory");
    }
    static const char *const exts[] = {".yaml", ".lua"};
    char searched[768] = "";
    size_t used = 0;
    for (size_t d = 0; d < dir_count; d++) {
        if (!dirs[d] || !*dirs[d]) continue;
        for (size_t e = 0; e < 2; e++) {
            size_t n = strlen(dirs[d]) + strlen(text) + 8;
            char *p = malloc(n);
            if (!p) return fy_error_set(err, FY_ENOMEM, "out of memory");
            snprintf(p, n, "%s/%s%s", dirs[d], text, exts[e]);
            if (access(p, R_OK) == 0) {
                *path = p;
                return 0;
            }
            free(p);
        }
        if (used < sizeof searched)
            used += (size_t)snprintf(searched + used, sizeof searched - used, "%s%s",
                                     used ? ", " : "", dirs[d]);
    }
    return fy_error_set(err, FY_ENOENT,
                        "no policy named '%s' (looked for %s.yaml and %s.lua in: %s)", text, text,
                        text, used ? searched : "no folders");
}
