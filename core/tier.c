/* Tier names. The three tiers are fixed by the design: gpu, host, nvme, in that order,
 * so arrays indexed by fy_tier stay valid across the library. */
#include "ferry/core.h"

#include <string.h>

static const char *const tier_names[FY_TIER_COUNT] = {"gpu", "host", "nvme"};

const char *fy_tier_name(fy_tier tier)
{
    if (tier >= 0 && tier < FY_TIER_COUNT) return tier_names[tier];
    return "none";
}

int fy_tier_parse(const char *text, fy_tier *out)
{
    for (int t = 0; t < FY_TIER_COUNT; t++) {
        if (strcmp(text, tier_names[t]) == 0) {
            *out = (fy_tier)t;
            return 0;
        }
    }
    return FY_EPARSE;
}
