/* compute.h - compute leases on tenant.sock (PROTOCOL.md "Compute tokens"): one
 * scheduler (sched.c) per physical GPU with its timer on the loop; tok_req, tok_ext
 * and tok_ret of tenant sessions go in, tok_grant and tok_revoke pushes come out.
 *
 * A vGPU gets its scheduler entity when its first process joins and keeps it (its
 * virtual time, quantum and utilisation) until it is destroyed; an idle one costs a
 * few bytes and no work. Single-threaded: the loop thread. */
#ifndef QA_COMPUTE_H
#define QA_COMPUTE_H

#include "arbiter/peer.h"
#include "proto/msg.h"

#include <stddef.h>
#include <stdint.h>

struct qa_server;
typedef struct qa_compute qa_compute_t;

/* Schedulers for ngpus GPUs, ruled by srv's config, pushing through srv. NULL when
 * out of memory. */
qa_compute_t *qa_compute_new(struct qa_server *srv, size_t ngpus);
/* Stops the timers and frees every scheduler state; sets *self_p to NULL. The vGPUs'
 * and peers' pointers into it are dangling afterwards: call it at shutdown only. */
void qa_compute_destroy(qa_compute_t **self_p);

/* p just opened a session on its vGPU: it may ask for leases. Returns 0, -ENOMEM, or
 * -ENODEV when the vGPU's GPU has no scheduler (cannot happen: the host has it). */
int qa_compute_join(qa_compute_t *self, qa_peer_t *p);
/* p's session ends: a lease it holds is given back now, the next process granted. */
void qa_compute_leave(qa_compute_t *self, qa_peer_t *p);
/* Handles tok_req, tok_ext or tok_ret of p (checked by qp_check_request). */
void qa_compute_message(qa_compute_t *self, qa_peer_t *p, const qp_msg_t *m);
/* v's share or limit changed: the next pick uses them. */
void qa_compute_resized(qa_compute_t *self, qa_vgpu_t *v);
/* v is being destroyed; its sessions have left already. */
void qa_compute_vgpu_gone(qa_compute_t *self, qa_vgpu_t *v);

/* ---- a vGPU moving to another GPU (mover.h) ---------------------------------------- */

/* hold: v's processes are granted no lease (the one held is revoked); !hold: they
 * compete on v's GPU again. */
void qa_compute_hold(qa_compute_t *self, qa_vgpu_t *v, bool hold);
/* Whether no process of v holds a lease. */
bool qa_compute_drained(const qa_compute_t *self, const qa_vgpu_t *v);
/* v now lives on v->gpu, no longer on GPU from: its processes leave from's scheduler and
 * join v->gpu's (a fresh entity, level with the others there, held with hold); those
 * that waited for a lease wait there, their leases numbered on from where they were. */
void qa_compute_move(qa_compute_t *self, qa_vgpu_t *v, unsigned from, bool hold);

/* Takes a utilisation sample (call it periodically) and stores the figures in host:
 * each vGPU's util and leases, each GPU's leased and hung. */
void qa_compute_sample(qa_compute_t *self, qa_host_t *host);

#endif
