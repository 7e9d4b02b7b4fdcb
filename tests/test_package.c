/* test_package.c - the Debian package `make deb` builds (docs/install.md): what it holds,
 * its unit as systemd reads it, its configuration file against qarbiter's own table, and
 * the package installed with dpkg into a fresh Debian 12 root file system (the container
 * tests' mmdebstrap minbase, in an overlay; apt resolves the dependencies from the
 * archive), where its arbiter serves on the simulated GPU, a workload runs in a vGPU,
 * and an upgrade keeps the edited configuration and never rewrites the shim file that
 * workload maps. */
#include "tests/container_support.h"
#include "tests/harness.h"
#include "tests/help_support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* "0.1.0", from the build's qarbiter. Borrowed, lives forever. */
static const char *version(void)
{
    static char v[64];
    if (!v[0]) {
        char *bin = qt_build_path("qarbiter"), *out = NULL;
        const char *argv[] = {bin, "--version", NULL};
        cr_assert_eq(qt_run(argv, NULL, 5000, &out, NULL), 0);
        cr_assert_eq(sscanf(out, "qarbiter %63s", v), 1, "%s", out);
        free(out), free(bin);
    }
    return v;
}

/* What argv (run with env, as qt_spawn) prints; the test fails, naming the command and
 * showing its output, when it does not exit 0. Caller frees. */
static char *run_env(const char *const argv[], const char *const env[], int timeout_ms)
{
    char *out = NULL, *err = NULL;
    int rc = qt_run(argv, env, timeout_ms, &out, &err);
    if (rc != 0) {
        char *line = strdup("");
        for (size_t i = 0; argv[i]; i++) {
            char *t = qt_strf("%s %s", line, argv[i]);
            free(line);
            line = t;
        }
        cr_assert_fail("%s: status %d\n%s%s", line, rc, out, err);
    }
    free(err);
    return out;
}

static char *run_out(const char *const argv[], int timeout_ms)
{
    return run_env(argv, NULL, timeout_ms);
}

static char *trim(char *s)
{
    s[strcspn(s, "\n")] = '\0';
    return s;
}

static bool have(const char *program)
{
    char *cmd = qt_strf("command -v %s >/dev/null", program);
    const char *argv[] = {"sh", "-c", cmd, NULL};
    bool ok = qt_run(argv, NULL, 5000, NULL, NULL) == 0;
    free(cmd);
    return ok;
}

/* The package `make deb` left, or the test is skipped. Caller frees. */
static char *require_deb(void)
{
#ifdef QV_SAN
    cr_skip_test("the package is made from the normal build: SAN=0 only");
#endif
    const char *arch_argv[] = {"dpkg", "--print-architecture", NULL};
    if (!have("dpkg-deb") || !have("dh") || !have("fakeroot"))
        cr_skip_test("dpkg-dev, debhelper or fakeroot is not installed (scripts/install-deps.sh)");
    char *arch = trim(run_out(arch_argv, 5000));
    char *deb = qt_strf("%s/qvgpu_%s_%s.deb", qt_build(), version(), arch);
    struct stat st;
    if (stat(deb, &st) < 0)
        cr_skip_test("no %s: make deb did not run (qarbiter built without libsystemd?)", deb);
    free(arch);
    return deb;
}

static char *multiarch(void)
{
    const char *argv[] = {"dpkg-architecture", "-qDEB_HOST_MULTIARCH", NULL};
    return trim(run_out(argv, 5000));
}

