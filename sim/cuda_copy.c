/* cuda_copy.c - the memcpy and memset families, synchronous and asynchronous, with
 * their per-thread-default-stream variants. Data moves when the operation is issued (in
 * stream order with every other operation, since all run in order); the device is then
 * busy for the modelled time (qsim_copy_ns).
 * Threads: any; see cuda_stream.c. */
#include "sim/cuda_stream.h"

#include "sim/cuda_ctx.h"
#include "sim/cuda_mem.h"

/* Pointer p names device memory (or memory mapped for the device) for n bytes. */
static bool is_device(uintptr_t p, size_t n)
{
    int k = qsim_mem_kind_of(p, n);
    return k && k != QSIM_MEM_HOST;
}

static bool is_known(uintptr_t p, size_t n)
{
    return qsim_mem_kind_of(p, n) != 0;
}

/* The same for memory written: not mapped read-only. */
static bool is_device_dest(uintptr_t p, size_t n)
{
    int k = qsim_mem_dest_kind_of(p, n);
    return k && k != QSIM_MEM_HOST;
}

/* Issues w on the stream an API call names, and waits for it when sync. */
static CUresult issue(CUstream h, bool per_thread, bool sync, const struct qsim_work *w)
{
    struct qsim_stream *st;
    CUresult rc = qsim_stream_resolve(h, per_thread, &st);
    if (rc != CUDA_SUCCESS)
        return rc;
    uint64_t seq = 0;
    rc = qsim_work_issue(st, w, &seq);
    if (rc == CUDA_SUCCESS && sync)
        rc = qsim_stream_wait(st, seq);
    return rc;
}

/* A 1D copy of n bytes in direction dir; the caller has checked the pointers. */
static CUresult copy(CUstream h, bool per_thread, bool sync, void *dst, const void *src, size_t n,
                     int dir)
{
    if (n == 0)
        return CUDA_SUCCESS;
    struct qsim_work w = {.type = QSIM_WORK_COPY,
                          .dst = dst,
                          .src = src,
                          .dpitch = n,
                          .spitch = n,
                          .width = n,
                          .height = 1,
                          .dir = dir};
    return issue(h, per_thread, sync, &w);
}

/* ---- host to device, device to host, device to device ------------------------------ */

static CUresult htod(CUdeviceptr dst, const void *src, size_t n, CUstream h, bool pt, bool sync)
{
    if (n && (!src || !is_device_dest((uintptr_t)dst, n)))
        return CUDA_ERROR_INVALID_VALUE;
    return copy(h, pt, sync, (void *)dst, src, n, QSIM_HTOD);
}

static CUresult dtoh(void *dst, CUdeviceptr src, size_t n, CUstream h, bool pt, bool sync)
{
    if (n && (!dst || !is_device((uintptr_t)src, n)))
        return CUDA_ERROR_INVALID_VALUE;
    return copy(h, pt, sync, dst, (const void *)src, n, QSIM_DTOH);
}

static CUresult dtod(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream h, bool pt, bool sync)
{
    if (n && (!is_device_dest((uintptr_t)dst, n) || !is_device((uintptr_t)src, n)))
        return CUDA_ERROR_INVALID_VALUE;
    return copy(h, pt, sync, (void *)dst, (const void *)src, n, QSIM_DTOD);
}

/* Unified addressing: the direction follows from what the pointers are. */
static CUresult any(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream h, bool pt, bool sync)
{
    if (n && (!dst || !src))
        return CUDA_ERROR_INVALID_VALUE;
    bool dd = n && is_device((uintptr_t)dst, n), sd = n && is_device((uintptr_t)src, n);
    if (dd && !is_device_dest((uintptr_t)dst, n))
        return CUDA_ERROR_INVALID_VALUE; /* mapped read-only */
    int dir = dd ? (sd ? QSIM_DTOD : QSIM_HTOD) : (sd ? QSIM_DTOH : QSIM_HTOH);
    return copy(h, pt, sync, (void *)dst, (const void *)src, n, dir);
}

QSIM_API CUresult cuMemcpyHtoD_v2(CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount)
{
    QSIM_GUARDED(htod(dstDevice, srcHost, ByteCount, NULL, false, true));
}

QSIM_API CUresult cuMemcpyHtoD_v2_ptds(CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount)
{
    QSIM_GUARDED(htod(dstDevice, srcHost, ByteCount, NULL, true, true));
}

QSIM_API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount,
                                       CUstream hStream)
{
    QSIM_GUARDED(htod(dstDevice, srcHost, ByteCount, hStream, false, false));
}

