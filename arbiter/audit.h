/* audit.h - what the vGPUs' processes really hold on the devices, and who escapes them.
 *
 * The shim enforces quotas from inside the workload and sees only the allocations it
 * intercepts; the host sees more through NVML: every process's device memory, the
 * driver's own memory for its contexts included, and processes that run without the
 * shim. After each NVML round the audit:
 *  - matches every process NVML lists on a GPU with the tenant sessions, by the pid the
 *    session's socket showed (SO_PEERCRED: the host pid, where NVML's come from);
 *  - for each session, learns what the driver holds for it beyond its allocations
 *    (NVML's figure minus what it reported using: the least of its last three rounds,
 *    which a report lagging behind an allocation does not inflate) and hands that over
 *    to be charged against its vGPU's quota (cfg->charge_real);
 *  - calls a process on a GPU that holds no session of a vGPU placed there *unmanaged*,
 *    attributes it to a vGPU when it is a tenant of that vGPU elsewhere or carries that
 *    vGPU's credentials (id and secret) in its environment, and charges what it holds to
 *    that vGPU;
 *  - finds vGPUs whose processes together hold more than the quota;
 *  - reports a finding (log, qgpuctl stats) once it has lasted cfg->audit_grace_ms, and
 *    acts on it as configured (cfg->audit_unmanaged, cfg->audit_over_quota).
 *
 * Pure: no I/O and no clock of its own (now comes in); looking at a process and killing
 * it are callbacks, so every rule is tested on made-up rounds. Single-threaded: the
 * loop thread. */
#ifndef QA_AUDIT_H
#define QA_AUDIT_H

#include "arbiter/config.h"
#include "arbiter/host.h"
#include "arbiter/log.h"
#include "arbiter/nvml.h"
#include "arbiter/procfs.h"
#include "proto/records.h"

#include <stddef.h>
#include <stdint.h>

typedef struct qa_audit qa_audit_t;

/* What the audit keeps of a tenant session between rounds: a session (tenant.h) holds
 * one, written by audit.c only. */
typedef struct qa_audit_seen {
    uint64_t real;   /* bytes NVML lists for its process on its vGPU's GPU; 0 if none */
    uint64_t gap[3]; /* real - used in the last rounds that listed it */
    unsigned ngap;   /* entries in gap (a ring) */
} qa_audit_seen_t;

typedef struct qa_audit_ops {
    /* Describes host pid (see qa_procfs_inspect): 0, -ENOENT, -EACCES. */
    int (*inspect)(void *arg, unsigned pid, qa_proc_info_t *out);
    /* Kills host pid if it is still the process that started at start (qa_procfs_kill). */
    int (*kill)(void *arg, unsigned pid, uint64_t start);
    /* What session p is charged beyond its allocations is now bytes. */
    void (*charge)(void *arg, struct qa_session *s, uint64_t bytes);
} qa_audit_ops_t;

/* An audit ruled by cfg, logging to log (both borrowed), acting through ops (copied) on
 * arg. NULL when out of memory. */
qa_audit_t *qa_audit_new(const qa_config_t *cfg, const qa_log_t *log, const qa_audit_ops_t *ops,
                         void *arg);
/* Frees *self_p and sets it to NULL; NULL is a no-op. */
void qa_audit_destroy(qa_audit_t **self_p);

/* One NVML round: samples[i] is GPU i of host (n of them), taken at about now
 * (CLOCK_MONOTONIC ns). GPUs whose process list could not be read (mem_ok false) keep
 * their previous figures. Updates the vGPUs' and GPUs' real-use figures, the sessions'
 * charges (ops->charge), the findings, and acts. */
void qa_audit_round(qa_audit_t *self, qa_host_t *host, const qa_gpu_sample_t *samples, size_t n,
                    uint64_t now);

/* The findings of the last round, reported ones only (borrowed until the next round):
 * *count entries. */
const qp_finding_t *qa_audit_findings(const qa_audit_t *self, size_t *count);
/* Processes killed since the start. */
uint64_t qa_audit_kills(const qa_audit_t *self);

#endif
