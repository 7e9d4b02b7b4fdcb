/* pools.c - stream-ordered allocation (cuMemAllocAsync, cuMemAllocFromPoolAsync): a pool
 * is charged what it holds on the GPU (CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT), not what
 * its allocations ask for, since the pool keeps freed memory until it trims.
 *
 * An allocation charges headroom first (its size, rounded up to the 2 MiB a pool grows
 * by at least), then settles on the pool's growth measured before and after. A pool
 * shrinks only when it trims (at synchronisation, cuMemPoolTrimTo): those hooks
 * re-measure every charged pool. Where the driver cannot measure a pool, each allocation
 * is charged its size and uncharged at its free.
 *
 * Destroying a pool while allocations from it are outstanding defers the release: the
 * driver keeps the pool's memory until they are freed. So each allocation from a
 * measured pool is remembered (QS_ALLOC_POOLED, charging nothing itself) and counted on
 * its pool's record; a pool destroyed with some live stays charged what it held until the
 * last is freed, and its record, whose handle is dead, matches no pool until then.
 *
 * Threads: any; a pool's lock is held across its measurement and an allocation, so two
 * threads never count one growth twice. Pool records are added under pools_lock and
 * never removed (a dead one is reused), so readers scan them lock-free up to npools
 * (acquire); a record found that way is checked again under its lock.
 * State: pools0, this file's alone (shim/pools.h). */
#include "shim/pools.h"

#include <errno.h>
#include <pthread.h>

#include "shim/device.h"
#include "shim/errors.h"
#include "shim/init.h"
#include "shim/log.h"
#include "shim/mem.h"
#include "shim/real.h"

#define POOL_CHUNK (2ull << 20)
#define MAX_POOLS 64

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

/* The pools seen. The records' locks start zeroed, which is PTHREAD_MUTEX_INITIALIZER in
 * glibc: a hook may run before any constructor of ours. */
static struct {
    pthread_mutex_t lock;            /* serialises adding records */
    struct qs_pool pools[MAX_POOLS]; /* records are never removed */
    atomic_int npools;               /* records in use (release-stored after filling one) */
    atomic_int logged_full;          /* "more than 64 pools" was said */
} pools0 = {.lock = PTHREAD_MUTEX_INITIALIZER};

void qs_pools_reset_after_fork(void)
{
    pthread_mutex_init(&pools0.lock, NULL);
    for (int i = 0; i < MAX_POOLS; i++) {
        pthread_mutex_init(&pools0.pools[i].lock, NULL);
        pools0.pools[i].charged = 0;
        pools0.pools[i].live = 0;
        pools0.pools[i].destroyed = false;
    }
}

static CUmemoryPool pool_of(struct qs_pool *rec)
{
    /* relaxed: a stale handle is caught by the check under the record's lock */
    return atomic_load_explicit(&rec->pool, memory_order_relaxed);
}

/* A record for pool taken from free ones (never used, or dead: destroyed and drained).
 * pools_lock held. */
static struct qs_pool *new_record(CUmemoryPool pool, bool device)
{
    int n = atomic_load_explicit(&pools0.npools, memory_order_relaxed);
    for (int i = 0; i < n; i++) {
        struct qs_pool *rec = &pools0.pools[i];
        if (pool_of(rec))
            continue;
        pthread_mutex_lock(&rec->lock);
        bool reusable = !pool_of(rec) && !rec->destroyed;
        if (reusable) {
            rec->device = device;
            rec->charged = 0;
            rec->live = 0;
            atomic_store_explicit(&rec->pool, pool, memory_order_relaxed);
        }
        pthread_mutex_unlock(&rec->lock);
        if (reusable)
            return rec;
    }
    if (n == MAX_POOLS)
        return NULL;
    struct qs_pool *rec = &pools0.pools[n];
    pthread_mutex_lock(&rec->lock);
    rec->device = device;
    rec->charged = 0;
    rec->live = 0;
    rec->destroyed = false;
    atomic_store_explicit(&rec->pool, pool, memory_order_relaxed);
    pthread_mutex_unlock(&rec->lock);
    /* release: the record is filled before readers can reach it */
    atomic_store_explicit(&pools0.npools, n + 1, memory_order_release);
    return rec;
}

/* The record of pool, or NULL; added (charged unless device is 0) when add is set and
 * there is none. Returned locked, checked to still be pool's. */
