/* test_sim_selfcheck.c - the driver self-check (tests/progs/sim_selfcheck.c; scripts/demo.sh
 * asks its --probe whether a real driver is there) passes on the simulated GPU and reports
 * what it found. */
#include <criterion/criterion.h>
#include <string.h>

#include "tests/harness.h"

Test(sim_selfcheck, passes_on_the_simulated_gpu_and_says_what_it_found, .timeout = 60)
{
    qt_sim_private("NVIDIA H100 80GB HBM3:80GiB:132,NVIDIA GeForce GTX 1080:8GiB:20");
    char *bin = qt_build_path("tests/progs/sim_selfcheck");
    const char *argv[] = {bin, "--sim", NULL};
    char *out = NULL;
    int status = qt_run(argv, NULL, 30000, &out, NULL);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert(strstr(out, "2 device(s)"), "%s", out);
    cr_assert(strstr(out, "[0] NVIDIA H100 80GB HBM3, 81920 MiB, 132 SMs, compute 9.0"), "%s", out);
    cr_assert(strstr(out, "[1] NVIDIA GeForce GTX 1080, 8192 MiB, 20 SMs, compute 6.1"), "%s", out);
    cr_assert(strstr(out, "context: 256 MiB of device memory in use before any allocation"), "%s",
              out);
    cr_assert(strstr(out, "listed with 516 MiB: 260 MiB allocated, 256 MiB the driver's own"), "%s",
              out);
    cr_assert(strstr(out, "self-check passed"), "%s", out);
    cr_assert_null(strstr(out, "FAILED"), "%s", out);
    free(out);
    free(bin);
}

Test(sim_selfcheck, the_probe_does_not_mistake_the_simulator_for_a_real_driver)
{
    qt_sim_private(NULL);
    char *bin = qt_build_path("tests/progs/sim_selfcheck");
    const char *argv[] = {bin, "--probe", NULL};
    char *out = NULL;
    cr_assert_eq(qt_run(argv, NULL, 30000, &out, NULL), 1, "%s", out);
    cr_assert_str_eq(out, "");
    free(out);
    free(bin);
}
