/* cuda_ctx.c - primary and created contexts and each thread's context stack.
 * Threads: any. Context objects and primary-context state under qsim_g.lock; the
 * context stack is the calling thread's own (qsim_t). */
#include "sim/cuda_ctx.h"

#include <stdlib.h>
#include <string.h>

#include "sim/cuda_export.h"
#include "sim/cuda_mem.h"
#include "sim/cuda_stream.h"
#include "sim/engine.h"

#define SCHED_MASK (CU_CTX_SCHED_SPIN | CU_CTX_SCHED_YIELD | CU_CTX_SCHED_BLOCKING_SYNC)

struct qsim_ctx *qsim_ctx_current(void)
{
    return qsim_t.depth ? qsim_t.stack[qsim_t.depth - 1] : NULL;
}

CUresult qsim_ctx_get(struct qsim_ctx **out)
{
    struct qsim_ctx *c = qsim_ctx_current();
    if (!c)
        return CUDA_ERROR_INVALID_CONTEXT;
    if (c->magic != QSIM_MAGIC_CTX)
        return CUDA_ERROR_CONTEXT_IS_DESTROYED;
    *out = c;
    return CUDA_SUCCESS;
}

struct qsim_ctx *qsim_ctx_of(CUcontext h)
{
    struct qsim_ctx *c = h ? (struct qsim_ctx *)h : qsim_ctx_current();
    return c && c->magic == QSIM_MAGIC_CTX ? c : NULL;
}

static bool flags_valid(unsigned flags)
{
    unsigned sched = flags & SCHED_MASK;
    return !(flags & ~(unsigned)CU_CTX_FLAGS_MASK) && (sched & (sched - 1)) == 0;
}

/* Brings ctx (a new object, or a destroyed one being reused) to life on ordinal ord.
 * Caller holds qsim_g.lock. */
static CUresult ctx_start_locked(struct qsim_ctx *ctx, int ord, unsigned flags, bool primary)
{
    if (qsim_lock_host() != CUDA_SUCCESS)
        return CUDA_ERROR_UNKNOWN;
    /* A context costs its device memory of its own (QSIM_CONTEXT_MEMORY), as on real
     * hardware: a device too full for it refuses the context. */
    int slot = qsim_engine_ctx_new_locked(qsim_g.shm, qsim_g.proc, ord, qsim_dev_index(ord));
    if (slot >= 0 &&
        qsim_host_charge_locked(qsim_g.shm, qsim_g.proc, ord, qsim_g.me->ctx_mem) < 0) {
        qsim_engine_ctx_free_locked(qsim_g.shm, slot);
        slot = -1;
    }
    if (slot >= 0)
        qsim_g.me->nctx[ord]++;
    qsim_unlock_host();
    if (slot < 0)
        return CUDA_ERROR_OUT_OF_MEMORY;
    ctx->ordinal = ord;
    ctx->slot = slot;
    ctx->flags = flags;
    ctx->primary = primary;
    ctx->id = qsim_new_id();
    ctx->cache_config = CU_FUNC_CACHE_PREFER_NONE;
    memset(ctx->limits, 0, sizeof ctx->limits);
    ctx->limits[CU_LIMIT_STACK_SIZE] = 1024;
    ctx->limits[CU_LIMIT_PRINTF_FIFO_SIZE] = 1 << 20;
    ctx->limits[CU_LIMIT_MALLOC_HEAP_SIZE] = 8 << 20;
    ctx->limits[CU_LIMIT_DEV_RUNTIME_PENDING_LAUNCH_COUNT] = 2048;
    ctx->limits[CU_LIMIT_MAX_L2_FETCH_GRANULARITY] = 64;
    ctx->magic = QSIM_MAGIC_CTX; /* before the stream, which belongs to a live context */
    CUresult rc = qsim_stream_new_locked(ctx, CU_STREAM_DEFAULT, 0, true, &ctx->legacy);
    if (rc != CUDA_SUCCESS) {
        ctx->magic = 0;
        if (qsim_lock_host() == CUDA_SUCCESS) {
            qsim_engine_ctx_free_locked(qsim_g.shm, slot);
            qsim_host_uncharge_locked(qsim_g.shm, qsim_g.proc, ord, qsim_g.me->ctx_mem);
            qsim_g.me->nctx[ord]--;
            qsim_unlock_host();
        }
    }
    return rc;
}

/* Ends ctx: waits for its work, frees its memory, streams and queue. Caller holds
 * qsim_g.lock (the wait happens with it held: another thread of this process that
 * needs it waits for the context's work too, which it would anyway). */
