/* test_sim_nvml.c - the simulated NVML: devices as QSIM_GPUS lists them (ignoring
 * CUDA_VISIBLE_DEVICES), the same UUIDs as CUDA, and memory, processes and
 * utilization derived from the shared model. */
#include <criterion/criterion.h>
#include <cuda.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "include/nvml_subset.h"
#include "tests/harness.h"
#include "tests/sim_support.h"

static nvmlDevice_t handle(unsigned i)
{
    nvmlDevice_t d;
    cr_assert_eq(nvmlDeviceGetHandleByIndex_v2(i, &d), NVML_SUCCESS);
    return d;
}

Test(sim_nvml, calls_need_init_and_init_counts)
{
    qt_sim_private(NULL);
    unsigned n;
    cr_assert_eq(nvmlDeviceGetCount_v2(&n), NVML_ERROR_UNINITIALIZED);
    cr_assert_eq(nvmlShutdown(), NVML_ERROR_UNINITIALIZED);
    cr_assert_eq(nvmlInit_v2(), NVML_SUCCESS);
    cr_assert_eq(nvmlInit(), NVML_SUCCESS);
    cr_assert_eq(nvmlShutdown(), NVML_SUCCESS);
    cr_assert_eq(nvmlDeviceGetCount_v2(&n), NVML_SUCCESS, "one init is still open");
    cr_assert_eq(nvmlShutdown(), NVML_SUCCESS);
    cr_assert_eq(nvmlDeviceGetCount_v2(&n), NVML_ERROR_UNINITIALIZED);
    cr_assert_str_eq(nvmlErrorString(NVML_ERROR_NOT_FOUND), "Not Found");
}

Test(sim_nvml, a_bad_qsim_gpus_fails_init)
{
    qt_sim_private("no memory here");
    cr_assert_eq(nvmlInit_v2(), NVML_ERROR_DRIVER_NOT_LOADED);
}

Test(sim_nvml, devices_match_cuda_and_ignore_cuda_visible_devices)
{
    qt_sim_private("NVIDIA H100 80GB HBM3:80GiB:132,NVIDIA GeForce GTX 1080:8GiB:20");
    setenv("CUDA_VISIBLE_DEVICES", "1", 1);
    cr_assert_eq(nvmlInit_v2(), NVML_SUCCESS);
    unsigned n;
    cr_assert_eq(nvmlDeviceGetCount_v2(&n), NVML_SUCCESS);
    cr_assert_eq(n, 2);
    char name[NVML_DEVICE_NAME_V2_BUFFER_SIZE], uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE];
    cr_assert_eq(nvmlDeviceGetName(handle(0), name, sizeof name), NVML_SUCCESS);
    cr_assert_str_eq(name, "NVIDIA H100 80GB HBM3");
    cr_assert_eq(nvmlDeviceGetName(handle(0), name, 4), NVML_ERROR_INSUFFICIENT_SIZE);

    /* CUDA sees only device 1, as its ordinal 0: the same UUID. */
    CUuuid cu;
    CU_OK(cuInit(0));
    CU_OK(cuDeviceGetUuid(&cu, 0));
    cr_assert_eq(nvmlDeviceGetUUID(handle(1), uuid, sizeof uuid), NVML_SUCCESS);
    char want[64];
    snprintf(want, sizeof want,
             "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             (unsigned char)cu.bytes[0], (unsigned char)cu.bytes[1], (unsigned char)cu.bytes[2],
             (unsigned char)cu.bytes[3], (unsigned char)cu.bytes[4], (unsigned char)cu.bytes[5],
             (unsigned char)cu.bytes[6], (unsigned char)cu.bytes[7], (unsigned char)cu.bytes[8],
             (unsigned char)cu.bytes[9], (unsigned char)cu.bytes[10], (unsigned char)cu.bytes[11],
             (unsigned char)cu.bytes[12], (unsigned char)cu.bytes[13], (unsigned char)cu.bytes[14],
             (unsigned char)cu.bytes[15]);
    cr_assert_str_eq(uuid, want);
    nvmlDevice_t by_uuid;
    cr_assert_eq(nvmlDeviceGetHandleByUUID(uuid, &by_uuid), NVML_SUCCESS);
    cr_assert_eq(by_uuid, handle(1));
    unsigned index;
    cr_assert_eq(nvmlDeviceGetIndex(by_uuid, &index), NVML_SUCCESS);
    cr_assert_eq(index, 1);
    cr_assert_eq(nvmlDeviceGetHandleByUUID("GPU-nope", &by_uuid), NVML_ERROR_NOT_FOUND);
    cr_assert_eq(nvmlDeviceGetHandleByIndex_v2(2, &by_uuid), NVML_ERROR_INVALID_ARGUMENT);
    nvmlShutdown();
}

