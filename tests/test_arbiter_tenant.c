/* test_arbiter_tenant.c - the tenant side of a real qarbiter on the sim: the secret, the
 * vGPU's quota shared by its processes, reclaim, heartbeats, liveness (close, kill -9,
 * SIGSTOP), resize pushes, destroy, and the wall between tenants and the admin API; then
 * the tenants object alone (arbiter/tenant.c), without a daemon. */
#include "arbiter/compute.h"
#include "arbiter/tenant.h"
#include "proto/records.h"
#include "proto/schema.h"
#include "proto/units.h"
#include "tests/ctl_support.h"
#include "tests/handler_support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB QP_MIB
#define GIB (1024 * QP_MIB)

struct fixture {
    qt_arbiter_t *arb;
    qv_client_t *admin;
    char id[QV_ID_LEN];
    char secret[QV_SECRET_LEN];
};

/* An arbiter with one Q2 vGPU (2 GiB). */
static struct fixture setup(const char *config)
{
    struct fixture f;
    f.arb = ctl_arbiter(CTL_GPUS, config);
    f.admin = ctl_client(f.arb);
    ctl_create(f.admin, "vm-t", "Q2", f.id, f.secret);
    return f;
}

static void teardown(struct fixture *f)
{
    qv_disconnect(&f->admin);
    qt_arbiter_destroy(&f->arb);
}

Test(qa_tenant, the_right_secret_opens_a_session_with_the_vgpus_limits)
{
    struct fixture f = setup(NULL);
    ctl_tenant_t *t = ctl_tenant_new(f.arb, f.id, f.secret);
    cr_assert_eq(ctl_tenant_hello(t), 0);
    cr_assert_eq(t->sessions, 1);
    cr_assert_eq(t->last_quota, 2 * GIB);
    cr_assert(ctl_wait_procs(f.admin, f.id, 1, 2000));
    ctl_tenant_destroy(&t);
    teardown(&f);
}

