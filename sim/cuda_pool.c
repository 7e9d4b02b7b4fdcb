/* cuda_pool.c - memory pools and stream-ordered allocation (cuMemAllocAsync,
 * cuMemFreeAsync, cuMemAllocFromPoolAsync).
 *
 * A pool reserves device memory in chunks of whole granules (2 MiB), one chunk per
 * allocation, and charges the device for what it reserves: pool-reserved memory is used
 * device memory. A freed chunk stays reserved for reuse; at the next synchronisation
 * (stream, event, context) a pool gives back free chunks while it holds more than its
 * release threshold (default 0), as the real driver does. A chunk freed in stream order
 * is reused at once by the same stream, by others once the free has completed.
 * Threads: any; pools and chunks under qsim_g.lock (taken before the host lock). */
#include "sim/cuda_pool.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "sim/cuda_ctx.h"
#include "sim/cuda_graph.h"
#include "sim/cuda_mem.h"
#include "sim/cuda_stream.h"
#include "sim/engine.h"

struct qsim_chunk {
    uintptr_t base;          /* the mapping */
    size_t size;             /* bytes reserved (and charged), whole granules */
    size_t asked;            /* bytes of the allocation using it */
    bool in_use;             /* handed out */
    int free_stream;         /* engine stream slot it was freed on; -1: free now */
    uint64_t free_seq;       /* ... and the operation after which it is */
    struct qsim_chunk *next; /* the pool's list */
};

struct qsim_pool {
    uint32_t magic;         /* QSIM_MAGIC_POOL while it exists */
    int ordinal;            /* device it reserves on */
    bool is_default;        /* the device's default pool: never destroyed */
    uint64_t threshold;     /* CU_MEMPOOL_ATTR_RELEASE_THRESHOLD */
    int reuse[3];           /* the three REUSE_* attributes; not acted upon */
    uint64_t reserved;      /* bytes in chunks */
    uint64_t used;          /* bytes in chunks in use */
    uint64_t reserved_high; /* high-water marks since their last reset */
    uint64_t used_high;
    struct qsim_chunk *chunks; /* owned */
    struct qsim_pool *next;    /* qsim_g.pools */
};

/* ---- helpers (qsim_g.lock held) ---------------------------------------------------- */

static struct qsim_pool *pool_of(CUmemoryPool h)
{
    struct qsim_pool *p = (struct qsim_pool *)h;
    return p && p->magic == QSIM_MAGIC_POOL ? p : NULL;
}

static struct qsim_pool *pool_new_locked(int ord, bool is_default)
{
    struct qsim_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->ordinal = ord;
    p->is_default = is_default;
    p->reuse[0] = p->reuse[1] = p->reuse[2] = 1;
    p->magic = QSIM_MAGIC_POOL;
    p->next = qsim_g.pools;
    qsim_g.pools = p;
    return p;
}

static struct qsim_pool *default_pool_locked(int ord)
{
    if (!qsim_g.default_pool[ord])
        qsim_g.default_pool[ord] = pool_new_locked(ord, true);
    return qsim_g.default_pool[ord];
}

