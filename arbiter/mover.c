/* mover.c - runs moves (mover.h): their queue, the checkpoint helper's hello and answers,
 * and the commit. Loop thread only. */
#include "arbiter/mover.h"

#include "arbiter/ckpt.h"
#include "arbiter/compute.h"
#include "arbiter/ledger.h"
#include "arbiter/tenant.h"
#include "proto/units.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A move asked for. */
struct job {
    struct job *next;
    char id[QP_ID_LEN];
    int to;
    qa_mover_done_fn *done;
    void *arg;         /* for done */
    const void *owner; /* who asked */
    bool forgot;       /* they went away: the report is an orphan's */
};

enum stage {
    IDLE,        /* no move under way */
    WAIT_HELPER, /* the head job waits for the helper's hello */
    RUNNING,     /* the head job's core runs */
};

struct qa_mover {
    qa_mover_env_t env;
    char state_dir[256], exe[256];
    struct job *queue;  /* owned, oldest first: the head is the one under way */
    enum stage stage;
    qa_vgpu_t *v;       /* the head's vGPU: the admin refuses to destroy one that moves */
    unsigned from;      /* where it was */
    qa_move_proc_t procs[QA_MOVE_MAX_PROCS]; /* its processes as the move began */
    uint64_t starts[QA_MOVE_MAX_PROCS];      /* their start times, 0: unknown */
    size_t nprocs;
    qa_move_t *core;      /* owned: the head's step machine */
    bool over;            /* the core finished: it goes, the next job comes */
    qa_ckpt_t *helper;    /* owned, NULL when none runs */
    bool helper_ok;       /* it said it can move processes */
    char why[QP_ERR_LEN]; /* its hello's text when it cannot */
    bool planned;         /* the head's plan was sent to this helper */
    uint32_t seq;         /* numbers calls */
    bool call_out;        /* a call waits for its answer: seq, call_i, call_op */
    size_t call_i;
    qa_move_op_t call_op;
    bool call_pending;    /* a call waits for a helper to start */
    bool late;            /* an answer the core gets at the next turn: late_res, late_text */
    qa_move_res_t late_res;
    qa_move_pstate_t late_state;
    char late_text[QP_ERR_LEN];
    bool late_commit;     /* the commit's outcome, likewise */
    int late_commit_rc;
    char late_commit_err[QP_ERR_LEN];
    qa_timer_t timer;     /* the core's deadline, and deferred work */
};

static void kick(qa_mover_t *self, uint64_t when);

/* ---- the helper -------------------------------------------------------------------- */

static void send_call(qa_mover_t *self);

/* The head's plan, for a helper that must bring processes home if we die. */
static void send_plan(qa_mover_t *self)
{
    qa_ckpt_req_t *req = calloc(1, sizeof *req);
    if (!req)
        return;
    req->kind = QA_CKPT_BEGIN;
    size_t n = qa_host_ngpus(self->env.host);
    req->ngpus = (uint32_t)(n < QA_CKPT_MAX_GPUS ? n : QA_CKPT_MAX_GPUS);
    req->from = self->from;
    req->to = self->v->moving ? self->v->moving - 1 : self->v->gpu;
    snprintf(req->vgpu, sizeof req->vgpu, "%s", self->v->id);
    snprintf(req->state_dir, sizeof req->state_dir, "%s", self->state_dir);
    for (uint32_t i = 0; i < req->ngpus; i++)
        snprintf(req->uuid[i], sizeof req->uuid[i], "%s",
                 qa_host_gpu(self->env.host, i)->desc.uuid);
    if (qa_ckpt_send(self->helper, req) == 0)
        self->planned = true;
    free(req);
}

static void fail_call(qa_mover_t *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_call(qa_mover_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->late_text, sizeof self->late_text, fmt, ap);
    va_end(ap);
    self->late = true;
    self->late_res = QA_MOVE_FAILED;
    self->late_state = QA_PSTATE_RUNNING;
    self->call_out = self->call_pending = false;
    kick(self, 0);
}

