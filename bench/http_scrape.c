/* http_scrape.c - GET /metrics with 1,000 vGPUs: how long a scrape takes, end to end
 * (connect to last byte, as Prometheus sees it), against a real qarbiter on the simulated
 * GPU. Goal: p50 <= 50 ms. Then, in this process on a made-up host of the same size,
 * what each scrape costs the arbiter's loop (building the view) and its HTTP thread
 * (rendering the text), and the same for the dashboard's JSON.
 *   make bench B=http_scrape      QV_BENCH_N=200 scrapes (default 50), QV_BENCH_VGPUS */
#include "arbiter/api.h"
#include "arbiter/prometheus.h"
#include "arbiter/view.h"
#include "proto/units.h"
#include "qvgpu.h"
#include "tests/ctl_support.h"
#include "tests/harness.h"
#include "arbiter/http.h"
#include "tests/http_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const uint64_t *sorted, size_t n, double p)
{
    return (double)sorted[(size_t)(p / 100.0 * (double)(n - 1) + 0.5)];
}

static void report(const char *what, uint64_t *ns, size_t n, double unit, const char *uname)
{
    qsort(ns, n, sizeof *ns, cmp);
    printf("%-28s n=%-4zu p50 %8.3f %s  p90 %8.3f %s  max %8.3f %s\n", what, n,
           pct(ns, n, 50) / unit, uname, pct(ns, n, 90) / unit, uname, pct(ns, n, 100) / unit,
           uname);
}

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : dflt;
}

/* The in-process part: a made-up host with nvgpus vGPUs, some busy. */
static void in_process(int nvgpus)
{
    qa_config_t cfg;
    qa_config_defaults(&cfg);
    cfg.oversub_share = 100;
    qa_gpu_desc_t g[2] = {
        {0, "GPU-aaaa", "NVIDIA GeForce GTX 1080", 8192 * QP_MIB, 20, 2560},
        {1, "GPU-bbbb", "NVIDIA GeForce GTX 1080", 8192 * QP_MIB, 20, 2560},
    };
    qa_host_t *h = qa_host_new(g, 2, &cfg);
    char err[QP_ERR_LEN], vm[64];
    for (int i = 0; i < nvgpus; i++) {
        snprintf(vm, sizeof vm, "bench-vm-%d", i);
        qa_spec_t s = {.vm = vm, .memory_mb = 8, .share = 1, .gpu = -1};
        qa_vgpu_t *v;
        if (qa_host_create(h, &s, 0, &v, err) < 0) {
            fprintf(stderr, "http_scrape: %s\n", err);
            exit(1);
        }
        v->mem_used = (uint64_t)(i % 8) * QP_MIB;
        v->procs = i % 3 == 0;
        v->util = (double)(i % 7);
        v->leases = (uint64_t)i * 10;
    }
    qa_metrics_t m;
    qa_metrics_init(&m);
    enum { N = 200 };
    uint64_t build[N], prom[N / 4], json[N / 4];
    size_t bytes = 0, jbytes = 0;
    for (int i = 0; i < N; i++) {
        uint64_t t0 = qt_now_ns();
        qa_view_t *v = qa_view_build(h, &m, 10, NULL, 0, 0);
        build[i] = qt_now_ns() - t0;
        if (i % 4 == 0) {
            char *text;
            size_t len;
            t0 = qt_now_ns();
            qa_prom_render(v, &text, &len);
            prom[i / 4] = qt_now_ns() - t0;
            bytes = len;
            free(text);
            t0 = qt_now_ns();
            qa_api_render(v, "/api/v1/vgpus", &text, &len);
            json[i / 4] = qt_now_ns() - t0;
            jbytes = len;
            free(text);
        }
        qa_view_unref(&v);
    }
    printf("\nin this process, %d vGPUs:\n", nvgpus);
    report("  view build (the loop)", build, N, 1000, "us");
    report("  /metrics render (HTTP)", prom, N / 4, 1e6, "ms");
    report("  /api/v1/vgpus render (HTTP)", json, N / 4, 1e6, "ms");
    printf("  /metrics is %zu bytes, /api/v1/vgpus %zu bytes\n", bytes, jbytes);
    qa_host_destroy(&h);
}

int main(void)
{
    int nvgpus = (int)env_long("QV_BENCH_VGPUS", 1000), n = (int)env_long("QV_BENCH_N", 50);
    if (!qa_http_available()) {
        printf("http_scrape: skipped: qarbiter was built without HTTP (no libmicrohttpd-dev)\n");
        return 0;
    }
    qt_sim_private("NVIDIA GeForce GTX 1080:8GiB:20,NVIDIA GeForce GTX 1080:8GiB:20");
    qt_arbiter_t *arb =
        qt_arbiter_start_http("[arbiter]\noversub_share = 100\n", NULL, "127.0.0.1:0");
    char addr[64], err[QV_ERR_LEN];
    if (!arb || http_address_of(arb, addr) < 0) {
        fprintf(stderr, "http_scrape: the arbiter did not start with HTTP\n");
        return 1;
    }
    qv_client_t *c = qv_connect(qt_arbiter_socket_dir(arb), err);
    if (!c) {
        fprintf(stderr, "http_scrape: %s\n", err);
        return 1;
    }
    if (ctl_create_small(c, nvgpus, "http_scrape", -1, NULL) < 0)
        return 1;
    printf("GET /metrics, %d vGPUs on 2 simulated GPUs, one scrape every 200 ms "
           "(each one waits for a fresh view)\n",
           nvgpus);
    uint64_t *ns = calloc((size_t)n, sizeof *ns);
    size_t bytes = 0;
    for (int i = -3; i < n; i++) {
        qt_sleep_ms(200);
        uint64_t t0 = qt_now_ns();
        http_resp_t r = http_get(addr, "/metrics", 10000);
        uint64_t t = qt_now_ns() - t0;
        if (r.status != 200) {
            fprintf(stderr, "http_scrape: GET /metrics: %d\n", r.status);
            return 1;
        }
        bytes = r.len;
        if (i >= 0)
            ns[i] = t;
        http_resp_free(&r);
    }
    report("scrape (connect to last byte)", ns, (size_t)n, 1e6, "ms");
    printf("%zu bytes a scrape; goal p50 <= 50 ms: %s\n", bytes,
           pct(ns, (size_t)n, 50) / 1e6 <= 50 ? "met" : "MISSED");
    free(ns);
    qv_disconnect(&c);
    qt_arbiter_destroy(&arb);
    in_process(nvgpus);
    return 0;
}