/* Gives chunk c (free) back to the device and frees it. */
static void release_chunk_locked(struct qsim_pool *p, struct qsim_chunk *c)
{
    for (struct qsim_chunk **pp = &p->chunks; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    munmap((void *)c->base, c->size);
    qsim_mem_uncharge(p->ordinal, c->size);
    p->reserved -= c->size;
    free(c);
}

/* True when free chunk c may be handed out on stream slot st: freed there (stream order
 * makes it safe) or its free has completed. */
static bool reusable(const struct qsim_chunk *c, int st)
{
    if (c->in_use)
        return false;
    if (c->free_stream < 0 || c->free_stream == st)
        return true;
    return qsim_engine_query(qsim_g.host, c->free_stream, c->free_seq);
}

/* Gives back free, completed chunks of p while it reserves more than keep. */
static void trim_locked(struct qsim_pool *p, uint64_t keep)
{
    struct qsim_chunk *c = p->chunks;
    while (c && p->reserved > keep) {
        struct qsim_chunk *next = c->next;
        if (reusable(c, -1))
            release_chunk_locked(p, c);
        c = next;
    }
}

/* Frees pool allocation ptr in stream order on stream slot st (-1: at once). */
static CUresult free_locked(uintptr_t ptr, int st, uint64_t seq)
{
    struct qsim_alloc *a = qsim_mem_find_locked(ptr);
    if (!a || a->base != ptr || a->kind != QSIM_MEM_POOL)
        return CUDA_ERROR_INVALID_VALUE;
    struct qsim_pool *p = a->owner;
    qsim_mem_remove_locked(ptr);
    struct qsim_chunk *c = p->chunks;
    while (c && c->base != ptr)
        c = c->next;
    if (!c)
        return CUDA_ERROR_INVALID_VALUE;
    c->in_use = false;
    c->free_stream = st;
    c->free_seq = seq;
    p->used -= c->size;
    if (p->magic != QSIM_MAGIC_POOL) /* its pool was destroyed while it was in use */
        release_chunk_locked(p, c);
    return CUDA_SUCCESS;
}

/* ---- hooks for the rest of the driver ---------------------------------------------- */

void qsim_pool_on_sync(int ord)
{
    pthread_mutex_lock(&qsim_g.lock);
    for (struct qsim_pool *p = qsim_g.pools; p; p = p->next) {
        /* A destroyed pool keeps nothing: chunks whose free was still pending when it was
         * destroyed go now. */
        uint64_t keep = p->magic == QSIM_MAGIC_POOL ? p->threshold : 0;
        if (p->ordinal == ord && p->reserved > keep)
            trim_locked(p, keep);
    }
    pthread_mutex_unlock(&qsim_g.lock);
}

CUresult qsim_pool_free_now(uintptr_t ptr)
{
    pthread_mutex_lock(&qsim_g.lock);
    CUresult rc = free_locked(ptr, -1, 0);
    pthread_mutex_unlock(&qsim_g.lock);
    return rc;
}

/* ---- stream-ordered allocation ----------------------------------------------------- */

static CUresult alloc_from(struct qsim_pool *p, CUdeviceptr *dptr, size_t bytes,
                           struct qsim_stream *st)
{
    if (atomic_load_explicit(&st->cap, memory_order_relaxed))
        return qsim_capture_violated(st); /* memory nodes are not simulated */
    if (st->ctx->ordinal != p->ordinal)
        return CUDA_ERROR_INVALID_VALUE;
    size_t size = qsim_round_up(bytes, QSIM_GRANULARITY);
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_chunk *best = NULL;
    for (struct qsim_chunk *c = p->chunks; c; c = c->next)
        if (c->size >= size && (!best || c->size < best->size) && reusable(c, st->slot))
            best = c;
    CUresult rc = CUDA_SUCCESS;
    if (!best) {
        best = calloc(1, sizeof *best);
        void *m = NULL;
        if (!best || (rc = qsim_mem_charge(p->ordinal, size)) != CUDA_SUCCESS) {
            rc = best ? rc : CUDA_ERROR_OUT_OF_MEMORY;
        } else if (!(m = qsim_mem_map(size))) {
            qsim_mem_uncharge(p->ordinal, size);
            rc = CUDA_ERROR_OUT_OF_MEMORY;
        }
        if (rc != CUDA_SUCCESS) {
            free(best);
            pthread_mutex_unlock(&qsim_g.lock);
            return rc;
        }
        best->base = (uintptr_t)m;
        best->size = size;
        best->next = p->chunks;
        p->chunks = best;
        p->reserved += size;
        if (p->reserved > p->reserved_high)
            p->reserved_high = p->reserved;
    }
    struct qsim_alloc a = {.base = best->base,
                           .size = bytes,
                           .kind = QSIM_MEM_POOL,
                           .ordinal = p->ordinal,
                           .owner = p,
                           .id = qsim_new_id()};
    rc = qsim_mem_add_locked(&a);
    if (rc == CUDA_SUCCESS) {
        best->in_use = true;
        best->asked = bytes;
        p->used += best->size;
        if (p->used > p->used_high)
            p->used_high = p->used;
        *dptr = (CUdeviceptr)best->base;
    }
    pthread_mutex_unlock(&qsim_g.lock);
    return rc;
}

static CUresult alloc_async(CUdeviceptr *dptr, size_t bytes, CUmemoryPool pool, CUstream h,
                            bool per_thread)
{
    if (!dptr || bytes == 0)
        return CUDA_ERROR_INVALID_VALUE;
    struct qsim_stream *st;
    CUresult rc = qsim_stream_resolve(h, per_thread, &st);
    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_pool *p = pool ? pool_of(pool) : NULL;
    if (!pool) {
        int ord = st->ctx->ordinal;
        p = qsim_g.cur_pool[ord] ? qsim_g.cur_pool[ord] : default_pool_locked(ord);
    }
    pthread_mutex_unlock(&qsim_g.lock);
    if (!p)
        return pool ? CUDA_ERROR_INVALID_VALUE : CUDA_ERROR_OUT_OF_MEMORY;
    return alloc_from(p, dptr, bytes, st);
}

QSIM_API CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)
{
    QSIM_GUARDED(alloc_async(dptr, bytesize, NULL, hStream, false));
}

