/* sim_selfcheck.c - a short self-check of the GPU driver a program finds: the simulated
 * one (LD_LIBRARY_PATH=build/sim) or a real NVIDIA driver. Linked like a real CUDA
 * program, against the toolkit's stub libcuda.so; NVML is opened at run time.
 *
 *   sim_selfcheck           checks devices, memory, copies, a timed kernel and NVML
 *   sim_selfcheck --sim     the same, holding the simulator to its exact model
 *   sim_selfcheck --probe   exits 0 when a real NVIDIA driver (not build/sim) reports a
 *                           device through NVML, 1 otherwise; prints nothing
 *
 * The kernel is PTX of its own: it spins on %globaltimer for its parameter's
 * nanoseconds, which is what the simulator's qsim_spin models, so the same timing check
 * runs on both. Exits 0 when every check passed. Single-threaded. */
#include <cuda.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "include/nvml_subset.h"

#define MiB (1024.0 * 1024.0)
#define SPIN_NS 100000000ull /* the timed kernel: 100 ms */

static const char spin_ptx[] = ".version 7.0\n"
                               ".target sm_52\n"
                               ".address_size 64\n"
                               ".visible .entry qsim_spin(.param .u64 qsim_spin_param_0)\n"
                               "{\n"
                               "    .reg .pred %p<2>;\n"
                               "    .reg .b64 %rd<5>;\n"
                               "    ld.param.u64 %rd1, [qsim_spin_param_0];\n"
                               "    mov.u64 %rd2, %globaltimer;\n"
                               "$L_spin:\n"
                               "    mov.u64 %rd3, %globaltimer;\n"
                               "    sub.s64 %rd4, %rd3, %rd2;\n"
                               "    setp.lt.u64 %p1, %rd4, %rd1;\n"
                               "    @%p1 bra $L_spin;\n"
                               "    ret;\n"
                               "}\n";

static int failures;

static void verdict(bool ok, const char *what)
{
    printf("  %-8s %s\n", ok ? "ok" : "FAILED", what);
    failures += !ok;
}

/* Prints the failed call and returns false when rc is not CUDA_SUCCESS. */
static bool cu(CUresult rc, const char *call)
{
    if (rc == CUDA_SUCCESS)
        return true;
    const char *name = "?";
    cuGetErrorName(rc, &name);
    printf("  FAILED   %s: %s (%d)\n", call, name, (int)rc);
    failures++;
    return false;
}
#define CU(call) cu((call), #call)

/* ---- NVML, opened at run time ------------------------------------------------------ */

struct nvml {
    void *lib;
    nvmlReturn_t (*init)(void);
    nvmlReturn_t (*shutdown)(void);
    nvmlReturn_t (*count)(unsigned *);
    nvmlReturn_t (*handle)(unsigned, nvmlDevice_t *);
    nvmlReturn_t (*name)(nvmlDevice_t, char *, unsigned);
    nvmlReturn_t (*memory)(nvmlDevice_t, nvmlMemory_t *);
    nvmlReturn_t (*util)(nvmlDevice_t, nvmlUtilization_t *);
    nvmlReturn_t (*procs)(nvmlDevice_t, unsigned *, nvmlProcessInfo_t *);
};

static bool nvml_open(struct nvml *n)
{
    memset(n, 0, sizeof *n);
    if (!(n->lib = dlopen("libnvidia-ml.so.1", RTLD_NOW)))
        return false;
    *(void **)&n->init = dlsym(n->lib, "nvmlInit_v2");
    *(void **)&n->shutdown = dlsym(n->lib, "nvmlShutdown");
    *(void **)&n->count = dlsym(n->lib, "nvmlDeviceGetCount_v2");
    *(void **)&n->handle = dlsym(n->lib, "nvmlDeviceGetHandleByIndex_v2");
    *(void **)&n->name = dlsym(n->lib, "nvmlDeviceGetName");
    *(void **)&n->memory = dlsym(n->lib, "nvmlDeviceGetMemoryInfo");
    *(void **)&n->util = dlsym(n->lib, "nvmlDeviceGetUtilizationRates");
    *(void **)&n->procs = dlsym(n->lib, "nvmlDeviceGetComputeRunningProcesses_v3");
    return n->init && n->shutdown && n->count && n->handle && n->name && n->memory && n->util &&
           n->procs;
}

