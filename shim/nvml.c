/* nvml.c - NVML as a vGPU's workload sees it: one device, index 0, the vGPU's GPU, whose
 * memory is the quota. Other GPUs cannot be reached by index or UUID.
 * Threads: any; the handle is found once (nvml0.state, release-stored) under nvml0.lock. */
#include "shim/nvml.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "shim/device.h"
#include "shim/errors.h"
#include "shim/init.h"
#include "shim/mem.h"
#include "shim/real.h"
#include "shim/uuid.h"

/* The most GPUs whose handles a process may have been given before its moves. */
#define FORMER_MAX 16

/* The GPU's NVML handle. */
static struct {
    pthread_mutex_t lock;      /* held while the handle or former is stored */
    atomic_int state;          /* QS_DEV_*: release-stored once the handle is known */
    _Atomic(nvmlDevice_t) dev; /* the GPU's NVML handle (QS_DEV_MAPPED) */
    /* Handles of the GPUs the vGPU left, each once: the application may have kept one
     * (monitoring libraries look theirs up once), and NVML is no part of the checkpoint,
     * so it still names the old GPU. The calls hooked here answer for the vGPU through
     * them; a lookup never returns one. Appended under lock, read lock-free. */
    _Atomic(nvmlDevice_t) former[FORMER_MAX];
} nvml0 = {.lock = PTHREAD_MUTEX_INITIALIZER};

void qs_nvml_moved(void)
{
    pthread_mutex_lock(&nvml0.lock);
    if (atomic_load_explicit(&nvml0.state, memory_order_relaxed) == QS_DEV_MAPPED) {
        nvmlDevice_t old = atomic_load_explicit(&nvml0.dev, memory_order_relaxed);
        for (int i = 0; i < FORMER_MAX; i++) {
            nvmlDevice_t f = atomic_load_explicit(&nvml0.former[i], memory_order_relaxed);
            if (f == old)
                break;
            if (!f) {
                /* relaxed: a handle is a value; a reader that misses it answers as NVML */
                atomic_store_explicit(&nvml0.former[i], old, memory_order_relaxed);
                break;
            }
        }
    }
    /* release: a reader that sees UNKNOWN looks the handle up again, by the new UUID;
     * one that read the old handle just before uses it once more, as a call in flight */
    atomic_store_explicit(&nvml0.state, QS_DEV_UNKNOWN, memory_order_release);
    pthread_mutex_unlock(&nvml0.lock);
}

void qs_nvml_reset_after_fork(void)
{
    pthread_mutex_init(&nvml0.lock, NULL);
}

/* QS_DEV_MAPPED and *dev, QS_DEV_NONE, or the error NVML gave (not initialised) as a
 * negative nvmlReturn_t. */
static int our_device(nvmlDevice_t *dev)
{
    int st = atomic_load_explicit(&nvml0.state, memory_order_acquire);
    if (st == QS_DEV_UNKNOWN) {
        QS_PFN_nvmlDeviceGetHandleByUUID by_uuid = QS_REAL(nvmlDeviceGetHandleByUUID);
        char uuid[QS_UUID_LEN];
        nvmlDevice_t h = NULL;
        qs_init();
        qs_device_uuid(uuid, sizeof uuid);
        nvmlReturn_t r = uuid[0] && by_uuid ? by_uuid(uuid, &h) : NVML_ERROR_NOT_FOUND;
        if (r == NVML_ERROR_UNINITIALIZED)
            return -(int)r;
        pthread_mutex_lock(&nvml0.lock);
        st = atomic_load_explicit(&nvml0.state, memory_order_relaxed);
        if (st == QS_DEV_UNKNOWN) {
            atomic_store_explicit(&nvml0.dev, h, memory_order_relaxed);
            st = r == NVML_SUCCESS ? QS_DEV_MAPPED : QS_DEV_NONE;
            /* release: the handle is stored before the state that says it is valid */
            atomic_store_explicit(&nvml0.state, st, memory_order_release);
        }
        pthread_mutex_unlock(&nvml0.lock);
    }
    *dev = atomic_load_explicit(&nvml0.dev, memory_order_relaxed);
    return st;
}

static bool is_ours(nvmlDevice_t dev)
{
    nvmlDevice_t ours;
    return our_device(&ours) == QS_DEV_MAPPED && dev == ours;
}

/* Whether dev is the vGPU's GPU's handle, or that of a GPU it moved away from: ours in
 * the calls that take a handle, never in a lookup (the old GPU is not to be found). */
static bool was_ours(nvmlDevice_t dev)
{
    if (is_ours(dev))
        return true;
    for (int i = 0; dev && i < FORMER_MAX; i++) {
        nvmlDevice_t f = atomic_load_explicit(&nvml0.former[i], memory_order_relaxed);
        if (!f)
            break;
        if (f == dev)
            return true;
    }
    return false;
}

