/* server.c - qarbiter's start-up, the wiring of its modules around one event loop, the
 * periodic work, and shutdown. Threads: the loop thread only (see server.h). */
#include "arbiter/server.h"

#include "arbiter/admin.h"
#include "arbiter/audit.h"
#include "arbiter/balancer.h"
#include "arbiter/compute.h"
#include "arbiter/migrate.h"
#include "arbiter/mover.h"
#include "arbiter/dispatch.h"
#include "arbiter/endpoint.h"
#include "arbiter/host.h"
#include "arbiter/http.h"
#include "arbiter/ledger.h"
#include "arbiter/loop.h"
#include "arbiter/metrics.h"
#include "arbiter/nvml.h"
#include "arbiter/pidlock.h"
#include "arbiter/procfs.h"
#include "arbiter/reply.h"
#include "arbiter/sampler.h"
#include "arbiter/store.h"
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
    qa_tenants_t *tenants;    /* owned: the tenant sessions */
    qa_admin_t *admin;        /* owned: the administrator's requests */
    qa_mover_t *mover;        /* owned: vGPUs moving to other GPUs */
    qa_balancer_t *balancer;  /* owned: auto-balancing */
    qa_migrate_t *migrate;    /* owned: the migrate and balance requests */
    qa_dispatch_t *dispatch;  /* owned: messages to the handlers of their kinds */
    qa_reply_t reply;         /* the endpoints, as the handlers' reply path */
    qa_store_t *store;        /* owned */
    qa_ledger_t *ledger;      /* owned: what tenant processes may hold (tenant.c) */
    qa_sampler_t *sampler;    /* owned */
    qa_gpu_sample_t *samples; /* owned, one per GPU: scratch for the latest round */
    uint64_t sample_round;    /* latest round taken */
    qa_audit_t *audit;        /* owned: real use and unmanaged processes, from the rounds */
    qa_endpoint_t *admin_ep;  /* owned: admin.sock */
    qa_endpoint_t *tenant_ep; /* owned: tenant.sock */
    qa_loop_t *loop;          /* owned */
    int sig_fd;               /* owned: signalfd for SIGTERM/SIGINT */
    qa_timer_t liveness;      /* looks for silent peers */
    qa_timer_t sampling;      /* takes NVML samples */
    uint64_t fd_limit;        /* RLIMIT_NOFILE now (re-read by the liveness timer) */

    qa_metrics_t metrics; /* requests by kind and their handling time */
    qa_http_t *http;      /* owned: the HTTP server, NULL when off */
};

/* ---- the reply path: the endpoints ------------------------------------------------ */

static qa_endpoint_t *endpoint_of(qa_server_t *self, const qa_peer_t *p)
{
    return p->ep == QP_ADMIN ? self->admin_ep : self->tenant_ep;
}

static int reply_write(void *arg, qa_peer_t *p, const void *buf, size_t len)
{
    return qa_endpoint_send(endpoint_of(arg, p), p, buf, len);
}

static void reply_session(void *arg, qa_peer_t *p, bool open)
{
    qa_endpoint_set_session(endpoint_of(arg, p), p, open);
}

static bool reply_may_warn(void *arg, const qa_peer_t *p)
{
    return qa_endpoint_may_warn(endpoint_of(arg, p), p);
}

/* ---- the endpoints' hooks: the dispatcher, and the end of a tenant's session -------- */

static void on_message(void *arg, qa_peer_t *p, const void *body, size_t len)
{
    qa_server_t *self = arg;
    qa_dispatch_message(self->dispatch, p, body, len);
}

static void on_multipart(void *arg, qa_peer_t *p)
{
    qa_server_t *self = arg;
    qa_dispatch_multipart(self->dispatch, p);
}

/* The endpoint closes p's connection: a tenant's session ends and its memory returns. */
static void on_closing(void *arg, qa_peer_t *p)
{
    qa_server_t *self = arg;
    if (p->ep == QP_TENANT)
        qa_tenants_end(self->tenants, p, false);
    else if (self->mover)
        qa_mover_forget(self->mover, p); /* its migrate or balance is answered to nobody */
}

/* ---- what admin.c asks of the others ---------------------------------------------- */

static void vgpu_gone(void *arg, qa_vgpu_t *v)
{
    qa_server_t *self = arg;
    qa_tenants_vgpu_gone(self->tenants, v);
    qa_compute_vgpu_gone(self->compute, v);
}

