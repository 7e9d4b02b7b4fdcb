/* test_arbiter_nvml.c - GPU discovery and sampling through the NVML loaded at run time,
 * here the simulated one. */
#include "arbiter/nvml.h"
#include "tests/ctl_support.h"

#include <criterion/criterion.h>
#include <string.h>

Test(qa_nvml, describes_every_gpu_of_the_host)
{
    qt_sim_private(CTL_GPUS);
    char err[QP_ERR_LEN];
    qa_nvml_t *n = qa_nvml_open(err);
    cr_assert_not_null(n, "%s", err);
    qa_gpu_desc_t g[QA_MAX_GPUS];
    size_t count;
    unsigned derived;
    cr_assert_eq(qa_nvml_describe(n, g, QA_MAX_GPUS, &count, &derived, err), 0, "%s", err);
    cr_assert_eq(count, 3);
    cr_assert_eq(derived, 0, "the sim reports SMs and cores itself");
    cr_assert_eq(g[0].memory_total, 8ull << 30);
    cr_assert_eq(g[2].memory_total, 4ull << 30);
    cr_assert_eq(g[2].sms, 10);
    cr_assert_eq(g[2].cuda_cores, 1280);
    cr_assert_str_eq(g[1].name, "NVIDIA GeForce GTX 1080");
    cr_assert(strncmp(g[0].uuid, "GPU-", 4) == 0, "%s", g[0].uuid);
    cr_assert_eq(qa_nvml_describe(n, g, 2, &count, &derived, err), 0);
    cr_assert_eq(count, 2, "no more than the room given");
    qa_gpu_sample_t s;
    qa_nvml_sample(n, 0, &s);
    cr_assert(s.ok);
    cr_assert_eq(s.util, 0, "an idle GPU");
    cr_assert_eq(s.nprocs, 0);
    qa_nvml_sample(n, 9, &s);
    cr_assert_not(s.ok, "no such GPU");
    qa_nvml_close(&n);
    cr_assert_null(n);
}

Test(qa_nvml, cores_per_sm_follow_the_compute_capability)
{
    cr_assert_eq(qa_cores_per_sm(6, 1), 128, "Pascal GeForce");
    cr_assert_eq(qa_cores_per_sm(6, 0), 64, "P100");
    cr_assert_eq(qa_cores_per_sm(7, 5), 64, "Turing");
    cr_assert_eq(qa_cores_per_sm(8, 0), 64, "A100");
    cr_assert_eq(qa_cores_per_sm(8, 6), 128, "Ampere GeForce");
    cr_assert_eq(qa_cores_per_sm(9, 0), 128, "H100");
    cr_assert_eq(qa_cores_per_sm(1, 0), 0, "unknown");
}