static nvmlReturn_t count(nvmlReturn_t r, unsigned int *n)
{
    nvmlDevice_t ours;
    if (r != NVML_SUCCESS)
        return r;
    int st = our_device(&ours);
    if (st < 0)
        return (nvmlReturn_t)-st;
    *n = st == QS_DEV_MAPPED ? 1 : 0;
    return NVML_SUCCESS;
}

QS_EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *deviceCount)
{
    QS_PFN_nvmlDeviceGetCount_v2 real = QS_REAL(nvmlDeviceGetCount_v2);
    if (!real)
        return qs_nvml_error(-ENOSYS);
    if (!qs_managed() || !deviceCount)
        return real(deviceCount);
    unsigned int n;
    return count(real(&n), deviceCount);
}

QS_EXPORT nvmlReturn_t nvmlDeviceGetCount(unsigned int *deviceCount)
{
    QS_PFN_nvmlDeviceGetCount real = QS_REAL(nvmlDeviceGetCount);
    if (!real)
        return qs_nvml_error(-ENOSYS);
    if (!qs_managed() || !deviceCount)
        return real(deviceCount);
    unsigned int n;
    return count(real(&n), deviceCount);
}

static nvmlReturn_t by_index(unsigned int index, nvmlDevice_t *device)
{
    nvmlDevice_t ours;
    int st = our_device(&ours);
    if (st < 0)
        return (nvmlReturn_t)-st;
    if (st != QS_DEV_MAPPED || index != 0)
        return NVML_ERROR_INVALID_ARGUMENT; /* as NVML answers an index past the count */
    *device = ours;
    return NVML_SUCCESS;
}

QS_EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
    QS_PFN_nvmlDeviceGetHandleByIndex_v2 real = QS_REAL(nvmlDeviceGetHandleByIndex_v2);
    if (!real)
        return qs_nvml_error(-ENOSYS);
    if (!qs_managed() || !device)
        return real(index, device);
    return by_index(index, device);
}

QS_EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *device)
{
    QS_PFN_nvmlDeviceGetHandleByIndex real = QS_REAL(nvmlDeviceGetHandleByIndex);
    if (!real)
        return qs_nvml_error(-ENOSYS);
    if (!qs_managed() || !device)
        return real(index, device);
    return by_index(index, device);
}

QS_EXPORT nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device)
{
    QS_PFN_nvmlDeviceGetHandleByUUID real = QS_REAL(nvmlDeviceGetHandleByUUID);
    if (!real)
        return qs_nvml_error(-ENOSYS);
    nvmlDevice_t h = NULL;
    if (!qs_managed() || !device)
        return real(uuid, device);
    nvmlReturn_t r = real(uuid, &h);
    if (r != NVML_SUCCESS)
        return r;
    if (!is_ours(h))
        return NVML_ERROR_NOT_FOUND;
    *device = h;
    return NVML_SUCCESS;
}

QS_EXPORT nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index)
{
    QS_PFN_nvmlDeviceGetIndex real = QS_REAL(nvmlDeviceGetIndex);
    if (!real)
        return qs_nvml_error(-ENOSYS);
    if (!qs_managed() || !index || !was_ours(device))
        return real(device, index);
    *index = 0;
    return NVML_SUCCESS;
}

/* The vGPU's memory: total = quota, used = what its processes hold, free = the rest. */
static void view(unsigned long long *total, unsigned long long *used, unsigned long long *free)
{
    uint64_t q = qs_mem_quota(), u = qs_mem_vgpu_used();
    *total = q;
    *used = u > q ? q : u;
    *free = q - *used;
}

QS_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
    QS_PFN_nvmlDeviceGetMemoryInfo real = QS_REAL(nvmlDeviceGetMemoryInfo);
    if (!real)
        return qs_nvml_error(-ENOSYS);
    nvmlReturn_t r = real(device, memory);
    if (r == NVML_SUCCESS && qs_managed() && memory && was_ours(device))
        view(&memory->total, &memory->used, &memory->free);
    return r;
}

QS_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory)
{
    QS_PFN_nvmlDeviceGetMemoryInfo_v2 real = QS_REAL(nvmlDeviceGetMemoryInfo_v2);
    if (!real)
        return qs_nvml_error(-ENOSYS);
    nvmlReturn_t r = real(device, memory);
    if (r == NVML_SUCCESS && qs_managed() && memory && was_ours(device)) {
        view(&memory->total, &memory->used, &memory->free);
        memory->reserved = 0;
    }
    return r;
}
