/* test_arbiter_prometheus.c - /metrics: the text a view renders to, and a real
 * Prometheus server scraping a real arbiter. */
#include "arbiter/loop.h"
#include "arbiter/prometheus.h"
#include "proto/units.h"
#include "tests/http_support.h"
#include "tests/shim_support.h"
#include "tests/view_support.h"

#include <criterion/criterion.h>
#include <math.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *render(qa_host_t *h)
{
    qa_view_t *v = view_of(h);
    char *text;
    size_t len;
    cr_assert_eq(qa_prom_render(v, &text, &len), 0);
    cr_assert_eq(strlen(text), len);
    qa_view_unref(&v);
    cr_assert_null(v);
    return text;
}

Test(qa_prom, shows_each_vgpu_with_its_quota_use_and_counters)
{
    qa_host_t *h = view_host();
    qa_vgpu_t *a = view_vgpu(h, "web-1", "Q2", 0);
    qa_vgpu_t *b = view_vgpu(h, "batch", "Q1", 1);
    a->mem_used = 300 * QP_MIB;
    a->mem_reserved = 512 * QP_MIB;
    a->procs = 2;
    a->util = 37.5;
    a->refused = 4;
    a->leases = 1234;
    b->limit = 0;
    char *t = render(h);
    cr_assert_eq(
        prom_value(t, "qvgpu_vgpu_memory_quota_bytes{vgpu=\"vg-1\",vm=\"web-1\",gpu=\"0\"}"),
        2048.0 * QP_MIB);
    cr_assert_eq(
        prom_value(t, "qvgpu_vgpu_memory_used_bytes{vgpu=\"vg-1\",vm=\"web-1\",gpu=\"0\"}"),
        300.0 * QP_MIB);
    cr_assert_eq(
        prom_value(t, "qvgpu_vgpu_memory_reserved_bytes{vgpu=\"vg-1\",vm=\"web-1\",gpu=\"0\"}"),
        512.0 * QP_MIB);
    cr_assert_eq(prom_value(t, "qvgpu_vgpu_processes{vgpu=\"vg-1\",vm=\"web-1\",gpu=\"0\"}"), 2);
    cr_assert_float_eq(
        prom_value(t, "qvgpu_vgpu_utilization_ratio{vgpu=\"vg-1\",vm=\"web-1\",gpu=\"0\"}"), 0.375,
        1e-9);
    cr_assert_float_eq(
        prom_value(t, "qvgpu_vgpu_share_ratio{vgpu=\"vg-1\",vm=\"web-1\",gpu=\"0\"}"), 0.2, 1e-9);
    cr_assert_eq(prom_value(t, "qvgpu_vgpu_limit_ratio{vgpu=\"vg-2\",vm=\"batch\",gpu=\"1\"}"), 1,
                 "no limit is a cap of the whole GPU");
    cr_assert_eq(
        prom_value(t, "qvgpu_vgpu_allocations_refused_total{vgpu=\"vg-1\",vm=\"web-1\",gpu=\"0\"}"),
        4);
    cr_assert_eq(
        prom_value(t, "qvgpu_vgpu_leases_granted_total{vgpu=\"vg-1\",vm=\"web-1\",gpu=\"0\"}"),
        1234);
    cr_assert_eq(prom_value(t, "qvgpu_vgpu_cuda_cores{vgpu=\"vg-2\",vm=\"batch\",gpu=\"1\"}"), 128);
    free(t);
    qa_host_destroy(&h);
}

Test(qa_prom, shows_each_gpu_by_index_uuid_and_name)
{
    qa_host_t *h = view_host();
    view_vgpu(h, "a", "Q4", 0);
    view_vgpu(h, "b", "Q2", 0);
    qa_gpu_t *g = qa_host_gpu(h, 0);
    g->memory_used = 1000 * QP_MIB;
    g->util = 55;
    g->leased = 80;
    g->hung = 2;
    char *t = render(h);
    const char *l0 = "{gpu=\"0\",uuid=\"GPU-aaaa\",name=\"NVIDIA GeForce GTX 1080\"}";
    char s[256];
#define AT(metric) (snprintf(s, sizeof s, "%s%s", metric, l0), s)
    cr_assert_eq(prom_value(t, AT("qvgpu_gpu_memory_total_bytes")), 8192.0 * QP_MIB);
    cr_assert_eq(prom_value(t, AT("qvgpu_gpu_memory_used_bytes")), 1000.0 * QP_MIB);
    cr_assert_eq(prom_value(t, AT("qvgpu_gpu_memory_reserved_bytes")), 6144.0 * QP_MIB);
    cr_assert_float_eq(prom_value(t, AT("qvgpu_gpu_utilization_ratio")), 0.55, 1e-9);
    cr_assert_float_eq(prom_value(t, AT("qvgpu_gpu_leased_ratio")), 0.8, 1e-9);
    cr_assert_float_eq(prom_value(t, AT("qvgpu_gpu_share_reserved_ratio")), 0.6, 1e-9);
    cr_assert_eq(prom_value(t, AT("qvgpu_gpu_leases_taken_back_total")), 2);
    cr_assert_eq(prom_value(t, AT("qvgpu_gpu_vgpus")), 2);
#undef AT
    cr_assert_eq(prom_value(t, "qvgpu_gpu_vgpus{gpu=\"1\",uuid=\"GPU-bbbb\",name=\"NVIDIA GeForce "
                               "GTX 1050\"}"),
                 0);
    cr_assert_eq(prom_value(t, "qvgpu_arbiter_vgpus"), 2);
    cr_assert_eq(prom_value(t, "qvgpu_arbiter_vgpus_active"), 0);
    cr_assert_eq(prom_value(t, "qvgpu_arbiter_tenant_connections"), 3);
    free(t);
    qa_host_destroy(&h);
}

