/* move.c - the step machine of one vGPU's move (move.h). Pure: no I/O, no clock.
 * Single-threaded: the loop thread. */
#include "arbiter/move.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GIB (1024ull * 1024ull * 1024ull)
#define MIB (1024ull * 1024ull)

/* Where a process is, as far as the move knows. */
enum at {
    AT_UNKNOWN,  /* not asked about yet */
    AT_RUNNING,  /* on S, untouched */
    AT_VIEW,     /* no CUDA state: nothing to do in the driver */
    AT_LOCKED,   /* locked on S */
    AT_CKPT,     /* checkpointed, taken on S */
    AT_ON_T,     /* restored on T, locked */
    AT_CKPT_T,   /* checkpointed again on T, on the way back */
    AT_DONE,     /* the move is over for it: fate says how */
};

enum phase { PH_NEW, PH_CHECK, PH_DRAIN, PH_LOCK, PH_COPY, PH_COMMIT, PH_UNLOCK, PH_BACK, PH_OVER };

struct proc {
    qa_move_proc_t in;
    enum at at;
    qa_move_fate_t fate;
    uint64_t unlocked; /* when its unlock (or its end) came */
    unsigned tries;    /* failed rollback or unlock attempts */
};

struct qa_move {
    qa_move_params_t prm;
    qa_move_ops_t ops;
    char vgpu[QP_ID_LEN], from[32], to[32];
    struct proc *p; /* owned, n of them */
    size_t n;
    enum phase phase;
    bool waiting;        /* a call is out: wait_i, wait_op, wait_until */
    size_t wait_i;
    qa_move_op_t wait_op;
    uint64_t wait_until;
    bool committing;     /* the commit is out, answered by wait_until */
    uint64_t drain_until; /* PH_DRAIN: when the drain fails */
    uint64_t next_poll;   /* PH_DRAIN: when ops.drained is asked next */
    uint64_t retry_at;    /* a failed step is tried again then; 0: none */
    uint64_t started, frozen; /* qa_move_start; the freeze */
    bool is_frozen;           /* the freeze happened: a failure must be undone */
    qa_move_status_t fail;   /* set once a failure decides how the move ends */
    char why[QP_ERR_LEN];
    char notes[QP_ERR_LEN];
};

qa_move_t *qa_move_new(const qa_move_params_t *params, const qa_move_ops_t *ops,
                       const qa_move_proc_t *procs, size_t n, const char *vgpu,
                       const char *from, const char *to)
{
    if (n > QA_MOVE_MAX_PROCS)
        return NULL;
    qa_move_t *self = calloc(1, sizeof *self);
    if (!self || !(self->p = calloc(n ? n : 1, sizeof *self->p))) {
        free(self);
        return NULL;
    }
    self->prm = *params;
    self->ops = *ops;
    self->n = n;
    for (size_t i = 0; i < n; i++)
        self->p[i].in = procs[i];
    snprintf(self->vgpu, sizeof self->vgpu, "%s", vgpu);
    snprintf(self->from, sizeof self->from, "%s", from);
    snprintf(self->to, sizeof self->to, "%s", to);
    return self;
}

void qa_move_destroy(qa_move_t **self_p)
{
    qa_move_t *self = *self_p;
    if (!self)
        return;
    free(self->p);
    free(self);
    *self_p = NULL;
}

bool qa_move_over(const qa_move_t *self)
{
    return self->phase == PH_OVER;
}

static const char *op_name(qa_move_op_t op)
{
    switch (op) {
    case QA_MOVE_STATE:
        return "get-state";
    case QA_MOVE_LOCK:
        return "lock";
    case QA_MOVE_CHECKPOINT:
        return "checkpoint";
    case QA_MOVE_RESTORE_SWAP:
    case QA_MOVE_RESTORE_STAY:
        return "restore";
    default:
        return "unlock";
    }
}

static const char *pstate_name(qa_move_pstate_t s)
{
    return s == QA_PSTATE_LOCKED         ? "locked"
           : s == QA_PSTATE_CHECKPOINTED ? "checkpointed"
           : s == QA_PSTATE_FAILED       ? "failed"
                                         : "running";
}

/* How long an answer to op on p may take. */
static uint64_t budget(const qa_move_t *self, const struct proc *p, qa_move_op_t op)
{
    uint64_t b = self->prm.op_ns;
    if (op == QA_MOVE_LOCK)
        b += self->prm.lock_ns;
    if (op == QA_MOVE_CHECKPOINT || op == QA_MOVE_RESTORE_SWAP || op == QA_MOVE_RESTORE_STAY) {
        uint64_t bytes = p->in.bytes > p->in.most ? p->in.bytes : p->in.most;
        b += (bytes + GIB - 1) / GIB * self->prm.ns_per_gib;
    }
    return b;
}

