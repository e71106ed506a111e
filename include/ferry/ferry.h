/* ferry/ferry.h — the whole public API of ferry: one header per part.
 *
 *     graph.yaml ─┐                        ┌─► check     (errors)
 *     policy ─────┼─► planner ─► plan ─────┼─► simulate  (peak per tier, time)
 *     machine ────┘                        └─► engine    (io_uring + CUDA streams)
 */
#ifndef FERRY_FERRY_H
#define FERRY_FERRY_H

#define FY_VERSION_MAJOR 0
#define FY_VERSION_MINOR 1
#define FY_VERSION_PATCH 0
#define FY_VERSION_STRING "0.1.0"

#include "ferry/core.h"
#include "ferry/graph.h"
#include "ferry/import.h"
#include "ferry/plan.h"
#include "ferry/policy.h"
#include "ferry/planner.h"
#include "ferry/check.h"
#include "ferry/simulate.h"
#include "ferry/engine.h"
#include "ferry/serve.h"

#endif
