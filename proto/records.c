/* records.c - LIMITS, INFO, GPU, stats totals and FINDINGs to and from message maps. Pure. */
#include "proto/records.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

/* A reader walks the fields of one map and stops at the first bad one. */
struct rd {
    const qp_msg_t *map;
    const char *what; /* "LIMITS", "INFO", ... for the error line */
    char *err;
    int rc; /* first failure, 0 while all is well */
};

static void bad(struct rd *r, const char *key, const char *why)
{
    if (r->rc == 0) {
        snprintf(r->err, QP_ERR_LEN, "%s field '%s' %s", r->what, key, why);
        r->rc = -EPROTO;
    }
}

static void rd_str(struct rd *r, const char *key, char *out, size_t size)
{
    const char *s;
    if (r->rc)
        return;
    if (qp_msg_get_str(r->map, key, &s) < 0)
        bad(r, key, "is missing or not a string");
    else if (strlen(s) >= size)
        bad(r, key, "is too long");
    else
        memcpy(out, s, strlen(s) + 1);
}

static uint64_t rd_uint(struct rd *r, const char *key, uint64_t max)
{
    uint64_t v = 0;
    if (r->rc)
        return 0;
    if (qp_msg_get_uint(r->map, key, &v) < 0)
        bad(r, key, "is missing or not an unsigned integer");
    else if (v > max)
        bad(r, key, "is out of range");
    return v;
}

/* An optional unsigned field: absent reads as 0, present is checked like rd_uint. */
static uint64_t rd_uint_opt(struct rd *r, const char *key, uint64_t max)
{
    return r->rc == 0 && qp_msg_has(r->map, key) ? rd_uint(r, key, max) : 0;
}

static int64_t rd_int(struct rd *r, const char *key, int64_t min, int64_t max)
{
    int64_t v = 0;
    if (r->rc)
        return 0;
    if (qp_msg_get_int(r->map, key, &v) < 0)
        bad(r, key, "is missing or not an integer");
    else if (v < min || v > max)
        bad(r, key, "is out of range");
    return v;
}

static double rd_float(struct rd *r, const char *key)
{
    double v = 0;
    if (r->rc == 0 && qp_msg_get_float(r->map, key, &v) < 0)
        bad(r, key, "is missing or not a number");
    return v;
}

static int start(struct rd *r, const qp_msg_t *map, const char *what, char *err)
{
    *r = (struct rd){map, what, err, 0};
    if (!map) {
        snprintf(err, QP_ERR_LEN, "%s map is missing", what);
        r->rc = -EPROTO;
    }
    return r->rc;
}

/* ---- LIMITS ------------------------------------------------------------------------ */

int qp_limits_put(qp_msg_t *map, const qp_limits_t *l)
{
    int rc = qp_msg_set_str(map, "id", l->id);
    rc = rc ? rc : qp_msg_set_int(map, "gpu", l->gpu);
    rc = rc ? rc : qp_msg_set_str(map, "gpu_uuid", l->gpu_uuid);
    rc = rc ? rc : qp_msg_set_uint(map, "memory_quota", l->memory_quota);
    rc = rc ? rc : qp_msg_set_uint(map, "share", l->share);
    rc = rc ? rc : qp_msg_set_uint(map, "limit", l->limit);
    return rc;
}

int qp_limits_get(const qp_msg_t *map, qp_limits_t *l, char err[QP_ERR_LEN])
{
    struct rd r;
    if (start(&r, map, "LIMITS", err) < 0)
        return r.rc;
    rd_str(&r, "id", l->id, sizeof l->id);
    l->gpu = (int)rd_int(&r, "gpu", 0, INT_MAX);
    rd_str(&r, "gpu_uuid", l->gpu_uuid, sizeof l->gpu_uuid);
    l->memory_quota = rd_uint(&r, "memory_quota", UINT64_MAX);
    l->share = (unsigned)rd_uint(&r, "share", 100);
    l->limit = (unsigned)rd_uint(&r, "limit", 100);
    return r.rc;
}

/* ---- INFO -------------------------------------------------------------------------- */

