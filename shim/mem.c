/* mem.c - charging and uncharging, plain allocations (cuMemAlloc, pitched, managed),
 * their frees, context destruction, and the virtual cuMemGetInfo.
 * Threads: any. The reservation is lock-free (shim/resv.h); the table is sharded
 * (shim/ptrtab.h); the agent is reached only when the reservation runs short.
 * State: mem0, this file's alone (shim/mem.h). */
#include "shim/mem.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "shim/agent.h"
#include "shim/errors.h"
#include "shim/drain.h"
#include "shim/init.h"
#include "shim/log.h"
#include "shim/pools.h"
#include "shim/real.h"

#define MiB (1024.0 * 1024.0)

/* The process's memory accounting. */
static struct {
    struct qs_resv resv;           /* the reservation; shim/resv.h */
    _Atomic uint64_t quota;        /* the vGPU's memory quota in bytes; the agent stores it */
    _Atomic uint64_t others;       /* the vGPU's other processes' use, last reported; the agent */
    qs_ptrtab_t *ptrs;             /* owned: live allocations; created by qs_mem_init() */
    atomic_int logged_unreachable; /* per outage: cleared when the arbiter answers again */
    atomic_int logged_quota;       /* first refusal past the quota */
    atomic_int logged_table;       /* an allocation could not be remembered */
} mem0;

struct qs_resv *qs_mem_resv(void)
{
    return &mem0.resv;
}

void qs_mem_set_quota(uint64_t quota)
{
    atomic_store_explicit(&mem0.quota, quota, memory_order_relaxed);
}

void qs_mem_set_others(uint64_t bytes)
{
    atomic_store_explicit(&mem0.others, bytes, memory_order_relaxed);
}

void qs_mem_arbiter_back(void)
{
    atomic_store_explicit(&mem0.logged_unreachable, 0, memory_order_relaxed);
}

void qs_mem_init(void)
{
    if (!mem0.ptrs)
        mem0.ptrs = qs_ptrtab_new();
    if (!mem0.ptrs)
        qs_log_once(&mem0.logged_table, "out of memory for the allocation table: frees "
                                        "will not give memory back to the vGPU");
}

void qs_mem_before_fork(void)
{
    if (mem0.ptrs)
        qs_ptrtab_lock_all(mem0.ptrs);
}

void qs_mem_after_fork_parent(void)
{
    if (mem0.ptrs)
        qs_ptrtab_unlock_all(mem0.ptrs);
}

void qs_mem_reset_after_fork(void)
{
    if (mem0.ptrs)
        qs_ptrtab_reset_after_fork(mem0.ptrs);
    atomic_store(&mem0.resv.avail, 0);
    atomic_store(&mem0.resv.used, 0);
    atomic_store(&mem0.resv.reserved, 0);
    atomic_store(&mem0.others, 0);
    atomic_store(&mem0.logged_unreachable, 0);
    atomic_store(&mem0.logged_quota, 0);
}

uint64_t qs_mem_quota(void)
{
    return atomic_load_explicit(&mem0.quota, memory_order_relaxed);
}

uint64_t qs_mem_vgpu_used(void)
{
    return atomic_load_explicit(&mem0.others, memory_order_relaxed) +
           atomic_load_explicit(&mem0.resv.used, memory_order_relaxed);
}

int qs_mem_charge(uint64_t n)
{
    if (n == 0)
        return 0;
    /* A grant may be taken by other threads before this one charges again: ask again.
     * This ends: each grant raises the reservation (the arbiter grants at least what is
     * used plus n), and the quota bounds it; the cap only guards against a broken peer. */
    for (int attempt = 0;; attempt++) {
        if (qs_resv_try_charge(&mem0.resv, n))
            return 0;
        if (attempt == 64)
            return -EDQUOT;
        int rc = qs_agent_reserve(n);
        if (rc == -ENOTCONN) {
            qs_log_once(&mem0.logged_unreachable,
                        "arbiter unreachable (%s/tenant.sock): "
                        "allocations beyond this process's reservation (%.0f MiB) fail "
                        "until it is back",
                        qs_env_socket_dir(), (double)atomic_load(&mem0.resv.reserved) / MiB);
            return rc;
        }
        if (rc == -EDQUOT) {
            qs_log_once(&mem0.logged_quota,
                        "vGPU %s: allocation of %.1f MiB refused, past "
                        "its memory quota of %.0f MiB",
                        qs_env_vgpu(), (double)n / MiB, (double)qs_mem_quota() / MiB);
            return rc;
        }
        if (rc < 0)
            return rc;
    }
}

void qs_mem_uncharge(uint64_t n)
{
    if (n)
        qs_resv_uncharge(&mem0.resv, n);
}

void qs_mem_force(uint64_t n)
{
    if (n)
        qs_resv_force(&mem0.resv, n);
}

