/* test_sim_exec.c - modules, functions and launches: qsim_spin occupies its device for
 * its parameter's time, other kernels take none, launches check what they are given,
 * and a full queue blocks the launching thread instead of failing. */
#include <criterion/criterion.h>
#include <cuda.h>
#include <stdio.h>
#include <unistd.h>

#include "tests/harness.h"
#include "tests/sim_support.h"

static double ms_since(uint64_t t0)
{
    return (double)(qt_now_ns() - t0) / 1e6;
}

Test(sim_exec, a_spin_kernel_occupies_the_device_for_its_time)
{
    qt_sim_private(NULL);
    sim_up(0);
    CUfunction spin = sim_spin_kernel();
    uint64_t t0 = qt_now_ns();
    CU_OK(sim_spin(spin, NULL, 50000000ull));
    double launch_ms = ms_since(t0);
    cr_assert_lt(launch_ms, 20, "a launch does not wait for the kernel (%.1f ms)", launch_ms);
    cr_assert_eq(cuStreamQuery(NULL), CUDA_ERROR_NOT_READY);
    CU_OK(cuCtxSynchronize());
    double ms = ms_since(t0);
    cr_assert_geq(ms, 50, "finished after %.1f ms", ms);
    cr_assert_lt(ms, 150, "finished after %.1f ms", ms);
    CU_OK(cuStreamQuery(NULL));
}

Test(sim_exec, kernels_queue_one_after_another)
{
    qt_sim_private(NULL);
    sim_up(0);
    CUfunction spin = sim_spin_kernel();
    uint64_t t0 = qt_now_ns();
    for (int i = 0; i < 10; i++)
        CU_OK(sim_spin(spin, NULL, 5000000ull));
    CU_OK(cuStreamSynchronize(NULL));
    double ms = ms_since(t0);
    cr_assert_geq(ms, 50, "%.1f ms", ms);
    cr_assert_lt(ms, 150, "%.1f ms", ms);
}

Test(sim_exec, other_kernels_take_no_time_and_any_image_loads)
{
    qt_sim_private(NULL);
    sim_up(0);
    CUmodule mod;
    CUfunction f, again;
    CU_OK(cuModuleLoadData(&mod, "\x7f"
                                 "ELF whatever"));
    CU_OK(cuModuleGetFunction(&f, mod, "saxpy"));
    CU_OK(cuModuleGetFunction(&again, mod, "saxpy"));
    cr_assert_eq(f, again, "one handle per name");
    const char *name;
    CU_OK(cuFuncGetName(&name, f));
    cr_assert_str_eq(name, "saxpy");
    float x = 1;
    void *params[] = {&x, &x};
    uint64_t t0 = qt_now_ns();
    for (int i = 0; i < 100; i++)
        CU_OK(cuLaunchKernel(f, 1000, 1, 1, 256, 1, 1, 0, NULL, params, NULL));
    CU_OK(cuCtxSynchronize());
    cr_assert_lt(ms_since(t0), 100);
    CU_OK(cuModuleUnload(mod));
    cr_assert_eq(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, params, NULL),
                 CUDA_ERROR_INVALID_HANDLE, "its module is gone");
}

Test(sim_exec, module_load_needs_an_existing_file)
{
    qt_sim_private(NULL);
    sim_up(0);
    CUmodule mod;
    cr_assert_eq(cuModuleLoad(&mod, "/nonexistent/kernel.cubin"), CUDA_ERROR_FILE_NOT_FOUND);
    char *dir = qt_tmpdir();
    char path[256];
    snprintf(path, sizeof path, "%s/k.cubin", dir);
    FILE *f = fopen(path, "w");
    fputs("cubin", f);
    fclose(f);
    CU_OK(cuModuleLoad(&mod, path));
    free(dir);
}

