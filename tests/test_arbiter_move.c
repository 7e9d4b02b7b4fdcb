/* test_arbiter_move.c - the step machine of a vGPU's move on a fake clock, with a fake
 * driver behind the calls: the order of the steps, every refusal, every rollback, a
 * process exiting half-way, a hung helper, and the pause each process sees. */
#include "arbiter/move.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define MS 1000000ull
#define GIB (1024ull * 1024ull * 1024ull)

static const qa_move_params_t params = {
    .drain_ns = 2000 * MS,
    .lock_ns = 2000 * MS,
    .op_ns = 5000 * MS,
    .ns_per_gib = 1000 * MS,
    .poll_ns = 1 * MS,
    .retry_ns = 100 * MS,
    .retries = 3,
};

/* A fake driver: where each process is, and what its next call answers. */
enum loc { ON_S, ON_T };
struct fproc {
    int pid;
    qa_move_pstate_t state;
    enum loc loc;
    bool cuda;             /* known to the driver */
    bool exited;           /* answers GONE */
    qa_move_res_t fail_op[8]; /* per op: answer this instead of doing it (0: do it) */
    unsigned fail_times[8];   /* ... this many times (0: always) */
};

struct world {
    qa_move_t *m;
    uint64_t now;
    struct fproc p[8];
    size_t n;
    bool frozen, drained_after; /* freeze asked; drained() says true once now >= drain_at */
    uint64_t drain_at;
    bool commit_asked;
    int commit_rc; /* what the commit answers */
    bool finished;
    qa_move_result_t res;
    qa_move_outcome_t out[8];
    char log[2048]; /* the calls in order: "lock 11, checkpoint 11, ..." */
    bool pending;   /* a call is out */
    size_t pi;
    qa_move_op_t pop;
    bool hang; /* calls are never answered */
};

static const char *name(qa_move_op_t op)
{
    static const char *n[] = {"", "state", "lock", "ckpt", "swap", "stay", "unlock"};
    return n[op];
}

static void w_freeze(void *arg)
{
    struct world *w = arg;
    w->frozen = true;
    strcat(w->log, "freeze, ");
}

static bool w_drained(void *arg)
{
    struct world *w = arg;
    return w->now >= w->drain_at;
}

static void w_call(void *arg, size_t i, qa_move_op_t op)
{
    struct world *w = arg;
    cr_assert(!w->pending, "one call at a time");
    w->pending = true;
    w->pi = i;
    w->pop = op;
    char buf[32];
    snprintf(buf, sizeof buf, "%s %d, ", name(op), w->p[i].pid);
    strcat(w->log, buf);
}

static void w_commit(void *arg)
{
    struct world *w = arg;
    w->commit_asked = true;
    strcat(w->log, "commit, ");
}

static void w_finish(void *arg, const qa_move_result_t *r)
{
    struct world *w = arg;
    w->finished = true;
    w->res = *r;
    cr_assert_leq(r->n, 8);
    memcpy(w->out, r->procs, r->n * sizeof *r->procs);
    w->res.procs = w->out;
}

/* The fake driver answers the call that is out. */
static void answer(struct world *w)
{
    w->pending = false;
    struct fproc *p = &w->p[w->pi];
    qa_move_op_t op = w->pop;
    if (p->exited) {
        qa_move_answer(w->m, w->pi, QA_MOVE_GONE, 0, NULL, w->now);
        return;
    }
    if (!p->cuda) {
        qa_move_answer(w->m, w->pi, QA_MOVE_NOCUDA, 0, NULL, w->now);
        return;
    }
    if (p->fail_op[op]) {
        qa_move_res_t r = p->fail_op[op];
        if (p->fail_times[op] && --p->fail_times[op] == 0)
            p->fail_op[op] = 0;
        qa_move_answer(w->m, w->pi, r, 0, "CUDA_ERROR_X", w->now);
        return;
    }
    qa_move_res_t r = QA_MOVE_OK;
    switch (op) {
    case QA_MOVE_STATE:
        break;
    case QA_MOVE_LOCK:
        r = p->state == QA_PSTATE_RUNNING ? QA_MOVE_OK : QA_MOVE_BADSTATE;
        if (!r)
            p->state = QA_PSTATE_LOCKED;
        break;
    case QA_MOVE_CHECKPOINT:
        r = p->state == QA_PSTATE_LOCKED ? QA_MOVE_OK : QA_MOVE_BADSTATE;
        if (!r)
            p->state = QA_PSTATE_CHECKPOINTED;
        break;
    case QA_MOVE_RESTORE_SWAP:
    case QA_MOVE_RESTORE_STAY:
        r = p->state == QA_PSTATE_CHECKPOINTED ? QA_MOVE_OK : QA_MOVE_BADSTATE;
        if (!r) {
            p->state = QA_PSTATE_LOCKED;
            if (op == QA_MOVE_RESTORE_SWAP)
                p->loc = p->loc == ON_S ? ON_T : ON_S;
        }
        break;
    default:
        r = p->state == QA_PSTATE_LOCKED ? QA_MOVE_OK : QA_MOVE_BADSTATE;
        if (!r)
            p->state = QA_PSTATE_RUNNING;
        break;
    }
    qa_move_answer(w->m, w->pi, r, p->state, r ? "CUDA_ERROR_ILLEGAL_STATE" : NULL, w->now);
}

