/* test_arbiter_host.c - vGPU creation, resize and removal rules on made-up GPUs. */
#include "arbiter/host.h"
#include "proto/units.h"
#include "tests/handler_support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

static qa_config_t cfg;

static qa_host_t *two_gpus(void)
{
    qa_config_defaults(&cfg);
    return qt_host(2, &cfg);
}

static qa_spec_t profile(const char *vm, const char *name)
{
    return (qa_spec_t){.vm = vm, .profile = name, .gpu = -1};
}

Test(qa_host, creates_from_a_profile_with_id_secret_and_cores)
{
    qa_host_t *h = two_gpus();
    qa_vgpu_t *v;
    char err[QP_ERR_LEN];
    qa_spec_t s = profile("vm-1", "Q2");
    cr_assert_eq(qa_host_create(h, &s, 1700000000, &v, err), 0, "%s", err);
    cr_assert_str_eq(v->id, "vg-1");
    cr_assert_eq(strlen(v->secret), 32);
    cr_assert_eq(strspn(v->secret, "0123456789abcdef"), 32);
    qp_info_t info;
    qa_host_info(h, v, &info);
    cr_assert_eq(info.memory_mb, 2048);
    cr_assert_eq(info.share, 20);
    cr_assert_eq(info.cuda_cores, 512, "share x the GPU's cores");
    cr_assert_str_eq(info.profile, "Q2");
    cr_assert_str_eq(info.gpu_uuid, "GPU-aaaa");
    cr_assert_eq(info.created, 1700000000);
    qa_vgpu_t *w;
    cr_assert_eq(qa_host_create(h, &s, 0, &w, err), 0);
    cr_assert_str_eq(w->id, "vg-2");
    cr_assert_str_neq(w->secret, v->secret);
    cr_assert_eq(w->gpu, 1, "spread puts the second one on the other GPU");
    qa_host_destroy(&h);
    cr_assert_null(h);
}

Test(qa_host, ids_are_never_reused)
{
    qa_host_t *h = two_gpus();
    qa_vgpu_t *v;
    char err[QP_ERR_LEN];
    qa_spec_t s = profile("vm", "Q1");
    qa_host_create(h, &s, 0, &v, err);
    free(qa_host_take(h, "vg-1"));
    cr_assert_null(qa_host_find(h, "vg-1"));
    qa_host_create(h, &s, 0, &v, err);
    cr_assert_str_eq(v->id, "vg-2");
    qa_host_destroy(&h);
}

