/* test_proto_router.c - the arbiter's ZMTP codec: a real libzmq DEALER talks to it over a
 * Unix socket (its routing id, if it chose one, changes nothing), and byte-level peers
 * show what it refuses: other socket types, other mechanisms, old ZMTP, frames over the
 * cap, junk; fragmented input decodes the same; messages of several frames are read
 * past; a peer that does not read costs a bounded output. */
#include "proto/router.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

/* ---- byte-level peers -------------------------------------------------------------- */

struct bytes {
    uint8_t b[4096];
    size_t n;
};

static void put(struct bytes *x, const void *p, size_t n)
{
    cr_assert_leq(x->n + n, sizeof x->b);
    memcpy(x->b + x->n, p, n);
    x->n += n;
}

/* A client greeting: ZMTP major.minor with mechanism mech. */
static void greeting(struct bytes *x, uint8_t major, uint8_t minor, const char *mech)
{
    uint8_t g[64] = {0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, major, minor};
    memcpy(g + 12, mech, strlen(mech));
    put(x, g, sizeof g);
}

static void frame(struct bytes *x, uint8_t flags, const void *body, size_t len)
{
    if (len > 255) {
        uint8_t h[9] = {flags | 0x02};
        for (int i = 0; i < 8; i++)
            h[1 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        put(x, h, 9);
    } else {
        uint8_t h[2] = {flags, (uint8_t)len};
        put(x, h, 2);
    }
    put(x, body, len);
}

/* READY with Socket-Type type and, when id is not NULL, an Identity. */
static void ready(struct bytes *x, const char *type, const char *id)
{
    struct bytes c = {.n = 0};
    put(&c, "\x05READY\x0bSocket-Type", 18);
    uint8_t len[4] = {0, 0, 0, (uint8_t)strlen(type)};
    put(&c, len, 4);
    put(&c, type, strlen(type));
    if (id) {
        put(&c, "\x08Identity", 9);
        uint8_t l2[4] = {0, 0, 0, (uint8_t)strlen(id)};
        put(&c, l2, 4);
        put(&c, id, strlen(id));
    }
    frame(x, 0x04, c.b, c.n);
}

/* Feeds x to z in pieces of at most step bytes, collecting every event. Returns the
 * first error, or 0; msgs receives the bodies of messages, one per line. */
static int feed(qp_router_t *z, const struct bytes *x, size_t step, char *msgs, size_t cap,
                int *multipart, char *err)
{
    size_t at = 0;
    msgs[0] = '\0';
    while (at < x->n) {
        size_t room;
        uint8_t *space = qp_router_in_space(z, &room);
        cr_assert_not_null(space);
        cr_assert_gt(room, 0);
        size_t n = x->n - at < step ? x->n - at : step;
        n = n < room ? n : room;
        memcpy(space, x->b + at, n);
        qp_router_in_commit(z, n);
        at += n;
        for (;;) {
            const void *body;
            size_t len;
            int ev = qp_router_next(z, &body, &len, err);
            if (ev < 0)
                return ev;
            if (ev == QP_ROUTER_NONE)
                break;
            if (ev == QP_ROUTER_MULTIPART) {
                (*multipart)++;
                continue;
            }
            size_t used = strlen(msgs);
            cr_assert_lt(used + len + 2, cap);
            memcpy(msgs + used, body, len);
            msgs[used + len] = '\n';
            msgs[used + len + 1] = '\0';
        }
    }
    return 0;
}

Test(qp_router, a_dealer_greeting_and_ready_then_messages_decode_in_any_fragmentation)
{
    struct bytes x = {.n = 0};
    greeting(&x, 3, 1, "NULL");
    ready(&x, "DEALER", "squatter");
    frame(&x, 0, "hello", 5);
    char big[1000];
    memset(big, 'b', sizeof big);
    frame(&x, 0, big, sizeof big);
    frame(&x, 0x04, "\x04PING\x00\x0a" "ctx", 10);
    frame(&x, 0, "bye", 3);
    size_t steps[] = {1, 7, 64, 4096};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        qp_router_t *z = qp_router_new(4096, 65536);
        char msgs[2048], err[QP_ERR_LEN];
        int multi = 0;
        cr_assert_eq(feed(z, &x, steps[i], msgs, sizeof msgs, &multi, err), 0, "%s", err);
        cr_assert(qp_router_ready(z));
        cr_assert_eq(strncmp(msgs, "hello\n", 6), 0, "step %zu: %s", steps[i], msgs);
        cr_assert_eq(strlen(msgs), 6 + 1001 + 4);
        cr_assert_str_eq(msgs + 6 + 1001, "bye\n");
        /* what goes out: greeting, READY (ROUTER), then the PONG with the PING's context */
        size_t n;
        const uint8_t *out = qp_router_out(z, &n);
        cr_assert_geq(n, 64 + 2 + 28 + 2 + 8);
        cr_assert_eq(out[0], 0xff);
        cr_assert_eq(out[9], 0x7f);
        cr_assert_eq(out[10], 3);
        cr_assert_eq(memcmp(out + 12, "NULL", 5), 0);
        cr_assert_eq(out[64], 0x04, "READY is a command");
        cr_assert(memmem(out + 66, out[65], "ROUTER", 6), "READY says ROUTER");
        const uint8_t *pong = out + 66 + out[65];
        cr_assert_eq(pong[0], 0x04);
        cr_assert_eq(pong[1], 8);
        cr_assert_eq(memcmp(pong + 2, "\x04PONGctx", 8), 0);
        qp_router_out_done(z, n);
        qp_router_out(z, &n);
        cr_assert_eq(n, 0);
        qp_router_destroy(&z);
        cr_assert_null(z);
    }
}

