/* qvgpu.h - libqvgpu: the administrator's C API to qarbiter (what qgpuctl is built on).
 *
 * A qv_client_t is one connection to the arbiter's admin socket; it is used by one
 * thread at a time (make one per thread). Every call returns 0 or a negative errno and,
 * on failure, writes one line for a person into err (QV_ERR_LEN bytes):
 *   -ENOENT     no such vGPU or GPU
 *   -EINVAL     a bad value (unknown profile, share 0, limit below share, ...)
 *   -ENOSPC     admission control: the memory or share cannot be guaranteed
 *   -EACCES     refused (wrong endpoint or permissions)
 *   -ENOTCONN   no arbiter answers at the socket dir
 *   -ETIMEDOUT  the arbiter did not answer in time (qv_set_timeout)
 *   -EIO        the arbiter failed (it logged why); -EPROTO, -ENOMEM
 * Results are plain structs the caller owns: single records are filled in place, lists
 * are allocated and freed with their own function. */
#ifndef QVGPU_H
#define QVGPU_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QV_EXPORT __attribute__((visibility("default")))

#define QV_ERR_LEN 256
#define QV_ID_LEN 32     /* a vGPU id with its NUL */
#define QV_SECRET_LEN 33 /* a vGPU secret (128 bits in hex) with its NUL */
#define QV_UUID_LEN 96
#define QV_PATH_LEN 4096 /* a path with its NUL */
#define QV_DEFAULT_SOCKET_DIR "/run/qvgpu"

typedef struct qv_client qv_client_t;

/* A vGPU. */
typedef struct qv_vgpu {
    char id[QV_ID_LEN];         /* "vg-N", never reused */
    char vm[129];               /* the VM or container it was made for */
    int gpu;                    /* index of its physical GPU */
    char gpu_uuid[QV_UUID_LEN]; /* that GPU's UUID ("GPU-...") */
    char profile[33];           /* "Q2", a configured profile, or "custom" */
    uint64_t memory_mb;         /* memory quota */
    uint64_t cuda_cores;        /* share x the GPU's CUDA cores */
    unsigned share;             /* guaranteed percent of the GPU's time */
    unsigned limit;             /* percent cap, 0 = none */
    double util;                /* percent of the GPU its processes used, recent */
    uint64_t memory_used;       /* bytes its processes allocated (through the shim) */
    uint64_t memory_reserved;   /* bytes reserved to its processes */
    unsigned procs;             /* live processes */
    int64_t created;            /* unix seconds */
    uint64_t memory_real;       /* bytes its processes really hold on the GPU, as NVML
                                 * reports them: allocations, the driver's memory for their
                                 * contexts, and its unmanaged processes */
    uint64_t memory_unmanaged;  /* of which processes with its credentials but no shim */
    unsigned unmanaged_procs;   /* those processes */
} qv_vgpu_t;

/* A physical GPU. */
typedef struct qv_gpu {
    int index;                   /* NVML's index */
    char uuid[QV_UUID_LEN];      /* "GPU-..." */
    char name[96];               /* e.g. "NVIDIA GeForce GTX 1080" */
    uint64_t memory_total_mb;    /* physical memory */
    uint64_t memory_used_mb;     /* every process on the GPU, as NVML reports */
    uint64_t memory_reserved_mb; /* sum of its vGPUs' quotas */
    double memory_util;          /* percent of its memory in use */
    double util;                 /* compute percent, recent average */
    unsigned sms;                /* streaming multiprocessors */
    unsigned cuda_cores;         /* in all */
    unsigned share_reserved;     /* sum of its vGPUs' shares, percent */
    unsigned vgpus;              /* vGPUs placed on it */
    uint64_t memory_unmanaged_mb; /* held by processes that are no tenant of its vGPUs */
    unsigned unmanaged_procs;     /* those processes */
} qv_gpu_t;

typedef struct qv_vgpu_list {
    size_t count;     /* entries in vgpus */
    qv_vgpu_t *vgpus; /* count entries, in creation order */
} qv_vgpu_list_t;

typedef struct qv_gpu_list {
    size_t count;          /* entries in gpus */
    qv_gpu_t *gpus;        /* by index */
    double oversub_memory; /* per GPU, quotas may sum to memory x this */
    double oversub_share;  /* per GPU, shares may sum to 100% x this */
    char placement[16];    /* "spread" or "pack" */
} qv_gpu_list_t;

/* Something the arbiter's audit found outside the rules (docs/arbiter.md, "Audit"). */
typedef struct qv_finding {
    char kind[16];    /* "unmanaged": a GPU process that is no vGPU's tenant;
                       * "over_quota": a vGPU whose processes hold more than its quota */
    int gpu;          /* GPU index */
    char vgpu[QV_ID_LEN]; /* the vGPU concerned, "" if none */
    unsigned pid;     /* host pid (over_quota: the process most beyond its reservation) */
    char name[17];    /* its command name, "" if unknown */
    uint64_t memory;  /* bytes: the process's, or the vGPU's real use */
    uint64_t quota;   /* bytes: the vGPU's quota, 0 if none */
    uint64_t since;   /* seconds it has lasted */
    char action[16];  /* "reported", "killed" or "kill failed" */
    char detail[200]; /* one line for a person */
} qv_finding_t;

