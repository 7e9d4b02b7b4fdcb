/* vmm.c - virtual memory management: cuMemCreate makes physical memory, cuMemRelease
 * gives it back. A device allocation is charged its size rounded up to the allocation
 * granularity (what the GPU holds); host allocations are not charged. Mapping
 * (cuMemMap) and address reservation allocate nothing and pass through. The handle is
 * charged until cuMemRelease, even if still mapped (the driver frees it at unmap).
 * Threads: any. */
#include <errno.h>

#include "shim/errors.h"
#include "shim/init.h"
#include "shim/mem.h"
#include "shim/real.h"

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

QS_EXPORT CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size,
                               const CUmemAllocationProp *prop, unsigned long long flags)
{
    QS_PFN_cuMemCreate real = QS_REAL(cuMemCreate);
    if (!real)
        return qs_cu_error(-ENOSYS);
    if (!qs_g.managed || !handle || size == 0 || !on_device(prop))
        return real(handle, size, prop, flags);
    qs_init();
    uint64_t n = granular(size, prop);
    if (n == 0)
        return CUDA_ERROR_OUT_OF_MEMORY;
    int rc = qs_mem_charge(n);
    if (rc < 0)
        return qs_cu_error(rc);
    CUresult r = real(handle, size, prop, flags);
    if (r != CUDA_SUCCESS)
        qs_mem_uncharge(n);
    else
        qs_mem_track(QS_ALLOC_VMM, *handle, n, false);
    return r;
}

QS_EXPORT CUresult cuMemRelease(CUmemGenericAllocationHandle handle)
{
    QS_PFN_cuMemRelease real = QS_REAL(cuMemRelease);
    if (!real)
        return qs_cu_error(-ENOSYS);
    if (!qs_g.managed)
        return real(handle);
    uint64_t n = qs_mem_untrack(QS_ALLOC_VMM, handle);
    CUresult r = real(handle);
    if (r == CUDA_SUCCESS)
        qs_mem_uncharge(n);
    else
        qs_mem_retrack(QS_ALLOC_VMM, handle, n, false);
    return r;
}