/* True when the NVML this process would load is a real driver's (not this build's
 * simulator) and reports a device. */
static int probe(const char *self)
{
    struct nvml n;
    unsigned count = 0;
    if (!nvml_open(&n) || n.init() != NVML_SUCCESS)
        return 1;
    int rc = n.count(&count) == NVML_SUCCESS && count > 0 ? 0 : 1;
    n.shutdown();
    Dl_info info;
    char lib[PATH_MAX], sim[PATH_MAX], exe[PATH_MAX];
    if (rc == 0 && dladdr(*(void **)&n.init, &info) && realpath(info.dli_fname, lib) &&
        realpath(self, exe)) {
        /* The simulator sits at <build>/sim; this program at <build>/tests/progs. */
        snprintf(sim, sizeof sim, "%s", exe);
        for (int up = 0; up < 3; up++)
            *strrchr(sim, '/') = '\0';
        strncat(sim, "/sim/", sizeof sim - strlen(sim) - 1);
        if (strncmp(lib, sim, strlen(sim)) == 0)
            rc = 1;
    }
    return rc;
}

/* used_mib: what this process allocated; ctx_mib: device memory in use once its context
 * existed, before it allocated (on the simulator, alone on its host: the context's cost). */
static void check_nvml(bool sim, double used_mib, double ctx_mib, unsigned timed_ms)
{
    struct nvml n;
    printf("NVML's view\n");
    if (!nvml_open(&n)) {
        verdict(false, "libnvidia-ml.so.1 cannot be loaded");
        return;
    }
    unsigned count = 0;
    if (n.init() != NVML_SUCCESS || n.count(&count) != NVML_SUCCESS) {
        verdict(false, "nvmlInit_v2 / nvmlDeviceGetCount_v2 failed");
        return;
    }
    nvmlDevice_t d;
    char name[NVML_DEVICE_NAME_V2_BUFFER_SIZE] = "?";
    nvmlMemory_t mem = {0};
    nvmlUtilization_t u = {0};
    nvmlProcessInfo_t procs[64];
    unsigned np = 64;
    bool ok = n.handle(0, &d) == NVML_SUCCESS && n.name(d, name, sizeof name) == NVML_SUCCESS &&
              n.memory(d, &mem) == NVML_SUCCESS && n.util(d, &u) == NVML_SUCCESS &&
              n.procs(d, &np, procs) == NVML_SUCCESS;
    bool listed = false;
    unsigned long long mine = 0;
    for (unsigned i = 0; ok && i < np; i++) {
        if (procs[i].pid == (unsigned)getpid()) {
            listed = true;
            mine = procs[i].usedGpuMemory;
        }
    }
    printf("  %u device(s); [0] %s: %.0f of %.0f MiB used, GPU %u%% busy over the last "
           "second, %u process(es) running\n",
           count, name, mem.used / MiB, mem.total / MiB, u.gpu, np);
    printf("  this process is %s", listed ? "listed" : "not listed (another pid namespace?)");
    if (listed)
        printf(" with %.0f MiB: %.0f MiB allocated, %.0f MiB the driver's own", mine / MiB,
               used_mib, mine / MiB - used_mib);
    printf("\n");
    verdict(ok && count > 0, "NVML answers for device 0");
    if (sim) {
        /* The simulator must agree with itself exactly. */
        verdict(listed && mine / MiB == used_mib + ctx_mib,
                "it lists this process with its memory and its context's");
        unsigned expect = timed_ms / 10; /* the kernel's share of the last second */
        verdict(u.gpu + 2 >= expect && u.gpu <= expect + 3, "its utilization shows the kernel");
    }
    n.shutdown();
}

