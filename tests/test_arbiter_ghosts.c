/* test_arbiter_ghosts.c - what the previous arbiter's processes may still hold: charged to
 * their vGPU from the ledger until each says hello again or is gone, their ledger slots
 * kept meanwhile (arbiter/ghosts.c). Processes are this one (alive) and a child that
 * exited (gone). */
#include "arbiter/ghosts.h"
#include "tests/handler_support.h"
#include "tests/harness.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB (1ull << 20)

struct gw {
    qa_config_t cfg;
    qa_log_t log;
    char *dir;
    qa_host_t *host;
    qa_vgpu_t *v[2];
    qa_ledger_t *ledger;
};

/* A pid that was a process and is no longer. */
static pid_t dead_pid(void)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    cr_assert_gt(pid, 0);
    waitpid(pid, NULL, 0);
    return pid;
}

/* A host with vg-1 and vg-2, and a ledger in which the previous arbiter left: this
 * process holding 512 MiB of vg-1, a gone one 256 MiB of vg-1, one of unknown pid 128 MiB
 * of vg-2, one of a vGPU that is no more, and one holding nothing. */
static struct gw *gw_new(void)
{
    struct gw *w = calloc(1, sizeof *w);
    char err[QP_ERR_LEN];
    uint64_t start;
    qa_config_defaults(&w->cfg);
    w->log = (qa_log_t){QA_DEBUG, stderr};
    w->dir = qt_tmpdir();
    w->host = qt_host(1, &w->cfg);
    for (int i = 0; i < 2; i++) {
        qa_spec_t s = {.vm = "vm", .profile = "Q1", .gpu = -1};
        cr_assert_eq(qa_host_create(w->host, &s, 0, &w->v[i], err), 0, "%s", err);
    }
    qa_ledger_t *prev = qa_ledger_open(w->dir, err);
    cr_assert_not_null(prev, "%s", err);
    cr_assert_eq(qa_ledger_proc_start(getpid(), &start), 0);
    cr_assert_geq(qa_ledger_add(prev, "vg-1", getpid(), start, 512 * MIB), 0);
    cr_assert_geq(qa_ledger_add(prev, "vg-1", dead_pid(), 1, 256 * MIB), 0);
    cr_assert_geq(qa_ledger_add(prev, "vg-2", 0, 0, 128 * MIB), 0);
    cr_assert_geq(qa_ledger_add(prev, "vg-9", getpid(), start, 64 * MIB), 0);
    cr_assert_geq(qa_ledger_add(prev, "vg-2", getpid(), start, 0), 0);
    qa_ledger_close(&prev);
    cr_assert_not_null(w->ledger = qa_ledger_open(w->dir, err), "%s", err);
    return w;
}

static void gw_free(struct gw *w)
{
    qa_ghosts_forget(w->host);
    qa_ledger_close(&w->ledger);
    qa_host_destroy(&w->host);
    free(w->dir);
    free(w);
}

Test(qa_ghosts, what_live_or_unknown_processes_may_hold_is_charged_the_rest_forgotten)
{
    struct gw *w = gw_new();
    cr_assert_eq(qa_ghosts_adopt(w->host, w->ledger, qa_now_ns() + 1000000000ull, &w->log), 0);
    cr_assert_eq(w->v[0]->ghost_bytes, 512 * MIB, "the live process; the gone one is not");
    cr_assert_eq(w->v[0]->mem_reserved, 512 * MIB);
    cr_assert_eq(w->v[1]->ghost_bytes, 128 * MIB, "a pid never learnt is kept until its deadline");
    cr_assert_eq(qa_ledger_used(w->ledger), 2, "the kept ones' slots stay for the next arbiter");
    gw_free(w);
}

Test(qa_ghosts, a_process_that_says_hello_again_frees_its_ghost_and_only_its_own)
{
    struct gw *w = gw_new();
    uint64_t start;
    cr_assert_eq(qa_ghosts_adopt(w->host, w->ledger, qa_now_ns() + 1000000000ull, &w->log), 0);
    cr_assert_eq(qa_ledger_proc_start(getpid(), &start), 0);
    cr_assert_not(qa_ghosts_claim(w->v[0], w->ledger, getpid(), start + 1),
                  "the same pid started at another time is another process");
    cr_assert_not(qa_ghosts_claim(w->v[1], w->ledger, getpid(), start), "not a ghost of vg-2");
    cr_assert(qa_ghosts_claim(w->v[0], w->ledger, getpid(), start));
    cr_assert_eq(w->v[0]->ghost_bytes, 0);
    cr_assert_eq(w->v[0]->mem_reserved, 0);
    cr_assert_eq(qa_ledger_used(w->ledger), 1);
    gw_free(w);
}

Test(qa_ghosts, an_unknown_pid_is_dropped_at_its_deadline_and_a_destroyed_vgpus_at_once)
{
    struct gw *w = gw_new();
    uint64_t now = qa_now_ns();
    cr_assert_eq(qa_ghosts_adopt(w->host, w->ledger, now + 1000000000ull, &w->log), 0);
    cr_assert_not(qa_ghosts_check(w->v[1], w->ledger, now, &w->log), "before its deadline");
    cr_assert_not(qa_ghosts_check(w->v[0], w->ledger, now + 5000000000ull, &w->log),
                  "this process is alive: kept whatever the time");
    cr_assert(qa_ghosts_check(w->v[1], w->ledger, now + 1000000000ull, &w->log));
    cr_assert_eq(w->v[1]->ghost_bytes, 0);
    qa_ghosts_drop_all(w->v[0], w->ledger);
    cr_assert_eq(w->v[0]->mem_reserved, 0);
    cr_assert_eq(qa_ledger_used(w->ledger), 0);
    gw_free(w);
}
