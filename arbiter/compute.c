/* compute.c - per-GPU schedulers wired to tenant sessions, the loop's timers and pushes.
 * Single-threaded: the loop thread (see compute.h). */
#include "arbiter/compute.h"

#include "arbiter/sched.h"
#include "arbiter/tenant.h"
#include "proto/schema.h"

#include <errno.h>
#include <stdlib.h>

#define MS 1000000ull

/* One GPU's scheduler and the timer that runs its deadline. */
struct gpu {
    qa_compute_t *owner;
    qa_sched_t *sched; /* owned */
    qa_timer_t timer;  /* at qa_sched_deadline() */
};

struct qa_compute {
    qa_compute_opts_t o; /* copied; what it points to is borrowed */
    size_t n;
    struct gpu *gpus; /* owned, n of them */
};

/* ---- pushes (sched.c's callbacks) -------------------------------------------------- */

/* owner is the session a process of the scheduler stands for (qa_compute_join). */
static void push_grant(void *arg, void *owner, uint64_t lease, uint64_t ns)
{
    struct gpu *g = arg;
    qa_session_t *s = owner;
    qp_msg_t *m = qp_new_tok_grant(lease, ns);
    qa_reply_send(g->owner->o.reply, s->peer, &m);
}

static void push_revoke(void *arg, void *owner, uint64_t lease)
{
    struct gpu *g = arg;
    qa_session_t *s = owner;
    qp_msg_t *m = qp_new_tok_revoke(lease);
    qa_reply_send(g->owner->o.reply, s->peer, &m);
}

/* ---- the timer --------------------------------------------------------------------- */

static void arm(struct gpu *g);

static void on_deadline(void *arg)
{
    struct gpu *g = arg;
    uint64_t hung = qa_sched_hung(g->sched);
    qa_sched_tick(g->sched, qa_now_ns());
    if (qa_sched_hung(g->sched) != hung)
        qa_log(g->owner->o.log, QA_WARN,
               "GPU %zu: a tenant kept its compute lease %u ms past its end: taken back",
               (size_t)(g - g->owner->gpus), g->owner->o.cfg->lease_grace_ms);
    arm(g);
}

/* Sets the timer to the scheduler's deadline: after every call into the scheduler. */
static void arm(struct gpu *g)
{
    qa_loop_t *loop = g->owner->o.loop;
    uint64_t d = qa_sched_deadline(g->sched);
    if (d == UINT64_MAX) {
        qa_timer_stop(loop, &g->timer);
    } else if (qa_timer_start(loop, &g->timer, d, on_deadline, g) < 0) {
        /* Out of memory for the heap: the next message to this GPU arms it again. */
        qa_log(g->owner->o.log, QA_ERROR, "GPU %zu: cannot arm the lease timer",
               (size_t)(g - g->owner->gpus));
    }
}

static struct gpu *gpu_of(qa_compute_t *self, const qa_vgpu_t *v)
{
    return v->gpu < self->n ? &self->gpus[v->gpu] : NULL;
}

/* ---- life cycle -------------------------------------------------------------------- */

qa_compute_t *qa_compute_new(const qa_compute_opts_t *opts)
{
    const qa_config_t *cfg = opts->cfg;
    size_t ngpus = opts->ngpus;
    qa_compute_t *self = calloc(1, sizeof *self);
    if (!self || !(self->gpus = calloc(ngpus ? ngpus : 1, sizeof *self->gpus))) {
        free(self);
        return NULL;
    }
    self->o = *opts;
    self->n = ngpus;
    qa_sched_params_t params = {
        .window_ns = cfg->sched_window_ms * MS,
        .quantum_min_ns = cfg->quantum_min_ms * MS,
        .quantum_max_ns = cfg->quantum_max_ms * MS,
        .grace_ns = cfg->lease_grace_ms * MS,
        .burst_ns = cfg->burst_ms * MS,
        .burst_below_pct = cfg->burst_below_pct,
        .preempt_ns = cfg->preempt_after_ms * MS,
    };
    for (size_t i = 0; i < ngpus; i++) {
        struct gpu *g = &self->gpus[i];
        g->owner = self;
        qa_sched_ops_t ops = {push_grant, push_revoke, g};
        if (!(g->sched = qa_sched_new(&params, &ops))) {
            qa_compute_destroy(&self);
            return NULL;
        }
    }
    return self;
}

