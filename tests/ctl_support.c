/* ctl_support.c - arbiter, admin client and protocol-speaking tenant for the tests.
 * Single-threaded (see ctl_support.h). */
#include "tests/ctl_support.h"

#include "proto/records.h"
#include "proto/schema.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

qt_arbiter_t *ctl_arbiter(const char *gpus, const char *config)
{
    qt_sim_private(gpus);
    qt_arbiter_t *a = qt_arbiter_start(config, NULL);
    cr_assert_not_null(a, "qarbiter did not start");
    return a;
}

qv_client_t *ctl_client(const qt_arbiter_t *arb)
{
    char err[QV_ERR_LEN];
    qv_client_t *c = qv_connect(qt_arbiter_socket_dir(arb), err);
    cr_assert_not_null(c, "qv_connect: %s", err);
    return c;
}

void ctl_create(qv_client_t *c, const char *vm, const char *profile, char id[QV_ID_LEN],
                char secret[QV_SECRET_LEN])
{
    qv_create_t req = {.vm = vm, .profile = profile, .gpu = -1};
    qv_vgpu_t v;
    char err[QV_ERR_LEN];
    cr_assert_eq(qv_create(c, &req, &v, secret, err), 0, "create %s: %s", profile, err);
    memcpy(id, v.id, QV_ID_LEN);
}

static qp_msg_t *tenant_hello(void *arg)
{
    ctl_tenant_t *t = arg;
    return qp_new_tenant_hello("ctl-test/1", t->vgpu, t->secret, getpid(), t->used);
}

static void tenant_session(void *arg, const qp_msg_t *rep)
{
    ctl_tenant_t *t = arg;
    qp_limits_t l;
    char err[QP_ERR_LEN];
    t->sessions++;
    cr_assert_eq(qp_limits_get(qp_msg_get_map(rep, "vgpu"), &l, err), 0, "%s", err);
    cr_assert_str_eq(l.id, t->vgpu);
    t->last_quota = l.memory_quota;
    cr_assert_eq(qp_msg_get_uint(rep, "reserved", &t->reserved), 0);
    uint64_t used;
    cr_assert_eq(qp_msg_get_uint(rep, "vgpu_used", &used), 0);
}

static void tenant_push(void *arg, const qp_msg_t *m)
{
    ctl_tenant_t *t = arg;
    const char *type = qp_msg_type(m);
    char err[QP_ERR_LEN];
    if (strcmp(type, "limits") == 0) {
        qp_limits_t l;
        cr_assert_eq(qp_limits_get(qp_msg_get_map(m, "vgpu"), &l, err), 0, "%s", err);
        t->limits++;
        t->last_quota = l.memory_quota;
    } else if (strcmp(type, "mem_reclaim") == 0) {
        cr_assert_eq(qp_msg_get_uint(m, "keep", &t->last_keep), 0);
        t->reclaims++;
    } else if (qp_is_tok(m)) {
        qp_tok_t tok;
        cr_assert_eq(qp_tok_get(m, &tok, err), 0, "%s", err);
        if (tok.kind == QP_TOK_GRANT) {
            t->grants++;
            t->lease = tok.lease;
            t->lease_ns = tok.ns;
            t->granted_at = qt_now_ns();
        } else {
            cr_assert_eq(tok.kind, QP_TOK_REVOKE, "the arbiter pushed %s", type);
            t->revokes++;
            t->revoked = tok.lease;
        }
    }
}

ctl_tenant_t *ctl_tenant_new(const qt_arbiter_t *arb, const char *vgpu, const char *secret)
{
    ctl_tenant_t *t = calloc(1, sizeof *t);
    snprintf(t->vgpu, sizeof t->vgpu, "%s", vgpu);
    snprintf(t->secret, sizeof t->secret, "%s", secret);
    qp_conn_hooks_t hooks = {tenant_hello, tenant_session, tenant_push, t};
    char err[QP_ERR_LEN];
    t->conn = qp_conn_new(qt_arbiter_socket_dir(arb), QP_TENANT, &hooks, err);
    cr_assert_not_null(t->conn, "%s", err);
    return t;
}

void ctl_tenant_destroy(ctl_tenant_t **self_p)
{
    if (!*self_p)
        return;
    qp_conn_destroy(&(*self_p)->conn);
    free(*self_p);
    *self_p = NULL;
}

int ctl_tenant_hello(ctl_tenant_t *t)
{
    char err[QP_ERR_LEN];
    return qp_conn_open(t->conn, 3000, err);
}

/* Answers reclaims that arrived, if asked to. */
static void give_back(ctl_tenant_t *t, int seen)
{
    if (!t->give_back || t->reclaims == seen)
        return;
    uint64_t keep = t->last_keep > t->used ? t->last_keep : t->used;
    if (keep < t->reserved)
        ctl_tenant_release(t, keep);
}

