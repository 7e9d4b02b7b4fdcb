/* test_proto_conn.c - the connection object against a scripted fake arbiter (a ROUTER in
 * a thread): sessions opened and reopened by themselves, pushes, stale replies,
 * timeouts, an absent arbiter. The real arbiter is exercised in test_arbiter*.c. */
#include "proto/conn.h"
#include "proto/records.h"
#include "tests/harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

/* What the fake arbiter does. */
struct fake {
    char dir[256]; /* its socket dir */
    void *zctx;    /* the fake's own */
    pthread_t thread;
    atomic_bool stop;
    /* behaviour, set before start */
    bool refuse_hello;      /* answer hello with error auth */
    int forget_every;       /* when > 0: after this many requests, forget all sessions */
    bool push_before_reply; /* send {t:limits} before every reply */
    bool stale_first;       /* send a reply with a wrong id before the right one */
    bool silent;            /* never answer requests other than hello */
    /* observations */
    atomic_int hellos;   /* hellos received */
    atomic_int requests; /* other messages received */
    atomic_int no_id;    /* messages without an id (hb) */
};

static void send_to(void *sock, zmq_msg_t *rid, qp_msg_t *m)
{
    void *buf;
    size_t len;
    cr_assert_eq(qp_msg_encode(m, NULL, &buf, &len), 0);
    zmq_send(sock, zmq_msg_data(rid), zmq_msg_size(rid), ZMQ_SNDMORE);
    zmq_send(sock, buf, len, 0);
    free(buf);
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    void *sock = zmq_socket(f->zctx, ZMQ_ROUTER);
    char ep[300];
    snprintf(ep, sizeof ep, "ipc://%s/tenant.sock", f->dir);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    cr_assert_eq(zmq_bind(sock, ep), 0);
    bool session = false;
    int since_hello = 0;
    while (!atomic_load(&f->stop)) {
        zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 20) <= 0)
            continue;
        zmq_msg_t rid, body;
        zmq_msg_init(&rid);
        zmq_msg_init(&body);
        zmq_msg_recv(&rid, sock, 0);
        zmq_msg_recv(&body, sock, 0);
        qp_msg_t *m = NULL;
        cr_assert_eq(qp_msg_decode(zmq_msg_data(&body), zmq_msg_size(&body), NULL, &m, NULL), 0);
        uint64_t id = qp_msg_id(m);
        qp_msg_t *rep = NULL;
        if (strcmp(qp_msg_type(m), "hello") == 0) {
            atomic_fetch_add(&f->hellos, 1);
            if (f->refuse_hello) {
                rep = qp_msg_new_error(id, QP_E_AUTH, "wrong secret for vGPU vg-1");
            } else {
                rep = qp_msg_new_ok(id);
                qp_msg_set_uint(rep, "session", (uint64_t)atomic_load(&f->hellos));
                session = true;
                since_hello = 0;
            }
        } else {
            atomic_fetch_add(&f->requests, 1);
            if (!id)
                atomic_fetch_add(&f->no_id, 1);
            if (f->forget_every && since_hello >= f->forget_every)
                session = false;
            since_hello++;
            if (!session)
                rep = qp_msg_new_error(id, QP_E_NOSESSION, "hello first");
            else if (!f->silent && id) {
                rep = qp_msg_new_ok(id);
                qp_msg_set_str(rep, "echo", qp_msg_type(m));
            }
        }
        if (rep && f->push_before_reply) {
            qp_msg_t *p = qp_msg_new("limits");
            send_to(sock, &rid, p);
            qp_msg_destroy(&p);
        }
        if (rep && f->stale_first && id) {
            qp_msg_t *s = qp_msg_new_ok(id + 1000);
            send_to(sock, &rid, s);
            qp_msg_destroy(&s);
        }
        if (rep)
            send_to(sock, &rid, rep);
        qp_msg_destroy(&rep);
        qp_msg_destroy(&m);
        zmq_msg_close(&rid);
        zmq_msg_close(&body);
    }
    zmq_close(sock);
    return NULL;
}

