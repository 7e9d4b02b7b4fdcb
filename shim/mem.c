/* mem.c - charging and uncharging, plain allocations (cuMemAlloc, pitched, managed),
 * their frees, context destruction, and the virtual cuMemGetInfo.
 * Threads: any. The reservation is lock-free (shim/resv.h); the table is sharded
 * (shim/ptrtab.h); the agent is reached only when the reservation runs short. */
#include "shim/mem.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "shim/agent.h"
#include "shim/errors.h"
#include "shim/gate.h"
#include "shim/init.h"
#include "shim/log.h"
#include "shim/real.h"

#define MiB (1024.0 * 1024.0)

void qs_mem_init(void)
{
    if (!qs_g.ptrs)
        qs_g.ptrs = qs_ptrtab_new();
    if (!qs_g.ptrs)
        qs_log_once(&qs_g.logged.table_full, "out of memory for the allocation table: frees "
                                             "will not give memory back to the vGPU");
}

void qs_mem_reset_after_fork(void)
{
    if (qs_g.ptrs)
        qs_ptrtab_reset_after_fork(qs_g.ptrs);
    atomic_store(&qs_g.resv.avail, 0);
    atomic_store(&qs_g.resv.used, 0);
    atomic_store(&qs_g.resv.reserved, 0);
    atomic_store(&qs_g.vgpu_others, 0);
    pthread_mutex_init(&qs_g.pools_lock, NULL);
    for (int i = 0; i < QS_MAX_POOLS; i++) {
        pthread_mutex_init(&qs_g.pools[i].lock, NULL);
        qs_g.pools[i].charged = 0;
    }
    atomic_store(&qs_g.logged.unreachable, 0);
    atomic_store(&qs_g.logged.quota, 0);
}

uint64_t qs_mem_quota(void)
{
    return atomic_load_explicit(&qs_g.quota, memory_order_relaxed);
}

uint64_t qs_mem_vgpu_used(void)
{
    return atomic_load_explicit(&qs_g.vgpu_others, memory_order_relaxed) +
           atomic_load_explicit(&qs_g.resv.used, memory_order_relaxed);
}

int qs_mem_charge(uint64_t n)
{
    if (n == 0)
        return 0;
    /* A grant may be taken by other threads before this one charges again: ask again.
     * This ends: each grant raises the reservation (the arbiter grants at least what is
     * used plus n), and the quota bounds it; the cap only guards against a broken peer. */
    for (int attempt = 0;; attempt++) {
        if (qs_resv_try_charge(&qs_g.resv, n))
            return 0;
        if (attempt == 64)
            return -EDQUOT;
        int rc = qs_agent_reserve(n);
        if (rc == -ENOTCONN) {
            qs_log_once(&qs_g.logged.unreachable,
                        "arbiter unreachable (%s/tenant.sock): "
                        "allocations beyond this process's reservation (%.0f MiB) fail "
                        "until it is back",
                        qs_g.socket_dir, (double)atomic_load(&qs_g.resv.reserved) / MiB);
            return rc;
        }
        if (rc == -EDQUOT) {
            qs_log_once(&qs_g.logged.quota,
                        "vGPU %s: allocation of %.1f MiB refused, past "
                        "its memory quota of %.0f MiB",
                        qs_g.vgpu, (double)n / MiB, (double)qs_mem_quota() / MiB);
            return rc;
        }
        if (rc < 0)
            return rc;
    }
}

void qs_mem_uncharge(uint64_t n)
{
    if (n)
        qs_resv_uncharge(&qs_g.resv, n);
}

void qs_mem_force(uint64_t n)
{
    if (n)
        qs_resv_force(&qs_g.resv, n);
}

static const void *current_ctx(void)
{
    QS_PFN_cuCtxGetCurrent get = QS_REAL(cuCtxGetCurrent);
    CUcontext ctx = NULL;
    if (get && get(&ctx) != CUDA_SUCCESS)
        ctx = NULL;
    return ctx;
}

void qs_mem_track(qs_alloc_kind_t kind, uint64_t key, uint64_t bytes, bool ctx_bound)
{
    if (!qs_g.ptrs ||
        qs_ptrtab_put(qs_g.ptrs, kind, key, bytes, ctx_bound ? current_ctx() : NULL) < 0)
        qs_log_once(&qs_g.logged.table_full,
                    "cannot remember an allocation (out of memory, "
                    "or the driver returned a live pointer): its memory stays charged");
}

uint64_t qs_mem_untrack(qs_alloc_kind_t kind, uint64_t key)
{
    uint64_t bytes = 0;
    if (!qs_g.ptrs || qs_ptrtab_take(qs_g.ptrs, kind, key, &bytes) < 0)
        return 0;
    return bytes;
}

