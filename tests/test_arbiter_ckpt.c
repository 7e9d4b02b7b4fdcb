/* test_arbiter_ckpt.c - the checkpoint helper without a daemon: the arbiter's end
 * (arbiter/ckpt.c) on a loop the test runs, starting the real helper process
 * (`qarbiter --checkpoint-helper`, arbiter/ckpt_helper.c) on the simulated driver: its
 * hello, one driver call at a time on a sim_worker process, refusals in words, a
 * killed helper, and a helper whose arbiter leaves during a move bringing the process
 * it touched back to running on its home GPU. */
#include "arbiter/ckpt.h"
#include "arbiter/store.h"
#include "arbiter/ledger.h"
#include "tests/harness.h"
#include "tests/shim_support.h"
#include "tests/sim_support.h"

#include <criterion/criterion.h>
#include <cuda.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define WAIT_MS 10000 /* ceiling for an answer: the helper loads the driver first */

/* The arbiter's side as the test plays it: the loop, the helper, what came back. */
struct end {
    qa_loop_t *loop;
    qa_ckpt_t *ck;
    qa_ckpt_rep_t last; /* the latest answer */
    size_t n, want;     /* answers so far; run() returns once there are want */
    bool gone;          /* the helper exited */
    uint32_t seq;       /* of the last request */
    qa_timer_t timer;
};

static void on_answer(void *arg, const qa_ckpt_rep_t *rep)
{
    struct end *e = arg;
    e->last = *rep;
    if (++e->n >= e->want)
        qa_loop_stop(e->loop);
}

static void on_gone(void *arg)
{
    struct end *e = arg;
    e->gone = true;
    qa_loop_stop(e->loop);
}

static void on_timeout(void *arg)
{
    qa_loop_stop(((struct end *)arg)->loop);
}

/* Runs the loop until there are want answers, the helper is gone, or WAIT_MS passed. */
static void run(struct end *e, size_t want)
{
    e->want = want;
    if (e->n >= want || e->gone)
        return;
    cr_assert_eq(qa_timer_start(e->loop, &e->timer, qa_now_ns() + WAIT_MS * 1000000ull,
                                on_timeout, e),
                 0);
    cr_assert_eq(qa_loop_run(e->loop), 0);
    qa_timer_stop(e->loop, &e->timer);
}

/* Starts the helper and waits for its hello, which it returns. */
static qa_ckpt_rep_t start(struct end *e)
{
    memset(e, 0, sizeof *e);
    cr_assert_not_null(e->loop = qa_loop_new());
    qa_ckpt_hooks_t hooks = {on_answer, on_gone, e};
    char *exe = qt_build_path("qarbiter"), err[QP_ERR_LEN] = "";
    e->ck = qa_ckpt_start(e->loop, exe, &hooks, err);
    free(exe);
    cr_assert_not_null(e->ck, "%s", err);
    cr_assert_gt(qa_ckpt_pid(e->ck), 0);
    run(e, 1);
    cr_assert_eq(e->n, 1, "no hello from the helper within %d ms", WAIT_MS);
    cr_assert_eq(e->last.seq, 0, "a hello has no request");
    return e->last;
}

static void finish(struct end *e)
{
    qa_ckpt_stop(&e->ck);
    cr_assert_null(e->ck);
    qa_loop_destroy(&e->loop);
}

/* Sends req and waits for its answer, which it returns (asserting it is req's). */
static qa_ckpt_rep_t send_req(struct end *e, qa_ckpt_req_t *req)
{
    size_t before = e->n;
    req->seq = ++e->seq;
    cr_assert_eq(qa_ckpt_send(e->ck, req), 0);
    run(e, before + 1);
    cr_assert_eq(e->n, before + 1, "no answer to request %u within %d ms", req->seq, WAIT_MS);
    cr_assert_eq(e->last.seq, req->seq, "the answer echoes its request");
    return e->last;
}

