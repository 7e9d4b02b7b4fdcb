/* test_container_hook.c - qvgpu-container-hook as a runtime runs it: the container's
 * state on stdin, its bundle's config.json, a real arbiter behind the tenant dir. What
 * an image itself may refuse is in test_container_image.c; with podman and runc in
 * test_containers.c. */
#include "tests/harness.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A bundle whose root file system has this machine's libc and the shim, and whose
 * config.json gives the container vgpu and secret. Returns its dir (caller frees). */
static char *bundle(const char *vgpu, const char *secret)
{
    char *dir = qt_tmpdir(), *shim = qt_build_path("libqshim.so");
    char *script =
        qt_strf("mkdir -p %s/rootfs/usr/lib/x86_64-linux-gnu %s/rootfs/opt/qvgpu && "
                "ln -s usr/lib %s/rootfs/lib && "
                "cp /lib/x86_64-linux-gnu/libc.so.6 %s/rootfs/usr/lib/x86_64-linux-gnu/ && "
                "cp %s %s/rootfs/opt/qvgpu/",
                dir, dir, dir, dir, shim, dir);
    const char *sh[] = {"sh", "-c", script, NULL};
    cr_assert_eq(qt_run(sh, NULL, 10000, NULL, NULL), 0);
    char *config = qt_strf("%s/config.json", dir);
    FILE *f = fopen(config, "w");
    fprintf(f,
            "{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"},\"process\":{\"args\":"
            "[\"sh\"],\"env\":[\"QVGPU_VGPU=%s\",\"QVGPU_SECRET=%s\"]}}",
            vgpu, secret);
    fclose(f);
    free(config), free(script), free(shim);
    return dir;
}

/* Runs the hook on bundle dir with the tenant dir tenant, the state on stdin. */
static int hook(const char *dir, const char *tenant, char **err)
{
    char *bin = qt_build_path("qvgpu-container-hook");
    char *script = qt_strf("echo '{\"ociVersion\":\"1.0.2\",\"id\":\"c1\",\"status\":\"creating\","
                           "\"pid\":1,\"bundle\":\"%s\"}' | %s preflight --tenant-dir %s "
                           "--shim /opt/qvgpu/libqshim.so",
                           dir, bin, tenant);
    const char *sh[] = {"sh", "-c", script, NULL};
    int rc = qt_run(sh, NULL, 10000, NULL, err);
    free(script), free(bin);
    return rc;
}

Test(container_hook, checks_the_vgpu_and_its_secret_with_the_arbiter)
{
    qt_sim_private(NULL);
    char *tenant = qt_tmpdir(), *cdi = qt_tmpdir();
    const char *args[] = {"--tenant-dir", tenant, "--cdi-dir", cdi, NULL};
    qt_arbiter_t *arb = qt_arbiter_start_args(NULL, NULL, args);
    cr_assert_not_null(arb);
    char *id = NULL, *env = NULL, *err = NULL, secret[64];
    cr_assert_eq(qt_ctl(arb, &id, NULL, "create", "--vm", "h", "--profile", "Q1", NULL), 0);
    id[strcspn(id, "\n")] = '\0';
    cr_assert_eq(qt_ctl(arb, &env, NULL, "env", id, NULL), 0);
    cr_assert_eq(sscanf(strstr(env, "QVGPU_SECRET='") + 14, "%63[0-9a-f]", secret), 1);
    char *good = bundle(id, secret), *bad = bundle(id, "00000000000000000000000000000000");
    char *gone = bundle("vg-404", secret);
    cr_assert_eq(hook(good, tenant, &err), 0, "%s", err);
    cr_assert_str_eq(err, "");
    free(err);
    cr_assert_eq(hook(bad, tenant, &err), 1);
    cr_assert(strstr(err, "qvgpu: container c1 refused: vGPU") && strstr(err, "secret is wrong"),
              "%s", err);
    free(err);
    cr_assert_eq(hook(gone, tenant, &err), 1);
    cr_assert(strstr(err, "vGPU vg-404 does not exist"), "%s", err);
    free(err);
    /* An arbiter that is down is a warning, not a refusal: the shim keeps trying. */
    qt_arbiter_kill(arb, SIGKILL);
    cr_assert_eq(hook(good, tenant, &err), 0, "%s", err);
    cr_assert(strstr(err, "qvgpu: warning: container c1 starts without a word from the arbiter"),
              "%s", err);
    free(err);
    free(good), free(bad), free(gone), free(id), free(env), free(tenant), free(cdi);
    qt_arbiter_destroy(&arb);
}

Test(container_hook, refuses_a_container_without_its_variables_or_state)
{
    char *dir = bundle("", ""), *tenant = qt_tmpdir(), *err = NULL;
    cr_assert_eq(hook(dir, tenant, &err), 1);
    cr_assert(strstr(err, "QVGPU_VGPU or QVGPU_SECRET is not in the container's environment"), "%s",
              err);
    free(err);
    char *bin = qt_build_path("qvgpu-container-hook");
    char *script = qt_strf("echo '{}' | %s preflight --tenant-dir %s --shim /x", bin, tenant);
    const char *sh[] = {"sh", "-c", script, NULL};
    cr_assert_eq(qt_run(sh, NULL, 10000, NULL, &err), 1);
    cr_assert(strstr(err, "no container state"), "%s", err);
    free(err);
    const char *usage[] = {bin, "preflight", "--shim", NULL};
    cr_assert_eq(qt_run(usage, NULL, 10000, NULL, &err), 2);
    free(err), free(script), free(bin), free(dir), free(tenant);
}
