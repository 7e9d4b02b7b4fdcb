/* nvml.c - the simulated libnvidia-ml.so.1: every function of include/nvml_subset.h,
 * answered from the simulated host's shared state. As the real NVML, it ignores
 * CUDA_VISIBLE_DEVICES: index i is QSIM_GPUS entry i.
 * Threads: any. nvml_g.lock guards initialisation; queries read the host under its lock. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "include/nvml_subset.h"
#include "sim/clock.h"
#include "sim/config.h"
#include "sim/engine.h"
#include "sim/host.h"

#define QSIM_NVML_API __attribute__((visibility("default")))

/* The driver release a CUDA 13.0 driver ships as. */
/* The window of nvmlDeviceGetUtilizationRates. */
#define UTIL_WINDOW_NS 1000000000ull

struct nvmlDevice_st {
    int index; /* device index in the host */
};

/* All mutable global state of the simulated NVML. */
static struct {
    pthread_mutex_t lock;                        /* guards the rest */
    int refs;                                    /* nvmlInit calls not yet shut down */
    qsim_host_t *host;                           /* set while refs > 0 */
    const struct qsim_driver *driver;            /* the release simulated, set with host */
    struct nvmlDevice_st devs[QSIM_MAX_DEVICES]; /* the handles: &devs[i] */
} nvml_g = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* ---- init -------------------------------------------------------------------------- */

static nvmlReturn_t init(void)
{
    pthread_mutex_lock(&nvml_g.lock);
    nvmlReturn_t rc = NVML_SUCCESS;
    if (nvml_g.refs == 0) {
        char err[QSIM_ERR_LEN];
        qsim_config_t *cfg = malloc(sizeof *cfg);
        if (!cfg) {
            rc = NVML_ERROR_MEMORY;
        } else if (qsim_config_from_env(cfg, err) < 0 ||
                   qsim_host_open(cfg, &nvml_g.host, err) < 0) {
            fprintf(stderr, "%s\n", err);
            rc = NVML_ERROR_DRIVER_NOT_LOADED; /* the simulated driver cannot start */
        } else {
            nvml_g.driver = cfg->driver;
        }
        free(cfg);
        for (int i = 0; i < QSIM_MAX_DEVICES; i++)
            nvml_g.devs[i].index = i;
    }
    if (rc == NVML_SUCCESS)
        nvml_g.refs++;
    pthread_mutex_unlock(&nvml_g.lock);
    return rc;
}

QSIM_NVML_API nvmlReturn_t nvmlInit_v2(void)
{
    return init();
}

QSIM_NVML_API nvmlReturn_t nvmlInit(void)
{
    return init();
}

QSIM_NVML_API nvmlReturn_t nvmlInitWithFlags(unsigned int flags)
{
    (void)flags; /* NO_GPUS and NO_ATTACH change nothing for simulated GPUs */
    return init();
}

QSIM_NVML_API nvmlReturn_t nvmlShutdown(void)
{
    pthread_mutex_lock(&nvml_g.lock);
    nvmlReturn_t rc = NVML_SUCCESS;
    if (nvml_g.refs == 0)
        rc = NVML_ERROR_UNINITIALIZED;
    else if (--nvml_g.refs == 0)
        qsim_host_close(&nvml_g.host);
    pthread_mutex_unlock(&nvml_g.lock);
    return rc;
}

QSIM_NVML_API const char *nvmlErrorString(nvmlReturn_t result)
{
    switch (result) {
    case NVML_SUCCESS:
        return "Success";
    case NVML_ERROR_UNINITIALIZED:
        return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT:
        return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED:
        return "Not Supported";
    case NVML_ERROR_NO_PERMISSION:
        return "Insufficient Permissions";
    case NVML_ERROR_ALREADY_INITIALIZED:
        return "Already Initialized";
    case NVML_ERROR_NOT_FOUND:
        return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE:
        return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED:
        return "Driver Not Loaded";
    case NVML_ERROR_TIMEOUT:
        return "Timeout";
    case NVML_ERROR_LIBRARY_NOT_FOUND:
        return "Library Not Found";
    case NVML_ERROR_FUNCTION_NOT_FOUND:
        return "Function Not Found";
    case NVML_ERROR_GPU_IS_LOST:
        return "GPU is lost";
    case NVML_ERROR_MEMORY:
        return "Insufficient Memory";
    case NVML_ERROR_NO_DATA:
        return "No data";
    case NVML_ERROR_ARGUMENT_VERSION_MISMATCH:
        return "Argument version mismatch";
    default:
        return "Unknown Error";
    }
}

