/* Host worker threads: a FIFO of jobs per thread, finished jobs appended to a done list
 * that is then signalled through an eventfd. The invariant: a job is appended to the done
 * list exactly once, after its last access by the worker, and the eventfd is written after
 * the append, so the engine's loop never misses nor double-reaps a completion. */
#include "engine/worker.h"
#include "core/clock.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fy_worker {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_cond_t idle_cond;
    fy_job *head, *tail;
    bool busy; /* a job is between being taken and reaching the done list */
    bool stop;
    fy_done_list *done;
    char name[16];
};

int fy_done_list_init(fy_done_list *dl, int notify_fd, fy_error *err)
{
    memset(dl, 0, sizeof *dl);
    int rc = pthread_mutex_init(&dl->lock, NULL);
    if (rc)
        return fy_error_set(err, fy_status_from_errno(rc), "cannot create a mutex: %s",
                            strerror(rc));
    dl->notify_fd = notify_fd;
    return 0;
}

void fy_done_list_fini(fy_done_list *dl)
{
    pthread_mutex_destroy(&dl->lock);
}

fy_job *fy_done_list_take(fy_done_list *dl)
{
    pthread_mutex_lock(&dl->lock);
    fy_job *j = dl->head;
    dl->head = dl->tail = NULL;
    pthread_mutex_unlock(&dl->lock);
    return j;
}

void fy_done_list_push(fy_done_list *dl, fy_job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&dl->lock);
    if (dl->tail)
        dl->tail->next = job;
    else
        dl->head = job;
    dl->tail = job;
    pthread_mutex_unlock(&dl->lock);
    if (dl->notify_fd >= 0) {
        uint64_t one = 1;
        /* An eventfd write fails only when the counter would overflow, which a reader
         * draining it prevents; EINTR cannot happen on an eventfd that never blocks here. */
        ssize_t n = write(dl->notify_fd, &one, sizeof one);
        (void)n;
    }
}

static void job_finish(fy_worker *w, fy_job *j, int status, const fy_error *e)
{
    j->status = status;
    j->message = NULL;
    if (status < 0) {
        char text[FY_ERROR_MESSAGE_MAX + FY_ERROR_PATH_MAX + 64];
        if (e && e->message[0])
            fy_error_format(e, text, sizeof text);
        else
            snprintf(text, sizeof text, "%s", fy_status_message(status));
        j->message = strdup(text);
    }
    fy_done_list_push(w->done, j);
}

static void *worker_main(void *arg)
{
    fy_worker *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        w->busy = false;
        if (!w->head) pthread_cond_broadcast(&w->idle_cond);
        while (!w->head && !w->stop)
            pthread_cond_wait(&w->wake, &w->lock);
        if (!w->head) break;
        fy_job *j = w->head;
        w->head = j->next;
        if (!w->head) w->tail = NULL;
        w->busy = true;
        pthread_mutex_unlock(&w->lock);
        /* The error lives in the heap: it is 5 KiB, and kernels may use deep stacks. */
        fy_error *e = calloc(1, sizeof *e);
        j->start_ns = fy_now_ns();
        int rc = e ? j->run(j, e) : FY_ENOMEM;
        j->end_ns = fy_now_ns();
        job_finish(w, j, rc > 0 ? 0 : rc, e);
        free(e);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int fy_worker_create(fy_done_list *dl, const char *name, fy_worker **out, fy_error *err)
{
    fy_worker *w = calloc(1, sizeof *w);
    if (!w) return fy_error_set(err, FY_ENOMEM, "out of memory creating worker %s", name);
    w->done = dl;
    snprintf(w->name, sizeof w->name, "%s", name);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    pthread_cond_init(&w->idle_cond, NULL);
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc) {
        pthread_cond_destroy(&w->idle_cond);
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return fy_error_set(err, fy_status_from_errno(rc), "cannot start worker thread %s: %s",
                            name, strerror(rc));
    }
    char tname[16];
    snprintf(tname, sizeof tname, "fy-%s", name);
    pthread_setname_np(w->thread, tname);
    *out = w;
    return 0;
}

void fy_worker_submit(fy_worker *w, fy_job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&w->lock);
    if (w->tail)
        w->tail->next = job;
    else
        w->head = job;
    w->tail = job;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

void fy_worker_drain(fy_worker *w)
{
    pthread_mutex_lock(&w->lock);
    while (w->head || w->busy)
        pthread_cond_wait(&w->idle_cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
}

void fy_worker_cancel(fy_worker *w)
{
    pthread_mutex_lock(&w->lock);
    fy_job *j = w->head;
    w->head = w->tail = NULL;
    pthread_mutex_unlock(&w->lock);
    while (j) {
        fy_job *next = j->next;
        fy_error e = {0};
        fy_error_set(&e, FY_ESTATE, "cancelled");
        j->start_ns = j->end_ns = 0;
        job_finish(w, j, FY_ESTATE, &e);
        j = next;
    }
}

void fy_worker_destroy(fy_worker *w)
{
    if (!w) return;
    fy_worker_cancel(w);
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->idle_cond);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
