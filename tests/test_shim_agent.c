/* test_shim_agent.c - the shim's link to the arbiter: what happens when the arbiter is
 * unreachable, restarts, or a process dies; each fork or exec child is a process of the
 * vGPU of its own. */
#include "tests/shim_support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GiB (1024ull * QTS_MIB)

static qt_arbiter_t *arbiter_with(qts_vgpu_t *v, const char *profile)
{
    qt_sim_private(NULL);
    qt_arbiter_t *arb = qt_arbiter_start(NULL, NULL);
    cr_assert_not_null(arb);
    qts_vgpu_create(arb, v, "--vm", "vm-a", "--profile", profile, NULL);
    return arb;
}

static bool used_becomes(qt_arbiter_t *arb, const qts_vgpu_t *v, long long want, int ms)
{
    uint64_t end = qt_now_ns() + (uint64_t)ms * 1000000u;
    for (;;) {
        if (qts_vgpu_used(arb, v) == want)
            return true;
        if (qt_now_ns() >= end)
            return false;
        qt_sleep_ms(50);
    }
}

Test(shim_agent, an_unreachable_arbiter_refuses_new_memory_with_one_line)
{
    qts_vgpu_t v;
    qt_arbiter_t *arb = arbiter_with(&v, "Q1");
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    qt_arbiter_kill(arb, SIGKILL);
    char *out = NULL, *err = NULL;
    uint64_t t0 = qt_now_ns();
    cr_assert_eq(qts_run(&e, &out, &err, "init", "count", "alloc:cuMemAlloc_v2:direct:1M",
                         "alloc:cuMemAlloc_v2:procaddr:1M", "alloc:cuMemAllocManaged:dlsym:1M",
                         NULL),
                 0);
    cr_assert_lt(qt_now_ns() - t0, 3000000000ull, "no long wait for a dead arbiter");
    cr_assert_eq(qts_field(out, "count ", 1), 1, "the GPU still shows (from the environment)");
    cr_assert_eq(qts_count_lines(out, "alloc "), 3);
    cr_assert_eq(qts_count_lines(out, "alloc cuMemAlloc_v2 direct 2"), 1, "%s", out);
    cr_assert_eq(qts_count_lines(out, "alloc cuMemAlloc_v2 procaddr 2"), 1);
    cr_assert_eq(qts_count_lines(out, "alloc cuMemAllocManaged dlsym 2"), 1);
    cr_assert_eq(qts_count_lines(err, "qvgpu: "), 1, "one line, once:\n%s", err);
    cr_assert(strstr(err, "arbiter unreachable"), "%s", err);
    free(out);
    free(err);
    qt_arbiter_destroy(&arb);
}

Test(shim_agent, a_lost_arbiter_leaves_the_reservation_usable_and_is_found_again)
{
    qts_vgpu_t v;
    qt_arbiter_t *arb = arbiter_with(&v, "Q1");
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    /* 100 MiB reserves headroom beyond it: 16 MiB more fits without the arbiter; 600 MiB
     * does not, until the arbiter is back. */
    qt_proc_t *p = qts_start(&e, "init", "alloc:cuMemAlloc_v2:direct:100M", "ready", "sleep:1200",
                             "alloc:cuMemAlloc_v2:direct:16M", "alloc:cuMemAlloc_v2:direct:600M",
                             "alloc:cuMemAlloc_v2:direct:600M", "ready",
                             "alloc_retry:cuMemAlloc_v2:direct:600M:10000", "hold", NULL);
    cr_assert(qts_wait_line(p, "ready", 10000));
    qt_arbiter_kill(arb, SIGKILL);
    cr_assert(qts_wait_lines(p, "ready", 2, 10000), "%s", qt_proc_stdout(p));
    cr_assert_eq(qt_arbiter_restart(arb), 0);
    cr_assert(qts_wait_lines(p, "ready", 3, 15000), "%s", qt_proc_stdout(p));
    const char *o = qt_proc_stdout(p), *a = "alloc cuMemAlloc_v2 direct ";
    cr_assert_eq(qts_field_at(o, a, 0, 0), 0);
    cr_assert_eq(qts_field_at(o, a, 1, 0), 0, "within the reservation: %s", o);
    cr_assert_eq(qts_field_at(o, a, 2, 0), 2, "beyond it: %s", o);
    cr_assert_eq(qts_field_at(o, a, 3, 0), 2);
    cr_assert_eq(qts_field_at(o, a, 4, 0), 0, "reconnected by itself: %s", o);
    cr_assert_eq(qts_count_lines(qt_proc_stderr(p), "qvgpu: arbiter unreachable"), 1, "%s",
                 qt_proc_stderr(p));
    /* The new arbiter learnt what the process holds from its new hello and heartbeats. */
    cr_assert(used_becomes(arb, &v, 716 * (long long)QTS_MIB, 3000), "used %lld",
              qts_vgpu_used(arb, &v));
    qt_proc_destroy(&p);
    qt_arbiter_destroy(&arb);
}

