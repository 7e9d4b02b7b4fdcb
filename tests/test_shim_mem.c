/* test_shim_mem.c - per-vGPU memory quotas against a real qarbiter: every charged
 * function through every route is refused past the quota and gives back exactly what it
 * took; processes of one vGPU never exceed it together; the virtual views; live resize;
 * one vGPU's workload cannot see or use another's quota; pass-through changes nothing. */
#include "proto/conn.h"
#include "proto/schema.h"
#include "tests/shim_support.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

static const char *const routes[] = {"direct", "dlsym", "next", "procaddr", "procaddr1"};
#define NROUTES (sizeof routes / sizeof *routes)

/* In a fresh Q1 vGPU, each of the nsyms allocation variants through each route: 600 MiB
 * is granted, 600 MiB more refused, and after the free 600 MiB granted again; at the end
 * the whole quota but the context's memory is free and the arbiter has everything back. */
static void check_refusals(const char *const syms[], size_t nsyms)
{
    qts_vgpu_t v;
    qt_arbiter_t *arb = qts_arbiter_with(&v, "Q1");
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    const char *cmds[128] = {"init"};
    static char bufs[64][96];
    size_t n = 1;
    cr_assert_leq(nsyms * NROUTES, 24);
    for (size_t f = 0; f < nsyms; f++) {
        for (size_t r = 0; r < NROUTES; r++) {
            char *alloc = bufs[f * NROUTES + r];
            snprintf(alloc, sizeof bufs[0], "alloc:%s:%s:600M", syms[f], routes[r]);
            cmds[n++] = alloc;
            cmds[n++] = alloc;
            cmds[n++] = "free";
            cmds[n++] = alloc;
            cmds[n++] = "free";
        }
    }
    cmds[n++] = "info";
    cmds[n] = NULL;
    char *out = NULL, *err = NULL;
    cr_assert_eq(qts_runv(&e, &out, &err, cmds), 0, "%s", err);
    for (size_t f = 0; f < nsyms; f++) {
        for (size_t r = 0; r < NROUTES; r++) {
            char prefix[128];
            snprintf(prefix, sizeof prefix, "alloc %s %s ", syms[f], routes[r]);
            cr_assert_eq(qts_field_at(out, prefix, 0, 0), 0, "%s first:\n%s", prefix, out);
            cr_assert_eq(qts_field_at(out, prefix, 1, 0), 2, "%s past the quota:\n%s", prefix, out);
            cr_assert_eq(qts_field_at(out, prefix, 2, 0), 0, "%s after the free:\n%s", prefix, out);
        }
    }
    cr_assert_eq(qts_count_lines(out, "free 0"), (int)(2 * nsyms * NROUTES), "%s", out);
    cr_assert_eq(qts_field(out, "info ", 1), (long long)(QTS_GIB - QTS_CTX),
                 "all given back; its context stays charged: %s", out);
    cr_assert_eq(qts_field(out, "info ", 2), (long long)QTS_GIB);
    cr_assert(strstr(err, "past its memory quota"), "one line says why: %s", err);
    cr_assert_eq(qts_count_lines(err, "qvgpu:"), 1, "%s", err);
    free(out);
    free(err);
    cr_assert(qts_used_becomes(arb, &v, 0, 3000), "the arbiter got everything back");
    qt_arbiter_destroy(&arb);
}

Test(shim_mem, plain_pitched_and_managed_allocations_are_refused_past_the_quota_on_every_route)
{
    static const char *const syms[] = {"cuMemAlloc_v2", "cuMemAllocPitch_v2", "cuMemAllocManaged"};
    check_refusals(syms, sizeof syms / sizeof *syms);
}

Test(shim_mem, stream_ordered_allocations_are_refused_past_the_quota_on_every_route)
{
    static const char *const syms[] = {"cuMemAllocAsync", "cuMemAllocAsync_ptsz",
                                       "cuMemAllocFromPoolAsync", "cuMemAllocFromPoolAsync_ptsz"};
    check_refusals(syms, sizeof syms / sizeof *syms);
}

Test(shim_mem, vmm_and_array_allocations_are_refused_past_the_quota_on_every_route)
{
    static const char *const syms[] = {"cuMemCreate", "cuArrayCreate_v2", "cuArray3DCreate_v2",
                                       "cuMipmappedArrayCreate"};
    check_refusals(syms, sizeof syms / sizeof *syms);
}

