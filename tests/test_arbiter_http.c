/* test_arbiter_http.c - qarbiter's HTTP server on the simulated GPU: /metrics and the
 * JSON API against qgpuctl for the same state, read-only, hostile and slow clients,
 * --http values, and what a taken port does; then http.c alone, over a view function and
 * a loop the test runs. */
#include "arbiter/http.h"
#include "proto/units.h"
#include "tests/handler_support.h"
#include "tests/http_support.h"
#include "tests/shim_support.h"
#include "tests/view_support.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static http_resp_t get_ok(const char *addr, const char *path)
{
    http_resp_t r = http_get(addr, path, 10000);
    cr_assert_eq(r.status, 200, "GET %s: %d %s", path, r.status, r.body);
    return r;
}

/* ---- what it shows --------------------------------------------------------------------- */

static bool leases_shown(void *arg)
{
    const char **a = arg; /* addr, series */
    http_resp_t r = get_ok(a[0], "/metrics");
    const char *at = strstr(r.body, a[1]);
    bool ok = at && strtod(at + strlen(a[1]) + 1, NULL) >= 1;
    http_resp_free(&r);
    return ok;
}

TestSuite(qa_http, .init = http_require);

Test(qa_http, metrics_show_the_memory_processes_and_refusals_qgpuctl_sees)
{
    char addr[64];
    qt_arbiter_t *arb = http_arbiter(CTL_GPUS, NULL, NULL, addr);
    qts_vgpu_t v;
    qts_vgpu_create(arb, &v, "--vm", "web-1", "--profile", "Q1", "--gpu", "1", NULL);
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    /* holds 200 MiB, is refused 2 GiB past its 1 GiB quota, then runs kernels */
    qt_proc_t *w =
        qts_start(&e, "init", "alloc:cuMemAlloc_v2:direct:200M", "alloc:cuMemAlloc_v2:direct:2048M",
                  "ready", "spin:1000000:2:30000", NULL);
    cr_assert(qts_wait_line(w, "ready", 20000), "%s", qt_proc_stderr(w));
    cr_assert(strstr(qt_proc_stdout(w), "alloc cuMemAlloc_v2 direct 2\n"),
              "the allocation past the quota is refused (CUDA_ERROR_OUT_OF_MEMORY): %s",
              qt_proc_stdout(w));
    char labels[128], series[256];
    snprintf(labels, sizeof labels, "{vgpu=\"%s\",vm=\"web-1\",gpu=\"1\"}", v.id);
    snprintf(series, sizeof series, "qvgpu_vgpu_leases_granted_total%s", labels);
    const char *arg[] = {addr, series};
    cr_assert(qt_wait_until(leases_shown, arg, 10000), "leases granted should show");

    json_t *info = ctl_json(arb, "info", v.id);
    http_resp_t r = get_ok(addr, "/metrics");
    char *type = http_header(&r, "Content-Type");
    cr_assert_str_eq(type, "text/plain; version=0.0.4; charset=utf-8");
    free(type);
    snprintf(series, sizeof series, "qvgpu_vgpu_memory_used_bytes%s", labels);
    cr_assert_eq(prom_value(r.body, series),
                 (double)json_integer_value(json_object_get(info, "memory_used")));
    cr_assert_geq(prom_value(r.body, series), 200.0 * QP_MIB);
    snprintf(series, sizeof series, "qvgpu_vgpu_memory_quota_bytes%s", labels);
    cr_assert_eq(prom_value(r.body, series), 1024.0 * QP_MIB);
    snprintf(series, sizeof series, "qvgpu_vgpu_processes%s", labels);
    cr_assert_eq(prom_value(r.body, series), 1);
    snprintf(series, sizeof series, "qvgpu_vgpu_allocations_refused_total%s", labels);
    cr_assert_eq(prom_value(r.body, series), 1, "the one allocation refused past the quota");
    cr_assert_geq(prom_value(r.body, "qvgpu_arbiter_tenant_connections"), 1);
    cr_assert_geq(
        prom_value(r.body, "qvgpu_arbiter_requests_total{endpoint=\"admin\",kind=\"create\"}"), 1);
    cr_assert_geq(
        prom_value(r.body,
                   "qvgpu_arbiter_requests_total{endpoint=\"tenant\",kind=\"mem_reserve\"}"),
        2);
    cr_assert_geq(prom_value(r.body, "qvgpu_arbiter_uptime_seconds"), 0.1);
    json_decref(info);
    http_resp_free(&r);
    qt_proc_destroy(&w);
    qt_arbiter_destroy(&arb);
}

