/* cuda_array.c - CUDA arrays and mipmapped arrays: device memory of an opaque layout.
 *
 * Layout model (what is charged): rows of Width x element size x channels bytes rounded
 * up to 512, Height x Depth rows (each at least 1), the whole rounded up to 64 KiB,
 * aligned to 64 KiB; a mipmapped array is the sum of its levels. The memory is a
 * MAP_NORESERVE mapping like any device memory.
 *
 * An array made with CUDA_ARRAY3D_DEFERRED_MAPPING holds no memory (its backing would be
 * mapped in later) and costs nothing; as in the real driver, only such arrays answer
 * cuArrayGetMemoryRequirements / cuMipmappedArrayGetMemoryRequirements (with the model's
 * figure), and any other gets CUDA_ERROR_INVALID_VALUE.
 * Threads: any; arrays under qsim_g.lock. */
#include "sim/cuda_mem.h"

#include <stdlib.h>
#include <sys/mman.h>

#include "sim/cuda_ctx.h"

#define ROW_ALIGN 512u
#define ARRAY_ALIGN (64u << 10)
#define KNOWN_FLAGS                                                                                \
    (CUDA_ARRAY3D_LAYERED | CUDA_ARRAY3D_SURFACE_LDST | CUDA_ARRAY3D_CUBEMAP |                     \
     CUDA_ARRAY3D_TEXTURE_GATHER | CUDA_ARRAY3D_COLOR_ATTACHMENT | CUDA_ARRAY3D_DEFERRED_MAPPING)

struct qsim_mipmap;

struct qsim_array {
    uint32_t magic;               /* QSIM_MAGIC_ARRAY while it exists */
    CUDA_ARRAY3D_DESCRIPTOR desc; /* as created (Depth 0 for 1D and 2D) */
    size_t size;                  /* footprint in bytes */
    int ordinal;                  /* device charged */
    struct qsim_ctx *ctx;         /* context it was made in */
    void *mem;                    /* its memory (owned unless a mipmap level); NULL when deferred */
    struct qsim_mipmap *parent;   /* the mipmapped array it is a level of, or NULL */
    struct qsim_array *next;      /* qsim_g.arrays */
};

struct qsim_mipmap {
    uint32_t magic;               /* QSIM_MAGIC_MIPMAP while it exists */
    CUDA_ARRAY3D_DESCRIPTOR desc; /* level 0 */
    unsigned levels;
    size_t size; /* all levels */
    int ordinal;
    struct qsim_ctx *ctx;
    void *mem;                 /* owned: every level, one after another; NULL when deferred */
    struct qsim_array **level; /* owned array of level handles, made on first use */
    struct qsim_mipmap *next;  /* qsim_g.mipmaps */
};

/* Bytes of one element of format f with n channels; 0 when not simulated. */
static size_t element_bytes(CUarray_format f, unsigned n)
{
    size_t b;
    switch (f) {
    case CU_AD_FORMAT_UNSIGNED_INT8:
    case CU_AD_FORMAT_SIGNED_INT8:
        b = 1;
        break;
    case CU_AD_FORMAT_UNSIGNED_INT16:
    case CU_AD_FORMAT_SIGNED_INT16:
    case CU_AD_FORMAT_HALF:
        b = 2;
        break;
    case CU_AD_FORMAT_UNSIGNED_INT32:
    case CU_AD_FORMAT_SIGNED_INT32:
    case CU_AD_FORMAT_FLOAT:
        b = 4;
        break;
    default:
        return 0;
    }
    return n == 1 || n == 2 || n == 4 ? b * n : 0;
}

static size_t footprint(const CUDA_ARRAY3D_DESCRIPTOR *d)
{
    size_t row = qsim_round_up(d->Width * element_bytes(d->Format, d->NumChannels), ROW_ALIGN);
    size_t rows = (d->Height ? d->Height : 1) * (d->Depth ? d->Depth : 1);
    return qsim_round_up(row * rows, ARRAY_ALIGN);
}

/* CUDA_SUCCESS when d describes an array the simulator makes. */
static CUresult check(const CUDA_ARRAY3D_DESCRIPTOR *d)
{
    if (!d || d->Width == 0 || (d->Flags & ~(unsigned)KNOWN_FLAGS))
        return CUDA_ERROR_INVALID_VALUE;
    if (d->NumChannels != 1 && d->NumChannels != 2 && d->NumChannels != 4)
        return CUDA_ERROR_INVALID_VALUE;
    if (!element_bytes(d->Format, d->NumChannels))
        return CUDA_ERROR_NOT_SUPPORTED; /* video and compressed formats */
    if (d->Width > 131072 || d->Height > 65536 || d->Depth > 16384 ||
        (d->Height == 0 && d->Depth > 0 && !(d->Flags & CUDA_ARRAY3D_LAYERED)))
        return CUDA_ERROR_INVALID_VALUE;
    if ((d->Flags & CUDA_ARRAY3D_CUBEMAP) && (d->Width != d->Height || d->Depth % 6))
        return CUDA_ERROR_INVALID_VALUE;
    return CUDA_SUCCESS;
}

