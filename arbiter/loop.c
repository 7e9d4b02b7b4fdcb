/* loop.c - ppoll over a few descriptors, with a timer heap. Loop thread only. */
#include "arbiter/loop.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_WATCHES 16

struct watch {
    int fd;       /* the fd to poll */
    qa_io_fn *fn; /* NULL: removed, dropped at the next turn */
    void *arg;
};

struct qa_loop {
    struct watch watches[MAX_WATCHES]; /* what is watched; a handful of sockets */
    size_t nwatches;
    qa_timer_t **heap; /* owned array of borrowed timers, a binary min-heap by deadline */
    size_t nheap;      /* timers in the heap */
    size_t capheap;    /* slots allocated */
    bool stop;         /* qa_loop_stop was called */
};

uint64_t qa_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

qa_loop_t *qa_loop_new(void)
{
    return calloc(1, sizeof(qa_loop_t));
}

void qa_loop_destroy(qa_loop_t **self_p)
{
    qa_loop_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->nheap; i++)
        self->heap[i]->slot = 0;
    free(self->heap);
    free(self);
    *self_p = NULL;
}

/* Drops the watches removed since the last turn. Not from a callback: the turn's
 * indexes into watches must hold while it dispatches. */
static void compact(qa_loop_t *self)
{
    size_t k = 0;
    for (size_t i = 0; i < self->nwatches; i++) {
        if (self->watches[i].fn)
            self->watches[k++] = self->watches[i];
    }
    self->nwatches = k;
}

int qa_loop_add_fd(qa_loop_t *self, int fd, qa_io_fn *fn, void *arg)
{
    compact(self);
    if (self->nwatches == MAX_WATCHES)
        return -ENOMEM;
    self->watches[self->nwatches++] = (struct watch){fd, fn, arg};
    return 0;
}

void qa_loop_remove_fd(qa_loop_t *self, int fd)
{
    for (size_t i = 0; i < self->nwatches; i++) {
        if (self->watches[i].fd == fd)
            self->watches[i].fn = NULL;
    }
}

/* ---- timer heap -------------------------------------------------------------------- */

static void heap_set(qa_loop_t *self, size_t i, qa_timer_t *t)
{
    self->heap[i] = t;
    t->slot = i + 1;
}

static void sift_up(qa_loop_t *self, size_t i)
{
    qa_timer_t *t = self->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (self->heap[parent]->deadline <= t->deadline)
            break;
        heap_set(self, i, self->heap[parent]);
        i = parent;
    }
    heap_set(self, i, t);
}

static void sift_down(qa_loop_t *self, size_t i)
{
    qa_timer_t *t = self->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= self->nheap)
            break;
        if (child + 1 < self->nheap &&
            self->heap[child + 1]->deadline < self->heap[child]->deadline)
            child++;
        if (self->heap[child]->deadline >= t->deadline)
            break;
        heap_set(self, i, self->heap[child]);
        i = child;
    }
    heap_set(self, i, t);
}

void qa_timer_stop(qa_loop_t *self, qa_timer_t *t)
{
    if (!t->slot)
        return;
    size_t i = t->slot - 1;
    t->slot = 0;
    qa_timer_t *last = self->heap[--self->nheap];
    if (last == t)
        return;
    heap_set(self, i, last);
    if (i > 0 && self->heap[(i - 1) / 2]->deadline > last->deadline)
        sift_up(self, i);
    else
        sift_down(self, i);
}

int qa_timer_start(qa_loop_t *self, qa_timer_t *t, uint64_t deadline, qa_timer_fn *fn, void *arg)
{
    qa_timer_stop(self, t);
    if (self->nheap == self->capheap) {
        size_t cap = self->capheap ? self->capheap * 2 : 64;
        qa_timer_t **heap = realloc(self->heap, cap * sizeof *heap);
        if (!heap)
            return -ENOMEM;
        self->heap = heap;
        self->capheap = cap;
    }
    t->deadline = deadline;
    t->fn = fn;
    t->arg = arg;
    heap_set(self, self->nheap++, t);
    sift_up(self, self->nheap - 1);
    return 0;
}

/* Runs every timer whose deadline has passed. */
static void run_timers(qa_loop_t *self)
{
    uint64_t now = qa_now_ns();
    while (self->nheap && self->heap[0]->deadline <= now && !self->stop) {
        qa_timer_t *t = self->heap[0];
        qa_timer_stop(self, t);
        t->fn(t->arg);
    }
}

/* ---- the loop ---------------------------------------------------------------------- */

int qa_loop_run(qa_loop_t *self)
{
    self->stop = false;
    struct pollfd pfds[MAX_WATCHES];
    while (!self->stop) {
        run_timers(self);
        if (self->stop)
            break;
        struct timespec ts = {0, 0}, *timeout = &ts;
        if (self->nheap) {
            uint64_t now = qa_now_ns(), at = self->heap[0]->deadline;
            uint64_t wait = at > now ? at - now : 0;
            ts.tv_sec = (time_t)(wait / 1000000000u);
            ts.tv_nsec = (long)(wait % 1000000000u);
        } else {
            timeout = NULL;
        }
        compact(self);
        for (size_t i = 0; i < self->nwatches; i++)
            pfds[i] = (struct pollfd){self->watches[i].fd, POLLIN, 0};
        int n = ppoll(pfds, self->nwatches, timeout, NULL);
        if (n < 0 && errno != EINTR)
            return -errno;
        /* A callback handles a bounded batch and returns: an fd still readable wakes the
         * next turn at once, after the timers due meanwhile. */
        for (size_t i = 0; n > 0 && i < self->nwatches && !self->stop; i++) {
            if (self->watches[i].fn && (pfds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                self->watches[i].fn(self->watches[i].arg);
        }
    }
    return 0;
}

void qa_loop_stop(qa_loop_t *self)
{
    self->stop = true;
}
