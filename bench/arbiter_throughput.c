/* arbiter_throughput.c - requests per second one qarbiter serves to 64 concurrent
 * clients, each a thread with its own connection sending `info` requests back to back
 * (one outstanding at a time), on the simulated GPU. Goal: >= 20,000 requests/s.
 *   make bench B=arbiter_throughput      QV_BENCH_CLIENTS, QV_BENCH_SECONDS to vary */
#include "proto/conn.h"
#include "proto/schema.h"
#include "qvgpu.h"
#include "tests/harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct client {
    pthread_t thread;
    const char *dir;        /* socket dir */
    const char *id;         /* vGPU to ask about */
    atomic_bool *go, *stop; /* shared start and stop flags */
    uint64_t done;          /* requests answered */
    uint64_t failed;        /* requests not answered ok */
    uint64_t worst_ns;      /* slowest round trip */
};

static qp_msg_t *hello(void *arg)
{
    (void)arg;
    return qp_new_admin_hello("bench/1");
}

static void *client_main(void *arg)
{
    struct client *c = arg;
    char err[QP_ERR_LEN];
    qp_conn_hooks_t hooks = {hello, NULL, NULL, NULL};
    qp_conn_t *conn = qp_conn_new(c->dir, QP_ADMIN, &hooks, err);
    if (!conn || qp_conn_open(conn, 10000, err) < 0) {
        fprintf(stderr, "arbiter_throughput: %s\n", err);
        c->failed++;
        qp_conn_destroy(&conn);
        return NULL;
    }
    while (!atomic_load(c->go))
        ;
    while (!atomic_load_explicit(c->stop, memory_order_relaxed)) {
        qp_msg_t *req = qp_msg_new("info"), *rep = NULL;
        qp_msg_set_str(req, "vgpu", c->id);
        uint64_t t0 = qt_now_ns();
        int rc = qp_conn_call(conn, &req, &rep, 5000, err);
        uint64_t dt = qt_now_ns() - t0;
        qp_msg_destroy(&rep);
        if (rc == 0)
            c->done++;
        else
            c->failed++;
        if (dt > c->worst_ns)
            c->worst_ns = dt;
    }
    qp_conn_destroy(&conn);
    return NULL;
}

int main(void)
{
    const char *e1 = getenv("QV_BENCH_CLIENTS"), *e2 = getenv("QV_BENCH_SECONDS");
    int nclients = e1 && atoi(e1) > 0 ? atoi(e1) : 64;
    int seconds = e2 && atoi(e2) > 0 ? atoi(e2) : 3;
    qt_sim_private("NVIDIA GeForce GTX 1080:8GiB:20,NVIDIA GeForce GTX 1080:8GiB:20");
    qt_arbiter_t *arb = qt_arbiter_start(NULL, NULL);
    if (!arb) {
        fprintf(stderr, "arbiter_throughput: qarbiter did not start\n");
        return 1;
    }
    char err[QV_ERR_LEN];
    qv_client_t *admin = qv_connect(qt_arbiter_socket_dir(arb), err);
    qv_create_t req = {.vm = "bench", .profile = "Q1", .gpu = -1};
    qv_vgpu_t v;
    if (!admin || qv_create(admin, &req, &v, NULL, err) < 0) {
        fprintf(stderr, "arbiter_throughput: %s\n", err);
        return 1;
    }
    atomic_bool go = false, stop = false;
    struct client *cl = calloc((size_t)nclients, sizeof *cl);
    for (int i = 0; i < nclients; i++) {
        cl[i] = (struct client){
            .dir = qt_arbiter_socket_dir(arb), .id = v.id, .go = &go, .stop = &stop};
        pthread_create(&cl[i].thread, NULL, client_main, &cl[i]);
    }
    qt_sleep_ms(300); /* let every client open its session */
    uint64_t t0 = qt_now_ns();
    atomic_store(&go, true);
    qt_sleep_ms(seconds * 1000);
    atomic_store(&stop, true);
    uint64_t t1 = qt_now_ns();
    uint64_t total = 0, failed = 0, worst = 0, least = UINT64_MAX, most = 0;
    for (int i = 0; i < nclients; i++) {
        pthread_join(cl[i].thread, NULL);
        total += cl[i].done;
        failed += cl[i].failed;
        worst = cl[i].worst_ns > worst ? cl[i].worst_ns : worst;
        least = cl[i].done < least ? cl[i].done : least;
        most = cl[i].done > most ? cl[i].done : most;
    }
    double rate = (double)total / ((double)(t1 - t0) / 1e9);
    printf("qarbiter throughput: %d clients, `info` round trips for %.1f s\n", nclients,
           (double)(t1 - t0) / 1e9);
    printf("  %.0f requests/s (%llu answered, %llu failed)\n", rate, (unsigned long long)total,
           (unsigned long long)failed);
    printf("  per client: fewest %llu, most %llu; slowest round trip %.1f ms\n",
           (unsigned long long)least, (unsigned long long)most, (double)worst / 1e6);
    printf("goal >= 20000 requests/s: %s\n", rate >= 20000 ? "met" : "MISSED");
    free(cl);
    qv_disconnect(&admin);
    qt_arbiter_destroy(&arb);
    return failed ? 1 : 0;
}
