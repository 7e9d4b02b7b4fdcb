/* test_arbiter_placement.c - admission with and without oversubscription, spread and
 * pack, and measured utilisation steering placement. */
#include "arbiter/placement.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

static qa_config_t cfg_with(qa_policy_t policy, double om, double os, double w)
{
    qa_config_t cfg;
    qa_config_defaults(&cfg);
    cfg.placement = policy;
    cfg.oversub_memory = om;
    cfg.oversub_share = os;
    cfg.util_weight = w;
    return cfg;
}

Test(qa_placement, admits_exactly_up_to_capacity)
{
    qa_config_t cfg = cfg_with(QA_SPREAD, 1, 1, 0.5);
    qa_gpu_load_t g = {8192, 6144, 60, 0};
    char err[QP_ERR_LEN];
    cr_assert_eq(qa_admit(&g, 0, 2048, 40, &cfg, err), 0);
    cr_assert_eq(qa_admit(&g, 0, 2049, 40, &cfg, err), -ENOSPC);
    cr_assert(strstr(err, "GPU 0 has 2048 MiB and 40% free, 2049 MiB and 40% asked"), "%s", err);
    cr_assert_eq(qa_admit(&g, 0, 1024, 41, &cfg, err), -ENOSPC);
}

Test(qa_placement, oversubscription_ratios_raise_capacity)
{
    qa_config_t cfg = cfg_with(QA_SPREAD, 1.5, 2, 0.5);
    qa_gpu_load_t g = {8192, 8192, 100, 0};
    char err[QP_ERR_LEN];
    cr_assert_eq(qa_gpu_memory_free(&g, &cfg), 4096);
    cr_assert_eq(qa_gpu_share_free(&g, &cfg), 100);
    cr_assert_eq(qa_admit(&g, 1, 4096, 100, &cfg, err), 0);
    cr_assert_eq(qa_admit(&g, 1, 4097, 10, &cfg, err), -ENOSPC);
    /* never one vGPU bigger than the card, whatever the ratio */
    qa_gpu_load_t empty = {8192, 0, 0, 0};
    cr_assert_eq(qa_admit(&empty, 1, 9000, 10, &cfg, err), -ENOSPC);
    cr_assert(strstr(err, "8192 MiB in all"), "%s", err);
}

Test(qa_placement, spread_picks_the_least_loaded_gpu)
{
    qa_config_t cfg = cfg_with(QA_SPREAD, 1, 1, 0);
    qa_gpu_load_t g[3] = {{8192, 4096, 40, 0}, {8192, 1024, 10, 0}, {8192, 2048, 20, 0}};
    char err[QP_ERR_LEN];
    cr_assert_eq(qa_place(g, 3, 1024, 10, &cfg, err), 1);
}

Test(qa_placement, pack_picks_the_fullest_gpu_that_still_fits)
{
    qa_config_t cfg = cfg_with(QA_PACK, 1, 1, 0);
    qa_gpu_load_t g[3] = {{8192, 4096, 40, 0}, {8192, 7168, 70, 0}, {8192, 2048, 20, 0}};
    char err[QP_ERR_LEN];
    cr_assert_eq(qa_place(g, 3, 1024, 10, &cfg, err), 1);
    cr_assert_eq(qa_place(g, 3, 2048, 20, &cfg, err), 0, "GPU 1 is too full for this one");
}

Test(qa_placement, ties_go_to_the_lowest_index)
{
    qa_config_t cfg = cfg_with(QA_SPREAD, 1, 1, 0.5);
    qa_gpu_load_t g[2] = {{8192, 0, 0, 0}, {8192, 0, 0, 0}};
    char err[QP_ERR_LEN];
    cr_assert_eq(qa_place(g, 2, 1024, 10, &cfg, err), 0);
    cfg.placement = QA_PACK;
    cr_assert_eq(qa_place(g, 2, 1024, 10, &cfg, err), 0);
}

Test(qa_placement, measured_utilisation_steers_between_equal_reservations)
{
    qa_config_t cfg = cfg_with(QA_SPREAD, 1, 1, 0.5);
    qa_gpu_load_t g[2] = {{8192, 2048, 20, 90}, {8192, 2048, 20, 5}};
    char err[QP_ERR_LEN];
    cr_assert_eq(qa_place(g, 2, 1024, 10, &cfg, err), 1, "the busy GPU is avoided");
    cfg.placement = QA_PACK;
    cr_assert_eq(qa_place(g, 2, 1024, 10, &cfg, err), 1, "packing avoids it too");
    cfg.util_weight = 0;
    cfg.placement = QA_SPREAD;
    cr_assert_eq(qa_place(g, 2, 1024, 10, &cfg, err), 0, "weight 0 ignores utilisation");
}

Test(qa_placement, says_what_each_gpu_has_when_nothing_fits)
{
    qa_config_t cfg = cfg_with(QA_SPREAD, 1, 1, 0.5);
    qa_gpu_load_t g[2] = {{8192, 6656, 50, 0}, {8192, 8192, 100, 0}};
    char err[QP_ERR_LEN];
    cr_assert_eq(qa_place(g, 2, 4096, 40, &cfg, err), -ENOSPC);
    cr_assert(strstr(err, "4096 MiB and 40%"), "%s", err);
    cr_assert(strstr(err, "GPU 0 has 1536 MiB and 50% free"), "%s", err);
    cr_assert(strstr(err, "GPU 1 has 0 MiB and 0% free"), "%s", err);
}
