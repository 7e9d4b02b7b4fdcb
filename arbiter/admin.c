/* admin.c - admin requests over the host, the store and the tenants. Loop thread only. */
#include "arbiter/admin.h"

#include "arbiter/audit.h"
#include "arbiter/balancer.h"
#include "arbiter/mover.h"
#include "arbiter/tenant.h"
#include "proto/records.h"
#include "proto/schema.h"
#include "proto/units.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *gpu_uuid(qa_server_t *srv, const qa_vgpu_t *v)
{
    return qa_host_gpu(qa_server_host(srv), v->gpu)->desc.uuid;
}

static void fail(qa_server_t *srv, qa_peer_t *p, uint64_t id, int rc, const char *err)
{
    qa_server_error(srv, p, id, qp_errno_code(rc), "%s", err);
}

/* Replies {ok, vgpu: INFO} plus, when secret is set, the secret. */
static void reply_info(qa_server_t *srv, qa_peer_t *p, uint64_t id, const qa_vgpu_t *v, bool secret)
{
    qp_info_t info;
    qa_host_info(qa_server_host(srv), v, &info);
    qp_msg_t *rep = qp_msg_new_ok(id);
    qp_info_put(qp_msg_add_map(rep, "vgpu"), &info);
    if (secret)
        qp_msg_set_str(rep, "secret", v->secret);
    qa_server_send(srv, p, &rep);
}

static qa_vgpu_t *named(qa_server_t *srv, qa_peer_t *p, const qp_msg_t *m)
{
    const char *id = NULL;
    qp_msg_get_str(m, "vgpu", &id);
    qa_vgpu_t *v = qa_host_find(qa_server_host(srv), id);
    if (!v)
        qa_server_error(srv, p, qp_msg_id(m), QP_E_NOTFOUND,
                        "there is no vGPU '%.32s' (qgpuctl list shows them)", id);
    return v;
}

/* A percentage field: absent is fine (*has false); present must fit in unsigned. */
static int percent(const qp_msg_t *m, const char *key, bool *has, unsigned *out, char *err)
{
    uint64_t v;
    *has = qp_msg_get_uint(m, key, &v) == 0;
    if (!*has)
        return 0;
    if (v > 100) {
        snprintf(err, QP_ERR_LEN, "%s %llu%% is not a percentage from %d to 100", key,
                 (unsigned long long)v, strcmp(key, "limit") == 0 ? 0 : 1);
        return -EINVAL;
    }
    *out = (unsigned)v;
    return 0;
}

static int memory(const qp_msg_t *m, bool *has, uint64_t *out, char *err)
{
    *has = qp_msg_get_uint(m, "memory_mb", out) == 0;
    if (*has && (*out == 0 || *out > ((uint64_t)1 << 40))) {
        snprintf(err, QP_ERR_LEN, "memory_mb %llu is not a size from 1 MiB to 1 EiB",
                 (unsigned long long)*out);
        return -EINVAL;
    }
    return 0;
}