void qa_compute_destroy(qa_compute_t **self_p)
{
    qa_compute_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->n; i++) {
        qa_timer_stop(self->o.loop, &self->gpus[i].timer);
        qa_sched_destroy(&self->gpus[i].sched);
    }
    free(self->gpus);
    free(self);
    *self_p = NULL;
}

/* ---- sessions and vGPUs ------------------------------------------------------------ */

int qa_compute_join(qa_compute_t *self, qa_session_t *s)
{
    qa_vgpu_t *v = s->vgpu;
    struct gpu *g = gpu_of(self, v);
    if (!g)
        return -ENODEV;
    if (!v->ent && !(v->ent = qa_sched_ent_new(g->sched, v->share, v->limit, qa_now_ns())))
        return -ENOMEM;
    if (!(s->proc = qa_sched_proc_new(g->sched, v->ent, s)))
        return -ENOMEM;
    return 0;
}

void qa_compute_leave(qa_compute_t *self, qa_session_t *s)
{
    struct gpu *g = s->vgpu ? gpu_of(self, s->vgpu) : NULL;
    if (!g || !s->proc)
        return;
    qa_sched_proc_destroy(g->sched, &s->proc, qa_now_ns());
    arm(g);
}

/* tok_req, tok_ext or tok_ret of p (checked by the schema; p has a session). */
static void token(void *self, qa_peer_t *p, const qp_msg_t *m)
{
    qa_compute_t *c = self;
    char err[QP_ERR_LEN];
    qp_tok_t t;
    qa_session_t *s = p->tenant;
    struct gpu *g = s ? gpu_of(c, s->vgpu) : NULL;
    if (qp_tok_get(m, &t, err) < 0) { /* cannot happen after qp_check_request */
        qa_reply_error(c->o.reply, p, 0, QP_E_PROTO, "%s", err);
        return;
    }
    if (!s) { /* cannot happen: the dispatcher checked the session */
        qa_reply_error(c->o.reply, p, 0, QP_E_NOSESSION, "hello first");
        return;
    }
    if (!g || !s->proc) {
        qa_reply_error(c->o.reply, p, 0, QP_E_INTERNAL,
                       "the arbiter had no memory for this session's compute lease: "
                       "reconnect");
        return;
    }
    uint64_t now = qa_now_ns();
    switch (t.kind) {
    case QP_TOK_REQ:
        qa_sched_request(g->sched, s->proc, now);
        break;
    case QP_TOK_EXT:
        qa_sched_extend(g->sched, s->proc, t.lease, now); /* another lease: ignored */
        break;
    case QP_TOK_RET:
        qa_sched_return(g->sched, s->proc, t.lease, t.used, t.more, now);
        break;
    default: /* grants and revokes are the arbiter's; the schema refuses them */
        return;
    }
    arm(g);
}

/* Every handler has the signature of qa_handler_fn: self is the compute. */
const qa_route_t qa_compute_routes[] = {
    {QP_REQ_TOK_REQ, QP_TENANT, QA_CHECK_SESSION, token},
    {QP_REQ_TOK_EXT, QP_TENANT, QA_CHECK_SESSION, token},
    {QP_REQ_TOK_RET, QP_TENANT, QA_CHECK_SESSION, token},
};
const size_t qa_compute_nroutes = sizeof qa_compute_routes / sizeof qa_compute_routes[0];

void qa_compute_resized(qa_compute_t *self, qa_vgpu_t *v)
{
    struct gpu *g = gpu_of(self, v);
    if (!g || !v->ent)
        return;
    qa_sched_set(g->sched, v->ent, v->share, v->limit, qa_now_ns());
    arm(g);
}