Test(sim_nvml, capabilities_cores_and_versions)
{
    qt_sim_private("NVIDIA H100 80GB HBM3:80GiB:132");
    cr_assert_eq(nvmlInit_v2(), NVML_SUCCESS);
    unsigned cores;
    int major, minor, cuda;
    nvmlDeviceAttributes_t attr;
    cr_assert_eq(nvmlDeviceGetNumGpuCores(handle(0), &cores), NVML_SUCCESS);
    cr_assert_eq(cores, 132 * 128);
    cr_assert_eq(nvmlDeviceGetAttributes_v2(handle(0), &attr), NVML_SUCCESS);
    cr_assert_eq(attr.multiprocessorCount, 132);
    cr_assert_eq(attr.memorySizeMB, 80 * 1024);
    cr_assert_eq(nvmlDeviceGetCudaComputeCapability(handle(0), &major, &minor), NVML_SUCCESS);
    cr_assert_eq(major * 10 + minor, 90);
    cr_assert_eq(nvmlSystemGetCudaDriverVersion_v2(&cuda), NVML_SUCCESS);
    cr_assert_eq(cuda, 13000);
    char v[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE];
    cr_assert_eq(nvmlSystemGetDriverVersion(v, sizeof v), NVML_SUCCESS);
    cr_assert(strchr(v, '.'), "%s", v);
    nvmlShutdown();
}

