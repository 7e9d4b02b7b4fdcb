/* records.h - the maps nested in messages (PROTOCOL.md): LIMITS (a tenant's view of its
 * vGPU), INFO (an administrator's view of a vGPU), GPU (one physical GPU), the totals
 * of `stats` and its FINDINGs, as plain structs with a writer and a checked reader each.
 *
 * Each record's fields are listed once, below (QP_*_FIELDS): the writers and readers
 * here, libqvgpu's public structs (client/qvgpu.c) and the JSON that qgpuctl and the
 * arbiter's HTTP API print are all made from those lists, through a field table
 * (qp_field_t) and the generic qp_record_put/qp_record_get. A field added to a list is on
 * the wire, in the API and in the JSON at once.
 *
 * Readers copy strings into the struct, so a record outlives its message; they fail
 * with -EPROTO (err naming the field) when a field is missing, mistyped or too long;
 * fields marked optional may be missing (an older peer) and read as 0. Fields the reader
 * does not know are ignored. Pure functions, no state. */
#ifndef QP_RECORDS_H
#define QP_RECORDS_H

#include "proto/msg.h"

#include <stdbool.h>
#include <stddef.h>
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

/* ---- the field lists ---------------------------------------------------------------
 * X(member, type, max, optional) for each field, in wire order: the key on the wire is the
 * member's name; type is STR (a char array, its NUL included), UINT (an unsigned of 4 or
 * 8 bytes, at most max, or its width's largest when max is 0), INT (a signed integer of 4
 * or 8 bytes), INDEX (the same, from 0) or FLOAT (a double); optional fields may be
 * missing and read as 0. GPU's second list, Y, holds the fields libqvgpu's qv_gpu_t leaves
 * out: its reader checks them and keeps nothing. */
#define QP_LIMITS_FIELDS(X)                                                                        \
    X(id, STR, 0, false)                                                                           \
    X(gpu, INDEX, 0, false)                                                                        \
    X(gpu_uuid, STR, 0, false)                                                                     \
    X(memory_quota, UINT, 0, false)                                                                \
    X(share, UINT, 100, false)                                                                     \
    X(limit, UINT, 100, false)

#define QP_INFO_FIELDS(X)                                                                          \
    X(id, STR, 0, false)                                                                           \
    X(vm, STR, 0, false)                                                                           \
    X(gpu, INDEX, 0, false)                                                                        \
    X(gpu_uuid, STR, 0, false)                                                                     \
    X(profile, STR, 0, false)                                                                      \
    X(memory_mb, UINT, 0, false)                                                                   \
    X(cuda_cores, UINT, 0, false)                                                                  \
    X(share, UINT, 100, false)                                                                     \
    X(limit, UINT, 100, false)                                                                     \
    X(util, FLOAT, 0, false)                                                                       \
    X(memory_used, UINT, 0, false)                                                                 \
    X(memory_reserved, UINT, 0, false)                                                             \
    X(procs, UINT, 0, false)                                                                       \
    X(created, INT, 0, false)                                                                      \
    X(memory_real, UINT, 0, true)                                                                  \
    X(memory_unmanaged, UINT, 0, true)                                                             \
    X(unmanaged_procs, UINT, 0, true)

#define QP_GPU_FIELDS(X, Y)                                                                        \
    X(index, INDEX, 0, false)                                                                      \
    X(uuid, STR, 0, false)                                                                         \
    X(name, STR, 0, false)                                                                         \
    X(memory_total_mb, UINT, 0, false)                                                             \
    X(memory_used_mb, UINT, 0, false)                                                              \
    X(memory_reserved_mb, UINT, 0, false)                                                          \
    X(memory_util, FLOAT, 0, false)                                                                \
    X(util, FLOAT, 0, false)                                                                       \
    X(sms, UINT, 0, false)                                                                         \
    X(cuda_cores, UINT, 0, false)                                                                  \
    X(share_reserved, UINT, 0, false)                                                              \
    X(vgpus, UINT, 0, false)                                                                       \
    Y(leased, FLOAT, 0, false)                                                                     \
    Y(hung, UINT, 0, false)                                                                        \
    X(memory_unmanaged_mb, UINT, 0, true)                                                          \
    X(unmanaged_procs, UINT, 0, true)

