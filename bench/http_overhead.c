/* http_overhead.c - does watching the arbiter slow it down? Admin request latency (one
 * client, qv_info round trips back to back) against a real qarbiter with 1,000 vGPUs,
 * in windows that alternate, in one run, between nobody on HTTP and a Prometheus-like
 * scraper plus a dashboard-like poller, each once a second (/metrics; the page's
 * /api/v1/history?since=, /api/v1/vgpus and /api/v1/stats, after a full history as
 * when the page opens). Windows go A B B A ... so that drift cancels.
 * Goal: latency watched / not watched <= 1.05 (p50 and p99), pooled over the run; the
 * median of the pairs' ratios is printed too, as it shrugs off a window that another
 * program on the machine spoiled.
 *   make bench B=http_overhead    QV_BENCH_PAIRS (8), QV_BENCH_WINDOW_S (4), QV_BENCH_VGPUS
 * QV_BENCH_CONTROL=1 leaves B windows unwatched too: the ratios then show what the
 * machine's own noise does to them. */
#include "qvgpu.h"
#include "tests/ctl_support.h"
#include "tests/harness.h"
#include "arbiter/http.h"
#include "tests/http_support.h"

#include <pthread.h>
#include <stdatomic.h>
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
    return (double)sorted[(size_t)(p / 100.0 * (double)(n - 1) + 0.5)] / 1000.0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *x, int n)
{
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : (x[n / 2 - 1] + x[n / 2]) / 2;
}

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : dflt;
}

/* The watcher: while watching, a scrape and a dashboard poll every second. */
static struct {
    char addr[64];
    atomic_bool watching; /* B windows */
    atomic_bool stop;
    atomic_uint_fast64_t scrapes, polls, failures;
    atomic_uint_fast64_t busy_ns; /* time spent in requests, for the mean */
} w;

static void get(const char *path)
{
    uint64_t t0 = qt_now_ns();
    http_resp_t r = http_get(w.addr, path, 10000);
    w.busy_ns += qt_now_ns() - t0;
    if (r.status != 200)
        w.failures++;
    http_resp_free(&r);
}

/* The "last" of a history document, or 0. */
static unsigned long long history_last(void)
{
    http_resp_t r = http_get(w.addr, "/api/v1/history", 10000);
    const char *at = r.status == 200 ? strstr(r.body, "\"last\":") : NULL;
    unsigned long long last = at ? strtoull(at + 7, NULL, 10) : 0;
    http_resp_free(&r);
    return last;
}

static void *watcher(void *arg)
{
    (void)arg;
    bool was = false;
    unsigned long long since = 0;
    while (!w.stop) {
        if (!w.watching) {
            was = false;
            qt_sleep_ms(20);
            continue;
        }
        uint64_t next = qt_now_ns() + 1000000000ull;
        if (!was) /* the page opens: the whole ten minutes */
            since = history_last();
        was = true;
        get("/metrics");
        w.scrapes++;
        char path[96];
        snprintf(path, sizeof path, "/api/v1/history?since=%llu", since);
        get(path);
        get("/api/v1/vgpus");
        get("/api/v1/stats");
        since++;
        w.polls++;
        while (qt_now_ns() < next && w.watching && !w.stop)
            qt_sleep_ms(10);
    }
    return NULL;
}

/* info round trips for window_s seconds into *ns (grown as needed). */
static size_t measure(qv_client_t *c, const char *id, int window_s, uint64_t **ns, size_t *cap)
{
    size_t n = 0;
    uint64_t end = qt_now_ns() + (uint64_t)window_s * 1000000000ull;
    char err[QV_ERR_LEN];
    while (qt_now_ns() < end) {
        if (n == *cap) {
            *cap = *cap ? *cap * 2 : 65536;
            *ns = realloc(*ns, *cap * sizeof **ns);
        }
        qv_vgpu_t v;
        uint64_t t0 = qt_now_ns();
        if (qv_info(c, id, &v, err) < 0) {
            fprintf(stderr, "http_overhead: info: %s\n", err);
            exit(1);
        }
        (*ns)[n++] = qt_now_ns() - t0;
    }
    return n;
}

