/* vmm.c - virtual memory management: cuMemCreate makes physical memory, which the driver
 * keeps until its handle is released (cuMemCreate's reference and each
 * cuMemRetainAllocationHandle's) *and* every mapping of it is unmapped. A device
 * allocation is charged its size rounded up to the allocation granularity (what the GPU
 * holds) from cuMemCreate until both have happened; host allocations are not charged.
 * So the shim follows handles and mappings: cuMemMap, cuMemUnmap and
 * cuMemRetainAllocationHandle are hooked only for that; address reservation allocates
 * nothing and passes through.
 *
 * Threads: any. vmm0.lock guards the table and is held across the driver's call in every
 * hook but cuMemCreate's, so that a handle or address the driver frees cannot be handed
 * to another thread before the table forgets it. Lookups are linear: VMM calls are rare
 * (each maps at least a granule, 2 MiB) and never on the launch path.
 * State: vmm0, this file's alone (shim/vmm.h). */
#include "shim/vmm.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "shim/errors.h"
#include "shim/init.h"
#include "shim/log.h"
#include "shim/mem.h"
#include "shim/real.h"

/* A charged physical allocation, and what still holds it. */
struct vmm_alloc {
    CUmemGenericAllocationHandle handle;
    uint64_t bytes; /* charged */
    uint32_t refs;  /* handle references not yet released */
    uint32_t maps;  /* live mappings (entries in qs_vmm.maps, or ones we lost track of) */
};

/* A live mapping of a charged allocation. */
struct vmm_map {
    CUdeviceptr va;
    size_t size;
    CUmemGenericAllocationHandle handle;
};

struct qs_vmm {
    struct vmm_alloc *allocs; /* owned; nallocs used of cap_allocs */
    size_t nallocs, cap_allocs;
    struct vmm_map *maps; /* owned; nmaps used of cap_maps */
    size_t nmaps, cap_maps;
};

static struct {
    pthread_mutex_t lock;   /* guards table; held across fork */
    struct qs_vmm *table;   /* owned: charged allocations and mappings; made on first use */
    atomic_int logged_lost; /* an allocation could not be remembered: said once */
} vmm0 = {.lock = PTHREAD_MUTEX_INITIALIZER};

static bool on_device(const CUmemAllocationProp *prop)
{
    return prop && prop->location.type == CU_MEM_LOCATION_TYPE_DEVICE;
}

/* size rounded up to prop's minimum granularity; 0 on overflow. */
static uint64_t granular(size_t size, const CUmemAllocationProp *prop)
{
    QS_PFN_cuMemGetAllocationGranularity gran_fn = QS_REAL(cuMemGetAllocationGranularity);
    size_t g = 0;
    if (!gran_fn || gran_fn(&g, prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM) != CUDA_SUCCESS || g == 0)
        return size;
    uint64_t n;
    if (__builtin_add_overflow((uint64_t)size, (uint64_t)g - 1, &n))
        return 0;
    return n / g * g;
}

/* Makes room for one more item in *items (cap *cap, n used). vmm_lock held. */
static int reserve_one(void **items, size_t *cap, size_t n, size_t item_size)
{
    if (n < *cap)
        return 0;
    size_t want = *cap ? *cap * 2 : 16;
    void *p = realloc(*items, want * item_size);
    if (!p)
        return -ENOMEM;
    *items = p;
    *cap = want;
    return 0;
}

/* The table, made on first use; NULL when out of memory. vmm_lock held. */
static struct qs_vmm *table(void)
{
    if (!vmm0.table)
        vmm0.table = calloc(1, sizeof *vmm0.table);
    return vmm0.table;
}

/* The record of handle h, or NULL when h charged nothing. vmm_lock held. */
static struct vmm_alloc *find(CUmemGenericAllocationHandle h)
{
    struct qs_vmm *t = vmm0.table;
    for (size_t i = 0; t && i < t->nallocs; i++) {
        if (t->allocs[i].handle == h)
            return &t->allocs[i];
    }
    return NULL;
}

/* Uncharges and forgets a once nothing holds it any more. vmm_lock held. */
static void drop_if_unheld(struct vmm_alloc *a)
{
    if (a->refs > 0 || a->maps > 0)
        return;
    struct qs_vmm *t = vmm0.table;
    qs_mem_uncharge(a->bytes);
    *a = t->allocs[--t->nallocs];
}

static void log_lost(void)
{
    qs_log_once(&vmm0.logged_lost, "cannot remember an allocation (out of memory): its "
                                   "memory stays charged");
}

void qs_vmm_before_fork(void)
{
    pthread_mutex_lock(&vmm0.lock);
}

void qs_vmm_after_fork_parent(void)
{
    pthread_mutex_unlock(&vmm0.lock);
}

void qs_vmm_reset_after_fork(void)
{
    /* The forking thread held vmm_lock: the table is whole, and the parent's. */
    if (vmm0.table) {
        free(vmm0.table->allocs);
        free(vmm0.table->maps);
        free(vmm0.table);
        vmm0.table = NULL;
    }
    pthread_mutex_init(&vmm0.lock, NULL);
}

