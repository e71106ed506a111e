/* engine/weight_cache.h — the weight cache's private side (ferry/serve.h has the rest): a
 * workspace takes a reference on the cache it is created with, dropped by
 * fy_weight_cache_destroy when the workspace goes. */
#ifndef FERRY_ENGINE_WEIGHT_CACHE_H
#define FERRY_ENGINE_WEIGHT_CACHE_H

#include "ferry/serve.h"

void fy_weight_cache_retain(fy_weight_cache *cache);

#endif
