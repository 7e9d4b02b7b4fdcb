/* lease.h - this process's compute lease (PROTOCOL.md "Compute tokens"), as a policy
 * core: when to ask the arbiter for a lease, when to ask for more time, when to give it
 * back (its end, a revoke, or the process went idle) and what to say it used.
 *
 * The rules (docs/shim.md "Compute"):
 *   - a thread waiting at the launch gate makes the process ask (tok_req); a request
 *     unanswered for 500 ms is sent again;
 *   - a grant opens the gate until the lease's end, counted from its receipt; grants are
 *     numbered upwards per session, and one that is neither an extension of the lease
 *     held nor numbered above every lease had (it answers a tok_ext that crossed our
 *     tok_ret) is dropped, as is an extension that crosses our decision to give back;
 *   - while launches go on, tok_ext goes out about 2 ms before the end, once per grant;
 *   - the lease ends at its end, at a tok_revoke, or when the process went idle: no
 *     launch for 2 ms (at most a quarter of the lease) and nothing left queued (a drain,
 *     with the gate still open, came back at once: one that lasted means queued work);
 *   - ending closes the gate and drains: the work queued under the lease is waited for,
 *     and tok_ret says the time from the grant to the end of that work, so that work
 *     queued deep is charged to its owner; with more when a thread waits at the gate or
 *     the process launched within 2 ms of the end (not counting an idle end);
 *   - a new session forgets the lease (the arbiter's are per session) and closes the
 *     gate; an unreachable arbiter opens it for good until an exchange succeeds again, as
 *     does an arbiter that refuses tok_req (for that session): nobody would grant a lease.
 *
 * Pure like arbiter/sched.c: no threads, no I/O, no clock of its own. Every event is
 * given `now` (CLOCK_MONOTONIC ns) where time matters; what the process is doing comes
 * in as arguments (launches seen, threads waiting, a drain that ended); decisions go out
 * through the callbacks given at creation. The shell is the agent thread
 * (shim/agent.c), which owns the connection, the timers and the drains. Single-threaded:
 * the agent thread. */
#ifndef QS_LEASE_H
#define QS_LEASE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct qs_lease qs_lease_t;

/* The gate's end that lets every launch through: nothing is enforced (no arbiter, or
 * one that grants no leases). Equal to QS_GATE_FREE (shim/gate.h). */
#define QS_LEASE_FREE UINT64_MAX

/* A message for the arbiter. */
typedef enum { QS_LEASE_REQ = 1, QS_LEASE_EXT, QS_LEASE_RET } qs_lease_kind_t;
typedef struct qs_lease_msg {
    qs_lease_kind_t kind; /* tok_req, tok_ext or tok_ret */
    uint64_t lease;       /* the lease extended or returned (EXT, RET) */
    uint64_t used;        /* RET: ns from the first grant to the end of the drained work */
    bool more;            /* RET: the process has more work (queue it again) */
} qs_lease_msg_t;

/* What the core decided. The callbacks must not call qs_lease_* functions. */
typedef struct qs_lease_ops {
    /* Set the launch gate: 0 closes it, QS_LEASE_FREE opens it for good, anything else
     * opens it until that instant (monotonic ns). */
    void (*gate)(void *arg, uint64_t end);
    /* Start a drain: wait (elsewhere) for the work the process queued, from after the
     * gate's latest change on. Its end comes back through qs_lease_drained(); a drain
     * asked later supersedes one under way. */
    void (*drain)(void *arg);
    /* Send *m (borrowed for the call). The shell sends it once the qs_lease_* call that
     * asked returns (a send may run hooks that call in here) and reports the outcome
     * with qs_lease_sent(). */
    void (*send)(void *arg, const qs_lease_msg_t *m);
    void *arg; /* passed to each */
} qs_lease_ops_t;

/* A lease core with ops (copied): no lease, the gate closed (as qs_gate_start() leaves
 * it). NULL when out of memory. */
qs_lease_t *qs_lease_new(const qs_lease_ops_t *ops);
/* Frees *self_p and sets it to NULL; NULL is a no-op. Calls no callback. */
void qs_lease_destroy(qs_lease_t **self_p);

/* ---- events ------------------------------------------------------------------------ */

/* A look at the process (the agent's round, about every millisecond while a lease is
 * held or awaited): launched says a launch passed the gate since the last look, waiting
 * how many threads wait at the gate now. Asks, extends, ends the lease as due. Call it
 * only while in session with the arbiter. */
void qs_lease_look(qs_lease_t *self, uint64_t now, bool launched, int waiting);
/* The drain asked last ended at end (monotonic ns) after took ns. Acted on at the next
 * look. */
void qs_lease_drained(qs_lease_t *self, uint64_t end, uint64_t took);
/* tok_grant{lease, ns} arrived at now. */
void qs_lease_grant(qs_lease_t *self, uint64_t lease, uint64_t ns, uint64_t now);
/* tok_revoke{lease} arrived: the gate closes now if that is the lease held. */
void qs_lease_revoke(qs_lease_t *self, uint64_t lease);
/* An error without id arrived: it answers our tok_req when one is out and no lease is
 * held (the arbiter grants no leases). Returns true when taken so (then the gate is
 * open for good until the next session; the caller says why, once); false otherwise. */
bool qs_lease_refused(qs_lease_t *self);
/* A new session began: the old one's lease is void; the gate closes. */
void qs_lease_session(qs_lease_t *self);
/* The arbiter cannot be reached: the lease is void and the gate opens for good. */
void qs_lease_unreachable(qs_lease_t *self);
/* An exchange with the arbiter succeeded: a gate opened for an outage closes again. */
void qs_lease_reached(qs_lease_t *self);
/* The send of *m asked through ops.send finished with rc (0 or -errno) at now. */
void qs_lease_sent(qs_lease_t *self, const qs_lease_msg_t *m, int rc, uint64_t now);

/* ---- state ------------------------------------------------------------------------- */

/* Whether the agent must watch the arbiter closely: a lease is held or asked for, or
 * threads wait for one (waiting), and the arbiter grants leases. */
bool qs_lease_active(const qs_lease_t *self, int waiting);
/* The number of the lease held; 0 when none. */
uint64_t qs_lease_held(const qs_lease_t *self);

#endif
