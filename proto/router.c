/* router.c - the server side of ZMTP 3.x with the NULL mechanism, for DEALER peers, as a
 * byte codec. One thread at a time (see router.h); no global state. */
#include "proto/router.h"

#include "proto/frame.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GREETING QP_FRAME_GREETING
#define IN_MIN 1024     /* the least an input buffer is made: a read takes several frames */
#define IN_KEEP 16384   /* an emptied input buffer larger than this is freed */
#define OUT_KEEP 65536  /* an emptied output buffer larger than this is freed */
#define PING_CONTEXT 16 /* bytes of context a PING may carry (37/ZMTP) */

#define F_MORE QP_FRAME_MORE
#define F_LONG QP_FRAME_LONG
#define F_COMMAND QP_FRAME_COMMAND

enum state {
    S_GREETING,  /* reading the peer's 64-byte greeting */
    S_HANDSHAKE, /* reading its READY */
    S_TRAFFIC,   /* messages and PING/PONG */
    S_BROKEN,    /* the peer broke the protocol: err holds why */
};

struct qp_router {
    enum state state;
    size_t max_frame;     /* a frame body over this is refused */
    size_t max_out;       /* output never waits beyond this */
    uint8_t *in;          /* owned: bytes read; those not consumed yet start at in_pos */
    size_t in_pos;        /* first byte not consumed */
    size_t in_len;        /* bytes held */
    size_t in_cap;        /* bytes allocated */
    size_t need;          /* bytes from in_pos the unit being read needs in all */
    uint64_t skip;        /* body bytes of a dropped frame still to read past */
    bool dropping;        /* the frames of a message of several are being read past */
    bool last_dropped;    /* the frame being read past is that message's last */
    uint8_t *out;         /* owned: bytes to write, from out_pos to out_len */
    size_t out_pos;       /* first byte not written */
    size_t out_len;       /* bytes held */
    size_t out_cap;       /* bytes allocated */
    int error;            /* S_BROKEN: the negative errno */
    char why[QP_ERR_LEN]; /* S_BROKEN: one line */
};

/* ---- output ------------------------------------------------------------------------ */

/* Makes room for n more bytes of output. Returns 0, -ENOBUFS (over max_out) or -ENOMEM. */
static int out_reserve(qp_router_t *self, size_t n)
{
    size_t waiting = self->out_len - self->out_pos;
    if (n > self->max_out || waiting > self->max_out - n)
        return -ENOBUFS;
    if (self->out_pos && self->out_len + n > self->out_cap) {
        memmove(self->out, self->out + self->out_pos, waiting);
        self->out_len = waiting;
        self->out_pos = 0;
    }
    if (self->out_len + n <= self->out_cap)
        return 0;
    size_t cap = self->out_cap ? self->out_cap : 256;
    while (cap < self->out_len + n)
        cap *= 2;
    uint8_t *b = realloc(self->out, cap);
    if (!b)
        return -ENOMEM;
    self->out = b;
    self->out_cap = cap;
    return 0;
}

/* Queues one frame of flags with body. */
static int put_frame(qp_router_t *self, uint8_t flags, const void *body, size_t len)
{
    uint8_t hdr[QP_FRAME_HEADER_MAX];
    size_t header = qp_frame_header(hdr, flags, len);
    int rc = out_reserve(self, header + len);
    if (rc < 0)
        return rc;
    memcpy(self->out + self->out_len, hdr, header);
    memcpy(self->out + self->out_len + header, body, len);
    self->out_len += header + len;
    return 0;
}

int qp_router_send(qp_router_t *self, const void *body, size_t len)
{
    return put_frame(self, 0, body, len);
}

const uint8_t *qp_router_out(const qp_router_t *self, size_t *n)
{
    *n = self->out_len - self->out_pos;
    return self->out + self->out_pos;
}

void qp_router_out_done(qp_router_t *self, size_t n)
{
    self->out_pos += n;
    if (self->out_pos < self->out_len)
        return;
    self->out_pos = self->out_len = 0;
    if (self->out_cap > OUT_KEEP) { /* one big reply must not pin its memory for good */
        free(self->out);
        self->out = NULL;
        self->out_cap = 0;
    }
}

/* ---- lifetime ---------------------------------------------------------------------- */