#define QP_TOTALS_FIELDS(X)                                                                        \
    X(vgpus_total, UINT, 0, false)                                                                 \
    X(vgpus_active, UINT, 0, false)                                                                \
    X(memory_reserved_mb, UINT, 0, false)                                                          \
    X(memory_used_mb, UINT, 0, false)                                                              \
    X(memory_real_mb, UINT, 0, true)                                                               \
    X(kills, UINT, 0, true)

#define QP_FINDING_FIELDS(X)                                                                       \
    X(kind, STR, 0, false)                                                                         \
    X(gpu, INDEX, 0, false)                                                                        \
    X(vgpu, STR, 0, false)                                                                         \
    X(pid, UINT, 0, false)                                                                         \
    X(name, STR, 0, false)                                                                         \
    X(memory, UINT, 0, false)                                                                      \
    X(quota, UINT, 0, false)                                                                       \
    X(since, UINT, 0, false)                                                                       \
    X(action, STR, 0, false)                                                                       \
    X(detail, STR, 0, false)

/* ---- field tables --------------------------------------------------------------------- */

typedef enum qp_ftype {
    QP_FT_STR,
    QP_FT_UINT,
    QP_FT_INT,
    QP_FT_INDEX,
    QP_FT_FLOAT,
} qp_ftype_t;

/* offset of a field that is read (and checked) but kept nowhere */
#define QP_FIELD_UNKEPT SIZE_MAX

/* One field of a record as some struct holds it. */
typedef struct qp_field {
    const char *key;  /* on the wire, and in JSON */
    qp_ftype_t type;  /* see the field lists */
    size_t offset;    /* of the member in its struct; QP_FIELD_UNKEPT for none */
    size_t size;      /* of the member: a string's capacity, an integer's width */
    uint64_t max;     /* UINT: the largest value allowed; 0 for the width's largest */
    bool optional;    /* may be missing: reads as 0 */
} qp_field_t;

/* A record as some struct holds it: what the field lists describe, for one struct. */
typedef struct qp_record_desc {
    const char *what;         /* "INFO", ...: names the record in error lines */
    const qp_field_t *fields; /* n of them, in wire order */
    size_t n;
} qp_record_desc_t;

/* The qp_field_t of member m (a field list's entry) in struct type T, and QP_FIELD_SKIP
 * for an entry T leaves out. For table initialisers: X(m, t, max, opt) -> QP_FIELD(T, ...). */
#define QP_FIELD(T, m, type, max, opt)                                                             \
    {#m, QP_FT_##type, offsetof(T, m), sizeof(((T *)0)->m), max, opt},
#define QP_FIELD_SKIP(m, type, max, opt) {#m, QP_FT_##type, QP_FIELD_UNKEPT, 0, max, opt},

/* Writes every kept field of rec (a struct desc describes) into map. Returns 0 or the
 * message's build error (qp_msg_set_*). */
int qp_record_put(qp_msg_t *map, const qp_record_desc_t *desc, const void *rec);
/* Reads map into rec (a struct desc describes), checking every field, kept or not; rec is
 * written as far as the first bad field. Returns 0, or -EPROTO with err naming the record
 * and field when map is NULL or a field is missing, mistyped, too long or out of range. */
int qp_record_get(const qp_msg_t *map, const qp_record_desc_t *desc, void *rec,
                  char err[QP_ERR_LEN]);

/* The records' own tables (over the structs above). */
extern const qp_record_desc_t qp_limits_desc, qp_info_desc, qp_gpu_desc, qp_totals_desc,
    qp_finding_desc;

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
