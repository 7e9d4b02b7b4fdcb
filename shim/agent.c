/* agent.c - the agent thread: this process's only link to the arbiter, and the shell
 * around its compute lease.
 *
 * The lease's policy is shim/lease.c, a pure core: this file feeds it what happens (the
 * arbiter's pushes, the outcome of sends, launches and waiters at the gate, drains that
 * ended) and carries out what it decides (the gate's end, drains, tok_* messages). The
 * memory reservation client (mem_reserve, mem_release, heartbeats, mem_reclaim) is this
 * file's own.
 *
 * Threads: the agent thread alone touches conn, the lease core and the fields marked
 * "agent"; it is also the only writer of the reservation (shim/resv.h), of the quota
 * and of the compute gate (shim/gate.h). Application threads queue reservation requests
 * under lock and wait on `done`; a thread blocked at the gate counts itself in the gate
 * and signals `wake` through the waker (wake_for_gate). While idle the agent waits on
 * `wake` between rounds, so a request is sent at once, and reads pushes every POLL_MS;
 * while a lease is held or awaited it waits on the socket in slices of SLICE_MS instead,
 * so that a grant opens the gate as it arrives. Hooks of the connection (hello,
 * session, push) run on the agent thread. The agent's lock is the innermost: nothing is
 * called under it but the gate's waiter count (an atomic). */
#include "shim/agent.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto/conn.h"
#include "proto/records.h"
#include "shim/clock.h"
#include "shim/device.h"
#include "shim/drain.h"
#include "shim/gate.h"
#include "shim/init.h"
#include "shim/lease.h"
#include "shim/log.h"
#include "shim/mem.h"

#define CLIENT "qshim/0.1.0"
#define POLL_MS 20           /* pushes (limits, mem_reclaim) are seen within this */
#define HB_MS 500            /* PROTOCOL.md: a heartbeat every 500 ms */
#define CALL_MS 1500         /* a reply's deadline: the arbiter may hold mem_reserve 500 ms */
#define RETRY_MS 200         /* an unreachable arbiter is tried this often... */
#define REFUSED_MS 5000      /* ...one that refused our hello, this often */
#define SEND_MS 300          /* each such try waits this long for a connection and hello */
#define REQUEST_WAIT_MS 4000 /* an application thread's bound on one request */
#define RETRY_MARGIN_MS 300  /* a request asked again ends this long before that bound */
#define MiB (1024ull * 1024ull)
#define MS_NS 1000000ull
#define SLICE_MS 1 /* pushes are read this often while a lease is held or awaited */
#define MOVE_WAIT_MS 120000 /* a new process of a vGPU that moves waits this long at most */
#define MOVE_POLL_MS 50     /* asking again this often whether the move is over */
#define OUTBOX 4   /* tok_* messages one look of the lease may ask for (it asks at most one) */

_Static_assert(QS_LEASE_FREE == QS_GATE_FREE, "the lease core opens the gate for good");

/* The arbiter's tenant socket as a peer sees it: the address it bound (which may differ
 * from our path to it: a symlink, a bind mount into a container) and the credentials of
 * the process that listens. Every connection to it, ZeroMQ's included, shows both. */
struct qs_peer_sig {
    struct sockaddr_un addr; /* getpeername() of a connection */
    socklen_t len;           /* its length */
    struct ucred cred;       /* SO_PEERCRED of a connection */
};

/* One application thread's request, on its stack while it waits. */
struct qs_req {
    uint64_t n;          /* bytes the reservation must grow by */
    int rc;              /* the answer (agent writes, under lock) */
    bool done;           /* answered (under lock) */
    struct qs_req *next; /* queue link (under lock) */
};