/* One driver call op on pid (start: its start time, 0 for unknown). */
static qa_ckpt_rep_t call(struct end *e, qa_move_op_t op, pid_t pid, uint64_t start)
{
    qa_ckpt_req_t req = {.kind = QA_CKPT_CALL, .op = op, .pid = pid, .start = start,
                         .lock_ms = 5000};
    return send_req(e, &req);
}

/* The driver's state of pid as the test process (a CUDA process of the same simulated
 * host) sees it. */
static CUprocessState pstate(pid_t pid)
{
    CUprocessState s = CU_PROCESS_STATE_FAILED;
    cr_assert_eq(cuInit(0), CUDA_SUCCESS);
    cuCheckpointProcessGetState(pid, &s);
    return s;
}

/* A sim_worker holding 1 MiB on device 0, ready; *start its start time. */
static qt_proc_t *worker(uint64_t *start)
{
    const char *args[] = {"target", "0", "1048576", NULL};
    qt_proc_t *w = sim_worker_start(args, NULL);
    sim_wait_line(w, "ready", WAIT_MS);
    cr_assert_eq(qa_ledger_proc_start(qt_proc_pid(w), start), 0);
    return w;
}

Test(qa_ckpt, the_helper_says_which_driver_it_found_and_that_it_can_move_processes)
{
    qt_sim_private(NULL);
    struct end e;
    qa_ckpt_rep_t hello = start(&e);
    cr_assert_eq(hello.result, QA_MOVE_OK, "%s", hello.text);
    cr_assert_eq(hello.driver, 13000, "the simulated driver's default: CUDA 13.0");
    cr_assert_str_eq(hello.text, "");
    finish(&e);
}

Test(qa_ckpt, a_driver_too_old_to_move_is_named_in_the_hello_and_the_helper_exits)
{
    qt_sim_private(NULL);
    setenv("QSIM_DRIVER_VERSION", "12080", 1); /* r570: restores onto the same GPU only */
    struct end e;
    qa_ckpt_rep_t hello = start(&e);
    unsetenv("QSIM_DRIVER_VERSION");
    cr_assert_eq(hello.result, QA_MOVE_FAILED);
    cr_assert_eq(hello.driver, 12080);
    cr_assert(strstr(hello.text, "supports CUDA 12.8"), "%s", hello.text);
    cr_assert(strstr(hello.text, "needs NVIDIA driver 580 (CUDA 13.0) or newer"), "%s",
              hello.text);
    run(&e, SIZE_MAX);
    cr_assert(e.gone, "the helper exits after saying it cannot move processes");
    qa_ckpt_req_t req = {.kind = QA_CKPT_END};
    cr_assert_eq(qa_ckpt_send(e.ck, &req), -EPIPE);
    finish(&e);
}

Test(qa_ckpt, calls_on_a_process_answer_in_turn_with_its_state, .timeout = 60)
{
    qt_sim_private(NULL);
    struct end e;
    start(&e);
    uint64_t st;
    qt_proc_t *w = worker(&st);
    pid_t pid = qt_proc_pid(w);

    qa_ckpt_rep_t r = call(&e, QA_MOVE_STATE, pid, st);
    cr_assert_eq(r.result, QA_MOVE_OK, "%s", r.text);
    cr_assert_eq(r.state, QA_PSTATE_RUNNING);
    r = call(&e, QA_MOVE_LOCK, pid, st);
    cr_assert_eq(r.result, QA_MOVE_OK, "%s", r.text);
    cr_assert_eq(pstate(pid), CU_PROCESS_STATE_LOCKED, "the driver did lock it");
    r = call(&e, QA_MOVE_STATE, pid, 0); /* start unknown: asked all the same */
    cr_assert_eq(r.state, QA_PSTATE_LOCKED);
    r = call(&e, QA_MOVE_LOCK, pid, st);
    cr_assert_eq(r.result, QA_MOVE_BADSTATE, "locked twice: %s", r.text);
    cr_assert_str_eq(r.text, "CUDA_ERROR_ILLEGAL_STATE");
    r = call(&e, QA_MOVE_UNLOCK, pid, st);
    cr_assert_eq(r.result, QA_MOVE_OK, "%s", r.text);
    cr_assert_eq(pstate(pid), CU_PROCESS_STATE_RUNNING);

    /* Another process behind the same pid (its start time differs) is not touched. */
    r = call(&e, QA_MOVE_LOCK, pid, st + 1);
    cr_assert_eq(r.result, QA_MOVE_GONE);
    cr_assert_eq(pstate(pid), CU_PROCESS_STATE_RUNNING);
    qt_proc_destroy(&w);
    r = call(&e, QA_MOVE_STATE, pid, 0);
    cr_assert_eq(r.result, QA_MOVE_GONE, "an exited process: %s", r.text);
    finish(&e);
}

