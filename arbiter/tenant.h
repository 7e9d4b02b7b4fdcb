/* tenant.h - tenant sessions on tenant.sock: a process proves its vGPU with the secret,
 * then reserves memory against the vGPU's quota in chunks (mem_reserve, mem_release),
 * reports its use (hb), and is sent `limits` and `mem_reclaim` pushes. Its compute
 * tokens (tok_*) go to compute.c.
 *
 * The quota is the vGPU's, shared by its processes: the sum of their reservations stays
 * within it, except where a reconnecting process re-reports more than that (its memory
 * is not taken away; new reservations wait until use drops). A reservation that does
 * not fit waits up to reclaim_timeout_ms while other processes are asked to give back
 * what they reserved but do not use; waiting requests of a vGPU are served in arrival
 * order.
 *
 * Every session's process and what it may hold are kept in the ledger (ledger.h). After
 * a restart, what the previous arbiter's processes may still hold is charged to their
 * vGPU until each process re-reports in its hello (or is gone): whatever the timing of
 * reconnections, nothing a process may hold is granted to another. A request that would
 * fit once they have waits for them (up to reclaim_timeout_ms) rather than being refused.
 * For reconnect_grace_ms after the start, mem_reserve requests are held, not answered, so
 * that the re-reports, which usually come within about a second, settle the figures first.
 *
 * With [audit] charge = real, what the device holds for the vGPU's processes beyond
 * their allocations (the driver's memory for their contexts, measured through NVML by
 * audit.c) and what processes with its credentials but no session hold count against
 * the quota too. A process's first mem_reserve waits (milliseconds) for an NVML round
 * that measures it, so that its first context's memory is known before it may fill the
 * quota. Single-threaded: the loop thread. */
#ifndef QA_TENANT_H
#define QA_TENANT_H

#include "arbiter/peer.h"
#include "arbiter/server.h"
#include "proto/msg.h"

/* Authenticates a tenant hello on p (which has no session) and answers it: `busy` while
 * the vGPU moves to another GPU (the shim asks again). */
void qa_tenant_hello(qa_server_t *srv, qa_peer_t *p, const qp_msg_t *m);
/* Serves mem_reserve, mem_release, hb and tok_* of p, which has a session. */
void qa_tenant_request(qa_server_t *srv, qa_peer_t *p, const qp_msg_t *m);
/* Ends p's session, if any: its reservation returns to the vGPU and waiting requests are
 * served. With tell, a request of p still waiting is answered `nosession`. */
void qa_tenant_end(qa_server_t *srv, qa_peer_t *p, bool tell);
/* Ends every session of v, which is being destroyed (their waiting requests are
 * answered `nosession`), and drops its scheduler entity. */
void qa_tenant_vgpu_gone(qa_server_t *srv, qa_vgpu_t *v);
/* The reconnect grace is over: serves the mem_reserve requests held during it, in
 * arrival order per vGPU, as if they had come now. */
void qa_tenant_grace_over(qa_server_t *srv);
/* At the start, after the vGPUs are loaded: what the previous arbiter's processes may
 * still hold, as its ledger says (ledger.h), is charged to their vGPUs until each process
 * re-reports in a hello or is gone; a process whose pid is unknown is taken as gone after
 * heartbeat_timeout_ms. Returns 0 or -ENOMEM. */
int qa_tenant_adopt_ghosts(qa_server_t *srv);
/* Drops what processes found gone held (call it periodically: it reads /proc once per
 * process not re-reported yet), serving requests that waited for it. */
void qa_tenant_check_ghosts(qa_server_t *srv);
/* At shutdown: frees the memory of what qa_tenant_adopt_ghosts kept, leaving the ledger
 * as it is for the next arbiter. */
void qa_tenant_forget_ghosts(qa_host_t *host);
/* Charges session p bytes beyond its allocations: what the device holds for its process
 * on top of them (audit.h). Takes effect at the next decision; see qa_tenant_measured. */
void qa_tenant_charge(qa_server_t *srv, qa_peer_t *p, uint64_t bytes);
/* An NVML round that began at taken (CLOCK_MONOTONIC ns; 0: none came) measured v's GPU,
 * or now is the time to stop waiting for one: decides the first mem_reserve requests held
 * until their process was measured (or waited long enough), asks v's processes to give
 * back unused reservations when the device turned out to hold more for them than their
 * quota leaves, and serves waiting requests when it holds less. */
void qa_tenant_measured(qa_server_t *srv, qa_vgpu_t *v, uint64_t taken, uint64_t now);
/* What the tenants of GPU gpu (an index of the host's) report holding, for the host-wide
 * figures: each process counted once however many sessions it opened (the largest of
 * its reports; a process is known by its pid as the arbiter sees it, SO_PEERCRED, not as
 * it claims), and never more than the GPU's memory (issue 8: a tenant reporting on many
 * connections showed 160 GiB used on an 8 GiB host). O(sessions log sessions). */
uint64_t qa_tenant_gpu_used(qa_server_t *srv, unsigned gpu);
/* The same over every GPU of the host: the `memory_used_mb` of the totals. */
uint64_t qa_tenant_host_used(qa_server_t *srv);
/* Tells v's processes and its GPU's scheduler its new limits; after a shrink below what is
 * reserved, asks them to give back what they do not use; after growth, serves waiting requests. */
void qa_tenant_resized(qa_server_t *srv, qa_vgpu_t *v, uint64_t old_memory_mb);

/* v now lives on another GPU (mover.h): its processes are told (a `limits` push with
 * the new GPU's UUID), before they run again. */
void qa_tenant_moved(qa_server_t *srv, qa_vgpu_t *v);

#endif
