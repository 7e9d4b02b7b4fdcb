/* qvgpu.c - libqvgpu: the admin protocol as a C API (include/qvgpu.h). One thread per
 * client at a time; no global state. */
#include "qvgpu.h"

#include "proto/conn.h"
#include "proto/records.h"
#include "proto/schema.h"
#include "proto/sockpath.h"
#include "proto/units.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

_Static_assert(QV_ERR_LEN == QP_ERR_LEN, "one error length for the API and the wire");
_Static_assert(QV_ID_LEN == QP_ID_LEN && QV_SECRET_LEN == QP_SECRET_LEN &&
                   QV_UUID_LEN == QP_UUID_LEN,
               "API records hold what the wire carries");

#define DEFAULT_TIMEOUT_MS 5000

struct qv_client {
    qp_conn_t *conn; /* owned */
    int timeout_ms;  /* per call */
};

const char *qv_default_socket_dir(void)
{
    const char *d = getenv("QVGPU_SOCKET_DIR");
    return d && *d ? d : QV_DEFAULT_SOCKET_DIR;
}

/* Whether an arbiter accepts connections at path within wait_ms. A stale socket file
 * (a killed arbiter's) refuses at once, where ZeroMQ would wait for the whole timeout;
 * a restarting arbiter replaces it within a moment, so refusals are retried briefly. */
static bool listening(const char *path, int wait_ms)
{
    for (int waited = 0;; waited += 20) {
        int rc = qp_sockpath_probe(path); /* too long: qp_conn_new says what is wrong */
        if (rc != -ECONNREFUSED && rc != -ENOENT)
            return true;
        if (waited >= wait_ms)
            return false;
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* $QVGPU_TIMEOUT_MS, else the default. */
static int env_timeout_ms(void)
{
    const char *t = getenv("QVGPU_TIMEOUT_MS");
    return t && atoi(t) > 0 ? atoi(t) : DEFAULT_TIMEOUT_MS;
}

static qp_msg_t *admin_hello(void *arg)
{
    (void)arg;
    return qp_new_admin_hello("libqvgpu/0.1.0");
}

qv_client_t *qv_connect(const char *socket_dir, char err[QV_ERR_LEN])
{
    if (!socket_dir)
        socket_dir = qv_default_socket_dir();
    char path[512];
    snprintf(path, sizeof path, "%s/%s", socket_dir, qp_endpoint_file(QP_ADMIN));
    struct stat st;
    if (stat(path, &st) < 0) {
        snprintf(err, QV_ERR_LEN,
                 "no arbiter at %.180s (is qarbiter running? use --socket-dir "
                 "or QVGPU_SOCKET_DIR)",
                 path);
        return NULL;
    }
    if (access(path, R_OK | W_OK) < 0) {
        snprintf(err, QV_ERR_LEN,
                 "cannot use %.180s: %s (the admin socket is for the host "
                 "administrator)",
                 path, strerror(errno));
        return NULL;
    }
    int timeout_ms = env_timeout_ms();
    if (!listening(path, timeout_ms < 1000 ? timeout_ms : 1000)) {
        snprintf(err, QV_ERR_LEN,
                 "nothing listens on %.150s (qarbiter is not running: the "
                 "socket file is a dead one's)",
                 path);
        return NULL;
    }
    qv_client_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, QV_ERR_LEN, "out of memory");
        return NULL;
    }
    self->timeout_ms = timeout_ms;
    qp_conn_hooks_t hooks = {admin_hello, NULL, NULL, NULL};
    self->conn = qp_conn_new(socket_dir, QP_ADMIN, &hooks, err);
    if (!self->conn || qp_conn_open(self->conn, self->timeout_ms, err) < 0) {
        qp_conn_destroy(&self->conn);
        free(self);
        return NULL;
    }
    return self;
}

void qv_disconnect(qv_client_t **client_p)
{
    qv_client_t *self = *client_p;
    if (!self)
        return;
    qp_conn_destroy(&self->conn);
    free(self);
    *client_p = NULL;
}

