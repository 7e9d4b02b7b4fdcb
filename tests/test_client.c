/* test_client.c - libqvgpu against a real qarbiter on a three-GPU sim: every call,
 * placement and admission (spread, pack, named GPU, oversubscription, custom profiles),
 * errors as errno plus one line, statistics, and an arbiter that dies and comes back. */
#include "proto/units.h"
#include "tests/ctl_support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static qv_vgpu_t create(qv_client_t *c, const char *profile, int gpu)
{
    qv_create_t req = {.vm = "vm", .profile = profile, .gpu = gpu};
    qv_vgpu_t v;
    char err[QV_ERR_LEN];
    cr_assert_eq(qv_create(c, &req, &v, NULL, err), 0, "%s: %s", profile, err);
    return v;
}

Test(qv_client, creates_reads_resizes_and_destroys)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    qv_client_t *c = ctl_client(arb);
    char err[QV_ERR_LEN], secret[QV_SECRET_LEN];
    qv_create_t req = {
        .vm = "vm-7", .memory_mb = 3072, .share = 30, .has_limit = 1, .limit = 60, .gpu = -1};
    qv_vgpu_t v;
    cr_assert_eq(qv_create(c, &req, &v, secret, err), 0, "%s", err);
    cr_assert_str_eq(v.vm, "vm-7");
    cr_assert_str_eq(v.profile, "custom");
    cr_assert_eq(v.memory_mb, 3072);
    cr_assert_eq(v.cuda_cores, 30 * 2560 / 100);
    cr_assert_eq(v.limit, 60);
    cr_assert_eq(strlen(secret), 32);
    cr_assert_gt(v.created, 1600000000);
    qv_vgpu_t got;
    cr_assert_eq(qv_info(c, v.id, &got, err), 0, "%s", err);
    cr_assert_str_eq(got.id, v.id);
    cr_assert_str_eq(got.gpu_uuid, v.gpu_uuid);
    qv_creds_t cr;
    cr_assert_eq(qv_creds(c, v.id, &cr, err), 0, "%s", err);
    cr_assert_str_eq(cr.secret, secret);
    cr_assert_str_eq(cr.gpu_uuid, v.gpu_uuid);
    qv_resize_t r = {.has_memory = 1, .memory_mb = 4096, .has_limit = 1, .limit = 0};
    cr_assert_eq(qv_resize(c, v.id, &r, &got, err), 0, "%s", err);
    cr_assert_eq(got.memory_mb, 4096);
    cr_assert_eq(got.limit, 0);
    cr_assert_eq(got.share, 30, "what was not named stays");
    qv_vgpu_list_t *l;
    cr_assert_eq(qv_list(c, &l, err), 0, "%s", err);
    cr_assert_eq(l->count, 1);
    cr_assert_eq(l->vgpus[0].memory_mb, 4096);
    qv_vgpu_list_free(&l);
    cr_assert_null(l);
    cr_assert_eq(qv_destroy(c, v.id, err), 0, "%s", err);
    cr_assert_eq(qv_info(c, v.id, &got, err), -ENOENT);
    cr_assert_eq(qv_destroy(c, v.id, err), -ENOENT);
    cr_assert_eq(qv_list(c, &l, err), 0, "%s", err);
    cr_assert_eq(l->count, 0);
    qv_vgpu_list_free(&l);
    qv_disconnect(&c);
    cr_assert_null(c);
    qt_arbiter_destroy(&arb);
}

Test(qv_client, spread_placement_fills_gpus_evenly_then_refuses)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    qv_client_t *c = ctl_client(arb);
    /* Q4 is 4 GiB and 40%: loads after placing are 0.5 on the 8 GiB GPUs, 1.0 on the 4 */
    const int expect[] = {0, 1, 0, 1, 2};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(create(c, "Q4", -1).gpu, expect[i], "vGPU %d", i);
    qv_create_t req = {.vm = "one-more", .profile = "Q1", .gpu = -1};
    qv_vgpu_t v;
    char err[QV_ERR_LEN];
    cr_assert_eq(qv_create(c, &req, &v, NULL, err), -ENOSPC);
    cr_assert(strstr(err, "no GPU can guarantee 1024 MiB and 10%"), "%s", err);
    cr_assert(strstr(err, "GPU 2 has 0 MiB and 60% free"), "%s", err);
    qv_gpu_list_t *g;
    cr_assert_eq(qv_gpus(c, &g, err), 0, "%s", err);
    cr_assert_eq(g->gpus[0].vgpus, 2);
    cr_assert_eq(g->gpus[0].memory_reserved_mb, 8192);
    cr_assert_eq(g->gpus[0].share_reserved, 80);
    cr_assert_eq(g->gpus[2].vgpus, 1);
    qv_gpu_list_free(&g);
    qv_disconnect(&c);
    qt_arbiter_destroy(&arb);
}