/* Fields both print must agree; util may move between the two reads. */
static void same_fields(json_t *ctl, json_t *api, const char *what)
{
    const char *key;
    json_t *want;
    json_object_foreach(ctl, key, want)
    {
        json_t *got = json_object_get(api, key);
        cr_assert_not_null(got, "%s: the API lacks '%s'", what, key);
        if (strcmp(key, "util") == 0 || strcmp(key, "memory_util") == 0)
            cr_assert_float_eq(json_number_value(got), json_number_value(want), 5, "%s", key);
        else
            cr_assert(json_equal(got, want), "%s: '%s' is %s in the API, %s in qgpuctl", what, key,
                      json_dumps(got, JSON_ENCODE_ANY), json_dumps(want, JSON_ENCODE_ANY));
    }
}

static bool holds_64m(void *arg)
{
    json_t *l = ctl_json(arg, "list", NULL);
    json_int_t used = json_integer_value(
        json_object_get(json_array_get(json_object_get(l, "vgpus"), 0), "memory_used"));
    json_decref(l);
    return used >= 64 << 20;
}

Test(qa_http, the_json_api_agrees_with_qgpuctl_json)
{
    char addr[64];
    qt_arbiter_t *arb = http_arbiter(CTL_GPUS, NULL, NULL, addr);
    qts_vgpu_t a, b;
    qts_vgpu_create(arb, &a, "--vm", "alpha", "--profile", "Q2", NULL);
    qts_vgpu_create(arb, &b, "--vm", "beta", "--memory", "1536MiB", "--share", "30", "--limit",
                    "50", NULL);
    qts_env_t e;
    qts_env_of(&e, arb, &a);
    qt_proc_t *w = qts_start(&e, "init", "alloc:cuMemAlloc_v2:direct:64M", "hold", NULL);
    cr_assert(qts_wait_line(w, "ready", 20000), "%s", qt_proc_stderr(w));

    cr_assert(qt_wait_until(holds_64m, arb, 5000), "the workload's heartbeat reports its use");

    json_t *cl = ctl_json(arb, "list", NULL);
    http_resp_t r = get_ok(addr, "/api/v1/vgpus");
    json_t *al = http_json(&r);
    json_t *cv = json_object_get(cl, "vgpus"), *av = json_object_get(al, "vgpus");
    cr_assert_eq(json_array_size(av), 2);
    cr_assert_eq(json_array_size(cv), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *x = json_array_get(av, i);
        same_fields(json_array_get(cv, i), x, "vgpus");
        cr_assert_str_eq(json_string_value(json_object_get(x, "vm_id")),
                         json_string_value(json_object_get(x, "vm")));
        cr_assert_float_eq(json_number_value(json_object_get(x, "utilization")),
                           json_number_value(json_object_get(x, "util")) / 100, 1e-9);
    }
    json_decref(cl), json_decref(al), http_resp_free(&r);

    json_t *ci = ctl_json(arb, "info", a.id);
    char path[128];
    snprintf(path, sizeof path, "/api/v1/vgpus/%s", a.id);
    r = get_ok(addr, path);
    json_t *ai = http_json(&r);
    same_fields(ci, ai, "info");
    cr_assert_geq(json_integer_value(json_object_get(ai, "memory_used")), 64 << 20);
    cr_assert_eq(json_integer_value(json_object_get(ai, "procs")), 1);
    json_decref(ci), json_decref(ai), http_resp_free(&r);

    json_t *cg = ctl_json(arb, "gpus", NULL);
    r = get_ok(addr, "/api/v1/gpus");
    json_t *ag = http_json(&r);
    for (size_t i = 0; i < 3; i++) {
        json_t *x = json_array_get(json_object_get(ag, "gpus"), i);
        same_fields(json_array_get(json_object_get(cg, "gpus"), i), x, "gpus");
        cr_assert(json_equal(json_object_get(x, "total_memory_mb"),
                             json_object_get(x, "memory_total_mb")));
        cr_assert(json_equal(json_object_get(x, "vgpu_count"), json_object_get(x, "vgpus")));
    }
    json_decref(cg), json_decref(ag), http_resp_free(&r);

    json_t *cs = ctl_json(arb, "stats", NULL);
    r = get_ok(addr, "/api/v1/stats");
    json_t *as = http_json(&r);
    json_t *cgpus = json_incref(json_object_get(cs, "gpus"));
    json_object_del(cs, "gpus"); /* compared above */
    same_fields(cs, as, "stats");
    cr_assert_eq(json_array_size(json_object_get(as, "gpus")), json_array_size(cgpus));
    cr_assert_eq(json_integer_value(json_object_get(as, "total_vgpus")), 2);
    cr_assert_eq(json_integer_value(json_object_get(as, "active_vgpus")), 1);
    json_decref(cgpus), json_decref(cs), json_decref(as), http_resp_free(&r);
    qt_proc_destroy(&w);
    qt_arbiter_destroy(&arb);
}

