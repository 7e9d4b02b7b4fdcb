/* test_arbiter_endpoint.c - the arbiter's sockets under attack by a local user: peers
 * that choose their routing ids, connections that never say hello, floods of malformed
 * messages. The attacks run in a child process as uid nobody, as a stranger would. */
#include "proto/msg.h"
#include "proto/schema.h"
#include "tests/ctl_support.h"
#include "tests/shim_support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#define NOBODY 65534

/* The socket dir's parent is made by mkdtemp (mode 0700): let others reach the sockets. */
static void open_to_others(const qt_arbiter_t *arb)
{
    char root[256];
    snprintf(root, sizeof root, "%s", qt_arbiter_socket_dir(arb));
    *strrchr(root, '/') = '\0';
    cr_assert_eq(chmod(root, 0755), 0, "%s", strerror(errno));
}

/* A child that runs fn(arg) as uid (and gid) and writes one byte to a pipe when fn
 * returns, then waits to be killed. Returns its pid once that byte came (within 20 s).
 * The child may hold 10000 descriptors: an unprivileged user's usual hard limit is
 * higher still. */
static pid_t as_user(uid_t uid, void (*fn)(void *arg), void *arg)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(p[0]);
        struct rlimit rl = {10000, 10000};
        setrlimit(RLIMIT_NOFILE, &rl);
        /* killed with the test, even one that fails half-way (set after setuid, which
         * clears it) */
        if (setgroups(0, NULL) < 0 || setgid(uid) < 0 || setuid(uid) < 0 ||
            prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() == 1)
            _exit(2);
        fn(arg);
        if (write(p[1], "r", 1) != 1)
            _exit(3);
        for (;;)
            pause();
    }
    close(p[1]);
    struct timeval tv = {20, 0};
    fd_set set;
    FD_ZERO(&set);
    FD_SET(p[0], &set);
    char c;
    cr_assert_eq(select(p[0] + 1, &set, NULL, NULL, &tv), 1, "the attacker got ready");
    cr_assert_eq(read(p[0], &c, 1), 1, "the attacker got ready");
    close(p[0]);
    return pid;
}

/* An arbiter whose sockets others can reach, with one Q1 vGPU (id, secret). */
static qt_arbiter_t *arbiter_for_strangers(char id[QV_ID_LEN], char secret[QV_SECRET_LEN])
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    open_to_others(arb);
    qv_client_t *c = ctl_client(arb);
    ctl_create(c, "vm-1", "Q1", id, secret);
    qv_disconnect(&c);
    return arb;
}

static pid_t as_nobody(void (*fn)(void *arg), void *arg)
{
    return as_user(NOBODY, fn, arg);
}

