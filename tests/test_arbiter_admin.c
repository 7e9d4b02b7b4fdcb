/* test_arbiter_admin.c - the administrator's requests without a daemon: the handlers of
 * admin.c on a made-up host with a real store in a temporary dir, answering through a
 * recording reply path, and what they ask of the rest of the arbiter (qa_admin_ops_t). */
#include "arbiter/admin.h"
#include "arbiter/version.h"
#include "proto/records.h"
#include "proto/schema.h"
#include "tests/handler_support.h"
#include "tests/harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What admin.c asked of the others. */
struct asked {
    qa_vgpu_t gone;       /* a copy of the last vGPU said gone */
    int ngone;
    qa_vgpu_t resized;    /* ... and resized */
    uint64_t old_memory;  /* with its memory before */
    int nresized;
    qp_finding_t finding; /* what stats is given */
};

static void a_gone(void *arg, qa_vgpu_t *v)
{
    struct asked *a = arg;
    a->gone = *v;
    a->ngone++;
}

static void a_resized(void *arg, qa_vgpu_t *v, uint64_t old_memory_mb)
{
    struct asked *a = arg;
    a->resized = *v;
    a->old_memory = old_memory_mb;
    a->nresized++;
}

static void a_stats(void *arg, qp_totals_t *t, const qp_finding_t **f, size_t *n)
{
    struct asked *a = arg;
    t->memory_used_mb = 123;
    t->kills = 2;
    *f = &a->finding;
    *n = 1;
}

struct fixture {
    qa_config_t cfg;
    char *dir;
    qa_host_t *host;
    qa_store_t *store;
    qt_wire_t *w;
    struct asked asked;
    qa_admin_t *admin;
    qa_peer_t *p; /* an administrator with a session */
};

static struct fixture *setup(void)
{
    struct fixture *f = calloc(1, sizeof *f);
    char err[QP_ERR_LEN];
    qa_config_defaults(&f->cfg);
    f->dir = qt_tmpdir();
    f->host = qt_host(2, &f->cfg);
    cr_assert_not_null(f->store = qa_store_open(f->dir, err), "%s", err);
    f->w = qt_wire_new();
    qa_admin_opts_t o = {f->host,   f->store, NULL, &f->cfg, &f->w->log, &f->w->reply,
                         "/run/tenants", {a_gone, a_resized, a_stats, &f->asked}};
    cr_assert_not_null(f->admin = qa_admin_new(&o));
    cr_assert_eq(qa_dispatch_add(f->w->dispatch, qa_admin_routes, qa_admin_nroutes, f->admin), 0);
    f->p = qt_peer(QP_ADMIN, 1);
    qt_wire_request(f->w, f->p, qt_hello("admin", NULL, NULL, 0, 0));
    const qp_msg_t *r = qt_wire_last(f->w, f->p);
    cr_assert_str_eq(qp_msg_type(r), "ok");
    const char *arbiter;
    cr_assert_eq(qp_msg_get_str(r, "arbiter", &arbiter), 0);
    cr_assert_str_eq(arbiter, "qarbiter/" QA_VERSION);
    cr_assert(f->p->session);
    return f;
}

static void teardown(struct fixture *f)
{
    qa_admin_destroy(&f->admin);
    cr_assert_null(f->admin);
    qt_wire_destroy(&f->w);
    qa_store_close(&f->store);
    qa_host_destroy(&f->host);
    free(f->p);
    free(f->dir);
    free(f);
}

static qp_msg_t *create_req(const char *vm, const char *profile)
{
    qp_msg_t *m = qp_new_request(QP_REQ_CREATE);
    qp_msg_set_str(m, "vm", vm);
    if (profile)
        qp_msg_set_str(m, "profile", profile);
    return m;
}

static qp_msg_t *with_vgpu(qp_req_t kind, const char *id)
{
    qp_msg_t *m = qp_new_request(kind);
    qp_msg_set_str(m, "vgpu", id);
    return m;
}

/* Creates a vGPU of profile for vm; returns its INFO from the reply. */
static qp_info_t create(struct fixture *f, const char *vm, const char *profile)
{
    qt_wire_request(f->w, f->p, create_req(vm, profile));
    const qp_msg_t *r = qt_wire_last(f->w, f->p);
    qp_info_t info;
    char err[QP_ERR_LEN];
    cr_assert_str_eq(qp_msg_type(r), "ok", "%s", qt_text(r));
    cr_assert_eq(qp_info_get(qp_msg_get_map(r, "vgpu"), &info, err), 0, "%s", err);
    return info;
}