struct qs_agent {
    pthread_t thread;              /* the agent thread */
    bool started;                  /* thread was created */
    pthread_mutex_t lock;          /* guards queue, hello_done, stop */
    pthread_cond_t wake;           /* signalled for the agent: a request, or stop */
    pthread_cond_t done;           /* broadcast for waiters: a request answered, hello done */
    struct qs_req *queue;          /* pending requests (lock) */
    bool hello_done;               /* the first session attempt finished (lock) */
    bool stop;                     /* the process is exiting (lock) */
    atomic_int connected;          /* in session as of the last exchange: any thread reads */
    qp_conn_t *conn;               /* owned; agent */
    uint64_t reported_used;        /* our use in our last report to the arbiter; agent */
    bool refused;                  /* the last hello was refused (auth); agent */
    atomic_bool busy;              /* the last hello was answered `busy`: the vGPU is moving
                                    * to another GPU (the agent writes, any thread reads) */
    bool reclaim;                  /* a mem_reclaim push awaits action; agent */
    uint64_t reclaim_keep;         /* its keep; agent */
    char err[QP_ERR_LEN];          /* the last failure; agent */
    qs_lease_t *lease;             /* owned: the compute lease's core; agent */
    uint64_t ticket;               /* the drain the core asked for last (shim/drain.h); agent */
    bool draining;                 /* that drain's end was not reported to the core yet; agent */
    qs_lease_msg_t outbox[OUTBOX]; /* messages the core asked for, sent after its call; agent */
    int nout;                      /* entries of outbox; agent */
    /* what a fork child closes: the agent writes sig with sig_ok cleared, then sets it
     * (release); the child of a fork in between sees it cleared and closes nothing */
    struct qs_peer_sig sig; /* learned by probe_arbiter() */
    atomic_bool sig_ok;     /* sig is complete */
};

/* An eventfd that wakes the agent from its wait on the socket (while a lease is held or
 * awaited it waits there in slices of SLICE_MS, not on `wake`): the drainer writes it, so
 * that a finished drain gives the lease back at once, not up to a slice later, while the
 * GPU idles. (Threads at the gate only signal `wake`: waking the agent at once for them
 * too made 64 competing tenants hand the GPU over less well.) -1 until the agent starts. */
static atomic_int kick_fd = -1;

/* The process's agent; NULL before it starts, when pass-through, and in a fork child
 * until it starts its own. Never freed (see stop_agent()). */
static struct qs_agent *agent0;

/* Said once per process. */
static atomic_int logged_agent, logged_refused;

/* Wakes the agent thread without taking any lock: the drainer calls it when a drain ends.
 * Keeps errno. */
static void nudge(void)
{
    int fd = atomic_load_explicit(&kick_fd, memory_order_acquire);
    if (fd < 0)
        return;
    int saved = errno;
    uint64_t one = 1;
    ssize_t n = write(fd, &one, sizeof one); /* EAGAIN: the counter is full, so set */
    (void)n;
    errno = saved;
}

/* Empties the eventfd after a wake-up. */
static void unnudge(void)
{
    int fd = atomic_load_explicit(&kick_fd, memory_order_acquire);
    uint64_t v;
    if (fd >= 0 && read(fd, &v, sizeof v) < 0)
        return; /* EAGAIN: nothing was written */
}

/* Reservation asked beyond need, so that the next allocations need no round trip: a
 * sixteenth of the quota, between 8 and 256 MiB. */
static uint64_t headroom(void)
{
    uint64_t h = qs_mem_quota() / 16;
    return h < 8 * MiB ? 8 * MiB : h > 256 * MiB ? 256 * MiB : h;
}

/* Whether something accepts connections on the tenant socket: a quick local check, so
 * that a process started while the arbiter is down does not wait for a hello that cannot
 * come (a stale socket file refuses at once). A connection also tells a->sig, what this
 * process's connections to the arbiter look like (a fork child closes its copies). */
static bool probe_arbiter(struct qs_agent *a)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int n = snprintf(sun.sun_path, sizeof sun.sun_path, "%s/tenant.sock", qs_env_socket_dir());
    if (n < 0 || (size_t)n >= sizeof sun.sun_path)
        return true; /* qp_conn_new says what is wrong */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return true;
    bool ok = connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0;
    if (ok) {
        struct qs_peer_sig sig = {.len = sizeof sig.addr};
        socklen_t clen = sizeof sig.cred;
        if (getpeername(fd, (struct sockaddr *)&sig.addr, &sig.len) == 0 &&
            sig.len <= sizeof sig.addr &&
            getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &sig.cred, &clen) == 0) {
            atomic_store_explicit(&a->sig_ok, false, memory_order_relaxed);
            /* the clear lands before the new bytes: a fork snapshots memory at any point */
            atomic_thread_fence(memory_order_release);
            a->sig = sig;
            atomic_store_explicit(&a->sig_ok, true, memory_order_release);
        }
    }
    close(fd);
    return ok;
}