Test(qa_tenant, a_wrong_or_missing_secret_or_unknown_vgpu_is_refused_alike)
{
    struct fixture f = setup(NULL);
    char other[QV_ID_LEN], other_secret[QV_SECRET_LEN];
    ctl_create(f.admin, "vm-o", "Q1", other, other_secret);
    const char *cases[][2] = {
        {f.id, "00000000000000000000000000000000"},
        {f.id, ""},
        {f.id, other_secret}, /* another vGPU's secret */
        {"vg-999", f.secret},
        {f.id, "0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ctl_tenant_t *t = ctl_tenant_new(f.arb, cases[i][0], cases[i][1]);
        char err[QP_ERR_LEN];
        cr_assert_eq(qp_conn_open(t->conn, 3000, err), -EACCES, "case %zu", i);
        cr_assert(strstr(err, "unknown vGPU or wrong secret"), "case %zu: %s", i, err);
        cr_assert_eq(t->sessions, 0);
        ctl_tenant_destroy(&t);
    }
    cr_assert_eq(ctl_info(f.admin, f.id).procs, 0);
    teardown(&f);
}

Test(qa_tenant, a_refused_hello_is_logged_with_the_real_pid)
{
    struct fixture f = setup(NULL);
    ctl_tenant_t *t = ctl_tenant_new(f.arb, f.id, "00000000000000000000000000000000");
    char err[QP_ERR_LEN], want[64];
    cr_assert_eq(qp_conn_open(t->conn, 3000, err), -EACCES, "%s", err);
    ctl_tenant_destroy(&t);
    /* The log line is written before the reply is sent. */
    snprintf(want, sizeof want, "tenant hello refused (pid %d)", (int)getpid());
    const char *log = qt_proc_stderr(qt_arbiter_proc(f.arb));
    cr_assert(strstr(log, want), "no '%s' in the arbiter's log:\n%s", want, log);
    teardown(&f);
}

Test(qa_tenant, reservations_of_all_processes_stay_within_the_quota)
{
    struct fixture f = setup(NULL);
    ctl_tenant_t *a = ctl_tenant_new(f.arb, f.id, f.secret);
    ctl_tenant_t *b = ctl_tenant_new(f.arb, f.id, f.secret);
    uint64_t free = 0;
    cr_assert_eq(ctl_tenant_reserve(a, 512 * MIB, 1536 * MIB, NULL), 0);
    cr_assert_eq(a->reserved, 1536 * MIB, "want is granted when it fits");
    a->used = 1536 * MIB; /* a uses all of it: nothing to reclaim */
    cr_assert_eq(ctl_tenant_hb(a, NULL), 0);
    cr_assert_eq(ctl_tenant_reserve(b, 256 * MIB, 1024 * MIB, NULL), 0);
    cr_assert_eq(b->reserved, 512 * MIB, "min(want, room)");
    cr_assert_eq(ctl_tenant_reserve(b, 600 * MIB, 600 * MIB, &free), -EDQUOT);
    cr_assert_eq(free, 512 * MIB, "free is the room this process could have");
    cr_assert_eq(ctl_tenant_reserve(a, 3 * GIB, 3 * GIB, NULL), -EDQUOT,
                 "more than the whole quota");
    qv_vgpu_t v = ctl_info(f.admin, f.id);
    cr_assert_eq(v.memory_reserved, 2 * GIB);
    cr_assert_eq(v.procs, 2);
    ctl_tenant_destroy(&a);
    ctl_tenant_destroy(&b);
    teardown(&f);
}

Test(qa_tenant, release_lowers_and_never_raises)
{
    struct fixture f = setup(NULL);
    ctl_tenant_t *a = ctl_tenant_new(f.arb, f.id, f.secret);
    cr_assert_eq(ctl_tenant_reserve(a, GIB, GIB, NULL), 0);
    cr_assert_eq(ctl_tenant_release(a, 256 * MIB), 0);
    cr_assert_eq(a->reserved, 256 * MIB);
    cr_assert_eq(ctl_tenant_release(a, GIB), -EINVAL);
    cr_assert_eq(ctl_info(f.admin, f.id).memory_reserved, 256 * MIB);
    ctl_tenant_destroy(&a);
    teardown(&f);
}

Test(qa_tenant, heartbeats_report_use_and_return_the_whole_vgpus_use)
{
    struct fixture f = setup(NULL);
    ctl_tenant_t *a = ctl_tenant_new(f.arb, f.id, f.secret);
    ctl_tenant_t *b = ctl_tenant_new(f.arb, f.id, f.secret);
    cr_assert_eq(ctl_tenant_reserve(a, 512 * MIB, 512 * MIB, NULL), 0);
    cr_assert_eq(ctl_tenant_reserve(b, 512 * MIB, 512 * MIB, NULL), 0);
    a->used = 100 * MIB;
    b->used = 300 * MIB;
    uint64_t vgpu_used = 0;
    cr_assert_eq(ctl_tenant_hb(a, &vgpu_used), 0);
    cr_assert_eq(ctl_tenant_hb(b, &vgpu_used), 0);
    cr_assert_eq(vgpu_used, 400 * MIB);
    qv_vgpu_t v = ctl_info(f.admin, f.id);
    cr_assert_eq(v.memory_used, 400 * MIB);
    /* a heartbeat without id is not answered but still counts */
    qp_msg_t *hb = qp_new_hb(200 * MIB, 512 * MIB);
    char err[QP_ERR_LEN];
    cr_assert_eq(qp_conn_send(a->conn, &hb, 1000, err), 0);
    a->used = 200 * MIB;
    for (int i = 0; i < 100 && vgpu_used != 500 * MIB; i++) { /* a and b race: poll */
        cr_assert_eq(ctl_tenant_hb(b, &vgpu_used), 0);
        qt_sleep_ms(5);
    }
    cr_assert_eq(vgpu_used, 500 * MIB);
    ctl_tenant_destroy(&a);
    ctl_tenant_destroy(&b);
    teardown(&f);
}

Test(qa_tenant, a_heartbeat_below_the_record_takes_back_a_lost_grant)
{
    struct fixture f = setup(NULL);
    ctl_tenant_t *a = ctl_tenant_new(f.arb, f.id, f.secret);
    cr_assert_eq(ctl_tenant_reserve(a, GIB, GIB, NULL), 0);
    a->reserved = 256 * MIB; /* as if the grant had come after the call gave up */
    a->used = 100 * MIB;
    cr_assert_eq(ctl_tenant_hb(a, NULL), 0);
    cr_assert_eq(ctl_info(f.admin, f.id).memory_reserved, 256 * MIB);
    a->reserved = 4 * GIB; /* a report never raises */
    cr_assert_eq(ctl_tenant_hb(a, NULL), 0);
    cr_assert_eq(ctl_info(f.admin, f.id).memory_reserved, 256 * MIB);
    ctl_tenant_destroy(&a);
    teardown(&f);
}

/* Pumps a tenant's pushes on a thread while the test waits on another tenant's call. */
struct pumper {
    ctl_tenant_t *t;
    atomic_bool stop;
    pthread_t thread;
};

static void *pump_main(void *arg)
{
    struct pumper *p = arg;
    while (!atomic_load(&p->stop))
        ctl_tenant_pump(p->t, 20);
    return NULL;
}

static void pump_start(struct pumper *p, ctl_tenant_t *t)
{
    p->t = t;
    atomic_store(&p->stop, false);
    pthread_create(&p->thread, NULL, pump_main, p);
}

static void pump_stop(struct pumper *p)
{
    atomic_store(&p->stop, true);
    pthread_join(p->thread, NULL);
}

Test(qa_tenant, unused_reservation_of_a_sibling_is_reclaimed)
{
    struct fixture f = setup(NULL);
    ctl_tenant_t *a = ctl_tenant_new(f.arb, f.id, f.secret);
    ctl_tenant_t *b = ctl_tenant_new(f.arb, f.id, f.secret);
    cr_assert_eq(ctl_tenant_reserve(a, 1536 * MIB, 1536 * MIB, NULL), 0);
    a->used = 512 * MIB;
    cr_assert_eq(ctl_tenant_hb(a, NULL), 0);
    a->give_back = true;
    struct pumper p;
    pump_start(&p, a);
    uint64_t t0 = qt_now_ns();
    cr_assert_eq(ctl_tenant_reserve(b, GIB, GIB, NULL), 0, "a gives back what it does not use");
    uint64_t ms = (qt_now_ns() - t0) / 1000000;
    pump_stop(&p);
    cr_assert(ms < 450, "served by the release, not the timeout (%llu ms)", (unsigned long long)ms);
    cr_assert_eq(b->reserved, GIB);
    cr_assert_geq(a->reclaims, 1);
    cr_assert_eq(a->last_keep, 1024 * MIB, "asked for just what b lacked");
    cr_assert_leq(ctl_info(f.admin, f.id).memory_reserved, 2 * GIB);
    ctl_tenant_destroy(&a);
    ctl_tenant_destroy(&b);
    teardown(&f);
}

Test(qa_tenant, a_sibling_that_keeps_its_reservation_makes_the_request_fail_in_time)
{
    struct fixture f = setup("[arbiter]\nreclaim_timeout_ms = 300\n");
    ctl_tenant_t *a = ctl_tenant_new(f.arb, f.id, f.secret);
    ctl_tenant_t *b = ctl_tenant_new(f.arb, f.id, f.secret);
    cr_assert_eq(ctl_tenant_reserve(a, 2 * GIB, 2 * GIB, NULL), 0);
    uint64_t t0 = qt_now_ns(), free = 1;
    cr_assert_eq(ctl_tenant_reserve(b, GIB, GIB, &free), -EDQUOT);
    uint64_t ms = (qt_now_ns() - t0) / 1000000;
    cr_assert(ms >= 250 && ms < 2500, "gave up after the reclaim timeout (%llu ms)",
              (unsigned long long)ms);
    cr_assert_eq(free, 0);
    ctl_tenant_pump(a, 50);
    cr_assert_geq(a->reclaims, 1, "a was asked");
    /* the waiting request is gone: the next one is served normally */
    cr_assert_eq(ctl_tenant_release(a, GIB), 0);
    cr_assert_eq(ctl_tenant_reserve(b, GIB, GIB, NULL), 0);
    ctl_tenant_destroy(&a);
    ctl_tenant_destroy(&b);
    teardown(&f);
}

Test(qa_tenant, closing_the_connection_returns_the_memory_at_once)
{
    struct fixture f = setup(NULL);
    ctl_tenant_t *a = ctl_tenant_new(f.arb, f.id, f.secret);
    cr_assert_eq(ctl_tenant_reserve(a, 2 * GIB, 2 * GIB, NULL), 0);
    cr_assert(ctl_wait_procs(f.admin, f.id, 1, 1000));
    uint64_t t0 = qt_now_ns();
    ctl_tenant_destroy(&a);
    cr_assert(ctl_wait_procs(f.admin, f.id, 0, 2000), "the session ended");
    uint64_t ms = (qt_now_ns() - t0) / 1000000;
    cr_assert(ms < 1000, "seen by the socket monitor, not the heartbeat timeout (%llu ms)",
              (unsigned long long)ms);
    cr_assert_eq(ctl_info(f.admin, f.id).memory_reserved, 0);
    ctl_tenant_t *b = ctl_tenant_new(f.arb, f.id, f.secret);
    cr_assert_eq(ctl_tenant_reserve(b, 2 * GIB, 2 * GIB, NULL), 0);
    ctl_tenant_destroy(&b);
    teardown(&f);
}

/* A child process that joins the vGPU, reserves, reports use every 200 ms until killed,
 * and writes one byte to fd each time it opens a session. */
static pid_t tenant_child(const struct fixture *f, uint64_t reserve, uint64_t used, int fd)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid > 0)
        return pid;
    ctl_tenant_t *tp = ctl_tenant_new(f->arb, f->id, f->secret);
    int sessions = 0;
    if (ctl_tenant_reserve(tp, reserve, reserve, NULL) != 0)
        _exit(3);
    tp->used = used;
    for (;;) {
        qp_msg_t *hb = qp_new_hb(tp->used, tp->reserved);
        char err[QP_ERR_LEN];
        qp_conn_send(tp->conn, &hb, 500, err);
        qp_conn_wait(tp->conn, 200, err);
        if (tp->sessions != sessions) {
            sessions = tp->sessions;
            if (write(fd, "s", 1) != 1)
                _exit(4);
        }
    }
}

