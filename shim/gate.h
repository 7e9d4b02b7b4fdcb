/* gate.h - may this process submit GPU work now? Every launch hook asks here first.
 *
 * Issue 5 makes this the compute-lease check: an atomic load of the lease's end and a
 * compare against a vDSO clock, nothing more on the fast path (no lock, allocation,
 * syscall or log line). Until then every launch may go. Threads: any. */
#ifndef QS_GATE_H
#define QS_GATE_H

#include "shim/cuda.h"

/* CUDA_SUCCESS when work may be submitted on stream now; otherwise the error the launch
 * returns. */
static inline CUresult qs_gate_launch(CUstream stream)
{
    (void)stream;
    return CUDA_SUCCESS;
}

#endif
