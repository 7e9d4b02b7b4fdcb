/* test_sim_dlopen.c - the simulated driver opened at run time, as the shim and NVML
 * users open it: a dlclose must not pull the code from under the driver's own thread
 * or its thread-exit handlers. This file calls the driver only through dlsym, so the
 * test binary does not link libcuda and the dlclose is real. */
#include <criterion/criterion.h>
#include <cuda.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>

#include "tests/harness.h"

/* Opens build/sim/libcuda.so.1, brings up device 0, makes this thread's per-thread
 * default stream (whose cleanup runs at thread exit) and closes the library. */
static void *use_and_close(void *arg)
{
    (void)arg;
    char *path = qt_build_path("sim/libcuda.so.1");
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    free(path);
    if (!lib)
        return (void *)1;
    CUresult (*init)(unsigned) = (CUresult(*)(unsigned))dlsym(lib, "cuInit");
    CUresult (*retain)(CUcontext *, CUdevice) =
        (CUresult(*)(CUcontext *, CUdevice))dlsym(lib, "cuDevicePrimaryCtxRetain");
    CUresult (*set)(CUcontext) = (CUresult(*)(CUcontext))dlsym(lib, "cuCtxSetCurrent");
    CUresult (*sync)(CUstream) = (CUresult(*)(CUstream))dlsym(lib, "cuStreamSynchronize");
    CUcontext ctx;
    bool ok = init && retain && set && sync && init(0) == CUDA_SUCCESS &&
              retain(&ctx, 0) == CUDA_SUCCESS && set(ctx) == CUDA_SUCCESS &&
              sync(CU_STREAM_PER_THREAD) == CUDA_SUCCESS;
    dlclose(lib);
    return ok ? NULL : (void *)2;
}

Test(sim_dlopen, a_dlclose_after_cuInit_leaves_the_driver_in_place)
{
    qt_sim_private(NULL);
    pthread_t t;
    void *rc = (void *)3;
    cr_assert_eq(pthread_create(&t, NULL, use_and_close, NULL), 0);
    cr_assert_eq(pthread_join(t, &rc), 0); /* the thread's exit ran the driver's cleanup */
    cr_assert_null(rc, "the driver calls failed (%p)", rc);
    char *path = qt_build_path("sim/libcuda.so.1");
    void *lib = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    free(path);
    cr_assert_not_null(lib, "the driver was unloaded");
    dlclose(lib);
}
