/* sched.c - per-GPU compute scheduler: virtual time by share, token buckets for limits,
 * adaptive leases, bursts beside the holder (policy in sched.h). Single-threaded: the
 * arbiter's loop thread. */
#include "arbiter/sched.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#define UTIL_ALPHA 0.3 /* EWMA weight of a new sample, as the NVML figures */

enum pstate { P_IDLE, P_WAITING, P_HOLDING, P_BURST };

struct qa_sched_proc {
    qa_sched_ent_t *ent;    /* its vGPU */
    void *owner;            /* handed to the callbacks */
    enum pstate state;      /* idle, waiting, holding the GPU, or running a burst */
    qa_sched_proc_t *wnext; /* next in its vGPU's waiting queue */
    qa_sched_proc_t *next;  /* next process of its vGPU */
    uint64_t lease;         /* number of its current or last lease */
    qa_sched_proc_t *bnext; /* P_BURST: next in the scheduler's list of bursts */
    uint64_t bstart;        /* P_BURST: when the burst was granted */
    uint64_t bend;          /* P_BURST: when it ends */
};

struct qa_sched_ent {
    qa_sched_ent_t *next;   /* next vGPU of the scheduler, in creation order */
    unsigned share;         /* percent, 1..100 */
    unsigned limit;         /* percent, 0 = none */
    uint64_t vtime;         /* charged ns x 100 / share, plus catch-ups to the clock */
    int64_t bucket;         /* ns it may still use (limit only); negative after overrun */
    uint64_t refilled;      /* when bucket was last filled */
    uint64_t quantum;       /* its lease length now, ns */
    uint64_t charged;       /* ns charged in all */
    uint64_t util_base;     /* charged (plus in progress) at the last sample */
    double util;            /* percent, EWMA */
    bool fresh;             /* not sampled yet: the first sample starts the EWMA */
    uint64_t grants;        /* leases granted to its processes (not extensions) */
    qa_sched_proc_t *procs; /* its processes, owned */
    qa_sched_proc_t *whead; /* waiting queue: granted from the head */
    qa_sched_proc_t *wtail; /* appended at the tail */
    unsigned nwaiting;      /* processes in the waiting queue */
    bool throttled;         /* waits, but its bucket is too low to be granted */
    bool held;              /* granted nothing until released (its vGPU is moving) */
    uint64_t last_active;   /* when it last held the GPU or had a process waiting */
    double recent;          /* ns charged, decayed with a time constant of one window */
    uint64_t recent_at;     /* when recent was last decayed */
    unsigned nbursting;     /* its processes running a burst (0 or 1: one per GPU) */
    uint64_t bursts;        /* bursts granted to its processes */
};

struct qa_sched {
    qa_sched_params_t p;
    qa_sched_ops_t ops;
    qa_sched_ent_t *ents;    /* owned, in creation order */
    uint64_t vclock;         /* least vtime of the active vGPUs, never going back */
    qa_sched_proc_t *holder; /* the process holding the GPU, or NULL */
    qa_sched_proc_t *bursts; /* the process running a burst beside it (bnext: at most one,
                                kept as a list so that nothing assumes so but may_burst) */
    uint64_t lease_start;    /* when the holder's lease was granted */
    uint64_t grant_at;       /* when its latest grant or extension was sent */
    uint64_t lease_end;      /* grant_at + that grant's length */
    uint64_t charged_lease;  /* ns of this lease already charged (at extensions) */
    bool revoked;            /* a revoke was sent for this lease */
    uint64_t preempt_at;     /* when the holder is to be revoked for a vGPU owed time (its
                                minimum run then over); 0: no such vGPU waits */
    uint64_t charged_total;  /* ns charged to every vGPU ever, removed ones included */
    uint64_t util_base;      /* charged_total (plus in progress) at the last sample */
    uint64_t sampled;        /* time of the last sample; 0 before the first */
    double util;             /* percent of time under lease, EWMA */
    bool fresh;              /* util not computed yet */
    uint64_t hung;           /* leases taken back */
};

