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

/* A process of e's vGPU (a Q1) that allocated 700 MiB and holds it: with its context's
 * 256 MiB, nearly the whole quota. */
static qt_proc_t *hog_700(const qts_env_t *e)
{
    qt_proc_t *hog = qts_start(e, "init", "alloc:cuMemAlloc_v2:direct:700M", "hold", NULL);
    cr_assert(qts_wait_line(hog, "ready", 10000), "%s", qt_proc_stderr(hog));
    cr_assert_eq(qts_field(qt_proc_stdout(hog), "alloc cuMemAlloc_v2 direct ", 0), 0);
    return hog;
}

Test(shim_agent, an_unreachable_arbiter_refuses_new_memory_with_one_line)
{
    qts_vgpu_t v;
    qt_arbiter_t *arb = qts_arbiter_with(&v, "Q1");
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
    qt_arbiter_t *arb = qts_arbiter_with(&v, "Q1");
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
    cr_assert(qts_used_becomes(arb, &v, 716 * (long long)QTS_MIB, 3000), "used %lld",
              qts_vgpu_used(arb, &v));
    qt_proc_destroy(&p);
    qt_arbiter_destroy(&arb);
}

Test(shim_agent, an_arbiter_restart_while_a_workload_allocates_loses_nothing)
{
    qts_vgpu_t v;
    qt_arbiter_t *arb = qts_arbiter_with(&v, "Q1");
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
    cr_assert(qts_used_becomes(arb, &v, 700 * (long long)QTS_MIB, 3000), "used %lld",
              qts_vgpu_used(arb, &v));
    qt_proc_destroy(&p);
    qt_arbiter_destroy(&arb);
}