Test(shim_mem, physical_memory_is_charged_until_released_and_unmapped)
{
    qts_vgpu_t v;
    qt_arbiter_t *arb = qts_arbiter_with(&v, "Q1");
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    char *out = NULL;
    /* The driver keeps a released allocation while it is mapped: so does the charge. */
    cr_assert_eq(qts_run(&e, &out, NULL, "init", "alloc:cuMemCreate:direct:64M", "map:32M",
                         "map:64M", "free", "info", "unmap", "info", "unmap", "info", NULL),
                 0);
    /* free before any allocation: the quota less the context */
    long long q = (long long)(QTS_GIB - QTS_CTX), M = (long long)QTS_MIB;
    cr_assert_eq(qts_count_lines(out, "map 0"), 2, "%s", out);
    cr_assert_eq(qts_field(out, "free ", 0), 0, "%s", out);
    cr_assert_eq(qts_count_lines(out, "unmap 0"), 2, "%s", out);
    cr_assert_eq(qts_field_at(out, "info ", 0, 1), q - 64 * M, "released, mapped twice: %s", out);
    cr_assert_eq(qts_field_at(out, "info ", 1, 1), q - 64 * M, "still mapped once: %s", out);
    cr_assert_eq(qts_field_at(out, "info ", 2, 1), q, "released and unmapped: %s", out);
    free(out);
    cr_assert(qts_used_becomes(arb, &v, 0, 3000), "the arbiter got it back");
    qt_arbiter_destroy(&arb);
}

Test(shim_mem, a_pool_is_charged_what_it_holds_until_it_trims)
{
    qts_vgpu_t v;
    qt_arbiter_t *arb = qts_arbiter_with(&v, "Q1");
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    char *out = NULL;
    /* A pool grows by whole 2 MiB granules and keeps freed memory until it trims: at
     * synchronisation (release threshold 0), or with cuMemPoolTrimTo. */
    cr_assert_eq(qts_run(&e, &out, NULL, "init", "alloc:cuMemAllocAsync:direct:1M", "info",
                         "free_async", "info", "sync", "info", "pool_keep:1G",
                         "alloc:cuMemAllocAsync_ptsz:direct:100M", "free_async", "sync", "info",
                         "pool_trim:0", "info", NULL),
                 0);
    /* free before any allocation: the quota less the context */
    long long q = (long long)(QTS_GIB - QTS_CTX), M = (long long)QTS_MIB;
    cr_assert_eq(qts_field_at(out, "info ", 0, 1), q - 2 * M, "one granule: %s", out);
    cr_assert_eq(qts_field_at(out, "info ", 1, 1), q - 2 * M, "freed, still held: %s", out);
    cr_assert_eq(qts_field_at(out, "info ", 2, 1), q, "trimmed at sync: %s", out);
    cr_assert_eq(qts_field_at(out, "info ", 3, 1), q - 100 * M, "kept past sync: %s", out);
    cr_assert_eq(qts_field_at(out, "info ", 4, 1), q, "trimmed: %s", out);
    free(out);
    qt_arbiter_destroy(&arb);
}

Test(shim_mem, a_pool_destroyed_with_live_allocations_stays_charged_until_they_are_freed)
{
    qts_vgpu_t v;
    qt_arbiter_t *arb = qts_arbiter_with(&v, "Q1");
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    char *out = NULL;
    /* The driver defers a busy pool's release to its allocations' frees. */
    cr_assert_eq(qts_run(&e, &out, NULL, "init", "pool_new",
                         "alloc:cuMemAllocFromPoolAsync:direct:8M",
                         "alloc:cuMemAllocFromPoolAsync_ptsz:direct:4M", "pool_destroy", "sync",
                         "info", "free", "info", "free", "info", "pool_new",
                         "alloc:cuMemAllocFromPoolAsync:direct:2M", "info", "free", "pool_destroy",
                         "info", NULL),
                 0);
    /* free before any allocation: the quota less the context */
    long long q = (long long)(QTS_GIB - QTS_CTX), M = (long long)QTS_MIB;
    cr_assert_eq(qts_count_lines(out, "pool_new 0"), 2, "%s", out);
    cr_assert_eq(qts_count_lines(out, "pool_destroy 0"), 2, "%s", out);
    cr_assert_eq(qts_count_lines(out, "free 0"), 3, "%s", out);
    cr_assert_eq(qts_field_at(out, "info ", 0, 1), q - 12 * M, "destroyed, busy: %s", out);
    cr_assert_leq(qts_field_at(out, "info ", 1, 1), q - 8 * M, "one still live: %s", out);
    cr_assert_eq(qts_field_at(out, "info ", 2, 1), q, "drained, given back: %s", out);
    cr_assert_eq(qts_field_at(out, "info ", 3, 1), q - 2 * M, "a new pool: %s", out);
    cr_assert_eq(qts_field_at(out, "info ", 4, 1), q, "destroyed idle: %s", out);
    free(out);
    cr_assert(qts_used_becomes(arb, &v, 0, 3000), "the arbiter got it all back");
    qt_arbiter_destroy(&arb);
}

