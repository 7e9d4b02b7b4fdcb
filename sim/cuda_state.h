/* cuda_state.h - the simulated libcuda's per-process state (one struct, qsim_g, defined
 * in cuda_state.c) and the objects behind the driver's handles.
 *
 * Handles (CUcontext, CUstream, ...) are pointers to the structs below. They carry a
 * magic number checked on use; destroyed objects are kept on free lists, never given
 * back to malloc, so a stale handle reads a cleared magic and gets an error instead of
 * touching freed memory. Garbage pointers are the caller's fault, as with the real
 * driver.
 * Threads: qsim_g.lock guards every field marked (lock); the rest is set once by cuInit
 * before `state` turns READY (release) and read-only afterwards. */
#ifndef QSIM_CUDA_STATE_H
#define QSIM_CUDA_STATE_H

/* The driver's own view of cuda.h: every versioned variant declared, none renamed. */
#define __CUDA_API_VERSION_INTERNAL 1
#include <cuda.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "sim/host.h"
#include "sim/shm.h"

/* Marks an exported driver entry point (the build hides everything else). */
#define QSIM_API __attribute__((visibility("default")))

#define QSIM_DRIVER_VERSION 13000 /* the newest release simulated, its default */

enum qsim_magic {
    QSIM_MAGIC_CTX = 0x51435458,    /* "QCTX" */
    QSIM_MAGIC_STREAM = 0x51535452, /* "QSTR" */
    QSIM_MAGIC_EVENT = 0x51455654,  /* "QEVT" */
    QSIM_MAGIC_MODULE = 0x514d4f44, /* "QMOD" */
    QSIM_MAGIC_FUNC = 0x5146554e,   /* "QFUN" */
    QSIM_MAGIC_POOL = 0x51504f4c,   /* "QPOL" */
    QSIM_MAGIC_GRAPH = 0x51475250,  /* "QGRP" */
    QSIM_MAGIC_EXEC = 0x51455845,   /* "QEXE" */
    QSIM_MAGIC_ARRAY = 0x51415252,  /* "QARR" */
    QSIM_MAGIC_MIPMAP = 0x514d4950, /* "QMIP" */
    QSIM_MAGIC_PHYS = 0x51504859,   /* "QPHY" */
    QSIM_MAGIC_NODE = 0x514e4f44,   /* "QNOD" */
    QSIM_MAGIC_LINK = 0x514c4e4b,   /* "QLNK" */
    QSIM_MAGIC_LIBRARY = 0x514c4942, /* "QLIB" */
    QSIM_MAGIC_KERNEL = 0x514b524e, /* "QKRN" */
};

enum qsim_run_state {
    QSIM_UNINIT = 0, /* cuInit not called */
    QSIM_READY = 1,  /* cuInit succeeded */
    QSIM_FAILED = 2, /* cuInit failed: init_rc says how */
    QSIM_FORKED = 3, /* a child forked after cuInit: the driver is unusable here */
};

struct qsim_stream;
struct qsim_capture;

/* A context: a primary one (one per device, retained and released) or a created one. */
struct qsim_ctx {
    uint32_t magic;              /* QSIM_MAGIC_CTX while alive */
    int ordinal;                 /* CUDA ordinal */
    int slot;                    /* engine context slot */
    unsigned flags;              /* CU_CTX_* given at creation */
    bool primary;                /* the device's primary context */
    CUfunc_cache cache_config;   /* cuCtxSetCacheConfig; not acted upon */
    size_t limits[CU_LIMIT_MAX]; /* cuCtxSetLimit; not acted upon */
    unsigned long long id;       /* cuCtxGetId; unique in the process */
    struct qsim_stream *legacy;  /* owned: its legacy default stream */
    struct qsim_ctx *next;       /* qsim_g.ctxs: every context ever made (lock) */
};

/* A stream: user-created, or a context's legacy or a thread's per-thread default one. */
struct qsim_stream {
    uint32_t magic;       /* QSIM_MAGIC_STREAM while alive */
    int slot;             /* engine stream slot */
    struct qsim_ctx *ctx; /* context its work runs in */
    unsigned flags;       /* CU_STREAM_* */
    int priority;
    bool builtin;          /* legacy or per-thread: not for cuStreamDestroy */
    unsigned long long id; /* cuStreamGetId */
    bool per_thread;       /* a thread's per-thread default stream */
    /* Capture it takes part in, or NULL. Written under qsim_g.lock; read without it
     * (relaxed) by the launch path, which takes the lock only when it is set. */
    _Atomic(struct qsim_capture *) cap;
    struct qsim_stream *next;     /* qsim_g.streams (live) or qsim_g.free_streams (lock) */
    struct qsim_stream *tls_next; /* per_thread: the owning thread's list */
};