static void create(qa_server_t *srv, qa_peer_t *p, const qp_msg_t *m)
{
    uint64_t id = qp_msg_id(m);
    char err[QP_ERR_LEN];
    qa_spec_t spec = {.gpu = -1};
    bool has_mem, has_share;
    int64_t gpu;
    qp_msg_get_str(m, "vm", &spec.vm);
    if (qp_msg_get_str(m, "profile", &spec.profile) < 0)
        spec.profile = NULL;
    int rc = memory(m, &has_mem, &spec.memory_mb, err);
    rc = rc ? rc : percent(m, "share", &has_share, &spec.share, err);
    rc = rc ? rc : percent(m, "limit", &spec.has_limit, &spec.limit, err);
    if (rc == 0 && qp_msg_get_int(m, "gpu", &gpu) == 0) {
        if (gpu < -1) {
            snprintf(err, sizeof err, "gpu %lld is not a GPU index (-1: any)", (long long)gpu);
            rc = -EINVAL;
        }
        spec.gpu = gpu > INT_MAX ? INT_MAX : (int)gpu;
    }
    if (rc == 0 && has_share && spec.share == 0) {
        snprintf(err, sizeof err, "share 0%% is not a percentage from 1 to 100");
        rc = -EINVAL;
    }
    qa_vgpu_t *v = NULL;
    qa_host_t *host = qa_server_host(srv);
    if (rc == 0)
        rc = qa_host_create(host, &spec, (int64_t)time(NULL), &v, err);
    if (rc == 0 && (rc = qa_store_put(qa_server_store(srv), v, gpu_uuid(srv, v), err)) < 0)
        free(qa_host_take(host, v->id));
    if (rc == 0 && qa_store_note_ids(qa_server_store(srv), qa_host_next_id(host), err) < 0) {
        char ignored[QP_ERR_LEN];
        qa_store_remove(qa_server_store(srv), v->id, ignored);
        free(qa_host_take(host, v->id));
        rc = -EIO;
    }
    /* A vGPU that containers cannot ask for would look made and be unusable: undone. */
    qa_cdi_t *cdi = qa_server_cdi(srv);
    if (rc == 0 && cdi && qa_cdi_put(cdi, v, gpu_uuid(srv, v), err) < 0) {
        char ignored[QP_ERR_LEN];
        qa_cdi_remove(cdi, v->id, ignored);
        qa_store_remove(qa_server_store(srv), v->id, ignored);
        free(qa_host_take(host, v->id));
        rc = -EIO;
    }
    if (rc < 0) {
        if (rc == -EIO)
            qa_log(qa_server_log(srv), QA_ERROR, "create for '%s' failed: %s", spec.vm, err);
        fail(srv, p, id, rc, err);
        return;
    }
    qa_log(qa_server_log(srv), QA_INFO,
           "created %s for '%s': %s, %llu MiB, share %u%%, limit %u%%, "
           "GPU %u",
           v->id, v->vm, v->profile, (unsigned long long)v->memory_mb, v->share, v->limit, v->gpu);
    reply_info(srv, p, id, v, true);
}

/* Whether v is moving to another GPU, after answering busy. */
static bool moving(qa_server_t *srv, qa_peer_t *p, const qp_msg_t *m, const qa_vgpu_t *v,
                   const char *what)
{
    if (!v->moving && !qa_mover_moving(qa_server_mover(srv), v))
        return false;
    qa_server_error(srv, p, qp_msg_id(m), QP_E_BUSY,
                    "vGPU %s is moving to another GPU: %s it once that is done", v->id, what);
    return true;
}

static void destroy(qa_server_t *srv, qa_peer_t *p, const qp_msg_t *m)
{
    char err[QP_ERR_LEN];
    qa_vgpu_t *v = named(srv, p, m);
    if (!v || moving(srv, p, m, v, "destroy"))
        return;
    /* The file goes first: if it cannot, nothing changed. */
    if (qa_store_remove(qa_server_store(srv), v->id, err) < 0) {
        qa_log(qa_server_log(srv), QA_ERROR, "destroy %s failed: %s", v->id, err);
        fail(srv, p, qp_msg_id(m), -EIO, err);
        return;
    }
    qa_tenant_vgpu_gone(srv, v);
    qa_vgpu_t *gone = qa_host_take(qa_server_host(srv), v->id);
    qa_log(qa_server_log(srv), QA_INFO, "destroyed %s of '%s'", gone->id, gone->vm);
    /* A spec left behind names a vGPU that is gone: the preflight hook refuses its
     * containers, and the next sync removes it. */
    if (qa_server_cdi(srv) && qa_cdi_remove(qa_server_cdi(srv), gone->id, err) < 0)
        qa_log(qa_server_log(srv), QA_ERROR, "CDI spec of %s: %s", gone->id, err);
    free(gone);
    qp_msg_t *rep = qp_msg_new_ok(qp_msg_id(m));
    qa_server_send(srv, p, &rep);
}

