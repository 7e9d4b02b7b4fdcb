/* records.c - LIMITS, INFO, GPU, stats totals and FINDINGs to and from message maps,
 * through field tables made from the lists in records.h. Pure, no state. */
#include "proto/records.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

/* ---- the tables ----------------------------------------------------------------------- */

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

#define LIMITS(m, t, max, opt) QP_FIELD(qp_limits_t, m, t, max, opt)
#define INFO(m, t, max, opt) QP_FIELD(qp_info_t, m, t, max, opt)
#define GPU(m, t, max, opt) QP_FIELD(qp_gpu_t, m, t, max, opt)
#define TOTALS(m, t, max, opt) QP_FIELD(qp_totals_t, m, t, max, opt)
#define FINDING(m, t, max, opt) QP_FIELD(qp_finding_t, m, t, max, opt)

static const qp_field_t limits_fields[] = {QP_LIMITS_FIELDS(LIMITS)};
static const qp_field_t info_fields[] = {QP_INFO_FIELDS(INFO)};
static const qp_field_t gpu_fields[] = {QP_GPU_FIELDS(GPU, GPU)};
static const qp_field_t totals_fields[] = {QP_TOTALS_FIELDS(TOTALS)};
static const qp_field_t finding_fields[] = {QP_FINDING_FIELDS(FINDING)};

const qp_record_desc_t qp_limits_desc = {"LIMITS", limits_fields, COUNT(limits_fields)};
const qp_record_desc_t qp_info_desc = {"INFO", info_fields, COUNT(info_fields)};
const qp_record_desc_t qp_gpu_desc = {"GPU", gpu_fields, COUNT(gpu_fields)};
const qp_record_desc_t qp_totals_desc = {"stats", totals_fields, COUNT(totals_fields)};
const qp_record_desc_t qp_finding_desc = {"FINDING", finding_fields, COUNT(finding_fields)};

/* ---- writing -------------------------------------------------------------------------- */

/* An integer member of f (4 or 8 bytes wide: asserted, the tables are ours). */
static uint64_t get_u(const void *rec, const qp_field_t *f)
{
    const char *p = (const char *)rec + f->offset;
    assert(f->size == 4 || f->size == 8);
    if (f->size == 4) {
        uint32_t v;
        memcpy(&v, p, 4);
        return v;
    }
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static int64_t get_i(const void *rec, const qp_field_t *f)
{
    const char *p = (const char *)rec + f->offset;
    assert(f->size == 4 || f->size == 8);
    if (f->size == 4) {
        int32_t v;
        memcpy(&v, p, 4);
        return v;
    }
    int64_t v;
    memcpy(&v, p, 8);
    return v;
}

int qp_record_put(qp_msg_t *map, const qp_record_desc_t *desc, const void *rec)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < desc->n; i++) {
        const qp_field_t *f = &desc->fields[i];
        const char *p = (const char *)rec + f->offset;
        if (f->offset == QP_FIELD_UNKEPT)
            continue;
        switch (f->type) {
        case QP_FT_STR:
            rc = qp_msg_set_str(map, f->key, p);
            break;
        case QP_FT_UINT:
            rc = qp_msg_set_uint(map, f->key, get_u(rec, f));
            break;
        case QP_FT_INT:
        case QP_FT_INDEX:
            rc = qp_msg_set_int(map, f->key, get_i(rec, f));
            break;
        case QP_FT_FLOAT: {
            double d;
            assert(f->size == sizeof d);
            memcpy(&d, p, sizeof d);
            rc = qp_msg_set_float(map, f->key, d);
            break;
        }
        }
    }
    return rc;
}

/* ---- reading -------------------------------------------------------------------------- */

static int bad(const qp_record_desc_t *desc, const qp_field_t *f, const char *why, char *err)
{
    snprintf(err, QP_ERR_LEN, "%s field '%s' %s", desc->what, f->key, why);
    return -EPROTO;
}

/* Stores v into f's member of rec, unless f is kept nowhere. */
static void store(void *rec, const qp_field_t *f, const void *v, size_t n)
{
    if (f->offset != QP_FIELD_UNKEPT)
        memcpy((char *)rec + f->offset, v, n);
}

/* Reads an unsigned field into rec. Returns 0 or -EPROTO. */
static int read_u(const qp_msg_t *map, const qp_record_desc_t *desc, const qp_field_t *f,
                  void *rec, char *err)
{
    uint64_t v, max = f->size == 4 ? UINT32_MAX : UINT64_MAX;
    if (f->max && f->max < max)
        max = f->max;
    if (qp_msg_get_uint(map, f->key, &v) < 0)
        return bad(desc, f, "is missing or not an unsigned integer", err);
    if (v > max)
        return bad(desc, f, "is out of range", err);
    if (f->size == 4) {
        uint32_t n = (uint32_t)v;
        store(rec, f, &n, 4);
    } else {
        store(rec, f, &v, 8);
    }
    return 0;
}

