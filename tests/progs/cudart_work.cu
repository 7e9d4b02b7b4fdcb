// cudart_work.cu - a CUDA C++ program as users write them: the runtime API, linked
// statically as nvcc does by default, a <<<>>> launch. tests/test_sim_cudart.c runs it on
// the simulated driver, inside a vGPU and without; scripts/gpu-check.sh on a real GPU.
//
// Each step prints one line: its name, the cudaError_t it got, then figures:
//   count <rc> <devices>
//   malloc <rc>                           cudaMalloc of 64 MiB
//   meminfo <rc> <free> <total>           cudaMemGetInfo, in bytes
//   copy <rc> <same>                      4 KiB there and back; same is 1 when intact
//   launch <rc> <ms>                      the spin kernel for 20 ms on a stream of its
//                                         own, timed with events around it
//   launch_default <rc>                   2 x 64 threads on the default stream, synced
//   over_quota <rc>                       cudaMalloc of twice the total: refused
//   reset <rc>                            cudaDeviceReset
//   after_reset <rc>                      cudaMalloc and cudaFree again
//   done
// Exit status 0 when every step gave what it should, 1 otherwise.
#include <cstdio>
#include <cstring>
#include <cuda_runtime.h>

// The kernel the simulator models by its name: it spins on the global timer for its
// parameter's nanoseconds. extern "C", so that the name is not mangled.
extern "C" __global__ void qsim_spin(unsigned long long ns)
{
    unsigned long long start, now;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
    do {
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    } while (now - start < ns);
}

static bool ok = true;

static cudaError_t step(const char *name, cudaError_t rc, cudaError_t want = cudaSuccess)
{
    if (rc != want) {
        ok = false;
        std::fprintf(stderr, "cudart_work: %s: %s (%d), want %s\n", name, cudaGetErrorName(rc),
                     (int)rc, cudaGetErrorName(want));
    }
    return rc;
}

int main()
{
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    int n = 0;
    cudaError_t rc = step("count", cudaGetDeviceCount(&n));
    std::printf("count %d %d\n", (int)rc, n);

    void *p = nullptr;
    rc = step("malloc", cudaMalloc(&p, 64 << 20));
    std::printf("malloc %d\n", (int)rc);

    size_t free_b = 0, total = 0;
    rc = step("meminfo", cudaMemGetInfo(&free_b, &total));
    std::printf("meminfo %d %zu %zu\n", (int)rc, free_b, total);

    static char h[4096], g[4096];
    for (int i = 0; i < 4096; i++)
        h[i] = (char)(i * 7);
    rc = step("copy", cudaMemcpy(p, h, sizeof h, cudaMemcpyHostToDevice));
    if (rc == cudaSuccess)
        rc = step("copy back", cudaMemcpy(g, p, sizeof g, cudaMemcpyDeviceToHost));
    bool same = std::memcmp(g, h, sizeof h) == 0;
    ok &= same;
    std::printf("copy %d %d\n", (int)rc, same);

    cudaStream_t s;
    cudaEvent_t a, b;
    float ms = -1;
    rc = step("stream", cudaStreamCreate(&s));
    if (rc == cudaSuccess)
        rc = step("events", cudaEventCreate(&a));
    if (rc == cudaSuccess)
        rc = step("events", cudaEventCreate(&b));
    if (rc == cudaSuccess) {
        step("record", cudaEventRecord(a, s));
        qsim_spin<<<1, 32, 0, s>>>(20000000ull);
        rc = step("launch", cudaGetLastError());
        step("record", cudaEventRecord(b, s));
        step("stream sync", cudaStreamSynchronize(s));
        step("elapsed", cudaEventElapsedTime(&ms, a, b));
        step("event destroy", cudaEventDestroy(a));
        step("event destroy", cudaEventDestroy(b));
        step("stream destroy", cudaStreamDestroy(s));
    }
    if (ms < 19.9f)
        ok = false;
    std::printf("launch %d %.3f\n", (int)rc, ms);

    qsim_spin<<<2, 64>>>(1000000ull);
    rc = step("launch_default", cudaGetLastError());
    if (rc == cudaSuccess)
        rc = step("device sync", cudaDeviceSynchronize());
    std::printf("launch_default %d\n", (int)rc);

    void *big = nullptr;
    rc = step("over_quota", cudaMalloc(&big, 2 * total), cudaErrorMemoryAllocation);
    cudaGetLastError(); // the refusal is sticky until read, as in any program
    std::printf("over_quota %d\n", (int)rc);

    step("free", cudaFree(p));
    rc = step("reset", cudaDeviceReset());
    std::printf("reset %d\n", (int)rc);
    rc = step("after_reset", cudaMalloc(&p, 1 << 20));
    if (rc == cudaSuccess)
        rc = step("after_reset free", cudaFree(p));
    std::printf("after_reset %d\n", (int)rc);
    std::printf("done\n");
    return ok ? 0 : 1;
}