static void spill(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

/* The package's files under a new directory (dpkg-deb -x). Caller frees. */
static char *extracted(const char *deb)
{
    char *root = qt_tmpdir();
    const char *argv[] = {"dpkg-deb", "-x", deb, root, NULL};
    free(run_out(argv, 60000));
    return root;
}

Test(package, holds_every_promised_file_and_nothing_of_the_simulator)
{
    char *deb = require_deb(), *ma = multiarch();
    const char *contents[] = {"dpkg-deb", "-c", deb, NULL};
    char *list = run_out(contents, 30000);
    const char *promised[] = {"./usr/bin/qarbiter",
                              "./usr/bin/qgpuctl",
                              "./usr/bin/qvgpu-container-runtime",
                              "./usr/include/qvgpu.h",
                              "./lib/systemd/system/qarbiter.service",
                              "./etc/qvgpu/qarbiter.conf",
                              "./etc/default/qarbiter",
                              "./usr/share/man/man8/qarbiter.8.gz",
                              "./usr/share/man/man1/qgpuctl.1.gz",
                              "./usr/share/man/man3/libqvgpu.3.gz",
                              "./usr/share/bash-completion/completions/qgpuctl",
                              "./usr/lib/qvgpu/package/libqshim.so",
                              "./usr/lib/qvgpu/package/qvgpu-container-hook",
                              "./usr/lib/qvgpu/package/ld.so.preload",
                              "./usr/lib/qvgpu/package/install-bundle",
                              "./usr/lib/python3/dist-packages/qvgpu/__init__.py",
                              "./usr/lib/python3/dist-packages/qvgpu/_lib.py",
                              "./usr/lib/python3/dist-packages/qvgpu/_installed.py",
                              "./usr/share/doc/qvgpu/README.md",
                              "./usr/share/doc/qvgpu/install.md"};
    for (size_t i = 0; i < sizeof promised / sizeof *promised; i++) {
        char *line = qt_strf(" %s", promised[i]);
        cr_assert(strstr(list, line), "no %s in the package:\n%s", promised[i], list);
        free(line);
    }
    /* the libraries in the multiarch directory; the shim there is the bundle's current */
    char *lib = qt_strf(" ./usr/lib/%s/libqvgpu.so\n", ma);
    char *pc = qt_strf(" ./usr/lib/%s/pkgconfig/qvgpu.pc\n", ma);
    char *shim = qt_strf(" ./usr/lib/%s/libqshim.so -> ../qvgpu/current/libqshim.so\n", ma);
    cr_assert(strstr(list, lib) && strstr(list, pc) && strstr(list, shim), "%s", list);
    char *spank = qt_build_path("spank_qvgpu.so");
    if (access(spank, F_OK) == 0) {
        char *plugin = qt_strf(" ./usr/lib/%s/slurm-wlm/spank_qvgpu.so\n", ma);
        cr_assert(strstr(list, plugin), "the Slurm plugin was built but is not packaged:\n%s",
                  list);
        free(plugin);
    }
    /* the versioned bundle is not dpkg's: an upgrade must not remove it */
    cr_assert_null(strstr(list, "./usr/lib/qvgpu/0"), "%s", list);
    cr_assert_null(strstr(list, "libcuda"), "the simulator is packaged:\n%s", list);
    cr_assert_null(strstr(list, "libnvidia-ml"), "the simulator is packaged:\n%s", list);

    const char *field[] = {"dpkg-deb", "-f", deb, "Version", "Depends", NULL};
    char *fields = run_out(field, 30000);
    char *ver = qt_strf("Version: %s\n", version());
    cr_assert(strstr(fields, ver), "%s", fields);
    const char *deps[] = {"libc6", "libjansson4", "libinih1", "libmicrohttpd12", "libsystemd0"};
    for (size_t i = 0; i < sizeof deps / sizeof *deps; i++)
        cr_assert(strstr(fields, deps[i]), "Depends lacks %s: %s", deps[i], fields);
    const char *conffiles[] = {"dpkg-deb", "-I", deb, "conffiles", NULL};
    char *conf = run_out(conffiles, 30000);
    cr_assert(strstr(conf, "/etc/qvgpu/qarbiter.conf\n") && strstr(conf, "/etc/default/qarbiter\n"),
              "%s", conf);
    const char *changelog[] = {
        "dpkg-parsechangelog", "-l", "debian/changelog", "-S", "Version", NULL};
    char *logged = trim(run_out(changelog, 30000));
    cr_assert_str_eq(logged, version(), "debian/changelog says %s, qarbiter --version %s", logged,
                     version());
    free(deb), free(ma), free(list), free(lib), free(pc), free(shim), free(spank), free(fields),
        free(ver), free(conf), free(logged);
}

Test(package, systemd_accepts_its_unit)
{
    char *deb = require_deb();
    if (!have("systemd-analyze"))
        cr_skip_test("systemd-analyze is not installed (the systemd package)");
    char *root = extracted(deb);
    /* the units the service names (multi-user.target, sysinit.target...) as the host has
     * them; the package's own are kept */
    char *units = qt_strf("%s/lib/systemd/system/", root);
    const char *copy[] = {"cp", "-an", "/lib/systemd/system/.", units, NULL};
    free(run_out(copy, 30000));
    /* and the host's mkdir, which ExecStartPre= runs (verify checks it is there) */
    char *setup = qt_strf("ln -s usr/bin %s/bin && cp /usr/bin/mkdir %s/usr/bin/", root, root);
    const char *mkdir_too[] = {"sh", "-c", setup, NULL};
    free(run_out(mkdir_too, 30000));
    char *unit = qt_strf("%s/qarbiter.service", units);
    char *at_root = qt_strf("--root=%s", root);
    const char *verify[] = {"systemd-analyze", "verify", at_root, unit, NULL};
    /* Documentation= names man pages: verify runs man(1) for them, here in the package's */
    char *manpath = qt_strf("MANPATH=%s/usr/share/man", root);
    const char *env[] = {manpath, NULL};
    char *out = NULL, *err = NULL;
    int rc = qt_run(verify, env, 60000, &out, &err);
    cr_assert_eq(rc, 0, "systemd-analyze verify: %s%s", out, err);
    cr_assert_str_empty(err, "systemd-analyze verify warns: %s", err);
    cr_assert_str_empty(out, "%s", out);
    char *text = qh_read(unit);
    const char *facts[] = {
        "\nType=notify\n",
        "\nExecStart=/usr/bin/qarbiter --socket-dir /run/qvgpu --tenant-dir "
        "/run/qvgpu-tenant --state-dir /var/lib/qvgpu $QARBITER_OPTIONS\n",
        "\nRuntimeDirectory=qvgpu qvgpu-tenant\n", "\nRuntimeDirectoryMode=0755\n",
        /* a new tenant dir at each restart would strand the containers that mount it */
        "\nRuntimeDirectoryPreserve=yes\n", "\nStateDirectory=qvgpu\n",
        "\nStateDirectoryMode=0700\n", "\nLimitNOFILE=65536\n", "\nRestart=on-failure\n",
        "\nProtectSystem=strict\n", "\nNoNewPrivileges=yes\n"};
    for (size_t i = 0; i < sizeof facts / sizeof *facts; i++)
        cr_assert(strstr(text, facts[i]), "the unit lacks %s", facts[i]);
    /* the GPUs' device nodes must stay reachable */
    cr_assert_null(strstr(text, "\nPrivateDevices=yes"), "%s", text);
    cr_assert_null(strstr(text, "\nDeviceAllow="), "%s", text);
    cr_assert_null(strstr(text, "\nProtectClock=yes"), "it implies a device allow-list");
    free(deb), free(root), free(units), free(setup), free(unit), free(at_root), free(manpath),
        free(out), free(err), free(text);
}

/* Every "key = value" line of `qarbiter --print-config` (the defaults), in order. */
static char *default_settings(void)
{
    char *bin = qt_build_path("qarbiter");
    const char *argv[] = {bin, "--config", "off", "--print-config", NULL};
    char *out = run_out(argv, 5000);
    free(bin);
    return out;
}

Test(package, its_configuration_file_shows_every_key_at_its_default)
{
    char *deb = require_deb();
    char *root = extracted(deb);
    char *conf = qt_strf("%s/etc/qvgpu/qarbiter.conf", root);
    char *text = qh_read(conf), *defaults = default_settings();
    char *docs = qh_read("docs/configuration.md");
    int keys = 0;
    char *save = NULL;
    char *copy = strdup(defaults);
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || line[0] == '[')
            continue;
        char *commented = qt_strf("\n#%s\n", line);
        cr_assert(strstr(text, commented), "the file lacks '#%s'", line);
        char *key = strndup(line, strcspn(line, " "));
        char *in_docs = qt_strf("\n%s = ", key);
        cr_assert(strstr(docs, in_docs), "docs/configuration.md does not show %s", key);
        keys++;
        free(commented), free(key), free(in_docs);
    }
    cr_assert_geq(keys, 17);

    /* read as it is, it is the defaults; every key uncommented, the defaults too */
    char *bin = qt_build_path("qarbiter");
    const char *as_is[] = {bin, "--config", conf, "--print-config", NULL};
    char *read = run_out(as_is, 5000);
    cr_assert_str_eq(strchr(read, '\n'), strchr(defaults, '\n'), "%s", read);
    char *open = qt_strf("%s/open.conf", root);
    free(copy);
    copy = strdup(defaults);
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || line[0] == '[')
            continue;
        char *commented = qt_strf("\n#%s\n", line);
        char *at = strstr(text, commented);
        cr_assert_not_null(at);
        memmove(at + 1, at + 2, strlen(at + 2) + 1); /* drop the '#' */
        free(commented);
    }
    spill(open, text);
    const char *opened[] = {bin, "--config", open, "--print-config", NULL};
    char *all = run_out(opened, 5000);
    cr_assert_str_eq(strchr(all, '\n'), strchr(defaults, '\n'), "%s", all);
    free(deb), free(root), free(conf), free(text), free(defaults), free(docs), free(copy),
        free(bin), free(read), free(open), free(all);
}