static const void *current_ctx(void)
{
    QS_PFN_cuCtxGetCurrent get = QS_REAL(cuCtxGetCurrent);
    CUcontext ctx = NULL;
    if (get && get(&ctx) != CUDA_SUCCESS)
        ctx = NULL;
    return ctx;
}

/* Every entry the table gets. Unable to remember one, its free is never seen: its charge
 * (or, for a pooled one, its destroyed pool's) outlives it, which errs on the safe side. */
static void remember(qs_alloc_kind_t kind, uint64_t key, uint64_t bytes, const void *owner)
{
    if (!mem0.ptrs || qs_ptrtab_put(mem0.ptrs, kind, key, bytes, owner) < 0)
        qs_log_once(&mem0.logged_table,
                    "cannot remember an allocation (out of memory, "
                    "or the driver returned a live pointer): its memory stays charged");
}

void qs_mem_track(qs_alloc_kind_t kind, uint64_t key, uint64_t bytes, bool ctx_bound)
{
    remember(kind, key, bytes, ctx_bound ? current_ctx() : NULL);
}

void qs_mem_track_pooled(uint64_t dptr, struct qs_pool *pool)
{
    remember(QS_ALLOC_POOLED, dptr, 0, pool);
}

void qs_mem_free_begin(qs_alloc_kind_t kind, uint64_t key, struct qs_freeing *f)
{
    *f = (struct qs_freeing){.kind = 0, .key = key};
    if (!mem0.ptrs)
        return;
    if (qs_ptrtab_take(mem0.ptrs, kind, key, &f->bytes, &f->owner) == 0)
        f->kind = kind;
    else if (kind == QS_ALLOC_DPTR &&
             qs_ptrtab_take(mem0.ptrs, QS_ALLOC_POOLED, key, &f->bytes, &f->owner) == 0)
        f->kind = QS_ALLOC_POOLED;
}

CUresult qs_mem_free_end(CUresult r, const struct qs_freeing *f)
{
    if (!f->kind)
        return r;
    if (r != CUDA_SUCCESS) {
        remember(f->kind, f->key, f->bytes, f->owner);
        return r;
    }
    qs_mem_uncharge(f->bytes);
    if (f->kind == QS_ALLOC_POOLED)
        qs_pools_freed((struct qs_pool *)f->owner);
    return r;
}

void qs_mem_context_gone(CUcontext ctx)
{
    if (mem0.ptrs && ctx)
        qs_mem_uncharge(qs_ptrtab_take_ctx(mem0.ptrs, ctx));
    qs_pools_reconcile();
}

/* ---- plain allocations --------------------------------------------------------------- */

/* Each entry point's variants (v1: 32-bit pointers and sizes) share one body below; the
 * hooks only check their arguments and convert them. */

/* Calls the real entry point id (cuMemAlloc*, cuMemAllocManaged) into *dptr. */
static CUresult real_alloc(int id, CUdeviceptr *dptr, size_t bytes, unsigned int flags)
{
    switch (id) {
    case QS_H_cuMemAlloc_v2:
        return QS_REAL(cuMemAlloc_v2)(dptr, bytes);
    case QS_H_cuMemAllocManaged:
        return QS_REAL(cuMemAllocManaged)(dptr, bytes, flags);
    default: {
        CUdeviceptr_v1 p = 0;
        CUresult r = QS_REAL(cuMemAlloc)(&p, (unsigned int)bytes);
        *dptr = p;
        return r;
    }
    }
}

/* An allocation of its size: charged first, given back if the driver refuses. */
static CUresult alloc_plain(int id, CUdeviceptr *dptr, size_t bytes, unsigned int flags)
{
    qs_init();
    int rc = qs_mem_charge(bytes);
    if (rc < 0)
        return qs_cu_error(rc);
    CUresult r = real_alloc(id, dptr, bytes, flags);
    if (r != CUDA_SUCCESS)
        qs_mem_uncharge(bytes);
    else
        qs_mem_track(QS_ALLOC_DPTR, *dptr, bytes, true);
    return r;
}

QS_EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
{
    QS_PFN_cuMemAlloc_v2 real = QS_REAL(cuMemAlloc_v2);
    if (!real)
        return qs_cu_error(-ENOSYS);
    if (!qs_managed() || !dptr || bytesize == 0)
        return real(dptr, bytesize);
    return alloc_plain(QS_H_cuMemAlloc_v2, dptr, bytesize, 0);
}