QSIM_API CUresult cuMemcpyHtoDAsync_v2_ptsz(CUdeviceptr dstDevice, const void *srcHost,
                                            size_t ByteCount, CUstream hStream)
{
    QSIM_GUARDED(htod(dstDevice, srcHost, ByteCount, hStream, true, false));
}

QSIM_API CUresult cuMemcpyDtoH_v2(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount)
{
    QSIM_GUARDED(dtoh(dstHost, srcDevice, ByteCount, NULL, false, true));
}

QSIM_API CUresult cuMemcpyDtoH_v2_ptds(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount)
{
    QSIM_GUARDED(dtoh(dstHost, srcDevice, ByteCount, NULL, true, true));
}

QSIM_API CUresult cuMemcpyDtoHAsync_v2(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount,
                                       CUstream hStream)
{
    QSIM_GUARDED(dtoh(dstHost, srcDevice, ByteCount, hStream, false, false));
}

QSIM_API CUresult cuMemcpyDtoHAsync_v2_ptsz(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount,
                                            CUstream hStream)
{
    QSIM_GUARDED(dtoh(dstHost, srcDevice, ByteCount, hStream, true, false));
}

/* A device-to-device copy is asynchronous to the host even in its "synchronous" form,
 * as the real driver documents; it is queued on the default stream. */
QSIM_API CUresult cuMemcpyDtoD_v2(CUdeviceptr dstDevice, CUdeviceptr srcDevice, size_t ByteCount)
{
    QSIM_GUARDED(dtod(dstDevice, srcDevice, ByteCount, NULL, false, false));
}

QSIM_API CUresult cuMemcpyDtoD_v2_ptds(CUdeviceptr dstDevice, CUdeviceptr srcDevice,
                                       size_t ByteCount)
{
    QSIM_GUARDED(dtod(dstDevice, srcDevice, ByteCount, NULL, true, false));
}

QSIM_API CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dstDevice, CUdeviceptr srcDevice,
                                       size_t ByteCount, CUstream hStream)
{
    QSIM_GUARDED(dtod(dstDevice, srcDevice, ByteCount, hStream, false, false));
}

QSIM_API CUresult cuMemcpyDtoDAsync_v2_ptsz(CUdeviceptr dstDevice, CUdeviceptr srcDevice,
                                            size_t ByteCount, CUstream hStream)
{
    QSIM_GUARDED(dtod(dstDevice, srcDevice, ByteCount, hStream, true, false));
}

QSIM_API CUresult cuMemcpy(CUdeviceptr dst, CUdeviceptr src, size_t ByteCount)
{
    QSIM_GUARDED(any(dst, src, ByteCount, NULL, false, true));
}

QSIM_API CUresult cuMemcpy_ptds(CUdeviceptr dst, CUdeviceptr src, size_t ByteCount)
{
    QSIM_GUARDED(any(dst, src, ByteCount, NULL, true, true));
}

QSIM_API CUresult cuMemcpyAsync(CUdeviceptr dst, CUdeviceptr src, size_t ByteCount,
                                CUstream hStream)
{
    QSIM_GUARDED(any(dst, src, ByteCount, hStream, false, false));
}

QSIM_API CUresult cuMemcpyAsync_ptsz(CUdeviceptr dst, CUdeviceptr src, size_t ByteCount,
                                     CUstream hStream)
{
    QSIM_GUARDED(any(dst, src, ByteCount, hStream, true, false));
}

/* Peer copies: with one address space, a copy between contexts is a plain copy. */
static CUresult peer(CUdeviceptr dst, CUcontext dctx, CUdeviceptr src, CUcontext sctx, size_t n,
                     CUstream h, bool pt, bool sync)
{
    if (!qsim_ctx_of(dctx) || !qsim_ctx_of(sctx) || !dctx || !sctx)
        return CUDA_ERROR_INVALID_CONTEXT;
    return dtod(dst, src, n, h, pt, sync);
}

QSIM_API CUresult cuMemcpyPeer(CUdeviceptr dstDevice, CUcontext dstContext, CUdeviceptr srcDevice,
                               CUcontext srcContext, size_t ByteCount)
{
    QSIM_GUARDED(peer(dstDevice, dstContext, srcDevice, srcContext, ByteCount, NULL, false, true));
}

QSIM_API CUresult cuMemcpyPeer_ptds(CUdeviceptr dstDevice, CUcontext dstContext,
                                    CUdeviceptr srcDevice, CUcontext srcContext, size_t ByteCount)
{
    QSIM_GUARDED(peer(dstDevice, dstContext, srcDevice, srcContext, ByteCount, NULL, true, true));
}