static void start_core(qa_mover_t *self);
static void refuse_head(qa_mover_t *self, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void on_answer(void *arg, const qa_ckpt_rep_t *rep)
{
    qa_mover_t *self = arg;
    if (rep->seq == 0) { /* its hello */
        self->helper_ok = rep->result == QA_MOVE_OK;
        snprintf(self->why, sizeof self->why, "%s", rep->text);
        qa_log(self->env.log, self->helper_ok ? QA_INFO : QA_WARN,
               "checkpoint helper (pid %d): CUDA driver %d.%d%s%s", (int)qa_ckpt_pid(self->helper),
               rep->driver / 1000, rep->driver % 1000 / 10, self->helper_ok ? "" : ": ",
               self->helper_ok ? ", can move processes" : rep->text);
        if (self->stage == WAIT_HELPER) {
            if (self->helper_ok)
                start_core(self);
            else
                refuse_head(self, -ENOTSUP, "%s", self->why);
        } else if (self->call_pending) {
            if (self->helper_ok)
                send_call(self);
            else
                fail_call(self, "%s", self->why);
        }
        return;
    }
    if (!self->call_out || rep->seq != self->seq || !self->core)
        return; /* a call of a move abandoned */
    self->call_out = false;
    self->late = true;
    self->late_res = (qa_move_res_t)rep->result;
    snprintf(self->late_text, sizeof self->late_text, "%s", rep->text);
    self->late_state = (qa_move_pstate_t)rep->state;
    kick(self, 0);
}

static void on_helper_gone(void *arg)
{
    qa_mover_t *self = arg;
    qa_log(self->env.log, QA_WARN, "checkpoint helper (pid %d) exited",
           (int)qa_ckpt_pid(self->helper));
    qa_ckpt_stop(&self->helper);
    self->helper_ok = self->planned = false;
    if (self->stage == WAIT_HELPER && !self->why[0])
        refuse_head(self, -EIO, "the checkpoint helper exited as it started: see the arbiter's log");
    else if (self->stage == WAIT_HELPER)
        refuse_head(self, -ENOTSUP, "%s", self->why);
    else if (self->call_out || self->call_pending)
        fail_call(self, "the checkpoint helper exited");
}

/* Starts a helper if none runs. Returns 0, or -EIO with err. */
static int ensure_helper(qa_mover_t *self, char *err)
{
    if (self->helper)
        return 0;
    qa_ckpt_hooks_t hooks = {on_answer, on_helper_gone, self};
    self->why[0] = '\0';
    self->helper_ok = self->planned = false;
    self->helper = qa_ckpt_start(self->env.loop, self->exe, &hooks, err);
    return self->helper ? 0 : -EIO;
}

/* Sends the call the core asked for (call_i, call_op), to a helper that said hello. */
static void send_call(qa_mover_t *self)
{
    self->call_pending = false;
    if (!self->planned)
        send_plan(self);
    qa_ckpt_req_t *req = calloc(1, sizeof *req);
    if (!req) {
        fail_call(self, "out of memory");
        return;
    }
    req->kind = QA_CKPT_CALL;
    if (++self->seq == 0) /* 0 is the hello's */
        self->seq = 1;
    req->seq = self->seq;
    req->op = self->call_op;
    req->pid = self->procs[self->call_i].pid;
    req->start = self->starts[self->call_i];
    req->lock_ms = (uint32_t)(self->env.params.lock_ns / 1000000u);
    int rc = qa_ckpt_send(self->helper, req);
    free(req);
    if (rc < 0)
        fail_call(self, "cannot ask the checkpoint helper: %s", strerror(-rc));
    else
        self->call_out = true;
}

/* ---- the core's callbacks ---------------------------------------------------------- */

static void op_freeze(void *arg)
{
    qa_mover_t *self = arg;
    qa_compute_hold(self->env.compute, self->v, true);
}

static bool op_drained(void *arg)
{
    qa_mover_t *self = arg;
    return qa_compute_drained(self->env.compute, self->v);
}

static void op_call(void *arg, size_t i, qa_move_op_t op)
{
    qa_mover_t *self = arg;
    char err[QP_ERR_LEN];
    self->call_i = i;
    self->call_op = op;
    if (ensure_helper(self, err) < 0) {
        fail_call(self, "%s", err);
    } else if (!self->helper_ok) {
        self->call_pending = true; /* sent once it says hello */
    } else {
        send_call(self);
    }
}

/* The commit: the record first (a failure leaves everything as it was), then the host,
 * the schedulers, the processes' view and the CDI spec. */
static void op_commit(void *arg)
{
    qa_mover_t *self = arg;
    qa_vgpu_t *v = self->v;
    unsigned to = v->moving - 1;
    const char *uuid = qa_host_gpu(self->env.host, to)->desc.uuid;
    char err[QP_ERR_LEN];
    self->late_commit = true;
    self->late_commit_rc = qa_store_put(self->env.store, v, uuid, err);
    snprintf(self->late_commit_err, sizeof self->late_commit_err, "%s",
             self->late_commit_rc < 0 ? err : "");
    if (self->late_commit_rc == 0) {
        qa_host_move_end(self->env.host, v, true);
        v->moved_at = qa_now_ns();
        /* held there until its processes are unlocked */
        qa_compute_move(self->env.compute, v, self->from, true);
        self->env.moved(self->env.arg, v);
        if (self->env.cdi && qa_cdi_put(self->env.cdi, v, uuid, err) < 0)
            qa_log(self->env.log, QA_ERROR, "CDI spec of %s after its move: %s", v->id, err);
    }
    kick(self, 0);
}

static const char *fate_word(qa_move_fate_t f)
{
    switch (f) {
    case QA_FATE_MOVED:
        return "moved";
    case QA_FATE_VIEW:
        return "view only";
    case QA_FATE_BACK:
        return "back";
    case QA_FATE_EXITED:
        return "exited";
    default:
        return "left paused";
    }
}

/* Appends each process's fate and pause to text. */
static void describe_procs(char *text, size_t size, const qa_move_result_t *r)
{
    size_t len = strlen(text);
    for (size_t i = 0; i < r->n && len + 1 < size; i++) {
        const qa_move_outcome_t *o = &r->procs[i];
        len += (size_t)snprintf(text + len, size - len, "%s pid %d %s", i ? "," : ";", o->pid,
                                fate_word(o->fate));
        if (len + 1 < size && (o->fate == QA_FATE_MOVED || o->fate == QA_FATE_BACK))
            len += (size_t)snprintf(text + len, size - len, ", paused %.0f ms (%llu MiB)",
                                    (double)o->paused_ns / 1e6,
                                    (unsigned long long)(o->bytes / QP_MIB));
    }
}

static void report(qa_mover_t *self, qa_mover_report_t *r)
{
    struct job *j = self->queue;
    r->orphan = j->forgot;
    j->done(j->arg, r);
}

static void op_finish(void *arg, const qa_move_result_t *r)
{
    qa_mover_t *self = arg;
    qa_vgpu_t *v = self->v;
    unsigned to = v->moving ? v->moving - 1 : v->gpu;
    if (r->status != QA_MOVE_DONE)
        qa_host_move_end(self->env.host, v, false);
    qa_compute_hold(self->env.compute, v, false); /* on whichever GPU it is now */
    v->in_move = false;
    if (r->status == QA_MOVE_STUCK) {
        /* Let go: once its hung call returns, it brings the processes home itself. */
        qa_ckpt_stop(&self->helper);
        self->helper_ok = self->planned = false;
    } else if (self->helper && self->planned) {
        qa_ckpt_req_t end = {.kind = QA_CKPT_END};
        qa_ckpt_send(self->helper, &end);
        self->planned = false;
    }
    qa_mover_report_t rep = {
        .rc = r->status == QA_MOVE_DONE      ? 0
              : r->status == QA_MOVE_STUCK   ? -ETIMEDOUT
              : r->status == QA_MOVE_REFUSED ? -EBUSY
                                             : -EIO,
        .from = (int)self->from,
        .to = (int)to,
        .took_ns = r->took_ns,
        .nprocs = r->n,
        .procs = r->procs,
    };
    snprintf(rep.vgpu, sizeof rep.vgpu, "%s", v->id);
    if (r->status == QA_MOVE_DONE)
        snprintf(rep.text, sizeof rep.text, "moved %s from GPU %u to GPU %u in %.0f ms", v->id,
                 self->from, to, (double)r->took_ns / 1e6);
    else
        snprintf(rep.text, sizeof rep.text, "%s stays on GPU %u: %s%s", v->id, self->from, r->why,
                 r->status == QA_MOVE_ROLLED_BACK ? " (rolled back)" : "");
    describe_procs(rep.text, sizeof rep.text, r);
    if (r->notes[0]) {
        size_t len = strlen(rep.text);
        snprintf(rep.text + len, sizeof rep.text - len, "; %s", r->notes);
    }
    report(self, &rep);
    self->over = true;
    self->call_out = self->call_pending = self->late = self->late_commit = false;
    kick(self, 0);
}

/* ---- jobs -------------------------------------------------------------------------- */

/* Drops the head job (told already). */
static void pop(qa_mover_t *self)
{
    struct job *j = self->queue;
    if (!j)
        return;
    self->queue = j->next;
    free(j);
    self->stage = IDLE;
    self->v = NULL;
}

static void refuse_head(qa_mover_t *self, int rc, const char *fmt, ...)
{
    struct job *j = self->queue;
    qa_mover_report_t r = {.rc = rc, .from = -1, .to = j->to};
    if (self->v) {
        if (self->v->moving)
            qa_host_move_end(self->env.host, self->v, false);
        self->v->in_move = false;
        r.from = (int)self->v->gpu;
    }
    snprintf(r.vgpu, sizeof r.vgpu, "%s", j->id);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r.text, sizeof r.text, fmt, ap);
    va_end(ap);
    report(self, &r);
    pop(self);
    kick(self, 0);
}

