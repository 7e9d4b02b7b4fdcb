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
 * order. Single-threaded: the loop thread. */
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
/* Tells v's processes and its GPU's scheduler its new limits; after a shrink below what is reserved, asks them
 * to give back what they do not use; after growth, serves waiting requests. */
void qa_tenant_resized(qa_server_t *srv, qa_vgpu_t *v, uint64_t old_memory_mb);

#endif