Test(qa_tenant, a_killed_process_gives_its_memory_back_within_2_s)
{
    struct fixture f = setup(NULL);
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    pid_t child = tenant_child(&f, 2 * GIB, GIB, pfd[1]);
    char c;
    cr_assert_eq(read(pfd[0], &c, 1), 1, "the child joined");
    cr_assert(ctl_wait_procs(f.admin, f.id, 1, 2000));
    uint64_t t0 = qt_now_ns();
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    cr_assert(ctl_wait_procs(f.admin, f.id, 0, 2000), "its session ended");
    uint64_t ms = (qt_now_ns() - t0) / 1000000;
    cr_assert(ms < 2000, "within 2 s (%llu ms)", (unsigned long long)ms);
    cr_assert_eq(ctl_info(f.admin, f.id).memory_reserved, 0);
    teardown(&f);
}

Test(qa_tenant, a_stopped_process_is_dropped_and_re_reports_when_it_resumes)
{
    struct fixture f = setup("[arbiter]\nheartbeat_timeout_ms = 1000\n");
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    pid_t child = tenant_child(&f, GIB, 700 * MIB, pfd[1]);
    char c;
    cr_assert_eq(read(pfd[0], &c, 1), 1);
    cr_assert(ctl_wait_procs(f.admin, f.id, 1, 2000));
    kill(child, SIGSTOP);
    cr_assert(ctl_wait_procs(f.admin, f.id, 0, 3000), "a silent process is dropped");
    cr_assert_eq(ctl_info(f.admin, f.id).memory_reserved, 0);
    kill(child, SIGCONT);
    cr_assert_eq(read(pfd[0], &c, 1), 1, "it opened a new session by itself");
    cr_assert(ctl_wait_procs(f.admin, f.id, 1, 2000));
    qv_vgpu_t v = ctl_info(f.admin, f.id);
    cr_assert_eq(v.memory_used, 700 * MIB, "it re-reported what it holds");
    cr_assert_eq(v.memory_reserved, 700 * MIB, "and that is charged again");
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    teardown(&f);
}

Test(qa_tenant, resize_pushes_limits_and_a_shrink_reclaims)
{
    struct fixture f = setup(NULL);
    ctl_tenant_t *a = ctl_tenant_new(f.arb, f.id, f.secret);
    cr_assert_eq(ctl_tenant_reserve(a, 1536 * MIB, 1536 * MIB, NULL), 0);
    a->used = 512 * MIB;
    cr_assert_eq(ctl_tenant_hb(a, NULL), 0);
    qv_resize_t grow = {.has_memory = 1, .memory_mb = 4096, .has_share = 1, .share = 30};
    char err[QV_ERR_LEN];
    cr_assert_eq(qv_resize(f.admin, f.id, &grow, NULL, err), 0, "%s", err);
    ctl_tenant_pump(a, 100);
    cr_assert_eq(a->limits, 1);
    cr_assert_eq(a->last_quota, 4 * GIB);
    cr_assert_eq(a->reclaims, 0, "growing asks nothing back");
    qv_resize_t shrink = {.has_memory = 1, .memory_mb = 1024};
    cr_assert_eq(qv_resize(f.admin, f.id, &shrink, NULL, err), 0, "%s", err);
    a->give_back = true;
    ctl_tenant_pump(a, 150);
    cr_assert_eq(a->limits, 2);
    cr_assert_eq(a->last_quota, GIB);
    cr_assert_eq(a->reclaims, 1);
    cr_assert_eq(a->last_keep, 0, "give back all that is not used");
    cr_assert_eq(a->reserved, 512 * MIB);
    /* below use: nothing is killed, new reservations fail until use drops */
    qv_resize_t tiny = {.has_memory = 1, .memory_mb = 256};
    cr_assert_eq(qv_resize(f.admin, f.id, &tiny, NULL, err), 0, "%s", err);
    ctl_tenant_pump(a, 100);
    cr_assert_eq(ctl_info(f.admin, f.id).procs, 1);
    cr_assert_eq(ctl_tenant_reserve(a, 600 * MIB, 600 * MIB, NULL), -EDQUOT);
    ctl_tenant_destroy(&a);
    teardown(&f);
}