static void vgpu_resized(void *arg, qa_vgpu_t *v, uint64_t old_memory_mb)
{
    qa_server_t *self = arg;
    qa_compute_resized(self->compute, v);
    qa_tenants_resized(self->tenants, v, old_memory_mb);
}

static void stats(void *arg, qp_totals_t *t, const qp_finding_t **findings, size_t *n)
{
    qa_server_t *self = arg;
    t->memory_used_mb = qa_tenants_host_used(self->tenants) / QP_MIB;
    t->kills = qa_audit_kills(self->audit);
    *findings = qa_audit_findings(self->audit, n);
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

/* ---- periodic work ----------------------------------------------------------------- */

/* An administrator long idle is closed: it reconnects. */
static void check_admin(void *arg, qa_peer_t *p)
{
    qa_server_t *self = arg;
    if (qa_now_ns() - p->last_seen > IDLE_PEER_NS)
        qa_endpoint_close(self->admin_ep, p);
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
    qa_endpoint_set_limits(self->tenant_ep, &tenant);
    qa_endpoint_set_limits(self->admin_ep, &admin);
    qa_tenants_tick(self->tenants, qa_now_ns());
    qa_endpoint_each(self->admin_ep, check_admin, self);
    qa_endpoint_tick(self->tenant_ep);
    qa_endpoint_tick(self->admin_ep);
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
        qa_tenants_measured(self->tenants, v, fresh && s && s->ok && s->mem_ok ? s->taken : 0,
                            now);
    }
}

static void on_round(void *arg)
{
    take_round(arg);
}

/* Asks for an NVML round now (tenant.h's measure). */
static bool measure(void *arg)
{
    qa_server_t *self = arg;
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

static void audit_charge(void *arg, qa_session_t *s, uint64_t bytes)
{
    (void)arg;
    qa_tenants_charge(s, bytes);
}

static const qa_audit_ops_t audit_ops = {audit_inspect, audit_kill, audit_charge};

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
    qa_view_t *v = qa_view_build(self->host, &self->metrics, qa_endpoint_count(self->tenant_ep), f,
                                 nf, qa_audit_kills(self->audit));
    if (v) /* what tenants report, each process counted once (host.h, tenant.h) */
        v->totals.memory_used_mb = qa_tenants_host_used(self->tenants) / QP_MIB;
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
    char path[256], pid[QA_PIDLOCK_PID_LEN];
    snprintf(path, sizeof path, "%s/%s", self->socket_dir, QP_LOCK_FILE);
    int rc = qa_pidlock_take(AT_FDCWD, path, path, 0644, pid, err);
    if (rc == -EBUSY)
        snprintf(err, QP_ERR_LEN,
                 "another qarbiter%s%.20s%s holds %.160s: stop it first, or use another "
                 "--socket-dir",
                 pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "", path);
    if (rc < 0)
        return rc;
    self->lock_fd = rc;
    if (qa_pidlock_note(self->lock_fd) < 0)
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
    /* What the previous arbiter's processes may hold is charged before anything is served. */
    qa_tenants_opts_t to = {self->host, self->ledger, NULL,    self->loop, self->cfg,
                            self->log,  &self->reply, measure, self};
    if (!(self->compute = qa_compute_new(&(qa_compute_opts_t){qa_host_ngpus(self->host),
                                                             self->loop, self->cfg, self->log,
                                                             &self->reply}))) {
        snprintf(err, QP_ERR_LEN, "out of memory");
        return -ENOMEM;
    }
    to.compute = self->compute;
    if (!(self->tenants = qa_tenants_new(&to, err)))
        return -ENOMEM;
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

/* Serves the n rows of table with arg through the dispatcher. */
static int add_routes(qa_server_t *self, const qa_route_t *table, size_t n, void *arg, char *err)
{
    int rc = qa_dispatch_add(self->dispatch, table, n, arg);
    if (rc < 0)
        snprintf(err, QP_ERR_LEN, "cannot start: request handlers clash (%s)", strerror(-rc));
    return rc;
}

static void vgpu_moved(void *arg, qa_vgpu_t *v)
{
    qa_server_t *self = arg;
    qa_tenants_moved(self->tenants, v);
}

/* Moving vGPUs (docs/migration.md): the mover, the balancer and their requests. The
 * checkpoint helper is this binary, started when a move first needs the driver. */
static int start_moves(qa_server_t *self, const char *state_dir, char *err)
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
        .moved = vgpu_moved,
        .arg = self,
    };
    if (!(self->mover = qa_mover_new(&env)) ||
        !(self->balancer = qa_balancer_new(&(qa_balancer_env_t){self->loop, self->log, self->host,
                                                                cfg, self->mover})) ||
        !(self->migrate = qa_migrate_new(&(qa_migrate_opts_t){self->host, self->mover,
                                                              self->balancer, &self->reply,
                                                              self->log}))) {
        snprintf(err, QP_ERR_LEN, "cannot start: out of memory");
        return -ENOMEM;
    }
    return add_routes(self, qa_migrate_routes, qa_migrate_nroutes, self->migrate, err);
}

