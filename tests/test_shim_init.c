/* test_shim_init.c - when the shim starts: lazily and once whatever the number of threads,
 * through a runtime's lazy initialisation, and over again in fork and exec children.
 * A program that never touches CUDA is not touched. */
#include "tests/shim_support.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

Test(shim_init, many_threads_making_the_first_call_at_once_all_succeed)
{
    qt_sim_private(NULL);
    qts_env_t e;
    char *out = NULL, *err = NULL;
    qts_env_unreachable(&e, "vgpu-init");
    cr_assert_eq(qts_run(&e, &out, &err, "threads:16:init", "count", NULL), 0, "%s", err);
    cr_assert_eq(qts_field(out, "threads ", 0), 16, "%s", out);
    cr_assert_eq(qts_field(out, "count ", 1), 1);
    free(out);
    free(err);
}

Test(shim_init, a_runtime_that_initialises_through_cugetprocaddress_gets_the_vgpu)
{
    qt_sim_private("GPU A:8GiB:20,GPU B:4GiB:10");
    char uuids[4][64], *out = NULL;
    cr_assert_eq(qts_gpu_uuids(uuids, 4), 2);
    qts_env_t e;
    char *dir = qt_tmpdir();
    qts_env_vgpu(&e, dir, "vgpu-lazy", "00", uuids[1]);
    cr_assert_eq(qts_run(&e, &out, NULL, "init_via:procaddr", "devices", NULL), 0);
    cr_assert_eq(qts_field(out, "init ", 0), 0);
    cr_assert_eq(qts_field(out, "init ", 1), 1, "one device through cuGetProcAddress");
    char line[256];
    cr_assert(qts_line(out, "dev 0 0 ", line, sizeof line));
    cr_assert_str_eq(line + 8, uuids[1]);
    free(out);
    free(dir);
}

Test(shim_init, fork_children_work_before_and_after_the_parent_uses_cuda)
{
    qt_sim_private(NULL);
    qts_env_t e;
    char *out = NULL, *err = NULL;
    qts_env_unreachable(&e, "vgpu-init");
    /* A child forked before any CUDA call initialises on its own; one forked after only
     * exits (CUDA is not usable in a fork child of an initialised process) and must not
     * hang on its parent's agent at exit. */
    cr_assert_eq(qts_run(&e, &out, &err, "fork:3", "init", "count", "alloc:cuMemAlloc_v2:direct:1M",
                         "init", "count", "fork:1", "ready", "alloc:cuMemAlloc_v2:direct:1M", NULL),
                 0, "%s", err);
    cr_assert_eq(qts_field(out, "[child] init ", 0), 0, "%s", out);
    cr_assert_eq(qts_field(out, "[child] count ", 1), 1);
    cr_assert_eq(qts_field(out, "[child] alloc cuMemAlloc_v2 direct ", 0), 2,
                 "the child is a vGPU process of its own (arbiter unreachable)");
    cr_assert_eq(qts_count_lines(out, "fork 0"), 2, "%s", out);
    cr_assert_eq(qts_field(out, "count ", 1), 1);
    cr_assert_eq(qts_field(out, "alloc cuMemAlloc_v2 direct ", 0), 2);
    free(out);
    free(err);
}

/* A private host and arbiter with one vGPU of 1 GiB, and a workload's environment in it. */
static qt_arbiter_t *reachable_vgpu(qts_env_t *e)
{
    qts_vgpu_t v;
    qt_sim_private(NULL);
    qt_arbiter_t *arb = qt_arbiter_start(NULL, NULL);
    cr_assert_not_null(arb);
    qts_vgpu_create(arb, &v, "--vm", "vm-a", "--profile", "Q1", NULL);
    qts_env_of(e, arb, &v);
    return arb;
}

Test(shim_init, a_fork_child_of_a_process_with_allocations_allocates_and_frees_on_its_own)
{
    qts_env_t e;
    qt_arbiter_t *arb = reachable_vgpu(&e);
    char *out = NULL, *err = NULL;
    /* The parent joins the vGPU through NVML (no CUDA context: a fork child may use CUDA)
     * and forks; its child charges, frees and sees its own use only. */
    cr_assert_eq(qts_run(&e, &out, &err, "nvml", "fork:6", "init", "alloc:cuMemAlloc_v2:direct:64M",
                         "alloc:cuMemAlloc_v2:direct:32M", "free", "free", "info", "ready", NULL),
                 0, "%s", err);
    cr_assert_eq(qts_field(out, "fork ", 0), 0, "%s", out);
    cr_assert_eq(qts_count_lines(out, "[child] alloc cuMemAlloc_v2 direct 0"), 2, "%s", out);
    cr_assert_eq(qts_count_lines(out, "[child] free 0"), 2, "%s", out);
    cr_assert_eq(qts_field(out, "[child] info ", 1),
                 qts_field(out, "[child] info ", 2) - (long long)QTS_CTX,
                 "the child gave back all it charged; its context stays: %s", out);
    free(out);
    free(err);
    qt_arbiter_destroy(&arb);
}

Test(shim_init, an_allocation_made_before_the_shims_constructor_runs_is_charged)
{
    qts_env_t e;
    qt_arbiter_t *arb = reachable_vgpu(&e);
    /* As another library's constructor, initialised before the shim's, would. */
    qts_env_add(&e, "SHIM_WORK_PREINIT_ALLOC=64M");
    char *out = NULL, *err = NULL;
    cr_assert_eq(qts_run(&e, &out, &err, "info", NULL), 0, "%s", err);
    cr_assert_eq(qts_field(out, "preinit ", 0), 0, "%s\n%s", out, err);
    cr_assert_eq(qts_field(out, "info ", 2) - qts_field(out, "info ", 1),
                 64ll * QTS_MIB + (long long)QTS_CTX,
                 "the early allocation is charged, beside the context: %s", out);
    free(out);
    free(err);
    qt_arbiter_destroy(&arb);
}

