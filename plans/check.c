/* The checker: builds the happens-before index, runs the replay, and keeps what it reports
 * as a list of violations whose messages live in one growing text pool. The rules
 * themselves are in the replay (plans/replay.c); this file only collects. */
#include "ferry/check.h"

#include "plans/hb.h"
#include "plans/replay.h"

#include <stdlib.h>
#include <string.h>

static const char *const class_names[FY_CHECK_CLASS_COUNT] = {
    "never-loaded", "reuse-after-evict", "unordered-use",  "evict-in-use",
    "overlap",      "over-capacity",     "data-loss",      "stale-copy",
    "incomplete",   "bad-reference",     "redundant-load", "unused-load",
};

const char *fy_check_class_name(fy_check_class cls)
{
    return (unsigned)cls < FY_CHECK_CLASS_COUNT ? class_names[cls] : "unknown";
}

int fy_check_class_parse(const char *name, fy_check_class *out)
{
    for (int i = 0; i < FY_CHECK_CLASS_COUNT; i++)
        if (strcmp(name, class_names[i]) == 0) {
            *out = (fy_check_class)i;
            return 0;
        }
    return FY_EPARSE;
}

struct fy_check_report {
    fy_violation *items;
    size_t count, cap;
    size_t *text_at; /* offset of each message in text, fixed up into pointers at the end */
    char *text;
    size_t text_len, text_cap;
    size_t errors, warnings;
    size_t by_class[FY_CHECK_CLASS_COUNT];
    bool failed;
};

static void collect(void *ctx, const fy_replay_issue *issue)
{
    fy_check_report *rep = ctx;
    if (rep->failed) return;
    size_t len = strlen(issue->message) + 1;
    if (rep->count == rep->cap) {
        size_t cap = rep->cap ? rep->cap * 2 : 16;
        fy_violation *items = realloc(rep->items, cap * sizeof *items);
        size_t *at = items ? realloc(rep->text_at, cap * sizeof *at) : NULL;
        if (items) rep->items = items;
        if (!items || !at) {
            rep->failed = true;
            return;
        }
        rep->text_at = at;
        rep->cap = cap;
    }
    if (rep->text_len + len > rep->text_cap) {
        size_t cap = rep->text_cap ? rep->text_cap * 2 : 4096;
        while (cap < rep->text_len + len)
            cap *= 2;
        char *text = realloc(rep->text, cap);
        if (!text) {
            rep->failed = true;
            return;
        }
        rep->text = text;
        rep->text_cap = cap;
    }
    memcpy(rep->text + rep->text_len, issue->message, len);
    rep->text_at[rep->count] = rep->text_len;
    rep->text_len += len;
    rep->items[rep->count++] = (fy_violation){.cls = issue->cls,
                                              .warning = issue->warning,
                                              .event = issue->event,
                                              .related_event = issue->related,
                                              .line = issue->line};
    if (issue->warning)
        rep->warnings++;
    else
        rep->errors++;
    rep->by_class[issue->cls]++;
}

int fy_check_plan(const fy_plan *plan, const fy_machine *machine, fy_check_report **out,
                  fy_error *err)
{
    *out = NULL;
    fy_check_report *rep = calloc(1, sizeof *rep);
    if (!rep) return fy_error_set(err, FY_ENOMEM, "out of memory");
    fy_hb *hb;
    int rc = fy_hb_build(plan, &hb, err);
    if (rc == 0) {
        fy_replay_hooks hooks = {.ctx = rep, .issue = collect};
        rc = fy_replay_run(plan, machine, hb, &hooks, NULL, err);
        fy_hb_destroy(hb);
    }
    if (rc == 0 && rep->failed)
        rc = fy_error_set(err, FY_ENOMEM, "out of memory collecting the check's report");
    if (rc < 0) {
        fy_check_report_destroy(rep);
        return rc;
    }
    /* The text pool has stopped moving: messages can point into it now. */
    for (size_t i = 0; i < rep->count; i++)
        rep->items[i].message = rep->text + rep->text_at[i];
    *out = rep;
    return rep->errors > (size_t)INT32_MAX ? INT32_MAX : (int)rep->errors;
}

size_t fy_check_report_count(const fy_check_report *report)
{
    return report ? report->count : 0;
}

const fy_violation *fy_check_report_get(const fy_check_report *report, size_t index)
{
    return report && index < report->count ? &report->items[index] : NULL;
}

size_t fy_check_report_errors(const fy_check_report *report)
{
    return report ? report->errors : 0;
}

size_t fy_check_report_warnings(const fy_check_report *report)
{
    return report ? report->warnings : 0;
}

size_t fy_check_report_count_class(const fy_check_report *report, fy_check_class cls)
{
    return report && (unsigned)cls < FY_CHECK_CLASS_COUNT ? report->by_class[cls] : 0;
}

void fy_check_report_destroy(fy_check_report *report)
{
    if (!report) return;
    free(report->items);
    free(report->text_at);
    free(report->text);
    free(report);
}