static struct fake *fake_new(void)
{
    struct fake *f = calloc(1, sizeof *f);
    char *dir = qt_tmpdir();
    snprintf(f->dir, sizeof f->dir, "%s", dir);
    free(dir);
    f->zctx = zmq_ctx_new();
    return f;
}

static void fake_start(struct fake *f)
{
    pthread_create(&f->thread, NULL, fake_main, f);
}

static void fake_destroy(struct fake *f)
{
    atomic_store(&f->stop, true);
    pthread_join(f->thread, NULL);
    zmq_ctx_term(f->zctx);
    free(f);
}

/* The test's side: counts hooks. */
struct peer {
    int sessions;          /* session hook calls */
    int pushes;            /* push hook calls */
    uint64_t last_session; /* `session` of the last hello reply */
};

static qp_msg_t *hello_hook(void *arg)
{
    (void)arg;
    return qp_new_tenant_hello("test/1", "vg-1", "00", 1, 0);
}

static void session_hook(void *arg, const qp_msg_t *rep)
{
    struct peer *p = arg;
    p->sessions++;
    qp_msg_get_uint(rep, "session", &p->last_session);
}

static void push_hook(void *arg, const qp_msg_t *push)
{
    struct peer *p = arg;
    cr_assert_str_eq(qp_msg_type(push), "limits");
    p->pushes++;
}

static qp_conn_t *connect_to(struct fake *f, struct peer *p)
{
    qp_conn_hooks_t hooks = {hello_hook, session_hook, push_hook, p};
    char err[QP_ERR_LEN];
    qp_conn_t *c = qp_conn_new(f->dir, QP_TENANT, &hooks, err);
    cr_assert_not_null(c, "%s", err);
    return c;
}

static int call(qp_conn_t *c, const char *type, int timeout_ms, char *err)
{
    qp_msg_t *req = qp_msg_new(type), *rep = NULL;
    int rc = qp_conn_call(c, &req, &rep, timeout_ms, err);
    cr_assert_null(req, "the request is taken");
    if (rc == 0) {
        const char *echo;
        cr_assert_eq(qp_msg_get_str(rep, "echo", &echo), 0);
        cr_assert_str_eq(echo, type);
    }
    qp_msg_destroy(&rep);
    return rc;
}

Test(qp_conn, says_hello_once_then_calls)
{
    struct fake *f = fake_new();
    fake_start(f);
    struct peer p = {0};
    qp_conn_t *c = connect_to(f, &p);
    char err[QP_ERR_LEN];
    cr_assert(!qp_conn_in_session(c));
    for (int i = 0; i < 5; i++)
        cr_assert_eq(call(c, "mem_reserve", 2000, err), 0, "%s", err);
    cr_assert(qp_conn_in_session(c));
    cr_assert_eq(atomic_load(&f->hellos), 1);
    cr_assert_eq(atomic_load(&f->requests), 5);
    cr_assert_eq(p.sessions, 1);
    cr_assert_eq(p.last_session, 1);
    qp_conn_destroy(&c);
    cr_assert_null(c);
    fake_destroy(f);
}

Test(qp_conn, reopens_a_session_the_arbiter_forgot_and_resends)
{
    struct fake *f = fake_new();
    f->forget_every = 2;
    fake_start(f);
    struct peer p = {0};
    qp_conn_t *c = connect_to(f, &p);
    char err[QP_ERR_LEN];
    for (int i = 0; i < 6; i++)
        cr_assert_eq(call(c, "mem_reserve", 2000, err), 0, "call %d: %s", i, err);
    /* forgets before requests 3 and 5 (counting from 1): two more hellos, each
     * refused request sent again */
    cr_assert_eq(atomic_load(&f->hellos), 3);
    cr_assert_eq(atomic_load(&f->requests), 8);
    cr_assert_eq(p.sessions, 3);
    qp_conn_destroy(&c);
    fake_destroy(f);
}

