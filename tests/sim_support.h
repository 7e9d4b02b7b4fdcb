/* sim_support.h - what the simulated driver's tests share: bringing a device up in the
 * test process, running tests/progs/sim_worker, reading what it says.
 *
 * Header only (static functions), so that only the tests that include it reference the
 * CUDA driver; the harness is linked into every test binary. Single-threaded. */
#ifndef QV_TEST_SIM_SUPPORT_H
#define QV_TEST_SIM_SUPPORT_H

#include <criterion/criterion.h>
#include <cuda.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/config.h"
#include "tests/harness.h"

#define MiB (1024ull * 1024ull)
#define GiB (1024ull * MiB)
/* What each context costs its device: the tests leave QSIM_CONTEXT_MEMORY unset, so every
 * process's context takes this much, as a real driver's would take its own. */
#define SIM_CTX QSIM_DEFAULT_CONTEXT_MEMORY

/* Asserts that a driver call succeeded, naming it and the error otherwise. */
#define CU_OK(call)                                                                                \
    do {                                                                                           \
        CUresult rc_ = (call);                                                                     \
        const char *name_ = "?";                                                                   \
        if (rc_ != CUDA_SUCCESS)                                                                   \
            cuGetErrorName(rc_, &name_);                                                           \
        cr_assert_eq(rc_, CUDA_SUCCESS, "%s failed: %d %s", #call, (int)rc_, name_);               \
    } while (0)

/* cuInit, then device dev's primary context made current. Returns the context. */
static inline CUcontext sim_up(int dev)
{
    CUdevice d;
    CUcontext ctx;
    CU_OK(cuInit(0));
    CU_OK(cuDeviceGet(&d, dev));
    CU_OK(cuDevicePrimaryCtxRetain(&ctx, d));
    CU_OK(cuCtxSetCurrent(ctx));
    return ctx;
}

/* The qsim_spin kernel, in a module loaded in the current context. */
static inline CUfunction sim_spin_kernel(void)
{
    CUmodule mod;
    CUfunction f;
    CU_OK(cuModuleLoadData(&mod, "any image"));
    CU_OK(cuModuleGetFunction(&f, mod, "qsim_spin"));
    return f;
}

/* Launches qsim_spin for ns nanoseconds on stream s. */
static inline CUresult sim_spin(CUfunction f, CUstream s, unsigned long long ns)
{
    void *params[] = {&ns};
    return cuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 0, s, params, NULL);
}

/* Milliseconds of device time, as events recorded around it on s measure, that
 * qsim_spin(ns) launched through f took. */
static inline float sim_spin_ms(CUfunction f, CUstream s, unsigned long long ns)
{
    CUevent a, b;
    CU_OK(cuEventCreate(&a, 0));
    CU_OK(cuEventCreate(&b, 0));
    CU_OK(cuEventRecord(a, s));
    CU_OK(sim_spin(f, s, ns));
    CU_OK(cuEventRecord(b, s));
    CU_OK(cuEventSynchronize(b));
    float ms = 0;
    CU_OK(cuEventElapsedTime(&ms, a, b));
    CU_OK(cuEventDestroy(a));
    CU_OK(cuEventDestroy(b));
    return ms;
}

/* Starts tests/progs/sim_worker with argv (NULL-terminated, without the program). */
static inline qt_proc_t *sim_worker_start(const char *const *args, const char *const env[])
{
    const char *argv[16];
    char *bin = qt_build_path("tests/progs/sim_worker");
    argv[0] = bin;
    size_t n = 1;
    while (args[n - 1] && n < 15) {
        argv[n] = args[n - 1];
        n++;
    }
    argv[n] = NULL;
    qt_proc_t *p = qt_spawn(argv, env);
    free(bin);
    cr_assert_not_null(p, "cannot start sim_worker");
    return p;
}

struct sim_line_wait {
    qt_proc_t *proc;  /* whose stdout to read */
    const char *word; /* what to wait for at the start of a line */
};

static inline bool sim_has_line(void *arg)
{
    struct sim_line_wait *w = arg;
    const char *out = qt_proc_stdout(w->proc);
    size_t n = strlen(w->word);
    for (const char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, w->word, n) == 0)
            return true;
    return strncmp(out, "error", 5) == 0; /* it failed: stop waiting */
}

/* Waits up to timeout_ms for a line of p's stdout that starts with word; asserts it came.
 * Returns that line's text after the word (borrowed until the next read of p). */
static inline const char *sim_wait_line(qt_proc_t *p, const char *word, int timeout_ms)
{
    struct sim_line_wait w = {p, word};
    qt_wait_until(sim_has_line, &w, timeout_ms);
    const char *out = qt_proc_stdout(p);
    size_t n = strlen(word);
    for (const char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, word, n) == 0)
            return l + n;
    cr_assert_fail("sim_worker never said \"%s\"; stdout: %s; stderr: %s", word, out,
                   qt_proc_stderr(p));
    return NULL;
}

/* Free bytes on the current context's device. */
static inline size_t sim_free_bytes(void)
{
    size_t free_b, total;
    CU_OK(cuMemGetInfo(&free_b, &total));
    return free_b;
}

#endif
