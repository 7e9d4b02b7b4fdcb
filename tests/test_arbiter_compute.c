/* test_arbiter_compute.c - compute leases through a real qarbiter on the sim: fake
 * tenants speak tok_* on tenant.sock as the shim does; grants, turns, extensions and
 * their revocation, a hung holder, a killed holder, a destroyed vGPU, live resize and
 * the utilisation INFO reports. Timing only bounds from below (a lease is not taken
 * back before its grace) or with generous ceilings. Then compute.c alone, without a
 * daemon: its handlers and pushes on sessions made by hand. */
#include "arbiter/compute.h"
#include "arbiter/tenant.h"
#include "proto/records.h"
#include "proto/schema.h"
#include "tests/ctl_support.h"
#include "tests/handler_support.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MS 1000000ull

/* A vGPU on GPU 0 with share and limit (0: none). */
static void vgpu_on_0(qv_client_t *c, unsigned share, unsigned limit, char id[QV_ID_LEN],
                      char secret[QV_SECRET_LEN])
{
    qv_create_t req = {.vm = "vm-c", .memory_mb = 512, .share = share, .gpu = 0};
    req.has_limit = limit != 0;
    req.limit = limit;
    qv_vgpu_t v;
    char err[QV_ERR_LEN];
    cr_assert_eq(qv_create(c, &req, &v, secret, err), 0, "%s", err);
    cr_assert_eq(v.gpu, 0);
    memcpy(id, v.id, QV_ID_LEN);
}

struct two {
    qt_arbiter_t *arb;
    qv_client_t *c;
    char ida[QV_ID_LEN], sa[QV_SECRET_LEN], idb[QV_ID_LEN], sb[QV_SECRET_LEN];
    ctl_tenant_t *a, *b;
};

/* Two vGPUs with share 50 on GPU 0 and one process of each, in session, on an arbiter
 * with the [arbiter] keys given (may be NULL). Bursts and preemption are off unless keys
 * says otherwise: these tests follow one lease at a time. */
static struct two two(const char *keys)
{
    struct two f;
    char *config =
        qt_strf("[arbiter]\n%s%s", keys ? keys : "",
                keys && strstr(keys, "burst_ms") ? "" : "burst_ms = 0\npreempt_after_ms = 0\n");
    f.arb = ctl_arbiter(CTL_GPUS, config);
    free(config);
    f.c = ctl_client(f.arb);
    vgpu_on_0(f.c, 50, 0, f.ida, f.sa);
    vgpu_on_0(f.c, 50, 0, f.idb, f.sb);
    f.a = ctl_tenant_new(f.arb, f.ida, f.sa);
    f.b = ctl_tenant_new(f.arb, f.idb, f.sb);
    cr_assert_eq(ctl_tenant_hello(f.a), 0);
    cr_assert_eq(ctl_tenant_hello(f.b), 0);
    return f;
}

static void two_done(struct two *f)
{
    ctl_tenant_destroy(&f->a);
    ctl_tenant_destroy(&f->b);
    qv_disconnect(&f->c);
    qt_arbiter_destroy(&f->arb);
}

/* t asks for the GPU and gets a new lease within 3 s. */
static void ask_and_get(ctl_tenant_t *t)
{
    int grants = t->grants;
    uint64_t before = t->lease;
    cr_assert_eq(ctl_tenant_send(t, qp_new_tok_req()), 0);
    cr_assert(ctl_tenant_pump_until(t, &t->grants, grants + 1, 3000), "no grant came");
    cr_assert_gt(t->lease, before, "a new lease number");
}

Test(qa_compute, a_tenant_that_asks_is_granted_a_lease)
{
    struct two f = two(NULL);
    ask_and_get(f.a);
    cr_assert_eq(f.a->lease, 1, "leases are numbered per session from 1");
    cr_assert(f.a->lease_ns >= 2 * MS && f.a->lease_ns <= 50 * MS, "lease of %llu ns",
              (unsigned long long)f.a->lease_ns);
    /* A second tok_req while holding is ignored: no second grant. */
    cr_assert_eq(ctl_tenant_send(f.a, qp_new_tok_req()), 0);
    ctl_tenant_pump(f.a, 100);
    cr_assert_eq(f.a->grants, 1);
    /* Giving it back and asking again gives lease 2. */
    cr_assert_eq(ctl_tenant_send(f.a, qp_new_tok_ret(1, 1000, false)), 0);
    ask_and_get(f.a);
    cr_assert_eq(f.a->lease, 2);
    two_done(&f);
}

