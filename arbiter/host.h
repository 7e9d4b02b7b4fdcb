/* host.h - what the arbiter manages: the physical GPUs and the vGPUs placed on them.
 *
 * Validation, admission and placement of vGPU creations and resizes happen here; I/O
 * does not (persistence is store.c, the wire is endpoint.c, requests are admin.c's), so
 * every rule can be tested on made-up GPUs. This is the host model handlers are given:
 * the host owns its vGPUs; their session lists belong to tenant.c, which keeps the
 * runtime figures (mem_used, mem_reserved, procs) up to date, and what follows each vGPU
 * elsewhere hangs off it for its owner (ghosts: ghosts.c; ent: compute.c; the real-use
 * figures: audit.c).
 * Single-threaded: the arbiter's loop thread. */
#ifndef QA_HOST_H
#define QA_HOST_H

#include "arbiter/config.h"
#include "proto/records.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QA_MAX_VGPUS 4096
#define QA_MAX_GPUS 64

/* A GPU as discovery found it. */
typedef struct qa_gpu_desc {
    unsigned index;
    char uuid[QP_UUID_LEN];
    char name[QP_GPU_NAME_LEN];
    uint64_t memory_total; /* bytes */
    unsigned sms;
    unsigned cuda_cores;
} qa_gpu_desc_t;

typedef struct qa_gpu {
    qa_gpu_desc_t desc;
    uint64_t memory_used;        /* bytes, NVML's latest sample (every process) */
    double util;                 /* compute percent, EWMA of NVML samples */
    uint64_t memory_reserved_mb; /* sum of its vGPUs' quotas */
    unsigned share_reserved;     /* sum of its vGPUs' shares */
    unsigned nvgpus;             /* vGPUs placed on it */
    double leased;               /* percent of time under compute lease, EWMA (compute.c) */
    uint64_t hung;               /* leases taken back from hung holders (compute.c) */
    uint64_t memory_unmanaged;   /* bytes held by processes that are no tenant of its
                                  * vGPUs, NVML's latest round (audit.c) */
    unsigned procs_unmanaged;    /* those processes (audit.c) */
    double util_sum;             /* utilisation samples summed over the balance interval,
                                  * the larger of util and leased each (balancer.c) */
    unsigned util_samples;       /* how many */
} qa_gpu_t;

struct qa_session;
struct qa_sched_ent;
struct qa_ghost;

typedef struct qa_vgpu {
    char id[QP_ID_LEN];           /* "vg-N", never reused */
    char vm[QP_VM_LEN];           /* the VM or container it was made for */
    char secret[QP_SECRET_LEN];   /* 128 random bits in hex, proves a tenant belongs */
    char profile[QP_PROFILE_LEN]; /* "Q2", a configured profile, or "custom" */
    unsigned gpu;                 /* index into the host's GPUs */
    uint64_t memory_mb;           /* quota */
    unsigned share;               /* percent */
    unsigned limit;               /* percent, 0 = none */
    int64_t created;              /* unix seconds */
    /* runtime, never persisted */
    double util;              /* percent of its GPU's time its processes held leases, EWMA */
    struct qa_session *sessions; /* its tenant sessions: tenant.c's list */
    unsigned procs;           /* live sessions (tenant.c) */
    uint64_t mem_used;        /* bytes its processes reported holding (tenant.c) */
    uint64_t mem_reserved;    /* bytes reserved to its processes (tenant.c) */
    unsigned waiting;         /* its processes' mem_reserve requests pending (tenant.c) */
    struct qa_ghost *ghosts;  /* what the previous arbiter's processes may still hold,
                               * until they re-report or are gone (tenant.c's list) */
    uint64_t ghost_bytes;     /* their sum, counted in mem_reserved too (tenant.c) */
    uint64_t refused;         /* its processes' reservations refused past the quota: each
                               * one allocation the shim failed (tenant.c) */
    uint64_t leases;          /* compute leases granted to its processes, extensions not
                               * counted (compute.c's sample) */
    uint64_t mem_overhead;    /* bytes the driver holds for its processes beyond their
                               * allocations, charged to the quota (tenant.c, from audit.c) */
    uint64_t extra_seen;      /* what tenant.c last saw charged beyond allocations */
    uint64_t mem_real;        /* bytes its processes really hold on the device, NVML's
                               * latest round: tenants plus unmanaged ones (audit.c) */
    uint64_t mem_unmanaged;   /* part of mem_real held by processes with its credentials
                               * but no session on its GPU: charged to the quota (audit.c) */
    unsigned procs_unmanaged; /* those processes (audit.c) */
    uint64_t over_since;      /* ns since mem_real is over the quota, 0 if it is not (audit.c) */
    bool over_reported;       /* that was reported (audit.c) */
    struct qa_sched_ent *ent; /* its compute scheduler entity, NULL before a process came
                               * (compute.c's, owned by its GPU's scheduler) */
    unsigned moving;          /* 1 + the GPU it is moving to, whose admission counts it
                               * too, until the move commits; 0 otherwise (qa_host_move_*) */
    bool in_move;             /* a move of it is under way, committed or not: it may be
                               * neither destroyed nor resized (set by qa_host_move_begin,
                               * cleared by mover.c when the move is over) */
    uint64_t moved_at;        /* when it last moved (monotonic ns), 0: never (mover.c) */
    double util_sum;          /* util samples summed over the balance interval (balancer.c) */
    unsigned util_samples;    /* how many */
} qa_vgpu_t;

