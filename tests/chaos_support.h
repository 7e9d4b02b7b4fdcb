/* chaos_support.h - the arbiter killed with -9 at random moments, and restarted, under
 * workloads that allocate and launch in several vGPUs (issue 8, "Keep it that way").
 *
 * A private simulated host with one 4 GiB GPU, a real qarbiter, three vGPUs (quotas of
 * 1, 1.5 and 1 GiB, one with a limit) and two processes in each that churn memory
 * against their vGPU's quota and launch kernels all along (tests/progs/shim_work
 * `churn`). Meanwhile the arbiter is killed with SIGKILL after a random 0.2-1.5 s and
 * started again at once, again and again. Checked all along:
 *   - after each restart, every vGPU is there with the same id, VM, GPU, memory, share,
 *     limit and secret;
 *   - no vGPU ever holds more than its quota: what the driver says each vGPU's processes
 *     hold (NVML's per-process memory) is sampled every 10 ms;
 *   - every restart comes up, the workloads exit cleanly and keep getting memory and
 *     running kernels.
 * Used by tests/test_chaos.c (bounded: tens of seconds) and bench/arbiter_chaos.c (as
 * long as asked). Not thread-safe: the calling thread, plus a sampler thread of its own. */
#ifndef QV_TEST_CHAOS_SUPPORT_H
#define QV_TEST_CHAOS_SUPPORT_H

#include <stdint.h>

typedef struct qt_chaos_opts {
    int duration_ms; /* how long the workloads run and the arbiter is killed */
    unsigned seed;   /* for the kill times: the same seed kills at the same moments */
} qt_chaos_opts_t;

typedef struct qt_chaos_result {
    int kills;            /* kill -9 and restarts done */
    int failed_restarts;  /* restarts that did not come up (the run stops at the first) */
    int state_changes;    /* checks after a restart that found a vGPU changed or gone */
    int worst_excess_mib; /* the most a vGPU held beyond its quota in any sample, MiB:
                           * <= 0 when none ever held more than its quota */
    char worst_vgpu[32];  /* which vGPU that was, "" before any sample */
    long samples;         /* memory samples taken */
    long granted;         /* allocations the workloads were granted */
    long refused;         /* rounds that ended on a refused allocation */
    long kernels;         /* kernels they ran */
    long failed_launches; /* launches that failed */
    int bad_workloads;    /* workloads that did not exit 0 or print their figures */
    char problem[512];    /* the first problem seen, one line; "" if none */
} qt_chaos_result_t;

/* Runs the chaos as described above and fills r. Returns 0 when it could be run (r says
 * how it went), -1 when it could not be set up (r->problem says why). */
int qt_chaos_run(const qt_chaos_opts_t *opts, qt_chaos_result_t *r);

#endif