/* ---- what the arbiter tells us ------------------------------------------------------- */

static void note_vgpu_used(struct qs_agent *a, const qp_msg_t *rep)
{
    uint64_t vgpu_used;
    if (qp_msg_get_uint(rep, "vgpu_used", &vgpu_used) == 0)
        qs_mem_set_others(vgpu_used > a->reported_used ? vgpu_used - a->reported_used : 0);
}

static void apply_limits(const qp_msg_t *map)
{
    qp_limits_t l;
    char err[QP_ERR_LEN];
    if (!map || qp_limits_get(map, &l, err) < 0) {
        qs_log_once(&logged_agent, "the arbiter sent malformed limits: %s", err);
        return;
    }
    qs_mem_set_quota(l.memory_quota);
    qs_device_set_uuid(l.gpu_uuid);
}

/* Hook: a new session needs a hello. The arbiter starts the session's reservation at
 * the mem_used we report, so ours drops to what we use now. */
static qp_msg_t *hello_hook(void *arg)
{
    struct qs_agent *a = arg;
    a->reported_used = qs_resv_reset_to_used(qs_mem_resv());
    return qp_new_tenant_hello(CLIENT, qs_env_vgpu(), qs_env_secret(), getpid(), a->reported_used);
}

static void session_hook(void *arg, const qp_msg_t *rep)
{
    struct qs_agent *a = arg;
    apply_limits(qp_msg_get_map(rep, "vgpu"));
    note_vgpu_used(a, rep);
    qs_lease_session(a->lease);
    probe_arbiter(a); /* a new session may be a restarted arbiter: a new pid */
}

/* Hook: a push. Runs inside a call on this connection, so it only records what to do
 * (the lease core acts on tok_* at once; it sends nothing from here). */
static void push_hook(void *arg, const qp_msg_t *m)
{
    struct qs_agent *a = arg;
    const char *t = qp_msg_type(m);
    uint64_t keep;
    if (t && strcmp(t, "limits") == 0) {
        apply_limits(qp_msg_get_map(m, "vgpu"));
    } else if (t && strcmp(t, "mem_reclaim") == 0 && qp_msg_get_uint(m, "keep", &keep) == 0) {
        a->reclaim_keep = a->reclaim ? (keep < a->reclaim_keep ? keep : a->reclaim_keep) : keep;
        a->reclaim = true;
    } else if (qp_is_tok(m)) {
        qp_tok_t tok;
        char err[QP_ERR_LEN];
        if (qp_tok_get(m, &tok, err) < 0)
            qs_log_once(&logged_agent, "the arbiter sent a malformed %s: %s", t, err);
        else if (tok.kind == QP_TOK_GRANT)
            qs_lease_grant(a->lease, tok.lease, tok.ns, qs_clock_now());
        else if (tok.kind == QP_TOK_REVOKE)
            qs_lease_revoke(a->lease, tok.lease);
    } else if (qp_msg_is_error(m) && qs_lease_refused(a->lease)) {
        /* Errors without an id answer messages without one: here our tok_req, refused by
         * an arbiter that grants no leases. Launches then go as without an arbiter. */
        const char *msg = NULL;
        qp_msg_get_str(m, "msg", &msg);
        qs_log_once(&logged_agent,
                    "the arbiter grants no compute leases (%s): "
                    "kernel launches are not gated",
                    msg ? msg : "no reason given");
    }
}

/* ---- exchanges (agent thread) -------------------------------------------------------- */

/* The arbiter refused our hello (wrong secret, or the vGPU was destroyed). */
static void note_refused(struct qs_agent *a)
{
    a->refused = true;
    qs_log_once(&logged_refused,
                "the arbiter refuses this process for vGPU %s (%s): "
                "it can allocate no GPU memory",
                qs_env_vgpu(), a->err);
}