/* ---- helpers ----------------------------------------------------------------------- */

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static bool active(const qa_sched_t *self, const qa_sched_ent_t *e)
{
    return e->nwaiting > 0 || e->nbursting > 0 || (self->holder && self->holder->ent == e);
}

/* Active and not held back by its limit: it competes by virtual time. */
static bool competing(const qa_sched_t *self, const qa_sched_ent_t *e)
{
    return active(self, e) && !e->throttled && !e->held;
}

/* The bucket's cap: one window's worth of the limit, but never below one shortest
 * lease, or a small limit with a short window would never be granted. */
static int64_t bucket_cap(const qa_sched_t *self, const qa_sched_ent_t *e)
{
    return (int64_t)max_u64(self->p.window_ns * e->limit / 100, self->p.quantum_min_ns);
}

static void refill(const qa_sched_t *self, qa_sched_ent_t *e, uint64_t now)
{
    if (e->limit && now > e->refilled) {
        int64_t add = (int64_t)((now - e->refilled) * e->limit / 100);
        int64_t cap = bucket_cap(self, e);
        e->bucket = e->bucket > cap - add ? cap : e->bucket + add;
    }
    if (now > e->refilled)
        e->refilled = now;
}

/* vGPUs waiting or holding: O(vGPUs), so callers count once per decision. */
static unsigned count_active(const qa_sched_t *self)
{
    unsigned n = 0;
    for (const qa_sched_ent_t *o = self->ents; o; o = o->next)
        n += active(self, o);
    return n;
}

/* The lease e would get now with n vGPUs active, its bucket aside: its quantum, at
 * most window / n when others compete, at least quantum_min. */
static uint64_t wanted_len(const qa_sched_t *self, const qa_sched_ent_t *e, unsigned n)
{
    uint64_t q = e->quantum;
    if (n > 1)
        q = min_u64(q, self->p.window_ns / n);
    return max_u64(q, self->p.quantum_min_ns);
}

/* What a limited vGPU's bucket must hold to be granted: the lease it would get, but at
 * most half the bucket's cap (so that waiting for it leaves room before the bucket
 * overflows) and at least quantum_min. Granting at quantum_min alone would hand a busy
 * limited vGPU slivers of leases whose hand-over costs eat into its limit. */
static int64_t threshold(const qa_sched_t *self, const qa_sched_ent_t *e, unsigned n)
{
    uint64_t t = min_u64(wanted_len(self, e, n), (uint64_t)bucket_cap(self, e) / 2);
    return (int64_t)max_u64(t, self->p.quantum_min_ns);
}

static bool bucket_ok(const qa_sched_t *self, const qa_sched_ent_t *e, unsigned n)
{
    return !e->limit || e->bucket >= threshold(self, e, n);
}

/* Decays e's recent use to now. An exponential average with a time constant of one
 * window, so that recent / window is about its share of the GPU over the last window,
 * however its charges were spaced. O(1) per charge or question. */
static void decay(const qa_sched_t *self, qa_sched_ent_t *e, uint64_t now)
{
    if (now <= e->recent_at)
        return;
    double dt = (double)(now - e->recent_at);
    e->recent = self->p.window_ns ? e->recent * exp(-dt / (double)self->p.window_ns) : 0;
    e->recent_at = now;
}

static void charge(qa_sched_t *self, qa_sched_ent_t *e, uint64_t ns, uint64_t now)
{
    e->vtime += ns * 100 / e->share;
    e->charged += ns;
    self->charged_total += ns;
    if (e->limit)
        e->bucket -= (int64_t)ns;
    decay(self, e, now);
    e->recent += (double)ns;
}

