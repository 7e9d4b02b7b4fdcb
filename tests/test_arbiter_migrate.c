/* test_arbiter_migrate.c - the administrator's migrate and balance without a daemon: the
 * handlers of migrate.c over a real mover (mover.c), balancer (balancer.c), compute and
 * store on a made-up host of two GPUs, answering through a recording reply path, with
 * the loop run by the test. Most vGPUs here have no processes, so no driver call is made:
 * the request side (refusals, answers only once a move ended, a connection gone
 * meanwhile), the commit (record, host, the `moved` callback) and the balancer's plan
 * carried out or not. Then one sim_worker process in a session made by hand, moved by
 * the real checkpoint helper on the simulated driver, or rolled back where the driver
 * cannot restore it. Moves of shim workloads under a real qarbiter: test_arbiter_mover.c;
 * the helper's calls one by one: test_arbiter_ckpt.c. */
#include "arbiter/compute.h"
#include "arbiter/migrate.h"
#include "arbiter/tenant.h"
#include "proto/records.h"
#include "proto/schema.h"
#include "tests/handler_support.h"
#include "tests/harness.h"
#include "tests/shim_support.h"
#include "tests/sim_support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

struct fixture {
    qa_config_t cfg;
    char *dir; /* the state dir */
    qa_host_t *host;
    qa_store_t *store;
    qa_loop_t *loop;
    qt_wire_t *w;
    qa_compute_t *compute;
    qa_mover_t *mover;
    qa_balancer_t *balancer;
    qa_migrate_t *migrate;
    qa_peer_t *p;    /* an administrator with a session */
    int nmoved;      /* calls of the mover's `moved` */
    char moved[QP_ID_LEN];
};

static void on_moved(void *arg, qa_vgpu_t *v)
{
    struct fixture *f = arg;
    f->nmoved++;
    snprintf(f->moved, sizeof f->moved, "%s", v->id);
}

/* The fixture on host (NULL: qt_host's two made-up GPUs). */
static struct fixture *setup_on(qa_host_t *(*host)(const qa_config_t *cfg))
{
    struct fixture *f = calloc(1, sizeof *f);
    char err[QP_ERR_LEN];
    qa_config_defaults(&f->cfg);
    f->cfg.balance_interval_s = 0; /* only when asked: no timer of its own */
    f->dir = qt_tmpdir();
    f->host = host ? host(&f->cfg) : qt_host(2, &f->cfg);
    cr_assert_not_null(f->store = qa_store_open(f->dir, err), "%s", err);
    cr_assert_not_null(f->loop = qa_loop_new());
    f->w = qt_wire_new();
    qa_compute_opts_t co = {2, f->loop, &f->cfg, &f->w->log, &f->w->reply};
    cr_assert_not_null(f->compute = qa_compute_new(&co));
    char *exe = qt_build_path("qarbiter");
    qa_mover_env_t env = {
        .loop = f->loop,
        .log = &f->w->log,
        .host = f->host,
        .store = f->store,
        .compute = f->compute,
        .state_dir = f->dir,
        .exe = exe,
        .params = {.drain_ns = 1000000000ull,
                   .lock_ns = 1000000000ull,
                   .op_ns = 1000000000ull,
                   .poll_ns = 1000000ull,
                   .retry_ns = 1000000ull,
                   .retries = 1},
        .moved = on_moved,
        .arg = f,
    };
    cr_assert_not_null(f->mover = qa_mover_new(&env));
    free(exe); /* copied */
    qa_balancer_env_t be = {f->loop, &f->w->log, f->host, &f->cfg, f->mover};
    cr_assert_not_null(f->balancer = qa_balancer_new(&be));
    qa_migrate_opts_t mo = {f->host, f->mover, f->balancer, &f->w->reply, &f->w->log};
    cr_assert_not_null(f->migrate = qa_migrate_new(&mo));
    cr_assert_eq(
        qa_dispatch_add(f->w->dispatch, qa_migrate_routes, qa_migrate_nroutes, f->migrate), 0);
    f->p = qt_peer(QP_ADMIN, 1);
    f->p->session = true;
    return f;
}

