/* lease.c - the compute lease's state machine (policy in lease.h). Single-threaded: the
 * agent thread. */
#include "shim/lease.h"

#include <stdlib.h>

#define MS_NS 1000000ull
#define EXT_NS (2 * MS_NS)     /* PROTOCOL.md: tok_ext about 2 ms before the lease ends */
#define IDLE_NS (2 * MS_NS)    /* no launch this long (at most a quarter lease): the lease goes */
#define BUSY_NS 100000ull      /* a drain this long found queued work: the process is busy */
#define REASK_NS (500 * MS_NS) /* a request unanswered this long is sent again */
#define MAX_LEASE_NS (60000ull * MS_NS) /* a longer grant is taken as this (hostile input) */

/* What the lease held is doing: in use; checking (with a drain, gate open) whether the
 * process went idle; being given back (gate closed, drain under way). */
enum phase { L_HELD = 0, L_IDLE_CHECK, L_RETURNING };

struct qs_lease {
    qs_lease_ops_t ops;
    uint64_t gate;        /* what the gate was last set to */
    uint64_t lease;       /* the number of the lease held; 0: none */
    uint64_t since;       /* when its first grant arrived: `used` counts from here */
    uint64_t end;         /* when it ends */
    uint64_t len;         /* ns of its latest grant */
    uint64_t last_launch; /* when a look last saw a launch (or the grant came) */
    uint64_t highest;     /* the highest lease number had this session */
    uint64_t asked;       /* when the last tok_req (or tok_ret with more) went out */
    bool requested;       /* tok_req (or tok_ret with more) sent, no grant since */
    bool ext_sent;        /* tok_ext sent for the current end */
    bool revoked;         /* tok_revoke came for the lease held */
    bool launched;        /* a launch went through during the lease held */
    enum phase phase;     /* what the lease held is doing */
    uint64_t idle_from;   /* when the idle check began */
    bool idle_return;     /* the lease goes back because launches stopped */
    bool no_tokens;       /* the arbiter refused tok_req: nothing is enforced this session */
    bool drained;         /* the drain asked last ended, not acted on yet: */
    uint64_t drain_end;   /*   when */
    uint64_t drain_took;  /*   after how long */
};

static void set_gate(qs_lease_t *self, uint64_t end)
{
    self->gate = end;
    self->ops.gate(self->ops.arg, end);
}

static void send(qs_lease_t *self, qs_lease_kind_t kind, uint64_t lease, uint64_t used, bool more)
{
    qs_lease_msg_t m = {.kind = kind, .lease = lease, .used = used, .more = more};
    self->ops.send(self->ops.arg, &m);
}

/* Asks for a drain; a result not acted on yet is of an earlier one, and stale. */
static void drain(qs_lease_t *self)
{
    self->drained = false;
    self->ops.drain(self->ops.arg);
}

/* The drain's result, once: true and its figures when it ended. */
static bool take_drained(qs_lease_t *self, uint64_t *end, uint64_t *took)
{
    if (!self->drained)
        return false;
    self->drained = false;
    *end = self->drain_end;
    *took = self->drain_took;
    return true;
}

/* Forgets the lease (the session that granted it is gone) and closes the gate, or opens
 * it for good with free. Waiting threads ask again in the new session; a drain under way
 * finishes unheeded. */
static void drop(qs_lease_t *self, bool free)
{
    self->lease = 0;
    self->phase = L_HELD;
    self->highest = 0;
    self->requested = false;
    self->revoked = false;
    self->no_tokens = false;
    set_gate(self, free ? QS_LEASE_FREE : 0);
}

/* Ends the lease held: closes the gate, then drains, so that the drain sees every launch
 * made under the lease. idle says the lease goes back because launches stopped. */
static void begin_return(qs_lease_t *self, bool idle)
{
    set_gate(self, 0);
    drain(self);
    self->phase = L_RETURNING;
    self->idle_return = idle;
}

/* The drain ended at done: gives the lease back with the time used from its grant to
 * the end of its work, and more when a thread waits or the process launched lately. */
static void finish_return(qs_lease_t *self, uint64_t done, int waiting)
{
    uint64_t lease = self->lease;
    bool more = waiting > 0 || (!self->idle_return && done > self->last_launch &&
                                done - self->last_launch < IDLE_NS);
    self->lease = 0;
    self->phase = L_HELD;
    self->revoked = false;
    send(self, QS_LEASE_RET, lease, done > self->since ? done - self->since : 0, more);
}

/* The idle threshold of the lease held: IDLE_NS, at most a quarter of the lease. */
static uint64_t idle_ns(const qs_lease_t *self)
{
    return self->len / 4 < IDLE_NS ? self->len / 4 : IDLE_NS;
}

