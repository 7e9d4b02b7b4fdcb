/* device.c - device visibility hooks: cuInit, cuDeviceGetCount, cuDeviceGet and
 * cuDeviceTotalMem (which reports the quota).
 * Threads: any; dev0.lock guards the mapping while it is made (once), dev0.state is
 * then read with acquire loads. State: dev0, this file's alone; a fork child keeps the
 * mapping (the driver's state is copied with the process) and gets a new lock. */
#include "shim/device.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim/errors.h"
#include "shim/init.h"
#include "shim/log.h"
#include "shim/mem.h"
#include "shim/nvml.h"
#include "shim/real.h"
#include "shim/uuid.h"

/* An environment entry a move made. */
struct moved_entry {
    struct moved_entry *next; /* the one before it */
    char text[];              /* "CUDA_VISIBLE_DEVICES=<uuid>" */
};

/* The mapping of the vGPU's GPU to the driver's device. */
static struct {
    pthread_mutex_t lock;   /* guards the mapping below while it is made */
    atomic_int state;       /* QS_DEV_*: release-stored once the mapping is made */
    CUdevice dev;           /* the vGPU's GPU as the driver names it (QS_DEV_MAPPED) */
    char uuid[QS_UUID_LEN]; /* its UUID, "GPU-xxxxxxxx-...": lock */
    bool env_forced;        /* CUDA_VISIBLE_DEVICES was set to it before cuInit */
    /* "CUDA_VISIBLE_DEVICES=<uuid>", the environment entry the shim put in place of the
     * workload's: written once under lock, then lives as long as the process, as an
     * environment entry must */
    char visible_entry[sizeof "CUDA_VISIBLE_DEVICES=" + QS_UUID_LEN];
    struct moved_entry *moved; /* the entries moves made, newest first: lock; owned, never
                                  freed (moved_to), but held, as leak checkers see */
    atomic_int logged; /* the GPU cannot be used: said once */
} dev0 = {.lock = PTHREAD_MUTEX_INITIALIZER};

void qs_device_reset_after_fork(void)
{
    pthread_mutex_init(&dev0.lock, NULL);
}

CUdevice qs_device(void)
{
    return dev0.dev;
}

#define VISIBLE "CUDA_VISIBLE_DEVICES="

/* Points the CUDA_VISIBLE_DEVICES entry of environ, if there is one, at entry: one
 * aligned pointer store, which a concurrent reader sees whole, old or new (not setenv(),
 * which may move environ from under another thread's getenv()). dev_lock held. */
static void point_visible(char *entry)
{
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, VISIBLE, strlen(VISIBLE)) != 0)
            continue;
        if (strcmp(*e, entry) != 0)
            /* release: the string is written before a reader can reach it */
            __atomic_store_n(e, entry, __ATOMIC_RELEASE);
        return;
    }
}

/* The vGPU moved with this process to the GPU uuid. dev_lock held. */
static void moved_to(const char *uuid)
{
    memcpy(dev0.uuid, uuid, strlen(uuid) + 1);
    /* A new string each move, never freed: a reader may still hold the old one, and an
     * environment entry lives as long as the process. A few moves cost a few bytes. */
    size_t n = strlen(VISIBLE) + strlen(uuid) + 1;
    struct moved_entry *entry = dev0.env_forced ? malloc(sizeof *entry + n) : NULL;
    if (entry) {
        snprintf(entry->text, n, VISIBLE "%s", uuid);
        entry->next = dev0.moved;
        dev0.moved = entry;
        point_visible(entry->text);
    }
    qs_nvml_moved();
}

void qs_device_set_uuid(const char *uuid)
{
    if (!uuid || !*uuid || strlen(uuid) >= sizeof dev0.uuid)
        return;
    pthread_mutex_lock(&dev0.lock);
    if (atomic_load_explicit(&dev0.state, memory_order_relaxed) == QS_DEV_UNKNOWN &&
        !dev0.env_forced)
        memcpy(dev0.uuid, uuid, strlen(uuid) + 1);
    else if (!qs_uuid_equal(uuid, dev0.uuid))
        moved_to(uuid);
    pthread_mutex_unlock(&dev0.lock);
}

/* dev_lock held. */
static const char *chosen_uuid(void)
{
    if (!dev0.uuid[0] && qs_env_gpu()[0])
        snprintf(dev0.uuid, sizeof dev0.uuid, "%s", qs_env_gpu());
    return dev0.uuid;
}

void qs_device_uuid(char *out, size_t cap)
{
    pthread_mutex_lock(&dev0.lock);
    snprintf(out, cap, "%s", chosen_uuid());
    pthread_mutex_unlock(&dev0.lock);
}

/* Before the driver's first cuInit: make it enumerate the vGPU's GPU alone, as the real
 * driver and the simulated one both honour CUDA_VISIBLE_DEVICES at initialisation. The
 * workload may have changed the variable since it started; the vGPU decides.
 *
 * Not with setenv(): other threads may be reading the environment, and getenv() does not
 * synchronise with setenv(), which may allocate, move environ, and so pull it from under
 * a reader. The variable's entry, when there is one, is instead pointed at the shim's own
 * string: one aligned pointer store, which a concurrent reader sees whole, old or new;
 * nothing is freed, moved or grown. A workload that removed the variable is left as it
 * is: the driver then enumerates every GPU, and map_device() still shows only the vGPU's,
 * found by UUID, as ordinal 0. */
static void force_visible_devices(void)
{
    pthread_mutex_lock(&dev0.lock);
    if (!dev0.env_forced) {
        const char *uuid = chosen_uuid();
        if (uuid[0]) {
            snprintf(dev0.visible_entry, sizeof dev0.visible_entry, VISIBLE "%s", uuid);
            point_visible(dev0.visible_entry);
        }
        dev0.env_forced = true;
    }
    pthread_mutex_unlock(&dev0.lock);
}