static void call(qa_move_t *self, size_t i, qa_move_op_t op, uint64_t now)
{
    self->waiting = true;
    self->wait_i = i;
    self->wait_op = op;
    self->wait_until = now + budget(self, &self->p[i], op);
    self->ops.call(self->ops.arg, i, op);
}

/* Ends the move: every process not settled yet is where it was left. */
static void finish(qa_move_t *self, qa_move_status_t status, uint64_t now)
{
    qa_move_outcome_t *out = calloc(self->n ? self->n : 1, sizeof *out);
    for (size_t i = 0; out && i < self->n; i++) {
        const struct proc *p = &self->p[i];
        qa_move_fate_t fate = p->at == AT_DONE                        ? p->fate
                              : status == QA_MOVE_DONE && p->at == AT_VIEW ? QA_FATE_VIEW
                              : p->at <= AT_VIEW                           ? QA_FATE_BACK
                                                                        : QA_FATE_PAUSED;
        out[i] = (qa_move_outcome_t){p->in.pid, fate, 0, p->in.bytes};
        if (p->unlocked && self->is_frozen && (fate == QA_FATE_MOVED || fate == QA_FATE_BACK))
            out[i].paused_ns = p->unlocked - self->frozen;
    }
    qa_move_result_t r = {.status = status, .took_ns = now - self->started,
                          .n = out ? self->n : 0, .procs = out};
    snprintf(r.why, sizeof r.why, "%s", status == QA_MOVE_DONE ? "" : self->why);
    snprintf(r.notes, sizeof r.notes, "%s", self->notes);
    self->phase = PH_OVER;
    self->waiting = self->committing = false;
    self->ops.finish(self->ops.arg, &r);
    free(out);
}