Test(qa_prom, shows_real_use_and_what_the_audit_found)
{
    qa_host_t *h = view_host();
    qa_vgpu_t *a = view_vgpu(h, "web-1", "Q2", 0);
    a->mem_real = 700 * QP_MIB;
    a->mem_unmanaged = 200 * QP_MIB;
    a->procs_unmanaged = 1;
    qa_gpu_t *g = qa_host_gpu(h, 1);
    g->memory_unmanaged = 3000 * QP_MIB;
    g->procs_unmanaged = 2;
    qp_finding_t f[3] = {{.kind = "unmanaged", .gpu = 1},
                         {.kind = "unmanaged", .gpu = 1},
                         {.kind = "over_quota", .gpu = 0}};
    qa_metrics_t m;
    qa_metrics_init(&m);
    qa_view_t *v = qa_view_build(h, &m, 0, f, 3, 5);
    char *t;
    size_t len;
    cr_assert_eq(qa_prom_render(v, &t, &len), 0);
    const char *l = "{vgpu=\"vg-1\",vm=\"web-1\",gpu=\"0\"}";
    char s[256];
    snprintf(s, sizeof s, "qvgpu_vgpu_memory_real_bytes%s", l);
    cr_assert_eq(prom_value(t, s), 700.0 * QP_MIB);
    snprintf(s, sizeof s, "qvgpu_vgpu_memory_unmanaged_bytes%s", l);
    cr_assert_eq(prom_value(t, s), 200.0 * QP_MIB);
    snprintf(s, sizeof s, "qvgpu_vgpu_unmanaged_processes%s", l);
    cr_assert_eq(prom_value(t, s), 1);
    const char *l1 = "{gpu=\"1\",uuid=\"GPU-bbbb\",name=\"NVIDIA GeForce GTX 1050\"}";
    snprintf(s, sizeof s, "qvgpu_gpu_memory_unmanaged_bytes%s", l1);
    cr_assert_eq(prom_value(t, s), 3000.0 * QP_MIB);
    snprintf(s, sizeof s, "qvgpu_gpu_unmanaged_processes%s", l1);
    cr_assert_eq(prom_value(t, s), 2);
    cr_assert_eq(prom_value(t, "qvgpu_arbiter_audit_kills_total"), 5);
    cr_assert_eq(prom_value(t, "qvgpu_arbiter_audit_findings{kind=\"unmanaged\"}"), 2);
    cr_assert_eq(prom_value(t, "qvgpu_arbiter_audit_findings{kind=\"over_quota\"}"), 1);
    free(t);
    qa_view_unref(&v);
    qa_host_destroy(&h);
}

Test(qa_prom, escapes_label_values)
{
    qa_host_t *h = view_host();
    view_vgpu(h, "a \"quoted\" \\ name", "Q1", 0);
    char *t = render(h);
    cr_assert_eq(
        prom_value(
            t, "qvgpu_vgpu_processes{vgpu=\"vg-1\",vm=\"a \\\"quoted\\\" \\\\ name\",gpu=\"0\"}"),
        0);
    free(t);
    qa_host_destroy(&h);
}

/* Every family has HELP and TYPE before its samples, every sample line is NAME[{..}]
 * VALUE, names are qvgpu_ and counters _total: what a scraper refuses otherwise. */