Test(shim_mem, charges_exactly_what_the_device_holds)
{
    qts_vgpu_t v;
    qt_arbiter_t *arb = qts_arbiter_with(&v, "Q1");
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    char *out = NULL;
    /* A pitched allocation holds pitch x height: 4000-byte rows padded by the driver. */
    cr_assert_eq(qts_run(&e, &out, NULL, "init", "alloc:cuMemAllocPitch_v2:direct:40M", "info",
                         "free", "alloc:cuMemAlloc_v2:direct:1000000", "info", NULL),
                 0);
    long long after_pitch = qts_field(out, "info ", 1);
    long long rows = 40 * QTS_MIB / 4096;
    long long charged_pitch = (long long)(QTS_GIB - QTS_CTX) - after_pitch;
    cr_assert_geq(charged_pitch, rows * 4000, "%lld", charged_pitch);
    cr_assert_eq(charged_pitch % rows, 0, "a whole pitch per row: %lld", charged_pitch);
    cr_assert_leq(charged_pitch, rows * 4096 * 2);
    const char *second = strstr(strstr(out, "info "), "\ninfo ");
    cr_assert_not_null(second);
    cr_assert_eq((long long)(QTS_GIB - QTS_CTX) - atoll(second + 8), 1000000,
                 "a plain one holds its size");
    free(out);
    qt_arbiter_destroy(&arb);
}

Test(shim_mem, an_array_is_charged_a_bound_of_its_layout_without_asking_the_driver)
{
    qts_vgpu_t v;
    qt_arbiter_t *arb = qts_arbiter_with(&v, "Q1");
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    char *out = NULL;
    /* The driver tells an ordinary array's size to nobody: the shim charges rows padded to
     * 512 bytes plus 64 KiB, which covers what the (simulated) device holds. */
    cr_assert_eq(qts_run(&e, &out, NULL, "init", "alloc:cuArrayCreate_v2:direct:64M", "info",
                         "alloc:cuMipmappedArrayCreate:direct:16M", "info", "free", "free", "info",
                         NULL),
                 0);
    /* free before any allocation: the quota less the context */
    long long q = (long long)(QTS_GIB - QTS_CTX), M = (long long)QTS_MIB, K = 1024;
    cr_assert_eq(qts_count_lines(out, "alloc cu"), 2, "%s", out);
    cr_assert_eq(qts_field(out, "alloc cuArrayCreate_v2 direct ", 0), 0, "%s", out);
    cr_assert_eq(qts_field(out, "alloc cuMipmappedArrayCreate direct ", 0), 0, "%s", out);
    /* 1024 rows of 4096 float4 texels (64 KiB each), plus 64 KiB */
    cr_assert_eq(qts_field_at(out, "info ", 0, 1), q - 64 * M - 64 * K, "%s", out);
    /* one level of 256 rows of 4096 float4 texels, plus 64 KiB */
    cr_assert_eq(qts_field_at(out, "info ", 1, 1), q - 80 * M - 128 * K, "%s", out);
    cr_assert_eq(qts_field_at(out, "info ", 2, 1), q, "all given back: %s", out);
    free(out);
    qt_arbiter_destroy(&arb);
}