int ctl_tenant_reserve(ctl_tenant_t *t, uint64_t need, uint64_t want, uint64_t *free)
{
    qp_msg_t *req = qp_new_mem_reserve(need, want, t->used), *rep = NULL;
    char err[QP_ERR_LEN];
    int rc = qp_conn_call(t->conn, &req, &rep, 3000, err);
    if (rc == 0)
        cr_assert_eq(qp_msg_get_uint(rep, "reserved", &t->reserved), 0);
    else if (rc == -EDQUOT && free)
        cr_assert_eq(qp_msg_get_uint(rep, "free", free), 0, "a quota error carries free");
    if (rc == -EDQUOT)
        cr_assert(strstr(err, "cannot reserve"), "%s", err);
    qp_msg_destroy(&rep);
    return rc;
}

int ctl_tenant_release(ctl_tenant_t *t, uint64_t reserved)
{
    qp_msg_t *req = qp_new_mem_release(reserved), *rep = NULL;
    char err[QP_ERR_LEN];
    int rc = qp_conn_call(t->conn, &req, &rep, 3000, err);
    if (rc == 0)
        cr_assert_eq(qp_msg_get_uint(rep, "reserved", &t->reserved), 0);
    qp_msg_destroy(&rep);
    return rc;
}

int ctl_tenant_hb(ctl_tenant_t *t, uint64_t *vgpu_used)
{
    qp_msg_t *req = qp_new_hb(t->used, t->reserved), *rep = NULL;
    char err[QP_ERR_LEN];
    int rc = qp_conn_call(t->conn, &req, &rep, 3000, err);
    if (rc == 0 && vgpu_used)
        cr_assert_eq(qp_msg_get_uint(rep, "vgpu_used", vgpu_used), 0);
    qp_msg_destroy(&rep);
    return rc;
}

void ctl_tenant_pump(ctl_tenant_t *t, int ms)
{
    uint64_t end = qt_now_ns() + (uint64_t)ms * 1000000u;
    char err[QP_ERR_LEN];
    while (qt_now_ns() < end) {
        int seen = t->reclaims;
        qp_conn_wait(t->conn, 10, err);
        give_back(t, seen);
    }
}

int ctl_tenant_send(ctl_tenant_t *t, qp_msg_t *m)
{
    char err[QP_ERR_LEN];
    cr_assert_not_null(m);
    return qp_conn_send(t->conn, &m, 3000, err);
}

bool ctl_tenant_pump_until(ctl_tenant_t *t, const int *counter, int at_least, int ms)
{
    uint64_t end = qt_now_ns() + (uint64_t)ms * 1000000u;
    char err[QP_ERR_LEN];
    while (*counter < at_least && qt_now_ns() < end)
        qp_conn_wait(t->conn, 5, err);
    return *counter >= at_least;
}

qv_vgpu_t ctl_info(qv_client_t *c, const char *id)
{
    qv_vgpu_t v;
    char err[QV_ERR_LEN];
    cr_assert_eq(qv_info(c, id, &v, err), 0, "info %s: %s", id, err);
    return v;
}

bool ctl_wait_procs(qv_client_t *c, const char *id, unsigned procs, int ms)
{
    uint64_t end = qt_now_ns() + (uint64_t)ms * 1000000u;
    do {
        if (ctl_info(c, id).procs == procs)
            return true;
        qt_sleep_ms(20);
    } while (qt_now_ns() < end);
    return false;
}

static qp_msg_t *gpu_record_hello(void *arg)
{
    (void)arg;
    return qp_new_admin_hello("ctl-support/1");
}

qp_gpu_t ctl_gpu_record(const qt_arbiter_t *arb, int index)
{
    qp_conn_hooks_t hooks = {gpu_record_hello, NULL, NULL, NULL};
    char err[QP_ERR_LEN];
    qp_conn_t *c = qp_conn_new(qt_arbiter_socket_dir(arb), QP_ADMIN, &hooks, err);
    cr_assert_not_null(c, "%s", err);
    qp_msg_t *req = qp_msg_new("gpus"), *rep = NULL;
    cr_assert_eq(qp_conn_call(c, &req, &rep, 3000, err), 0, "%s", err);
    qp_gpu_t g;
    cr_assert_eq(qp_gpu_get(qp_msg_map_at(rep, "gpus", (size_t)index), &g, err), 0, "%s", err);
    qp_msg_destroy(&rep);
    qp_conn_destroy(&c);
    return g;
}

int ctl_open_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    int n = 0;
    DIR *d = opendir(path);
    cr_assert_not_null(d, "%s", path);
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

int ctl_count_of(const char *s, const char *word)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, word)); p += strlen(word))
        n++;
    return n;
}

int ctl_create_small(qv_client_t *c, int n, const char *who, int keep, char id[QV_ID_LEN])
{
    char err[QV_ERR_LEN];
    for (int i = 0; i < n; i++) {
        char vm[64];
        snprintf(vm, sizeof vm, "bench-vm-%d", i);
        qv_create_t req = {.vm = vm, .memory_mb = 8, .share = 1, .gpu = -1};
        qv_vgpu_t v;
        if (qv_create(c, &req, &v, NULL, err) < 0) {
            fprintf(stderr, "%s: create %d: %s\n", who, i, err);
            return -1;
        }
        if (i == keep && id)
            memcpy(id, v.id, QV_ID_LEN);
    }
    return 0;
}
