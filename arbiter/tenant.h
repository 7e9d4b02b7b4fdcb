/* tenant.h - tenant sessions on tenant.sock: a process proves its vGPU with the secret,
 * then reserves memory against the vGPU's quota in chunks (mem_reserve, mem_release),
 * reports its use (hb), and is sent `limits` and `mem_reclaim` pushes. Its compute
 * tokens (tok_*) are compute.c's (compute.h).
 *
 * The tenants object owns the sessions: their numbers, the reconnect grace after the
 * start, what the previous arbiter's processes may still hold (ghosts.h, from the
 * ledger) and the liveness of each session. Its edges are given at creation: the host
 * model, the ledger, the compute schedulers sessions join and leave, the loop for its
 * timers, the reply path, the config and the log.
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

#include "arbiter/audit.h"
#include "arbiter/compute.h"
#include "arbiter/config.h"
#include "arbiter/dispatch.h"
#include "arbiter/host.h"
#include "arbiter/ledger.h"
#include "arbiter/log.h"
#include "arbiter/loop.h"
#include "arbiter/peer.h"
#include "arbiter/reply.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct qa_tenants qa_tenants_t;

/* One tenant session: a process of a vGPU on one connection, from its hello until the
 * connection closes, it says hello again, it falls silent or its vGPU goes. Its fields
 * are tenant.c's but where a comment names another module. Others read them. */
typedef struct qa_session {
    qa_peer_t *peer;                  /* its connection (the endpoint's) */
    qa_tenants_t *owner;              /* the tenants object, for timer callbacks */
    qa_vgpu_t *vgpu;                  /* its vGPU, borrowed from the host */
    struct qa_session *next_in_vgpu;  /* next session of the same vGPU */
    struct qa_session **pprev_in_vgpu; /* what points at it in that list: unlinks in O(1) */
    uint64_t id;                      /* number given in the hello reply */
    pid_t pid;                        /* pid the tenant reported (its namespace's) */
    pid_t host_pid;                   /* its process as the arbiter sees it (SO_PEERCRED),
                                       * 0 if unknown: how NVML lists it */
    uint64_t used;                    /* bytes it reported holding */
    uint64_t reserved;                /* bytes reserved to it */
    uint64_t overhead;                /* bytes charged beyond its allocations (the audit's
                                       * measure, through qa_tenants_charge) */
    uint32_t slot;                    /* its ledger slot + 1, 0 if none */
    bool measured;                    /* a round that began after its first mem_reserve
                                       * has seen it */
    struct {                          /* its first mem_reserve, held until measured */
        bool active;                  /* one is held */
        uint64_t id;                  /* its request id */
        uint64_t need;                /* its need and want */
        uint64_t want;
        uint64_t since;               /* ns it arrived */
        uint64_t until;               /* ns it stops waiting for a measurement */
    } held;
    struct {
        bool active;                  /* a mem_reserve waits for reclaimed memory */
        uint64_t id;                  /* its request id */
        uint64_t need;                /* its need and want */
        uint64_t want;
        uint64_t seq;                 /* arrival order among the vGPU's waiting requests */
        qa_timer_t timer;             /* gives up after the reclaim timeout */
    } pending;
    struct qa_sched_proc *proc;       /* compute.c's: its lease state (qa_compute_join),
                                       * NULL if none */
    qa_audit_seen_t seen;             /* audit.c's: what NVML showed of its process */
} qa_session_t;

typedef struct qa_tenants_opts {
    qa_host_t *host;          /* the vGPUs sessions join */
    qa_ledger_t *ledger;      /* what each process may hold, for the next arbiter */
    qa_compute_t *compute;    /* the schedulers sessions join and leave; NULL: none */
    qa_loop_t *loop;          /* for the reclaim timeouts and the reconnect grace */
    const qa_config_t *cfg;   /* timeouts, the grace, charge = real */
    const qa_log_t *log;      /* sessions that come and go, refusals */
    const qa_reply_t *reply;  /* how sessions are answered and pushed to */
    /* Asks for an NVML round now (see qa_tenants_measured). Returns false when NVML
     * cannot list the processes of the GPUs, so that nothing waits for a measurement.
     * NULL: never. */
    bool (*measure)(void *arg);
    void *measure_arg;
} qa_tenants_opts_t;