/* n processes each holding bytes, and each allowed at most `most` (its vGPU's quota; 0:
 * unknown). */
static void setup_most(struct world *w, size_t n, uint64_t bytes, uint64_t most)
{
    static const qa_move_ops_t ops = {w_freeze, w_drained, w_call, w_commit, w_finish, NULL};
    qa_move_ops_t o = ops;
    o.arg = w;
    memset(w, 0, sizeof *w);
    w->n = n;
    w->now = 1000 * MS;
    qa_move_proc_t procs[8];
    for (size_t i = 0; i < n; i++) {
        w->p[i] = (struct fproc){.pid = 11 + (int)i, .cuda = true};
        procs[i] = (qa_move_proc_t){.pid = 11 + (int)i, .bytes = bytes, .most = most};
    }
    w->m = qa_move_new(&params, &o, procs, n, "vg-3", "GPU 0", "GPU 1");
    cr_assert_not_null(w->m);
}

static void setup(struct world *w, size_t n, uint64_t bytes)
{
    setup_most(w, n, bytes, 0);
}

/* Runs the world until the move is over: each call answered after 1 ms (copies after
 * their size at 10 GiB/s), the drain done at drain_at, the commit answered at once. */
static void run(struct world *w)
{
    qa_move_start(w->m, w->now);
    for (int guard = 0; !w->finished && guard < 100000; guard++) {
        uint64_t d = qa_move_deadline(w->m);
        if (w->pending && !w->hang) {
            uint64_t took = 1 * MS;
            if (w->pop == QA_MOVE_CHECKPOINT || w->pop == QA_MOVE_RESTORE_SWAP ||
                w->pop == QA_MOVE_RESTORE_STAY)
                took += 100 * MS; /* 1 GiB at 10 GiB/s */
            if (w->now + took < d) {
                w->now += took;
                answer(w);
                continue;
            }
        }
        if (w->commit_asked) {
            w->commit_asked = false;
            w->now += 1 * MS;
            qa_move_committed(w->m, w->commit_rc, w->commit_rc ? "disk full" : NULL, w->now);
            continue;
        }
        cr_assert_neq(d, UINT64_MAX, "the move waits for nothing: %s", w->log);
        w->now = d > w->now ? d : w->now;
        qa_move_tick(w->m, w->now);
    }
    cr_assert(w->finished, "the move never ended: %s", w->log);
    cr_assert(qa_move_over(w->m));
    cr_assert_eq(qa_move_deadline(w->m), UINT64_MAX);
}

static void teardown_world(struct world *w)
{
    qa_move_destroy(&w->m);
    cr_assert_null(w->m);
}

Test(qa_move, moves_every_process_locking_all_before_copying_any)
{
    struct world w;
    setup(&w, 2, GIB);
    w.drain_at = w.now + 5 * MS;
    run(&w);
    cr_assert_eq(w.res.status, QA_MOVE_DONE, "%s", w.res.why);
    cr_assert_str_eq(w.log, "state 11, state 12, freeze, lock 11, lock 12, ckpt 11, swap 11, "
                            "ckpt 12, swap 12, commit, unlock 11, unlock 12, ");
    for (size_t i = 0; i < 2; i++) {
        cr_assert_eq(w.p[i].loc, ON_T);
        cr_assert_eq(w.p[i].state, QA_PSTATE_RUNNING);
        cr_assert_eq(w.out[i].fate, QA_FATE_MOVED);
        cr_assert_eq(w.out[i].bytes, GIB);
    }
    /* from the freeze: 3 ms of drain (the two states took 2 of the 5), 2 locks, 4 copies
     * of 101 ms, the commit, then the unlocks */
    cr_assert_eq(w.out[0].paused_ns, (3 + 2 + 404 + 1 + 1) * MS);
    cr_assert_eq(w.out[1].paused_ns, (3 + 2 + 404 + 1 + 2) * MS);
    cr_assert_str_eq(w.res.notes, "");
    teardown_world(&w);
}