typedef struct qv_stats {
    size_t ngpus;                /* entries in gpus */
    qv_gpu_t *gpus;              /* by index */
    unsigned vgpus_total;        /* vGPUs on the host */
    unsigned vgpus_active;       /* with at least one live process */
    uint64_t memory_reserved_mb; /* sum of all quotas */
    uint64_t memory_used_mb;     /* allocated by the vGPUs' processes */
    uint64_t memory_real_mb;     /* really held by the vGPUs' processes (NVML) */
    uint64_t kills;              /* processes the audit killed since the arbiter started */
    size_t nfindings;            /* entries in findings */
    qv_finding_t *findings;      /* what the audit found in its last round */
} qv_stats_t;

/* What a workload needs to join a vGPU. */
typedef struct qv_creds {
    char id[QV_ID_LEN];         /* QVGPU_VGPU */
    char secret[QV_SECRET_LEN]; /* QVGPU_SECRET */
    char gpu_uuid[QV_UUID_LEN]; /* CUDA_VISIBLE_DEVICES */
    char tenant_dir[QV_PATH_LEN]; /* QVGPU_SOCKET_DIR: the arbiter's dir of tenant.sock
                                   * (its --tenant-dir); "" from an arbiter before 0.2 */
} qv_creds_t;

/* A vGPU's CDI devices (docs/containers.md). */
typedef struct qv_cdi_device {
    char device[160];             /* "qvgpu.io/vgpu=vg-3" */
    char driver_device[160];      /* NVIDIA's CDI device of its GPU to ask for too, or ""
                                   * when the arbiter mounts the driver itself */
    char spec_path[QV_PATH_LEN];  /* the spec file the arbiter keeps for it */
} qv_cdi_device_t;

/* A vGPU to create: a profile, or memory_mb and share. */
typedef struct qv_create {
    const char *vm;      /* required */
    const char *profile; /* NULL, or "Q1", "Q2", "Q4", "Q8", a configured profile */
    uint64_t memory_mb;  /* with share, when profile is NULL */
    unsigned share;      /* percent, 1..100 */
    int has_limit;       /* non-zero: limit applies */
    unsigned limit;      /* percent, 0 = none; not below share */
    int gpu;             /* a GPU index, or -1 to let the arbiter place it */
} qv_create_t;

/* What to change in a resize: only the fields whose has_ flag is set. */
typedef struct qv_resize {
    int has_memory, has_share, has_limit; /* non-zero: that field changes */
    uint64_t memory_mb;                   /* new quota */
    unsigned share;                       /* new share, percent */
    unsigned limit;                       /* 0 removes the limit */
} qv_resize_t;

/* A process of a vGPU that was moved, or was to be (qv_migrate). */
typedef struct qv_moved_proc {
    int pid;          /* host pid */
    char fate[16];    /* "moved"; "view" (it had no CUDA context: only what it sees changed);
                       * "back" (the move was undone: it runs where it was); "exited";
                       * "paused" (it could not be unlocked: see the text) */
    double paused_ms; /* how long its launches were blocked: from the drain to its unlock */
    uint64_t bytes;   /* device memory it held (its report) */
} qv_moved_proc_t;

#define QV_MAX_MOVED_PROCS 256

/* What qv_migrate did. */
typedef struct qv_migration {
    qv_vgpu_t vgpu;   /* the vGPU, as it is now (on its new GPU) */
    int from, to;     /* GPU indexes */
    double ms;        /* how long the move took */
    char text[1024];  /* one line for a person: what happened, each process's pause */
    size_t nprocs;    /* entries in procs */
    qv_moved_proc_t procs[QV_MAX_MOVED_PROCS];
} qv_migration_t;

/* One move of a balance plan. */
typedef struct qv_balance_move {
    char vgpu[QV_ID_LEN]; /* which vGPU */
    int from, to;         /* from GPU, to GPU (indexes) */
    char why[256];        /* why: the two GPUs' load and the vGPU's */
    int done;             /* non-zero: it moved (never in a dry run) */
    char text[1024];      /* how the move went ("" in a dry run) */
} qv_balance_move_t;

typedef struct qv_balance_plan {
    int dry_run;              /* non-zero: planned only */
    size_t count;             /* entries in moves; 0: the GPUs are balanced */
    qv_balance_move_t *moves; /* in the order they were made */
} qv_balance_plan_t;

/* $QVGPU_SOCKET_DIR when set, else QV_DEFAULT_SOCKET_DIR. Borrowed. */
QV_EXPORT const char *qv_default_socket_dir(void);