Test(shim_init, exec_children_get_the_shim_again)
{
    qt_sim_private("GPU A:8GiB:20,GPU B:4GiB:10");
    char uuids[4][64], *out = NULL, *err = NULL;
    cr_assert_eq(qts_gpu_uuids(uuids, 4), 2);
    qts_env_t e;
    char *dir = qt_tmpdir();
    qts_env_vgpu(&e, dir, "vgpu-exec", "00", uuids[1]);
    cr_assert_eq(qts_run(&e, &out, &err, "init", "exec:3", "init", "devices",
                         "alloc:cuMemAlloc_v2:direct:1M", "count", NULL),
                 0, "%s", err);
    cr_assert_eq(qts_field(out, "exec ", 0), 0, "%s", out);
    char line[256];
    cr_assert(qts_line(out, "dev 0 0 ", line, sizeof line), "%s", out);
    cr_assert_str_eq(line + 8, uuids[1]);
    cr_assert_eq(qts_field(out, "dev 1 ", 0), 101);
    cr_assert_eq(qts_field(out, "alloc cuMemAlloc_v2 direct ", 0), 2);
    cr_assert_eq(qts_field(out, "count ", 1), 1);
    free(out);
    free(err);
    free(dir);
}

Test(shim_init, a_program_that_never_touches_cuda_is_untouched)
{
    qt_sim_private(NULL);
    qts_env_t e;
    qts_env_unreachable(&e, "vgpu-init");
    const char *argv[] = {"/bin/sh", "-c", "echo hello; exit 3", NULL};
    char *out = NULL, *err = NULL;
    uint64_t t0 = qt_now_ns();
    cr_assert_eq(qt_run(argv, e.v, 10000, &out, &err), 3);
    cr_assert_str_eq(out, "hello\n");
    cr_assert_str_eq(err, "", "nothing on stderr: %s", err);
    cr_assert_lt(qt_now_ns() - t0, 2000000000ull, "no wait for an arbiter");
    free(out);
    free(err);
}

/* Runs shim_work with the shim preloaded and no QVGPU_* or CUDA_VISIBLE_DEVICES in its
 * environment, in a mount namespace of its own where /run/qvgpu is the tenant dir, with
 * creds (NULL: none) mounted over its vgpu file, as a container's CDI spec mounts them. */
static int run_scrubbed(const char *tenant, const char *creds, char **out, char **err)
{
    char *prog = qt_build_path("tests/progs/shim_work");
    char *script = qt_strf("mount -t tmpfs tmpfs /run && mkdir /run/qvgpu && "
                           "mount --bind '%s' /run/qvgpu && %s%s%s"
                           "exec env -u QVGPU_VGPU -u QVGPU_SECRET -u QVGPU_SOCKET_DIR "
                           "-u CUDA_VISIBLE_DEVICES '%s' init info:direct "
                           "alloc:cuMemAlloc_v2:direct:768M alloc:cuMemAlloc_v2:direct:768M",
                           tenant, creds ? "mount --bind '" : "", creds ? creds : "",
                           creds ? "' /run/qvgpu/vgpu && " : "", prog);
    const char *argv[] = {"unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                          NULL};
    const char *env[] = {qt_shim_preload(), NULL};
    int rc = qt_run(argv, env, 20000, out, err);
    free(script);
    free(prog);
    return rc;
}

Test(shim_init, a_process_that_lost_its_environment_finds_its_vgpu_in_the_mounted_file)
{
    if (geteuid() != 0)
        cr_skip_test("needs root for a mount namespace");
    qt_sim_private(NULL);
    char *tenant = qt_tmpdir(), *cdi = qt_tmpdir();
    const char *args[] = {"--tenant-dir", tenant, "--cdi-dir", cdi, NULL};
    qt_arbiter_t *arb = qt_arbiter_start_args(NULL, NULL, args);
    cr_assert_not_null(arb);
    qts_vgpu_t v;
    qts_vgpu_create(arb, &v, "--vm", "scrubbed", "--profile", "Q1", NULL);
    char *creds = qt_strf("%s/vgpus/%s", qt_arbiter_socket_dir(arb), v.id);
    char *out = NULL, *err = NULL;
    cr_assert_eq(run_scrubbed(tenant, creds, &out, &err), 0, "%s", err);
    cr_assert_eq(qts_field(out, "info ", 2), 1024ll * QTS_MIB, "the vGPU's quota:\n%s\n%s", out,
                 err);
    cr_assert_eq(qts_field_at(out, "alloc cuMemAlloc_v2 direct ", 0, 0), 0);
    cr_assert_eq(qts_field_at(out, "alloc cuMemAlloc_v2 direct ", 1, 0), 2, "past the quota");
    free(out);
    free(err);
    /* Without the file (its empty mount point only), nothing is enforced: a process of
     * no vGPU. */
    cr_assert_eq(run_scrubbed(tenant, NULL, &out, &err), 0, "%s", err);
    cr_assert_eq(qts_field(out, "info ", 2), 8192ll * QTS_MIB, "%s", out);
    cr_assert_eq(qts_field_at(out, "alloc cuMemAlloc_v2 direct ", 1, 0), 0);
    free(out);
    free(err);
    free(creds);
    free(tenant);
    free(cdi);
    qt_arbiter_destroy(&arb);
}