struct qsim_event {
    uint32_t magic;       /* QSIM_MAGIC_EVENT while alive */
    int slot;             /* engine event slot */
    unsigned flags;       /* CU_EVENT_* */
    struct qsim_ctx *ctx; /* context it was created in */
    /* Capture its last record happened in, or NULL; as qsim_stream.cap. */
    _Atomic(struct qsim_capture *) cap;
    struct qsim_event *next; /* qsim_g.events (live) or qsim_g.free_events (lock) */
};

enum qsim_mem_kind {
    QSIM_MEM_DEVICE = 1,  /* cuMemAlloc, cuMemAllocPitch */
    QSIM_MEM_MANAGED = 2, /* cuMemAllocManaged */
    QSIM_MEM_HOST = 4,    /* cuMemAllocHost, cuMemHostAlloc: page-locked host memory */
    QSIM_MEM_POOL = 8,    /* stream-ordered, from a memory pool */
    QSIM_MEM_VMM = 16,    /* a mapped piece of a cuMemCreate allocation */
};

/* One range of memory the driver handed out. Device memory is an anonymous
 * MAP_NORESERVE mapping in this process: its device pointer is its address, it costs
 * nothing until touched, and it stays valid across checkpoint and restore. */
struct qsim_alloc {
    uintptr_t base;        /* first byte a pointer may name */
    size_t size;           /* bytes asked for */
    size_t charged;        /* bytes charged to the device (0: host memory) */
    int kind;              /* enum qsim_mem_kind */
    int ordinal;           /* device charged; -1 for host memory */
    struct qsim_ctx *ctx;  /* context that made it (freed with it), or NULL */
    void *owner;           /* pool chunk or VMM mapping, per kind */
    unsigned long long id; /* CU_POINTER_ATTRIBUTE_BUFFER_ID */
    unsigned flags;        /* cuMemHostAlloc / cuMemAllocManaged flags, or
                              QSIM_READONLY for a read-only VMM mapping */
};

#define QSIM_READONLY 0x80000000u
/* flags bit of host memory the application registered (cuMemHostRegister): not ours to
 * unmap. */
#define QSIM_REGISTERED 0x40000000u

/* Sorted by base; ranges never overlap. */
struct qsim_allocs {
    struct qsim_alloc *v; /* owned */
    size_t n;
    size_t cap;
};

struct qsim_primary {
    struct qsim_ctx *ctx; /* the device's primary context, made on first retain */
    int retained;         /* retain count; active while > 0 */
    unsigned flags;       /* cuDevicePrimaryCtxSetFlags */
};

struct qsim_pool;
struct qsim_phys;
struct qsim_vma;
struct qsim_module;
struct qsim_array;
struct qsim_mipmap;
struct qsim_graph;
struct qsim_exec;
struct qsim_link;
struct qsim_library;
struct qsim_cls;

/* All mutable global state of the simulated libcuda. Only cuda_state.c defines any. */
struct qsim_cuda {
    pthread_mutex_t lock; /* guards the fields marked (lock) */
    _Atomic int state;    /* enum qsim_run_state; READY stored with release */
    CUresult init_rc;     /* result of the first cuInit (lock) */
    qsim_host_t *host;    /* set by cuInit */
    struct qsim_shm *shm; /* the host's mapping, set by cuInit */
    struct qsim_proc *me; /* this process's slot in shm, set by cuInit */
    int proc;             /* its index */
    int ndev;             /* CUDA ordinals (after CUDA_VISIBLE_DEVICES) */
    struct qsim_primary primary[QSIM_MAX_DEVICES];    /* (lock) */
    struct qsim_ctx *ctxs;                            /* every context ever made (lock) */
    struct qsim_stream *streams;                      /* live user and legacy streams (lock) */
    struct qsim_stream *free_streams;                 /* (lock) */
    struct qsim_event *events;                        /* live events (lock) */
    struct qsim_event *free_events;                   /* (lock) */
    struct qsim_allocs allocs;                        /* device and page-locked memory (lock) */
    struct qsim_module *modules;                      /* every module ever loaded (lock) */
    struct qsim_pool *pools;                          /* every live memory pool (lock) */
    struct qsim_pool *default_pool[QSIM_MAX_DEVICES]; /* made on first use (lock) */
    struct qsim_pool *cur_pool[QSIM_MAX_DEVICES];     /* cuDeviceSetMemPool (lock) */
    struct qsim_phys *phys;                           /* live cuMemCreate allocations (lock) */
    struct qsim_vma *vas;               /* VMM address reservations, cuda_vmm.c (lock) */
    struct qsim_array *arrays;          /* every array ever made, cuda_array.c (lock) */
    struct qsim_mipmap *mipmaps;        /* every mipmapped array ever made (lock) */
    struct qsim_graph *graphs;          /* every graph ever made, cuda_graph.c (lock) */
    struct qsim_exec *execs;            /* every executable graph ever made (lock) */
    struct qsim_link *free_links;       /* destroyed link states, cuda_link.c (lock) */
    struct qsim_library *libraries;     /* every library ever loaded, cuda_library.c (lock) */
    struct qsim_cls *cls;               /* the runtime's context-local storage and the
                                           entries of stopped contexts whose destructors
                                           are still to run, cuda_export.c (lock) */
    uint32_t rt_hooks[1024];            /* buffers the runtime's tool hooks live in; the */
    uint32_t rt_hooks2[14];             /* driver never reads them, cuda_export.c */
    _Atomic unsigned long long next_id; /* ids for contexts, streams, buffers; relaxed:
                                        only uniqueness matters */
    pthread_key_t thread_key;           /* per-thread default streams, freed at thread exit */
    _Atomic(void *) self;               /* dlopen handle of this library, cuda_procaddr.c */
    _Atomic(const struct qsim_driver *) driver; /* the release simulated, read once from
                                                  QSIM_DRIVER_VERSION (qsim_driver()) */
};
extern struct qsim_cuda qsim_g;