/* Connects to the arbiter at socket_dir (NULL: qv_default_socket_dir()) and opens a
 * session, within the timeout ($QVGPU_TIMEOUT_MS, default 5000). Returns NULL with err
 * when no arbiter is there, the socket is not ours to use, or it does not answer. */
QV_EXPORT qv_client_t *qv_connect(const char *socket_dir, char err[QV_ERR_LEN]);
/* Closes and frees *client_p; sets it to NULL. NULL is a no-op. */
QV_EXPORT void qv_disconnect(qv_client_t **client_p);
/* Sets how long each call waits for the arbiter (milliseconds, > 0). */
QV_EXPORT void qv_set_timeout(qv_client_t *client, int timeout_ms);

/* Creates a vGPU. out receives it; secret (may be NULL) its secret. */
QV_EXPORT int qv_create(qv_client_t *client, const qv_create_t *req, qv_vgpu_t *out,
                        char secret[QV_SECRET_LEN], char err[QV_ERR_LEN]);
/* Destroys vGPU id; its processes lose their session (their next request is refused). */
QV_EXPORT int qv_destroy(qv_client_t *client, const char *id, char err[QV_ERR_LEN]);
/* Changes a vGPU's limits live; out (may be NULL) receives the result. */
QV_EXPORT int qv_resize(qv_client_t *client, const char *id, const qv_resize_t *req, qv_vgpu_t *out,
                        char err[QV_ERR_LEN]);
QV_EXPORT int qv_info(qv_client_t *client, const char *id, qv_vgpu_t *out, char err[QV_ERR_LEN]);
/* Every vGPU: *out is the caller's, freed with qv_vgpu_list_free. */
QV_EXPORT int qv_list(qv_client_t *client, qv_vgpu_list_t **out, char err[QV_ERR_LEN]);
QV_EXPORT void qv_vgpu_list_free(qv_vgpu_list_t **list_p);
/* Every GPU and the oversubscription ratios: *out freed with qv_gpu_list_free. */
QV_EXPORT int qv_gpus(qv_client_t *client, qv_gpu_list_t **out, char err[QV_ERR_LEN]);
QV_EXPORT void qv_gpu_list_free(qv_gpu_list_t **list_p);
/* GPUs and host totals: *out freed with qv_stats_free. */
QV_EXPORT int qv_stats(qv_client_t *client, qv_stats_t **out, char err[QV_ERR_LEN]);
QV_EXPORT void qv_stats_free(qv_stats_t **stats_p);
/* The credentials a workload of vGPU id needs (what qgpuctl run/env hand it). */
QV_EXPORT int qv_creds(qv_client_t *client, const char *id, qv_creds_t *out, char err[QV_ERR_LEN]);
/* The CDI devices and spec file of vGPU id. -EINVAL when the arbiter writes no CDI specs
 * (it has no --tenant-dir). */
QV_EXPORT int qv_cdi_device(qv_client_t *client, const char *id, qv_cdi_device_t *out,
                            char err[QV_ERR_LEN]);
/* Rewrites every vGPU's CDI spec and removes stale ones; *written and *removed count them. */
QV_EXPORT int qv_cdi_sync(qv_client_t *client, unsigned *written, unsigned *removed,
                          char err[QV_ERR_LEN]);

/* Moves vGPU id and its running processes to GPU gpu (an index; or, with gpu_uuid not
 * NULL, the GPU of that UUID), and waits until that is done or undone: at least
 * QV_MIGRATE_TIMEOUT_MS, more when qv_set_timeout gave more. out (may be NULL) receives
 * what happened. Besides the codes above: -EBUSY (the vGPU is moving already, or a
 * process of it is locked by someone else), -EIO (a step failed and the move was rolled
 * back, so nothing moved; or the driver cannot move processes: err says which driver it
 * needs). */
#define QV_MIGRATE_TIMEOUT_MS 600000
QV_EXPORT int qv_migrate(qv_client_t *client, const char *id, int gpu, const char *gpu_uuid,
                         qv_migration_t *out, char err[QV_ERR_LEN]);
/* Balances the GPUs now (docs/migration.md "Auto-balance"): plans which vGPUs to move
 * from overloaded GPUs to idle ones and, unless dry_run, moves them, waiting as
 * qv_migrate does. *out is the caller's, freed with qv_balance_plan_free. */
QV_EXPORT int qv_balance(qv_client_t *client, int dry_run, qv_balance_plan_t **out,
                         char err[QV_ERR_LEN]);
QV_EXPORT void qv_balance_plan_free(qv_balance_plan_t **plan_p);

/* Parses a memory size ("8GiB", "1536MiB", "512"; no unit means MiB) into whole MiB.
 * Returns 0 or -EINVAL with err. */
QV_EXPORT int qv_parse_size_mb(const char *text, uint64_t *mb, char err[QV_ERR_LEN]);

#ifdef __cplusplus
}
#endif

#endif
