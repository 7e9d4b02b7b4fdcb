/* drain.h - waiting for the GPU work this process queued: the contexts it launched on,
 * and the drainer thread that synchronises them when a compute lease ends.
 *
 * A drain synchronises (cuCtxSynchronize, pushed on the drainer thread) every context a
 * launch waited at the gate on, so that a lease is given back only once its work is done
 * and its time is charged to its owner. Drains are numbered (tickets); one drain serves
 * every ticket asked before it started. They run on a thread of their own so that the
 * agent goes on answering the arbiter meanwhile (a drain lasts as long as the queued
 * work); without that thread, qs_drain_begin() drains itself.
 *
 * Threads: launching threads note their context (qs_drain_note_context()); the agent
 * asks for drains and polls for their end; the drainer runs them; cuCtxDestroy's hook
 * forgets a context. The state is drain.c's own: a lock for the context list and the
 * tickets, and one held across a drain, so that a context is never destroyed while the
 * drainer has it pushed. No other module's lock is taken under either. */
#ifndef QS_DRAIN_H
#define QS_DRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "shim/cuda.h"

#define QS_DRAIN_MAX_CTXS 64 /* contexts a drain synchronises; past them, one line says so */

/* Forgets every context and ticket, (re)initialises the locks and starts the drainer
 * thread; notify (may be NULL) is called on it, with no lock held, when a drain ends. At
 * agent start, while no other thread uses the drain. Returns 0, or -errno when the
 * thread cannot start (qs_drain_begin() then drains itself). */
int qs_drain_start(void (*notify)(void));
/* In a fork child: the parent's contexts, tickets and drainer are not this process's. */
void qs_drain_reset_after_fork(void);
/* Adds the calling thread's current context to those drained (a launch about to wait
 * for a lease calls it). */
void qs_drain_note_context(void);
/* Asks for a drain that starts after this call, and returns its ticket. */
uint64_t qs_drain_begin(void);
/* Whether the drain of ticket (or a later one) finished; if so *end receives when
 * (monotonic ns) and *took how long it lasted. */
bool qs_drain_done(uint64_t ticket, uint64_t *end, uint64_t *took);
/* Forgets ctx (it is being destroyed): no later drain pushes it. Waits for a drain under
 * way. */
void qs_drain_forget_context(CUcontext ctx);

#endif