Test(qa_tenant, a_destroyed_vgpu_ends_its_sessions_and_refuses_new_ones)
{
    struct fixture f = setup(NULL);
    ctl_tenant_t *a = ctl_tenant_new(f.arb, f.id, f.secret);
    cr_assert_eq(ctl_tenant_reserve(a, GIB, GIB, NULL), 0);
    char err[QV_ERR_LEN];
    cr_assert_eq(qv_destroy(f.admin, f.id, err), 0, "%s", err);
    cr_assert_eq(ctl_tenant_reserve(a, GIB, GIB, NULL), -EACCES,
                 "the session is gone and the secret no longer opens one");
    ctl_tenant_destroy(&a);
    teardown(&f);
}

/* Sends one raw request on a fresh tenant session and returns the reply's errno. */
static int raw_tenant_request(struct fixture *f, qp_msg_t *req, char *err)
{
    ctl_tenant_t *t = ctl_tenant_new(f->arb, f->id, f->secret);
    cr_assert_eq(ctl_tenant_hello(t), 0);
    qp_msg_t *rep = NULL;
    int rc = qp_conn_call(t->conn, &req, &rep, 3000, err);
    qp_msg_destroy(&rep);
    ctl_tenant_destroy(&t);
    return rc;
}

Test(qa_tenant, a_tenant_can_neither_manage_nor_see_any_vgpu)
{
    struct fixture f = setup(NULL);
    char other[QV_ID_LEN], other_secret[QV_SECRET_LEN];
    ctl_create(f.admin, "vm-o", "Q1", other, other_secret);
    const char *admin_only[] = {"create", "destroy", "resize", "list",
                                "info",   "creds",   "gpus",   "stats"};
    for (size_t i = 0; i < sizeof admin_only / sizeof admin_only[0]; i++) {
        qp_msg_t *m = qp_msg_new(admin_only[i]);
        qp_msg_set_str(m, "vgpu", other);
        qp_msg_set_str(m, "vm", "evil");
        qp_msg_set_str(m, "profile", "Q8");
        qp_msg_set_uint(m, "memory_mb", 8192);
        char err[QP_ERR_LEN];
        cr_assert_eq(raw_tenant_request(&f, m, err), -EACCES, "%s", admin_only[i]);
        cr_assert(strstr(err, "not allowed on tenant.sock"), "%s", err);
    }
    /* a tenant request naming another vGPU acts on its own session only */
    ctl_tenant_t *t = ctl_tenant_new(f.arb, f.id, f.secret);
    qp_msg_t *m = qp_new_mem_reserve(GIB, GIB, 0), *rep = NULL;
    qp_msg_set_str(m, "vgpu", other);
    char err[QP_ERR_LEN];
    cr_assert_eq(qp_conn_call(t->conn, &m, &rep, 3000, err), 0, "%s", err);
    qp_msg_destroy(&rep);
    cr_assert_eq(ctl_info(f.admin, other).memory_reserved, 0);
    cr_assert_eq(ctl_info(f.admin, f.id).memory_reserved, GIB);
    ctl_tenant_destroy(&t);
    qv_vgpu_t o = ctl_info(f.admin, other);
    cr_assert_eq(o.memory_mb, 1024, "nothing changed the other vGPU");
    cr_assert_str_eq(o.vm, "vm-o");
    teardown(&f);
}

Test(qa_tenant, the_admin_role_is_refused_on_the_tenant_socket)
{
    struct fixture f = setup(NULL);
    char err[QP_ERR_LEN];
    ctl_tenant_t *t = ctl_tenant_new(f.arb, f.id, f.secret);
    qp_msg_t *hello = qp_new_admin_hello("evil/1"), *rep = NULL;
    /* the connection opens its own tenant session first, so send the admin hello as a
     * request inside it: the arbiter must refuse the role, not the order */
    cr_assert_eq(qp_conn_call(t->conn, &hello, &rep, 3000, err), -EACCES);
    cr_assert(strstr(err, "role 'admin' is not served on tenant.sock"), "%s", err);
    qp_msg_destroy(&rep);
    ctl_tenant_destroy(&t);
    teardown(&f);
}

Test(qa_tenant, after_an_arbiter_restart_tenants_rejoin_and_are_charged_again)
{
    struct fixture f = setup(NULL);
    ctl_tenant_t *a = ctl_tenant_new(f.arb, f.id, f.secret);
    cr_assert_eq(ctl_tenant_reserve(a, GIB, GIB, NULL), 0);
    a->used = 700 * MIB;
    cr_assert_eq(ctl_tenant_hb(a, NULL), 0);
    qv_disconnect(&f.admin);
    qt_arbiter_kill(f.arb, SIGKILL);
    cr_assert_eq(qt_arbiter_restart(f.arb), 0);
    f.admin = ctl_client(f.arb);
    cr_assert_eq(ctl_info(f.admin, f.id).procs, 0, "a new arbiter knows no process");
    /* the next message meets a lost session: the connection says hello again with what
     * the process holds, then sends the heartbeat once more */
    cr_assert_eq(ctl_tenant_hb(a, NULL), 0);
    cr_assert_eq(a->sessions, 2);
    qv_vgpu_t v = ctl_info(f.admin, f.id);
    cr_assert_eq(v.procs, 1);
    cr_assert_eq(v.memory_used, 700 * MIB);
    cr_assert_eq(v.memory_reserved, 700 * MIB, "it holds what it uses, no more");
    ctl_tenant_destroy(&a);
    teardown(&f);
}

struct reserve_job {
    ctl_tenant_t *t;
    uint64_t need;
    int rc;
    uint64_t done_ns; /* qt_now_ns() when the reply came */
};

static void *reserve_in_thread(void *arg)
{
    struct reserve_job *j = arg;
    j->rc = ctl_tenant_reserve(j->t, j->need, j->need, NULL);
    j->done_ns = qt_now_ns();
    return NULL;
}

/* Regression: right after a restart a new process was granted memory that processes of
 * the previous arbiter still held but had not re-reported yet. */