Test(qa_move, a_vgpu_without_processes_only_commits)
{
    struct world w;
    setup(&w, 0, 0);
    run(&w);
    cr_assert_eq(w.res.status, QA_MOVE_DONE);
    cr_assert_str_eq(w.log, "freeze, commit, ");
    cr_assert_eq(w.res.n, 0);
    teardown_world(&w);
}

Test(qa_move, a_process_without_cuda_moves_with_its_view_only)
{
    struct world w;
    setup(&w, 2, GIB);
    w.p[0].cuda = false;
    run(&w);
    cr_assert_eq(w.res.status, QA_MOVE_DONE);
    cr_assert_str_eq(w.log, "state 11, state 12, freeze, lock 12, ckpt 12, swap 12, commit, "
                            "unlock 12, ");
    cr_assert_eq(w.out[0].fate, QA_FATE_VIEW);
    cr_assert_eq(w.out[0].paused_ns, 0);
    cr_assert_eq(w.out[1].fate, QA_FATE_MOVED);
    teardown_world(&w);
}

Test(qa_move, a_process_someone_else_locked_refuses_the_move_before_anything_changes)
{
    struct world w;
    setup(&w, 2, GIB);
    w.p[1].state = QA_PSTATE_LOCKED;
    qa_move_start(w.m, w.now);
    answer(&w); /* state 11 */
    /* the fake answers the real state for STATE: make it say LOCKED for pid 12 */
    cr_assert(w.pending);
    w.pending = false;
    qa_move_answer(w.m, 1, QA_MOVE_OK, QA_PSTATE_LOCKED, NULL, w.now);
    cr_assert(w.finished);
    cr_assert_eq(w.res.status, QA_MOVE_REFUSED);
    cr_assert_str_eq(w.res.why, "pid 12 of vg-3 is locked by someone else: it cannot move now");
    cr_assert_not(w.frozen, "no lease was taken away");
    cr_assert_eq(w.out[0].fate, QA_FATE_BACK);
    teardown_world(&w);
}

Test(qa_move, a_lease_that_does_not_come_back_rolls_back_after_the_drain_timeout)
{
    struct world w;
    setup(&w, 1, GIB);
    w.drain_at = UINT64_MAX;
    uint64_t t0 = w.now;
    run(&w);
    cr_assert_eq(w.res.status, QA_MOVE_ROLLED_BACK);
    cr_assert(strstr(w.res.why, "compute lease did not come back within 2000 ms"), "%s",
              w.res.why);
    cr_assert_eq(w.now, t0 + 1 * MS + 2000 * MS, "gave up at the drain's deadline");
    cr_assert_str_eq(w.log, "state 11, freeze, ");
    cr_assert_eq(w.out[0].fate, QA_FATE_BACK);
    teardown_world(&w);
}

Test(qa_move, a_lock_that_times_out_unlocks_the_others_and_copies_nothing)
{
    struct world w;
    setup(&w, 3, GIB);
    w.p[2].fail_op[QA_MOVE_LOCK] = QA_MOVE_NOTREADY;
    run(&w);
    cr_assert_eq(w.res.status, QA_MOVE_ROLLED_BACK);
    cr_assert_str_eq(w.res.why, "pid 13 of vg-3 could not be locked within 2000 ms: its queued "
                                "GPU work did not finish");
    cr_assert_str_eq(w.log, "state 11, state 12, state 13, freeze, lock 11, lock 12, lock 13, "
                            "unlock 12, unlock 11, ");
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(w.p[i].loc, ON_S);
        cr_assert_eq(w.p[i].state, QA_PSTATE_RUNNING);
        cr_assert_eq(w.out[i].fate, QA_FATE_BACK);
    }
    teardown_world(&w);
}

Test(qa_move, a_target_that_fills_up_before_restore_puts_everything_back_on_the_source)
{
    struct world w;
    setup(&w, 2, GIB);
    w.p[1].fail_op[QA_MOVE_RESTORE_SWAP] = QA_MOVE_NOMEM;
    w.p[1].fail_times[QA_MOVE_RESTORE_SWAP] = 1;
    run(&w);
    cr_assert_eq(w.res.status, QA_MOVE_ROLLED_BACK);
    cr_assert_str_eq(w.res.why,
                     "GPU 1 has no room for pid 12's 1024 MiB of vg-3 (CUDA_ERROR_X)");
    /* pid 12 checkpointed on S goes back where it was; pid 11, already on T, is
     * checkpointed there and restored with the same swap */
    cr_assert_str_eq(w.log, "state 11, state 12, freeze, lock 11, lock 12, ckpt 11, swap 11, "
                            "ckpt 12, swap 12, stay 12, unlock 12, ckpt 11, swap 11, unlock 11, ");
    for (size_t i = 0; i < 2; i++) {
        cr_assert_eq(w.p[i].loc, ON_S, "pid %d", w.p[i].pid);
        cr_assert_eq(w.p[i].state, QA_PSTATE_RUNNING);
        cr_assert_eq(w.out[i].fate, QA_FATE_BACK);
        cr_assert_gt(w.out[i].paused_ns, 0);
    }
    teardown_world(&w);
}