/* A create request. */
typedef struct qa_spec {
    const char *vm;      /* required */
    const char *profile; /* NULL, or a profile name */
    uint64_t memory_mb;  /* 0 = not given */
    unsigned share;      /* 0 = not given */
    bool has_limit;      /* limit given */
    unsigned limit;      /* 0 = none */
    int gpu;             /* -1: let placement choose */
} qa_spec_t;

/* A resize request: the has_ flags say which fields change. */
typedef struct qa_change {
    bool has_memory, has_share, has_limit;
    uint64_t memory_mb;
    unsigned share;
    unsigned limit;
} qa_change_t;

typedef struct qa_host qa_host_t;

/* A host with n GPUs (copied) ruled by cfg (borrowed: must outlive the host). Returns
 * NULL when out of memory or n is 0 or over QA_MAX_GPUS. */
qa_host_t *qa_host_new(const qa_gpu_desc_t *gpus, size_t n, const qa_config_t *cfg);
/* Frees the host and its vGPUs; sets *self_p to NULL. */
void qa_host_destroy(qa_host_t **self_p);

size_t qa_host_ngpus(const qa_host_t *self);
/* 0 if gpu is the index of one of this host's GPUs, else -ENOENT with a line that names
 * it and the range (any int64_t a request may carry, before it is narrowed to an int). */
int qa_host_gpu_check(const qa_host_t *self, int64_t gpu, char err[QP_ERR_LEN]);
qa_gpu_t *qa_host_gpu(qa_host_t *self, size_t i);
/* The GPU whose UUID is uuid, or NULL. */
qa_gpu_t *qa_host_gpu_by_uuid(qa_host_t *self, const char *uuid);
size_t qa_host_nvgpus(const qa_host_t *self);
/* vGPU i in creation order (i < qa_host_nvgpus), borrowed until it is taken. */
qa_vgpu_t *qa_host_vgpu(qa_host_t *self, size_t i);
/* The vGPU called id, or NULL. O(vGPUs): at most QA_MAX_VGPUS. */
qa_vgpu_t *qa_host_find(qa_host_t *self, const char *id);

/* Validates spec, places and admits it, and adds a new vGPU with a fresh id and
 * secret. Returns 0 with *out borrowed from the host, or -EINVAL (bad value), -ENOENT
 * (no such GPU), -ENOSPC (admission refused) or -EIO (no randomness), with err as one
 * line. */
int qa_host_create(qa_host_t *self, const qa_spec_t *spec, int64_t now, qa_vgpu_t **out,
                   char err[QP_ERR_LEN]);
/* Adds a vGPU restored from state, without admission (the config may have changed), but
 * never one larger than its GPU; gpu_uuid says where it lives. Returns 0, -ENODEV (that
 * GPU is gone), -EEXIST, or -EINVAL (a bad value, or larger than its GPU), with err. */
int qa_host_adopt(qa_host_t *self, const qa_vgpu_t *v, const char *gpu_uuid, char err[QP_ERR_LEN]);
/* Applies change to the vGPU id after validation and admission on its GPU. Returns 0
 * with *out borrowed, or -ENOENT, -EINVAL, -ENOSPC, or -EBUSY (it is moving) with err. */
int qa_host_resize(qa_host_t *self, const char *id, const qa_change_t *change, qa_vgpu_t **out,
                   char err[QP_ERR_LEN]);
/* Begins v's move to GPU `to`: checks it and charges v's quota and share to `to` as well
 * until qa_host_move_end, so that nothing else takes that room meanwhile. Returns 0, or
 * with err as one line: -ENOENT (no such GPU), -EINVAL (v is there already, or `to` is
 * of another chip: the driver moves processes only between GPUs of one chip), -ENOSPC
 * (admission refuses v there), -EBUSY (v is moving already). */
int qa_host_move_begin(qa_host_t *self, qa_vgpu_t *v, int to, char err[QP_ERR_LEN]);
/* Ends v's move: with commit v lives on its target from now and its source's charge goes;
 * without, the target's goes. */
void qa_host_move_end(qa_host_t *self, qa_vgpu_t *v, bool commit);

/* Removes the vGPU id from the host and returns it: the caller ends its sessions and
 * frees it. NULL when there is none. */
qa_vgpu_t *qa_host_take(qa_host_t *self, const char *id);

/* The next id number to hand out; ids below it are never handed out again. */
uint64_t qa_host_next_id(const qa_host_t *self);
/* Raises the next id number to at least n (from persisted state). */
void qa_host_skip_ids(qa_host_t *self, uint64_t n);

/* Records for the wire. */
void qa_host_info(qa_host_t *self, const qa_vgpu_t *v, qp_info_t *out);
void qa_host_gpu_record(qa_host_t *self, size_t i, qp_gpu_t *out);
void qa_host_limits(qa_host_t *self, const qa_vgpu_t *v, qp_limits_t *out);
/* The host's totals. memory_used_mb sums the vGPUs' figures, each GPU's part at most its
 * memory; qa_tenants_host_used (tenant.h) refines it, counting each process once however
 * many sessions it reports on, and `stats` and the HTTP view use that. O(vGPUs). */
void qa_host_totals(qa_host_t *self, qp_totals_t *out);

#endif