static void ctx_stop_locked(struct qsim_ctx *ctx)
{
    qsim_ctx_wait_idle(ctx);
    ctx->magic = 0;
    qsim_cls_ctx_stopped_locked(ctx);
    qsim_mem_drop_ctx_locked(ctx);
    qsim_array_drop_ctx_locked(ctx);
    qsim_stream_drop_ctx_locked(ctx);
    ctx->legacy = NULL;
    if (qsim_lock_host() == CUDA_SUCCESS) {
        qsim_engine_ctx_free_locked(qsim_g.shm, ctx->slot);
        qsim_host_uncharge_locked(qsim_g.shm, qsim_g.proc, ctx->ordinal, qsim_g.me->ctx_mem);
        qsim_g.me->nctx[ctx->ordinal]--;
        qsim_unlock_host();
    }
}

/* A created (not primary) context object: a destroyed one reused, or a new one. */
static struct qsim_ctx *ctx_object_locked(void)
{
    for (struct qsim_ctx *c = qsim_g.ctxs; c; c = c->next)
        if (c->magic != QSIM_MAGIC_CTX && !c->primary)
            return c;
    struct qsim_ctx *c = calloc(1, sizeof *c);
    if (c) {
        c->next = qsim_g.ctxs;
        qsim_g.ctxs = c;
    }
    return c;
}

static void push(struct qsim_ctx *c)
{
    if (qsim_t.depth < QSIM_CTX_STACK)
        qsim_t.stack[qsim_t.depth++] = c;
}

/* ---- created contexts -------------------------------------------------------------- */

static CUresult ctx_create(CUcontext *pctx, unsigned flags, CUdevice dev)
{
    if (!pctx || !flags_valid(flags))
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = qsim_check_device(dev);
    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_ctx *c = ctx_object_locked();
    rc = c ? ctx_start_locked(c, dev, flags | CU_CTX_MAP_HOST, false) : CUDA_ERROR_OUT_OF_MEMORY;
    pthread_mutex_unlock(&qsim_g.lock);
    if (rc == CUDA_SUCCESS) {
        push(c);
        *pctx = (CUcontext)c;
    }
    return rc;
}

QSIM_API CUresult cuCtxCreate(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
    QSIM_GUARDED(ctx_create(pctx, flags, dev));
}

QSIM_API CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
    QSIM_GUARDED(ctx_create(pctx, flags, dev));
}

/* Execution affinity needs MPS, which a simulated GPU does not run. */
static CUresult ctx_create_v3(CUcontext *pctx, CUexecAffinityParam *params, int n, unsigned flags,
                              CUdevice dev)
{
    if (n < 0 || (n > 0 && !params))
        return CUDA_ERROR_INVALID_VALUE;
    if (n > 0)
        return CUDA_ERROR_UNSUPPORTED_EXEC_AFFINITY;
    return ctx_create(pctx, flags, dev);
}

QSIM_API CUresult cuCtxCreate_v3(CUcontext *pctx, CUexecAffinityParam *paramsArray, int numParams,
                                 unsigned int flags, CUdevice dev)
{
    QSIM_GUARDED(ctx_create_v3(pctx, paramsArray, numParams, flags, dev));
}

static CUresult ctx_create_v4(CUcontext *pctx, CUctxCreateParams *p, unsigned flags, CUdevice dev)
{
    if (p && p->cigParams)
        return CUDA_ERROR_NOT_SUPPORTED; /* CUDA in graphics: no graphics here */
    if (p)
        return ctx_create_v3(pctx, p->execAffinityParams, p->numExecAffinityParams, flags, dev);
    return ctx_create(pctx, flags, dev);
}

QSIM_API CUresult cuCtxCreate_v4(CUcontext *pctx, CUctxCreateParams *ctxCreateParams,
                                 unsigned int flags, CUdevice dev)
{
    QSIM_GUARDED(ctx_create_v4(pctx, ctxCreateParams, flags, dev));
}