Test(qa_ckpt, a_restore_onto_another_gpu_without_a_plan_is_refused_in_words, .timeout = 60)
{
    qt_sim_private("X:1GiB:4,X:1GiB:4");
    struct end e;
    start(&e);
    uint64_t st;
    qt_proc_t *w = worker(&st);
    pid_t pid = qt_proc_pid(w);
    cr_assert_eq(call(&e, QA_MOVE_LOCK, pid, st).result, QA_MOVE_OK);
    cr_assert_eq(call(&e, QA_MOVE_CHECKPOINT, pid, st).result, QA_MOVE_OK);
    /* No BEGIN, then a BEGIN whose GPUs are not UUIDs: no pairs either way. */
    for (int i = 0; i < 2; i++) {
        if (i == 1) {
            qa_ckpt_req_t begin = {.kind = QA_CKPT_BEGIN, .ngpus = 2, .from = 0, .to = 1};
            snprintf(begin.uuid[0], QP_UUID_LEN, "GPU-0");
            snprintf(begin.uuid[1], QP_UUID_LEN, "not a uuid");
            cr_assert_eq(qa_ckpt_send(e.ck, &begin), 0);
        }
        qa_ckpt_rep_t r = call(&e, QA_MOVE_RESTORE_SWAP, pid, st);
        cr_assert_eq(r.result, QA_MOVE_FAILED);
        cr_assert_str_eq(r.text, "no GPU pairs: the move's plan was not understood");
        cr_assert_eq(pstate(pid), CU_PROCESS_STATE_CHECKPOINTED, "left as it was");
    }
    cr_assert_eq(call(&e, QA_MOVE_RESTORE_STAY, pid, st).result, QA_MOVE_OK);
    cr_assert_eq(call(&e, QA_MOVE_UNLOCK, pid, st).result, QA_MOVE_OK);
    cr_assert_eq(pstate(pid), CU_PROCESS_STATE_RUNNING);
    qt_proc_destroy(&w);
    finish(&e);
}

Test(qa_ckpt, a_killed_helper_is_reported_gone_and_takes_no_more_requests)
{
    qt_sim_private(NULL);
    struct end e;
    start(&e);
    qa_ckpt_kill(e.ck);
    run(&e, SIZE_MAX);
    cr_assert(e.gone, "the arbiter's end sees the helper go");
    qa_ckpt_req_t req = {.kind = QA_CKPT_CALL, .op = QA_MOVE_STATE, .pid = getpid()};
    cr_assert_eq(qa_ckpt_send(e.ck, &req), -EPIPE);
    finish(&e);
}

/* The move of the process of vGPU "vg-1" from GPU 0 to GPU 1 is under way; the
 * arbiter's end closes (as when it is killed). With no record of vg-1 in its state dir
 * the helper takes GPU 0 as home and returns the process there, running; with a record
 * naming GPU 1 (the move was committed: the record is written first) the process stays
 * on GPU 1 and runs there. */