Test(shim_agent, a_killed_process_gives_its_memory_back_within_two_seconds)
{
    qts_vgpu_t v;
    qt_arbiter_t *arb = qts_arbiter_with(&v, "Q1");
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    qt_proc_t *hog = hog_700(&e);
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
    qt_arbiter_t *arb = qts_arbiter_with(&v, "Q1");
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
    cr_assert(qts_used_becomes(arb, &v, 400 * (long long)QTS_MIB, 3000), "used %lld",
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
    qt_arbiter_t *arb = qts_arbiter_with(&v, "Q1");
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
    qt_arbiter_t *arb = qts_arbiter_with(&v, "Q1");
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
    qt_arbiter_t *arb = qts_arbiter_with(&v, "Q1");
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
    qt_arbiter_t *arb = qts_arbiter_with(&v, "Q1");
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

/* Regression (issue 8): a shim whose mem_reserve was in flight when the arbiter died
 * waited out its 1.5 s reply deadline before it re-reported, longer than the new
 * arbiter's reconnect grace, and the 512 MiB it held was granted to a sibling: 1536 MiB
 * held on a 1024 MiB quota. Now the new arbiter keeps what the old one's processes may
 * still hold out of reach until they re-report (or are gone), whatever the timing, and a
 * shim whose connection closed under a request asks the new arbiter again at once. */
Test(shim_agent, a_restart_under_a_request_in_flight_never_lets_a_vgpu_hold_more_than_its_quota)
{
    /* Q2: a's two 512 MiB and the two processes' contexts (256 MiB each) fit; b's
     * 1280 MiB does not fit beside a's first 512, whichever request is decided first. */
    qts_vgpu_t v;
    qt_arbiter_t *arb = qts_arbiter_with(&v, "Q2");
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    qt_proc_t *a = qts_start(&e, "init", "alloc:cuMemAlloc_v2:direct:512M", "ready", "sleep:300",
                             "alloc:cuMemAlloc_v2:direct:512M", "hold", NULL);
    cr_assert(qts_wait_line(a, "ready", 10000));
    cr_assert_eq(qts_field(qt_proc_stdout(a), "alloc cuMemAlloc_v2 direct ", 0), 0);
    /* a's second allocation needs more reservation: its request goes to a stopped
     * arbiter, which is killed and restarted while a waits for the answer */
    qt_proc_kill(qt_arbiter_proc(arb), SIGSTOP);
    qt_sleep_ms(400);
    cr_assert_eq(qt_arbiter_restart(arb), 0);
    qt_proc_t *b = qts_start(&e, "init", "alloc:cuMemAlloc_v2:direct:1280M", "hold", NULL);
    cr_assert(qts_wait_line(b, "ready", 10000), "%s", qt_proc_stderr(b));
    cr_assert(qts_wait_lines(a, "ready", 2, 10000), "%s", qt_proc_stdout(a));
    long long a2 = qts_field_at(qt_proc_stdout(a), "alloc cuMemAlloc_v2 direct ", 1, 0);
    long long b1 = qts_field(qt_proc_stdout(b), "alloc cuMemAlloc_v2 direct ", 0);
    long long held = 512 + (a2 == 0 ? 512 : 0) + (b1 == 0 ? 1280 : 0);
    long long room = 2048 - 2 * (long long)(QTS_CTX / QTS_MIB);
    cr_assert_leq(held, room,
                  "the vGPU's processes allocated %lld MiB of the %lld MiB its quota "
                  "leaves beside their contexts",
                  held, room);
    /* Whichever asked the new arbiter first gets the memory: a's request, cut off, was
     * asked again and answered (not failed as if the arbiter were gone), and the quota is
     * not left half unused. */
    cr_assert_null(strstr(qt_proc_stderr(a), "arbiter unreachable"), "%s", qt_proc_stderr(a));
    cr_assert((a2 == 0) != (b1 == 0), "a's second allocation: %lld, b's: %lld", a2, b1);
    cr_assert(qts_used_becomes(arb, &v, held * (long long)QTS_MIB, 3000), "used %lld, not %lld MiB",
              qts_vgpu_used(arb, &v), held);
    qt_proc_destroy(&a);
    qt_proc_destroy(&b);
    qt_arbiter_destroy(&arb);
}

/* A process stopped (SIGSTOP) across a restart cannot re-report, however long it takes;
 * what it holds stays out of reach until it is gone, then is free within a second. */
Test(shim_agent, a_process_stopped_across_a_restart_keeps_its_memory_until_it_is_gone)
{
    qts_vgpu_t v;
    qt_arbiter_t *arb = qts_arbiter_with(&v, "Q1");
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    qt_proc_t *a = hog_700(&e);
    qt_proc_kill(a, SIGSTOP);
    cr_assert_eq(qt_arbiter_restart(arb), 0);
    qt_proc_t *b = qts_start(&e, "init", "alloc:cuMemAlloc_v2:direct:700M", "ready",
                             "alloc_retry:cuMemAlloc_v2:direct:700M:15000", "hold", NULL);
    cr_assert(qts_wait_line(b, "ready", 10000));
    cr_assert_eq(qts_field(qt_proc_stdout(b), "alloc cuMemAlloc_v2 direct ", 0), 2,
                 "a, stopped, may still hold its 700 MiB");
    qt_sleep_ms(2000); /* past the grace and the heartbeat timeout: still held */
    cr_assert_not(qts_wait_lines(b, "ready", 2, 10), "b got memory a may hold:\n%s",
                  qt_proc_stdout(b));
    uint64_t t0 = qt_now_ns();
    qt_proc_kill(a, SIGKILL);
    cr_assert(qts_wait_lines(b, "ready", 2, 5000), "%s", qt_proc_stdout(b));
    cr_assert_eq(qts_field_at(qt_proc_stdout(b), "alloc cuMemAlloc_v2 direct ", 1, 0), 0);
    uint64_t ms = (qt_now_ns() - t0) / 1000000;
    cr_assert_lt(ms, 2000, "a's memory came back %llu ms after its death", (unsigned long long)ms);
    qt_proc_destroy(&a);
    qt_proc_destroy(&b);
    qt_arbiter_destroy(&arb);
}

Test(shim_agent, what_a_process_gone_while_the_arbiter_was_down_held_is_free_at_once)
{
    qts_vgpu_t v;
    qt_arbiter_t *arb = qts_arbiter_with(&v, "Q1");
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    qt_proc_t *a = hog_700(&e);
    qt_arbiter_kill(arb, SIGKILL);
    qt_proc_kill(a, SIGKILL);
    qt_proc_wait(a, 5000);
    cr_assert_eq(qt_arbiter_restart(arb), 0);
    char *out;
    cr_assert_eq(qts_run(&e, &out, NULL, "init", "alloc:cuMemAlloc_v2:direct:700M", NULL), 0);
    cr_assert_eq(qts_field(out, "alloc cuMemAlloc_v2 direct ", 0), 0, "%s", out);
    free(out);
    qt_proc_destroy(&a);
    qt_arbiter_destroy(&arb);
}