static bool deferred(const CUDA_ARRAY3D_DESCRIPTOR *d)
{
    return (d->Flags & CUDA_ARRAY3D_DEFERRED_MAPPING) != 0;
}

/* Charges and maps size bytes for the current context's device; nothing for an array
 * described by d whose mapping is deferred (*mem is then NULL). */
static CUresult take(const CUDA_ARRAY3D_DESCRIPTOR *d, size_t size, struct qsim_ctx **ctx,
                     void **mem)
{
    CUresult rc = qsim_ctx_get(ctx);
    *mem = NULL;
    if (rc != CUDA_SUCCESS || deferred(d))
        return rc;
    if ((rc = qsim_mem_charge((*ctx)->ordinal, size)) != CUDA_SUCCESS)
        return rc;
    if (!(*mem = qsim_mem_map(size))) {
        qsim_mem_uncharge((*ctx)->ordinal, size);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    return CUDA_SUCCESS;
}

/* Gives back what take() took. */
static void give_back(int ordinal, void *mem, size_t size)
{
    if (mem) {
        munmap(mem, size);
        qsim_mem_uncharge(ordinal, size);
    }
}

static void array_free_locked(struct qsim_array *a)
{
    a->magic = 0;
    if (!a->parent)
        give_back(a->ordinal, a->mem, a->size);
}

static void mipmap_free_locked(struct qsim_mipmap *m)
{
    m->magic = 0;
    for (unsigned l = 0; m->level && l < m->levels; l++)
        if (m->level[l])
            m->level[l]->magic = 0;
    give_back(m->ordinal, m->mem, m->size);
}

void qsim_array_drop_ctx_locked(struct qsim_ctx *ctx)
{
    for (struct qsim_array *a = qsim_g.arrays; a; a = a->next)
        if (a->magic == QSIM_MAGIC_ARRAY && a->ctx == ctx && !a->parent)
            array_free_locked(a);
    for (struct qsim_mipmap *m = qsim_g.mipmaps; m; m = m->next)
        if (m->magic == QSIM_MAGIC_MIPMAP && m->ctx == ctx)
            mipmap_free_locked(m);
}

/* A new array object on qsim_g.arrays, or NULL. Caller holds qsim_g.lock. */
static struct qsim_array *array_object_locked(void)
{
    struct qsim_array *a = calloc(1, sizeof *a);
    if (a) {
        a->next = qsim_g.arrays;
        qsim_g.arrays = a;
    }
    return a;
}

static struct qsim_array *array_of(CUarray h)
{
    struct qsim_array *a = (struct qsim_array *)h;
    return a && a->magic == QSIM_MAGIC_ARRAY ? a : NULL;
}

/* ---- arrays ------------------------------------------------------------------------ */

static CUresult array_create(CUarray *out, const CUDA_ARRAY3D_DESCRIPTOR *d)
{
    if (!out)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = check(d);
    if (rc != CUDA_SUCCESS)
        return rc;
    size_t size = footprint(d);
    struct qsim_ctx *ctx;
    void *mem;
    if ((rc = take(d, size, &ctx, &mem)) != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_array *a = array_object_locked();
    if (a) {
        a->desc = *d;
        a->size = size;
        a->ordinal = ctx->ordinal;
        a->ctx = ctx;
        a->mem = mem;
        a->magic = QSIM_MAGIC_ARRAY;
    }
    pthread_mutex_unlock(&qsim_g.lock);
    if (!a) {
        give_back(ctx->ordinal, mem, size);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    *out = (CUarray)a;
    return CUDA_SUCCESS;
}

static CUresult array_create_2d(CUarray *out, const CUDA_ARRAY_DESCRIPTOR *d)
{
    if (!d)
        return CUDA_ERROR_INVALID_VALUE;
    CUDA_ARRAY3D_DESCRIPTOR d3 = {.Width = d->Width,
                                  .Height = d->Height,
                                  .Depth = 0,
                                  .Format = d->Format,
                                  .NumChannels = d->NumChannels};
    return array_create(out, &d3);
}

QSIM_API CUresult cuArrayCreate_v2(CUarray *pHandle, const CUDA_ARRAY_DESCRIPTOR *pAllocateArray)
{
    QSIM_GUARDED(array_create_2d(pHandle, pAllocateArray));
}

QSIM_API CUresult cuArray3DCreate_v2(CUarray *pHandle,
                                     const CUDA_ARRAY3D_DESCRIPTOR *pAllocateArray)
{
    QSIM_GUARDED(array_create(pHandle, pAllocateArray));
}

static CUresult array_destroy(CUarray h)
{
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_array *a = array_of(h);
    CUresult rc = !a          ? CUDA_ERROR_INVALID_HANDLE
                  : a->parent ? CUDA_ERROR_INVALID_VALUE /* a level of a mipmap */
                              : CUDA_SUCCESS;
    if (rc == CUDA_SUCCESS)
        array_free_locked(a);
    pthread_mutex_unlock(&qsim_g.lock);
    return rc;
}

QSIM_API CUresult cuArrayDestroy(CUarray hArray)
{
    QSIM_GUARDED(array_destroy(hArray));
}

static CUresult array_descriptor(CUDA_ARRAY_DESCRIPTOR *d2, CUDA_ARRAY3D_DESCRIPTOR *d3, CUarray h)
{
    if (!d2 && !d3)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_array *a = array_of(h);
    CUresult rc = a ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
    if (a && d3) {
        *d3 = a->desc;
    } else if (a && a->desc.Depth) {
        rc = CUDA_ERROR_INVALID_VALUE; /* a 3D array has no 2D descriptor */
    } else if (a) {
        d2->Width = a->desc.Width;
        d2->Height = a->desc.Height;
        d2->Format = a->desc.Format;
        d2->NumChannels = a->desc.NumChannels;
    }
    pthread_mutex_unlock(&qsim_g.lock);
    return rc;
}

QSIM_API CUresult cuArrayGetDescriptor_v2(CUDA_ARRAY_DESCRIPTOR *pArrayDescriptor, CUarray hArray)
{
    QSIM_GUARDED(array_descriptor(pArrayDescriptor, NULL, hArray));
}

QSIM_API CUresult cuArray3DGetDescriptor_v2(CUDA_ARRAY3D_DESCRIPTOR *pArrayDescriptor,
                                            CUarray hArray)
{
    QSIM_GUARDED(array_descriptor(NULL, pArrayDescriptor, hArray));
}

static CUresult array_requirements(CUDA_ARRAY_MEMORY_REQUIREMENTS *req, CUarray h, CUdevice dev)
{
    if (!req)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = qsim_check_device(dev);
    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_array *a = array_of(h);
    rc = !a                    ? CUDA_ERROR_INVALID_HANDLE
         : !deferred(&a->desc) ? CUDA_ERROR_INVALID_VALUE /* only deferred-mapping arrays */
                               : CUDA_SUCCESS;
    if (rc == CUDA_SUCCESS)
        *req = (CUDA_ARRAY_MEMORY_REQUIREMENTS){.size = a->size, .alignment = ARRAY_ALIGN};
    pthread_mutex_unlock(&qsim_g.lock);
    return rc;
}

QSIM_API CUresult cuArrayGetMemoryRequirements(CUDA_ARRAY_MEMORY_REQUIREMENTS *memoryRequirements,
                                               CUarray array, CUdevice device)
{
    QSIM_GUARDED(array_requirements(memoryRequirements, array, device));
}

/* ---- mipmapped arrays -------------------------------------------------------------- */

/* Level l of a mipmapped array whose level 0 is d: each extent halves, at least 1
 * (the layer count of a layered array does not). */
static CUDA_ARRAY3D_DESCRIPTOR level_desc(const CUDA_ARRAY3D_DESCRIPTOR *d, unsigned l)
{
    CUDA_ARRAY3D_DESCRIPTOR e = *d;
    e.Width = d->Width >> l ? d->Width >> l : 1;
    if (d->Height)
        e.Height = d->Height >> l ? d->Height >> l : 1;
    if (d->Depth && !(d->Flags & (CUDA_ARRAY3D_LAYERED | CUDA_ARRAY3D_CUBEMAP)))
        e.Depth = d->Depth >> l ? d->Depth >> l : 1;
    return e;
}

static struct qsim_mipmap *mipmap_of(CUmipmappedArray h)
{
    struct qsim_mipmap *m = (struct qsim_mipmap *)h;
    return m && m->magic == QSIM_MAGIC_MIPMAP ? m : NULL;
}

static CUresult mipmap_create(CUmipmappedArray *out, const CUDA_ARRAY3D_DESCRIPTOR *d,
                              unsigned levels)
{
    if (!out)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = check(d);
    if (rc != CUDA_SUCCESS)
        return rc;
    size_t largest = d->Width > d->Height ? d->Width : d->Height;
    if (!(d->Flags & CUDA_ARRAY3D_LAYERED) && d->Depth > largest)
        largest = d->Depth;
    unsigned max_levels = 1;
    while (largest >> max_levels)
        max_levels++;
    if (levels == 0 || levels > max_levels)
        return CUDA_ERROR_INVALID_VALUE;
    size_t size = 0;
    for (unsigned l = 0; l < levels; l++) {
        CUDA_ARRAY3D_DESCRIPTOR e = level_desc(d, l);
        size += footprint(&e);
    }
    struct qsim_ctx *ctx;
    void *mem;
    if ((rc = take(d, size, &ctx, &mem)) != CUDA_SUCCESS)
        return rc;
    struct qsim_mipmap *m = calloc(1, sizeof *m);
    struct qsim_array **level = calloc(levels, sizeof *level);
    if (!m || !level) {
        free(m);
        free(level);
        give_back(ctx->ordinal, mem, size);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    m->desc = *d;
    m->levels = levels;
    m->size = size;
    m->ordinal = ctx->ordinal;
    m->ctx = ctx;
    m->mem = mem;
    m->level = level;
    m->magic = QSIM_MAGIC_MIPMAP;
    pthread_mutex_lock(&qsim_g.lock);
    m->next = qsim_g.mipmaps;
    qsim_g.mipmaps = m;
    pthread_mutex_unlock(&qsim_g.lock);
    *out = (CUmipmappedArray)m;
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuMipmappedArrayCreate(CUmipmappedArray *pHandle,
                                         const CUDA_ARRAY3D_DESCRIPTOR *pMipmappedArrayDesc,
                                         unsigned int numMipmapLevels)
{
    QSIM_GUARDED(mipmap_create(pHandle, pMipmappedArrayDesc, numMipmapLevels));
}

static CUresult mipmap_destroy(CUmipmappedArray h)
{
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_mipmap *m = mipmap_of(h);
    if (m)
        mipmap_free_locked(m);
    pthread_mutex_unlock(&qsim_g.lock);
    return m ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

QSIM_API CUresult cuMipmappedArrayDestroy(CUmipmappedArray hMipmappedArray)
{
    QSIM_GUARDED(mipmap_destroy(hMipmappedArray));
}

static CUresult mipmap_level(CUarray *out, CUmipmappedArray h, unsigned level)
{
    if (!out)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_mipmap *m = mipmap_of(h);
    CUresult rc = !m                   ? CUDA_ERROR_INVALID_HANDLE
                  : level >= m->levels ? CUDA_ERROR_INVALID_VALUE
                                       : CUDA_SUCCESS;
    if (rc == CUDA_SUCCESS && !m->level[level]) {
        struct qsim_array *a = array_object_locked();
        if (a) {
            size_t offset = 0;
            for (unsigned l = 0; l < level; l++) {
                CUDA_ARRAY3D_DESCRIPTOR e = level_desc(&m->desc, l);
                offset += footprint(&e);
            }
            a->desc = level_desc(&m->desc, level);
            a->size = footprint(&a->desc);
            a->ordinal = m->ordinal;
            a->ctx = m->ctx;
            a->mem = m->mem ? (char *)m->mem + offset : NULL;
            a->parent = m;
            a->magic = QSIM_MAGIC_ARRAY;
            m->level[level] = a;
        } else {
            rc = CUDA_ERROR_OUT_OF_MEMORY;
        }
    }
    if (rc == CUDA_SUCCESS)
        *out = (CUarray)m->level[level];
    pthread_mutex_unlock(&qsim_g.lock);
    return rc;
}

QSIM_API CUresult cuMipmappedArrayGetLevel(CUarray *pLevelArray, CUmipmappedArray hMipmappedArray,
                                           unsigned int level)
{
    QSIM_GUARDED(mipmap_level(pLevelArray, hMipmappedArray, level));
}

static CUresult mipmap_requirements(CUDA_ARRAY_MEMORY_REQUIREMENTS *req, CUmipmappedArray h,
                                    CUdevice dev)
{
    if (!req)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = qsim_check_device(dev);
    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_mipmap *m = mipmap_of(h);
    rc = !m                    ? CUDA_ERROR_INVALID_HANDLE
         : !deferred(&m->desc) ? CUDA_ERROR_INVALID_VALUE /* only deferred-mapping arrays */
                               : CUDA_SUCCESS;
    if (rc == CUDA_SUCCESS)
        *req = (CUDA_ARRAY_MEMORY_REQUIREMENTS){.size = m->size, .alignment = ARRAY_ALIGN};
    pthread_mutex_unlock(&qsim_g.lock);
    return rc;
}

QSIM_API CUresult cuMipmappedArrayGetMemoryRequirements(
    CUDA_ARRAY_MEMORY_REQUIREMENTS *memoryRequirements, CUmipmappedArray mipmap, CUdevice device)
{
    QSIM_GUARDED(mipmap_requirements(memoryRequirements, mipmap, device));
}
