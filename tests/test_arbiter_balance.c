/* test_arbiter_balance.c - the balance planner on made-up GPUs and vGPUs: what moves,
 * what never does (idle vGPUs, other chips, what does not fit, what just moved), memory
 * pressure, and ten intervals of a simulated host without any move undone. */
#include "arbiter/balance.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define GIB (1024ull * 1024ull * 1024ull)
#define S 1000000000ull

static qa_config_t cfg;
static const qa_bal_params_t params = {
    .high = 80, .low = 40, .memory = true, .cooldown_ns = 180 * S, .max_moves = 8};

static void init(void)
{
    qa_config_defaults(&cfg);
}

TestSuite(qa_balance, .init = init);

/* n GPUs of chip "X" with 8 GiB each, idle. */
static void gpus(qa_bal_gpu_t *g, size_t n)
{
    for (size_t i = 0; i < n; i++)
        g[i] = (qa_bal_gpu_t){.index = (unsigned)i,
                              .chip = "X",
                              .load = {.memory_total_mb = 8192, .memory_reserved_mb = 0,
                                       .share_reserved = 0, .util = 0}};
}

/* Places v (1 GiB quota, share 20) on GPU gpu with util percent, adding it to that GPU's
 * figures. */
static void place(qa_bal_gpu_t *g, qa_bal_vgpu_t *v, const char *id, unsigned gpu, double util)
{
    *v = (qa_bal_vgpu_t){.id = id, .gpu = gpu, .memory_mb = 1024, .share = 20, .util = util};
    g[gpu].util += util;
    g[gpu].load.memory_reserved_mb += v->memory_mb;
    g[gpu].load.share_reserved += v->share;
}

Test(qa_balance, three_busy_vgpus_on_one_gpu_spread_to_the_idle_one)
{
    qa_bal_gpu_t g[2];
    qa_bal_vgpu_t v[3];
    gpus(g, 2);
    place(g, &v[0], "vg-1", 0, 34);
    place(g, &v[1], "vg-2", 0, 31);
    place(g, &v[2], "vg-3", 0, 33);
    qa_bal_move_t m[8];
    size_t n = qa_balance_plan(g, 2, v, 3, &params, &cfg, 1000 * S, m, 8);
    cr_assert_eq(n, 1, "one move brings GPU 0 under 80%%");
    cr_assert_eq(m[0].vgpu, 1, "the least used");
    cr_assert_eq(m[0].from, 0);
    cr_assert_eq(m[0].to, 1);
    cr_assert_str_eq(m[0].why, "GPU 0 at 98% compute (over 80%), GPU 1 at 0% (under 40%): vg-2 "
                               "uses 31%; after the move 67% and 31%");
    cr_assert_eq(v[1].gpu, 0, "the caller's figures are not changed");
}

Test(qa_balance, nothing_moves_when_no_gpu_is_over_high_or_none_under_low)
{
    qa_bal_gpu_t g[2];
    qa_bal_vgpu_t v[3];
    qa_bal_move_t m[8];
    gpus(g, 2);
    place(g, &v[0], "vg-1", 0, 40);
    place(g, &v[1], "vg-2", 0, 39);
    cr_assert_eq(qa_balance_plan(g, 2, v, 2, &params, &cfg, S, m, 8), 0, "79%% is not over 80");
    place(g, &v[2], "vg-3", 1, 45);
    g[0].util = 95;
    cr_assert_eq(qa_balance_plan(g, 2, v, 3, &params, &cfg, S, m, 8), 0,
                 "GPU 1 at 45%% is not under 40");
}

Test(qa_balance, an_idle_vgpu_never_moves_it_would_change_nothing)
{
    qa_bal_gpu_t g[2];
    qa_bal_vgpu_t v[3];
    qa_bal_move_t m[8];
    gpus(g, 2);
    place(g, &v[0], "vg-1", 0, 0);
    place(g, &v[1], "vg-2", 0, 60);
    place(g, &v[2], "vg-3", 0, 30);
    cr_assert_eq(qa_balance_plan(g, 2, v, 3, &params, &cfg, S, m, 8), 1);
    cr_assert_eq(m[0].vgpu, 2, "the least used of those whose move helps");
}

