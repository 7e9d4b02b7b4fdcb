/* oci.h - an OCI runtime config (a bundle's config.json) and the CDI edits that put a
 * container into a vGPU: what the runtime wrapper does for runtimes without CDI, the
 * same edits podman makes from the same spec file (docs/containers.md).
 *
 * Edits follow CDI's rules: an environment variable replaces one of the same name, a
 * mount replaces one with the same destination, hooks and device nodes are added. The
 * config and the spec are untrusted input: every field's type is checked. No state; any
 * thread. */
#ifndef QC_OCI_H
#define QC_OCI_H

#include "container/elfver.h"

#include <jansson.h>

/* The value of variable name in the config's process.env, or NULL; borrowed from config. */
const char *qc_oci_env(const json_t *config, const char *name);
/* The vGPU the config asks for: QVGPU_VGPU in process.env, else the annotation
 * qvgpu.io/vgpu; NULL for none. Borrowed from config. */
const char *qc_oci_vgpu(const json_t *config);
/* The root file system's path (root.path), made absolute against bundle, into out (cap
 * bytes). Returns 0 or -EINVAL when the config has none. */
int qc_oci_root(const json_t *config, const char *bundle, char *out, size_t cap);

/* Applies to config the containerEdits of the spec and of its device named name (env,
 * mounts, hooks, deviceNodes; the node's major and minor read from the host with
 * stat). Returns 0, -ENOENT when the spec has no such device, or -EINVAL when the spec
 * or the config is malformed or a device node cannot be read; err says which. */
int qc_oci_apply(json_t *config, const json_t *spec, const char *name, char err[QC_ERR_LEN]);

/* Reads a JSON file of at most 16 MiB. NULL with err when it cannot be read or parsed. */
json_t *qc_json_load(const char *path, char err[QC_ERR_LEN]);
/* Writes doc to path through a temporary file in the same directory and a rename, with
 * mode. Returns 0 or a negative errno with err. */
int qc_json_save(const json_t *doc, const char *path, int mode, char err[QC_ERR_LEN]);

#endif
