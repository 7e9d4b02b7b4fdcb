/* test_proto_zmtp.c - our ZMTP DEALER against libzmq's ROUTER (what the arbiter runs):
 * messages both ways, short and long frames, limits, a peer that goes away or is not a
 * ZeroMQ socket at all, and no SIGPIPE for the application. */
#include "proto/zmtp.h"
#include "tests/harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

/* A libzmq ROUTER bound on DIR/s.sock. */
struct router {
    void *ctx, *sock;
    char path[256];
};

static void router_start(struct router *r, const char *dir)
{
    r->ctx = zmq_ctx_new();
    r->sock = zmq_socket(r->ctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(r->sock, ZMQ_LINGER, &zero, sizeof zero);
    snprintf(r->path, sizeof r->path, "%s/s.sock", dir);
    char ep[300];
    snprintf(ep, sizeof ep, "ipc://%s", r->path);
    cr_assert_eq(zmq_bind(r->sock, ep), 0, "%s", zmq_strerror(errno));
}

static void router_stop(struct router *r)
{
    zmq_close(r->sock);
    zmq_ctx_term(r->ctx);
}

/* Receives one message on the ROUTER: its routing id into rid, its body returned
 * (malloc'd, *len). */
static char *router_recv(struct router *r, zmq_msg_t *rid, size_t *len)
{
    int ms = 3000;
    zmq_setsockopt(r->sock, ZMQ_RCVTIMEO, &ms, sizeof ms);
    zmq_msg_init(rid);
    cr_assert_geq(zmq_msg_recv(rid, r->sock, 0), 0, "nothing came to the ROUTER");
    zmq_msg_t body;
    zmq_msg_init(&body);
    cr_assert_geq(zmq_msg_recv(&body, r->sock, 0), 0);
    *len = zmq_msg_size(&body);
    char *out = malloc(*len + 1);
    memcpy(out, zmq_msg_data(&body), *len);
    out[*len] = '\0';
    zmq_msg_close(&body);
    return out;
}

static void router_send(struct router *r, zmq_msg_t *rid, const void *buf, size_t len, bool more)
{
    zmq_send(r->sock, zmq_msg_data(rid), zmq_msg_size(rid), ZMQ_SNDMORE);
    zmq_send(r->sock, buf, len, more ? ZMQ_SNDMORE : 0);
}

/* A DEALER refusing frames over max_frame, connected to a libzmq ROUTER started in dir,
 * which has seen it: rid is its routing id there. */
static qp_zmtp_t *connected(struct router *r, const char *dir, size_t max_frame, zmq_msg_t *rid)
{
    size_t len;
    router_start(r, dir);
    qp_zmtp_t *z = qp_zmtp_new(r->path, max_frame);
    cr_assert_eq(qp_zmtp_send(z, "x", 1, qp_now_ms() + 3000), 0);
    free(router_recv(r, rid, &len));
    return z;
}

Test(qp_zmtp, exchanges_short_and_long_messages_with_a_libzmq_router)
{
    char *dir = qt_tmpdir();
    struct router r;
    router_start(&r, dir);
    qp_zmtp_t *z = qp_zmtp_new(r.path, 1 << 20);
    cr_assert_eq(qp_zmtp_epoch(z), 0);
    cr_assert_eq(qp_zmtp_send(z, "ping", 4, qp_now_ms() + 3000), 0);
    cr_assert_eq(qp_zmtp_epoch(z), 1);
    zmq_msg_t rid;
    size_t len;
    char *got = router_recv(&r, &rid, &len);
    cr_assert_str_eq(got, "ping");
    free(got);
    /* A reply of 100 KiB takes the 8-byte length form. */
    size_t big = 100 * 1024;
    char *payload = malloc(big);
    for (size_t i = 0; i < big; i++)
        payload[i] = (char)('a' + i % 26);
    router_send(&r, &rid, payload, big, false);
    void *buf;
    cr_assert_eq(qp_zmtp_recv(z, qp_now_ms() + 3000, &buf, &len), 0);
    cr_assert_eq(len, big);
    cr_assert_eq(memcmp(buf, payload, big), 0);
    free(buf);
    /* And one of 300 bytes from us. */
    cr_assert_eq(qp_zmtp_send(z, payload, 300, qp_now_ms() + 3000), 0);
    zmq_msg_close(&rid);
    got = router_recv(&r, &rid, &len);
    cr_assert_eq(len, 300);
    cr_assert_eq(memcmp(got, payload, 300), 0);
    free(got);
    zmq_msg_close(&rid);
    free(payload);
    cr_assert_eq(qp_zmtp_epoch(z), 1, "one connection served it all");
    qp_zmtp_destroy(&z);
    cr_assert_null(z);
    router_stop(&r);
    free(dir);
}

Test(qp_zmtp, drops_multi_frame_messages_and_keeps_the_next)
{
    char *dir = qt_tmpdir();
    struct router r;
    zmq_msg_t rid;
    size_t len;
    qp_zmtp_t *z = connected(&r, dir, 4096, &rid);
    router_send(&r, &rid, "part1", 5, true);
    zmq_send(r.sock, "part2", 5, 0);
    router_send(&r, &rid, "whole", 5, false);
    void *buf;
    cr_assert_eq(qp_zmtp_recv(z, qp_now_ms() + 3000, &buf, &len), 0);
    cr_assert_eq(len, 5);
    cr_assert_eq(memcmp(buf, "whole", 5), 0);
    free(buf);
    cr_assert_eq(qp_zmtp_recv(z, qp_now_ms() + 50, &buf, &len), -ETIMEDOUT);
    cr_assert_null(buf);
    zmq_msg_close(&rid);
    qp_zmtp_destroy(&z);
    router_stop(&r);
    free(dir);
}

Test(qp_zmtp, a_frame_over_the_limit_ends_the_connection)
{
    char *dir = qt_tmpdir();
    struct router r;
    zmq_msg_t rid;
    size_t len;
    qp_zmtp_t *z = connected(&r, dir, 1000, &rid);
    char big[1001] = {0};
    router_send(&r, &rid, big, sizeof big, false);
    void *buf;
    cr_assert_eq(qp_zmtp_recv(z, qp_now_ms() + 3000, &buf, &len), -ECONNRESET);
    cr_assert_eq(qp_zmtp_fd(z), -1);
    /* The next send makes a new connection: a new peer for the ROUTER. */
    cr_assert_eq(qp_zmtp_send(z, "y", 1, qp_now_ms() + 3000), 0);
    cr_assert_eq(qp_zmtp_epoch(z), 2);
    zmq_msg_close(&rid);
    qp_zmtp_destroy(&z);
    router_stop(&r);
    free(dir);
}

Test(qp_zmtp, a_router_that_goes_away_is_seen_and_raises_no_sigpipe)
{
    signal(SIGPIPE, SIG_DFL); /* a SIGPIPE would kill this test */
    char *dir = qt_tmpdir();
    struct router r;
    zmq_msg_t rid;
    size_t len;
    qp_zmtp_t *z = connected(&r, dir, 4096, &rid);
    zmq_msg_close(&rid);
    router_stop(&r);
    void *buf;
    cr_assert_eq(qp_zmtp_recv(z, qp_now_ms() + 3000, &buf, &len), -ECONNRESET);
    uint64_t t0 = qp_now_ms();
    cr_assert_eq(qp_zmtp_send(z, "y", 1, qp_now_ms() + 200), -ENOTCONN);
    uint64_t took = qp_now_ms() - t0;
    cr_assert(took >= 150 && took < 2000, "retried for %llu ms", (unsigned long long)took);
    /* A new ROUTER on the same path is found by the next send. */
    router_start(&r, dir);
    cr_assert_eq(qp_zmtp_send(z, "z", 1, qp_now_ms() + 3000), 0);
    char *got = router_recv(&r, &rid, &len);
    cr_assert_str_eq(got, "z");
    free(got);
    zmq_msg_close(&rid);
    qp_zmtp_destroy(&z);
    router_stop(&r);
    free(dir);
}

Test(qp_zmtp, a_socket_that_does_not_speak_zmtp_is_not_connected)
{
    char *dir = qt_tmpdir();
    char path[256];
    snprintf(path, sizeof path, "%s/plain.sock", dir);
    int srv = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    memcpy(sun.sun_path, path, strlen(path) + 1); /* a /tmp path: short */
    cr_assert_eq(bind(srv, (struct sockaddr *)&sun, sizeof sun), 0);
    cr_assert_eq(listen(srv, 4), 0);
    pid_t pid = fork();
    if (pid == 0) { /* answers every connection with an HTTP line, then closes it */
        for (;;) {
            int c = accept(srv, NULL, NULL);
            if (c < 0)
                _exit(0);
            const char *line = "HTTP/1.0 400 Bad Request\r\n\r\n";
            ssize_t w = write(c, line, strlen(line));
            (void)w;
            close(c);
        }
    }
    qp_zmtp_t *z = qp_zmtp_new(path, 4096);
    cr_assert_eq(qp_zmtp_send(z, "x", 1, qp_now_ms() + 300), -ENOTCONN);
    cr_assert_eq(qp_zmtp_fd(z), -1);
    qp_zmtp_destroy(&z);
    kill(pid, SIGKILL);
    close(srv);
    free(dir);
}