QSIM_API CUresult cuMemcpyPeerAsync(CUdeviceptr dstDevice, CUcontext dstContext,
                                    CUdeviceptr srcDevice, CUcontext srcContext, size_t ByteCount,
                                    CUstream hStream)
{
    QSIM_GUARDED(
        peer(dstDevice, dstContext, srcDevice, srcContext, ByteCount, hStream, false, false));
}

QSIM_API CUresult cuMemcpyPeerAsync_ptsz(CUdeviceptr dstDevice, CUcontext dstContext,
                                         CUdeviceptr srcDevice, CUcontext srcContext,
                                         size_t ByteCount, CUstream hStream)
{
    QSIM_GUARDED(
        peer(dstDevice, dstContext, srcDevice, srcContext, ByteCount, hStream, true, false));
}

/* ---- 2D copies --------------------------------------------------------------------- */

/* The first byte one side of a 2D copy names, and whether it is device memory.
 * CUDA_ERROR_NOT_SUPPORTED for arrays (their layout is opaque; copy through linear
 * memory instead). */
static CUresult side(CUmemorytype type, const void *host, CUdeviceptr dev, size_t x, size_t y,
                     size_t pitch, char **out, bool *device)
{
    switch (type) {
    case CU_MEMORYTYPE_HOST:
        if (!host)
            return CUDA_ERROR_INVALID_VALUE;
        *out = (char *)host + y * pitch + x;
        *device = false;
        return CUDA_SUCCESS;
    case CU_MEMORYTYPE_DEVICE:
    case CU_MEMORYTYPE_UNIFIED:
        if (!dev)
            return CUDA_ERROR_INVALID_VALUE;
        *out = (char *)dev + y * pitch + x;
        *device = type == CU_MEMORYTYPE_DEVICE || is_device((uintptr_t)*out, 1);
        return CUDA_SUCCESS;
    case CU_MEMORYTYPE_ARRAY:
        return CUDA_ERROR_NOT_SUPPORTED;
    default:
        return CUDA_ERROR_INVALID_VALUE;
    }
}

static CUresult copy2d(const CUDA_MEMCPY2D *c, CUstream h, bool pt, bool sync)
{
    if (!c)
        return CUDA_ERROR_INVALID_VALUE;
    if (c->WidthInBytes == 0 || c->Height == 0)
        return CUDA_SUCCESS;
    if (c->Height > 1 && (c->srcPitch < c->WidthInBytes || c->dstPitch < c->WidthInBytes))
        return CUDA_ERROR_INVALID_VALUE;
    char *s, *d;
    bool sdev, ddev;
    CUresult rc = side(c->srcMemoryType, c->srcHost, c->srcDevice, c->srcXInBytes, c->srcY,
                       c->srcPitch, &s, &sdev);
    if (rc == CUDA_SUCCESS)
        rc = side(c->dstMemoryType, c->dstHost, c->dstDevice, c->dstXInBytes, c->dstY, c->dstPitch,
                  &d, &ddev);
    if (rc != CUDA_SUCCESS)
        return rc;
    size_t span_s = (c->Height - 1) * c->srcPitch + c->WidthInBytes;
    size_t span_d = (c->Height - 1) * c->dstPitch + c->WidthInBytes;
    if ((sdev && !is_known((uintptr_t)s, span_s)) ||
        (ddev && !qsim_mem_dest_kind_of((uintptr_t)d, span_d)))
        return CUDA_ERROR_INVALID_VALUE;
    struct qsim_work w = {
        .type = QSIM_WORK_COPY,
        .dst = d,
        .src = s,
        .dpitch = c->dstPitch,
        .spitch = c->srcPitch,
        .width = c->WidthInBytes,
        .height = c->Height,
        .dir = ddev ? (sdev ? QSIM_DTOD : QSIM_HTOD) : (sdev ? QSIM_DTOH : QSIM_HTOH),
    };
    return issue(h, pt, sync, &w);
}

QSIM_API CUresult cuMemcpy2D_v2(const CUDA_MEMCPY2D *pCopy)
{
    QSIM_GUARDED(copy2d(pCopy, NULL, false, true));
}

QSIM_API CUresult cuMemcpy2D_v2_ptds(const CUDA_MEMCPY2D *pCopy)
{
    QSIM_GUARDED(copy2d(pCopy, NULL, true, true));
}

