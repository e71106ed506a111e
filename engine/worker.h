/* engine/worker.h — host worker threads that run jobs in FIFO order, and the completion
 * list they report into (engine-private). The sim device runs its three streams on workers;
 * the engine runs host ops and checksums on its own. A worker behaves like a stream: jobs
 * start in submission order, one at a time, and each finished job is appended to its done
 * list, after which the list's eventfd is written, so a waiter never misses a completion.
 *
 * Example:
 *     fy_done_list dl;
 *     fy_worker *w;
 *     fy_done_list_init(&dl, efd);
 *     fy_worker_create(&dl, "h2d", &w, &err);
 *     job->run = my_fn; fy_worker_submit(w, job);   // job stays valid until taken back
 *     ...wait for efd...
 *     for (fy_job *j = fy_done_list_take(&dl); j; j = j->next) ...
 *     fy_worker_destroy(w);                          // waits for the job running now
 */
#ifndef FERRY_ENGINE_WORKER_H
#define FERRY_ENGINE_WORKER_H

#include "ferry/core.h"

#include <pthread.h>

typedef struct fy_job fy_job;

/* One unit of work. The submitter owns it; it stays untouched by the submitter until it
 * comes back through fy_done_list_take. */
struct fy_job {
    fy_job *next; /* list link, owned by whoever holds the job now */
    /* Runs on the worker thread: returns 0 or a negative FY_E* status with err set. */
    int (*run)(fy_job *job, fy_error *err);
    uint64_t tag;
    /* Filled by the worker. */
    int status;        /* run()'s result; FY_ESTATE with message "cancelled" when skipped */
    char *message;     /* malloc'ed message on failure (may be NULL when out of memory) */
    uint64_t start_ns; /* CLOCK_MONOTONIC around run() */
    uint64_t end_ns;
};

/* Where workers report finished jobs. notify_fd gets an 8-byte add of 1 after each append
 * (an eventfd); -1 for none. */
typedef struct fy_done_list {
    pthread_mutex_t lock;
    fy_job *head, *tail;
    int notify_fd;
} fy_done_list;

int fy_done_list_init(fy_done_list *dl, int notify_fd, fy_error *err);
void fy_done_list_fini(fy_done_list *dl);
/* Takes every finished job (oldest first), or NULL. */
fy_job *fy_done_list_take(fy_done_list *dl);
/* Appends a finished job and notifies (used by workers and by device backends). */
void fy_done_list_push(fy_done_list *dl, fy_job *job);

typedef struct fy_worker fy_worker;

int fy_worker_create(fy_done_list *dl, const char *name, fy_worker **out, fy_error *err);
/* Queues a job; never fails (the job carries its own link). */
void fy_worker_submit(fy_worker *w, fy_job *job);
/* Jobs not yet started finish at once as cancelled, in order; the running one completes.
 * Later submissions run normally. */
void fy_worker_cancel(fy_worker *w);
/* Waits until every job submitted so far has reached the done list. */
void fy_worker_drain(fy_worker *w);
/* Cancels what has not started, waits for the running job, joins the thread. Every job
 * submitted has reached the done list when it returns. NULL is accepted. */
void fy_worker_destroy(fy_worker *w);

#endif