void qv_set_timeout(qv_client_t *client, int timeout_ms)
{
    if (timeout_ms > 0)
        client->timeout_ms = timeout_ms;
}

/* Sends *req (taken) and returns the ok reply in *rep, or a negative errno with err. */
static int call(qv_client_t *self, qp_msg_t *req, qp_msg_t **rep, char *err)
{
    *rep = NULL;
    if (!req) {
        snprintf(err, QV_ERR_LEN, "out of memory");
        return -ENOMEM;
    }
    int rc = qp_conn_call(self->conn, &req, rep, self->timeout_ms, err);
    if (rc < 0)
        qp_msg_destroy(rep);
    return rc;
}

static qp_msg_t *with_id(qp_req_t kind, const char *id)
{
    qp_msg_t *m = qp_new_request(kind);
    if (m && qp_msg_set_str(m, "vgpu", id) < 0)
        qp_msg_destroy(&m);
    return m;
}

/* The public structs read straight from the wire through records.h's field lists: the
 * member names of qv_vgpu_t, qv_gpu_t, qv_finding_t and qv_stats_t's totals are the
 * records' keys, and the fields qv_gpu_t leaves out are checked and not kept. */
#define VGPU(m, t, max, opt) QP_FIELD(qv_vgpu_t, m, t, max, opt)
#define GPU(m, t, max, opt) QP_FIELD(qv_gpu_t, m, t, max, opt)
#define FINDING(m, t, max, opt) QP_FIELD(qv_finding_t, m, t, max, opt)
#define TOTALS(m, t, max, opt) QP_FIELD(qv_stats_t, m, t, max, opt)

static const qp_field_t vgpu_fields[] = {QP_INFO_FIELDS(VGPU)};
static const qp_field_t gpu_fields[] = {QP_GPU_FIELDS(GPU, QP_FIELD_SKIP)};
static const qp_field_t finding_fields[] = {QP_FINDING_FIELDS(FINDING)};
static const qp_field_t totals_fields[] = {QP_TOTALS_FIELDS(TOTALS)};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
static const qp_record_desc_t qv_vgpu_desc = {"INFO", vgpu_fields, COUNT(vgpu_fields)};
static const qp_record_desc_t qv_gpu_desc = {"GPU", gpu_fields, COUNT(gpu_fields)};
static const qp_record_desc_t qv_finding_desc = {"FINDING", finding_fields, COUNT(finding_fields)};
static const qp_record_desc_t qv_totals_desc = {"stats", totals_fields, COUNT(totals_fields)};

/* Reads the `findings` array of rep, when there is one (older arbiters send none). */
static int read_findings(const qp_msg_t *rep, qv_stats_t *s, char *err)
{
    size_t n = 0;
    if (!qp_msg_has(rep, "findings"))
        return 0;
    if (qp_msg_count_maps(rep, "findings", &n) < 0) {
        snprintf(err, QV_ERR_LEN, "the arbiter's 'findings' is not an array of maps");
        return -EPROTO;
    }
    if (n && !(s->findings = calloc(n, sizeof *s->findings))) {
        snprintf(err, QV_ERR_LEN, "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        int rc = qp_record_get(qp_msg_map_at(rep, "findings", i), &qv_finding_desc,
                               &s->findings[i], err);
        if (rc < 0)
            return rc;
        s->nfindings++;
    }
    return 0;
}

/* Reads the `vgpu` INFO of rep into out (may be NULL). */
static int read_vgpu(const qp_msg_t *rep, qv_vgpu_t *out, char *err)
{
    qv_vgpu_t ignored;
    qv_vgpu_t *v = out ? out : &ignored;
    memset(v, 0, sizeof *v);
    return qp_record_get(qp_msg_get_map(rep, "vgpu"), &qv_vgpu_desc, v, err);
}

