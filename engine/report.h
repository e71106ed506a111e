/* engine/report.h — turns a finished loop's timeline into the run report (engine-private):
 * per-queue busy time and bytes, compute stalls with their cause, measured peaks. */
#ifndef FERRY_ENGINE_REPORT_H
#define FERRY_ENGINE_REPORT_H

#include "engine/exec.h"
#include "engine/loop.h"

/* Fills everything but device, io and arena (the engine knows those). */
int fy_report_fill(fy_engine_report *report, const fy_exec *x, const fy_loop *l, fy_error *err);

#endif
