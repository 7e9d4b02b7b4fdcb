/* test_cudart.c - a CUDA C++ program built with nvcc (tests/progs/cudart_work.cu: the
 * runtime linked statically, cudaMalloc, cudaMemGetInfo, a <<<>>> launch, cudaMemcpy,
 * streams, events, cudaDeviceReset) runs on the driver without the shim, and inside a
 * vGPU sees the vGPU's quota as the whole GPU and is refused past it. On the simulated
 * driver this needs its private runtime interface (sim/cuda_export.c); on a real one
 * (QV_TEST_DRIVER=real) the same program checks the shim against NVIDIA's. */
#include "tests/shim_support.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The program's path; skips the test, saying why, where the toolkit has no nvcc. */
static char *program(void)
{
    char *bin = qt_build_path("tests/progs/cudart_work");
    if (access(bin, X_OK) != 0) {
        const char *home = getenv("CUDA_HOME") ? getenv("CUDA_HOME") : "/usr/local/cuda";
        char nvcc[4096];
        snprintf(nvcc, sizeof nvcc, "%s/bin/nvcc", home);
        cr_assert_neq(access(nvcc, X_OK), 0, "%s exists but %s was not built", nvcc, bin);
        free(bin);
        cr_skip_test("no nvcc in %s: cudart_work cannot be built", home);
    }
    return bin;
}

/* Runs the program in e; returns its stdout (caller frees) after checking that every
 * step succeeded (it exits 1 otherwise, saying which on stderr). */
static char *run(const qts_env_t *e)
{
    char *bin = program();
    const char *argv[] = {bin, NULL};
    char *out = NULL, *err = NULL;
    int st = qt_run(argv, e->v, 60000, &out, &err);
    cr_assert_eq(st, 0, "cudart_work exited with %d:\n%s%s", st, out, err);
    cr_assert(strstr(out, "\ndone\n"), "%s", out);
    free(err);
    free(bin);
    return out;
}

/* The steps every run must get right, wherever it runs; devices: how many it must see. */
static void expect_steps(const char *out, long long devices)
{
    cr_assert_eq(qts_field(out, "count ", 0), 0);
    cr_assert_eq(qts_field(out, "count ", 1), devices);
    cr_assert_eq(qts_field(out, "malloc ", 0), 0);
    cr_assert_eq(qts_field(out, "copy ", 0), 0);
    cr_assert_eq(qts_field(out, "copy ", 1), 1, "the bytes came back intact");
    cr_assert_eq(qts_field(out, "launch ", 0), 0);
    cr_assert_eq(qts_field(out, "launch_default ", 0), 0);
    cr_assert_eq(qts_field(out, "over_quota ", 0), 2 /* cudaErrorMemoryAllocation */);
    cr_assert_eq(qts_field(out, "reset ", 0), 0);
    cr_assert_eq(qts_field(out, "after_reset ", 0), 0);
    char line[256];
    double ms = 0;
    cr_assert(qts_line(out, "launch ", line, sizeof line));
    cr_assert_eq(sscanf(line, "launch %*d %lf", &ms), 1);
    cr_assert(ms >= 19.9 && ms < 2000, "the 20 ms kernel took %.3f ms between its events", ms);
}

Test(cudart, a_cuda_cpp_program_runs_on_the_driver_without_the_shim, .timeout = 90)
{
    qt_sim_private(NULL);
    qts_env_t e;
    qts_env_plain(&e);
    qts_env_add(&e, "%s", qt_foreign_preload());
    char *out = run(&e);
    /* A real machine may have more GPUs than the simulator's default one. */
    expect_steps(out, qt_driver_simulated() ? 1 : qts_field(out, "count ", 1));
    cr_assert_geq(qts_field(out, "count ", 1), 1);
    if (qt_driver_simulated()) {
        /* The default simulated GPU: 8 GiB, of which the context and the 64 MiB taken. */
        cr_assert_eq(qts_field(out, "meminfo ", 2), 8ll << 30);
        cr_assert_leq(qts_field(out, "meminfo ", 1), (8ll << 30) - (64ll << 20));
    }
    free(out);
}

Test(cudart, inside_a_vgpu_it_sees_the_quota_and_is_refused_past_it, .timeout = 90)
{
    qt_sim_private(NULL);
    qt_arbiter_t *arb = qt_arbiter_start(NULL, NULL);
    cr_assert_not_null(arb);
    qts_vgpu_t v;
    qts_vgpu_create(arb, &v, "--vm", "cudart", "--profile", "Q2", NULL);
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    char *out = run(&e);
    expect_steps(out, 1); /* a vGPU is one device */
    /* The vGPU's 2 GiB are the whole GPU to the runtime; its 64 MiB are charged. */
    cr_assert_eq(qts_field(out, "meminfo ", 2), 2ll << 30);
    long long free_b = qts_field(out, "meminfo ", 1);
    cr_assert(free_b <= (2ll << 30) - (64ll << 20) && free_b > 0, "free %lld", free_b);
    free(out);
    qt_arbiter_destroy(&arb);
}

Test(cudart, the_runtime_accepts_the_driver_on_a_host_of_several_gpus, .timeout = 90)
{
    if (!qt_driver_simulated())
        cr_skip_test("made-up GPUs: the simulator only");
    /* The runtime's integrity check hashes every device the driver shows: three, then
     * the one CUDA_VISIBLE_DEVICES leaves. */
    qt_sim_private("NVIDIA A100-SXM4-40GB:40GiB:108,NVIDIA GeForce GTX 1080:8GiB:20,"
                   "NVIDIA H100 80GB HBM3:80GiB:132");
    qts_env_t e;
    qts_env_plain(&e);
    qts_env_add(&e, "%s", qt_foreign_preload());
    char *out = run(&e);
    expect_steps(out, 3);
    cr_assert_eq(qts_field(out, "meminfo ", 2), 40ll << 30, "device 0 is the A100");
    free(out);
    qts_env_add(&e, "CUDA_VISIBLE_DEVICES=2");
    out = run(&e);
    expect_steps(out, 1);
    cr_assert_eq(qts_field(out, "meminfo ", 2), 80ll << 30, "device 0 is now the H100");
    free(out);
}