Test(qa_move, a_failed_commit_rolls_everything_back)
{
    struct world w;
    setup(&w, 1, GIB);
    w.commit_rc = -5;
    run(&w);
    cr_assert_eq(w.res.status, QA_MOVE_ROLLED_BACK);
    cr_assert_str_eq(w.res.why, "cannot record vg-3 on GPU 1: disk full");
    cr_assert_str_eq(w.log, "state 11, freeze, lock 11, ckpt 11, swap 11, commit, ckpt 11, "
                            "swap 11, unlock 11, ");
    cr_assert_eq(w.p[0].loc, ON_S);
    cr_assert_eq(w.p[0].state, QA_PSTATE_RUNNING);
    teardown_world(&w);
}

Test(qa_move, a_process_that_exits_half_way_is_dropped_and_the_rest_moves)
{
    struct world w;
    setup(&w, 2, GIB);
    qa_move_start(w.m, w.now);
    while (!w.finished) {
        if (w.pending && w.pop == QA_MOVE_CHECKPOINT && w.p[0].pid == 11 && w.pi == 0)
            w.p[0].exited = true; /* killed while locked, before its checkpoint */
        if (w.commit_asked) {
            w.commit_asked = false;
            qa_move_committed(w.m, 0, NULL, w.now);
        } else if (w.pending) {
            w.now += MS;
            answer(&w);
        } else {
            w.now = qa_move_deadline(w.m);
            qa_move_tick(w.m, w.now);
        }
    }
    cr_assert_eq(w.res.status, QA_MOVE_DONE, "%s", w.res.why);
    cr_assert_eq(w.out[0].fate, QA_FATE_EXITED);
    cr_assert_eq(w.out[0].paused_ns, 0);
    cr_assert_eq(w.out[1].fate, QA_FATE_MOVED);
    cr_assert_eq(w.p[1].loc, ON_T);
    teardown_world(&w);
}

Test(qa_move, a_rollback_step_that_fails_is_retried_then_the_process_is_left_paused)
{
    struct world w;
    setup(&w, 1, GIB);
    w.p[0].fail_op[QA_MOVE_RESTORE_SWAP] = QA_MOVE_NOMEM; /* onto T: fails, always */
    w.p[0].fail_op[QA_MOVE_RESTORE_STAY] = QA_MOVE_NOMEM; /* back onto S: fails twice */
    w.p[0].fail_times[QA_MOVE_RESTORE_STAY] = 2;
    run(&w);
    cr_assert_eq(w.res.status, QA_MOVE_ROLLED_BACK);
    cr_assert_str_eq(w.log, "state 11, freeze, lock 11, ckpt 11, swap 11, stay 11, stay 11, "
                            "stay 11, unlock 11, ");
    cr_assert_eq(w.out[0].fate, QA_FATE_BACK);
    cr_assert_str_eq(w.res.notes, "");

    struct world v;
    setup(&v, 1, GIB);
    v.p[0].fail_op[QA_MOVE_RESTORE_SWAP] = QA_MOVE_NOMEM;
    v.p[0].fail_op[QA_MOVE_RESTORE_STAY] = QA_MOVE_NOMEM; /* never */
    run(&v);
    cr_assert_eq(v.res.status, QA_MOVE_ROLLED_BACK);
    cr_assert_eq(v.out[0].fate, QA_FATE_PAUSED);
    cr_assert_str_eq(v.res.notes, "pid 11 is left paused: restore failed (CUDA_ERROR_X)");
    cr_assert_eq(v.p[0].state, QA_PSTATE_CHECKPOINTED);
    teardown_world(&w);
    teardown_world(&v);
}

