/* gate.h - may this process submit GPU work now? Every launch hook asks here first.
 *
 * In a vGPU, kernels and graphs are launched only under a compute lease the arbiter
 * granted (PROTOCOL.md "Compute tokens"). The agent thread (shim/agent.c) stores the
 * lease's end in qs_gate.end; a launch compares it with a vDSO clock read: no lock,
 * allocation, system call or log line on that path. A launch that finds the gate closed
 * takes the slow path, qs_gate_wait(): it notes its context for the drain
 * (shim/drain.h), asks for a lease through the waker the agent registered, and blocks
 * until one is granted. Copies, memsets and allocations are not gated: they are not
 * kernels, and the drain that ends each lease waits for them too.
 *
 * State: struct qs_gate below, defined in gate.c, read inline on the launch path and
 * written only by gate.c's functions; the waiters' lock and condition variable are
 * gate.c's own. Threads: any thread launches; the agent alone opens and closes the gate.
 * The gate calls the waker with no lock held, so no lock order spans it and the agent. */
#ifndef QS_GATE_H
#define QS_GATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "shim/clock.h"
#include "shim/cuda.h"

/* The gate's end when nothing is enforced: pass-through (the initial value), or the
 * arbiter cannot be reached or grants no leases: nobody to share the GPU with fairly. */
#define QS_GATE_FREE UINT64_MAX

/* end and launched live on cache lines of their own: every launch reads end, and the
 * agent clears launched about every millisecond. */
struct qs_gate {
    _Alignas(64) _Atomic uint64_t end; /* lease end, monotonic ns; 0 closed, QS_GATE_FREE
                                          ungated (initially) */
    _Alignas(64) atomic_int launched;  /* a launch passed since the agent last looked: any
                                          thread sets it, the agent clears it */
    atomic_int waiting;                /* threads blocked in qs_gate_wait(); they count */
};
extern struct qs_gate qs_gate;

/* The slow path: blocks until this process holds a lease (or nothing is enforced), then
 * returns CUDA_SUCCESS. A launch into a stream being captured runs nothing and goes at
 * once. Notes the calling thread's context for the drain. Keeps errno. */
CUresult qs_gate_wait(CUstream stream);

/* CUDA_SUCCESS when work may be submitted on stream now (after waiting for a lease if
 * need be); otherwise the error the launch returns. */
static inline CUresult qs_gate_launch(CUstream stream)
{
    /* Leases are per process: every stream shares one; only the slow path looks at it.
     * Relaxed: nothing is published with the lease; only its value matters. A launch that
     * read the gate open just as the agent closed it may queue its kernel after the
     * drain began: that one kernel can overlap the next holder (no lock per launch). */
    uint64_t end = atomic_load_explicit(&qs_gate.end, memory_order_relaxed);
    if (end == QS_GATE_FREE) /* pass-through, or no arbiter: no clock read */
        return CUDA_SUCCESS;
    if (__builtin_expect(end != 0 && qs_clock_now() < end, 1)) {
        /* Relaxed: the agent only needs to see it eventually (idle detection). A plain
         * read first, so that the line is written once per agent look, not per launch. */
        if (!atomic_load_explicit(&qs_gate.launched, memory_order_relaxed))
            atomic_store_explicit(&qs_gate.launched, 1, memory_order_relaxed);
        return CUDA_SUCCESS;
    }
    return qs_gate_wait(stream);
}

/* ---- the agent's side (shim/agent.c) ------------------------------------------------- */

/* Closes the gate (it was free until now: a pass-through process never calls this), with
 * no waiters. ask is called, with no lock held, by a thread that must wait for a lease
 * (and again every 100 ms while it waits): it wakes whoever asks the arbiter, and
 * returns false when nobody will (the launch then goes ungated). At agent start, before
 * any thread can wait. */
void qs_gate_start(bool (*ask)(void));
/* In a fork child of a vGPU's process: closed, no waiters, new locks; the waker stays.
 * The parent's lease is the parent's. */
void qs_gate_reset_after_fork(void);
/* Sets the lease's end (0 closes the gate) and wakes waiting threads when it opens. */
void qs_gate_set(uint64_t end);
/* Threads blocked in qs_gate_wait() now. */
int qs_gate_waiting(void);
/* Whether a launch passed the gate since the last call; clears the flag. */
bool qs_gate_take_launched(void);

#endif