qs_lease_t *qs_lease_new(const qs_lease_ops_t *ops)
{
    qs_lease_t *self = calloc(1, sizeof *self);
    if (self)
        self->ops = *ops;
    return self;
}

void qs_lease_destroy(qs_lease_t **self_p)
{
    free(*self_p);
    *self_p = NULL;
}

/* The queued work is waited for with the gate still open while checking for idleness: a
 * process that queued deep and waits for the result is busy, not idle (the drain
 * lasted), and one that launches meanwhile keeps its lease. */
void qs_lease_look(qs_lease_t *self, uint64_t now, bool launched, int waiting)
{
    uint64_t end, took;
    if (self->no_tokens)
        return;
    if (launched) {
        self->launched = true;
        self->last_launch = now;
    }
    if (!self->lease) {
        /* Asked again when unanswered for long: the arbiter ignores a second tok_req
         * while we are queued, and a lost one must not leave threads waiting forever. */
        if (waiting && (!self->requested || now - self->asked >= REASK_NS))
            send(self, QS_LEASE_REQ, 0, 0, false);
        return;
    }
    if (self->phase == L_RETURNING) {
        if (take_drained(self, &end, &took))
            finish_return(self, end, waiting);
        return;
    }
    bool over = self->revoked || now >= self->end;
    if (!over && !self->ext_sent && now + EXT_NS >= self->end && (self->launched || waiting)) {
        self->ext_sent = true;
        send(self, QS_LEASE_EXT, self->lease, 0, false);
    }
    if (over) {
        begin_return(self, false);
    } else if (self->phase == L_IDLE_CHECK) {
        if (!take_drained(self, &end, &took))
            return;
        self->phase = L_HELD;
        if (took >= BUSY_NS || self->last_launch > self->idle_from || waiting)
            self->last_launch = end; /* busy: its queued work ran until now */
        else
            begin_return(self, true);
    } else if (now - self->last_launch >= idle_ns(self) && !waiting) {
        self->phase = L_IDLE_CHECK;
        self->idle_from = now;
        drain(self);
    }
}

void qs_lease_drained(qs_lease_t *self, uint64_t end, uint64_t took)
{
    self->drained = true;
    self->drain_end = end;
    self->drain_took = took;
}

/* Taken for a new lease, a grant answering a tok_ext that crossed our tok_ret would let
 * us launch while the arbiter thinks the GPU free, and our tok_ret for it would be
 * ignored, leaving us waiting for a grant that never comes. An extension crossing our
 * decision to give back leaves the gate closed for the drain. */
void qs_lease_grant(qs_lease_t *self, uint64_t lease, uint64_t ns, uint64_t now)
{
    bool extension = self->lease && lease == self->lease;
    if (lease == 0 || (extension && self->phase == L_RETURNING) ||
        (!extension && lease <= self->highest))
        return;
    if (ns > MAX_LEASE_NS)
        ns = MAX_LEASE_NS;
    if (!extension) {
        self->lease = self->highest = lease;
        self->phase = L_HELD;
        self->since = now;
        self->last_launch = now;
        self->launched = false;
        self->revoked = false;
    }
    self->end = now + ns;
    self->len = ns;
    self->ext_sent = false;
    self->requested = false;
    if (!self->revoked)
        set_gate(self, self->end);
}

void qs_lease_revoke(qs_lease_t *self, uint64_t lease)
{
    if (!self->lease || lease != self->lease)
        return;
    self->revoked = true;
    set_gate(self, 0); /* stop submitting now; the next look drains and gives it back */
}

bool qs_lease_refused(qs_lease_t *self)
{
    if (!self->requested || self->lease)
        return false;
    self->requested = false;
    self->no_tokens = true;
    set_gate(self, QS_LEASE_FREE);
    return true;
}

void qs_lease_session(qs_lease_t *self)
{
    drop(self, false);
}

void qs_lease_unreachable(qs_lease_t *self)
{
    drop(self, true);
}

void qs_lease_reached(qs_lease_t *self)
{
    if (!self->no_tokens && self->gate == QS_LEASE_FREE)
        set_gate(self, 0);
}

void qs_lease_sent(qs_lease_t *self, const qs_lease_msg_t *m, int rc, uint64_t now)
{
    /* A grant that came in while it was sent already answered it. */
    bool queued = m->kind == QS_LEASE_REQ || (m->kind == QS_LEASE_RET && m->more);
    if (rc == 0 && queued && !self->lease) {
        self->requested = true;
        self->asked = now;
    }
}

bool qs_lease_active(const qs_lease_t *self, int waiting)
{
    return !self->no_tokens && (self->lease || self->requested || waiting > 0);
}

uint64_t qs_lease_held(const qs_lease_t *self)
{
    return self->lease;
}
