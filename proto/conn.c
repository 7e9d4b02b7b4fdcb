/* conn.c - a DEALER connection to the arbiter that keeps its session open by itself.
 * One thread at a time (see conn.h); no global state. */
#include "proto/conn.h"

#include "proto/zmtp.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

struct qp_conn {
    qp_zmtp_t *z;          /* owned: DEALER on path */
    char path[256];        /* "DIR/admin.sock", shorter than sun_path (checked) */
    qp_conn_hooks_t hooks; /* copied from the caller */
    uint64_t next_id;      /* last request id used; ids start at 1 */
    bool session;          /* a hello succeeded and nothing said the session ended */
    uint64_t session_epoch; /* the connection (qp_zmtp_epoch) the session lives on */
};

/* Internal result of awaiting a reply: the arbiter no longer knows this peer. */
#define LOST_SESSION 1

static long left_ms(uint64_t deadline)
{
    uint64_t now = qp_now_ms();
    return now >= deadline ? 0 : (long)(deadline - now);
}

/* Whether the session is open: a hello succeeded on the connection there is now. A new
 * connection is a new peer to the arbiter, which ended the old one's session. */
static bool in_session(const qp_conn_t *self)
{
    return self->session && self->session_epoch == qp_zmtp_epoch(self->z);
}

qp_conn_t *qp_conn_new(const char *socket_dir, qp_endpoint_t ep, const qp_conn_hooks_t *hooks,
                       char err[QP_ERR_LEN])
{
    struct sockaddr_un sun;
    const char *file = qp_endpoint_file(ep);
    if (strlen(socket_dir) + 1 + strlen(file) >= sizeof sun.sun_path) {
        snprintf(err, QP_ERR_LEN,
                 "socket dir '%.64s...' is too long for a Unix socket path "
                 "(at most %zu bytes with the file name)",
                 socket_dir, sizeof sun.sun_path - 1);
        return NULL;
    }
    qp_conn_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, QP_ERR_LEN, "out of memory");
        return NULL;
    }
    snprintf(self->path, sizeof self->path, "%s/%s", socket_dir, file);
    self->hooks = *hooks;
    if (!(self->z = qp_zmtp_new(self->path, QP_MAX_REPLY_FRAME))) {
        snprintf(err, QP_ERR_LEN, "out of memory");
        free(self);
        return NULL;
    }
    return self;
}

void qp_conn_destroy(qp_conn_t **self_p)
{
    qp_conn_t *self = *self_p;
    if (!self)
        return;
    qp_zmtp_destroy(&self->z);
    free(self);
    *self_p = NULL;
}

bool qp_conn_in_session(const qp_conn_t *self)
{
    return in_session(self);
}

/* Encodes and sends m once a connection is there, waiting until deadline for one. */
static int send_msg(qp_conn_t *self, const qp_msg_t *m, uint64_t deadline, char *err)
{
    void *buf;
    size_t len;
    int rc = qp_msg_encode(m, &qp_caps_request, &buf, &len);
    if (rc < 0) {
        snprintf(err, QP_ERR_LEN, "cannot encode '%s': %s", qp_msg_type(m), strerror(-rc));
        return rc;
    }
    rc = qp_zmtp_send(self->z, buf, len, deadline);
    free(buf);
    if (rc < 0)
        snprintf(err, QP_ERR_LEN, "cannot reach the arbiter at %.150s (is qarbiter running?)",
                 self->path);
    return rc;
}

/* Receives one message until deadline. Returns 0 with *out set, -ETIMEDOUT, or
 * -ECONNRESET when the connection ended (the session with it). Frames that do not
 * decode are dropped: the arbiter never sends them. */
static int recv_msg(qp_conn_t *self, uint64_t deadline, qp_msg_t **out)
{
    for (;;) {
        void *buf;
        size_t len;
        int rc = qp_zmtp_recv(self->z, deadline, &buf, &len);
        if (rc == -ECONNRESET)
            self->session = false;
        if (rc == -ENOMEM)
            rc = -ETIMEDOUT; /* nothing usable came; the caller sees the time run out */
        if (rc < 0)
            return rc;
        rc = qp_msg_decode(buf, len, &qp_caps_reply, out, NULL);
        free(buf);
        if (rc == 0)
            return 0;
        qp_msg_destroy(out);
    }
}

