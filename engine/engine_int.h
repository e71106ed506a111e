/* engine/engine_int.h — what the serving workspace (engine/workspace.c) needs of the engine
 * beyond ferry/engine.h (engine-private): arenas kept between runs, and runs of a plan that
 * was checked and lowered once, ahead of its many requests. */
#ifndef FERRY_ENGINE_INT_H
#define FERRY_ENGINE_INT_H

#include "engine/exec.h"
#include "ferry/engine.h"

/* Keeps a gpu and a host arena of these sizes allocated between runs; a run whose plan's
 * arenas fit uses them instead of allocating its own. 0 and 0 give them back (closing the
 * engine does too). FY_EBUSY during a run, FY_EUNSUPPORTED for a device that cannot. */
int fy_engine_reserve(fy_engine *e, uint64_t gpu_bytes, uint64_t host_bytes, fy_error *err);

/* fy_check_plan then fy_exec_build: a plan refused by the checker is FY_ECHECK with its
 * first message, as fy_engine_run says. */
int fy_engine_check_lower(const fy_plan *plan, fy_exec **out, fy_error *err);

/* fy_engine_run for a plan already checked and lowered (fy_engine_check_lower); x is
 * borrowed for the run and may be run again. */
int fy_engine_run_exec(fy_engine *e, const fy_exec *x, const fy_engine_run_args *args,
                       fy_engine_report *report, fy_error *err);

#endif