static void resize(qa_server_t *srv, qa_peer_t *p, const qp_msg_t *m)
{
    uint64_t id = qp_msg_id(m);
    char err[QP_ERR_LEN];
    qa_change_t c = {0};
    int rc = memory(m, &c.has_memory, &c.memory_mb, err);
    rc = rc ? rc : percent(m, "share", &c.has_share, &c.share, err);
    rc = rc ? rc : percent(m, "limit", &c.has_limit, &c.limit, err);
    if (rc < 0) {
        fail(srv, p, id, rc, err);
        return;
    }
    qa_vgpu_t *v = named(srv, p, m);
    if (!v || moving(srv, p, m, v, "resize"))
        return;
    if (!c.has_memory && !c.has_share && !c.has_limit) {
        qa_server_error(srv, p, id, QP_E_INVALID, "resize needs memory, share or limit");
        return;
    }
    qa_vgpu_t before = *v;
    qa_change_t undo = {true, true, true, v->memory_mb, v->share, v->limit};
    if ((rc = qa_host_resize(qa_server_host(srv), v->id, &c, &v, err)) < 0) {
        fail(srv, p, id, rc, err);
        return;
    }
    if ((rc = qa_store_put(qa_server_store(srv), v, gpu_uuid(srv, v), err)) < 0) {
        qa_log(qa_server_log(srv), QA_ERROR, "resize %s failed: %s", v->id, err);
        char ignored[QP_ERR_LEN];
        qa_host_resize(qa_server_host(srv), v->id, &undo, &v, ignored);
        memcpy(v->profile, before.profile, sizeof v->profile);
        fail(srv, p, id, rc, err);
        return;
    }
    qa_log(qa_server_log(srv), QA_INFO, "resized %s: %llu MiB, share %u%%, limit %u%%", v->id,
           (unsigned long long)v->memory_mb, v->share, v->limit);
    qa_tenant_resized(srv, v, before.memory_mb);
    reply_info(srv, p, id, v, false);
}

static void list(qa_server_t *srv, qa_peer_t *p, const qp_msg_t *m)
{
    qa_host_t *host = qa_server_host(srv);
    qp_msg_t *rep = qp_msg_new_ok(qp_msg_id(m));
    qp_msg_add_array(rep, "vgpus");
    for (size_t i = 0; i < qa_host_nvgpus(host); i++) {
        qp_info_t info;
        qa_host_info(host, qa_host_vgpu(host, i), &info);
        qp_info_put(qp_msg_append_map(rep, "vgpus"), &info);
    }
    qa_server_send(srv, p, &rep);
}

static void creds(qa_server_t *srv, qa_peer_t *p, const qp_msg_t *m)
{
    qa_vgpu_t *v = named(srv, p, m);
    if (!v)
        return;
    qp_msg_t *rep = qp_msg_new_ok(qp_msg_id(m));
    qp_msg_set_str(rep, "vgpu", v->id);
    qp_msg_set_str(rep, "secret", v->secret);
    qp_msg_set_str(rep, "gpu_uuid", gpu_uuid(srv, v));
    qp_msg_set_str(rep, "tenant_dir", qa_server_tenant_dir(srv));
    qa_server_send(srv, p, &rep);
}

/* cdi {op: sync} rewrites every spec; {op: show, vgpu} names a vGPU's CDI devices and
 * spec file (docs/containers.md). */
static void cdi(qa_server_t *srv, qa_peer_t *p, const qp_msg_t *m)
{
    uint64_t id = qp_msg_id(m);
    qa_cdi_t *cdi = qa_server_cdi(srv);
    const char *op = NULL;
    qp_msg_get_str(m, "op", &op);
    if (!cdi) {
        qa_server_error(srv, p, id, QP_E_INVALID,
                        "this arbiter writes no CDI specs: start it with --tenant-dir "
                        "(docs/containers.md)");
        return;
    }
    qp_msg_t *rep = NULL;
    if (strcmp(op, "sync") == 0) {
        unsigned written, removed;
        char err[QP_ERR_LEN];
        if (qa_cdi_sync(cdi, qa_server_host(srv), &written, &removed, err) < 0) {
            qa_log(qa_server_log(srv), QA_ERROR, "CDI sync: %s", err);
            fail(srv, p, id, -EIO, err);
            return;
        }
        qa_log(qa_server_log(srv), QA_INFO, "CDI sync: %u written, %u stale removed", written,
               removed);
        rep = qp_msg_new_ok(id);
        qp_msg_set_uint(rep, "written", written);
        qp_msg_set_uint(rep, "removed", removed);
        qp_msg_set_str(rep, "dir", qa_cdi_dir(cdi));
    } else if (strcmp(op, "show") == 0) {
        if (!qp_msg_has(m, "vgpu")) {
            qa_server_error(srv, p, id, QP_E_INVALID, "cdi show needs a vGPU id");
            return;
        }
        qa_vgpu_t *v = named(srv, p, m);
        if (!v)
            return;
        rep = qp_msg_new_ok(id);
        char names[2][160], path[PATH_MAX];
        int n = qa_cdi_devices(cdi, v, gpu_uuid(srv, v), names);
        qp_msg_set_str(rep, "device", names[0]);
        if (n > 1)
            qp_msg_set_str(rep, "driver_device", names[1]);
        /* The file itself, as runtimes read it: the client prints it (a spec may be
         * longer than a reply's strings). */
        qp_msg_set_str(rep, "path", qa_cdi_path(cdi, v->id, path));
    } else {
        qa_server_error(srv, p, id, QP_E_INVALID, "cdi op '%.32s' is not sync or show", op);
        return;
    }
    qa_server_send(srv, p, &rep);
}