void qs_mem_retrack(qs_alloc_kind_t kind, uint64_t key, uint64_t bytes, bool ctx_bound)
{
    if (bytes)
        qs_mem_track(kind, key, bytes, ctx_bound);
}

void qs_mem_context_gone(CUcontext ctx)
{
    if (qs_g.ptrs && ctx)
        qs_mem_uncharge(qs_ptrtab_take_ctx(qs_g.ptrs, ctx));
    qs_pools_reconcile();
}

/* ---- plain allocations --------------------------------------------------------------- */

/* The hook's common tail: the driver answered r for an allocation charged n bytes. */
static CUresult finish(CUresult r, qs_alloc_kind_t kind, uint64_t key, uint64_t n)
{
    if (r != CUDA_SUCCESS)
        qs_mem_uncharge(n);
    else
        qs_mem_track(kind, key, n, true);
    return r;
}

QS_EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
{
    QS_PFN_cuMemAlloc_v2 real = QS_REAL(cuMemAlloc_v2);
    if (!real)
        return qs_cu_error(-ENOSYS);
    if (!qs_g.managed || !dptr || bytesize == 0)
        return real(dptr, bytesize);
    qs_init();
    int rc = qs_mem_charge(bytesize);
    if (rc < 0)
        return qs_cu_error(rc);
    CUresult r = real(dptr, bytesize);
    return finish(r, QS_ALLOC_DPTR, r == CUDA_SUCCESS ? *dptr : 0, bytesize);
}

QS_EXPORT CUresult cuMemAlloc(CUdeviceptr_v1 *dptr, unsigned int bytesize)
{
    QS_PFN_cuMemAlloc real = QS_REAL(cuMemAlloc);
    if (!real)
        return qs_cu_error(-ENOSYS);
    if (!qs_g.managed || !dptr || bytesize == 0)
        return real(dptr, bytesize);
    qs_init();
    int rc = qs_mem_charge(bytesize);
    if (rc < 0)
        return qs_cu_error(rc);
    CUresult r = real(dptr, bytesize);
    return finish(r, QS_ALLOC_DPTR, r == CUDA_SUCCESS ? *dptr : 0, bytesize);
}

QS_EXPORT CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags)
{
    QS_PFN_cuMemAllocManaged real = QS_REAL(cuMemAllocManaged);
    if (!real)
        return qs_cu_error(-ENOSYS);
    if (!qs_g.managed || !dptr || bytesize == 0)
        return real(dptr, bytesize, flags);
    qs_init();
    int rc = qs_mem_charge(bytesize);
    if (rc < 0)
        return qs_cu_error(rc);
    CUresult r = real(dptr, bytesize, flags);
    return finish(r, QS_ALLOC_DPTR, r == CUDA_SUCCESS ? *dptr : 0, bytesize);
}

/* A pitched allocation holds pitch x height bytes, and the pitch is known only after the
 * call: charge an estimate (rows padded to 512 bytes, the alignment GPUs use), then
 * settle on the real figure. Over the estimate and past the quota: the allocation is
 * freed and refused. */
#define PITCH_ESTIMATE_ALIGN 512u

static int pitch_estimate(size_t width, size_t height, uint64_t *est)
{
    uint64_t row =
        ((uint64_t)width + PITCH_ESTIMATE_ALIGN - 1) / PITCH_ESTIMATE_ALIGN * PITCH_ESTIMATE_ALIGN;
    return __builtin_mul_overflow(row, (uint64_t)height, est) ? -ENOMEM : 0;
}

/* Settles a pitched allocation charged est: returns its final charge via *n, or an error
 * after freeing it (free_fn). */
static CUresult pitch_settle(uint64_t est, uint64_t actual, uint64_t *n)
{
    if (actual > est) {
        int rc = qs_mem_charge(actual - est);
        if (rc < 0) {
            qs_mem_uncharge(est);
            return qs_cu_error(rc);
        }
    } else {
        qs_mem_uncharge(est - actual);
    }
    *n = actual;
    return CUDA_SUCCESS;
}

QS_EXPORT CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pPitch, size_t WidthInBytes,
                                      size_t Height, unsigned int ElementSizeBytes)
{
    QS_PFN_cuMemAllocPitch_v2 real = QS_REAL(cuMemAllocPitch_v2);
    if (!real)
        return qs_cu_error(-ENOSYS);
    if (!qs_g.managed || !dptr || !pPitch || WidthInBytes == 0 || Height == 0)
        return real(dptr, pPitch, WidthInBytes, Height, ElementSizeBytes);
    qs_init();
    uint64_t est, actual, n;
    int rc = pitch_estimate(WidthInBytes, Height, &est);
    if (rc == 0)
        rc = qs_mem_charge(est);
    if (rc < 0)
        return qs_cu_error(rc);
    CUresult r = real(dptr, pPitch, WidthInBytes, Height, ElementSizeBytes);
    if (r != CUDA_SUCCESS) {
        qs_mem_uncharge(est);
        return r;
    }
    if (__builtin_mul_overflow((uint64_t)*pPitch, (uint64_t)Height, &actual))
        actual = UINT64_MAX / 2;
    r = pitch_settle(est, actual, &n);
    if (r != CUDA_SUCCESS) {
        QS_PFN_cuMemFree_v2 free_fn = QS_REAL(cuMemFree_v2);
        if (free_fn)
            free_fn(*dptr);
        return r;
    }
    qs_mem_track(QS_ALLOC_DPTR, *dptr, n, true);
    return CUDA_SUCCESS;
}

