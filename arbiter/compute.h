/* compute.h - compute leases on tenant.sock (PROTOCOL.md "Compute tokens"): one
 * scheduler (sched.c) per physical GPU with its timer on the loop; tok_req, tok_ext
 * and tok_ret of tenant sessions come in through its table of handlers (dispatch.h),
 * tok_grant and tok_revoke pushes go out through the reply path.
 *
 * A vGPU gets its scheduler entity when its first process joins and keeps it (its
 * virtual time, quantum and utilisation) until it is destroyed; an idle one costs a
 * few bytes and no work. Its edges: the loop for the timers, the reply path, the config
 * (sched_* and lease_grace_ms) and the log, given at creation; sessions (tenant.h) join
 * and leave as tenant.c opens and ends them.
 *
 * A vGPU moving to another GPU (mover.h) is held (no leases) during the move, then
 * its sessions leave the old GPU's scheduler and join the new one's
 * (qa_compute_move). Single-threaded: the loop thread. */
#ifndef QA_COMPUTE_H
#define QA_COMPUTE_H

#include "arbiter/config.h"
#include "arbiter/dispatch.h"
#include "arbiter/host.h"
#include "arbiter/log.h"
#include "arbiter/loop.h"
#include "arbiter/reply.h"

#include <stddef.h>
#include <stdint.h>

struct qa_session;
typedef struct qa_compute qa_compute_t;

typedef struct qa_compute_opts {
    size_t ngpus;            /* schedulers, one per GPU of the host */
    qa_loop_t *loop;         /* where their timers run */
    const qa_config_t *cfg;  /* sched_window_ms, quantum_*_ms, lease_grace_ms */
    const qa_log_t *log;     /* leases taken back from hung holders */
    const qa_reply_t *reply; /* how grants and revokes are pushed */
} qa_compute_opts_t;

/* Schedulers over opts (copied; what it points to is borrowed and must outlive them).
 * NULL when out of memory. */
qa_compute_t *qa_compute_new(const qa_compute_opts_t *opts);
/* Stops the timers and frees every scheduler state; sets *self_p to NULL. The vGPUs'
 * and sessions' pointers into it are dangling afterwards: call it at shutdown only,
 * after every session left. */
void qa_compute_destroy(qa_compute_t **self_p);

/* Its handlers: tok_req, tok_ext and tok_ret of tenant.sock, to add with the compute
 * as self. */
extern const qa_route_t qa_compute_routes[];
extern const size_t qa_compute_nroutes;

/* Session s just opened on its vGPU: it may ask for leases. Returns 0, -ENOMEM, or
 * -ENODEV when the vGPU's GPU has no scheduler (cannot happen: the host has it). */
int qa_compute_join(qa_compute_t *self, struct qa_session *s);
/* s ends: a lease it holds is given back now, the next process granted. */
void qa_compute_leave(qa_compute_t *self, struct qa_session *s);
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