Test(qa_http, shows_a_vgpu_as_soon_as_qgpuctl_made_it)
{
    char addr[64];
    qt_arbiter_t *arb = http_arbiter(CTL_GPUS, NULL, NULL, addr);
    qv_client_t *c = ctl_client(arb);
    for (int i = 0; i < 10; i++) {
        char id[QV_ID_LEN], secret[QV_SECRET_LEN], path[64];
        ctl_create(c, "vm", "Q1", id, secret);
        snprintf(path, sizeof path, "/api/v1/vgpus/%s", id);
        http_resp_t r = http_get(addr, path, 5000);
        cr_assert_eq(r.status, 200, "a view is never older than the request: %s", r.body);
        http_resp_free(&r);
        char err[QV_ERR_LEN];
        cr_assert_eq(qv_destroy(c, id, err), 0, "%s", err);
        r = http_get(addr, path, 5000);
        cr_assert_eq(r.status, 404, "gone as soon as destroyed");
        http_resp_free(&r);
    }
    qv_disconnect(&c);
    qt_arbiter_destroy(&arb);
}

Test(qa_http, serves_the_dashboard_and_a_history_of_samples)
{
    char addr[64];
    qt_arbiter_t *arb = http_arbiter(CTL_GPUS, NULL, NULL, addr);
    qv_client_t *c = ctl_client(arb);
    char id[QV_ID_LEN], secret[QV_SECRET_LEN];
    ctl_create(c, "vm", "Q1", id, secret);
    http_resp_t r = get_ok(addr, "/");
    char *type = http_header(&r, "Content-Type"), *csp = http_header(&r, "Content-Security-Policy");
    cr_assert_str_eq(type, "text/html; charset=utf-8");
    cr_assert(csp && strstr(csp, "default-src 'self'"), "no CDN, nothing from elsewhere: %s", csp);
    cr_assert(strstr(r.body, "dashboard.js") && strstr(r.body, "static/chart.js"));
    free(type), free(csp), http_resp_free(&r);
    const char *assets[] = {"/dashboard.js", "/dashboard.css"};
    for (size_t i = 0; i < 2; i++) {
        r = get_ok(addr, assets[i]);
        cr_assert_gt(r.len, 1000, "%s", assets[i]);
        http_resp_free(&r);
    }
    /* Debian's Chart.js as it is on disk, or a line saying how to get it */
    const char *chartjs = chartjs_path();
    r = http_get(addr, "/static/chart.js", 5000);
    if (chartjs) {
        struct stat st;
        cr_assert_eq(stat(chartjs, &st), 0);
        cr_assert_eq(r.status, 200);
        cr_assert_eq(r.len, (size_t)st.st_size, "%s served whole", chartjs);
    } else {
        cr_assert_eq(r.status, 404);
        cr_assert(strstr(r.body, "apt-get install libjs-chart.js"), "%s", r.body);
    }
    http_resp_free(&r);
    qt_sleep_ms(2500);
    r = get_ok(addr, "/api/v1/history");
    json_t *h = http_json(&r);
    json_int_t last = json_integer_value(json_object_get(h, "last"));
    cr_assert_geq(last, 2, "a sample a second");
    cr_assert_eq(json_array_size(json_object_get(h, "gpus")), 3);
    json_t *s = json_array_get(json_object_get(h, "vgpus"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(s, "id")), id);
    cr_assert_eq(json_array_size(json_object_get(s, "util")),
                 json_array_size(json_object_get(h, "times")));
    json_decref(h), http_resp_free(&r);
    char path[64];
    snprintf(path, sizeof path, "/api/v1/history?since=%lld", (long long)last);
    r = get_ok(addr, path);
    h = http_json(&r);
    cr_assert_leq(json_array_size(json_object_get(h, "times")), 2, "only what came since");
    json_decref(h), http_resp_free(&r);
    r = http_get(addr, "/api/v1/history?since=-1", 5000);
    cr_assert_eq(r.status, 400);
    http_resp_free(&r);
    qv_disconnect(&c);
    qt_arbiter_destroy(&arb);
}