Test(qa_host, refuses_bad_requests_with_the_reason)
{
    qa_host_t *h = two_gpus();
    qa_vgpu_t *v;
    char err[QP_ERR_LEN];
    struct {
        qa_spec_t spec;
        int rc;
        const char *words;
    } cases[] = {
        {{.vm = "", .profile = "Q1", .gpu = -1}, -EINVAL, "VM name"},
        {{.vm = "a\nb", .profile = "Q1", .gpu = -1}, -EINVAL, "VM name"},
        {{.vm = "a", .profile = "Q3", .gpu = -1}, -EINVAL, "unknown profile 'Q3' (known: Q1"},
        {{.vm = "a", .profile = "Q1", .memory_mb = 5, .gpu = -1}, -EINVAL, "not both"},
        {{.vm = "a", .memory_mb = 1024, .gpu = -1}, -EINVAL, "both memory and share"},
        {{.vm = "a", .memory_mb = 1024, .share = 101, .gpu = -1}, -EINVAL, "share 101%"},
        {{.vm = "a", .profile = "Q2", .has_limit = true, .limit = 10, .gpu = -1},
         -EINVAL,
         "below share"},
        {{.vm = "a", .profile = "Q1", .gpu = 2}, -ENOENT, "no GPU 2"},
        {{.vm = "a", .memory_mb = 9000, .share = 10, .gpu = 0}, -ENOSPC, "in all"},
        {{.vm = "a", .memory_mb = 9000, .share = 10, .gpu = -1}, -ENOSPC, "no GPU can"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(qa_host_create(h, &cases[i].spec, 0, &v, err), cases[i].rc, "case %zu", i);
        cr_assert(strstr(err, cases[i].words), "case %zu: %s", i, err);
    }
    cr_assert_eq(qa_host_nvgpus(h), 0);
    cr_assert_eq(qa_host_next_id(h), 1, "refusals use no id");
    qa_host_destroy(&h);
}

Test(qa_host, admission_fills_both_gpus_then_refuses)
{
    qa_host_t *h = two_gpus();
    qa_vgpu_t *v;
    char err[QP_ERR_LEN];
    qa_spec_t s = profile("vm", "Q4");
    for (int i = 0; i < 4; i++)
        cr_assert_eq(qa_host_create(h, &s, 0, &v, err), 0, "%d: %s", i, err);
    cr_assert_eq(qa_host_gpu(h, 0)->nvgpus, 2);
    cr_assert_eq(qa_host_gpu(h, 1)->nvgpus, 2);
    cr_assert_eq(qa_host_gpu(h, 0)->memory_reserved_mb, 8192);
    qa_spec_t one = profile("vm", "Q1");
    cr_assert_eq(qa_host_create(h, &one, 0, &v, err), -ENOSPC);
    /* share is full (80%) but memory too: a 0-memory request is invalid anyway */
    free(qa_host_take(h, "vg-1"));
    cr_assert_eq(qa_host_create(h, &one, 0, &v, err), 0, "%s", err);
    cr_assert_eq(v->gpu, 0);
    qa_host_destroy(&h);
}

Test(qa_host, oversubscription_admits_more)
{
    qa_host_t *h = two_gpus();
    cfg.oversub_memory = 2;
    cfg.oversub_share = 2;
    qa_vgpu_t *v;
    char err[QP_ERR_LEN];
    qa_spec_t s = profile("vm", "Q8");
    for (int i = 0; i < 4; i++)
        cr_assert_eq(qa_host_create(h, &s, 0, &v, err), 0, "%d: %s", i, err);
    cr_assert_eq(qa_host_create(h, &s, 0, &v, err), -ENOSPC);
    qp_gpu_t g;
    qa_host_gpu_record(h, 0, &g);
    cr_assert_eq(g.memory_reserved_mb, 16384);
    cr_assert_eq(g.share_reserved, 160);
    qa_host_destroy(&h);
}

Test(qa_host, resize_validates_admits_and_leaves_a_custom_profile)
{
    qa_host_t *h = two_gpus();
    qa_vgpu_t *v, *w;
    char err[QP_ERR_LEN];
    qa_spec_t s = {.vm = "a", .profile = "Q4", .gpu = 0};
    qa_host_create(h, &s, 0, &v, err);
    qa_spec_t t = {.vm = "b", .profile = "Q2", .gpu = 0};
    qa_host_create(h, &t, 0, &w, err);
    qa_change_t c = {.has_memory = true, .memory_mb = 6144};
    cr_assert_eq(qa_host_resize(h, "vg-1", &c, &v, err), 0, "%s", err);
    cr_assert_eq(v->memory_mb, 6144);
    cr_assert_str_eq(v->profile, "custom");
    cr_assert_eq(qa_host_gpu(h, 0)->memory_reserved_mb, 8192);
    c.memory_mb = 6145;
    cr_assert_eq(qa_host_resize(h, "vg-1", &c, &v, err), -ENOSPC);
    cr_assert_eq(v->memory_mb, 6144, "a refused resize changes nothing");
    qa_change_t l = {.has_limit = true, .limit = 30};
    cr_assert_eq(qa_host_resize(h, "vg-1", &l, &v, err), -EINVAL);
    cr_assert(strstr(err, "below share 40%"), "%s", err);
    l.limit = 50;
    cr_assert_eq(qa_host_resize(h, "vg-1", &l, &v, err), 0);
    cr_assert_eq(v->limit, 50);
    qa_change_t shrink = {.has_memory = true, .memory_mb = 512, .has_share = true, .share = 5};
    cr_assert_eq(qa_host_resize(h, "vg-2", &shrink, &w, err), 0);
    cr_assert_eq(qa_host_gpu(h, 0)->share_reserved, 45);
    cr_assert_eq(qa_host_resize(h, "vg-9", &shrink, &w, err), -ENOENT);
    qa_host_destroy(&h);
}

Test(qa_host, adopts_persisted_vgpus_by_gpu_uuid_and_keeps_counting)
{
    qa_host_t *h = two_gpus();
    char err[QP_ERR_LEN];
    qa_vgpu_t v = {.id = "vg-7",
                   .vm = "a",
                   .secret = "00112233445566778899aabbccddeeff",
                   .profile = "Q2",
                   .gpu = 0,
                   .memory_mb = 2048,
                   .share = 20};
    cr_assert_eq(qa_host_adopt(h, &v, "GPU-bbbb", err), 0, "%s", err);
    qa_vgpu_t *got = qa_host_find(h, "vg-7");
    cr_assert_not_null(got);
    cr_assert_eq(got->gpu, 1, "placed by UUID, not by the old index");
    cr_assert_eq(qa_host_next_id(h), 8);
    cr_assert_eq(qa_host_adopt(h, &v, "GPU-bbbb", err), -EEXIST);
    strcpy(v.id, "vg-3");
    cr_assert_eq(qa_host_adopt(h, &v, "GPU-gone", err), -ENODEV);
    cr_assert(strstr(err, "GPU-gone"), "%s", err);
    cr_assert_eq(qa_host_adopt(h, &v, "GPU-aaaa", err), 0);
    cr_assert_str_eq(qa_host_vgpu(h, 0)->id, "vg-3", "creation order is kept");
    strcpy(v.id, "../etc");
    cr_assert_eq(qa_host_adopt(h, &v, "GPU-aaaa", err), -EINVAL);
    strcpy(v.id, "vg-4");
    strcpy(v.secret, "short");
    cr_assert_eq(qa_host_adopt(h, &v, "GPU-aaaa", err), -EINVAL);
    /* regression (issue 8): a record larger than its GPU was adopted and served */
    strcpy(v.secret, "00112233445566778899aabbccddeeff");
    v.memory_mb = 999424;
    cr_assert_eq(qa_host_adopt(h, &v, "GPU-aaaa", err), -EINVAL);
    cr_assert(strstr(err, "vGPU vg-4 has 999424 MiB, more than its GPU 0 has"), "%s", err);
    cr_assert_null(qa_host_find(h, "vg-4"));
    qa_host_destroy(&h);
}

Test(qa_host, a_move_is_admitted_on_its_target_which_keeps_its_room_until_the_end)
{
    qa_config_defaults(&cfg);
    qa_gpu_desc_t g[3] = {
        {0, "GPU-aaaa", "NVIDIA GeForce GTX 1080", 8192 * QP_MIB, 20, 2560},
        {1, "GPU-bbbb", "NVIDIA GeForce GTX 1080", 8192 * QP_MIB, 20, 2560},
        {2, "GPU-cccc", "NVIDIA A100", 8192 * QP_MIB, 108, 6912},
    };
    qa_host_t *h = qa_host_new(g, 3, &cfg);
    qa_vgpu_t *v, *w;
    char err[QP_ERR_LEN];
    qa_spec_t s = profile("vm", "Q4");
    s.gpu = 0;
    cr_assert_eq(qa_host_create(h, &s, 0, &v, err), 0, "%s", err);
    cr_assert_eq(qa_host_move_begin(h, v, 0, err), -EINVAL);
    cr_assert_str_eq(err, "vGPU vg-1 is on GPU 0 already");
    cr_assert_eq(qa_host_move_begin(h, v, 2, err), -EINVAL);
    cr_assert_str_eq(err, "GPU 2 is a NVIDIA A100 and vGPU vg-1's GPU 0 a NVIDIA GeForce GTX "
                          "1080: the driver moves processes only between GPUs of one chip");
    cr_assert_eq(qa_host_move_begin(h, v, 7, err), -ENOENT);
    s.gpu = 1;
    s.profile = "Q8"; /* GPU 1: 8 GiB and 80% taken */
    cr_assert_eq(qa_host_create(h, &s, 0, &w, err), 0, "%s", err);
    cr_assert_eq(qa_host_move_begin(h, v, 1, err), -ENOSPC);
    cr_assert_str_eq(err, "GPU 1 has 0 MiB and 20% free, 4096 MiB and 40% asked");
    free(qa_host_take(h, w->id));

    cr_assert_eq(qa_host_move_begin(h, v, 1, err), 0, "%s", err);
    cr_assert_eq(qa_host_move_begin(h, v, 1, err), -EBUSY);
    cr_assert_eq(qa_host_gpu(h, 0)->memory_reserved_mb, 4096, "the source keeps it");
    cr_assert_eq(qa_host_gpu(h, 1)->memory_reserved_mb, 4096, "and the target holds it");
    qa_change_t c = {.has_share = true, .share = 50};
    cr_assert_eq(qa_host_resize(h, v->id, &c, &w, err), -EBUSY);
    qa_spec_t big = profile("other", "Q8");
    big.gpu = 1;
    cr_assert_eq(qa_host_create(h, &big, 0, &w, err), -ENOSPC, "its room is kept");

    qa_host_move_end(h, v, false); /* rolled back */
    v->in_move = false;            /* the mover's, once the move is over */
    cr_assert_eq(v->gpu, 0);
    cr_assert_eq(qa_host_gpu(h, 1)->memory_reserved_mb, 0);
    cr_assert_eq(qa_host_gpu(h, 0)->memory_reserved_mb, 4096);

    cr_assert_eq(qa_host_move_begin(h, v, 1, err), 0, "%s", err);
    qa_host_move_end(h, v, true);
    cr_assert(v->in_move, "until the mover says the move is over");
    v->in_move = false;
    cr_assert_eq(v->gpu, 1);
    cr_assert_eq(v->moving, 0);
    cr_assert_eq(qa_host_gpu(h, 0)->memory_reserved_mb, 0);
    cr_assert_eq(qa_host_gpu(h, 0)->nvgpus, 0);
    cr_assert_eq(qa_host_gpu(h, 1)->memory_reserved_mb, 4096);
    cr_assert_eq(qa_host_gpu(h, 1)->share_reserved, 40);
    cr_assert_eq(qa_host_gpu(h, 1)->nvgpus, 1);
    qp_info_t info;
    qa_host_info(h, v, &info);
    cr_assert_eq(info.gpu, 1);
    cr_assert_str_eq(info.gpu_uuid, "GPU-bbbb");
    free(qa_host_take(h, v->id));
    cr_assert_eq(qa_host_gpu(h, 1)->memory_reserved_mb, 0);
    qa_host_destroy(&h);
}
