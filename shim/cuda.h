/* cuda.h - the driver API and NVML declarations as the shim needs them: every exported
 * variant under its own name (cuMemAlloc is the 32-bit v1, cuMemAlloc_v2 the current one,
 * cuLaunchKernel_ptsz the per-thread one), which __CUDA_API_VERSION_INTERNAL gives, since
 * the shim defines each variant separately. Include this, never <cuda.h> directly. */
#ifndef QS_CUDA_H
#define QS_CUDA_H

#define __CUDA_API_VERSION_INTERNAL 1
#include <cuda.h>
#include <cudaTypedefs.h>

#include "include/nvml_subset.h"

/* Marks a hook the dynamic linker must see (the library is built -fvisibility=hidden). */
#define QS_EXPORT __attribute__((visibility("default")))

#endif
