/* view_support.c - made-up hosts and their views for the rendering tests. */
#include "tests/view_support.h"

#include "proto/units.h"

#include <criterion/criterion.h>

static qa_config_t cfg;

qa_host_t *view_host(void)
{
    qa_config_defaults(&cfg);
    qa_gpu_desc_t g[2] = {
        {0, "GPU-aaaa", "NVIDIA GeForce GTX 1080", 8192 * QP_MIB, 20, 2560},
        {1, "GPU-bbbb", "NVIDIA GeForce GTX 1050", 4096 * QP_MIB, 10, 1280},
    };
    qa_host_t *h = qa_host_new(g, 2, &cfg);
    cr_assert_not_null(h);
    return h;
}

qa_vgpu_t *view_vgpu(qa_host_t *h, const char *vm, const char *profile, int gpu)
{
    qa_spec_t s = {.vm = vm, .profile = profile, .gpu = gpu};
    qa_vgpu_t *v;
    char err[QP_ERR_LEN];
    cr_assert_eq(qa_host_create(h, &s, 1700000000, &v, err), 0, "%s", err);
    return v;
}

qa_view_t *view_of(qa_host_t *h)
{
    qa_metrics_t m;
    qa_metrics_init(&m);
    qa_view_t *v = qa_view_build(h, &m, 3, NULL, 0, 0);
    cr_assert_not_null(v);
    return v;
}
