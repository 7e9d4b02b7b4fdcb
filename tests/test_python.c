/* test_python.c - the Python package qvgpu (python/): its pytest suite against real
 * arbiters on the simulated GPU (python/tests, run with Debian's python3 and pytest),
 * and the package as `make install` puts it, finding its libqvgpu by itself. */
#include "tests/http_support.h"

#include <criterion/criterion.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PYTHON "/usr/bin/python3"

/* The project root: the build directory's parent. Caller frees. */
static char *root(void)
{
    char *b = strdup(qt_build());
    char *r = strdup(dirname(b));
    free(b);
    return r;
}

/* The environment a Python process loading our libraries needs: in a SAN=1 build the
 * ASan runtime first, and no leak report about the interpreter's own allocations. */
static void san_env(const char **env, size_t *n, char **preload)
{
    *preload = NULL;
    if (qt_asan_runtime()) {
        cr_assert(asprintf(preload, "LD_PRELOAD=%s", qt_asan_runtime()) > 0);
        env[(*n)++] = *preload;
        env[(*n)++] = "ASAN_OPTIONS=detect_leaks=0";
    }
}

Test(python, the_qvgpu_package_passes_its_pytest_suite)
{
    need_tool(PYTHON, "python3");
    need_tool("/usr/lib/python3/dist-packages/pytest", "python3-pytest");
    char *top = root(), *tests, *pypath;
    cr_assert(asprintf(&tests, "%s/python/tests", top) > 0);
    cr_assert(asprintf(&pypath, "PYTHONPATH=%s/python", top) > 0);
    const char *argv[] = {PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", tests, NULL};
    const char *env[8] = {pypath, "PYTHONDONTWRITEBYTECODE=1"};
    size_t n = 2;
    char *preload;
    san_env(env, &n, &preload);
    char *out, *err;
    int rc = qt_run(argv, env, 540000, &out, &err);
    cr_assert_eq(rc, 0, "pytest failed (%d):\n%s\n%s", rc, out, err);
    int passed = 0;
    const char *at = strstr(out, " passed");
    while (at && at > out && at[-1] >= '0' && at[-1] <= '9')
        at--;
    if (at)
        passed = atoi(at);
    cr_assert_geq(passed, 20, "pytest ran %d tests:\n%s", passed, out);
    free(out), free(err), free(top), free(tests), free(pypath), free(preload);
}

Test(python, make_install_puts_a_package_that_finds_its_library)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    qv_client_t *c = ctl_client(arb);
    char id[QV_ID_LEN], secret[QV_SECRET_LEN];
    ctl_create(c, "installed", "Q2", id, secret);
    char *top = root(), *prefix_dir = qt_tmpdir(), *prefix, *pydir, *san;
    cr_assert(asprintf(&prefix, "PREFIX=%s", prefix_dir) > 0);
    cr_assert(asprintf(&pydir, "PYTHONDIR=%s/python", prefix_dir) > 0);
    cr_assert(asprintf(&san, "SAN=%d", qt_asan_runtime() ? 1 : 0) > 0);
    const char *make[] = {"make", "-s", "-C", top, "install", prefix, pydir, san, NULL};
    char *out, *err;
    cr_assert_eq(qt_run(make, NULL, 240000, &out, &err), 0, "make install: %s", err);
    free(out), free(err);
    /* No QVGPU_LIBRARY, no build tree on the path: the package finds PREFIX/lib alone. */
    char *pypath, *script;
    cr_assert(asprintf(&pypath, "PYTHONPATH=%s/python", prefix_dir) > 0);
    cr_assert(
        asprintf(&script,
                 "import qvgpu, qvgpu._lib as l\n"
                 "assert l.__file__.startswith('%s/python/'), l.__file__\n"
                 "m = qvgpu.VGPUManager('%s')\n"
                 "print(m.get_vgpu_info('%s')['vm_id'], m.get_global_stats()['total_vgpus'])\n",
                 prefix_dir, qt_arbiter_socket_dir(arb), id) > 0);
    const char *argv[] = {PYTHON, "-c", script, NULL};
    const char *env[8] = {pypath, "PYTHONDONTWRITEBYTECODE=1", "QVGPU_LIBRARY"};
    size_t n = 3;
    char *preload;
    san_env(env, &n, &preload);
    cr_assert_eq(qt_run(argv, env, 30000, &out, &err), 0, "%s", err);
    cr_assert_str_eq(out, "installed 1\n");
    free(out), free(err);
    /* make install made the build's qvgpu.pc name the temporary prefix: make it again */
    const char *remake[] = {"make", "-s", "-C", top, san, NULL};
    cr_assert_eq(qt_run(remake, NULL, 240000, NULL, &err), 0, "make: %s", err);
    free(err), free(top), free(prefix_dir), free(prefix), free(pydir), free(san);
    free(pypath), free(script), free(preload);
    qv_disconnect(&c);
    qt_arbiter_destroy(&arb);
}