static struct fixture *setup(void)
{
    return setup_on(NULL);
}

static void teardown(struct fixture *f)
{
    qa_mover_destroy(&f->mover); /* first: moves still queued are reported to migrate.c */
    qa_migrate_destroy(&f->migrate);
    cr_assert_null(f->migrate);
    qa_balancer_destroy(&f->balancer);
    qa_compute_destroy(&f->compute);
    qt_wire_destroy(&f->w);
    qa_loop_destroy(&f->loop);
    qa_store_close(&f->store);
    qa_host_destroy(&f->host);
    free(f->p);
    free(f->dir);
    free(f);
}

/* A vGPU of 1 GiB and share 20 on GPU gpu, using util percent of it. */
static qa_vgpu_t *vgpu(struct fixture *f, unsigned gpu, unsigned util)
{
    char err[QP_ERR_LEN];
    qa_spec_t spec = {.vm = "vm", .memory_mb = 1024, .share = 20, .gpu = (int)gpu};
    qa_vgpu_t *v;
    cr_assert_eq(qa_host_create(f->host, &spec, 0, &v, err), 0, "%s", err);
    v->util = util;
    qa_host_gpu(f->host, gpu)->util += util;
    return v;
}

static qp_msg_t *migrate_req(const char *id, int64_t gpu)
{
    qp_msg_t *m = qp_new_request(QP_REQ_MIGRATE);
    qp_msg_set_str(m, "vgpu", id);
    qp_msg_set_int(m, "gpu", gpu);
    return m;
}

/* Runs the loop until p got n messages (at most 20 s: a move of a process starts the
 * checkpoint helper); returns the last. */
static const qp_msg_t *await(struct fixture *f, size_t n)
{
    for (int i = 0; i < 2000 && qt_wire_count(f->w, f->p, NULL) < n; i++)
        qt_loop_for(f->loop, 10);
    cr_assert_eq(qt_wire_count(f->w, f->p, NULL), n, "%zu answers, not %zu",
                 qt_wire_count(f->w, f->p, NULL), n);
    return qt_wire_last(f->w, f->p);
}

Test(qa_migrate, a_vgpu_moves_and_the_answer_comes_once_its_record_says_the_new_gpu)
{
    struct fixture *f = setup();
    qa_vgpu_t *v = vgpu(f, 0, 0);
    qt_wire_request(f->w, f->p, migrate_req(v->id, 1));
    cr_assert_eq(qt_wire_count(f->w, f->p, NULL), 0, "answered when the move ended, not before");
    cr_assert_eq(qa_mover_pending(f->mover), 1);
    const qp_msg_t *r = await(f, 1);
    cr_assert_str_eq(qp_msg_type(r), "ok", "%s", qt_text(r));
    int64_t from = -1, to = -1;
    cr_assert_eq(qp_msg_get_int(r, "from", &from), 0);
    cr_assert_eq(qp_msg_get_int(r, "to", &to), 0);
    cr_assert_eq(from, 0);
    cr_assert_eq(to, 1);
    qp_info_t info;
    char err[QP_ERR_LEN];
    cr_assert_eq(qp_info_get(qp_msg_get_map(r, "vgpu"), &info, err), 0, "%s", err);
    cr_assert_str_eq(info.id, v->id);
    cr_assert_eq(info.gpu, 1);
    cr_assert_str_eq(info.gpu_uuid, "GPU-bbbb");

    cr_assert_eq(v->gpu, 1, "the host has it on GPU 1");
    char uuid[QP_UUID_LEN];
    cr_assert_eq(qa_store_peek_gpu(f->dir, v->id, uuid, err), 0, "%s", err);
    cr_assert_str_eq(uuid, "GPU-bbbb", "its record says so for a restart");
    cr_assert_eq(f->nmoved, 1, "its processes are told once");
    cr_assert_str_eq(f->moved, v->id);
    cr_assert_eq(qa_mover_pending(f->mover), 0);
    cr_assert(strstr(qt_wire_log(f->w), v->id), "one line for the move: %s", qt_wire_log(f->w));
    teardown(f);
}