/* With the defaults: b, well below its share, asks while a holds the GPU and is granted
 * a burst of 2 ms at once; a keeps its lease; b's tok_ext is not answered (a burst runs to
 * its end), and its return leaves a holding. */
Test(qa_compute, a_vgpu_well_below_its_share_runs_a_burst_beside_the_holder)
{
    struct two f = two("burst_ms = 2\n");
    ask_and_get(f.a);
    ask_and_get(f.b);
    cr_assert_eq(f.b->lease_ns, 2 * MS, "a burst");
    cr_assert_eq(ctl_tenant_send(f.b, qp_new_tok_ext(f.b->lease)), 0);
    ctl_tenant_pump(f.b, 100);
    cr_assert_eq(f.b->grants + f.b->revokes, 1, "not extended, not revoked");
    cr_assert_eq(ctl_tenant_send(f.b, qp_new_tok_ret(f.b->lease, 1 * MS, false)), 0);
    ctl_tenant_pump(f.a, 100);
    cr_assert_eq(f.a->revokes, 0, "a keeps its lease");
    cr_assert_eq(ctl_tenant_send(f.a, qp_new_tok_ext(f.a->lease)), 0);
    cr_assert(ctl_tenant_pump_until(f.a, &f.a->grants, 2, 3000), "and extends it");
    two_done(&f);
}

Test(qa_compute, two_tenants_of_one_gpu_take_turns)
{
    struct two f = two(NULL);
    ask_and_get(f.a);
    cr_assert_eq(ctl_tenant_send(f.b, qp_new_tok_req()), 0);
    ctl_tenant_pump(f.b, 100);
    cr_assert_eq(f.b->grants, 0, "b waits while a holds the GPU");
    /* A return naming another lease is ignored. */
    cr_assert_eq(ctl_tenant_send(f.a, qp_new_tok_ret(f.a->lease + 5, 0, false)), 0);
    ctl_tenant_pump(f.b, 50);
    cr_assert_eq(f.b->grants, 0);
    /* a returns with more work: b goes next, then a again. */
    cr_assert_eq(ctl_tenant_send(f.a, qp_new_tok_ret(f.a->lease, 1 * MS, true)), 0);
    cr_assert(ctl_tenant_pump_until(f.b, &f.b->grants, 1, 3000), "b is granted");
    ctl_tenant_pump(f.a, 50);
    cr_assert_eq(f.a->grants, 1, "a waits its turn");
    cr_assert_eq(ctl_tenant_send(f.b, qp_new_tok_ret(f.b->lease, 1 * MS, false)), 0);
    cr_assert(ctl_tenant_pump_until(f.a, &f.a->grants, 2, 3000), "a is granted again");
    cr_assert_eq(f.a->lease, 2);
    two_done(&f);
}

Test(qa_compute, a_lone_tenant_is_extended_and_revoked_once_another_waits)
{
    struct two f = two(NULL);
    ask_and_get(f.a);
    uint64_t lease = f.a->lease;
    cr_assert_eq(ctl_tenant_send(f.a, qp_new_tok_ext(lease)), 0);
    cr_assert(ctl_tenant_pump_until(f.a, &f.a->grants, 2, 3000), "the extension");
    cr_assert_eq(f.a->lease, lease, "an extension keeps the lease number");
    cr_assert_eq(f.a->revokes, 0);
    cr_assert_eq(ctl_tenant_send(f.b, qp_new_tok_req()), 0);
    ctl_tenant_pump(f.b, 50); /* let the arbiter see b waiting */
    cr_assert_eq(ctl_tenant_send(f.a, qp_new_tok_ext(lease)), 0);
    cr_assert(ctl_tenant_pump_until(f.a, &f.a->revokes, 1, 3000), "revoked: b waits");
    cr_assert_eq(f.a->revoked, lease);
    cr_assert_eq(f.a->grants, 2);
    cr_assert_eq(f.b->grants, 0, "not before a gives the GPU back");
    cr_assert_eq(ctl_tenant_send(f.a, qp_new_tok_ret(lease, 1 * MS, false)), 0);
    cr_assert(ctl_tenant_pump_until(f.b, &f.b->grants, 1, 3000));
    two_done(&f);
}

