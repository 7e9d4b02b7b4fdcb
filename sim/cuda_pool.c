/* cuda_pool.c - memory pools and stream-ordered allocation.
 * Threads: any; pools under qsim_g.lock. */
#include "sim/cuda_pool.h"

void qsim_pool_on_sync(int ord)
{
    (void)ord;
}

CUresult qsim_pool_free_now(uintptr_t ptr)
{
    (void)ptr;
    return CUDA_ERROR_INVALID_VALUE;
}