Test(qv_client, pack_placement_fills_the_fullest_gpu_that_fits)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, "[arbiter]\nplacement = pack\n");
    qv_client_t *c = ctl_client(arb);
    const int expect[] = {2, 2, 0, 0, 0, 0, 1};
    for (int i = 0; i < 7; i++)
        cr_assert_eq(create(c, "Q2", -1).gpu, expect[i], "vGPU %d", i);
    qv_gpu_list_t *g;
    char err[QV_ERR_LEN];
    cr_assert_eq(qv_gpus(c, &g, err), 0, "%s", err);
    cr_assert_str_eq(g->placement, "pack");
    qv_gpu_list_free(&g);
    qv_disconnect(&c);
    qt_arbiter_destroy(&arb);
}

Test(qv_client, a_named_gpu_is_used_and_admission_is_checked_there)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    qv_client_t *c = ctl_client(arb);
    cr_assert_eq(create(c, "Q2", 2).gpu, 2);
    qv_create_t req = {.vm = "big", .profile = "Q8", .gpu = 2};
    qv_vgpu_t v;
    char err[QV_ERR_LEN];
    cr_assert_eq(qv_create(c, &req, &v, NULL, err), -ENOSPC);
    cr_assert(strstr(err, "GPU 2 has 4096 MiB in all, 8192 MiB asked"), "%s", err);
    req.profile = "Q2";
    req.share = 0;
    req.gpu = 2;
    cr_assert_eq(create(c, "Q2", 2).gpu, 2);
    cr_assert_eq(qv_create(c, &req, &v, NULL, err), -ENOSPC);
    cr_assert(strstr(err, "GPU 2 has 0 MiB and 60% free"), "%s", err);
    req.gpu = 7;
    cr_assert_eq(qv_create(c, &req, &v, NULL, err), -ENOENT);
    cr_assert(strstr(err, "no GPU 7"), "%s", err);
    qv_disconnect(&c);
    qt_arbiter_destroy(&arb);
}

Test(qv_client, oversubscription_admits_more_and_gpus_reports_the_ratios)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, "[arbiter]\noversub_memory = 1.5\n"
                                              "oversub_share = 2.0\n");
    qv_client_t *c = ctl_client(arb);
    char err[QV_ERR_LEN];
    cr_assert_eq(create(c, "Q8", 0).gpu, 0);
    cr_assert_eq(create(c, "Q4", 0).gpu, 0, "12 GiB on an 8 GiB GPU at x1.5");
    qv_create_t req = {.vm = "x", .profile = "Q1", .gpu = 0};
    qv_vgpu_t v;
    cr_assert_eq(qv_create(c, &req, &v, NULL, err), -ENOSPC);
    qv_gpu_list_t *g;
    cr_assert_eq(qv_gpus(c, &g, err), 0, "%s", err);
    cr_assert_float_eq(g->oversub_memory, 1.5, 1e-9);
    cr_assert_float_eq(g->oversub_share, 2.0, 1e-9);
    cr_assert_eq(g->gpus[0].memory_reserved_mb, 12288);
    cr_assert_eq(g->gpus[0].share_reserved, 120);
    qv_gpu_list_free(&g);
    qv_disconnect(&c);
    qt_arbiter_destroy(&arb);
}

Test(qv_client, custom_profiles_from_the_config_are_created_by_name)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, "[profile half]\nmemory = 6GiB\nshare = 50\n"
                                              "limit = 70\n");
    qv_client_t *c = ctl_client(arb);
    qv_vgpu_t v = create(c, "half", -1);
    cr_assert_str_eq(v.profile, "half");
    cr_assert_eq(v.memory_mb, 6144);
    cr_assert_eq(v.share, 50);
    cr_assert_eq(v.limit, 70);
    qv_disconnect(&c);
    qt_arbiter_destroy(&arb);
}

