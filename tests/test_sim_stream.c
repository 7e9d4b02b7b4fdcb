/* test_sim_stream.c - streams (created, legacy, per-thread) and events: ordering,
 * cross-device waits, queries, elapsed times and their errors. */
#include <criterion/criterion.h>
#include <cuda.h>
#include <pthread.h>

#include "tests/harness.h"
#include "tests/sim_support.h"

Test(sim_stream, events_report_progress_and_elapsed_time)
{
    qt_sim_private(NULL);
    sim_up(0);
    CUfunction spin = sim_spin_kernel();
    CUstream s;
    CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    CUevent a, b, untimed, never;
    CU_OK(cuEventCreate(&a, CU_EVENT_DEFAULT));
    CU_OK(cuEventCreate(&b, CU_EVENT_BLOCKING_SYNC));
    CU_OK(cuEventCreate(&untimed, CU_EVENT_DISABLE_TIMING));
    CU_OK(cuEventCreate(&never, 0));
    CU_OK(cuEventQuery(never));
    CU_OK(cuEventRecord(a, s));
    CU_OK(sim_spin(spin, s, 30000000ull));
    CU_OK(cuEventRecord(b, s));
    CU_OK(cuEventRecord(untimed, s));
    cr_assert_eq(cuEventQuery(b), CUDA_ERROR_NOT_READY);
    cr_assert_eq(cuStreamQuery(s), CUDA_ERROR_NOT_READY);
    float ms;
    cr_assert_eq(cuEventElapsedTime(&ms, a, b), CUDA_ERROR_NOT_READY);
    CU_OK(cuEventSynchronize(b));
    CU_OK(cuEventQuery(b));
    CU_OK(cuEventElapsedTime(&ms, a, b));
    cr_assert(ms >= 30.0f && ms < 31.0f, "%f ms", ms);
    CU_OK(cuEventElapsedTime(&ms, b, a));
    cr_assert(ms <= -30.0f, "negative when the end comes first: %f", ms);
    cr_assert_eq(cuEventElapsedTime(&ms, a, untimed), CUDA_ERROR_INVALID_HANDLE);
    cr_assert_eq(cuEventElapsedTime(&ms, a, never), CUDA_ERROR_INVALID_HANDLE);
    CU_OK(cuEventDestroy(never));
    cr_assert_eq(cuEventQuery(never), CUDA_ERROR_INVALID_HANDLE);
    cr_assert_eq(cuEventCreate(&never, 0x100), CUDA_ERROR_INVALID_VALUE);
    CU_OK(cuStreamSynchronize(s));
    CU_OK(cuStreamQuery(s));
}

Test(sim_stream, a_stream_waits_for_an_event_of_another_device)
{
    qt_sim_private("A:1GiB:4,B:1GiB:4");
    CU_OK(cuInit(0));
    CUcontext c0, c1;
    CU_OK(cuCtxCreate(&c0, NULL, 0, 0));
    CUfunction spin0 = sim_spin_kernel();
    CUevent done0;
    CU_OK(cuEventCreate(&done0, 0));
    CU_OK(cuCtxCreate(&c1, NULL, 0, 1));
    CUfunction spin1 = sim_spin_kernel();
    CUstream s1;
    CU_OK(cuStreamCreate(&s1, 0));

    uint64_t t0 = qt_now_ns();
    CU_OK(cuCtxSetCurrent(c0));
    CU_OK(sim_spin(spin0, NULL, 40000000ull));
    CU_OK(cuEventRecord(done0, NULL));
    CU_OK(cuCtxSetCurrent(c1));
    CU_OK(cuStreamWaitEvent(s1, done0, 0));
    CU_OK(sim_spin(spin1, s1, 5000000ull));
    CU_OK(cuStreamSynchronize(s1));
    uint64_t ns = qt_now_ns() - t0;
    cr_assert(ns >= 45000000ull && ns < 120000000ull, "%.1f ms", (double)ns / 1e6);
    CU_OK(cuEventSynchronize(done0));
}

Test(sim_stream, a_destroyed_stream_finishes_its_work)
{
    qt_sim_private(NULL);
    sim_up(0);
    CUfunction spin = sim_spin_kernel();
    CUstream s;
    CU_OK(cuStreamCreate(&s, 0));
    CU_OK(sim_spin(spin, s, 30000000ull));
    uint64_t t0 = qt_now_ns();
    CU_OK(cuStreamDestroy(s));
    cr_assert_lt(qt_now_ns() - t0, 20000000ull, "destroy does not wait");
    cr_assert_eq(cuStreamQuery(s), CUDA_ERROR_INVALID_HANDLE);
    CU_OK(cuCtxSynchronize());
    cr_assert_geq(qt_now_ns() - t0, 25000000ull, "the context still waited for it");
    cr_assert_eq(cuStreamDestroy(NULL), CUDA_ERROR_INVALID_HANDLE);
}