/* ---- what it refuses --------------------------------------------------------------------- */

Test(qa_http, answers_unknown_paths_with_404)
{
    char addr[64];
    qt_arbiter_t *arb = http_arbiter(CTL_GPUS, NULL, NULL, addr);
    const char *text[] = {"/nope", "/metrics/x", "/index.html", "/../etc/passwd", "/static/x.js"};
    for (size_t i = 0; i < 5; i++) {
        http_resp_t r = http_get(addr, text[i], 5000);
        cr_assert_eq(r.status, 404, "%s: %d", text[i], r.status);
        http_resp_free(&r);
    }
    const char *api[] = {"/api/v1/vgpus/vg-99", "/api/v1/nope", "/api/v2/gpus", "/api/"};
    for (size_t i = 0; i < 4; i++) {
        http_resp_t r = http_get(addr, api[i], 5000);
        cr_assert_eq(r.status, 404, "%s: %d", api[i], r.status);
        json_t *j = http_json(&r);
        cr_assert(json_is_string(json_object_get(j, "error")), "%s", r.body);
        json_decref(j);
        http_resp_free(&r);
    }
    http_resp_t r = http_get(addr, "/api/v1/vgpus/vg-99", 5000);
    cr_assert(strstr(r.body, "there is no vGPU 'vg-99'"), "%s", r.body);
    http_resp_free(&r);
    qt_arbiter_destroy(&arb);
}