Test(qa_prom, follows_the_exposition_format)
{
    qa_host_t *h = view_host();
    view_vgpu(h, "a", "Q1", 0);
    char *t = render(h);
    char family[128] = "";
    char type[32] = "";
    int samples = 0;
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
        char name[128], kind[32];
        if (sscanf(line, "# HELP %127s", name) == 1) {
            cr_assert_str_neq(name, family, "two HELP lines for %s", name);
            snprintf(family, sizeof family, "%s", name);
            type[0] = '\0';
            continue;
        }
        if (sscanf(line, "# TYPE %127s %31s", name, kind) == 2) {
            cr_assert_str_eq(name, family);
            snprintf(type, sizeof type, "%s", kind);
            continue;
        }
        cr_assert_neq(line[0], '#', "%s", line);
        cr_assert(type[0], "sample before its TYPE: %s", line);
        cr_assert_eq(strncmp(line, family, strlen(family)), 0, "%s outside %s", line, family);
        cr_assert_eq(strncmp(line, "qvgpu_", 6), 0);
        if (strcmp(type, "counter") == 0)
            cr_assert(strstr(family, "_total"), "counter %s lacks _total", family);
        char *value = strrchr(line, ' ');
        cr_assert_not_null(value);
        char *end;
        strtod(value + 1, &end);
        cr_assert_eq(*end, '\0', "not a number: %s", line);
        samples++;
    }
    cr_assert_gt(samples, 100);
    free(t);
    qa_host_destroy(&h);
}

Test(qa_prom, shows_requests_by_kind_and_a_cumulative_latency_histogram)
{
    qa_host_t *h = view_host();
    qa_metrics_t m;
    qa_metrics_init(&m);
    for (int i = 0; i < 3; i++)
        qa_metrics_request(&m, QP_ADMIN, QP_REQ_CREATE, qa_now_ns() - 3000000); /* 3 ms each */
    qa_metrics_request(&m, QP_TENANT, -1, qa_now_ns());
    qa_view_t *v = qa_view_build(h, &m, 0, NULL, 0, 0);
    char *t;
    size_t len;
    cr_assert_eq(qa_prom_render(v, &t, &len), 0);
    cr_assert_eq(prom_value(t, "qvgpu_arbiter_requests_total{endpoint=\"admin\",kind=\"create\"}"),
                 3);
    cr_assert_eq(
        prom_value(t, "qvgpu_arbiter_requests_total{endpoint=\"tenant\",kind=\"malformed\"}"), 1);
    cr_assert_eq(prom_value(t, "qvgpu_arbiter_requests_total{endpoint=\"admin\",kind=\"list\"}"), 0,
                 "kinds nobody asked yet are there at 0");
    cr_assert_null(strstr(t, "endpoint=\"tenant\",kind=\"create\""),
                   "no series for a kind the endpoint does not serve");
    const char *b =
        "qvgpu_arbiter_request_duration_seconds_bucket{endpoint=\"admin\",kind=\"create\"";
    char s[256];
    snprintf(s, sizeof s, "%s,le=\"0.0025\"}", b);
    cr_assert_eq(prom_value(t, s), 0);
    snprintf(s, sizeof s, "%s,le=\"0.005\"}", b);
    cr_assert_eq(prom_value(t, s), 3);
    snprintf(s, sizeof s, "%s,le=\"0.25\"}", b);
    cr_assert_eq(prom_value(t, s), 3, "buckets are cumulative");
    snprintf(s, sizeof s, "%s,le=\"+Inf\"}", b);
    cr_assert_eq(prom_value(t, s), 3);
    double sum = prom_value(
        t, "qvgpu_arbiter_request_duration_seconds_sum{endpoint=\"admin\",kind=\"create\"}");
    cr_assert(sum >= 0.009 && sum < 0.1, "sum %g", sum);
    cr_assert_eq(
        prom_value(
            t, "qvgpu_arbiter_request_duration_seconds_count{endpoint=\"admin\",kind=\"create\"}"),
        3);
    free(t);
    qa_view_unref(&v);
    qa_host_destroy(&h);
}

/* ---- a real Prometheus server -------------------------------------------------------- */

#define PROMETHEUS "/usr/bin/prometheus"

/* s with every byte outside [A-Za-z0-9] percent-encoded, for a query string. */
static char *url_encode(const char *s)
{
    char *out = malloc(strlen(s) * 3 + 1), *o = out;
    cr_assert_not_null(out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            *o++ = (char)c;
        else
            o += sprintf(o, "%%%02X", c);
    }
    *o = '\0';
    return out;
}

/* Prometheus on a free loopback port scraping target's /metrics every second; *addr
 * receives where its API is ("127.0.0.1:PORT", 64 bytes). */
