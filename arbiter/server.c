/* server.c - qarbiter's sockets, peers, liveness and sampling around one event loop.
 * Threads: the loop thread only (see server.h). */
#include "arbiter/server.h"

#include "arbiter/admin.h"
#include "arbiter/audit.h"
#include "arbiter/balancer.h"
#include "arbiter/compute.h"
#include "arbiter/endpoint.h"
#include "arbiter/http.h"
#include "arbiter/ledger.h"
#include "arbiter/metrics.h"
#include "arbiter/mover.h"
#include "arbiter/nvml.h"
#include "arbiter/procfs.h"
#include "arbiter/sampler.h"
#include "arbiter/tenant.h"
#include "arbiter/trust.h"
#include "proto/records.h"
#include "proto/schema.h"
#include "proto/sockpath.h"
#include "proto/units.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define LIVENESS_NS 250000000ull              /* how often silent tenants are looked for */
#define SAMPLE_MS 500                         /* NVML sampling period */
#define IDLE_PEER_NS (600ull * 1000000000ull) /* an idle admin connection is closed */
#define EWMA_ALPHA 0.3
#define TENANT_MAX_OUT (256 * 1024)            /* replies and pushes a tenant may leave unread */
#define ADMIN_MAX_OUT (2 * QP_MAX_REPLY_FRAME) /* an administrator: two of the largest replies */

struct qa_server {
    const qa_config_t *cfg; /* borrowed */
    const qa_log_t *log;    /* borrowed */
    char socket_dir[200];
    char tenant_dir[200];     /* where tenant.sock is: socket_dir unless --tenant-dir */
    char tenant_real[PATH_MAX]; /* tenant_dir, absolute */
    qa_cdi_t *cdi;            /* owned: CDI specs with --tenant-dir, else NULL */
    int lock_fd;              /* owned: flock'ed qarbiter.lock */
    qa_nvml_t *nvml;          /* owned */
    qa_host_t *host;          /* owned */
    qa_compute_t *compute;    /* owned: a compute scheduler per GPU */
    qa_store_t *store;        /* owned */
    qa_ledger_t *ledger;      /* owned: what tenant processes may hold (tenant.c) */
    qa_sampler_t *sampler;    /* owned */
    qa_gpu_sample_t *samples; /* owned, one per GPU: scratch for the latest round */
    uint64_t sample_round;    /* latest round taken */
    qa_audit_t *audit;        /* owned: real use and unmanaged processes, from the rounds */
    qa_endpoint_t *admin;     /* owned: admin.sock */
    qa_endpoint_t *tenant;    /* owned: tenant.sock */
    qa_loop_t *loop;          /* owned */
    int sig_fd;               /* owned: signalfd for SIGTERM/SIGINT */
    qa_timer_t liveness;      /* looks for silent peers */
    qa_timer_t sampling;      /* takes NVML samples */
    qa_timer_t grace;         /* runs during the reconnect grace after the start */
    uint64_t sessions;        /* session numbers handed out */
    uint64_t fd_limit;        /* RLIMIT_NOFILE now (re-read by the liveness timer) */

    qa_mover_t *mover;        /* owned: vGPUs moving to other GPUs */
    qa_balancer_t *balancer;  /* owned: auto-balancing */

    qa_metrics_t metrics; /* requests by kind and their handling time */
    qa_http_t *http;      /* owned: the HTTP server, NULL when off */
};

/* ---- accessors --------------------------------------------------------------------- */

qa_host_t *qa_server_host(qa_server_t *self)
{
    return self->host;
}

qa_store_t *qa_server_store(qa_server_t *self)
{
    return self->store;
}

qa_ledger_t *qa_server_ledger(qa_server_t *self)
{
    return self->ledger;
}

qa_loop_t *qa_server_loop(qa_server_t *self)
{
    return self->loop;
}

qa_compute_t *qa_server_compute(qa_server_t *self)
{
    return self->compute;
}

const qa_config_t *qa_server_config(const qa_server_t *self)
{
    return self->cfg;
}

const qa_log_t *qa_server_log(const qa_server_t *self)
{
    return self->log;
}

qa_cdi_t *qa_server_cdi(qa_server_t *self)
{
    return self->cdi;
}

qa_mover_t *qa_server_mover(qa_server_t *self)
{
    return self->mover;
}

