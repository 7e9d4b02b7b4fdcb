/* launch.c - every kernel and graph launch entry point, each through qs_gate_launch(),
 * the deprecated ones (cuLaunch, cuLaunchGrid*, the multi-device cooperative launch)
 * included: a driver still runs them, so they would be a way around the gate.
 * Threads: any. The hot path: one acquire load of the real entry point, the gate, the
 * call. No lock, no allocation, no system call. */
#include "shim/errors.h"
#include "shim/gate.h"
#include "shim/real.h"

#include <errno.h>

/* Declares hook name with parameters params, forwarding args, gated on stream. The first
 * call (the real entry point not looked up yet) takes a separate cold path, so that the
 * hot one compiles to a load, a test and a tail jump, with no registers to save. */
#define QS_LAUNCH_HOOK(name, stream, params, args)                                                 \
    __attribute__((noinline, cold)) static CUresult first_##name params                            \
    {                                                                                              \
        QS_PFN_##name real = (QS_PFN_##name)qs_real_resolve(QS_H_##name);                          \
        if (!real)                                                                                 \
            return qs_cu_error(-ENOSYS);                                                           \
        CUresult gate = qs_gate_launch(stream);                                                    \
        return gate != CUDA_SUCCESS ? gate : real args;                                            \
    }                                                                                              \
    QS_EXPORT CUresult name params                                                                 \
    {                                                                                              \
        /* acquire: see qs_real() */                                                               \
        QS_PFN_##name real =                                                                       \
            (QS_PFN_##name)atomic_load_explicit(&qs_real_fns[QS_H_##name], memory_order_acquire);  \
        if (__builtin_expect(real == NULL, 0))                                                     \
            return first_##name args;                                                              \
        CUresult gate = qs_gate_launch(stream);                                                    \
        if (__builtin_expect(gate != CUDA_SUCCESS, 0))                                             \
            return gate;                                                                           \
        return real args;                                                                          \
    }

#define KERNEL_PARAMS                                                                              \
    (CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,            \
     unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,                       \
     unsigned int sharedMemBytes, CUstream hStream, void **kernelParams, void **extra)
#define KERNEL_ARGS                                                                                \
    (f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes, hStream,    \
     kernelParams, extra)
#define COOP_PARAMS                                                                                \
    (CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,            \
     unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,                       \
     unsigned int sharedMemBytes, CUstream hStream, void **kernelParams)
#define COOP_ARGS                                                                                  \
    (f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes, hStream,    \
     kernelParams)

QS_LAUNCH_HOOK(cuLaunchKernel, hStream, KERNEL_PARAMS, KERNEL_ARGS)
QS_LAUNCH_HOOK(cuLaunchKernel_ptsz, hStream, KERNEL_PARAMS, KERNEL_ARGS)
QS_LAUNCH_HOOK(cuLaunchCooperativeKernel, hStream, COOP_PARAMS, COOP_ARGS)
QS_LAUNCH_HOOK(cuLaunchCooperativeKernel_ptsz, hStream, COOP_PARAMS, COOP_ARGS)
QS_LAUNCH_HOOK(cuLaunchKernelEx, config ? config->hStream : NULL,
               (const CUlaunchConfig *config, CUfunction f, void **kernelParams, void **extra),
               (config, f, kernelParams, extra))
QS_LAUNCH_HOOK(cuLaunchKernelEx_ptsz, config ? config->hStream : NULL,
               (const CUlaunchConfig *config, CUfunction f, void **kernelParams, void **extra),
               (config, f, kernelParams, extra))
QS_LAUNCH_HOOK(cuGraphLaunch, hStream, (CUgraphExec hGraphExec, CUstream hStream),
               (hGraphExec, hStream))
QS_LAUNCH_HOOK(cuGraphLaunch_ptsz, hStream, (CUgraphExec hGraphExec, CUstream hStream),
               (hGraphExec, hStream))
QS_LAUNCH_HOOK(cuLaunch, NULL, (CUfunction f), (f))
QS_LAUNCH_HOOK(cuLaunchGrid, NULL, (CUfunction f, int grid_width, int grid_height),
               (f, grid_width, grid_height))
QS_LAUNCH_HOOK(cuLaunchGridAsync, hStream,
               (CUfunction f, int grid_width, int grid_height, CUstream hStream),
               (f, grid_width, grid_height, hStream))
/* One launch on several GPUs: the lease is this process's, whatever the device. */
QS_LAUNCH_HOOK(cuLaunchCooperativeKernelMultiDevice, NULL,
               (CUDA_LAUNCH_PARAMS * launchParamsList, unsigned int numDevices, unsigned int flags),
               (launchParamsList, numDevices, flags))
