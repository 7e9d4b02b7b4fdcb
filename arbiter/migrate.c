/* migrate.c - the admin requests migrate and balance (migrate.h): checked, queued in the
 * mover, answered when their moves ended. Loop thread only. */
#include "arbiter/migrate.h"

#include "proto/records.h"
#include "proto/schema.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct qa_migrate {
    qa_migrate_opts_t o; /* copied; what it points to is borrowed */
};

/* A request answered once its move (or its moves) ended. */
struct wait {
    qa_migrate_t *m;
    qa_peer_t *p;   /* who asked; the mover tells when it went away */
    uint64_t id;    /* its request */
    size_t n, left; /* balance: the moves of its plan, and those not over yet */
    bool dry;       /* balance: --dry-run */
    bool orphan;    /* its connection closed, or the arbiter stops */
    qa_balance_step_t steps[QA_BALANCE_MAX_STEPS];
    int rc[QA_BALANCE_MAX_STEPS]; /* each step's outcome; 1: not over yet */
    char text[QA_BALANCE_MAX_STEPS][1024];
};

qa_migrate_t *qa_migrate_new(const qa_migrate_opts_t *opts)
{
    qa_migrate_t *self = calloc(1, sizeof *self);
    if (self)
        self->o = *opts;
    return self;
}

void qa_migrate_destroy(qa_migrate_t **self_p)
{
    free(*self_p);
    *self_p = NULL;
}

static const char *fate_name(qa_move_fate_t f)
{
    static const char *names[] = {"", "moved", "view", "back", "exited", "paused"};
    return f <= QA_FATE_PAUSED ? names[f] : "";
}

/* {vgpu: INFO, from, to, ms, text, procs: [{pid, fate, paused_ms, bytes}]} */
static void put_move(qa_migrate_t *self, qp_msg_t *rep, const qa_mover_report_t *r)
{
    qa_vgpu_t *v = qa_host_find(self->o.host, r->vgpu);
    if (v) {
        qp_info_t info;
        qa_host_info(self->o.host, v, &info);
        qp_info_put(qp_msg_add_map(rep, "vgpu"), &info);
    }
    qp_msg_set_int(rep, "from", r->from);
    qp_msg_set_int(rep, "to", r->to);
    qp_msg_set_float(rep, "ms", (double)r->took_ns / 1e6);
    qp_msg_set_str(rep, "text", r->text);
    qp_msg_add_array(rep, "procs");
    for (size_t i = 0; i < r->nprocs; i++) {
        qp_msg_t *m = qp_msg_append_map(rep, "procs");
        if (!m)
            break;
        qp_msg_set_int(m, "pid", r->procs[i].pid);
        qp_msg_set_str(m, "fate", fate_name(r->procs[i].fate));
        qp_msg_set_float(m, "paused_ms", (double)r->procs[i].paused_ns / 1e6);
        qp_msg_set_uint(m, "bytes", r->procs[i].bytes);
    }
}

static void migrated(void *arg, const qa_mover_report_t *r)
{
    struct wait *w = arg;
    qa_migrate_t *self = w->m;
    if (r->rc != -ECANCELED)
        qa_log(self->o.log, r->rc == 0 ? QA_INFO : QA_WARN, "%s", r->text);
    if (!r->orphan && r->rc != -ECANCELED) {
        qp_msg_t *rep;
        if (r->rc == 0) {
            rep = qp_msg_new_ok(w->id);
            put_move(self, rep, r);
        } else {
            rep = qp_msg_new_error(w->id, qp_errno_code(r->rc), "%s", r->text);
        }
        qa_reply_send(self->o.reply, w->p, &rep);
    }
    free(w);
}