Test(sim_nvml, memory_and_running_processes_follow_the_model)
{
    qt_sim_private("Small:1GiB:4");
    cr_assert_eq(nvmlInit_v2(), NVML_SUCCESS);
    nvmlMemory_t m;
    cr_assert_eq(nvmlDeviceGetMemoryInfo(handle(0), &m), NVML_SUCCESS);
    cr_assert_eq(m.total, 1 * GiB);
    cr_assert_eq(m.used, 0);
    unsigned n = 0;
    cr_assert_eq(nvmlDeviceGetComputeRunningProcesses_v3(handle(0), &n, NULL), NVML_SUCCESS);
    cr_assert_eq(n, 0);

    const char *args[] = {"alloc", "0", "104857600", NULL}; /* 100 MiB */
    qt_proc_t *w = sim_worker_start(args, NULL);
    sim_wait_line(w, "ready", 10000);
    /* What the process holds is its allocation plus what its context costs. */
    const unsigned long long held = 100 * MiB + SIM_CTX;
    nvmlMemory_v2_t m2 = {.version = nvmlMemory_v2};
    cr_assert_eq(nvmlDeviceGetMemoryInfo_v2(handle(0), &m2), NVML_SUCCESS);
    cr_assert_eq(m2.used, held);
    cr_assert_eq(m2.free, 1 * GiB - held);
    m2.version = 1;
    cr_assert_eq(nvmlDeviceGetMemoryInfo_v2(handle(0), &m2), NVML_ERROR_ARGUMENT_VERSION_MISMATCH);

    /* The size protocol, then each layout. */
    n = 0;
    cr_assert_eq(nvmlDeviceGetComputeRunningProcesses_v3(handle(0), &n, NULL),
                 NVML_ERROR_INSUFFICIENT_SIZE);
    cr_assert_eq(n, 1);
    nvmlProcessInfo_t infos[4];
    n = 4;
    cr_assert_eq(nvmlDeviceGetComputeRunningProcesses_v3(handle(0), &n, infos), NVML_SUCCESS);
    cr_assert_eq(n, 1);
    cr_assert_eq(infos[0].pid, (unsigned)qt_proc_pid(w));
    cr_assert_eq(infos[0].usedGpuMemory, held);
    cr_assert_eq(infos[0].gpuInstanceId, 0xFFFFFFFFu);
    n = 4;
    cr_assert_eq(nvmlDeviceGetComputeRunningProcesses_v2(handle(0), &n, infos), NVML_SUCCESS);
    cr_assert_eq(infos[0].usedGpuMemory, held);
    nvmlProcessInfo_v1_t v1[4];
    n = 4;
    cr_assert_eq(nvmlDeviceGetComputeRunningProcesses(handle(0), &n, v1), NVML_SUCCESS);
    cr_assert_eq(n, 1);
    cr_assert_eq(v1[0].pid, (unsigned)qt_proc_pid(w));
    cr_assert_eq(v1[0].usedGpuMemory, held);

    /* The detail list (r550): same figures, its own layout, version and mode checked. */
    nvmlProcessDetail_v1_t det[4];
    nvmlProcessDetailList_t list = {.version = nvmlProcessDetailList_v1,
                                    .mode = NVML_PROCESS_MODE_COMPUTE};
    cr_assert_eq(nvmlDeviceGetRunningProcessDetailList(handle(0), &list),
                 NVML_ERROR_INSUFFICIENT_SIZE, "no array: the count");
    cr_assert_eq(list.numProcArrayEntries, 1);
    list.procArray = det;
    list.numProcArrayEntries = 4;
    cr_assert_eq(nvmlDeviceGetRunningProcessDetailList(handle(0), &list), NVML_SUCCESS);
    cr_assert_eq(list.numProcArrayEntries, 1);
    cr_assert_eq(det[0].pid, (unsigned)qt_proc_pid(w));
    cr_assert_eq(det[0].usedGpuMemory, held);
    cr_assert_eq(det[0].usedGpuCcProtectedMemory, 0);
    list.version = 1;
    cr_assert_eq(nvmlDeviceGetRunningProcessDetailList(handle(0), &list),
                 NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
    list.version = nvmlProcessDetailList_v1;
    list.mode = 3;
    cr_assert_eq(nvmlDeviceGetRunningProcessDetailList(handle(0), &list),
                 NVML_ERROR_INVALID_ARGUMENT);

    /* No graphics clients and no MPS server on a simulated GPU. */
    list.mode = NVML_PROCESS_MODE_GRAPHICS;
    list.numProcArrayEntries = 4;
    cr_assert_eq(nvmlDeviceGetRunningProcessDetailList(handle(0), &list), NVML_SUCCESS);
    cr_assert_eq(list.numProcArrayEntries, 0);
    n = 4;
    cr_assert_eq(nvmlDeviceGetGraphicsRunningProcesses_v3(handle(0), &n, infos), NVML_SUCCESS);
    cr_assert_eq(n, 0);
    n = 4;
    cr_assert_eq(nvmlDeviceGetMPSComputeRunningProcesses(handle(0), &n, v1), NVML_SUCCESS);
    cr_assert_eq(n, 0);

    /* Killed: gone from the list and its memory free, without anyone else calling CUDA. */
    qt_proc_kill(w, SIGKILL);
    qt_proc_wait(w, 5000);
    n = 4;
    cr_assert_eq(nvmlDeviceGetComputeRunningProcesses_v3(handle(0), &n, infos), NVML_SUCCESS);
    cr_assert_eq(n, 0);
    cr_assert_eq(nvmlDeviceGetMemoryInfo(handle(0), &m), NVML_SUCCESS);
    cr_assert_eq(m.used, 0);
    qt_proc_destroy(&w);
    nvmlShutdown();
}

Test(sim_nvml, each_context_costs_its_process_device_memory)
{
    /* Two created contexts and a primary one, then one destroyed; a cost of our own. */
    qt_sim_private("Small:1GiB:4");
    setenv("QSIM_CONTEXT_MEMORY", "100MiB", 1);
    cr_assert_eq(nvmlInit_v2(), NVML_SUCCESS);
    CU_OK(cuInit(0));
    nvmlProcessInfo_t infos[4];
    unsigned n = 4;
    cr_assert_eq(nvmlDeviceGetComputeRunningProcesses_v3(handle(0), &n, infos), NVML_SUCCESS);
    cr_assert_eq(n, 0, "cuInit alone makes no context");
    CUcontext a, b;
    CU_OK(cuCtxCreate(&a, NULL, 0, 0));
    CU_OK(cuCtxCreate(&b, NULL, 0, 0));
    sim_up(0);
    n = 4;
    cr_assert_eq(nvmlDeviceGetComputeRunningProcesses_v3(handle(0), &n, infos), NVML_SUCCESS);
    cr_assert_eq(n, 1);
    cr_assert_eq(infos[0].pid, (unsigned)getpid());
    cr_assert_eq(infos[0].usedGpuMemory, 300 * MiB, "three contexts of 100 MiB");
    cr_assert_eq(sim_free_bytes(), 1 * GiB - 300 * MiB, "cuMemGetInfo counts them too");
    CU_OK(cuCtxDestroy(b));
    n = 4;
    cr_assert_eq(nvmlDeviceGetComputeRunningProcesses_v3(handle(0), &n, infos), NVML_SUCCESS);
    cr_assert_eq(infos[0].usedGpuMemory, 200 * MiB);

    /* A device too full for one more refuses the context, as a real one does. */
    CUdeviceptr p;
    CU_OK(cuMemAlloc(&p, 1 * GiB - 200 * MiB - 50 * MiB));
    CUcontext c;
    cr_assert_eq(cuCtxCreate(&c, NULL, 0, 0), CUDA_ERROR_OUT_OF_MEMORY);
    n = 4;
    cr_assert_eq(nvmlDeviceGetComputeRunningProcesses_v3(handle(0), &n, infos), NVML_SUCCESS);
    cr_assert_eq(infos[0].usedGpuMemory, 1 * GiB - 50 * MiB, "the refused one cost nothing");
    nvmlShutdown();
}

Test(sim_nvml, a_bad_context_cost_is_refused_in_one_line)
{
    qt_sim_private(NULL);
    setenv("QSIM_CONTEXT_MEMORY", "lots", 1);
    cr_assert_eq(nvmlInit_v2(), NVML_ERROR_DRIVER_NOT_LOADED);
    cr_assert_eq(cuInit(0), CUDA_ERROR_INVALID_VALUE);
    setenv("QSIM_CONTEXT_MEMORY", "0", 1);
    cr_assert_eq(nvmlInit_v2(), NVML_SUCCESS, "0: contexts cost nothing");
    nvmlShutdown();
}

/* Field `field` (1-based, counted after the command name) of /proc/pid/stat. */
static long stat_field(unsigned pid, int field)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%u/stat", pid);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    for (int i = 2; p && i < field; i++)
        p = strchr(p + 1, ' ');
    return p ? atol(p + 1) : -1;
}