/* Records the outcome of an exchange with the arbiter: whether we are in session. */
static void note_session(struct qs_agent *a)
{
    bool up = qp_conn_in_session(a->conn);
    int was = atomic_exchange_explicit(&a->connected, up, memory_order_relaxed);
    if (up && !was)
        qs_mem_arbiter_back();
    if (!up)
        qs_lease_unreachable(a->lease);
}

/* The gate follows whether the arbiter can be reached, as told by an exchange's result
 * rc: free while it cannot (nobody would grant a lease: waiting launches would hang),
 * closed again once an exchange succeeds (a new session closes it by itself). */
static void note_reach(struct qs_agent *a, int rc)
{
    if (rc == -ENOTCONN)
        qs_lease_unreachable(a->lease);
    else if (rc == 0)
        qs_lease_reached(a->lease);
}

/* Sends a heartbeat (with an id, so that the reply tells the vGPU's use). When no session
 * is open this is also how a new one is tried: the connection says hello first. */
/* Sends one hb with an id and waits timeout_ms for the reply; *used receives the use it
 * reported. Returns as qp_conn_call, or 1 when out of memory for the message (nothing
 * was sent). */
static int send_hb(struct qs_agent *a, int timeout_ms, uint64_t *used, qp_msg_t **rep)
{
    *used = qs_resv_used(qs_mem_resv());
    qp_msg_t *m =
        qp_new_hb(*used, atomic_load_explicit(&qs_mem_resv()->reserved, memory_order_relaxed));
    if (!m)
        return 1;
    return qp_conn_call(a->conn, &m, rep, timeout_ms, a->err);
}

static void heartbeat(struct qs_agent *a, int timeout_ms)
{
    uint64_t used;
    qp_msg_t *rep = NULL;
    int rc = send_hb(a, timeout_ms, &used, &rep);
    /* The arbiter died under it (kill -9, restart): say hello to the next one at once,
     * re-reporting what we hold, rather than RETRY_MS later; requests of application
     * threads wait meanwhile (CALL_MS at most) instead of failing as if it were gone. */
    if (rc == -ECONNRESET) {
        qp_msg_destroy(&rep);
        rc = send_hb(a, CALL_MS, &used, &rep);
    }
    if (rc == 1)
        return;
    if (rc == 0) {
        a->reported_used = used;
        note_vgpu_used(a, rep);
    }
    qp_msg_destroy(&rep);
    note_session(a);
    note_reach(a, rc);
    atomic_store_explicit(&a->busy, rc == -EBUSY, memory_order_relaxed);
    if (rc == -EACCES)
        note_refused(a);
    else if (rc == 0)
        a->refused = false;
}

/* The vGPU is moving to another GPU (the hello was answered `busy`): a process that
 * initialised CUDA now would start on the GPU it leaves, so the first hello waits for the
 * move to end, asking again every MOVE_POLL_MS, at most MOVE_WAIT_MS. */