/* ---- access helpers ---------------------------------------------------------------- */

/* The host, locked, in *s: NVML_SUCCESS, or the error to return (the lock not held). */
static nvmlReturn_t lock_host(struct qsim_shm **s)
{
    if (!nvml_g.host)
        return NVML_ERROR_UNINITIALIZED;
    if (qsim_host_lock(nvml_g.host) < 0)
        return NVML_ERROR_UNKNOWN;
    *s = qsim_host_shm(nvml_g.host);
    return NVML_SUCCESS;
}

static void unlock_host(void)
{
    qsim_host_unlock(nvml_g.host);
}

/* Device index of handle h, or -1 when h is not one of ours. */
static int index_of(nvmlDevice_t h)
{
    if (!nvml_g.host || h < &nvml_g.devs[0] || h >= &nvml_g.devs[QSIM_MAX_DEVICES])
        return -1;
    int i = (int)(h - nvml_g.devs);
    return (uint32_t)i < qsim_host_shm(nvml_g.host)->ndev ? i : -1;
}

/* Checks init and the handle: NVML_SUCCESS and the device in *dev, or the error. */
static nvmlReturn_t device(nvmlDevice_t h, const struct qsim_dev **dev, int *index)
{
    if (!nvml_g.host)
        return NVML_ERROR_UNINITIALIZED;
    int i = index_of(h);
    if (i < 0)
        return NVML_ERROR_INVALID_ARGUMENT;
    *dev = &qsim_host_shm(nvml_g.host)->dev[i];
    if (index)
        *index = i;
    return NVML_SUCCESS;
}

static nvmlReturn_t copy_string(char *out, unsigned length, const char *s)
{
    if (!out)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(s) + 1 > length)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(out, s, strlen(s) + 1);
    return NVML_SUCCESS;
}

/* ---- system ------------------------------------------------------------------------ */

QSIM_NVML_API nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length)
{
    if (!nvml_g.host)
        return NVML_ERROR_UNINITIALIZED;
    return copy_string(version, length, nvml_g.driver->release);
}

static nvmlReturn_t cuda_driver_version(int *v)
{
    if (!v)
        return NVML_ERROR_INVALID_ARGUMENT;
    /* Answered before nvmlInit too, so from the environment (a bad value, which
     * nvmlInit refuses, reads as the default). */
    char err[QSIM_ERR_LEN];
    const struct qsim_driver *d = qsim_config_driver(getenv("QSIM_DRIVER_VERSION"), err);
    if (!d)
        d = qsim_config_driver(NULL, err);
    *v = d->cuda;
    return NVML_SUCCESS;
}

QSIM_NVML_API nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *cudaDriverVersion)
{
    return cuda_driver_version(cudaDriverVersion);
}

QSIM_NVML_API nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *cudaDriverVersion)
{
    return cuda_driver_version(cudaDriverVersion);
}

static nvmlReturn_t device_count(unsigned *count)
{
    if (!nvml_g.host)
        return NVML_ERROR_UNINITIALIZED;
    if (!count)
        return NVML_ERROR_INVALID_ARGUMENT;
    *count = qsim_host_shm(nvml_g.host)->ndev;
    return NVML_SUCCESS;
}

QSIM_NVML_API nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *deviceCount)
{
    return device_count(deviceCount);
}

QSIM_NVML_API nvmlReturn_t nvmlDeviceGetCount(unsigned int *deviceCount)
{
    return device_count(deviceCount);
}

