/* test_sim_ctx.c - primary and created contexts, the per-thread context stack, and the
 * memory a context takes with it when it goes. */
#include <criterion/criterion.h>
#include <cuda.h>
#include <pthread.h>

#include "tests/harness.h"
#include "tests/sim_support.h"

Test(sim_ctx, the_primary_context_is_retained_released_and_reset)
{
    qt_sim_private("Small:1GiB:4");
    CU_OK(cuInit(0));
    unsigned flags;
    int active;
    CU_OK(cuDevicePrimaryCtxGetState(0, &flags, &active));
    cr_assert_eq(active, 0);
    cr_assert_eq(cuDevicePrimaryCtxRelease(0), CUDA_ERROR_INVALID_CONTEXT, "never retained");

    CU_OK(cuDevicePrimaryCtxSetFlags(0, CU_CTX_SCHED_BLOCKING_SYNC));
    CUcontext a, b;
    CU_OK(cuDevicePrimaryCtxRetain(&a, 0));
    CU_OK(cuDevicePrimaryCtxRetain(&b, 0));
    cr_assert_eq(a, b, "one primary context per device");
    CU_OK(cuDevicePrimaryCtxGetState(0, &flags, &active));
    cr_assert_eq(active, 1);
    cr_assert_eq(flags, CU_CTX_SCHED_BLOCKING_SYNC);
    cr_assert_eq(cuCtxDestroy(a), CUDA_ERROR_INVALID_CONTEXT, "not for cuCtxDestroy");

    CU_OK(cuCtxSetCurrent(a));
    CUdeviceptr p;
    CU_OK(cuMemAlloc(&p, 100 * MiB));
    CU_OK(cuDevicePrimaryCtxRelease(0));
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX - 100 * MiB, "still retained once");
    CU_OK(cuDevicePrimaryCtxReset(0));
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX, "a reset frees the context's memory");
    CU_OK(cuMemAlloc(&p, 100 * MiB));
    CU_OK(cuDevicePrimaryCtxRelease(0));
    CU_OK(cuDevicePrimaryCtxGetState(0, &flags, &active));
    cr_assert_eq(active, 0, "the last release resets it");
    cr_assert_eq(cuMemAlloc(&p, 1), CUDA_ERROR_CONTEXT_IS_DESTROYED,
                 "the released context is still this thread's current one");
    CU_OK(cuDevicePrimaryCtxRetain(&b, 0));
    cr_assert_eq(a, b, "the same handle comes back");
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX);
}

Test(sim_ctx, created_contexts_stack_and_destroy_pops)
{
    qt_sim_private("A:1GiB:4,B:1GiB:4");
    CU_OK(cuInit(0));
    CUcontext c0, c1, cur;
    CUdevice dev;
    CU_OK(cuCtxGetCurrent(&cur));
    cr_assert_null(cur);
    cr_assert_eq(cuCtxGetDevice(&dev), CUDA_ERROR_INVALID_CONTEXT);
    CU_OK(cuCtxCreate(&c0, NULL, 0, 0));
    CU_OK(cuCtxCreate(&c1, NULL, CU_CTX_SCHED_SPIN, 1));
    CU_OK(cuCtxGetCurrent(&cur));
    cr_assert_eq(cur, c1, "a created context is pushed");
    CU_OK(cuCtxGetDevice(&dev));
    cr_assert_eq(dev, 1);
    CU_OK(cuCtxGetDevice_v2(&dev, c0));
    cr_assert_eq(dev, 0);
    unsigned flags;
    CU_OK(cuCtxGetFlags(&flags));
    cr_assert_eq(flags & CU_CTX_SCHED_MASK, CU_CTX_SCHED_SPIN);
    unsigned long long id0, id1;
    CU_OK(cuCtxGetId(c0, &id0));
    CU_OK(cuCtxGetId(c1, &id1));
    cr_assert_neq(id0, id1);

    CU_OK(cuCtxPopCurrent(&cur));
    cr_assert_eq(cur, c1);
    CU_OK(cuCtxGetCurrent(&cur));
    cr_assert_eq(cur, c0);
    CU_OK(cuCtxPushCurrent(c1));
    CU_OK(cuCtxDestroy(c1));
    CU_OK(cuCtxGetCurrent(&cur));
    cr_assert_eq(cur, c0, "destroying the current context pops it");
    cr_assert_eq(cuCtxPushCurrent(c1), CUDA_ERROR_INVALID_CONTEXT);
    CU_OK(cuCtxSetCurrent(NULL));
    CU_OK(cuCtxGetCurrent(&cur));
    cr_assert_null(cur);
    cr_assert_eq(cuCtxPopCurrent(&cur), CUDA_ERROR_INVALID_CONTEXT);
    cr_assert_eq(cuCtxCreate(&c1, NULL, CU_CTX_SCHED_SPIN | CU_CTX_SCHED_YIELD, 0),
                 CUDA_ERROR_INVALID_VALUE);
    cr_assert_eq(cuCtxCreate(&c1, NULL, 0, 2), CUDA_ERROR_INVALID_DEVICE);
    CU_OK(cuCtxDestroy(c0));
}

Test(sim_ctx, destroying_a_context_frees_its_memory)
{
    qt_sim_private("Small:1GiB:4");
    CU_OK(cuInit(0));
    CUcontext keep, c;
    CU_OK(cuCtxCreate(&keep, NULL, 0, 0));
    CU_OK(cuCtxCreate(&c, NULL, 0, 0));
    CUdeviceptr p;
    CU_OK(cuMemAlloc(&p, 300 * MiB));
    CU_OK(cuCtxSetCurrent(keep));
    cr_assert_eq(sim_free_bytes(), 1 * GiB - 2 * SIM_CTX - 300 * MiB);
    CU_OK(cuCtxDestroy(c));
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX, "its allocation and its own cost");
    cr_assert_eq(cuMemFree(p), CUDA_ERROR_INVALID_VALUE, "it went with its context");
}

static void *other_thread(void *arg)
{
    CUcontext cur = (CUcontext)1;
    cuCtxGetCurrent(&cur);
    *(CUcontext *)arg = cur;
    return NULL;
}

Test(sim_ctx, the_current_context_belongs_to_one_thread)
{
    qt_sim_private(NULL);
    CUcontext mine = sim_up(0), theirs = (CUcontext)1;
    pthread_t t;
    pthread_create(&t, NULL, other_thread, &theirs);
    pthread_join(t, NULL);
    cr_assert_not_null(mine);
    cr_assert_null(theirs);
}

Test(sim_ctx, synchronize_waits_for_the_context_work)
{
    qt_sim_private(NULL);
    sim_up(0);
    CUfunction spin = sim_spin_kernel();
    CU_OK(sim_spin(spin, NULL, 30000000ull));
    uint64_t t0 = qt_now_ns();
    CU_OK(cuCtxSynchronize());
    cr_assert_geq(qt_now_ns() - t0, 25000000ull);
    size_t v;
    CU_OK(cuCtxGetLimit(&v, CU_LIMIT_STACK_SIZE));
    CU_OK(cuCtxSetLimit(CU_LIMIT_STACK_SIZE, 4096));
    CU_OK(cuCtxGetLimit(&v, CU_LIMIT_STACK_SIZE));
    cr_assert_eq(v, 4096);
}