static void start_core(qa_mover_t *self)
{
    static const qa_move_ops_t ops = {op_freeze, op_drained, op_call, op_commit, op_finish, NULL};
    qa_move_ops_t o = ops;
    o.arg = self;
    char from[32], to[32];
    snprintf(from, sizeof from, "GPU %u", self->from);
    snprintf(to, sizeof to, "GPU %u", self->v->moving - 1);
    if (!(self->core =
              qa_move_new(&self->env.params, &o, self->procs, self->nprocs, self->v->id, from, to))) {
        refuse_head(self, -ENOMEM, "out of memory");
        return;
    }
    self->stage = RUNNING;
    self->over = false;
    if (self->helper_ok && self->nprocs)
        send_plan(self);
    qa_move_start(self->core, qa_now_ns());
    kick(self, 0);
}

/* Takes the head job up: refused at once, waiting for the helper, or running. */
static void begin_head(qa_mover_t *self)
{
    struct job *j = self->queue;
    char err[QP_ERR_LEN];
    self->v = NULL;
    qa_vgpu_t *v = qa_host_find(self->env.host, j->id);
    if (!v) {
        refuse_head(self, -ENOENT, "there is no vGPU '%.32s' (qgpuctl list shows them)", j->id);
        return;
    }
    int rc = qa_host_move_begin(self->env.host, v, j->to, err);
    if (rc < 0) {
        refuse_head(self, rc, "%s", err);
        return;
    }
    self->v = v;
    self->from = v->gpu;
    /* Its processes, each once (a process may hold several sessions). */
    self->nprocs = 0;
    for (qa_session_t *p = v->sessions; p; p = p->next_in_vgpu) {
        /* what it allocated, as it reported, or what NVML saw it hold, contexts included */
        uint64_t bytes = p->used > p->seen.real ? p->used : p->seen.real;
        size_t k = 0;
        while (k < self->nprocs && self->procs[k].pid != p->host_pid)
            k++;
        if (k < self->nprocs) {
            if (bytes > self->procs[k].bytes)
                self->procs[k].bytes = bytes;
            continue;
        }
        if (!p->host_pid) {
            refuse_head(self, -EINVAL,
                        "a process of %s has no pid the arbiter can see (its connection did not "
                        "tell): it cannot be moved",
                        v->id);
            return;
        }
        if (self->nprocs == QA_MOVE_MAX_PROCS) {
            refuse_head(self, -EINVAL, "%s has more than %d processes: too many to move",
                        v->id, QA_MOVE_MAX_PROCS);
            return;
        }
        self->procs[k] = (qa_move_proc_t){p->host_pid, bytes, v->memory_mb * QP_MIB};
        if (qa_ledger_proc_start(p->host_pid, &self->starts[k]) < 0)
            self->starts[k] = 0;
        self->nprocs++;
    }
    if (!self->nprocs || self->helper_ok) {
        start_core(self); /* a vGPU without processes needs no driver call */
        return;
    }
    if (ensure_helper(self, err) < 0) {
        refuse_head(self, -EIO, "%s", err);
        return;
    }
    self->stage = WAIT_HELPER;
}