QS_EXPORT CUresult cuMemAlloc(CUdeviceptr_v1 *dptr, unsigned int bytesize)
{
    QS_PFN_cuMemAlloc real = QS_REAL(cuMemAlloc);
    if (!real)
        return qs_cu_error(-ENOSYS);
    if (!qs_managed() || !dptr || bytesize == 0)
        return real(dptr, bytesize);
    CUdeviceptr p = 0;
    CUresult r = alloc_plain(QS_H_cuMemAlloc, &p, bytesize, 0);
    if (r == CUDA_SUCCESS)
        *dptr = (CUdeviceptr_v1)p;
    return r;
}

QS_EXPORT CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags)
{
    QS_PFN_cuMemAllocManaged real = QS_REAL(cuMemAllocManaged);
    if (!real)
        return qs_cu_error(-ENOSYS);
    if (!qs_managed() || !dptr || bytesize == 0)
        return real(dptr, bytesize, flags);
    return alloc_plain(QS_H_cuMemAllocManaged, dptr, bytesize, flags);
}

/* A pitched allocation holds pitch x height bytes, and the pitch is known only after the
 * call: charge an estimate (rows padded to 512 bytes, the alignment GPUs use), then
 * settle on the real figure. Over the estimate and past the quota: the allocation is
 * freed and refused. */
#define PITCH_ESTIMATE_ALIGN 512u

/* Calls the real cuMemAllocPitch: v1 unless id is the _v2 hook. */
static CUresult real_pitch(int id, CUdeviceptr *dptr, size_t *pitch, size_t width, size_t height,
                           unsigned int elem)
{
    if (id == QS_H_cuMemAllocPitch_v2)
        return QS_REAL(cuMemAllocPitch_v2)(dptr, pitch, width, height, elem);
    CUdeviceptr_v1 p = 0;
    unsigned int pp = 0;
    CUresult r = QS_REAL(cuMemAllocPitch)(&p, &pp, (unsigned int)width, (unsigned int)height, elem);
    *dptr = p;
    *pitch = pp;
    return r;
}

/* Calls the real cuMemFree_v2, or cuMemFree (v1). */
static CUresult real_free(bool v2, CUdeviceptr dptr)
{
    if (v2) {
        QS_PFN_cuMemFree_v2 f = QS_REAL(cuMemFree_v2);
        return f ? f(dptr) : qs_cu_error(-ENOSYS);
    }
    QS_PFN_cuMemFree f = QS_REAL(cuMemFree);
    return f ? f((CUdeviceptr_v1)dptr) : qs_cu_error(-ENOSYS);
}

static CUresult alloc_pitched(int id, CUdeviceptr *dptr, size_t *pitch, size_t width, size_t height,
                              unsigned int elem)
{
    qs_init();
    uint64_t est, actual;
    uint64_t row =
        ((uint64_t)width + PITCH_ESTIMATE_ALIGN - 1) / PITCH_ESTIMATE_ALIGN * PITCH_ESTIMATE_ALIGN;
    int rc = __builtin_mul_overflow(row, (uint64_t)height, &est) ? -ENOMEM : qs_mem_charge(est);
    if (rc < 0)
        return qs_cu_error(rc);
    CUresult r = real_pitch(id, dptr, pitch, width, height, elem);
    if (r != CUDA_SUCCESS) {
        qs_mem_uncharge(est);
        return r;
    }
    if (__builtin_mul_overflow((uint64_t)*pitch, (uint64_t)height, &actual))
        actual = UINT64_MAX / 2;
    if (actual > est && (rc = qs_mem_charge(actual - est)) < 0) {
        qs_mem_uncharge(est);
        real_free(id == QS_H_cuMemAllocPitch_v2, *dptr);
        return qs_cu_error(rc);
    }
    if (actual < est)
        qs_mem_uncharge(est - actual);
    qs_mem_track(QS_ALLOC_DPTR, *dptr, actual, true);
    return CUDA_SUCCESS;
}

QS_EXPORT CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pPitch, size_t WidthInBytes,
                                      size_t Height, unsigned int ElementSizeBytes)
{
    QS_PFN_cuMemAllocPitch_v2 real = QS_REAL(cuMemAllocPitch_v2);
    if (!real)
        return qs_cu_error(-ENOSYS);
    if (!qs_managed() || !dptr || !pPitch || WidthInBytes == 0 || Height == 0)
        return real(dptr, pPitch, WidthInBytes, Height, ElementSizeBytes);
    return alloc_pitched(QS_H_cuMemAllocPitch_v2, dptr, pPitch, WidthInBytes, Height,
                         ElementSizeBytes);
}

