/* state.h - all mutable global state of the shim. Only shim/state.c defines any.
 *
 * An interposer must keep some: a hooked cuLaunchKernel is handed no context of ours.
 * Each field says who writes it. Three lifetimes:
 *   - environment: read once, by the first hook or the constructor, whichever runs first
 *     (qs_managed(), shim/init.h), then read-only;
 *   - process: the driver, its entry points, the device mapping; a fork child keeps them;
 *   - tenant: this process's membership in its vGPU (agent thread, connection,
 *     reservation, allocation table); a fork child starts its own (shim/init.c). */
#ifndef QS_STATE_H
#define QS_STATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "shim/cuda.h"
#include "shim/hooks.h"
#include "shim/ptrtab.h"
#include "shim/resv.h"

#define QS_ID_LEN 64
#define QS_SECRET_LEN 256
#define QS_PATH_LEN 4096
#define QS_UUID_LEN 96
#define QS_MAX_POOLS 64

/* A memory pool whose growth is charged (cuMemAllocAsync, cuMemAllocFromPoolAsync). */
struct qs_pool {
    /* the driver's handle: set before npools counts it; NULL once the pool is destroyed
     * with allocations outstanding (the handle is dead, and may come back for a new
     * pool, which gets a record of its own): stored under lock, read without */
    _Atomic(CUmemoryPool) pool;
    bool device;          /* its memory lives on the GPU (host pools are not charged): lock */
    uint64_t charged;     /* bytes of it charged now, its reserved memory as last seen: lock */
    uint64_t live;        /* allocations from it not yet freed: lock */
    bool destroyed;       /* destroyed while live > 0: charged until the last is freed: lock */
    pthread_mutex_t lock; /* held across an allocation's before/after measurement */
};

/* Messages logged once per process (or per outage where noted); shim/log.h. */
struct qs_logged {
    atomic_int no_dlsym, no_cuda, no_nvml, no_device, bad_env;
    atomic_int unreachable; /* per outage: cleared when the arbiter answers again */
    atomic_int quota;       /* first refusal past the quota */
    atomic_int pools_full, table_full, agent, refused, newer_variant;
};

struct qs_agent; /* shim/agent.c */
struct qs_vmm;   /* shim/vmm.c */

#define QS_MAX_CTXS 64 /* contexts a drain synchronises (shim/gate.h) */
/* The gate's end when nothing is enforced: pass-through (the initial value), or the
 * arbiter cannot be reached or grants no leases: nobody to share the GPU with fairly. */
#define QS_GATE_FREE UINT64_MAX

/* The compute-lease gate (shim/gate.h). end and launched live on cache lines of their own:
 * every launch reads end, and the agent clears launched about every millisecond. */
struct qs_gate {
    _Alignas(64) _Atomic uint64_t end; /* lease end, monotonic ns; 0 closed, QS_GATE_FREE
                                          ungated (initially); the agent stores */
    _Alignas(64) atomic_int launched;  /* a launch passed since the agent last looked: any
                                          thread sets it, the agent clears it */
    atomic_int waiting;                /* threads blocked in qs_gate_wait(); they count */
    pthread_mutex_t lock;              /* guards ctxs and nctxs; opened's mutex */
    pthread_cond_t opened;             /* broadcast by the agent when the gate opens */
    pthread_mutex_t drain_lock;        /* held across a drain */
    CUcontext ctxs[QS_MAX_CTXS];       /* contexts launched on: lock */
    int nctxs;                         /* entries used: lock */
    pthread_cond_t drain_asked;        /* signalled for the drainer thread: lock */
    bool drainer;                      /* the drainer thread runs: set at agent start */
    uint64_t drain_req;                /* drains asked (a ticket each): lock */
    uint64_t drain_done;               /* the newest ticket drained: lock */
    uint64_t drain_end;                /* monotonic ns that drain ended: lock */
    uint64_t drain_took;               /* ns it lasted: lock */
};

struct qs_state {
    /* ---- environment: qs_env_decide() writes once, then read-only ---- */
    atomic_int env_state;         /* QS_ENV_*: release-stored once the fields below are set */
    int env_problems;             /* QS_ENVP_* bits found while reading, logged by qs_init() */
    pthread_once_t env_once;      /* logs env_problems and installs the fork handlers */
    char vgpu[QS_ID_LEN];         /* QVGPU_VGPU */
    char secret[QS_SECRET_LEN];   /* QVGPU_SECRET */
    char socket_dir[QS_PATH_LEN]; /* QVGPU_SOCKET_DIR, default /run/qvgpu */
    char env_gpu[QS_UUID_LEN];    /* CUDA_VISIBLE_DEVICES at load time: the GPU's UUID */

    /* ---- process: survive fork ---- */
    _Atomic(void *) real[QS_ENTRY_COUNT]; /* real entry points; any thread, release stores */
    _Atomic(void *) cuda_lib;             /* dlopen handle of libcuda.so.1 */
    _Atomic(void *) nvml_lib;             /* dlopen handle of libnvidia-ml.so.1 */
    _Atomic(void *) libc_dlsym;           /* glibc's dlsym */
    _Atomic(void *) libc_dlvsym;          /* glibc's dlvsym */

    pthread_mutex_t dev_lock;   /* guards the mapping below while it is made */
    atomic_int dev_state;       /* QS_DEV_*: release-stored once the mapping is made */
    CUdevice dev;               /* the vGPU's GPU as the driver names it (QS_DEV_MAPPED) */
    char gpu_uuid[QS_UUID_LEN]; /* its UUID, "GPU-xxxxxxxx-...": dev_lock */
    bool env_forced;            /* CUDA_VISIBLE_DEVICES was set to it before cuInit */
    /* "CUDA_VISIBLE_DEVICES=<gpu_uuid>", the environment entry the shim put in place of
     * the workload's (device.c): written once under dev_lock, then lives as long as the
     * process, as an environment entry must */
    char visible_entry[sizeof "CUDA_VISIBLE_DEVICES=" + QS_UUID_LEN];
    atomic_int nvml_state;          /* QS_DEV_*, for NVML's handle */
    _Atomic(nvmlDevice_t) nvml_dev; /* the GPU's NVML handle (QS_DEV_MAPPED) */

    /* ---- tenant: reset in a fork child ---- */
    pthread_mutex_t init_lock;          /* serialises qs_init(); taken across fork */
    atomic_int inited;                  /* 1 once qs_init() ran in this process: release-stored */
    struct qs_resv resv;                /* the reservation; shim/resv.h */
    _Atomic uint64_t quota;             /* the vGPU's memory quota in bytes; agent writes */
    _Atomic uint64_t vgpu_others;       /* the vGPU's other processes' use, last reported; agent */
    qs_ptrtab_t *ptrs;                  /* owned: live allocations; created by qs_init() */
    pthread_mutex_t pools_lock;         /* serialises adding pool records */
    struct qs_pool pools[QS_MAX_POOLS]; /* pools seen; records are never removed */
    atomic_int npools;                  /* records in use (release-stored after filling one) */
    struct qs_agent *agent;             /* owned by shim/agent.c; NULL when pass-through */
    pthread_mutex_t vmm_lock;           /* guards vmm; held across fork */
    struct qs_vmm *vmm; /* owned by shim/vmm.c: charged cuMemCreate allocations, mappings */
    struct qs_gate gate;                /* the compute lease; shim/gate.h */

    struct qs_logged logged;
};

enum { QS_DEV_UNKNOWN = 0, QS_DEV_MAPPED = 1, QS_DEV_NONE = 2 };

extern struct qs_state qs_g;

#endif
