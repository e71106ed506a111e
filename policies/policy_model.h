/* policies/policy_model.h — the policy's layout (private to policies/). The knobs' pointers
 * (keep, lua) point into strings this struct owns. */
#ifndef FERRY_POLICY_MODEL_H
#define FERRY_POLICY_MODEL_H

#include "ferry/policy.h"

struct fy_policy {
    char *name;
    char *path; /* file it was loaded from, or NULL */
    fy_policy_knobs knobs;
    char **keep;
    size_t keep_count;
    char *lua;
    fy_policy_hooks hooks;
    bool has_hooks;
};

/* The names of fy_evict_rule, indexed by value (FY_EVICT_RULE_COUNT of them). */
const char *const *fy_policy_evict_names(void);

#endif
