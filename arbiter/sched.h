/* sched.h - one physical GPU's compute scheduler: which process may submit GPU work,
 * and for how long (PROTOCOL.md "Compute tokens", docs/compute.md).
 *
 * Entities are vGPUs (a share and an optional limit, in percent of the GPU); each has
 * processes, and a process is idle, waiting for the GPU, or holding it under a
 * numbered lease. At most one process holds the GPU, beside which a process of another
 * vGPU well below its share may run a short burst. Policy:
 *   - the waiting vGPU with the least virtual time (charged ns x 100 / share) goes
 *     next, its waiting processes in turn (round robin); a vGPU that starts waiting
 *     after being idle for a window or more, or that its limit held back, joins at the
 *     GPU's virtual clock (the least virtual time of the vGPUs competing, which follows
 *     every charge, a lone holder's extensions included), so idle or throttled time is
 *     not saved up as credit;
 *   - a vGPU with a limit has a token bucket filled at limit% of wall time, capped at
 *     one window's worth (at least quantum_min); it is granted once the bucket holds
 *     the lease it would get, but no more than half the cap and no less than
 *     quantum_min;
 *   - each vGPU's lease length (its quantum) doubles when it uses a lease to the end
 *     or asks for an extension, and halves when it gives one back before half of it
 *     ran, within [quantum_min, quantum_max]; with n vGPUs waiting a lease is at most
 *     window / n, and never longer than the bucket allows;
 *   - an extension is granted unless another process would be granted before the
 *     holder if the GPU were free (one of its own vGPU, or one of an eligible vGPU
 *     with no more virtual time), or the holder's bucket is below quantum_min;
 *   - a burst: a process that asks while another vGPU holds the GPU, and whose vGPU is
 *     well below its share (its use over about the last window, an exponential average,
 *     under burst_below_pct% of its share) is granted a lease of burst_ns at once,
 *     beside the holder (the GPU time-slices the two, as it does without us), unless
 *     another burst runs: one at a time, so that overlap stays between two contexts. A burst is charged like any lease (from its grant to the end of its
 *     drained work) but not extended; work left over waits in the queue. So an
 *     interactive vGPU gets its work running within a round trip instead of after the
 *     holder's lease, while a vGPU at or over its share never runs beside another;
 *   - preemption: a process waiting while its vGPU is below its share (its recent use),
 *     would go before the holder, and the holder's vGPU is at or over its share, has the
 *     holder's lease revoked once that lease ran preempt_ns (at once if it has); the
 *     holder drains and gives back (its queued work charged to it), and the waiting one
 *     goes next. Checked when it asks (no burst possible) and when its burst ends with
 *     work left. Two vGPUs below their share never preempt each other, nor does one at
 *     or over its share: no ping-pong;
 *   - a lease not returned grace ns after its end is taken back and fully charged.
 *
 * No I/O and no clock: every call is given `now` (CLOCK_MONOTONIC ns), and decisions
 * come out through the callbacks given at creation, so the policy is tested with a
 * fake clock. The caller calls qa_sched_tick() at qa_sched_deadline(), which changes
 * only when a qa_sched_* call is made. Single-threaded: the arbiter's loop thread. */
#ifndef QA_SCHED_H
#define QA_SCHED_H

#include <stdbool.h>
#include <stdint.h>

typedef struct qa_sched qa_sched_t;
typedef struct qa_sched_ent qa_sched_ent_t;   /* a vGPU */
typedef struct qa_sched_proc qa_sched_proc_t; /* one process of a vGPU */

typedef struct qa_sched_params {
    uint64_t window_ns;       /* sched_window_ms: share period; bucket cap at 100% */
    uint64_t quantum_min_ns;  /* shortest lease */
    uint64_t quantum_max_ns;  /* longest lease (>= quantum_min_ns) */
    uint64_t grace_ns;        /* a holder this late past its lease's end is hung */
    uint64_t burst_ns;        /* longest burst beside the holder; 0: no bursts */
    unsigned burst_below_pct; /* a vGPU bursts while its recent use is under this percent
                                 of its share (1..100) */
    uint64_t preempt_ns;      /* a holder runs this long before it may be preempted; 0:
                                 never preempted */
} qa_sched_params_t;

/* What the scheduler decided. The callbacks must not call qa_sched_* functions. */
typedef struct qa_sched_ops {
    /* Send tok_grant{lease, ns} to owner's process: a new lease, or (same number as
     * the lease it holds) an extension. */
    void (*grant)(void *arg, void *owner, uint64_t lease, uint64_t ns);
    /* Send tok_revoke{lease}: give the GPU back soon (others wait, the limit is
     * reached, or the lease was taken back from a hung holder). */
    void (*revoke)(void *arg, void *owner, uint64_t lease);
    void *arg; /* passed to each */
} qa_sched_ops_t;

/* A scheduler with params and ops (both copied). NULL when out of memory. */
qa_sched_t *qa_sched_new(const qa_sched_params_t *params, const qa_sched_ops_t *ops);
/* Frees the scheduler with every entity and process still in it; sets *self_p to
 * NULL. Callbacks are not called. NULL is a no-op. */
void qa_sched_destroy(qa_sched_t **self_p);

/* ---- entities (vGPUs) and processes ------------------------------------------------ */

