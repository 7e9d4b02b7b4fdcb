/* test_chaos.c - the arbiter killed with -9 at random moments under workloads that
 * allocate and launch in three vGPUs, restarted each time (tests/chaos_support.h): no
 * vGPU, secret or limit changes, and no vGPU ever holds more than its quota. Bounded:
 * 20 s of chaos. `make bench B=chaos` runs it longer. */
#include "tests/chaos_support.h"
#include "tests/harness.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <unistd.h>

Test(chaos, kill_9_at_random_moments_changes_no_vgpu_and_never_overcommits, .timeout = 120)
{
    const char *s = getenv("QV_CHAOS_SEED");
    qt_chaos_opts_t o = {.duration_ms = 20000, .seed = s ? (unsigned)atoi(s) : (unsigned)getpid()};
    qt_chaos_result_t r;
    cr_assert_eq(qt_chaos_run(&o, &r), 0, "%s", r.problem);
    cr_log_info("seed %u: %d kills, %ld samples, worst %d MiB over in %s, %ld granted, %ld "
                "kernels",
                o.seed, r.kills, r.samples, r.worst_excess_mib, r.worst_vgpu, r.granted, r.kernels);
    cr_assert_geq(r.kills, 8, "the arbiter was killed %d times in 20 s", r.kills);
    cr_assert_eq(r.failed_restarts, 0, "%s", r.problem);
    cr_assert_eq(r.state_changes, 0, "seed %u: %s", o.seed, r.problem);
    cr_assert_gt(r.samples, 100, "memory was sampled %ld times", r.samples);
    cr_assert_leq(r.worst_excess_mib, 0, "seed %u: %s", o.seed, r.problem);
    cr_assert_eq(r.bad_workloads, 0, "%s", r.problem);
    cr_assert_gt(r.granted, 50, "the workloads kept getting memory: %ld grants", r.granted);
    cr_assert_gt(r.kernels, 50, "and running kernels: %ld", r.kernels);
    cr_assert_str_empty(r.problem, "seed %u: %s", o.seed, r.problem);
}