Test(shim_agent, an_arbiter_restart_while_a_workload_allocates_loses_nothing)
{
    qts_vgpu_t v;
    qt_arbiter_t *arb = arbiter_with(&v, "Q1");
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    /* Four threads allocate and free within the process's reservation while the arbiter
     * goes away and comes back; then the process asks for more than it has reserved. */
    qt_proc_t *p =
        qts_start(&e, "init", "alloc:cuMemAlloc_v2:direct:100M", "ready", "threads:4:alloc_free:8M",
                  "alloc_retry:cuMemAlloc_v2:direct:300M:10000",
                  "alloc_retry:cuMemAlloc_v2:direct:300M:10000", "hold", NULL);
    cr_assert(qts_wait_line(p, "ready", 10000));
    cr_assert_eq(qt_arbiter_restart(arb), 0);
    cr_assert(qts_wait_lines(p, "ready", 2, 20000), "%s\n%s", qt_proc_stdout(p), qt_proc_stderr(p));
    const char *o = qt_proc_stdout(p);
    cr_assert_eq(qts_field(o, "threads ", 1), 0,
                 "allocations within the reservation never "
                 "need the arbiter: %s",
                 o);
    cr_assert_eq(qts_field_at(o, "alloc cuMemAlloc_v2 direct ", 1, 0), 0);
    cr_assert_eq(qts_field_at(o, "alloc cuMemAlloc_v2 direct ", 2, 0), 0);
    cr_assert(used_becomes(arb, &v, 700 * (long long)QTS_MIB, 3000), "used %lld",
              qts_vgpu_used(arb, &v));
    qt_proc_destroy(&p);
    qt_arbiter_destroy(&arb);
}

Test(shim_agent, a_killed_process_gives_its_memory_back_within_two_seconds)
{
    qts_vgpu_t v;
    qt_arbiter_t *arb = arbiter_with(&v, "Q1");
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    qt_proc_t *hog = qts_start(&e, "init", "alloc:cuMemAlloc_v2:direct:700M", "hold", NULL);
    cr_assert(qts_wait_line(hog, "ready", 10000));
    cr_assert_eq(qts_field(qt_proc_stdout(hog), "alloc cuMemAlloc_v2 direct ", 0), 0);
    /* The next process is refused while the hog lives... */
    qt_proc_t *next = qts_start(&e, "init", "alloc:cuMemAlloc_v2:direct:700M", "ready",
                                "alloc_retry:cuMemAlloc_v2:direct:700M:5000", NULL);
    cr_assert(qts_wait_line(next, "ready", 10000));
    cr_assert_eq(qts_field(qt_proc_stdout(next), "alloc cuMemAlloc_v2 direct ", 0), 2);
    /* ...and granted within 2 s of its kill -9. */
    uint64_t t0 = qt_now_ns();
    qt_proc_kill(hog, SIGKILL);
    cr_assert_eq(qt_proc_wait(next, 10000), 0);
    uint64_t dt = qt_now_ns() - t0;
    const char *o = qt_proc_stdout(next);
    cr_assert_eq(qts_field_at(o, "alloc cuMemAlloc_v2 direct ", 1, 0), 0, "%s", o);
    cr_assert_lt(dt, 2000000000ull, "took %llu ms", (unsigned long long)(dt / 1000000));
    qt_proc_destroy(&hog);
    qt_proc_destroy(&next);
    qt_arbiter_destroy(&arb);
}