/* ---- migrate and balance (docs/migration.md) --------------------------------------- */

/* A request answered once its move (or its moves) ended. */
struct wait {
    qa_server_t *srv;
    qa_peer_t *p;         /* who asked; the mover tells when it went away */
    uint64_t id;          /* its request */
    size_t n, left;       /* balance: the moves of its plan, and those not over yet */
    bool dry;             /* balance: --dry-run */
    bool orphan;          /* its connection closed */
    qa_balance_step_t steps[QA_BALANCE_MAX_STEPS];
    int rc[QA_BALANCE_MAX_STEPS];
    char text[QA_BALANCE_MAX_STEPS][1024];
};

static const char *fate_name(qa_move_fate_t f)
{
    static const char *names[] = {"", "moved", "view", "back", "exited", "paused"};
    return f <= QA_FATE_PAUSED ? names[f] : "";
}

/* {vgpu: INFO, from, to, ms, text, procs: [{pid, fate, paused_ms, bytes}]} */
static void put_move(qa_server_t *srv, qp_msg_t *rep, const qa_mover_report_t *r)
{
    qa_vgpu_t *v = qa_host_find(qa_server_host(srv), r->vgpu);
    if (v) {
        qp_info_t info;
        qa_host_info(qa_server_host(srv), v, &info);
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
    if (r->rc != -ECANCELED)
        qa_log(qa_server_log(w->srv), r->rc == 0 ? QA_INFO : QA_WARN, "%s", r->text);
    if (!r->orphan && r->rc != -ECANCELED) {
        qp_msg_t *rep;
        if (r->rc == 0) {
            rep = qp_msg_new_ok(w->id);
            put_move(w->srv, rep, r);
        } else {
            rep = qp_msg_new_error(w->id, qp_errno_code(r->rc), "%s", r->text);
        }
        qa_server_send(w->srv, w->p, &rep);
    }
    free(w);
}

static void migrate(qa_server_t *srv, qa_peer_t *p, const qp_msg_t *m)
{
    uint64_t id = qp_msg_id(m);
    qa_vgpu_t *v = named(srv, p, m);
    if (!v)
        return;
    int64_t gpu;
    const char *uuid = NULL;
    int to;
    if (qp_msg_get_int(m, "gpu", &gpu) == 0) {
        to = gpu < 0 || gpu > INT_MAX ? INT_MAX : (int)gpu; /* the mover names the range */
    } else if (qp_msg_get_str(m, "gpu_uuid", &uuid) == 0) {
        const qa_gpu_t *g = qa_host_gpu_by_uuid(qa_server_host(srv), uuid);
        if (!g) {
            qa_server_error(srv, p, id, QP_E_NOTFOUND,
                            "there is no GPU %.96s here (qgpuctl gpus shows them)", uuid);
            return;
        }
        to = (int)g->desc.index;
    } else {
        qa_server_error(srv, p, id, QP_E_INVALID, "migrate needs a GPU: gpu (an index) or gpu_uuid");
        return;
    }
    struct wait *w = calloc(1, sizeof *w);
    if (w)
        *w = (struct wait){.srv = srv, .p = p, .id = id};
    if (!w || qa_mover_move(qa_server_mover(srv), v->id, to, migrated, w, p) < 0) {
        free(w);
        qa_server_error(srv, p, id, QP_E_INTERNAL, "out of memory");
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
    qa_server_send(w->srv, w->p, &rep);
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
        qa_log(qa_server_log(w->srv), r->rc == 0 ? QA_INFO : QA_WARN, "balance: %s", r->text);
    w->orphan |= r->orphan || r->rc == -ECANCELED;
    if (--w->left)
        return;
    if (!w->orphan)
        reply_plan(w);
    free(w);
}

static void balance(qa_server_t *srv, qa_peer_t *p, const qp_msg_t *m)
{
    struct wait *w = calloc(1, sizeof *w);
    if (!w) {
        qa_server_error(srv, p, qp_msg_id(m), QP_E_INTERNAL, "out of memory");
        return;
    }
    w->srv = srv;
    w->p = p;
    w->id = qp_msg_id(m);
    qp_msg_get_bool(m, "dry_run", &w->dry);
    w->n = qa_balancer_plan(qa_server_balancer(srv), w->steps, QA_BALANCE_MAX_STEPS);
    size_t queued = 0;
    for (size_t k = 0; !w->dry && k < w->n; k++) {
        w->rc[k] = 1; /* not over yet */
        if (qa_mover_move(qa_server_mover(srv), w->steps[k].vgpu, (int)w->steps[k].to, balanced, w,
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

/* Replies with every GPU, plus the oversubscription ratios (gpus) or the totals (stats). */
static void gpus(qa_server_t *srv, qa_peer_t *p, const qp_msg_t *m, bool stats)
{
    qa_host_t *host = qa_server_host(srv);
    const qa_config_t *cfg = qa_server_config(srv);
    qp_msg_t *rep = qp_msg_new_ok(qp_msg_id(m));
    qp_msg_add_array(rep, "gpus");
    for (size_t i = 0; i < qa_host_ngpus(host); i++) {
        qp_gpu_t g;
        qa_host_gpu_record(host, i, &g);
        qp_gpu_put(qp_msg_append_map(rep, "gpus"), &g);
    }
    if (stats) {
        qp_totals_t t;
        qa_host_totals(host, &t);
        t.memory_used_mb = qa_tenant_host_used(srv) / QP_MIB;
        t.kills = qa_audit_kills(qa_server_audit(srv));
        qp_totals_put(rep, &t);
        size_t nf;
        const qp_finding_t *f = qa_audit_findings(qa_server_audit(srv), &nf);
        qp_msg_add_array(rep, "findings");
        for (size_t i = 0; i < nf && i < QP_MAX_FINDINGS; i++)
            qp_finding_put(qp_msg_append_map(rep, "findings"), &f[i]);
    } else {
        qp_msg_set_float(rep, "oversub_memory", cfg->oversub_memory);
        qp_msg_set_float(rep, "oversub_share", cfg->oversub_share);
        qp_msg_set_str(rep, "placement", cfg->placement == QA_SPREAD ? "spread" : "pack");
    }
    qa_server_send(srv, p, &rep);
}

void qa_admin_handle(qa_server_t *srv, qa_peer_t *p, const qp_msg_t *m)
{
    const char *t = qp_msg_type(m);
    if (strcmp(t, "create") == 0) {
        create(srv, p, m);
    } else if (strcmp(t, "destroy") == 0) {
        destroy(srv, p, m);
    } else if (strcmp(t, "resize") == 0) {
        resize(srv, p, m);
    } else if (strcmp(t, "list") == 0) {
        list(srv, p, m);
    } else if (strcmp(t, "info") == 0) {
        qa_vgpu_t *v = named(srv, p, m);
        if (v)
            reply_info(srv, p, qp_msg_id(m), v, false);
    } else if (strcmp(t, "creds") == 0) {
        creds(srv, p, m);
    } else if (strcmp(t, "cdi") == 0) {
        cdi(srv, p, m);
    } else if (strcmp(t, "migrate") == 0) {
        migrate(srv, p, m);
    } else if (strcmp(t, "balance") == 0) {
        balance(srv, p, m);
    } else if (strcmp(t, "gpus") == 0 || strcmp(t, "stats") == 0) {
        gpus(srv, p, m, t[0] == 's');
    } else {
        qa_server_error(srv, p, qp_msg_id(m), QP_E_PROTO, "'%.32s' is not an admin request", t);
    }
}
