/* cuda_ctx.h - contexts: the calling thread's current one and handle checks.
 * Threads: any; each thread has its own context stack. */
#ifndef QSIM_CUDA_CTX_H
#define QSIM_CUDA_CTX_H

#include "sim/cuda_state.h"

/* The calling thread's current context, or NULL. May be destroyed: see qsim_ctx_get. */
struct qsim_ctx *qsim_ctx_current(void);

/* The current context in *out; CUDA_ERROR_INVALID_CONTEXT when there is none or it was
 * destroyed. */
CUresult qsim_ctx_get(struct qsim_ctx **out);

/* The live context behind h (NULL: the current one), or NULL when h names none. */
struct qsim_ctx *qsim_ctx_of(CUcontext h);

/* Device dev's primary context object, made (inactive) if it has none yet; the handle
 * cuDevicePrimaryCtxRetain will return. NULL for a bad device or no memory. */
struct qsim_ctx *qsim_primary_object(CUdevice dev);

#endif