static struct qs_pool *locked_record(CUmemoryPool pool, bool device, bool add)
{
    for (;;) {
        struct qs_pool *rec = NULL;
        int n = atomic_load_explicit(&pools0.npools, memory_order_acquire);
        for (int i = 0; i < n && !rec; i++) {
            if (pool_of(&pools0.pools[i]) == pool)
                rec = &pools0.pools[i];
        }
        if (!rec && add) {
            pthread_mutex_lock(&pools0.lock);
            n = atomic_load_explicit(&pools0.npools, memory_order_relaxed);
            for (int i = 0; i < n && !rec; i++) {
                if (pool_of(&pools0.pools[i]) == pool)
                    rec = &pools0.pools[i];
            }
            if (!rec)
                rec = new_record(pool, device);
            pthread_mutex_unlock(&pools0.lock);
            if (!rec)
                qs_log_once(&pools0.logged_full,
                            "more than %d memory pools: allocations from "
                            "the others are charged one by one",
                            MAX_POOLS);
        }
        if (!rec)
            return NULL;
        pthread_mutex_lock(&rec->lock);
        if (pool_of(rec) == pool)
            return rec;
        /* Destroyed (or reused) between the scan and the lock: look again. */
        pthread_mutex_unlock(&rec->lock);
    }
}

/* The bytes pool holds on the GPU. Returns 0 or -ENOSYS when the driver cannot tell. */
static int reserved_mem(CUmemoryPool pool, uint64_t *bytes)
{
    QS_PFN_cuMemPoolGetAttribute get = QS_REAL(cuMemPoolGetAttribute);
    cuuint64_t v = 0;
    if (!get || get(pool, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT, &v) != CUDA_SUCCESS)
        return -ENOSYS;
    *bytes = v;
    return 0;
}

/* Charges or gives back the difference between what rec is charged and what it holds
 * now (cur). Lock held. */
static void settle(struct qs_pool *rec, uint64_t cur)
{
    if (cur > rec->charged)
        qs_mem_force(cur - rec->charged);
    else
        qs_mem_uncharge(rec->charged - cur);
    rec->charged = cur;
}

void qs_pools_reconcile(void)
{
    int n = atomic_load_explicit(&pools0.npools, memory_order_acquire);
    for (int i = 0; i < n; i++) {
        struct qs_pool *rec = &pools0.pools[i];
        uint64_t cur;
        pthread_mutex_lock(&rec->lock);
        /* A destroyed pool cannot be measured: it keeps its charge until drained. */
        if (rec->device && pool_of(rec) && reserved_mem(pool_of(rec), &cur) == 0)
            settle(rec, cur);
        pthread_mutex_unlock(&rec->lock);
    }
}

void qs_pools_freed(struct qs_pool *rec)
{
    pthread_mutex_lock(&rec->lock);
    if (rec->live > 0)
        rec->live--;
    if (rec->destroyed && rec->live == 0) {
        /* The driver gives a destroyed pool's memory back with its last allocation; the
         * record, whose handle is long dead, is free for another pool. */
        settle(rec, 0);
        rec->destroyed = false;
        rec->device = false;
    }
    pthread_mutex_unlock(&rec->lock);
}

/* One stream-ordered allocation, whichever entry point the application used. */
struct pool_call {
    int id;            /* the hook: QS_H_cuMemAllocAsync... */
    CUdeviceptr *dptr; /* the application's */
    size_t bytes;      /* asked */
    CUmemoryPool pool; /* the pool it comes from */
    CUstream stream;   /* the application's */
};

static CUresult call_alloc(const struct pool_call *c)
{
    switch (c->id) {
    case QS_H_cuMemAllocAsync:
        return QS_REAL(cuMemAllocAsync)(c->dptr, c->bytes, c->stream);
    case QS_H_cuMemAllocAsync_ptsz:
        return QS_REAL(cuMemAllocAsync_ptsz)(c->dptr, c->bytes, c->stream);
    case QS_H_cuMemAllocFromPoolAsync:
        return QS_REAL(cuMemAllocFromPoolAsync)(c->dptr, c->bytes, c->pool, c->stream);
    default:
        return QS_REAL(cuMemAllocFromPoolAsync_ptsz)(c->dptr, c->bytes, c->pool, c->stream);
    }
}

/* Frees c's allocation again, on the same kind of stream. */
static void call_free(const struct pool_call *c)
{
    bool ptsz = c->id == QS_H_cuMemAllocAsync_ptsz || c->id == QS_H_cuMemAllocFromPoolAsync_ptsz;
    if (ptsz) {
        QS_PFN_cuMemFreeAsync_ptsz f = QS_REAL(cuMemFreeAsync_ptsz);
        if (f)
            f(*c->dptr, c->stream);
    } else {
        QS_PFN_cuMemFreeAsync f = QS_REAL(cuMemFreeAsync);
        if (f)
            f(*c->dptr, c->stream);
    }
}