QS_EXPORT CUresult cuMemAllocPitch(CUdeviceptr_v1 *dptr, unsigned int *pPitch,
                                   unsigned int WidthInBytes, unsigned int Height,
                                   unsigned int ElementSizeBytes)
{
    QS_PFN_cuMemAllocPitch real = QS_REAL(cuMemAllocPitch);
    if (!real)
        return qs_cu_error(-ENOSYS);
    if (!qs_g.managed || !dptr || !pPitch || WidthInBytes == 0 || Height == 0)
        return real(dptr, pPitch, WidthInBytes, Height, ElementSizeBytes);
    qs_init();
    uint64_t est, n;
    int rc = pitch_estimate(WidthInBytes, Height, &est);
    if (rc == 0)
        rc = qs_mem_charge(est);
    if (rc < 0)
        return qs_cu_error(rc);
    CUresult r = real(dptr, pPitch, WidthInBytes, Height, ElementSizeBytes);
    if (r != CUDA_SUCCESS) {
        qs_mem_uncharge(est);
        return r;
    }
    r = pitch_settle(est, (uint64_t)*pPitch * Height, &n);
    if (r != CUDA_SUCCESS) {
        QS_PFN_cuMemFree free_fn = QS_REAL(cuMemFree);
        if (free_fn)
            free_fn(*dptr);
        return r;
    }
    qs_mem_track(QS_ALLOC_DPTR, *dptr, n, true);
    return CUDA_SUCCESS;
}

/* ---- frees --------------------------------------------------------------------------- */

/* The entry leaves the table before the driver frees the pointer: once freed, another
 * thread may be handed the same address and must find no stale entry under it. */
QS_EXPORT CUresult cuMemFree_v2(CUdeviceptr dptr)
{
    QS_PFN_cuMemFree_v2 real = QS_REAL(cuMemFree_v2);
    if (!real)
        return qs_cu_error(-ENOSYS);
    if (!qs_g.managed || !dptr)
        return real(dptr);
    uint64_t n = qs_mem_untrack(QS_ALLOC_DPTR, dptr);
    CUresult r = real(dptr);
    if (r == CUDA_SUCCESS)
        qs_mem_uncharge(n);
    else
        qs_mem_retrack(QS_ALLOC_DPTR, dptr, n, true);
    return r;
}

QS_EXPORT CUresult cuMemFree(CUdeviceptr_v1 dptr)
{
    QS_PFN_cuMemFree real = QS_REAL(cuMemFree);
    if (!real)
        return qs_cu_error(-ENOSYS);
    if (!qs_g.managed || !dptr)
        return real(dptr);
    uint64_t n = qs_mem_untrack(QS_ALLOC_DPTR, dptr);
    CUresult r = real(dptr);
    if (r == CUDA_SUCCESS)
        qs_mem_uncharge(n);
    else
        qs_mem_retrack(QS_ALLOC_DPTR, dptr, n, true);
    return r;
}

/* ---- contexts: the driver frees what was allocated in a context it destroys ---------- */

QS_EXPORT CUresult cuCtxDestroy_v2(CUcontext ctx)
{
    QS_PFN_cuCtxDestroy_v2 real = QS_REAL(cuCtxDestroy_v2);
    if (!real)
        return qs_cu_error(-ENOSYS);
    qs_gate_forget_context(ctx); /* first: the agent must not be draining it */
    CUresult r = real(ctx);
    if (r == CUDA_SUCCESS && qs_g.managed)
        qs_mem_context_gone(ctx);
    return r;
}

QS_EXPORT CUresult cuCtxDestroy(CUcontext ctx)
{
    QS_PFN_cuCtxDestroy real = QS_REAL(cuCtxDestroy);
    if (!real)
        return qs_cu_error(-ENOSYS);
    qs_gate_forget_context(ctx); /* first: the agent must not be draining it */
    CUresult r = real(ctx);
    if (r == CUDA_SUCCESS && qs_g.managed)
        qs_mem_context_gone(ctx);
    return r;
}

/* dev's primary context if it is active, else NULL. Retaining and releasing it leaves its
 * reference count as it was. */
