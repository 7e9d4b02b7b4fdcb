/* api.c - JSON documents of the HTTP API from a view, written by hand into a text buffer
 * (a tree of jansson objects cost ten times as much for 1,000 vGPUs). Pure; any thread. */
#include "arbiter/api.h"

#include "arbiter/textbuf.h"
#include "proto/units.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX "/api/v1/"

/* An object being written: each field after the first gets its comma. */
struct obj {
    qa_buf_t *b;
    bool more; /* a field was written */
};

static void open_obj(struct obj *o, qa_buf_t *b)
{
    o->b = b;
    o->more = false;
    qa_buf_add(b, "{", 1);
}

static void key(struct obj *o, const char *k)
{
    qa_buf_add(o->b, o->more ? ",\"" : "\"", o->more ? 2 : 1);
    qa_buf_puts(o->b, k);
    qa_buf_add(o->b, "\":", 2);
    o->more = true;
}

static void str(struct obj *o, const char *k, const char *v)
{
    key(o, k);
    qa_buf_json_string(o->b, v);
}

static void uint_(struct obj *o, const char *k, uint64_t v)
{
    key(o, k);
    qa_buf_printf(o->b, "%llu", (unsigned long long)v);
}

static void int_(struct obj *o, const char *k, int64_t v)
{
    key(o, k);
    qa_buf_printf(o->b, "%lld", (long long)v);
}

static void real(struct obj *o, const char *k, double v)
{
    key(o, k);
    qa_buf_json_real(o->b, v);
}

/* The records' fields (proto/records.h), in qgpuctl --json's order: the same lists make
 * both, so the API keeps mirroring qgpuctl. */
#define API_STR str
#define API_UINT uint_
#define API_INT int_
#define API_INDEX int_
#define API_FLOAT real
#define API_FIELD(m, type, max, opt) API_##type(&o, #m, r->m);
#define API_NONE(m, type, max, opt)

static void gpu_json(qa_buf_t *b, const qa_view_gpu_t *vg)
{
    const qp_gpu_t *r = &vg->rec;
    struct obj o;
    open_obj(&o, b);
    QP_GPU_FIELDS(API_FIELD, API_NONE)
    /* the arbiter's own, then the product's names (CONTRACT.md): fractions 0..1 */
    real(&o, "leased", r->leased);
    uint_(&o, "hung", r->hung);
    uint_(&o, "total_memory_mb", r->memory_total_mb);
    uint_(&o, "used_memory_mb", r->memory_used_mb);
    real(&o, "memory_utilization", r->memory_util / 100);
    real(&o, "utilization", r->util / 100);
    uint_(&o, "vgpu_count", r->vgpus);
    qa_buf_add(b, "}", 1);
}

static void vgpu_json(qa_buf_t *b, const qa_view_vgpu_t *vv)
{
    const qp_info_t *r = &vv->info;
    struct obj o;
    open_obj(&o, b);
    QP_INFO_FIELDS(API_FIELD)
    /* the product's names, then the counters only the arbiter has */
    str(&o, "vm_id", r->vm);
    real(&o, "utilization", r->util / 100);
    uint_(&o, "memory_used_mb", r->memory_used / QP_MIB);
    uint_(&o, "allocations_refused", vv->refused);
    uint_(&o, "leases_granted", vv->leases);
    qa_buf_add(b, "}", 1);
}

static void gpus_json(qa_buf_t *b, const qa_view_t *view)
{
    qa_buf_add(b, "[", 1);
    for (size_t i = 0; i < view->ngpus; i++) {
        if (i)
            qa_buf_add(b, ",", 1);
        gpu_json(b, &view->gpus[i]);
    }
    qa_buf_add(b, "]", 1);
}

static void finding_json(qa_buf_t *b, const qp_finding_t *r)
{
    struct obj o;
    open_obj(&o, b);
    QP_FINDING_FIELDS(API_FIELD)
    qa_buf_add(b, "}", 1);
}

static void stats_json(qa_buf_t *b, const qa_view_t *view)
{
    const qp_totals_t *r = &view->totals;
    struct obj o;
    open_obj(&o, b);
    key(&o, "gpus");
    gpus_json(b, view);
    QP_TOTALS_FIELDS(API_FIELD)
    key(&o, "findings");
    qa_buf_add(b, "[", 1);
    for (size_t i = 0; i < view->nfindings; i++) {
        if (i)
            qa_buf_add(b, ",", 1);
        finding_json(b, &view->findings[i]);
    }
    qa_buf_add(b, "]", 1);
    uint_(&o, "total_vgpus", r->vgpus_total);
    uint_(&o, "active_vgpus", r->vgpus_active);
    real(&o, "uptime_seconds", view->uptime_s);
    uint_(&o, "tenant_connections", view->tenant_connections);
    qa_buf_add(b, "}", 1);
}

int qa_api_render(const qa_view_t *view, const char *path, char **out, size_t *len)
{
    if (strncmp(path, PREFIX, strlen(PREFIX)) != 0)
        return -ENOENT;
    const char *doc = path + strlen(PREFIX);
    const qa_view_vgpu_t *one = NULL;
    if (strncmp(doc, "vgpus/", 6) == 0 && !(one = qa_view_find(view, doc + 6)))
        return -ENOENT;
    if (!one && strcmp(doc, "gpus") != 0 && strcmp(doc, "vgpus") != 0 && strcmp(doc, "stats") != 0)
        return -ENOENT;
    qa_buf_t b;
    qa_buf_init(&b, 1024 + view->ngpus * 600 + (one ? 0 : view->nvgpus * 450));
    if (one) {
        vgpu_json(&b, one);
    } else if (strcmp(doc, "gpus") == 0) {
        qa_buf_puts(&b, "{\"gpus\":");
        gpus_json(&b, view);
        qa_buf_puts(&b, "}");
    } else if (strcmp(doc, "vgpus") == 0) {
        qa_buf_puts(&b, "{\"vgpus\":[");
        for (size_t i = 0; i < view->nvgpus; i++) {
            if (i)
                qa_buf_add(&b, ",", 1);
            vgpu_json(&b, &view->vgpus[i]);
        }
        qa_buf_puts(&b, "]}");
    } else {
        stats_json(&b, view);
    }
    return qa_buf_take(&b, out, len);
}

int qa_api_error(const char *msg, char **out, size_t *len)
{
    qa_buf_t b;
    qa_buf_init(&b, 64 + strlen(msg));
    struct obj o;
    open_obj(&o, &b);
    str(&o, "error", msg);
    qa_buf_add(&b, "}", 1);
    return qa_buf_take(&b, out, len);
}