static void wait_for_move(struct qs_agent *a)
{
    uint64_t until = qs_clock_now() / MS_NS + MOVE_WAIT_MS;
    while (atomic_load_explicit(&a->busy, memory_order_relaxed) &&
           qs_clock_now() / MS_NS < until) {
        struct timespec ts = {0, MOVE_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
        heartbeat(a, CALL_MS);
    }
}

/* Gives back reservation down to max(keep, what we use). */
static void release(struct qs_agent *a, uint64_t keep)
{
    uint64_t used = qs_resv_used(qs_mem_resv());
    uint64_t reserved = atomic_load_explicit(&qs_mem_resv()->reserved, memory_order_relaxed);
    uint64_t floor = keep > used ? keep : used;
    if (reserved <= floor || qs_resv_take(qs_mem_resv(), reserved - floor) == 0)
        return;
    qp_msg_t *m =
        qp_new_mem_release(atomic_load_explicit(&qs_mem_resv()->reserved, memory_order_relaxed));
    qp_msg_t *rep = NULL;
    if (!m)
        return;
    /* On failure the arbiter's record stays higher; the next heartbeat reconciles it. */
    if (qp_conn_call(a->conn, &m, &rep, CALL_MS, a->err) == 0)
        note_vgpu_used(a, rep);
    qp_msg_destroy(&rep);
    note_session(a);
}

/* Sends one mem_reserve so that n more bytes fit, waiting timeout_ms for the answer;
 * *used receives the use it reported. */
static int ask_reserve(struct qs_agent *a, uint64_t n, int timeout_ms, uint64_t *used,
                       qp_msg_t **rep)
{
    uint64_t need, want;
    *used = qs_resv_used(qs_mem_resv());
    if (__builtin_add_overflow(*used, n, &need))
        return -EDQUOT;
    want = need + headroom() < need ? need : need + headroom();
    qp_msg_t *m = qp_new_mem_reserve(need, want, *used);
    if (!m)
        return -ENOMEM;
    return qp_conn_call(a->conn, &m, rep, timeout_ms, a->err);
}

/* Grows the reservation so that n more bytes fit. Returns 0, -EDQUOT, -EACCES (the
 * arbiter refuses this process) or -ENOTCONN. */
static int reserve(struct qs_agent *a, uint64_t n)
{
    if (n <= INT64_MAX &&
        atomic_load_explicit(&qs_mem_resv()->avail, memory_order_relaxed) >= (int64_t)n)
        return 0; /* an earlier grant covers it */
    if (!atomic_load_explicit(&a->connected, memory_order_relaxed))
        return a->refused ? -EACCES : -ENOTCONN; /* fail fast; the heartbeat retries */
    uint64_t used, asked = qs_clock_now() / MS_NS;
    qp_msg_t *rep = NULL;
    int rc = ask_reserve(a, n, CALL_MS, &used, &rep);
    /* The arbiter died under the request (kill -9, restart): no answer will come. Ask the
     * new one at once, in a new session whose hello re-reports what we hold, rather than
     * fail the allocation for a restart. Once, with what is left of the application
     * thread's REQUEST_WAIT_MS (less a margin for the answer to reach it): the new arbiter
     * may take a while to start, and then holds requests for its reconnect grace. */
    uint64_t spent = qs_clock_now() / MS_NS - asked;
    if (rc == -ECONNRESET && spent + RETRY_MARGIN_MS + 200 < REQUEST_WAIT_MS) {
        qp_msg_destroy(&rep);
        rc = ask_reserve(a, n, (int)(REQUEST_WAIT_MS - RETRY_MARGIN_MS - spent), &used, &rep);
    }
    uint64_t reserved;
    if (rc == 0 && qp_msg_get_uint(rep, "reserved", &reserved) == 0) {
        a->reported_used = used;
        note_vgpu_used(a, rep);
        qs_resv_grant(qs_mem_resv(), reserved);
    } else if (rc == 0) {
        qs_log_once(&logged_agent, "the arbiter answered mem_reserve without "
                                   "'reserved'");
        rc = -EPROTO;
    }
    qp_msg_destroy(&rep);
    note_session(a);
    if (rc == -EACCES)
        note_refused(a);
    if (rc == 0 || rc == -EDQUOT || rc == -EACCES)
        return rc;
    return -ENOTCONN;
}

/* ---- the compute lease's shell (agent thread) ----------------------------------------- */

/* The core's callbacks. They act at once on the gate and the drain, and keep messages in
 * the outbox, which flush() sends once the core's call has returned: a send may open a
 * session and read pushes, whose hooks call into the core. */
static void lease_gate(void *arg, uint64_t end)
{
    (void)arg;
    qs_gate_set(end);
}

static void lease_drain(void *arg)
{
    struct qs_agent *a = arg;
    a->ticket = qs_drain_begin(); /* starts after the gate's last change: it sees every launch */
    a->draining = true;
}

static void lease_send(void *arg, const qs_lease_msg_t *m)
{
    struct qs_agent *a = arg;
    if (a->nout < OUTBOX)
        a->outbox[a->nout++] = *m;
}

/* Sends what the core asked for; each outcome goes back to it. */
static void flush(struct qs_agent *a)
{
    for (int i = 0; i < a->nout; i++) {
        const qs_lease_msg_t *m = &a->outbox[i];
        qp_msg_t *msg = m->kind == QS_LEASE_REQ   ? qp_new_tok_req()
                        : m->kind == QS_LEASE_EXT ? qp_new_tok_ext(m->lease)
                                                  : qp_new_tok_ret(m->lease, m->used, m->more);
        int rc = -ENOMEM;
        if (msg) {
            rc = qp_conn_send(a->conn, &msg, SEND_MS, a->err);
            note_session(a);
            note_reach(a, rc);
        }
        qs_lease_sent(a->lease, m, rc, qs_clock_now());
    }
    a->nout = 0;
}

/* One look of the lease: the drain's end if it came, then what the launches did. Drains
 * run on the drainer thread; this one goes on reading the arbiter and sending
 * heartbeats. */
static void tokens(struct qs_agent *a)
{
    uint64_t end, took;
    if (a->draining && qs_drain_done(a->ticket, &end, &took)) {
        a->draining = false;
        qs_lease_drained(a->lease, end, took);
    }
    uint64_t now = qs_clock_now();
    uint64_t launched_at = qs_gate_take_launched(now);
    qs_lease_look(a->lease, now, launched_at, qs_gate_waiting());
    flush(a);
}

/* Whether the agent must watch the socket closely: a lease is held or awaited. */
static bool lease_active(struct qs_agent *a)
{
    return atomic_load_explicit(&a->connected, memory_order_relaxed) &&
           qs_lease_active(a->lease, qs_gate_waiting());
}

/* ---- the thread ---------------------------------------------------------------------- */

static void answer(struct qs_agent *a, struct qs_req *queue)
{
    while (queue) {
        struct qs_req *r = queue;
        queue = r->next;
        int rc = reserve(a, r->n);
        pthread_mutex_lock(&a->lock);
        r->rc = rc;
        r->done = true;
        pthread_mutex_unlock(&a->lock);
        pthread_cond_broadcast(&a->done);
    }
}

static void *agent_main(void *arg)
{
    struct qs_agent *a = arg;
    char err[QP_ERR_LEN];
    qp_conn_hooks_t hooks = {hello_hook, session_hook, push_hook, a};
    a->conn = qp_conn_new(qs_env_socket_dir(), QP_TENANT, &hooks, err);
    if (!a->conn) {
        qs_log_once(&logged_agent, "cannot connect to the arbiter: %s", err);
        /* No connection will ever exist: nobody can grant a lease, and launches waiting
         * for one would wait forever. */
        qs_lease_unreachable(a->lease);
    } else {
        heartbeat(a, probe_arbiter(a) ? CALL_MS : 0);
        wait_for_move(a);
    }
    pthread_mutex_lock(&a->lock);
    a->hello_done = true;
    pthread_cond_broadcast(&a->done);
    uint64_t next_hb = qs_clock_now() / MS_NS + HB_MS;
    while (!a->stop) {
        /* lease_active() reads the gate's waiters under our lock: a thread counts itself
         * there before it signals wake, so it is either seen here or wakes us. */
        if (!a->queue && !lease_active(a)) {
            struct timespec until = qs_clock_deadline_in(POLL_MS);
            pthread_cond_timedwait(&a->wake, &a->lock, &until);
        }
        struct qs_req *queue = a->queue;
        a->queue = NULL;
        pthread_mutex_unlock(&a->lock);

        answer(a, queue);
        if (a->conn) {
            bool up = atomic_load_explicit(&a->connected, memory_order_relaxed);
            if (up)
                tokens(a);
            int slice = lease_active(a) ? SLICE_MS : 0;
            int kfd = atomic_load_explicit(&kick_fd, memory_order_relaxed);
            if (up && qp_conn_wait_fd(a->conn, slice, kfd, a->err) < 0)
                note_session(a);
            unnudge();
            if (a->reclaim) {
                a->reclaim = false;
                release(a, a->reclaim_keep);
            }
            uint64_t now = qs_clock_now() / MS_NS;
            if (now >= next_hb) {
                heartbeat(a, up ? CALL_MS : SEND_MS);
                up = atomic_load_explicit(&a->connected, memory_order_relaxed);
                /* Hoarding: more than twice the headroom unused goes back. */
                int64_t avail = atomic_load_explicit(&qs_mem_resv()->avail, memory_order_relaxed);
                if (up && avail > (int64_t)(2 * headroom()))
                    release(a, qs_resv_used(qs_mem_resv()) + headroom());
                next_hb = now + (up ? HB_MS : a->refused ? REFUSED_MS : RETRY_MS);
            }
        }
        pthread_mutex_lock(&a->lock);
    }
    /* Stopping: threads still waiting for an answer get one; later ones see stop. */
    for (struct qs_req *r = a->queue; r; r = r->next) {
        r->rc = -ENOTCONN;
        r->done = true;
    }
    a->queue = NULL;
    pthread_cond_broadcast(&a->done);
    pthread_mutex_unlock(&a->lock);
    qp_conn_destroy(&a->conn);
    return NULL;
}

/* The gate's waker: a thread waits at the gate for a lease. Returns false when there is
 * no agent thread (the launch then goes ungated). Takes the agent's lock, so that an
 * agent about to sleep either saw the waiter counted or gets the signal; the gate holds
 * no lock when it calls this. */
static bool wake_for_gate(void)
{
    struct qs_agent *a = agent0;
    if (!a || !a->started)
        return false;
    pthread_mutex_lock(&a->lock);
    bool alive = !a->stop;
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->lock);
    return alive;
}

