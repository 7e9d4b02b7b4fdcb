/* test_arbiter_sampler.c - the thread that samples the GPUs through NVML (the simulated
 * one here): rounds published at the period or at once when asked, taken once each by
 * the loop, which the sampler's descriptor wakes (arbiter/sampler.c). */
#include "arbiter/nvml.h"
#include "arbiter/sampler.h"
#include "tests/ctl_support.h"

#include <criterion/criterion.h>
#include <poll.h>
#include <string.h>

Test(qa_sampler, publishes_rounds_the_loop_can_take)
{
    qt_sim_private(CTL_GPUS);
    char err[QP_ERR_LEN];
    qa_nvml_t *n = qa_nvml_open(err);
    cr_assert_not_null(n, "%s", err);
    qa_sampler_t *s = qa_sampler_start(n, 3, 20);
    cr_assert_not_null(s);
    qa_gpu_sample_t out[3];
    uint64_t seen = 0;
    int rounds = 0;
    for (int i = 0; i < 200 && rounds < 3; i++) {
        if (qa_sampler_take(s, out, &seen)) {
            rounds++;
            cr_assert(out[0].ok && out[1].ok && out[2].ok);
        }
        qt_sleep_ms(5);
    }
    cr_assert_eq(rounds, 3, "a new round every period");
    uint64_t before = seen;
    cr_assert_not(qa_sampler_take(s, out, &seen) && seen == before, "no round twice");
    qa_sampler_stop(&s);
    cr_assert_null(s);
    qa_nvml_close(&n);
}

Test(qa_sampler, a_kick_brings_a_round_long_before_the_period_and_wakes_the_loop)
{
    qt_sim_private(CTL_GPUS);
    char err[QP_ERR_LEN];
    qa_nvml_t *n = qa_nvml_open(err);
    cr_assert_not_null(n, "%s", err);
    qa_sampler_t *s = qa_sampler_start(n, 3, 60000); /* a period longer than the test */
    cr_assert_not_null(s);
    qa_gpu_sample_t out[3];
    uint64_t seen = 0;
    struct pollfd pfd = {qa_sampler_fd(s), POLLIN, 0};
    cr_assert_eq(poll(&pfd, 1, 5000), 1, "the first round comes at the start");
    cr_assert(qa_sampler_take(s, out, &seen));
    uint64_t first = seen;
    uint64_t t0 = qt_now_ns();
    qa_sampler_kick(s);
    cr_assert_eq(poll(&pfd, 1, 5000), 1, "its descriptor wakes the loop");
    cr_assert(qa_sampler_take(s, out, &seen));
    cr_assert_gt(seen, first);
    cr_assert_lt(qt_now_ns() - t0, 5000000000ull, "not the period's 60 s");
    cr_assert(out[0].ok);
    qa_sampler_stop(&s);
    qa_nvml_close(&n);
}