Test(shim_mem, destroying_a_context_gives_its_memory_back)
{
    qts_vgpu_t v;
    qt_arbiter_t *arb = qts_arbiter_with(&v, "Q1");
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    char *out = NULL;
    cr_assert_eq(qts_run(&e, &out, NULL, "init", "alloc:cuMemAlloc_v2:direct:700M", "reset", "info",
                         "alloc:cuMemAlloc_v2:direct:700M", NULL),
                 0);
    cr_assert_eq(qts_field(out, "reset ", 0), 0);
    cr_assert_eq(qts_field(out, "info ", 1), (long long)(QTS_GIB - QTS_CTX),
                 "only the context's memory: %s", out);
    const char *second = strstr(strstr(out, "alloc ") + 1, "alloc ");
    cr_assert_not_null(second);
    cr_assert_eq(atoi(second + strlen("alloc cuMemAlloc_v2 direct ")), 0, "%s", out);
    free(out);
    qt_arbiter_destroy(&arb);
}

Test(shim_mem, processes_of_one_vgpu_never_exceed_its_quota_together)
{
    qts_vgpu_t v;
    qt_arbiter_t *arb = qts_arbiter_with(&v, "Q2");
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    enum { N = 4 };
    qt_proc_t *p[N];
    /* Each makes its context first, and the arbiter measures them all (it samples every
     * 500 ms) before anyone allocates: a context made when the quota is full already would
     * push it over, which no shim can refuse. */
    for (int i = 0; i < N; i++)
        p[i] = qts_start(&e, "init", "sleep:1500", "grab:32M", "hold", NULL);
    long long chunks = 0;
    for (int i = 0; i < N; i++) {
        cr_assert(qts_wait_line(p[i], "ready", 30000), "process %d: %s", i, qt_proc_stderr(p[i]));
        chunks += qts_field(qt_proc_stdout(p[i]), "grab ", 0);
    }
    /* Together they hold at most the quota less their four contexts (2048 - 4 x 256 MiB:
     * 32 chunks), and reclaim lets them fill it. */
    cr_assert_leq(chunks, 32, "over-committed: %lld chunks of 32 MiB", chunks);
    cr_assert_geq(chunks, 24, "reclaim should let them fill the quota: %lld", chunks);
    cr_assert(qts_used_becomes(arb, &v, chunks * 32 * (long long)QTS_MIB, 3000));
    for (int i = 0; i < N; i++)
        qt_proc_destroy(&p[i]);
    qt_arbiter_destroy(&arb);
}

Test(shim_mem, threads_of_one_process_racing_for_the_quota_get_all_of_it_and_no_more)
{
    /* 128 MiB beside the context: each grant adds 8 MiB of headroom, one chunk, so 16
     * threads race for every grant. */
    qt_sim_private(NULL);
    qt_arbiter_t *arb = qt_arbiter_start(NULL, NULL);
    cr_assert_not_null(arb);
    qts_vgpu_t v;
    char quota[32];
    snprintf(quota, sizeof quota, "%lluMiB", 128 + QTS_CTX / QTS_MIB);
    qts_vgpu_create(arb, &v, "--vm", "vm-a", "--memory", quota, "--share", "10", NULL);
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    char *out = NULL, *err = NULL;
    cr_assert_eq(qts_run(&e, &out, &err, "init", "threads:16:grab:8M", "info", NULL), 0);
    cr_assert_eq(qts_field(out, "threads ", 0), 16, "each thread ends refused: %s", out);
    /* 16 chunks fill the quota exactly: contention must not refuse one early. */
    cr_assert_eq(qts_field(out, "threads ", 2), 16, "%s\n%s", out, err);
    cr_assert_eq(qts_field(out, "info ", 1), 0);
    free(out);
    free(err);
    qt_arbiter_destroy(&arb);
}

Test(shim_mem, views_show_the_quota_and_the_whole_vgpus_use)
{
    qts_vgpu_t v;
    qt_arbiter_t *arb = qts_arbiter_with(&v, "Q2");
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    qt_proc_t *holder = qts_start(&e, "init", "alloc:cuMemAlloc_v2:direct:300M", "hold", NULL);
    cr_assert(qts_wait_line(holder, "ready", 10000));
    cr_assert(qts_used_becomes(arb, &v, 300 * QTS_MIB, 3000));
    char *out = NULL;
    cr_assert_eq(qts_run(&e, &out, NULL, "init", "alloc:cuMemAlloc_v2:direct:100M", "info",
                         "info:v1", "totalmem", "totalmem:v1", "nvml", NULL),
                 0);
    /* The vGPU's use: both processes' allocations and their two contexts. */
    long long q = 2 * (long long)QTS_GIB, used = 400 * (long long)QTS_MIB + 2 * (long long)QTS_CTX;
    cr_assert_eq(qts_field(out, "info ", 2), q);
    cr_assert_eq(qts_field(out, "info ", 1), q - used, "free = quota - the vGPU's use: %s", out);
    cr_assert_eq(qts_field(out, "totalmem ", 1), q);
    char line[512];
    cr_assert(qts_line(out, "nvml ", line, sizeof line));
    long long total, nused, nfree;
    cr_assert_eq(sscanf(line, "nvml 0 1 %lld %lld %lld", &total, &nused, &nfree), 3, "%s", line);
    cr_assert_eq(total, q);
    cr_assert_eq(nused, used);
    cr_assert_eq(nfree, q - used);
    free(out);
    qt_proc_destroy(&holder);
    qt_arbiter_destroy(&arb);
}