static void stop_child(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static bool arbiter_alive(qt_arbiter_t *arb)
{
    return waitpid(qt_proc_pid(qt_arbiter_proc(arb)), NULL, WNOHANG) == 0;
}

/* ---- routing ids ------------------------------------------------------------------- */

struct squat {
    const char *endpoint; /* ipc://... */
    void *zctx;
    void *socks[256];
    int n;
};

/* The routing ids a ZeroMQ ROUTER would give the first peers that choose none: 0x00 and
 * a big-endian counter starting at a value of rand(), which nothing seeds, so it is the
 * same at every start. Two ROUTERs may come first (the arbiter makes two endpoints):
 * squat on the first 64 ids of each, from peers that choose those ids themselves. */
static void squat(void *arg)
{
    struct squat *s = arg;
    srand(1);
    uint32_t starts[2];
    for (int r = 0; r < 2; r++) {
        uint32_t low = (uint32_t)rand(), high = (uint32_t)rand();
        starts[r] = (high << 31) | low;
    }
    s->zctx = zmq_ctx_new();
    for (int r = 0; r < 2; r++) {
        for (uint32_t k = 0; k < 64; k++) {
            uint32_t v = starts[r] + k;
            uint8_t id[5] = {0, (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),
                             (uint8_t)v};
            void *d = zmq_socket(s->zctx, ZMQ_DEALER);
            int zero = 0;
            zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
            zmq_setsockopt(d, ZMQ_ROUTING_ID, id, sizeof id);
            if (zmq_connect(d, s->endpoint) < 0)
                _exit(4);
            s->socks[s->n++] = d;
        }
    }
    /* Let every connection finish its handshake before saying we are ready. */
    usleep(500 * 1000);
}

/* Regression (issue 8 item 1): a stranger's DEALER sockets whose routing ids squat on
 * the ids libzmq would give the next connections made the arbiter abort
 * ("Assertion failed: ok (src/socket_base.cpp)") at the next ordinary connection. */
Test(qa_endpoint, peers_that_choose_their_routing_ids_cannot_crash_the_arbiter)
{
    char id[QV_ID_LEN], secret[QV_SECRET_LEN];
    qt_arbiter_t *arb = arbiter_for_strangers(id, secret);
    char ep[300];
    snprintf(ep, sizeof ep, "ipc://%s/tenant.sock", qt_arbiter_socket_dir(arb));
    struct squat s = {.endpoint = ep};
    pid_t attacker = as_nobody(squat, &s);
    /* ordinary tenants and administrators connect while the squatters stay */
    for (int i = 0; i < 8; i++) {
        ctl_tenant_t *t = ctl_tenant_new(arb, id, secret);
        cr_assert_eq(ctl_tenant_hello(t), 0, "tenant %d is served", i);
        ctl_tenant_destroy(&t);
        qv_client_t *c = ctl_client(arb);
        qv_disconnect(&c);
    }
    cr_assert(arbiter_alive(arb), "the arbiter survives");
    stop_child(attacker);
    qt_arbiter_destroy(&arb);
}

/* The admin socket is root's, but a root process choosing routing ids must not crash
 * the arbiter either: its ids are never used to tell connections apart. */
Test(qa_endpoint, admin_peers_that_choose_their_routing_ids_cannot_crash_the_arbiter)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    char ep[300];
    snprintf(ep, sizeof ep, "ipc://%s/admin.sock", qt_arbiter_socket_dir(arb));
    struct squat s = {.endpoint = ep};
    squat(&s);
    for (int i = 0; i < 8; i++) {
        qv_client_t *c = ctl_client(arb);
        qv_vgpu_list_t *l;
        char err[QV_ERR_LEN];
        cr_assert_eq(qv_list(c, &l, err), 0, "admin %d is served: %s", i, err);
        qv_vgpu_list_free(&l);
        qv_disconnect(&c);
    }
    cr_assert(arbiter_alive(arb), "the arbiter survives");
    for (int i = 0; i < s.n; i++)
        zmq_close(s.socks[i]);
    zmq_ctx_term(s.zctx);
    qt_arbiter_destroy(&arb);
}

/* ---- connections that never say hello ---------------------------------------------- */

struct idle {
    char path[100]; /* tenant.sock */
    int raw;        /* plain connections to open (they never speak) */
    int dealers;    /* ZeroMQ connections that finish the handshake and never say hello */
    bool once;      /* the dealers do not connect again when the arbiter closes them */
    int opened;     /* connect() calls that succeeded */
    void *zctx;
};

static void hold_idle(void *arg)
{
    struct idle *x = arg;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", x->path);
    for (int i = 0; i < x->raw; i++) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            _exit(5);
        x->opened += connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0;
    }
    if (x->dealers) {
        char ep[320];
        snprintf(ep, sizeof ep, "ipc://%s", x->path);
        x->zctx = zmq_ctx_new();
        zmq_ctx_set(x->zctx, ZMQ_MAX_SOCKETS, x->dealers + 16);
        for (int i = 0; i < x->dealers; i++) {
            void *d = zmq_socket(x->zctx, ZMQ_DEALER);
            int never = -1;
            if (!d || (x->once && zmq_setsockopt(d, ZMQ_RECONNECT_IVL, &never, sizeof never) < 0) ||
                zmq_connect(d, ep) < 0)
                _exit(6);
        }
    }
    usleep(300 * 1000);
}