Test(qa_compute, a_holder_that_never_returns_is_revoked_after_the_grace)
{
    struct two f = two("lease_grace_ms = 300\nquantum_max_ms = 10\n");
    ask_and_get(f.a);
    uint64_t granted = f.a->granted_at;
    cr_assert_eq(ctl_tenant_send(f.b, qp_new_tok_req()), 0);
    cr_assert(ctl_tenant_pump_until(f.b, &f.b->grants, 1, 5000), "b gets the GPU");
    uint64_t waited = f.b->granted_at - granted;
    cr_assert_geq(waited, f.a->lease_ns + 300 * MS - 20 * MS,
                  "not before the lease's end plus the grace (%llu ms)",
                  (unsigned long long)(waited / MS));
    cr_assert(ctl_tenant_pump_until(f.a, &f.a->revokes, 1, 3000), "a is told");
    cr_assert_eq(f.a->revoked, f.a->lease);
    /* Its late return changes nothing for b, but its `more` queues a (no tok_req). */
    cr_assert_eq(ctl_tenant_send(f.a, qp_new_tok_ret(f.a->lease, 0, true)), 0);
    ctl_tenant_pump(f.a, 100);
    cr_assert_eq(f.a->grants, 1, "b holds the GPU");
    cr_assert_eq(ctl_tenant_send(f.b, qp_new_tok_ret(f.b->lease, 1 * MS, false)), 0);
    cr_assert(ctl_tenant_pump_until(f.a, &f.a->grants, 2, 3000));
    two_done(&f);
}

Test(qa_compute, a_killed_holder_gives_the_gpu_back_at_once)
{
    /* The grace is long: only the end of the session can free the GPU in time. */
    struct two f = two("lease_grace_ms = 60000\n");
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        ctl_tenant_t *t = ctl_tenant_new(f.arb, f.ida, f.sa);
        if (ctl_tenant_hello(t) != 0 || ctl_tenant_send(t, qp_new_tok_req()) != 0 ||
            !ctl_tenant_pump_until(t, &t->grants, 1, 3000))
            _exit(3);
        if (write(pfd[1], "g", 1) != 1)
            _exit(4);
        for (;;)
            pause();
    }
    char c;
    cr_assert_eq(read(pfd[0], &c, 1), 1, "the child holds the GPU");
    cr_assert_eq(ctl_tenant_send(f.b, qp_new_tok_req()), 0);
    ctl_tenant_pump(f.b, 100);
    cr_assert_eq(f.b->grants, 0);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    cr_assert(ctl_tenant_pump_until(f.b, &f.b->grants, 1, 3000), "freed with the session");
    /* Destroying the holder's vGPU frees the GPU as well. */
    char err[QV_ERR_LEN];
    cr_assert_eq(ctl_tenant_send(f.a, qp_new_tok_req()), 0);
    ctl_tenant_pump(f.a, 100);
    cr_assert_eq(f.a->grants, 0, "a waits for b");
    cr_assert_eq(qv_destroy(f.c, f.idb, err), 0, "%s", err);
    cr_assert(ctl_tenant_pump_until(f.a, &f.a->grants, 1, 3000), "b's vGPU is gone");
    two_done(&f);
}

Test(qa_compute, a_resize_applies_to_the_next_extension)
{
    struct two f = two(NULL);
    ask_and_get(f.a);
    uint64_t lease = f.a->lease;
    qv_resize_t r = {.has_limit = 1, .limit = 50};
    qv_vgpu_t v;
    char err[QV_ERR_LEN];
    cr_assert_eq(qv_resize(f.c, f.ida, &r, &v, err), 0, "%s", err);
    cr_assert(ctl_tenant_pump_until(f.a, &f.a->limits, 1, 3000), "the limits push");
    /* A new limit starts with an empty bucket: no more time now. */
    cr_assert_eq(ctl_tenant_send(f.a, qp_new_tok_ext(lease)), 0);
    cr_assert(ctl_tenant_pump_until(f.a, &f.a->revokes, 1, 3000), "the limit revokes");
    cr_assert_eq(ctl_tenant_send(f.a, qp_new_tok_ret(lease, 1 * MS, true)), 0);
    cr_assert(ctl_tenant_pump_until(f.a, &f.a->grants, 2, 3000), "granted once refilled");
    cr_assert_leq(f.a->lease_ns, 200 * MS / 2, "no longer than its bucket holds");
    /* Lifting the limit lets the lone tenant be extended again. */
    r.limit = 0;
    cr_assert_eq(qv_resize(f.c, f.ida, &r, &v, err), 0, "%s", err);
    cr_assert(ctl_tenant_pump_until(f.a, &f.a->limits, 2, 3000));
    cr_assert_eq(ctl_tenant_send(f.a, qp_new_tok_ext(f.a->lease)), 0);
    cr_assert(ctl_tenant_pump_until(f.a, &f.a->grants, 3, 3000), "extended");
    cr_assert_eq(f.a->revokes, 1);
    two_done(&f);
}