Test(qa_move, a_helper_that_stops_answering_ends_the_move_as_stuck)
{
    struct world w;
    setup(&w, 1, 3 * GIB);
    w.drain_at = 0;
    qa_move_start(w.m, w.now);
    answer(&w); /* state */
    answer(&w); /* lock */
    cr_assert(w.pending);
    cr_assert_eq(w.pop, QA_MOVE_CHECKPOINT);
    uint64_t asked = w.now;
    /* 5 s, plus 1 s per GiB it copies */
    cr_assert_eq(qa_move_deadline(w.m), asked + 8000 * MS);
    qa_move_tick(w.m, asked + 7999 * MS);
    cr_assert_not(w.finished);
    qa_move_tick(w.m, asked + 8000 * MS);
    cr_assert(w.finished);
    cr_assert_eq(w.res.status, QA_MOVE_STUCK);
    cr_assert(strstr(w.res.why, "did not answer checkpoint of pid 11 within 8000 ms"), "%s",
              w.res.why);
    cr_assert_eq(w.out[0].fate, QA_FATE_PAUSED);
    /* a late answer changes nothing */
    qa_move_answer(w.m, 0, QA_MOVE_OK, 0, NULL, w.now);
    teardown_world(&w);
}

Test(qa_move, an_unlock_that_fails_after_the_commit_is_a_note_not_a_rollback)
{
    struct world w;
    setup(&w, 1, GIB);
    w.p[0].fail_op[QA_MOVE_UNLOCK] = QA_MOVE_FAILED;
    run(&w);
    cr_assert_eq(w.res.status, QA_MOVE_DONE);
    cr_assert_eq(w.p[0].loc, ON_T);
    cr_assert_eq(w.out[0].fate, QA_FATE_PAUSED);
    cr_assert_str_eq(w.res.notes, "pid 11 is left paused: unlock failed (CUDA_ERROR_X)");
    teardown_world(&w);
}

Test(qa_move, refuses_more_processes_than_it_can_hold)
{
    static qa_move_proc_t many[QA_MOVE_MAX_PROCS + 1];
    qa_move_ops_t ops = {w_freeze, w_drained, w_call, w_commit, w_finish, NULL};
    cr_assert_null(qa_move_new(&params, &ops, many, QA_MOVE_MAX_PROCS + 1, "vg-1", "a", "b"));
}

Test(qa_move, the_way_home_from_every_driver_state)
{
    /* on its home GPU */
    cr_assert_eq(qa_move_next_home(QA_PSTATE_RUNNING, true), 0);
    cr_assert_eq(qa_move_next_home(QA_PSTATE_LOCKED, true), QA_MOVE_UNLOCK);
    cr_assert_eq(qa_move_next_home(QA_PSTATE_CHECKPOINTED, true), QA_MOVE_RESTORE_STAY);
    /* on the other GPU of the move: copied back with the same swap */
    cr_assert_eq(qa_move_next_home(QA_PSTATE_LOCKED, false), QA_MOVE_CHECKPOINT);
    cr_assert_eq(qa_move_next_home(QA_PSTATE_CHECKPOINTED, false), QA_MOVE_RESTORE_SWAP);
    cr_assert_eq(qa_move_next_home(QA_PSTATE_RUNNING, false), QA_MOVE_LOCK);
    cr_assert_eq(qa_move_next_home(QA_PSTATE_FAILED, false), 0, "nothing the driver can do");
    /* a walk from running on the other GPU ends running at home in four calls */
    qa_move_pstate_t st = QA_PSTATE_RUNNING;
    bool home = false;
    int calls = 0;
    for (qa_move_op_t op; (op = qa_move_next_home(st, home)) && calls < 10; calls++) {
        if (op == QA_MOVE_LOCK || op == QA_MOVE_RESTORE_STAY)
            st = QA_PSTATE_LOCKED;
        else if (op == QA_MOVE_CHECKPOINT)
            st = QA_PSTATE_CHECKPOINTED;
        else if (op == QA_MOVE_RESTORE_SWAP)
            st = QA_PSTATE_LOCKED, home = !home;
        else
            st = QA_PSTATE_RUNNING;
    }
    cr_assert_eq(calls, 4);
    cr_assert(home && st == QA_PSTATE_RUNNING);
}

/* A process that has not reported its memory yet (0 bytes) may hold its whole quota: the
 * helper gets the time to copy that much before the move is declared stuck. */
Test(qa_move, a_process_not_reported_yet_gets_the_time_to_copy_its_whole_quota)
{
    struct world w;
    setup_most(&w, 1, 0, 4 * GIB);
    w.drain_at = 0;
    qa_move_start(w.m, w.now);
    answer(&w); /* state */
    answer(&w); /* lock */
    cr_assert_eq(w.pop, QA_MOVE_CHECKPOINT);
    /* 5 s, plus 1 s per GiB of its 4 GiB quota (not 5 s for the 0 bytes it reported) */
    cr_assert_eq(qa_move_deadline(w.m), w.now + 9000 * MS);
    teardown_world(&w);
}