static void note(qa_move_t *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(qa_move_t *self, const char *fmt, ...)
{
    size_t len = strlen(self->notes);
    if (len + 3 >= sizeof self->notes)
        return;
    if (len)
        len += (size_t)snprintf(self->notes + len, sizeof self->notes - len, "; ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->notes + len, sizeof self->notes - len, fmt, ap);
    va_end(ap);
}

static void step(qa_move_t *self, uint64_t now);

/* A step failed: before the freeze nothing changed (refused), after it everything is
 * undone. why is formatted into self->why, the first failure's being kept. */
static void fail(qa_move_t *self, uint64_t now, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(qa_move_t *self, uint64_t now, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->why, sizeof self->why, fmt, ap);
    va_end(ap);
    if (!self->is_frozen) {
        finish(self, QA_MOVE_REFUSED, now);
        return;
    }
    self->fail = QA_MOVE_ROLLED_BACK;
    self->phase = PH_BACK;
    step(self, now);
}

/* The process at i is over with the move: fate, and now as its unlock. */
static void settle(struct proc *p, qa_move_fate_t fate, uint64_t now)
{
    p->at = AT_DONE;
    p->fate = fate;
    p->unlocked = now;
}

/* The process exited (or was given up on): it was not unlocked by the move. */
static void drop(struct proc *p, qa_move_fate_t fate)
{
    p->at = AT_DONE;
    p->fate = fate;
    p->unlocked = 0;
}

qa_move_op_t qa_move_next_home(qa_move_pstate_t state, bool on_home)
{
    switch (state) {
    case QA_PSTATE_LOCKED:
        return on_home ? QA_MOVE_UNLOCK : QA_MOVE_CHECKPOINT;
    case QA_PSTATE_CHECKPOINTED:
        return on_home ? QA_MOVE_RESTORE_STAY : QA_MOVE_RESTORE_SWAP;
    case QA_PSTATE_RUNNING:
        return on_home ? 0 : QA_MOVE_LOCK;
    default:
        return 0; /* failed: nothing the driver can do */
    }
}

/* The next call of the rollback for p (home: the source), or 0 when it needs none. */
static qa_move_op_t back_op(const struct proc *p)
{
    switch (p->at) {
    case AT_ON_T:
        return qa_move_next_home(QA_PSTATE_LOCKED, false);
    case AT_CKPT_T:
        return qa_move_next_home(QA_PSTATE_CHECKPOINTED, false);
    case AT_CKPT:
        return qa_move_next_home(QA_PSTATE_CHECKPOINTED, true);
    case AT_LOCKED:
        return qa_move_next_home(QA_PSTATE_LOCKED, true);
    default:
        return 0;
    }
}

/* Decides what comes next, after an answer or a tick, until a call is out or the move
 * waits for something (drain, commit, a retry). */
static void step(qa_move_t *self, uint64_t now)
{
    while (!self->waiting && !self->committing && self->phase != PH_OVER) {
        if (self->retry_at && now < self->retry_at)
            return;
        self->retry_at = 0;
        size_t i;
        switch (self->phase) {
        case PH_NEW:
            return;
        case PH_CHECK:
            for (i = 0; i < self->n && self->p[i].at != AT_UNKNOWN; i++)
                ;
            if (i < self->n) {
                call(self, i, QA_MOVE_STATE, now);
                break;
            }
            self->phase = PH_DRAIN;
            self->frozen = now;
            self->is_frozen = true;
            self->drain_until = now + self->prm.drain_ns;
            self->next_poll = now;
            self->ops.freeze(self->ops.arg);
            break;
        case PH_DRAIN:
            if (now < self->next_poll)
                return;
            if (self->ops.drained(self->ops.arg)) {
                self->phase = PH_LOCK;
            } else if (now >= self->drain_until) {
                fail(self, now,
                     "%s's compute lease did not come back within %llu ms: its queued GPU work "
                     "did not finish",
                     self->vgpu, (unsigned long long)(self->prm.drain_ns / 1000000));
            } else {
                self->next_poll = now + self->prm.poll_ns;
                return;
            }
            break;
        case PH_LOCK:
            for (i = 0; i < self->n && self->p[i].at != AT_RUNNING; i++)
                ;
            if (i < self->n)
                call(self, i, QA_MOVE_LOCK, now);
            else
                self->phase = PH_COPY;
            break;
        case PH_COPY:
            for (i = 0; i < self->n && self->p[i].at != AT_LOCKED && self->p[i].at != AT_CKPT;
                 i++)
                ;
            if (i < self->n) {
                call(self, i,
                     self->p[i].at == AT_LOCKED ? QA_MOVE_CHECKPOINT : QA_MOVE_RESTORE_SWAP, now);
            } else {
                self->phase = PH_COMMIT;
                self->committing = true;
                self->wait_until = now + self->prm.op_ns;
                self->ops.commit(self->ops.arg);
            }
            break;
        case PH_COMMIT: /* answered: qa_move_committed moved on */
            return;
        case PH_UNLOCK:
            for (i = 0; i < self->n && self->p[i].at != AT_ON_T; i++)
                ;
            if (i < self->n) {
                call(self, i, QA_MOVE_UNLOCK, now);
            } else {
                for (i = 0; i < self->n; i++) {
                    if (self->p[i].at == AT_VIEW)
                        settle(&self->p[i], QA_FATE_VIEW, now);
                }
                finish(self, QA_MOVE_DONE, now);
            }
            break;
        case PH_BACK:
            for (i = self->n; i > 0 && !back_op(&self->p[i - 1]); i--)
                ;
            if (i > 0) {
                call(self, i - 1, back_op(&self->p[i - 1]), now);
            } else {
                for (i = 0; i < self->n; i++) {
                    if (self->p[i].at <= AT_VIEW)
                        settle(&self->p[i], QA_FATE_BACK, now);
                }
                finish(self, self->fail, now);
            }
            break;
        case PH_OVER:
            return;
        }
    }
}

void qa_move_start(qa_move_t *self, uint64_t now)
{
    if (self->phase != PH_NEW)
        return;
    self->started = now;
    self->phase = PH_CHECK;
    step(self, now);
}

/* A rollback or unlock call on p failed (res, text): tried again later, or given up. */
static void retry_or_leave(qa_move_t *self, struct proc *p, const char *text, uint64_t now)
{
    if (++p->tries <= self->prm.retries) {
        self->retry_at = now + self->prm.retry_ns;
        return;
    }
    note(self, "pid %d is left paused: %s failed (%s)", p->in.pid, op_name(self->wait_op),
         text ? text : "no reason given");
    drop(p, QA_FATE_PAUSED);
}

/* Answers during the check, the lock and the copy: forward steps. */
static void forward(qa_move_t *self, struct proc *p, qa_move_res_t res, qa_move_pstate_t state,
                    const char *text, uint64_t now)
{
    const char *why = text ? text : "no reason given";
    qa_move_op_t op = self->wait_op;
    if (res == QA_MOVE_GONE || (res == QA_MOVE_NOCUDA && op != QA_MOVE_STATE)) {
        drop(p, QA_FATE_EXITED);
        step(self, now);
        return;
    }
    switch (op) {
    case QA_MOVE_STATE:
        if (res == QA_MOVE_NOCUDA) {
            p->at = AT_VIEW;
        } else if (res == QA_MOVE_OK && state == QA_PSTATE_RUNNING) {
            p->at = AT_RUNNING;
        } else if (res == QA_MOVE_OK) {
            fail(self, now, "pid %d of %s is %s by someone else: it cannot move now", p->in.pid,
                 self->vgpu, pstate_name(state));
            return;
        } else {
            fail(self, now, "cannot ask the driver about pid %d of %s: %s", p->in.pid,
                 self->vgpu, why);
            return;
        }
        break;
    case QA_MOVE_LOCK:
        if (res == QA_MOVE_OK) {
            p->at = AT_LOCKED;
        } else if (res == QA_MOVE_NOTREADY) {
            fail(self, now,
                 "pid %d of %s could not be locked within %llu ms: its queued GPU work did not "
                 "finish",
                 p->in.pid, self->vgpu, (unsigned long long)(self->prm.lock_ns / 1000000));
            return;
        } else {
            fail(self, now, "pid %d of %s could not be locked: %s%s", p->in.pid, self->vgpu, why,
                 res == QA_MOVE_BADSTATE ? " (someone else locked it)" : "");
            return;
        }
        break;
    case QA_MOVE_CHECKPOINT:
        if (res != QA_MOVE_OK) {
            fail(self, now, "checkpoint of pid %d of %s failed: %s", p->in.pid, self->vgpu, why);
            return;
        }
        p->at = AT_CKPT;
        break;
    default: /* the restore onto T */
        if (res == QA_MOVE_NOMEM) {
            fail(self, now, "%s has no room for pid %d's %llu MiB of %s (%s)", self->to,
                 p->in.pid, (unsigned long long)(p->in.bytes / MIB), self->vgpu, why);
            return;
        }
        if (res != QA_MOVE_OK) {
            fail(self, now, "restore of pid %d of %s onto %s failed: %s", p->in.pid, self->vgpu,
                 self->to, why);
            return;
        }
        p->at = AT_ON_T;
        break;
    }
    step(self, now);
}

/* Answers during the rollback. */
static void backward(qa_move_t *self, struct proc *p, qa_move_res_t res, const char *text,
                     uint64_t now)
{
    if (res == QA_MOVE_GONE || res == QA_MOVE_NOCUDA) {
        drop(p, QA_FATE_EXITED);
    } else if (res != QA_MOVE_OK) {
        retry_or_leave(self, p, text, now);
    } else {
        p->tries = 0;
        switch (self->wait_op) {
        case QA_MOVE_CHECKPOINT:
            p->at = AT_CKPT_T;
            break;
        case QA_MOVE_RESTORE_SWAP:
        case QA_MOVE_RESTORE_STAY:
            p->at = AT_LOCKED;
            break;
        default:
            settle(p, QA_FATE_BACK, now);
            break;
        }
    }
    step(self, now);
}

void qa_move_answer(qa_move_t *self, size_t i, qa_move_res_t res, qa_move_pstate_t state,
                    const char *text, uint64_t now)
{
    if (!self->waiting || i != self->wait_i)
        return;
    self->waiting = false;
    struct proc *p = &self->p[i];
    if (self->phase == PH_BACK) {
        backward(self, p, res, text, now);
    } else if (self->phase == PH_UNLOCK) {
        if (res == QA_MOVE_OK)
            settle(p, QA_FATE_MOVED, now);
        else if (res == QA_MOVE_GONE || res == QA_MOVE_NOCUDA)
            drop(p, QA_FATE_EXITED);
        else
            retry_or_leave(self, p, text, now);
        step(self, now);
    } else {
        forward(self, p, res, state, text, now);
    }
}

void qa_move_committed(qa_move_t *self, int rc, const char *err, uint64_t now)
{
    if (!self->committing)
        return;
    self->committing = false;
    if (rc < 0) {
        fail(self, now, "cannot record %s on %s: %s", self->vgpu, self->to,
             err ? err : "no reason given");
        return;
    }
    self->phase = PH_UNLOCK;
    step(self, now);
}

void qa_move_tick(qa_move_t *self, uint64_t now)
{
    if (self->phase == PH_OVER || self->phase == PH_NEW)
        return;
    if ((self->waiting || self->committing) && now >= self->wait_until) {
        if (self->committing)
            snprintf(self->why, sizeof self->why,
                     "recording %s on %s took longer than %llu ms: where it is is unknown",
                     self->vgpu, self->to, (unsigned long long)(self->prm.op_ns / 1000000));
        else
            snprintf(self->why, sizeof self->why,
                     "the checkpoint helper did not answer %s of pid %d within %llu ms: the "
                     "processes of %s are left as the driver has them",
                     op_name(self->wait_op), self->p[self->wait_i].in.pid,
                     (unsigned long long)(budget(self, &self->p[self->wait_i], self->wait_op) /
                                          1000000),
                     self->vgpu);
        finish(self, QA_MOVE_STUCK, now);
        return;
    }
    step(self, now);
}

uint64_t qa_move_deadline(const qa_move_t *self)
{
    if (self->phase == PH_OVER || self->phase == PH_NEW)
        return UINT64_MAX;
    if (self->waiting || self->committing)
        return self->wait_until;
    if (self->retry_at)
        return self->retry_at;
    if (self->phase == PH_DRAIN)
        return self->next_poll;
    return UINT64_MAX;
}
