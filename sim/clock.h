/* clock.h - the simulator's clocks: CLOCK_MONOTONIC drives the engine, CLOCK_REALTIME
 * stamps what NVML reports. Header only (vDSO calls, no syscall); any thread. */
#ifndef QSIM_CLOCK_H
#define QSIM_CLOCK_H

#include <errno.h>
#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in nanoseconds: the engine's time, the same in every process. */
static inline uint64_t qsim_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CLOCK_REALTIME in microseconds: NVML's "CPU timestamp". */
static inline uint64_t qsim_realtime_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Sleeps until CLOCK_MONOTONIC reaches t_ns (returns at once if it has). */
static inline void qsim_sleep_until(uint64_t t_ns)
{
    struct timespec ts = {(time_t)(t_ns / 1000000000u), (long)(t_ns % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

#endif