int qv_create(qv_client_t *client, const qv_create_t *req, qv_vgpu_t *out,
              char secret[QV_SECRET_LEN], char err[QV_ERR_LEN])
{
    qp_msg_t *m = qp_new_request(QP_REQ_CREATE), *rep;
    qp_msg_set_str(m, "vm", req->vm ? req->vm : "");
    if (req->profile)
        qp_msg_set_str(m, "profile", req->profile);
    if (req->memory_mb)
        qp_msg_set_uint(m, "memory_mb", req->memory_mb);
    if (req->share)
        qp_msg_set_uint(m, "share", req->share);
    if (req->has_limit)
        qp_msg_set_uint(m, "limit", req->limit);
    if (req->gpu >= 0)
        qp_msg_set_int(m, "gpu", req->gpu);
    int rc = call(client, m, &rep, err);
    if (rc < 0)
        return rc;
    const char *s = NULL;
    rc = read_vgpu(rep, out, err);
    if (rc == 0 && secret) {
        if (qp_msg_get_str(rep, "secret", &s) < 0 || strlen(s) >= QV_SECRET_LEN) {
            snprintf(err, QV_ERR_LEN, "the arbiter's reply has no valid secret");
            rc = -EPROTO;
        } else {
            memcpy(secret, s, strlen(s) + 1);
        }
    }
    qp_msg_destroy(&rep);
    return rc;
}

int qv_destroy(qv_client_t *client, const char *id, char err[QV_ERR_LEN])
{
    qp_msg_t *rep;
    int rc = call(client, with_id(QP_REQ_DESTROY, id), &rep, err);
    qp_msg_destroy(&rep);
    return rc;
}

int qv_resize(qv_client_t *client, const char *id, const qv_resize_t *req, qv_vgpu_t *out,
              char err[QV_ERR_LEN])
{
    qp_msg_t *m = with_id(QP_REQ_RESIZE, id), *rep;
    if (req->has_memory)
        qp_msg_set_uint(m, "memory_mb", req->memory_mb);
    if (req->has_share)
        qp_msg_set_uint(m, "share", req->share);
    if (req->has_limit)
        qp_msg_set_uint(m, "limit", req->limit);
    int rc = call(client, m, &rep, err);
    if (rc == 0)
        rc = read_vgpu(rep, out, err);
    qp_msg_destroy(&rep);
    return rc;
}

int qv_info(qv_client_t *client, const char *id, qv_vgpu_t *out, char err[QV_ERR_LEN])
{
    qp_msg_t *rep;
    int rc = call(client, with_id(QP_REQ_INFO, id), &rep, err);
    if (rc == 0)
        rc = read_vgpu(rep, out, err);
    qp_msg_destroy(&rep);
    return rc;
}

int qv_list(qv_client_t *client, qv_vgpu_list_t **out, char err[QV_ERR_LEN])
{
    qp_msg_t *rep;
    *out = NULL;
    int rc = call(client, qp_new_request(QP_REQ_LIST), &rep, err);
    size_t n = 0;
    if (rc == 0 && qp_msg_count_maps(rep, "vgpus", &n) < 0) {
        snprintf(err, QV_ERR_LEN, "the arbiter's list reply has no 'vgpus' array");
        rc = -EPROTO;
    }
    qv_vgpu_list_t *l = rc == 0 ? calloc(1, sizeof *l) : NULL;
    if (rc == 0 && (!l || (n && !(l->vgpus = calloc(n, sizeof *l->vgpus))))) {
        snprintf(err, QV_ERR_LEN, "out of memory");
        rc = -ENOMEM;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = qp_record_get(qp_msg_map_at(rep, "vgpus", i), &qv_vgpu_desc, &l->vgpus[i], err);
        if (rc == 0)
            l->count++;
    }
    qp_msg_destroy(&rep);
    if (rc < 0)
        qv_vgpu_list_free(&l);
    *out = l;
    return rc;
}

void qv_vgpu_list_free(qv_vgpu_list_t **list_p)
{
    if (!*list_p)
        return;
    free((*list_p)->vgpus);
    free(*list_p);
    *list_p = NULL;
}