Test(shim_agent, fork_and_exec_children_are_processes_of_the_vgpu_of_their_own)
{
    qts_vgpu_t v;
    qt_arbiter_t *arb = arbiter_with(&v, "Q1");
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    /* A child forked before the parent touches CUDA, then an exec'd one while the parent
     * holds 400 MiB: each is a process of the vGPU, sharing its quota. With the two
     * contexts (256 MiB each), 112 MiB of the 1 GiB are left for the exec'd child. */
    qt_proc_t *p = qts_start(&e, "fork:2", "init", "alloc:cuMemAlloc_v2:direct:200M", "init",
                             "alloc:cuMemAlloc_v2:direct:400M", "exec:3", "init",
                             "alloc:cuMemAlloc_v2:direct:500M", "alloc:cuMemAlloc_v2:direct:100M",
                             "hold", NULL);
    cr_assert(qts_wait_line(p, "ready", 20000), "%s\n%s", qt_proc_stdout(p), qt_proc_stderr(p));
    const char *o = qt_proc_stdout(p), *a = "alloc cuMemAlloc_v2 direct ";
    cr_assert_eq(qts_field(o, "[child] alloc cuMemAlloc_v2 direct ", 0), 0, "%s", o);
    cr_assert_eq(qts_field(o, "fork ", 0), 0);
    cr_assert_eq(qts_field(o, "exec ", 0), 0);
    cr_assert_eq(qts_field_at(o, a, 0, 0), 0, "the parent's 400 MiB: %s", o);
    cr_assert_eq(qts_field_at(o, a, 1, 0), 2, "the exec'd child shares the quota: %s", o);
    cr_assert_eq(qts_field_at(o, a, 2, 0), 0, "%s", o);
    cr_assert(used_becomes(arb, &v, 400 * (long long)QTS_MIB, 3000), "used %lld",
              qts_vgpu_used(arb, &v));
    qt_proc_destroy(&p);
    qt_arbiter_destroy(&arb);
}

/* The parent holds 700 MiB (and its context's 256) and forks a child that lives on without CUDA;
 * the parent is killed; a second process must get the memory when the connection closes. With
 * via_symlink the workloads reach the socket dir by another path, as a container that
 * mounts it elsewhere does: the connection's peer name (the path the arbiter bound) is
 * then not the path they used. */
static void killed_parent_with_child(bool via_symlink)
{
    qts_vgpu_t v;
    qt_arbiter_t *arb = arbiter_with(&v, "Q1");
    qts_env_t e;
    char *dir = qt_tmpdir(), link[512];
    snprintf(link, sizeof link, "%s/qvgpu", dir);
    cr_assert_eq(symlink(qt_arbiter_socket_dir(arb), link), 0);
    if (via_symlink)
        qts_env_vgpu(&e, link, v.id, v.secret, v.gpu_uuid);
    else
        qts_env_of(&e, arb, &v);
    /* The parent holds 700 MiB and forks a child that lives on without CUDA (a
     * data-loader worker); the parent waits for it and is killed meanwhile. */
    qt_proc_t *parent = qts_start(&e, "init", "alloc:cuMemAlloc_v2:direct:700M", "ready", "fork:1",
                                  "sleep:8000", NULL);
    cr_assert(qts_wait_line(parent, "ready", 10000));
    qt_proc_t *next = qts_start(&e, "init", "alloc:cuMemAlloc_v2:direct:700M", "ready",
                                "alloc_retry:cuMemAlloc_v2:direct:700M:5000", NULL);
    cr_assert(qts_wait_line(next, "ready", 10000));
    cr_assert_eq(qts_field(qt_proc_stdout(next), "alloc cuMemAlloc_v2 direct ", 0), 2);
    uint64_t t0 = qt_now_ns();
    qt_proc_kill(parent, SIGKILL);
    cr_assert_eq(qt_proc_wait(next, 10000), 0);
    uint64_t dt = qt_now_ns() - t0;
    cr_assert_eq(qts_field_at(qt_proc_stdout(next), "alloc cuMemAlloc_v2 direct ", 1, 0), 0);
    /* Seen when the connection closed, not 1.5 s later when heartbeats stopped: the child
     * closed its copy of the parent's connection. */
    cr_assert_lt(dt, 1000000000ull, "took %llu ms", (unsigned long long)(dt / 1000000));
    qt_proc_destroy(&parent);
    qt_proc_destroy(&next);
    qt_arbiter_destroy(&arb);
    free(dir);
}