static void leave_mid_move(bool restored, bool committed)
{
    qt_sim_private("X:1GiB:4,X:1GiB:4");
    char uuids[4][64];
    cr_assert_eq(qts_gpu_uuids(uuids, 4), 2);
    struct end e;
    start(&e);
    uint64_t st;
    qt_proc_t *w = worker(&st);
    pid_t pid = qt_proc_pid(w);
    char *dir = qt_tmpdir();
    qa_ckpt_req_t begin = {.kind = QA_CKPT_BEGIN, .ngpus = 2, .from = 0, .to = 1};
    snprintf(begin.vgpu, sizeof begin.vgpu, "vg-1");
    snprintf(begin.state_dir, sizeof begin.state_dir, "%s", dir);
    snprintf(begin.uuid[0], QP_UUID_LEN, "%s", uuids[0]);
    snprintf(begin.uuid[1], QP_UUID_LEN, "%s", uuids[1]);
    if (committed) {
        char err[QP_ERR_LEN];
        qa_store_t *store = qa_store_open(dir, err);
        cr_assert_not_null(store, "%s", err);
        qa_vgpu_t v = {.id = "vg-1", .vm = "vm", .secret = "00112233445566778899aabbccddeeff",
                       .profile = "Q1", .gpu = 1, .memory_mb = 1024, .share = 10,
                       .created = 1};
        cr_assert_eq(qa_store_put(store, &v, uuids[1], err), 0, "%s", err);
        qa_store_close(&store);
    }
    cr_assert_eq(qa_ckpt_send(e.ck, &begin), 0);
    cr_assert_eq(call(&e, QA_MOVE_LOCK, pid, st).result, QA_MOVE_OK);
    if (restored) {
        cr_assert_eq(call(&e, QA_MOVE_CHECKPOINT, pid, st).result, QA_MOVE_OK);
        qa_ckpt_rep_t r = call(&e, QA_MOVE_RESTORE_SWAP, pid, st);
        cr_assert_eq(r.result, QA_MOVE_OK, "%s", r.text);
    }
    pid_t helper = qa_ckpt_pid(e.ck);
    finish(&e);
    /* qa_ckpt_stop reaps the helper itself if it has exited by then (a helper with
     * nothing to bring home may be that quick): then its status is gone, and ECHILD
     * here says it had exited. */
    int status = -1;
    pid_t r;
    uint64_t until = qt_now_ns() + WAIT_MS * 1000000ull;
    while ((r = waitpid(helper, &status, WNOHANG)) == 0 && qt_now_ns() < until)
        qt_sleep_ms(5);
    if (r == helper)
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the helper exits when done");
    else
        cr_assert(r < 0 && errno == ECHILD, "the helper exits when done (waitpid: %d)", (int)r);
    cr_assert_eq(pstate(pid), CU_PROCESS_STATE_RUNNING, "the process runs again");
    qt_proc_kill(w, SIGUSR1); /* it checks its data and says which GPU it is on */
    sim_wait_line(w, "verify ok", WAIT_MS);
    const char *on = sim_wait_line(w, "uuid ", WAIT_MS);
    const char *home = uuids[committed ? 1 : 0];
    cr_assert_eq(strncmp(on, home, strlen(home)), 0, "home is GPU %d: %s", committed, on);
    qt_proc_destroy(&w);
    free(dir);
}

Test(qa_ckpt, a_locked_process_is_unlocked_when_the_arbiter_leaves_mid_move, .timeout = 60)
{
    leave_mid_move(false, false);
}

Test(qa_ckpt, a_process_restored_onto_the_target_goes_home_when_the_arbiter_leaves,
     .timeout = 60)
{
    leave_mid_move(true, false);
}

/* kill -9 of the arbiter between the commit and the unlock: the record names the target,
 * and the process, restored there, is unlocked there. */
Test(qa_ckpt, a_process_of_a_committed_move_runs_on_the_target_when_the_arbiter_leaves,
     .timeout = 60)
{
    leave_mid_move(true, true);
}