Test(qa_tenant, after_a_restart_reservations_wait_for_the_old_processes_to_re_report)
{
    struct fixture f = setup(NULL);
    qv_disconnect(&f.admin);
    cr_assert_eq(qt_arbiter_restart(f.arb), 0);
    /* a new process asks for 1 GiB of the 2 GiB at once ... */
    ctl_tenant_t *fresh = ctl_tenant_new(f.arb, f.id, f.secret);
    cr_assert_eq(ctl_tenant_hello(fresh), 0);
    struct reserve_job job = {fresh, GIB, 1, 0};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, reserve_in_thread, &job), 0);
    /* ... while an old one, holding 1.5 GiB, reconnects as its agent does */
    qt_sleep_ms(200);
    ctl_tenant_t *old = ctl_tenant_new(f.arb, f.id, f.secret);
    old->used = 1536 * MIB;
    cr_assert_eq(ctl_tenant_hello(old), 0);
    uint64_t hello_ns = qt_now_ns();
    pthread_join(th, NULL);
    cr_assert_eq(job.rc, -EDQUOT, "the request was held until the old process re-reported");
    cr_assert_geq(job.done_ns, hello_ns, "answered after the re-report");
    cr_assert_eq(ctl_tenant_reserve(fresh, 256 * MIB, 256 * MIB, NULL), 0, "what is free is");
    f.admin = ctl_client(f.arb);
    qv_vgpu_t v = ctl_info(f.admin, f.id);
    cr_assert_leq(v.memory_reserved, 2 * GIB, "%llu bytes reserved",
                  (unsigned long long)v.memory_reserved);
    ctl_tenant_destroy(&old);
    ctl_tenant_destroy(&fresh);
    teardown(&f);
}

Test(qa_tenant, without_a_reconnect_grace_reservations_are_answered_at_once)
{
    struct fixture f = setup("[arbiter]\nreconnect_grace_ms = 0\n");
    qv_disconnect(&f.admin);
    cr_assert_eq(qt_arbiter_restart(f.arb), 0);
    ctl_tenant_t *fresh = ctl_tenant_new(f.arb, f.id, f.secret);
    cr_assert_eq(ctl_tenant_reserve(fresh, GIB, GIB, NULL), 0);
    ctl_tenant_destroy(&fresh);
    f.admin = ctl_client(f.arb);
    teardown(&f);
}

Test(qa_tenant, an_impossible_report_is_refused_and_charges_nothing)
{
    struct fixture f = setup(NULL);
    ctl_tenant_t *liar = ctl_tenant_new(f.arb, f.id, f.secret);
    liar->used = UINT64_MAX;
    cr_assert_eq(ctl_tenant_hello(liar), -EINVAL, "more than the GPU has, in the hello");
    liar->used = 9 * GIB; /* the GPU has 8 */
    cr_assert_eq(ctl_tenant_hello(liar), -EINVAL);
    liar->used = 0;
    cr_assert_eq(ctl_tenant_hello(liar), 0);
    liar->used = UINT64_MAX;
    cr_assert_eq(ctl_tenant_hb(liar, NULL), -EINVAL, "in a heartbeat");
    cr_assert_eq(ctl_tenant_reserve(liar, MIB, MIB, NULL), -EINVAL, "in a mem_reserve");
    qv_vgpu_t v = ctl_info(f.admin, f.id);
    cr_assert_eq(v.memory_used, 0);
    cr_assert_eq(v.memory_reserved, 0);
    /* the others are served as before */
    ctl_tenant_t *honest = ctl_tenant_new(f.arb, f.id, f.secret);
    cr_assert_eq(ctl_tenant_reserve(honest, GIB, 2 * GIB, NULL), 0);
    cr_assert_eq(honest->reserved, 2 * GIB);
    ctl_tenant_destroy(&honest);
    ctl_tenant_destroy(&liar);
    teardown(&f);
}

Test(qa_tenant, totals_stay_exact_as_many_sessions_join_report_and_leave_in_any_order)
{
    struct fixture f = setup(NULL);
    enum { N = 24 };
    ctl_tenant_t *t[N];
    uint64_t used = 0;
    for (int i = 0; i < N; i++) {
        t[i] = ctl_tenant_new(f.arb, f.id, f.secret);
        t[i]->used = (uint64_t)(i + 1) * MIB;
        used += t[i]->used;
        cr_assert_eq(ctl_tenant_hello(t[i]), 0);
    }
    cr_assert(ctl_wait_procs(f.admin, f.id, N, 2000));
    qv_vgpu_t v = ctl_info(f.admin, f.id);
    cr_assert_eq(v.memory_used, used);
    cr_assert_eq(v.memory_reserved, used, "re-reported memory is charged");
    /* every third reports more, then those in the middle of the list leave */
    for (int i = 0; i < N; i += 3) {
        t[i]->used += MIB;
        used += MIB;
        cr_assert_eq(ctl_tenant_hb(t[i], NULL), 0);
    }
    cr_assert_eq(ctl_info(f.admin, f.id).memory_used, used);
    unsigned left = N;
    for (int i = 1; i < N; i += 2) {
        used -= t[i]->used;
        ctl_tenant_destroy(&t[i]);
        left--;
    }
    cr_assert(ctl_wait_procs(f.admin, f.id, left, 3000));
    v = ctl_info(f.admin, f.id);
    cr_assert_eq(v.memory_used, used);
    for (int i = 0; i < N; i += 2)
        ctl_tenant_destroy(&t[i]);
    cr_assert(ctl_wait_procs(f.admin, f.id, 0, 3000));
    v = ctl_info(f.admin, f.id);
    cr_assert_eq(v.memory_used, 0);
    cr_assert_eq(v.memory_reserved, 0);
    teardown(&f);
}

static uint64_t stats_used_mb(qv_client_t *c)
{
    qv_stats_t *s;
    char err[QV_ERR_LEN];
    cr_assert_eq(qv_stats(c, &s, err), 0, "%s", err);
    uint64_t used = s->memory_used_mb;
    qv_stats_free(&s);
    return used;
}

/* Regression (issue 8 item 10): one tenant reporting false use on many connections showed
 * 160 GiB used on an 8 GiB host. A process counts once however many connections it
 * opens, and no figure exceeds what its GPU has. */