int qp_info_put(qp_msg_t *map, const qp_info_t *i)
{
    int rc = qp_msg_set_str(map, "id", i->id);
    rc = rc ? rc : qp_msg_set_str(map, "vm", i->vm);
    rc = rc ? rc : qp_msg_set_int(map, "gpu", i->gpu);
    rc = rc ? rc : qp_msg_set_str(map, "gpu_uuid", i->gpu_uuid);
    rc = rc ? rc : qp_msg_set_str(map, "profile", i->profile);
    rc = rc ? rc : qp_msg_set_uint(map, "memory_mb", i->memory_mb);
    rc = rc ? rc : qp_msg_set_uint(map, "cuda_cores", i->cuda_cores);
    rc = rc ? rc : qp_msg_set_uint(map, "share", i->share);
    rc = rc ? rc : qp_msg_set_uint(map, "limit", i->limit);
    rc = rc ? rc : qp_msg_set_float(map, "util", i->util);
    rc = rc ? rc : qp_msg_set_uint(map, "memory_used", i->memory_used);
    rc = rc ? rc : qp_msg_set_uint(map, "memory_reserved", i->memory_reserved);
    rc = rc ? rc : qp_msg_set_uint(map, "procs", i->procs);
    rc = rc ? rc : qp_msg_set_int(map, "created", i->created);
    rc = rc ? rc : qp_msg_set_uint(map, "memory_real", i->memory_real);
    rc = rc ? rc : qp_msg_set_uint(map, "memory_unmanaged", i->memory_unmanaged);
    rc = rc ? rc : qp_msg_set_uint(map, "unmanaged_procs", i->unmanaged_procs);
    return rc;
}

int qp_info_get(const qp_msg_t *map, qp_info_t *i, char err[QP_ERR_LEN])
{
    struct rd r;
    if (start(&r, map, "INFO", err) < 0)
        return r.rc;
    rd_str(&r, "id", i->id, sizeof i->id);
    rd_str(&r, "vm", i->vm, sizeof i->vm);
    i->gpu = (int)rd_int(&r, "gpu", 0, INT_MAX);
    rd_str(&r, "gpu_uuid", i->gpu_uuid, sizeof i->gpu_uuid);
    rd_str(&r, "profile", i->profile, sizeof i->profile);
    i->memory_mb = rd_uint(&r, "memory_mb", UINT64_MAX);
    i->cuda_cores = rd_uint(&r, "cuda_cores", UINT64_MAX);
    i->share = (unsigned)rd_uint(&r, "share", 100);
    i->limit = (unsigned)rd_uint(&r, "limit", 100);
    i->util = rd_float(&r, "util");
    i->memory_used = rd_uint(&r, "memory_used", UINT64_MAX);
    i->memory_reserved = rd_uint(&r, "memory_reserved", UINT64_MAX);
    i->procs = (unsigned)rd_uint(&r, "procs", UINT_MAX);
    i->created = rd_int(&r, "created", INT64_MIN, INT64_MAX);
    i->memory_real = rd_uint_opt(&r, "memory_real", UINT64_MAX);
    i->memory_unmanaged = rd_uint_opt(&r, "memory_unmanaged", UINT64_MAX);
    i->unmanaged_procs = (unsigned)rd_uint_opt(&r, "unmanaged_procs", UINT_MAX);
    return r.rc;
}

/* ---- GPU --------------------------------------------------------------------------- */

int qp_gpu_put(qp_msg_t *map, const qp_gpu_t *g)
{
    int rc = qp_msg_set_int(map, "index", g->index);
    rc = rc ? rc : qp_msg_set_str(map, "uuid", g->uuid);
    rc = rc ? rc : qp_msg_set_str(map, "name", g->name);
    rc = rc ? rc : qp_msg_set_uint(map, "memory_total_mb", g->memory_total_mb);
    rc = rc ? rc : qp_msg_set_uint(map, "memory_used_mb", g->memory_used_mb);
    rc = rc ? rc : qp_msg_set_uint(map, "memory_reserved_mb", g->memory_reserved_mb);
    rc = rc ? rc : qp_msg_set_float(map, "memory_util", g->memory_util);
    rc = rc ? rc : qp_msg_set_float(map, "util", g->util);
    rc = rc ? rc : qp_msg_set_uint(map, "sms", g->sms);
    rc = rc ? rc : qp_msg_set_uint(map, "cuda_cores", g->cuda_cores);
    rc = rc ? rc : qp_msg_set_uint(map, "share_reserved", g->share_reserved);
    rc = rc ? rc : qp_msg_set_uint(map, "vgpus", g->vgpus);
    rc = rc ? rc : qp_msg_set_float(map, "leased", g->leased);
    rc = rc ? rc : qp_msg_set_uint(map, "hung", g->hung);
    rc = rc ? rc : qp_msg_set_uint(map, "memory_unmanaged_mb", g->memory_unmanaged_mb);
    rc = rc ? rc : qp_msg_set_uint(map, "unmanaged_procs", g->unmanaged_procs);
    return rc;
}

