/* test_arbiter_balancer.c - balancing GPUs with a real qarbiter on the simulated GPU:
 * three busy vGPUs on one GPU and an idle one are spread after one interval, with one
 * log line per move and no move undone over the intervals after; a lone busy vGPU never
 * bounces between a busy GPU and an idle one; `qgpuctl balance
 * --dry-run` prints the plan and changes nothing; `qgpuctl balance` carries it out. The
 * planner's rules themselves are tested on made-up figures (test_arbiter_balance.c). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/harness.h"
#include "tests/move_support.h"
#include "tests/shim_support.h"

#define GPUS "X:4GiB:8,X:4GiB:8"

/* Three vGPUs of share 30 on GPU 0, each with a workload flooding it for secs
 * (tests/progs/demo_worker: 1 ms kernels, 8 queued). */
static qt_arbiter_t *three_busy_on_gpu0(const char *config, qts_vgpu_t v[3], qt_proc_t *w[3],
                                        const char *secs)
{
    qt_sim_private(GPUS);
    qt_arbiter_t *arb = qt_arbiter_start(config, NULL);
    cr_assert_not_null(arb);
    for (int i = 0; i < 3; i++) {
        char vm[16];
        snprintf(vm, sizeof vm, "busy-%d", i);
        qts_vgpu_create(arb, &v[i], "--vm", vm, "--memory", "512MiB", "--share", "30", "--gpu",
                        "0", NULL);
        qts_env_t e;
        qts_env_of(&e, arb, &v[i]);
        char *prog = qt_build_path("tests/progs/demo_worker");
        const char *argv[] = {prog, "--seconds", secs, NULL};
        w[i] = qt_spawn(argv, e.v);
        free(prog);
        cr_assert_not_null(w[i]);
    }
    for (int i = 0; i < 3; i++)
        cr_assert(qts_wait_line(w[i], "ready", 20000), "%s", qt_proc_stderr(w[i]));
    return arb;
}

/* How many of v are on each GPU now. */
static void count_on(qt_arbiter_t *arb, const qts_vgpu_t v[3], int on[2])
{
    on[0] = on[1] = 0;
    for (int i = 0; i < 3; i++)
        on[qtm_info_int(arb, v[i].id, "gpu")]++;
}

/* Lines of the arbiter's log holding text. */
static int log_lines(qt_arbiter_t *arb, const char *text)
{
    int n = 0;
    for (const char *s = qt_proc_stderr(qt_arbiter_proc(arb)); (s = strstr(s, text)); s++)
        n++;
    return n;
}

Test(balancer, three_busy_vgpus_on_one_gpu_are_spread_after_one_interval_and_stay,
     .timeout = 120)
{
    qts_vgpu_t v[3];
    qt_proc_t *w[3];
    qt_arbiter_t *arb = three_busy_on_gpu0(
        "[balance]\ninterval_s = 1\nhigh = 80\nlow = 40\ncooldown_intervals = 3\n", v, w, "14");
    int on[2];
    count_on(arb, v, on);
    cr_assert_eq(on[0], 3);
    uint64_t until = qt_now_ns() + 8000000000ull;
    while (log_lines(arb, "auto-balance: moved") == 0 && qt_now_ns() < until)
        qt_sleep_ms(50);
    cr_assert_eq(log_lines(arb, "auto-balance: moved"), 1, "%s",
                 qt_proc_stderr(qt_arbiter_proc(arb)));
    const char *log = qt_proc_stderr(qt_arbiter_proc(arb));
    cr_assert(strstr(log, "from GPU 0 to GPU 1 in "), "one line saying what moved: %s", log);
    count_on(arb, v, on);
    cr_assert(on[0] == 2 && on[1] == 1, "spread: %d and %d", on[0], on[1]);
    /* Ten intervals more: each GPU is busy, none idle; nothing moves, nothing goes back. */
    qt_sleep_ms(10000);
    cr_assert_eq(log_lines(arb, "auto-balance: moved"), 1, "%s",
                 qt_proc_stderr(qt_arbiter_proc(arb)));
    cr_assert_eq(log_lines(arb, "auto-balance:"), 1, "no other move was tried");
    count_on(arb, v, on);
    cr_assert(on[0] == 2 && on[1] == 1);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(qt_proc_wait(w[i], 30000), 0, "moved or not, no call failed: %s%s",
                     qt_proc_stdout(w[i]), qt_proc_stderr(w[i]));
        qt_proc_destroy(&w[i]);
    }
    qt_arbiter_destroy(&arb);
}

