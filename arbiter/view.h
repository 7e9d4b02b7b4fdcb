/* view.h - what the HTTP side shows: the GPUs, the vGPUs and the arbiter's own figures
 * at one instant, copied out of the loop's state so that rendering it (/metrics, the
 * JSON API, the dashboard's history) never touches that state or holds up the loop.
 *
 * Threads: built on the loop thread (qa_view_build), immutable afterwards, read by any
 * thread; shared by an atomic reference count, freed by the last qa_view_unref. */
#ifndef QA_VIEW_H
#define QA_VIEW_H

#include "arbiter/host.h"
#include "arbiter/metrics.h"
#include "proto/records.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* A physical GPU. */
typedef struct qa_view_gpu {
    qp_gpu_t rec;          /* as the `gpus` request answers it (leased, hung included) */
    uint64_t memory_total; /* bytes */
    uint64_t memory_used;  /* bytes, NVML's latest sample (every process on the GPU) */
    uint64_t memory_unmanaged; /* bytes, held by processes that are no tenant of its vGPUs */
} qa_view_gpu_t;

/* A vGPU. */
typedef struct qa_view_vgpu {
    qp_info_t info;   /* as the `info` request answers it */
    uint64_t refused; /* reservations refused past its quota since the arbiter started */
    uint64_t leases;  /* compute leases granted to its processes since it got its first */
} qa_view_vgpu_t;

typedef struct qa_view {
    atomic_uint refs;          /* references; the last qa_view_unref frees the view */
    uint64_t seq;              /* set by whoever publishes it (http.c): its number */
    uint64_t taken_ns;         /* CLOCK_MONOTONIC when it was built */
    double taken_unix;         /* the same instant, unix seconds */
    double uptime_s;           /* seconds since the arbiter started */
    size_t ngpus;              /* entries in gpus */
    qa_view_gpu_t *gpus;       /* by index; in the view's own allocation */
    size_t nvgpus;             /* entries in vgpus */
    qa_view_vgpu_t *vgpus;     /* in creation order; in the view's own allocation */
    qp_totals_t totals;        /* as the `stats` request answers them */
    size_t nfindings;          /* entries in findings */
    qp_finding_t *findings;    /* the audit's, as `stats` lists them; in the view's allocation */
    size_t tenant_connections; /* open on tenant.sock */
    qa_metrics_t metrics;      /* the arbiter's request figures */
} qa_view_t;

/* Copies host's GPUs and vGPUs, metrics, the tenant connection count and the audit's
 * findings (nfindings of findings, at most QP_MAX_FINDINGS kept) and kills into a new view
 * with one reference (the caller's). NULL when out of memory. Loop thread: O(vGPUs)
 * copies, no I/O. */
qa_view_t *qa_view_build(qa_host_t *host, const qa_metrics_t *metrics, size_t tenant_connections,
                         const qp_finding_t *findings, size_t nfindings, uint64_t kills);
/* Takes one more reference to view (not NULL); returns it. Any thread. */
qa_view_t *qa_view_ref(qa_view_t *view);
/* Drops the reference *view_p holds, freeing the view with the last; sets *view_p to
 * NULL. A NULL *view_p is a no-op. Any thread. */
void qa_view_unref(qa_view_t **view_p);
/* The vGPU called id in view, or NULL. O(vGPUs). */
const qa_view_vgpu_t *qa_view_find(const qa_view_t *view, const char *id);

#endif
