/* hook.c - qvgpu-container-hook, the preflight hook of containers in a vGPU: an OCI
 * createContainer hook (CDI specs and the runtime wrapper add it) that refuses, with
 * one line, a container that would run unconfined or not at all (docs/containers.md):
 * an image whose C library is musl, or a glibc older than the floor, or none; a shim
 * that is not visible in the root file system (missing, empty, shadowed); in preload
 * mode an /etc/ld.so.preload that does not load it; a vGPU that no longer exists or a
 * wrong secret. An arbiter that cannot be reached is a warning only: the shim copes.
 *
 *   qvgpu-container-hook preflight --tenant-dir DIR --shim PATH [--preload]
 *
 * The runtime gives the container's state on stdin ({id, pid, bundle, ...}); the root
 * file system comes from the bundle's config.json. runc runs createContainer hooks in
 * the container's mount namespace before pivot_root, where the root path shows the
 * container's mounts; a runtime that runs them outside is looked through
 * /proc/PID/root. Exit status: 0 go, 1 refused, 2 bad usage. Single-threaded. */
#include "container/image.h"
#include "container/oci.h"
#include "proto/conn.h"
#include "proto/schema.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARBITER_MS 2000 /* the hello's whole budget: a hook delays the container's start */

static int refuse(const char *id, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(const char *id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "qvgpu: container %.64s refused: ", id ? id : "?");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

struct hello_arg {
    const char *vgpu, *secret;
};

static qp_msg_t *hello(void *arg)
{
    struct hello_arg *h = arg;
    return qp_new_tenant_hello("qvgpu-container-hook/1", h->vgpu, h->secret, getpid(), 0);
}

/* Asks the arbiter whether vgpu exists and secret is its own, with a tenant hello (the
 * session ends when we close). Returns 0 yes, -EACCES no, another negative errno when
 * it cannot be reached (err says why). */
static int ask_arbiter(const char *tenant_dir, const char *vgpu, const char *secret, char *err)
{
    struct hello_arg h = {vgpu, secret};
    qp_conn_hooks_t hooks = {hello, NULL, NULL, &h};
    qp_conn_t *c = qp_conn_new(tenant_dir, QP_TENANT, &hooks, err);
    if (!c)
        return -ENOTCONN;
    int rc = qp_conn_open(c, ARBITER_MS, err);
    qp_conn_destroy(&c);
    return rc;
}

/* Checks the image under root (a host path; pid, when above 1, the container's first
 * process as the runtime sees it). Returns 0 or -EPERM with err. */
static int check_root(const char *root, long pid, const char *shim, bool preload, char *err)
{
    int fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, QC_ERR_LEN, "cannot open the root file system %.200s: %s", root,
                 strerror(errno));
        return -EPERM;
    }
    int rc = qc_image_check(fd, shim, preload, err);
    close(fd);
    if (rc == 0 || pid <= 1)
        return rc;
    /* Not in our view: perhaps we run outside the container's mount namespace. */
    char alt[PATH_MAX + 32], why[QC_ERR_LEN];
    snprintf(alt, sizeof alt, "/proc/%ld/root%s", pid, root);
    if ((fd = open(alt, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
        return rc;
    int rc2 = qc_image_check(fd, shim, preload, why);
    close(fd);
    return rc2;
}

static int preflight(const char *tenant_dir, const char *shim, bool preload)
{
    char err[QC_ERR_LEN], perr[QP_ERR_LEN];
    json_error_t je;
    json_t *state = json_loadf(stdin, 0, &je);
    const char *id = json_string_value(json_object_get(state, "id"));
    const char *bundle = json_string_value(json_object_get(state, "bundle"));
    json_int_t pid = json_integer_value(json_object_get(state, "pid"));
    if (!bundle) {
        json_decref(state);
        return refuse(id, "the runtime gave no container state with a bundle on stdin");
    }
    char path[PATH_MAX], root[PATH_MAX];
    snprintf(path, sizeof path, "%.4000s/config.json", bundle);
    json_t *config = qc_json_load(path, err);
    int rc = 1;
    if (!config) {
        rc = refuse(id, "%s", err);
        goto out;
    }
    const char *vgpu = qc_oci_env(config, "QVGPU_VGPU"),
               *secret = qc_oci_env(config, "QVGPU_SECRET");
    if (!vgpu || !*vgpu || !secret || !*secret) {
        rc = refuse(id, "QVGPU_VGPU or QVGPU_SECRET is not in the container's environment");
        goto out;
    }
    if (qc_oci_root(config, bundle, root, sizeof root) < 0) {
        rc = refuse(id, "the bundle's config.json names no root file system");
        goto out;
    }
    if (check_root(root, (long)pid, shim, preload, err) < 0) {
        rc = refuse(id, "%s", err);
        goto out;
    }
    int arb = ask_arbiter(tenant_dir, vgpu, secret, perr);
    if (arb == -EACCES) {
        rc = refuse(id,
                    "vGPU %.32s does not exist or its secret is wrong (qgpuctl list; qgpuctl "
                    "cdi sync)",
                    vgpu);
        goto out;
    }
    if (arb < 0)
        fprintf(stderr,
                "qvgpu: warning: container %.64s starts without a word from the arbiter "
                "(%s); its shim will keep trying\n",
                id ? id : "?", perr);
    rc = 0;
out:
    json_decref(config);
    json_decref(state);
    return rc;
}

int main(int argc, char **argv)
{
    const char *tenant_dir = NULL, *shim = NULL;
    bool preload = false;
    if (argc < 2 || strcmp(argv[1], "preflight") != 0) {
        fprintf(stderr, "usage: qvgpu-container-hook preflight --tenant-dir DIR --shim PATH "
                        "[--preload] (an OCI createContainer hook: the state on stdin)\n");
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--preload") == 0)
            preload = true;
        else if (strcmp(argv[i], "--tenant-dir") == 0 && i + 1 < argc)
            tenant_dir = argv[++i];
        else if (strcmp(argv[i], "--shim") == 0 && i + 1 < argc)
            shim = argv[++i];
        else {
            fprintf(stderr, "qvgpu-container-hook: unknown or incomplete option '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!tenant_dir || !shim) {
        fprintf(stderr, "qvgpu-container-hook: preflight needs --tenant-dir and --shim\n");
        return 2;
    }
    return preflight(tenant_dir, shim, preload);
}
