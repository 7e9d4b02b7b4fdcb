/* config.h - the arbiter's settings: defaults, overridden by an INI file (--config).
 *
 *   [arbiter]
 *   placement = spread | pack      where a vGPU goes when no GPU is named
 *   oversub_memory = 1.0           per GPU, quotas may sum to memory x this
 *   oversub_share = 1.0            per GPU, shares may sum to 100% x this
 *   util_weight = 0.5              how much measured utilisation weighs in placement
 *   log_level = info               error | warn | info | debug
 *   heartbeat_timeout_ms = 1500    a silent tenant is dropped after this (>= 1000: the
 *                                  shim heartbeats every 500 ms)
 *   reclaim_timeout_ms = 500       a mem_reserve waits this long for reclaimed memory
 *                                  (with reconnect_grace_ms at most QA_REPLY_BUDGET_MS)
 *   reconnect_grace_ms = 800       after the start, mem_reserve requests are held this
 *                                  long while the previous arbiter's tenants reconnect
 *                                  and re-report what they hold (0: no grace)
 *   sched_window_ms = 200          compute: leases of n waiting vGPUs last at most this / n
 *   quantum_min_ms = 2             compute: shortest lease (and bucket needed for a grant)
 *   quantum_max_ms = 50            compute: longest lease (at most sched_window_ms)
 *   lease_grace_ms = 1000          compute: a lease not returned this late is taken back
 *   burst_ms = 2                   compute: a vGPU well below its share that asks while
 *                                  another holds the GPU runs a lease this long beside it
 *                                  at once (0: never; at most quantum_max_ms)
 *   burst_below_pct = 75           compute: "well below": its use over the last window
 *                                  under this percent of its share (1 .. 100)
 *   preempt_after_ms = 2           compute: a holder over its share runs at least this
 *                                  long before a waiting vGPU below its share takes the
 *                                  GPU from it (0: never)
 *   max_tenant_connections = 4096  tenant.sock connections kept open (at most half the
 *                                  arbiter's RLIMIT_NOFILE): more are closed at once
 *   max_pending_connections = 1024 of them, those without a session yet (at most a quarter
 *                                  of max_tenant_connections: the rest is for sessions)
 *   max_pending_per_uid = 128      of those, from one uid (SO_PEERCRED; 0: no limit;
 *                                  root and the arbiter's own user are not limited)
 *   hello_timeout_ms = 3000        a connection without a session this long is closed
 *
 *   [audit]                        what the host sees through NVML (docs/arbiter.md)
 *   unmanaged = report             GPU processes that are no vGPU's tenants (no shim, or
 *                                  another GPU than their vGPU's): report | kill | ignore
 *   over_quota = report            vGPUs whose processes really hold more than their
 *                                  quota on the device: report | kill
 *   grace_ms = 2000                a finding must last this long before it is reported
 *                                  or acted on (500 .. 600000)
 *   charge = real                  what counts against a quota: real (allocations plus
 *                                  the driver's memory of each process and the memory of
 *                                  unmanaged processes with the vGPU's credentials, as
 *                                  NVML reports them) | allocated (allocations only)
 *
 *   [balance]                      moving vGPUs off overloaded GPUs (docs/migration.md)
 *   interval_s = 60                how often, in seconds (0: never by itself)
 *   high = 80                      a GPU above this percent (utilisation averaged over the
 *                                  interval, or memory in use) is overloaded
 *   low = 40                       one below it can take a vGPU
 *   memory = on                    memory in use counts as load: on | off
 *   cooldown_intervals = 3         a vGPU that moved stays this many intervals
 *
 *   [profile NAME]                 a custom profile, used as --profile NAME
 *   memory = 16GiB
 *   share = 60
 *   limit = 0                      optional
 *
 * A key set twice, a profile defined in two sections, a file that is not a regular one
 * and settings that contradict each other are refused.
 * Pure: parsing fills a struct, errors come back as one line naming file and line. */
#ifndef QA_CONFIG_H
#define QA_CONFIG_H

#include "arbiter/log.h"
#include "proto/msg.h"
#include "proto/records.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QA_MAX_PROFILES 64
/* The file qarbiter reads when no --config is given, if it exists. */
#define QA_CONFIG_DEFAULT "/etc/qvgpu/qarbiter.conf"
/* The longest the arbiter may hold a tenant's memory request before answering: the shim
 * waits 1500 ms for any reply (PROTOCOL.md "Liveness"), less 100 ms for the round trip. */