/* Deferred work and the core's deadline: the timer's callback. */
static void pump(void *arg)
{
    qa_mover_t *self = arg;
    uint64_t now = qa_now_ns();
    if (self->core && self->late) {
        self->late = false;
        qa_move_answer(self->core, self->call_i, self->late_res, self->late_state,
                       self->late_text[0] ? self->late_text : NULL, now);
    }
    if (self->core && self->late_commit) {
        self->late_commit = false;
        qa_move_committed(self->core, self->late_commit_rc, self->late_commit_err, now);
    }
    if (self->core && !self->over && qa_move_deadline(self->core) <= now)
        qa_move_tick(self->core, now);
    if (self->over) {
        qa_move_destroy(&self->core);
        self->over = false;
        pop(self);
    }
    if (self->stage == IDLE && self->queue)
        begin_head(self);
    if (self->core && !self->over && !self->late && !self->late_commit)
        kick(self, qa_move_deadline(self->core));
}

static void kick(qa_mover_t *self, uint64_t when)
{
    if (when == UINT64_MAX)
        return;
    uint64_t now = qa_now_ns();
    if (!qa_timer_running(&self->timer) || self->timer.deadline > when)
        qa_timer_start(self->env.loop, &self->timer, when > now ? when : now, pump, self);
}

/* ---- life cycle -------------------------------------------------------------------- */

