/* sim_launch.c - what the driver's hot calls cost: a kernel launch, an event record, a
 * stream query, a small synchronous copy, and the launch-to-completion round trip. On
 * the simulated driver (make bench B=sim) these are the figures the shim's overhead bench
 * compares against. Single-threaded; prints one line per figure. */
#include <cuda.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int check(CUresult rc, const char *what)
{
    if (rc != CUDA_SUCCESS) {
        const char *name = "?";
        cuGetErrorName(rc, &name);
        fprintf(stderr, "sim_launch: %s failed: %s\n", what, name);
        exit(1);
    }
    return 0;
}
#define CHECK(call) check((call), #call)

int main(void)
{
    enum { N = 20000 };
    CUcontext ctx;
    CUmodule mod;
    CUfunction nop, spin;
    CHECK(cuInit(0));
    CHECK(cuDevicePrimaryCtxRetain(&ctx, 0));
    CHECK(cuCtxSetCurrent(ctx));
    CHECK(cuModuleLoadData(&mod, "bench"));
    CHECK(cuModuleGetFunction(&nop, mod, "nop"));
    CHECK(cuModuleGetFunction(&spin, mod, "qsim_spin"));
    CUstream s;
    CHECK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    unsigned long long ns = 1000;
    void *params[] = {&ns};

    double t0 = now_us();
    for (int i = 0; i < N; i++)
        CHECK(cuLaunchKernel(nop, 1, 1, 1, 32, 1, 1, 0, s, params, NULL));
    double t1 = now_us();
    CHECK(cuStreamSynchronize(s));
    printf("launch (kernel of no time)      %8.2f us\n", (t1 - t0) / N);

    t0 = now_us();
    for (int i = 0; i < 1000; i++)
        CHECK(cuLaunchKernel(spin, 1, 1, 1, 32, 1, 1, 0, s, params, NULL));
    t1 = now_us();
    CHECK(cuStreamSynchronize(s));
    printf("launch (qsim_spin 1 us)         %8.2f us\n", (t1 - t0) / 1000);

    CUevent ev;
    CHECK(cuEventCreate(&ev, CU_EVENT_DISABLE_TIMING));
    t0 = now_us();
    for (int i = 0; i < N; i++)
        CHECK(cuEventRecord(ev, s));
    t1 = now_us();
    printf("event record                    %8.2f us\n", (t1 - t0) / N);

    t0 = now_us();
    for (int i = 0; i < N; i++)
        cuStreamQuery(s);
    t1 = now_us();
    printf("stream query                    %8.2f us\n", (t1 - t0) / N);

    CUdeviceptr d;
    int v = 0;
    CHECK(cuMemAlloc(&d, 4096));
    t0 = now_us();
    for (int i = 0; i < 1000; i++)
        CHECK(cuMemcpyHtoD(d, &v, sizeof v));
    t1 = now_us();
    printf("4-byte synchronous copy         %8.2f us (model: 8 us of device time)\n",
           (t1 - t0) / 1000);

    t0 = now_us();
    for (int i = 0; i < 200; i++) {
        CHECK(cuLaunchKernel(spin, 1, 1, 1, 32, 1, 1, 0, s, params, NULL));
        CHECK(cuStreamSynchronize(s));
    }
    t1 = now_us();
    printf("1 us kernel, launch to sync     %8.2f us\n", (t1 - t0) / 200);
    CHECK(cuMemFree(d));
    return 0;
}