QSIM_API CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)
{
    QSIM_GUARDED(alloc_async(dptr, bytesize, NULL, hStream, true));
}

static CUresult alloc_from_pool_async(CUdeviceptr *dptr, size_t bytes, CUmemoryPool pool,
                                      CUstream h, bool per_thread)
{
    if (!pool)
        return CUDA_ERROR_INVALID_VALUE;
    return alloc_async(dptr, bytes, pool, h, per_thread);
}

QSIM_API CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool,
                                          CUstream hStream)
{
    QSIM_GUARDED(alloc_from_pool_async(dptr, bytesize, pool, hStream, false));
}

QSIM_API CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t bytesize,
                                               CUmemoryPool pool, CUstream hStream)
{
    QSIM_GUARDED(alloc_from_pool_async(dptr, bytesize, pool, hStream, true));
}

static CUresult free_async(CUdeviceptr dptr, CUstream h, bool per_thread)
{
    struct qsim_stream *st;
    CUresult rc = qsim_stream_resolve(h, per_thread, &st);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (atomic_load_explicit(&st->cap, memory_order_relaxed))
        return qsim_capture_violated(st);
    if (qsim_lock_host() != CUDA_SUCCESS)
        return CUDA_ERROR_UNKNOWN;
    uint64_t seq = qsim_g.shm->stream[st->slot].submitted; /* after all work so far */
    qsim_unlock_host();
    pthread_mutex_lock(&qsim_g.lock);
    rc = free_locked((uintptr_t)dptr, st->slot, seq);
    pthread_mutex_unlock(&qsim_g.lock);
    return rc;
}

QSIM_API CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream)
{
    QSIM_GUARDED(free_async(dptr, hStream, false));
}

QSIM_API CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream)
{
    QSIM_GUARDED(free_async(dptr, hStream, true));
}

/* ---- pools ------------------------------------------------------------------------- */

