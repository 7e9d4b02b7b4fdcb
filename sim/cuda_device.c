/* cuda_device.c - cuInit, the driver version and device queries.
 * Threads: any. cuInit runs once under qsim_g.lock; the queries read what it set and
 * the host's read-only device descriptions. */
#include "sim/cuda_state.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/config.h"

/* ---- cuInit ------------------------------------------------------------------------ */

/* The device indices CUDA_VISIBLE_DEVICES selects, as the real driver reads it: a
 * comma-separated list of indices, "GPU-<uuid>" or unique UUID prefixes; the first
 * invalid entry (unknown, ambiguous, repeated, MIG) ends the list. Unset: all. */
static int visible_devices(const struct qsim_shm *s, int map[QSIM_MAX_DEVICES])
{
    const char *env = getenv("CUDA_VISIBLE_DEVICES");
    if (!env) {
        for (uint32_t d = 0; d < s->ndev; d++)
            map[d] = (int)d;
        return (int)s->ndev;
    }
    int n = 0;
    const char *p = env;
    while (n < QSIM_MAX_DEVICES) {
        size_t len = strcspn(p, ",");
        char tok[128];
        size_t a = 0, b = len;
        while (a < b && isspace((unsigned char)p[a]))
            a++;
        while (b > a && isspace((unsigned char)p[b - 1]))
            b--;
        if (b - a == 0 || b - a >= sizeof tok)
            break;
        memcpy(tok, p + a, b - a);
        tok[b - a] = '\0';
        int dev = -1;
        char *end;
        long v = strtol(tok, &end, 10);
        if (isdigit((unsigned char)tok[0]) && *end == '\0') {
            dev = v < (long)s->ndev ? (int)v : -1;
        } else if (strncasecmp(tok, "MIG-", 4) != 0) {
            char want[sizeof tok + 8];
            snprintf(want, sizeof want, "%s%s", strncasecmp(tok, "GPU-", 4) ? "GPU-" : "", tok);
            for (uint32_t d = 0; d < s->ndev; d++) {
                char uuid[QSIM_UUID_STR_LEN];
                qsim_config_uuid_str(s->dev[d].uuid, uuid);
                if (strncasecmp(uuid, want, strlen(want)) == 0) {
                    if (dev >= 0) {
                        dev = -2; /* ambiguous prefix */
                        break;
                    }
                    dev = (int)d;
                }
            }
        }
        for (int i = 0; i < n && dev >= 0; i++)
            if (map[i] == dev)
                dev = -1;
        if (dev < 0)
            break;
        map[n++] = dev;
        if (p[len] != ',')
            break;
        p += len + 1;
    }
    return n;
}

/* Frees the per-thread default streams of an exiting thread (pthread key destructor). */
void qsim_stream_thread_exit(void *list);

static void forked_child(void)
{
    /* The child has the parent's mappings but not its threads or its process slot:
     * like the real driver, refuse to work in it. */
    if (atomic_load(&qsim_g.state) == QSIM_READY)
        atomic_store(&qsim_g.state, QSIM_FORKED);
}

/* Keeps this library loaded for good: from cuInit on, a thread of ours runs its code
 * (the life thread) and thread exits call into it (per-thread streams), so a dlclose
 * by whoever opened it must not unmap it. */
static void pin_self(void)
{
    qsim_self_open(RTLD_NODELETE); /* the reference is kept for good */
}

