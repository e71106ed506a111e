/* ferry/check.h — the checker: replays a plan against its graph and machine and reports
 * every violation, compiler style, with the plan's line.
 *
 * Example:
 *     fy_check_report *report;
 *     if (fy_check_plan(plan, NULL, &report, &err) < 0) { report_error(&err); return; }
 *     for (size_t i = 0; i < fy_check_report_count(report); i++) {
 *         const fy_violation *v = fy_check_report_get(report, i);
 *         printf("%s:%u: %s[%s]: %s\n", fy_plan_path(plan), v->line,
 *                v->warning ? "warning" : "error", fy_check_class_name(v->cls), v->message);
 *     }
 *     bool clean = fy_check_report_errors(report) == 0;
 *     fy_check_report_destroy(report);
 *
 * The classes and their exact rules are in docs/checking.md. Each problem is reported once:
 * after reporting, the replay goes on as if the event had done what it says, so later
 * reports are independent of earlier ones. Checking is near-linear in the plan's size.
 */
#ifndef FERRY_CHECK_H
#define FERRY_CHECK_H

#include "ferry/plan.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Violation classes; the names (fy_check_class_name) are stable and documented. */
typedef enum fy_check_class {
    FY_CHECK_NEVER_LOADED = 0,  /* "never-loaded" */
    FY_CHECK_REUSE_AFTER_EVICT, /* "reuse-after-evict" */
    FY_CHECK_UNORDERED_USE,     /* "unordered-use" */
    FY_CHECK_EVICT_IN_USE,      /* "evict-in-use" */
    FY_CHECK_OVERLAP,           /* "overlap" */
    FY_CHECK_OVER_CAPACITY,     /* "over-capacity" */
    FY_CHECK_DATA_LOSS,         /* "data-loss" */
    FY_CHECK_STALE_COPY,        /* "stale-copy" */
    FY_CHECK_INCOMPLETE,        /* "incomplete" */
    FY_CHECK_BAD_REFERENCE,     /* "bad-reference" */
    FY_CHECK_REDUNDANT_LOAD,    /* "redundant-load" (a warning) */
    FY_CHECK_UNUSED_LOAD,       /* "unused-load" (a warning) */
} fy_check_class;
#define FY_CHECK_CLASS_COUNT 12

const char *fy_check_class_name(fy_check_class cls); /* "unknown" when out of range */
/* Parses a class name; returns 0 or FY_EPARSE. */
int fy_check_class_parse(const char *name, fy_check_class *out);

typedef struct fy_violation {
    fy_check_class cls;
    bool warning;        /* redundant-load and unused-load are warnings */
    size_t event;        /* index of the event at fault; for a problem of the whole plan
                            (an arena too large, an op never computed) the last event's */
    long related_event;  /* index of the other event involved (the evict, the load, the
                            first compute), or -1 */
    unsigned line;       /* line in the plan file; 0 when the plan was built in memory */
    const char *message; /* names events by id and tensors and ops by name; owned by the
                            report */
} fy_violation;

typedef struct fy_check_report fy_check_report;

/* Checks plan against machine (NULL: the plan's own). Returns the number of errors (0: the
 * plan is correct; warnings do not count) with *out holding every violation in plan order,
 * or a negative status (out of memory) with *out NULL. */
int fy_check_plan(const fy_plan *plan, const fy_machine *machine, fy_check_report **out,
                  fy_error *err);
size_t fy_check_report_count(const fy_check_report *report);
const fy_violation *fy_check_report_get(const fy_check_report *report, size_t index);
size_t fy_check_report_errors(const fy_check_report *report);
size_t fy_check_report_warnings(const fy_check_report *report);
size_t fy_check_report_count_class(const fy_check_report *report, fy_check_class cls);
void fy_check_report_destroy(fy_check_report *report);

#ifdef __cplusplus
}
#endif
#endif