static CUresult ctx_destroy(CUcontext h)
{
    struct qsim_ctx *c = (struct qsim_ctx *)h;
    if (!c)
        return CUDA_ERROR_INVALID_VALUE;
    if (c->magic != QSIM_MAGIC_CTX || c->primary)
        return CUDA_ERROR_INVALID_CONTEXT;
    pthread_mutex_lock(&qsim_g.lock);
    ctx_stop_locked(c);
    pthread_mutex_unlock(&qsim_g.lock);
    qsim_cls_run_destructors();
    /* Popped if it is current to the calling thread. */
    if (qsim_ctx_current() == c)
        qsim_t.depth--;
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuCtxDestroy(CUcontext ctx)
{
    QSIM_GUARDED(ctx_destroy(ctx));
}

QSIM_API CUresult cuCtxDestroy_v2(CUcontext ctx)
{
    QSIM_GUARDED(ctx_destroy(ctx));
}

/* ---- the context stack ------------------------------------------------------------- */

static CUresult ctx_push(CUcontext h)
{
    struct qsim_ctx *c = (struct qsim_ctx *)h;
    if (!c || c->magic != QSIM_MAGIC_CTX)
        return CUDA_ERROR_INVALID_CONTEXT;
    if (qsim_t.depth == QSIM_CTX_STACK)
        return CUDA_ERROR_INVALID_VALUE;
    push(c);
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuCtxPushCurrent(CUcontext ctx)
{
    QSIM_GUARDED(ctx_push(ctx));
}

QSIM_API CUresult cuCtxPushCurrent_v2(CUcontext ctx)
{
    QSIM_GUARDED(ctx_push(ctx));
}

static CUresult ctx_pop(CUcontext *pctx)
{
    if (qsim_t.depth == 0)
        return CUDA_ERROR_INVALID_CONTEXT;
    struct qsim_ctx *c = qsim_t.stack[--qsim_t.depth];
    if (pctx)
        *pctx = (CUcontext)c;
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuCtxPopCurrent(CUcontext *pctx)
{
    QSIM_GUARDED(ctx_pop(pctx));
}

QSIM_API CUresult cuCtxPopCurrent_v2(CUcontext *pctx)
{
    QSIM_GUARDED(ctx_pop(pctx));
}

/* An inactive primary context made current (as the CUDA runtime does with the handle
 * its private interface gives it, without retaining it) comes to life, as on the real
 * driver, held by one retain; anything else inactive is CUDA_ERROR_INVALID_CONTEXT. */
static CUresult primary_activate(struct qsim_ctx *c)
{
    CUresult rc = CUDA_ERROR_INVALID_CONTEXT;
    pthread_mutex_lock(&qsim_g.lock);
    for (int d = 0; d < qsim_g.ndev; d++) {
        struct qsim_primary *p = &qsim_g.primary[d];
        if (p->ctx != c)
            continue;
        rc = CUDA_SUCCESS;
        if (c->magic != QSIM_MAGIC_CTX) {
            rc = ctx_start_locked(c, d, p->flags | CU_CTX_MAP_HOST, true);
            if (rc == CUDA_SUCCESS)
                p->retained++;
        }
        break;
    }
    pthread_mutex_unlock(&qsim_g.lock);
    return rc;
}

static CUresult ctx_set_current(CUcontext h)
{
    struct qsim_ctx *c = (struct qsim_ctx *)h;
    if (!c) {
        if (qsim_t.depth)
            qsim_t.depth--;
        return CUDA_SUCCESS;
    }
    if (c->magic != QSIM_MAGIC_CTX) {
        CUresult rc = primary_activate(c);
        if (rc != CUDA_SUCCESS)
            return rc;
    }
    if (qsim_t.depth)
        qsim_t.stack[qsim_t.depth - 1] = c;
    else
        push(c);
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuCtxSetCurrent(CUcontext ctx)
{
    QSIM_GUARDED(ctx_set_current(ctx));
}

static CUresult ctx_get_current(CUcontext *pctx)
{
    if (!pctx)
        return CUDA_ERROR_INVALID_VALUE;
    *pctx = (CUcontext)qsim_ctx_current();
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuCtxGetCurrent(CUcontext *pctx)
{
    QSIM_GUARDED(ctx_get_current(pctx));
}

static CUresult ctx_get_device(CUdevice *device, CUcontext h)
{
    if (!device)
        return CUDA_ERROR_INVALID_VALUE;
    struct qsim_ctx *c = qsim_ctx_of(h);
    if (!c)
        return h || !qsim_ctx_current() ? CUDA_ERROR_INVALID_CONTEXT
                                        : CUDA_ERROR_CONTEXT_IS_DESTROYED;
    *device = c->ordinal;
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuCtxGetDevice(CUdevice *device)
{
    QSIM_GUARDED(ctx_get_device(device, NULL));
}

QSIM_API CUresult cuCtxGetDevice_v2(CUdevice *device, CUcontext ctx)
{
    QSIM_GUARDED(ctx_get_device(device, ctx));
}

static CUresult ctx_synchronize(CUcontext h)
{
    struct qsim_ctx *c = qsim_ctx_of(h);
    if (!c)
        return CUDA_ERROR_INVALID_CONTEXT;
    return qsim_ctx_sync(c);
}

QSIM_API CUresult cuCtxSynchronize(void)
{
    QSIM_GUARDED(ctx_synchronize(NULL));
}

QSIM_API CUresult cuCtxSynchronize_v2(CUcontext ctx)
{
    QSIM_GUARDED(ctx_synchronize(ctx));
}

/* What the small getters and setters of the current context touch. */
enum ctx_field { CF_FLAGS, CF_ID, CF_API_VERSION, CF_CACHE };

static CUresult ctx_get(CUcontext h, enum ctx_field f, void *out)
{
    if (!out)
        return CUDA_ERROR_INVALID_VALUE;
    struct qsim_ctx *c = qsim_ctx_of(h);
    if (!c)
        return CUDA_ERROR_INVALID_CONTEXT;
    switch (f) {
    case CF_FLAGS:
        *(unsigned *)out = c->flags;
        break;
    case CF_ID:
        *(unsigned long long *)out = c->id;
        break;
    case CF_API_VERSION:
        *(unsigned *)out = 3020; /* what contexts of the v2 API report */
        break;
    case CF_CACHE:
        *(CUfunc_cache *)out = c->cache_config;
        break;
    }
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuCtxGetFlags(unsigned int *flags)
{
    QSIM_GUARDED(ctx_get(NULL, CF_FLAGS, flags));
}

QSIM_API CUresult cuCtxGetId(CUcontext ctx, unsigned long long *ctxId)
{
    QSIM_GUARDED(ctx_get(ctx, CF_ID, ctxId));
}

QSIM_API CUresult cuCtxGetApiVersion(CUcontext ctx, unsigned int *version)
{
    QSIM_GUARDED(ctx_get(ctx, CF_API_VERSION, version));
}

QSIM_API CUresult cuCtxGetCacheConfig(CUfunc_cache *pconfig)
{
    QSIM_GUARDED(ctx_get(NULL, CF_CACHE, pconfig));
}

static CUresult ctx_set_flags(unsigned flags)
{
    struct qsim_ctx *c;
    CUresult rc = qsim_ctx_get(&c);
    if (rc == CUDA_SUCCESS && !flags_valid(flags))
        rc = CUDA_ERROR_INVALID_VALUE;
    if (rc == CUDA_SUCCESS)
        c->flags = flags | CU_CTX_MAP_HOST;
    return rc;
}

QSIM_API CUresult cuCtxSetFlags(unsigned int flags)
{
    QSIM_GUARDED(ctx_set_flags(flags));
}

static CUresult ctx_set_cache_config(CUfunc_cache config)
{
    struct qsim_ctx *c;
    CUresult rc = qsim_ctx_get(&c);
    if (rc == CUDA_SUCCESS &&
        (config < CU_FUNC_CACHE_PREFER_NONE || config > CU_FUNC_CACHE_PREFER_EQUAL))
        rc = CUDA_ERROR_INVALID_VALUE;
    if (rc == CUDA_SUCCESS)
        c->cache_config = config;
    return rc;
}

QSIM_API CUresult cuCtxSetCacheConfig(CUfunc_cache config)
{
    QSIM_GUARDED(ctx_set_cache_config(config));
}

static CUresult ctx_limit(CUlimit limit, size_t *get, size_t set)
{
    struct qsim_ctx *c;
    CUresult rc = qsim_ctx_get(&c);
    if (rc != CUDA_SUCCESS)
        return rc;
    if ((int)limit < 0 || limit >= CU_LIMIT_MAX)
        return CUDA_ERROR_INVALID_VALUE;
    if (get) {
        *get = c->limits[limit];
        return CUDA_SUCCESS;
    }
    if (limit == CU_LIMIT_SHMEM_SIZE || limit == CU_LIMIT_CIG_ENABLED)
        return CUDA_ERROR_INVALID_VALUE; /* query-only */
    c->limits[limit] = set;
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuCtxGetLimit(size_t *pvalue, CUlimit limit)
{
    if (!pvalue)
        return CUDA_ERROR_INVALID_VALUE;
    QSIM_GUARDED(ctx_limit(limit, pvalue, 0));
}

QSIM_API CUresult cuCtxSetLimit(CUlimit limit, size_t value)
{
    QSIM_GUARDED(ctx_limit(limit, NULL, value));
}

/* ---- primary contexts -------------------------------------------------------------- */

/* Device dev's primary context object, made (inactive) on first need; NULL when out of
 * memory. Caller holds qsim_g.lock. */
static struct qsim_ctx *primary_object_locked(CUdevice dev)
{
    struct qsim_primary *p = &qsim_g.primary[dev];
    if (!p->ctx && (p->ctx = calloc(1, sizeof *p->ctx))) {
        p->ctx->primary = true;
        p->ctx->next = qsim_g.ctxs;
        qsim_g.ctxs = p->ctx;
    }
    return p->ctx;
}

static CUresult primary_retain(CUcontext *pctx, CUdevice dev)
{
    if (!pctx)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = qsim_check_device(dev);
    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_primary *p = &qsim_g.primary[dev];
    if (!primary_object_locked(dev))
        rc = CUDA_ERROR_OUT_OF_MEMORY;
    else if (p->ctx->magic != QSIM_MAGIC_CTX)
        rc = ctx_start_locked(p->ctx, dev, p->flags | CU_CTX_MAP_HOST, true);
    if (rc == CUDA_SUCCESS) {
        p->retained++;
        *pctx = (CUcontext)p->ctx;
    }
    pthread_mutex_unlock(&qsim_g.lock);
    return rc;
}

struct qsim_ctx *qsim_primary_object(CUdevice dev)
{
    if (qsim_check_device(dev) != CUDA_SUCCESS)
        return NULL;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_ctx *c = primary_object_locked(dev);
    pthread_mutex_unlock(&qsim_g.lock);
    return c;
}

QSIM_API CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
    QSIM_GUARDED(primary_retain(pctx, dev));
}

static CUresult primary_release(CUdevice dev)
{
    CUresult rc = qsim_check_device(dev);
    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_primary *p = &qsim_g.primary[dev];
    if (p->retained == 0) {
        rc = CUDA_ERROR_INVALID_CONTEXT;
    } else if (--p->retained == 0 && p->ctx->magic == QSIM_MAGIC_CTX) {
        /* The last reference resets it; unlike cuCtxDestroy, no stack is popped. */
        ctx_stop_locked(p->ctx);
    }
    pthread_mutex_unlock(&qsim_g.lock);
    qsim_cls_run_destructors();
    return rc;
}

QSIM_API CUresult cuDevicePrimaryCtxRelease(CUdevice dev)
{
    QSIM_GUARDED(primary_release(dev));
}

QSIM_API CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev)
{
    QSIM_GUARDED(primary_release(dev));
}

static CUresult primary_reset(CUdevice dev)
{
    CUresult rc = qsim_check_device(dev);
    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_primary *p = &qsim_g.primary[dev];
    if (p->ctx && p->ctx->magic == QSIM_MAGIC_CTX) {
        ctx_stop_locked(p->ctx);
        /* Still retained: the same handle comes back with fresh state. */
        if (p->retained > 0)
            rc = ctx_start_locked(p->ctx, dev, p->flags | CU_CTX_MAP_HOST, true);
    }
    pthread_mutex_unlock(&qsim_g.lock);
    qsim_cls_run_destructors();
    return rc;
}

QSIM_API CUresult cuDevicePrimaryCtxReset(CUdevice dev)
{
    QSIM_GUARDED(primary_reset(dev));
}

QSIM_API CUresult cuDevicePrimaryCtxReset_v2(CUdevice dev)
{
    QSIM_GUARDED(primary_reset(dev));
}

static CUresult primary_set_flags(CUdevice dev, unsigned flags)
{
    CUresult rc = qsim_check_device(dev);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (!flags_valid(flags))
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_primary *p = &qsim_g.primary[dev];
    p->flags = flags;
    if (p->ctx && p->ctx->magic == QSIM_MAGIC_CTX)
        p->ctx->flags = flags | CU_CTX_MAP_HOST;
    pthread_mutex_unlock(&qsim_g.lock);
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuDevicePrimaryCtxSetFlags(CUdevice dev, unsigned int flags)
{
    QSIM_GUARDED(primary_set_flags(dev, flags));
}

QSIM_API CUresult cuDevicePrimaryCtxSetFlags_v2(CUdevice dev, unsigned int flags)
{
    QSIM_GUARDED(primary_set_flags(dev, flags));
}

static CUresult primary_get_state(CUdevice dev, unsigned *flags, int *active)
{
    if (!flags || !active)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = qsim_check_device(dev);
    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&qsim_g.lock);
    const struct qsim_primary *p = &qsim_g.primary[dev];
    *flags = p->flags;
    *active = p->ctx && p->ctx->magic == QSIM_MAGIC_CTX;
    pthread_mutex_unlock(&qsim_g.lock);
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuDevicePrimaryCtxGetState(CUdevice dev, unsigned int *flags, int *active)
{
    QSIM_GUARDED(primary_get_state(dev, flags, active));
}