static CUresult init_once(void)
{
    char err[QSIM_ERR_LEN];
    qsim_config_t *cfg = malloc(sizeof *cfg);
    if (!cfg)
        return CUDA_ERROR_OUT_OF_MEMORY;
    CUresult rc = CUDA_SUCCESS;
    if (qsim_config_from_env(cfg, err) < 0) {
        fprintf(stderr, "%s\n", err);
        rc = CUDA_ERROR_INVALID_VALUE;
        goto out;
    }
    int e = qsim_host_open(cfg, &qsim_g.host, err);
    if (e < 0) {
        fprintf(stderr, "%s\n", err);
        rc = e == -EBUSY ? CUDA_ERROR_INVALID_VALUE : CUDA_ERROR_OPERATING_SYSTEM;
        goto out;
    }
    qsim_g.shm = qsim_host_shm(qsim_g.host);
    int map[QSIM_MAX_DEVICES];
    qsim_g.ndev = visible_devices(qsim_g.shm, map);
    if (qsim_g.ndev == 0) {
        rc = CUDA_ERROR_NO_DEVICE;
        goto out;
    }
    e = qsim_host_register(qsim_g.host, cfg, qsim_g.ndev, map, &qsim_g.proc, err);
    if (e < 0) {
        fprintf(stderr, "%s\n", err);
        rc = e == -ENOSPC  ? CUDA_ERROR_OUT_OF_MEMORY
             : e == -EBUSY ? CUDA_ERROR_INVALID_VALUE
                           : CUDA_ERROR_OPERATING_SYSTEM;
        goto out;
    }
    qsim_g.me = &qsim_g.shm->proc[qsim_g.proc];
    pin_self();
    if (pthread_key_create(&qsim_g.thread_key, qsim_stream_thread_exit) != 0) {
        rc = CUDA_ERROR_OPERATING_SYSTEM;
        goto out;
    }
    pthread_atfork(NULL, NULL, forked_child);
out:
    if (rc != CUDA_SUCCESS && qsim_g.host && !qsim_g.me)
        qsim_host_close(&qsim_g.host);
    free(cfg);
    return rc;
}

QSIM_API CUresult cuInit(unsigned int Flags)
{
    if (Flags != 0)
        return CUDA_ERROR_INVALID_VALUE;
    int st = atomic_load_explicit(&qsim_g.state, memory_order_acquire);
    if (st == QSIM_READY)
        return CUDA_SUCCESS;
    if (st == QSIM_FORKED)
        return CUDA_ERROR_NOT_INITIALIZED;
    pthread_mutex_lock(&qsim_g.lock);
    if (atomic_load(&qsim_g.state) == QSIM_UNINIT) {
        qsim_g.init_rc = init_once();
        atomic_store_explicit(&qsim_g.state,
                              qsim_g.init_rc == CUDA_SUCCESS ? QSIM_READY : QSIM_FAILED,
                              memory_order_release);
    }
    CUresult rc = qsim_g.init_rc;
    pthread_mutex_unlock(&qsim_g.lock);
    return rc;
}

const struct qsim_driver *qsim_driver(void)
{
    const struct qsim_driver *d = atomic_load_explicit(&qsim_g.driver, memory_order_acquire);
    if (!d) { /* two threads may both parse: they find the same static entry */
        char err[QSIM_ERR_LEN];
        if (!(d = qsim_config_driver(getenv("QSIM_DRIVER_VERSION"), err)))
            d = qsim_config_driver(NULL, err);
        atomic_store_explicit(&qsim_g.driver, d, memory_order_release);
    }
    return d;
}

QSIM_API CUresult cuDriverGetVersion(int *driverVersion)
{
    if (!driverVersion)
        return CUDA_ERROR_INVALID_VALUE;
    *driverVersion = qsim_driver()->cuda;
    return CUDA_SUCCESS;
}

/* ---- devices ----------------------------------------------------------------------- */