Test(qa_admin, create_answers_the_vgpu_and_its_secret_and_writes_it_before_answering)
{
    struct fixture *f = setup();
    qp_info_t i = create(f, "vm-1", "Q2");
    cr_assert_str_eq(i.id, "vg-1");
    cr_assert_eq(i.memory_mb, 2048);
    cr_assert_eq(i.share, 20);
    const char *secret;
    cr_assert_eq(qp_msg_get_str(qt_wire_last(f->w, f->p), "secret", &secret), 0);
    cr_assert_eq(strlen(secret), 32);
    char *path = qt_strf("%s/vgpus/vg-1.json", f->dir);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "the file is there when the reply is");
    cr_assert_eq(st.st_mode & 0777, 0600);
    free(path);
    cr_assert(strstr(qt_wire_log(f->w), "created vg-1 for 'vm-1': Q2, 2048 MiB, share 20%"),
              "%s", qt_wire_log(f->w));
    teardown(f);
}

Test(qa_admin, bad_values_are_refused_in_one_line_and_nothing_is_made)
{
    struct fixture *f = setup();
    static const struct {
        const char *key;
        int64_t value;
        const char *says;
    } bad[] = {
        {"share", 0, "share 0% is not a percentage from 1 to 100"},
        {"limit", 101, "limit 101% is not a percentage from 0 to 100"},
        {"memory_mb", 0, "memory_mb 0 is not a size from 1 MiB to 1 EiB"},
        {"gpu", -2, "gpu -2 is not a GPU index (-1: any)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        qp_msg_t *m = create_req("vm", NULL);
        qp_msg_set_uint(m, "memory_mb", 1024);
        qp_msg_set_uint(m, "share", 10);
        if (bad[i].value < 0)
            qp_msg_set_int(m, bad[i].key, bad[i].value);
        else
            qp_msg_set_uint(m, bad[i].key, (uint64_t)bad[i].value);
        qt_wire_request(f->w, f->p, m);
        const qp_msg_t *r = qt_wire_last(f->w, f->p);
        cr_assert_str_eq(qt_code(r), QP_E_INVALID, "%s", bad[i].key);
        cr_assert_str_eq(qt_text(r), bad[i].says);
    }
    /* a GPU that is not there, named as asked even past an int */
    static const int64_t absent[] = {7, (int64_t)1 << 40};
    static const char *const absent_says[] = {
        "there is no GPU 7 (this host has GPUs 0 to 1)",
        "there is no GPU 1099511627776 (this host has GPUs 0 to 1)"};
    for (size_t i = 0; i < 2; i++) {
        qp_msg_t *m = create_req("vm", "Q1");
        qp_msg_set_int(m, "gpu", absent[i]);
        qt_wire_request(f->w, f->p, m);
        const qp_msg_t *r = qt_wire_last(f->w, f->p);
        cr_assert_str_eq(qt_code(r), QP_E_NOTFOUND, "%s", qt_text(r));
        cr_assert_str_eq(qt_text(r), absent_says[i]);
    }
    cr_assert_eq(qa_host_nvgpus(f->host), 0, "nothing made");
    qt_wire_request(f->w, f->p, create_req("vm", "Q8"));
    qt_wire_request(f->w, f->p, create_req("vm", "Q8"));
    qt_wire_request(f->w, f->p, create_req("vm", "Q8"));
    const qp_msg_t *r = qt_wire_last(f->w, f->p);
    cr_assert_str_eq(qt_code(r), QP_E_NOSPACE, "two GPUs hold two Q8: %s", qt_text(r));
    cr_assert_eq(qa_host_nvgpus(f->host), 2);
    teardown(f);
}

Test(qa_admin, destroy_removes_the_file_then_asks_the_rest_to_let_the_vgpu_go)
{
    struct fixture *f = setup();
    qp_info_t i = create(f, "vm-1", "Q1");
    qt_wire_request(f->w, f->p, with_vgpu(QP_REQ_DESTROY, i.id));
    cr_assert_str_eq(qp_msg_type(qt_wire_last(f->w, f->p)), "ok");
    cr_assert_eq(f->asked.ngone, 1);
    cr_assert_str_eq(f->asked.gone.id, "vg-1");
    cr_assert_null(qa_host_find(f->host, "vg-1"));
    char *path = qt_strf("%s/vgpus/vg-1.json", f->dir);
    cr_assert_neq(access(path, F_OK), 0);
    free(path);
    qt_wire_request(f->w, f->p, with_vgpu(QP_REQ_DESTROY, i.id));
    const qp_msg_t *r = qt_wire_last(f->w, f->p);
    cr_assert_str_eq(qt_code(r), QP_E_NOTFOUND);
    cr_assert_str_eq(qt_text(r), "there is no vGPU 'vg-1' (qgpuctl list shows them)");
    cr_assert_eq(f->asked.ngone, 1);
    /* ids are never handed out again */
    cr_assert_str_eq(create(f, "vm-2", "Q1").id, "vg-2");
    teardown(f);
}

Test(qa_admin, resize_tells_the_rest_with_the_old_memory_and_a_refused_one_changes_nothing)
{
    struct fixture *f = setup();
    qp_info_t i = create(f, "vm-1", "Q2");
    qp_msg_t *m = with_vgpu(QP_REQ_RESIZE, i.id);
    qp_msg_set_uint(m, "memory_mb", 3072);
    qp_msg_set_uint(m, "share", 30);
    qt_wire_request(f->w, f->p, m);
    const qp_msg_t *r = qt_wire_last(f->w, f->p);
    cr_assert_str_eq(qp_msg_type(r), "ok", "%s", qt_text(r));
    cr_assert_eq(f->asked.nresized, 1);
    cr_assert_eq(f->asked.old_memory, 2048);
    cr_assert_eq(f->asked.resized.memory_mb, 3072);
    cr_assert_str_eq(f->asked.resized.profile, "custom");

    m = with_vgpu(QP_REQ_RESIZE, i.id);
    qp_msg_set_uint(m, "memory_mb", 9000); /* more than its GPU */
    qt_wire_request(f->w, f->p, m);
    cr_assert_str_neq(qt_code(qt_wire_last(f->w, f->p)), "");
    cr_assert_eq(f->asked.nresized, 1);
    cr_assert_eq(qa_host_find(f->host, i.id)->memory_mb, 3072);
    qt_wire_request(f->w, f->p, with_vgpu(QP_REQ_RESIZE, i.id));
    cr_assert_str_eq(qt_text(qt_wire_last(f->w, f->p)), "resize needs memory, share or limit");
    teardown(f);
}

Test(qa_admin, list_info_creds_gpus_and_stats_answer_from_the_host_and_the_others_figures)
{
    struct fixture *f = setup();
    create(f, "vm-1", "Q1");
    create(f, "vm-2", "Q2");
    char err[QP_ERR_LEN];
    size_t n;
    qt_wire_request(f->w, f->p, qp_new_request(QP_REQ_LIST));
    cr_assert_eq(qp_msg_count_maps(qt_wire_last(f->w, f->p), "vgpus", &n), 0);
    cr_assert_eq(n, 2);

    qt_wire_request(f->w, f->p, with_vgpu(QP_REQ_INFO, "vg-2"));
    qp_info_t i;
    cr_assert_eq(qp_info_get(qp_msg_get_map(qt_wire_last(f->w, f->p), "vgpu"), &i, err), 0);
    cr_assert_str_eq(i.vm, "vm-2");
    cr_assert_not(qp_msg_has(qt_wire_last(f->w, f->p), "secret"), "info shows no secret");

    qt_wire_request(f->w, f->p, with_vgpu(QP_REQ_CREDS, "vg-1"));
    const char *dir, *uuid;
    cr_assert_eq(qp_msg_get_str(qt_wire_last(f->w, f->p), "tenant_dir", &dir), 0);
    cr_assert_str_eq(dir, "/run/tenants");
    cr_assert_eq(qp_msg_get_str(qt_wire_last(f->w, f->p), "gpu_uuid", &uuid), 0);
    cr_assert_str_eq(uuid, qa_host_gpu(f->host, qa_host_find(f->host, "vg-1")->gpu)->desc.uuid);

    qt_wire_request(f->w, f->p, qp_new_request(QP_REQ_GPUS));
    const char *placement;
    cr_assert_eq(qp_msg_get_str(qt_wire_last(f->w, f->p), "placement", &placement), 0);
    cr_assert_str_eq(placement, "spread");

    snprintf(f->asked.finding.kind, sizeof f->asked.finding.kind, "unmanaged");
    snprintf(f->asked.finding.detail, sizeof f->asked.finding.detail, "pid 7 escapes");
    qt_wire_request(f->w, f->p, qp_new_request(QP_REQ_STATS));
    const qp_msg_t *r = qt_wire_last(f->w, f->p);
    qp_totals_t t;
    qp_finding_t fd;
    cr_assert_eq(qp_totals_get(r, &t, err), 0, "%s", err);
    cr_assert_eq(t.vgpus_total, 2);
    cr_assert_eq(t.memory_reserved_mb, 3072);
    cr_assert_eq(t.memory_used_mb, 123, "the tenants' figure, from the ops");
    cr_assert_eq(t.kills, 2);
    cr_assert_eq(qp_finding_get(qp_msg_map_at(r, "findings", 0), &fd, err), 0, "%s", err);
    cr_assert_str_eq(fd.detail, "pid 7 escapes");
    teardown(f);
}

Test(qa_admin, cdi_without_a_tenant_dir_says_how_to_get_specs)
{
    struct fixture *f = setup();
    qp_msg_t *m = qp_new_request(QP_REQ_CDI);
    qp_msg_set_str(m, "op", "sync");
    qt_wire_request(f->w, f->p, m);
    const qp_msg_t *r = qt_wire_last(f->w, f->p);
    cr_assert_str_eq(qt_code(r), QP_E_INVALID);
    cr_assert(strstr(qt_text(r), "start it with --tenant-dir"), "%s", qt_text(r));
    teardown(f);
}
