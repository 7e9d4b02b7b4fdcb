/* prometheus.c - /metrics from a view: tables of metric families, rendered family by
 * family as the format requires. Pure; any thread. */
#include "arbiter/prometheus.h"

#include "arbiter/version.h"
#include "arbiter/textbuf.h"
#include "proto/units.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A family whose samples are one per GPU or per vGPU: an integer or a float value. */
struct family {
    const char *name;
    const char *type; /* "gauge" or "counter" */
    const char *help;
    bool is_float;
    uint64_t (*u)(const void *rec);
    double (*d)(const void *rec);
};

#define GPU(rec) ((const qa_view_gpu_t *)(rec))
#define VGPU(rec) ((const qa_view_vgpu_t *)(rec))

static uint64_t g_mem_total(const void *r)
{
    return GPU(r)->memory_total;
}

static uint64_t g_mem_used(const void *r)
{
    return GPU(r)->memory_used;
}

static uint64_t g_mem_resv(const void *r)
{
    return GPU(r)->rec.memory_reserved_mb * QP_MIB;
}

static double g_util(const void *r)
{
    return GPU(r)->rec.util / 100;
}

static double g_share(const void *r)
{
    return GPU(r)->rec.share_reserved / 100.0;
}

static double g_leased(const void *r)
{
    return GPU(r)->rec.leased / 100;
}

static uint64_t g_hung(const void *r)
{
    return GPU(r)->rec.hung;
}

static uint64_t g_vgpus(const void *r)
{
    return GPU(r)->rec.vgpus;
}

static uint64_t g_unmanaged(const void *r)
{
    return GPU(r)->memory_unmanaged;
}

static uint64_t g_unmanaged_procs(const void *r)
{
    return GPU(r)->rec.unmanaged_procs;
}

static const struct family gpu_families[] = {
    {"qvgpu_gpu_memory_total_bytes", "gauge", "Physical memory of the GPU.", false, g_mem_total,
     NULL},
    {"qvgpu_gpu_memory_used_bytes", "gauge",
     "Memory in use on the GPU as NVML reports it, every process included.", false, g_mem_used,
     NULL},
    {"qvgpu_gpu_memory_reserved_bytes", "gauge", "Sum of the memory quotas of the GPU's vGPUs.",
     false, g_mem_resv, NULL},
    {"qvgpu_gpu_utilization_ratio", "gauge",
     "Compute utilisation of the GPU (0..1), a moving average of NVML samples every 500 ms.", true,
     NULL, g_util},
    {"qvgpu_gpu_share_reserved_ratio", "gauge",
     "Sum of the compute shares of the GPU's vGPUs (1: the whole GPU).", true, NULL, g_share},
    {"qvgpu_gpu_leased_ratio", "gauge",
     "Fraction of time some process held the GPU's compute lease (0..1), a moving average.", true,
     NULL, g_leased},
    {"qvgpu_gpu_leases_taken_back_total", "counter",
     "Compute leases taken back from holders that kept them past their end.", false, g_hung, NULL},
    {"qvgpu_gpu_vgpus", "gauge", "vGPUs placed on the GPU.", false, g_vgpus, NULL},
    {"qvgpu_gpu_memory_unmanaged_bytes", "gauge",
     "Memory held on the GPU by processes that are no tenant of its vGPUs (the audit's, "
     "from NVML).",
     false, g_unmanaged, NULL},
    {"qvgpu_gpu_unmanaged_processes", "gauge",
     "Processes on the GPU that are no tenant of its vGPUs.", false, g_unmanaged_procs, NULL},
};

static uint64_t v_quota(const void *r)
{
    return VGPU(r)->info.memory_mb * QP_MIB;
}

static uint64_t v_used(const void *r)
{
    return VGPU(r)->info.memory_used;
}

static uint64_t v_resv(const void *r)
{
    return VGPU(r)->info.memory_reserved;
}

static double v_share(const void *r)
{
    return VGPU(r)->info.share / 100.0;
}