qp_router_t *qp_router_new(size_t max_frame, size_t max_out)
{
    /* Our greeting (3.1, NULL, not as-server) and READY (Socket-Type ROUTER) go at once:
     * the peer waits for our signature before it sends its version, and the NULL
     * mechanism lets each side send READY as soon as the greetings are out. */
    uint8_t ready[64];
    size_t ready_len = qp_frame_ready(ready, sizeof ready, "ROUTER");
    qp_router_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->max_frame = max_frame;
    self->max_out = max_out > 4096 ? max_out : 4096;
    self->need = GREETING;
    if (out_reserve(self, GREETING) < 0) {
        free(self);
        return NULL;
    }
    qp_frame_greeting(self->out, 1);
    self->out_len = GREETING;
    if (put_frame(self, F_COMMAND, ready, ready_len) < 0) {
        qp_router_destroy(&self);
        return NULL;
    }
    return self;
}

void qp_router_destroy(qp_router_t **self_p)
{
    qp_router_t *self = *self_p;
    if (!self)
        return;
    free(self->in);
    free(self->out);
    free(self);
    *self_p = NULL;
}

void qp_router_set_max_frame(qp_router_t *self, size_t max_frame)
{
    self->max_frame = max_frame;
}

bool qp_router_ready(const qp_router_t *self)
{
    return self->state == S_TRAFFIC;
}

/* ---- input ------------------------------------------------------------------------- */

uint8_t *qp_router_in_space(qp_router_t *self, size_t *n)
{
    size_t held = self->in_len - self->in_pos;
    if (self->in_pos) {
        memmove(self->in, self->in + self->in_pos, held);
        self->in_len = held;
        self->in_pos = 0;
    }
    if (!held && self->in_cap > IN_KEEP) {
        free(self->in);
        self->in = NULL;
        self->in_cap = 0;
    }
    /* need is bounded by the frame cap (checked before it is set) plus a header */
    size_t want = self->need > IN_MIN ? self->need : IN_MIN;
    if (self->in_cap < want || self->in_cap == held) {
        size_t cap = want > held + IN_MIN ? want : held + IN_MIN;
        uint8_t *b = realloc(self->in, cap);
        if (!b)
            return NULL;
        self->in = b;
        self->in_cap = cap;
    }
    *n = self->in_cap - self->in_len;
    return self->in + self->in_len;
}

void qp_router_in_commit(qp_router_t *self, size_t n)
{
    self->in_len += n;
}

static int broken(qp_router_t *self, int error, char *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int broken(qp_router_t *self, int error, char *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->why, sizeof self->why, fmt, ap);
    va_end(ap);
    self->state = S_BROKEN;
    self->error = error;
    snprintf(err, QP_ERR_LEN, "%s", self->why);
    return error;
}

/* Reads READY's properties: Socket-Type must be DEALER; others (Identity included) are
 * read past. */
static int check_ready(qp_router_t *self, const uint8_t *p, size_t n, char *err)
{
    const uint8_t *type;
    size_t len;
    int rc = qp_frame_property(p, n, "Socket-Type", &type, &len);
    char text[40];
    if (rc < 0)
        return broken(self, -EPROTO, err, "malformed READY command");
    if (rc == 0)
        return broken(self, -EPROTO, err, "READY without a Socket-Type");
    if (len != 6 || memcmp(type, "DEALER", 6) != 0)
        return broken(self, -EPROTO, err, "a '%s' socket connected: only DEALER sockets are served",
                      qp_printable(text, sizeof text, type, len));
    return 0;
}

