/* admin.c - admin requests over the host model, the store and the CDI specs. Loop thread
 * only. */
#include "arbiter/admin.h"

#include "arbiter/version.h"
#include "proto/records.h"
#include "proto/schema.h"
#include "proto/units.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct qa_admin {
    qa_admin_opts_t o; /* copied; what it points to is borrowed */
};

static const char *gpu_uuid(qa_admin_t *a, const qa_vgpu_t *v)
{
    return qa_host_gpu(a->o.host, v->gpu)->desc.uuid;
}

static void fail(qa_admin_t *a, qa_peer_t *p, uint64_t id, int rc, const char *err)
{
    qa_reply_error(a->o.reply, p, id, qp_errno_code(rc), "%s", err);
}

/* Replies {ok, vgpu: INFO} plus, when secret is set, the secret. */
static void reply_info(qa_admin_t *a, qa_peer_t *p, uint64_t id, const qa_vgpu_t *v, bool secret)
{
    qp_info_t info;
    qa_host_info(a->o.host, v, &info);
    qp_msg_t *rep = qp_msg_new_ok(id);
    qp_info_put(qp_msg_add_map(rep, "vgpu"), &info);
    if (secret)
        qp_msg_set_str(rep, "secret", v->secret);
    qa_reply_send(a->o.reply, p, &rep);
}

static qa_vgpu_t *named(qa_admin_t *a, qa_peer_t *p, const qp_msg_t *m)
{
    const char *id = NULL;
    qp_msg_get_str(m, "vgpu", &id);
    qa_vgpu_t *v = qa_host_find(a->o.host, id);
    if (!v)
        qa_reply_error(a->o.reply, p, qp_msg_id(m), QP_E_NOTFOUND,
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

static void create(void *self, qa_peer_t *p, const qp_msg_t *m)
{
    qa_admin_t *a = self;
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
        } else if (gpu > INT_MAX) {
            rc = qa_host_gpu_check(a->o.host, gpu, err); /* no such GPU, named as asked */
        }
        spec.gpu = rc == 0 ? (int)gpu : -1;
    }
    if (rc == 0 && has_share && spec.share == 0) {
        snprintf(err, sizeof err, "share 0%% is not a percentage from 1 to 100");
        rc = -EINVAL;
    }
    qa_vgpu_t *v = NULL;
    qa_host_t *host = a->o.host;
    if (rc == 0)
        rc = qa_host_create(host, &spec, (int64_t)time(NULL), &v, err);
    if (rc == 0 && (rc = qa_store_put(a->o.store, v, gpu_uuid(a, v), err)) < 0)
        free(qa_host_take(host, v->id));
    if (rc == 0 && qa_store_note_ids(a->o.store, qa_host_next_id(host), err) < 0) {
        char ignored[QP_ERR_LEN];
        qa_store_remove(a->o.store, v->id, ignored);
        free(qa_host_take(host, v->id));
        rc = -EIO;
    }
    /* A vGPU that containers cannot ask for would look made and be unusable: undone. */
    qa_cdi_t *cdi = a->o.cdi;
    if (rc == 0 && cdi && qa_cdi_put(cdi, v, gpu_uuid(a, v), err) < 0) {
        char ignored[QP_ERR_LEN];
        qa_cdi_remove(cdi, v->id, ignored);
        qa_store_remove(a->o.store, v->id, ignored);
        free(qa_host_take(host, v->id));
        rc = -EIO;
    }
    if (rc < 0) {
        if (rc == -EIO)
            qa_log(a->o.log, QA_ERROR, "create for '%s' failed: %s", spec.vm, err);
        fail(a, p, id, rc, err);
        return;
    }
    qa_log(a->o.log, QA_INFO,
           "created %s for '%s': %s, %llu MiB, share %u%%, limit %u%%, "
           "GPU %u",
           v->id, v->vm, v->profile, (unsigned long long)v->memory_mb, v->share, v->limit, v->gpu);
    reply_info(a, p, id, v, true);
}

static void destroy(void *self, qa_peer_t *p, const qp_msg_t *m)
{
    qa_admin_t *a = self;
    char err[QP_ERR_LEN];
    qa_vgpu_t *v = named(a, p, m);
    if (!v)
        return;
    if (v->in_move) { /* its processes are in the middle of a move (mover.h) */
        qa_reply_error(a->o.reply, p, qp_msg_id(m), QP_E_BUSY,
                       "vGPU %s is moving to another GPU: destroy it once that is done", v->id);
        return;
    }
    /* The file goes first: if it cannot, nothing changed. */
    if (qa_store_remove(a->o.store, v->id, err) < 0) {
        qa_log(a->o.log, QA_ERROR, "destroy %s failed: %s", v->id, err);
        fail(a, p, qp_msg_id(m), -EIO, err);
        return;
    }
    if (a->o.ops.gone)
        a->o.ops.gone(a->o.ops.arg, v);
    qa_vgpu_t *gone = qa_host_take(a->o.host, v->id);
    qa_log(a->o.log, QA_INFO, "destroyed %s of '%s'", gone->id, gone->vm);
    /* A spec left behind names a vGPU that is gone: the preflight hook refuses its
     * containers, and the next sync removes it. */
    if (a->o.cdi && qa_cdi_remove(a->o.cdi, gone->id, err) < 0)
        qa_log(a->o.log, QA_ERROR, "CDI spec of %s: %s", gone->id, err);
    free(gone);
    qp_msg_t *rep = qp_msg_new_ok(qp_msg_id(m));
    qa_reply_send(a->o.reply, p, &rep);
}