static double v_limit(const void *r)
{
    unsigned limit = VGPU(r)->info.limit;
    return limit ? limit / 100.0 : 1.0;
}

static double v_util(const void *r)
{
    return VGPU(r)->info.util / 100;
}

static uint64_t v_procs(const void *r)
{
    return VGPU(r)->info.procs;
}

static uint64_t v_cores(const void *r)
{
    return VGPU(r)->info.cuda_cores;
}

static uint64_t v_refused(const void *r)
{
    return VGPU(r)->refused;
}

static uint64_t v_leases(const void *r)
{
    return VGPU(r)->leases;
}

static uint64_t v_real(const void *r)
{
    return VGPU(r)->info.memory_real;
}

static uint64_t v_unmanaged(const void *r)
{
    return VGPU(r)->info.memory_unmanaged;
}

static uint64_t v_unmanaged_procs(const void *r)
{
    return VGPU(r)->info.unmanaged_procs;
}

static const struct family vgpu_families[] = {
    {"qvgpu_vgpu_memory_quota_bytes", "gauge", "Memory quota of the vGPU.", false, v_quota, NULL},
    {"qvgpu_vgpu_memory_used_bytes", "gauge", "Device memory the vGPU's processes hold.", false,
     v_used, NULL},
    {"qvgpu_vgpu_memory_reserved_bytes", "gauge",
     "Memory reserved to the vGPU's processes (at least what they hold, at most the quota).", false,
     v_resv, NULL},
    {"qvgpu_vgpu_share_ratio", "gauge", "Guaranteed fraction of its GPU's time (0..1).", true, NULL,
     v_share},
    {"qvgpu_vgpu_limit_ratio", "gauge", "Hard cap on its fraction of the GPU's time (1: no limit).",
     true, NULL, v_limit},
    {"qvgpu_vgpu_utilization_ratio", "gauge",
     "Fraction of its GPU's time the vGPU's processes held compute leases (0..1), a moving "
     "average of 500 ms samples.",
     true, NULL, v_util},
    {"qvgpu_vgpu_processes", "gauge", "Live processes in the vGPU.", false, v_procs, NULL},
    {"qvgpu_vgpu_cuda_cores", "gauge", "CUDA cores of the vGPU: its share of its GPU's.", false,
     v_cores, NULL},
    {"qvgpu_vgpu_allocations_refused_total", "counter",
     "Allocations of the vGPU's processes refused past its memory quota.", false, v_refused, NULL},
    {"qvgpu_vgpu_leases_granted_total", "counter",
     "Compute leases granted to the vGPU's processes (extensions not counted).", false, v_leases,
     NULL},
    {"qvgpu_vgpu_memory_real_bytes", "gauge",
     "Device memory the vGPU's processes really hold as NVML sees it: their allocations, the "
     "driver's memory for their contexts, and its unmanaged processes'.",
     false, v_real, NULL},
    {"qvgpu_vgpu_memory_unmanaged_bytes", "gauge",
     "Of that, what processes with the vGPU's credentials but no session with the arbiter hold "
     "(charged to its quota).",
     false, v_unmanaged, NULL},
    {"qvgpu_vgpu_unmanaged_processes", "gauge",
     "Processes with the vGPU's credentials but no session with the arbiter (the shim dropped).",
     false, v_unmanaged_procs, NULL},
};

/* Appends s as a label value: backslash, double quote and newline escaped. */
static void label_value(qa_buf_t *b, const char *s)
{
    for (const char *run = s;; s++) {
        if (*s && *s != '\\' && *s != '"' && *s != '\n')
            continue;
        qa_buf_add(b, run, (size_t)(s - run));
        if (!*s)
            return;
        qa_buf_add(b, *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : "\\n", 2);
        run = s + 1;
    }
}