QS_EXPORT CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size,
                               const CUmemAllocationProp *prop, unsigned long long flags)
{
    QS_PFN_cuMemCreate real = QS_REAL(cuMemCreate);
    if (!real)
        return qs_cu_error(-ENOSYS);
    if (!qs_managed() || !handle || size == 0 || !on_device(prop))
        return real(handle, size, prop, flags);
    qs_init();
    uint64_t n = granular(size, prop);
    if (n == 0)
        return CUDA_ERROR_OUT_OF_MEMORY;
    int rc = qs_mem_charge(n);
    if (rc < 0)
        return qs_cu_error(rc);
    CUresult r = real(handle, size, prop, flags);
    if (r != CUDA_SUCCESS) {
        qs_mem_uncharge(n);
        return r;
    }
    pthread_mutex_lock(&vmm0.lock);
    struct qs_vmm *t = table();
    if (t && reserve_one((void **)&t->allocs, &t->cap_allocs, t->nallocs, sizeof *t->allocs) == 0)
        t->allocs[t->nallocs++] = (struct vmm_alloc){.handle = *handle, .bytes = n, .refs = 1};
    else
        log_lost();
    pthread_mutex_unlock(&vmm0.lock);
    return r;
}

QS_EXPORT CUresult cuMemRelease(CUmemGenericAllocationHandle handle)
{
    QS_PFN_cuMemRelease real = QS_REAL(cuMemRelease);
    if (!real)
        return qs_cu_error(-ENOSYS);
    if (!qs_managed())
        return real(handle);
    pthread_mutex_lock(&vmm0.lock);
    CUresult r = real(handle);
    struct vmm_alloc *a = r == CUDA_SUCCESS ? find(handle) : NULL;
    if (a && a->refs > 0) {
        a->refs--;
        drop_if_unheld(a); /* still mapped: charged until the last cuMemUnmap */
    }
    pthread_mutex_unlock(&vmm0.lock);
    return r;
}

QS_EXPORT CUresult cuMemRetainAllocationHandle(CUmemGenericAllocationHandle *handle, void *addr)
{
    QS_PFN_cuMemRetainAllocationHandle real = QS_REAL(cuMemRetainAllocationHandle);
    if (!real)
        return qs_cu_error(-ENOSYS);
    if (!qs_managed() || !handle)
        return real(handle, addr);
    pthread_mutex_lock(&vmm0.lock);
    CUresult r = real(handle, addr);
    struct vmm_alloc *a = r == CUDA_SUCCESS ? find(*handle) : NULL;
    if (a)
        a->refs++;
    pthread_mutex_unlock(&vmm0.lock);
    return r;
}

QS_EXPORT CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset,
                            CUmemGenericAllocationHandle handle, unsigned long long flags)
{
    QS_PFN_cuMemMap real = QS_REAL(cuMemMap);
    if (!real)
        return qs_cu_error(-ENOSYS);
    if (!qs_managed())
        return real(ptr, size, offset, handle, flags);
    pthread_mutex_lock(&vmm0.lock);
    CUresult r = real(ptr, size, offset, handle, flags);
    struct vmm_alloc *a = r == CUDA_SUCCESS ? find(handle) : NULL;
    if (a) {
        struct qs_vmm *t = vmm0.table;
        /* Unable to remember the mapping, the allocation is never seen unmapped: its
         * charge outlives it, which errs on the safe side. */
        if (reserve_one((void **)&t->maps, &t->cap_maps, t->nmaps, sizeof *t->maps) == 0)
            t->maps[t->nmaps++] = (struct vmm_map){.va = ptr, .size = size, .handle = handle};
        else
            log_lost();
        a->maps++;
    }
    pthread_mutex_unlock(&vmm0.lock);
    return r;
}

/* The driver unmaps every mapping that lies in [ptr, ptr + size). */
QS_EXPORT CUresult cuMemUnmap(CUdeviceptr ptr, size_t size)
{
    QS_PFN_cuMemUnmap real = QS_REAL(cuMemUnmap);
    if (!real)
        return qs_cu_error(-ENOSYS);
    if (!qs_managed())
        return real(ptr, size);
    pthread_mutex_lock(&vmm0.lock);
    CUresult r = real(ptr, size);
    struct qs_vmm *t = r == CUDA_SUCCESS ? vmm0.table : NULL;
    for (size_t i = 0; t && i < t->nmaps;) {
        struct vmm_map m = t->maps[i];
        if (m.va < ptr || m.va - ptr >= size) {
            i++;
            continue;
        }
        t->maps[i] = t->maps[--t->nmaps];
        struct vmm_alloc *a = find(m.handle);
        if (a && a->maps > 0) {
            a->maps--;
            drop_if_unheld(a);
        }
    }
    pthread_mutex_unlock(&vmm0.lock);
    return r;
}
