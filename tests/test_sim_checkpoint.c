/* test_sim_checkpoint.c - the cuCheckpointProcess* family acting on another process:
 * lock, checkpoint, restore onto another simulated GPU, unlock, with the target's
 * pointers and data intact and its memory accounted on the GPU it moved to. */
#include <criterion/criterion.h>
#include <cuda.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "include/nvml_subset.h"
#include "tests/harness.h"
#include "tests/sim_support.h"

static CUprocessState state(pid_t pid)
{
    CUprocessState s = (CUprocessState)-1;
    CU_OK(cuCheckpointProcessGetState(pid, &s));
    return s;
}

static unsigned long long nvml_used(unsigned index)
{
    nvmlDevice_t d;
    nvmlMemory_t m;
    cr_assert_eq(nvmlDeviceGetHandleByIndex_v2(index, &d), NVML_SUCCESS);
    cr_assert_eq(nvmlDeviceGetMemoryInfo(d, &m), NVML_SUCCESS);
    return m.used;
}

/* Pids of the processes NVML lists on device index. */
static unsigned running_on(unsigned index, unsigned pids[8])
{
    nvmlDevice_t d;
    nvmlProcessInfo_t info[8];
    unsigned n = 8;
    cr_assert_eq(nvmlDeviceGetHandleByIndex_v2(index, &d), NVML_SUCCESS);
    cr_assert_eq(nvmlDeviceGetComputeRunningProcesses_v3(d, &n, info), NVML_SUCCESS);
    for (unsigned i = 0; i < n; i++)
        pids[i] = info[i].pid;
    return n;
}