/* The move that would bounce: one vGPU keeps GPU 0 busy and GPU 1 idles. Moving it would
 * only swap the two GPUs, and the next interval would move it back: it stays. */
Test(balancer, a_lone_busy_vgpu_stays_put_over_ten_intervals, .timeout = 120)
{
    qt_sim_private(GPUS);
    qt_arbiter_t *arb =
        qt_arbiter_start("[balance]\ninterval_s = 1\nhigh = 80\nlow = 40\ncooldown_intervals = 1\n",
                         NULL);
    cr_assert_not_null(arb);
    qts_vgpu_t v;
    qts_vgpu_create(arb, &v, "--vm", "lone", "--memory", "512MiB", "--share", "30", "--gpu", "0",
                    NULL);
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    char *prog = qt_build_path("tests/progs/demo_worker");
    const char *argv[] = {prog, "--seconds", "12", NULL};
    qt_proc_t *w = qt_spawn(argv, e.v);
    cr_assert(qts_wait_line(w, "ready", 20000), "%s", qt_proc_stderr(w));
    qt_sleep_ms(11000);
    char *out = NULL;
    cr_assert_eq(qt_ctl(arb, &out, NULL, "--json", "gpus", NULL), 0);
    json_t *doc = json_loads(out, 0, NULL);
    json_t *g0 = json_array_get(json_object_get(doc, "gpus"), 0);
    cr_assert_gt(json_number_value(json_object_get(g0, "util")), 80.0,
                 "GPU 0 is busy all along: %s", out);
    json_decref(doc);
    free(out);
    cr_assert_eq(log_lines(arb, "auto-balance:"), 0, "%s", qt_proc_stderr(qt_arbiter_proc(arb)));
    cr_assert_eq(qtm_info_int(arb, v.id, "gpu"), 0);
    cr_assert_eq(qt_proc_wait(w, 30000), 0, "%s", qt_proc_stderr(w));
    free(prog);
    qt_proc_destroy(&w);
    qt_arbiter_destroy(&arb);
}

Test(balancer, a_dry_run_prints_the_plan_and_changes_nothing_then_balance_carries_it_out,
     .timeout = 120)
{
    qts_vgpu_t v[3];
    qt_proc_t *w[3];
    /* interval_s = 0: never by itself */
    qt_arbiter_t *arb = three_busy_on_gpu0("[balance]\ninterval_s = 0\n", v, w, "8");
    qt_sleep_ms(2000); /* utilisation figures settle */
    char *out = NULL, *err = NULL;
    cr_assert_eq(qt_ctl(arb, &out, &err, "balance", "--dry-run", NULL), 0, "%s", err);
    cr_assert(strncmp(out, "VGPU ", 5) == 0, "a table: %s", out);
    cr_assert(strstr(out, "GPU 0 at ") && strstr(out, "% compute (over 80%), GPU 1 at 0% "
                                                      "(under 40%): vg-"),
              "why: %s", out);
    cr_assert_eq(qts_count_lines(out, "vg-"), 1, "one move: %s", out);
    int on[2];
    count_on(arb, v, on);
    cr_assert_eq(on[0], 3, "a dry run changes nothing");
    free(out);
    free(err);
    cr_assert_eq(qt_ctl(arb, &out, &err, "--json", "balance", NULL), 0, "%s", err);
    json_t *doc = json_loads(out, 0, NULL);
    cr_assert_not_null(doc, "%s", out);
    json_t *moves = json_object_get(doc, "moves");
    cr_assert_eq(json_array_size(moves), 1, "%s", out);
    json_t *m = json_array_get(moves, 0);
    cr_assert(json_is_true(json_object_get(m, "done")), "%s", out);
    cr_assert_eq(json_integer_value(json_object_get(m, "to")), 1);
    const char *id = json_string_value(json_object_get(m, "vgpu"));
    cr_assert_eq(qtm_info_int(arb, id, "gpu"), 1);
    json_decref(doc);
    free(out);
    free(err);
    count_on(arb, v, on);
    cr_assert(on[0] == 2 && on[1] == 1);
    cr_assert_eq(qt_ctl(arb, &out, &err, "balance", "--dry-run", NULL), 0);
    cr_assert(strstr(out, "nothing to move"), "the moved vGPU cools down: %s", out);
    free(out);
    free(err);
    for (int i = 0; i < 3; i++)
        qt_proc_destroy(&w[i]);
    qt_arbiter_destroy(&arb);
}
