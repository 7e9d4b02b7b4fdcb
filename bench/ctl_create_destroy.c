/* ctl_create_destroy.c - latency of creating and destroying a vGPU through libqvgpu, as
 * an orchestrator would, against a real qarbiter on the simulated GPU (state written to
 * disk on every change, as in production). Goal: p50 <= 200 us, p99 <= 1 ms per pair.
 * For scale it also times a read-only request (`info`, one round trip through the same
 * stack) and a bare ZeroMQ DEALER/ROUTER ping-pong over ipc between two threads: the
 * floor any request pays on this machine.
 *   make bench B=ctl_create      QV_BENCH_N=20000 for more pairs */
#include "qvgpu.h"
#include "tests/harness.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const uint64_t *sorted, size_t n, double p)
{
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return (double)sorted[i] / 1000.0;
}

static void report(const char *what, uint64_t *ns, size_t n)
{
    qsort(ns, n, sizeof *ns, cmp);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (double)ns[i];
    printf("%-16s n=%zu  p50 %7.1f us  p90 %7.1f us  p99 %7.1f us  max %8.1f us  mean %7.1f us\n",
           what, n, pct(ns, n, 50), pct(ns, n, 90), pct(ns, n, 99), pct(ns, n, 100),
           sum / (double)n / 1000.0);
}

/* Echoes n one-frame messages on a ROUTER: the other half of the floor measurement. */
static void *echo_main(void *arg)
{
    void *sock = arg;
    char id[256], body[64];
    for (;;) {
        int n = zmq_recv(sock, id, sizeof id, 0);
        int m = n < 0 ? -1 : zmq_recv(sock, body, sizeof body, 0);
        if (m < 0 || m == 4) /* "stop" */
            return NULL;
        zmq_send(sock, id, (size_t)n, ZMQ_SNDMORE);
        zmq_send(sock, body, (size_t)m, 0);
    }
}

/* Round trips of a bare DEALER/ROUTER pair over ipc, into ns. */
static void zmq_floor(uint64_t *ns, size_t n)
{
    char *dir = qt_tmpdir(), ep[300];
    snprintf(ep, sizeof ep, "ipc://%s/floor.sock", dir);
    void *ctx = zmq_ctx_new();
    void *r = zmq_socket(ctx, ZMQ_ROUTER), *d = zmq_socket(ctx, ZMQ_DEALER);
    zmq_bind(r, ep);
    zmq_connect(d, ep);
    pthread_t t;
    pthread_create(&t, NULL, echo_main, r);
    char buf[64];
    for (size_t i = 0; i < n + 100; i++) {
        uint64_t t0 = qt_now_ns();
        zmq_send(d, "ping!", 5, 0);
        zmq_recv(d, buf, sizeof buf, 0);
        if (i >= 100)
            ns[i - 100] = qt_now_ns() - t0;
    }
    zmq_send(d, "stop", 4, 0);
    pthread_join(t, NULL);
    zmq_close(d);
    zmq_close(r);
    zmq_ctx_term(ctx);
    free(dir);
}

int main(void)
{
    const char *env = getenv("QV_BENCH_N");
    size_t n = env && atoi(env) > 0 ? (size_t)atoi(env) : 5000, warm = 200;
    if (n > 1000000)
        n = 1000000;
    qt_sim_private("NVIDIA GeForce GTX 1080:8GiB:20,NVIDIA GeForce GTX 1080:8GiB:20");
    qt_arbiter_t *arb = qt_arbiter_start(NULL, NULL);
    if (!arb) {
        fprintf(stderr, "ctl_create_destroy: qarbiter did not start\n");
        return 1;
    }
    char err[QV_ERR_LEN];
    qv_client_t *c = qv_connect(qt_arbiter_socket_dir(arb), err);
    if (!c) {
        fprintf(stderr, "ctl_create_destroy: %s\n", err);
        return 1;
    }
    uint64_t *pair = calloc(n, sizeof *pair), *cr = calloc(n, sizeof *cr),
             *de = calloc(n, sizeof *de);
    qv_create_t req = {.vm = "bench", .profile = "Q1", .gpu = -1};
    for (size_t i = 0; i < n + warm; i++) {
        qv_vgpu_t v;
        uint64_t t0 = qt_now_ns();
        if (qv_create(c, &req, &v, NULL, err) < 0) {
            fprintf(stderr, "ctl_create_destroy: create: %s\n", err);
            return 1;
        }
        uint64_t t1 = qt_now_ns();
        if (qv_destroy(c, v.id, err) < 0) {
            fprintf(stderr, "ctl_create_destroy: destroy: %s\n", err);
            return 1;
        }
        uint64_t t2 = qt_now_ns();
        if (i >= warm) {
            pair[i - warm] = t2 - t0;
            cr[i - warm] = t1 - t0;
            de[i - warm] = t2 - t1;
        }
    }
    uint64_t *info = calloc(n, sizeof *info), *floor_ns = calloc(n, sizeof *floor_ns);
    qv_vgpu_t keep;
    if (qv_create(c, &req, &keep, NULL, err) < 0) {
        fprintf(stderr, "ctl_create_destroy: create: %s\n", err);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        qv_vgpu_t v;
        uint64_t t0 = qt_now_ns();
        qv_info(c, keep.id, &v, err);
        info[i] = qt_now_ns() - t0;
    }
    zmq_floor(floor_ns, n);
    printf("vGPU create+destroy through libqvgpu, %zu pairs after %zu warm-up, one client\n", n,
           warm);
    report("create", cr, n);
    report("destroy", de, n);
    report("create+destroy", pair, n);
    report("info (1 trip)", info, n);
    report("bare zmq trip", floor_ns, n);
    double p50 = pct(pair, n, 50), p99 = pct(pair, n, 99);
    printf("goal p50 <= 200 us: %s (%.1f); goal p99 <= 1000 us: %s (%.1f)\n",
           p50 <= 200 ? "met" : "MISSED", p50, p99 <= 1000 ? "met" : "MISSED", p99);
    free(pair), free(cr), free(de), free(info), free(floor_ns);
    qv_disconnect(&c);
    qt_arbiter_destroy(&arb);
    return 0;
}
