/* test_container_image.c - what the preflight hook sees of an image: its C library
 * (glibc and its release, musl, none), the shim and /etc/ld.so.preload, in root file
 * systems made here, with paths that resolve inside the image only. */
#include "container/image.h"
#include "tests/harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* mkdir -p of root/rel. */
static void dirs(const char *root, const char *rel)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    for (char *s = p + strlen(root) + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            mkdir(p, 0755);
            *s = '/';
        }
    }
    mkdir(p, 0755);
}

static void copy(const char *from, const char *root, const char *rel)
{
    char to[1024];
    snprintf(to, sizeof to, "%s/%s", root, rel);
    const char *argv[] = {"cp", from, to, NULL};
    cr_assert_eq(qt_run(argv, NULL, 10000, NULL, NULL), 0, "cp %s %s", from, to);
}

static void write_file(const char *root, const char *rel, const char *text)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f, "%s", p);
    fputs(text, f);
    fclose(f);
}

/* A libc.so.6 of glibc `release` (e.g. "2.28"), built here: its banner and version
 * nodes up to GLIBC_<release>, as a real one has. */
static void fake_glibc(const char *root, const char *rel, const char *release)
{
    char *dir = qt_tmpdir(), src[600], map[600], out[1024];
    snprintf(src, sizeof src, "%s/libc.c", dir);
    snprintf(map, sizeof map, "%s/libc.map", dir);
    snprintf(out, sizeof out, "%s/%s", root, rel);
    FILE *f = fopen(src, "w");
    fprintf(f,
            "__attribute__((used)) const char banner[] = \"GNU C Library (fake) stable "
            "release version %s.\";\nint old_one(void) { return 1; }\nint new_one(void) "
            "{ return 2; }\n",
            release);
    fclose(f);
    f = fopen(map, "w");
    fprintf(f,
            "GLIBC_2.2.5 { global: old_one; local: *; };\nGLIBC_%s { global: new_one; } "
            "GLIBC_2.2.5;\n",
            release);
    fclose(f);
    char vs[700];
    snprintf(vs, sizeof vs, "-Wl,--version-script=%s", map);
    const char *argv[] = {"cc", "-shared", "-fPIC", "-nostdlib", "-Wl,-soname,libc.so.6",
                          vs,   "-o",      out,     src,         NULL};
    char *err = NULL;
    cr_assert_eq(qt_run(argv, NULL, 30000, NULL, &err), 0, "%s", err);
    free(err);
    free(dir);
}

/* A Debian-like image: this machine's libc, and the shim where the bundle is mounted. */
static char *debian_like(void)
{
    char *root = qt_tmpdir(), *shim = qt_build_path("libqshim.so");
    dirs(root, "usr/lib/x86_64-linux-gnu");
    dirs(root, "opt/qvgpu");
    dirs(root, "etc");
    char *lib = qt_strf("%s/lib", root);
    cr_assert_eq(symlink("usr/lib", lib), 0);
    free(lib);
    copy("/lib/x86_64-linux-gnu/libc.so.6", root, "usr/lib/x86_64-linux-gnu/libc.so.6");
    copy(shim, root, "opt/qvgpu/libqshim.so");
    free(shim);
    return root;
}

static int check(const char *root, bool preload, char err[QC_ERR_LEN])
{
    int fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    int rc = qc_image_check(fd, "/opt/qvgpu/libqshim.so", preload, err);
    close(fd);
    return rc;
}

Test(container_image, an_image_with_glibc_and_the_shim_passes)
{
    char *root = debian_like(), err[QC_ERR_LEN] = "";
    cr_assert_eq(check(root, false, err), 0, "%s", err);
    int fd = open(root, O_PATH | O_DIRECTORY);
    qc_libc_t libc;
    cr_assert_eq(qc_image_libc(fd, &libc, err), 0);
    cr_assert_eq(libc.kind, QC_LIBC_GLIBC);
    cr_assert_geq(libc.glibc, QC_GLIBC(2, 36, 0), "this machine's release, from the banner");
    cr_assert_str_eq(libc.path, "/lib/x86_64-linux-gnu/libc.so.6");
    close(fd);
    free(root);
}