void qa_compute_vgpu_gone(qa_compute_t *self, qa_vgpu_t *v)
{
    struct gpu *g = gpu_of(self, v);
    if (g && v->ent)
        qa_sched_ent_destroy(g->sched, &v->ent);
}

void qa_compute_hold(qa_compute_t *self, qa_vgpu_t *v, bool hold)
{
    struct gpu *g = gpu_of(self, v);
    if (!g || !v->ent)
        return;
    qa_sched_hold(g->sched, v->ent, hold, qa_now_ns());
    arm(g);
}

bool qa_compute_drained(const qa_compute_t *self, const qa_vgpu_t *v)
{
    (void)self;
    return !v->ent || !qa_sched_ent_holding(v->ent);
}

void qa_compute_move(qa_compute_t *self, qa_vgpu_t *v, unsigned from, bool hold)
{
    if (from >= self->n || !gpu_of(self, v))
        return;
    struct gpu *src = &self->gpus[from], *dst = gpu_of(self, v);
    uint64_t now = qa_now_ns();
    /* Each process keeps its lease numbers (the shim drops a grant numbered below one it
     * had) and, if it waited for a lease, waits on the new GPU at once: the shim would
     * ask again only 500 ms later. Out of memory for the list, they ask again then. */
    struct was {
        uint64_t lease;
        bool waiting;
    } *was = NULL;
    size_t n = 0, i = 0;
    for (qa_session_t *p = v->sessions; p; p = p->next_in_vgpu)
        n++;
    if (n)
        was = calloc(n, sizeof *was);
    for (qa_session_t *p = v->sessions; p; p = p->next_in_vgpu, i++) {
        if (was && p->proc)
            was[i] = (struct was){qa_sched_proc_lease(p->proc), qa_sched_proc_waiting(p->proc)};
        qa_sched_proc_destroy(src->sched, &p->proc, now);
    }
    if (v->ent)
        qa_sched_ent_destroy(src->sched, &v->ent);
    arm(src);
    if (!(v->ent = qa_sched_ent_new(dst->sched, v->share, v->limit, now)))
        qa_log(self->o.log, QA_ERROR, "out of memory for vGPU %s's scheduling on GPU %u", v->id,
               v->gpu);
    else if (hold)
        qa_sched_hold(dst->sched, v->ent, true, now);
    i = 0;
    for (qa_session_t *p = v->sessions; p; p = p->next_in_vgpu, i++) {
        if (qa_compute_join(self, p) < 0) {
            qa_log(self->o.log, QA_ERROR,
                   "out of memory for the compute lease of pid %d of vGPU %s on GPU %u",
                   (int)p->pid, v->id, v->gpu);
            continue;
        }
        if (!was)
            continue;
        qa_sched_proc_continue(p->proc, was[i].lease);
        if (was[i].waiting)
            qa_sched_request(dst->sched, p->proc, now);
    }
    free(was);
    arm(dst);
}

/* ---- figures ----------------------------------------------------------------------- */

void qa_compute_sample(qa_compute_t *self, qa_host_t *host)
{
    uint64_t now = qa_now_ns();
    for (size_t i = 0; i < self->n && i < qa_host_ngpus(host); i++) {
        qa_gpu_t *g = qa_host_gpu(host, i);
        qa_sched_sample(self->gpus[i].sched, now);
        g->leased = qa_sched_util(self->gpus[i].sched);
        g->hung = qa_sched_hung(self->gpus[i].sched);
    }
    for (size_t i = 0; i < qa_host_nvgpus(host); i++) {
        qa_vgpu_t *v = qa_host_vgpu(host, i);
        v->util = v->ent ? qa_sched_ent_util(v->ent) : 0;
        v->leases = v->ent ? qa_sched_ent_grants(v->ent) : 0;
    }
}