QSIM_API CUresult cuMemcpy2DUnaligned_v2(const CUDA_MEMCPY2D *pCopy)
{
    QSIM_GUARDED(copy2d(pCopy, NULL, false, true));
}

QSIM_API CUresult cuMemcpy2DUnaligned_v2_ptds(const CUDA_MEMCPY2D *pCopy)
{
    QSIM_GUARDED(copy2d(pCopy, NULL, true, true));
}

QSIM_API CUresult cuMemcpy2DAsync_v2(const CUDA_MEMCPY2D *pCopy, CUstream hStream)
{
    QSIM_GUARDED(copy2d(pCopy, hStream, false, false));
}

QSIM_API CUresult cuMemcpy2DAsync_v2_ptsz(const CUDA_MEMCPY2D *pCopy, CUstream hStream)
{
    QSIM_GUARDED(copy2d(pCopy, hStream, true, false));
}

/* ---- memsets ----------------------------------------------------------------------- */

/* Fills height rows of width elements of elem bytes, rows pitch bytes apart. Memsets of
 * device memory are asynchronous to the host in every form, as documented. */
static CUresult set(CUdeviceptr dst, size_t pitch, uint32_t value, int elem, size_t width,
                    size_t height, CUstream h, bool pt)
{
    if (width == 0 || height == 0)
        return CUDA_SUCCESS;
    size_t row = width * (size_t)elem;
    if (height > 1 && pitch < row)
        return CUDA_ERROR_INVALID_VALUE;
    if ((uintptr_t)dst % (uintptr_t)elem || (height > 1 && pitch % (size_t)elem))
        return CUDA_ERROR_INVALID_VALUE; /* misaligned for the element size */
    if (!qsim_mem_dest_kind_of((uintptr_t)dst, (height - 1) * pitch + row))
        return CUDA_ERROR_INVALID_VALUE;
    struct qsim_work w = {.type = QSIM_WORK_SET,
                          .dst = (void *)dst,
                          .dpitch = pitch,
                          .width = width,
                          .height = height,
                          .value = value,
                          .elem = elem};
    return issue(h, pt, false, &w);
}

QSIM_API CUresult cuMemsetD8_v2(CUdeviceptr dstDevice, unsigned char uc, size_t N)
{
    QSIM_GUARDED(set(dstDevice, N, uc, 1, N, 1, NULL, false));
}

QSIM_API CUresult cuMemsetD8_v2_ptds(CUdeviceptr dstDevice, unsigned char uc, size_t N)
{
    QSIM_GUARDED(set(dstDevice, N, uc, 1, N, 1, NULL, true));
}

QSIM_API CUresult cuMemsetD16_v2(CUdeviceptr dstDevice, unsigned short us, size_t N)
{
    QSIM_GUARDED(set(dstDevice, 2 * N, us, 2, N, 1, NULL, false));
}

QSIM_API CUresult cuMemsetD16_v2_ptds(CUdeviceptr dstDevice, unsigned short us, size_t N)
{
    QSIM_GUARDED(set(dstDevice, 2 * N, us, 2, N, 1, NULL, true));
}

QSIM_API CUresult cuMemsetD32_v2(CUdeviceptr dstDevice, unsigned int ui, size_t N)
{
    QSIM_GUARDED(set(dstDevice, 4 * N, ui, 4, N, 1, NULL, false));
}

QSIM_API CUresult cuMemsetD32_v2_ptds(CUdeviceptr dstDevice, unsigned int ui, size_t N)
{
    QSIM_GUARDED(set(dstDevice, 4 * N, ui, 4, N, 1, NULL, true));
}

QSIM_API CUresult cuMemsetD8Async(CUdeviceptr dstDevice, unsigned char uc, size_t N,
                                  CUstream hStream)
{
    QSIM_GUARDED(set(dstDevice, N, uc, 1, N, 1, hStream, false));
}

QSIM_API CUresult cuMemsetD8Async_ptsz(CUdeviceptr dstDevice, unsigned char uc, size_t N,
                                       CUstream hStream)
{
    QSIM_GUARDED(set(dstDevice, N, uc, 1, N, 1, hStream, true));
}

QSIM_API CUresult cuMemsetD16Async(CUdeviceptr dstDevice, unsigned short us, size_t N,
                                   CUstream hStream)
{
    QSIM_GUARDED(set(dstDevice, 2 * N, us, 2, N, 1, hStream, false));
}