/* Reads a signed field into rec (from 0 for INDEX). Returns 0 or -EPROTO. */
static int read_i(const qp_msg_t *map, const qp_record_desc_t *desc, const qp_field_t *f,
                  void *rec, char *err)
{
    int64_t v, min = f->size == 4 ? INT32_MIN : INT64_MIN, max = f->size == 4 ? INT32_MAX
                                                                              : INT64_MAX;
    if (f->type == QP_FT_INDEX)
        min = 0;
    if (qp_msg_get_int(map, f->key, &v) < 0)
        return bad(desc, f, "is missing or not an integer", err);
    if (v < min || v > max)
        return bad(desc, f, "is out of range", err);
    if (f->size == 4) {
        int32_t n = (int32_t)v;
        store(rec, f, &n, 4);
    } else {
        store(rec, f, &v, 8);
    }
    return 0;
}

static int read_field(const qp_msg_t *map, const qp_record_desc_t *desc, const qp_field_t *f,
                      void *rec, char *err)
{
    assert(f->offset == QP_FIELD_UNKEPT || f->type == QP_FT_STR || f->type == QP_FT_FLOAT ||
           f->size == 4 || f->size == 8);
    if (f->optional && !qp_msg_has(map, f->key)) {
        if (f->offset != QP_FIELD_UNKEPT)
            memset((char *)rec + f->offset, 0, f->size);
        return 0;
    }
    switch (f->type) {
    case QP_FT_STR: {
        const char *s;
        if (qp_msg_get_str(map, f->key, &s) < 0)
            return bad(desc, f, "is missing or not a string", err);
        if (f->offset != QP_FIELD_UNKEPT && strlen(s) >= f->size)
            return bad(desc, f, "is too long", err);
        store(rec, f, s, strlen(s) + 1);
        return 0;
    }
    case QP_FT_UINT:
        return read_u(map, desc, f, rec, err);
    case QP_FT_INT:
    case QP_FT_INDEX:
        return read_i(map, desc, f, rec, err);
    case QP_FT_FLOAT: {
        double d;
        if (qp_msg_get_float(map, f->key, &d) < 0)
            return bad(desc, f, "is missing or not a number", err);
        store(rec, f, &d, sizeof d);
        return 0;
    }
    }
    return bad(desc, f, "has a type this reader does not know", err);
}

int qp_record_get(const qp_msg_t *map, const qp_record_desc_t *desc, void *rec,
                  char err[QP_ERR_LEN])
{
    if (!map) {
        snprintf(err, QP_ERR_LEN, "%s map is missing", desc->what);
        return -EPROTO;
    }
    for (size_t i = 0; i < desc->n; i++) {
        int rc = read_field(map, desc, &desc->fields[i], rec, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- the records -------------------------------------------------------------------- */

int qp_limits_put(qp_msg_t *map, const qp_limits_t *l)
{
    return qp_record_put(map, &qp_limits_desc, l);
}

int qp_info_put(qp_msg_t *map, const qp_info_t *i)
{
    return qp_record_put(map, &qp_info_desc, i);
}

int qp_gpu_put(qp_msg_t *map, const qp_gpu_t *g)
{
    return qp_record_put(map, &qp_gpu_desc, g);
}

int qp_totals_put(qp_msg_t *map, const qp_totals_t *t)
{
    return qp_record_put(map, &qp_totals_desc, t);
}

int qp_finding_put(qp_msg_t *map, const qp_finding_t *f)
{
    return qp_record_put(map, &qp_finding_desc, f);
}

int qp_limits_get(const qp_msg_t *map, qp_limits_t *l, char err[QP_ERR_LEN])
{
    return qp_record_get(map, &qp_limits_desc, l, err);
}

int qp_info_get(const qp_msg_t *map, qp_info_t *i, char err[QP_ERR_LEN])
{
    return qp_record_get(map, &qp_info_desc, i, err);
}

int qp_gpu_get(const qp_msg_t *map, qp_gpu_t *g, char err[QP_ERR_LEN])
{
    return qp_record_get(map, &qp_gpu_desc, g, err);
}

int qp_totals_get(const qp_msg_t *map, qp_totals_t *t, char err[QP_ERR_LEN])
{
    return qp_record_get(map, &qp_totals_desc, t, err);
}

int qp_finding_get(const qp_msg_t *map, qp_finding_t *f, char err[QP_ERR_LEN])
{
    return qp_record_get(map, &qp_finding_desc, f, err);
}