/* Raises the virtual clock to the least vtime of the competing vGPUs other than skip. */
static void advance_vclock(qa_sched_t *self, const qa_sched_ent_t *skip)
{
    bool any = false;
    uint64_t least = 0;
    for (const qa_sched_ent_t *e = self->ents; e; e = e->next) {
        if (e != skip && competing(self, e) && (!any || e->vtime < least)) {
            least = e->vtime;
            any = true;
        }
    }
    if (any && least > self->vclock)
        self->vclock = least;
}

/* Charges the holder's lease up to now (or up to `used` ns after its start, when more)
 * beyond what was charged already, and moves the virtual clock with it while the holder
 * is still competing. Not only at decisions: a lone holder extends its lease for as long
 * as it likes without one, and a clock left at its first grant would let a vGPU idle
 * meanwhile rejoin that far behind and hold the GPU alone for as long (issue 8). */
static void charge_lease(qa_sched_t *self, uint64_t now, uint64_t used)
{
    uint64_t total = max_u64(now - self->lease_start, used);
    if (total > self->charged_lease) {
        charge(self, self->holder->ent, total - self->charged_lease, now);
        self->charged_lease = total;
        advance_vclock(self, NULL);
    }
}

static void enqueue(qa_sched_ent_t *e, qa_sched_proc_t *p)
{
    p->state = P_WAITING;
    p->wnext = NULL;
    if (e->wtail)
        e->wtail->wnext = p;
    else
        e->whead = p;
    e->wtail = p;
    e->nwaiting++;
}

static void unqueue(qa_sched_ent_t *e, qa_sched_proc_t *p)
{
    qa_sched_proc_t **pp = &e->whead, *prev = NULL;
    while (*pp && *pp != p) {
        prev = *pp;
        pp = &(*pp)->wnext;
    }
    assert(*pp == p);
    *pp = p->wnext;
    if (e->wtail == p)
        e->wtail = prev;
    p->wnext = NULL;
    e->nwaiting--;
}

/* A vGPU (re)joins the competition, back from idle or from being held back by its
 * limit: it starts at the virtual clock, so the time it did not compete is not saved
 * up as credit against the others. */
static void rejoin(qa_sched_t *self, qa_sched_ent_t *e)
{
    advance_vclock(self, e);
    if (e->vtime < self->vclock)
        e->vtime = self->vclock;
}

/* Refills e's bucket and says whether it may be granted now; marks it throttled while
 * it waits without enough in its bucket, and has it rejoin when that ends. */
static bool eligible(qa_sched_t *self, qa_sched_ent_t *e, unsigned n, uint64_t now)
{
    refill(self, e, now);
    if (!e->nwaiting || e->held)
        return false;
    if (!bucket_ok(self, e, n)) {
        e->throttled = true;
        return false;
    }
    if (e->throttled) {
        e->throttled = false;
        rejoin(self, e);
    }
    return true;
}

/* Whether another process would be granted before the holder (of vGPU h) if the GPU
 * were free now: a process of h itself (they take turns), or one of an eligible vGPU
 * that has used no more than h relative to its share. Otherwise the holder would be
 * picked again, and revoking it would only cost a hand-over. */
static bool would_go_first(qa_sched_t *self, const qa_sched_ent_t *h, uint64_t now)
{
    bool first = false;
    unsigned n = count_active(self);
    for (qa_sched_ent_t *e = self->ents; e; e = e->next) {
        if (eligible(self, e, n, now) && (e == h || e->vtime <= h->vtime))
            first = true;
    }
    return first;
}

/* The lease length for e now: wanted_len, and no more than its bucket holds. */
static uint64_t lease_len(const qa_sched_t *self, const qa_sched_ent_t *e)
{
    uint64_t q = wanted_len(self, e, count_active(self));
    if (e->limit && e->bucket > 0)
        q = min_u64(q, (uint64_t)e->bucket);
    return q;
}