/* Tenants over opts (copied; what it points to is borrowed and must outlive them). What
 * the previous arbiter's processes may still hold, as the ledger says, is charged to
 * their vGPUs until each process re-reports in a hello or is gone (ghosts.h). Returns
 * NULL with err when out of memory (forgetting what a process holds could over-commit:
 * better not start). */
qa_tenants_t *qa_tenants_new(const qa_tenants_opts_t *opts, char err[QP_ERR_LEN]);
/* tenant.sock is served from now: the reconnect grace (reconnect_grace_ms) starts, during
 * which mem_reserve requests are held. Returns 0 or -ENOMEM. */
int qa_tenants_serve(qa_tenants_t *self);
/* Frees *self_p and sets it to NULL; NULL is a no-op. Every session must have ended (the
 * endpoint closed first); what the ghosts hold stays in the ledger for the next arbiter. */
void qa_tenants_destroy(qa_tenants_t **self_p);

/* Its handlers, one row per request kind of tenant.sock but the tokens (compute.h), to
 * add with the tenants as self. */
extern const qa_route_t qa_tenant_routes[];
extern const size_t qa_tenant_nroutes;

/* Ends p's session, if any: its reservation returns to the vGPU and waiting requests are
 * served. With tell, a request of p still waiting is answered `nosession`. */
void qa_tenants_end(qa_tenants_t *self, qa_peer_t *p, bool tell);
/* Ends every session of v, which is being destroyed (their waiting requests are
 * answered `nosession`), and forgets what the previous arbiter's processes held of it. */
void qa_tenants_vgpu_gone(qa_tenants_t *self, qa_vgpu_t *v);
/* v now lives on another GPU (mover.h): its processes are told (a `limits` push with
 * the new GPU's UUID), before they run again. While a vGPU moves, a hello of a new
 * process of it is answered `busy` (the shim asks again). */
void qa_tenants_moved(qa_tenants_t *self, qa_vgpu_t *v);
/* Tells v's processes their new limits; after a shrink below what is reserved, asks them
 * to give back what they do not use; after growth, serves waiting requests. */
void qa_tenants_resized(qa_tenants_t *self, qa_vgpu_t *v, uint64_t old_memory_mb);
/* Periodic work (every 250 ms): drops sessions silent for heartbeat_timeout_ms (their
 * connections stay: a stopped process that resumes re-reports on it) and what processes
 * of the previous arbiter found gone held (reading /proc once per process not
 * re-reported yet), serving requests that waited for it. */
void qa_tenants_tick(qa_tenants_t *self, uint64_t now);
/* Whether the reconnect grace after the start still runs. */
bool qa_tenants_in_grace(const qa_tenants_t *self);

/* Charges session s bytes beyond its allocations: what the device holds for its process
 * on top of them (audit.h). Takes effect at the next decision; see qa_tenants_measured. */
void qa_tenants_charge(qa_session_t *s, uint64_t bytes);
/* An NVML round that began at taken (CLOCK_MONOTONIC ns; 0: none came) measured v's GPU,
 * or now is the time to stop waiting for one: decides the first mem_reserve requests held
 * until their process was measured (or waited long enough), asks v's processes to give
 * back unused reservations when the device turned out to hold more for them than their
 * quota leaves, and serves waiting requests when it holds less. */
void qa_tenants_measured(qa_tenants_t *self, qa_vgpu_t *v, uint64_t taken, uint64_t now);

/* What the tenants of GPU gpu (an index of the host's) report holding, for the host-wide
 * figures: each process counted once however many sessions it opened (the largest of
 * its reports; a process is known by its pid as the arbiter sees it, SO_PEERCRED, not as
 * it claims), and never more than the GPU's memory (issue 8: a tenant reporting on many
 * connections showed 160 GiB used on an 8 GiB host). O(sessions log sessions). */
uint64_t qa_tenants_gpu_used(qa_tenants_t *self, unsigned gpu);
/* The same over every GPU of the host: the `memory_used_mb` of the totals. */
uint64_t qa_tenants_host_used(qa_tenants_t *self);

#endif