QS_EXPORT CUresult cuMemAllocPitch(CUdeviceptr_v1 *dptr, unsigned int *pPitch,
                                   unsigned int WidthInBytes, unsigned int Height,
                                   unsigned int ElementSizeBytes)
{
    QS_PFN_cuMemAllocPitch real = QS_REAL(cuMemAllocPitch);
    if (!real)
        return qs_cu_error(-ENOSYS);
    if (!qs_managed() || !dptr || !pPitch || WidthInBytes == 0 || Height == 0)
        return real(dptr, pPitch, WidthInBytes, Height, ElementSizeBytes);
    CUdeviceptr p = 0;
    size_t pitch = 0;
    CUresult r =
        alloc_pitched(QS_H_cuMemAllocPitch, &p, &pitch, WidthInBytes, Height, ElementSizeBytes);
    if (r == CUDA_SUCCESS) {
        *dptr = (CUdeviceptr_v1)p;
        *pPitch = (unsigned int)pitch;
    }
    return r;
}

/* ---- frees --------------------------------------------------------------------------- */

/* A free of a pool's allocation (cuMemFree works on those too) reaches the pool. */
#define FREE_HOOK(name, ptr_t)                                                                     \
    QS_EXPORT CUresult name(ptr_t dptr)                                                            \
    {                                                                                              \
        QS_PFN_##name real = QS_REAL(name);                                                        \
        if (!real)                                                                                 \
            return qs_cu_error(-ENOSYS);                                                           \
        if (!qs_managed() || !dptr)                                                                \
            return real(dptr);                                                                     \
        struct qs_freeing f;                                                                       \
        qs_mem_free_begin(QS_ALLOC_DPTR, dptr, &f);                                                \
        return qs_mem_free_end(real_free(QS_H_##name == QS_H_cuMemFree_v2, dptr), &f);             \
    }

FREE_HOOK(cuMemFree_v2, CUdeviceptr)
FREE_HOOK(cuMemFree, CUdeviceptr_v1)

/* ---- contexts: the driver frees what was allocated in a context it destroys ---------- */

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

/* One body for the context-ending hooks: call(arg) is the real entry point, which
 * destroys ctx (a reset or destroy: always; a release: when it dropped the last
 * reference). */
static CUresult end_context(CUresult (*call)(uintptr_t), uintptr_t arg, CUcontext ctx, bool release,
                            CUdevice dev)
{
    CUresult r = call(arg);
    if (r == CUDA_SUCCESS && ctx && !(release && primary_active(dev)))
        qs_mem_context_gone(ctx);
    return r;
}

#define CTX_DESTROY_HOOK(name)                                                                     \
    static CUresult call_##name(uintptr_t ctx)                                                     \
    {                                                                                              \
        return QS_REAL(name)((CUcontext)ctx);                                                      \
    }                                                                                              \
    QS_EXPORT CUresult name(CUcontext ctx)                                                         \
    {                                                                                              \
        if (!QS_REAL(name))                                                                        \
            return qs_cu_error(-ENOSYS);                                                           \
        qs_drain_forget_context(ctx); /* first: the drainer must not be synchronising it */        \
        return end_context(call_##name, (uintptr_t)ctx, qs_managed() ? ctx : NULL, false, 0);      \
    }

/* Reset destroys dev's primary context; releasing its last reference does too. */
#define PRIMARY_HOOK(name, release)                                                                \
    static CUresult call_##name(uintptr_t dev)                                                     \
    {                                                                                              \
        return QS_REAL(name)((CUdevice)dev);                                                       \
    }                                                                                              \
    QS_EXPORT CUresult name(CUdevice dev)                                                          \
    {                                                                                              \
        if (!QS_REAL(name))                                                                        \
            return qs_cu_error(-ENOSYS);                                                           \
        CUcontext ctx = qs_managed() ? primary_ctx(dev) : NULL;                                    \
        return end_context(call_##name, (uintptr_t)dev, ctx, release, dev);                        \
    }

CTX_DESTROY_HOOK(cuCtxDestroy_v2)
CTX_DESTROY_HOOK(cuCtxDestroy)
PRIMARY_HOOK(cuDevicePrimaryCtxReset_v2, false)
PRIMARY_HOOK(cuDevicePrimaryCtxReset, false)
PRIMARY_HOOK(cuDevicePrimaryCtxRelease_v2, true)
PRIMARY_HOOK(cuDevicePrimaryCtxRelease, true)

/* ---- the virtual view ---------------------------------------------------------------- */

/* free = quota - the vGPU's use, and never more than the card has free. Called after the
 * driver's own answer (real_free, in bytes) succeeded. */
static void view(uint64_t real_free, uint64_t *free_out, uint64_t *total_out)
{
    qs_init();
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
    if (r != CUDA_SUCCESS || !qs_managed() || !free || !total)
        return r;
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
    if (r != CUDA_SUCCESS || !qs_managed() || !free || !total)
        return r;
    uint64_t f, t;
    view(*free, &f, &t);
    *free = f > UINT_MAX ? UINT_MAX : (unsigned int)f;
    *total = t > UINT_MAX ? UINT_MAX : (unsigned int)t;
    return r;
}