Test(qa_balance, a_lone_heavy_vgpu_stays_moving_it_only_moves_the_problem)
{
    qa_bal_gpu_t g[2];
    qa_bal_vgpu_t v[1];
    qa_bal_move_t m[8];
    gpus(g, 2);
    place(g, &v[0], "vg-1", 0, 95);
    cr_assert_eq(qa_balance_plan(g, 2, v, 1, &params, &cfg, S, m, 8), 0);
}

Test(qa_balance, moves_only_between_gpus_of_one_chip)
{
    qa_bal_gpu_t g[3];
    qa_bal_vgpu_t v[3];
    qa_bal_move_t m[8];
    gpus(g, 3);
    g[1].chip = "Y";
    g[1].util = 0;
    g[2].util = 35; /* under low, but less idle than GPU 1 */
    place(g, &v[0], "vg-1", 0, 50);
    place(g, &v[1], "vg-2", 0, 45);
    cr_assert_eq(qa_balance_plan(g, 3, v, 2, &params, &cfg, S, m, 8), 0,
                 "GPU 2 would end at 80%%, GPU 1 is another chip");
    g[2].util = 10;
    cr_assert_eq(qa_balance_plan(g, 3, v, 2, &params, &cfg, S, m, 8), 1);
    cr_assert_eq(m[0].to, 2);
}

Test(qa_balance, a_vgpu_that_does_not_fit_the_target_stays_and_another_goes)
{
    qa_bal_gpu_t g[2];
    qa_bal_vgpu_t v[2];
    qa_bal_move_t m[8];
    gpus(g, 2);
    place(g, &v[0], "vg-1", 0, 40);
    place(g, &v[1], "vg-2", 0, 50);
    cr_assert_eq(qa_balance_plan(g, 2, v, 2, &params, &cfg, S, m, 8), 1);
    cr_assert_eq(m[0].vgpu, 0, "the least used, when it fits");
    v[0].memory_mb = 6144;
    g[1].load.memory_reserved_mb = 4096; /* 4 GiB free there */
    cr_assert_eq(qa_balance_plan(g, 2, v, 2, &params, &cfg, S, m, 8), 1);
    cr_assert_eq(m[0].vgpu, 1, "vg-1's 6 GiB do not fit in the 4 GiB GPU 1 has free");
    v[1].share = 90; /* GPU 1 has 80% of its time left to guarantee */
    g[1].load.share_reserved = 20;
    cr_assert_eq(qa_balance_plan(g, 2, v, 2, &params, &cfg, S, m, 8), 0,
                 "neither fits now: admission rules the target");
}

Test(qa_balance, a_vgpu_that_just_moved_stays_for_the_cooldown)
{
    qa_bal_gpu_t g[2];
    qa_bal_vgpu_t v[2];
    qa_bal_move_t m[8];
    gpus(g, 2);
    place(g, &v[0], "vg-1", 0, 45);
    place(g, &v[1], "vg-2", 0, 45);
    v[0].moved_at = v[1].moved_at = 100 * S;
    cr_assert_eq(qa_balance_plan(g, 2, v, 2, &params, &cfg, 100 * S + 179 * S, m, 8), 0);
    cr_assert_eq(qa_balance_plan(g, 2, v, 2, &params, &cfg, 100 * S + 180 * S, m, 8), 1);
    v[0].pinned = v[1].pinned = true;
    cr_assert_eq(qa_balance_plan(g, 2, v, 2, &params, &cfg, 1000 * S, m, 8), 0,
                 "pinned: a move of it is under way");
}