int qp_gpu_get(const qp_msg_t *map, qp_gpu_t *g, char err[QP_ERR_LEN])
{
    struct rd r;
    if (start(&r, map, "GPU", err) < 0)
        return r.rc;
    g->index = (int)rd_int(&r, "index", 0, INT_MAX);
    rd_str(&r, "uuid", g->uuid, sizeof g->uuid);
    rd_str(&r, "name", g->name, sizeof g->name);
    g->memory_total_mb = rd_uint(&r, "memory_total_mb", UINT64_MAX);
    g->memory_used_mb = rd_uint(&r, "memory_used_mb", UINT64_MAX);
    g->memory_reserved_mb = rd_uint(&r, "memory_reserved_mb", UINT64_MAX);
    g->memory_util = rd_float(&r, "memory_util");
    g->util = rd_float(&r, "util");
    g->sms = (unsigned)rd_uint(&r, "sms", UINT_MAX);
    g->cuda_cores = (unsigned)rd_uint(&r, "cuda_cores", UINT_MAX);
    g->share_reserved = (unsigned)rd_uint(&r, "share_reserved", UINT_MAX);
    g->vgpus = (unsigned)rd_uint(&r, "vgpus", UINT_MAX);
    g->leased = rd_float(&r, "leased");
    g->hung = rd_uint(&r, "hung", UINT64_MAX);
    g->memory_unmanaged_mb = rd_uint_opt(&r, "memory_unmanaged_mb", UINT64_MAX);
    g->unmanaged_procs = (unsigned)rd_uint_opt(&r, "unmanaged_procs", UINT_MAX);
    return r.rc;
}

/* ---- stats totals ------------------------------------------------------------------ */

int qp_totals_put(qp_msg_t *map, const qp_totals_t *t)
{
    int rc = qp_msg_set_uint(map, "vgpus_total", t->vgpus_total);
    rc = rc ? rc : qp_msg_set_uint(map, "vgpus_active", t->vgpus_active);
    rc = rc ? rc : qp_msg_set_uint(map, "memory_reserved_mb", t->memory_reserved_mb);
    rc = rc ? rc : qp_msg_set_uint(map, "memory_used_mb", t->memory_used_mb);
    rc = rc ? rc : qp_msg_set_uint(map, "memory_real_mb", t->memory_real_mb);
    rc = rc ? rc : qp_msg_set_uint(map, "kills", t->kills);
    return rc;
}

int qp_totals_get(const qp_msg_t *map, qp_totals_t *t, char err[QP_ERR_LEN])
{
    struct rd r;
    if (start(&r, map, "stats", err) < 0)
        return r.rc;
    t->vgpus_total = (unsigned)rd_uint(&r, "vgpus_total", UINT_MAX);
    t->vgpus_active = (unsigned)rd_uint(&r, "vgpus_active", UINT_MAX);
    t->memory_reserved_mb = rd_uint(&r, "memory_reserved_mb", UINT64_MAX);
    t->memory_used_mb = rd_uint(&r, "memory_used_mb", UINT64_MAX);
    t->memory_real_mb = rd_uint_opt(&r, "memory_real_mb", UINT64_MAX);
    t->kills = rd_uint_opt(&r, "kills", UINT64_MAX);
    return r.rc;
}

/* ---- FINDING ----------------------------------------------------------------------- */

int qp_finding_put(qp_msg_t *map, const qp_finding_t *f)
{
    int rc = qp_msg_set_str(map, "kind", f->kind);
    rc = rc ? rc : qp_msg_set_int(map, "gpu", f->gpu);
    rc = rc ? rc : qp_msg_set_str(map, "vgpu", f->vgpu);
    rc = rc ? rc : qp_msg_set_uint(map, "pid", f->pid);
    rc = rc ? rc : qp_msg_set_str(map, "name", f->name);
    rc = rc ? rc : qp_msg_set_uint(map, "memory", f->memory);
    rc = rc ? rc : qp_msg_set_uint(map, "quota", f->quota);
    rc = rc ? rc : qp_msg_set_uint(map, "since", f->since);
    rc = rc ? rc : qp_msg_set_str(map, "action", f->action);
    rc = rc ? rc : qp_msg_set_str(map, "detail", f->detail);
    return rc;
}

int qp_finding_get(const qp_msg_t *map, qp_finding_t *f, char err[QP_ERR_LEN])
{
    struct rd r;
    if (start(&r, map, "FINDING", err) < 0)
        return r.rc;
    rd_str(&r, "kind", f->kind, sizeof f->kind);
    f->gpu = (int)rd_int(&r, "gpu", 0, INT_MAX);
    rd_str(&r, "vgpu", f->vgpu, sizeof f->vgpu);
    f->pid = (unsigned)rd_uint(&r, "pid", UINT_MAX);
    rd_str(&r, "name", f->name, sizeof f->name);
    f->memory = rd_uint(&r, "memory", UINT64_MAX);
    f->quota = rd_uint(&r, "quota", UINT64_MAX);
    f->since = rd_uint(&r, "since", UINT64_MAX);
    rd_str(&r, "action", f->action, sizeof f->action);
    rd_str(&r, "detail", f->detail, sizeof f->detail);
    return r.rc;
}
