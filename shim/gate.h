/* gate.h - may this process submit GPU work now? Every launch hook asks here first.
 *
 * In a vGPU, kernels and graphs are launched only under a compute lease the arbiter
 * granted (PROTOCOL.md "Compute tokens"). The agent thread (shim/agent.c) stores the
 * lease's end in qs_g.gate.end; a launch compares it with a vDSO clock read: no lock,
 * allocation, system call or log line on that path. A launch that finds the gate closed
 * takes the slow path, qs_gate_wait(): it asks the agent for a lease and blocks until
 * one is granted. Copies, memsets and allocations are not gated: they are not kernels,
 * and the drain that ends each lease waits for them too.
 *
 * Threads: any thread launches; the agent alone opens and closes the gate and drains. */
#ifndef QS_GATE_H
#define QS_GATE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "shim/cuda.h"
#include "shim/state.h"

/* CLOCK_MONOTONIC in ns: a vDSO read, no system call. */
static inline uint64_t qs_gate_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The slow path: blocks until this process holds a lease (or nothing is enforced), then
 * returns CUDA_SUCCESS. A launch into a stream being captured runs nothing and goes at
 * once. Records the calling thread's context for the drain. Keeps errno. */
CUresult qs_gate_wait(CUstream stream);

/* CUDA_SUCCESS when work may be submitted on stream now (after waiting for a lease if
 * need be); otherwise the error the launch returns. */
static inline CUresult qs_gate_launch(CUstream stream)
{
    /* Leases are per process: every stream shares one; only the slow path looks at it.
     * Relaxed: nothing is published with the lease; only its value matters. A launch that
     * read the gate open just as the agent closed it may queue its kernel after the
     * drain began: that one kernel can overlap the next holder (no lock per launch). */
    uint64_t end = atomic_load_explicit(&qs_g.gate.end, memory_order_relaxed);
    if (end == QS_GATE_FREE) /* pass-through, or no arbiter: no clock read */
        return CUDA_SUCCESS;
    if (__builtin_expect(end != 0 && qs_gate_now() < end, 1)) {
        /* Relaxed: the agent only needs to see it eventually (idle detection). A plain
         * read first, so that the line is written once per agent look, not per launch. */
        if (!atomic_load_explicit(&qs_g.gate.launched, memory_order_relaxed))
            atomic_store_explicit(&qs_g.gate.launched, 1, memory_order_relaxed);
        return CUDA_SUCCESS;
    }
    return qs_gate_wait(stream);
}

/* ---- the agent's side (shim/agent.c) ------------------------------------------------- */

/* Resets the gate: closed, no waiters, no contexts; (re)initialises its locks. At agent
 * start and in a fork child of a vGPU's process, while no other thread uses the gate.
 * Until then the gate is free (QS_GATE_FREE): a pass-through process never closes it. */
void qs_gate_reset(void);
/* Sets the lease's end (0 closes the gate) and wakes waiting threads when it opens. */
void qs_gate_set(uint64_t end);
/* Threads blocked in qs_gate_wait() now. */
int qs_gate_waiting(void);
/* Whether a launch passed the gate since the last call; clears the flag. */
bool qs_gate_take_launched(void);
/* Whether a launch passed the gate since qs_gate_take_launched(), without clearing. */
bool qs_gate_launched(void);
/* Starts the drainer thread, which runs drains so that the agent goes on answering the
 * arbiter meanwhile (a drain lasts as long as the queued work). Once per process, after
 * qs_gate_reset(). Returns 0 or -errno; without it drains run in qs_gate_drain_begin(). */
int qs_gate_drainer_start(void);
/* Asks for a drain, which starts after this call: it waits until the work this process
 * queued on every context it launched on has finished (cuCtxSynchronize on each, pushed
 * on the drainer thread). Returns its ticket. */
uint64_t qs_gate_drain_begin(void);
/* Whether the drain of ticket (or a later one) finished; if so *end receives when
 * (monotonic ns) and *took how long it lasted. */
bool qs_gate_drain_done(uint64_t ticket, uint64_t *end, uint64_t *took);
/* Forgets ctx (destroyed): the next drain must not push it. Waits for a drain under way. */
void qs_gate_forget_context(CUcontext ctx);

#endif
