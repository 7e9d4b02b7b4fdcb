/* cdi.h - the arbiter's CDI spec files, one per vGPU (docs/containers.md).
 *
 * With --tenant-dir, every vGPU has a spec in the CDI dir naming device
 * qvgpu.io/vgpu=<id>, with the edits that put a container into it: the environment
 * (QVGPU_*, CUDA_VISIBLE_DEVICES, LD_PRELOAD), read-only mounts of the tenant dir, the
 * vGPU's credentials file and the shim bundle (plus /etc/ld.so.preload in preload mode,
 * and the driver's libraries and device nodes when one is embedded), and the preflight
 * hook. Podman, Docker >= 25, containerd >= 1.7 and CRI-O read the dir at each
 * container start; the runtime wrapper applies the same file to runtimes without CDI.
 *
 * Files are written under a temporary name and renamed (mode 0600: they hold the
 * secret). The credentials files live in a directory only root may enter and are
 * readable once mounted. Single-threaded: the arbiter's loop. */
#ifndef QA_CDI_H
#define QA_CDI_H

#include "arbiter/host.h"
#include "proto/msg.h"

#include <stdbool.h>

#define QA_CDI_DEFAULT_DIR "/var/run/cdi"

typedef struct qa_cdi_opts {
    const char *dir;         /* --cdi-dir, or NULL for QA_CDI_DEFAULT_DIR */
    const char *bundle;      /* --cdi-bundle: the shim bundle on the host, or NULL (see new) */
    const char *driver_root; /* --cdi-driver-root: embed the driver found under it, or NULL */
    bool preload;            /* --cdi-preload: the shim through /etc/ld.so.preload */
} qa_cdi_opts_t;

typedef struct qa_cdi qa_cdi_t;

/* Prepares the specs of an arbiter whose tenant.sock is in tenant_dir (absolute), with
 * its private files under creds_dir (made 0700). The bundle is opts->bundle, else
 * <program dir>/../lib/qvgpu/<version> (installed), else <program dir>/bundle (the build
 * tree); it must hold libqshim.so and qvgpu-container-hook. A driver root must hold a
 * libcuda.so.1. Makes the CDI dir and the empty file the credentials are mounted over.
 * Returns NULL with one line in err. */
qa_cdi_t *qa_cdi_new(const qa_cdi_opts_t *opts, const char *tenant_dir, const char *creds_dir,
                     char err[QP_ERR_LEN]);
/* Frees *self_p (the files stay) and sets it to NULL; NULL is a no-op. */
void qa_cdi_destroy(qa_cdi_t **self_p);

/* The spec of v, whose GPU has gpu_uuid, as JSON text (caller frees); NULL when out of
 * memory. */
char *qa_cdi_spec(const qa_cdi_t *self, const qa_vgpu_t *v, const char *gpu_uuid);
/* Writes v's spec and credentials file. Returns 0 or a negative errno with err. */
int qa_cdi_put(qa_cdi_t *self, const qa_vgpu_t *v, const char *gpu_uuid, char err[QP_ERR_LEN]);
/* Removes the spec and credentials of vGPU id (absent ones are fine). Returns 0 or a
 * negative errno with err. */
int qa_cdi_remove(qa_cdi_t *self, const char *id, char err[QP_ERR_LEN]);
/* Writes every vGPU's files and removes those of vGPUs the host no longer has. Returns 0
 * with the counts, or the first failure's negative errno with err (going on with the
 * others). */
int qa_cdi_sync(qa_cdi_t *self, qa_host_t *host, unsigned *written, unsigned *removed,
                char err[QP_ERR_LEN]);
/* The `--device` names a container of v asks for: ours, then (unless a driver is
 * embedded) NVIDIA's CDI device of v's GPU. Returns how many (1 or 2). */
int qa_cdi_devices(const qa_cdi_t *self, const qa_vgpu_t *v, const char *gpu_uuid,
                   char names[2][160]);
/* The path of vGPU id's spec file, into out (PATH_MAX bytes); returns out. */
char *qa_cdi_path(const qa_cdi_t *self, const char *id, char *out);
/* The CDI dir and the bundle dir in use (absolute), borrowed for self's life. */
const char *qa_cdi_dir(const qa_cdi_t *self);
const char *qa_cdi_bundle(const qa_cdi_t *self);

#endif