static void resize(void *self, qa_peer_t *p, const qp_msg_t *m)
{
    qa_admin_t *a = self;
    uint64_t id = qp_msg_id(m);
    char err[QP_ERR_LEN];
    qa_change_t c = {0};
    int rc = memory(m, &c.has_memory, &c.memory_mb, err);
    rc = rc ? rc : percent(m, "share", &c.has_share, &c.share, err);
    rc = rc ? rc : percent(m, "limit", &c.has_limit, &c.limit, err);
    if (rc < 0) {
        fail(a, p, id, rc, err);
        return;
    }
    qa_vgpu_t *v = named(a, p, m);
    if (!v)
        return;
    if (!c.has_memory && !c.has_share && !c.has_limit) {
        qa_reply_error(a->o.reply, p, id, QP_E_INVALID, "resize needs memory, share or limit");
        return;
    }
    qa_vgpu_t before = *v;
    qa_change_t undo = {true, true, true, v->memory_mb, v->share, v->limit};
    if ((rc = qa_host_resize(a->o.host, v->id, &c, &v, err)) < 0) {
        fail(a, p, id, rc, err);
        return;
    }
    if ((rc = qa_store_put(a->o.store, v, gpu_uuid(a, v), err)) < 0) {
        qa_log(a->o.log, QA_ERROR, "resize %s failed: %s", v->id, err);
        char ignored[QP_ERR_LEN];
        qa_host_resize(a->o.host, v->id, &undo, &v, ignored);
        memcpy(v->profile, before.profile, sizeof v->profile);
        fail(a, p, id, rc, err);
        return;
    }
    qa_log(a->o.log, QA_INFO, "resized %s: %llu MiB, share %u%%, limit %u%%", v->id,
           (unsigned long long)v->memory_mb, v->share, v->limit);
    if (a->o.ops.resized)
        a->o.ops.resized(a->o.ops.arg, v, before.memory_mb);
    reply_info(a, p, id, v, false);
}

static void list(void *self, qa_peer_t *p, const qp_msg_t *m)
{
    qa_admin_t *a = self;
    qa_host_t *host = a->o.host;
    qp_msg_t *rep = qp_msg_new_ok(qp_msg_id(m));
    qp_msg_add_array(rep, "vgpus");
    for (size_t i = 0; i < qa_host_nvgpus(host); i++) {
        qp_info_t info;
        qa_host_info(host, qa_host_vgpu(host, i), &info);
        qp_info_put(qp_msg_append_map(rep, "vgpus"), &info);
    }
    qa_reply_send(a->o.reply, p, &rep);
}

static void creds(void *self, qa_peer_t *p, const qp_msg_t *m)
{
    qa_admin_t *a = self;
    qa_vgpu_t *v = named(a, p, m);
    if (!v)
        return;
    qp_msg_t *rep = qp_msg_new_ok(qp_msg_id(m));
    qp_msg_set_str(rep, "vgpu", v->id);
    qp_msg_set_str(rep, "secret", v->secret);
    qp_msg_set_str(rep, "gpu_uuid", gpu_uuid(a, v));
    qp_msg_set_str(rep, "tenant_dir", a->o.tenant_dir);
    qa_reply_send(a->o.reply, p, &rep);
}

/* cdi {op: sync} rewrites every spec; {op: show, vgpu} names a vGPU's CDI devices and
 * spec file (docs/containers.md). */
static void cdi(void *self, qa_peer_t *p, const qp_msg_t *m)
{
    qa_admin_t *a = self;
    uint64_t id = qp_msg_id(m);
    qa_cdi_t *cdi = a->o.cdi;
    const char *op = NULL;
    qp_msg_get_str(m, "op", &op);
    if (!cdi) {
        qa_reply_error(a->o.reply, p, id, QP_E_INVALID,
                        "this arbiter writes no CDI specs: start it with --tenant-dir "
                        "(docs/containers.md)");
        return;
    }
    qp_msg_t *rep = NULL;
    if (strcmp(op, "sync") == 0) {
        unsigned written, removed;
        char err[QP_ERR_LEN];
        if (qa_cdi_sync(cdi, a->o.host, &written, &removed, err) < 0) {
            qa_log(a->o.log, QA_ERROR, "CDI sync: %s", err);
            fail(a, p, id, -EIO, err);
            return;
        }
        qa_log(a->o.log, QA_INFO, "CDI sync: %u written, %u stale removed", written,
               removed);
        rep = qp_msg_new_ok(id);
        qp_msg_set_uint(rep, "written", written);
        qp_msg_set_uint(rep, "removed", removed);
        qp_msg_set_str(rep, "dir", qa_cdi_dir(cdi));
    } else if (strcmp(op, "show") == 0) {
        if (!qp_msg_has(m, "vgpu")) {
            qa_reply_error(a->o.reply, p, id, QP_E_INVALID, "cdi show needs a vGPU id");
            return;
        }
        qa_vgpu_t *v = named(a, p, m);
        if (!v)
            return;
        rep = qp_msg_new_ok(id);
        char names[2][160], path[PATH_MAX];
        int n = qa_cdi_devices(cdi, v, gpu_uuid(a, v), names);
        qp_msg_set_str(rep, "device", names[0]);
        if (n > 1)
            qp_msg_set_str(rep, "driver_device", names[1]);
        /* The file itself, as runtimes read it: the client prints it (a spec may be
         * longer than a reply's strings). */
        qp_msg_set_str(rep, "path", qa_cdi_path(cdi, v->id, path));
    } else {
        qa_reply_error(a->o.reply, p, id, QP_E_INVALID, "cdi op '%.32s' is not sync or show", op);
        return;
    }
    qa_reply_send(a->o.reply, p, &rep);
}

