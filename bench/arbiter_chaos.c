/* arbiter_chaos.c - the chaos of tests/test_chaos.c run for longer: qarbiter killed with
 * -9 after a random 0.2-1.5 s, again and again, and restarted at once, under two
 * processes per vGPU that churn memory against its quota and launch kernels, in three
 * vGPUs (tests/chaos_support.h). Goals: every restart comes up with every vGPU, secret
 * and limit unchanged, and no vGPU ever holds more than its quota (what the driver says
 * its processes hold, sampled every 10 ms). Prints figures; asserts nothing.
 *   make bench B=chaos       QV_CHAOS_SECONDS (default 120), QV_CHAOS_SEED (default: the
 *                            time) */
#include "tests/chaos_support.h"
#include "tests/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(void)
{
    const char *secs = getenv("QV_CHAOS_SECONDS"), *seed = getenv("QV_CHAOS_SEED");
    qt_chaos_opts_t o = {
        .duration_ms = (secs ? atoi(secs) : 120) * 1000,
        .seed = seed ? (unsigned)atoi(seed) : (unsigned)time(NULL),
    };
    if (o.duration_ms <= 0) {
        fprintf(stderr, "arbiter_chaos: QV_CHAOS_SECONDS must be a positive number\n");
        return 2;
    }
    printf("kill -9 of qarbiter every 0.2-1.5 s for %d s (seed %u), 3 vGPUs x 2 churning "
           "workloads on one simulated 4 GiB GPU\n",
           o.duration_ms / 1000, o.seed);
    fflush(stdout);
    qt_chaos_result_t r;
    if (qt_chaos_run(&o, &r) < 0) {
        printf("could not run: %s\n", r.problem);
        return 1;
    }
    double s = o.duration_ms / 1000.0;
    printf("  kills and restarts      %d (%.2f/s), %d did not come up: goal 0: %s\n", r.kills,
           r.kills / s, r.failed_restarts, r.failed_restarts ? "MISSED" : "met");
    printf("  vGPUs changed           %d checks found a vGPU, secret or limit changed: goal 0: "
           "%s\n",
           r.state_changes, r.state_changes ? "MISSED" : "met");
    printf("  worst use beyond quota  %d MiB (%s), %ld samples: goal <= 0: %s\n",
           r.worst_excess_mib, r.worst_vgpu, r.samples, r.worst_excess_mib > 0 ? "MISSED" : "met");
    printf("  workloads               %ld allocations granted (%.0f/s), %ld refused rounds, "
           "%ld kernels, %ld failed launches, %d ended badly\n",
           r.granted, r.granted / s, r.refused, r.kernels, r.failed_launches, r.bad_workloads);
    if (r.problem[0])
        printf("  first problem: %s\n", r.problem);
    return 0;
}