/* ---- installed into a fresh Debian 12 ------------------------------------------------ */

static const char *root_dir; /* the overlay, for the unmount at exit */

static void unmount_proc(void)
{
    if (root_dir) {
        char *proc = qt_strf("%s/proc", root_dir);
        umount2(proc, MNT_DETACH);
        free(proc);
    }
}

/* The environment of a command run in the root: nothing of the build's. */
static const char *const chroot_env[] = {
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "DEBIAN_FRONTEND=noninteractive",
    "LC_ALL=C",
    "LD_LIBRARY_PATH",
    "LD_PRELOAD",
    "QVGPU_SOCKET_DIR",
    NULL};

/* Runs the shell command line cmd in root. Returns its status; out/err as qt_run. */
static int in_root(const char *root, const char *cmd, int timeout_ms, char **out, char **err)
{
    const char *argv[] = {"chroot", root, "/bin/sh", "-c", cmd, NULL};
    return qt_run(argv, chroot_env, timeout_ms, out, err);
}

static char *in_root_ok(const char *root, const char *cmd, int timeout_ms)
{
    const char *argv[] = {"chroot", root, "/bin/sh", "-c", cmd, NULL};
    return run_env(argv, chroot_env, timeout_ms);
}

static bool accepts(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static bool serving(void *path)
{
    return accepts(path);
}

/* A fresh Debian 12 minbase (an overlay of the cached one) with the package in /tmp, the
 * host's resolver and apt's lists of the archive. Caller frees. */
static char *fresh_root(const char *deb)
{
    char *root = qct_overlay(qct_rootfs("bookworm"));
    char *resolv = qh_read("/etc/resolv.conf"), *resolv_to = qt_strf("%s/etc/resolv.conf", root);
    unlink(resolv_to);
    spill(resolv_to, resolv);
    char *deb_in = qt_strf("%s/tmp/qvgpu.deb", root);
    const char *cp[] = {"cp", deb, deb_in, NULL};
    free(run_out(cp, 30000));
    free(in_root_ok(root, "apt-get update -q -o Acquire::Languages=none", 300000));
    free(resolv), free(resolv_to), free(deb_in);
    return root;
}

/* Puts the simulated driver into root at /opt/qvgpu-sim. */
static void add_simulator(const char *root)
{
    char *sim = qt_strf("%s/opt/qvgpu-sim", root);
    cr_assert_eq(mkdir(sim, 0755), 0);
    const char *libs[] = {"libcuda.so.1", "libnvidia-ml.so.1"};
    for (size_t i = 0; i < 2; i++) {
        char *from = qt_strf("%s/sim/%s", qt_build(), libs[i]);
        const char *cp_lib[] = {"cp", from, sim, NULL};
        free(run_out(cp_lib, 30000));
        free(from);
    }
    free(sim);
}

/* The first mapping of a file whose path contains name in pid's address space, as
 * /proc/PID/map_files/START-END (whatever became of the path), or NULL. Caller frees. */
static char *mapping(pid_t pid, const char *name)
{
    char *maps = qt_strf("/proc/%d/maps", (int)pid);
    FILE *f = fopen(maps, "r");
    free(maps);
    if (!f)
        return NULL;
    char line[1024], *found = NULL;
    while (!found && fgets(line, sizeof line, f)) {
        if (strstr(line, name))
            found = qt_strf("/proc/%d/map_files/%.*s", (int)pid, (int)strcspn(line, " "), line);
    }
    fclose(f);
    return found;
}

static bool shim_mapped(void *arg)
{
    char *m = mapping(*(pid_t *)arg, "libqshim.so");
    free(m);
    return m != NULL;
}

/* The package again, as a rebuild with a higher version: the same files, for dpkg an
 * upgrade. Caller frees the path. */
static char *rebuilt(const char *deb, const char *new_version)
{
    char *dir = qt_tmpdir();
    char *tree = qt_strf("%s/tree", dir), *out = qt_strf("%s/qvgpu_%s.deb", dir, new_version);
    const char *unpack[] = {"dpkg-deb", "-R", deb, tree, NULL};
    free(run_out(unpack, 60000));
    char *sed =
        qt_strf("sed -i 's/^Version: .*/Version: %s/' %s/DEBIAN/control", new_version, tree);
    const char *bump[] = {"sh", "-c", sed, NULL};
    free(run_out(bump, 5000));
    const char *pack[] = {"dpkg-deb", "--root-owner-group", "-Zgzip", "-b", tree, out, NULL};
    free(run_out(pack, 120000));
    free(dir), free(tree), free(sed);
    return out;
}

Test(package, installs_into_a_fresh_debian_12_serves_and_upgrades_without_harm, .timeout = 900)
{
    char *deb = require_deb();
    if (geteuid() != 0)
        cr_skip_test("installing into a root file system needs root");
    if (!have("mmdebstrap") || !have("chroot"))
        cr_skip_test("mmdebstrap is not installed (scripts/install-deps.sh)");
    const char *ns = qt_sim_private(NULL);
    char *root = fresh_root(deb);
    root_dir = root;
    char *proc = qt_strf("%s/proc", root);
    cr_assert_eq(mount("proc", proc, "proc", 0, NULL), 0, "%s", strerror(errno));
    atexit(unmount_proc);

    /* dpkg -i, then apt brings what it depends on from the archive */
    char *out = NULL, *err = NULL;
    in_root(root, "dpkg -i /tmp/qvgpu.deb", 120000, &out, &err);
    free(out), free(err);
    free(in_root_ok(root, "apt-get install -y -q -f --no-install-recommends", 600000));
    char *status = in_root_ok(root, "dpkg-query -W -f='${Status} ${Version}' qvgpu", 30000);
    char *want = qt_strf("install ok installed %s", version());
    cr_assert_str_eq(status, want);
    free(status), free(want);

    /* its programs run, and the configuration it installed is the one in force */
    char *help = in_root_ok(root, "qgpuctl --help && qarbiter --help", 30000);
    cr_assert(strstr(help, "usage: qgpuctl") && strstr(help, "usage: qarbiter"), "%s", help);
    free(help);
    char *settings = in_root_ok(root, "qarbiter --print-config", 30000);
    cr_assert(strstr(settings, "the settings in force, from /etc/qvgpu/qarbiter.conf"), "%s",
              settings);
    free(settings);
    char *current = in_root_ok(root, "readlink /usr/lib/qvgpu/current", 30000);
    cr_assert_str_eq(trim(current), version());
    free(current);
    /* the versioned bundle is not dpkg's, so that no upgrade removes it under containers */
    char *owner = qt_strf("dpkg -S /usr/lib/qvgpu/%s/libqshim.so", version());
    cr_assert_neq(in_root(root, owner, 30000, NULL, NULL), 0, "dpkg owns the versioned bundle");
    free(owner);

    /* the administrator edits the configuration */
    char *conf = qt_strf("%s/etc/qvgpu/qarbiter.conf", root);
    char *text = qh_read(conf);
    char *at = strstr(text, "\n#log_level = info\n");
    cr_assert_not_null(at);
    memcpy(at + 1, "log_level = warn\n", strlen("log_level = warn\n")); /* same length */
    spill(conf, text);

    /* the arbiter as the unit starts it, on the simulated GPU, and a workload in a vGPU */
    add_simulator(root);
    char *sim_env = qt_strf("QSIM_NAMESPACE=%s", ns);
    const char *arbiter[] = {"chroot",
                             root,
                             "env",
                             "LD_LIBRARY_PATH=/opt/qvgpu-sim",
                             sim_env,
                             "qarbiter",
                             "--socket-dir",
                             "/run/qvgpu",
                             "--tenant-dir",
                             "/run/qvgpu-tenant",
                             "--state-dir",
                             "/var/lib/qvgpu",
                             "--http",
                             "off",
                             "--cdi-dir",
                             "/run/cdi",
                             NULL};
    qt_proc_t *arb = qt_spawn(arbiter, chroot_env);
    char *admin = qt_strf("%s/run/qvgpu/admin.sock", root);
    cr_assert(qt_wait_until(serving, admin, 20000), "the packaged arbiter does not serve:\n%s",
              qt_proc_stderr(arb));
    char *id = trim(in_root_ok(root, "qgpuctl create --vm pkg --profile Q1", 30000));
    char *env_cmd = qt_strf("qgpuctl env %s", id);
    char *env = in_root_ok(root, env_cmd, 30000);
    char *preload = qt_strf("/usr/lib/qvgpu/%s/libqshim.so", version());
    cr_assert(strstr(env, preload), "qgpuctl env does not preload the versioned shim: %s", env);
    const char *work[] = {"chroot", root, "qgpuctl", "run", id, "--", "sleep", "300", NULL};
    qt_proc_t *workload = qt_spawn(work, chroot_env);
    pid_t pid = qt_proc_pid(workload);
    cr_assert(qt_wait_until(shim_mapped, &pid, 20000), "the workload never mapped the shim: %s",
              qt_proc_stderr(workload));
    char *mapped = mapping(pid, "libqshim.so");
    char *shim_path = qt_strf("%s%s", root, preload);
    char *before = qh_read(shim_path);
    size_t before_len = (size_t)lseek(open(shim_path, O_RDONLY | O_CLOEXEC), 0, SEEK_END);
    struct stat was;
    cr_assert_eq(stat(mapped, &was), 0, "%s: %s", mapped, strerror(errno));

    /* upgrade to the package rebuilt */
    char *next = qt_strf("%s+rebuild1", version());
    char *deb2 = rebuilt(deb, next), *deb2_in = qt_strf("%s/tmp/qvgpu2.deb", root);
    const char *cp2[] = {"cp", deb2, deb2_in, NULL};
    free(run_out(cp2, 30000));
    free(in_root_ok(root, "dpkg -i /tmp/qvgpu2.deb", 120000));
    status = in_root_ok(root, "dpkg-query -W -f='${Status} ${Version}' qvgpu", 30000);
    want = qt_strf("install ok installed %s", next);
    cr_assert_str_eq(status, want);

    /* the edit is kept, without a copy of the package's version beside it */
    char *after_conf = qh_read(conf);
    cr_assert_str_eq(after_conf, text, "the upgrade changed the edited configuration");
    char *dist = qt_strf("%s.dpkg-dist", conf), *new_conf = qt_strf("%s.dpkg-new", conf);
    cr_assert(access(dist, F_OK) < 0 && access(new_conf, F_OK) < 0);
    settings = in_root_ok(root, "qarbiter --print-config", 30000);
    cr_assert(strstr(settings, "\nlog_level = warn\n"), "%s", settings);

    /* the workload runs on, mapping the old file, intact; the path has a new file */
    cr_assert_eq(kill(pid, 0), 0, "the workload died");
    char *mapped_now = mapping(pid, "libqshim.so");
    cr_assert_str_eq(mapped_now, mapped);
    struct stat is, path_now;
    cr_assert_eq(stat(mapped_now, &is), 0);
    cr_assert_eq(is.st_ino, was.st_ino, "the workload's mapping changed");
    cr_assert_eq(stat(shim_path, &path_now), 0, "the upgrade removed %s", preload);
    cr_assert_neq(path_now.st_ino, is.st_ino,
                  "the upgrade wrote the new shim into the file the workload maps");
    cr_assert_eq((size_t)is.st_size, before_len);
    char *still = qh_read(mapped_now);
    cr_assert_eq(memcmp(still, before, before_len), 0, "the mapped shim's bytes changed");
    char *listed = in_root_ok(root, "qgpuctl list", 30000);
    cr_assert(strstr(listed, id), "the arbiter lost %s: %s", id, listed);

    /* removed: the bundle stays for containers, the edited configuration too; purged:
     * nothing is left */
    qt_proc_destroy(&workload);
    qt_proc_kill(arb, SIGTERM);
    cr_assert_eq(qt_proc_wait(arb, 10000), 0, "%s", qt_proc_stderr(arb));
    free(in_root_ok(root, "dpkg -r qvgpu", 120000));
    char *bundle = qt_strf("test -f /usr/lib/qvgpu/%s/libqshim.so && test -f "
                           "/etc/qvgpu/qarbiter.conf && test ! -e /usr/bin/qarbiter",
                           version());
    free(in_root_ok(root, bundle, 30000));
    free(in_root_ok(root, "dpkg -P qvgpu", 120000));
    free(in_root_ok(root,
                    "test ! -e /usr/lib/qvgpu && test ! -e /etc/qvgpu/qarbiter.conf && "
                    "test ! -e /var/lib/qvgpu",
                    30000));
    qt_proc_destroy(&arb);
    free(deb), free(proc), free(conf), free(text), free(sim_env), free(admin), free(id),
        free(env_cmd), free(env), free(preload), free(mapped), free(shim_path), free(before),
        free(next), free(deb2), free(deb2_in), free(status), free(want), free(after_conf),
        free(dist), free(new_conf), free(settings), free(mapped_now), free(still), free(listed),
        free(bundle);
}

/* ---- the service under systemd ------------------------------------------------------ */

/* Runs the shell command line cmd in container name. Returns its status. */
static int in_box(const char *name, const char *cmd, int timeout_ms, char **out, char **err)
{
    const char *argv[] = {"podman", "exec", name, "/bin/sh", "-c", cmd, NULL};
    return qt_run(argv, NULL, timeout_ms, out, err);
}

static char *in_box_ok(const char *name, const char *cmd, int timeout_ms)
{
    const char *argv[] = {"podman", "exec", name, "/bin/sh", "-c", cmd, NULL};
    return run_env(argv, NULL, timeout_ms);
}

/* The first line of what cmd prints in container name. Caller frees. */
static char *in_box_line(const char *name, const char *cmd, int timeout_ms)
{
    return trim(in_box_ok(name, cmd, timeout_ms));
}

static bool service_active(void *name)
{
    char *out = NULL;
    in_box(name, "systemctl is-active qarbiter", 10000, &out, NULL);
    bool active = out && strcmp(out, "active\n") == 0;
    free(out);
    return active;
}

Test(package, runs_as_a_service_under_systemd_ready_restarted_and_upgraded, .timeout = 900)
{
    char *deb = require_deb();
    if (geteuid() != 0)
        cr_skip_test("booting systemd in a container needs root");
    if (!have("mmdebstrap") || !have("podman") || !have("runc"))
        cr_skip_test("podman, runc or mmdebstrap is not installed (scripts/install-deps.sh)");
    const char *ns = qt_sim_private(NULL);
    char *name = qct_name(); /* removed at exit, before the overlay goes */
    char *root = fresh_root(deb);
    free(in_root_ok(root,
                    "apt-get install -y -q --no-install-recommends systemd python3 /tmp/qvgpu.deb "
                    "&& cp /tmp/qvgpu.deb /root/",
                    600000));
    /* the simulated driver for the service, as a drop-in would give a driver's path */
    add_simulator(root);
    char *dropin = qt_strf("%s/etc/systemd/system/qarbiter.service.d", root);
    const char *mk[] = {"mkdir", "-p", dropin, NULL};
    free(run_out(mk, 5000));
    char *conf = qt_strf("%s/sim.conf", dropin);
    char *sim =
        qt_strf("[Service]\nEnvironment=LD_LIBRARY_PATH=/opt/qvgpu-sim QSIM_NAMESPACE=%s\n", ns);
    spill(conf, sim);

    /* systemd as the container's init: the package enabled the service, it starts it */
    struct rlimit nofile;
    getrlimit(RLIMIT_NOFILE, &nofile);
    char *ulimit = qt_strf("nofile=%llu:%llu", (unsigned long long)nofile.rlim_cur,
                           (unsigned long long)nofile.rlim_max);
    const char *boot[] = {"podman",
                          "--runtime",
                          "runc",
                          "run",
                          "-d",
                          "--name",
                          name,
                          "--systemd=always",
                          "--network",
                          "none",
                          "--ulimit",
                          ulimit,
                          "--ulimit",
                          "nproc=4096:4096",
                          "--rootfs",
                          root,
                          "/lib/systemd/systemd",
                          NULL};
    free(run_out(boot, 120000));
    cr_assert(qt_wait_until(service_active, name, 60000), "qarbiter.service is not active: %s",
              in_box_ok(name, "systemctl status qarbiter --no-pager; true", 30000));
    char *shown =
        in_box_ok(name, "systemctl show -p Type -p StatusText -p MainPID qarbiter", 30000);
    cr_assert(strstr(shown, "Type=notify") && strstr(shown, "StatusText=serving /run/qvgpu"), "%s",
              shown);
    char *modes =
        in_box_ok(name, "stat -c '%n %a %U' /run/qvgpu /run/qvgpu-tenant /var/lib/qvgpu", 30000);
    cr_assert_str_eq(modes,
                     "/run/qvgpu 755 root\n/run/qvgpu-tenant 755 root\n/var/lib/qvgpu 700 root\n");
    char *id = in_box_line(name, "qgpuctl create --vm svc --profile Q1", 30000);

    /* the Python package finds the multiarch libqvgpu by itself */
    char *script = qt_strf("python3 -c 'from qvgpu import VGPUManager; "
                           "print(VGPUManager().get_vgpu_info(\"%s\")[\"memory_mb\"])'",
                           id);
    char *py = in_box_line(name, script, 30000);
    cr_assert_str_eq(py, "1024");
    free(py), free(script);

    /* Type=notify: `systemctl restart` returns once the sockets serve, so the next command
     * gets through at once; the tenant dir containers mount is the same directory */
    char *inode = in_box_line(name, "stat -c %i /run/qvgpu-tenant", 30000);
    for (int i = 0; i < 3; i++) {
        char *listed = in_box_ok(name, "systemctl restart qarbiter && qgpuctl list", 60000);
        cr_assert(strstr(listed, id), "right after a restart: %s", listed);
        free(listed);
    }
    char *inode_now = in_box_line(name, "stat -c %i /run/qvgpu-tenant", 30000);
    cr_assert_str_eq(inode_now, inode, "a restart made a new tenant dir");

    /* killed, it is started again, with its vGPU */
    free(in_box_ok(name, "systemctl kill -s KILL qarbiter", 30000));
    qt_sleep_ms(500);
    cr_assert(qt_wait_until(service_active, name, 30000), "not restarted after kill -9");
    char *restarts = in_box_line(name, "systemctl show -p NRestarts --value qarbiter", 30000);
    cr_assert_str_eq(restarts, "1");
    char *listed = in_box_ok(name, "qgpuctl list", 30000);
    cr_assert(strstr(listed, id), "%s", listed);

    /* an upgrade restarts it (a new process), its vGPU served */
    char *pid = in_box_line(name, "systemctl show -p MainPID --value qarbiter", 30000);
    char *next = qt_strf("%s+rebuild1", version());
    char *deb2 = rebuilt(deb, next), *deb2_in = qt_strf("%s/root/qvgpu2.deb", root);
    const char *cp2[] = {"cp", deb2, deb2_in, NULL};
    free(run_out(cp2, 30000));
    free(in_box_ok(name, "dpkg -i /root/qvgpu2.deb", 120000));
    cr_assert(service_active(name));
    char *pid_now = in_box_line(name, "systemctl show -p MainPID --value qarbiter", 30000);
    cr_assert_str_neq(pid_now, pid, "the upgrade did not restart the service");
    free(listed);
    listed = in_box_ok(name, "qgpuctl list", 30000);
    cr_assert(strstr(listed, id), "%s", listed);

    /* stopped by systemd, it stops cleanly */
    free(in_box_ok(name, "systemctl stop qarbiter", 60000));
    char *result = in_box_ok(name, "systemctl show -p Result -p ActiveState qarbiter", 30000);
    cr_assert(strstr(result, "Result=success") && strstr(result, "ActiveState=inactive"), "%s",
              result);
    free(deb), free(name), free(root), free(dropin), free(conf), free(sim), free(ulimit),
        free(shown), free(modes), free(id), free(inode), free(inode_now), free(restarts),
        free(listed), free(pid), free(next), free(deb2), free(deb2_in), free(pid_now), free(result);
}