/* A workload of v allocates 1500 MiB of its 2 GiB quota through the shim. */
static void assert_workload_gets_its_quota(qt_arbiter_t *arb, const qts_vgpu_t *v)
{
    qts_env_t e;
    qts_env_of(&e, arb, v);
    char *out = NULL, *err = NULL;
    cr_assert_eq(qts_run(&e, &out, &err, "init", "alloc:cuMemAlloc_v2:direct:1500M", "info", NULL),
                 0, "%s", err);
    cr_assert_eq(qts_field(out, "alloc cuMemAlloc_v2 direct ", 0), 0,
                 "the workload got its memory:\n%s\n%s", out, err);
    cr_assert_eq(qts_field(out, "info ", 2), 2048 * QTS_MIB, "%s", out);
    free(out);
    free(err);
}

/* Regression (issue 8 item 4): 4,200 idle connections of uid nobody filled
 * max_tenant_connections and every new workload got "arbiter unreachable". */
Test(qa_endpoint, thousands_of_idle_connections_of_a_stranger_leave_workloads_their_quota,
     .timeout = 120)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    open_to_others(arb);
    qts_vgpu_t v;
    qts_vgpu_create(arb, &v, "--vm", "w", "--profile", "Q2", NULL);
    pid_t pid = qt_proc_pid(qt_arbiter_proc(arb));
    int before = ctl_open_fds(pid);
    struct idle x = {.raw = 4200, .dealers = 100};
    snprintf(x.path, sizeof x.path, "%s/tenant.sock", qt_arbiter_socket_dir(arb));
    pid_t attacker = as_nobody(hold_idle, &x);
    assert_workload_gets_its_quota(arb, &v);
    int during = ctl_open_fds(pid);
    cr_assert_lt(during, before + 128 + 64,
                 "a uid holds at most max_pending_per_uid connections (%d, then %d)", before,
                 during);
    cr_assert(arbiter_alive(arb));
    stop_child(attacker);
    qt_arbiter_destroy(&arb);
}

static bool fewer_fds(void *arg)
{
    int *x = arg; /* pid, limit */
    return ctl_open_fds(x[0]) <= x[1];
}

Test(qa_endpoint, a_connection_that_says_no_hello_is_closed_after_the_hello_timeout)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    open_to_others(arb);
    pid_t pid = qt_proc_pid(qt_arbiter_proc(arb));
    int before = ctl_open_fds(pid);
    /* ZeroMQ connections that finished the handshake, and plain ones that never began it */
    struct idle x = {.raw = 20, .dealers = 30, .once = true};
    snprintf(x.path, sizeof x.path, "%s/tenant.sock", qt_arbiter_socket_dir(arb));
    pid_t attacker = as_nobody(hold_idle, &x);
    cr_assert_geq(ctl_open_fds(pid), before + 40, "held at first");
    int want[2] = {pid, before + 2};
    cr_assert(qt_wait_until(fewer_fds, want, 6000), "closed after 3 s (%d fds, %d before)",
              ctl_open_fds(pid), before);
    stop_child(attacker);
    qt_proc_t *proc = qt_arbiter_proc(arb);
    qt_proc_kill(proc, SIGTERM);
    cr_assert_eq(qt_proc_wait(proc, 5000), 0);
    const char *log = qt_proc_stderr(proc);
    cr_assert(strstr(log, "connection of uid 65534"), "%s", log);
    cr_assert(strstr(log, "no hello within 3000 ms"), "%s", log);
    qt_arbiter_destroy(&arb);
}

/* Many uids (a user with subordinate uids, or many users) flooding with idle
 * connections fill the pending connections; sessions keep the rest of the cap, and a new
 * workload still gets in: a uid with none pending takes the place of the heaviest. */
Test(qa_endpoint, idle_floods_from_many_uids_leave_room_for_workloads, .timeout = 120)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, "[arbiter]\nmax_tenant_connections = 400\n");
    open_to_others(arb);
    qts_vgpu_t v;
    qts_vgpu_create(arb, &v, "--vm", "w", "--profile", "Q2", NULL);
    pid_t attackers[12];
    for (int i = 0; i < 12; i++) {
        struct idle x = {.raw = 150, .dealers = 0};
        snprintf(x.path, sizeof x.path, "%s/tenant.sock", qt_arbiter_socket_dir(arb));
        attackers[i] = as_user((uid_t)(61000 + i), hold_idle, &x);
    }
    pid_t pid = qt_proc_pid(qt_arbiter_proc(arb));
    cr_assert_leq(ctl_open_fds(pid), 100 + 32, "pending: a quarter of the cap of 400, not more");
    assert_workload_gets_its_quota(arb, &v);
    assert_workload_gets_its_quota(arb, &v);
    cr_assert(arbiter_alive(arb));
    for (int i = 0; i < 12; i++)
        stop_child(attackers[i]);
    qt_arbiter_destroy(&arb);
}

