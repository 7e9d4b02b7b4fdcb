/* cuda_vmm.c - virtual memory management: physical allocations (cuMemCreate), address
 * reservations, mappings and access.
 *
 * A physical allocation is a memfd of its size, charged to its device when created and
 * given back when it is both released and unmapped everywhere. As in the real driver,
 * its handle is dead once every reference to it (cuMemCreate's, each
 * cuMemRetainAllocationHandle's) is released: cuMemMap, cuMemRelease and the property
 * query then refuse it, while the mappings it still has stay valid until cuMemUnmap. A reservation
 * is a PROT_NONE range; cuMemMap maps the memfd over part of it (MAP_SHARED, so two mappings of one
 * allocation see the same bytes) and cuMemSetAccess makes it readable and writable, and known to
 * the copy functions. Granularity: 2 MiB. Threads: any; every object here under qsim_g.lock. */
#include "sim/cuda_mem.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

struct qsim_phys {
    uint32_t magic; /* QSIM_MAGIC_PHYS while it exists */
    int fd;         /* owned memfd */
    size_t size;
    int ordinal;              /* device it is charged on */
    int handles;              /* handle references: cuMemCreate's and each
                                 cuMemRetainAllocationHandle's, until their cuMemRelease */
    int maps;                 /* live mappings of it */
    CUmemAllocationProp prop; /* as created */
    struct qsim_phys *next;   /* qsim_g.phys */
};

/* A reservation, and the mappings in it. */
struct qsim_vma {
    uintptr_t base;
    size_t size;
    struct qsim_vmap *maps; /* owned */
    struct qsim_vma *next;  /* qsim_g.vas */
};

struct qsim_vmap {
    uintptr_t va;
    size_t size;
    struct qsim_phys *phys; /* holds one reference */
    size_t offset;          /* into phys */
    bool accessible;        /* cuMemSetAccess gave read or write access */
    bool readonly;          /* ... read access only */
    struct qsim_vmap *next;
};

static bool prop_valid(const CUmemAllocationProp *p)
{
    return p && p->type == CU_MEM_ALLOCATION_TYPE_PINNED &&
           p->location.type == CU_MEM_LOCATION_TYPE_DEVICE &&
           qsim_check_device(p->location.id) == CUDA_SUCCESS;
}

/* The allocation handle h names, or NULL when h is unknown or released. Lock held. */
static struct qsim_phys *phys_of(CUmemGenericAllocationHandle h)
{
    for (struct qsim_phys *p = qsim_g.phys; p; p = p->next)
        if ((CUmemGenericAllocationHandle)(uintptr_t)p == h && p->magic == QSIM_MAGIC_PHYS)
            return p->handles > 0 ? p : NULL;
    return NULL;
}