Test(sim_nvml, a_process_in_a_pid_namespace_of_its_own_is_listed_by_the_pid_the_host_sees)
{
    /* As the real driver does: NVML names processes by host pid, whatever namespace they
     * run in; the arbiter matches tenants in containers by it. */
    qt_sim_private("Small:1GiB:4");
    cr_assert_eq(nvmlInit_v2(), NVML_SUCCESS);
    char *worker = qt_build_path("tests/progs/sim_worker");
    const char *argv[] = {"unshare", "--pid",     "--fork", "--kill-child", worker, "alloc",
                          "0",       "104857600", NULL};
    qt_proc_t *u = qt_spawn(argv, NULL);
    cr_assert_not_null(u);
    free(worker);
    sim_wait_line(u, "ready", 10000);
    nvmlProcessInfo_t infos[4];
    unsigned n = 4;
    cr_assert_eq(nvmlDeviceGetComputeRunningProcesses_v3(handle(0), &n, infos), NVML_SUCCESS);
    cr_assert_eq(n, 1);
    unsigned pid = infos[0].pid;
    cr_assert_neq(pid, 1, "not the pid it has in its own namespace");
    cr_assert_eq(stat_field(pid, 4), (long)qt_proc_pid(u), "unshare's child: the worker");
    cr_assert_eq(infos[0].usedGpuMemory, 100 * MiB + SIM_CTX);
    nvmlProcessUtilizationSample_t util[4];
    n = 4;
    cr_assert_eq(nvmlDeviceGetProcessUtilization(handle(0), util, &n, 0), NVML_SUCCESS);
    cr_assert_eq(n, 1);
    cr_assert_eq(util[0].pid, pid, "the same pid in every list");
    qt_proc_destroy(&u);
    nvmlShutdown();
}