static nvmlReturn_t handle_by_index(unsigned index, nvmlDevice_t *device_out)
{
    if (!nvml_g.host)
        return NVML_ERROR_UNINITIALIZED;
    if (!device_out || index >= qsim_host_shm(nvml_g.host)->ndev)
        return NVML_ERROR_INVALID_ARGUMENT;
    *device_out = &nvml_g.devs[index];
    return NVML_SUCCESS;
}

QSIM_NVML_API nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
    return handle_by_index(index, device);
}

QSIM_NVML_API nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *device)
{
    return handle_by_index(index, device);
}

QSIM_NVML_API nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device_out)
{
    if (!nvml_g.host)
        return NVML_ERROR_UNINITIALIZED;
    if (!uuid || !device_out)
        return NVML_ERROR_INVALID_ARGUMENT;
    const struct qsim_shm *s = qsim_host_shm(nvml_g.host);
    for (uint32_t i = 0; i < s->ndev; i++) {
        char u[QSIM_UUID_STR_LEN];
        qsim_config_uuid_str(s->dev[i].uuid, u);
        if (strcmp(u, uuid) == 0) {
            *device_out = &nvml_g.devs[i];
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_NOT_FOUND;
}

/* ---- device descriptions ----------------------------------------------------------- */

QSIM_NVML_API nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t h, unsigned int *index)
{
    const struct qsim_dev *d;
    int i;
    nvmlReturn_t rc = device(h, &d, &i);
    if (rc == NVML_SUCCESS && !index)
        rc = NVML_ERROR_INVALID_ARGUMENT;
    if (rc == NVML_SUCCESS)
        *index = (unsigned)i;
    return rc;
}

QSIM_NVML_API nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t h, char *name, unsigned int length)
{
    const struct qsim_dev *d;
    nvmlReturn_t rc = device(h, &d, NULL);
    return rc == NVML_SUCCESS ? copy_string(name, length, d->name) : rc;
}

QSIM_NVML_API nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t h, char *uuid, unsigned int length)
{
    const struct qsim_dev *d;
    nvmlReturn_t rc = device(h, &d, NULL);
    if (rc != NVML_SUCCESS)
        return rc;
    char u[QSIM_UUID_STR_LEN];
    qsim_config_uuid_str(d->uuid, u);
    return copy_string(uuid, length, u);
}

QSIM_NVML_API nvmlReturn_t nvmlDeviceGetNumGpuCores(nvmlDevice_t h, unsigned int *numCores)
{
    const struct qsim_dev *d;
    nvmlReturn_t rc = device(h, &d, NULL);
    if (rc == NVML_SUCCESS && !numCores)
        rc = NVML_ERROR_INVALID_ARGUMENT;
    if (rc == NVML_SUCCESS)
        *numCores = d->sms * 128u;
    return rc;
}

QSIM_NVML_API nvmlReturn_t nvmlDeviceGetAttributes_v2(nvmlDevice_t h, nvmlDeviceAttributes_t *a)
{
    const struct qsim_dev *d;
    nvmlReturn_t rc = device(h, &d, NULL);
    if (rc == NVML_SUCCESS && !a)
        rc = NVML_ERROR_INVALID_ARGUMENT;
    if (rc != NVML_SUCCESS)
        return rc;
    memset(a, 0, sizeof *a);
    a->multiprocessorCount = d->sms;
    a->sharedCopyEngineCount = 2;
    a->sharedDecoderCount = 1;
    a->sharedEncoderCount = 1;
    a->memorySizeMB = d->total >> 20;
    return NVML_SUCCESS;
}

QSIM_NVML_API nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t h, int *major,
                                                              int *minor)
{
    const struct qsim_dev *d;
    nvmlReturn_t rc = device(h, &d, NULL);
    if (rc == NVML_SUCCESS && (!major || !minor))
        rc = NVML_ERROR_INVALID_ARGUMENT;
    if (rc == NVML_SUCCESS) {
        *major = d->cc_major;
        *minor = d->cc_minor;
    }
    return rc;
}

/* ---- memory ------------------------------------------------------------------------ */

