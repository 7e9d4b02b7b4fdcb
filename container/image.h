/* image.h - what a container's root file system holds, looked at from outside without
 * running anything from it: its C library, and files such as the shim.
 *
 * Paths resolve inside the root (openat2 RESOLVE_IN_ROOT: an absolute symlink in the
 * image points into the image, and nothing escapes to the host), so a hostile image can
 * make us read nothing but its own files. Needs Linux 5.6. No state; any thread. */
#ifndef QC_IMAGE_H
#define QC_IMAGE_H

#include "container/elfver.h"

#include <stdbool.h>
#include <stddef.h>

/* The oldest glibc the bundle is built and tested for (Makefile's GLIBC_FLOOR). */
#define QC_GLIBC_FLOOR QC_GLIBC(2, 31, 0)

typedef enum qc_libc_kind {
    QC_LIBC_NONE = 0, /* no C library found: a static or "scratch" image */
    QC_LIBC_GLIBC,
    QC_LIBC_MUSL,
} qc_libc_kind_t;

typedef struct qc_libc {
    qc_libc_kind_t kind;
    unsigned glibc; /* QC_GLIBC(...) of a glibc, from its libc.so.6's versions */
    char path[128]; /* where it was found, inside the image ("/lib/x86_64-linux-gnu/...") */
} qc_libc_t;

/* Opens path (absolute or not, taken inside the root) read-only under the root dir
 * rootfd. Returns the fd (caller closes) or a negative errno. */
int qc_image_open(int rootfd, const char *path);
/* Finds the image's C library under rootfd. Returns 0 (kind QC_LIBC_NONE when there is
 * none), or a negative errno with err when a libc.so.6 is there but unreadable. */
int qc_image_libc(int rootfd, qc_libc_t *out, char err[QC_ERR_LEN]);

/* Whether a workload of this image loads the shim at shim_path (inside the image) and
 * is confined: a glibc at or above the floor and the shim's own needs, and the shim a
 * non-empty ELF object there; with preload, /etc/ld.so.preload names it. Returns 0, or
 * -EPERM with the reason as one line in err (another negative errno when the image
 * cannot be read at all, err saying why). */
int qc_image_check(int rootfd, const char *shim_path, bool preload, char err[QC_ERR_LEN]);

#endif
