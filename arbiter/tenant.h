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
 * For reconnect_grace_ms after the arbiter starts, mem_reserve requests are held, not
 * answered: the previous arbiter's tenants reconnect within about a second and re-report
 * in their hello what they hold, and until they have, a vGPU's quota looks freer than it
 * is. Single-threaded: the loop thread. */
#ifndef QA_TENANT_H
#define QA_TENANT_H

#include "arbiter/peer.h"
#include "arbiter/server.h"
#include "proto/msg.h"

/* Authenticates a tenant hello on p (which has no session) and answers it. */
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
/* What the tenants of GPU gpu (an index of the host's) report holding, for the host-wide
 * figures: each process counted once however many sessions it opened (the largest of
 * its reports; a process is known by its pid as the arbiter sees it, SO_PEERCRED, not as
 * it claims), and never more than the GPU's memory (issue 8: a tenant reporting on many
 * connections showed 160 GiB used on an 8 GiB host). O(sessions log sessions). */
uint64_t qa_tenant_gpu_used(qa_server_t *srv, unsigned gpu);
/* Tells v's processes and its GPU's scheduler its new limits; after a shrink below what is
 * reserved, asks them to give back what they do not use; after growth, serves waiting requests. */
void qa_tenant_resized(qa_server_t *srv, qa_vgpu_t *v, uint64_t old_memory_mb);

#endif