Test(qa_http, changes_nothing_whatever_the_method)
{
    char addr[64];
    qt_arbiter_t *arb = http_arbiter(CTL_GPUS, NULL, NULL, addr);
    qv_client_t *c = ctl_client(arb);
    char id[QV_ID_LEN], secret[QV_SECRET_LEN];
    ctl_create(c, "vm", "Q2", id, secret);
    const char *methods[] = {"POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    for (size_t i = 0; i < 5; i++) {
        char req[512];
        int n = snprintf(req, sizeof req,
                         "%s /api/v1/vgpus/%s HTTP/1.1\r\nHost: %s\r\nContent-Length: 19\r\n"
                         "Connection: close\r\n\r\n{\"memory_mb\": 8192}",
                         methods[i], id, addr);
        http_resp_t r = http_raw(addr, req, (size_t)n, 5000);
        cr_assert_eq(r.status, 405, "%s: %d", methods[i], r.status);
        char *allow = http_header(&r, "Allow");
        cr_assert_str_eq(allow, "GET, HEAD");
        free(allow);
        http_resp_free(&r);
    }
    qv_vgpu_t v = ctl_info(c, id);
    cr_assert_eq(v.memory_mb, 2048, "still as made");
    char req[256];
    int n = snprintf(req, sizeof req,
                     "HEAD /metrics HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", addr);
    http_resp_t r = http_raw(addr, req, (size_t)n, 5000);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.len, 0, "HEAD has no body");
    http_resp_free(&r);
    qv_disconnect(&c);
    qt_arbiter_destroy(&arb);
}

