/* records.h - the maps nested in messages (PROTOCOL.md): LIMITS (a tenant's view of its
 * vGPU), INFO (an administrator's view of a vGPU), GPU (one physical GPU), the totals
 * of `stats` and its FINDINGs, as plain structs with a writer and a checked reader each.
 *
 * Readers copy strings into the struct, so a record outlives its message; they fail
 * with -EPROTO (err naming the field) when a field is missing, mistyped or too long;
 * fields marked optional may be missing (an older peer) and read as 0. Fields the reader
 * does not know are ignored. Pure functions, no state. */
#ifndef QP_RECORDS_H
#define QP_RECORDS_H

#include "proto/msg.h"

#include <stdint.h>

#define QP_ID_LEN 32      /* a vGPU id with its NUL */
#define QP_SECRET_LEN 33  /* 128 bits in hex with its NUL */
#define QP_VM_LEN 129     /* a VM name with its NUL */
#define QP_PROFILE_LEN 33 /* a profile name with its NUL */
#define QP_UUID_LEN 96    /* as NVML_DEVICE_UUID_V2_BUFFER_SIZE */
#define QP_GPU_NAME_LEN 96

/* LIMITS: what a tenant is allowed. */
typedef struct qp_limits {
    char id[QP_ID_LEN];         /* the vGPU */
    int gpu;                    /* index of the physical GPU */
    char gpu_uuid[QP_UUID_LEN]; /* its UUID, as CUDA_VISIBLE_DEVICES names it */
    uint64_t memory_quota;      /* bytes */
    unsigned share;             /* percent of the GPU's time guaranteed */
    unsigned limit;             /* percent cap; 0 = none */
} qp_limits_t;

/* INFO: a vGPU as the administrator sees it. */
typedef struct qp_info {
    char id[QP_ID_LEN];           /* "vg-N" */
    char vm[QP_VM_LEN];           /* what it was made for */
    int gpu;                      /* index of its physical GPU */
    char gpu_uuid[QP_UUID_LEN];   /* that GPU's UUID */
    char profile[QP_PROFILE_LEN]; /* "Q2", a configured profile, or "custom" */
    uint64_t memory_mb;           /* quota */
    uint64_t cuda_cores;          /* share x the GPU's CUDA cores */
    unsigned share;               /* percent */
    unsigned limit;               /* percent, 0 = none */
    double util;                  /* percent of the GPU used by its processes, recent */
    uint64_t memory_used;         /* bytes its processes hold */
    uint64_t memory_reserved;     /* bytes reserved to its processes (>= used, <= quota) */
    unsigned procs;               /* live processes */
    int64_t created;              /* unix seconds */
    /* What the host sees through NVML (optional on the wire: 0 from older arbiters). */
    uint64_t memory_real;      /* bytes its processes really hold on the device: their
                                * allocations, the driver's memory for their contexts,
                                * and its unmanaged processes */
    uint64_t memory_unmanaged; /* of which processes with its credentials but no session */
    unsigned unmanaged_procs;  /* those processes */
} qp_info_t;

/* GPU: one physical GPU. */
typedef struct qp_gpu {
    int index;                   /* NVML's */
    char uuid[QP_UUID_LEN];      /* "GPU-..." */
    char name[QP_GPU_NAME_LEN];  /* the product name */
    uint64_t memory_total_mb;    /* physical memory */
    uint64_t memory_used_mb;     /* as NVML reports it: every process on the GPU */
    uint64_t memory_reserved_mb; /* sum of its vGPUs' quotas */
    double memory_util;          /* percent of memory in use (used / total) */
    double util;                 /* compute percent, EWMA */
    unsigned sms;                /* streaming multiprocessors */
    unsigned cuda_cores;         /* in all */
    unsigned share_reserved;     /* sum of its vGPUs' shares, percent */
    unsigned vgpus;              /* count */
    double leased;               /* percent of time under compute lease, EWMA */
    uint64_t hung;               /* compute leases taken back from hung holders */
    uint64_t memory_unmanaged_mb; /* held by processes that are no tenant of its vGPUs
                                   * (optional on the wire) */
    unsigned unmanaged_procs;     /* those processes (optional on the wire) */
} qp_gpu_t;

/* The totals of a `stats` reply. */
typedef struct qp_totals {
    unsigned vgpus_total;        /* vGPUs on the host */
    unsigned vgpus_active;       /* with at least one live process */
    uint64_t memory_reserved_mb; /* sum of all quotas */
    uint64_t memory_used_mb;     /* held by vGPUs' processes */
    uint64_t memory_real_mb;     /* what vGPUs' processes really hold (optional on the wire) */
    uint64_t kills;              /* processes the audit killed since the start (optional) */
} qp_totals_t;

#define QP_MAX_FINDINGS 1000 /* findings a `stats` reply lists at most */
#define QP_FINDING_KIND_LEN 16
#define QP_PROC_NAME_LEN 17 /* a command name (TASK_COMM_LEN) with its NUL */
#define QP_ACTION_LEN 16
#define QP_DETAIL_LEN 200

/* FINDING: what the audit found outside the rules (in a `stats` reply). */
typedef struct qp_finding {
    char kind[QP_FINDING_KIND_LEN]; /* "unmanaged" (a process) or "over_quota" (a vGPU) */
    int gpu;                        /* GPU index */
    char vgpu[QP_ID_LEN];           /* the vGPU concerned, "" if none */
    unsigned pid;                   /* host pid: the process, or for over_quota the one most
                                     * beyond its reservation; 0 if none */
    char name[QP_PROC_NAME_LEN];    /* its command name, "" if unknown */
    uint64_t memory;                /* bytes: the process's, or the vGPU's real use */
    uint64_t quota;                 /* bytes: the vGPU's quota, 0 if none */
    uint64_t since;                 /* seconds it has lasted */
    char action[QP_ACTION_LEN];     /* "reported", "killed" or "kill failed" */
    char detail[QP_DETAIL_LEN];     /* one line for a person */
} qp_finding_t;

/* Writers fill map (a map of a message being built); they return 0 or the message's
 * build error (qp_msg_set_*). */
int qp_limits_put(qp_msg_t *map, const qp_limits_t *l);
int qp_info_put(qp_msg_t *map, const qp_info_t *i);
int qp_gpu_put(qp_msg_t *map, const qp_gpu_t *g);
int qp_totals_put(qp_msg_t *map, const qp_totals_t *t);
int qp_finding_put(qp_msg_t *map, const qp_finding_t *f);

/* Readers: 0 or -EPROTO with err filled. */
int qp_limits_get(const qp_msg_t *map, qp_limits_t *l, char err[QP_ERR_LEN]);
int qp_info_get(const qp_msg_t *map, qp_info_t *i, char err[QP_ERR_LEN]);
int qp_gpu_get(const qp_msg_t *map, qp_gpu_t *g, char err[QP_ERR_LEN]);
int qp_totals_get(const qp_msg_t *map, qp_totals_t *t, char err[QP_ERR_LEN]);
int qp_finding_get(const qp_msg_t *map, qp_finding_t *f, char err[QP_ERR_LEN]);

#endif
