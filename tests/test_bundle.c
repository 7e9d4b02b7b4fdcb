/* test_bundle.c - what goes into workloads loads in any glibc image: the shim and the
 * simulated driver need no glibc newer than the floor (2.31: Debian 11, Ubuntu 20.04,
 * RHEL 9) and no library an image may lack; the installed bundle is versioned and an
 * upgrade never rewrites a library a running process maps. */
#include "container/elfver.h"
#include "tests/harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLOOR QC_GLIBC(2, 31, 0)

/* Libraries every glibc system has (those below 2.34 hold what later moved into libc). */
static bool from_glibc(const char *lib)
{
    static const char *const ok[] = {
        "libc.so.6", "libdl.so.2",           "libpthread.so.0",      "librt.so.1",
        "libm.so.6", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (strcmp(lib, ok[i]) == 0)
            return true;
#ifdef QV_SAN
    /* A sanitizer build carries its runtimes; it is never put in an image. */
    if (strncmp(lib, "libasan.so", 10) == 0 || strncmp(lib, "libubsan.so", 11) == 0)
        return true;
#endif
    return false;
}

static void check_floor(const char *rel)
{
    char path[512], err[QC_ERR_LEN], v[32];
    snprintf(path, sizeof path, "%s/%s", qt_build(), rel);
    qc_elf_info_t info;
    cr_assert_eq(qc_elf_read(path, &info, err), 0, "%s", err);
    cr_assert_gt(info.glibc_needed, 0, "%s names no glibc version at all", rel);
    cr_assert_leq(info.glibc_needed, FLOOR, "%s needs GLIBC_%s, newer than the floor 2.31", rel,
                  qc_glibc_format(info.glibc_needed, v, sizeof v));
    for (size_t i = 0; i < info.nneeded; i++)
        cr_assert(from_glibc(info.needed[i]), "%s needs %s, which an image may not have", rel,
                  info.needed[i]);
}

Test(bundle, the_shim_needs_glibc_2_31_and_nothing_else)
{
    check_floor("libqshim.so");
}

Test(bundle, the_simulated_driver_loads_where_a_real_driver_does)
{
    check_floor("sim/libcuda.so.1");
    check_floor("sim/libnvidia-ml.so.1");
}

Test(bundle, reads_the_glibc_release_of_a_libc)
{
    char err[QC_ERR_LEN], v[32];
    qc_elf_info_t info;
    cr_assert_eq(qc_elf_read("/lib/x86_64-linux-gnu/libc.so.6", &info, err), 0, "%s", err);
    /* This machine's glibc, as its loader reports it. */
    char *out = NULL;
    const char *argv[] = {"/lib64/ld-linux-x86-64.so.2", "--version", NULL};
    cr_assert_eq(qt_run(argv, NULL, 5000, &out, NULL), 0);
    char want[32] = "";
    const char *rel = strstr(out, "release version ");
    cr_assert_not_null(rel, "%s", out);
    sscanf(rel + strlen("release version "), "%31[0-9.]", want);
    want[strcspn(want, "\0") - (want[strlen(want) - 1] == '.')] = '\0'; /* "2.36." */
    cr_assert_str_eq(qc_glibc_format(info.glibc_release, v, sizeof v), want);
    cr_assert_leq(info.glibc_defined, info.glibc_release);
    cr_assert_geq(info.glibc_defined, QC_GLIBC(2, 34, 0), "this machine's libc defines GLIBC_2.34");
    free(out);
}

Test(bundle, refuses_what_is_not_an_elf_object)
{
    char *dir = qt_tmpdir(), path[512], err[QC_ERR_LEN];
    snprintf(path, sizeof path, "%s/libc.so.6", dir);
    FILE *f = fopen(path, "w");
    fputs("\x7f"
          "ELF but not really",
          f);
    fclose(f);
    qc_elf_info_t info;
    cr_assert_eq(qc_elf_read(path, &info, err), -ENOEXEC);
    cr_assert(strstr(err, "libc.so.6"), "%s", err);
    f = fopen(path, "w");
    fclose(f);
    cr_assert_eq(qc_elf_read(path, &info, err), -ENOEXEC);
    cr_assert(strstr(err, "empty"), "%s", err);
    free(dir);
}

Test(bundle, parses_glibc_version_names)
{
    char v[32];
    cr_assert_eq(qc_glibc_parse("GLIBC_2.31"), QC_GLIBC(2, 31, 0));
    cr_assert_eq(qc_glibc_parse("GLIBC_2.2.5"), QC_GLIBC(2, 2, 5));
    cr_assert_eq(qc_glibc_parse("GLIBC_PRIVATE"), 0);
    cr_assert_eq(qc_glibc_parse("GLIBC_2."), 0);
    cr_assert_eq(qc_glibc_parse("GLIBCXX_3.4"), 0);
    cr_assert_str_eq(qc_glibc_format(QC_GLIBC(2, 2, 5), v, sizeof v), "2.2.5");
    cr_assert_str_eq(qc_glibc_format(QC_GLIBC(2, 36, 0), v, sizeof v), "2.36");
}

Test(bundle, an_application_with_its_own_libzmq_and_libstdcxx_keeps_them)
{
    qt_sim_private(NULL);
    qt_arbiter_t *arb = qt_arbiter_start(NULL, NULL);
    cr_assert_not_null(arb);
    char *id = NULL;
    cr_assert_eq(qt_ctl(arb, &id, NULL, "create", "--vm", "own", "--memory", "512MiB", "--share",
                        "10", NULL),
                 0);
    id[strcspn(id, "\n")] = '\0';
    char *prog = qt_build_path("tests/progs/own_zmq"), *out = NULL, *err = NULL;
    /* What the application gets without the shim... */
    const char *plain[] = {prog, NULL};
    cr_assert_eq(qt_run(plain, NULL, 10000, &out, NULL), 0);
    char want[64];
    cr_assert(sscanf(out, "zmq %63s", want) == 1, "%s", out);
    free(out);
    /* ...it gets with it too, and the quota holds. */
    char *ctl = qt_build_path("qgpuctl");
    const char *argv[] = {
        ctl, "--socket-dir", qt_arbiter_socket_dir(arb), "run", id, "--", prog, "256", "512", NULL};
    cr_assert_eq(qt_run(argv, NULL, 20000, &out, &err), 0, "%s", err);
    char line[128];
    snprintf(line, sizeof line, "zmq %s\nexchange 0\nalloc 256 0\nalloc 512 2\n", want);
    cr_assert_str_eq(out, line, "stderr: %s", err);
    free(out);
    free(err);
    free(prog);
    free(ctl);
    free(id);
    qt_arbiter_destroy(&arb);
}

/* Runs scripts/install-bundle.sh LIBDIR VERSION with the bundle's files of the build. */
static void install_bundle(const char *libdir, const char *version)
{
    char *shim = qt_build_path("bundle/libqshim.so"),
         *hook = qt_build_path("bundle/qvgpu-container-hook");
    char *pre = qt_build_path("bundle/ld.so.preload"), *script = NULL, *err = NULL;
    script = qt_strf("%s/../scripts/install-bundle.sh", qt_build());
    const char *argv[] = {script, libdir, version, shim, hook, pre, NULL};
    cr_assert_eq(qt_run(argv, NULL, 10000, NULL, &err), 0, "%s", err);
    free(err), free(script), free(shim), free(hook), free(pre);
}

Test(bundle, an_upgrade_never_rewrites_a_library_a_process_maps)
{
    char *lib = qt_tmpdir(), path[600], link[64] = "";
    install_bundle(lib, "0.1.0");
    snprintf(path, sizeof path, "%s/qvgpu/0.1.0/libqshim.so", lib);
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0);
    struct stat before;
    cr_assert_eq(fstat(fd, &before), 0);
    unsigned char *map = mmap(NULL, (size_t)before.st_size, PROT_READ, MAP_SHARED, fd, 0);
    cr_assert_neq(map, MAP_FAILED);
    close(fd);
    unsigned char *copy = malloc((size_t)before.st_size);
    memcpy(copy, map, (size_t)before.st_size);
    /* The same version again (a reinstall), then a new one. */
    install_bundle(lib, "0.1.0");
    install_bundle(lib, "0.2.0");
    struct stat after;
    cr_assert_eq(stat(path, &after), 0);
    cr_assert_neq(after.st_ino, before.st_ino, "a new file, not the old one rewritten");
    /* Truncated in place, reading the mapping would raise SIGBUS; rewritten, differ. */
    cr_assert_eq(memcmp(map, copy, (size_t)before.st_size), 0);
    snprintf(path, sizeof path, "%s/qvgpu/current", lib);
    cr_assert_gt(readlink(path, link, sizeof link - 1), 0);
    cr_assert_str_eq(link, "0.2.0");
    snprintf(path, sizeof path, "%s/qvgpu/0.1.0/qvgpu-container-hook", lib);
    cr_assert_eq(access(path, X_OK), 0, "the old version stays for the containers using it");
    snprintf(path, sizeof path, "%s/qvgpu/0.2.0/.libqshim.so.tmp", lib);
    cr_assert_eq(access(path, F_OK), -1, "no temporary file left");
    munmap(map, (size_t)before.st_size);
    free(copy);
    free(lib);
}