/* ---- the log ----------------------------------------------------------------------- */

struct junk {
    char path[100]; /* tenant.sock */
    int n;          /* connections, each sending something malformed */
};

static void send_junk(void *arg)
{
    struct junk *x = arg;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", x->path);
    char ep[120];
    snprintf(ep, sizeof ep, "ipc://%s", x->path);
    void *zctx = zmq_ctx_new();
    for (int i = 0; i < x->n; i++) {
        if (i % 2) { /* not ZMTP at all */
            int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0 ||
                write(fd, "GET / HTTP/1.0\r\n\r\n", 18) != 18)
                _exit(5);
            close(fd);
            continue;
        }
        /* ZMTP, then a message that is no msgpack map, then a wrong secret */
        void *d = zmq_socket(zctx, ZMQ_DEALER);
        int zero = 0, ms = 2000;
        zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt(d, ZMQ_RCVTIMEO, &ms, sizeof ms);
        if (zmq_connect(d, ep) < 0 || zmq_send(d, "\xc1junk", 5, 0) != 5)
            _exit(6);
        qp_msg_t *h = qp_new_tenant_hello("junk/1", "vg-1", "wrong", getpid(), 0);
        qp_msg_set_uint(h, "id", 1);
        void *buf;
        size_t len;
        if (qp_msg_encode(h, NULL, &buf, &len) < 0 || zmq_send(d, buf, len, 0) < 0)
            _exit(7);
        free(buf);
        qp_msg_destroy(&h);
        char reply[512];
        zmq_recv(d, reply, sizeof reply, 0); /* the error about the junk */
        zmq_recv(d, reply, sizeof reply, 0); /* the refused hello */
        zmq_close(d);
    }
    zmq_ctx_term(zctx);
}

/* Regression (issue 8 item 9): one warning per malformed connection let anyone write
 * about a gigabyte of log an hour. */
Test(qa_endpoint, a_stranger_connecting_again_and_again_writes_a_few_log_lines_and_a_sum)
{
    char id[QV_ID_LEN], secret[QV_SECRET_LEN];
    qt_arbiter_t *arb = arbiter_for_strangers(id, secret);
    struct junk x = {.n = 400};
    snprintf(x.path, sizeof x.path, "%s/tenant.sock", qt_arbiter_socket_dir(arb));
    pid_t attacker = as_nobody(send_junk, &x);
    stop_child(attacker);
    qt_proc_t *proc = qt_arbiter_proc(arb);
    qt_proc_kill(proc, SIGTERM);
    cr_assert_eq(qt_proc_wait(proc, 5000), 0);
    const char *log = qt_proc_stderr(proc);
    int lines = ctl_count_of(log, "uid 65534");
    cr_assert_leq(lines, 3 + 2, "a few lines about uid 65534, then its sum (%d):\n%s", lines, log);
    cr_assert_lt(ctl_count_of(log, "\n"), 30, "the log stays short:\n%s", log);
    /* 200 malformed messages at least (a bad greeting whose sender closed at once may
     * read as a reset connection, which is not worth a line): held back, summed */
    long held = 0;
    for (const char *l = log; (l = strstr(l, "tenant.sock: ")); l++) {
        unsigned uid = 0;
        long n = 0;
        if (sscanf(l, "tenant.sock: %ld more warnings about connections of uid %u", &n, &uid) ==
                2 &&
            uid == 65534)
            held += n;
    }
    cr_assert_geq(held + lines, 200, "what was held back is counted (%ld):\n%s", held, log);
    qt_arbiter_destroy(&arb);
}
