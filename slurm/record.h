/* record.h - what the job prolog leaves for the job's steps on one node: the vGPU's
 * credentials, or why the job got none. One file per job, STATE_DIR/<jobid>, mode 0600
 * in a root-only directory (the secret is in it), written whole or not at all.
 * Single-threaded; no Slurm in here, so the tests use it as the plugin does. */
#ifndef QSL_RECORD_H
#define QSL_RECORD_H

#include "slurm/spec.h"

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qsl_record {
    char vgpu[32];              /* QVGPU_VGPU; "" when the job got no vGPU */
    char secret[64];            /* QVGPU_SECRET */
    char socket_dir[PATH_MAX];  /* QVGPU_SOCKET_DIR: the directory with tenant.sock */
    char gpu[96];               /* CUDA_VISIBLE_DEVICES: the GPU's UUID */
    char preload[2 * PATH_MAX]; /* LD_PRELOAD as qgpuctl env gives it: the shim last */
    char error[QSL_ERR_LEN];    /* when vgpu is "": why, one line for the user */
} qsl_record_t;

/* Fills rec's credentials from the output of `qgpuctl env ID` (export NAME='VALUE'
 * lines). Returns 0, or -EPROTO with err when a variable is missing or malformed. */
int qsl_record_from_env(const char *text, qsl_record_t *rec, char err[QSL_ERR_LEN]);

/* Writes rec as DIR/<job> (making DIR, mode 0700, if missing): a temporary file renamed
 * over the old one. Returns 0 or -errno with err. */
int qsl_record_write(const char *dir, uint32_t job, const qsl_record_t *rec, char err[QSL_ERR_LEN]);
/* Reads DIR/<job>. Returns 0, -ENOENT when there is none, or another -errno with err
 * (also when the file is not root's own or others may read it). */
int qsl_record_read(const char *dir, uint32_t job, qsl_record_t *rec, char err[QSL_ERR_LEN]);
/* Removes DIR/<job>; a missing file is not an error. Returns 0 or -errno. */
int qsl_record_remove(const char *dir, uint32_t job);

/* LD_PRELOAD for a task whose environment had user (may be NULL): what the user preloads
 * comes just before the shim, which stays last (as qgpuctl run does); libraries qgpuctl
 * put first (a sanitizer's runtime) stay first; nothing is listed twice. Returns 0, or
 * -ENAMETOOLONG when it does not fit in len bytes. */
int qsl_record_preload(const qsl_record_t *rec, const char *user, char *out, size_t len);

/* Replaces control characters (a newline from a program's output) by spaces, so that a
 * message stays one line. */
void qsl_one_line(char *s);

#endif
