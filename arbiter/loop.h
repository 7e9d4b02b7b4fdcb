/* loop.h - the arbiter's event loop: a few file descriptors and timers with nanosecond
 * deadlines, on one thread.
 *
 * The loop sleeps in ppoll() with a timeout from the earliest timer, so timers are not
 * rounded to milliseconds: a per-GPU scheduler can run sub-millisecond quanta on the
 * same loop. Each endpoint's many connections sit behind one epoll fd (endpoint.c), so
 * the loop itself watches a handful. Timers are caller-owned structs kept in a binary
 * heap: starting and stopping cost O(log n) and no allocation once the heap has grown.
 * Single-threaded: everything is called on the loop's thread. */
#ifndef QA_LOOP_H
#define QA_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qa_loop qa_loop_t;

/* Called when a watched fd may be read. It handles a bounded amount (reading without
 * blocking) and returns; while the fd stays readable it is called again every turn, so
 * that one busy fd cannot starve the others or the timers. */
typedef void qa_io_fn(void *arg);
typedef void qa_timer_fn(void *arg);

/* A timer, embedded in whatever owns it. Zero it (or qa_timer_init) before first use. */
typedef struct qa_timer {
    uint64_t deadline; /* CLOCK_MONOTONIC ns */
    qa_timer_fn *fn;
    void *arg;
    size_t slot; /* position in the heap + 1; 0 when not running */
} qa_timer_t;

qa_loop_t *qa_loop_new(void);
/* Frees the loop (not the sockets, fds or timers it watched); sets *self_p to NULL. */
void qa_loop_destroy(qa_loop_t **self_p);

/* Watches a file descriptor for input. Returns 0 or -ENOMEM. */
int qa_loop_add_fd(qa_loop_t *self, int fd, qa_io_fn *fn, void *arg);
/* Stops watching fd (before the caller closes it); callable from any callback, its own
 * included: it is not called again. */
void qa_loop_remove_fd(qa_loop_t *self, int fd);

/* CLOCK_MONOTONIC now, in nanoseconds. */
uint64_t qa_now_ns(void);
/* Starts (or restarts) t to call fn(arg) once at deadline (CLOCK_MONOTONIC ns). Returns
 * 0 or -ENOMEM. A timer may be restarted from its own callback. */
int qa_timer_start(qa_loop_t *self, qa_timer_t *t, uint64_t deadline, qa_timer_fn *fn, void *arg);
/* Stops t if it is running; harmless otherwise. */
void qa_timer_stop(qa_loop_t *self, qa_timer_t *t);
static inline bool qa_timer_running(const qa_timer_t *t)
{
    return t->slot != 0;
}

/* Runs until qa_loop_stop is called. Returns 0, or a negative errno if polling fails. */
int qa_loop_run(qa_loop_t *self);
/* Makes qa_loop_run return after the current callback. */
void qa_loop_stop(qa_loop_t *self);

#endif