qa_balancer_t *qa_server_balancer(qa_server_t *self)
{
    return self->balancer;
}

const char *qa_server_tenant_dir(const qa_server_t *self)
{
    return self->tenant_real;
}

uint64_t qa_server_new_session(qa_server_t *self)
{
    return ++self->sessions;
}

bool qa_server_in_grace(const qa_server_t *self)
{
    return qa_timer_running(&self->grace);
}

static qa_endpoint_t *endpoint_of(qa_server_t *self, const qa_peer_t *p)
{
    return p->ep == QP_ADMIN ? self->admin : self->tenant;
}

/* ---- sending ----------------------------------------------------------------------- */

void qa_server_send(qa_server_t *self, qa_peer_t *p, qp_msg_t **msg)
{
    void *buf = NULL;
    size_t len;
    int rc = *msg ? qp_msg_encode(*msg, &qp_caps_reply, &buf, &len) : -ENOMEM;
    qp_msg_destroy(msg);
    if (rc < 0) {
        qa_log(self->log, QA_ERROR, "cannot encode a reply: %s", strerror(-rc));
        return;
    }
    /* Never blocks: a peer that does not read loses messages rather than stall us. */
    if (qa_endpoint_send(endpoint_of(self, p), p, buf, len) < 0)
        qa_log(self->log, QA_DEBUG, "a message to pid %d was dropped: it does not read",
               (int)p->cred_pid);
    free(buf);
}