static void header(qa_buf_t *b, const char *name, const char *type, const char *help)
{
    qa_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Appends one sample: name, the pre-rendered labels ("{...}"), the value. */
static void sample(qa_buf_t *b, const struct family *f, const char *labels, const void *rec)
{
    qa_buf_puts(b, f->name);
    qa_buf_puts(b, labels);
    if (f->is_float)
        qa_buf_printf(b, " %.6g\n", f->d(rec));
    else
        qa_buf_printf(b, " %llu\n", (unsigned long long)f->u(rec));
}

/* Each record's labels rendered once, then reused by every family: "{a=\"x\",...}". */
static char **labels_of(const qa_view_t *view, bool vgpus, size_t n)
{
    char **labels = calloc(n ? n : 1, sizeof *labels);
    for (size_t i = 0; labels && i < n; i++) {
        qa_buf_t b;
        size_t len;
        qa_buf_init(&b, 160);
        if (vgpus) {
            const qp_info_t *v = &view->vgpus[i].info;
            qa_buf_puts(&b, "{vgpu=\"");
            label_value(&b, v->id);
            qa_buf_puts(&b, "\",vm=\"");
            label_value(&b, v->vm);
            qa_buf_printf(&b, "\",gpu=\"%d\"}", v->gpu);
        } else {
            const qp_gpu_t *g = &view->gpus[i].rec;
            qa_buf_printf(&b, "{gpu=\"%d\",uuid=\"", g->index);
            label_value(&b, g->uuid);
            qa_buf_puts(&b, "\",name=\"");
            label_value(&b, g->name);
            qa_buf_puts(&b, "\"}");
        }
        if (qa_buf_take(&b, &labels[i], &len) < 0)
            labels[i] = NULL;
    }
    return labels;
}

static void free_labels(char **labels, size_t n)
{
    for (size_t i = 0; labels && i < n; i++)
        free(labels[i]);
    free(labels);
}

/* The families of GPUs or vGPUs: false when out of memory for the labels. */
static bool per_record(qa_buf_t *b, const qa_view_t *view, bool vgpus)
{
    size_t n = vgpus ? view->nvgpus : view->ngpus;
    const struct family *fams = vgpus ? vgpu_families : gpu_families;
    size_t nfams = vgpus ? sizeof vgpu_families / sizeof vgpu_families[0]
                         : sizeof gpu_families / sizeof gpu_families[0];
    char **labels = labels_of(view, vgpus, n);
    bool ok = labels != NULL;
    for (size_t i = 0; ok && i < n; i++)
        ok = labels[i] != NULL;
    for (size_t f = 0; ok && f < nfams; f++) {
        header(b, fams[f].name, fams[f].type, fams[f].help);
        for (size_t i = 0; i < n; i++)
            sample(b, &fams[f], labels[i],
                   vgpus ? (const void *)&view->vgpus[i] : (const void *)&view->gpus[i]);
    }
    free_labels(labels, n);
    return ok;
}

static const char *kind_name(size_t kind)
{
    return kind == QA_KIND_MALFORMED ? "malformed" : qp_request_kind_name(kind);
}

/* Calls fn for every (endpoint, kind) a request can be counted under. */
static void each_kind(qa_buf_t *b, const qa_view_t *view,
                      void (*fn)(qa_buf_t *b, const char *ep, const char *kind,
                                 const qa_req_figures_t *f))
{
    static const qp_endpoint_t eps[] = {QP_ADMIN, QP_TENANT};
    for (size_t e = 0; e < 2; e++) {
        for (size_t k = 0; k <= QA_KIND_MALFORMED; k++) {
            if (k < QA_KIND_MALFORMED && !qp_request_kind_on(k, eps[e]))
                continue;
            fn(b, qp_endpoint_role(eps[e]), kind_name(k),
               qa_metrics_get(&view->metrics, eps[e], k));
        }
    }
}

static void request_count(qa_buf_t *b, const char *ep, const char *kind, const qa_req_figures_t *f)
{
    qa_buf_printf(b, "qvgpu_arbiter_requests_total{endpoint=\"%s\",kind=\"%s\"} %llu\n", ep, kind,
                  (unsigned long long)f->count);
}

static void request_histogram(qa_buf_t *b, const char *ep, const char *kind,
                              const qa_req_figures_t *f)
{
    static const char *name = "qvgpu_arbiter_request_duration_seconds";
    uint64_t cum = 0;
    for (size_t i = 0; i < QA_LATENCY_BUCKETS; i++) {
        cum += f->buckets[i];
        qa_buf_printf(b, "%s_bucket{endpoint=\"%s\",kind=\"%s\",le=\"%g\"} %llu\n", name, ep, kind,
                      (double)qa_latency_bounds_ns[i] / 1e9, (unsigned long long)cum);
    }
    qa_buf_printf(b, "%s_bucket{endpoint=\"%s\",kind=\"%s\",le=\"+Inf\"} %llu\n", name, ep, kind,
                  (unsigned long long)f->count);
    qa_buf_printf(b, "%s_sum{endpoint=\"%s\",kind=\"%s\"} %.9g\n", name, ep, kind,
                  (double)f->sum_ns / 1e9);
    qa_buf_printf(b, "%s_count{endpoint=\"%s\",kind=\"%s\"} %llu\n", name, ep, kind,
                  (unsigned long long)f->count);
}

static void arbiter(qa_buf_t *b, const qa_view_t *view)
{
    header(b, "qvgpu_arbiter_info", "gauge", "The arbiter's version, as a label; always 1.");
    qa_buf_puts(b, "qvgpu_arbiter_info{version=\"" QA_VERSION "\"} 1\n");
    header(b, "qvgpu_arbiter_uptime_seconds", "gauge", "Seconds since the arbiter started.");
    qa_buf_printf(b, "qvgpu_arbiter_uptime_seconds %.3f\n", view->uptime_s);
    header(b, "qvgpu_arbiter_tenant_connections", "gauge",
           "Connections open on tenant.sock (one per process in a vGPU).");
    qa_buf_printf(b, "qvgpu_arbiter_tenant_connections %zu\n", view->tenant_connections);
    header(b, "qvgpu_arbiter_vgpus", "gauge", "vGPUs on the host.");
    qa_buf_printf(b, "qvgpu_arbiter_vgpus %u\n", view->totals.vgpus_total);
    header(b, "qvgpu_arbiter_vgpus_active", "gauge", "vGPUs with at least one live process.");
    qa_buf_printf(b, "qvgpu_arbiter_vgpus_active %u\n", view->totals.vgpus_active);
    header(b, "qvgpu_arbiter_audit_kills_total", "counter",
           "Processes the audit killed for using a GPU outside the rules ([audit] kill).");
    qa_buf_printf(b, "qvgpu_arbiter_audit_kills_total %llu\n",
                  (unsigned long long)view->totals.kills);
    header(b, "qvgpu_arbiter_audit_findings", "gauge",
           "What the audit finds outside the rules now, by kind (unmanaged: a process on a GPU "
           "without a session; over_quota: a vGPU whose real use is past its quota).");
    static const char *const kinds[] = {"unmanaged", "over_quota"};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        size_t n = 0;
        for (size_t i = 0; i < view->nfindings; i++)
            n += strcmp(view->findings[i].kind, kinds[k]) == 0;
        qa_buf_printf(b, "qvgpu_arbiter_audit_findings{kind=\"%s\"} %zu\n", kinds[k], n);
    }
    header(b, "qvgpu_arbiter_requests_total", "counter",
           "Requests handled, by endpoint and kind (malformed: undecodable, unknown or not "
           "allowed on that endpoint).");
    each_kind(b, view, request_count);
    header(b, "qvgpu_arbiter_request_duration_seconds", "histogram",
           "Time the arbiter took to handle a request, until its reply was sent.");
    each_kind(b, view, request_histogram);
}

int qa_prom_render(const qa_view_t *view, char **out, size_t *len)
{
    qa_buf_t b;
    /* about 100 bytes a sample: avoids most regrowth */
    qa_buf_init(&b, 16384 + view->ngpus * 1024 + view->nvgpus * 1200);
    if (!per_record(&b, view, false) || !per_record(&b, view, true)) {
        qa_buf_free(&b);
        return -ENOMEM;
    }
    arbiter(&b, view);
    return qa_buf_take(&b, out, len);
}
