/* hooks.h - the driver and NVML entry points the shim exports (its hooks) and the ones it
 * only calls, and the table that maps a symbol name to its hook.
 *
 * Threads: any. The tables are constant; the real entry points live in qs_real_fns
 * (shim/real.h) and are resolved lazily by shim/real.c. */
#ifndef QS_HOOKS_H
#define QS_HOOKS_H

#include "shim/cuda.h"

/* Every exported hook, by the exact symbol the driver exports for that variant. Kept in
 * strcmp order: qs_hook_find() binary-searches it (tests/test_shim_hooks.c checks).
 * Adding a hook: define it (with QS_EXPORT) in the module that owns it and list it here. */
#define QS_HOOK_LIST(X)                                                                            \
    X(cuArray3DCreate)                                                                             \
    X(cuArray3DCreate_v2)                                                                          \
    X(cuArrayCreate)                                                                               \
    X(cuArrayCreate_v2)                                                                            \
    X(cuArrayDestroy)                                                                              \
    X(cuCtxDestroy)                                                                                \
    X(cuCtxDestroy_v2)                                                                             \
    X(cuCtxSynchronize)                                                                            \
    X(cuCtxSynchronize_v2)                                                                         \
    X(cuDeviceGet)                                                                                 \
    X(cuDeviceGetCount)                                                                            \
    X(cuDevicePrimaryCtxRelease)                                                                   \
    X(cuDevicePrimaryCtxRelease_v2)                                                                \
    X(cuDevicePrimaryCtxReset)                                                                     \
    X(cuDevicePrimaryCtxReset_v2)                                                                  \
    X(cuDeviceTotalMem)                                                                            \
    X(cuDeviceTotalMem_v2)                                                                         \
    X(cuEventSynchronize)                                                                          \
    X(cuGetProcAddress)                                                                            \
    X(cuGetProcAddress_v2)                                                                         \
    X(cuGraphLaunch)                                                                               \
    X(cuGraphLaunch_ptsz)                                                                          \
    X(cuInit)                                                                                      \
    X(cuLaunch)                                                                                    \
    X(cuLaunchCooperativeKernel)                                                                   \
    X(cuLaunchCooperativeKernelMultiDevice)                                                        \
    X(cuLaunchCooperativeKernel_ptsz)                                                              \
    X(cuLaunchGrid)                                                                                \
    X(cuLaunchGridAsync)                                                                           \
    X(cuLaunchKernel)                                                                              \
    X(cuLaunchKernelEx)                                                                            \
    X(cuLaunchKernelEx_ptsz)                                                                       \
    X(cuLaunchKernel_ptsz)                                                                         \
    X(cuMemAlloc)                                                                                  \
    X(cuMemAllocAsync)                                                                             \
    X(cuMemAllocAsync_ptsz)                                                                        \
    X(cuMemAllocFromPoolAsync)                                                                     \
    X(cuMemAllocFromPoolAsync_ptsz)                                                                \
    X(cuMemAllocManaged)                                                                           \
    X(cuMemAllocPitch)                                                                             \
    X(cuMemAllocPitch_v2)                                                                          \
    X(cuMemAlloc_v2)                                                                               \
    X(cuMemCreate)                                                                                 \
    X(cuMemFree)                                                                                   \
    X(cuMemFreeAsync)                                                                              \
    X(cuMemFreeAsync_ptsz)                                                                         \
    X(cuMemFree_v2)                                                                                \
    X(cuMemGetInfo)                                                                                \
    X(cuMemGetInfo_v2)                                                                             \
    X(cuMemMap)                                                                                    \
    X(cuMemPoolCreate)                                                                             \
    X(cuMemPoolDestroy)                                                                            \
    X(cuMemPoolTrimTo)                                                                             \
    X(cuMemRelease)                                                                                \
    X(cuMemRetainAllocationHandle)                                                                 \
    X(cuMemUnmap)                                                                                  \
    X(cuMipmappedArrayCreate)                                                                      \
    X(cuMipmappedArrayDestroy)                                                                     \
    X(cuStreamSynchronize)                                                                         \
    X(cuStreamSynchronize_ptsz)                                                                    \
    X(nvmlDeviceGetCount)                                                                          \
    X(nvmlDeviceGetCount_v2)                                                                       \
    X(nvmlDeviceGetHandleByIndex)                                                                  \
    X(nvmlDeviceGetHandleByIndex_v2)                                                               \
    X(nvmlDeviceGetHandleByUUID)                                                                   \
    X(nvmlDeviceGetIndex)                                                                          \
    X(nvmlDeviceGetMemoryInfo)                                                                     \
    X(nvmlDeviceGetMemoryInfo_v2)

/* Entry points the shim calls but does not export: resolved the same way. */
#define QS_CALL_LIST(X)                                                                            \
    X(cuCtxGetCurrent)                                                                             \
    X(cuCtxGetDevice)                                                                              \
    X(cuCtxPopCurrent_v2)                                                                          \
    X(cuCtxPushCurrent_v2)                                                                         \
    X(cuDeviceGetMemPool)                                                                          \
    X(cuDeviceGetUuid_v2)                                                                          \
    X(cuDevicePrimaryCtxGetState)                                                                  \
    X(cuDevicePrimaryCtxRetain)                                                                    \
    X(cuMemGetAllocationGranularity)                                                               \
    X(cuMemPoolGetAttribute)                                                                       \
    X(cuStreamGetCtx)                                                                              \
    X(cuStreamIsCapturing)                                                                         \
    X(nvmlDeviceGetUUID)

/* One id per entry: hooks first (QS_H_<name>), then calls. */
enum qs_entry_id {
#define QS_ENUM_(name) QS_H_##name,
    QS_HOOK_LIST(QS_ENUM_) QS_HOOK_COUNT,
    QS_CALL_BEFORE_ = QS_HOOK_COUNT - 1,
    QS_CALL_LIST(QS_ENUM_) QS_ENTRY_COUNT
#undef QS_ENUM_
};

/* The type of each entry point's pointer, QS_PFN_<name>, from its declaration. */
#define QS_PFN_(name) typedef __typeof__(&name) QS_PFN_##name;
QS_HOOK_LIST(QS_PFN_)
QS_CALL_LIST(QS_PFN_)
#undef QS_PFN_

/* The symbol name of entry id. Borrowed, static. */
const char *qs_entry_name(int id);
/* The hook exported for id (a hook id), as the dynamic linker resolves it. */
void *qs_hook_addr(int id);
/* The hook id for an exported symbol name, or -1 when the shim does not hook it.
 * O(log n) strcmp; called on the dlsym and cuGetProcAddress paths, never per launch. */
int qs_hook_find(const char *symbol);
/* The hook id whose hook is fn, or -1: fn is not one of ours. */
int qs_hook_of(const void *fn);

#endif
