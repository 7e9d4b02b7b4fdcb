/* image.c - an image's C library and files, seen from outside (see image.h). */
#include "container/image.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int qc_image_open(int rootfd, const char *path)
{
    struct open_how how = {
        .flags = O_RDONLY | O_CLOEXEC | O_NOCTTY,
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    while (*path == '/')
        path++;
    long fd = syscall(SYS_openat2, rootfd, *path ? path : ".", &how, sizeof how);
    return fd < 0 ? -errno : (int)fd;
}

/* Where distributions keep libc.so.6, and musl its loader. */
static const char *const glibc_paths[] = {
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/lib64/libc.so.6",
    "/usr/lib64/libc.so.6",
    "/lib/aarch64-linux-gnu/libc.so.6",
    "/usr/lib/aarch64-linux-gnu/libc.so.6",
    "/lib/libc.so.6",
    "/usr/lib/libc.so.6",
};
static const char *const musl_paths[] = {
    "/lib/ld-musl-x86_64.so.1",
    "/lib/ld-musl-aarch64.so.1",
    "/usr/lib/ld-musl-x86_64.so.1",
    "/usr/lib/ld-musl-aarch64.so.1",
};

int qc_image_libc(int rootfd, qc_libc_t *out, char err[QC_ERR_LEN])
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < sizeof glibc_paths / sizeof *glibc_paths; i++) {
        int fd = qc_image_open(rootfd, glibc_paths[i]);
        if (fd < 0)
            continue;
        qc_elf_info_t info;
        int rc = qc_elf_read_fd(fd, glibc_paths[i], &info, err);
        close(fd);
        if (rc < 0)
            return rc;
        out->kind = QC_LIBC_GLIBC;
        /* The banner names the release; the newest version defined is a lower bound
         * (2.31 added no symbol: its newest is GLIBC_2.30). */
        out->glibc = info.glibc_release ? info.glibc_release : info.glibc_defined;
        snprintf(out->path, sizeof out->path, "%s", glibc_paths[i]);
        return 0;
    }
    for (size_t i = 0; i < sizeof musl_paths / sizeof *musl_paths; i++) {
        int fd = qc_image_open(rootfd, musl_paths[i]);
        if (fd < 0)
            continue;
        close(fd);
        out->kind = QC_LIBC_MUSL;
        snprintf(out->path, sizeof out->path, "%s", musl_paths[i]);
        return 0;
    }
    return 0;
}

/* Whether the file open on fd names shim on a line of its own (ld.so.preload separates
 * entries by white space or colons). */
static bool lists(int fd, const char *shim)
{
    char buf[8192];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    size_t len = strlen(shim);
    for (char *p = buf; (p = strstr(p, shim)); p += len) {
        bool start = p == buf || strchr(" \t\n:", p[-1]);
        bool end = p[len] == '\0' || strchr(" \t\n:", p[len]);
        if (start && end)
            return true;
    }
    return false;
}

int qc_image_check(int rootfd, const char *shim_path, bool preload, char err[QC_ERR_LEN])
{
    char v[32], need[32], why[QC_ERR_LEN];
    qc_libc_t libc;
    int rc = qc_image_libc(rootfd, &libc, why);
    if (rc < 0) {
        snprintf(err, QC_ERR_LEN, "cannot read the image's C library: %.200s", why);
        return -EPERM;
    }
    if (libc.kind == QC_LIBC_NONE) {
        snprintf(err, QC_ERR_LEN,
                 "the image has no glibc (a static or scratch image): the shim cannot load, so "
                 "nothing would enforce the vGPU");
        return -EPERM;
    }
    if (libc.kind == QC_LIBC_MUSL) {
        snprintf(err, QC_ERR_LEN,
                 "the image's C library is musl (%s): the shim needs glibc %s or newer", libc.path,
                 qc_glibc_format(QC_GLIBC_FLOOR, need, sizeof need));
        return -EPERM;
    }
    int fd = qc_image_open(rootfd, shim_path);
    if (fd < 0) {
        snprintf(err, QC_ERR_LEN,
                 "the shim is not in the container at %s (%s): is the bundle "
                 "mounted?",
                 shim_path, strerror(-fd));
        return -EPERM;
    }
    qc_elf_info_t shim;
    rc = qc_elf_read_fd(fd, shim_path, &shim, why);
    close(fd);
    if (rc < 0) {
        snprintf(err, QC_ERR_LEN, "the shim in the container is unusable: %.200s", why);
        return -EPERM;
    }
    unsigned floor = shim.glibc_needed > QC_GLIBC_FLOOR ? shim.glibc_needed : QC_GLIBC_FLOOR;
    if (libc.glibc < floor) {
        snprintf(err, QC_ERR_LEN, "the image's glibc is %s (%s): the shim needs %s or newer",
                 libc.glibc ? qc_glibc_format(libc.glibc, v, sizeof v) : "unknown", libc.path,
                 qc_glibc_format(floor, need, sizeof need));
        return -EPERM;
    }
    if (preload) {
        fd = qc_image_open(rootfd, "/etc/ld.so.preload");
        bool ok = fd >= 0 && lists(fd, shim_path);
        if (fd >= 0)
            close(fd);
        if (!ok) {
            snprintf(err, QC_ERR_LEN,
                     "/etc/ld.so.preload in the container does not load %s: "
                     "is the bundle's ld.so.preload mounted over it?",
                     shim_path);
            return -EPERM;
        }
    }
    return 0;
}
