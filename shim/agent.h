/* agent.h - the one thread that talks to the arbiter.
 *
 * ZeroMQ sockets are not thread-safe, so one agent thread per process owns the DEALER
 * socket to $QVGPU_SOCKET_DIR/tenant.sock: it says hello (vGPU, secret, pid, what the
 * process holds), asks for and gives back memory reservation, sends a heartbeat every
 * 500 ms, applies the arbiter's pushes (limits, mem_reclaim), and reconnects by itself.
 * It also holds the process's compute lease (PROTOCOL.md "Compute tokens"): it asks for
 * one when a launch waits at the gate (shim/gate.h), opens the gate on tok_grant, asks
 * for an extension shortly before the end while launches go on, and when the lease ends
 * (expiry, tok_revoke, or the process went idle) closes the gate, waits for the queued
 * work (the drain) and gives the lease back with the GPU time it really used.
 * Application threads hand it requests on the slow path (a mutex and a condition
 * variable) and never touch ZeroMQ. */
#ifndef QS_AGENT_H
#define QS_AGENT_H

#include <stdbool.h>
#include <stdint.h>

/* Starts the agent thread (it connects in the background). Returns 0 or -errno. */
int qs_agent_start(void);
/* Waits until the first hello was answered or failed, at most timeout_ms. */
void qs_agent_wait_hello(int timeout_ms);
/* Asks the arbiter to grow this process's reservation so that n more bytes fit (plus
 * headroom, so that the next allocations need no round trip). Blocks at most about a
 * second. Returns 0 (granted: charge again), -EDQUOT (past the vGPU's quota) or
 * -ENOTCONN (the arbiter is unreachable). */
int qs_agent_reserve(uint64_t n);
/* Wakes the agent: a thread waits at the gate for a lease. Returns false when there is no
 * agent thread (the launch then goes ungated). */
bool qs_agent_kick(void);
/* Wakes the agent thread without taking any lock (the drainer, holding the gate's lock,
 * calls it when a drain ends). Keeps errno. */
void qs_agent_nudge(void);
/* In a fork child: drop the parent's agent without touching its thread (gone) or its
 * ZeroMQ context (whose threads are gone too); closes the parent's connection here. */
void qs_agent_forget_after_fork(void);

#endif