Test(shim_mem, resize_below_use_kills_nothing_and_raising_applies_at_once)
{
    qts_vgpu_t v;
    qt_arbiter_t *arb = qts_arbiter_with(&v, "Q1");
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    const char *a = "alloc cuMemAlloc_v2 direct ";
    qt_proc_t *p = qts_start(&e, "init", "alloc:cuMemAlloc_v2:direct:600M", "ready", "sleep:1500",
                             "alloc:cuMemAlloc_v2:direct:16M", "info", "free",
                             "alloc:cuMemAlloc_v2:direct:16M", "ready", "sleep:1500",
                             "alloc:cuMemAlloc_v2:direct:1500M", "info", NULL);
    cr_assert(qts_wait_line(p, "ready", 10000));
    cr_assert_eq(qt_ctl(arb, NULL, NULL, "resize", v.id, "--memory", "512MiB", NULL), 0);
    cr_assert(qts_wait_lines(p, "ready", 2, 10000), "%s", qt_proc_stdout(p));
    cr_assert_eq(qt_ctl(arb, NULL, NULL, "resize", v.id, "--memory", "2GiB", NULL), 0);
    cr_assert_eq(qt_proc_wait(p, 20000), 0, "the process was not killed: %s", qt_proc_stderr(p));
    const char *o = qt_proc_stdout(p);
    cr_assert_eq(qts_field_at(o, a, 0, 0), 0);
    /* Lowered below its use: new allocations fail, and nothing is free... */
    cr_assert_eq(qts_field_at(o, a, 1, 0), 2, "%s", o);
    cr_assert_eq(qts_field_at(o, "info ", 0, 2), 512 * (long long)QTS_MIB);
    cr_assert_eq(qts_field_at(o, "info ", 0, 1), 0);
    /* ...until use drops under the quota. */
    cr_assert_eq(qts_field_at(o, "free ", 0, 0), 0);
    cr_assert_eq(qts_field_at(o, a, 2, 0), 0, "%s", o);
    /* Raised: applies at once. */
    cr_assert_eq(qts_field_at(o, a, 3, 0), 0, "%s", o);
    cr_assert_eq(qts_field_at(o, "info ", 1, 2), 2 * (long long)QTS_GIB);
    qt_proc_destroy(&p);
    qt_arbiter_destroy(&arb);
}

Test(shim_mem, a_workload_cannot_use_or_see_another_vgpus_quota)
{
    qts_vgpu_t a, b;
    qt_arbiter_t *arb = qts_arbiter_with(&a, "Q1");
    qts_vgpu_create(arb, &b, "--vm", "vm-b", "--profile", "Q2", NULL);
    qts_env_t e;
    char *out = NULL, *err = NULL;
    /* A's secret does not open B. */
    qts_env_vgpu(&e, qt_arbiter_socket_dir(arb), b.id, a.secret, b.gpu_uuid);
    cr_assert_eq(qts_run(&e, &out, &err, "init", "alloc:cuMemAlloc_v2:direct:1M", "info", NULL), 0);
    cr_assert_eq(qts_field(out, "alloc cuMemAlloc_v2 direct ", 0), 2);
    cr_assert_eq(qts_field(out, "info ", 2), 0, "B's quota must not show: %s", out);
    cr_assert(strstr(err, "refuses this process"), "%s", err);
    free(out);
    free(err);
    /* Each sees its own quota, and A's use does not touch B's. */
    qts_env_of(&e, arb, &a);
    qt_proc_t *pa = qts_start(&e, "init", "alloc:cuMemAlloc_v2:direct:700M", "info", "hold", NULL);
    cr_assert(qts_wait_line(pa, "ready", 10000));
    cr_assert_eq(qts_field(qt_proc_stdout(pa), "info ", 2), (long long)QTS_GIB);
    qts_env_of(&e, arb, &b);
    cr_assert_eq(qts_run(&e, &out, NULL, "init", "info", "alloc:cuMemAlloc_v2:direct:1700M", NULL),
                 0);
    cr_assert_eq(qts_field(out, "info ", 2), 2 * (long long)QTS_GIB);
    /* Nothing of A's; at most B's own context, once the arbiter has told it. */
    cr_assert_geq(qts_field(out, "info ", 1), 2 * (long long)QTS_GIB - (long long)QTS_CTX, "%s",
                  out);
    cr_assert_eq(qts_field(out, "alloc cuMemAlloc_v2 direct ", 0), 0);
    free(out);
    qt_proc_destroy(&pa);
    qt_arbiter_destroy(&arb);
}

