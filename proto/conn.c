/* conn.c - a DEALER connection to the arbiter that keeps its session open by itself.
 * One thread at a time (see conn.h); no global state. */
#include "proto/conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <zmq.h>

struct qp_conn {
    void *zctx;            /* the ZeroMQ context; owned when own_ctx */
    bool own_ctx;          /* zctx was made here and is terminated on destroy */
    void *sock;            /* owned: DEALER connected to endpoint */
    char endpoint[256];    /* "ipc://DIR/admin.sock" */
    qp_conn_hooks_t hooks; /* copied from the caller */
    uint64_t next_id;      /* last request id used; ids start at 1 */
    bool session;          /* a hello succeeded and nothing said the session ended */
    void *mon;             /* owned, tenant connections only: PAIR receiving the DEALER's
                            * "disconnected" events; NULL otherwise */
};

/* Internal results of awaiting a reply: the arbiter no longer knows this peer / the
 * connection the request went out on broke, so no reply will come. */
#define LOST_SESSION 1
#define BROKEN 2

/* How often a tenant connection awaiting a reply looks whether its link broke. A reply
 * that comes sooner costs nothing more than without the look. */
#define LOOK_MS 50

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static long left_ms(uint64_t deadline)
{
    uint64_t now = now_ms();
    return now >= deadline ? 0 : (long)(deadline - now);
}

/* Has the DEALER report its "disconnected" events to self->mon: an arbiter that died
 * (killed, restarted) closes the connection, and the request awaiting its reply will get
 * none, so the caller can ask again at once rather than wait out its deadline. Tenant
 * connections only: their requests are safe to send again in a new session (the hello
 * re-reports what the process holds), an administrator's create is not. */
static int watch_link(qp_conn_t *self)
{
    char name[64];
    int zero = 0;
    snprintf(name, sizeof name, "inproc://qp-conn-link-%p", (void *)self);
    if (zmq_socket_monitor(self->sock, name, ZMQ_EVENT_DISCONNECTED) < 0)
        return -1;
    if (!(self->mon = zmq_socket(self->zctx, ZMQ_PAIR)) ||
        zmq_setsockopt(self->mon, ZMQ_LINGER, &zero, sizeof zero) < 0 ||
        zmq_connect(self->mon, name) < 0) {
        zmq_socket_monitor(self->sock, NULL, 0);
        if (self->mon)
            zmq_close(self->mon);
        self->mon = NULL;
        return -1;
    }
    return 0;
}

/* Reads the monitor's queued events without waiting. Returns whether one said the link
 * broke. */
static bool link_broke(qp_conn_t *self)
{
    bool broke = false;
    for (;;) {
        zmq_msg_t ev;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, self->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return broke;
        }
        uint16_t event = 0;
        if (zmq_msg_size(&ev) >= 2)
            memcpy(&event, zmq_msg_data(&ev), 2);
        broke |= event == ZMQ_EVENT_DISCONNECTED;
        bool more = zmq_msg_more(&ev);
        zmq_msg_close(&ev);
        while (more) { /* the endpoint address frame */
            zmq_msg_init(&ev);
            more = zmq_msg_recv(&ev, self->mon, ZMQ_DONTWAIT) >= 0 && zmq_msg_more(&ev);
            zmq_msg_close(&ev);
        }
    }
}