int qs_agent_start(void)
{
    struct qs_agent *a = calloc(1, sizeof *a);
    qs_lease_ops_t ops = {lease_gate, lease_drain, lease_send, a};
    if (!a || !(a->lease = qs_lease_new(&ops))) {
        free(a);
        qs_gate_set(QS_GATE_FREE); /* no agent: nothing is enforced, no slow path either */
        return -ENOMEM;
    }
    if (qs_drain_start(nudge) < 0)
        qs_log_once(&logged_agent, "cannot start the drainer thread: the agent waits "
                                   "for GPU work itself");
    if (atomic_load_explicit(&kick_fd, memory_order_relaxed) < 0) {
        int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        atomic_store_explicit(&kick_fd, fd, memory_order_release); /* -1: slices only */
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->wake, &ca);
    pthread_cond_init(&a->done, &ca);
    pthread_condattr_destroy(&ca);
    agent0 = a;
    qs_gate_start(wake_for_gate); /* closed: launches wait for a lease from here on */
    /* The application's signals are for its own threads: the agent takes none. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&a->thread, NULL, agent_main, a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        qs_log_once(&logged_agent, "cannot start the agent thread: %s", strerror(rc));
        a->hello_done = true; /* requests are answered -ENOTCONN */
        qs_gate_set(QS_GATE_FREE);
        return -rc;
    }
    a->started = true;
    return 0;
}

