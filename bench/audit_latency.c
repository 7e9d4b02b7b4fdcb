/* audit_latency.c - what the arbiter's audit (arbiter/audit.c) costs and how soon it sees,
 * against a real qarbiter on the simulated GPU:
 *  - detection: from a workload that dropped the shim (`env -u LD_PRELOAD`, 256 MiB
 *    allocated) saying "ready" until `stats` lists it, with [audit] grace_ms = 500 and
 *    with the default 2000 (the finding must last the grace; rounds come every 500 ms).
 *    Goal: within a few seconds with the default;
 *  - a process's first allocation: the wall time of `init` + one 1 MiB cuMemAlloc in a
 *    vGPU, whose first mem_reserve waits for an NVML round that measures the process
 *    (charge = real), against an arbiter that does not wait (charge = allocated); the two
 *    arbiters serve one simulated host and the runs alternate. Goal: the wait adds a few
 *    milliseconds at most.
 *   make bench B=audit      QV_BENCH_N=20 for more runs */
#include "qvgpu.h"
#include "tests/shim_support.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, double *ms, int n)
{
    qsort(ms, (size_t)n, sizeof *ms, cmp);
    printf("%-34s n=%d  min %7.1f ms  median %7.1f ms  max %7.1f ms\n", what, n, ms[0], ms[n / 2],
           ms[n - 1]);
}

static qv_client_t *client(const qt_arbiter_t *arb)
{
    char err[QV_ERR_LEN];
    qv_client_t *c = qv_connect(qt_arbiter_socket_dir(arb), err);
    if (!c) {
        fprintf(stderr, "audit_latency: %s\n", err);
        exit(1);
    }
    return c;
}

static bool listed(qv_client_t *c, unsigned pid)
{
    qv_stats_t *s;
    char err[QV_ERR_LEN];
    bool found = false;
    if (qv_stats(c, &s, err) < 0)
        return false;
    for (size_t i = 0; i < s->nfindings; i++)
        found =
            found || (strcmp(s->findings[i].kind, "unmanaged") == 0 && s->findings[i].pid == pid);
    qv_stats_free(&s);
    return found;
}

/* ms from an escapee's "ready" until the arbiter lists it; -1 when it never does. */
static double detection(qt_arbiter_t *arb, const qts_vgpu_t *v)
{
    qts_env_t e; /* the vGPU's credentials, without the shim: `env -u LD_PRELOAD` */
    qts_env_plain(&e);
    qts_env_add(&e, "QVGPU_VGPU=%s", v->id);
    qts_env_add(&e, "QVGPU_SECRET=%s", v->secret);
    qts_env_add(&e, "QVGPU_SOCKET_DIR=%s", qt_arbiter_socket_dir(arb));
    qt_proc_t *p = qts_start(&e, "init", "alloc:cuMemAlloc_v2:direct:256M", "ready", "hold", NULL);
    double ms = -1;
    if (qts_wait_line(p, "ready", 10000)) {
        qv_client_t *c = client(arb);
        uint64_t t0 = qt_now_ns();
        while (qt_now_ns() - t0 < 6000000000ull) {
            if (listed(c, (unsigned)qt_proc_pid(p))) {
                ms = (double)(qt_now_ns() - t0) / 1e6;
                break;
            }
            qt_sleep_ms(10);
        }
        qv_disconnect(&c);
    }
    qt_proc_destroy(&p);
    return ms;
}

/* ms a process of v takes from its start to its exit after init and one 1 MiB alloc. */
static double first_alloc(qt_arbiter_t *arb, const qts_vgpu_t *v)
{
    qts_env_t e;
    qts_env_of(&e, arb, v);
    uint64_t t0 = qt_now_ns();
    char *out = NULL;
    int st = qts_run(&e, &out, NULL, "init", "alloc:cuMemAlloc_v2:direct:1M", NULL);
    double ms = (double)(qt_now_ns() - t0) / 1e6;
    bool ok = st == 0 && out && strstr(out, "alloc cuMemAlloc_v2 direct 0");
    free(out);
    return ok ? ms : -1;
}

int main(void)
{
    int n = getenv("QV_BENCH_N") ? atoi(getenv("QV_BENCH_N")) : 8;
    if (n < 1 || n > 1000)
        n = 8;
    double *a = calloc((size_t)n, sizeof *a), *b = calloc((size_t)n, sizeof *b);
    qt_sim_private(NULL);

    static const char *const graces[] = {"500", "2000"};
    for (int g = 0; g < 2; g++) {
        char cfg[64];
        snprintf(cfg, sizeof cfg, "[audit]\ngrace_ms = %s\n", graces[g]);
        qt_arbiter_t *arb = qt_arbiter_start(cfg, NULL);
        qts_vgpu_t v;
        qts_vgpu_create(arb, &v, "--vm", "bench", "--profile", "Q2", NULL);
        int k = 0;
        for (int i = 0; i < n; i++) {
            double ms = detection(arb, &v);
            if (ms >= 0)
                a[k++] = ms;
        }
        char what[64];
        snprintf(what, sizeof what, "detection, grace_ms = %s", graces[g]);
        if (k)
            report(what, a, k);
        else
            printf("%-34s never detected\n", what);
        qt_arbiter_destroy(&arb);
    }

    qt_arbiter_t *real = qt_arbiter_start("[audit]\ncharge = real\n", NULL);
    qt_arbiter_t *alloc = qt_arbiter_start("[audit]\ncharge = allocated\n", NULL);
    qts_vgpu_t vr, va;
    qts_vgpu_create(real, &vr, "--vm", "real", "--profile", "Q2", NULL);
    qts_vgpu_create(alloc, &va, "--vm", "alloc", "--profile", "Q2", NULL);
    int kr = 0, ka = 0;
    for (int i = 0; i < n; i++) { /* interleaved: the machine's load hits both alike */
        double x = first_alloc(real, &vr), y = first_alloc(alloc, &va);
        if (x >= 0)
            a[kr++] = x;
        if (y >= 0)
            b[ka++] = y;
    }
    if (kr && ka) {
        report("init + first alloc, charge = real", a, kr);
        report("init + first alloc, charge = allocated", b, ka);
        printf("the measurement wait adds %.1f ms (difference of medians)\n",
               a[kr / 2] - b[ka / 2]);
    } else {
        printf("first allocation: runs failed (%d and %d of %d succeeded)\n", kr, ka, n);
    }
    qt_arbiter_destroy(&real);
    qt_arbiter_destroy(&alloc);
    free(a);
    free(b);
    return 0;
}