/* Where the pool cannot be measured: charge the allocation itself, until its free. */
static CUresult alloc_unmeasured(const struct pool_call *c)
{
    int rc = qs_mem_charge(c->bytes);
    if (rc < 0)
        return qs_cu_error(rc);
    CUresult r = call_alloc(c);
    if (r != CUDA_SUCCESS)
        qs_mem_uncharge(c->bytes);
    else
        qs_mem_track(QS_ALLOC_DPTR, *c->dptr, c->bytes, true);
    return r;
}

static CUresult alloc_charged(const struct pool_call *c)
{
    uint64_t cur;
    struct qs_pool *rec = locked_record(c->pool, true, true);
    if (!rec)
        return alloc_unmeasured(c);
    if (!rec->device) {
        pthread_mutex_unlock(&rec->lock);
        return call_alloc(c);
    }
    /* Measured under the lock: measured before it, another thread's allocation could
     * land between the two and its growth be counted twice. */
    if (reserved_mem(c->pool, &cur) < 0) {
        pthread_mutex_unlock(&rec->lock);
        return alloc_unmeasured(c);
    }
    /* What the pool holds may have changed since we last looked (a trim we did not see). */
    settle(rec, cur);
    uint64_t headroom = ((uint64_t)c->bytes + POOL_CHUNK - 1) / POOL_CHUNK * POOL_CHUNK;
    int rc = qs_mem_charge(headroom);
    if (rc < 0) {
        pthread_mutex_unlock(&rec->lock);
        return qs_cu_error(rc);
    }
    CUresult r = call_alloc(c);
    uint64_t after = cur + (r == CUDA_SUCCESS ? headroom : 0);
    reserved_mem(c->pool, &after);
    uint64_t have = rec->charged + headroom;
    if (after > have && r == CUDA_SUCCESS && qs_mem_charge(after - have) < 0) {
        /* It grew by more than the headroom, past the quota: refuse it. The pool keeps
         * the memory until it trims, so it stays charged until then. */
        call_free(c);
        qs_mem_force(after - have);
        r = CUDA_ERROR_OUT_OF_MEMORY;
    } else if (after > have && r != CUDA_SUCCESS) {
        qs_mem_force(after - have);
    } else if (after < have) {
        qs_mem_uncharge(have - after);
    }
    rec->charged = after;
    if (r == CUDA_SUCCESS) {
        rec->live++;
        qs_mem_track_pooled(*c->dptr, rec);
    }
    pthread_mutex_unlock(&rec->lock);
    return r;
}

static CUresult alloc_async(struct pool_call *c)
{
    if (!qs_managed() || !c->dptr || c->bytes == 0)
        return call_alloc(c);
    qs_init();
    if (!c->pool) {
        /* cuMemAllocAsync: the current pool of the stream's device, which is ours. */
        QS_PFN_cuDeviceGetMemPool get = QS_REAL(cuDeviceGetMemPool);
        if (qs_device_state() != QS_DEV_MAPPED || !get ||
            get(&c->pool, qs_device()) != CUDA_SUCCESS)
            return alloc_unmeasured(c);
    }
    return alloc_charged(c);
}

