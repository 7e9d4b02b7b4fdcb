/* zmtp.c - a ZMTP 3.0 DEALER over a Unix stream socket (see zmtp.h). One thread at a
 * time; no global state. */
#include "proto/zmtp.h"

#include "proto/frame.h"
#include "proto/sockpath.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define GREETING_LEN QP_FRAME_GREETING
#define RETRY_MS 50 /* between connection attempts, as libzmq's reconnect interval */
#define FLAG_MORE QP_FRAME_MORE
#define FLAG_COMMAND QP_FRAME_COMMAND
#define MAX_COMMAND 4096     /* the handshake's READY is a few dozen bytes */
#define SOCKET_TYPE "DEALER" /* ours; the arbiter's is ROUTER */

struct qp_zmtp {
    struct sockaddr_un addr; /* the path */
    size_t max_frame;        /* incoming frames over this close the connection */
    int fd;                  /* owned: the connection, -1 without one */
    uint64_t epoch;          /* connections made */
    unsigned char *rbuf;     /* owned: bytes received and not yet consumed */
    size_t rpos, rlen, rcap; /* consumed offset, bytes present, capacity */
    bool dropping;           /* the rest of a multi-frame message is being dropped */
};

qp_zmtp_t *qp_zmtp_new(const char *path, size_t max_frame)
{
    qp_zmtp_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    if (qp_sockpath_fill(&self->addr, path) < 0) {
        free(self);
        return NULL;
    }
    self->max_frame = max_frame;
    self->fd = -1;
    return self;
}

static void disconnect(qp_zmtp_t *self)
{
    if (self->fd >= 0)
        close(self->fd);
    self->fd = -1;
    self->rpos = self->rlen = 0;
    self->dropping = false;
}

void qp_zmtp_destroy(qp_zmtp_t **self_p)
{
    qp_zmtp_t *self = *self_p;
    if (!self)
        return;
    disconnect(self);
    free(self->rbuf);
    free(self);
    *self_p = NULL;
}

int qp_zmtp_fd(const qp_zmtp_t *self)
{
    return self->fd;
}

uint64_t qp_zmtp_epoch(const qp_zmtp_t *self)
{
    return self->epoch;
}

static int left_ms(uint64_t deadline)
{
    uint64_t now = qp_now_ms();
    return now >= deadline ? 0 : (int)(deadline - now > 60000 ? 60000 : deadline - now);
}

/* Waits until fd is ready for events or deadline. Returns 1 ready, 0 time up. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
    for (;;) {
        struct pollfd p = {fd, events, 0};
        int n = poll(&p, 1, left_ms(deadline));
        if (n > 0)
            return 1;
        if (n == 0 && left_ms(deadline) == 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return 0;
    }
}

/* Writes all of iov (n entries, modified) until deadline. Returns 0 or -ENOTCONN. */
static int write_all(int fd, struct iovec *iov, int n, uint64_t deadline)
{
    while (n > 0) {
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if ((errno == EAGAIN || errno == EWOULDBLOCK) && wait_fd(fd, POLLOUT, deadline))
                continue;
            return -ENOTCONN;
        }
        size_t done = (size_t)w;
        while (n > 0 && done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + done;
            iov->iov_len -= done;
        }
    }
    return 0;
}

/* Reads what the connection has into rbuf, waiting until deadline for at least one
 * byte. Returns 1 read some, 0 time up, -ECONNRESET the connection ended. */