void qa_server_error(qa_server_t *self, qa_peer_t *p, uint64_t id, const char *code,
                     const char *fmt, ...)
{
    char text[QP_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    qp_msg_t *m = qp_msg_new_error(id, code, "%s", text);
    qa_server_send(self, p, &m);
}

/* ---- peers ------------------------------------------------------------------------- */

void qa_server_set_session(qa_server_t *self, qa_peer_t *p, bool session)
{
    p->session = session;
    qa_endpoint_set_session(endpoint_of(self, p), p, session);
}

bool qa_server_may_warn(qa_server_t *self, const qa_peer_t *p)
{
    return qa_endpoint_may_warn(endpoint_of(self, p), p);
}

/* The endpoint closes p's connection: a tenant's session ends and its memory returns. */
static void on_closing(void *arg, qa_peer_t *p)
{
    qa_server_t *self = arg;
    if (p->ep == QP_TENANT)
        qa_tenant_end(self, p, false);
    else if (self->mover)
        qa_mover_forget(self->mover, p); /* its migrate or balance is answered to nobody */
}

/* What tenant.sock and admin.sock admit with the descriptors the arbiter may hold now
 * (docs/arbiter.md "Connections"): tenant connections are kept to max_tenant_connections
 * and half the descriptors, so that admin connections, state files and the rest always
 * find one; a quarter of those at most may be pending (no session yet), the rest is
 * kept for sessions. */
static void admission(const qa_server_t *self, qa_admission_t *tenant, qa_admission_t *admin)
{
    uint64_t cap = self->cfg->max_tenant_connections, half = self->fd_limit / 2;
    const char *why = "max_tenant_connections";
    const char *why_pending = "a quarter of max_tenant_connections";
    if (half < cap) {
        cap = half ? half : 1;
        why = "half the file descriptors the arbiter may hold: raise its RLIMIT_NOFILE";
        why_pending = "a quarter of the connections that half the arbiter's file descriptors "
                      "allow: raise its RLIMIT_NOFILE";
    }
    uint64_t pending = cap / 4 ? cap / 4 : 1;
    if (self->cfg->max_pending_connections < pending) {
        pending = self->cfg->max_pending_connections;
        why_pending = "max_pending_connections";
    }
    *tenant = (qa_admission_t){
        .max_conns = cap,
        .max_pending = pending,
        .max_pending_per_uid = self->cfg->max_pending_per_uid,
        .why_conns = why,
        .why_pending = why_pending,
    };
    /* admin.sock is root's: no limit per uid; a quarter of the descriptors. */
    uint64_t admins = self->fd_limit / 4 ? self->fd_limit / 4 : 1;
    *admin = (qa_admission_t){
        .max_conns = admins,
        .max_pending = admins,
        .why_conns = "a quarter of the file descriptors the arbiter may hold",
        .why_pending = "a quarter of the file descriptors the arbiter may hold",
    };
}

/* ---- requests ---------------------------------------------------------------------- */

static void on_hello(qa_server_t *self, qa_peer_t *p, const qp_msg_t *m)
{
    uint64_t id = qp_msg_id(m), proto = 0;
    const char *role = NULL;
    qp_msg_get_uint(m, "proto", &proto);
    qp_msg_get_str(m, "role", &role);
    if (proto != QP_PROTO_VERSION) {
        qa_server_error(self, p, id, QP_E_PROTO,
                        "protocol version mismatch: client speaks %llu, arbiter speaks %d",
                        (unsigned long long)proto, QP_PROTO_VERSION);
        return;
    }
    if (strcmp(role, qp_endpoint_role(p->ep)) != 0) {
        qa_server_error(self, p, id, QP_E_AUTH, "role '%.32s' is not served on %s", role,
                        qp_endpoint_file(p->ep));
        return;
    }
    if (p->ep == QP_TENANT) {
        qa_tenant_end(self, p, true); /* a new hello replaces the session */
        qa_tenant_hello(self, p, m);
        return;
    }
    qa_server_set_session(self, p, true);
    qp_msg_t *rep = qp_msg_new_ok(id);
    qp_msg_set_uint(rep, "proto", QP_PROTO_VERSION);
    qp_msg_set_str(rep, "arbiter", "qarbiter/" QA_VERSION);
    qa_server_send(self, p, &rep);
}

/* Handles one message of peer p: body is its only frame unless extra is set. */
static void handle(qa_server_t *self, qa_peer_t *p, const void *body, size_t len, bool extra)
{
    uint64_t started = qa_now_ns();
    char err[QP_ERR_LEN];
    qp_msg_t *m = NULL;
    int rc;
    p->srv = self;
    p->last_seen = qa_now_ns();
    if (extra) {
        rc = -EPROTO;
        snprintf(err, sizeof err, "a message must be one frame");
    } else {
        rc = qp_msg_decode(body, len, &qp_caps_request, &m, err);
    }
    if (rc < 0) {
        /* Once per connection, and a few per uid per 10 s: connecting again and again
         * must not let anyone fill the log. */
        if (!p->warned && qa_server_may_warn(self, p))
            qa_log(self->log, QA_WARN,
                   "malformed message on %s from uid %u (pid %d): %s (more from this "
                   "connection are not logged)",
                   qp_endpoint_file(p->ep), (unsigned)p->cred_uid, (int)p->cred_pid, err);
        p->warned = true;
        qa_server_error(self, p, 0, QP_E_PROTO, "malformed message: %s", err);
    } else if ((rc = qp_check_request(m, p->ep, err)) < 0) {
        qa_server_error(self, p, qp_msg_id(m), rc == -EACCES ? QP_E_AUTH : QP_E_PROTO, "%s", err);
    } else if (strcmp(qp_msg_type(m), "hello") == 0) {
        on_hello(self, p, m);
    } else if (!p->session) {
        qa_server_error(self, p, qp_msg_id(m), QP_E_NOSESSION, "hello first");
    } else if (p->ep == QP_ADMIN) {
        qa_admin_handle(self, p, m);
    } else {
        qa_tenant_request(self, p, m);
    }
    qa_metrics_request(&self->metrics, p->ep, m, started);
    qp_msg_destroy(&m);
}

static void on_message(void *arg, qa_peer_t *p, const void *body, size_t len)
{
    handle(arg, p, body, len, false);
}

static void on_multipart(void *arg, qa_peer_t *p)
{
    handle(arg, p, NULL, 0, true);
}

/* ---- periodic work ----------------------------------------------------------------- */

static void check_peer(void *arg, qa_peer_t *p)
{
    qa_server_t *self = arg;
    uint64_t idle = qa_now_ns() - p->last_seen;
    uint64_t limit = self->cfg->heartbeat_timeout_ms * 1000000ull;
    if (p->ep == QP_TENANT && p->session && idle > limit) {
        /* The connection stays: a stopped process that resumes re-reports on it. */
        qa_log(self->log, QA_INFO,
               "tenant pid %d of vGPU %s silent for %u ms: session dropped, %llu bytes freed",
               (int)p->pid, p->vgpu ? p->vgpu->id : "?", self->cfg->heartbeat_timeout_ms,
               (unsigned long long)p->reserved);
        qa_tenant_end(self, p, false);
    } else if (p->ep == QP_ADMIN && idle > IDLE_PEER_NS) {
        qa_endpoint_close(self->admin, p); /* an administrator long idle: it reconnects */
    }
}

/* RLIMIT_NOFILE may be changed from outside (prlimit): the caps follow it. */
static void read_fd_limit(qa_server_t *self)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        self->fd_limit = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
}