Test(qp_conn, a_lost_session_seen_on_heartbeat_is_reopened_by_wait)
{
    struct fake *f = fake_new();
    f->forget_every = 1;
    fake_start(f);
    struct peer p = {0};
    qp_conn_t *c = connect_to(f, &p);
    char err[QP_ERR_LEN];
    qp_msg_t *hb = qp_new_hb(0, 0);
    cr_assert_eq(qp_conn_send(c, &hb, 1000, err), 0, "%s", err);
    cr_assert_null(hb);
    qp_msg_t *hb2 = qp_new_hb(0, 0);
    cr_assert_eq(qp_conn_send(c, &hb2, 1000, err), 0, "%s", err); /* answered nosession */
    cr_assert_eq(qp_conn_wait(c, 300, err), 0, "%s", err);
    cr_assert_eq(atomic_load(&f->no_id), 2);
    cr_assert_eq(atomic_load(&f->hellos), 2, "wait() must say hello again");
    cr_assert(qp_conn_in_session(c));
    qp_conn_destroy(&c);
    fake_destroy(f);
}

Test(qp_conn, wait_fd_waits_its_timeout_unless_its_fd_is_written)
{
    struct fake *f = fake_new();
    f->push_before_reply = true;
    fake_start(f);
    struct peer p = {0};
    qp_conn_t *c = connect_to(f, &p);
    char err[QP_ERR_LEN];
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    cr_assert_geq(fd, 0);
    /* Nothing written: the whole timeout passes. */
    uint64_t t0 = qt_now_ns();
    cr_assert_eq(qp_conn_wait_fd(c, 200, fd, err), 0, "%s", err);
    cr_assert_geq(qt_now_ns() - t0, 190 * 1000000ull);
    cr_assert_geq(p.pushes, 1, "the push before the hello's reply was handed over");
    /* Written: it returns long before a 10 s timeout. */
    uint64_t one = 1;
    cr_assert_eq(write(fd, &one, sizeof one), (ssize_t)sizeof one);
    t0 = qt_now_ns();
    cr_assert_eq(qp_conn_wait_fd(c, 10000, fd, err), 0, "%s", err);
    cr_assert_lt(qt_now_ns() - t0, 5000 * 1000000ull, "wait_fd ignored its fd");
    close(fd);
    qp_conn_destroy(&c);
    fake_destroy(f);
}

Test(qp_conn, delivers_pushes_and_drops_stale_replies)
{
    struct fake *f = fake_new();
    f->push_before_reply = true;
    f->stale_first = true;
    fake_start(f);
    struct peer p = {0};
    qp_conn_t *c = connect_to(f, &p);
    char err[QP_ERR_LEN];
    cr_assert_eq(call(c, "info", 2000, err), 0, "%s", err);
    cr_assert_eq(call(c, "list", 2000, err), 0, "%s", err);
    /* one push before the hello reply, one before each request's reply */
    cr_assert_eq(p.pushes, 3);
    qp_conn_destroy(&c);
    fake_destroy(f);
}

Test(qp_conn, times_out_and_ignores_the_late_reply)
{
    struct fake *f = fake_new();
    f->silent = true;
    fake_start(f);
    struct peer p = {0};
    qp_conn_t *c = connect_to(f, &p);
    char err[QP_ERR_LEN];
    uint64_t t0 = qt_now_ns();
    cr_assert_eq(call(c, "info", 200, err), -ETIMEDOUT);
    uint64_t ms = (qt_now_ns() - t0) / 1000000;
    cr_assert(ms >= 150 && ms < 2000, "took %llu ms", (unsigned long long)ms);
    cr_assert(strstr(err, "within 200 ms"), "%s", err);
    f->silent = false;
    cr_assert_eq(call(c, "list", 2000, err), 0, "%s", err);
    qp_conn_destroy(&c);
    fake_destroy(f);
}

Test(qp_conn, a_refused_hello_is_an_auth_error_with_its_reason)
{
    struct fake *f = fake_new();
    f->refuse_hello = true;
    fake_start(f);
    struct peer p = {0};
    qp_conn_t *c = connect_to(f, &p);
    char err[QP_ERR_LEN];
    cr_assert_eq(call(c, "mem_reserve", 2000, err), -EACCES);
    cr_assert(strstr(err, "refused hello") && strstr(err, "wrong secret"), "%s", err);
    cr_assert(!qp_conn_in_session(c));
    cr_assert_eq(atomic_load(&f->requests), 0, "no request without a session");
    cr_assert_eq(p.sessions, 0);
    qp_conn_destroy(&c);
    fake_destroy(f);
}