Test(qa_tenant, false_reports_on_many_connections_cannot_inflate_the_host_figures)
{
    struct fixture f = setup(NULL); /* three GPUs: 8 + 8 + 4 GiB */
    enum { N = 20 };
    ctl_tenant_t *t[N];
    for (int i = 0; i < N; i++) {
        t[i] = ctl_tenant_new(f.arb, f.id, f.secret);
        t[i]->used = 3 * GIB;
        cr_assert_eq(ctl_tenant_hello(t[i]), 0);
    }
    cr_assert(ctl_wait_procs(f.admin, f.id, N, 2000));
    cr_assert_eq(stats_used_mb(f.admin), 3072, "one process: its 3 GiB, once");
    qv_vgpu_t v = ctl_info(f.admin, f.id);
    cr_assert_eq(v.memory_used, 8 * GIB, "the vGPU's own figure stops at its GPU's 8 GiB");
    /* another process is another 1 GiB */
    int go[2], done[2];
    cr_assert_eq(pipe(go), 0);
    cr_assert_eq(pipe(done), 0);
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        ctl_tenant_t *c = ctl_tenant_new(f.arb, f.id, f.secret);
        c->used = GIB;
        char b = ctl_tenant_hello(c) == 0 ? 'y' : 'n';
        if (write(done[1], &b, 1) != 1 || read(go[0], &b, 1) != 1)
            _exit(1);
        _exit(0);
    }
    char b = 0;
    cr_assert_eq(read(done[0], &b, 1), 1);
    cr_assert_eq(b, 'y');
    cr_assert(ctl_wait_procs(f.admin, f.id, N + 1, 2000));
    cr_assert_eq(stats_used_mb(f.admin), 4096);
    /* and the sum of processes still stops at the GPU's memory */
    for (int i = 0; i < N; i++) {
        t[i]->used = 7 * GIB + 512 * MIB;
        cr_assert_eq(ctl_tenant_hb(t[i], NULL), 0);
    }
    cr_assert_eq(stats_used_mb(f.admin), 8192, "7.5 + 1 GiB on an 8 GiB GPU");
    cr_assert_eq(write(go[1], "x", 1), 1);
    cr_assert_eq(waitpid(child, NULL, 0), child);
    for (int i = 0; i < N; i++)
        ctl_tenant_destroy(&t[i]);
    teardown(&f);
}

/* ---- the tenants object without a daemon ----------------------------------------------
 * tenant.c's handlers on a made-up host, a real ledger and loop, answering through a
 * recording reply path: each peer is nothing but its struct. */

struct tw {
    qa_config_t cfg;
    char *dir;
    qa_host_t *host;
    qa_ledger_t *ledger;
    qa_loop_t *loop;
    qt_wire_t *w;
    qa_compute_t *compute;
    qa_tenants_t *tenants;
    qa_vgpu_t *v; /* a Q2 vGPU: 2 GiB */
    uint64_t next_id;
};

/* The previous arbiter's ledger in dir: process pid (its real start time) of vGPU vg-1
 * may hold bytes. */
static void previous_holding(const char *dir, pid_t pid, uint64_t bytes)
{
    char err[QP_ERR_LEN];
    uint64_t start = 0;
    qa_ledger_t *l = qa_ledger_open(dir, err);
    cr_assert_not_null(l, "%s", err);
    cr_assert_eq(qa_ledger_proc_start(pid, &start), 0);
    cr_assert_geq(qa_ledger_add(l, "vg-1", pid, start, bytes), 0);
    qa_ledger_close(&l);
}

static struct tw *tw_new(unsigned grace_ms, pid_t ghost_pid, uint64_t ghost_bytes)
{
    struct tw *t = calloc(1, sizeof *t);
    char err[QP_ERR_LEN];
    qa_config_defaults(&t->cfg);
    t->cfg.reconnect_grace_ms = grace_ms;
    t->cfg.reclaim_timeout_ms = 100;
    t->cfg.charge_real = false; /* no NVML here: nothing waits for a measurement */
    t->dir = qt_tmpdir();
    t->host = qt_host(1, &t->cfg);
    qa_spec_t spec = {.vm = "vm-u", .profile = "Q2", .gpu = -1};
    cr_assert_eq(qa_host_create(t->host, &spec, 0, &t->v, err), 0, "%s", err);
    if (ghost_bytes)
        previous_holding(t->dir, ghost_pid, ghost_bytes);
    cr_assert_not_null(t->ledger = qa_ledger_open(t->dir, err), "%s", err);
    cr_assert_not_null(t->loop = qa_loop_new());
    t->w = qt_wire_new();
    qa_compute_opts_t co = {1, t->loop, &t->cfg, &t->w->log, &t->w->reply};
    cr_assert_not_null(t->compute = qa_compute_new(&co));
    qa_tenants_opts_t o = {t->host, t->ledger, t->compute, t->loop, &t->cfg, &t->w->log,
                           &t->w->reply, NULL, NULL};
    cr_assert_not_null(t->tenants = qa_tenants_new(&o, err), "%s", err);
    cr_assert_eq(qa_tenants_serve(t->tenants), 0);
    cr_assert_eq(qa_dispatch_add(t->w->dispatch, qa_tenant_routes, qa_tenant_nroutes, t->tenants),
                 0);
    cr_assert_eq(
        qa_dispatch_add(t->w->dispatch, qa_compute_routes, qa_compute_nroutes, t->compute), 0);
    return t;
}

static void tw_free(struct tw *t, qa_peer_t **peers, size_t n)
{
    for (size_t i = 0; i < n; i++) { /* as the endpoint closes each connection */
        qa_tenants_end(t->tenants, peers[i], false);
        free(peers[i]);
    }
    qa_tenants_destroy(&t->tenants);
    cr_assert_null(t->tenants);
    qa_compute_destroy(&t->compute);
    qt_wire_destroy(&t->w);
    qa_loop_destroy(&t->loop);
    qa_ledger_close(&t->ledger);
    qa_host_destroy(&t->host);
    free(t->dir);
    free(t);
}