/* Handles a command frame of n bytes at p. */
static int command(qp_router_t *self, const uint8_t *p, size_t n, char *err)
{
    size_t name_len = n ? p[0] : 0;
    if (name_len == 0 || name_len > n - 1)
        return broken(self, -EPROTO, err, "malformed command frame");
    const char *name = (const char *)p + 1;
    const uint8_t *data = p + 1 + name_len;
    size_t data_len = n - 1 - name_len;
    bool is_ready = name_len == 5 && memcmp(name, "READY", 5) == 0;
    char text[40];
    if (self->state == S_HANDSHAKE) {
        if (!is_ready)
            return broken(self, -EPROTO, err, "'%s' before READY",
                          qp_printable(text, sizeof text, name, name_len));
        int rc = check_ready(self, data, data_len, err);
        if (rc == 0)
            self->state = S_TRAFFIC;
        return rc;
    }
    if (name_len == 4 && memcmp(name, "PING", 4) == 0) {
        /* 2 bytes of TTL, then a context the PONG echoes */
        if (data_len < 2 || data_len - 2 > PING_CONTEXT)
            return broken(self, -EPROTO, err, "malformed PING command");
        uint8_t pong[5 + PING_CONTEXT] = {4, 'P', 'O', 'N', 'G'};
        memcpy(pong + 5, data + 2, data_len - 2);
        put_frame(self, F_COMMAND, pong, 5 + data_len - 2); /* a peer that never reads misses it */
        return 0;
    }
    if (name_len == 4 && memcmp(name, "PONG", 4) == 0)
        return 0;
    if (name_len == 5 && memcmp(name, "ERROR", 5) == 0) {
        size_t reason = data_len ? data[0] : 0;
        if (reason > data_len - (data_len ? 1 : 0))
            reason = 0;
        return broken(self, -EPROTO, err, "the peer sent ERROR '%s'",
                      qp_printable(text, sizeof text, data + (data_len ? 1 : 0), reason));
    }
    return broken(self, -EPROTO, err, "unexpected command '%s'",
                  qp_printable(text, sizeof text, name, name_len));
}

int qp_router_next(qp_router_t *self, const void **body, size_t *len, char err[QP_ERR_LEN])
{
    for (;;) {
        if (self->state == S_BROKEN) {
            snprintf(err, QP_ERR_LEN, "%s", self->why);
            return self->error;
        }
        const uint8_t *p = self->in + self->in_pos;
        size_t have = self->in_len - self->in_pos;
        if (self->skip) {
            size_t n = have < self->skip ? have : (size_t)self->skip;
            self->in_pos += n;
            self->skip -= n;
            if (self->skip)
                return QP_ROUTER_NONE;
            if (self->last_dropped) {
                self->dropping = self->last_dropped = false;
                return QP_ROUTER_MULTIPART;
            }
            continue;
        }
        if (self->state == S_GREETING) {
            self->need = GREETING;
            char why[QP_ERR_LEN];
            if (qp_frame_check_greeting(p, have, why) < 0)
                return broken(self, -EPROTO, err, "%s", why);
            if (have < GREETING)
                return QP_ROUTER_NONE;
            self->in_pos += GREETING;
            self->state = S_HANDSHAKE;
            continue;
        }
        self->need = 2;
        if (have < 1)
            return QP_ROUTER_NONE;
        if (p[0] & ~(F_MORE | F_LONG | F_COMMAND))
            return broken(self, -EPROTO, err, "frame flags 0x%02x are not ZMTP 3", p[0]);
        uint8_t flags;
        uint64_t size;
        size_t header = qp_frame_parse(p, have, &flags, &size);
        self->need = p[0] & F_LONG ? 9 : 2;
        if (!header)
            return QP_ROUTER_NONE;
        if (size > self->max_frame)
            return broken(self, -EMSGSIZE, err, "a frame of %llu bytes is over the %zu-byte limit",
                          (unsigned long long)size, self->max_frame);
        bool is_command = flags & F_COMMAND;
        if (is_command && (flags & F_MORE))
            return broken(self, -EPROTO, err, "a command frame with the MORE flag");
        if (!is_command && self->state == S_HANDSHAKE)
            return broken(self, -EPROTO, err, "a message before READY");
        if (!is_command && ((flags & F_MORE) || self->dropping)) {
            /* part of a message of several frames: read past it, never buffer it */
            self->in_pos += header;
            self->skip = size;
            self->dropping = true;
            self->last_dropped = !(flags & F_MORE);
            if (!size && self->last_dropped) {
                self->dropping = self->last_dropped = false;
                return QP_ROUTER_MULTIPART;
            }
            continue;
        }
        self->need = header + (size_t)size;
        if (have < self->need)
            return QP_ROUTER_NONE;
        self->in_pos += self->need;
        self->need = 2;
        if (is_command) {
            int rc = command(self, p + header, (size_t)size, err);
            if (rc < 0)
                return rc;
            continue;
        }
        *body = p + header;
        *len = (size_t)size;
        return QP_ROUTER_MESSAGE;
    }
}