/* total and used of device h, after reaping dead processes. */
static nvmlReturn_t memory(nvmlDevice_t h, unsigned long long *total, unsigned long long *used)
{
    const struct qsim_dev *d;
    nvmlReturn_t rc = device(h, &d, NULL);
    struct qsim_shm *s;
    if (rc != NVML_SUCCESS || (rc = lock_host(&s)) != NVML_SUCCESS)
        return rc;
    qsim_host_reap_locked(s, true);
    *total = d->total;
    *used = d->used;
    unlock_host();
    return NVML_SUCCESS;
}

QSIM_NVML_API nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t h, nvmlMemory_t *m)
{
    if (!m)
        return nvml_g.host ? NVML_ERROR_INVALID_ARGUMENT : NVML_ERROR_UNINITIALIZED;
    unsigned long long total, used;
    nvmlReturn_t rc = memory(h, &total, &used);
    if (rc == NVML_SUCCESS) {
        m->total = total;
        m->used = used;
        m->free = total - used;
    }
    return rc;
}

QSIM_NVML_API nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t h, nvmlMemory_v2_t *m)
{
    if (!m)
        return nvml_g.host ? NVML_ERROR_INVALID_ARGUMENT : NVML_ERROR_UNINITIALIZED;
    if (m->version != nvmlMemory_v2)
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    unsigned long long total, used;
    nvmlReturn_t rc = memory(h, &total, &used);
    if (rc == NVML_SUCCESS) {
        m->total = total;
        m->reserved = 0; /* the simulated driver keeps nothing for itself */
        m->used = used;
        m->free = total - used;
    }
    return rc;
}

/* ---- activity ---------------------------------------------------------------------- */

static unsigned percent(uint64_t part, uint64_t whole)
{
    if (!whole)
        return 0;
    uint64_t p = (part * 100 + whole / 2) / whole;
    return p > 100 ? 100 : (unsigned)p;
}

QSIM_NVML_API nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t h, nvmlUtilization_t *u)
{
    const struct qsim_dev *d;
    int i;
    nvmlReturn_t rc = device(h, &d, &i);
    if (rc == NVML_SUCCESS && !u)
        rc = NVML_ERROR_INVALID_ARGUMENT;
    struct qsim_shm *s;
    if (rc != NVML_SUCCESS || (rc = lock_host(&s)) != NVML_SUCCESS)
        return rc;
    uint64_t now = qsim_now_ns();
    qsim_host_reap_locked(s, false);
    qsim_engine_advance_locked(s, i, now);
    u->gpu = percent(qsim_hist_busy(&d->busy, now - UTIL_WINDOW_NS, now), UTIL_WINDOW_NS);
    u->memory = percent(qsim_hist_busy(&d->copy, now - UTIL_WINDOW_NS, now), UTIL_WINDOW_NS);
    unlock_host();
    return NVML_SUCCESS;
}

/* Bytes process slot p holds on device index dev, and whether it has a context there.
 * A checkpointed process holds nothing on any device. */
static unsigned long long proc_on_device(const struct qsim_proc *p, int dev, bool *has_ctx)
{
    unsigned long long bytes = 0;
    *has_ctx = false;
    if (p->state != QSIM_SLOT_USED || !qsim_host_proc_charged(p))
        return 0;
    for (int o = 0; o < p->ndev; o++) {
        if (p->ord_map[o] != dev)
            continue;
        bytes += p->mem[o];
        *has_ctx = *has_ctx || p->nctx[o] > 0;
    }
    return bytes;
}

/* The layouts process lists come in. */
enum layout {
    L_V1,     /* nvmlProcessInfo_v1_t: the unversioned symbols */
    L_V2,     /* nvmlProcessInfo_t: the _v2 and _v3 symbols */
    L_DETAIL, /* nvmlProcessDetail_v1_t: nvmlDeviceGetRunningProcessDetailList */
};

