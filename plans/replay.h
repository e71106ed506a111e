/* plans/replay.h — the plan's replay: the state machine that walks events in plan order and
 * keeps, for every tensor, its latest version and its copy on each tier (where, placed by
 * which event, which version, who read it), and each arena's occupancy (library-internal;
 * the checker reports from it, the simulator measures memory with it).
 *
 *     fy_replay_hooks hooks = {.ctx = me, .issue = on_issue, .change = on_change};
 *     fy_replay_stats stats;
 *     rc = fy_replay_run(plan, machine, hb, &hooks, &stats, &err);
 *
 * The replay finds every rule of docs/checking.md and hands each problem to hooks.issue
 * with its class, events and message; it never stops at one, and goes on as if the event
 * had done what it says, so one problem is one issue. Every change of memory (a copy
 * placed, dropped, written in place) goes to hooks.change. With hb NULL the ordering rules
 * (unordered-use, evict-in-use, overlap with freed bytes) are skipped.
 */
#ifndef FERRY_PLANS_REPLAY_H
#define FERRY_PLANS_REPLAY_H

#include "ferry/check.h"
#include "ferry/plan.h"

#include "plans/hb.h"

typedef struct fy_replay_issue {
    fy_check_class cls;
    bool warning;
    size_t event;        /* index of the event at fault */
    long related;        /* index of the other event involved, or -1 */
    unsigned line;       /* the event's line (or the `arenas:`/`events:` line) */
    const char *message; /* valid during the call only */
} fy_replay_issue;

typedef enum fy_change_kind {
    FY_CHANGE_PLACE = 0, /* a copy appears on a tier (load, offload, compute creating it) */
    FY_CHANGE_DROP,      /* a copy goes (evict) */
    FY_CHANGE_WRITE,     /* a compute writes a copy in place (a new version) */
} fy_change_kind;

typedef struct fy_replay_change {
    fy_change_kind kind;
    size_t event;
    int32_t tensor;
    fy_tier tier;
    uint64_t offset, size;
    bool in_arena; /* false for home copies (a source file, the caller's memory) and for a
                      created tensor that was given no offset */
    uint32_t version;
} fy_replay_change;

typedef struct fy_replay_hooks {
    void *ctx;
    void (*issue)(void *ctx, const fy_replay_issue *issue);    /* may be NULL */
    void (*change)(void *ctx, const fy_replay_change *change); /* may be NULL */
} fy_replay_hooks;

typedef struct fy_replay_stats {
    uint64_t peak_live[FY_TIER_COUNT];  /* the most bytes of arena copies live at once */
    uint64_t arena_used[FY_TIER_COUNT]; /* the highest arena byte any copy reaches */
    size_t issues;
} fy_replay_stats;

/* Replays plan against machine (NULL: the plan's own). hooks and stats may be NULL.
 * Returns 0, or a negative status (out of memory, a plan too large to index). */
int fy_replay_run(const fy_plan *plan, const fy_machine *machine, fy_hb *hb,
                  const fy_replay_hooks *hooks, fy_replay_stats *stats, fy_error *err);

#endif
