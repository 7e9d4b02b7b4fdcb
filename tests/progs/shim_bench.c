/* shim_bench.c - the timed part of bench/shim_launch.c and bench/shim_alloc.c, run in a
 * child process with or without the shim preloaded. Prints one line of figures.
 *
 *   shim_bench launch ROUNDS BATCH [procaddr]
 *       launch <median ns per cuLaunchKernel> <min ns>: BATCH launches of a kernel of no
 *       time per round, timed, then a synchronisation outside the timing; the function is
 *       the linked symbol, or with procaddr the pointer cuGetProcAddress gives (as the CUDA
 *       runtime calls it)
 *   shim_bench alloc N BYTES
 *       alloc <median ns> <p90 ns> <p99 ns> per cuMemAlloc_v2 + cuMemFree_v2 pair, each
 *       pair timed alone, after a warm-up */
#include <cuda.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void check(CUresult rc, const char *what)
{
    if (rc != CUDA_SUCCESS) {
        fprintf(stderr, "shim_bench: %s failed: %d\n", what, rc);
        exit(1);
    }
}
#define CHECK(call) check((call), #call)

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

typedef CUresult (*launch_fn)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                              unsigned, unsigned, CUstream, void **, void **);

static void bench_launch(int rounds, int batch, bool procaddr)
{
    CUcontext ctx;
    CUmodule mod;
    CUfunction nop;
    CUstream s;
    CUdevice dev;
    CHECK(cuInit(0));
    CHECK(cuDeviceGet(&dev, 0));
    CHECK(cuDevicePrimaryCtxRetain(&ctx, dev));
    CHECK(cuCtxSetCurrent(ctx));
    CHECK(cuModuleLoadData(&mod, "bench"));
    CHECK(cuModuleGetFunction(&nop, mod, "nop"));
    CHECK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    launch_fn launch = cuLaunchKernel;
    if (procaddr) {
        void *fn = NULL;
        CUdriverProcAddressQueryResult st;
        CHECK(cuGetProcAddress("cuLaunchKernel", &fn, 12000, CU_GET_PROC_ADDRESS_DEFAULT, &st));
        launch = (launch_fn)fn;
    }
    unsigned long long ns = 0;
    void *params[] = {&ns};
    uint64_t *per = calloc((size_t)rounds, sizeof *per);
    for (int r = -2; r < rounds; r++) { /* two rounds of warm-up */
        uint64_t t0 = now_ns();
        for (int i = 0; i < batch; i++)
            launch(nop, 1, 1, 1, 32, 1, 1, 0, s, params, NULL);
        uint64_t t1 = now_ns();
        CHECK(cuStreamSynchronize(s));
        if (r >= 0)
            per[r] = (t1 - t0) / (uint64_t)batch;
    }
    qsort(per, (size_t)rounds, sizeof *per, cmp);
    printf("launch %llu %llu\n", (unsigned long long)per[rounds / 2], (unsigned long long)per[0]);
    free(per);
}

static void bench_alloc(int n, size_t bytes)
{
    CUcontext ctx;
    CUdevice dev;
    CUdeviceptr p;
    CHECK(cuInit(0));
    CHECK(cuDeviceGet(&dev, 0));
    CHECK(cuDevicePrimaryCtxRetain(&ctx, dev));
    CHECK(cuCtxSetCurrent(ctx));
    for (int i = 0; i < 100; i++) { /* warm-up: the first one reserves memory */
        CHECK(cuMemAlloc(&p, bytes));
        CHECK(cuMemFree(p));
    }
    uint64_t *per = calloc((size_t)n, sizeof *per);
    for (int i = 0; i < n; i++) {
        uint64_t t0 = now_ns();
        CHECK(cuMemAlloc(&p, bytes));
        CHECK(cuMemFree(p));
        per[i] = now_ns() - t0;
    }
    qsort(per, (size_t)n, sizeof *per, cmp);
    printf("alloc %llu %llu %llu\n", (unsigned long long)per[n / 2],
           (unsigned long long)per[n * 9 / 10], (unsigned long long)per[n * 99 / 100]);
    free(per);
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "launch") == 0)
        bench_launch(atoi(argv[2]), atoi(argv[3]), argc > 4 && strcmp(argv[4], "procaddr") == 0);
    else if (argc >= 4 && strcmp(argv[1], "alloc") == 0)
        bench_alloc(atoi(argv[2]), (size_t)strtoull(argv[3], NULL, 10));
    else {
        fprintf(stderr, "usage: shim_bench launch ROUNDS BATCH [procaddr] | alloc N BYTES\n");
        return 2;
    }
    return 0;
}