/* Adds a vGPU with share (1..100) and limit (0 = none, else share..100 percent).
 * Returns it, owned by the scheduler, or NULL when out of memory. */
qa_sched_ent_t *qa_sched_ent_new(qa_sched_t *self, unsigned share, unsigned limit, uint64_t now);
/* Removes *ent_p, whose processes must all have been destroyed; sets it to NULL. */
void qa_sched_ent_destroy(qa_sched_t *self, qa_sched_ent_t **ent_p);
/* Changes share and limit live: the next pick, grant or extension uses them. */
void qa_sched_set(qa_sched_t *self, qa_sched_ent_t *ent, unsigned share, unsigned limit,
                  uint64_t now);

/* hold: ent's processes are granted nothing (they may still ask, and wait), a lease one
 * of them holds is revoked, and its extensions are refused; its vGPU is moving to
 * another GPU. !hold: they compete again from now, level with the others (the time it
 * was held is no credit). */
void qa_sched_hold(qa_sched_t *self, qa_sched_ent_t *ent, bool hold, uint64_t now);

/* Adds an idle process to ent; owner is handed to the callbacks. NULL when out of
 * memory. */
qa_sched_proc_t *qa_sched_proc_new(qa_sched_t *self, qa_sched_ent_t *ent, void *owner);
/* Removes *proc_p (its session ended) and sets it to NULL: a lease it holds is given
 * back at once (charged until now) and the GPU granted to the next one. */
void qa_sched_proc_destroy(qa_sched_t *self, qa_sched_proc_t **proc_p, uint64_t now);

/* ---- events ------------------------------------------------------------------------ */

/* tok_req: proc has work. Ignored while it waits or holds the GPU (or a burst). Granted
 * at once when the GPU is free, or a burst when its vGPU may have one; else it waits. */
void qa_sched_request(qa_sched_t *self, qa_sched_proc_t *proc, uint64_t now);
/* tok_ext: extends proc's lease when nothing else could be granted now and its limit
 * allows (a grant of the same number), else revokes it; a burst is neither extended nor
 * revoked (it runs to its end). Returns 0, or -ESTALE (and does nothing) when proc does
 * not hold that lease. */
int qa_sched_extend(qa_sched_t *self, qa_sched_proc_t *proc, uint64_t lease, uint64_t now);
/* tok_ret: proc's lease is over; used is the process's own measure (ns since the
 * grant, taken as at most the lease's end plus the grace); the larger of it and the
 * scheduler's clock is charged. With more, proc waits
 * again. Returns 0, or -ESTALE when proc does not hold that lease: nothing is charged,
 * but the return of an earlier lease of an idle proc (one taken back while the process
 * was finishing) with more queues it as qa_sched_request() does. */
int qa_sched_return(qa_sched_t *self, qa_sched_proc_t *proc, uint64_t lease, uint64_t used,
                    bool more, uint64_t now);
/* Takes the GPU back from a hung holder and grants waiting processes whose bucket has
 * filled: call it at qa_sched_deadline(). Harmless at any other time. */
void qa_sched_tick(qa_sched_t *self, uint64_t now);
/* When qa_sched_tick must run next; UINT64_MAX when nothing is due. */
uint64_t qa_sched_deadline(const qa_sched_t *self);

/* ---- figures ----------------------------------------------------------------------- */

/* Updates the utilisation figures: call it periodically (the arbiter samples every
 * 500 ms). Each is an EWMA of time charged (or being used now) over wall time. */
void qa_sched_sample(qa_sched_t *self, uint64_t now);
/* Percent of the GPU's time ent used lately, 0..100. */
double qa_sched_ent_util(const qa_sched_ent_t *ent);
/* Percent of the GPU's time under lease lately, all vGPUs together, 0..100. */
double qa_sched_util(const qa_sched_t *self);
/* Ns charged to ent since it was added. */
uint64_t qa_sched_ent_charged(const qa_sched_ent_t *ent);
/* Leases granted to ent's processes since it was added; extensions are not counted. */
uint64_t qa_sched_ent_grants(const qa_sched_ent_t *ent);
/* Ent's current lease length, ns (adaptive quantum). */
uint64_t qa_sched_ent_quantum(const qa_sched_ent_t *ent);
/* Processes of ent waiting for the GPU, or holding it or a burst. */
unsigned qa_sched_ent_active(const qa_sched_ent_t *ent);
/* Whether a process of ent holds the GPU or runs a burst now (a vGPU about to move
 * waits for both to come back). */
bool qa_sched_ent_holding(const qa_sched_ent_t *ent);
/* The number of proc's current or last lease (0: none yet). */
uint64_t qa_sched_proc_lease(const qa_sched_proc_t *proc);
/* proc, just added, is a process that held leases up to `lease` under another scheduler
 * (its vGPU moved here): its leases go on numbering from there, as the shim drops a grant
 * numbered below one it had. */
void qa_sched_proc_continue(qa_sched_proc_t *proc, uint64_t lease);
/* Whether proc waits for the GPU (it asked and was not granted yet). */
bool qa_sched_proc_waiting(const qa_sched_proc_t *proc);
/* Leases taken back from hung holders since creation. */
uint64_t qa_sched_hung(const qa_sched_t *self);
/* Bursts granted to ent's processes since it was added (counted in its grants too). */
uint64_t qa_sched_ent_bursts(const qa_sched_ent_t *ent);

#endif
