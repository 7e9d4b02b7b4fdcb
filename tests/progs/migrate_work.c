/* migrate_work.c - a workload that is moved to another GPU while it runs (the migration
 * tests and bench/migrate_pause.c).
 *
 *   migrate_work BYTES SECS KERNEL_US
 *
 * Holds BYTES of device memory written with a known pattern (the first 4 KiB of every
 * MiB, so that gigabytes cost the host little: the simulator copies what is charged,
 * whatever was touched), then for SECS seconds
 * launches qsim_spin(KERNEL_US) kernels one after the other (each synchronised), and
 * watches the GPU it sees: CUDA's UUID of device 0, NVML's of index 0 (NVML opened with
 * dlopen, as monitoring libraries do) and CUDA_VISIBLE_DEVICES; and, at the end, the
 * memory NVML shows through the handle it looked up at the start (monitoring libraries
 * keep theirs). Any failed driver call
 * ends it at once with exit status 1 and an "error" line. One line each, for the tests:
 *
 *   ready BYTES                      memory written, kernels about to start
 *   gpu cuda=UUID nvml=UUID env=VAL  at the start, and whenever one of them changes
 *   done kernels=N max_gap_us=G gap_at_ms=T verify=ok|bad free=F total=T over=RESULT
 *        nvml_total=T
 *
 * max_gap_us: the longest time between two kernels' completions, the launch pause a
 * move caused (gap_at_ms: when it ended, from the start); over: what allocating one MiB
 * more than the memory cuMemGetInfo calls free returns at the end (the quota holds:
 * CUDA_ERROR_OUT_OF_MEMORY); nvml_total: nvmlDeviceGetMemoryInfo's total through the
 * first handle (0 when NVML cannot be reached). Single-threaded. */
#include <cuda.h>
#include <dlfcn.h>
#include <inttypes.h>
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