/* The error a greeting/READY makes, or 0. */
static int first_error(const struct bytes *x, char *err)
{
    qp_router_t *z = qp_router_new(4096, 65536);
    char msgs[1024];
    int multi = 0;
    int rc = feed(z, x, 4096, msgs, sizeof msgs, &multi, err);
    qp_router_destroy(&z);
    return rc;
}

Test(qp_router, refuses_other_sockets_mechanisms_versions_and_junk_with_a_reason)
{
    char err[QP_ERR_LEN];
    struct bytes x = {.n = 0};
    put(&x, "GET / HTTP/1.0\r\n\r\n", 18);
    cr_assert_eq(first_error(&x, err), -EPROTO);
    cr_assert(strstr(err, "not ZMTP (first byte 0x47)"), "%s", err);

    x.n = 0;
    greeting(&x, 1, 0, "");
    cr_assert_eq(first_error(&x, err), -EPROTO);
    cr_assert(strstr(err, "ZMTP 1 is too old"), "%s", err);

    x.n = 0;
    greeting(&x, 3, 0, "CURVE");
    cr_assert_eq(first_error(&x, err), -EPROTO);
    cr_assert(strstr(err, "'CURVE' is not served"), "%s", err);

    const char *types[] = {"ROUTER", "REQ", "SUB", "DEAL\nER"};
    for (size_t i = 0; i < 4; i++) {
        x.n = 0;
        greeting(&x, 3, 1, "NULL");
        ready(&x, types[i], NULL);
        cr_assert_eq(first_error(&x, err), -EPROTO, "%s", types[i]);
        cr_assert(strstr(err, "only DEALER sockets are served"), "%s", err);
        cr_assert_null(strchr(err, '\n'), "what a peer sent never breaks a log line");
    }

    x.n = 0;
    greeting(&x, 3, 1, "NULL");
    frame(&x, 0, "early", 5);
    cr_assert_eq(first_error(&x, err), -EPROTO);
    cr_assert(strstr(err, "before READY"), "%s", err);

    x.n = 0;
    greeting(&x, 3, 1, "NULL");
    ready(&x, "DEALER", NULL);
    frame(&x, 0x04, "\x09SUBSCRIBE", 10);
    cr_assert_eq(first_error(&x, err), -EPROTO);
    cr_assert(strstr(err, "unexpected command 'SUBSCRIBE'"), "%s", err);

    x.n = 0;
    greeting(&x, 3, 1, "NULL");
    ready(&x, "DEALER", NULL);
    uint8_t bad[2] = {0x80, 0};
    put(&x, bad, 2);
    cr_assert_eq(first_error(&x, err), -EPROTO);
    cr_assert(strstr(err, "flags 0x80"), "%s", err);
}