/* A peer of pid that said hello to v (used bytes already held); asserts it was let in. */
static qa_peer_t *joined(struct tw *t, pid_t pid, uint64_t used)
{
    qa_peer_t *p = qt_peer(QP_TENANT, pid);
    qt_wire_request(t->w, p, qt_hello("tenant", t->v->id, t->v->secret, pid, used));
    const qp_msg_t *r = qt_wire_last(t->w, p);
    cr_assert_str_eq(qp_msg_type(r), "ok", "%s", qt_text(r));
    cr_assert_not_null(p->tenant);
    return p;
}

/* Sends p's mem_reserve for need (and as much as want); returns the reply, or NULL when
 * none came (it waits). */
static const qp_msg_t *reserve(struct tw *t, qa_peer_t *p, uint64_t need, uint64_t want)
{
    size_t before = qt_wire_count(t->w, p, NULL);
    qp_msg_t *m = qp_new_mem_reserve(need, want, p->tenant ? p->tenant->used : 0);
    qp_msg_set_uint(m, "id", ++t->next_id);
    qt_wire_request(t->w, p, m);
    const qp_msg_t *r = qt_wire_last(t->w, p);
    return qt_wire_count(t->w, p, NULL) > before && qp_msg_id(r) == t->next_id ? r : NULL;
}

Test(qa_tenants, a_hello_with_the_secret_opens_a_numbered_session_and_a_new_one_replaces_it)
{
    struct tw *t = tw_new(0, 0, 0);
    qa_peer_t *p = joined(t, getpid(), 0);
    const qp_msg_t *r = qt_wire_last(t->w, p);
    uint64_t session;
    cr_assert_eq(qp_msg_get_uint(r, "session", &session), 0);
    cr_assert_eq(session, 1);
    qp_limits_t lim;
    char err[QP_ERR_LEN];
    cr_assert_eq(qp_limits_get(qp_msg_get_map(r, "vgpu"), &lim, err), 0, "%s", err);
    cr_assert_eq(lim.memory_quota, 2 * GIB);
    cr_assert_eq(t->v->procs, 1);
    cr_assert_eq(t->v->sessions, p->tenant);
    cr_assert_eq(qa_ledger_used(t->ledger), 1, "its holdings are in the ledger");
    cr_assert(p->session);

    qt_wire_request(t->w, p, qt_hello("tenant", t->v->id, t->v->secret, getpid(), 0));
    cr_assert_eq(qp_msg_get_uint(qt_wire_last(t->w, p), "session", &session), 0);
    cr_assert_eq(session, 2, "a new hello is a new session");
    cr_assert_eq(t->v->procs, 1, "that replaces the old one");
    cr_assert_eq(qa_ledger_used(t->ledger), 1);
    tw_free(t, &p, 1);
}

Test(qa_tenants, a_wrong_secret_is_refused_and_logged_once_per_connection)
{
    struct tw *t = tw_new(0, 0, 0);
    qa_peer_t *p = qt_peer(QP_TENANT, 4242);
    for (int i = 0; i < 3; i++) {
        qt_wire_request(t->w, p, qt_hello("tenant", t->v->id, "0123", 4242, 0));
        const qp_msg_t *r = qt_wire_last(t->w, p);
        cr_assert_str_eq(qt_code(r), QP_E_AUTH);
        cr_assert_str_eq(qt_text(r), "authentication failed: unknown vGPU or wrong secret");
    }
    qt_wire_request(t->w, p, qt_hello("tenant", "vg-99", t->v->secret, 4242, 0));
    cr_assert_str_eq(qt_code(qt_wire_last(t->w, p)), QP_E_AUTH, "an unknown vGPU alike");
    const char *log = qt_wire_log(t->w);
    const char *line = strstr(log, "tenant hello refused (pid 4242) from uid");
    cr_assert_not_null(line, "%s", log);
    cr_assert(strstr(line, "wrong secret"));
    cr_assert_null(strstr(line + 1, "tenant hello refused"), "once per connection:\n%s", log);
    cr_assert_null(p->tenant);
    cr_assert_eq(t->v->procs, 0);
    tw_free(t, &p, 1);
}

Test(qa_tenants, a_reservation_that_needs_a_siblings_unused_memory_waits_until_it_is_given_back)
{
    struct tw *t = tw_new(0, 0, 0);
    qa_peer_t *ps[2] = {joined(t, 100, 0), joined(t, 101, 0)};
    uint64_t got;
    const qp_msg_t *r = reserve(t, ps[0], 256 * MIB, 1536 * MIB);
    cr_assert_not_null(r);
    cr_assert_eq(qp_msg_get_uint(r, "reserved", &got), 0);
    cr_assert_eq(got, 1536 * MIB, "as much as it wanted, within the quota");
    cr_assert_null(reserve(t, ps[1], 1 * GIB, 1 * GIB), "it waits for the sibling");
    const qp_msg_t *push = qt_wire_last(t->w, ps[0]);
    cr_assert_str_eq(qp_msg_type(push), "mem_reclaim");
    uint64_t keep;
    cr_assert_eq(qp_msg_get_uint(push, "keep", &keep), 0);
    cr_assert_eq(keep, 1024 * MIB, "asked to keep what leaves room for 1 GiB");

    qp_msg_t *rel = qp_new_mem_release(keep);
    qp_msg_set_uint(rel, "id", ++t->next_id);
    qt_wire_request(t->w, ps[0], rel);
    r = qt_wire_last(t->w, ps[1]);
    cr_assert_str_eq(qp_msg_type(r), "ok", "granted once the memory came back: %s", qt_text(r));
    cr_assert_eq(qp_msg_get_uint(r, "reserved", &got), 0);
    cr_assert_eq(got, 1 * GIB);
    cr_assert_eq(t->v->mem_reserved, 2 * GIB);
    tw_free(t, ps, 2);
}