#define CHECK(call)                                                                                \
    do {                                                                                           \
        CUresult rc_ = (call);                                                                     \
        if (rc_ != CUDA_SUCCESS) {                                                                 \
            const char *n_ = "?";                                                                  \
            cuGetErrorName(rc_, &n_);                                                              \
            printf("error %s %s\n", #call, n_);                                                    \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* NVML, reached as a monitoring library does. */
static struct {
    int (*init)(void);
    int (*by_index)(unsigned, void **);
    int (*uuid)(void *, char *, unsigned);
    int (*memory)(void *, unsigned long long[3]); /* nvmlMemory_t: total, free, used */
} nv;

static void nvml_open(void)
{
    void *h = dlopen("libnvidia-ml.so.1", RTLD_NOW);
    if (!h)
        return;
    *(void **)&nv.init = dlsym(h, "nvmlInit_v2");
    *(void **)&nv.by_index = dlsym(h, "nvmlDeviceGetHandleByIndex_v2");
    *(void **)&nv.uuid = dlsym(h, "nvmlDeviceGetUUID");
    *(void **)&nv.memory = dlsym(h, "nvmlDeviceGetMemoryInfo");
    if (!nv.init || !nv.by_index || !nv.uuid || !nv.memory || nv.init() != 0)
        nv.init = NULL;
}

/* What this process sees as its GPU, in one line's words. */
static void seen(char *out, size_t cap)
{
    CUdevice d;
    CUuuid u;
    char cuda[64] = "?", nvml[96] = "?";
    if (cuCtxGetDevice(&d) == CUDA_SUCCESS && cuDeviceGetUuid(&u, d) == CUDA_SUCCESS) {
        const unsigned char *b = (const unsigned char *)u.bytes;
        snprintf(cuda, sizeof cuda,
                 "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
                 b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
                 b[14], b[15]);
    }
    void *h;
    if (nv.init && nv.by_index(0, &h) == 0)
        nv.uuid(h, nvml, sizeof nvml);
    const char *env = getenv("CUDA_VISIBLE_DEVICES");
    snprintf(out, cap, "cuda=%s nvml=%s env=%s", cuda, nvml, env ? env : "(unset)");
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: migrate_work BYTES SECS KERNEL_US\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    size_t bytes = strtoull(argv[1], NULL, 0);
    double secs = atof(argv[2]);
    unsigned long long ns = strtoull(argv[3], NULL, 0) * 1000ull;
    CUdevice dev;
    CUcontext ctx;
    CHECK(cuInit(0));
    CHECK(cuDeviceGet(&dev, 0));
    CHECK(cuDevicePrimaryCtxRetain(&ctx, dev));
    CHECK(cuCtxSetCurrent(ctx));
    nvml_open();
    CUmodule mod;
    CUfunction spin;
    CHECK(cuModuleLoadData(&mod, "qsim"));
    CHECK(cuModuleGetFunction(&spin, mod, "qsim_spin"));
    /* The pattern: 4 KiB at the start of every MiB. */
    enum { PIECE = 1 << 20, MARK = 4096 };
    unsigned char *buf = malloc(PIECE);
    CUdeviceptr p = 0;
    if (!buf)
        return 1;
    if (bytes)
        CHECK(cuMemAlloc(&p, bytes));
    for (size_t off = 0; off < bytes; off += PIECE) {
        size_t n = bytes - off < MARK ? bytes - off : MARK;
        for (size_t i = 0; i < n; i++)
            buf[i] = (unsigned char)((off + i) * 7 + 3);
        CHECK(cuMemcpyHtoD(p + off, buf, n));
    }
    char view[256], last[256];
    seen(last, sizeof last);
    void *first = NULL; /* NVML's handle as the process started */
    if (nv.init && nv.by_index(0, &first) != 0)
        first = NULL;
    printf("ready %zu\ngpu %s\n", bytes, last);
    void *params[] = {&ns};
    uint64_t start = now_ns(), end = start + (uint64_t)(secs * 1e9), prev = start;
    uint64_t max_gap = 0, gap_at = 0, kernels = 0, looked = start;
    while (now_ns() < end) {
        CHECK(cuLaunchKernel(spin, 1, 1, 1, 1, 1, 1, 0, NULL, params, NULL));
        CHECK(cuCtxSynchronize());
        uint64_t t = now_ns();
        kernels++;
        if (t - prev > max_gap) {
            max_gap = t - prev;
            gap_at = t - start;
        }
        prev = t;
        if (t - looked >= 20000000u) { /* every 20 ms */
            looked = t;
            seen(view, sizeof view);
            if (strcmp(view, last) != 0) {
                printf("gpu %s\n", view);
                memcpy(last, view, sizeof last);
            }
        }
    }
    size_t bad = 0;
    for (size_t off = 0; off < bytes; off += PIECE) {
        size_t n = bytes - off < MARK ? bytes - off : MARK;
        CHECK(cuMemcpyDtoH(buf, p + off, n));
        for (size_t i = 0; i < n; i++)
            bad += buf[i] != (unsigned char)((off + i) * 7 + 3);
    }
    size_t free_b = 0, total = 0;
    CHECK(cuMemGetInfo(&free_b, &total));
    CUdeviceptr over = 0;
    CUresult orc = cuMemAlloc(&over, free_b + PIECE);
    const char *oname = "?";
    cuGetErrorName(orc, &oname);
    seen(view, sizeof view);
    if (strcmp(view, last) != 0)
        printf("gpu %s\n", view);
    unsigned long long mem[3] = {0, 0, 0};
    if (first && nv.memory(first, mem) != 0)
        mem[0] = 0;
    printf("done kernels=%" PRIu64 " max_gap_us=%" PRIu64 " gap_at_ms=%" PRIu64
           " verify=%s free=%zu total=%zu over=%s nvml_total=%llu\n",
           kernels, max_gap / 1000, gap_at / 1000000, bad ? "bad" : "ok", free_b, total, oname,
           mem[0]);
    free(buf);
    return 0;
}