/* Writes entry n of infos, in layout l. */
static void put_proc(void *infos, enum layout l, unsigned n, unsigned pid, unsigned long long bytes)
{
    if (l == L_V1) {
        nvmlProcessInfo_v1_t *e = (nvmlProcessInfo_v1_t *)infos + n;
        e->pid = pid;
        e->usedGpuMemory = bytes;
    } else if (l == L_V2) {
        nvmlProcessInfo_t *e = (nvmlProcessInfo_t *)infos + n;
        e->pid = pid;
        e->usedGpuMemory = bytes;
        e->gpuInstanceId = 0xFFFFFFFFu; /* no MIG */
        e->computeInstanceId = 0xFFFFFFFFu;
    } else {
        nvmlProcessDetail_v1_t *e = (nvmlProcessDetail_v1_t *)infos + n;
        e->pid = pid;
        e->usedGpuMemory = bytes;
        e->gpuInstanceId = 0xFFFFFFFFu;
        e->computeInstanceId = 0xFFFFFFFFu;
        e->usedGpuCcProtectedMemory = 0; /* no confidential computing */
    }
}

/* The processes of kind mode (NVML_PROCESS_MODE_*) on device h, each with everything it
 * holds there, its contexts' own memory included, as the real driver counts it: fills up
 * to *count entries of infos in layout l and sets *count to how many there are (the NVML
 * size protocol: NVML_ERROR_INSUFFICIENT_SIZE when they do not fit). A simulated GPU runs
 * compute contexts only: no graphics clients, no MPS server. */
static nvmlReturn_t running(nvmlDevice_t h, unsigned mode, unsigned *count, void *infos,
                            enum layout l)
{
    const struct qsim_dev *d;
    int i;
    nvmlReturn_t rc = device(h, &d, &i);
    if (rc == NVML_SUCCESS && (!count || (*count && !infos)))
        rc = NVML_ERROR_INVALID_ARGUMENT;
    struct qsim_shm *s;
    if (rc != NVML_SUCCESS || (rc = lock_host(&s)) != NVML_SUCCESS)
        return rc;
    qsim_host_reap_locked(s, true);
    unsigned n = 0;
    for (int p = 0; mode == NVML_PROCESS_MODE_COMPUTE && p < QSIM_MAX_PROCS; p++) {
        bool has_ctx;
        unsigned long long bytes = proc_on_device(&s->proc[p], i, &has_ctx);
        if (!has_ctx)
            continue;
        if (n < *count)
            put_proc(infos, l, n, (unsigned)qsim_host_pid_seen_locked(&s->proc[p]), bytes);
        n++;
    }
    unlock_host();
    rc = n > *count ? NVML_ERROR_INSUFFICIENT_SIZE : NVML_SUCCESS;
    *count = n;
    return rc;
}

QSIM_NVML_API nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t h, unsigned int *n,
                                                                nvmlProcessInfo_v1_t *infos)
{
    return running(h, NVML_PROCESS_MODE_COMPUTE, n, infos, L_V1);
}

QSIM_NVML_API nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t h, unsigned int *n,
                                                                   nvmlProcessInfo_t *infos)
{
    return running(h, NVML_PROCESS_MODE_COMPUTE, n, infos, L_V2);
}

QSIM_NVML_API nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t h, unsigned int *n,
                                                                   nvmlProcessInfo_t *infos)
{
    return running(h, NVML_PROCESS_MODE_COMPUTE, n, infos, L_V2);
}

QSIM_NVML_API nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses(nvmlDevice_t h, unsigned int *n,
                                                                 nvmlProcessInfo_v1_t *infos)
{
    return running(h, NVML_PROCESS_MODE_GRAPHICS, n, infos, L_V1);
}

QSIM_NVML_API nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v2(nvmlDevice_t h, unsigned int *n,
                                                                    nvmlProcessInfo_t *infos)
{
    return running(h, NVML_PROCESS_MODE_GRAPHICS, n, infos, L_V2);
}

QSIM_NVML_API nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t h, unsigned int *n,
                                                                    nvmlProcessInfo_t *infos)
{
    return running(h, NVML_PROCESS_MODE_GRAPHICS, n, infos, L_V2);
}