static void on_liveness(void *arg)
{
    qa_server_t *self = arg;
    read_fd_limit(self);
    qa_admission_t tenant, admin;
    admission(self, &tenant, &admin);
    qa_endpoint_set_limits(self->tenant, &tenant);
    qa_endpoint_set_limits(self->admin, &admin);
    qa_endpoint_each(self->tenant, check_peer, self);
    qa_endpoint_each(self->admin, check_peer, self);
    qa_endpoint_tick(self->tenant);
    qa_endpoint_tick(self->admin);
    qa_tenant_check_ghosts(self);
    qa_timer_start(self->loop, &self->liveness, qa_now_ns() + LIVENESS_NS, on_liveness, self);
}

static double ewma(double old, double sample, bool first)
{
    return first ? sample : old + EWMA_ALPHA * (sample - old);
}

/* Takes the sampler's latest round, if there is a new one, into the GPUs' figures and
 * the audit; then lets the tenants' first reservations that waited for it (or waited
 * long enough) go on. */
static void take_round(qa_server_t *self)
{
    bool first = self->sample_round == 0;
    uint64_t now = qa_now_ns();
    bool fresh = qa_sampler_take(self->sampler, self->samples, &self->sample_round);
    size_t n = qa_host_ngpus(self->host);
    if (fresh) {
        for (size_t i = 0; i < n; i++) {
            qa_gpu_t *g = qa_host_gpu(self->host, i);
            const qa_gpu_sample_t *s = &self->samples[i];
            if (!s->ok)
                continue;
            g->util = ewma(g->util, s->util, first);
            g->memory_used = s->memory_used;
        }
        qa_audit_round(self->audit, self->host, self->samples, n, now);
    }
    for (size_t i = 0; i < qa_host_nvgpus(self->host); i++) {
        qa_vgpu_t *v = qa_host_vgpu(self->host, i);
        const qa_gpu_sample_t *s = v->gpu < n ? &self->samples[v->gpu] : NULL;
        qa_tenant_measured(self, v, fresh && s && s->ok && s->mem_ok ? s->taken : 0, now);
    }
}

static void on_round(void *arg)
{
    take_round(arg);
}

bool qa_server_measure(qa_server_t *self)
{
    if (!qa_nvml_lists_processes(self->nvml))
        return false;
    qa_sampler_kick(self->sampler);
    return true;
}

/* ---- the audit's hands: looking at processes, killing them, charging sessions ----- */

static int audit_inspect(void *arg, unsigned pid, qa_proc_info_t *out)
{
    (void)arg;
    return qa_procfs_inspect(pid, out);
}

static int audit_kill(void *arg, unsigned pid, uint64_t start)
{
    (void)arg;
    return qa_procfs_kill(pid, start);
}

static void audit_charge(void *arg, qa_peer_t *p, uint64_t bytes)
{
    qa_tenant_charge(arg, p, bytes);
}

static const qa_audit_ops_t audit_ops = {audit_inspect, audit_kill, audit_charge};

const qa_audit_t *qa_server_audit(const qa_server_t *self)
{
    return self->audit;
}

static void on_sampling(void *arg)
{
    qa_server_t *self = arg;
    take_round(self); /* in case its eventfd's wake-up was missed; and held requests time out */
    qa_compute_sample(self->compute, self->host);
    if (self->balancer)
        qa_balancer_sample(self->balancer);
    qa_timer_start(self->loop, &self->sampling, qa_now_ns() + SAMPLE_MS * 1000000ull, on_sampling,
                   self);
}

/* Copies the state the HTTP side shows (http.h calls this on the loop thread). */
static qa_view_t *build_view(void *arg)
{
    qa_server_t *self = arg;
    size_t nf;
    const qp_finding_t *f = qa_audit_findings(self->audit, &nf);
    qa_view_t *v = qa_view_build(self->host, &self->metrics, qa_endpoint_count(self->tenant), f, nf,
                                 qa_audit_kills(self->audit));
    if (v) /* what tenants report, each process counted once (host.h, tenant.h) */
        v->totals.memory_used_mb = qa_tenant_host_used(self) / QP_MIB;
    return v;
}