qp_conn_t *qp_conn_new(void *zctx, const char *socket_dir, qp_endpoint_t ep,
                       const qp_conn_hooks_t *hooks, char err[QP_ERR_LEN])
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
    snprintf(self->endpoint, sizeof self->endpoint, "ipc://%s/%s", socket_dir, file);
    self->hooks = *hooks;
    self->zctx = zctx;
    if (!self->zctx) {
        if (!(self->zctx = zmq_ctx_new()))
            goto fail_ctx;
        self->own_ctx = true;
    }
    if (!(self->sock = zmq_socket(self->zctx, ZMQ_DEALER)))
        goto fail_sock;
    int zero = 0, one = 1, ivl = 50, ivl_max = 500;
    int64_t max = QP_MAX_REPLY_FRAME;
    /* Linger 0: a destroyed connection drops what it could not send. Immediate: send
     * only on a completed connection, so an absent arbiter is seen, not queued for. */
    if (zmq_setsockopt(self->sock, ZMQ_LINGER, &zero, sizeof zero) < 0 ||
        zmq_setsockopt(self->sock, ZMQ_IMMEDIATE, &one, sizeof one) < 0 ||
        zmq_setsockopt(self->sock, ZMQ_MAXMSGSIZE, &max, sizeof max) < 0 ||
        zmq_setsockopt(self->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl) < 0 ||
        zmq_setsockopt(self->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max) < 0 ||
        zmq_connect(self->sock, self->endpoint) < 0)
        goto fail_connect;
    if (ep == QP_TENANT && watch_link(self) < 0)
        goto fail_connect;
    return self;

fail_connect:
    if (self->mon) {
        zmq_socket_monitor(self->sock, NULL, 0);
        zmq_close(self->mon);
    }
    zmq_close(self->sock);
fail_sock:
    if (self->own_ctx)
        zmq_ctx_term(self->zctx);
fail_ctx:
    snprintf(err, QP_ERR_LEN, "cannot connect to %.150s: %s", self->endpoint, zmq_strerror(errno));
    free(self);
    return NULL;
}

void qp_conn_destroy(qp_conn_t **self_p)
{
    qp_conn_t *self = *self_p;
    if (!self)
        return;
    if (self->mon) { /* the monitor stops before either socket closes (see server.c) */
        zmq_socket_monitor(self->sock, NULL, 0);
        link_broke(self);
        zmq_close(self->mon);
    }
    zmq_close(self->sock);
    if (self->own_ctx)
        zmq_ctx_term(self->zctx);
    free(self);
    *self_p = NULL;
}

bool qp_conn_in_session(const qp_conn_t *self)
{
    return self->session;
}

/* Encodes and sends m once a connection is there, waiting until deadline for one.
 * Blocking calls with ZMQ_SNDTIMEO/ZMQ_RCVTIMEO cost fewer system calls than zmq_poll
 * followed by a non-blocking call, and a round trip is mostly system calls. */
static int send_msg(qp_conn_t *self, const qp_msg_t *m, uint64_t deadline, char *err)
{
    void *buf;
    size_t len;
    int rc = qp_msg_encode(m, &qp_caps_request, &buf, &len);
    if (rc < 0) {
        snprintf(err, QP_ERR_LEN, "cannot encode '%s': %s", qp_msg_type(m), strerror(-rc));
        return rc;
    }
    for (;;) {
        int wait = (int)left_ms(deadline);
        zmq_setsockopt(self->sock, ZMQ_SNDTIMEO, &wait, sizeof wait);
        if (zmq_send(self->sock, buf, len, 0) >= 0) {
            free(buf);
            return 0;
        }
        if (errno != EINTR || left_ms(deadline) == 0)
            break;
    }
    free(buf);
    snprintf(err, QP_ERR_LEN, "cannot reach the arbiter at %.150s (is qarbiter running?)",
             self->endpoint + strlen("ipc://"));
    return -ENOTCONN;
}

/* Receives one message until deadline. Returns 0 with *out set, or -ETIMEDOUT. Frames
 * that do not decode are dropped: the arbiter never sends them. */