/* Gives p's memory back once nothing holds it: no handle reference, no mapping. */
static void phys_free_if_unheld_locked(struct qsim_phys *p)
{
    if (p->handles > 0 || p->maps > 0)
        return;
    for (struct qsim_phys **pp = &qsim_g.phys; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    close(p->fd);
    qsim_mem_uncharge(p->ordinal, p->size);
    p->magic = 0;
    free(p);
}

static struct qsim_vma *vma_holding(uintptr_t ptr, size_t size)
{
    for (struct qsim_vma *v = qsim_g.vas; v; v = v->next)
        if (ptr >= v->base && size <= v->size && ptr - v->base <= v->size - size)
            return v;
    return NULL;
}

/* ---- granularity and physical memory ----------------------------------------------- */

static CUresult granularity(size_t *g, const CUmemAllocationProp *prop, unsigned option)
{
    if (!g || !prop_valid(prop) || option > CU_MEM_ALLOC_GRANULARITY_RECOMMENDED)
        return CUDA_ERROR_INVALID_VALUE;
    *g = QSIM_GRANULARITY;
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuMemGetAllocationGranularity(size_t *granularity_out,
                                                const CUmemAllocationProp *prop,
                                                CUmemAllocationGranularity_flags option)
{
    QSIM_GUARDED(granularity(granularity_out, prop, option));
}

static CUresult mem_create(CUmemGenericAllocationHandle *h, size_t size,
                           const CUmemAllocationProp *prop, unsigned long long flags)
{
    if (!h || !prop_valid(prop) || flags || size == 0 || size % QSIM_GRANULARITY)
        return CUDA_ERROR_INVALID_VALUE;
    if (prop->requestedHandleTypes &
        ~(CUmemAllocationHandleType)CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR)
        return CUDA_ERROR_NOT_SUPPORTED;
    int ord = prop->location.id;
    CUresult rc = qsim_mem_charge(ord, size);
    if (rc != CUDA_SUCCESS)
        return rc;
    struct qsim_phys *p = calloc(1, sizeof *p);
    int fd = memfd_create("qsim-vmm", MFD_CLOEXEC);
    if (!p || fd < 0 || ftruncate(fd, (off_t)size) < 0) {
        if (fd >= 0)
            close(fd);
        free(p);
        qsim_mem_uncharge(ord, size);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    p->fd = fd;
    p->size = size;
    p->ordinal = ord;
    p->handles = 1;
    p->prop = *prop;
    p->magic = QSIM_MAGIC_PHYS;
    pthread_mutex_lock(&qsim_g.lock);
    p->next = qsim_g.phys;
    qsim_g.phys = p;
    pthread_mutex_unlock(&qsim_g.lock);
    *h = (CUmemGenericAllocationHandle)(uintptr_t)p;
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size,
                              const CUmemAllocationProp *prop, unsigned long long flags)
{
    QSIM_GUARDED(mem_create(handle, size, prop, flags));
}

static CUresult mem_release(CUmemGenericAllocationHandle h)
{
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_phys *p = phys_of(h);
    if (p) {
        p->handles--;
        phys_free_if_unheld_locked(p); /* held on by its mappings, if any */
    }
    pthread_mutex_unlock(&qsim_g.lock);
    return p ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

QSIM_API CUresult cuMemRelease(CUmemGenericAllocationHandle handle)
{
    QSIM_GUARDED(mem_release(handle));
}

static CUresult properties_from_handle(CUmemAllocationProp *prop, CUmemGenericAllocationHandle h)
{
    if (!prop)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_phys *p = phys_of(h);
    if (p)
        *prop = p->prop;
    pthread_mutex_unlock(&qsim_g.lock);
    return p ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

QSIM_API CUresult cuMemGetAllocationPropertiesFromHandle(CUmemAllocationProp *prop,
                                                         CUmemGenericAllocationHandle handle)
{
    QSIM_GUARDED(properties_from_handle(prop, handle));
}

static CUresult retain_handle(CUmemGenericAllocationHandle *h, void *addr)
{
    if (!h)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_vma *v = vma_holding((uintptr_t)addr, 1);
    struct qsim_vmap *m = v ? v->maps : NULL;
    while (m && !((uintptr_t)addr >= m->va && (uintptr_t)addr < m->va + m->size))
        m = m->next;
    if (m) {
        m->phys->handles++;
        *h = (CUmemGenericAllocationHandle)(uintptr_t)m->phys;
    }
    pthread_mutex_unlock(&qsim_g.lock);
    return m ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

QSIM_API CUresult cuMemRetainAllocationHandle(CUmemGenericAllocationHandle *handle, void *addr)
{
    QSIM_GUARDED(retain_handle(handle, addr));
}

/* ---- address reservations ---------------------------------------------------------- */

static CUresult address_reserve(CUdeviceptr *ptr, size_t size, size_t align, CUdeviceptr addr,
                                unsigned long long flags)
{
    if (!ptr || size == 0 || size % QSIM_GRANULARITY || flags)
        return CUDA_ERROR_INVALID_VALUE;
    if (align == 0)
        align = QSIM_GRANULARITY;
    if ((align & (align - 1)) || align % QSIM_GRANULARITY)
        return CUDA_ERROR_INVALID_VALUE;
    struct qsim_vma *v = calloc(1, sizeof *v);
    if (!v)
        return CUDA_ERROR_OUT_OF_MEMORY;
    /* Over-reserve by the alignment, then trim both ends; `addr` is only a hint. */
    size_t span = size + align;
    char *m =
        mmap((void *)addr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
        free(v);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    uintptr_t base = qsim_round_up((uintptr_t)m, align);
    if (base > (uintptr_t)m)
        munmap(m, base - (uintptr_t)m);
    if ((uintptr_t)m + span > base + size)
        munmap((void *)(base + size), (uintptr_t)m + span - (base + size));
    v->base = base;
    v->size = size;
    pthread_mutex_lock(&qsim_g.lock);
    v->next = qsim_g.vas;
    qsim_g.vas = v;
    pthread_mutex_unlock(&qsim_g.lock);
    *ptr = (CUdeviceptr)base;
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuMemAddressReserve(CUdeviceptr *ptr, size_t size, size_t alignment,
                                      CUdeviceptr addr, unsigned long long flags)
{
    QSIM_GUARDED(address_reserve(ptr, size, alignment, addr, flags));
}

static CUresult address_free(CUdeviceptr ptr, size_t size)
{
    pthread_mutex_lock(&qsim_g.lock);
    CUresult rc = CUDA_ERROR_INVALID_VALUE;
    for (struct qsim_vma **pp = &qsim_g.vas; *pp; pp = &(*pp)->next) {
        struct qsim_vma *v = *pp;
        if (v->base != (uintptr_t)ptr || v->size != size)
            continue;
        if (v->maps) /* still mapped: unmap first */
            break;
        *pp = v->next;
        munmap((void *)v->base, v->size);
        free(v);
        rc = CUDA_SUCCESS;
        break;
    }
    pthread_mutex_unlock(&qsim_g.lock);
    return rc;
}

QSIM_API CUresult cuMemAddressFree(CUdeviceptr ptr, size_t size)
{
    QSIM_GUARDED(address_free(ptr, size));
}

/* ---- mapping ----------------------------------------------------------------------- */

static bool overlaps(const struct qsim_vma *v, uintptr_t va, size_t size)
{
    for (const struct qsim_vmap *m = v->maps; m; m = m->next)
        if (va < m->va + m->size && m->va < va + size)
            return true;
    return false;
}

static CUresult mem_map(CUdeviceptr ptr, size_t size, size_t offset, CUmemGenericAllocationHandle h,
                        unsigned long long flags)
{
    if (flags || size == 0 || size % QSIM_GRANULARITY || offset % QSIM_GRANULARITY ||
        (uintptr_t)ptr % QSIM_GRANULARITY)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_phys *p = phys_of(h);
    struct qsim_vma *v = vma_holding((uintptr_t)ptr, size);
    struct qsim_vmap *m = NULL;
    CUresult rc = CUDA_SUCCESS;
    if (!p || !v || offset > p->size || size > p->size - offset || overlaps(v, ptr, size))
        rc = CUDA_ERROR_INVALID_VALUE;
    else if (!(m = calloc(1, sizeof *m)))
        rc = CUDA_ERROR_OUT_OF_MEMORY;
    else if (mmap((void *)ptr, size, PROT_NONE, MAP_SHARED | MAP_FIXED, p->fd, (off_t)offset) ==
             MAP_FAILED)
        rc = CUDA_ERROR_OUT_OF_MEMORY;
    if (rc == CUDA_SUCCESS) {
        m->va = (uintptr_t)ptr;
        m->size = size;
        m->phys = p;
        m->offset = offset;
        m->next = v->maps;
        v->maps = m;
        p->maps++;
    } else {
        free(m);
    }
    pthread_mutex_unlock(&qsim_g.lock);
    return rc;
}

QSIM_API CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset,
                           CUmemGenericAllocationHandle handle, unsigned long long flags)
{
    QSIM_GUARDED(mem_map(ptr, size, offset, handle, flags));
}

static CUresult mem_unmap(CUdeviceptr ptr, size_t size)
{
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_vma *v = vma_holding((uintptr_t)ptr, size);
    int unmapped = 0;
    for (struct qsim_vmap **pp = v ? &v->maps : NULL; pp && *pp;) {
        struct qsim_vmap *m = *pp;
        if (m->va < (uintptr_t)ptr || m->va + m->size > (uintptr_t)ptr + size) {
            pp = &m->next;
            continue;
        }
        *pp = m->next;
        /* Back to a bare reservation. */
        mmap((void *)m->va, m->size, PROT_NONE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
        if (m->accessible)
            qsim_mem_remove_locked(m->va);
        m->phys->maps--;
        phys_free_if_unheld_locked(m->phys);
        free(m);
        unmapped++;
    }
    pthread_mutex_unlock(&qsim_g.lock);
    return unmapped ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

QSIM_API CUresult cuMemUnmap(CUdeviceptr ptr, size_t size)
{
    QSIM_GUARDED(mem_unmap(ptr, size));
}

static CUresult set_access(CUdeviceptr ptr, size_t size, const CUmemAccessDesc *desc, size_t count)
{
    if (!desc || count == 0 || size == 0)
        return CUDA_ERROR_INVALID_VALUE;
    int prot = PROT_NONE;
    for (size_t i = 0; i < count; i++) {
        if (desc[i].location.type != CU_MEM_LOCATION_TYPE_DEVICE ||
            qsim_check_device(desc[i].location.id) != CUDA_SUCCESS)
            return CUDA_ERROR_INVALID_VALUE;
        if (desc[i].flags == CU_MEM_ACCESS_FLAGS_PROT_READ)
            prot |= PROT_READ;
        else if (desc[i].flags == CU_MEM_ACCESS_FLAGS_PROT_READWRITE)
            prot |= PROT_READ | PROT_WRITE;
        else if (desc[i].flags != CU_MEM_ACCESS_FLAGS_PROT_NONE)
            return CUDA_ERROR_INVALID_VALUE;
    }
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_vma *v = vma_holding((uintptr_t)ptr, size);
    /* The range must be mapped from end to end. */
    size_t covered = 0;
    for (struct qsim_vmap *m = v ? v->maps : NULL; m; m = m->next)
        if (m->va >= (uintptr_t)ptr && m->va + m->size <= (uintptr_t)ptr + size)
            covered += m->size;
    CUresult rc = covered == size ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
    if (rc == CUDA_SUCCESS && mprotect((void *)ptr, size, prot) < 0)
        rc = CUDA_ERROR_INVALID_VALUE;
    for (struct qsim_vmap *m = v ? v->maps : NULL; rc == CUDA_SUCCESS && m; m = m->next) {
        if (m->va < (uintptr_t)ptr || m->va + m->size > (uintptr_t)ptr + size)
            continue;
        bool accessible = prot != PROT_NONE, readonly = !(prot & PROT_WRITE);
        if (m->accessible)
            qsim_mem_remove_locked(m->va);
        if (accessible) {
            struct qsim_alloc a = {.base = m->va,
                                   .size = m->size,
                                   .kind = QSIM_MEM_VMM,
                                   .ordinal = m->phys->ordinal,
                                   .owner = m,
                                   .id = qsim_new_id(),
                                   .flags = readonly ? QSIM_READONLY : 0};
            rc = qsim_mem_add_locked(&a);
        }
        if (rc == CUDA_SUCCESS) {
            m->accessible = accessible;
            m->readonly = readonly;
        }
    }
    pthread_mutex_unlock(&qsim_g.lock);
    return rc;
}

QSIM_API CUresult cuMemSetAccess(CUdeviceptr ptr, size_t size, const CUmemAccessDesc *desc,
                                 size_t count)
{
    QSIM_GUARDED(set_access(ptr, size, desc, count));
}

static CUresult get_access(unsigned long long *flags, const CUmemLocation *loc, CUdeviceptr ptr)
{
    if (!flags || !loc || loc->type != CU_MEM_LOCATION_TYPE_DEVICE ||
        qsim_check_device(loc->id) != CUDA_SUCCESS)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_vma *v = vma_holding((uintptr_t)ptr, 1);
    struct qsim_vmap *m = v ? v->maps : NULL;
    while (m && !((uintptr_t)ptr >= m->va && (uintptr_t)ptr < m->va + m->size))
        m = m->next;
    if (m)
        *flags = !m->accessible ? CU_MEM_ACCESS_FLAGS_PROT_NONE
                 : m->readonly  ? CU_MEM_ACCESS_FLAGS_PROT_READ
                                : CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    pthread_mutex_unlock(&qsim_g.lock);
    return m ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

QSIM_API CUresult cuMemGetAccess(unsigned long long *flags, const CUmemLocation *location,
                                 CUdeviceptr ptr)
{
    QSIM_GUARDED(get_access(flags, location, ptr));
}