/* Starts the HTTP server when asked: an explicit address that fails stops the start,
 * the default one is a warning (another program may hold port 8080; the GPUs matter
 * more than the dashboard). */
static int start_http(qa_server_t *self, const qa_server_opts_t *opts, char *err)
{
    if (!opts->http)
        return 0;
    qa_http_opts_t ho = {opts->http, self->loop, build_view, self, self->log, NULL};
    char why[QP_ERR_LEN];
    if (!(self->http = qa_http_new(&ho, why))) {
        if (opts->http_required) {
            snprintf(err, QP_ERR_LEN, "%s", why);
            return -EIO;
        }
        qa_log(self->log, QA_WARN, "%s: the dashboard, /metrics and /api/v1 are off", why);
        return 0;
    }
    qa_log(self->log, QA_INFO, "HTTP on http://%s/ (dashboard, /metrics, /api/v1/)",
           qa_http_address(self->http));
    return 0;
}

static void on_grace_over(void *arg)
{
    qa_server_t *self = arg;
    qa_log(self->log, QA_DEBUG, "reconnect grace over: %zu tenant connections open",
           qa_endpoint_count(self->tenant));
    qa_tenant_grace_over(self);
}

static void on_signal(void *arg)
{
    qa_server_t *self = arg;
    struct signalfd_siginfo si;
    if (read(self->sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {
        qa_log(self->log, QA_INFO, "%s: stopping", strsignal((int)si.ssi_signo));
        qa_loop_stop(self->loop);
    }
}

/* ---- start and stop ---------------------------------------------------------------- */

/* Whether the directory at path can be trusted (trust.h): what is "socket dir" or
 * "tenant dir". A symlink to a directory is followed: the check is on the directory. */
static int check_dir(const char *path, const char *what, char *err)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, QP_ERR_LEN, "cannot open %s %.150s: %s", what, path, strerror(errno));
        return -EIO;
    }
    int rc = qa_trust_dir(fd, what, path, err);
    close(fd);
    return rc;
}

/* Takes qarbiter.lock in the socket dir, then removes a dead arbiter's admin.sock at
 * once: its appearance is the readiness signal (docs/arbiter.md), and one left by kill -9
 * would say "ready" while this start is still under way, or after it failed. */
static int take_lock(qa_server_t *self, char *err)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", self->socket_dir, QP_LOCK_FILE);
    /* O_NOFOLLOW: a symlink planted here would make us truncate its target. */
    self->lock_fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (self->lock_fd < 0) {
        int e = errno;
        snprintf(err, QP_ERR_LEN, "cannot open %.200s: %s%s", path, strerror(e),
                 e == ELOOP ? " (a symlink: remove it)" : "");
        return -e;
    }
    if (qa_trust_file(self->lock_fd, path, err) < 0)
        return -EPERM;
    if (flock(self->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        char pid[32] = "";
        ssize_t n = pread(self->lock_fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        snprintf(err, QP_ERR_LEN,
                 "another qarbiter%s%s%s holds %.180s: stop it first, or use another "
                 "--socket-dir",
                 pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "", path);
        close(self->lock_fd);
        self->lock_fd = -1;
        return -EBUSY;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(self->lock_fd, 0) < 0 || pwrite(self->lock_fd, pid, (size_t)n, 0) != n)
        qa_log(self->log, QA_WARN, "cannot write the pid into %s", path);
    snprintf(path, sizeof path, "%s/%s", self->socket_dir, qp_endpoint_file(QP_ADMIN));
    if (unlink(path) < 0 && errno != ENOENT) {
        snprintf(err, QP_ERR_LEN, "cannot remove the stale %.200s: %s", path, strerror(errno));
        return -EIO;
    }
    return 0;
}

static int adopt_one(void *arg, const qa_vgpu_t *v, const char *uuid, char err[QP_ERR_LEN])
{
    qa_server_t *self = arg;
    int rc = qa_host_adopt(self->host, v, uuid, err);
    if (rc == -ENODEV) { /* its GPU is gone: keep the file, serve the others */
        qa_log(self->log, QA_WARN, "%s; it is not served until that GPU is back", err);
        return 0;
    }
    if (rc < 0) {
        char why[QP_ERR_LEN];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, QP_ERR_LEN, "state of vGPU %s: %.180s (fix or remove its file)", v->id, why);
    }
    return rc;
}

