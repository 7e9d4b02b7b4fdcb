/* container_support.c - real containers for the tests (see container_support.h). */
#include "tests/container_support.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define CDI_DIR "/var/run/cdi"
#define CDI_LOCK "/run/lock/qvgpu-tests-cdi.lock"
#define LOCK_WAIT_MS (10 * 60 * 1000) /* the other jobs' container tests, one at a time */
#define BUILD_MS (10 * 60 * 1000)     /* mmdebstrap fetching a minbase from the mirror */

/* What to undo at exit (this process: one Criterion test). */
static struct {
    bool registered;
    char *names[64]; /* containers to remove */
    size_t nnames;
    char *mounts[8]; /* overlays to unmount */
    size_t nmounts;
    char *tenant; /* the tenant dir whose specs in CDI_DIR are ours */
    int cdi_lock; /* held until exit */
} undo = {.cdi_lock = -1};

/* Whether the spec at path mounts tenant at /run/qvgpu: one of ours. */
static bool spec_of(const char *path, const char *tenant)
{
    json_t *spec = json_load_file(path, 0, NULL), *m;
    json_t *dev = json_array_get(json_object_get(spec, "devices"), 0);
    size_t i;
    bool ours = false;
    json_array_foreach(json_object_get(json_object_get(dev, "containerEdits"), "mounts"), i, m)
    {
        const char *host = json_string_value(json_object_get(m, "hostPath"));
        ours |= host && strcmp(host, tenant) == 0;
    }
    json_decref(spec);
    return ours;
}

static void cleanup(void)
{
    for (size_t i = 0; i < undo.nnames; i++) {
        const char *argv[] = {"podman", "rm", "-f", "-t", "0", undo.names[i], NULL};
        qt_run(argv, NULL, 30000, NULL, NULL);
    }
    for (size_t i = undo.nmounts; i-- > 0;)
        umount2(undo.mounts[i], MNT_DETACH);
    DIR *d = undo.tenant ? opendir(CDI_DIR) : NULL;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", CDI_DIR, de->d_name);
        if (strncmp(de->d_name, "qvgpu-", 6) == 0 && spec_of(path, undo.tenant))
            unlink(path);
    }
    if (d)
        closedir(d);
}

/* Registers cleanup once, after the harness's own exit handler: handlers run in reverse,
 * so containers and mounts go before the harness removes directories and kills the
 * arbiter. */
static void register_cleanup(void)
{
    if (undo.registered)
        return;
    free(qt_tmpdir()); /* makes sure the harness's handler is registered first */
    atexit(cleanup);
    undo.registered = true;
}

static bool have(const char *cmd)
{
    char *script = qt_strf("command -v %s >/dev/null", cmd);
    const char *argv[] = {"sh", "-c", script, NULL};
    int rc = qt_run(argv, NULL, 5000, NULL, NULL);
    free(script);
    return rc == 0;
}

void qct_require(void)
{
#ifdef QV_SAN
    cr_skip_test("containers load the bundle without the sanitizer runtime: SAN=0 only");
#endif
    if (geteuid() != 0)
        cr_skip_test("containers need root");
    if (!have("podman") || !have("runc") || !have("mmdebstrap"))
        cr_skip_test("podman, runc or mmdebstrap is not installed (scripts/install-deps.sh)");
}

/* Takes lock file path exclusively, waiting up to ms. Returns the fd (kept open). */
static int take_lock(const char *path, int ms)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    for (int waited = 0; flock(fd, LOCK_EX | LOCK_NB) < 0; waited += 100) {
        cr_assert_lt(waited, ms, "waited %d s for %s", ms / 1000, path);
        qt_sleep_ms(100);
    }
    return fd;
}

const char *qct_rootfs(const char *suite)
{
    static char *paths[4];
    static const char *names[4];
    for (int i = 0; i < 4 && names[i]; i++)
        if (strcmp(names[i], suite) == 0)
            return paths[i];
    char *dir = qt_build_path("rootfs"), *path = qt_strf("%s/%s", dir, suite);
    mkdir(dir, 0755);
    struct stat st;
    if (stat(path, &st) < 0) {
        char *lock = qt_strf("%s/.lock", dir);
        int fd = take_lock(lock, BUILD_MS);
        if (stat(path, &st) < 0) { /* nobody built it meanwhile */
            char *tmp = qt_strf("%s/.%s.%d", dir, suite, (int)getpid());
            const char *mirror = getenv("QVGPU_DEBIAN_MIRROR");
            const char *argv[] = {"mmdebstrap",
                                  "--variant=minbase",
                                  "--mode=root",
                                  "--quiet",
                                  suite,
                                  tmp,
                                  mirror ? mirror : "http://deb.debian.org/debian",
                                  NULL};
            char *err = NULL;
            int rc = qt_run(argv, NULL, BUILD_MS, NULL, &err);
            if (rc != 0) {
                const char *rm[] = {"rm", "-rf", tmp, NULL};
                qt_run(rm, NULL, 60000, NULL, NULL);
            }
            cr_assert_eq(rc, 0, "mmdebstrap %s failed (status %d): %s", suite, rc, err);
            cr_assert_eq(rename(tmp, path), 0, "%s: %s", path, strerror(errno));
            free(err);
            free(tmp);
        }
        close(fd);
        free(lock);
    }
    free(dir);
    for (int i = 0; i < 4; i++) {
        if (!names[i]) {
            names[i] = suite;
            paths[i] = path;
            return path;
        }
    }
    return path;
}

