/* test_sim_readme.c - sim/README.md lists exactly the entry points the built simulated
 * libcuda.so.1 implements, and exactly those it answers CUDA_ERROR_NOT_SUPPORTED. */
#include <criterion/criterion.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/harness.h"

Test(sim_readme, lists_the_implemented_and_unsupported_entry_points_of_the_build)
{
    char *build = strdup(qt_build());
    char *root = dirname(build); /* the build directory sits at the repository root */
    char script[4096], readme[4096];
    snprintf(script, sizeof script, "%s/sim/entry-points.sh", root);
    snprintf(readme, sizeof readme, "%s/sim/README.md", root);
    char *lib = qt_build_path("sim/libcuda.so.1");
    const char *argv[] = {script, "--check", readme, lib, NULL};
    char *out = NULL, *err = NULL;
    int status = qt_run(argv, NULL, 30000, &out, &err);
    cr_assert_eq(status, 0, "%s%s", out, err);
    free(out);
    free(err);
    free(lib);
    free(build);
}

Test(sim_readme, the_check_notices_a_stale_list)
{
    char *build = strdup(qt_build());
    char *root = dirname(build);
    char script[4096], readme[4096], stale[4096];
    snprintf(script, sizeof script, "%s/sim/entry-points.sh", root);
    snprintf(readme, sizeof readme, "%s/sim/README.md", root);
    char *dir = qt_tmpdir();
    snprintf(stale, sizeof stale, "%s/README.md", dir);
    /* A copy whose implemented list misses cuInit. */
    FILE *in = fopen(readme, "r"), *out = fopen(stale, "w");
    cr_assert(in && out);
    char line[4096];
    while (fgets(line, sizeof line, in)) {
        /* The word wherever the wrapping put it: mid-line or last on its line. */
        char *p = strstr(line, "cuInit");
        if (p && (p[6] == ' ' || p[6] == '\n') && (p == line || p[-1] == ' '))
            memmove(p, p + 6 + (p[6] == ' '), strlen(p + 6 + (p[6] == ' ')) + 1);
        fputs(line, out);
    }
    fclose(in);
    fclose(out);
    char *lib = qt_build_path("sim/libcuda.so.1");
    const char *argv[] = {script, "--check", stale, lib, NULL};
    char *err = NULL;
    cr_assert_eq(qt_run(argv, NULL, 30000, NULL, &err), 1);
    cr_assert(strstr(err, "--update"), "%s", err);
    free(err);
    free(lib);
    free(dir);
    free(build);
}
