/* endpoint.c - a Unix socket served with our own ZMTP codec: accept with credentials,
 * admission, non-blocking reads and writes through one epoll set, hello timeouts and
 * throttled warnings. Loop thread only (see endpoint.h). */
#include "arbiter/endpoint.h"

#include "arbiter/throttle.h"
#include "proto/router.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define EVENTS 64              /* epoll events taken per call of the loop's callback */
#define ACCEPTS 64             /* connections accepted per readiness of the socket */
#define PENDING_MAX_FRAME 4096 /* frames of a peer without a session: a hello is small */
#define PAUSE_AT (64 * 1024)   /* a peer with this much unread output is not read from */
#define RESUME_AT (16 * 1024)  /* ... until it has read down to this */
#define FLOOD_LOG_NS (10ull * 1000000000ull) /* one warning per burst of refusals */
#define WARN_BURST 3                         /* warnings per uid per window ... */
#define WARN_WINDOW_NS FLOOD_LOG_NS          /* ... of 10 s; the rest are summed up */
#define WARN_SOURCES 1024                    /* uids followed at once by the warning throttle */
#define ACCEPT_RETRY_NS 100000000ull /* accept() out of descriptors: try again after 100 ms */

/* One connection. The peer comes first: handlers get &c->peer, endpoint.c gets c back. */
struct conn {
    qa_peer_t peer;
    int fd;                   /* owned */
    qp_router_t *wire;          /* owned: the ZMTP codec */
    uint32_t events;          /* what epoll watches on fd now */
    bool paused;              /* not read: it left PAUSE_AT bytes unread */
    bool doomed;              /* qa_endpoint_close was called: shut by the reaper */
    bool shut;                /* closed and out of the table: freed by the reaper */
    struct conn *next_doomed; /* the reaper's lists */
    struct conn *next_dead;
};

struct qa_endpoint {
    qa_loop_t *loop;     /* borrowed */
    const qa_log_t *log; /* borrowed */
    qa_endpoint_hooks_t hooks;
    char path[256];   /* the socket file */
    const char *name; /* its base name, for log lines */
    qp_endpoint_t role;
    uint64_t hello_ns; /* pending longer than this: closed */
    size_t max_out;
    int lfd;                 /* owned: the listening socket */
    int epfd;                /* owned: epoll set of lfd and every connection */
    bool bound;              /* path was bound here: remove it at the end */
    bool accepting;          /* lfd is in the epoll set with EPOLLIN */
    qa_timer_t accept_retry; /* re-arms lfd after accept() ran out of descriptors */
    qa_timer_t reaper;       /* shuts and frees what closes; runs right after a callback */
    struct conn *doomed;     /* connections whose close was asked: to shut */
    struct conn *dead;       /* connections shut: to free once no event can name them */
    qa_peers_t *peers;       /* owned: the table and its admission limits */
    qa_throttle_t *warns;    /* owned: per-uid warning budget */
    uid_t self_uid;          /* exempt from the per-uid limit, as root is */
    uint64_t refused;        /* connections refused for a full table since the warning */
    uint64_t refused_warned; /* ns of that warning, 0 if none yet */
    uint64_t failed;         /* accepts that failed since the last warning about them */
    uint64_t failed_warned;  /* ns of that warning, 0 if none yet */
};

static struct conn *conn_of(qa_peer_t *p)
{
    return (struct conn *)p; /* peer is the first member */
}

/* Whether c is closed or about to be: nothing more is read from or sent to it. */
static bool gone(const struct conn *c)
{
    return c->doomed || c->shut;
}

/* ---- warnings ---------------------------------------------------------------------- */

bool qa_endpoint_may_warn(qa_endpoint_t *self, const qa_peer_t *p)
{
    return qa_throttle_allow(self->warns, (uint32_t)p->cred_uid, qa_now_ns());
}

/* Logs one line about p's connection, within its uid's budget. */
static void warn_about(qa_endpoint_t *self, qa_level_t level, const qa_peer_t *p, const char *what)
{
    if (level <= self->log->level && qa_endpoint_may_warn(self, p))
        qa_log(self->log, level, "%s: connection of uid %u (pid %d) closed: %s", self->name,
               (unsigned)p->cred_uid, (int)p->cred_pid, what);
}