static int discover(qa_server_t *self, char *err)
{
    qa_gpu_desc_t gpus[QA_MAX_GPUS];
    size_t n;
    unsigned derived;
    if (!(self->nvml = qa_nvml_open(err)))
        return -ENODEV;
    int rc = qa_nvml_describe(self->nvml, gpus, QA_MAX_GPUS, &n, &derived, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        qa_log(self->log, QA_INFO, "GPU %u: %s, %s, %llu MiB, %u SMs, %u CUDA cores", gpus[i].index,
               gpus[i].name, gpus[i].uuid, (unsigned long long)(gpus[i].memory_total >> 20),
               gpus[i].sms, gpus[i].cuda_cores);
    if (derived)
        qa_log(self->log, QA_INFO,
               "%u SM or core counts derived from the compute capability "
               "(the driver does not report them)",
               derived);
    if (!(self->host = qa_host_new(gpus, n, self->cfg))) {
        snprintf(err, QP_ERR_LEN, "out of memory");
        return -ENOMEM;
    }
    if (!(self->samples = calloc(n, sizeof *self->samples))) {
        snprintf(err, QP_ERR_LEN, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

static int load_state(qa_server_t *self, const char *dir, char *err)
{
    if (!(self->store = qa_store_open(dir, err)))
        return -EIO;
    qa_store_set_log(self->store, self->log);
    uint64_t next_id;
    int rc = qa_store_load(self->store, adopt_one, self, &next_id, err);
    if (rc < 0)
        return rc;
    qa_host_skip_ids(self->host, next_id);
    qa_log(self->log, QA_INFO, "state: %zu vGPUs from %s", qa_host_nvgpus(self->host), dir);
    if (!(self->ledger = qa_ledger_open(dir, err)))
        return -EIO;
    if (qa_tenant_adopt_ghosts(self) < 0) {
        snprintf(err, QP_ERR_LEN, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

/* Binds the endpoint ep on <its dir>/<file> with mode into *out. */
static int open_endpoint(qa_server_t *self, qa_endpoint_t **out, qp_endpoint_t ep, mode_t mode,
                         char *err)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", ep == QP_TENANT ? self->tenant_dir : self->socket_dir,
             qp_endpoint_file(ep));
    /* We hold the lock: a socket file in socket_dir is a dead arbiter's. One in another
     * tenant dir may be served by an arbiter of another socket dir: never take it. */
    if (strcmp(self->tenant_dir, self->socket_dir) != 0 && ep == QP_TENANT &&
        qp_sockpath_probe(path) == 0) {
        snprintf(err, QP_ERR_LEN,
                 "another qarbiter serves %.160s: stop it first, or use another --tenant-dir",
                 path);
        return -EBUSY;
    }
    qa_admission_t tenant, admin;
    admission(self, &tenant, &admin);
    qa_endpoint_opts_t opts = {
        .path = path,
        .mode = mode,
        .role = ep,
        .limits = ep == QP_TENANT ? tenant : admin,
        .hello_ns = self->cfg->hello_timeout_ms * 1000000ull,
        .max_out = ep == QP_TENANT ? TENANT_MAX_OUT : ADMIN_MAX_OUT,
    };
    qa_endpoint_hooks_t hooks = {on_message, on_multipart, on_closing, self};
    *out = qa_endpoint_new(self->loop, self->log, &opts, &hooks, err);
    return *out ? 0 : -EIO;
}

/* Starts the CDI specs of a --tenant-dir arbiter and writes them all. A tenant dir that
 * is the socket dir would show admin.sock to every container: refused. */
static int start_cdi(qa_server_t *self, const qa_cdi_opts_t *opts, char *err)
{
    static const qa_cdi_opts_t defaults = {NULL, NULL, NULL, false};
    char sock_real[PATH_MAX], creds[PATH_MAX + 16];
    if (realpath(self->socket_dir, sock_real) && strcmp(sock_real, self->tenant_real) == 0) {
        snprintf(err, QP_ERR_LEN,
                 "--tenant-dir %.150s is the socket dir: containers would see admin.sock "
                 "(give a directory of its own)",
                 self->tenant_dir);
        return -EINVAL;
    }
    snprintf(creds, sizeof creds, "%s/vgpus", sock_real);
    if (!(self->cdi = qa_cdi_new(opts ? opts : &defaults, self->tenant_real, creds, err)))
        return -EINVAL;
    unsigned written, removed;
    char why[QP_ERR_LEN];
    if (qa_cdi_sync(self->cdi, self->host, &written, &removed, why) < 0)
        qa_log(self->log, QA_ERROR, "CDI specs: %s", why);
    qa_log(self->log, QA_INFO, "CDI specs in %s: %u written, %u stale removed (bundle %s)",
           qa_cdi_dir(self->cdi), written, removed, qa_cdi_bundle(self->cdi));
    return 0;
}

static void on_moved(void *arg, qa_vgpu_t *v)
{
    qa_tenant_moved(arg, v);
}

/* The mover and the balancer (docs/migration.md). The checkpoint helper is this binary,
 * started when a move first needs the driver. */
static int start_mover(qa_server_t *self, const char *state_dir, char *err)
{
    const qa_config_t *cfg = self->cfg;
    qa_mover_env_t env = {
        .loop = self->loop,
        .log = self->log,
        .host = self->host,
        .store = self->store,
        .cdi = self->cdi,
        .compute = self->compute,
        .state_dir = state_dir,
        .exe = "/proc/self/exe",
        .params =
            {
                /* the lease held comes back at once, after the work queued under it */
                .drain_ns = (cfg->lease_grace_ms + 1000ull) * 1000000ull,
                .lock_ns = 2000ull * 1000000ull,
                .op_ns = 10000ull * 1000000ull,
                .ns_per_gib = 2000ull * 1000000ull, /* copies run at 12 GB/s and more */
                .poll_ns = 1000000ull,
                .retry_ns = 200ull * 1000000ull,
                .retries = 5,
            },
        .moved = on_moved,
        .arg = self,
    };
    qa_balancer_env_t benv = {self->loop, self->log, self->host, cfg, NULL};
    if (!(self->mover = qa_mover_new(&env)) || !(benv.mover = self->mover) ||
        !(self->balancer = qa_balancer_new(&benv))) {
        snprintf(err, QP_ERR_LEN, "cannot start: out of memory");
        return -ENOMEM;
    }
    return 0;
}

qa_server_t *qa_server_new(const qa_server_opts_t *opts, char err[QP_ERR_LEN])
{
    qa_server_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, QP_ERR_LEN, "out of memory");
        return NULL;
    }
    self->cfg = opts->cfg;
    self->log = opts->log;
    self->lock_fd = self->sig_fd = -1;
    qa_metrics_init(&self->metrics);
    read_fd_limit(self);
    if (strlen(opts->socket_dir) >= sizeof self->socket_dir - 16) {
        snprintf(err, QP_ERR_LEN, "socket dir '%.60s...' is too long for Unix sockets",
                 opts->socket_dir);
        goto fail;
    }
    const char *tdir = opts->tenant_dir ? opts->tenant_dir : opts->socket_dir;
    if (strlen(tdir) >= sizeof self->tenant_dir - 16) {
        snprintf(err, QP_ERR_LEN, "tenant dir '%.60s...' is too long for Unix sockets", tdir);
        goto fail;
    }
    snprintf(self->socket_dir, sizeof self->socket_dir, "%s", opts->socket_dir);
    snprintf(self->tenant_dir, sizeof self->tenant_dir, "%s", tdir);
    if (mkdir(self->socket_dir, 0755) < 0 && errno != EEXIST) {
        snprintf(err, QP_ERR_LEN, "cannot create socket dir %.150s: %s", self->socket_dir,
                 strerror(errno));
        goto fail;
    }
    if (mkdir(self->tenant_dir, 0755) < 0 && errno != EEXIST) {
        snprintf(err, QP_ERR_LEN, "cannot create tenant dir %.150s: %s", self->tenant_dir,
                 strerror(errno));
        goto fail;
    }
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    if ((self->sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
        snprintf(err, QP_ERR_LEN, "cannot make a signalfd: %s", strerror(errno));
        goto fail;
    }
    if (check_dir(self->socket_dir, "socket dir", err) < 0 ||
        check_dir(self->tenant_dir, "tenant dir", err) < 0 || take_lock(self, err) < 0 ||
        discover(self, err) < 0 || load_state(self, opts->state_dir, err) < 0)
        goto fail;
    if (!realpath(self->tenant_dir, self->tenant_real)) {
        snprintf(err, QP_ERR_LEN, "cannot resolve tenant dir %.150s: %s", self->tenant_dir,
                 strerror(errno));
        goto fail;
    }
    if (!(self->sampler = qa_sampler_start(self->nvml, qa_host_ngpus(self->host), SAMPLE_MS)) ||
        !(self->loop = qa_loop_new()) ||
        !(self->compute = qa_compute_new(self, qa_host_ngpus(self->host))) ||
        !(self->audit = qa_audit_new(self->cfg, self->log, &audit_ops, self))) {
        snprintf(err, QP_ERR_LEN, "cannot start: out of memory or threads");
        goto fail;
    }
    /* HTTP before the sockets, so that it serves once admin.sock says "ready". */
    if (start_http(self, opts, err) < 0)
        goto fail;
    /* admin.sock last: its appearance tells that the arbiter is ready. The CDI specs
     * in between: once the tenant dir is known to be ours, and before anyone asks. */
    if (open_endpoint(self, &self->tenant, QP_TENANT, 0666, err) < 0 ||
        (opts->tenant_dir && start_cdi(self, opts->cdi, err) < 0) ||
        open_endpoint(self, &self->admin, QP_ADMIN, 0600, err) < 0)
        goto fail;
    if (qa_loop_add_fd(self->loop, self->sig_fd, on_signal, self) < 0 ||
        qa_loop_add_fd(self->loop, qa_sampler_fd(self->sampler), on_round, self) < 0 ||
        qa_timer_start(self->loop, &self->liveness, qa_now_ns() + LIVENESS_NS, on_liveness, self) <
            0 ||
        qa_timer_start(self->loop, &self->sampling, qa_now_ns(), on_sampling, self) < 0 ||
        (self->cfg->reconnect_grace_ms &&
         qa_timer_start(self->loop, &self->grace,
                        qa_now_ns() + self->cfg->reconnect_grace_ms * 1000000ull, on_grace_over,
                        self) < 0)) {
        snprintf(err, QP_ERR_LEN, "cannot start: out of memory");
        goto fail;
    }
    if (start_mover(self, opts->state_dir, err) < 0)
        goto fail;
    qa_log(self->log, QA_INFO, "serving %s and %s", qa_endpoint_path(self->admin),
           qa_endpoint_path(self->tenant));
    return self;

fail:
    qa_server_destroy(&self);
    return NULL;
}

int qa_server_run(qa_server_t *self)
{
    return qa_loop_run(self->loop);
}

void qa_server_destroy(qa_server_t **self_p)
{
    qa_server_t *self = *self_p;
    if (!self)
        return;
    qa_http_destroy(&self->http); /* first: its threads read views, never our state */
    if (self->loop) {
        qa_timer_stop(self->loop, &self->liveness);
        qa_timer_stop(self->loop, &self->sampling);
        qa_timer_stop(self->loop, &self->grace);
    }
    /* Each connection's session ends as it closes, before the compute scheduler its
     * peers point into goes. */
    qa_endpoint_destroy(&self->admin);
    qa_endpoint_destroy(&self->tenant);
    /* A move under way is let go: its helper brings the processes to where the vGPU's
     * record says, as after kill -9. */
    qa_balancer_destroy(&self->balancer);
    qa_mover_destroy(&self->mover);
    qa_compute_destroy(&self->compute);
    qa_audit_destroy(&self->audit);
    qa_loop_destroy(&self->loop);
    qa_sampler_stop(&self->sampler);
    if (self->host)
        qa_tenant_forget_ghosts(self->host);
    qa_ledger_close(&self->ledger);
    qa_store_close(&self->store);
    qa_cdi_destroy(&self->cdi);
    qa_host_destroy(&self->host);
    qa_nvml_close(&self->nvml);
    free(self->samples);
    if (self->sig_fd >= 0)
        close(self->sig_fd);
    if (self->lock_fd >= 0)
        close(self->lock_fd);
    free(self);
    *self_p = NULL;
}