Test(qa_balance, memory_pressure_moves_the_smallest_vgpu_that_relieves_it)
{
    qa_bal_gpu_t g[2];
    qa_bal_vgpu_t v[3];
    qa_bal_move_t m[8];
    gpus(g, 2);
    place(g, &v[0], "vg-1", 0, 5);
    place(g, &v[1], "vg-2", 0, 5);
    place(g, &v[2], "vg-3", 0, 5);
    v[0].memory_used = 5 * GIB;
    v[1].memory_used = 1 * GIB + GIB / 2;
    v[2].memory_used = 1 * GIB;
    g[0].memory_used = 7 * GIB + GIB / 2; /* 94% */
    cr_assert_eq(qa_balance_plan(g, 2, v, 3, &params, &cfg, S, m, 8), 2,
                 "the smallest leaves GPU 0 at 81%%, the next at 62%%");
    cr_assert_eq(m[0].vgpu, 2);
    cr_assert_str_eq(m[0].why, "GPU 0 at 94% memory (over 80%), GPU 1 at 0% (under 40%): vg-3 "
                               "uses 12% of its memory; after the move 81% and 12%");
    cr_assert_eq(m[1].vgpu, 1);
    qa_bal_params_t off = params;
    off.memory = false;
    cr_assert_eq(qa_balance_plan(g, 2, v, 3, &off, &cfg, S, m, 8), 0, "memory not counted");
}

Test(qa_balance, a_plan_spreads_over_several_idle_gpus_within_max_moves)
{
    qa_bal_gpu_t g[3];
    qa_bal_vgpu_t v[4];
    qa_bal_move_t m[8];
    gpus(g, 3);
    place(g, &v[0], "vg-1", 0, 30);
    place(g, &v[1], "vg-2", 0, 30);
    place(g, &v[2], "vg-3", 0, 30);
    place(g, &v[3], "vg-4", 1, 90);
    size_t n = qa_balance_plan(g, 3, v, 4, &params, &cfg, S, m, 8);
    cr_assert_eq(n, 1, "GPU 0 at 90%% sends one to GPU 2; GPU 1's lone vGPU stays");
    cr_assert_eq(m[0].from, 0);
    cr_assert_eq(m[0].to, 2);
    qa_bal_params_t one = params;
    one.max_moves = 0;
    cr_assert_eq(qa_balance_plan(g, 3, v, 4, &one, &cfg, S, m, 8), 0);
}

/* Ten intervals of a host: each vGPU's utilisation wanders by a few points around its
 * own level, GPU utilisations are their sums, every planned move is made. After the
 * first interval nothing moves back. */
Test(qa_balance, no_vgpu_goes_back_and_forth_over_ten_intervals)
{
    qa_bal_gpu_t g[2];
    qa_bal_vgpu_t v[4];
    static const double level[4] = {30, 30, 30, 8};
    static const char *ids[4] = {"vg-1", "vg-2", "vg-3", "vg-4"};
    gpus(g, 2);
    for (size_t i = 0; i < 4; i++)
        place(g, &v[i], ids[i], 0, level[i]);
    unsigned moves[4] = {0}, total = 0;
    uint64_t now = 60 * S;
    for (int interval = 0; interval < 10; interval++, now += 60 * S) {
        g[0].util = g[1].util = 0;
        for (size_t i = 0; i < 4; i++) {
            v[i].util = level[i] + ((interval * 7 + (int)i * 3) % 9) - 4; /* +-4 points */
            g[v[i].gpu].util += v[i].util;
        }
        qa_bal_move_t m[8];
        size_t n = qa_balance_plan(g, 2, v, 4, &params, &cfg, now, m, 8);
        for (size_t k = 0; k < n; k++) {
            qa_bal_vgpu_t *x = &v[m[k].vgpu];
            g[m[k].from].load.memory_reserved_mb -= x->memory_mb;
            g[m[k].from].load.share_reserved -= x->share;
            g[m[k].to].load.memory_reserved_mb += x->memory_mb;
            g[m[k].to].load.share_reserved += x->share;
            x->gpu = m[k].to;
            x->moved_at = now;
            moves[m[k].vgpu]++;
            total++;
        }
    }
    cr_assert_geq(total, 1, "the load was spread");
    cr_assert_leq(total, 2);
    for (size_t i = 0; i < 4; i++)
        cr_assert_leq(moves[i], 1, "%s moved %u times", ids[i], moves[i]);
    cr_assert_leq(g[0].util, 80);
    cr_assert_leq(g[1].util, 80);
}
