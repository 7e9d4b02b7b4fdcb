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

static void gpu_json(qa_buf_t *b, const qa_view_gpu_t *vg)
{
    const qp_gpu_t *g = &vg->rec;
    struct obj o;
    open_obj(&o, b);
    /* qgpuctl --json gpus' fields, in its order */
    int_(&o, "index", g->index);
    str(&o, "uuid", g->uuid);
    str(&o, "name", g->name);
    uint_(&o, "memory_total_mb", g->memory_total_mb);
    uint_(&o, "memory_used_mb", g->memory_used_mb);
    uint_(&o, "memory_reserved_mb", g->memory_reserved_mb);
    real(&o, "memory_util", g->memory_util);
    real(&o, "util", g->util);
    uint_(&o, "sms", g->sms);
    uint_(&o, "cuda_cores", g->cuda_cores);
    uint_(&o, "share_reserved", g->share_reserved);
    uint_(&o, "vgpus", g->vgpus);
    uint_(&o, "memory_unmanaged_mb", g->memory_unmanaged_mb);
    uint_(&o, "unmanaged_procs", g->unmanaged_procs);
    /* the arbiter's own, then the product's names (CONTRACT.md): fractions 0..1 */
    real(&o, "leased", g->leased);
    uint_(&o, "hung", g->hung);
    uint_(&o, "total_memory_mb", g->memory_total_mb);
    uint_(&o, "used_memory_mb", g->memory_used_mb);
    real(&o, "memory_utilization", g->memory_util / 100);
    real(&o, "utilization", g->util / 100);
    uint_(&o, "vgpu_count", g->vgpus);
    qa_buf_add(b, "}", 1);
}

static void vgpu_json(qa_buf_t *b, const qa_view_vgpu_t *vv)
{
    const qp_info_t *v = &vv->info;
    struct obj o;
    open_obj(&o, b);
    /* qgpuctl --json info's fields, in its order */
    str(&o, "id", v->id);
    str(&o, "vm", v->vm);
    int_(&o, "gpu", v->gpu);
    str(&o, "gpu_uuid", v->gpu_uuid);
    str(&o, "profile", v->profile);
    uint_(&o, "memory_mb", v->memory_mb);
    uint_(&o, "cuda_cores", v->cuda_cores);
    uint_(&o, "share", v->share);
    uint_(&o, "limit", v->limit);
    real(&o, "util", v->util);
    uint_(&o, "memory_used", v->memory_used);
    uint_(&o, "memory_reserved", v->memory_reserved);
    uint_(&o, "procs", v->procs);
    int_(&o, "created", v->created);
    uint_(&o, "memory_real", v->memory_real);
    uint_(&o, "memory_unmanaged", v->memory_unmanaged);
    uint_(&o, "unmanaged_procs", v->unmanaged_procs);
    /* the product's names, then the counters only the arbiter has */
    str(&o, "vm_id", v->vm);
    real(&o, "utilization", v->util / 100);
    uint_(&o, "memory_used_mb", v->memory_used / QP_MIB);
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

static void stats_json(qa_buf_t *b, const qa_view_t *view)
{
    const qp_totals_t *t = &view->totals;
    struct obj o;
    open_obj(&o, b);
    key(&o, "gpus");
    gpus_json(b, view);
    uint_(&o, "vgpus_total", t->vgpus_total);
    uint_(&o, "vgpus_active", t->vgpus_active);
    uint_(&o, "memory_reserved_mb", t->memory_reserved_mb);
    uint_(&o, "memory_used_mb", t->memory_used_mb);
    uint_(&o, "memory_real_mb", t->memory_real_mb);
    uint_(&o, "kills", t->kills);
    key(&o, "findings");
    qa_buf_add(b, "[", 1);
    for (size_t i = 0; i < view->nfindings; i++) {
        const qp_finding_t *f = &view->findings[i];
        struct obj fo;
        if (i)
            qa_buf_add(b, ",", 1);
        open_obj(&fo, b); /* qgpuctl --json stats' fields, in its order */
        str(&fo, "kind", f->kind);
        int_(&fo, "gpu", f->gpu);
        str(&fo, "vgpu", f->vgpu);
        uint_(&fo, "pid", f->pid);
        str(&fo, "name", f->name);
        uint_(&fo, "memory", f->memory);
        uint_(&fo, "quota", f->quota);
        uint_(&fo, "since", f->since);
        str(&fo, "action", f->action);
        str(&fo, "detail", f->detail);
        qa_buf_add(b, "}", 1);
    }
    qa_buf_add(b, "]", 1);
    uint_(&o, "total_vgpus", t->vgpus_total);
    uint_(&o, "active_vgpus", t->vgpus_active);
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