/* Grants the GPU, when it is free, to the next waiting process. */
static void dispatch(qa_sched_t *self, uint64_t now)
{
    if (self->holder)
        return;
    advance_vclock(self, NULL);
    qa_sched_ent_t *best = NULL;
    unsigned n = count_active(self);
    for (qa_sched_ent_t *e = self->ents; e; e = e->next) {
        if (eligible(self, e, n, now) && (!best || e->vtime < best->vtime))
            best = e;
    }
    if (!best)
        return;
    qa_sched_proc_t *p = best->whead;
    unqueue(best, p);
    p->state = P_HOLDING;
    p->lease++;
    best->grants++;
    self->holder = p;
    uint64_t q = lease_len(self, best);
    self->lease_start = self->grant_at = now;
    self->lease_end = now + q;
    self->charged_lease = 0;
    self->revoked = false;
    self->preempt_at = 0;
    self->ops.grant(self->ops.arg, p->owner, p->lease, q);
}

/* Whether e is well below its share: its use over about the last window under
 * burst_below_pct% of its share. A vGPU using its whole share (a saturating tenant held to
 * its limit, or one getting more as others idle) is not, by a wide margin. */
static bool well_below(const qa_sched_t *self, qa_sched_ent_t *e, uint64_t now)
{
    decay(self, e, now);
    return e->recent * 10000.0 <
           (double)e->share * self->p.burst_below_pct * (double)self->p.window_ns;
}

/* Whether p, which waits while another vGPU holds the GPU, may run a burst beside it now:
 * bursts are on, none runs (one at a time: beside the holder, two contexts share the GPU
 * and both are charged in full; 63 tenants starting at once each bursting with 8 ms of
 * work queued made every drain last 300 ms, charged to each), its bucket holds one, and
 * it is well below its share. */
static bool may_burst(qa_sched_t *self, qa_sched_proc_t *p, uint64_t now)
{
    qa_sched_ent_t *e = p->ent;
    if (!self->p.burst_ns || !self->holder || self->holder->ent == e || self->bursts ||
        p->state != P_WAITING || e->held)
        return false;
    refill(self, e, now);
    if (e->limit && e->bucket < (int64_t)self->p.burst_ns)
        return false;
    return well_below(self, e, now);
}

/* Grants p, waiting, a burst of burst_ns beside the holder. */
static void grant_burst(qa_sched_t *self, qa_sched_proc_t *p, uint64_t now)
{
    qa_sched_ent_t *e = p->ent;
    unqueue(e, p);
    p->state = P_BURST;
    p->lease++;
    e->grants++;
    e->bursts++;
    e->nbursting++;
    p->bstart = now;
    p->bend = now + self->p.burst_ns;
    p->bnext = self->bursts;
    self->bursts = p;
    self->ops.grant(self->ops.arg, p->owner, p->lease, self->p.burst_ns);
}

/* Whether e, waiting, is owed the GPU by the holder's vGPU h: e may be granted, is below
 * its share, would go before h, and h is at or over its share (it uses what e is owed).
 * Two vGPUs below their share never take the GPU from each other: no ping-pong. */
static bool owed(qa_sched_t *self, qa_sched_ent_t *e, uint64_t now)
{
    qa_sched_ent_t *h = self->holder ? self->holder->ent : NULL;
    if (!h || h == e)
        return false;
    charge_lease(self, now, 0); /* h's use and virtual time up to now */
    if (!eligible(self, e, count_active(self), now))
        return false;
    decay(self, e, now);
    decay(self, h, now);
    double w = (double)self->p.window_ns;
    return e->recent * 100 < (double)e->share * w && h->recent * 100 >= (double)h->share * w &&
           e->vtime <= h->vtime;
}

/* e waits and may be owed the GPU: revoke the holder now if it ran its minimum
 * (preempt_ns since its grant), else at that instant (qa_sched_tick). */