static bool is_nosession(const qp_msg_t *m)
{
    const char *code;
    return qp_msg_is_error(m) && qp_msg_get_str(m, "code", &code) == 0 &&
           strcmp(code, QP_E_NOSESSION) == 0;
}

/* Handles a message that is not the awaited reply: a push, a stale reply, or word that
 * the session is gone (an error without id answering a message sent without one).
 * Returns true for the latter. */
static bool unsolicited(qp_conn_t *self, qp_msg_t **m)
{
    bool lost = false;
    if (qp_msg_id(*m) == 0) {
        if (is_nosession(*m))
            lost = true;
        else if (self->hooks.push)
            self->hooks.push(self->hooks.arg, *m);
    }
    qp_msg_destroy(m); /* a reply to a request we gave up on is dropped */
    if (lost)
        self->session = false;
    return lost;
}

/* Waits for the reply to id. Returns 0 with *rep set (ok or error), LOST_SESSION,
 * -ETIMEDOUT, or -ECONNRESET (the connection ended first: the request may or may not
 * have been acted on). While a hello is awaited (no session yet) word of a lost session
 * is old news, about a message sent before: it is ignored. */
static int await_reply(qp_conn_t *self, uint64_t id, uint64_t deadline, qp_msg_t **rep)
{
    bool had_session = self->session;
    for (;;) {
        qp_msg_t *m = NULL;
        int rc = recv_msg(self, deadline, &m);
        if (rc < 0)
            return rc;
        if (qp_msg_id(m) != id) {
            if (unsolicited(self, &m) && had_session)
                return LOST_SESSION;
            continue;
        }
        if (is_nosession(m)) {
            self->session = false;
            qp_msg_destroy(&m);
            return LOST_SESSION;
        }
        *rep = m;
        return 0;
    }
}

/* The negative errno of an error reply, with its msg in err. */
static int reply_error(const qp_msg_t *rep, const char *prefix, char *err)
{
    const char *code = NULL, *msg = NULL;
    qp_msg_get_str(rep, "code", &code);
    if (qp_msg_get_str(rep, "msg", &msg) < 0)
        msg = code ? code : "error without a message";
    snprintf(err, QP_ERR_LEN, "%s%s", prefix, msg);
    return qp_code_errno(code);
}

/* Opens a session unless one is open. Returns 0 or as qp_conn_call. */
static int ensure_session(qp_conn_t *self, uint64_t deadline, char *err)
{
    if (in_session(self))
        return 0;
    self->session = false;
    /* Connected first: the hello hook may act on the new session it prepares (a tenant
     * drops its reservation to what it uses), which must not happen while the arbiter
     * is away. */
    if (qp_zmtp_connect(self->z, deadline) < 0) {
        snprintf(err, QP_ERR_LEN, "cannot reach the arbiter at %.150s (is qarbiter running?)",
                 self->path);
        return -ENOTCONN;
    }
    qp_msg_t *hello = self->hooks.hello(self->hooks.arg);
    if (!hello) {
        snprintf(err, QP_ERR_LEN, "cannot build hello: out of memory");
        return -ENOMEM;
    }
    uint64_t id = ++self->next_id;
    int rc = qp_msg_set_uint(hello, "id", id);
    rc = rc ? rc : send_msg(self, hello, deadline, err);
    qp_msg_destroy(&hello);
    if (rc < 0)
        return rc;
    qp_msg_t *rep = NULL;
    rc = await_reply(self, id, deadline, &rep);
    if (rc == -ETIMEDOUT) {
        snprintf(err, QP_ERR_LEN, "the arbiter at %.150s did not answer hello in time",
                 self->path);
        return rc;
    }
    if (rc == -ECONNRESET) {
        snprintf(err, QP_ERR_LEN, "the arbiter at %.150s closed the connection before it "
                 "answered hello", self->path);
        return -ENOTCONN;
    }
    if (rc == LOST_SESSION) {
        snprintf(err, QP_ERR_LEN, "the arbiter refused hello with 'nosession'");
        return -EPROTO;
    }
    if (qp_msg_is_error(rep)) {
        rc = reply_error(rep, "arbiter refused hello: ", err);
        qp_msg_destroy(&rep);
        return rc;
    }
    self->session = true;
    self->session_epoch = qp_zmtp_epoch(self->z);
    if (self->hooks.session)
        self->hooks.session(self->hooks.arg, rep);
    qp_msg_destroy(&rep);
    return 0;
}