Test(sim_exec, launches_check_their_configuration)
{
    qt_sim_private(NULL);
    sim_up(0);
    CUfunction spin = sim_spin_kernel();
    unsigned long long ns = 1000;
    void *params[] = {&ns};
    cr_assert_eq(cuLaunchKernel(spin, 0, 1, 1, 1, 1, 1, 0, NULL, params, NULL),
                 CUDA_ERROR_INVALID_VALUE);
    cr_assert_eq(cuLaunchKernel(spin, 1, 1, 1, 1025, 1, 1, 0, NULL, params, NULL),
                 CUDA_ERROR_INVALID_VALUE);
    cr_assert_eq(cuLaunchKernel(spin, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL),
                 CUDA_ERROR_INVALID_VALUE, "qsim_spin needs its parameter");
    cr_assert_eq(cuLaunchKernel(NULL, 1, 1, 1, 1, 1, 1, 0, NULL, params, NULL),
                 CUDA_ERROR_INVALID_HANDLE);
    /* The parameter may come through `extra` as well. */
    size_t size = sizeof ns;
    void *extra[] = {CU_LAUNCH_PARAM_BUFFER_POINTER, &ns, CU_LAUNCH_PARAM_BUFFER_SIZE, &size,
                     CU_LAUNCH_PARAM_END};
    CU_OK(cuLaunchKernel(spin, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, extra));
    CU_OK(cuCtxSynchronize());
}

Test(sim_exec, launch_ex_and_cooperative_launches_run_and_check_their_size)
{
    qt_sim_private("Tiny:1GiB:2");
    sim_up(0);
    CUfunction spin = sim_spin_kernel();
    unsigned long long ns = 20000000;
    void *params[] = {&ns};
    CUlaunchAttribute coop = {.id = CU_LAUNCH_ATTRIBUTE_COOPERATIVE};
    coop.value.cooperative = 1;
    CUlaunchConfig cfg = {.gridDimX = 4,
                          .gridDimY = 1,
                          .gridDimZ = 1,
                          .blockDimX = 256,
                          .blockDimY = 1,
                          .blockDimZ = 1,
                          .attrs = &coop,
                          .numAttrs = 1};
    uint64_t t0 = qt_now_ns();
    CU_OK(cuLaunchKernelEx(&cfg, spin, params, NULL));
    CU_OK(cuLaunchCooperativeKernel(spin, 4, 1, 1, 256, 1, 1, 0, NULL, params));
    CU_OK(cuCtxSynchronize());
    cr_assert_geq(ms_since(t0), 40);
    /* 2 SMs hold at most 2 x 8 blocks of 256 threads at once. */
    cr_assert_eq(cuLaunchCooperativeKernel(spin, 17, 1, 1, 256, 1, 1, 0, NULL, params),
                 CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE);
    cfg.gridDimX = 17;
    cr_assert_eq(cuLaunchKernelEx(&cfg, spin, params, NULL),
                 CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE);
    cfg.numAttrs = 0;
    CU_OK(cuLaunchKernelEx(&cfg, spin, params, NULL));
}

Test(sim_exec, a_full_queue_blocks_the_launch_instead_of_failing)
{
    qt_sim_private(NULL);
    sim_up(0);
    CUfunction spin = sim_spin_kernel();
    uint64_t t0 = qt_now_ns();
    /* 1200 launches of 100 us: the queue holds 1024, so the last ones wait their turn. */
    for (int i = 0; i < 1200; i++)
        CU_OK(sim_spin(spin, NULL, 100000ull));
    double launching = ms_since(t0);
    cr_assert_geq(launching, 15, "launching took %.1f ms", launching);
    CU_OK(cuCtxSynchronize());
    double ms = ms_since(t0);
    cr_assert_geq(ms, 120, "%.1f ms", ms);
    cr_assert_lt(ms, 300, "%.1f ms", ms);
}

Test(sim_exec, a_launch_is_cheap)
{
    qt_sim_private(NULL);
    sim_up(0);
    CUfunction spin = sim_spin_kernel();
    enum { N = 500 };
    uint64_t t0 = qt_now_ns();
    for (int i = 0; i < N; i++)
        CU_OK(sim_spin(spin, NULL, 1000ull));
    double us = (double)(qt_now_ns() - t0) / 1e3 / N;
    CU_OK(cuCtxSynchronize());
    /* Tolerant: a busy machine and sanitizers slow it; bench/sim_launch has the figure. */
    cr_assert_lt(us, 200, "%.1f us per launch", us);
}