QSIM_API CUresult cuMemsetD16Async_ptsz(CUdeviceptr dstDevice, unsigned short us, size_t N,
                                        CUstream hStream)
{
    QSIM_GUARDED(set(dstDevice, 2 * N, us, 2, N, 1, hStream, true));
}

QSIM_API CUresult cuMemsetD32Async(CUdeviceptr dstDevice, unsigned int ui, size_t N,
                                   CUstream hStream)
{
    QSIM_GUARDED(set(dstDevice, 4 * N, ui, 4, N, 1, hStream, false));
}

QSIM_API CUresult cuMemsetD32Async_ptsz(CUdeviceptr dstDevice, unsigned int ui, size_t N,
                                        CUstream hStream)
{
    QSIM_GUARDED(set(dstDevice, 4 * N, ui, 4, N, 1, hStream, true));
}

QSIM_API CUresult cuMemsetD2D8_v2(CUdeviceptr dstDevice, size_t dstPitch, unsigned char uc,
                                  size_t Width, size_t Height)
{
    QSIM_GUARDED(set(dstDevice, dstPitch, uc, 1, Width, Height, NULL, false));
}

QSIM_API CUresult cuMemsetD2D8_v2_ptds(CUdeviceptr dstDevice, size_t dstPitch, unsigned char uc,
                                       size_t Width, size_t Height)
{
    QSIM_GUARDED(set(dstDevice, dstPitch, uc, 1, Width, Height, NULL, true));
}

QSIM_API CUresult cuMemsetD2D16_v2(CUdeviceptr dstDevice, size_t dstPitch, unsigned short us,
                                   size_t Width, size_t Height)
{
    QSIM_GUARDED(set(dstDevice, dstPitch, us, 2, Width, Height, NULL, false));
}

QSIM_API CUresult cuMemsetD2D16_v2_ptds(CUdeviceptr dstDevice, size_t dstPitch, unsigned short us,
                                        size_t Width, size_t Height)
{
    QSIM_GUARDED(set(dstDevice, dstPitch, us, 2, Width, Height, NULL, true));
}

QSIM_API CUresult cuMemsetD2D32_v2(CUdeviceptr dstDevice, size_t dstPitch, unsigned int ui,
                                   size_t Width, size_t Height)
{
    QSIM_GUARDED(set(dstDevice, dstPitch, ui, 4, Width, Height, NULL, false));
}

QSIM_API CUresult cuMemsetD2D32_v2_ptds(CUdeviceptr dstDevice, size_t dstPitch, unsigned int ui,
                                        size_t Width, size_t Height)
{
    QSIM_GUARDED(set(dstDevice, dstPitch, ui, 4, Width, Height, NULL, true));
}

QSIM_API CUresult cuMemsetD2D8Async(CUdeviceptr dstDevice, size_t dstPitch, unsigned char uc,
                                    size_t Width, size_t Height, CUstream hStream)
{
    QSIM_GUARDED(set(dstDevice, dstPitch, uc, 1, Width, Height, hStream, false));
}

QSIM_API CUresult cuMemsetD2D8Async_ptsz(CUdeviceptr dstDevice, size_t dstPitch, unsigned char uc,
                                         size_t Width, size_t Height, CUstream hStream)
{
    QSIM_GUARDED(set(dstDevice, dstPitch, uc, 1, Width, Height, hStream, true));
}

QSIM_API CUresult cuMemsetD2D16Async(CUdeviceptr dstDevice, size_t dstPitch, unsigned short us,
                                     size_t Width, size_t Height, CUstream hStream)
{
    QSIM_GUARDED(set(dstDevice, dstPitch, us, 2, Width, Height, hStream, false));
}

QSIM_API CUresult cuMemsetD2D16Async_ptsz(CUdeviceptr dstDevice, size_t dstPitch, unsigned short us,
                                          size_t Width, size_t Height, CUstream hStream)
{
    QSIM_GUARDED(set(dstDevice, dstPitch, us, 2, Width, Height, hStream, true));
}

QSIM_API CUresult cuMemsetD2D32Async(CUdeviceptr dstDevice, size_t dstPitch, unsigned int ui,
                                     size_t Width, size_t Height, CUstream hStream)
{
    QSIM_GUARDED(set(dstDevice, dstPitch, ui, 4, Width, Height, hStream, false));
}

QSIM_API CUresult cuMemsetD2D32Async_ptsz(CUdeviceptr dstDevice, size_t dstPitch, unsigned int ui,
                                          size_t Width, size_t Height, CUstream hStream)
{
    QSIM_GUARDED(set(dstDevice, dstPitch, ui, 4, Width, Height, hStream, true));
}