int qp_conn_call(qp_conn_t *self, qp_msg_t **req, qp_msg_t **rep, int timeout_ms,
                 char err[QP_ERR_LEN])
{
    qp_msg_t *m = *req;
    *req = NULL;
    *rep = NULL;
    uint64_t deadline = qp_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    int rc = 0;
    /* Two rounds at most: a request that met a lost session goes once more. */
    for (int round = 0; round < 2; round++) {
        rc = ensure_session(self, deadline, err);
        if (rc < 0)
            break;
        uint64_t id = ++self->next_id;
        rc = qp_msg_set_uint(m, "id", id);
        rc = rc ? rc : send_msg(self, m, deadline, err);
        if (rc < 0)
            break;
        rc = await_reply(self, id, deadline, rep);
        if (rc == LOST_SESSION)
            continue;
        if (rc == -ETIMEDOUT)
            snprintf(err, QP_ERR_LEN, "the arbiter did not answer '%s' within %d ms",
                     qp_msg_type(m), timeout_ms);
        else if (rc == -ECONNRESET) /* the arbiter died or restarted: no reply will come */
            snprintf(err, QP_ERR_LEN,
                     "the connection to the arbiter at %.150s closed before it answered '%s' "
                     "(did it restart?)",
                     self->path, qp_msg_type(m));
        else if (qp_msg_is_error(*rep))
            rc = reply_error(*rep, "", err);
        break;
    }
    if (rc == LOST_SESSION) {
        snprintf(err, QP_ERR_LEN, "the arbiter dropped the session twice in a row");
        rc = -ECONNRESET;
    }
    qp_msg_destroy(&m);
    return rc;
}

int qp_conn_send(qp_conn_t *self, qp_msg_t **msg, int timeout_ms, char err[QP_ERR_LEN])
{
    qp_msg_t *m = *msg;
    *msg = NULL;
    uint64_t deadline = qp_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    int rc = ensure_session(self, deadline, err);
    if (rc == 0)
        rc = send_msg(self, m, deadline, err);
    qp_msg_destroy(&m);
    return rc;
}

int qp_conn_open(qp_conn_t *self, int timeout_ms, char err[QP_ERR_LEN])
{
    return ensure_session(self, qp_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0), err);
}

int qp_conn_wait(qp_conn_t *self, int timeout_ms, char err[QP_ERR_LEN])
{
    return qp_conn_wait_fd(self, timeout_ms, -1, err);
}

int qp_conn_wait_fd(qp_conn_t *self, int timeout_ms, int fd, char err[QP_ERR_LEN])
{
    uint64_t deadline = qp_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        int rc = ensure_session(self, deadline, err);
        if (rc < 0)
            return rc;
        bool ready = qp_zmtp_buffered(self->z);
        struct pollfd items[2] = {{qp_zmtp_fd(self->z), POLLIN, 0}, {fd, POLLIN, 0}};
        int n = ready ? 0 : poll(items, fd >= 0 ? 2 : 1, (int)left_ms(deadline));
        if (n < 0 && errno != EINTR)
            return 0;
        if (ready || (n > 0 && items[0].revents)) {
            qp_msg_t *m = NULL;
            if (recv_msg(self, qp_now_ms(), &m) == 0) /* ready: no wait */
                unsolicited(self, &m);
            continue; /* more may be queued: fd is looked at once none is */
        }
        if ((n > 0 && (items[1].revents & POLLIN)) || left_ms(deadline) == 0)
            return 0;
    }
}