static void uuid_str(const CUuuid *u, char out[64])
{
    const unsigned char *b = (const unsigned char *)u->bytes;
    snprintf(out, 64, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

Test(sim_checkpoint, restore_moves_a_process_to_another_gpu_with_its_data, .timeout = 60)
{
    qt_sim_private("X:1GiB:4,X:1GiB:4,X:64MiB:4,Other:1GiB:4");
    CU_OK(cuInit(0));
    cr_assert_eq(nvmlInit_v2(), NVML_SUCCESS);
    const char *args[] = {"target", "0", "104857600", NULL}; /* 100 MiB on GPU 0 */
    qt_proc_t *t = sim_worker_start(args, NULL);
    sim_wait_line(t, "ready", 10000);
    pid_t pid = qt_proc_pid(t);
    cr_assert_eq(nvml_used(0), SIM_CTX + 100 * MiB, "its context and its allocation");
    cr_assert_eq(state(pid), CU_PROCESS_STATE_RUNNING);
    int tid = 0;
    CU_OK(cuCheckpointProcessGetRestoreThreadId(pid, &tid));
    cr_assert_gt(tid, 0);

    CU_OK(cuCheckpointProcessLock(pid, NULL));
    cr_assert_eq(state(pid), CU_PROCESS_STATE_LOCKED);
    cr_assert_eq(cuCheckpointProcessRestore(pid, NULL), CUDA_ERROR_ILLEGAL_STATE);
    CU_OK(cuCheckpointProcessCheckpoint(pid, NULL));
    cr_assert_eq(state(pid), CU_PROCESS_STATE_CHECKPOINTED);
    cr_assert_eq(nvml_used(0), 0, "its memory and its context left the GPU");
    unsigned pids[8];
    cr_assert_eq(running_on(0, pids), 0);
    cr_assert_eq(cuCheckpointProcessUnlock(pid, NULL), CUDA_ERROR_ILLEGAL_STATE);
    cr_assert_eq(cuCheckpointProcessLock(pid, NULL), CUDA_ERROR_ILLEGAL_STATE);
    cr_assert_eq(cuCheckpointProcessCheckpoint(pid, NULL), CUDA_ERROR_ILLEGAL_STATE);

    CUuuid u0, u1, u2, u3;
    CU_OK(cuDeviceGetUuid(&u0, 0));
    CU_OK(cuDeviceGetUuid(&u1, 1));
    CU_OK(cuDeviceGetUuid(&u2, 2));
    CU_OK(cuDeviceGetUuid(&u3, 3));
    CUcheckpointGpuPair pair = {.oldUuid = u0, .newUuid = u2};
    CUcheckpointRestoreArgs ra = {.gpuPairs = &pair, .gpuPairsCount = 1};
    cr_assert_eq(cuCheckpointProcessRestore(pid, &ra), CUDA_ERROR_OUT_OF_MEMORY,
                 "its context and 100 MiB do not fit in 64 MiB");
    pair.newUuid = u3;
    cr_assert_eq(cuCheckpointProcessRestore(pid, &ra), CUDA_ERROR_INVALID_VALUE, "another chip");
    pair.oldUuid = u1;
    pair.newUuid = u0;
    cr_assert_eq(cuCheckpointProcessRestore(pid, &ra), CUDA_ERROR_INVALID_VALUE,
                 "GPU 0 is missing from the pairs");
    cr_assert_eq(state(pid), CU_PROCESS_STATE_CHECKPOINTED, "failed restores change nothing");
    pair.oldUuid = u0;
    pair.newUuid = u1;
    CU_OK(cuCheckpointProcessRestore(pid, &ra));
    cr_assert_eq(state(pid), CU_PROCESS_STATE_LOCKED);
    cr_assert_eq(nvml_used(0), 0);
    cr_assert_eq(nvml_used(1), SIM_CTX + 100 * MiB, "its memory is on GPU 1 now");
    cr_assert_eq(running_on(1, pids), 1);
    cr_assert_eq(pids[0], (unsigned)pid);
    CU_OK(cuCheckpointProcessUnlock(pid, NULL));
    cr_assert_eq(state(pid), CU_PROCESS_STATE_RUNNING);

    /* The target checks its data through its old pointer and says where it is. */
    qt_proc_kill(t, SIGUSR1);
    cr_assert_eq(qt_proc_wait(t, 10000), 0, "%s%s", qt_proc_stdout(t), qt_proc_stderr(t));
    char want[64], line[128];
    uuid_str(&u1, want);
    snprintf(line, sizeof line, "uuid %s", want);
    const char *out = qt_proc_stdout(t);
    cr_assert(strstr(out, "verify ok"), "%s", out);
    cr_assert(strstr(out, line), "want %s in %s", line, out);
    snprintf(line, sizeof line, "free %llu total %llu", 1 * GiB - SIM_CTX - 100 * MiB, 1 * GiB);
    cr_assert(strstr(out, line), "want %s in %s", line, out);
    qt_proc_destroy(&t);
    nvmlShutdown();
}

Test(sim_checkpoint, a_lock_blocks_the_target_and_honours_its_timeout, .timeout = 60)
{
    qt_sim_private(NULL);
    CU_OK(cuInit(0));
    cr_assert_eq(nvmlInit_v2(), NVML_SUCCESS);
    /* The target keeps 4 kernels of 100 ms queued. */
    const char *args[] = {"flood", "0", "2.5", "100000", NULL};
    qt_proc_t *t = sim_worker_start(args, NULL);
    sim_wait_line(t, "ready", 10000);
    pid_t pid = qt_proc_pid(t);
    qt_sleep_ms(50);

    CUcheckpointLockArgs la = {.timeoutMs = 50};
    uint64_t t0 = qt_now_ns();
    cr_assert_eq(cuCheckpointProcessLock(pid, &la), CUDA_ERROR_NOT_READY, "its work needs longer");
    cr_assert_lt(qt_now_ns() - t0, 500000000ull);
    cr_assert_eq(state(pid), CU_PROCESS_STATE_RUNNING);

    la.timeoutMs = 0; /* no limit: waits for the queue to drain */
    t0 = qt_now_ns();
    CU_OK(cuCheckpointProcessLock(pid, &la));
    cr_assert_geq(qt_now_ns() - t0, 300000000ull, "it drained the queued work");
    cr_assert_eq(state(pid), CU_PROCESS_STATE_LOCKED);

    /* Locked, the target submits nothing: the GPU stays idle. */
    qt_sleep_ms(300);
    nvmlDevice_t d;
    nvmlProcessUtilizationSample_t s[4];
    unsigned n = 4;
    cr_assert_eq(nvmlDeviceGetHandleByIndex_v2(0, &d), NVML_SUCCESS);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long long since =
        (unsigned long long)ts.tv_sec * 1000000u + ts.tv_nsec / 1000 - 250000;
    cr_assert_eq(nvmlDeviceGetProcessUtilization(d, s, &n, since), NVML_SUCCESS);
    cr_assert_eq(n, 1);
    cr_assert_eq(s[0].smUtil, 0, "busy while locked: %u%%", s[0].smUtil);

    CU_OK(cuCheckpointProcessUnlock(pid, NULL));
    cr_assert_eq(qt_proc_wait(t, 20000), 0, "%s", qt_proc_stdout(t));
    qt_proc_destroy(&t);
    nvmlShutdown();
}

Test(sim_checkpoint, a_checkpointer_killed_half_way_does_not_leave_its_target_blocked,
     .timeout = 60)
{
    qt_sim_private(NULL);
    /* The target keeps 4 kernels of 200 ms queued: locking it takes most of a second. */
    const char *args[] = {"flood", "0", "1.5", "200000", NULL};
    qt_proc_t *t = sim_worker_start(args, NULL);
    sim_wait_line(t, "ready", 10000);
    char pid[16];
    snprintf(pid, sizeof pid, "%d", (int)qt_proc_pid(t));
    const char *lock_args[] = {"lock", pid, NULL};
    qt_proc_t *locker = sim_worker_start(lock_args, NULL);
    sim_wait_line(locker, "locking", 10000);
    qt_sleep_ms(100);
    qt_proc_kill(locker, SIGKILL);
    qt_proc_wait(locker, 5000);
    /* Unblocked, the target finishes its 1.5 s of flooding and exits. */
    cr_assert_eq(qt_proc_wait(t, 20000), 0, "%s%s", qt_proc_stdout(t), qt_proc_stderr(t));
    cr_assert_null(strstr(qt_proc_stdout(locker), "locked\n"));
    qt_proc_destroy(&locker);
    qt_proc_destroy(&t);
}

Test(sim_checkpoint, unknown_processes_and_bad_arguments_are_refused)
{
    qt_sim_private(NULL);
    CUprocessState s;
    cr_assert_eq(cuCheckpointProcessGetState(getpid(), &s), CUDA_ERROR_NOT_INITIALIZED);
    CU_OK(cuInit(0));
    CU_OK(cuCheckpointProcessGetState(getpid(), &s));
    cr_assert_eq(s, CU_PROCESS_STATE_RUNNING, "this process itself");
    cr_assert_eq(cuCheckpointProcessGetState(1, &s), CUDA_ERROR_INVALID_VALUE,
                 "not a CUDA process");
    cr_assert_eq(cuCheckpointProcessLock(999999, NULL), CUDA_ERROR_INVALID_VALUE);
    CUcheckpointLockArgs la = {.reserved0 = 1};
    cr_assert_eq(cuCheckpointProcessLock(getpid(), &la), CUDA_ERROR_INVALID_VALUE);
    cr_assert_eq(cuCheckpointProcessGetState(getpid(), NULL), CUDA_ERROR_INVALID_VALUE);
}

/* Share of device index's time process pid had over the last `ms` milliseconds, percent. */
static unsigned sm_util(unsigned index, pid_t pid, unsigned ms)
{
    nvmlDevice_t d;
    nvmlProcessUtilizationSample_t s[8];
    unsigned n = 8;
    cr_assert_eq(nvmlDeviceGetHandleByIndex_v2(index, &d), NVML_SUCCESS);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long long since =
        (unsigned long long)ts.tv_sec * 1000000u + ts.tv_nsec / 1000 - ms * 1000ull;
    if (nvmlDeviceGetProcessUtilization(d, s, &n, since) != NVML_SUCCESS)
        return 0;
    for (unsigned i = 0; i < n; i++)
        if (s[i].pid == (unsigned)pid)
            return s[i].smUtil;
    return 0;
}

Test(sim_checkpoint, a_moved_process_runs_its_kernels_on_the_new_gpu, .timeout = 60)
{
    qt_sim_private("X:1GiB:4,X:1GiB:4");
    CU_OK(cuInit(0));
    cr_assert_eq(nvmlInit_v2(), NVML_SUCCESS);
    /* Floods GPU 0 with 1 ms kernels for 2 s, and fails on any error of the driver. */
    const char *args[] = {"flood", "0", "2", "1000", NULL};
    qt_proc_t *t = sim_worker_start(args, NULL);
    sim_wait_line(t, "ready", 10000);
    pid_t pid = qt_proc_pid(t);
    qt_sleep_ms(300);
    cr_assert_geq(sm_util(0, pid, 250), 80, "it keeps GPU 0 busy");

    CU_OK(cuCheckpointProcessLock(pid, NULL));
    CU_OK(cuCheckpointProcessCheckpoint(pid, NULL));
    /* A whole permutation, as with the real driver: GPU 0 and 1 swapped. */
    CUcheckpointGpuPair pairs[2];
    CU_OK(cuDeviceGetUuid(&pairs[0].oldUuid, 0));
    CU_OK(cuDeviceGetUuid(&pairs[0].newUuid, 1));
    pairs[1].oldUuid = pairs[0].newUuid;
    pairs[1].newUuid = pairs[0].oldUuid;
    CUcheckpointRestoreArgs ra = {.gpuPairs = pairs, .gpuPairsCount = 2};
    CU_OK(cuCheckpointProcessRestore(pid, &ra));
    CU_OK(cuCheckpointProcessUnlock(pid, NULL));

    qt_sleep_ms(400);
    cr_assert_geq(sm_util(1, pid, 250), 80, "its kernels run on GPU 1 now");
    cr_assert_eq(sm_util(0, pid, 250), 0, "and no longer on GPU 0");
    cr_assert_eq(qt_proc_wait(t, 20000), 0, "no call failed: %s%s", qt_proc_stdout(t),
                 qt_proc_stderr(t));
    qt_proc_destroy(&t);
    nvmlShutdown();
}

/* Milliseconds call took. */
#define MS_OF(call)                                                                                \
    ({                                                                                             \
        uint64_t t0_ = qt_now_ns();                                                                \
        CU_OK(call);                                                                               \
        (double)(qt_now_ns() - t0_) / 1e6;                                                         \
    })

Test(sim_checkpoint, checkpoint_and_restore_take_the_time_to_copy_the_memory, .timeout = 60)
{
    qt_sim_private("X:2GiB:4,X:2GiB:4");
    CU_OK(cuInit(0));
    const char *args[] = {"target", "0", "629145600", NULL}; /* 600 MiB */
    qt_proc_t *t = sim_worker_start(args, NULL);
    sim_wait_line(t, "ready", 30000);
    pid_t pid = qt_proc_pid(t);
    CU_OK(cuCheckpointProcessLock(pid, NULL));
    double out = MS_OF(cuCheckpointProcessCheckpoint(pid, NULL));
    CUcheckpointGpuPair pair;
    CU_OK(cuDeviceGetUuid(&pair.oldUuid, 0));
    CU_OK(cuDeviceGetUuid(&pair.newUuid, 1));
    CUcheckpointRestoreArgs ra = {.gpuPairs = &pair, .gpuPairsCount = 1};
    double in = MS_OF(cuCheckpointProcessRestore(pid, &ra));
    CU_OK(cuCheckpointProcessUnlock(pid, NULL));
    /* 600 MiB at 12 GB/s, each way: 52 ms (its context's memory is made again, not
     * copied); sleeps can only be late, and the bound above is for a loaded machine. */
    cr_assert(out >= 52 && out < 2000, "checkpoint took %.1f ms", out);
    cr_assert(in >= 52 && in < 2000, "restore took %.1f ms", in);
    qt_proc_kill(t, SIGUSR1);
    cr_assert_eq(qt_proc_wait(t, 20000), 0, "%s%s", qt_proc_stdout(t), qt_proc_stderr(t));
    cr_assert(strstr(qt_proc_stdout(t), "verify ok"), "%s", qt_proc_stdout(t));
    qt_proc_destroy(&t);
}

Test(sim_checkpoint, r570_has_no_restore_onto_other_gpus, .timeout = 60)
{
    qt_sim_private("X:1GiB:4,X:1GiB:4");
    setenv("QSIM_DRIVER_VERSION", "12080", 1);
    int v = 0;
    CU_OK(cuDriverGetVersion(&v));
    cr_assert_eq(v, 12080);
    CU_OK(cuInit(0));
    void *fn = NULL;
    CUdriverProcAddressQueryResult st;
    CU_OK(cuGetProcAddress_v2("cuCheckpointProcessRestore", &fn, 13000, 0, &st));
    cr_assert_not_null(fn, "r570 has the checkpoint API");
    const char *args[] = {"target", "0", "1048576", NULL};
    qt_proc_t *t = sim_worker_start(args, NULL);
    sim_wait_line(t, "ready", 10000);
    pid_t pid = qt_proc_pid(t);
    CU_OK(cuCheckpointProcessLock(pid, NULL));
    CU_OK(cuCheckpointProcessCheckpoint(pid, NULL));
    CUcheckpointGpuPair pair;
    CU_OK(cuDeviceGetUuid(&pair.oldUuid, 0));
    CU_OK(cuDeviceGetUuid(&pair.newUuid, 1));
    CUcheckpointRestoreArgs ra = {.gpuPairs = &pair, .gpuPairsCount = 1};
    cr_assert_eq(cuCheckpointProcessRestore(pid, &ra), CUDA_ERROR_INVALID_VALUE,
                 "its restore arguments are all reserved");
    CU_OK(cuCheckpointProcessRestore(pid, NULL));
    CU_OK(cuCheckpointProcessUnlock(pid, NULL));
    qt_proc_kill(t, SIGUSR1);
    cr_assert_eq(qt_proc_wait(t, 20000), 0, "%s%s", qt_proc_stdout(t), qt_proc_stderr(t));
    qt_proc_destroy(&t);
}

Test(sim_checkpoint, r550_has_no_checkpoint_api_and_says_its_version)
{
    qt_sim_private(NULL);
    setenv("QSIM_DRIVER_VERSION", "12040", 1);
    CU_OK(cuInit(0));
    int v = 0;
    CU_OK(cuDriverGetVersion(&v));
    cr_assert_eq(v, 12040);
    void *fn = (void *)1;
    CUdriverProcAddressQueryResult st;
    cr_assert_eq(cuGetProcAddress_v2("cuCheckpointProcessLock", &fn, 13000, 0, &st),
                 CUDA_ERROR_NOT_FOUND);
    cr_assert_null(fn);
    cr_assert_eq(st, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND, "unknown to that driver");
    CU_OK(cuGetProcAddress_v2("cuMemAlloc", &fn, 13000, 0, &st));
    cr_assert_not_null(fn, "what it has is found");
    cr_assert_eq(nvmlInit_v2(), NVML_SUCCESS);
    char rel[80];
    cr_assert_eq(nvmlSystemGetDriverVersion(rel, sizeof rel), NVML_SUCCESS);
    cr_assert_str_eq(rel, "550.54.14");
    cr_assert_eq(nvmlSystemGetCudaDriverVersion(&v), NVML_SUCCESS);
    cr_assert_eq(v, 12040);
    nvmlShutdown();
}