Test(qa_tenants, a_reservation_is_refused_when_the_sibling_keeps_its_memory_past_the_timeout)
{
    struct tw *t = tw_new(0, 0, 0);
    qa_peer_t *ps[2] = {joined(t, 100, 0), joined(t, 101, 0)};
    cr_assert_not_null(reserve(t, ps[0], 2 * GIB, 2 * GIB));
    cr_assert_null(reserve(t, ps[1], 512 * MIB, 512 * MIB));
    uint64_t t0 = qa_now_ns();
    qt_loop_for(t->loop, 300); /* reclaim_timeout_ms is 100 */
    const qp_msg_t *r = qt_wire_last(t->w, ps[1]);
    cr_assert_str_eq(qt_code(r), QP_E_QUOTA);
    cr_assert(strstr(qt_text(r), "the other processes did not give back enough in time"), "%s",
              qt_text(r));
    cr_assert_lt(qa_now_ns() - t0, 2000000000ull);
    cr_assert_eq(t->v->refused, 1);
    const qp_msg_t *big = reserve(t, ps[1], 3 * GIB, 3 * GIB);
    cr_assert_str_eq(qt_code(big), QP_E_QUOTA, "more than the quota, at once");
    cr_assert(strstr(qt_text(big), "that is more than the whole quota"), "%s", qt_text(big));
    tw_free(t, ps, 2);
}

Test(qa_tenants, during_the_reconnect_grace_reservations_are_held_then_decided_in_order)
{
    struct tw *t = tw_new(150, 0, 0);
    qa_peer_t *ps[2] = {joined(t, 100, 0), joined(t, 101, 0)};
    cr_assert(qa_tenants_in_grace(t->tenants));
    cr_assert_null(reserve(t, ps[0], 1 * GIB, 1 * GIB), "held during the grace");
    cr_assert_null(reserve(t, ps[1], 1536 * MIB, 1536 * MIB));
    cr_assert_eq(qt_wire_count(t->w, NULL, "mem_reclaim"), 0, "nothing is decided yet");
    qt_loop_for(t->loop, 200);
    cr_assert_not(qa_tenants_in_grace(t->tenants));
    cr_assert_eq(qt_wire_count(t->w, ps[0], "ok"), 2, "the first came first: granted");
    cr_assert_eq(qt_wire_count(t->w, ps[1], "ok"), 1, "the second waits (its hello's ok only)");
    cr_assert_eq(qt_wire_count(t->w, ps[0], "mem_reclaim"), 1,
                 "the first is asked for what it does not use");
    qt_loop_for(t->loop, 300); /* reclaim_timeout_ms is 100 */
    cr_assert_str_eq(qt_code(qt_wire_last(t->w, ps[1])), QP_E_QUOTA, "it was not given back");
    tw_free(t, ps, 2);
}

Test(qa_tenants, a_silent_session_is_dropped_and_its_memory_freed_while_its_connection_stays)
{
    struct tw *t = tw_new(0, 0, 0);
    qa_peer_t *p = joined(t, 100, 0);
    cr_assert_not_null(reserve(t, p, 1 * GIB, 1 * GIB));
    qa_tenants_tick(t->tenants, qa_now_ns());
    cr_assert_not_null(p->tenant, "not silent yet");
    qa_tenants_tick(t->tenants, p->last_seen + (t->cfg.heartbeat_timeout_ms + 1) * 1000000ull);
    cr_assert_null(p->tenant);
    cr_assert_not(p->session, "pending again: its hello timeout starts over");
    cr_assert_eq(t->v->mem_reserved, 0);
    cr_assert_eq(t->v->procs, 0);
    cr_assert(strstr(qt_wire_log(t->w), "silent for 1500 ms: session dropped, 1073741824 bytes"),
              "%s", qt_wire_log(t->w));
    qp_msg_t *hb = qp_new_hb(0, 0);
    qp_msg_set_uint(hb, "id", 77);
    qt_wire_request(t->w, p, hb);
    cr_assert_str_eq(qt_code(qt_wire_last(t->w, p)), QP_E_NOSESSION, "it must say hello again");
    tw_free(t, &p, 1);
}

Test(qa_tenants, a_request_waiting_when_its_session_ends_is_answered_nosession)
{
    struct tw *t = tw_new(0, 0, 0);
    qa_peer_t *ps[2] = {joined(t, 100, 0), joined(t, 101, 0)};
    cr_assert_not_null(reserve(t, ps[0], 2 * GIB, 2 * GIB));
    cr_assert_null(reserve(t, ps[1], 1 * GIB, 1 * GIB));
    qa_tenants_vgpu_gone(t->tenants, t->v);
    cr_assert_str_eq(qt_code(qt_wire_last(t->w, ps[1])), QP_E_NOSESSION);
    cr_assert_null(ps[0]->tenant);
    cr_assert_null(ps[1]->tenant);
    cr_assert_eq(t->v->mem_reserved, 0);
    cr_assert_eq(qa_ledger_used(t->ledger), 0, "their ledger slots are free");
    tw_free(t, ps, 2);
}

Test(qa_tenants, what_a_previous_arbiters_process_holds_stays_charged_until_it_says_hello)
{
    struct tw *t = tw_new(0, getpid(), 1536 * MIB);
    cr_assert_eq(t->v->ghost_bytes, 1536 * MIB);
    cr_assert_eq(t->v->mem_reserved, 1536 * MIB);
    qa_peer_t *ps[2] = {joined(t, 100, 0), NULL};
    cr_assert_null(reserve(t, ps[0], 1 * GIB, 1 * GIB), "waits for the old process");
    /* the old process (this one) says hello again, re-reporting 1 GiB */
    ps[1] = joined(t, getpid(), 1 * GIB);
    cr_assert_eq(t->v->ghost_bytes, 0);
    cr_assert_eq(t->v->mem_reserved, 2 * GIB, "its re-report took the ghost's place");
    cr_assert_str_eq(qp_msg_type(qt_wire_last(t->w, ps[0])), "ok");
    tw_free(t, ps, 2);
}

Test(qa_tenants, the_host_figure_counts_a_process_once_however_many_sessions_it_opened)
{
    struct tw *t = tw_new(0, 0, 0);
    qa_peer_t *ps[3] = {joined(t, 100, 512 * MIB), joined(t, 100, 768 * MIB),
                        joined(t, 101, 256 * MIB)};
    cr_assert_eq(qa_tenants_gpu_used(t->tenants, 0), 1024 * MIB, "768 for pid 100, 256 for 101");
    cr_assert_eq(qa_tenants_host_used(t->tenants), 1024 * MIB);
    cr_assert_eq(qa_tenants_gpu_used(t->tenants, 7), 0, "no such GPU");
    tw_free(t, ps, 3);
}