Test(shim_agent, a_forked_child_does_not_keep_its_killed_parents_memory)
{
    killed_parent_with_child(false);
}

Test(shim_agent, a_forked_child_closes_the_parents_connection_reached_through_a_symlink)
{
    killed_parent_with_child(true);
}

Test(shim_agent, fork_keeps_the_applications_errno)
{
    qts_vgpu_t v;
    qt_arbiter_t *arb = arbiter_with(&v, "Q1");
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    char *out = NULL, *err = NULL;
    cr_assert_eq(qts_run(&e, &out, &err, "init", "fork_errno", NULL), 0, "%s", err);
    cr_assert_eq(qts_field(out, "[child] fork_errno ", 0), EXDEV, "%s", out);
    cr_assert_eq(qts_field(out, "fork_errno ", 0), EXDEV, "%s", out);
    free(out);
    free(err);
    qt_arbiter_destroy(&arb);
}

Test(shim_agent, a_process_exiting_while_threads_ask_the_agent_exits_cleanly)
{
    qts_vgpu_t v;
    qt_arbiter_t *arb = arbiter_with(&v, "Q1");
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    /* 2 GiB never fits a 1 GiB quota: every allocation waits for the arbiter's refusal,
     * and the launches for leases, while exit() stops the agent under them. */
    for (int i = 0; i < 3; i++) {
        char *out = NULL, *err = NULL;
        cr_assert_eq(qts_run(&e, &out, &err, "init", "exit_busy:8:2G:300", NULL), 0,
                     "stdout:\n%s\nstderr:\n%s", out, err);
        cr_assert_eq(qts_count_lines(out, "exit_busy"), 1, "%s", out);
        free(out);
        free(err);
    }
    qt_arbiter_destroy(&arb);
}

Test(shim_agent, a_thread_cancelled_while_the_agent_asks_for_memory_blocks_nobody)
{
    qts_vgpu_t v;
    qt_arbiter_t *arb = arbiter_with(&v, "Q1");
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    /* The arbiter is stopped when a thread's allocation needs more reservation: the
     * thread waits for the agent's answer when it is cancelled. The agent, and the
     * process's next allocation, must go on once the arbiter answers again. */
    qt_proc_t *p = qts_start(&e, "init", "ready", "sleep:300", "cancel_alloc:300:200M",
                             "alloc_retry:cuMemAlloc_v2:direct:200M:5000", NULL);
    cr_assert(qts_wait_line(p, "ready", 10000));
    qt_proc_kill(qt_arbiter_proc(arb), SIGSTOP);
    qt_sleep_ms(1000);
    qt_proc_kill(qt_arbiter_proc(arb), SIGCONT);
    int st = qt_proc_wait(p, 15000);
    cr_assert_eq(st, 0, "exit %d (hung?)\nstdout:\n%s\nstderr:\n%s", st, qt_proc_stdout(p),
                 qt_proc_stderr(p));
    /* Its own try may fail (the arbiter was away: it says so at once); the agent lives. */
    cr_assert_geq(qts_field(qt_proc_stdout(p), "cancel_alloc ", 0), 0, "%s", qt_proc_stdout(p));
    cr_assert_eq(qts_field(qt_proc_stdout(p), "alloc cuMemAlloc_v2 direct ", 0), 0, "%s\n%s",
                 qt_proc_stdout(p), qt_proc_stderr(p));
    qt_proc_destroy(&p);
    qt_arbiter_destroy(&arb);
}