/* Replies with every GPU, plus the oversubscription ratios (gpus) or the totals (stats). */
static void gpus(qa_admin_t *a, qa_peer_t *p, const qp_msg_t *m, bool stats)
{
    qa_host_t *host = a->o.host;
    const qa_config_t *cfg = a->o.cfg;
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
        const qp_finding_t *f = NULL;
        size_t nf = 0;
        if (a->o.ops.stats)
            a->o.ops.stats(a->o.ops.arg, &t, &f, &nf);
        qp_totals_put(rep, &t);
        qp_msg_add_array(rep, "findings");
        for (size_t i = 0; i < nf && i < QP_MAX_FINDINGS; i++)
            qp_finding_put(qp_msg_append_map(rep, "findings"), &f[i]);
    } else {
        qp_msg_set_float(rep, "oversub_memory", cfg->oversub_memory);
        qp_msg_set_float(rep, "oversub_share", cfg->oversub_share);
        qp_msg_set_str(rep, "placement", cfg->placement == QA_SPREAD ? "spread" : "pack");
    }
    qa_reply_send(a->o.reply, p, &rep);
}

static void hello(void *self, qa_peer_t *p, const qp_msg_t *m)
{
    qa_admin_t *a = self;
    qa_reply_set_session(a->o.reply, p, true);
    qp_msg_t *rep = qp_msg_new_ok(qp_msg_id(m));
    qp_msg_set_uint(rep, "proto", QP_PROTO_VERSION);
    qp_msg_set_str(rep, "arbiter", "qarbiter/" QA_VERSION);
    qa_reply_send(a->o.reply, p, &rep);
}

static void info(void *self, qa_peer_t *p, const qp_msg_t *m)
{
    qa_admin_t *a = self;
    qa_vgpu_t *v = named(a, p, m);
    if (v)
        reply_info(a, p, qp_msg_id(m), v, false);
}

static void stats(void *self, qa_peer_t *p, const qp_msg_t *m)
{
    qa_admin_t *a = self;
    gpus(a, p, m, true);
}

static void gpus_only(void *self, qa_peer_t *p, const qp_msg_t *m)
{
    qa_admin_t *a = self;
    gpus(a, p, m, false);
}

/* ---- the table ---------------------------------------------------------------------- */

/* Every handler has the signature of qa_handler_fn: self is the admin. */
const qa_route_t qa_admin_routes[] = {
    {QP_REQ_HELLO, QP_ADMIN, QA_CHECK_HELLO, hello},
    {QP_REQ_CREATE, QP_ADMIN, QA_CHECK_SESSION, create},
    {QP_REQ_DESTROY, QP_ADMIN, QA_CHECK_SESSION, destroy},
    {QP_REQ_RESIZE, QP_ADMIN, QA_CHECK_SESSION, resize},
    {QP_REQ_LIST, QP_ADMIN, QA_CHECK_SESSION, list},
    {QP_REQ_INFO, QP_ADMIN, QA_CHECK_SESSION, info},
    {QP_REQ_CREDS, QP_ADMIN, QA_CHECK_SESSION, creds},
    {QP_REQ_GPUS, QP_ADMIN, QA_CHECK_SESSION, gpus_only},
    {QP_REQ_STATS, QP_ADMIN, QA_CHECK_SESSION, stats},
    {QP_REQ_CDI, QP_ADMIN, QA_CHECK_SESSION, cdi},
};
const size_t qa_admin_nroutes = sizeof qa_admin_routes / sizeof qa_admin_routes[0];

/* ---- life cycle --------------------------------------------------------------------- */

qa_admin_t *qa_admin_new(const qa_admin_opts_t *opts)
{
    qa_admin_t *self = calloc(1, sizeof *self);
    if (self)
        self->o = *opts;
    return self;
}

void qa_admin_destroy(qa_admin_t **self_p)
{
    free(*self_p);
    *self_p = NULL;
}
