/* shim_support.c - runs tests/progs/shim_work under the shim and reads its answers.
 * Single-threaded: the test's main thread calls it. */
#include "tests/shim_support.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void qts_env_add(qts_env_t *e, const char *fmt, ...)
{
    cr_assert_lt(e->n, QTS_MAX_ENV, "too many environment entries");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->own[e->n], sizeof e->own[e->n], fmt, ap);
    va_end(ap);
    e->v[e->n] = e->own[e->n];
    e->n++;
    e->v[e->n] = NULL;
}

/* Unsets what a vGPU workload gets from `qgpuctl run`, so the test's own environment
 * never leaks into a child. */
static void clear_vgpu(qts_env_t *e)
{
    qts_env_add(e, "QVGPU_VGPU");
    qts_env_add(e, "QVGPU_SECRET");
    qts_env_add(e, "QVGPU_SOCKET_DIR");
    qts_env_add(e, "CUDA_VISIBLE_DEVICES");
}

void qts_env_plain(qts_env_t *e)
{
    e->n = 0;
    e->v[0] = NULL;
    clear_vgpu(e);
    qts_env_add(e, "LD_PRELOAD");
}

void qts_env_passthrough(qts_env_t *e)
{
    e->n = 0;
    e->v[0] = NULL;
    clear_vgpu(e);
    qts_env_add(e, "%s", qt_shim_preload());
}

void qts_env_vgpu(qts_env_t *e, const char *socket_dir, const char *vgpu, const char *secret,
                  const char *gpu_uuid)
{
    e->n = 0;
    e->v[0] = NULL;
    qts_env_add(e, "%s", qt_shim_preload());
    qts_env_add(e, "QVGPU_VGPU=%s", vgpu);
    qts_env_add(e, "QVGPU_SECRET=%s", secret);
    qts_env_add(e, "QVGPU_SOCKET_DIR=%s", socket_dir);
    if (gpu_uuid)
        qts_env_add(e, "CUDA_VISIBLE_DEVICES=%s", gpu_uuid);
    else
        qts_env_add(e, "CUDA_VISIBLE_DEVICES");
}

static qt_proc_t *start_argv(const qts_env_t *e, const char *const cmds[])
{
    const char *argv[128];
    char *bin = qt_build_path("tests/progs/shim_work");
    size_t n = 0;
    argv[n++] = bin;
    while (cmds[n - 1] && n < 127) {
        argv[n] = cmds[n - 1];
        n++;
    }
    argv[n] = NULL;
    qt_proc_t *p = qt_spawn(argv, e->v);
    free(bin);
    cr_assert_not_null(p, "cannot start shim_work");
    return p;
}

static void collect(va_list ap, const char *cmds[128])
{
    size_t n = 0;
    const char *c;
    while ((c = va_arg(ap, const char *)) && n < 127)
        cmds[n++] = c;
    cmds[n] = NULL;
}

qt_proc_t *qts_start(const qts_env_t *e, ...)
{
    const char *cmds[128];
    va_list ap;
    va_start(ap, e);
    collect(ap, cmds);
    va_end(ap);
    return start_argv(e, cmds);
}

int qts_runv(const qts_env_t *e, char **out, char **err, const char *const cmds[])
{
    qt_proc_t *p = start_argv(e, cmds);
    int st = qt_proc_wait(p, 30000);
    if (out)
        *out = strdup(qt_proc_stdout(p));
    if (err)
        *err = strdup(qt_proc_stderr(p));
    qt_proc_destroy(&p);
    return st;
}

int qts_run(const qts_env_t *e, char **out, char **err, ...)
{
    const char *cmds[128];
    va_list ap;
    va_start(ap, err);
    collect(ap, cmds);
    va_end(ap);
    return qts_runv(e, out, err, cmds);
}

bool qts_line(const char *text, const char *prefix, char *line, size_t cap)
{
    size_t plen = strlen(prefix);
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len >= plen && strncmp(p, prefix, plen) == 0) {
            snprintf(line, cap, "%.*s", (int)len, p);
            return true;
        }
        p = nl ? nl + 1 : NULL;
    }
    return false;
}

long long qts_field_at(const char *text, const char *prefix, int k, int n)
{
    size_t plen = strlen(prefix);
    int seen = 0;
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len >= plen && strncmp(p, prefix, plen) == 0 && seen++ == k) {
            char line[1024];
            snprintf(line, sizeof line, "%.*s", (int)len, p);
            char *save, *tok = strtok_r(line + plen, " ", &save);
            for (int i = 0; i < n && tok; i++)
                tok = strtok_r(NULL, " ", &save);
            cr_assert_not_null(tok, "line '%s' has no field %d", line, n);
            return strtoll(tok, NULL, 10);
        }
        p = nl ? nl + 1 : NULL;
    }
    cr_assert_fail("no line %d starting '%s' in:\n%s", k, prefix, text);
    return 0;
}

long long qts_field(const char *text, const char *prefix, int n)
{
    return qts_field_at(text, prefix, 0, n);
}

int qts_count_lines(const char *text, const char *prefix)
{
    int count = 0;
    size_t plen = strlen(prefix);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, prefix, plen) == 0)
            count++;
        const char *nl = strchr(p, '\n');
        p = nl ? nl + 1 : NULL;
    }
    return count;
}