/* Finds the vGPU's GPU among the devices the driver shows. dev_lock held. */
static int map_device(void)
{
    QS_PFN_cuDeviceGetCount count_fn = QS_REAL(cuDeviceGetCount);
    QS_PFN_cuDeviceGet get_fn = QS_REAL(cuDeviceGet);
    QS_PFN_cuDeviceGetUuid_v2 uuid_fn = QS_REAL(cuDeviceGetUuid_v2);
    int n = 0;
    if (!count_fn || !get_fn || !uuid_fn || count_fn(&n) != CUDA_SUCCESS)
        return QS_DEV_UNKNOWN; /* not initialised: the caller passes the driver's error on */
    const char *uuid = chosen_uuid();
    for (int i = 0; uuid[0] && i < n; i++) {
        CUdevice d;
        CUuuid u;
        char s[QS_UUID_STR_LEN];
        if (get_fn(&d, i) != CUDA_SUCCESS || uuid_fn(&u, d) != CUDA_SUCCESS)
            continue;
        qs_uuid_format((const unsigned char *)u.bytes, s);
        if (qs_uuid_equal(s, uuid)) {
            dev0.dev = d;
            return QS_DEV_MAPPED;
        }
    }
    if (uuid[0])
        qs_log_once(&dev0.logged,
                    "GPU %s of vGPU %s is not visible to this "
                    "process: it sees no CUDA device",
                    uuid, qs_env_vgpu());
    else
        qs_log_once(&dev0.logged,
                    "no GPU is known for vGPU %s (no arbiter reply, "
                    "no CUDA_VISIBLE_DEVICES): it sees no CUDA device",
                    qs_env_vgpu());
    return QS_DEV_NONE;
}

int qs_device_state(void)
{
    int st = atomic_load_explicit(&dev0.state, memory_order_acquire);
    if (st != QS_DEV_UNKNOWN)
        return st;
    pthread_mutex_lock(&dev0.lock);
    st = atomic_load_explicit(&dev0.state, memory_order_relaxed);
    if (st == QS_DEV_UNKNOWN) {
        st = map_device();
        /* release: dev0.dev is written before the state that says it is valid */
        atomic_store_explicit(&dev0.state, st, memory_order_release);
    }
    pthread_mutex_unlock(&dev0.lock);
    return st;
}

bool qs_device_is_ours(CUdevice dev)
{
    return qs_device_state() == QS_DEV_MAPPED && dev == dev0.dev;
}

QS_EXPORT CUresult cuInit(unsigned int flags)
{
    QS_PFN_cuInit real = QS_REAL(cuInit);
    if (!real)
        return qs_cu_error(-ENOSYS);
    if (!qs_managed())
        return real(flags);
    qs_init();
    force_visible_devices();
    CUresult rc = real(flags);
    if (rc == CUDA_SUCCESS) {
        qs_device_state();
    } else if (rc == CUDA_ERROR_NO_DEVICE) {
        char uuid[QS_UUID_LEN];
        qs_device_uuid(uuid, sizeof uuid);
        if (uuid[0])
            qs_log_once(&dev0.logged,
                        "GPU %s of vGPU %s is not visible to this "
                        "process: it sees no CUDA device",
                        uuid, qs_env_vgpu());
    }
    return rc;
}

QS_EXPORT CUresult cuDeviceGetCount(int *count)
{
    QS_PFN_cuDeviceGetCount real = QS_REAL(cuDeviceGetCount);
    if (!real)
        return qs_cu_error(-ENOSYS);
    if (!qs_managed() || !count)
        return real(count);
    qs_init();
    int n;
    CUresult rc = real(&n);
    if (rc != CUDA_SUCCESS)
        return rc;
    *count = qs_device_state() == QS_DEV_MAPPED ? 1 : 0;
    return CUDA_SUCCESS;
}

QS_EXPORT CUresult cuDeviceGet(CUdevice *device, int ordinal)
{
    QS_PFN_cuDeviceGet real = QS_REAL(cuDeviceGet);
    if (!real)
        return qs_cu_error(-ENOSYS);
    if (!qs_managed() || !device)
        return real(device, ordinal);
    qs_init();
    int st = qs_device_state();
    if (st == QS_DEV_UNKNOWN)
        return real(device, ordinal); /* the driver's own answer: not initialised */
    if (st != QS_DEV_MAPPED || ordinal != 0)
        return CUDA_ERROR_INVALID_DEVICE;
    *device = dev0.dev;
    return CUDA_SUCCESS;
}

QS_EXPORT CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
{
    QS_PFN_cuDeviceTotalMem_v2 real = QS_REAL(cuDeviceTotalMem_v2);
    if (!real)
        return qs_cu_error(-ENOSYS);
    CUresult rc = real(bytes, dev);
    if (rc == CUDA_SUCCESS && qs_managed() && qs_device_is_ours(dev)) {
        qs_init();
        *bytes = (size_t)qs_mem_quota();
    }
    return rc;
}

QS_EXPORT CUresult cuDeviceTotalMem(unsigned int *bytes, CUdevice dev)
{
    QS_PFN_cuDeviceTotalMem real = QS_REAL(cuDeviceTotalMem);
    if (!real)
        return qs_cu_error(-ENOSYS);
    CUresult rc = real(bytes, dev);
    if (rc == CUDA_SUCCESS && qs_managed() && qs_device_is_ours(dev)) {
        qs_init();
        uint64_t q = qs_mem_quota();
        *bytes = q > UINT_MAX ? UINT_MAX : (unsigned int)q;
    }
    return rc;
}
