/* runtime.c - qvgpu-container-runtime, the OCI runtime wrapper for runtimes without CDI
 * (Docker "runtimes" in daemon.json, containerd's runtime binary, plain runc): on
 * `create` (and `run`, which creates) of a container whose config asks for a vGPU
 * (QVGPU_VGPU=<id> in its environment, or the annotation qvgpu.io/vgpu), it applies the
 * CDI spec the arbiter keeps for that vGPU to the bundle's config.json, the same edits
 * podman makes, then runs the real runtime with the same arguments. Every other call
 * goes straight through (docs/containers.md).
 *
 * Its own options, before the subcommand (Docker passes runtimeArgs there):
 *   --qvgpu-runtime PATH   the real runtime ($QVGPU_RUNTIME, else runc on PATH)
 *   --qvgpu-cdi-dir DIR    the arbiter's --cdi-dir ($QVGPU_CDI_DIR, else /var/run/cdi)
 * A container that asks for a vGPU without a spec is refused with one line: it would
 * run unconfined. Single-threaded. */
#include "container/oci.h"
#include "proto/container.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME "qvgpu-container-runtime"

/* Global options of runc and crun that take a value as the next argument. */
static bool takes_value(const char *opt)
{
    static const char *const opts[] = {"--root", "--log",      "--log-format",
                                       "--criu", "--rootless", "--cgroup-manager"};
    for (size_t i = 0; i < sizeof opts / sizeof *opts; i++)
        if (strcmp(opt, opts[i]) == 0)
            return true;
    return false;
}

/* The bundle of a create/run whose arguments follow the subcommand: --bundle/-b, else
 * the working directory. */
static const char *bundle_of(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if ((strcmp(argv[i], "--bundle") == 0 || strcmp(argv[i], "-b") == 0) && i + 1 < argc)
            return argv[i + 1];
        if (strncmp(argv[i], "--bundle=", 9) == 0)
            return argv[i] + 9;
    }
    return ".";
}

/* A vGPU id names a file of the CDI dir: nothing but [A-Za-z0-9._-], not starting with '.'. */
static bool valid_id(const char *id)
{
    if (!*id || *id == '.' || strlen(id) > 64)
        return false;
    for (const char *c = id; *c; c++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *c))
            return false;
    return true;
}

/* Puts the container of bundle into its vGPU, if its config asks for one. Returns 0 (done,
 * or nothing to do) or 1 after saying why the container is refused. */
static int edit_bundle(const char *bundle, const char *cdi_dir)
{
    char path[PATH_MAX], spec_path[PATH_MAX], err[QC_ERR_LEN];
    snprintf(path, sizeof path, "%.4000s/config.json", bundle);
    json_t *config = qc_json_load(path, err);
    if (!config) {
        fprintf(stderr, NAME ": %s\n", err);
        return 1;
    }
    const char *id = qc_oci_vgpu(config);
    int rc = 0;
    json_t *spec = NULL;
    if (!id)
        goto out;
    rc = 1;
    if (!valid_id(id)) {
        fprintf(stderr, NAME ": '%.64s' is not a vGPU id (QVGPU_VGPU or annotation %s)\n", id,
                QP_ANNOTATION_VGPU);
        goto out;
    }
    snprintf(spec_path, sizeof spec_path, "%.4000s/" QP_CDI_SPEC_PREFIX "%s.json", cdi_dir, id);
    if (!(spec = qc_json_load(spec_path, err))) {
        fprintf(stderr,
                NAME ": vGPU %s has no usable CDI spec (%s): the container would run "
                     "unconfined (qgpuctl list; qgpuctl cdi sync)\n",
                id, err);
        goto out;
    }
    struct stat st;
    if (qc_oci_apply(config, spec, id, err) < 0 ||
        qc_json_save(config, path, stat(path, &st) == 0 ? (int)(st.st_mode & 0777) : 0600, err) <
            0) {
        fprintf(stderr, NAME ": cannot put the container into vGPU %s: %s\n", id, err);
        goto out;
    }
    rc = 0;
out:
    json_decref(spec);
    json_decref(config);
    return rc;
}

int main(int argc, char **argv)
{
    const char *runtime = getenv("QVGPU_RUNTIME"), *cdi_dir = getenv("QVGPU_CDI_DIR");
    char **args = calloc((size_t)argc + 1, sizeof *args);
    if (!args) {
        fputs(NAME ": out of memory\n", stderr);
        return 1;
    }
    int n = 1, sub = -1;
    for (int i = 1; i < argc; i++) {
        if (sub < 0 && strcmp(argv[i], "--qvgpu-runtime") == 0 && i + 1 < argc) {
            runtime = argv[++i];
        } else if (sub < 0 && strcmp(argv[i], "--qvgpu-cdi-dir") == 0 && i + 1 < argc) {
            cdi_dir = argv[++i];
        } else {
            if (sub < 0 && argv[i][0] != '-')
                sub = n;
            args[n++] = argv[i];
            if (sub < 0 && takes_value(argv[i]) && i + 1 < argc)
                args[n++] = argv[++i];
        }
    }
    if (!runtime || !*runtime)
        runtime = "runc";
    if (!cdi_dir || !*cdi_dir)
        cdi_dir = "/var/run/cdi";
    args[0] = (char *)runtime;
    if (sub > 0 && (strcmp(args[sub], "create") == 0 || strcmp(args[sub], "run") == 0) &&
        edit_bundle(bundle_of(n - sub - 1, args + sub + 1), cdi_dir) != 0) {
        free(args);
        return 1;
    }
    /* The real runtime must not be this program (installed under runc's name, say). */
    char self[PATH_MAX], real[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len > 0 && strchr(runtime, '/') && realpath(runtime, real)) {
        self[len] = '\0';
        if (strcmp(self, real) == 0) {
            fprintf(stderr, NAME ": the real runtime %s is this wrapper itself (--qvgpu-runtime)\n",
                    runtime);
            free(args);
            return 1;
        }
    }
    execvp(runtime, args);
    fprintf(stderr, NAME ": cannot run the real runtime '%s': %s (--qvgpu-runtime PATH)\n", runtime,
            strerror(errno));
    free(args);
    return 127;
}