qa_mover_t *qa_mover_new(const qa_mover_env_t *env)
{
    qa_mover_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->env = *env;
    snprintf(self->state_dir, sizeof self->state_dir, "%s", env->state_dir);
    snprintf(self->exe, sizeof self->exe, "%s", env->exe);
    self->env.state_dir = self->state_dir;
    self->env.exe = self->exe;
    return self;
}

void qa_mover_destroy(qa_mover_t **self_p)
{
    qa_mover_t *self = *self_p;
    if (!self)
        return;
    qa_timer_stop(self->env.loop, &self->timer);
    qa_move_destroy(&self->core);
    qa_ckpt_stop(&self->helper);
    if (self->v && self->v->moving) /* its record was not changed: it stays */
        qa_host_move_end(self->env.host, self->v, false);
    if (self->v)
        self->v->in_move = false;
    while (self->queue) {
        struct job *j = self->queue;
        qa_mover_report_t r = {.rc = -ECANCELED, .from = -1, .to = j->to};
        snprintf(r.vgpu, sizeof r.vgpu, "%s", j->id);
        snprintf(r.text, sizeof r.text, "the arbiter is stopping: %s is not moved", j->id);
        report(self, &r);
        self->queue = j->next;
        free(j);
    }
    free(self);
    *self_p = NULL;
}

int qa_mover_move(qa_mover_t *self, const char *id, int to, qa_mover_done_fn *done, void *arg,
                  const void *owner)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        return -ENOMEM;
    snprintf(j->id, sizeof j->id, "%s", id);
    j->to = to;
    j->done = done;
    j->arg = arg;
    j->owner = owner;
    struct job **pp = &self->queue;
    while (*pp)
        pp = &(*pp)->next;
    *pp = j;
    kick(self, 0);
    return 0;
}

void qa_mover_forget(qa_mover_t *self, const void *owner)
{
    for (struct job *j = self->queue; j; j = j->next) {
        if (owner && j->owner == owner)
            j->forgot = true;
    }
}

size_t qa_mover_pending(const qa_mover_t *self)
{
    size_t n = 0;
    for (const struct job *j = self->queue; j; j = j->next)
        n++;
    return n;
}

bool qa_mover_moving(const qa_mover_t *self, const qa_vgpu_t *v)
{
    return self->stage != IDLE && self->v == v;
}