#define ASYNC_HOOK(name)                                                                           \
    QS_EXPORT CUresult name(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)                  \
    {                                                                                              \
        if (!QS_REAL(name))                                                                        \
            return qs_cu_error(-ENOSYS);                                                           \
        struct pool_call c = {QS_H_##name, dptr, bytesize, NULL, hStream};                         \
        return alloc_async(&c);                                                                    \
    }
#define FROM_POOL_HOOK(name)                                                                       \
    QS_EXPORT CUresult name(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool,                 \
                            CUstream hStream)                                                      \
    {                                                                                              \
        if (!QS_REAL(name))                                                                        \
            return qs_cu_error(-ENOSYS);                                                           \
        if (!pool)                                                                                 \
            return QS_REAL(name)(dptr, bytesize, pool, hStream);                                   \
        struct pool_call c = {QS_H_##name, dptr, bytesize, pool, hStream};                         \
        return alloc_async(&c);                                                                    \
    }

ASYNC_HOOK(cuMemAllocAsync)
ASYNC_HOOK(cuMemAllocAsync_ptsz)
FROM_POOL_HOOK(cuMemAllocFromPoolAsync)
FROM_POOL_HOOK(cuMemAllocFromPoolAsync_ptsz)

/* A stream-ordered free returns memory to its pool, not to the GPU: nothing to give back
 * until the pool trims, except for an allocation charged on its own, or the last one of
 * a destroyed pool. */
#define FREE_ASYNC_HOOK(name)                                                                      \
    QS_EXPORT CUresult name(CUdeviceptr dptr, CUstream hStream)                                    \
    {                                                                                              \
        QS_PFN_##name real = QS_REAL(name);                                                        \
        if (!real)                                                                                 \
            return qs_cu_error(-ENOSYS);                                                           \
        if (!qs_managed() || !dptr)                                                                \
            return real(dptr, hStream);                                                            \
        struct qs_freeing f;                                                                       \
        qs_mem_free_begin(QS_ALLOC_DPTR, dptr, &f);                                                \
        return qs_mem_free_end(real(dptr, hStream), &f);                                           \
    }

FREE_ASYNC_HOOK(cuMemFreeAsync)
FREE_ASYNC_HOOK(cuMemFreeAsync_ptsz)

QS_EXPORT CUresult cuMemPoolCreate(CUmemoryPool *pool, const CUmemPoolProps *props)
{
    QS_PFN_cuMemPoolCreate real = QS_REAL(cuMemPoolCreate);
    if (!real)
        return qs_cu_error(-ENOSYS);
    CUresult r = real(pool, props);
    if (r != CUDA_SUCCESS || !qs_managed() || !pool || !props)
        return r;
    bool device = props->location.type == CU_MEM_LOCATION_TYPE_DEVICE ||
                  props->allocType == CU_MEM_ALLOCATION_TYPE_MANAGED;
    struct qs_pool *rec = locked_record(*pool, device, true);
    if (rec) {
        /* The handle of a pool destroyed when drained may come back for this one. */
        rec->device = device;
        pthread_mutex_unlock(&rec->lock);
    }
    return r;
}

QS_EXPORT CUresult cuMemPoolDestroy(CUmemoryPool pool)
{
    QS_PFN_cuMemPoolDestroy real = QS_REAL(cuMemPoolDestroy);
    if (!real)
        return qs_cu_error(-ENOSYS);
    struct qs_pool *rec = qs_managed() && pool ? locked_record(pool, false, false) : NULL;
    if (!rec)
        return real(pool);
    /* Under the lock: no allocation from it may start or end half-seen. */
    uint64_t cur;
    if (rec->device && rec->live > 0 && reserved_mem(pool, &cur) == 0)
        settle(rec, cur);
    CUresult r = real(pool);
    if (r == CUDA_SUCCESS && rec->live > 0) {
        /* The driver keeps the pool's memory until its allocations are freed: so does the
         * charge, and the dead handle must not find this record again. */
        rec->destroyed = true;
        atomic_store_explicit(&rec->pool, NULL, memory_order_relaxed);
    } else if (r == CUDA_SUCCESS) {
        settle(rec, 0);
        rec->device = false;
    }
    pthread_mutex_unlock(&rec->lock);
    return r;
}

QS_EXPORT CUresult cuMemPoolTrimTo(CUmemoryPool pool, size_t minBytesToKeep)
{
    QS_PFN_cuMemPoolTrimTo real = QS_REAL(cuMemPoolTrimTo);
    if (!real)
        return qs_cu_error(-ENOSYS);
    CUresult r = real(pool, minBytesToKeep);
    if (r == CUDA_SUCCESS && qs_managed())
        qs_pools_reconcile();
    return r;
}

/* ---- synchronisation: pools trim here ------------------------------------------------ */

#define SYNC_HOOK(name, params, args)                                                              \
    QS_EXPORT CUresult name params                                                                 \
    {                                                                                              \
        QS_PFN_##name real = QS_REAL(name);                                                        \
        if (!real)                                                                                 \
            return qs_cu_error(-ENOSYS);                                                           \
        CUresult r = real args;                                                                    \
        if (qs_managed() && atomic_load_explicit(&pools0.npools, memory_order_relaxed))            \
            qs_pools_reconcile();                                                                  \
        return r;                                                                                  \
    }

SYNC_HOOK(cuStreamSynchronize, (CUstream hStream), (hStream))
SYNC_HOOK(cuStreamSynchronize_ptsz, (CUstream hStream), (hStream))
SYNC_HOOK(cuCtxSynchronize, (void), ())
SYNC_HOOK(cuCtxSynchronize_v2, (CUcontext ctx), (ctx))
SYNC_HOOK(cuEventSynchronize, (CUevent hEvent), (hEvent))