struct thread_ids {
    unsigned long long per_thread, legacy;
};

static void *stream_ids(void *arg)
{
    struct thread_ids *ids = arg;
    CUcontext ctx;
    cuDevicePrimaryCtxRetain(&ctx, 0);
    cuCtxSetCurrent(ctx);
    cuStreamGetId(CU_STREAM_PER_THREAD, &ids->per_thread);
    cuStreamGetId(CU_STREAM_LEGACY, &ids->legacy);
    return NULL;
}

Test(sim_stream, default_streams_legacy_is_shared_and_per_thread_is_not)
{
    qt_sim_private(NULL);
    sim_up(0);
    struct thread_ids mine, other;
    stream_ids(&mine);
    pthread_t t;
    pthread_create(&t, NULL, stream_ids, &other);
    pthread_join(t, NULL);
    cr_assert_eq(mine.legacy, other.legacy);
    cr_assert_neq(mine.per_thread, other.per_thread);
    cr_assert_neq(mine.per_thread, mine.legacy);
    unsigned long long null_id;
    CU_OK(cuStreamGetId(NULL, &null_id));
    cr_assert_eq(null_id, mine.legacy, "NULL is the legacy stream for plain entry points");

    /* The _ptsz variant, as a per-thread-default-stream program binds it, reads NULL as
     * the per-thread stream. */
    CUresult (*get_id_ptsz)(CUstream, unsigned long long *);
    CU_OK(cuGetProcAddress_v2("cuStreamGetId", (void **)&get_id_ptsz, 13000,
                              CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, NULL));
    CU_OK(get_id_ptsz(NULL, &null_id));
    cr_assert_eq(null_id, mine.per_thread);
}

Test(sim_stream, stream_properties)
{
    qt_sim_private(NULL);
    CUcontext ctx = sim_up(0);
    int least, greatest, prio;
    CU_OK(cuCtxGetStreamPriorityRange(&least, &greatest));
    cr_assert_eq(least, 0);
    cr_assert_lt(greatest, 0);
    CUstream s;
    CU_OK(cuStreamCreateWithPriority(&s, CU_STREAM_NON_BLOCKING, -100));
    CU_OK(cuStreamGetPriority(s, &prio));
    cr_assert_eq(prio, greatest, "clamped to the range");
    unsigned flags;
    CU_OK(cuStreamGetFlags(s, &flags));
    cr_assert_eq(flags, CU_STREAM_NON_BLOCKING);
    CUcontext owner;
    CU_OK(cuStreamGetCtx(s, &owner));
    cr_assert_eq(owner, ctx);
    CUgreenCtx green = (CUgreenCtx)1;
    CU_OK(cuStreamGetCtx_v2(s, &owner, &green));
    cr_assert_eq(owner, ctx);
    cr_assert_null(green);
    CUdevice dev = -1;
    CU_OK(cuStreamGetDevice(s, &dev));
    cr_assert_eq(dev, 0);
    cr_assert_eq(cuStreamCreate(&s, 0x40), CUDA_ERROR_INVALID_VALUE);
}

Test(sim_stream, ptsz_and_ptds_variants_work_on_the_per_thread_stream)
{
    qt_sim_private(NULL);
    sim_up(0);
    CUfunction spin = sim_spin_kernel();
    const cuuint64_t pt = CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM;
    CUresult (*launch)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                       unsigned, CUstream, void **, void **);
    CUresult (*htod)(CUdeviceptr, const void *, size_t);
    CUresult (*query)(CUstream);
    CU_OK(cuGetProcAddress_v2("cuLaunchKernel", (void **)&launch, 13000, pt, NULL));
    CU_OK(cuGetProcAddress_v2("cuMemcpyHtoD", (void **)&htod, 13000, pt, NULL));
    CU_OK(cuGetProcAddress_v2("cuStreamQuery", (void **)&query, 13000, pt, NULL));
    unsigned long long ns = 40000000;
    void *params[] = {&ns};
    CU_OK(launch(spin, 1, 1, 1, 1, 1, 1, 0, NULL, params, NULL));
    cr_assert_eq(query(NULL), CUDA_ERROR_NOT_READY, "NULL is the busy per-thread stream");
    cr_assert_eq(cuStreamQuery(CU_STREAM_PER_THREAD), CUDA_ERROR_NOT_READY);
    CUstream other;
    CU_OK(cuStreamCreate(&other, CU_STREAM_NON_BLOCKING));
    CU_OK(cuStreamQuery(other));
    /* A synchronous _ptds copy waits for the per-thread stream's kernel. */
    CUdeviceptr d;
    int v = 42;
    CU_OK(cuMemAlloc(&d, sizeof v));
    uint64_t t0 = qt_now_ns();
    CU_OK(htod(d, &v, sizeof v));
    cr_assert_geq(qt_now_ns() - t0, 30000000ull);
    CU_OK(query(NULL));
}
