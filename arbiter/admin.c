/* admin.c - admin requests over the host, the store and the tenants. Loop thread only. */
#include "arbiter/admin.h"

#include "arbiter/audit.h"
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

static void destroy(qa_server_t *srv, qa_peer_t *p, const qp_msg_t *m)
{
    char err[QP_ERR_LEN];
    qa_vgpu_t *v = named(srv, p, m);
    if (!v)
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
    if (!v)
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
    } else if (strcmp(t, "gpus") == 0 || strcmp(t, "stats") == 0) {
        gpus(srv, p, m, t[0] == 's');
    } else {
        qa_server_error(srv, p, qp_msg_id(m), QP_E_PROTO, "'%.32s' is not an admin request", t);
    }
}