static void preempt(qa_sched_t *self, qa_sched_ent_t *e, uint64_t now)
{
    if (!self->p.preempt_ns || !self->holder || self->revoked || !owed(self, e, now))
        return;
    uint64_t at = self->lease_start + self->p.preempt_ns;
    if (now < at) {
        self->preempt_at = at;
        return;
    }
    self->preempt_at = 0;
    self->revoked = true;
    self->ops.revoke(self->ops.arg, self->holder->owner, self->holder->lease);
}

/* p has just started waiting (or may run again): the GPU if free, else a burst beside
 * the holder if p's vGPU is well below its share, else the holder is preempted if it owes
 * p's vGPU time. */
static void serve(qa_sched_t *self, qa_sched_proc_t *p, uint64_t now)
{
    dispatch(self, now);
    if (may_burst(self, p, now))
        grant_burst(self, p, now);
    else if (p->state == P_WAITING)
        preempt(self, p->ent, now);
}

/* Ends p's burst at now: charges max(now - its start, used) to its vGPU (the drain of its
 * queued work is its own) and leaves p idle. */
static void end_burst(qa_sched_t *self, qa_sched_proc_t *p, uint64_t used, uint64_t now)
{
    qa_sched_ent_t *e = p->ent;
    charge(self, e, max_u64(now - p->bstart, used), now);
    advance_vclock(self, NULL);
    qa_sched_proc_t **pp = &self->bursts;
    while (*pp && *pp != p)
        pp = &(*pp)->bnext;
    assert(*pp == p);
    *pp = p->bnext;
    p->bnext = NULL;
    e->nbursting--;
    e->last_active = now;
    p->state = P_IDLE;
}

/* Ends the holder's lease (already charged) at now; it waits again when more. */
static void release(qa_sched_t *self, bool more, uint64_t now)
{
    qa_sched_proc_t *p = self->holder;
    self->holder = NULL;
    p->ent->last_active = now;
    if (more)
        enqueue(p->ent, p);
    else
        p->state = P_IDLE;
}

/* ---- life cycle -------------------------------------------------------------------- */

qa_sched_t *qa_sched_new(const qa_sched_params_t *params, const qa_sched_ops_t *ops)
{
    qa_sched_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->p = *params;
    if (self->p.quantum_min_ns == 0)
        self->p.quantum_min_ns = 1;
    if (self->p.quantum_max_ns < self->p.quantum_min_ns)
        self->p.quantum_max_ns = self->p.quantum_min_ns;
    if (self->p.burst_below_pct == 0 || self->p.burst_below_pct > 100)
        self->p.burst_below_pct = 100;
    self->ops = *ops;
    self->fresh = true;
    return self;
}

static void free_ent(qa_sched_ent_t *e)
{
    while (e->procs) {
        qa_sched_proc_t *p = e->procs;
        e->procs = p->next;
        free(p);
    }
    free(e);
}

void qa_sched_destroy(qa_sched_t **self_p)
{
    qa_sched_t *self = *self_p;
    if (!self)
        return;
    while (self->ents) {
        qa_sched_ent_t *e = self->ents;
        self->ents = e->next;
        free_ent(e);
    }
    free(self);
    *self_p = NULL;
}

qa_sched_ent_t *qa_sched_ent_new(qa_sched_t *self, unsigned share, unsigned limit, uint64_t now)
{
    qa_sched_ent_t *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->share = share ? share : 1;
    e->limit = limit;
    e->refilled = now;
    e->quantum = self->p.quantum_max_ns; /* batch work until it shows otherwise */
    e->vtime = self->vclock;
    e->fresh = true;
    qa_sched_ent_t **pp = &self->ents;
    while (*pp)
        pp = &(*pp)->next;
    *pp = e;
    return e;
}

