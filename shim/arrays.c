/* arrays.c - CUDA arrays and mipmapped arrays: charged a conservative estimate of what
 * they hold, from their descriptor.
 *
 * The driver does not say what an ordinary array holds: cuArrayGetMemoryRequirements and
 * cuMipmappedArrayGetMemoryRequirements answer only for arrays made with
 * CUDA_ARRAY3D_DEFERRED_MAPPING. So each hook charges, before the driver allocates (a
 * race for the last bytes of the quota is decided first), an upper bound of the layout:
 * rows padded to 512 bytes, times rows and layers, plus 64 KiB (arrays are allocated in
 * pages of at most that); a mipmapped array the sum over its levels. The charge errs on
 * the high side and stays until the array is destroyed. Sparse and deferred-mapping
 * arrays hold no memory of their own (their backing comes from cuMemCreate, charged
 * there) and are not charged. Threads: any. */
#include <errno.h>

#include "shim/errors.h"
#include "shim/init.h"
#include "shim/mem.h"
#include "shim/real.h"

/* Bytes per element of one channel; 16 (an upper bound) for packed, block-compressed and
 * video formats, whose channel count the format itself implies. */
static uint64_t format_bytes(CUarray_format f, unsigned int channels)
{
    uint64_t c = channels ? channels : 1;
    switch (f) {
    case CU_AD_FORMAT_UNSIGNED_INT8:
    case CU_AD_FORMAT_SIGNED_INT8:
        return c;
    case CU_AD_FORMAT_UNSIGNED_INT16:
    case CU_AD_FORMAT_SIGNED_INT16:
    case CU_AD_FORMAT_HALF:
        return 2 * c;
    case CU_AD_FORMAT_UNSIGNED_INT32:
    case CU_AD_FORMAT_SIGNED_INT32:
    case CU_AD_FORMAT_FLOAT:
        return 4 * c;
    default:
        return 16;
    }
}

#define ROW_ALIGN 512u          /* rows are padded to at least this on GPUs */
#define ARRAY_SLACK (64u << 10) /* allocation granularity of arrays, at most */

/* An upper bound of what an array of w x h x d texels of bpp bytes holds; 0 on overflow
 * (the caller refuses it). */
static uint64_t estimate(uint64_t w, uint64_t h, uint64_t d, uint64_t bpp)
{
    uint64_t row, bytes;
    if (__builtin_mul_overflow(w, bpp, &row))
        return 0;
    row = (row + ROW_ALIGN - 1) / ROW_ALIGN * ROW_ALIGN;
    if (__builtin_mul_overflow(row, h ? h : 1, &bytes) ||
        __builtin_mul_overflow(bytes, d ? d : 1, &bytes) ||
        __builtin_add_overflow(bytes, ARRAY_SLACK, &bytes))
        return 0;
    return bytes;
}

/* Depth as the driver lays it out: layers, or six faces per cubemap (layer). */
static uint64_t depth_of(uint64_t depth, unsigned int flags)
{
    if (flags & CUDA_ARRAY3D_CUBEMAP)
        return (flags & CUDA_ARRAY3D_LAYERED) ? depth : 6;
    return depth;
}

static bool holds_no_memory(unsigned int flags)
{
    return (flags & (CUDA_ARRAY3D_SPARSE | CUDA_ARRAY3D_DEFERRED_MAPPING)) != 0;
}

/* Common body of the array-creating hooks: create() makes the array into *handle. */
#define CREATE_CHARGED(kind, est, create, handle)                                                  \
    do {                                                                                           \
        uint64_t est_ = (est);                                                                     \
        if (est_ == 0)                                                                             \
            return CUDA_ERROR_OUT_OF_MEMORY;                                                       \
        int rc_ = qs_mem_charge(est_);                                                             \
        if (rc_ < 0)                                                                               \
            return qs_cu_error(rc_);                                                               \
        CUresult r_ = (create);                                                                    \
        if (r_ != CUDA_SUCCESS) {                                                                  \
            qs_mem_uncharge(est_);                                                                 \
            return r_;                                                                             \
        }                                                                                          \
        qs_mem_track(kind, (uint64_t)(uintptr_t)(handle), est_, true);                             \
        return CUDA_SUCCESS;                                                                       \
    } while (0)