static CUcontext primary_ctx(CUdevice dev)
{
    QS_PFN_cuDevicePrimaryCtxGetState state = QS_REAL(cuDevicePrimaryCtxGetState);
    QS_PFN_cuDevicePrimaryCtxRetain retain = QS_REAL(cuDevicePrimaryCtxRetain);
    QS_PFN_cuDevicePrimaryCtxRelease_v2 release = QS_REAL(cuDevicePrimaryCtxRelease_v2);
    unsigned int flags = 0;
    int active = 0;
    CUcontext ctx = NULL;
    if (!state || !retain || !release || state(dev, &flags, &active) != CUDA_SUCCESS || !active ||
        retain(&ctx, dev) != CUDA_SUCCESS)
        return NULL;
    release(dev);
    return ctx;
}

static bool primary_active(CUdevice dev)
{
    QS_PFN_cuDevicePrimaryCtxGetState state = QS_REAL(cuDevicePrimaryCtxGetState);
    unsigned int flags = 0;
    int active = 0;
    return state && state(dev, &flags, &active) == CUDA_SUCCESS && active;
}

QS_EXPORT CUresult cuDevicePrimaryCtxReset_v2(CUdevice dev)
{
    QS_PFN_cuDevicePrimaryCtxReset_v2 real = QS_REAL(cuDevicePrimaryCtxReset_v2);
    if (!real)
        return qs_cu_error(-ENOSYS);
    CUcontext ctx = qs_g.managed ? primary_ctx(dev) : NULL;
    CUresult r = real(dev);
    if (r == CUDA_SUCCESS && ctx)
        qs_mem_context_gone(ctx);
    return r;
}

QS_EXPORT CUresult cuDevicePrimaryCtxReset(CUdevice dev)
{
    QS_PFN_cuDevicePrimaryCtxReset real = QS_REAL(cuDevicePrimaryCtxReset);
    if (!real)
        return qs_cu_error(-ENOSYS);
    CUcontext ctx = qs_g.managed ? primary_ctx(dev) : NULL;
    CUresult r = real(dev);
    if (r == CUDA_SUCCESS && ctx)
        qs_mem_context_gone(ctx);
    return r;
}

/* Releasing the last reference destroys the primary context. */
QS_EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev)
{
    QS_PFN_cuDevicePrimaryCtxRelease_v2 real = QS_REAL(cuDevicePrimaryCtxRelease_v2);
    if (!real)
        return qs_cu_error(-ENOSYS);
    CUcontext ctx = qs_g.managed ? primary_ctx(dev) : NULL;
    CUresult r = real(dev);
    if (r == CUDA_SUCCESS && ctx && !primary_active(dev))
        qs_mem_context_gone(ctx);
    return r;
}

QS_EXPORT CUresult cuDevicePrimaryCtxRelease(CUdevice dev)
{
    QS_PFN_cuDevicePrimaryCtxRelease real = QS_REAL(cuDevicePrimaryCtxRelease);
    if (!real)
        return qs_cu_error(-ENOSYS);
    CUcontext ctx = qs_g.managed ? primary_ctx(dev) : NULL;
    CUresult r = real(dev);
    if (r == CUDA_SUCCESS && ctx && !primary_active(dev))
        qs_mem_context_gone(ctx);
    return r;
}

/* ---- the virtual view ---------------------------------------------------------------- */

/* free = quota - the vGPU's use, and never more than the card has free. */
static void view(size_t real_free, uint64_t *free_out, uint64_t *total_out)
{
    uint64_t q = qs_mem_quota(), used = qs_mem_vgpu_used();
    uint64_t f = used >= q ? 0 : q - used;
    *free_out = f < real_free ? f : real_free;
    *total_out = q;
}

QS_EXPORT CUresult cuMemGetInfo_v2(size_t *free, size_t *total)
{
    QS_PFN_cuMemGetInfo_v2 real = QS_REAL(cuMemGetInfo_v2);
    if (!real)
        return qs_cu_error(-ENOSYS);
    CUresult r = real(free, total);
    if (r != CUDA_SUCCESS || !qs_g.managed || !free || !total)
        return r;
    qs_init();
    uint64_t f, t;
    view(*free, &f, &t);
    *free = (size_t)f;
    *total = (size_t)t;
    return r;
}

QS_EXPORT CUresult cuMemGetInfo(unsigned int *free, unsigned int *total)
{
    QS_PFN_cuMemGetInfo real = QS_REAL(cuMemGetInfo);
    if (!real)
        return qs_cu_error(-ENOSYS);
    CUresult r = real(free, total);
    if (r != CUDA_SUCCESS || !qs_g.managed || !free || !total)
        return r;
    qs_init();
    uint64_t f, t;
    view(*free, &f, &t);
    *free = f > UINT_MAX ? UINT_MAX : (unsigned int)f;
    *total = t > UINT_MAX ? UINT_MAX : (unsigned int)t;
    return r;
}