Test(qp_conn, an_absent_arbiter_is_not_connected_after_the_timeout)
{
    char *dir = qt_tmpdir();
    struct peer p = {0};
    qp_conn_hooks_t hooks = {hello_hook, session_hook, push_hook, &p};
    char err[QP_ERR_LEN];
    qp_conn_t *c = qp_conn_new(dir, QP_TENANT, &hooks, err);
    cr_assert_not_null(c, "%s", err);
    uint64_t t0 = qt_now_ns();
    cr_assert_eq(call(c, "mem_reserve", 150, err), -ENOTCONN);
    cr_assert((qt_now_ns() - t0) / 1000000 < 2000);
    cr_assert(strstr(err, "tenant.sock") && strstr(err, "qarbiter"), "%s", err);
    cr_assert_eq(qp_conn_wait(c, 50, err), -ENOTCONN);
    qp_conn_destroy(&c);
    free(dir);
}

Test(qp_conn, refuses_a_socket_path_too_long_for_unix_sockets)
{
    char dir[200];
    memset(dir, 'd', sizeof dir - 1);
    dir[0] = '/';
    dir[sizeof dir - 1] = '\0';
    struct peer p = {0};
    qp_conn_hooks_t hooks = {hello_hook, NULL, NULL, &p};
    char err[QP_ERR_LEN];
    cr_assert_null(qp_conn_new(dir, QP_ADMIN, &hooks, err));
    cr_assert(strstr(err, "too long"), "%s", err);
}

Test(qp_conn, reaches_an_arbiter_that_starts_after_it)
{
    struct fake *f = fake_new();
    struct peer p = {0};
    qp_conn_t *c = connect_to(f, &p);
    char err[QP_ERR_LEN];
    cr_assert_eq(call(c, "info", 100, err), -ENOTCONN);
    fake_start(f);
    cr_assert_eq(call(c, "info", 3000, err), 0, "%s", err);
    qp_conn_destroy(&c);
    fake_destroy(f);
}

static void *stop_after_300_ms(void *arg)
{
    struct fake *f = arg;
    qt_sleep_ms(300);
    atomic_store(&f->stop, true);
    pthread_join(f->thread, NULL); /* its ROUTER is closed: the connection breaks */
    return NULL;
}

/* Regression (issue 8): a shim whose request was in flight when the arbiter died waited
 * out its whole deadline (1.5 s) before it reconnected and re-reported what it held. */
Test(qp_conn, a_tenant_connection_whose_arbiter_dies_under_a_request_says_so_at_once)
{
    struct fake *f = fake_new();
    f->silent = true;
    fake_start(f);
    struct peer p = {0};
    qp_conn_t *c = connect_to(f, &p);
    char err[QP_ERR_LEN];
    pthread_t th;
    pthread_create(&th, NULL, stop_after_300_ms, f);
    uint64_t t0 = qt_now_ns();
    cr_assert_eq(call(c, "mem_reserve", 5000, err), -ECONNRESET, "%s", err);
    uint64_t ms = (qt_now_ns() - t0) / 1000000;
    cr_assert(ms >= 250 && ms < 2000, "took %llu ms of a 5000 ms deadline",
              (unsigned long long)ms);
    cr_assert(strstr(err, "closed before it answered 'mem_reserve'"), "%s", err);
    cr_assert_not(qp_conn_in_session(c));
    pthread_join(th, NULL);
    /* the next arbiter on the same socket: a new session, and the request is answered */
    struct fake *g = calloc(1, sizeof *g);
    memcpy(g->dir, f->dir, sizeof g->dir);
    g->zctx = zmq_ctx_new();
    zmq_ctx_term(f->zctx);
    free(f);
    fake_start(g);
    cr_assert_eq(call(c, "mem_reserve", 3000, err), 0, "%s", err);
    cr_assert_eq(p.sessions, 2);
    qp_conn_destroy(&c);
    fake_destroy(g);
}