Test(qa_http, refuses_pages_asked_under_another_site_name)
{
    char addr[64];
    qt_arbiter_t *arb = http_arbiter(CTL_GPUS, NULL, NULL, addr);
    const char *port = strrchr(addr, ':') + 1;
    const char *bad[] = {"evil.example", "evil.example:%s", "127.0.0.1.evil.example:%s",
                         "localhost.evil.example"};
    const char *good[] = {"127.0.0.1:%s", "localhost:%s", "LOCALHOST", "127.0.0.2:%s"};
    for (size_t i = 0; i < 4; i++) {
        for (int ok = 0; ok < 2; ok++) {
            char host[128], req[512];
            snprintf(host, sizeof host, ok ? good[i] : bad[i], port);
            int n = snprintf(req, sizeof req,
                             "GET /api/v1/stats HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                             host);
            http_resp_t r = http_raw(addr, req, (size_t)n, 5000);
            cr_assert_eq(r.status, ok ? 200 : 403, "Host: %s gave %d", host, r.status);
            http_resp_free(&r);
        }
    }
    qt_arbiter_destroy(&arb);
}

Test(qa_http, rejects_malformed_and_oversized_requests_and_keeps_serving)
{
    char addr[64];
    qt_arbiter_t *arb = http_arbiter(CTL_GPUS, NULL, NULL, addr);
    struct {
        const char *req;
        int status; /* 0: closed without an answer (libmicrohttpd's way with garbage) */
    } bad[] = {
        {"GARBAGE\r\n\r\n", 0},
        {"\x01\x02\x03\xff\r\n\r\n", 0},
        {"GET /x y z HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 0},
        {"GET /metrics HTTP/9.9\r\nHost: x\r\n\r\n", 505},
        {"GET /metrics\r\n\r\n", 400},          /* HTTP/0.9 is not spoken */
        {"GET /metrics HTTP/1.1\r\n\r\n", 400}, /* 1.1 needs Host */
        {"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n", 400},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        http_resp_t r = http_raw(addr, bad[i].req, strlen(bad[i].req), 5000);
        if (bad[i].status)
            cr_assert_eq(r.status, bad[i].status, "%zu: %d for %s", i, r.status, bad[i].req);
        else
            cr_assert_eq(r.status, -ECONNRESET, "%zu: %d for %s", i, r.status, bad[i].req);
        http_resp_free(&r);
    }
    /* a 64 KiB header and a 64 KiB URL: over what a request may hold */
    size_t big = 64 * 1024;
    char *req = malloc(big + 256);
    int n = snprintf(req, 256, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ");
    memset(req + n, 'a', big);
    strcpy(req + n + big, "\r\n\r\n");
    http_resp_t r = http_raw(addr, req, strlen(req), 5000);
    cr_assert(r.status == 431 || r.status == 413, "an oversized header: %d", r.status);
    http_resp_free(&r);
    n = snprintf(req, 256, "GET /");
    memset(req + n, 'a', big);
    strcpy(req + n + big, " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    r = http_raw(addr, req, strlen(req), 5000);
    cr_assert(r.status == 414 || r.status == 431, "an oversized URL: %d", r.status);
    http_resp_free(&r);
    free(req);
    r = get_ok(addr, "/metrics");
    http_resp_free(&r);
    json_t *l = ctl_json(arb, "list", NULL);
    json_decref(l);
    qt_arbiter_destroy(&arb);
}

/* Median of n admin round trips (qv_info), in microseconds. */
static double info_p50_us(qv_client_t *c, const char *id, int n)
{
    double *t = calloc((size_t)n, sizeof *t);
    for (int i = 0; i < n; i++) {
        uint64_t t0 = qt_now_ns();
        qv_vgpu_t v;
        char err[QV_ERR_LEN];
        cr_assert_eq(qv_info(c, id, &v, err), 0, "%s", err);
        t[i] = (double)(qt_now_ns() - t0) / 1000;
    }
    for (int i = 1; i < n; i++) /* insertion sort: n is small */
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            double x = t[j];
            t[j] = t[j - 1];
            t[j - 1] = x;
        }
    double m = t[n / 2];
    free(t);
    return m;
}

Test(qa_http, many_slow_clients_leave_it_serving_and_the_arbiter_unaffected)
{
    char addr[64];
    qt_arbiter_t *arb = http_arbiter(CTL_GPUS, NULL, NULL, addr);
    qv_client_t *c = ctl_client(arb);
    char id[QV_ID_LEN], secret[QV_SECRET_LEN];
    ctl_create(c, "vm", "Q1", id, secret);
    double before = info_p50_us(c, id, 300);
    /* 300 clients that each send half a request line and then nothing: a thread per
     * client would be stuck; the server holds a descriptor each and serves the rest. */
    enum { SLOW = 300 };
    int fds[SLOW];
    for (int i = 0; i < SLOW; i++) {
        fds[i] = http_connect(addr);
        cr_assert_geq(fds[i], 0, "connect %d: %s", i, strerror(-fds[i]));
        cr_assert_eq(send(fds[i], "GET /met", 8, MSG_NOSIGNAL), 8);
    }
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < SLOW; i += 7) /* a byte now and then keeps them from idling out */
            send(fds[i], "r", 1, MSG_NOSIGNAL);
        uint64_t t0 = qt_now_ns();
        http_resp_t r = get_ok(addr, "/metrics");
        cr_assert_lt(qt_now_ns() - t0, 3000000000ull, "a scrape among slow clients took too long");
        http_resp_free(&r);
        r = get_ok(addr, "/api/v1/stats");
        http_resp_free(&r);
    }
    double during = info_p50_us(c, id, 300);
    cr_assert_lt(during, before * 3 + 2000,
                 "admin requests: median %.0f us before the slow clients, %.0f us among them",
                 before, during);
    for (int i = 0; i < SLOW; i++)
        close(fds[i]);
    http_resp_t r = get_ok(addr, "/metrics");
    http_resp_free(&r);
    qv_disconnect(&c);
    qt_arbiter_destroy(&arb);
}

/* Descriptors pid holds now. */
static int fds_of(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

Test(qa_http, http_clients_never_take_the_descriptors_tenants_need)
{
    /* 256 descriptors: the arbiter keeps HTTP to an eighth of them (32); the clients
     * beyond wait in the kernel's backlog, holding none of the arbiter's */
    struct rlimit rl = {256, 256};
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    char addr[64];
    qt_arbiter_t *arb = http_arbiter(CTL_GPUS, NULL, NULL, addr);
    pid_t pid = qt_proc_pid(qt_arbiter_proc(arb));
    http_resp_t r = get_ok(addr, "/metrics");
    http_resp_free(&r);
    qt_sleep_ms(200);
    int before = fds_of(pid);
    enum { N = 100 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = http_connect(addr);
        cr_assert_geq(fds[i], 0, "connect %d: %s", i, strerror(-fds[i]));
        cr_assert_eq(send(fds[i], "GET /met", 8, MSG_NOSIGNAL), 8);
    }
    qt_sleep_ms(500);
    int held = fds_of(pid) - before;
    cr_assert(held >= 16 && held <= 34, "%d HTTP clients hold %d of the arbiter's descriptors", N,
              held);
    qv_client_t *c = ctl_client(arb);
    char id[QV_ID_LEN], secret[QV_SECRET_LEN];
    ctl_create(c, "vm", "Q1", id, secret);
    ctl_tenant_t *t = ctl_tenant_new(arb, id, secret);
    cr_assert_eq(ctl_tenant_hello(t), 0, "tenants are served");
    ctl_tenant_destroy(&t);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    r = get_ok(addr, "/metrics");
    http_resp_free(&r);
    qv_disconnect(&c);
    qt_arbiter_destroy(&arb);
}

/* ---- --http ---------------------------------------------------------------------------- */

/* Runs qarbiter on fresh directories of the private sim host with extra arguments until
 * it exits or 3 s pass (then SIGTERM); returns its status and *err its stderr. */
static int arbiter_run(const char *const extra[], char **err)
{
    char *dir = qt_tmpdir(), *sock, *state;
    cr_assert(asprintf(&sock, "%s/s", dir) > 0 && asprintf(&state, "%s/st", dir) > 0);
    char *bin = qt_build_path("qarbiter");
    const char *argv[16] = {bin, "--socket-dir", sock, "--state-dir", state};
    size_t n = 5;
    for (size_t i = 0; extra[i]; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    qt_proc_t *p = qt_spawn(argv, NULL);
    cr_assert_not_null(p);
    int rc = qt_proc_wait(p, 3000);
    if (rc == -ETIMEDOUT)
        rc = -1;
    *err = strdup(qt_proc_stderr(p));
    qt_proc_destroy(&p);
    free(dir), free(sock), free(state), free(bin);
    return rc;
}

Test(qa_http, bad_http_values_are_usage_errors)
{
    qt_sim_private(NULL);
    const char *bad[] = {"8080",         "localhost:8080", "127.0.0.1:", "127.0.0.1:99999",
                         "127.0.0.1:-1", "::1:8080",       "[::1]",      "on"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *extra[] = {"--http", bad[i], NULL};
        char *err;
        cr_assert_eq(arbiter_run(extra, &err), 2, "--http %s: %s", bad[i], err);
        cr_assert(strstr(err, "qarbiter: --http"), "%s", err);
        cr_assert_eq(strchr(err, '\n') - err + 1, (long)strlen(err), "one line: %s", err);
        cr_assert(strstr(err, bad[i]), "names the value: %s", err);
        free(err);
    }
}

/* A loopback port held open (listening) by this test; *fd receives the socket. */
static int hold_port(int *fd)
{
    *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    cr_assert(bind(*fd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(*fd, 1) == 0 &&
              getsockname(*fd, (struct sockaddr *)&sa, &len) == 0);
    return ntohs(sa.sin_port);
}

Test(qa_http, a_taken_port_asked_for_stops_the_start)
{
    qt_sim_private(NULL);
    int fd, port = hold_port(&fd);
    char value[64];
    snprintf(value, sizeof value, "127.0.0.1:%d", port);
    const char *extra[] = {"--http", value, NULL};
    char *err;
    cr_assert_eq(arbiter_run(extra, &err), 1, "%s", err);
    cr_assert(strstr(err, "cannot listen on") && strstr(err, "Address already in use") &&
                  strstr(err, "--http off"),
              "%s", err);
    free(err);
    close(fd);
}

Test(qa_http, the_default_port_taken_is_a_warning_not_a_failure)
{
    qt_sim_private(NULL);
    /* 8080 held by this test, or by something else on this machine: taken either way */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(8080), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
        listen(fd, 1);
    const char *extra[] = {NULL};
    char *err;
    cr_assert_eq(arbiter_run(extra, &err), -1, "it keeps running: %s", err);
    cr_assert(strstr(err, "warn: cannot listen on 127.0.0.1:8080") &&
                  strstr(err, "the dashboard, /metrics and /api/v1 are off") &&
                  strstr(err, "serving "),
              "%s", err);
    free(err);
    close(fd);
}

Test(qa_http, off_serves_nothing)
{
    qt_sim_private(NULL);
    const char *extra[] = {"--http", "off", NULL};
    char *err;
    cr_assert_eq(arbiter_run(extra, &err), -1, "%s", err);
    cr_assert_null(strstr(err, "HTTP"), "%s", err);
    cr_assert_null(strstr(err, "8080"), "%s", err);
    free(err);
}

/* ---- http.c alone -------------------------------------------------------------------------
 * The server over a view function of the test's, its loop run by the test: no daemon. */

struct alone_http {
    qa_loop_t *loop;
    qa_host_t *host;
    qa_log_t log;
    qa_http_t *http;
    int views; /* views built, on the loop thread */
};

static qa_view_t *alone_view(void *arg)
{
    struct alone_http *a = arg;
    a->views++;
    return view_of(a->host);
}

struct get {
    const char *addr, *path;
    http_resp_t r;
};

static void *getter(void *arg)
{
    struct get *g = arg;
    g->r = http_get(g->addr, g->path, 3000);
    return NULL;
}

/* GET path while the loop runs (it builds the view the request waits for). */
static http_resp_t get_while_looping(struct alone_http *a, const char *path)
{
    struct get g = {qa_http_address(a->http), path, {0}};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, getter, &g), 0);
    qt_loop_for(a->loop, 500);
    pthread_join(t, NULL);
    return g.r;
}

Test(qa_http_alone, serves_the_json_of_a_view_the_loop_builds_and_404_for_the_rest)
{
    http_require();
    struct alone_http a = {0};
    char err[QP_ERR_LEN];
    a.loop = qa_loop_new();
    a.host = view_host();
    view_vgpu(a.host, "vm-h", "Q2", 0);
    a.log = (qa_log_t){QA_WARN, stderr};
    qa_http_opts_t o = {"127.0.0.1:0", a.loop, alone_view, &a, &a.log, NULL};
    cr_assert_not_null(a.http = qa_http_new(&o, err), "%s", err);
    cr_assert_neq(strcmp(qa_http_address(a.http), "127.0.0.1:0"), 0, "the port it really got");
    http_resp_t r = get_while_looping(&a, "/api/v1/vgpus/vg-1");
    cr_assert_eq(r.status, 200, "%s", r.body ? r.body : "");
    json_t *doc = http_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(doc, "vm")), "vm-h");
    json_decref(doc);
    http_resp_free(&r);
    cr_assert_geq(a.views, 1, "built on the loop");
    r = get_while_looping(&a, "/api/v1/vgpus/vg-2");
    cr_assert_eq(r.status, 404);
    http_resp_free(&r);
    qa_http_destroy(&a.http);
    cr_assert_null(a.http);
    qa_host_destroy(&a.host);
    qa_loop_destroy(&a.loop);
}

Test(qa_http_alone, listen_addresses_are_numeric_with_a_port_or_refused_in_one_line)
{
    struct sockaddr_storage sa;
    socklen_t len;
    char err[QP_ERR_LEN];
    cr_assert_eq(qa_http_parse_listen("127.0.0.1:8080", &sa, &len, err), 0, "%s", err);
    cr_assert_eq(sa.ss_family, AF_INET);
    cr_assert_eq(qa_http_parse_listen("[::1]:9100", &sa, &len, err), 0, "%s", err);
    cr_assert_eq(sa.ss_family, AF_INET6);
    static const char *bad[] = {"localhost:8080", "127.0.0.1", "127.0.0.1:65536", ":80",
                                "[::1]9100"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(qa_http_parse_listen(bad[i], &sa, &len, err), -EINVAL, "%s", bad[i]);
        cr_assert_null(strchr(err, '\n'));
    }
}