static CUresult device_get_count(int *count)
{
    if (!count)
        return CUDA_ERROR_INVALID_VALUE;
    *count = qsim_g.ndev;
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuDeviceGetCount(int *count)
{
    QSIM_GUARDED(device_get_count(count));
}

static CUresult device_get(CUdevice *device, int ordinal)
{
    if (!device)
        return CUDA_ERROR_INVALID_VALUE;
    if (ordinal < 0 || ordinal >= qsim_g.ndev)
        return CUDA_ERROR_INVALID_DEVICE;
    *device = ordinal;
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuDeviceGet(CUdevice *device, int ordinal)
{
    QSIM_GUARDED(device_get(device, ordinal));
}

static CUresult device_get_name(char *name, int len, CUdevice dev)
{
    if (!name || len <= 0)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = qsim_check_device(dev);
    if (rc == CUDA_SUCCESS)
        snprintf(name, (size_t)len, "%s", qsim_dev_of(dev)->name);
    return rc;
}

QSIM_API CUresult cuDeviceGetName(char *name, int len, CUdevice dev)
{
    QSIM_GUARDED(device_get_name(name, len, dev));
}

static CUresult device_get_uuid(CUuuid *uuid, CUdevice dev)
{
    if (!uuid)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = qsim_check_device(dev);
    if (rc == CUDA_SUCCESS)
        memcpy(uuid->bytes, qsim_dev_of(dev)->uuid, sizeof uuid->bytes);
    return rc;
}

QSIM_API CUresult cuDeviceGetUuid(CUuuid *uuid, CUdevice dev)
{
    QSIM_GUARDED(device_get_uuid(uuid, dev));
}

QSIM_API CUresult cuDeviceGetUuid_v2(CUuuid *uuid, CUdevice dev)
{
    QSIM_GUARDED(device_get_uuid(uuid, dev));
}

static CUresult device_total_mem(size_t *bytes, CUdevice dev)
{
    if (!bytes)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = qsim_check_device(dev);
    if (rc == CUDA_SUCCESS)
        *bytes = qsim_dev_of(dev)->total;
    return rc;
}

QSIM_API CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
{
    QSIM_GUARDED(device_total_mem(bytes, dev));
}

static CUresult device_compute_capability(int *major, int *minor, CUdevice dev)
{
    if (!major || !minor)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = qsim_check_device(dev);
    if (rc == CUDA_SUCCESS) {
        *major = qsim_dev_of(dev)->cc_major;
        *minor = qsim_dev_of(dev)->cc_minor;
    }
    return rc;
}

QSIM_API CUresult cuDeviceComputeCapability(int *major, int *minor, CUdevice dev)
{
    QSIM_GUARDED(device_compute_capability(major, minor, dev));
}

/* Per-architecture figures of the device attributes that vary, from public specs of a
 * representative part of each compute capability. */
struct arch {
    int major, minor;
    int clock_khz, mem_clock_khz, bus_bits, l2_bytes;
    int threads_per_sm, smem_per_sm, smem_optin, blocks_per_sm;
};

static const struct arch arches[] = {
    {6, 0, 1480000, 715000, 4096, 4 << 20, 2048, 65536, 49152, 32},
    {6, 1, 1733000, 5005000, 256, 2 << 20, 2048, 98304, 49152, 32},
    {7, 0, 1530000, 877000, 4096, 6 << 20, 2048, 98304, 98304, 32},
    {7, 5, 1590000, 5001000, 256, 4 << 20, 1024, 65536, 65536, 16},
    {8, 0, 1410000, 1215000, 5120, 40 << 20, 2048, 167936, 166912, 32},
    {8, 6, 1695000, 9751000, 384, 6 << 20, 1536, 102400, 101376, 16},
    {8, 9, 2520000, 10501000, 384, 72 << 20, 1536, 102400, 101376, 24},
    {9, 0, 1980000, 2619000, 5120, 50 << 20, 2048, 233472, 232448, 32},
    {10, 0, 1965000, 3996000, 8192, 126 << 20, 2048, 233472, 232448, 32},
    {12, 0, 2617000, 14001000, 512, 96 << 20, 1536, 102400, 101376, 24},
};

static const struct arch *arch_of(const struct qsim_dev *d)
{
    for (size_t i = 0; i < sizeof arches / sizeof arches[0]; i++)
        if (arches[i].major == d->cc_major && arches[i].minor == d->cc_minor)
            return &arches[i];
    return &arches[5]; /* 8.6 */
}

/* The value of attribute a of ordinal dev (and its device d); LLONG_MIN if a is unknown. */
static long long attribute(CUdevice_attribute a, CUdevice dev, const struct qsim_dev *d)
{
    const struct arch *ar = arch_of(d);
    switch ((int)a) {
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK:
        return 1024;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X:
        return 1024;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y:
        return 1024;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z:
        return 64;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X:
        return 2147483647;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y:
        return 65535;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z:
        return 65535;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK:
        return 49152;
    case CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY:
        return 65536;
    case CU_DEVICE_ATTRIBUTE_WARP_SIZE:
        return 32;
    case CU_DEVICE_ATTRIBUTE_MAX_PITCH:
        return 2147483647;
    case CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK:
        return 65536;
    case CU_DEVICE_ATTRIBUTE_CLOCK_RATE:
        return ar->clock_khz;
    case CU_DEVICE_ATTRIBUTE_TEXTURE_ALIGNMENT:
        return 512;
    case CU_DEVICE_ATTRIBUTE_GPU_OVERLAP:
        return 1;
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT:
        return d->sms;
    case CU_DEVICE_ATTRIBUTE_KERNEL_EXEC_TIMEOUT:
        return 0;
    case CU_DEVICE_ATTRIBUTE_INTEGRATED:
        return 0;
    case CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY:
        return 1;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_MODE:
        return CU_COMPUTEMODE_DEFAULT;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_WIDTH:
        return 131072;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_WIDTH:
        return 131072;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_HEIGHT:
        return 65536;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_WIDTH:
        return 16384;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_HEIGHT:
        return 16384;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_DEPTH:
        return 16384;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LAYERED_WIDTH:
        return 32768;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LAYERED_HEIGHT:
        return 32768;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LAYERED_LAYERS:
        return 2048;
    case CU_DEVICE_ATTRIBUTE_SURFACE_ALIGNMENT:
        return 512;
    case CU_DEVICE_ATTRIBUTE_CONCURRENT_KERNELS:
        return 1;
    case CU_DEVICE_ATTRIBUTE_ECC_ENABLED:
        return 0;
    case CU_DEVICE_ATTRIBUTE_PCI_BUS_ID:
        return qsim_dev_index(dev) + 1;
    case CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID:
        return 0;
    case CU_DEVICE_ATTRIBUTE_TCC_DRIVER:
        return 0;
    case CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE:
        return ar->mem_clock_khz;
    case CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH:
        return ar->bus_bits;
    case CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE:
        return ar->l2_bytes;
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR:
        return ar->threads_per_sm;
    case CU_DEVICE_ATTRIBUTE_ASYNC_ENGINE_COUNT:
        return 2;
    case CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING:
        return 1;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_LAYERED_WIDTH:
        return 32768;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_LAYERED_LAYERS:
        return 2048;
    case CU_DEVICE_ATTRIBUTE_CAN_TEX2D_GATHER:
        return 1;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_GATHER_WIDTH:
        return 32768;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_GATHER_HEIGHT:
        return 32768;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_WIDTH_ALTERNATE:
        return 8192;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_HEIGHT_ALTERNATE:
        return 8192;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_DEPTH_ALTERNATE:
        return 32768;
    case CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID:
        return 0;
    case CU_DEVICE_ATTRIBUTE_TEXTURE_PITCH_ALIGNMENT:
        return 32;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURECUBEMAP_WIDTH:
        return 32768;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURECUBEMAP_LAYERED_WIDTH:
        return 32768;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURECUBEMAP_LAYERED_LAYERS:
        return 2046;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE1D_WIDTH:
        return 32768;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_WIDTH:
        return 131072;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_HEIGHT:
        return 65536;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE3D_WIDTH:
        return 16384;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE3D_HEIGHT:
        return 16384;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE3D_DEPTH:
        return 16384;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE1D_LAYERED_WIDTH:
        return 32768;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE1D_LAYERED_LAYERS:
        return 2048;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_LAYERED_WIDTH:
        return 32768;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_LAYERED_HEIGHT:
        return 32768;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_LAYERED_LAYERS:
        return 2048;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACECUBEMAP_WIDTH:
        return 32768;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACECUBEMAP_LAYERED_WIDTH:
        return 32768;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACECUBEMAP_LAYERED_LAYERS:
        return 2046;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_LINEAR_WIDTH:
        return 268435456;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LINEAR_WIDTH:
        return 131072;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LINEAR_HEIGHT:
        return 65000;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LINEAR_PITCH:
        return 2097120;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_MIPMAPPED_WIDTH:
        return 32768;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_MIPMAPPED_HEIGHT:
        return 32768;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR:
        return d->cc_major;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR:
        return d->cc_minor;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_MIPMAPPED_WIDTH:
        return 32768;
    case CU_DEVICE_ATTRIBUTE_STREAM_PRIORITIES_SUPPORTED:
        return 1;
    case CU_DEVICE_ATTRIBUTE_GLOBAL_L1_CACHE_SUPPORTED:
        return 1;
    case CU_DEVICE_ATTRIBUTE_LOCAL_L1_CACHE_SUPPORTED:
        return 1;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR:
        return ar->smem_per_sm;
    case CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR:
        return 65536;
    case CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY:
        return 1;
    case CU_DEVICE_ATTRIBUTE_MULTI_GPU_BOARD:
        return 0;
    case CU_DEVICE_ATTRIBUTE_MULTI_GPU_BOARD_GROUP_ID:
        return qsim_dev_index(dev);
    case CU_DEVICE_ATTRIBUTE_HOST_NATIVE_ATOMIC_SUPPORTED:
        return 0;
    case CU_DEVICE_ATTRIBUTE_SINGLE_TO_DOUBLE_PRECISION_PERF_RATIO:
        return 32;
    case CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS:
        return 0;
    case CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS:
        return 1;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_PREEMPTION_SUPPORTED:
        return 1;
    case CU_DEVICE_ATTRIBUTE_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM:
        return 1;
    case CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH:
        return 1;
    case CU_DEVICE_ATTRIBUTE_COOPERATIVE_MULTI_DEVICE_LAUNCH:
        return 0;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN:
        return ar->smem_optin;
    case CU_DEVICE_ATTRIBUTE_CAN_FLUSH_REMOTE_WRITES:
        return 0;
    case CU_DEVICE_ATTRIBUTE_HOST_REGISTER_SUPPORTED:
        return 1;
    case CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES:
        return 0;
    case CU_DEVICE_ATTRIBUTE_DIRECT_MANAGED_MEM_ACCESS_FROM_HOST:
        return 0;
    case CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED:
        return 1;
    case CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED:
        return 0;
    case CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_WIN32_HANDLE_SUPPORTED:
        return 0;
    case CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_WIN32_KMT_HANDLE_SUPPORTED:
        return 0;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR:
        return ar->blocks_per_sm;
    case CU_DEVICE_ATTRIBUTE_GENERIC_COMPRESSION_SUPPORTED:
        return 0;
    case CU_DEVICE_ATTRIBUTE_MAX_PERSISTING_L2_CACHE_SIZE:
        return ar->l2_bytes / 4 * 3;
    case CU_DEVICE_ATTRIBUTE_MAX_ACCESS_POLICY_WINDOW_SIZE:
        return 134213632;
    case CU_DEVICE_ATTRIBUTE_GPU_DIRECT_RDMA_WITH_CUDA_VMM_SUPPORTED:
        return 0;
    case CU_DEVICE_ATTRIBUTE_RESERVED_SHARED_MEMORY_PER_BLOCK:
        return 1024;
    case CU_DEVICE_ATTRIBUTE_SPARSE_CUDA_ARRAY_SUPPORTED:
        return 0;
    case CU_DEVICE_ATTRIBUTE_READ_ONLY_HOST_REGISTER_SUPPORTED:
        return 1;
    case CU_DEVICE_ATTRIBUTE_TIMELINE_SEMAPHORE_INTEROP_SUPPORTED:
        return 0;
    case CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED:
        return 1;
    case CU_DEVICE_ATTRIBUTE_GPU_DIRECT_RDMA_SUPPORTED:
        return 0;
    case CU_DEVICE_ATTRIBUTE_GPU_DIRECT_RDMA_FLUSH_WRITES_OPTIONS:
        return 0;
    case CU_DEVICE_ATTRIBUTE_GPU_DIRECT_RDMA_WRITES_ORDERING:
        return 0;
    case CU_DEVICE_ATTRIBUTE_MEMPOOL_SUPPORTED_HANDLE_TYPES:
        return 0;
    case CU_DEVICE_ATTRIBUTE_CLUSTER_LAUNCH:
        return d->cc_major >= 9;
    case CU_DEVICE_ATTRIBUTE_DEFERRED_MAPPING_CUDA_ARRAY_SUPPORTED:
        return 0;
    case CU_DEVICE_ATTRIBUTE_CAN_USE_64_BIT_STREAM_MEM_OPS:
        return 1;
    case CU_DEVICE_ATTRIBUTE_CAN_USE_STREAM_WAIT_VALUE_NOR:
        return 1;
    case CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED:
        return 0;
    case CU_DEVICE_ATTRIBUTE_IPC_EVENT_SUPPORTED:
        return 0;
    case CU_DEVICE_ATTRIBUTE_MEM_SYNC_DOMAIN_COUNT:
        return d->cc_major >= 9 ? 4 : 1;
    case CU_DEVICE_ATTRIBUTE_TENSOR_MAP_ACCESS_SUPPORTED:
        return d->cc_major >= 9;
    case CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_FABRIC_SUPPORTED:
        return 0;
    case CU_DEVICE_ATTRIBUTE_UNIFIED_FUNCTION_POINTERS:
        return 1;
    case CU_DEVICE_ATTRIBUTE_NUMA_CONFIG:
        return 0;
    case CU_DEVICE_ATTRIBUTE_NUMA_ID:
        return -1;
    case CU_DEVICE_ATTRIBUTE_MULTICAST_SUPPORTED:
        return 0;
    case CU_DEVICE_ATTRIBUTE_MPS_ENABLED:
        return 0;
    case CU_DEVICE_ATTRIBUTE_HOST_NUMA_ID:
        return 0;
    case CU_DEVICE_ATTRIBUTE_GPU_PCI_DEVICE_ID:
        return 0x10de; /* vendor id in low bits */
    case CU_DEVICE_ATTRIBUTE_GPU_PCI_SUBSYSTEM_ID:
        return 0;
    default:
        if ((int)a > 0 && (int)a < CU_DEVICE_ATTRIBUTE_MAX)
            return 0; /* features a simulated GPU does not have */
        return LLONG_MIN;
    }
}

CUresult qsim_device_attribute(int *pi, CUdevice_attribute attrib, CUdevice dev)
{
    if (!pi)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = qsim_check_device(dev);
    if (rc != CUDA_SUCCESS)
        return rc;
    long long v = attribute(attrib, dev, qsim_dev_of(dev));
    if (v == LLONG_MIN)
        return CUDA_ERROR_INVALID_VALUE;
    *pi = (int)v;
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib, CUdevice dev)
{
    QSIM_GUARDED(qsim_device_attribute(pi, attrib, dev));
}

static CUresult device_get_pci_bus_id(char *pciBusId, int len, CUdevice dev)
{
    if (!pciBusId || len <= 0)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = qsim_check_device(dev);
    if (rc == CUDA_SUCCESS)
        snprintf(pciBusId, (size_t)len, "0000:%02x:00.0", qsim_dev_index(dev) + 1);
    return rc;
}

QSIM_API CUresult cuDeviceGetPCIBusId(char *pciBusId, int len, CUdevice dev)
{
    QSIM_GUARDED(device_get_pci_bus_id(pciBusId, len, dev));
}

static CUresult device_get_by_pci_bus_id(CUdevice *dev, const char *pciBusId)
{
    if (!dev || !pciBusId)
        return CUDA_ERROR_INVALID_VALUE;
    unsigned domain = 0, bus = 0, device = 0, fn = 0;
    if (sscanf(pciBusId, "%x:%x:%x.%x", &domain, &bus, &device, &fn) != 4 &&
        sscanf(pciBusId, "%x:%x.%x", &bus, &device, &fn) != 3)
        return CUDA_ERROR_INVALID_VALUE;
    for (int o = 0; o < qsim_g.ndev; o++) {
        if (domain == 0 && device == 0 && fn == 0 && bus == (unsigned)qsim_dev_index(o) + 1) {
            *dev = o;
            return CUDA_SUCCESS;
        }
    }
    return CUDA_ERROR_INVALID_DEVICE;
}

QSIM_API CUresult cuDeviceGetByPCIBusId(CUdevice *dev, const char *pciBusId)
{
    QSIM_GUARDED(device_get_by_pci_bus_id(dev, pciBusId));
}
