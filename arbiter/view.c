/* view.c - snapshots of the arbiter for the HTTP side. Built on the loop thread; see
 * view.h for who reads them. */
#include "arbiter/view.h"

#include "arbiter/loop.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

qa_view_t *qa_view_build(qa_host_t *host, const qa_metrics_t *metrics, size_t tenant_connections,
                         const qp_finding_t *findings, size_t nfindings, uint64_t kills)
{
    size_t ng = qa_host_ngpus(host), nv = qa_host_nvgpus(host);
    if (nfindings > QP_MAX_FINDINGS)
        nfindings = QP_MAX_FINDINGS;
    /* One allocation: a view is built and freed as a whole, and the loop pays one malloc. */
    size_t size = sizeof(qa_view_t) + ng * sizeof(qa_view_gpu_t) + nv * sizeof(qa_view_vgpu_t) +
                  nfindings * sizeof(qp_finding_t);
    qa_view_t *v = malloc(size);
    if (!v)
        return NULL;
    memset(v, 0, sizeof *v);
    atomic_init(&v->refs, 1);
    v->taken_ns = qa_now_ns();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    v->taken_unix = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    v->uptime_s = (double)(v->taken_ns - metrics->started_ns) / 1e9;
    v->gpus = (qa_view_gpu_t *)(v + 1);
    v->vgpus = (qa_view_vgpu_t *)(v->gpus + ng);
    v->ngpus = ng;
    for (size_t i = 0; i < ng; i++) {
        const qa_gpu_t *g = qa_host_gpu(host, i);
        qa_host_gpu_record(host, i, &v->gpus[i].rec);
        v->gpus[i].memory_total = g->desc.memory_total;
        v->gpus[i].memory_used = g->memory_used;
        v->gpus[i].memory_unmanaged = g->memory_unmanaged;
    }
    v->nvgpus = nv;
    for (size_t i = 0; i < nv; i++) {
        const qa_vgpu_t *src = qa_host_vgpu(host, i);
        qa_view_vgpu_t *dst = &v->vgpus[i];
        qa_host_info(host, src, &dst->info);
        dst->refused = src->refused;
        dst->leases = src->leases;
    }
    qa_host_totals(host, &v->totals);
    v->totals.kills = kills;
    v->findings = (qp_finding_t *)(v->vgpus + nv);
    v->nfindings = nfindings;
    if (nfindings)
        memcpy(v->findings, findings, nfindings * sizeof *findings);
    v->tenant_connections = tenant_connections;
    v->metrics = *metrics;
    return v;
}

qa_view_t *qa_view_ref(qa_view_t *view)
{
    /* relaxed: whoever hands the view over (a mutex in http.c) orders its contents */
    atomic_fetch_add_explicit(&view->refs, 1, memory_order_relaxed);
    return view;
}

void qa_view_unref(qa_view_t **view_p)
{
    qa_view_t *view = *view_p;
    if (!view)
        return;
    *view_p = NULL;
    /* acq_rel: the last holder must see every other holder's reads done before it frees */
    if (atomic_fetch_sub_explicit(&view->refs, 1, memory_order_acq_rel) == 1)
        free(view);
}

const qa_view_vgpu_t *qa_view_find(const qa_view_t *view, const char *id)
{
    for (size_t i = 0; i < view->nvgpus; i++) {
        if (strcmp(view->vgpus[i].info.id, id) == 0)
            return &view->vgpus[i];
    }
    return NULL;
}
