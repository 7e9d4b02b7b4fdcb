/* test_sim_engine.c - the execution engine as processes see it: contexts with work are
 * time-sliced round-robin across all processes of a host, so unmanaged processes share
 * a GPU evenly; event timings agree with the model; dead processes' work leaves. */
#include <criterion/criterion.h>
#include <cuda.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>

#include "include/nvml_subset.h"
#include "tests/harness.h"
#include "tests/sim_support.h"

static double ms_since(uint64_t t0)
{
    return (double)(qt_now_ns() - t0) / 1e6;
}

static uint64_t realtime_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

Test(sim_engine, two_unmanaged_processes_flooding_one_gpu_each_get_half, .timeout = 60)
{
    qt_sim_private(NULL);
    cr_assert_eq(nvmlInit_v2(), NVML_SUCCESS);
    const char *args[] = {"flood", "0", "3.2", "1000", NULL};
    qt_proc_t *a = sim_worker_start(args, NULL);
    qt_proc_t *b = sim_worker_start(args, NULL);
    sim_wait_line(a, "ready", 10000);
    sim_wait_line(b, "ready", 10000);
    qt_sleep_ms(2300);

    /* Each one's share of the device over the last 2 s, as NVML reports it. */
    nvmlDevice_t dev;
    cr_assert_eq(nvmlDeviceGetHandleByIndex_v2(0, &dev), NVML_SUCCESS);
    nvmlProcessUtilizationSample_t samples[8];
    unsigned n = 8;
    cr_assert_eq(nvmlDeviceGetProcessUtilization(dev, samples, &n, realtime_us() - 2000000),
                 NVML_SUCCESS);
    cr_assert_eq(n, 2);
    for (unsigned i = 0; i < n; i++) {
        cr_assert(samples[i].pid == (unsigned)qt_proc_pid(a) ||
                  samples[i].pid == (unsigned)qt_proc_pid(b));
        cr_assert(samples[i].smUtil >= 45 && samples[i].smUtil <= 55, "pid %u got %u%%",
                  samples[i].pid, samples[i].smUtil);
    }
    nvmlUtilization_t u;
    cr_assert_eq(nvmlDeviceGetUtilizationRates(dev, &u), NVML_SUCCESS);
    cr_assert_geq(u.gpu, 95, "the device is busy all the time: %u%%", u.gpu);

    /* And by their own count of completed kernel time. */
    cr_assert_eq(qt_proc_wait(a, 10000), 0);
    cr_assert_eq(qt_proc_wait(b, 10000), 0);
    unsigned long long ka, kb, wa, wb;
    cr_assert_eq(sscanf(qt_proc_stdout(a), "ready\nkernels=%llu wall_ns=%llu", &ka, &wa), 2);
    cr_assert_eq(sscanf(qt_proc_stdout(b), "ready\nkernels=%llu wall_ns=%llu", &kb, &wb), 2);
    double share_a = (double)ka / (double)(ka + kb);
    cr_assert(share_a > 0.45 && share_a < 0.55, "%llu vs %llu kernels", ka, kb);
    qt_proc_destroy(&a);
    qt_proc_destroy(&b);
    nvmlShutdown();
}

/* Elapsed time of a kernel of `ns` between two events on a stream of the current
 * context. */
static float timed_kernel(CUfunction spin, unsigned long long ns)
{
    CUevent e0, e1;
    CU_OK(cuEventCreate(&e0, 0));
    CU_OK(cuEventCreate(&e1, 0));
    CU_OK(cuEventRecord(e0, NULL));
    CU_OK(sim_spin(spin, NULL, ns));
    CU_OK(cuEventRecord(e1, NULL));
    CU_OK(cuEventSynchronize(e1));
    float ms;
    CU_OK(cuEventElapsedTime(&ms, e0, e1));
    CU_OK(cuEventDestroy(e0));
    CU_OK(cuEventDestroy(e1));
    return ms;
}

Test(sim_engine, event_timings_agree_with_the_model_alone_and_shared, .timeout = 60)
{
    qt_sim_private(NULL);
    sim_up(0);
    CUfunction spin = sim_spin_kernel();
    float ms = timed_kernel(spin, 20000000ull);
    /* Plus the time between the first record and the launch, a few microseconds. */
    cr_assert(ms >= 20.0f && ms < 20.5f, "alone, a 20 ms kernel takes 20 ms: %f", ms);

    /* Another process floods the GPU: the kernel now gets every other time slice. */
    const char *args[] = {"flood", "0", "1.5", "1000", NULL};
    qt_proc_t *w = sim_worker_start(args, NULL);
    sim_wait_line(w, "ready", 10000);
    qt_sleep_ms(100);
    ms = timed_kernel(spin, 20000000ull);
    cr_assert(ms > 36.0f && ms < 44.0f, "shared, it takes about 40 ms: %f", ms);
    qt_proc_destroy(&w);
}

/* The time a 1 ms kernel of one context takes to finish when another context of the
 * same device started a 100 ms kernel just before. */
static double short_behind_long(void)
{
    CUdevice d;
    CUcontext a, b;
    CU_OK(cuInit(0));
    CU_OK(cuDeviceGet(&d, 0));
    CU_OK(cuCtxCreate(&a, NULL, 0, d));
    CUfunction spin_a = sim_spin_kernel();
    CU_OK(cuCtxCreate(&b, NULL, 0, d));
    CUfunction spin_b = sim_spin_kernel();
    CU_OK(cuCtxSetCurrent(a));
    uint64_t t0 = qt_now_ns();
    CU_OK(sim_spin(spin_a, NULL, 100000000ull));
    CU_OK(cuCtxSetCurrent(b));
    CU_OK(sim_spin(spin_b, NULL, 1000000ull));
    CU_OK(cuCtxSynchronize());
    double ms = ms_since(t0);
    CU_OK(cuCtxDestroy(b));
    CU_OK(cuCtxDestroy(a));
    return ms;
}

Test(sim_engine, a_short_kernel_waits_at_most_a_time_slice_behind_a_long_one, .timeout = 60)
{
    qt_sim_private(NULL);
    double ms = short_behind_long();
    cr_assert(ms >= 2.0 && ms < 30.0, "1 ms slices: done after %.1f ms", ms);
}

Test(sim_engine, the_time_slice_follows_qsim_timeslice_us, .timeout = 60)
{
    qt_sim_private(NULL);
    setenv("QSIM_TIMESLICE_US", "40000", 1);
    double ms = short_behind_long();
    cr_assert(ms >= 41.0 && ms < 90.0, "40 ms slices: done after %.1f ms", ms);
}

Test(sim_engine, a_killed_process_queued_work_leaves_the_gpu, .timeout = 60)
{
    qt_sim_private(NULL);
    sim_up(0);
    CUfunction spin = sim_spin_kernel();
    /* It queues 8 kernels of 200 ms, then dies. */
    const char *args[] = {"flood", "0", "5", "200000", NULL};
    qt_proc_t *w = sim_worker_start(args, NULL);
    sim_wait_line(w, "ready", 10000);
    qt_sleep_ms(20);
    qt_proc_kill(w, SIGKILL);
    qt_proc_wait(w, 5000);
    uint64_t t0 = qt_now_ns();
    for (int i = 0; i < 20; i++)
        CU_OK(sim_spin(spin, NULL, 5000000ull));
    CU_OK(cuCtxSynchronize());
    double ms = ms_since(t0);
    cr_assert(ms >= 100 && ms < 170, "100 ms of work alone took %.1f ms", ms);
    qt_proc_destroy(&w);
}