Test(qv_client, refusals_are_errno_values_with_one_line)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    qv_client_t *c = ctl_client(arb);
    qv_vgpu_t v = create(c, "Q2", -1);
    char err[QV_ERR_LEN];
    struct {
        qv_create_t req;
        int rc;
        const char *words;
    } cases[] = {
        {{.vm = "a", .profile = "Q16", .gpu = -1}, -EINVAL, "unknown profile 'Q16'"},
        {{.vm = "a", .memory_mb = 1024, .gpu = -1}, -EINVAL, "both memory and share"},
        {{.vm = "a", .profile = "Q2", .has_limit = 1, .limit = 5, .gpu = -1},
         -EINVAL,
         "below share"},
        {{.vm = "", .profile = "Q2", .gpu = -1}, -EINVAL, "VM name"},
        {{.vm = NULL, .profile = "Q2", .gpu = -1}, -EINVAL, "VM name"},
        {{.vm = "a", .memory_mb = 1024, .share = 101, .gpu = -1}, -EINVAL, "share 101%"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qv_vgpu_t out;
        cr_assert_eq(qv_create(c, &cases[i].req, &out, NULL, err), cases[i].rc, "case %zu", i);
        cr_assert(strstr(err, cases[i].words), "case %zu: %s", i, err);
        cr_assert_null(strchr(err, '\n'));
    }
    qv_resize_t none = {0};
    cr_assert_eq(qv_resize(c, v.id, &none, NULL, err), -EINVAL);
    qv_resize_t huge = {.has_share = 1, .share = 100};
    cr_assert_eq(create(c, "Q4", v.gpu).gpu, v.gpu);
    cr_assert_eq(qv_resize(c, v.id, &huge, NULL, err), -ENOSPC);
    cr_assert(strstr(err, "asked"), "%s", err);
    qv_resize_t r = {.has_share = 1, .share = 20};
    cr_assert_eq(qv_resize(c, "vg-404", &r, NULL, err), -ENOENT);
    qv_creds_t cr;
    cr_assert_eq(qv_creds(c, "vg-404", &cr, err), -ENOENT);
    qv_disconnect(&c);
    qt_arbiter_destroy(&arb);
}

Test(qv_client, stats_count_active_vgpus_and_the_memory_they_use)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    qv_client_t *c = ctl_client(arb);
    char a[QV_ID_LEN], b[QV_ID_LEN], sa[QV_SECRET_LEN], sb[QV_SECRET_LEN], err[QV_ERR_LEN];
    ctl_create(c, "vm-a", "Q2", a, sa);
    ctl_create(c, "vm-b", "Q4", b, sb);
    ctl_tenant_t *t = ctl_tenant_new(arb, a, sa);
    t->used = 300 * QP_MIB;
    cr_assert_eq(ctl_tenant_hello(t), 0);
    cr_assert(ctl_wait_procs(c, a, 1, 2000));
    qv_stats_t *s;
    cr_assert_eq(qv_stats(c, &s, err), 0, "%s", err);
    cr_assert_eq(s->vgpus_total, 2);
    cr_assert_eq(s->vgpus_active, 1);
    cr_assert_eq(s->memory_reserved_mb, 6144);
    cr_assert_eq(s->memory_used_mb, 300);
    cr_assert_eq(s->ngpus, 3);
    qv_stats_free(&s);
    cr_assert_null(s);
    qv_vgpu_t v = ctl_info(c, a);
    cr_assert_eq(v.memory_used, 300 * QP_MIB);
    cr_assert_eq(v.procs, 1);
    ctl_tenant_destroy(&t);
    qv_disconnect(&c);
    qt_arbiter_destroy(&arb);
}

Test(qv_client, no_arbiter_is_a_one_line_error)
{
    char *dir = qt_tmpdir();
    char err[QV_ERR_LEN];
    cr_assert_null(qv_connect(dir, err));
    cr_assert(strstr(err, "no arbiter at") && strstr(err, "admin.sock"), "%s", err);
    free(dir);
}

Test(qv_client, a_dead_arbiter_fails_fast_and_a_restarted_one_is_found_again)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    qv_client_t *c = ctl_client(arb);
    qv_vgpu_t v = create(c, "Q1", -1);
    qv_set_timeout(c, 500);
    qt_arbiter_kill(arb, SIGKILL);
    char err[QV_ERR_LEN];
    qv_vgpu_t got;
    int rc = qv_info(c, v.id, &got, err);
    cr_assert(rc == -ENOTCONN || rc == -ETIMEDOUT, "rc %d: %s", rc, err);
    cr_assert_eq(qt_arbiter_restart(arb), 0);
    qv_set_timeout(c, 5000);
    cr_assert_eq(qv_info(c, v.id, &got, err), 0, "the same client reconnects: %s", err);
    cr_assert_str_eq(got.id, v.id);
    qv_disconnect(&c);
    qt_arbiter_destroy(&arb);
}

Test(qv_client, sizes_parse_like_the_cli_and_config)
{
    uint64_t mb;
    char err[QV_ERR_LEN];
    cr_assert_eq(qv_parse_size_mb("2GiB", &mb, err), 0);
    cr_assert_eq(mb, 2048);
    cr_assert_eq(qv_parse_size_mb("2 furlongs", &mb, err), -EINVAL);
    cr_assert(strstr(err, "unknown unit"), "%s", err);
}