static void summary(void *arg, uint32_t source, uint64_t held)
{
    qa_endpoint_t *self = arg;
    char whose[32] = "other uids";
    if (source != QA_THROTTLE_OTHERS)
        snprintf(whose, sizeof whose, "uid %u", (unsigned)source);
    qa_log(self->log, QA_WARN,
           "%s: %llu more warnings about connections of %s were not logged (at most %d per "
           "uid per %llu s)",
           self->name, (unsigned long long)held, whose, WARN_BURST,
           (unsigned long long)(WARN_WINDOW_NS / 1000000000ull));
}

/* ---- connections ------------------------------------------------------------------- */

/* Makes epoll watch what c needs: input unless paused, output while some waits. */
static void watch(qa_endpoint_t *self, struct conn *c)
{
    size_t waiting;
    qp_router_out(c->wire, &waiting);
    uint32_t want = (c->paused ? 0 : EPOLLIN) | (waiting ? EPOLLOUT : 0);
    if (want == c->events)
        return;
    struct epoll_event ev = {.events = want, .data.ptr = c};
    if (epoll_ctl(self->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->events = want;
}

/* Closes c at once: the hook, the table, the descriptor. Its memory stays until the
 * reaper runs, so that epoll events already taken that name it find it shut. */
static void shut(qa_endpoint_t *self, struct conn *c)
{
    if (c->shut)
        return;
    c->shut = true;
    self->hooks.closing(self->hooks.arg, &c->peer);
    qa_peers_remove(self->peers, &c->peer);
    epoll_ctl(self->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    qp_router_destroy(&c->wire);
    c->next_dead = self->dead;
    self->dead = c;
}

/* Shuts what was asked to close and frees what was shut. Called where no hook runs and
 * no epoll event taken is left unread. */
static void reap(qa_endpoint_t *self)
{
    while (self->doomed) {
        struct conn *c = self->doomed;
        self->doomed = c->next_doomed;
        shut(self, c);
    }
    while (self->dead) {
        struct conn *c = self->dead;
        self->dead = c->next_dead;
        free(c);
    }
}

static void on_reaper(void *arg)
{
    reap(arg);
}

void qa_endpoint_close(qa_endpoint_t *self, qa_peer_t *p)
{
    struct conn *c = conn_of(p);
    if (gone(c))
        return;
    /* Deferred: the caller may be inside a hook about this very peer. Without memory for
     * the timer it is shut at the end of the next callback or tick. */
    c->doomed = true;
    c->next_doomed = self->doomed;
    self->doomed = c;
    if (!qa_timer_running(&self->reaper))
        qa_timer_start(self->loop, &self->reaper, 0, on_reaper, self);
}

/* Writes what waits for c. Returns false when the connection failed (it is then
 * closing). */
static bool flush(qa_endpoint_t *self, struct conn *c)
{
    for (;;) {
        size_t n;
        const uint8_t *out = qp_router_out(c->wire, &n);
        if (!n)
            break;
        ssize_t w = send(c->fd, out, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            qp_router_out_done(c->wire, (size_t)w);
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        qa_log(self->log, QA_DEBUG, "%s: a write to uid %u (pid %d) failed: %s", self->name,
               (unsigned)c->peer.cred_uid, (int)c->peer.cred_pid, strerror(errno));
        qa_endpoint_close(self, &c->peer);
        return false;
    }
    watch(self, c);
    return true;
}

int qa_endpoint_send(qa_endpoint_t *self, qa_peer_t *p, const void *buf, size_t len)
{
    struct conn *c = conn_of(p);
    if (gone(c))
        return 0; /* it is going: as if sent and lost */
    int rc = qp_router_send(c->wire, buf, len);
    if (rc == 0)
        flush(self, c);
    return rc;
}

void qa_endpoint_set_session(qa_endpoint_t *self, qa_peer_t *p, bool session)
{
    struct conn *c = conn_of(p);
    if (c->shut) /* a session ending because the connection closes */
        return;
    if (qa_peers_set_session(self->peers, p, session, qa_now_ns()) < 0) {
        qa_log(self->log, QA_ERROR, "%s: out of memory: a connection is closed", self->name);
        qa_endpoint_close(self, p);
        return;
    }
    qp_router_set_max_frame(c->wire, session ? QP_MAX_FRAME : PENDING_MAX_FRAME);
}

/* Handles what c sent, until nothing complete is left, c closes, or c's unread output
 * makes it pause. */
static void process(qa_endpoint_t *self, struct conn *c)
{
    char err[QP_ERR_LEN];
    while (!gone(c) && !c->paused) {
        const void *body = NULL;
        size_t len = 0;
        int ev = qp_router_next(c->wire, &body, &len, err);
        if (ev < 0) {
            warn_about(self, QA_WARN, &c->peer, err);
            qa_endpoint_close(self, &c->peer);
            return;
        }
        if (ev == QP_ROUTER_NONE)
            break;
        if (ev == QP_ROUTER_MESSAGE)
            self->hooks.message(self->hooks.arg, &c->peer, body, len);
        else
            self->hooks.multipart(self->hooks.arg, &c->peer);
        size_t waiting;
        qp_router_out(c->wire, &waiting);
        if (waiting >= PAUSE_AT) {
            /* It does not read what it asked for: read nothing more from it until it has.
             * Its requests wait in its socket, costing the arbiter nothing. */
            c->paused = true;
        }
    }
    if (!gone(c))
        flush(self, c);
}

static void on_readable(qa_endpoint_t *self, struct conn *c)
{
    size_t n;
    uint8_t *space = qp_router_in_space(c->wire, &n);
    if (!space) {
        qa_log(self->log, QA_ERROR, "%s: out of memory to read a connection: it is closed",
               self->name);
        qa_endpoint_close(self, &c->peer);
        return;
    }
    ssize_t r = recv(c->fd, space, n, MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (r <= 0) { /* the peer closed (its requests before were handled) or reset */
        qa_log(self->log, QA_DEBUG, "%s: uid %u (pid %d) disconnected", self->name,
               (unsigned)c->peer.cred_uid, (int)c->peer.cred_pid);
        qa_endpoint_close(self, &c->peer);
        return;
    }
    qp_router_in_commit(c->wire, (size_t)r);
    process(self, c);
}

static void on_writable(qa_endpoint_t *self, struct conn *c)
{
    if (!flush(self, c))
        return;
    size_t waiting;
    qp_router_out(c->wire, &waiting);
    if (c->paused && waiting <= RESUME_AT) {
        c->paused = false;
        process(self, c); /* what it sent meanwhile may be complete already */
        if (!gone(c))
            watch(self, c);
    }
}

/* ---- accepting --------------------------------------------------------------------- */

static void set_accepting(qa_endpoint_t *self, bool on)
{
    struct epoll_event ev = {.events = on ? EPOLLIN : 0, .data.ptr = NULL};
    if (self->accepting != on && epoll_ctl(self->epfd, EPOLL_CTL_MOD, self->lfd, &ev) == 0)
        self->accepting = on;
}

static void on_accept_retry(void *arg)
{
    set_accepting(arg, true);
}

/* accept() failed with err: logged once per burst. Out of descriptors, the socket stays
 * readable: accepting pauses for 100 ms rather than spin. */
static void accept_failed(qa_endpoint_t *self, int err)
{
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        set_accepting(self, false);
        qa_timer_start(self->loop, &self->accept_retry, qa_now_ns() + ACCEPT_RETRY_NS,
                       on_accept_retry, self);
    }
    self->failed++;
    uint64_t now = qa_now_ns();
    if (self->failed_warned && now - self->failed_warned < FLOOD_LOG_NS)
        return;
    qa_log(self->log, QA_WARN,
           "cannot accept connections on %s: %s (%llu failed; %zu connections open here; "
           "next warning in 10 s at the earliest)",
           self->path, strerror(err), (unsigned long long)self->failed,
           qa_peers_count(self->peers));
    self->failed_warned = now;
    self->failed = 0;
}

/* A connection was closed at once for want of room: one warning per burst. */
static void refused_full(qa_endpoint_t *self)
{
    self->refused++;
    uint64_t now = qa_now_ns();
    if (self->refused_warned && now - self->refused_warned < FLOOD_LOG_NS)
        return;
    const qa_admission_t *lim = qa_peers_limits(self->peers);
    bool all = qa_peers_count(self->peers) >= lim->max_conns;
    qa_log(self->log, QA_WARN,
           "%s: %zu connections %s, the most allowed (%s): new connections are closed (%llu so "
           "far; next warning in 10 s at the earliest)",
           self->name, all ? qa_peers_count(self->peers) : qa_peers_pending(self->peers),
           all ? "are open" : "have not said hello yet", all ? lim->why_conns : lim->why_pending,
           (unsigned long long)self->refused);
    self->refused_warned = now;
    self->refused = 0;
}

static void admit(qa_endpoint_t *self, int fd)
{
    struct ucred cred = {.pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1};
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        close(fd); /* not on a Unix socket: cannot happen */
        return;
    }
    bool exempt = cred.uid == 0 || cred.uid == self->self_uid;
    qa_peer_t *evict = NULL;
    qa_admit_t verdict = qa_peers_admit(self->peers, cred.uid, exempt, &evict);
    if (verdict != QA_ADMIT) {
        close(fd);
        if (verdict == QA_REFUSE_FULL) {
            refused_full(self);
        } else {
            qa_peer_t who = {.cred_uid = cred.uid, .cred_pid = cred.pid};
            char what[160];
            snprintf(what, sizeof what,
                     "uid %u has %zu connections that have not said hello "
                     "(max_pending_per_uid)",
                     (unsigned)cred.uid, qa_peers_pending_of(self->peers, cred.uid));
            warn_about(self, QA_WARN, &who, what);
        }
        return;
    }
    if (evict) {
        warn_about(self, QA_INFO, evict, "it had not said hello and its place was needed");
        shut(self, conn_of(evict));
    }
    struct conn *c = calloc(1, sizeof *c);
    if (!c || !(c->wire = qp_router_new(PENDING_MAX_FRAME, self->max_out))) {
        free(c);
        close(fd);
        qa_log(self->log, QA_ERROR, "%s: out of memory for a new connection: closed", self->name);
        return;
    }
    c->fd = fd;
    c->peer.ep = self->role;
    c->peer.cred_uid = cred.uid;
    c->peer.cred_pid = cred.pid;
    c->peer.last_seen = qa_now_ns();
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (qa_peers_add(self->peers, &c->peer, c->peer.last_seen) < 0) {
        ev.events = 0;
    } else if (epoll_ctl(self->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        qa_peers_remove(self->peers, &c->peer);
        ev.events = 0;
    }
    if (!ev.events) {
        qp_router_destroy(&c->wire);
        free(c);
        close(fd);
        qa_log(self->log, QA_ERROR, "%s: out of memory for a new connection: closed", self->name);
        return;
    }
    c->events = ev.events;
    flush(self, c); /* the greeting, at once */
}

static void on_listener(qa_endpoint_t *self)
{
    for (int i = 0; i < ACCEPTS && self->accepting; i++) {
        int fd = accept4(self->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            admit(self, fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            accept_failed(self, errno);
        return;
    }
}

/* The loop's callback: the epoll set is readable. */
static void on_events(void *arg)
{
    qa_endpoint_t *self = arg;
    struct epoll_event evs[EVENTS];
    int n = epoll_wait(self->epfd, evs, EVENTS, 0);
    for (int i = 0; i < n; i++) {
        struct conn *c = evs[i].data.ptr;
        if (!c) {
            on_listener(self);
            continue;
        }
        if (gone(c))
            continue;
        if (evs[i].events & EPOLLOUT)
            on_writable(self, c);
        if (!gone(c) && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c->paused)
            on_readable(self, c);
        else if (!gone(c) && (evs[i].events & (EPOLLHUP | EPOLLERR)) && c->paused)
            qa_endpoint_close(self, &c->peer); /* gone without reading: nothing to finish */
    }
    /* Freed here, when no event taken names them any more. */
    qa_timer_stop(self->loop, &self->reaper);
    reap(self);
}

/* ---- lifetime ---------------------------------------------------------------------- */

qa_endpoint_t *qa_endpoint_new(qa_loop_t *loop, const qa_log_t *log, const qa_endpoint_opts_t *opts,
                               const qa_endpoint_hooks_t *hooks, char err[QP_ERR_LEN])
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(opts->path) >= sizeof sun.sun_path) {
        snprintf(err, QP_ERR_LEN, "socket path %.200s is too long for a Unix socket", opts->path);
        return NULL;
    }
    qa_endpoint_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, QP_ERR_LEN, "out of memory");
        return NULL;
    }
    self->loop = loop;
    self->log = log;
    self->hooks = *hooks;
    snprintf(self->path, sizeof self->path, "%s", opts->path);
    const char *slash = strrchr(self->path, '/');
    self->name = slash ? slash + 1 : self->path;
    self->role = opts->role;
    self->hello_ns = opts->hello_ns;
    self->max_out = opts->max_out;
    self->self_uid = geteuid();
    self->lfd = self->epfd = -1;
    if (!(self->peers = qa_peers_new(&opts->limits)) ||
        !(self->warns = qa_throttle_new(WARN_BURST, WARN_WINDOW_NS, WARN_SOURCES))) {
        snprintf(err, QP_ERR_LEN, "out of memory");
        goto fail;
    }
    memcpy(sun.sun_path, self->path, strlen(self->path) + 1);
    if ((self->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
        (self->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
        goto fail_errno;
    unlink(self->path);
    /* The mode is set at bind through the umask, so that the socket is never reachable
     * by more than it should be, even for a moment; chmod then makes it exact. */
    mode_t old = umask((mode_t)(~opts->mode & 0777));
    int rc = bind(self->lfd, (struct sockaddr *)&sun, sizeof sun);
    umask(old);
    if (rc < 0)
        goto fail_errno;
    self->bound = true;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (chmod(self->path, opts->mode) < 0 || listen(self->lfd, SOMAXCONN) < 0 ||
        epoll_ctl(self->epfd, EPOLL_CTL_ADD, self->lfd, &ev) < 0)
        goto fail_errno;
    self->accepting = true;
    if (qa_loop_add_fd(loop, self->epfd, on_events, self) < 0) {
        snprintf(err, QP_ERR_LEN, "cannot listen on %.200s: out of memory", self->path);
        goto fail;
    }
    return self;

fail_errno:
    snprintf(err, QP_ERR_LEN, "cannot listen on %.200s: %s", self->path, strerror(errno));
fail:
    qa_endpoint_destroy(&self);
    return NULL;
}

static void shut_each(void *arg, qa_peer_t *p)
{
    shut(arg, conn_of(p));
}

void qa_endpoint_destroy(qa_endpoint_t **self_p)
{
    qa_endpoint_t *self = *self_p;
    if (!self)
        return;
    if (self->loop) {
        qa_timer_stop(self->loop, &self->accept_retry);
        qa_timer_stop(self->loop, &self->reaper);
    }
    if (self->peers) {
        qa_peers_each(self->peers, shut_each, self);
        reap(self);
    }
    if (self->warns) /* what was held back is still said */
        qa_throttle_flush(self->warns, UINT64_MAX, summary, self);
    if (self->lfd >= 0)
        close(self->lfd);
    if (self->epfd >= 0)
        close(self->epfd);
    if (self->bound)
        unlink(self->path);
    qa_peers_destroy(&self->peers);
    qa_throttle_destroy(&self->warns);
    free(self);
    *self_p = NULL;
}

/* ---- the rest ---------------------------------------------------------------------- */

const char *qa_endpoint_path(const qa_endpoint_t *self)
{
    return self->path;
}

size_t qa_endpoint_count(const qa_endpoint_t *self)
{
    return qa_peers_count(self->peers);
}

size_t qa_endpoint_pending(const qa_endpoint_t *self)
{
    return qa_peers_pending(self->peers);
}

void qa_endpoint_set_limits(qa_endpoint_t *self, const qa_admission_t *limits)
{
    qa_peers_set_limits(self->peers, limits);
}

void qa_endpoint_tick(qa_endpoint_t *self)
{
    uint64_t now = qa_now_ns();
    char what[96];
    snprintf(what, sizeof what, "no hello within %llu ms",
             (unsigned long long)(self->hello_ns / 1000000));
    /* oldest first: stop at the first one still within its time */
    qa_peer_t *p;
    while ((p = qa_peers_oldest_pending(self->peers)) && now - p->pending_since > self->hello_ns) {
        warn_about(self, QA_INFO, p, what);
        shut(self, conn_of(p));
    }
    reap(self);
    qa_throttle_flush(self->warns, now, summary, self);
}

void qa_endpoint_each(qa_endpoint_t *self, void (*fn)(void *arg, qa_peer_t *p), void *arg)
{
    qa_peers_each(self->peers, fn, arg);
}