/* Reads the `gpus` array of rep into a new array. */
static int read_gpus(const qp_msg_t *rep, qv_gpu_t **gpus, size_t *count, char *err)
{
    size_t n = 0;
    *gpus = NULL;
    *count = 0;
    if (qp_msg_count_maps(rep, "gpus", &n) < 0) {
        snprintf(err, QV_ERR_LEN, "the arbiter's reply has no 'gpus' array");
        return -EPROTO;
    }
    if (n && !(*gpus = calloc(n, sizeof **gpus))) {
        snprintf(err, QV_ERR_LEN, "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        int rc = qp_record_get(qp_msg_map_at(rep, "gpus", i), &qv_gpu_desc, &(*gpus)[i], err);
        if (rc < 0) {
            free(*gpus);
            *gpus = NULL;
            *count = 0;
            return rc;
        }
        (*count)++;
    }
    return 0;
}

int qv_gpus(qv_client_t *client, qv_gpu_list_t **out, char err[QV_ERR_LEN])
{
    qp_msg_t *rep;
    *out = NULL;
    int rc = call(client, qp_new_request(QP_REQ_GPUS), &rep, err);
    if (rc < 0)
        return rc;
    qv_gpu_list_t *l = calloc(1, sizeof *l);
    const char *placement = "";
    if (!l) {
        snprintf(err, QV_ERR_LEN, "out of memory");
        rc = -ENOMEM;
    } else if ((rc = read_gpus(rep, &l->gpus, &l->count, err)) == 0 &&
               (qp_msg_get_float(rep, "oversub_memory", &l->oversub_memory) < 0 ||
                qp_msg_get_float(rep, "oversub_share", &l->oversub_share) < 0)) {
        snprintf(err, QV_ERR_LEN, "the arbiter's gpus reply lacks the oversubscription ratios");
        rc = -EPROTO;
    }
    if (rc == 0) {
        qp_msg_get_str(rep, "placement", &placement);
        snprintf(l->placement, sizeof l->placement, "%s", placement);
    }
    qp_msg_destroy(&rep);
    if (rc < 0)
        qv_gpu_list_free(&l);
    *out = l;
    return rc;
}

void qv_gpu_list_free(qv_gpu_list_t **list_p)
{
    if (!*list_p)
        return;
    free((*list_p)->gpus);
    free(*list_p);
    *list_p = NULL;
}

int qv_stats(qv_client_t *client, qv_stats_t **out, char err[QV_ERR_LEN])
{
    qp_msg_t *rep;
    *out = NULL;
    int rc = call(client, qp_new_request(QP_REQ_STATS), &rep, err);
    if (rc < 0)
        return rc;
    qv_stats_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, QV_ERR_LEN, "out of memory");
        rc = -ENOMEM;
    } else if ((rc = read_gpus(rep, &s->gpus, &s->ngpus, err)) == 0 &&
               (rc = qp_record_get(rep, &qv_totals_desc, s, err)) == 0) {
        rc = read_findings(rep, s, err);
    }
    qp_msg_destroy(&rep);
    if (rc < 0)
        qv_stats_free(&s);
    *out = s;
    return rc;
}

void qv_stats_free(qv_stats_t **stats_p)
{
    if (!*stats_p)
        return;
    free((*stats_p)->gpus);
    free((*stats_p)->findings);
    free(*stats_p);
    *stats_p = NULL;
}