Test(container_image, musl_no_libc_and_an_old_glibc_are_refused)
{
    char err[QC_ERR_LEN];
    char *musl = qt_tmpdir();
    dirs(musl, "lib");
    write_file(musl, "lib/ld-musl-x86_64.so.1", "");
    cr_assert_eq(check(musl, false, err), -EPERM);
    cr_assert_str_eq(err, "the image's C library is musl (/lib/ld-musl-x86_64.so.1): the shim "
                          "needs glibc 2.31 or newer");
    char *none = qt_tmpdir();
    cr_assert_eq(check(none, false, err), -EPERM);
    cr_assert(strstr(err, "no glibc"), "%s", err);
    char *old = debian_like();
    fake_glibc(old, "usr/lib/x86_64-linux-gnu/libc.so.6", "2.28");
    cr_assert_eq(check(old, false, err), -EPERM);
    cr_assert_str_eq(err, "the image's glibc is 2.28 (/lib/x86_64-linux-gnu/libc.so.6): the "
                          "shim needs 2.31 or newer");
    /* 2.31 itself defines no GLIBC_2.31: the banner tells the release. */
    fake_glibc(old, "usr/lib/x86_64-linux-gnu/libc.so.6", "2.31");
    cr_assert_eq(check(old, false, err), 0, "%s", err);
    free(musl);
    free(none);
    free(old);
}

Test(container_image, a_missing_or_empty_shim_is_refused)
{
    char *root = debian_like(), err[QC_ERR_LEN], shim[1024];
    snprintf(shim, sizeof shim, "%s/opt/qvgpu/libqshim.so", root);
    cr_assert_eq(truncate(shim, 0), 0);
    cr_assert_eq(check(root, false, err), -EPERM);
    cr_assert(strstr(err, "unusable") && strstr(err, "empty"), "%s", err);
    cr_assert_eq(unlink(shim), 0);
    cr_assert_eq(check(root, false, err), -EPERM);
    cr_assert(strstr(err, "not in the container at /opt/qvgpu/libqshim.so"), "%s", err);
    free(root);
}

Test(container_image, preload_mode_needs_ld_so_preload_to_name_the_shim)
{
    char *root = debian_like(), err[QC_ERR_LEN];
    cr_assert_eq(check(root, true, err), -EPERM);
    cr_assert(strstr(err, "/etc/ld.so.preload"), "%s", err);
    write_file(root, "etc/ld.so.preload", "/usr/lib/libother.so\n");
    cr_assert_eq(check(root, true, err), -EPERM);
    write_file(root, "etc/ld.so.preload", "/usr/lib/libother.so /opt/qvgpu/libqshim.so\n");
    cr_assert_eq(check(root, true, err), 0, "%s", err);
    free(root);
}

Test(container_image, absolute_symlinks_resolve_inside_the_image)
{
    /* The image's libc.so.6 is an absolute symlink to /elsewhere/libc.so.6: the image's
     * own (an old glibc), not a host path. */
    char *root = debian_like(), err[QC_ERR_LEN], link[1024];
    dirs(root, "elsewhere");
    fake_glibc(root, "elsewhere/libc.so.6", "2.28");
    snprintf(link, sizeof link, "%s/usr/lib/x86_64-linux-gnu/libc.so.6", root);
    cr_assert_eq(unlink(link), 0);
    cr_assert_eq(symlink("/elsewhere/libc.so.6", link), 0);
    cr_assert_eq(check(root, false, err), -EPERM);
    cr_assert(strstr(err, "glibc is 2.28"), "%s", err);
    /* And nothing leads out of it: /etc/passwd of the image, not of the host. */
    int fd = open(root, O_PATH | O_DIRECTORY);
    cr_assert_eq(qc_image_open(fd, "/../../../../etc/passwd"), -ENOENT);
    close(fd);
    free(root);
}