void qct_arbiter_start(qct_arbiter_t *a, const char *const extra[])
{
    register_cleanup();
    mkdir("/run/lock", 01777);
    if (undo.cdi_lock < 0)
        undo.cdi_lock = take_lock(CDI_LOCK, LOCK_WAIT_MS);
    qt_sim_private(NULL);
    a->tenant = qt_tmpdir();
    a->driver = qt_tmpdir();
    undo.tenant = a->tenant;
    /* The simulated driver where a Debian host keeps NVIDIA's. */
    char *lib = qt_strf("%s/usr/lib/x86_64-linux-gnu", a->driver);
    const char *mk[] = {"mkdir", "-p", lib, NULL};
    cr_assert_eq(qt_run(mk, NULL, 5000, NULL, NULL), 0);
    const char *files[] = {"libcuda.so.1", "libnvidia-ml.so.1"};
    for (int i = 0; i < 2; i++) {
        char *from = qt_strf("%s/sim/%s", qt_build(), files[i]);
        char *to = qt_strf("%s/%s", lib, files[i]);
        cr_assert_eq(symlink(from, to), 0);
        free(from);
        free(to);
    }
    free(lib);
    const char *args[16] = {"--tenant-dir", a->tenant,           "--cdi-dir",
                            CDI_DIR,        "--cdi-driver-root", a->driver};
    for (int i = 0; extra && extra[i] && i < 9; i++)
        args[6 + i] = extra[i];
    a->arb = qt_arbiter_start_args(NULL, NULL, args);
    cr_assert_not_null(a->arb, "qarbiter did not start");
}

void qct_vgpu(qct_arbiter_t *a, char id[64], ...)
{
    char *bin = qt_build_path("qgpuctl");
    const char *argv[32] = {bin, "--socket-dir", qt_arbiter_socket_dir(a->arb), "create"};
    int n = 4;
    va_list ap;
    va_start(ap, id);
    for (const char *s; n < 31 && (s = va_arg(ap, const char *));)
        argv[n++] = s;
    va_end(ap);
    char *out = NULL, *err = NULL;
    cr_assert_eq(qt_run(argv, NULL, 10000, &out, &err), 0, "qgpuctl create: %s", err);
    snprintf(id, 64, "%.*s", (int)strcspn(out, "\n"), out);
    free(out);
    free(err);
    free(bin);
}

char *qct_name(void)
{
    register_cleanup();
    cr_assert_lt(undo.nnames, sizeof undo.names / sizeof *undo.names);
    char *name = qt_strf("qvgpu-test-%d-%zu", (int)getpid(), undo.nnames);
    undo.names[undo.nnames++] = strdup(name);
    return name;
}

const char **qct_podman_argv(const char *verb, const char *name, const char *const args[],
                             const char *rootfs, const char *const cmd[])
{
    static char *fixed[8];
    if (!fixed[0]) {
        struct rlimit nofile;
        getrlimit(RLIMIT_NOFILE, &nofile);
        /* Podman's own defaults are above what a host without CAP_SYS_RESOURCE may set. */
        fixed[0] = qt_strf("nofile=%llu:%llu", (unsigned long long)nofile.rlim_cur,
                           (unsigned long long)nofile.rlim_max);
        fixed[1] = qt_strf("QSIM_NAMESPACE=%s", getenv("QSIM_NAMESPACE"));
        fixed[2] = qt_strf("%s/tests:/opt/qvgpu-test:ro", qt_build());
    }
    char *root = qt_strf("%s:O", rootfs);
    size_t na = 0, nc = 0;
    while (args && args[na])
        na++;
    while (cmd[nc])
        nc++;
    const char **argv = calloc(na + nc + 32, sizeof *argv);
    size_t n = 0;
    const char *head[] = {
        "podman",   "--runtime",       "runc", verb,     "--name", name,       "--network",
        "none",     "--ipc",           "host", "--pid",  "host",   "--ulimit", fixed[0],
        "--ulimit", "nproc=4096:4096", "-e",   fixed[1], "-v",     fixed[2]};
    for (size_t i = 0; i < sizeof head / sizeof *head; i++)
        argv[n++] = head[i];
    if (strcmp(verb, "run") == 0)
        argv[n++] = "--rm";
    for (size_t i = 0; i < na; i++)
        argv[n++] = args[i];
    argv[n++] = "--rootfs";
    argv[n++] = root;
    for (size_t i = 0; i < nc; i++)
        argv[n++] = cmd[i];
    return argv;
}

char *qct_overlay(const char *rootfs)
{
    register_cleanup();
    char *dir = qt_tmpdir();
    char *upper = qt_strf("%s/upper", dir), *work = qt_strf("%s/work", dir);
    char *merged = qt_strf("%s/merged", dir);
    mkdir(upper, 0755);
    mkdir(work, 0755);
    mkdir(merged, 0755);
    char *opts = qt_strf("lowerdir=%s,upperdir=%s,workdir=%s", rootfs, upper, work);
    cr_assert_eq(mount("overlay", merged, "overlay", 0, opts), 0, "overlay: %s", strerror(errno));
    cr_assert_lt(undo.nmounts, sizeof undo.mounts / sizeof *undo.mounts);
    undo.mounts[undo.nmounts++] = strdup(merged);
    free(opts), free(upper), free(work), free(dir);
    return merged;
}