void qs_agent_wait_hello(int timeout_ms)
{
    struct qs_agent *a = agent0;
    if (!a)
        return;
    struct timespec until = qs_clock_deadline_in(timeout_ms);
    int cancel; /* not a cancellation point: see qs_agent_reserve() */
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
    pthread_mutex_lock(&a->lock);
    bool extended = false;
    while (!a->hello_done) {
        if (pthread_cond_timedwait(&a->done, &a->lock, &until) != ETIMEDOUT)
            continue;
        /* Its vGPU is moving: wait for the move (the agent gives up after MOVE_WAIT_MS). */
        if (extended || !atomic_load_explicit(&a->busy, memory_order_relaxed))
            break;
        until = qs_clock_deadline_in(MOVE_WAIT_MS + CALL_MS);
        extended = true;
    }
    pthread_mutex_unlock(&a->lock);
    pthread_setcancelstate(cancel, NULL);
}

int qs_agent_reserve(uint64_t n)
{
    struct qs_agent *a = agent0;
    if (!a || !a->started)
        return -ENOTCONN;
    int saved = errno;
    struct qs_req req = {.n = n};
    struct timespec until = qs_clock_deadline_in(REQUEST_WAIT_MS);
    /* An allocation is no cancellation point, and the wait must not become one: a thread
     * cancelled in pthread_cond_timedwait() would exit holding the agent's lock, req (on
     * its stack) still in the agent's hands, and the agent would block for good. */
    int cancel;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
    pthread_mutex_lock(&a->lock);
    if (a->stop) { /* the process is exiting: the agent answers nothing more */
        pthread_mutex_unlock(&a->lock);
        pthread_setcancelstate(cancel, NULL);
        errno = saved;
        return -ENOTCONN;
    }
    req.next = a->queue;
    a->queue = &req;
    pthread_cond_signal(&a->wake);
    while (!req.done) {
        if (pthread_cond_timedwait(&a->done, &a->lock, &until) == ETIMEDOUT)
            break;
    }
    if (!req.done) {
        /* Still queued (the agent is stuck): unlink, since req lives on this stack. If the
         * agent already took it, it answers under lock, and we wait for that. */
        struct qs_req **p = &a->queue;
        while (*p && *p != &req)
            p = &(*p)->next;
        if (*p) {
            *p = req.next;
            req.rc = -ENOTCONN;
        } else {
            while (!req.done)
                pthread_cond_wait(&a->done, &a->lock);
        }
    }
    pthread_mutex_unlock(&a->lock);
    pthread_setcancelstate(cancel, NULL);
    errno = saved;
    return req.rc;
}