Test(qp_router, a_frame_over_the_cap_is_refused_before_it_is_buffered)
{
    struct bytes x = {.n = 0};
    greeting(&x, 3, 1, "NULL");
    ready(&x, "DEALER", NULL);
    uint8_t h[9] = {0x02, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}; /* 2^63 bytes */
    put(&x, h, 9);
    char err[QP_ERR_LEN];
    cr_assert_eq(first_error(&x, err), -EMSGSIZE);
    cr_assert(strstr(err, "over the 4096-byte limit"), "%s", err);
    /* the cap can grow for a session: the same frame size that was too big now fits */
    qp_router_t *z = qp_router_new(100, 65536);
    x.n = 0;
    greeting(&x, 3, 1, "NULL");
    ready(&x, "DEALER", NULL);
    char body[300];
    memset(body, 'x', sizeof body);
    frame(&x, 0, body, sizeof body);
    char msgs[1024];
    int multi = 0;
    qp_router_set_max_frame(z, 300);
    cr_assert_eq(feed(z, &x, 4096, msgs, sizeof msgs, &multi, err), 0, "%s", err);
    cr_assert_eq(strlen(msgs), 301);
    /* after an error every call says it again */
    qp_router_set_max_frame(z, 10);
    x.n = 0;
    frame(&x, 0, body, 20);
    cr_assert_eq(feed(z, &x, 4096, msgs, sizeof msgs, &multi, err), -EMSGSIZE);
    const void *b;
    size_t len;
    cr_assert_eq(qp_router_next(z, &b, &len, err), -EMSGSIZE);
    qp_router_destroy(&z);
}

Test(qp_router, a_message_of_several_frames_is_read_past_whole_without_buffering_it)
{
    struct bytes x = {.n = 0};
    greeting(&x, 3, 1, "NULL");
    ready(&x, "DEALER", NULL);
    char body[3000];
    memset(body, 'p', sizeof body);
    frame(&x, 0x01, "a", 1);
    frame(&x, 0x01, body, sizeof body); /* over the cap of one frame? no: 3000 < 4096 */
    frame(&x, 0x00, "", 0);
    frame(&x, 0, "next", 4);
    qp_router_t *z = qp_router_new(4096, 65536);
    char msgs[1024], err[QP_ERR_LEN];
    int multi = 0;
    cr_assert_eq(feed(z, &x, 5, msgs, sizeof msgs, &multi, err), 0, "%s", err);
    cr_assert_eq(multi, 1);
    cr_assert_str_eq(msgs, "next\n");
    qp_router_destroy(&z);
}

Test(qp_router, output_a_peer_leaves_unread_is_bounded_and_whole_messages_drop)
{
    qp_router_t *z = qp_router_new(4096, 8192);
    size_t n;
    qp_router_out(z, &n);
    qp_router_out_done(z, n); /* the greeting went */
    char body[3000] = {0};
    cr_assert_eq(qp_router_send(z, body, sizeof body), 0);
    cr_assert_eq(qp_router_send(z, body, sizeof body), 0);
    cr_assert_eq(qp_router_send(z, body, sizeof body), -ENOBUFS);
    qp_router_out(z, &n);
    cr_assert_eq(n, 2 * (9 + sizeof body), "two whole frames wait, the third was dropped");
    qp_router_out_done(z, 100);
    qp_router_out(z, &n);
    cr_assert_eq(n, 2 * (9 + sizeof body) - 100);
    qp_router_destroy(&z);
}

/* ---- a real libzmq DEALER ---------------------------------------------------------- */

struct server {
    int lfd, fd;
    qp_router_t *z;
    char path[108];
};