#define QSIM_CTX_STACK 64

/* Per-thread state of the simulated libcuda. Only cuda_state.c defines it. */
struct qsim_thread {
    struct qsim_ctx *stack[QSIM_CTX_STACK]; /* context stack; the top is current */
    int depth;                              /* entries in stack */
};
extern __thread struct qsim_thread qsim_t;

struct qsim_driver;
/* The driver release this process simulates (QSIM_DRIVER_VERSION, sim/config.h): known
 * before cuInit, as cuDriverGetVersion and cuGetProcAddress need none. A malformed value
 * reads as the default here; cuInit refuses it. */
const struct qsim_driver *qsim_driver(void);

/* ---- entry and exit of every driver call ------------------------------------------ */

/* Slow path of qsim_enter: not initialised, or a checkpoint holds the process. */
CUresult qsim_enter_slow(void);

/* Called first by every entry point that needs cuInit. Returns CUDA_SUCCESS (then call
 * qsim_leave when done) or the error to return. Blocks while the process is locked by
 * cuCheckpointProcessLock. Lock-free: two atomic operations on shared memory. */
static inline CUresult qsim_enter(void)
{
    if (atomic_load_explicit(&qsim_g.state, memory_order_acquire) != QSIM_READY)
        return qsim_enter_slow();
    /* seq_cst on both sides (here and in the checkpointer) makes sure that a thread
     * either sees the gate closed or is seen inside by the checkpointer. */
    atomic_fetch_add(&qsim_g.me->in_api, 1);
    if (atomic_load(&qsim_g.me->gate))
        return qsim_enter_slow();
    return CUDA_SUCCESS;
}

static inline void qsim_leave(void)
{
    if (atomic_fetch_sub(&qsim_g.me->in_api, 1) == 1 && atomic_load(&qsim_g.me->gate))
        qsim_futex_wake(&qsim_g.me->in_api);
}

/* Body of an entry point: enter, evaluate call (a CUresult), leave, return it. */
#define QSIM_GUARDED(call)                                                                         \
    do {                                                                                           \
        CUresult rc_ = qsim_enter();                                                               \
        if (rc_ == CUDA_SUCCESS) {                                                                 \
            rc_ = (call);                                                                          \
            qsim_leave();                                                                          \
        }                                                                                          \
        return rc_;                                                                                \
    } while (0)

/* ---- shared helpers --------------------------------------------------------------- */

/* Maps a negative errno from the model to the driver's error. */
CUresult qsim_cu_error(int neg_errno);

/* Takes the host lock; CUDA_ERROR_UNKNOWN if it is unrecoverable. */
CUresult qsim_lock_host(void);
void qsim_unlock_host(void);

/* Device index of CUDA ordinal ord (changes only on a remapping restore). */
static inline int qsim_dev_index(int ord)
{
    return qsim_g.me->ord_map[ord];
}

/* The shared device record of ordinal ord. */
static inline struct qsim_dev *qsim_dev_of(int ord)
{
    return &qsim_g.shm->dev[qsim_dev_index(ord)];
}

/* CUDA_ERROR_INVALID_DEVICE unless 0 <= dev < qsim_g.ndev. */
static inline CUresult qsim_check_device(CUdevice dev)
{
    return dev >= 0 && dev < qsim_g.ndev ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE;
}

/* cuDeviceGetAttribute's answer (cuda_device.c), for the driver's own use. */
CUresult qsim_device_attribute(int *pi, CUdevice_attribute attrib, CUdevice dev);

/* A new id for a context, stream or buffer; any thread. */
unsigned long long qsim_new_id(void);

/* dlopen(this library, RTLD_LAZY | RTLD_NOLOAD | flags): a new reference to this very
 * library (the caller closes it, or keeps it for good), or NULL. Found from the address
 * of a hidden function: an exported name, even used from inside this library, may be
 * bound to a preloaded library's definition of it (the shim's), whose file it would
 * name. */
void *qsim_self_open(int flags);

#endif
