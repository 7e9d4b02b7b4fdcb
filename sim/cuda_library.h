/* cuda_library.h - kernels of context-independent libraries (cuda_library.c), for the
 * launch path of cuda_exec.c: a CUkernel cast to a CUfunction launches as that kernel's
 * function in the stream's context, as the driver API documents.
 * Threads: any; the caller has entered the driver (qsim_enter). */
#ifndef QSIM_CUDA_LIBRARY_H
#define QSIM_CUDA_LIBRARY_H

#include <stdbool.h>

#include "sim/cuda_state.h"

/* Whether h is a live kernel handle (a CUkernel cast to CUfunction). */
bool qsim_kernel_is(CUfunction h);
/* The function of kernel h in ctx (a live context), its library's module there loaded
 * on first use. CUDA_ERROR_INVALID_HANDLE when h is no live kernel. */
CUresult qsim_kernel_function(CUfunction h, struct qsim_ctx *ctx, CUfunction *out);

#endif