static qt_proc_t *start_prometheus(const char *target, char addr[64])
{
    need_tool(PROMETHEUS, "prometheus");
    char *dir = qt_tmpdir(), *conf, *data, *flag_conf, *flag_data, *flag_web;
    cr_assert(asprintf(&conf, "%s/prometheus.yml", dir) > 0);
    cr_assert(asprintf(&data, "%s/data", dir) > 0);
    FILE *f = fopen(conf, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: qvgpu\n    scrape_interval: 1s\n"
            "    scrape_timeout: 1s\n    static_configs:\n      - targets: ['%s']\n",
            target);
    cr_assert_eq(fclose(f), 0);
    snprintf(addr, 64, "127.0.0.1:%d", http_free_port());
    cr_assert(asprintf(&flag_conf, "--config.file=%s", conf) > 0);
    cr_assert(asprintf(&flag_data, "--storage.tsdb.path=%s", data) > 0);
    cr_assert(asprintf(&flag_web, "--web.listen-address=%s", addr) > 0);
    const char *argv[] = {PROMETHEUS, flag_conf, flag_data, flag_web, "--log.level=warn", NULL};
    qt_proc_t *p = qt_spawn(argv, NULL);
    cr_assert_not_null(p);
    free(dir), free(conf), free(data), free(flag_conf), free(flag_data), free(flag_web);
    return p;
}

/* The value of PromQL expr's only sample now, or NAN while it has none; fails the test
 * when Prometheus answers an error. */
static double query(const char *prom, const char *expr)
{
    char *q = url_encode(expr), path[1024];
    snprintf(path, sizeof path, "/api/v1/query?query=%s", q);
    free(q);
    http_resp_t r = http_get(prom, path, 5000);
    if (r.status != 200) { /* still starting */
        http_resp_free(&r);
        return NAN;
    }
    json_t *doc = http_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(doc, "status")), "success", "%s", r.body);
    json_t *result = json_object_get(json_object_get(doc, "data"), "result");
    double v = NAN;
    if (json_array_size(result) == 1) {
        const char *text = json_string_value(
            json_array_get(json_object_get(json_array_get(result, 0), "value"), 1));
        cr_assert_not_null(text);
        v = strtod(text, NULL);
    }
    json_decref(doc);
    http_resp_free(&r);
    return v;
}

Test(qa_prom, a_real_prometheus_scrapes_the_memory_qgpuctl_shows)
{
    char addr[64], prom[64];
    qt_arbiter_t *arb = http_arbiter(CTL_GPUS, NULL, NULL, addr);
    qts_vgpu_t v;
    qts_vgpu_create(arb, &v, "--vm", "prom-vm", "--profile", "Q2", NULL);
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    qt_proc_t *work = qts_start(&e, "init", "alloc:cuMemAlloc_v2:direct:300M", "hold", NULL);
    cr_assert(qts_wait_line(work, "ready", 20000), "the workload did not start: %s",
              qt_proc_stderr(work));
    /* the arbiter learns what a process holds from its next heartbeat (500 ms) */
    uint64_t until = qt_now_ns() + 10000000000ull;
    while (qts_vgpu_used(arb, &v) < 300ll << 20 && qt_now_ns() < until)
        qt_sleep_ms(20);
    long long used = qts_vgpu_used(arb, &v);
    cr_assert_geq(used, 300ll << 20, "qgpuctl shows %lld bytes used", used);

    qt_proc_t *p = start_prometheus(addr, prom);
    char expr[256];
    snprintf(expr, sizeof expr, "qvgpu_vgpu_memory_used_bytes{vgpu=\"%s\",vm=\"prom-vm\"}", v.id);
    double got = NAN;
    until = qt_now_ns() + 60000000000ull;
    while (isnan(got) && qt_now_ns() < until) {
        qt_sleep_ms(250);
        cr_assert_eq(waitpid(qt_proc_pid(p), NULL, WNOHANG), 0, "prometheus exited: %s",
                     qt_proc_stderr(p));
        got = query(prom, expr);
    }
    cr_assert(!isnan(got), "Prometheus never had %s: %s", expr, qt_proc_stderr(p));
    cr_assert_eq((long long)got, qts_vgpu_used(arb, &v),
                 "Prometheus says %.0f bytes, qgpuctl --json info %lld", got,
                 qts_vgpu_used(arb, &v));
    cr_assert_eq(query(prom, "up{job=\"qvgpu\"}"), 1, "the scrape is healthy");
    cr_assert_eq(query(prom, "count(qvgpu_gpu_memory_total_bytes)"), 3);
    cr_assert_eq(query(prom, "sum(qvgpu_vgpu_processes)"), 1);
    qt_proc_destroy(&p);
    qt_proc_destroy(&work);
    qt_arbiter_destroy(&arb);
}