static int fill(qp_zmtp_t *self, uint64_t deadline)
{
    if (self->rpos == self->rlen)
        self->rpos = self->rlen = 0;
    if (self->rcap - self->rlen < 4096) {
        if (self->rpos > 0) { /* slide the unconsumed bytes down first */
            memmove(self->rbuf, self->rbuf + self->rpos, self->rlen - self->rpos);
            self->rlen -= self->rpos;
            self->rpos = 0;
        }
        if (self->rcap - self->rlen < 4096) {
            size_t cap = self->rcap ? self->rcap * 2 : 16384;
            unsigned char *p = realloc(self->rbuf, cap);
            if (!p)
                return -ENOMEM;
            self->rbuf = p;
            self->rcap = cap;
        }
    }
    for (;;) {
        ssize_t r = recv(self->fd, self->rbuf + self->rlen, self->rcap - self->rlen, MSG_DONTWAIT);
        if (r > 0) {
            self->rlen += (size_t)r;
            return 1;
        }
        if (r == 0)
            return -ECONNRESET;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -ECONNRESET;
        if (!wait_fd(self->fd, POLLIN, deadline))
            return 0;
    }
}

/* Looks at the frame at rpos: 1 when it is all in rbuf (*hdr and *n its header and body
 * sizes), 0 when more bytes are needed, -EPROTO for a body over max (the peer breaks the
 * protocol or our limit). */
static int peek_frame(const qp_zmtp_t *self, size_t max, size_t *hdr, size_t *n)
{
    size_t have = self->rlen - self->rpos;
    uint8_t flags;
    uint64_t len;
    if (!(*hdr = qp_frame_parse(self->rbuf + self->rpos, have, &flags, &len)))
        return 0;
    if (len > max)
        return -EPROTO;
    *n = (size_t)len;
    return have - *hdr >= len ? 1 : 0;
}

bool qp_zmtp_buffered(const qp_zmtp_t *self)
{
    size_t hdr, n;
    return self->fd >= 0 && peek_frame(self, self->max_frame, &hdr, &n) != 0;
}

/* Takes the frame at rpos if it is all in rbuf. Returns 1 with its flags, body and size
 * (the body borrowed from rbuf until the next fill; rpos moved past it), or as
 * peek_frame. */
static int next_frame(qp_zmtp_t *self, size_t max, int *flags, const unsigned char **body,
                      size_t *size)
{
    size_t hdr, n;
    int rc = peek_frame(self, max, &hdr, &n);
    if (rc <= 0)
        return rc;
    *flags = self->rbuf[self->rpos];
    *body = self->rbuf + self->rpos + hdr;
    *size = n;
    self->rpos += hdr + n;
    return 1;
}

/* Our greeting and READY, as one buffer: version 3.0, mechanism NULL, as client, then a
 * short command frame READY with Socket-Type=DEALER. */
static size_t hello_bytes(unsigned char out[128])
{
    uint8_t ready[64];
    size_t n = qp_frame_ready(ready, sizeof ready, SOCKET_TYPE);
    qp_frame_greeting(out, 0);
    size_t h = qp_frame_header(out + GREETING_LEN, FLAG_COMMAND, n);
    memcpy(out + GREETING_LEN + h, ready, n);
    return GREETING_LEN + h + n;
}

/* Completes the handshake on a fresh connection until deadline: sends ours, then checks
 * the peer's greeting (ZMTP 3.x, NULL) and its READY (a ROUTER). Returns 0 or -ENOTCONN. */
static int handshake(qp_zmtp_t *self, uint64_t deadline)
{
    unsigned char ours[128];
    struct iovec iov = {ours, hello_bytes(ours)};
    if (write_all(self->fd, &iov, 1, deadline) < 0)
        return -ENOTCONN;
    while (self->rlen - self->rpos < GREETING_LEN) {
        if (fill(self, deadline) <= 0)
            return -ENOTCONN;
    }
    char why[QP_ERR_LEN];
    if (qp_frame_check_greeting(self->rbuf + self->rpos, GREETING_LEN, why) < 0)
        return -ENOTCONN;
    self->rpos += GREETING_LEN;
    for (;;) {
        int flags;
        const unsigned char *body;
        size_t size;
        int rc = next_frame(self, MAX_COMMAND, &flags, &body, &size);
        if (rc < 0)
            return -ENOTCONN;
        if (rc == 0) {
            if (fill(self, deadline) <= 0)
                return -ENOTCONN;
            continue;
        }
        /* The first thing after the greeting must be READY (an ERROR says why not). */
        if (!(flags & FLAG_COMMAND) || size < 6 || body[0] != 5 || memcmp(body + 1, "READY", 5))
            return -ENOTCONN;
        size_t vlen;
        const uint8_t *type;
        if (qp_frame_property(body + 6, size - 6, "Socket-Type", &type, &vlen) != 1 ||
            vlen != 6 || memcmp(type, "ROUTER", 6) != 0)
            return -ENOTCONN;
        return 0;
    }
}

