/* test_sim_host.c - the simulated host in shared memory: race-free creation by
 * processes starting at once, recovery when a process dies holding the host lock, and
 * the configuration a host keeps while in use. */
#include <criterion/criterion.h>
#include <cuda.h>
#include <signal.h>
#include <string.h>

#include "tests/harness.h"
#include "tests/sim_support.h"

Test(sim_host, processes_starting_at_once_see_one_host, .timeout = 60)
{
    qt_sim_private("A:1GiB:2,B:2GiB:4");
    enum { N = 8 };
    qt_proc_t *p[N];
    const char *args[] = {"info", NULL};
    for (int i = 0; i < N; i++)
        p[i] = sim_worker_start(args, NULL);
    for (int i = 0; i < N; i++)
        cr_assert_eq(qt_proc_wait(p[i], 20000), 0, "%s%s", qt_proc_stdout(p[i]),
                     qt_proc_stderr(p[i]));
    const char *first = qt_proc_stdout(p[0]);
    cr_assert(strstr(first, "dev 1 name=B"), "%s", first);
    for (int i = 1; i < N; i++)
        cr_assert_str_eq(qt_proc_stdout(p[i]), first);
    for (int i = 0; i < N; i++)
        qt_proc_destroy(&p[i]);
}

Test(sim_host, a_process_killed_holding_the_lock_does_not_wedge_the_host, .timeout = 60)
{
    qt_sim_private("Small:1GiB:4");
    sim_up(0);
    CUdeviceptr p;
    CU_OK(cuMemAlloc(&p, 10 * MiB));
    const char *args[] = {"lockholder", NULL};
    qt_proc_t *holder = sim_worker_start(args, NULL);
    sim_wait_line(holder, "locked", 10000);
    qt_proc_kill(holder, SIGKILL);
    qt_proc_wait(holder, 5000);
    uint64_t t0 = qt_now_ns();
    CU_OK(cuMemAlloc(&p, 10 * MiB));
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX - 20 * MiB,
                 "the accounting survived the repair");
    CUfunction spin = sim_spin_kernel();
    CU_OK(sim_spin(spin, NULL, 1000000ull));
    CU_OK(cuCtxSynchronize());
    cr_assert_lt(qt_now_ns() - t0, 2000000000ull);
    qt_proc_destroy(&holder);
}

Test(sim_host, processes_killed_in_the_middle_of_driver_calls_leave_a_sound_host, .timeout = 60)
{
    qt_sim_private("Small:1GiB:4");
    /* Floods take the lock thousands of times a second: killing them lands some kills
     * inside it. */
    const char *args[] = {"flood", "0", "10", "20", NULL};
    for (int round = 0; round < 6; round++) {
        qt_proc_t *w = sim_worker_start(args, NULL);
        sim_wait_line(w, "ready", 10000);
        qt_sleep_ms(30 + 7 * round);
        qt_proc_kill(w, SIGKILL);
        qt_proc_wait(w, 5000);
        qt_proc_destroy(&w);
    }
    sim_up(0);
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX, "nothing of the killed processes is left");
    CUfunction spin = sim_spin_kernel();
    uint64_t t0 = qt_now_ns();
    CU_OK(sim_spin(spin, NULL, 20000000ull));
    CU_OK(cuCtxSynchronize());
    uint64_t ns = qt_now_ns() - t0;
    cr_assert(ns >= 20000000ull && ns < 100000000ull, "%.1f ms", (double)ns / 1e6);
}

Test(sim_host, a_host_in_use_keeps_its_configuration, .timeout = 60)
{
    qt_sim_private("A:1GiB:2");
    sim_up(0);
    char *bin = qt_build_path("tests/progs/sim_worker");
    const char *argv[] = {bin, "info", NULL};
    const char *env[] = {"QSIM_GPUS=B:2GiB:2", NULL};
    char *out, *err;
    int status = qt_run(argv, env, 10000, &out, &err);
    cr_assert_eq(status, 1, "%s", out);
    cr_assert(strstr(err, "in use") && strstr(err, "QSIM_NAMESPACE"), "%s", err);
    free(out);
    free(err);
    /* The same configuration is welcome. */
    status = qt_run(argv, NULL, 10000, &out, NULL);
    cr_assert_eq(status, 0, "%s", out);
    free(out);
    free(bin);
}

Test(sim_host, an_unused_host_takes_a_new_configuration, .timeout = 60)
{
    qt_sim_private("A:1GiB:2");
    char *bin = qt_build_path("tests/progs/sim_worker");
    const char *argv[] = {bin, "info", NULL};
    char *out;
    cr_assert_eq(qt_run(argv, NULL, 10000, &out, NULL), 0);
    cr_assert(strstr(out, "name=A"), "%s", out);
    free(out);
    const char *env[] = {"QSIM_GPUS=B:2GiB:2", NULL};
    cr_assert_eq(qt_run(argv, env, 10000, &out, NULL), 0, "%s", out);
    cr_assert(strstr(out, "name=B"), "%s", out);
    free(out);
    free(bin);
}