static CUresult pool_create(CUmemoryPool *out, const CUmemPoolProps *props)
{
    if (!out || !props || props->allocType != CU_MEM_ALLOCATION_TYPE_PINNED ||
        props->location.type != CU_MEM_LOCATION_TYPE_DEVICE)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = qsim_check_device(props->location.id);
    if (rc != CUDA_SUCCESS)
        return CUDA_ERROR_INVALID_VALUE;
    if (props->handleTypes != CU_MEM_HANDLE_TYPE_NONE)
        return CUDA_ERROR_NOT_SUPPORTED; /* no shareable handles between simulated processes */
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_pool *p = pool_new_locked(props->location.id, false);
    pthread_mutex_unlock(&qsim_g.lock);
    if (!p)
        return CUDA_ERROR_OUT_OF_MEMORY;
    *out = (CUmemoryPool)p;
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuMemPoolCreate(CUmemoryPool *pool, const CUmemPoolProps *poolProps)
{
    QSIM_GUARDED(pool_create(pool, poolProps));
}

static CUresult pool_destroy(CUmemoryPool h)
{
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_pool *p = pool_of(h);
    CUresult rc = CUDA_SUCCESS;
    if (!p || p->is_default) {
        rc = CUDA_ERROR_INVALID_VALUE;
    } else {
        /* Allocations still in use stay valid and are given back when freed. */
        p->magic = 0;
        trim_locked(p, 0);
        for (int o = 0; o < QSIM_MAX_DEVICES; o++)
            if (qsim_g.cur_pool[o] == p)
                qsim_g.cur_pool[o] = NULL;
    }
    pthread_mutex_unlock(&qsim_g.lock);
    return rc;
}

QSIM_API CUresult cuMemPoolDestroy(CUmemoryPool pool)
{
    QSIM_GUARDED(pool_destroy(pool));
}

static CUresult pool_trim_to(CUmemoryPool h, size_t keep)
{
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_pool *p = pool_of(h);
    if (p)
        trim_locked(p, keep);
    pthread_mutex_unlock(&qsim_g.lock);
    return p ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

QSIM_API CUresult cuMemPoolTrimTo(CUmemoryPool pool, size_t minBytesToKeep)
{
    QSIM_GUARDED(pool_trim_to(pool, minBytesToKeep));
}

static CUresult pool_attribute(CUmemoryPool h, CUmemPool_attribute attr, void *value, bool set)
{
    if (!value)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_pool *p = pool_of(h);
    CUresult rc = p ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
    uint64_t *u64 = value;
    switch (p ? (int)attr : -1) {
    case CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES:
    case CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC:
    case CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES: {
        int *slot = &p->reuse[attr - CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES];
        if (set)
            *slot = *(int *)value != 0;
        else
            *(int *)value = *slot;
        break;
    }
    case CU_MEMPOOL_ATTR_RELEASE_THRESHOLD:
        if (set)
            p->threshold = *u64;
        else
            *u64 = p->threshold;
        break;
    case CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT:
    case CU_MEMPOOL_ATTR_USED_MEM_CURRENT:
        if (set)
            rc = CUDA_ERROR_INVALID_VALUE; /* read-only */
        else
            *u64 = attr == CU_MEMPOOL_ATTR_USED_MEM_CURRENT ? p->used : p->reserved;
        break;
    case CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH:
    case CU_MEMPOOL_ATTR_USED_MEM_HIGH: {
        bool used = attr == CU_MEMPOOL_ATTR_USED_MEM_HIGH;
        uint64_t *high = used ? &p->used_high : &p->reserved_high;
        if (set && *u64 != 0)
            rc = CUDA_ERROR_INVALID_VALUE; /* can only be reset */
        else if (set)
            *high = used ? p->used : p->reserved;
        else
            *u64 = *high;
        break;
    }
    default:
        rc = CUDA_ERROR_INVALID_VALUE;
        break;
    }
    pthread_mutex_unlock(&qsim_g.lock);
    return rc;
}

QSIM_API CUresult cuMemPoolSetAttribute(CUmemoryPool pool, CUmemPool_attribute attr, void *value)
{
    QSIM_GUARDED(pool_attribute(pool, attr, value, true));
}

QSIM_API CUresult cuMemPoolGetAttribute(CUmemoryPool pool, CUmemPool_attribute attr, void *value)
{
    QSIM_GUARDED(pool_attribute(pool, attr, value, false));
}

static CUresult pool_set_access(CUmemoryPool h, const CUmemAccessDesc *map, size_t count)
{
    if (!map && count)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_pool *p = pool_of(h);
    pthread_mutex_unlock(&qsim_g.lock);
    if (!p)
        return CUDA_ERROR_INVALID_VALUE;
    for (size_t i = 0; i < count; i++)
        if (map[i].location.type != CU_MEM_LOCATION_TYPE_DEVICE ||
            qsim_check_device(map[i].location.id) != CUDA_SUCCESS)
            return CUDA_ERROR_INVALID_VALUE;
    return CUDA_SUCCESS; /* one address space: every device may access everything */
}

QSIM_API CUresult cuMemPoolSetAccess(CUmemoryPool pool, const CUmemAccessDesc *map, size_t count)
{
    QSIM_GUARDED(pool_set_access(pool, map, count));
}

static CUresult pool_get_access(CUmemAccess_flags *flags, CUmemoryPool h, CUmemLocation *loc)
{
    if (!flags || !loc || loc->type != CU_MEM_LOCATION_TYPE_DEVICE ||
        qsim_check_device(loc->id) != CUDA_SUCCESS)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_pool *p = pool_of(h);
    pthread_mutex_unlock(&qsim_g.lock);
    if (!p)
        return CUDA_ERROR_INVALID_VALUE;
    *flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuMemPoolGetAccess(CUmemAccess_flags *flags, CUmemoryPool memPool,
                                     CUmemLocation *location)
{
    QSIM_GUARDED(pool_get_access(flags, memPool, location));
}

/* ---- device pools ------------------------------------------------------------------ */

static CUresult device_pool(CUmemoryPool *out, CUdevice dev, bool current)
{
    if (!out)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = qsim_check_device(dev);
    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_pool *p =
        current && qsim_g.cur_pool[dev] ? qsim_g.cur_pool[dev] : default_pool_locked(dev);
    pthread_mutex_unlock(&qsim_g.lock);
    if (!p)
        return CUDA_ERROR_OUT_OF_MEMORY;
    *out = (CUmemoryPool)p;
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuDeviceGetDefaultMemPool(CUmemoryPool *pool_out, CUdevice dev)
{
    QSIM_GUARDED(device_pool(pool_out, dev, false));
}

QSIM_API CUresult cuDeviceGetMemPool(CUmemoryPool *pool, CUdevice dev)
{
    QSIM_GUARDED(device_pool(pool, dev, true));
}

static CUresult device_set_pool(CUdevice dev, CUmemoryPool h)
{
    CUresult rc = qsim_check_device(dev);
    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_pool *p = pool_of(h);
    if (!p || p->ordinal != dev)
        rc = CUDA_ERROR_INVALID_VALUE;
    else
        qsim_g.cur_pool[dev] = p;
    pthread_mutex_unlock(&qsim_g.lock);
    return rc;
}

QSIM_API CUresult cuDeviceSetMemPool(CUdevice dev, CUmemoryPool pool)
{
    QSIM_GUARDED(device_set_pool(dev, pool));
}