/* Closes the connection if the peer has closed it: an end of stream waiting to be read,
 * found here rather than by a lost frame. Bytes waiting are left for qp_zmtp_recv. */
static void forget_if_closed(qp_zmtp_t *self)
{
    if (self->fd >= 0 && self->rpos == self->rlen) {
        struct pollfd p = {self->fd, POLLIN, 0};
        char c;
        if (poll(&p, 1, 0) == 1 && ((p.revents & (POLLHUP | POLLERR)) ||
                                    recv(self->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0))
            disconnect(self);
    }
}

int qp_zmtp_connect(qp_zmtp_t *self, uint64_t deadline)
{
    forget_if_closed(self);
    while (self->fd < 0) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            return -ENOTCONN;
        int rc = connect(fd, (struct sockaddr *)&self->addr, sizeof self->addr);
        if (rc < 0 && errno == EINPROGRESS)
            rc = wait_fd(fd, POLLOUT, deadline) ? 0 : -1;
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0) {
            self->fd = fd;
            self->epoch++;
            if (handshake(self, deadline) == 0)
                return 0;
            disconnect(self);
        } else {
            close(fd);
        }
        int wait = left_ms(deadline);
        if (wait == 0)
            return -ENOTCONN;
        struct timespec ts = {0, (long)(wait < RETRY_MS ? wait : RETRY_MS) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}

int qp_zmtp_send(qp_zmtp_t *self, const void *buf, size_t len, uint64_t deadline_ms)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (qp_zmtp_connect(self, deadline_ms) < 0)
            return -ENOTCONN;
        uint8_t hdr[QP_FRAME_HEADER_MAX];
        size_t hl = qp_frame_header(hdr, 0, len);
        struct iovec iov[2] = {{hdr, hl}, {(void *)buf, len}};
        if (write_all(self->fd, iov, 2, deadline_ms) == 0)
            return 0;
        /* Broken under our feet (the arbiter restarted): once more on a new connection. */
        disconnect(self);
    }
    return -ENOTCONN;
}

int qp_zmtp_recv(qp_zmtp_t *self, uint64_t deadline_ms, void **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    for (;;) {
        if (self->fd < 0) {
            int wait = left_ms(deadline_ms);
            if (wait > 0) {
                struct timespec ts = {wait / 1000, (long)(wait % 1000) * 1000000L};
                nanosleep(&ts, NULL);
            }
            return -ETIMEDOUT;
        }
        int flags;
        const unsigned char *body;
        size_t size;
        int rc = next_frame(self, self->max_frame, &flags, &body, &size);
        if (rc < 0) {
            disconnect(self);
            return -ECONNRESET;
        }
        if (rc == 0) {
            rc = fill(self, deadline_ms);
            if (rc == 0)
                return -ETIMEDOUT;
            if (rc == -ENOMEM)
                return rc;
            if (rc < 0) {
                disconnect(self);
                return -ECONNRESET;
            }
            continue;
        }
        if (flags & FLAG_COMMAND)
            continue; /* nothing after the handshake concerns a NULL DEALER */
        bool more = flags & FLAG_MORE, drop = self->dropping || more;
        self->dropping = more;
        if (drop)
            continue;
        if (!(*buf = malloc(size ? size : 1)))
            return -ENOMEM;
        memcpy(*buf, body, size);
        *len = size;
        return 0;
    }
}
