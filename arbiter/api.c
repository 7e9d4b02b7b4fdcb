/* api.c - JSON documents of the HTTP API, built with jansson from a view. Pure; any
 * thread. */
#include "arbiter/api.h"

#include "proto/units.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX "/api/v1/"

/* A JSON string of s. VM names are printable but not checked for UTF-8, which JSON
 * requires: bytes of an invalid sequence become '?' rather than fail the document. */
static json_t *str(const char *s)
{
    json_t *j = json_string(s);
    if (j)
        return j;
    char *copy = strdup(s);
    if (!copy)
        return NULL;
    for (char *c = copy; *c; c++) {
        if ((unsigned char)*c >= 0x80)
            *c = '?';
    }
    j = json_string(copy);
    free(copy);
    return j;
}

static json_t *gpu_json(const qa_view_gpu_t *vg)
{
    const qp_gpu_t *g = &vg->rec;
    json_t *o =
        json_pack("{s:i, s:o, s:o, s:I, s:I, s:I, s:f, s:f, s:i, s:i, s:i, s:i, s:f, s:I}", "index",
                  g->index, "uuid", str(g->uuid), "name", str(g->name), "memory_total_mb",
                  (json_int_t)g->memory_total_mb, "memory_used_mb", (json_int_t)g->memory_used_mb,
                  "memory_reserved_mb", (json_int_t)g->memory_reserved_mb, "memory_util",
                  g->memory_util, "util", g->util, "sms", (int)g->sms, "cuda_cores",
                  (int)g->cuda_cores, "share_reserved", (int)g->share_reserved, "vgpus",
                  (int)g->vgpus, "leased", g->leased, "hung", (json_int_t)g->hung);
    /* the product's names (CONTRACT.md, Python API): fractions where it says 0..1 */
    if (o &&
        json_object_update_new(o, json_pack("{s:I, s:I, s:f, s:f, s:i}", "total_memory_mb",
                                            (json_int_t)g->memory_total_mb, "used_memory_mb",
                                            (json_int_t)g->memory_used_mb, "memory_utilization",
                                            g->memory_util / 100, "utilization", g->util / 100,
                                            "vgpu_count", (int)g->vgpus)) < 0) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

static json_t *vgpu_json(const qa_view_vgpu_t *vv)
{
    const qp_info_t *v = &vv->info;
    json_t *o = json_pack(
        "{s:o, s:o, s:i, s:o, s:o, s:I, s:I, s:i, s:i, s:f, s:I, s:I, s:i, s:I}", "id", str(v->id),
        "vm", str(v->vm), "gpu", v->gpu, "gpu_uuid", str(v->gpu_uuid), "profile", str(v->profile),
        "memory_mb", (json_int_t)v->memory_mb, "cuda_cores", (json_int_t)v->cuda_cores, "share",
        (int)v->share, "limit", (int)v->limit, "util", v->util, "memory_used",
        (json_int_t)v->memory_used, "memory_reserved", (json_int_t)v->memory_reserved, "procs",
        (int)v->procs, "created", (json_int_t)v->created);
    if (o && json_object_update_new(o, json_pack("{s:o, s:f, s:I, s:I, s:I}", "vm_id", str(v->vm),
                                                 "utilization", v->util / 100, "memory_used_mb",
                                                 (json_int_t)(v->memory_used / QP_MIB),
                                                 "allocations_refused", (json_int_t)vv->refused,
                                                 "leases_granted", (json_int_t)vv->leases)) < 0) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

static json_t *gpus_json(const qa_view_t *view)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < view->ngpus; i++) {
        if (json_array_append_new(a, gpu_json(&view->gpus[i])) < 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

static json_t *vgpus_json(const qa_view_t *view)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < view->nvgpus; i++) {
        if (json_array_append_new(a, vgpu_json(&view->vgpus[i])) < 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

static json_t *stats_json(const qa_view_t *view)
{
    const qp_totals_t *t = &view->totals;
    return json_pack("{s:o, s:i, s:i, s:I, s:I, s:i, s:i, s:f, s:I}", "gpus", gpus_json(view),
                     "vgpus_total", (int)t->vgpus_total, "vgpus_active", (int)t->vgpus_active,
                     "memory_reserved_mb", (json_int_t)t->memory_reserved_mb, "memory_used_mb",
                     (json_int_t)t->memory_used_mb, "total_vgpus", (int)t->vgpus_total,
                     "active_vgpus", (int)t->vgpus_active, "uptime_seconds", view->uptime_s,
                     "tenant_connections", (json_int_t)view->tenant_connections);
}

/* Dumps doc (taken) into *out / *len. */
static int dump(json_t *doc, char **out, size_t *len)
{
    char *text = doc ? json_dumps(doc, JSON_PRESERVE_ORDER | JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text)
        return -ENOMEM;
    *out = text;
    *len = strlen(text);
    return 0;
}

int qa_api_render(const qa_view_t *view, const char *path, char **out, size_t *len)
{
    if (strncmp(path, PREFIX, strlen(PREFIX)) != 0)
        return -ENOENT;
    const char *doc = path + strlen(PREFIX);
    if (strcmp(doc, "gpus") == 0)
        return dump(json_pack("{s:o}", "gpus", gpus_json(view)), out, len);
    if (strcmp(doc, "vgpus") == 0)
        return dump(json_pack("{s:o}", "vgpus", vgpus_json(view)), out, len);
    if (strcmp(doc, "stats") == 0)
        return dump(stats_json(view), out, len);
    if (strncmp(doc, "vgpus/", 6) == 0) {
        const qa_view_vgpu_t *v = qa_view_find(view, doc + 6);
        return v ? dump(vgpu_json(v), out, len) : -ENOENT;
    }
    return -ENOENT;
}

int qa_api_error(const char *msg, char **out, size_t *len)
{
    return dump(json_pack("{s:o}", "error", str(msg)), out, len);
}