static void migrate(void *arg, qa_peer_t *p, const qp_msg_t *m)
{
    qa_migrate_t *self = arg;
    uint64_t id = qp_msg_id(m);
    const char *vid = NULL, *uuid = NULL;
    qp_msg_get_str(m, "vgpu", &vid);
    if (!qa_host_find(self->o.host, vid)) {
        qa_reply_error(self->o.reply, p, id, QP_E_NOTFOUND,
                       "there is no vGPU '%.32s' (qgpuctl list shows them)", vid);
        return;
    }
    int64_t gpu;
    int to;
    if (qp_msg_get_int(m, "gpu", &gpu) == 0) {
        char err[QP_ERR_LEN];
        if (qa_host_gpu_check(self->o.host, gpu, err) < 0) {
            qa_reply_error(self->o.reply, p, id, QP_E_NOTFOUND, "%s", err);
            return;
        }
        to = (int)gpu;
    } else if (qp_msg_get_str(m, "gpu_uuid", &uuid) == 0) {
        const qa_gpu_t *g = qa_host_gpu_by_uuid(self->o.host, uuid);
        if (!g) {
            qa_reply_error(self->o.reply, p, id, QP_E_NOTFOUND,
                           "there is no GPU %.96s here (qgpuctl gpus shows them)", uuid);
            return;
        }
        to = (int)g->desc.index;
    } else {
        qa_reply_error(self->o.reply, p, id, QP_E_INVALID,
                       "migrate needs a GPU: gpu (an index) or gpu_uuid");
        return;
    }
    struct wait *w = calloc(1, sizeof *w);
    if (w)
        *w = (struct wait){.m = self, .p = p, .id = id};
    if (!w || qa_mover_move(self->o.mover, vid, to, migrated, w, p) < 0) {
        free(w);
        qa_reply_error(self->o.reply, p, id, QP_E_INTERNAL, "out of memory");
    }
}

/* {dry_run, moves: [{vgpu, from, to, why, done, text}]}: done tells whether the move
 * happened (never in a dry run). */
static void reply_plan(struct wait *w)
{
    qp_msg_t *rep = qp_msg_new_ok(w->id);
    qp_msg_set_bool(rep, "dry_run", w->dry);
    qp_msg_add_array(rep, "moves");
    for (size_t k = 0; k < w->n; k++) {
        qp_msg_t *m = qp_msg_append_map(rep, "moves");
        if (!m)
            break;
        qp_msg_set_str(m, "vgpu", w->steps[k].vgpu);
        qp_msg_set_uint(m, "from", w->steps[k].from);
        qp_msg_set_uint(m, "to", w->steps[k].to);
        qp_msg_set_str(m, "why", w->steps[k].why);
        qp_msg_set_bool(m, "done", !w->dry && w->rc[k] == 0);
        if (!w->dry)
            qp_msg_set_str(m, "text", w->text[k]);
    }
    qa_reply_send(w->m->o.reply, w->p, &rep);
}

static void balanced(void *arg, const qa_mover_report_t *r)
{
    struct wait *w = arg;
    for (size_t k = 0; k < w->n; k++) {
        if (w->rc[k] == 1 && strcmp(w->steps[k].vgpu, r->vgpu) == 0) {
            w->rc[k] = r->rc;
            snprintf(w->text[k], sizeof w->text[k], "%s", r->text);
            break;
        }
    }
    if (r->rc != -ECANCELED)
        qa_log(w->m->o.log, r->rc == 0 ? QA_INFO : QA_WARN, "balance: %s", r->text);
    w->orphan |= r->orphan || r->rc == -ECANCELED;
    if (--w->left)
        return;
    if (!w->orphan)
        reply_plan(w);
    free(w);
}

static void balance(void *arg, qa_peer_t *p, const qp_msg_t *m)
{
    qa_migrate_t *self = arg;
    struct wait *w = calloc(1, sizeof *w);
    if (!w) {
        qa_reply_error(self->o.reply, p, qp_msg_id(m), QP_E_INTERNAL, "out of memory");
        return;
    }
    w->m = self;
    w->p = p;
    w->id = qp_msg_id(m);
    qp_msg_get_bool(m, "dry_run", &w->dry);
    w->n = qa_balancer_plan(self->o.balancer, w->steps, QA_BALANCE_MAX_STEPS);
    size_t queued = 0;
    for (size_t k = 0; !w->dry && k < w->n; k++) {
        w->rc[k] = 1;
        if (qa_mover_move(self->o.mover, w->steps[k].vgpu, (int)w->steps[k].to, balanced, w,
                          p) < 0) {
            w->rc[k] = -ENOMEM;
            snprintf(w->text[k], sizeof w->text[k], "out of memory");
        } else {
            queued++;
        }
    }
    w->left = queued;
    if (!queued) {
        reply_plan(w);
        free(w);
    }
}

const qa_route_t qa_migrate_routes[] = {
    {QP_REQ_MIGRATE, QP_ADMIN, QA_CHECK_SESSION, migrate},
    {QP_REQ_BALANCE, QP_ADMIN, QA_CHECK_SESSION, balance},
};
const size_t qa_migrate_nroutes = sizeof qa_migrate_routes / sizeof qa_migrate_routes[0];