Test(qa_compute, info_reports_the_time_a_vgpu_held_leases)
{
    struct two f = two(NULL);
    ask_and_get(f.a);
    /* a keeps the GPU by extensions for 1.5 s; b never asks. */
    uint64_t end = qt_now_ns() + 1500 * MS;
    while (qt_now_ns() < end) {
        int grants = f.a->grants;
        cr_assert_eq(ctl_tenant_send(f.a, qp_new_tok_ext(f.a->lease)), 0);
        cr_assert(ctl_tenant_pump_until(f.a, &f.a->grants, grants + 1, 3000));
    }
    double ua = ctl_info(f.c, f.ida).util, ub = ctl_info(f.c, f.idb).util;
    cr_assert_gt(ua, 50, "a held the GPU all along: %.1f%%", ua);
    cr_assert_lt(ub, 1, "b never asked: %.1f%%", ub);
    two_done(&f);
}

Test(qa_compute, gpus_report_time_under_lease_and_leases_taken_back)
{
    struct two f = two("lease_grace_ms = 100\nquantum_max_ms = 10\n");
    ask_and_get(f.a); /* and never give it back */
    cr_assert(ctl_tenant_pump_until(f.a, &f.a->revokes, 1, 3000), "taken back");
    bool seen = false;
    qp_gpu_t g;
    for (int i = 0; i < 40 && !seen; i++) {
        g = ctl_gpu_record(f.arb, 0);
        seen = g.hung == 1 && g.leased > 1;
        if (!seen)
            qt_sleep_ms(50);
    }
    cr_assert(seen, "GPU 0: hung %llu, leased %.1f%%", (unsigned long long)g.hung, g.leased);
    cr_assert_eq(ctl_gpu_record(f.arb, 1).hung, 0);
    cr_assert_float_eq(ctl_gpu_record(f.arb, 1).leased, 0.0, 1e-9);
    two_done(&f);
}

/* ---- compute.c alone ----------------------------------------------------------------- */

struct cw {
    qa_config_t cfg;
    qa_host_t *host;
    qa_loop_t *loop;
    qt_wire_t *w;
    qa_compute_t *c;
    qa_vgpu_t *v[2];        /* two vGPUs of share 50 on GPU 0 */
    qa_peer_t peer[2];      /* a process of each ... */
    qa_session_t session[2]; /* ... in session, as tenant.c opens one */
};

static struct cw *cw_new(void)
{
    struct cw *f = calloc(1, sizeof *f);
    char err[QP_ERR_LEN];
    qa_config_defaults(&f->cfg);
    f->cfg.lease_grace_ms = 100;
    f->cfg.burst_ms = 0; /* lease by lease: the second vGPU waits (bursts: qa_compute) */
    f->cfg.preempt_after_ms = 0;
    f->host = qt_host(1, &f->cfg);
    cr_assert_not_null(f->loop = qa_loop_new());
    f->w = qt_wire_new();
    qa_compute_opts_t o = {1, f->loop, &f->cfg, &f->w->log, &f->w->reply};
    cr_assert_not_null(f->c = qa_compute_new(&o));
    cr_assert_eq(qa_dispatch_add(f->w->dispatch, qa_compute_routes, qa_compute_nroutes, f->c), 0);
    for (int i = 0; i < 2; i++) {
        qa_spec_t spec = {.vm = "vm", .memory_mb = 512, .share = 50, .gpu = 0};
        cr_assert_eq(qa_host_create(f->host, &spec, 0, &f->v[i], err), 0, "%s", err);
        f->peer[i] = (qa_peer_t){.ep = QP_TENANT, .cred_pid = 100 + i, .session = true};
        f->session[i] = (qa_session_t){.peer = &f->peer[i], .vgpu = f->v[i]};
        f->peer[i].tenant = &f->session[i];
        cr_assert_eq(qa_compute_join(f->c, &f->session[i]), 0);
        cr_assert_not_null(f->session[i].proc);
        cr_assert_not_null(f->v[i]->ent, "its entity comes with its first process");
    }
    return f;
}

