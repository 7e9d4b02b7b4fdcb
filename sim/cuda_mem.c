/* cuda_mem.c - plain device, managed and page-locked host memory: allocation, the
 * registry every pointer query uses, cuMemGetInfo, cuMemGetAddressRange, pointer
 * attributes.
 * Threads: any. The registry under qsim_g.lock; charges under the host lock. */
#include "sim/cuda_mem.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "sim/cuda_ctx.h"
#include "sim/cuda_pool.h"

/* ---- charging and mapping ---------------------------------------------------------- */

CUresult qsim_mem_charge(int ord, uint64_t bytes)
{
    if (qsim_lock_host() != CUDA_SUCCESS)
        return CUDA_ERROR_UNKNOWN;
    qsim_host_reap_locked(qsim_g.shm, true);
    int rc = qsim_host_charge_locked(qsim_g.shm, qsim_g.proc, ord, bytes);
    qsim_unlock_host();
    return rc == 0 ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

void qsim_mem_uncharge(int ord, uint64_t bytes)
{
    if (bytes == 0 || qsim_lock_host() != CUDA_SUCCESS)
        return;
    qsim_host_uncharge_locked(qsim_g.shm, qsim_g.proc, ord, bytes);
    qsim_unlock_host();
}

void *qsim_mem_map(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* ---- the registry ------------------------------------------------------------------ */

/* Index of the first entry whose base is > p. */
static size_t upper_bound(uintptr_t p)
{
    size_t lo = 0, hi = qsim_g.allocs.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (qsim_g.allocs.v[mid].base <= p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

CUresult qsim_mem_add_locked(const struct qsim_alloc *a)
{
    struct qsim_allocs *r = &qsim_g.allocs;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        struct qsim_alloc *v = realloc(r->v, cap * sizeof *v);
        if (!v)
            return CUDA_ERROR_OUT_OF_MEMORY;
        r->v = v;
        r->cap = cap;
    }
    size_t i = upper_bound(a->base);
    memmove(&r->v[i + 1], &r->v[i], (r->n - i) * sizeof *r->v);
    r->v[i] = *a;
    r->n++;
    return CUDA_SUCCESS;
}

struct qsim_alloc *qsim_mem_find_locked(uintptr_t p)
{
    size_t i = upper_bound(p);
    if (i == 0)
        return NULL;
    struct qsim_alloc *a = &qsim_g.allocs.v[i - 1];
    /* A zero-size range still owns its base address. */
    return p < a->base + (a->size ? a->size : 1) ? a : NULL;
}

void qsim_mem_remove_locked(uintptr_t base)
{
    struct qsim_allocs *r = &qsim_g.allocs;
    size_t i = upper_bound(base);
    if (i == 0 || r->v[i - 1].base != base)
        return;
    i--;
    memmove(&r->v[i], &r->v[i + 1], (r->n - i - 1) * sizeof *r->v);
    r->n--;
}

int qsim_mem_kind_of(uintptr_t p, size_t n)
{
    pthread_mutex_lock(&qsim_g.lock);
    const struct qsim_alloc *a = qsim_mem_find_locked(p);
    int kind = a && n <= a->size - (p - a->base) ? a->kind : 0;
    pthread_mutex_unlock(&qsim_g.lock);
    return kind;
}

int qsim_mem_dest_kind_of(uintptr_t p, size_t n)
{
    pthread_mutex_lock(&qsim_g.lock);
    const struct qsim_alloc *a = qsim_mem_find_locked(p);
    int kind = a && n <= a->size - (p - a->base) && !(a->flags & QSIM_READONLY) ? a->kind : 0;
    pthread_mutex_unlock(&qsim_g.lock);
    return kind;
}

/* Releases a plain allocation's mapping and charge. The entry is already removed. */
static void release_plain(const struct qsim_alloc *a)
{
    munmap((void *)a->base, a->size);
    if (a->charged)
        qsim_mem_uncharge(a->ordinal, a->charged);
}

void qsim_mem_drop_ctx_locked(struct qsim_ctx *ctx)
{
    struct qsim_allocs *r = &qsim_g.allocs;
    for (size_t i = 0; i < r->n;) {
        struct qsim_alloc a = r->v[i];
        if (a.ctx == ctx && (a.kind & (QSIM_MEM_DEVICE | QSIM_MEM_MANAGED | QSIM_MEM_HOST))) {
            qsim_mem_remove_locked(a.base);
            if (!(a.flags & QSIM_REGISTERED)) /* registered memory is only forgotten */
                release_plain(&a);
        } else {
            i++;
        }
    }
}

/* ---- allocation -------------------------------------------------------------------- */

/* Maps bytes, charging `charge` to ctx's device (0: host memory), and records them. */
static CUresult alloc_plain(struct qsim_ctx *ctx, size_t bytes, size_t charge, int kind,
                            unsigned flags, void **out)
{
    if (charge) {
        CUresult rc = qsim_mem_charge(ctx->ordinal, charge);
        if (rc != CUDA_SUCCESS)
            return rc;
    }
    void *p = qsim_mem_map(bytes);
    if (!p) {
        if (charge)
            qsim_mem_uncharge(ctx->ordinal, charge);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    struct qsim_alloc a = {
        .base = (uintptr_t)p,
        .size = bytes,
        .charged = charge,
        .kind = kind,
        .ordinal = charge ? ctx->ordinal : -1,
        .ctx = ctx,
        .id = qsim_new_id(),
        .flags = flags,
    };
    pthread_mutex_lock(&qsim_g.lock);
    CUresult rc = qsim_mem_add_locked(&a);
    pthread_mutex_unlock(&qsim_g.lock);
    if (rc != CUDA_SUCCESS) {
        release_plain(&a);
        return rc;
    }
    *out = p;
    return CUDA_SUCCESS;
}

static CUresult mem_alloc(CUdeviceptr *dptr, size_t bytes)
{
    if (!dptr || bytes == 0)
        return CUDA_ERROR_INVALID_VALUE;
    struct qsim_ctx *ctx;
    CUresult rc = qsim_ctx_get(&ctx);
    if (rc != CUDA_SUCCESS)
        return rc;
    void *p;
    rc = alloc_plain(ctx, bytes, qsim_round_up(bytes, QSIM_ALLOC_ALIGN), QSIM_MEM_DEVICE, 0, &p);
    if (rc == CUDA_SUCCESS)
        *dptr = (CUdeviceptr)p;
    return rc;
}

QSIM_API CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
{
    QSIM_GUARDED(mem_alloc(dptr, bytesize));
}

static CUresult mem_alloc_pitch(CUdeviceptr *dptr, size_t *pitch, size_t width, size_t height,
                                unsigned elem)
{
    if (!dptr || !pitch || width == 0 || height == 0 || (elem != 4 && elem != 8 && elem != 16))
        return CUDA_ERROR_INVALID_VALUE;
    struct qsim_ctx *ctx;
    CUresult rc = qsim_ctx_get(&ctx);
    if (rc != CUDA_SUCCESS)
        return rc;
    size_t p = qsim_round_up(width, QSIM_ALLOC_ALIGN);
    if (height > SIZE_MAX / p)
        return CUDA_ERROR_OUT_OF_MEMORY;
    void *mem;
    rc = alloc_plain(ctx, p * height, p * height, QSIM_MEM_DEVICE, 0, &mem);
    if (rc == CUDA_SUCCESS) {
        *dptr = (CUdeviceptr)mem;
        *pitch = p;
    }
    return rc;
}

QSIM_API CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pPitch, size_t WidthInBytes,
                                     size_t Height, unsigned int ElementSizeBytes)
{
    QSIM_GUARDED(mem_alloc_pitch(dptr, pPitch, WidthInBytes, Height, ElementSizeBytes));
}

static CUresult mem_alloc_managed(CUdeviceptr *dptr, size_t bytes, unsigned flags)
{
    if (!dptr || bytes == 0 || (flags != CU_MEM_ATTACH_GLOBAL && flags != CU_MEM_ATTACH_HOST))
        return CUDA_ERROR_INVALID_VALUE;
    struct qsim_ctx *ctx;
    CUresult rc = qsim_ctx_get(&ctx);
    if (rc != CUDA_SUCCESS)
        return rc;
    void *p;
    rc = alloc_plain(ctx, bytes, qsim_round_up(bytes, QSIM_ALLOC_ALIGN), QSIM_MEM_MANAGED, flags,
                     &p);
    if (rc == CUDA_SUCCESS)
        *dptr = (CUdeviceptr)p;
    return rc;
}

QSIM_API CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags)
{
    QSIM_GUARDED(mem_alloc_managed(dptr, bytesize, flags));
}

static CUresult mem_free(CUdeviceptr dptr)
{
    if (!dptr)
        return CUDA_SUCCESS; /* free(NULL), as the real driver */
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_alloc *found = qsim_mem_find_locked((uintptr_t)dptr);
    struct qsim_alloc a = found ? *found : (struct qsim_alloc){0};
    bool plain =
        found && a.base == (uintptr_t)dptr && (a.kind & (QSIM_MEM_DEVICE | QSIM_MEM_MANAGED));
    if (plain)
        qsim_mem_remove_locked(a.base);
    pthread_mutex_unlock(&qsim_g.lock);
    if (plain) {
        release_plain(&a);
        return CUDA_SUCCESS;
    }
    if (found && a.base == (uintptr_t)dptr && a.kind == QSIM_MEM_POOL)
        return qsim_pool_free_now((uintptr_t)dptr);
    return CUDA_ERROR_INVALID_VALUE;
}

QSIM_API CUresult cuMemFree_v2(CUdeviceptr dptr)
{
    QSIM_GUARDED(mem_free(dptr));
}

static CUresult mem_get_info(size_t *free_bytes, size_t *total)
{
    if (!free_bytes || !total)
        return CUDA_ERROR_INVALID_VALUE;
    struct qsim_ctx *ctx;
    CUresult rc = qsim_ctx_get(&ctx);
    if (rc != CUDA_SUCCESS || (rc = qsim_lock_host()) != CUDA_SUCCESS)
        return rc;
    qsim_host_reap_locked(qsim_g.shm, true);
    const struct qsim_dev *d = qsim_dev_of(ctx->ordinal);
    *total = d->total;
    *free_bytes = d->total - d->used;
    qsim_unlock_host();
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuMemGetInfo_v2(size_t *free, size_t *total)
{
    QSIM_GUARDED(mem_get_info(free, total));
}

/* ---- page-locked host memory ------------------------------------------------------- */

static CUresult mem_host_alloc(void **pp, size_t bytes, unsigned flags)
{
    const unsigned known =
        CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP | CU_MEMHOSTALLOC_WRITECOMBINED;
    if (!pp || bytes == 0 || (flags & ~known))
        return CUDA_ERROR_INVALID_VALUE;
    struct qsim_ctx *ctx;
    CUresult rc = qsim_ctx_get(&ctx);
    if (rc != CUDA_SUCCESS)
        return rc;
    return alloc_plain(ctx, bytes, 0, QSIM_MEM_HOST, flags, pp);
}

QSIM_API CUresult cuMemAllocHost_v2(void **pp, size_t bytesize)
{
    QSIM_GUARDED(mem_host_alloc(pp, bytesize, 0));
}

QSIM_API CUresult cuMemHostAlloc(void **pp, size_t bytesize, unsigned int Flags)
{
    QSIM_GUARDED(mem_host_alloc(pp, bytesize, Flags));
}

static CUresult mem_free_host(void *p)
{
    if (!p)
        return CUDA_SUCCESS; /* free(NULL), as the real driver */
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_alloc *found = qsim_mem_find_locked((uintptr_t)p);
    struct qsim_alloc a = found ? *found : (struct qsim_alloc){0};
    bool ok =
        found && a.base == (uintptr_t)p && a.kind == QSIM_MEM_HOST && !(a.flags & QSIM_REGISTERED);
    if (ok)
        qsim_mem_remove_locked(a.base);
    pthread_mutex_unlock(&qsim_g.lock);
    if (!ok)
        return CUDA_ERROR_INVALID_VALUE;
    release_plain(&a);
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuMemFreeHost(void *p)
{
    QSIM_GUARDED(mem_free_host(p));
}

/* True when some entry overlaps [base, base + size). */
static bool overlaps_locked(uintptr_t base, size_t size)
{
    size_t i = upper_bound(base + size - 1);
    return i > 0 && qsim_g.allocs.v[i - 1].base + qsim_g.allocs.v[i - 1].size > base;
}

static CUresult host_register(void *p, size_t bytes, unsigned flags)
{
    const unsigned known = CU_MEMHOSTREGISTER_PORTABLE | CU_MEMHOSTREGISTER_DEVICEMAP |
                           CU_MEMHOSTREGISTER_IOMEMORY | CU_MEMHOSTREGISTER_READ_ONLY;
    if (!p || bytes == 0 || (flags & ~known))
        return CUDA_ERROR_INVALID_VALUE;
    if (flags & CU_MEMHOSTREGISTER_IOMEMORY)
        return CUDA_ERROR_NOT_SUPPORTED; /* no I/O memory to map */
    struct qsim_ctx *ctx;
    CUresult rc = qsim_ctx_get(&ctx);
    if (rc != CUDA_SUCCESS)
        return rc;
    struct qsim_alloc a = {
        .base = (uintptr_t)p,
        .size = bytes,
        .kind = QSIM_MEM_HOST,
        .ordinal = -1,
        .ctx = ctx,
        .id = qsim_new_id(),
        .flags =
            flags | QSIM_REGISTERED | (flags & CU_MEMHOSTREGISTER_READ_ONLY ? QSIM_READONLY : 0u),
    };
    pthread_mutex_lock(&qsim_g.lock);
    rc = overlaps_locked(a.base, bytes) ? CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED
                                        : qsim_mem_add_locked(&a);
    pthread_mutex_unlock(&qsim_g.lock);
    return rc;
}

QSIM_API CUresult cuMemHostRegister_v2(void *p, size_t bytesize, unsigned int Flags)
{
    QSIM_GUARDED(host_register(p, bytesize, Flags));
}

static CUresult host_unregister(void *p)
{
    if (!p)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_alloc *a = qsim_mem_find_locked((uintptr_t)p);
    bool ok = a && a->base == (uintptr_t)p && (a->flags & QSIM_REGISTERED);
    if (ok)
        qsim_mem_remove_locked((uintptr_t)p);
    pthread_mutex_unlock(&qsim_g.lock);
    return ok ? CUDA_SUCCESS : CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED;
}

QSIM_API CUresult cuMemHostUnregister(void *p)
{
    QSIM_GUARDED(host_unregister(p));
}

/* What a query about pointer p found: a copy of its registry entry. */
static bool lookup(uintptr_t p, struct qsim_alloc *out)
{
    pthread_mutex_lock(&qsim_g.lock);
    const struct qsim_alloc *a = qsim_mem_find_locked(p);
    if (a)
        *out = *a;
    pthread_mutex_unlock(&qsim_g.lock);
    return a != NULL;
}

static CUresult mem_host_get_device_pointer(CUdeviceptr *pdptr, void *p, unsigned flags)
{
    if (!pdptr || flags != 0)
        return CUDA_ERROR_INVALID_VALUE;
    struct qsim_alloc a;
    if (!lookup((uintptr_t)p, &a) || a.kind != QSIM_MEM_HOST)
        return CUDA_ERROR_INVALID_VALUE;
    *pdptr = (CUdeviceptr)p; /* unified addressing: the same address */
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuMemHostGetDevicePointer_v2(CUdeviceptr *pdptr, void *p, unsigned int Flags)
{
    QSIM_GUARDED(mem_host_get_device_pointer(pdptr, p, Flags));
}

static CUresult mem_host_get_flags(unsigned *flags, void *p)
{
    struct qsim_alloc a;
    if (!flags || !lookup((uintptr_t)p, &a) || a.kind != QSIM_MEM_HOST)
        return CUDA_ERROR_INVALID_VALUE;
    *flags = a.flags & ~(QSIM_REGISTERED | QSIM_READONLY);
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuMemHostGetFlags(unsigned int *pFlags, void *p)
{
    QSIM_GUARDED(mem_host_get_flags(pFlags, p));
}

/* ---- queries ----------------------------------------------------------------------- */

static CUresult mem_get_address_range(CUdeviceptr *base, size_t *size, CUdeviceptr dptr)
{
    struct qsim_alloc a;
    if (!lookup((uintptr_t)dptr, &a) || a.kind == QSIM_MEM_HOST)
        return CUDA_ERROR_NOT_FOUND;
    if (base)
        *base = (CUdeviceptr)a.base;
    if (size)
        *size = a.size;
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuMemGetAddressRange_v2(CUdeviceptr *pbase, size_t *psize, CUdeviceptr dptr)
{
    QSIM_GUARDED(mem_get_address_range(pbase, psize, dptr));
}

/* Writes attribute attr of pointer p (entry a, NULL when unknown) to data. Returns
 * CUDA_ERROR_INVALID_VALUE when it has no value for such a pointer. */
static CUresult pointer_attribute(CUpointer_attribute attr, const struct qsim_alloc *a,
                                  CUdeviceptr p, void *data)
{
    bool dev = a && a->kind != QSIM_MEM_HOST;
    switch (attr) {
    case CU_POINTER_ATTRIBUTE_CONTEXT:
        if (!a)
            return CUDA_ERROR_INVALID_VALUE;
        *(CUcontext *)data = (CUcontext)a->ctx;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_MEMORY_TYPE:
        if (!a)
            return CUDA_ERROR_INVALID_VALUE;
        *(unsigned *)data = dev ? CU_MEMORYTYPE_DEVICE : CU_MEMORYTYPE_HOST;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_DEVICE_POINTER:
        if (!a)
            return CUDA_ERROR_INVALID_VALUE;
        *(CUdeviceptr *)data = p;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_HOST_POINTER:
        if (!a || (dev && a->kind != QSIM_MEM_MANAGED))
            return CUDA_ERROR_INVALID_VALUE;
        *(void **)data = (void *)p;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_SYNC_MEMOPS:
    case CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE:
    case CU_POINTER_ATTRIBUTE_IS_GPU_DIRECT_RDMA_CAPABLE:
        if (!a)
            return CUDA_ERROR_INVALID_VALUE;
        *(int *)data = 0;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_BUFFER_ID:
        if (!a)
            return CUDA_ERROR_INVALID_VALUE;
        *(unsigned long long *)data = a->id;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_IS_MANAGED:
        if (!a)
            return CUDA_ERROR_INVALID_VALUE;
        *(int *)data = a->kind == QSIM_MEM_MANAGED;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL:
        if (!a)
            return CUDA_ERROR_INVALID_VALUE;
        *(int *)data = a->ordinal >= 0 ? a->ordinal : (a->ctx ? a->ctx->ordinal : 0);
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR:
    case CU_POINTER_ATTRIBUTE_MAPPING_BASE_ADDR:
        if (!a)
            return CUDA_ERROR_INVALID_VALUE;
        *(CUdeviceptr *)data = (CUdeviceptr)a->base;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_RANGE_SIZE:
    case CU_POINTER_ATTRIBUTE_MAPPING_SIZE:
        if (!a)
            return CUDA_ERROR_INVALID_VALUE;
        *(size_t *)data = a->size;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_MAPPED:
        if (!a)
            return CUDA_ERROR_INVALID_VALUE;
        *(int *)data = 1;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_ALLOWED_HANDLE_TYPES:
        if (!a)
            return CUDA_ERROR_INVALID_VALUE;
        *(unsigned long long *)data = 0;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_ACCESS_FLAGS:
        if (!a)
            return CUDA_ERROR_INVALID_VALUE;
        *(unsigned *)data = CU_POINTER_ATTRIBUTE_ACCESS_FLAG_READWRITE;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE:
        if (!a)
            return CUDA_ERROR_INVALID_VALUE;
        *(CUmemoryPool *)data = a->kind == QSIM_MEM_POOL ? (CUmemoryPool)a->owner : NULL;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_MEMORY_BLOCK_ID:
        if (!a)
            return CUDA_ERROR_INVALID_VALUE;
        *(unsigned long long *)data = a->id;
        return CUDA_SUCCESS;
    default:
        return CUDA_ERROR_INVALID_VALUE;
    }
}

static CUresult pointer_get_attribute(void *data, CUpointer_attribute attr, CUdeviceptr p)
{
    if (!data)
        return CUDA_ERROR_INVALID_VALUE;
    struct qsim_alloc a;
    bool known = lookup((uintptr_t)p, &a);
    return pointer_attribute(attr, known ? &a : NULL, p, data);
}

QSIM_API CUresult cuPointerGetAttribute(void *data, CUpointer_attribute attribute, CUdeviceptr ptr)
{
    QSIM_GUARDED(pointer_get_attribute(data, attribute, ptr));
}

/* Unlike the single query, this one succeeds for memory the driver does not know:
 * every attribute then reads as zero or NULL, as documented. */
static CUresult pointer_get_attributes(unsigned n, CUpointer_attribute *attrs, void **data,
                                       CUdeviceptr p)
{
    if (!attrs || !data)
        return CUDA_ERROR_INVALID_VALUE;
    struct qsim_alloc a;
    bool known = lookup((uintptr_t)p, &a);
    for (unsigned i = 0; i < n; i++) {
        if (!data[i])
            return CUDA_ERROR_INVALID_VALUE;
        if (known && pointer_attribute(attrs[i], &a, p, data[i]) == CUDA_SUCCESS)
            continue;
        switch (attrs[i]) {
        case CU_POINTER_ATTRIBUTE_CONTEXT:
        case CU_POINTER_ATTRIBUTE_HOST_POINTER:
        case CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE:
            *(void **)data[i] = NULL;
            break;
        case CU_POINTER_ATTRIBUTE_DEVICE_POINTER:
        case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR:
        case CU_POINTER_ATTRIBUTE_BUFFER_ID:
        case CU_POINTER_ATTRIBUTE_ALLOWED_HANDLE_TYPES:
        case CU_POINTER_ATTRIBUTE_MAPPING_BASE_ADDR:
        case CU_POINTER_ATTRIBUTE_MEMORY_BLOCK_ID:
            *(unsigned long long *)data[i] = 0;
            break;
        case CU_POINTER_ATTRIBUTE_RANGE_SIZE:
        case CU_POINTER_ATTRIBUTE_MAPPING_SIZE:
            *(size_t *)data[i] = 0;
            break;
        case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL:
            *(int *)data[i] = -2; /* no device */
            break;
        default:
            *(unsigned *)data[i] = 0;
            break;
        }
    }
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuPointerGetAttributes(unsigned int numAttributes,
                                         CUpointer_attribute *attributes, void **data,
                                         CUdeviceptr ptr)
{
    QSIM_GUARDED(pointer_get_attributes(numAttributes, attributes, data, ptr));
}