bool qts_wait_lines(qt_proc_t *p, const char *prefix, int count, int timeout_ms)
{
    uint64_t end = qt_now_ns() + (uint64_t)timeout_ms * 1000000u;
    while (qts_count_lines(qt_proc_stdout(p), prefix) < count) {
        if (qt_now_ns() >= end)
            return false;
        qt_sleep_ms(2);
    }
    return true;
}

bool qts_wait_line(qt_proc_t *p, const char *prefix, int timeout_ms)
{
    return qts_wait_lines(p, prefix, 1, timeout_ms);
}

int qts_gpu_uuids(char uuids[][64], int max)
{
    qts_env_t e;
    char *out = NULL;
    qts_env_plain(&e);
    cr_assert_eq(qts_run(&e, &out, NULL, "init", "devices", NULL), 0);
    int n = 0;
    for (int i = 0; i < max; i++) {
        char prefix[32], line[256];
        snprintf(prefix, sizeof prefix, "dev %d 0 ", i);
        if (!qts_line(out, prefix, line, sizeof line))
            break;
        snprintf(uuids[n++], 64, "%s", line + strlen(prefix));
    }
    free(out);
    return n;
}

/* ---- with a real arbiter ------------------------------------------------------------- */

/* The value of NAME in `export NAME=VALUE` lines (quotes removed) into val. */
static bool export_value(const char *text, const char *name, char *val, size_t cap)
{
    char prefix[128], line[1024];
    snprintf(prefix, sizeof prefix, "export %s=", name);
    if (!qts_line(text, prefix, line, sizeof line))
        return false;
    char *v = line + strlen(prefix);
    size_t len = strlen(v);
    if (len >= 2 && (v[0] == '\'' || v[0] == '"') && v[len - 1] == v[0]) {
        v[len - 1] = '\0';
        v++;
    }
    snprintf(val, cap, "%s", v);
    return true;
}

void qts_vgpu_create(qt_arbiter_t *arb, qts_vgpu_t *v, ...)
{
    const char *argv[32];
    size_t n = 0;
    va_list ap;
    va_start(ap, v);
    const char *a;
    argv[n++] = "create";
    while ((a = va_arg(ap, const char *)) && n < 30)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    char *out = NULL, *err = NULL;
    /* qt_ctl takes varargs: pass up to 12 arguments through. */
    const char *x[13] = {0};
    for (size_t i = 0; i < n && i < 12; i++)
        x[i] = argv[i];
    int st = qt_ctl(arb, &out, &err, x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8], x[9],
                    x[10], x[11], NULL);
    cr_assert_eq(st, 0, "qgpuctl create failed: %s", err);
    cr_assert_eq(sscanf(out, "%63s", v->id), 1, "qgpuctl create printed no id");
    free(out);
    free(err);
    out = err = NULL;
    st = qt_ctl(arb, &out, &err, "env", v->id, NULL);
    cr_assert_eq(st, 0, "qgpuctl env failed: %s", err);
    cr_assert(export_value(out, "QVGPU_SECRET", v->secret, sizeof v->secret),
              "no QVGPU_SECRET in:\n%s", out);
    cr_assert(export_value(out, "CUDA_VISIBLE_DEVICES", v->gpu_uuid, sizeof v->gpu_uuid),
              "no CUDA_VISIBLE_DEVICES in:\n%s", out);
    free(out);
    free(err);
}

int qts_env_unreachable(qts_env_t *e, const char *vgpu)
{
    char uuids[4][64];
    int n = qts_gpu_uuids(uuids, 4);
    cr_assert_geq(n, 1);
    char *dir = qt_tmpdir();
    qts_env_vgpu(e, dir, vgpu, "00112233445566778899aabbccddeeff", uuids[0]);
    free(dir); /* qts_env_vgpu copied it */
    return n;
}

void qts_env_of(qts_env_t *e, const qt_arbiter_t *arb, const qts_vgpu_t *v)
{
    qts_env_vgpu(e, qt_arbiter_socket_dir(arb), v->id, v->secret, v->gpu_uuid);
}

long long qts_vgpu_used(qt_arbiter_t *arb, const qts_vgpu_t *v)
{
    char *out = NULL;
    long long used = -1;
    if (qt_ctl(arb, &out, NULL, "--json", "info", v->id, NULL) == 0 && out) {
        const char *p = strstr(out, "\"memory_used\"");
        if (p && (p = strchr(p, ':')))
            used = strtoll(p + 1, NULL, 10);
    }
    free(out);
    return used;
}

bool qts_used_becomes(qt_arbiter_t *arb, const qts_vgpu_t *v, long long want, int ms)
{
    uint64_t end = qt_now_ns() + (uint64_t)ms * 1000000u;
    for (;;) {
        if (qts_vgpu_used(arb, v) == want)
            return true;
        if (qt_now_ns() >= end)
            return false;
        qt_sleep_ms(50);
    }
}

qt_arbiter_t *qts_arbiter_with(qts_vgpu_t *v, const char *profile)
{
    qt_sim_private(NULL);
    qt_arbiter_t *arb = qt_arbiter_start(NULL, NULL);
    cr_assert_not_null(arb, "qarbiter did not start");
    qts_vgpu_create(arb, v, "--vm", "vm-a", "--profile", profile, NULL);
    return arb;
}