/* Closes this process's copies of the parent's connections to the tenant socket. Left
 * open, a long-lived child (a data-loader worker) would keep the parent's connection up
 * after the parent is killed, and the arbiter would see the death only when heartbeats
 * stop, not at once. A socket is one when its peer has the address and credentials the
 * parent's probe saw: the address as the arbiter bound it, not the path this process
 * reaches it by, which may differ (symlink, bind mount), and the listening process's
 * pid, uid and gid, so that no other socket that happens to share the name is closed. */
static void close_inherited_connections(const struct qs_peer_sig *sig)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);
        struct sockaddr_un sun;
        socklen_t len = sizeof sun, clen = sizeof(struct ucred);
        struct ucred cred;
        if (fd <= 2 || fd == dirfd(d))
            continue;
        if (getpeername(fd, (struct sockaddr *)&sun, &len) == 0 && len == sig->len &&
            memcmp(&sun, &sig->addr, len) == 0 &&
            getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0 &&
            cred.pid == sig->cred.pid && cred.uid == sig->cred.uid && cred.gid == sig->cred.gid)
            close(fd);
    }
    closedir(d);
}

void qs_agent_forget_after_fork(void)
{
    /* The parent's agent is left as it is: its thread, mutexes and ZeroMQ context belong to
     * a process image this one no longer shares. The child says its own hello. */
    int saved = errno; /* fork() must leave the application's errno as it was */
    struct qs_agent *a = agent0;
    if (a && atomic_load_explicit(&a->sig_ok, memory_order_acquire))
        close_inherited_connections(&a->sig);
    agent0 = NULL;
    /* The eventfd is shared with the parent: a read here would take the parent's wake-up. */
    int kfd = atomic_exchange_explicit(&kick_fd, -1, memory_order_acq_rel);
    if (kfd >= 0)
        close(kfd);
    errno = saved;
}

/* At exit: stop the agent and close the connection, so that the arbiter takes back this
 * process's reservation (and lease) at once. Bounded, since exit must not hang on a stuck
 * arbiter. The agent itself is never freed: application threads run on while exit()
 * calls destructors, and one may have read agent0 just before and be about to lock
 * it. Stopped, it answers every request -ENOTCONN and opens the gate for good; the
 * memory goes with the process. */
__attribute__((destructor)) static void stop_agent(void)
{
    struct qs_agent *a = agent0;
    if (!a || !a->started)
        return;
    /* Threads still launching while the process exits must not wait for a grant that
     * will not come. */
    qs_gate_set(QS_GATE_FREE);
    pthread_mutex_lock(&a->lock);
    a->stop = true;
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->lock);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 2;
    if (pthread_timedjoin_np(a->thread, NULL, &until) == 0)
        qs_gate_set(QS_GATE_FREE); /* its last round may have closed the gate again */
}
