/* loop.c - ppoll over ZeroMQ and plain descriptors, with a timer heap. Loop thread only. */
#include "arbiter/loop.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define MAX_WATCHES 16
#define BURST 64 /* callback calls for one socket in one turn of the loop */

struct watch {
    void *zsock; /* the ZeroMQ socket, or NULL for a plain fd */
    int fd;      /* the fd to poll: the socket's ZMQ_FD, or the plain fd */
    qa_io_fn *fn;
    void *arg;
    bool check; /* zsock: ZMQ_EVENTS must be looked at before the loop sleeps */
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

static int add_watch(qa_loop_t *self, void *zsock, int fd, qa_io_fn *fn, void *arg)
{
    if (self->nwatches == MAX_WATCHES)
        return -ENOMEM;
    self->watches[self->nwatches++] = (struct watch){zsock, fd, fn, arg, zsock != NULL};
    return 0;
}

int qa_loop_add_zsock(qa_loop_t *self, void *zsock, qa_io_fn *fn, void *arg)
{
    int fd;
    size_t len = sizeof fd;
    if (zmq_getsockopt(zsock, ZMQ_FD, &fd, &len) < 0)
        return -errno;
    return add_watch(self, zsock, fd, fn, arg);
}

int qa_loop_add_fd(qa_loop_t *self, int fd, qa_io_fn *fn, void *arg)
{
    return add_watch(self, NULL, fd, fn, arg);
}

void qa_loop_touch(qa_loop_t *self, void *zsock)
{
    for (size_t i = 0; i < self->nwatches; i++) {
        if (self->watches[i].zsock == zsock)
            self->watches[i].check = true;
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

static bool zsock_readable(void *zsock)
{
    int events = 0;
    size_t len = sizeof events;
    return zmq_getsockopt(zsock, ZMQ_EVENTS, &events, &len) == 0 && (events & ZMQ_POLLIN);
}

int qa_loop_run(qa_loop_t *self)
{
    self->stop = false;
    struct pollfd pfds[MAX_WATCHES];
    while (!self->stop) {
        run_timers(self);
        /* ZMQ_FD only says that ZMQ_EVENTS must be looked at again: a socket whose fd
         * woke us, whose callback ran or that was touched is asked, and its callback
         * called while it has input, up to BURST times a turn so that one busy socket
         * cannot starve the others; asking is a system call, so it is done only then. */
        bool busy = false;
        for (size_t i = 0; i < self->nwatches && !self->stop; i++) {
            struct watch *w = &self->watches[i];
            if (!w->zsock || !w->check)
                continue;
            int calls = 0;
            w->check = false;
            while (zsock_readable(w->zsock) && !self->stop) {
                if (calls++ == BURST) {
                    w->check = busy = true;
                    break;
                }
                w->fn(w->arg);
                w->check = false; /* what the callback did is covered by the next ask */
            }
        }
        /* A callback may have touched a socket the pass had already looked at. */
        for (size_t i = 0; i < self->nwatches; i++)
            busy |= self->watches[i].check;
        if (self->stop)
            break;
        struct timespec ts = {0, 0}, *timeout = &ts;
        if (!busy) {
            if (self->nheap) {
                uint64_t now = qa_now_ns(), at = self->heap[0]->deadline;
                uint64_t wait = at > now ? at - now : 0;
                ts.tv_sec = (time_t)(wait / 1000000000u);
                ts.tv_nsec = (long)(wait % 1000000000u);
            } else {
                timeout = NULL;
            }
        }
        for (size_t i = 0; i < self->nwatches; i++)
            pfds[i] = (struct pollfd){self->watches[i].fd, POLLIN, 0};
        int n = ppoll(pfds, self->nwatches, timeout, NULL);
        if (n < 0 && errno != EINTR)
            return -errno;
        for (size_t i = 0; n > 0 && i < self->nwatches && !self->stop; i++) {
            struct watch *w = &self->watches[i];
            if (!(pfds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if (w->zsock)
                w->check = true;
            else
                w->fn(w->arg);
        }
    }
    return 0;
}

void qa_loop_stop(qa_loop_t *self)
{
    self->stop = true;
}