int qv_creds(qv_client_t *client, const char *id, qv_creds_t *out, char err[QV_ERR_LEN])
{
    qp_msg_t *rep;
    int rc = call(client, with_id(QP_REQ_CREDS, id), &rep, err);
    if (rc < 0)
        return rc;
    const char *vid, *secret, *uuid;
    if (qp_msg_get_str(rep, "vgpu", &vid) < 0 || qp_msg_get_str(rep, "secret", &secret) < 0 ||
        qp_msg_get_str(rep, "gpu_uuid", &uuid) < 0 || strlen(vid) >= sizeof out->id ||
        strlen(secret) >= sizeof out->secret || strlen(uuid) >= sizeof out->gpu_uuid) {
        snprintf(err, QV_ERR_LEN, "the arbiter's creds reply is malformed");
        rc = -EPROTO;
    } else {
        memset(out, 0, sizeof *out);
        memcpy(out->id, vid, strlen(vid) + 1);
        memcpy(out->secret, secret, strlen(secret) + 1);
        memcpy(out->gpu_uuid, uuid, strlen(uuid) + 1);
        const char *dir;
        if (qp_msg_get_str(rep, "tenant_dir", &dir) == 0 && strlen(dir) < sizeof out->tenant_dir)
            memcpy(out->tenant_dir, dir, strlen(dir) + 1);
    }
    qp_msg_destroy(&rep);
    return rc;
}

/* Copies string key of m into out (cap bytes); "" when absent. -EPROTO when too long or
 * not a string. */
static int copy_str(const qp_msg_t *m, const char *key, char *out, size_t cap)
{
    const char *v;
    out[0] = '\0';
    int rc = qp_msg_get_str(m, key, &v);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0 || strlen(v) >= cap)
        return -EPROTO;
    memcpy(out, v, strlen(v) + 1);
    return 0;
}

int qv_cdi_device(qv_client_t *client, const char *id, qv_cdi_device_t *out,
                  char err[QV_ERR_LEN])
{
    qp_msg_t *req = with_id(QP_REQ_CDI, id), *rep;
    if (req && qp_msg_set_str(req, "op", "show") < 0)
        qp_msg_destroy(&req);
    int rc = call(client, req, &rep, err);
    if (rc < 0)
        return rc;
    if (copy_str(rep, "device", out->device, sizeof out->device) < 0 || !out->device[0] ||
        copy_str(rep, "driver_device", out->driver_device, sizeof out->driver_device) < 0 ||
        copy_str(rep, "path", out->spec_path, sizeof out->spec_path) < 0) {
        snprintf(err, QV_ERR_LEN, "the arbiter's cdi reply is malformed");
        rc = -EPROTO;
    }
    qp_msg_destroy(&rep);
    return rc;
}

int qv_cdi_sync(qv_client_t *client, unsigned *written, unsigned *removed, char err[QV_ERR_LEN])
{
    qp_msg_t *req = qp_new_request(QP_REQ_CDI), *rep;
    if (req && qp_msg_set_str(req, "op", "sync") < 0)
        qp_msg_destroy(&req);
    int rc = call(client, req, &rep, err);
    if (rc < 0)
        return rc;
    uint64_t w = 0, r = 0;
    qp_msg_get_uint(rep, "written", &w);
    qp_msg_get_uint(rep, "removed", &r);
    *written = (unsigned)w;
    *removed = (unsigned)r;
    qp_msg_destroy(&rep);
    return 0;
}

/* call() with at least QV_MIGRATE_TIMEOUT_MS to wait: moves copy device memory. */
static int call_long(qv_client_t *self, qp_msg_t *req, qp_msg_t **rep, char *err)
{
    int saved = self->timeout_ms;
    if (self->timeout_ms < QV_MIGRATE_TIMEOUT_MS)
        self->timeout_ms = QV_MIGRATE_TIMEOUT_MS;
    int rc = call(self, req, rep, err);
    self->timeout_ms = saved;
    return rc;
}