/* A tenant's own connection, as its shim holds it: hello with v's credentials. */
struct tenant {
    const qts_vgpu_t *v;
};

static qp_msg_t *tenant_hello(void *arg)
{
    const struct tenant *t = arg;
    return qp_new_tenant_hello("test", t->v->id, t->v->secret, getpid(), 0);
}

Test(shim_mem, the_tenant_socket_neither_shows_nor_changes_any_quota)
{
    /* Everything a workload can reach: its shim's connection. Administrative requests
     * (resize, info, creds) are refused there, for its own vGPU as for another's. */
    qts_vgpu_t a, b;
    qt_arbiter_t *arb = qts_arbiter_with(&a, "Q1");
    qts_vgpu_create(arb, &b, "--vm", "vm-b", "--profile", "Q2", NULL);
    struct tenant t = {&a};
    qp_conn_hooks_t hooks = {.hello = tenant_hello, .arg = &t};
    char err[QP_ERR_LEN];
    qp_conn_t *c = qp_conn_new(qt_arbiter_socket_dir(arb), QP_TENANT, &hooks, err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(qp_conn_open(c, 5000, err), 0, "%s", err);
    static const char *const targets[] = {"a", "b"};
    for (int i = 0; i < 2; i++) {
        const char *id = i == 0 ? a.id : b.id;
        static const char *const types[] = {"resize", "info", "creds", "destroy"};
        for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
            qp_msg_t *m = qp_msg_new(types[k]), *rep = NULL;
            qp_msg_set_str(m, "vgpu", id);
            if (k == 0)
                qp_msg_set_uint(m, "memory_mb", 8192);
            int rc = qp_conn_call(c, &m, &rep, 5000, err);
            cr_assert_eq(rc, -EACCES, "%s on %s's vGPU: %d %s", types[k], targets[i], rc, err);
            qp_msg_destroy(&rep);
        }
    }
    qp_conn_destroy(&c);
    char *out = NULL;
    cr_assert_eq(qt_ctl(arb, &out, NULL, "--json", "info", b.id, NULL), 0);
    cr_assert(strstr(out, "\"memory_mb\": 2048") || strstr(out, "\"memory_mb\":2048"), "%s", out);
    free(out);
    qt_arbiter_destroy(&arb);
}

Test(shim_mem, pass_through_changes_nothing)
{
    qt_sim_private("GPU A:8GiB:20,GPU B:4GiB:10");
    static const char *const cmds[] = {"init",
                                       "count",
                                       "devices",
                                       "alloc:cuMemAlloc_v2:direct:100M",
                                       "alloc:cuMemAllocPitch_v2:procaddr:10M",
                                       "alloc:cuMemAllocManaged:dlsym:1M",
                                       "info",
                                       "totalmem",
                                       "nvml",
                                       "launch:cuLaunchKernel_ptsz:procaddr:1000",
                                       "freeall",
                                       "info",
                                       NULL};
    qts_env_t plain, shim;
    qts_env_plain(&plain);
    qts_env_passthrough(&shim);
    char *a = NULL, *b = NULL, *err = NULL;
    cr_assert_eq(qts_runv(&plain, &a, NULL, cmds), 0);
    cr_assert_eq(qts_runv(&shim, &b, &err, cmds), 0);
    cr_assert_str_eq(a, b, "without the shim:\n%s\nwith it:\n%s", a, b);
    cr_assert_str_eq(err, "", "the shim says nothing: %s", err);
    cr_assert_eq(qts_field(a, "count ", 1), 2);
    free(a);
    free(b);
    free(err);
}
