/* agent.h - the one thread that talks to the arbiter.
 *
 * One agent thread per process owns the connection (a ZMTP DEALER, proto/conn.h) to
 * $QVGPU_SOCKET_DIR/tenant.sock: it says hello (vGPU, secret, pid, what the process
 * holds), asks for and gives back memory reservation, sends a heartbeat every 500 ms,
 * applies the arbiter's pushes (limits, mem_reclaim), and reconnects by itself. It is
 * also the shell of the process's compute lease: the policy is shim/lease.h's core; the
 * agent feeds it the arbiter's tok_* pushes and what the launch gate (shim/gate.h) saw,
 * and carries out its decisions: the gate's end, drains (shim/drain.h), tok_* messages.
 * Application threads hand it requests on the slow path (a mutex and a condition
 * variable) and never touch the connection. State: agent.c's own (the agent, never
 * freed, and the eventfd that wakes it); a fork child forgets the parent's. */
#ifndef QS_AGENT_H
#define QS_AGENT_H

#include <stdbool.h>
#include <stdint.h>

/* Starts the agent thread (it connects in the background). Returns 0 or -errno. */
int qs_agent_start(void);
/* Waits until the first hello was answered or failed, at most timeout_ms; while the
 * arbiter answers `busy` (the vGPU moves to another GPU: PROTOCOL.md), until the move
 * is over, at most two minutes more. */
void qs_agent_wait_hello(int timeout_ms);
/* Asks the arbiter to grow this process's reservation so that n more bytes fit (plus
 * headroom, so that the next allocations need no round trip). Blocks at most about a
 * second. Returns 0 (granted: charge again), -EDQUOT (past the vGPU's quota) or
 * -ENOTCONN (the arbiter is unreachable). */
int qs_agent_reserve(uint64_t n);
/* In a fork child: drop the parent's agent without touching its thread (gone) or its
 * ZeroMQ context (whose threads are gone too); closes the parent's connection here. */
void qs_agent_forget_after_fork(void);

#endif