/* One hook per array-creating variant: desc_t is its descriptor type; depth and skip
 * (the array holds no memory) are read from its descriptor d. */
#define ARRAY_HOOK(name, desc_t, depth, skip)                                                      \
    QS_EXPORT CUresult name(CUarray *pHandle, const desc_t *d)                                     \
    {                                                                                              \
        QS_PFN_##name real = QS_REAL(name);                                                        \
        if (!real)                                                                                 \
            return qs_cu_error(-ENOSYS);                                                           \
        if (!qs_managed() || !pHandle || !d || (skip))                                             \
            return real(pHandle, d);                                                               \
        qs_init();                                                                                 \
        CREATE_CHARGED(                                                                            \
            QS_ALLOC_ARRAY,                                                                        \
            estimate(d->Width, d->Height, (depth), format_bytes(d->Format, d->NumChannels)),       \
            real(pHandle, d), *pHandle);                                                           \
    }

ARRAY_HOOK(cuArrayCreate_v2, CUDA_ARRAY_DESCRIPTOR, 1, false)
ARRAY_HOOK(cuArrayCreate, CUDA_ARRAY_DESCRIPTOR_v1, 1, false)
ARRAY_HOOK(cuArray3DCreate_v2, CUDA_ARRAY3D_DESCRIPTOR, depth_of(d->Depth, d->Flags),
           holds_no_memory(d->Flags))
ARRAY_HOOK(cuArray3DCreate, CUDA_ARRAY3D_DESCRIPTOR_v1, depth_of(d->Depth, d->Flags),
           holds_no_memory(d->Flags))

/* A mipmapped array's levels, each half the last in every dimension (at least 1). */
static uint64_t mip_estimate(const CUDA_ARRAY3D_DESCRIPTOR *d, unsigned int levels)
{
    uint64_t w = d->Width, h = d->Height, dd = depth_of(d->Depth, d->Flags), total = 0;
    uint64_t bpp = format_bytes(d->Format, d->NumChannels);
    bool layered = (d->Flags & (CUDA_ARRAY3D_LAYERED | CUDA_ARRAY3D_CUBEMAP)) != 0;
    for (unsigned int l = 0; l < (levels ? levels : 1); l++) {
        uint64_t e = estimate(w, h, dd, bpp);
        if (e == 0 || __builtin_add_overflow(total, e, &total))
            return 0;
        w = w > 1 ? w / 2 : 1;
        h = h > 1 ? h / 2 : h;
        if (!layered)
            dd = dd > 1 ? dd / 2 : dd;
    }
    return total;
}

QS_EXPORT CUresult cuMipmappedArrayCreate(CUmipmappedArray *pHandle,
                                          const CUDA_ARRAY3D_DESCRIPTOR *d,
                                          unsigned int numMipmapLevels)
{
    QS_PFN_cuMipmappedArrayCreate real = QS_REAL(cuMipmappedArrayCreate);
    if (!real)
        return qs_cu_error(-ENOSYS);
    if (!qs_managed() || !pHandle || !d || holds_no_memory(d->Flags))
        return real(pHandle, d, numMipmapLevels);
    qs_init();
    CREATE_CHARGED(QS_ALLOC_MIPMAP, mip_estimate(d, numMipmapLevels),
                   real(pHandle, d, numMipmapLevels), *pHandle);
}

/* One hook per destroying entry point: kind is what its handle was tracked as. */
#define DESTROY_HOOK(name, handle_t, kind)                                                         \
    QS_EXPORT CUresult name(handle_t h)                                                            \
    {                                                                                              \
        QS_PFN_##name real = QS_REAL(name);                                                        \
        if (!real)                                                                                 \
            return qs_cu_error(-ENOSYS);                                                           \
        if (!qs_managed() || !h)                                                                   \
            return real(h);                                                                        \
        struct qs_freeing f;                                                                       \
        qs_mem_free_begin(kind, (uint64_t)(uintptr_t)h, &f);                                       \
        return qs_mem_free_end(real(h), &f);                                                       \
    }

DESTROY_HOOK(cuArrayDestroy, CUarray, QS_ALLOC_ARRAY)
DESTROY_HOOK(cuMipmappedArrayDestroy, CUmipmappedArray, QS_ALLOC_MIPMAP)