int main(int argc, char **argv)
{
    bool sim = argc > 1 && strcmp(argv[1], "--sim") == 0;
    if (argc > 1 && strcmp(argv[1], "--probe") == 0)
        return probe(argv[0]);
    if (argc > 1 && !sim) {
        fprintf(stderr, "usage: sim_selfcheck [--sim | --probe]\n");
        return 2;
    }
    printf("qvgpu self-check of the %s\n", sim ? "simulated GPU (build/sim)" : "NVIDIA driver");
    int version = 0, count = 0;
    if (!CU(cuInit(0)) || !CU(cuDriverGetVersion(&version)) || !CU(cuDeviceGetCount(&count)))
        return 1;
    printf("driver: CUDA %d.%d, %d device(s)\n", version / 1000, version % 1000 / 10, count);
    for (int i = 0; i < count; i++) {
        char name[128];
        size_t mem = 0;
        int sms = 0, major = 0, minor = 0;
        CUuuid u;
        CU(cuDeviceGetName(name, sizeof name, i));
        CU(cuDeviceTotalMem(&mem, i));
        CU(cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, i));
        CU(cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, i));
        CU(cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, i));
        CU(cuDeviceGetUuid(&u, i));
        const unsigned char *b = (const unsigned char *)u.bytes;
        printf("  [%d] %s, %.0f MiB, %d SMs, compute %d.%d, GPU-%02x%02x%02x%02x-...\n", i, name,
               mem / MiB, sms, major, minor, b[0], b[1], b[2], b[3]);
    }
    verdict(count > 0, "at least one device");
    if (count == 0)
        return 1;

    printf("device 0\n");
    CUcontext ctx;
    if (!CU(cuDevicePrimaryCtxRetain(&ctx, 0)) || !CU(cuCtxSetCurrent(ctx)))
        return 1;
    size_t free0 = 0, free1 = 0, total = 0;
    const size_t bytes = 256u << 20;
    CUdeviceptr d = 0, e = 0;
    CU(cuMemGetInfo(&free0, &total));
    printf("  context: %.0f MiB of device memory in use before any allocation\n",
           (total - free0) / MiB);
    bool alloc_ok = CU(cuMemAlloc(&d, bytes));
    CU(cuMemGetInfo(&free1, &total));
    printf("  memory: %.0f MiB free of %.0f MiB; %.0f MiB free after allocating 256 MiB\n",
           free0 / MiB, total / MiB, free1 / MiB);
    /* Exact on the simulator; a real driver may round up or see other processes. */
    double drop = ((double)free0 - (double)free1) / MiB;
    verdict(alloc_ok && (sim ? drop == 256 : drop >= 250 && drop <= 320),
            "an allocation shows in the free memory");

    const size_t n = 4u << 20;
    unsigned char *src = malloc(n), *dst = calloc(1, n);
    for (size_t i = 0; src && i < n; i++)
        src[i] = (unsigned char)(i * 31 + 7);
    bool copied = src && dst && alloc_ok && CU(cuMemAlloc(&e, n)) && CU(cuMemcpyHtoD(d, src, n)) &&
                  CU(cuMemcpyDtoD(e, d, n)) && CU(cuMemcpyDtoH(dst, e, n)) &&
                  memcmp(src, dst, n) == 0;
    verdict(copied, "4 MiB host -> device -> device -> host comes back unchanged");
    free(src);
    free(dst);

    CUmodule mod;
    CUfunction spin;
    CUevent t0, t1;
    unsigned long long ns = SPIN_NS;
    void *params[] = {&ns};
    float ms = 0;
    bool timed = CU(cuModuleLoadData(&mod, spin_ptx)) &&
                 CU(cuModuleGetFunction(&spin, mod, "qsim_spin")) && CU(cuEventCreate(&t0, 0)) &&
                 CU(cuEventCreate(&t1, 0)) && CU(cuEventRecord(t0, NULL)) &&
                 CU(cuLaunchKernel(spin, 1, 1, 1, 1, 1, 1, 0, NULL, params, NULL)) &&
                 CU(cuEventRecord(t1, NULL)) && CU(cuEventSynchronize(t1)) &&
                 CU(cuEventElapsedTime(&ms, t0, t1));
    printf("  kernel: a %.1f ms spin took %.3f ms between its events\n", SPIN_NS / 1e6, ms);
    verdict(timed && ms >= SPIN_NS / 1e6 && ms < SPIN_NS / 1e6 * 1.1, "its time matches");

    check_nvml(sim, 256 + 4, (total - free0) / MiB, (unsigned)(ms + 0.5));
    if (e)
        cuMemFree(e);
    if (d)
        cuMemFree(d);
    printf(failures ? "self-check FAILED (%d)\n" : "self-check passed\n", failures);
    return failures ? 1 : 0;
}
