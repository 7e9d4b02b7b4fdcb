/* cuda_pool.h - memory pools, as the rest of the driver needs them.
 * Threads: any; pools under qsim_g.lock. */
#ifndef QSIM_CUDA_POOL_H
#define QSIM_CUDA_POOL_H

#include "sim/cuda_state.h"

/* A synchronising call (stream, context or event) returned on ordinal ord: pools of
 * that device give back free memory above their release threshold, as the real driver
 * does at synchronisation. */
void qsim_pool_on_sync(int ord);

/* Frees pool allocation a (cuMemFree on a stream-ordered pointer): waits for the device
 * to be idle first, as cuMemFree does. Caller does not hold qsim_g.lock. */
CUresult qsim_pool_free_now(uintptr_t ptr);

#endif