static unsigned long long realtime_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (unsigned long long)ts.tv_sec * 1000000u + (unsigned long long)ts.tv_nsec / 1000u;
}

Test(sim_nvml, utilization_reflects_engine_activity)
{
    qt_sim_private(NULL);
    cr_assert_eq(nvmlInit_v2(), NVML_SUCCESS);
    nvmlUtilization_t u;
    cr_assert_eq(nvmlDeviceGetUtilizationRates(handle(0), &u), NVML_SUCCESS);
    cr_assert_eq(u.gpu, 0);

    /* This process keeps the GPU busy for 300 ms out of the last second. */
    sim_up(0);
    CUfunction spin = sim_spin_kernel();
    qt_sleep_ms(700);
    CU_OK(sim_spin(spin, NULL, 300000000ull));
    CU_OK(cuCtxSynchronize());
    cr_assert_eq(nvmlDeviceGetUtilizationRates(handle(0), &u), NVML_SUCCESS);
    cr_assert(u.gpu >= 28 && u.gpu <= 33, "gpu %u%%", u.gpu);

    /* Its samples: the size query, then its own share since a recent time stamp. */
    nvmlProcessUtilizationSample_t s[4];
    unsigned n = 0;
    cr_assert_eq(nvmlDeviceGetProcessUtilization(handle(0), NULL, &n, 0),
                 NVML_ERROR_INSUFFICIENT_SIZE);
    cr_assert_eq(n, 1);
    unsigned long long since = realtime_us();
    qt_sleep_ms(250);
    CU_OK(sim_spin(spin, NULL, 250000000ull));
    CU_OK(cuCtxSynchronize());
    n = 4;
    cr_assert_eq(nvmlDeviceGetProcessUtilization(handle(0), s, &n, since), NVML_SUCCESS);
    cr_assert_eq(n, 1);
    cr_assert_eq(s[0].pid, (unsigned)getpid());
    cr_assert_gt(s[0].timeStamp, since);
    cr_assert(s[0].smUtil >= 45 && s[0].smUtil <= 55, "busy half of the last 500 ms: %u%%",
              s[0].smUtil);
    /* Nothing is newer than a time stamp still to come. */
    n = 4;
    cr_assert_eq(nvmlDeviceGetProcessUtilization(handle(0), s, &n, s[0].timeStamp + 10000000),
                 NVML_ERROR_NOT_FOUND);
    nvmlShutdown();
}