int qv_migrate(qv_client_t *client, const char *id, int gpu, const char *gpu_uuid,
               qv_migration_t *out, char err[QV_ERR_LEN])
{
    qp_msg_t *req = with_id(QP_REQ_MIGRATE, id), *rep;
    if (req && gpu_uuid)
        qp_msg_set_str(req, "gpu_uuid", gpu_uuid);
    else if (req)
        qp_msg_set_int(req, "gpu", gpu);
    int rc = call_long(client, req, &rep, err);
    if (rc < 0 || !out) {
        qp_msg_destroy(&rep);
        return rc;
    }
    memset(out, 0, sizeof *out);
    int64_t from = -1, to = -1;
    double ms = 0;
    qp_msg_get_int(rep, "from", &from);
    qp_msg_get_int(rep, "to", &to);
    qp_msg_get_float(rep, "ms", &ms);
    out->from = (int)from;
    out->to = (int)to;
    out->ms = ms;
    copy_str(rep, "text", out->text, sizeof out->text);
    rc = read_vgpu(rep, &out->vgpu, err);
    size_t n = 0;
    if (rc == 0 && qp_msg_has(rep, "procs") && qp_msg_count_maps(rep, "procs", &n) < 0) {
        snprintf(err, QV_ERR_LEN, "the arbiter's 'procs' is not an array of maps");
        rc = -EPROTO;
    }
    for (size_t i = 0; rc == 0 && i < n && i < QV_MAX_MOVED_PROCS; i++) {
        const qp_msg_t *m = qp_msg_map_at(rep, "procs", i);
        qv_moved_proc_t *p = &out->procs[out->nprocs++];
        int64_t pid = 0;
        qp_msg_get_int(m, "pid", &pid);
        p->pid = (int)pid;
        copy_str(m, "fate", p->fate, sizeof p->fate);
        qp_msg_get_float(m, "paused_ms", &p->paused_ms);
        qp_msg_get_uint(m, "bytes", &p->bytes);
    }
    qp_msg_destroy(&rep);
    return rc;
}

int qv_balance(qv_client_t *client, int dry_run, qv_balance_plan_t **out, char err[QV_ERR_LEN])
{
    *out = NULL;
    qp_msg_t *req = qp_new_request(QP_REQ_BALANCE), *rep;
    if (req)
        qp_msg_set_bool(req, "dry_run", dry_run != 0);
    int rc = call_long(client, req, &rep, err);
    if (rc < 0)
        return rc;
    size_t n = 0;
    qv_balance_plan_t *plan = calloc(1, sizeof *plan);
    if (!plan || (qp_msg_has(rep, "moves") && qp_msg_count_maps(rep, "moves", &n) < 0) ||
        (n && !(plan->moves = calloc(n, sizeof *plan->moves)))) {
        snprintf(err, QV_ERR_LEN, plan ? "the arbiter's balance reply is malformed" : "out of memory");
        qp_msg_destroy(&rep);
        qv_balance_plan_free(&plan);
        return plan ? -EPROTO : -ENOMEM;
    }
    bool dry = false;
    qp_msg_get_bool(rep, "dry_run", &dry);
    plan->dry_run = dry;
    for (size_t i = 0; i < n; i++) {
        const qp_msg_t *m = qp_msg_map_at(rep, "moves", i);
        qv_balance_move_t *mv = &plan->moves[plan->count++];
        uint64_t from = 0, to = 0;
        bool done = false;
        copy_str(m, "vgpu", mv->vgpu, sizeof mv->vgpu);
        qp_msg_get_uint(m, "from", &from);
        qp_msg_get_uint(m, "to", &to);
        qp_msg_get_bool(m, "done", &done);
        mv->from = (int)from;
        mv->to = (int)to;
        mv->done = done;
        copy_str(m, "why", mv->why, sizeof mv->why);
        copy_str(m, "text", mv->text, sizeof mv->text);
    }
    qp_msg_destroy(&rep);
    *out = plan;
    return 0;
}

void qv_balance_plan_free(qv_balance_plan_t **plan_p)
{
    qv_balance_plan_t *plan = *plan_p;
    if (!plan)
        return;
    free(plan->moves);
    free(plan);
    *plan_p = NULL;
}

int qv_parse_size_mb(const char *text, uint64_t *mb, char err[QV_ERR_LEN])
{
    return qp_parse_size_mb(text, mb, err);
}