int main(void)
{
    int nvgpus = (int)env_long("QV_BENCH_VGPUS", 1000);
    bool control = env_long("QV_BENCH_CONTROL", 0) != 0;
    int pairs = (int)env_long("QV_BENCH_PAIRS", 8),
        window_s = (int)env_long("QV_BENCH_WINDOW_S", 4);
    if (!qa_http_available()) {
        printf("http_overhead: skipped: qarbiter was built without HTTP (no libmicrohttpd-dev)\n");
        return 0;
    }
    qt_sim_private("NVIDIA GeForce GTX 1080:8GiB:20,NVIDIA GeForce GTX 1080:8GiB:20");
    qt_arbiter_t *arb =
        qt_arbiter_start_http("[arbiter]\noversub_share = 100\n", NULL, "127.0.0.1:0");
    char err[QV_ERR_LEN];
    if (!arb || http_address_of(arb, w.addr) < 0) {
        fprintf(stderr, "http_overhead: the arbiter did not start with HTTP\n");
        return 1;
    }
    qv_client_t *c = qv_connect(qt_arbiter_socket_dir(arb), err);
    if (!c) {
        fprintf(stderr, "http_overhead: %s\n", err);
        return 1;
    }
    char id[QV_ID_LEN] = "";
    if (ctl_create_small(c, nvgpus, "http_overhead", nvgpus / 2, id) < 0)
        return 1;
    pthread_t t;
    pthread_create(&t, NULL, watcher, NULL);
    printf("admin request latency (qv_info round trips), %d vGPUs, %d pairs of %d s windows, "
           "A = nobody on HTTP, B = /metrics and the dashboard once a second%s\n",
           nvgpus, pairs, window_s, control ? " (CONTROL RUN: B unwatched too)" : "");
    uint64_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0, capa = 0, capb = 0;
    double ratios50[64], ratios99[64];
    measure(c, id, 1, &a, &capa); /* warm-up, discarded */
    for (int p = 0; p < pairs && p < 64; p++) {
        double p50[2], p99[2];
        for (int k = 0; k < 2; k++) {
            bool watched = (p % 2 == 0) ? k == 1 : k == 0; /* A B, then B A */
            w.watching = watched && !control;
            qt_sleep_ms(100);
            uint64_t *x = NULL;
            size_t cap = 0, n = measure(c, id, window_s, &x, &cap);
            qsort(x, n, sizeof *x, cmp);
            p50[watched] = pct(x, n, 50);
            p99[watched] = pct(x, n, 99);
            uint64_t **all = watched ? &b : &a;
            size_t *nall = watched ? &nb : &na, *call = watched ? &capb : &capa;
            if (*nall + n > *call) {
                *call = *nall + n;
                *all = realloc(*all, *call * sizeof **all);
            }
            memcpy(*all + *nall, x, n * sizeof *x);
            *nall += n;
            free(x);
        }
        ratios50[p] = p50[1] / p50[0];
        ratios99[p] = p99[1] / p99[0];
        printf("pair %d: p50 %.1f -> %.1f us (x%.3f), p99 %.1f -> %.1f us (x%.3f)\n", p + 1, p50[0],
               p50[1], ratios50[p], p99[0], p99[1], ratios99[p]);
    }
    w.watching = false;
    w.stop = true;
    pthread_join(t, NULL);
    qsort(a, na, sizeof *a, cmp);
    qsort(b, nb, sizeof *b, cmp);
    double r50 = pct(b, nb, 50) / pct(a, na, 50), r99 = pct(b, nb, 99) / pct(a, na, 99);
    printf("A (not watched): n=%zu p50 %.1f us p90 %.1f us p99 %.1f us\n", na, pct(a, na, 50),
           pct(a, na, 90), pct(a, na, 99));
    printf("B (%s): n=%zu p50 %.1f us p90 %.1f us p99 %.1f us\n", control ? "control" : "watched",
           nb, pct(b, nb, 50), pct(b, nb, 90), pct(b, nb, 99));
    printf("scrapes %llu, dashboard polls %llu, failed requests %llu, mean HTTP request %.1f ms\n",
           (unsigned long long)w.scrapes, (unsigned long long)w.polls,
           (unsigned long long)w.failures,
           w.scrapes ? (double)w.busy_ns / 1e6 / (double)(w.scrapes * 4) : 0.0);
    int np = pairs < 64 ? pairs : 64;
    printf("median of the pairs' ratios: p50 x%.3f, p99 x%.3f\n", median(ratios50, np),
           median(ratios99, np));
    printf("ratio watched / not, pooled: p50 x%.3f, p99 x%.3f; goal <= 1.05: %s\n", r50, r99,
           r50 <= 1.05 && r99 <= 1.05 ? "met" : "MISSED");
    free(a), free(b);
    qv_disconnect(&c);
    qt_arbiter_destroy(&arb);
    return 0;
}