static void cw_free(struct cw *f)
{
    for (int i = 0; i < 2; i++) {
        qa_compute_leave(f->c, &f->session[i]);
        cr_assert_null(f->session[i].proc);
        qa_compute_vgpu_gone(f->c, f->v[i]);
        cr_assert_null(f->v[i]->ent);
    }
    qa_compute_destroy(&f->c);
    qt_wire_destroy(&f->w);
    qa_loop_destroy(&f->loop);
    qa_host_destroy(&f->host);
    free(f);
}

/* The lease of the last tok_grant sent to process i, 0 if none. */
static uint64_t granted(struct cw *f, int i)
{
    const qp_msg_t *m = qt_wire_last(f->w, &f->peer[i]);
    qp_tok_t t;
    char err[QP_ERR_LEN];
    return m && qp_tok_get(m, &t, err) == 0 && t.kind == QP_TOK_GRANT ? t.lease : 0;
}

Test(qa_compute_alone, a_request_is_granted_and_a_return_hands_the_gpu_to_the_next_in_line)
{
    struct cw *f = cw_new();
    qt_wire_request(f->w, &f->peer[0], qp_new_tok_req());
    uint64_t a = granted(f, 0);
    cr_assert_gt(a, 0, "a free GPU is granted at once");
    qt_wire_request(f->w, &f->peer[1], qp_new_tok_req());
    cr_assert_eq(granted(f, 1), 0, "the GPU is a's: b waits");
    qt_wire_request(f->w, &f->peer[0], qp_new_tok_ret(a, 1000000, false));
    cr_assert_gt(granted(f, 1), 0, "b's turn as soon as a returned");
    cr_assert_eq(qt_wire_count(f->w, &f->peer[0], "tok_grant"), 1, "a asked for no more");
    cr_assert_eq(qa_metrics_get(&f->w->metrics, QP_TENANT, QP_REQ_TOK_REQ)->count, 2);
    cw_free(f);
}

Test(qa_compute_alone, a_holder_that_never_returns_is_taken_back_after_the_grace_and_logged)
{
    struct cw *f = cw_new();
    qt_wire_request(f->w, &f->peer[0], qp_new_tok_req());
    cr_assert_gt(granted(f, 0), 0);
    qt_wire_request(f->w, &f->peer[1], qp_new_tok_req());
    qt_loop_for(f->loop, 600); /* a lease of 50 ms at most, then lease_grace_ms 100 */
    cr_assert_eq(qt_wire_count(f->w, &f->peer[0], "tok_revoke"), 1, "a's lease taken back");
    cr_assert_eq(qt_wire_count(f->w, &f->peer[1], "tok_grant"), 1,
                 "b got the GPU without a's return");
    qa_compute_sample(f->c, f->host);
    cr_assert_geq(qa_host_gpu(f->host, 0)->hung, 1, "a's lease, and b's if it ran out too");
    cr_assert(strstr(qt_wire_log(f->w), "kept its compute lease 100 ms past its end: taken back"),
              "%s", qt_wire_log(f->w));
    cw_free(f);
}

Test(qa_compute_alone, a_session_without_lease_state_is_told_to_reconnect)
{
    struct cw *f = cw_new();
    qa_compute_leave(f->c, &f->session[0]); /* as if joining had failed */
    qt_wire_request(f->w, &f->peer[0], qp_new_tok_req());
    const qp_msg_t *r = qt_wire_last(f->w, &f->peer[0]);
    cr_assert_str_eq(qt_code(r), QP_E_INTERNAL);
    cr_assert(strstr(qt_text(r), "reconnect"), "%s", qt_text(r));
    cw_free(f);
}
