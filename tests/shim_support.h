/* shim_support.h - running tests/progs/shim_work under the shim, and reading what it says.
 *
 * Every helper here runs children through tests/harness.h, on the calling test's private
 * simulated host (call qt_sim_private() first). Not thread-safe: the test's main thread. */
#ifndef QV_TEST_SHIM_SUPPORT_H
#define QV_TEST_SHIM_SUPPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "sim/config.h"
#include "tests/harness.h"

#define QTS_MAX_ENV 24
#define QTS_MIB (1024ull * 1024ull)
#define QTS_GIB (1024ull * QTS_MIB)
/* What each workload's CUDA context costs its device (QSIM_CONTEXT_MEMORY is left at its
 * default). The arbiter charges it to the vGPU's quota, as the device holds it: inside a
 * vGPU a process can allocate the quota less the contexts of the vGPU's processes. */
#define QTS_CTX QSIM_DEFAULT_CONTEXT_MEMORY

/* An environment for shim_work: "NAME=VALUE" / bare "NAME" entries, NULL-terminated. */
typedef struct qts_env {
    const char *v[QTS_MAX_ENV + 1]; /* borrowed from the strings below or static ones */
    char own[QTS_MAX_ENV][512];     /* storage for entries built here */
    int n;                          /* entries used */
} qts_env_t;

/* Without the shim: no preload, no vGPU. */
void qts_env_plain(qts_env_t *e);
/* The shim preloaded, no vGPU: pass-through. */
void qts_env_passthrough(qts_env_t *e);
/* The shim preloaded in vGPU vgpu with secret, arbiter in socket_dir, and
 * CUDA_VISIBLE_DEVICES=gpu_uuid (NULL: unset), as `qgpuctl run` sets them. */
void qts_env_vgpu(qts_env_t *e, const char *socket_dir, const char *vgpu, const char *secret,
                  const char *gpu_uuid);
/* The shim preloaded in vGPU vgpu on the private host's first GPU, its socket dir a new
 * empty one: no arbiter serves it, so the process may allocate nothing and nobody grants
 * leases. Returns how many GPUs the host has. */
int qts_env_unreachable(qts_env_t *e, const char *vgpu);
/* Adds "NAME=VALUE" (or a bare "NAME" to unset) to e. */
void qts_env_add(qts_env_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Starts shim_work with the NULL-terminated commands (tests/progs/shim_work.c). */
qt_proc_t *qts_start(const qts_env_t *e, ...) __attribute__((sentinel));
/* Runs shim_work to completion (30 s at most); *out and *err (if non-NULL) receive its
 * stdout and stderr (caller frees). Returns its exit status as qt_run. */
int qts_run(const qts_env_t *e, char **out, char **err, ...) __attribute__((sentinel));
/* The same with the commands in an array. */
int qts_runv(const qts_env_t *e, char **out, char **err, const char *const cmds[]);

/* The first line of text starting with prefix (which should end in a space), copied into
 * line (cap bytes); false when there is none. */
bool qts_line(const char *text, const char *prefix, char *line, size_t cap);
/* The nth (0-based) whitespace-separated field after prefix in the first line starting
 * with prefix, as a number; fails the test when absent. */
long long qts_field(const char *text, const char *prefix, int n);
/* The same in the k-th (0-based) line starting with prefix. */
long long qts_field_at(const char *text, const char *prefix, int k, int n);
/* Number of lines of text starting with prefix. */
int qts_count_lines(const char *text, const char *prefix);
/* Waits up to timeout_ms until p's stdout has a line starting with prefix. */
bool qts_wait_line(qt_proc_t *p, const char *prefix, int timeout_ms);
/* Waits up to timeout_ms until p's stdout has count lines starting with prefix. */
bool qts_wait_lines(qt_proc_t *p, const char *prefix, int count, int timeout_ms);

/* The UUIDs of the private host's GPUs in ordinal order, as the driver names them
 * (asked without the shim). Returns how many (at most max); each uuids[i] holds 64. */
int qts_gpu_uuids(char uuids[][64], int max);

/* ---- with a real arbiter ------------------------------------------------------------- */

/* A vGPU made with `qgpuctl create`, and the credentials `qgpuctl env` gives for it. */
typedef struct qts_vgpu {
    char id[64];
    char secret[128];
    char gpu_uuid[96];
} qts_vgpu_t;

/* Creates a vGPU with the given qgpuctl create arguments (NULL-terminated, after
 * "create"), e.g. "--vm", "a", "--profile", "Q1", NULL; fails the test on error. */
void qts_vgpu_create(qt_arbiter_t *arb, qts_vgpu_t *v, ...) __attribute__((sentinel));
/* The environment `qgpuctl run` gives v's workloads (shim preloaded). */
void qts_env_of(qts_env_t *e, const qt_arbiter_t *arb, const qts_vgpu_t *v);
/* `qgpuctl --json info ID`'s memory_used, in bytes; -1 when it cannot be read. */
long long qts_vgpu_used(qt_arbiter_t *arb, const qts_vgpu_t *v);
/* Waits up to ms until the arbiter reports v's use as want (the shim reports it in
 * heartbeats, every 500 ms); false when it never did. */
bool qts_used_becomes(qt_arbiter_t *arb, const qts_vgpu_t *v, long long want, int ms);
/* A private simulated host and a qarbiter on it (default config) with one vGPU of profile
 * (VM "vm-a") in *v; fails the test when either cannot be made. */
qt_arbiter_t *qts_arbiter_with(qts_vgpu_t *v, const char *profile);

#endif