#define QA_REPLY_BUDGET_MS 1400

typedef struct qa_profile {
    char name[QP_PROFILE_LEN];
    uint64_t memory_mb; /* quota */
    unsigned share;     /* percent, 1..100 */
    unsigned limit;     /* percent cap, 0 = none */
} qa_profile_t;

typedef enum qa_policy {
    QA_SPREAD, /* the least loaded GPU that fits */
    QA_PACK,   /* the most loaded GPU that still fits */
} qa_policy_t;

/* What the audit does about a finding. */
typedef enum qa_action {
    QA_IGNORE, /* nothing, not even a report */
    QA_REPORT, /* log it and show it in `qgpuctl stats` */
    QA_KILL,   /* report it and SIGKILL the process */
} qa_action_t;

typedef struct qa_config {
    qa_policy_t placement;
    double oversub_memory; /* ratio, > 0 */
    double oversub_share;  /* ratio, > 0 */
    double util_weight;    /* 0 ignores utilisation */
    qa_level_t log_level;
    unsigned heartbeat_timeout_ms;
    unsigned reclaim_timeout_ms;
    unsigned reconnect_grace_ms;     /* mem_reserve held this long after the start */
    unsigned sched_window_ms;        /* compute scheduling window (docs/compute.md) */
    unsigned quantum_min_ms;         /* shortest lease, <= quantum_max_ms */
    unsigned quantum_max_ms;         /* longest lease */
    unsigned lease_grace_ms;         /* a holder this late past its lease's end is hung */
    unsigned burst_ms;               /* a burst beside the holder; 0: none (docs/compute.md) */
    unsigned burst_below_pct;        /* who may burst: use under this percent of its share */
    unsigned preempt_after_ms;       /* a holder's minimum run before preemption; 0: none */
    unsigned max_tenant_connections; /* tenant.sock connections kept open */
    unsigned max_pending_connections; /* of them, without a session (docs/arbiter.md) */
    unsigned max_pending_per_uid;     /* of those, from one uid; 0: no limit */
    unsigned hello_timeout_ms;        /* a connection without a session is closed after */
    qa_action_t audit_unmanaged;     /* [audit] unmanaged: processes outside the vGPUs */
    qa_action_t audit_over_quota;    /* [audit] over_quota: vGPUs past their quota */
    unsigned audit_grace_ms;         /* [audit] grace_ms: how long before acting */
    bool charge_real;                /* [audit] charge = real (true) or allocated */
    unsigned balance_interval_s;     /* [balance] interval_s: 0 = no automatic balancing */
    unsigned balance_high;           /* [balance] high, percent */
    unsigned balance_low;            /* [balance] low, percent (< high) */
    bool balance_memory;             /* [balance] memory = on */
    unsigned balance_cooldown;       /* [balance] cooldown_intervals */
    qa_profile_t profiles[QA_MAX_PROFILES]; /* Q1, Q2, Q4, Q8, then the file's */
    size_t nprofiles;                       /* entries in profiles */
} qa_config_t;

/* The defaults: spread, no oversubscription, the four profiles of CONTRACT.md. */
void qa_config_defaults(qa_config_t *cfg);
/* Reads path over cfg (which holds defaults). Returns 0, or -EINVAL with err as
 * "PATH:LINE: problem" (or "PATH: problem" when it cannot be read). */
int qa_config_load(qa_config_t *cfg, const char *path, char err[QP_ERR_LEN]);
/* Writes cfg as a configuration file that reads back as cfg: [arbiter], [audit] and
 * [balance] with
 * every key, each after a comment saying what it does, then the custom profiles. What
 * `qarbiter --print-config` prints, and what the packaged /etc/qvgpu/qarbiter.conf is made
 * from (scripts/gen-conffile.sh). Returns 0 or -EIO when out cannot be written. */
int qa_config_write(const qa_config_t *cfg, FILE *out);
/* The profile called name, or NULL. Borrowed from cfg. */
const qa_profile_t *qa_config_profile(const qa_config_t *cfg, const char *name);

#endif
