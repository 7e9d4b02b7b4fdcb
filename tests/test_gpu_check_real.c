/* test_gpu_check_real.c - the real-driver side of scripts/gpu-check.sh where there is no
 * GPU: without --sim it says there is none and skips the rest, a bad flag gets the
 * usage; and the test runner, told the driver is real (QV_TEST_DRIVER=real), skips and
 * lists the binaries that only make sense on the simulator (tests/sim-only.list). The
 * --sim plumbing is test_gpu_check.c. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/gpu_check_support.h"
#include "tests/harness.h"

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

Test(gpu_check_real, without_a_gpu_the_real_check_says_so_and_skips_the_rest)
{
    qt_sim_private(NULL);
    char *logs = qt_tmpdir();
    const char *args[] = {"--no-build", "--logs", logs, NULL};
    char *out = NULL, *err = NULL;
    /* LD_LIBRARY_PATH names build/sim here (make test sets it): the check must not use it. */
    const char *env[] = {GC_NESTED, NULL};
    cr_assert_eq(gc_script("gpu-check.sh", &out, &err, args, env, 50000), 1, "%s%s", out, err);
    char res[8], row[512];
    char *summary = gc_summary(logs);
    cr_assert(gc_row(summary, "driver", res, row, sizeof row));
    cr_assert(!strcmp(res, "FAIL") && starts(row, "no NVIDIA driver"), "%s %s", res, row);
    static const char *const skipped[] = {"unit tests", "self-check", "vGPU: CUDA C++ (nvcc)",
                                          "vGPU: PyTorch", "compute: limits 30/70", "demo"};
    for (size_t i = 0; i < sizeof skipped / sizeof *skipped; i++) {
        cr_assert(gc_row(summary, skipped[i], res, row, sizeof row), "no row %s",
                  skipped[i]);
        cr_assert(!strcmp(res, "SKIP") && !strcmp(row, "no GPU"), "%s: %s %s", skipped[i], res,
                  row);
    }
    free(summary);
    free(out);
    free(err);
    free(logs);
}

Test(gpu_check_real, a_bad_flag_is_refused_with_the_usage)
{
    const char *args[] = {"--frobnicate", NULL};
    char *out = NULL, *err = NULL;
    cr_assert_eq(gc_script("gpu-check.sh", &out, &err, args, NULL, 10000), 2);
    cr_assert(strstr(err, "unknown option '--frobnicate'"), "%s", err);
    cr_assert(strstr(err, "--sim"), "the usage follows: %s", err);
    free(out);
    free(err);
}

Test(gpu_check_real, on_a_real_driver_the_runner_skips_and_lists_the_simulator_only_binaries)
{
    char *root = gc_repo();
    const char *args[] = {qt_build(), NULL};
    const char *env[] = {"QV_TEST_DRIVER=real", "T=test_sim_m", GC_NESTED, NULL};
    char *out = NULL, *err = NULL;
    /* test_sim_md2 needs no driver and runs; test_sim_mem is the simulator's own. */
    cr_assert_eq(gc_script("run-tests.sh", &out, &err, args, env, 50000), 0, "%s%s", out, err);
    cr_assert(strstr(out, "== test_sim_md2"), "%s", out);
    cr_assert_null(strstr(out, "== test_sim_mem"), "%s", out);
    cr_assert(strstr(out, "skipped 1 binaries that need the simulated driver"), "%s", out);
    cr_assert(strstr(out, "  test_sim_mem (the simulator itself)"), "%s", out);
    free(out);
    free(err);
    const char *bad[] = {"QV_TEST_DRIVER=gpu", GC_NESTED, NULL};
    cr_assert_eq(gc_script("run-tests.sh", &out, &err, args, bad, 10000), 2);
    cr_assert(strstr(err, "QV_TEST_DRIVER must be sim or real"), "%s", err);
    free(out);
    free(err);
    free(root);
}

Test(gpu_check_real, the_simulator_only_list_names_existing_tests)
{
    char *root = gc_repo();
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/sim-only.list", root);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    char line[512];
    int names = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        char name[128], src[4096];
        cr_assert_eq(sscanf(line, "%127s", name), 1);
        cr_assert(strchr(line, ' ') && strlen(line) > strlen(name) + 3,
                  "%s has no reason", name);
        snprintf(src, sizeof src, "%s/tests/%s.c", root, name);
        cr_assert_eq(access(src, R_OK), 0, "sim-only.list names %s, which does not exist",
                     name);
        names++;
    }
    fclose(f);
    cr_assert_gt(names, 20);
    free(root);
}