static void serve_start(struct server *s)
{
    snprintf(s->path, sizeof s->path, "/tmp/qp-router-%d.sock", (int)getpid());
    unlink(s->path);
    s->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", s->path);
    cr_assert_eq(bind(s->lfd, (struct sockaddr *)&sun, sizeof sun), 0);
    cr_assert_eq(listen(s->lfd, 4), 0);
    s->fd = -1;
    s->z = qp_router_new(4096, 1 << 20);
}

/* Runs the server side for up to ms: accepts, reads, writes; each message received is
 * sent back with "echo:" in front. Returns the messages echoed. */
static int serve(struct server *s, int ms, int want)
{
    int echoed = 0;
    for (int t = 0; t < ms && echoed < want; t++) {
        if (s->fd < 0) {
            struct pollfd p = {s->lfd, POLLIN, 0};
            if (poll(&p, 1, 1) == 1)
                s->fd = accept(s->lfd, NULL, NULL);
            continue;
        }
        size_t n;
        const uint8_t *out = qp_router_out(s->z, &n);
        if (n) {
            ssize_t w = write(s->fd, out, n);
            cr_assert_gt(w, 0);
            qp_router_out_done(s->z, (size_t)w);
        }
        struct pollfd p = {s->fd, POLLIN, 0};
        if (poll(&p, 1, 1) != 1)
            continue;
        size_t room;
        uint8_t *space = qp_router_in_space(s->z, &room);
        ssize_t r = read(s->fd, space, room);
        cr_assert_gt(r, 0);
        qp_router_in_commit(s->z, (size_t)r);
        const void *body;
        size_t len;
        char err[QP_ERR_LEN];
        int ev;
        while ((ev = qp_router_next(s->z, &body, &len, err)) == QP_ROUTER_MESSAGE) {
            char reply[256];
            int m = snprintf(reply, sizeof reply, "echo:%.*s", (int)len, (const char *)body);
            cr_assert_eq(qp_router_send(s->z, reply, (size_t)m), 0);
            echoed++;
        }
        cr_assert_geq(ev, 0, "%s", err);
    }
    size_t n;
    const uint8_t *out = qp_router_out(s->z, &n);
    if (n) {
        cr_assert_eq(write(s->fd, out, n), (ssize_t)n);
        qp_router_out_done(s->z, n);
    }
    return echoed;
}

static void serve_stop(struct server *s)
{
    qp_router_destroy(&s->z);
    if (s->fd >= 0)
        close(s->fd);
    close(s->lfd);
    unlink(s->path);
}

static void round_trip(const void *routing_id, size_t id_len)
{
    struct server s;
    serve_start(&s);
    void *ctx = zmq_ctx_new();
    void *d = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0, ms = 2000;
    zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(d, ZMQ_RCVTIMEO, &ms, sizeof ms);
    if (routing_id)
        zmq_setsockopt(d, ZMQ_ROUTING_ID, routing_id, id_len);
    char ep[200];
    snprintf(ep, sizeof ep, "ipc://%s", s.path);
    cr_assert_eq(zmq_connect(d, ep), 0);
    for (int i = 0; i < 3; i++) {
        char m[16];
        int n = snprintf(m, sizeof m, "m%d", i);
        cr_assert_eq(zmq_send(d, m, (size_t)n, 0), n);
    }
    cr_assert_eq(serve(&s, 3000, 3), 3, "the DEALER's three messages arrived");
    cr_assert(qp_router_ready(s.z));
    for (int i = 0; i < 3; i++) {
        char buf[64] = {0}, want[16];
        snprintf(want, sizeof want, "echo:m%d", i);
        cr_assert_eq(zmq_recv(d, buf, sizeof buf - 1, 0), (int)strlen(want), "reply %d", i);
        cr_assert_str_eq(buf, want);
    }
    zmq_close(d);
    zmq_ctx_term(ctx);
    serve_stop(&s);
}

Test(qp_router, a_libzmq_dealer_talks_to_it_both_ways)
{
    round_trip(NULL, 0);
}

Test(qp_router, a_libzmq_dealer_that_chose_a_routing_id_is_served_alike)
{
    round_trip("\x00\x6b\x8b\x45\x67", 5);
    round_trip("any name at all", 15);
}
