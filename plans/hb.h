/* plans/hb.h — the happens-before index of a plan (library-internal; the checker and the
 * simulator use it).
 *
 *     fy_hb *hb;
 *     if (fy_hb_build(plan, &hb, &err) < 0) return;
 *     if (!fy_hb_before(hb, load, compute)) ... the compute may start before the load ends
 *     fy_hb_destroy(hb);
 *
 * A happens-before B iff a path of `after` edges and stream-order edges leads from A to B.
 * Four queues are streams (h2d, d2h, gpu compute, host compute): each of their events starts
 * after the previous one of the same stream completes. io (nvme<->host) and evicts are on no
 * stream. Every event keeps a vector clock (per lane, the latest position that happens
 * before or is it) and a reach vector (per lane, the earliest position it happens before or
 * is) over eight lanes: the four streams and four chains of off-stream events that the index
 * forms as it goes. A query that involves an event with a lane is O(1) (so is one whose path
 * crosses any lane); only a query between two lane-less events walks, over lane-less
 * ancestors between the two in plan order.
 */
#ifndef FERRY_PLANS_HB_H
#define FERRY_PLANS_HB_H

#include "ferry/plan.h"

typedef enum fy_queue {
    FY_QUEUE_H2D = 0, /* load host->gpu */
    FY_QUEUE_D2H,     /* offload gpu->host */
    FY_QUEUE_GPU,     /* computes of ops on the gpu */
    FY_QUEUE_HOST,    /* computes of ops on the host */
    FY_QUEUE_IO,      /* nvme->host and host->nvme: many in flight, any completion order */
    FY_QUEUE_NONE,    /* evicts (no time), and events that name no valid queue */
} fy_queue;
#define FY_STREAM_COUNT 4 /* the first four queues are streams */

/* The queue an event runs on, from its kind, tiers and op (unknown op: FY_QUEUE_NONE; a
 * transfer over a link that does not exist: FY_QUEUE_NONE). */
fy_queue fy_event_queue(const fy_plan *plan, const fy_event *ev);

typedef struct fy_hb fy_hb;

int fy_hb_build(const fy_plan *plan, fy_hb **out, fy_error *err);
void fy_hb_destroy(fy_hb *hb);
/* True when event a happens before event b, or a == b. Indices are plan positions. */
bool fy_hb_before(fy_hb *hb, size_t a, size_t b);
/* The event's 1-based position on its stream (0 for a non-stream event). */
uint32_t fy_hb_stream_pos(const fy_hb *hb, size_t event);

#endif
