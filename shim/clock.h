/* clock.h - the shim's one clock: CLOCK_MONOTONIC, read through the vDSO (no system call),
 * in nanoseconds, and deadlines on it for condition variables made with
 * pthread_condattr_setclock(CLOCK_MONOTONIC). Header only: the launch path reads it inline.
 * No state. Threads: any. */
#ifndef QS_CLOCK_H
#define QS_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in ns. */
static inline uint64_t qs_clock_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The CLOCK_MONOTONIC instant ms milliseconds from now (ms >= 0), for
 * pthread_cond_timedwait() on a monotonic condition variable. */
static inline struct timespec qs_clock_deadline_in(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

#endif