static int recv_msg(qp_conn_t *self, uint64_t deadline, qp_msg_t **out)
{
    for (;;) {
        int wait = (int)left_ms(deadline);
        zmq_setsockopt(self->sock, ZMQ_RCVTIMEO, &wait, sizeof wait);
        zmq_msg_t frame;
        zmq_msg_init(&frame);
        if (zmq_msg_recv(&frame, self->sock, 0) < 0) {
            zmq_msg_close(&frame);
            if (errno == EINTR && left_ms(deadline) > 0)
                continue;
            return -ETIMEDOUT; /* EAGAIN: the time is up; ETERM: nothing will come */
        }
        bool more = zmq_msg_more(&frame);
        int rc =
            qp_msg_decode(zmq_msg_data(&frame), zmq_msg_size(&frame), &qp_caps_reply, out, NULL);
        zmq_msg_close(&frame);
        while (more) { /* the arbiter sends one frame; drain anything else */
            zmq_msg_init(&frame);
            if (zmq_msg_recv(&frame, self->sock, ZMQ_DONTWAIT) < 0)
                more = false;
            else
                more = zmq_msg_more(&frame);
            zmq_msg_close(&frame);
            rc = -EPROTO;
        }
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
 * BROKEN (a tenant connection whose link broke meanwhile), or -ETIMEDOUT. While a hello
 * is awaited (no session yet) word of a lost session is old news, about a message sent
 * before: it is ignored. */
static int await_reply(qp_conn_t *self, uint64_t id, uint64_t deadline, qp_msg_t **rep)
{
    bool had_session = self->session;
    for (;;) {
        qp_msg_t *m = NULL;
        uint64_t until = deadline;
        if (self->mon && now_ms() + LOOK_MS < deadline)
            until = now_ms() + LOOK_MS;
        int rc = recv_msg(self, until, &m);
        if (rc == -ETIMEDOUT && self->mon && link_broke(self)) {
            self->session = false;
            return BROKEN;
        }
        if (rc == -ETIMEDOUT && until < deadline)
            continue;
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
    if (self->session)
        return 0;
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
                 self->endpoint + strlen("ipc://"));
        return rc;
    }
    if (rc == LOST_SESSION) {
        snprintf(err, QP_ERR_LEN, "the arbiter refused hello with 'nosession'");
        return -EPROTO;
    }
    if (rc == BROKEN) {
        snprintf(err, QP_ERR_LEN, "the connection to the arbiter at %.150s broke during hello",
                 self->endpoint + strlen("ipc://"));
        return -ECONNRESET;
    }
    if (qp_msg_is_error(rep)) {
        rc = reply_error(rep, "arbiter refused hello: ", err);
        qp_msg_destroy(&rep);
        return rc;
    }
    self->session = true;
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
    uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    int rc = 0;
    if (self->mon)
        link_broke(self); /* breaks before this request are no news about it */
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
        if (rc == BROKEN) {
            snprintf(err, QP_ERR_LEN,
                     "the connection to the arbiter broke before it answered '%s' (did it "
                     "restart?)",
                     qp_msg_type(m));
            rc = -ECONNRESET;
        } else if (rc == -ETIMEDOUT)
            snprintf(err, QP_ERR_LEN, "the arbiter did not answer '%s' within %d ms",
                     qp_msg_type(m), timeout_ms);
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
    uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    int rc = ensure_session(self, deadline, err);
    if (rc == 0)
        rc = send_msg(self, m, deadline, err);
    qp_msg_destroy(&m);
    return rc;
}

int qp_conn_open(qp_conn_t *self, int timeout_ms, char err[QP_ERR_LEN])
{
    return ensure_session(self, now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0), err);
}

int qp_conn_wait(qp_conn_t *self, int timeout_ms, char err[QP_ERR_LEN])
{
    return qp_conn_wait_fd(self, timeout_ms, -1, err);
}

int qp_conn_wait_fd(qp_conn_t *self, int timeout_ms, int fd, char err[QP_ERR_LEN])
{
    uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        int rc = ensure_session(self, deadline, err);
        if (rc < 0)
            return rc;
        zmq_pollitem_t items[2] = {{self->sock, 0, ZMQ_POLLIN, 0}, {NULL, fd, ZMQ_POLLIN, 0}};
        int n = zmq_poll(items, fd >= 0 ? 2 : 1, left_ms(deadline));
        if (n < 0 && errno != EINTR)
            return 0; /* ETERM: nothing will come */
        if (n > 0 && (items[0].revents & ZMQ_POLLIN)) {
            qp_msg_t *m = NULL;
            if (recv_msg(self, now_ms(), &m) == 0) /* ready: no wait */
                unsolicited(self, &m);
            continue; /* more may be queued: fd is looked at once none is */
        }
        if ((n > 0 && (items[1].revents & ZMQ_POLLIN)) || left_ms(deadline) == 0)
            return 0;
    }
}