Test(qa_migrate, what_cannot_move_is_refused_in_one_line_and_nothing_changes)
{
    struct fixture *f = setup();
    qa_vgpu_t *v = vgpu(f, 0, 0);
    static const struct {
        const char *vgpu;
        int64_t gpu; /* INT64_MIN: by gpu_uuid "GPU-zzzz"; INT64_MAX: no GPU at all */
        const char *code, *says;
    } bad[] = {
        {"vg-9", 1, QP_E_NOTFOUND, "there is no vGPU 'vg-9' (qgpuctl list shows them)"},
        {"vg-1", INT64_MIN, QP_E_NOTFOUND, "there is no GPU GPU-zzzz here (qgpuctl gpus shows them)"},
        {"vg-1", INT64_MAX, QP_E_INVALID, "migrate needs a GPU: gpu (an index) or gpu_uuid"},
        {"vg-1", 0, QP_E_INVALID, "vGPU vg-1 is on GPU 0 already"},
        {"vg-1", 7, QP_E_NOTFOUND, "there is no GPU 7 (this host has GPUs 0 to 1)"},
        {"vg-1", -1, QP_E_NOTFOUND, "there is no GPU -1 (this host has GPUs 0 to 1)"},
        {"vg-1", (int64_t)1 << 40, QP_E_NOTFOUND,
         "there is no GPU 1099511627776 (this host has GPUs 0 to 1)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        qp_msg_t *m = qp_new_request(QP_REQ_MIGRATE);
        qp_msg_set_str(m, "vgpu", bad[i].vgpu);
        if (bad[i].gpu == INT64_MIN)
            qp_msg_set_str(m, "gpu_uuid", "GPU-zzzz");
        else if (bad[i].gpu != INT64_MAX)
            qp_msg_set_int(m, "gpu", bad[i].gpu);
        qt_wire_request(f->w, f->p, m);
        const qp_msg_t *r = await(f, i + 1);
        cr_assert_str_eq(qt_code(r), bad[i].code, "case %zu: %s", i, qt_text(r));
        cr_assert_str_eq(qt_text(r), bad[i].says, "case %zu", i);
    }
    cr_assert_eq(v->gpu, 0);
    cr_assert_eq(v->moving, 0, "no move left begun");
    cr_assert_eq(f->nmoved, 0);
    teardown(f);
}

Test(qa_migrate, a_move_by_gpu_uuid_goes_where_the_uuid_says)
{
    struct fixture *f = setup();
    qa_vgpu_t *v = vgpu(f, 1, 0);
    qp_msg_t *m = qp_new_request(QP_REQ_MIGRATE);
    qp_msg_set_str(m, "vgpu", v->id);
    qp_msg_set_str(m, "gpu_uuid", "GPU-aaaa");
    qt_wire_request(f->w, f->p, m);
    cr_assert_str_eq(qp_msg_type(await(f, 1)), "ok");
    cr_assert_eq(v->gpu, 0);
    teardown(f);
}

Test(qa_migrate, an_administrator_gone_meanwhile_is_answered_nothing_and_the_move_happens)
{
    struct fixture *f = setup();
    qa_vgpu_t *v = vgpu(f, 0, 0);
    qt_wire_request(f->w, f->p, migrate_req(v->id, 1));
    qa_mover_forget(f->mover, f->p); /* its connection closed (the wiring calls this) */
    for (int i = 0; i < 500 && qa_mover_pending(f->mover); i++)
        qt_loop_for(f->loop, 10);
    cr_assert_eq(qa_mover_pending(f->mover), 0);
    cr_assert_eq(qt_wire_count(f->w, NULL, NULL), 0, "nobody to answer");
    cr_assert_eq(v->gpu, 1);
    cr_assert_eq(f->nmoved, 1);
    teardown(f);
}

Test(qa_migrate, moves_asked_together_run_one_after_the_other_and_each_is_answered)
{
    struct fixture *f = setup();
    qa_vgpu_t *a = vgpu(f, 0, 0), *b = vgpu(f, 0, 0);
    qt_wire_request(f->w, f->p, migrate_req(a->id, 1));
    qt_wire_request(f->w, f->p, migrate_req(b->id, 1));
    qt_wire_request(f->w, f->p, migrate_req(a->id, 0)); /* and back, after the first */
    cr_assert_eq(qa_mover_pending(f->mover), 3);
    await(f, 3);
    cr_assert_eq(qt_wire_count(f->w, f->p, "ok"), 3);
    cr_assert_eq(a->gpu, 0);
    cr_assert_eq(b->gpu, 1);
    cr_assert_eq(f->nmoved, 3);
    teardown(f);
}

/* Three busy vGPUs on GPU 0 (98% together), GPU 1 idle: the planner's first case
 * (test_arbiter_balance.c), here on the host's figures. */
static void crowd_gpu0(struct fixture *f, qa_vgpu_t *v[3])
{
    v[0] = vgpu(f, 0, 34);
    v[1] = vgpu(f, 0, 31);
    v[2] = vgpu(f, 0, 33);
}

/* How many moves balance's answer r lists. */
static size_t moves(const qp_msg_t *r)
{
    size_t n = 99;
    cr_assert_eq(qp_msg_count_maps(r, "moves", &n), 0);
    return n;
}

/* The balance request's one move, checked; returns its "done". */
static bool one_move(const qp_msg_t *r, bool dry)
{
    cr_assert_str_eq(qp_msg_type(r), "ok", "%s", qt_text(r));
    bool d = !dry;
    cr_assert_eq(qp_msg_get_bool(r, "dry_run", &d), 0);
    cr_assert_eq(d, dry);
    cr_assert_eq(moves(r), 1);
    const qp_msg_t *m = qp_msg_map_at(r, "moves", 0);
    const char *id = NULL, *why = NULL;
    uint64_t from = 9, to = 9;
    bool done = !dry;
    cr_assert_eq(qp_msg_get_str(m, "vgpu", &id), 0);
    cr_assert_str_eq(id, "vg-2", "the least used that brings GPU 0 under 80%%");
    cr_assert_eq(qp_msg_get_uint(m, "from", &from), 0);
    cr_assert_eq(qp_msg_get_uint(m, "to", &to), 0);
    cr_assert_eq(from, 0);
    cr_assert_eq(to, 1);
    cr_assert_eq(qp_msg_get_str(m, "why", &why), 0);
    cr_assert(strstr(why, "GPU 0 at 98% compute (over 80%)"), "%s", why);
    cr_assert_eq(qp_msg_get_bool(m, "done", &done), 0);
    return done;
}

Test(qa_migrate, balance_dry_run_answers_the_plan_and_moves_nothing)
{
    struct fixture *f = setup();
    qa_vgpu_t *v[3];
    crowd_gpu0(f, v);
    qp_msg_t *m = qp_new_request(QP_REQ_BALANCE);
    qp_msg_set_bool(m, "dry_run", true);
    qt_wire_request(f->w, f->p, m);
    cr_assert_eq(qt_wire_count(f->w, f->p, NULL), 1, "a dry run is answered at once");
    cr_assert_not(one_move(qt_wire_last(f->w, f->p), true));
    qt_loop_for(f->loop, 50);
    cr_assert_eq(v[1]->gpu, 0);
    cr_assert_eq(qa_mover_pending(f->mover), 0);
    cr_assert_eq(f->nmoved, 0);
    teardown(f);
}

Test(qa_migrate, balance_carries_out_its_plan_then_waits_for_figures_after_the_move)
{
    struct fixture *f = setup();
    qa_vgpu_t *v[3];
    crowd_gpu0(f, v);
    qt_wire_request(f->w, f->p, qp_new_request(QP_REQ_BALANCE));
    cr_assert_eq(qt_wire_count(f->w, f->p, NULL), 0, "answered once its moves ended");
    cr_assert(one_move(await(f, 1), false), "the move was made");
    cr_assert_eq(v[1]->gpu, 1);
    cr_assert_eq(v[0]->gpu, 0);
    cr_assert_eq(v[2]->gpu, 0);
    cr_assert(strstr(qt_wire_log(f->w), "balance: "), "%s", qt_wire_log(f->w));
    /* The figures still show GPU 0 busy (they lag a move): no second plan from them. */
    qt_wire_request(f->w, f->p, qp_new_request(QP_REQ_BALANCE));
    const qp_msg_t *r = await(f, 2);
    cr_assert_str_eq(qp_msg_type(r), "ok");
    cr_assert_eq(moves(r), 0);
    teardown(f);
}

Test(qa_migrate, balance_on_a_quiet_host_answers_an_empty_plan)
{
    struct fixture *f = setup();
    vgpu(f, 0, 10);
    vgpu(f, 1, 10);
    qt_wire_request(f->w, f->p, qp_new_request(QP_REQ_BALANCE));
    const qp_msg_t *r = await(f, 1);
    cr_assert_str_eq(qp_msg_type(r), "ok");
    cr_assert_eq(moves(r), 0);
    teardown(f);
}

/* ---- a process moved by the checkpoint helper -------------------------------------- */

static char sim_uuids[4][64];

/* The two GPUs of the private simulated host, as the arbiter would describe them. */
static qa_host_t *sim_host(const qa_config_t *cfg)
{
    qa_gpu_desc_t g[2];
    for (unsigned i = 0; i < 2; i++) {
        g[i] = (qa_gpu_desc_t){i, "", "X", 1024ull << 20, 4, 512};
        snprintf(g[i].uuid, sizeof g[i].uuid, "%.63s", sim_uuids[i]);
    }
    qa_host_t *h = qa_host_new(g, 2, cfg);
    cr_assert_not_null(h);
    return h;
}

/* A sim_worker holding 1 MiB on GPU 0 as the one process of v, in a session made as
 * tenant.c makes one and joined to the compute schedulers. */
struct tenant {
    qt_proc_t *w;
    qa_peer_t peer;
    qa_session_t s;
};

static void tenant_start(struct fixture *f, struct tenant *t, qa_vgpu_t *v)
{
    const char *args[] = {"target", "0", "1048576", NULL};
    t->w = sim_worker_start(args, NULL);
    sim_wait_line(t->w, "ready", 10000);
    pid_t pid = qt_proc_pid(t->w);
    t->peer = (qa_peer_t){.ep = QP_TENANT, .cred_pid = pid, .session = true};
    t->s = (qa_session_t){.peer = &t->peer, .vgpu = v, .pid = pid, .host_pid = pid,
                          .used = 1048576};
    t->peer.tenant = &t->s;
    t->s.pprev_in_vgpu = &v->sessions;
    v->sessions = &t->s;
    cr_assert_eq(qa_compute_join(f->compute, &t->s), 0);
}

static void tenant_stop(struct fixture *f, struct tenant *t, qa_vgpu_t *v)
{
    qa_compute_leave(f->compute, &t->s);
    v->sessions = NULL;
    qa_compute_vgpu_gone(f->compute, v);
    qt_proc_destroy(&t->w);
}

/* Asks the worker to check its data; returns the GPU it says it is on (borrowed). */
static const char *worker_gpu(struct tenant *t)
{
    qt_proc_kill(t->w, SIGUSR1);
    sim_wait_line(t->w, "verify ok", 10000);
    return sim_wait_line(t->w, "uuid ", 10000);
}

Test(qa_migrate, a_running_process_moves_with_its_vgpu_through_the_checkpoint_helper,
     .timeout = 60)
{
    if (!qt_driver_simulated())
        cr_skip_test("two GPUs of one chip of the simulated host");
    qt_sim_private("X:1GiB:4,X:1GiB:4");
    cr_assert_eq(qts_gpu_uuids(sim_uuids, 4), 2);
    struct fixture *f = setup_on(sim_host);
    qa_vgpu_t *v = vgpu(f, 0, 0);
    struct tenant t;
    tenant_start(f, &t, v);
    qt_wire_request(f->w, f->p, migrate_req(v->id, 1));
    const qp_msg_t *r = await(f, 1);
    cr_assert_str_eq(qp_msg_type(r), "ok", "%s", qt_text(r));
    size_t n = 0;
    cr_assert_eq(qp_msg_count_maps(r, "procs", &n), 0);
    cr_assert_eq(n, 1);
    const qp_msg_t *proc = qp_msg_map_at(r, "procs", 0);
    int64_t pid = 0;
    const char *fate = NULL;
    cr_assert_eq(qp_msg_get_int(proc, "pid", &pid), 0);
    cr_assert_eq(pid, qt_proc_pid(t.w));
    cr_assert_eq(qp_msg_get_str(proc, "fate", &fate), 0);
    cr_assert_str_eq(fate, "moved");
    const char *text = NULL;
    cr_assert_eq(qp_msg_get_str(r, "text", &text), 0);
    char *said = qt_strf("pid %d moved, paused ", (int)pid);
    cr_assert(strstr(text, said), "%s", text);

    cr_assert_eq(v->gpu, 1);
    char uuid[QP_UUID_LEN], err[QP_ERR_LEN];
    cr_assert_eq(qa_store_peek_gpu(f->dir, v->id, uuid, err), 0, "%s", err);
    cr_assert_str_eq(uuid, sim_uuids[1]);
    cr_assert_eq(f->nmoved, 1);
    const char *on = worker_gpu(&t);
    cr_assert_eq(strncmp(on, sim_uuids[1], strlen(sim_uuids[1])), 0,
                 "the process runs on GPU 1 with its data: %s", on);
    free(said);
    tenant_stop(f, &t, v);
    teardown(f);
}

Test(qa_migrate, a_move_the_driver_cannot_restore_is_rolled_back_and_the_process_runs_on,
     .timeout = 60)
{
    if (!qt_driver_simulated())
        cr_skip_test("two GPUs of one chip of the simulated host");
    qt_sim_private("X:1GiB:4,X:1GiB:4");
    cr_assert_eq(qts_gpu_uuids(sim_uuids, 4), 2);
    /* The made-up host's UUIDs name no GPU the driver knows: it cannot restore there. */
    struct fixture *f = setup();
    qa_vgpu_t *v = vgpu(f, 0, 0);
    struct tenant t;
    tenant_start(f, &t, v);
    qt_wire_request(f->w, f->p, migrate_req(v->id, 1));
    const qp_msg_t *r = await(f, 1);
    cr_assert(qp_msg_is_error(r));
    char *back = qt_strf("pid %d back, paused ", (int)qt_proc_pid(t.w));
    cr_assert(strstr(qt_text(r), "stays on GPU 0: ") && strstr(qt_text(r), "(rolled back)") &&
                  strstr(qt_text(r), back),
              "%s", qt_text(r));
    cr_assert_eq(v->gpu, 0);
    cr_assert_eq(v->moving, 0);
    cr_assert_eq(qa_host_gpu(f->host, 1)->nvgpus, 0, "nothing left reserved on GPU 1");
    char uuid[QP_UUID_LEN], err[QP_ERR_LEN];
    cr_assert_neq(qa_store_peek_gpu(f->dir, v->id, uuid, err), 0, "no record was written");
    cr_assert_eq(f->nmoved, 0);
    const char *on = worker_gpu(&t);
    cr_assert_eq(strncmp(on, sim_uuids[0], strlen(sim_uuids[0])), 0,
                 "the process runs where it was with its data: %s", on);
    free(back);
    tenant_stop(f, &t, v);
    teardown(f);
}