/* The administrator's requests, once the CDI specs (if any) are there; then every
 * request kind has its handler, or the start stops (a table left out). */
static int start_admin(qa_server_t *self, char *err)
{
    qa_admin_opts_t o = {self->host, self->store,        self->cdi,    self->cfg,
                         self->log,  &self->reply,        self->tenant_real,
                         {vgpu_gone, vgpu_resized, stats, self}};
    if (!(self->admin = qa_admin_new(&o))) {
        snprintf(err, QP_ERR_LEN, "cannot start: out of memory");
        return -ENOMEM;
    }
    int rc = add_routes(self, qa_admin_routes, qa_admin_nroutes, self->admin, err);
    if (rc == 0 && (rc = qa_dispatch_check(self->dispatch, err)) < 0) {
        char why[QP_ERR_LEN];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, QP_ERR_LEN, "cannot start: %.200s", why);
    }
    return rc;
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
    self->reply = (qa_reply_t){reply_write, reply_session, reply_may_warn, self, self->log};
    if (!(self->loop = qa_loop_new()) ||
        !(self->dispatch = qa_dispatch_new(&self->reply, self->log, &self->metrics))) {
        snprintf(err, QP_ERR_LEN, "cannot start: out of memory");
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
        !(self->audit = qa_audit_new(self->cfg, self->log, &audit_ops, self))) {
        snprintf(err, QP_ERR_LEN, "cannot start: out of memory or threads");
        goto fail;
    }
    if (add_routes(self, qa_tenant_routes, qa_tenant_nroutes, self->tenants, err) < 0 ||
        add_routes(self, qa_compute_routes, qa_compute_nroutes, self->compute, err) < 0)
        goto fail;
    /* HTTP before the sockets, so that it serves once admin.sock says "ready". */
    if (start_http(self, opts, err) < 0)
        goto fail;
    /* admin.sock last: its appearance tells that the arbiter is ready. The CDI specs
     * in between: once the tenant dir is known to be ours, and before anyone asks. */
    if (open_endpoint(self, &self->tenant_ep, QP_TENANT, 0666, err) < 0 ||
        (opts->tenant_dir && start_cdi(self, opts->cdi, err) < 0) ||
        start_moves(self, opts->state_dir, err) < 0 || start_admin(self, err) < 0 ||
        open_endpoint(self, &self->admin_ep, QP_ADMIN, 0600, err) < 0)
        goto fail;
    if (qa_loop_add_fd(self->loop, self->sig_fd, on_signal, self) < 0 ||
        qa_loop_add_fd(self->loop, qa_sampler_fd(self->sampler), on_round, self) < 0 ||
        qa_timer_start(self->loop, &self->liveness, qa_now_ns() + LIVENESS_NS, on_liveness, self) <
            0 ||
        qa_timer_start(self->loop, &self->sampling, qa_now_ns(), on_sampling, self) < 0 ||
        qa_tenants_serve(self->tenants) < 0) {
        snprintf(err, QP_ERR_LEN, "cannot start: out of memory");
        goto fail;
    }
    qa_log(self->log, QA_INFO, "serving %s and %s", qa_endpoint_path(self->admin_ep),
           qa_endpoint_path(self->tenant_ep));
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
    }
    /* Each connection's session ends as it closes, before the tenants and the compute
     * scheduler its session points into go. */
    qa_endpoint_destroy(&self->admin_ep);
    qa_endpoint_destroy(&self->tenant_ep);
    /* A move under way is let go: its helper brings the processes to where the vGPU's
     * record says, as after kill -9. Requests still waiting are freed with it. */
    qa_balancer_destroy(&self->balancer);
    qa_mover_destroy(&self->mover);
    qa_migrate_destroy(&self->migrate);
    qa_admin_destroy(&self->admin);
    qa_tenants_destroy(&self->tenants); /* what the ghosts hold stays in the ledger */
    qa_compute_destroy(&self->compute);
    qa_audit_destroy(&self->audit);
    qa_dispatch_destroy(&self->dispatch);
    qa_loop_destroy(&self->loop);
    qa_sampler_stop(&self->sampler);
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