void qa_sched_ent_destroy(qa_sched_t *self, qa_sched_ent_t **ent_p)
{
    qa_sched_ent_t *e = *ent_p;
    if (!e)
        return;
    assert(!e->procs); /* the caller ends its sessions first */
    qa_sched_ent_t **pp = &self->ents;
    while (*pp && *pp != e)
        pp = &(*pp)->next;
    if (*pp)
        *pp = e->next;
    free_ent(e);
    *ent_p = NULL;
}

void qa_sched_set(qa_sched_t *self, qa_sched_ent_t *e, unsigned share, unsigned limit, uint64_t now)
{
    refill(self, e, now); /* what it earned so far, at the old rate */
    if (!e->limit && limit)
        e->bucket = 0; /* a new limit starts empty: no burst above it */
    e->share = share ? share : 1;
    e->limit = limit;
    if (e->limit && e->bucket > bucket_cap(self, e))
        e->bucket = bucket_cap(self, e);
    dispatch(self, now); /* a raised limit may make it eligible at once */
}

void qa_sched_hold(qa_sched_t *self, qa_sched_ent_t *e, bool hold, uint64_t now)
{
    e->held = hold;
    if (hold && self->holder && self->holder->ent == e && !self->revoked) {
        charge_lease(self, now, 0);
        self->revoked = true;
        self->ops.revoke(self->ops.arg, self->holder->owner, self->holder->lease);
    }
    if (!hold) {
        /* The time it was held is not saved up as credit: it starts level. */
        e->throttled = false;
        rejoin(self, e);
        if (e->whead)
            serve(self, e->whead, now);
        else
            dispatch(self, now);
    }
}

qa_sched_proc_t *qa_sched_proc_new(qa_sched_t *self, qa_sched_ent_t *ent, void *owner)
{
    (void)self;
    qa_sched_proc_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->ent = ent;
    p->owner = owner;
    p->next = ent->procs;
    ent->procs = p;
    return p;
}

void qa_sched_proc_destroy(qa_sched_t *self, qa_sched_proc_t **proc_p, uint64_t now)
{
    qa_sched_proc_t *p = *proc_p;
    if (!p)
        return;
    qa_sched_ent_t *e = p->ent;
    if (p->state == P_WAITING) {
        unqueue(e, p);
        e->last_active = now;
    }
    if (p->state == P_BURST)
        end_burst(self, p, 0, now);
    bool held = p->state == P_HOLDING;
    if (held) {
        charge_lease(self, now, 0);
        release(self, false, now);
    }
    qa_sched_proc_t **pp = &e->procs;
    while (*pp && *pp != p)
        pp = &(*pp)->next;
    if (*pp)
        *pp = p->next;
    free(p);
    *proc_p = NULL;
    if (held)
        dispatch(self, now);
}

/* ---- events ------------------------------------------------------------------------ */

void qa_sched_request(qa_sched_t *self, qa_sched_proc_t *p, uint64_t now)
{
    if (p->state != P_IDLE)
        return;
    qa_sched_ent_t *e = p->ent;
    if (!active(self, e)) {
        e->throttled = false;
        /* A pause shorter than a window is not idleness (a process that synchronises
         * between bursts): it keeps its place. Longer, it starts level. */
        if (now - e->last_active >= self->p.window_ns || e->last_active == 0)
            rejoin(self, e);
    }
    enqueue(e, p);
    serve(self, p, now);
}

int qa_sched_extend(qa_sched_t *self, qa_sched_proc_t *p, uint64_t lease, uint64_t now)
{
    if (p->state == P_BURST && lease == p->lease)
        return 0; /* a burst runs to its end; what is left waits in the queue */
    if (p != self->holder || lease != p->lease)
        return -ESTALE;
    if (self->revoked)
        return 0; /* already told to stop */
    qa_sched_ent_t *e = p->ent;
    charge_lease(self, now, 0);
    if (e->held || would_go_first(self, e, now) ||
        (e->limit && e->bucket < (int64_t)self->p.quantum_min_ns)) {
        self->revoked = true;
        self->ops.revoke(self->ops.arg, p->owner, p->lease);
        return 0;
    }
    /* Asking for more is using the lease to the end: batch work. */
    e->quantum = min_u64(e->quantum * 2, self->p.quantum_max_ns);
    uint64_t q = lease_len(self, e);
    self->grant_at = now;
    self->lease_end = now + q;
    self->ops.grant(self->ops.arg, p->owner, p->lease, q);
    return 0;
}