QSIM_NVML_API nvmlReturn_t nvmlDeviceGetMPSComputeRunningProcesses(nvmlDevice_t h, unsigned int *n,
                                                                   nvmlProcessInfo_v1_t *infos)
{
    return running(h, NVML_PROCESS_MODE_MPS, n, infos, L_V1);
}

QSIM_NVML_API nvmlReturn_t nvmlDeviceGetMPSComputeRunningProcesses_v2(nvmlDevice_t h,
                                                                      unsigned int *n,
                                                                      nvmlProcessInfo_t *infos)
{
    return running(h, NVML_PROCESS_MODE_MPS, n, infos, L_V2);
}

QSIM_NVML_API nvmlReturn_t nvmlDeviceGetMPSComputeRunningProcesses_v3(nvmlDevice_t h,
                                                                      unsigned int *n,
                                                                      nvmlProcessInfo_t *infos)
{
    return running(h, NVML_PROCESS_MODE_MPS, n, infos, L_V2);
}

QSIM_NVML_API nvmlReturn_t nvmlDeviceGetRunningProcessDetailList(nvmlDevice_t h,
                                                                 nvmlProcessDetailList_t *plist)
{
    if (!nvml_g.host)
        return NVML_ERROR_UNINITIALIZED;
    if (!plist)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (plist->version != nvmlProcessDetailList_v1)
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    if (plist->mode > NVML_PROCESS_MODE_MPS)
        return NVML_ERROR_INVALID_ARGUMENT;
    return running(h, plist->mode, &plist->numProcArrayEntries, plist->procArray, L_DETAIL);
}

/* One sample per process that had a context on the device or ran on it since
 * lastSeenTimeStamp (CLOCK_REALTIME us; 0: the last second), its smUtil being its share
 * of the device's time over that span (at most the 2.56 s of history kept). */
QSIM_NVML_API nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t h,
                                                           nvmlProcessUtilizationSample_t *util,
                                                           unsigned int *count,
                                                           unsigned long long lastSeen)
{
    const struct qsim_dev *d;
    int i;
    nvmlReturn_t rc = device(h, &d, &i);
    if (rc == NVML_SUCCESS && !count)
        rc = NVML_ERROR_INVALID_ARGUMENT;
    struct qsim_shm *s;
    if (rc != NVML_SUCCESS || (rc = lock_host(&s)) != NVML_SUCCESS)
        return rc;
    uint64_t now = qsim_now_ns(), now_us = qsim_realtime_us();
    const uint64_t history = (QSIM_HIST_LEN - 1) * QSIM_HIST_BUCKET_NS;
    uint64_t span =
        lastSeen ? (lastSeen < now_us ? (now_us - lastSeen) * 1000u : 0) : UTIL_WINDOW_NS;
    if (span > history)
        span = history;
    qsim_host_reap_locked(s, false);
    qsim_engine_advance_locked(s, i, now);
    unsigned n = 0;
    for (int p = 0; span && p < QSIM_MAX_PROCS; p++) {
        const struct qsim_proc *pr = &s->proc[p];
        if (pr->state != QSIM_SLOT_USED)
            continue;
        bool has_ctx;
        proc_on_device(pr, i, &has_ctx);
        uint64_t busy = qsim_hist_busy(&pr->busy[i], now - span, now);
        if (!has_ctx && !busy)
            continue;
        if (util && n < *count) {
            nvmlProcessUtilizationSample_t *e = &util[n];
            e->pid = (unsigned)qsim_host_pid_seen_locked(&s->proc[p]);
            e->timeStamp = now_us;
            e->smUtil = percent(busy, span);
            e->memUtil = 0;
            e->encUtil = 0;
            e->decUtil = 0;
        }
        n++;
    }
    unlock_host();
    if (n == 0) {
        *count = 0;
        return NVML_ERROR_NOT_FOUND;
    }
    rc = !util || n > *count ? NVML_ERROR_INSUFFICIENT_SIZE : NVML_SUCCESS;
    *count = n;
    return rc;
}