int qa_sched_return(qa_sched_t *self, qa_sched_proc_t *p, uint64_t lease, uint64_t used, bool more,
                    uint64_t now)
{
    if (p->state == P_BURST && lease == p->lease) {
        /* capped as a holder's is: at its end plus the grace */
        end_burst(self, p, min_u64(used, p->bend + self->p.grace_ns - p->bstart), now);
        if (more) {
            /* A frame of several kernels: the next burst at once while still well below
             * its share; else its turn in the queue. */
            enqueue(p->ent, p);
            serve(self, p, now);
            return 0;
        }
        dispatch(self, now);
        return 0;
    }
    if (p != self->holder || lease != p->lease) {
        /* The return of a lease taken back (hung) crossed our revoke: the process still
         * has work, and waits for a grant since it asked by this return. */
        if (more && p->state == P_IDLE && lease != 0 && lease <= p->lease)
            qa_sched_request(self, p, now);
        return -ESTALE;
    }
    qa_sched_ent_t *e = p->ent;
    /* used is the tenant's word: never more than a hung holder would be charged (the
     * lease's end plus the grace), so that a huge one cannot wrap the charge around, turn
     * the bucket's debit into a credit, or push the virtual clock to its end. */
    charge_lease(self, now, min_u64(used, self->lease_end + self->p.grace_ns - self->lease_start));
    if (!self->revoked) {
        uint64_t len = self->lease_end - self->grant_at;
        uint64_t ran = now - self->grant_at;
        if (!more && ran < len / 2)
            e->quantum = max_u64(e->quantum / 2, self->p.quantum_min_ns);
        else if (ran >= len - len / 4)
            e->quantum = min_u64(e->quantum * 2, self->p.quantum_max_ns);
    }
    release(self, more, now);
    dispatch(self, now);
    return 0;
}

void qa_sched_tick(qa_sched_t *self, uint64_t now)
{
    for (qa_sched_proc_t **pp = &self->bursts; *pp;) {
        qa_sched_proc_t *b = *pp;
        if (now < b->bend + self->p.grace_ns) {
            pp = &b->bnext;
            continue;
        }
        end_burst(self, b, 0, now); /* unlinks b: *pp is the next one */
        self->hung++;
        self->ops.revoke(self->ops.arg, b->owner, b->lease);
    }
    if (self->holder && self->preempt_at && now >= self->preempt_at) {
        self->preempt_at = 0;
        for (qa_sched_ent_t *e = self->ents; e && !self->revoked; e = e->next) {
            if (e->nwaiting)
                preempt(self, e, now);
        }
    }
    qa_sched_proc_t *p = self->holder;
    if (p && now >= self->lease_end + self->p.grace_ns) {
        charge_lease(self, now, 0); /* the whole time it kept the GPU */
        self->hung++;
        release(self, false, now);
        self->ops.revoke(self->ops.arg, p->owner, p->lease);
    }
    dispatch(self, now);
}

uint64_t qa_sched_deadline(const qa_sched_t *self)
{
    uint64_t when = UINT64_MAX;
    for (const qa_sched_proc_t *b = self->bursts; b; b = b->bnext)
        when = min_u64(when, b->bend + self->p.grace_ns);
    if (self->holder && self->preempt_at)
        when = min_u64(when, self->preempt_at);
    if (self->holder)
        return min_u64(when, self->lease_end + self->p.grace_ns);
    unsigned n = count_active(self);
    for (const qa_sched_ent_t *e = self->ents; e; e = e->next) {
        if (!e->nwaiting || e->held)
            continue;
        if (bucket_ok(self, e, n))
            return min_u64(when, e->refilled); /* cannot happen after a dispatch; be safe */
        /* When the bucket reaches its threshold, rounded up. */
        uint64_t short_by = (uint64_t)(threshold(self, e, n) - e->bucket);
        uint64_t wait = (short_by * 100 + e->limit - 1) / e->limit;
        when = min_u64(when, e->refilled + wait);
    }
    return when;
}

/* ---- figures ----------------------------------------------------------------------- */

static double ewma(double old, double sample, bool first)
{
    return first ? sample : old + UTIL_ALPHA * (sample - old);
}

static double percent(uint64_t part, uint64_t whole)
{
    double x = whole ? 100.0 * (double)part / (double)whole : 0;
    return x > 100 ? 100 : x;
}

void qa_sched_sample(qa_sched_t *self, uint64_t now)
{
    /* The running lease counts as used up to now; its final charge is never less. */
    uint64_t running = 0, bursting = 0;
    if (self->holder && now - self->lease_start > self->charged_lease)
        running = now - self->lease_start - self->charged_lease;
    for (const qa_sched_proc_t *b = self->bursts; b; b = b->bnext)
        bursting += now > b->bstart ? now - b->bstart : 0;
    bool first = self->sampled == 0;
    uint64_t wall = now > self->sampled ? now - self->sampled : 0;
    for (qa_sched_ent_t *e = self->ents; e; e = e->next) {
        uint64_t total = e->charged + (self->holder && self->holder->ent == e ? running : 0);
        for (const qa_sched_proc_t *b = self->bursts; b; b = b->bnext)
            total += b->ent == e && now > b->bstart ? now - b->bstart : 0;
        if (!first && wall)
            e->util = ewma(e->util, percent(total - e->util_base, wall), e->fresh);
        e->fresh = first;
        e->util_base = total;
    }
    uint64_t total = self->charged_total + running + bursting;
    if (!first && wall)
        self->util = ewma(self->util, percent(total - self->util_base, wall), self->fresh);
    self->fresh = first;
    self->util_base = total;
    self->sampled = now;
}

double qa_sched_ent_util(const qa_sched_ent_t *ent)
{
    return ent->util;
}

double qa_sched_util(const qa_sched_t *self)
{
    return self->util;
}

uint64_t qa_sched_ent_charged(const qa_sched_ent_t *ent)
{
    return ent->charged;
}

uint64_t qa_sched_ent_grants(const qa_sched_ent_t *ent)
{
    return ent->grants;
}

uint64_t qa_sched_ent_quantum(const qa_sched_ent_t *ent)
{
    return ent->quantum;
}

unsigned qa_sched_ent_active(const qa_sched_ent_t *ent)
{
    unsigned n = ent->nwaiting + ent->nbursting;
    for (const qa_sched_proc_t *p = ent->procs; p; p = p->next)
        n += p->state == P_HOLDING;
    return n;
}

bool qa_sched_ent_holding(const qa_sched_ent_t *ent)
{
    for (const qa_sched_proc_t *p = ent->procs; p; p = p->next) {
        if (p->state == P_HOLDING || p->state == P_BURST)
            return true;
    }
    return false;
}

uint64_t qa_sched_proc_lease(const qa_sched_proc_t *proc)
{
    return proc->lease;
}

void qa_sched_proc_continue(qa_sched_proc_t *proc, uint64_t lease)
{
    if (lease > proc->lease)
        proc->lease = lease;
}

bool qa_sched_proc_waiting(const qa_sched_proc_t *proc)
{
    return proc->state == P_WAITING;
}

uint64_t qa_sched_hung(const qa_sched_t *self)
{
    return self->hung;
}

uint64_t qa_sched_ent_bursts(const qa_sched_ent_t *ent)
{
    return ent->bursts;
}
