/* test_arbiter_history.c - the dashboard's ten minutes of utilisation samples. */
#include "arbiter/history.h"
#include "tests/view_support.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void add(qa_history_t *hist, qa_host_t *h)
{
    qa_view_t *v = view_of(h);
    cr_assert_eq(qa_history_add(hist, v), 0);
    qa_view_unref(&v);
}

static json_t *render(const qa_history_t *hist, uint64_t since)
{
    char *text;
    size_t len;
    cr_assert_eq(qa_history_render(hist, since, &text, &len), 0);
    json_error_t e;
    json_t *j = json_loadb(text, len, 0, &e);
    cr_assert_not_null(j, "%s in %.300s", e.text, text);
    free(text);
    return j;
}

/* The series of vGPU id in doc, or NULL. */
static json_t *series(json_t *doc, const char *id)
{
    json_t *a = json_object_get(doc, "vgpus");
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *s = json_array_get(a, i);
        if (strcmp(json_string_value(json_object_get(s, "id")), id) == 0)
            return s;
    }
    return NULL;
}

Test(qa_history, keeps_a_sample_per_add_with_null_before_a_vgpu_existed)
{
    qa_history_t *hist = qa_history_new();
    qa_host_t *h = view_host();
    qa_vgpu_t *a = view_vgpu(h, "a", "Q2", 0);
    a->util = 10;
    add(hist, h);
    qa_vgpu_t *b = view_vgpu(h, "b", "Q1", 1);
    a->util = 20.25;
    b->util = 5;
    qa_host_gpu(h, 1)->util = 50;
    add(hist, h);
    cr_assert_eq(qa_history_last(hist), 2);
    json_t *d = render(hist, 0);
    cr_assert_eq(json_integer_value(json_object_get(d, "first")), 1);
    cr_assert_eq(json_integer_value(json_object_get(d, "last")), 2);
    cr_assert_eq(json_array_size(json_object_get(d, "times")), 2);
    json_t *ua = json_object_get(series(d, "vg-1"), "util");
    cr_assert_float_eq(json_number_value(json_array_get(ua, 0)), 10, 1e-9);
    cr_assert_float_eq(json_number_value(json_array_get(ua, 1)), 20.25, 1e-9);
    json_t *ub = json_object_get(series(d, "vg-2"), "util");
    cr_assert(json_is_null(json_array_get(ub, 0)), "vg-2 did not exist at the first sample");
    cr_assert_float_eq(json_number_value(json_array_get(ub, 1)), 5, 1e-9);
    cr_assert_eq(json_integer_value(json_object_get(series(d, "vg-2"), "gpu")), 1);
    json_t *g1 = json_array_get(json_object_get(d, "gpus"), 1);
    cr_assert_float_eq(json_number_value(json_array_get(json_object_get(g1, "util"), 1)), 50, 1e-9);
    json_decref(d);
    d = render(hist, 1);
    cr_assert_eq(json_integer_value(json_object_get(d, "first")), 2, "only what came after 1");
    cr_assert_eq(json_array_size(json_object_get(series(d, "vg-1"), "util")), 1);
    json_decref(d);
    qa_history_destroy(&hist);
    cr_assert_null(hist);
    qa_host_destroy(&h);
}

Test(qa_history, keeps_ten_minutes_and_a_destroyed_vgpu_until_it_ages_out)
{
    qa_history_t *hist = qa_history_new();
    qa_host_t *h = view_host();
    view_vgpu(h, "gone", "Q1", 0);
    qa_vgpu_t *stay = view_vgpu(h, "stay", "Q1", 0);
    add(hist, h);
    free(qa_host_take(h, "vg-1"));
    for (int i = 1; i < QA_HISTORY_SAMPLES; i++) {
        stay->util = i % 100;
        add(hist, h);
    }
    json_t *d = render(hist, 0);
    cr_assert_eq(json_array_size(json_object_get(d, "times")), QA_HISTORY_SAMPLES);
    json_t *gone = series(d, "vg-1");
    cr_assert_not_null(gone, "its sample of ten minutes ago is still shown");
    cr_assert_eq(json_integer_value(json_object_get(d, "first")), 1);
    json_decref(d);
    add(hist, h); /* sample 601: the first one ages out, and vg-1 with it */
    d = render(hist, 0);
    cr_assert_eq(json_integer_value(json_object_get(d, "first")), 2);
    cr_assert_eq(json_array_size(json_object_get(d, "times")), QA_HISTORY_SAMPLES);
    cr_assert_null(series(d, "vg-1"));
    json_t *u = json_object_get(series(d, "vg-2"), "util");
    cr_assert_eq(json_array_size(u), QA_HISTORY_SAMPLES);
    cr_assert_float_eq(json_number_value(json_array_get(u, QA_HISTORY_SAMPLES - 2)), 99, 1e-9);
    json_decref(d);
    d = render(hist, 5000);
    cr_assert_eq(json_array_size(json_object_get(d, "times")), 0, "nothing after the newest");
    json_decref(d);
    qa_history_destroy(&hist);
    qa_host_destroy(&h);
}

Test(qa_history, follows_many_vgpus_coming_and_going)
{
    qa_history_t *hist = qa_history_new();
    qa_host_t *h = view_host();
    char vm[32];
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 300; i++) {
            snprintf(vm, sizeof vm, "vm-%d-%d", round, i);
            qa_spec_t s = {.vm = vm, .memory_mb = 1, .share = 1, .gpu = -1};
            qa_vgpu_t *v;
            char err[QP_ERR_LEN];
            if (qa_host_create(h, &s, 0, &v, err) < 0)
                break; /* shares full: keep what there is */
            v->util = round;
        }
        add(hist, h);
        while (qa_host_nvgpus(h) > 100) /* most go again */
            free(qa_host_take(h, qa_host_vgpu(h, 0)->id));
    }
    json_t *d = render(hist, 0);
    size_t n = json_array_size(json_object_get(d, "vgpus"));
    cr_assert_geq(n, 200, "every vGPU seen in the last ten minutes has a series (%zu)", n);
    json_t *ids = json_object();
    for (size_t i = 0; i < n; i++) {
        const char *id = json_string_value(
            json_object_get(json_array_get(json_object_get(d, "vgpus"), i), "id"));
        cr_assert_null(json_object_get(ids, id), "%s twice", id);
        json_object_set_new(ids, id, json_true());
    }
    json_decref(ids);
    json_decref(d);
    qa_history_destroy(&hist);
    qa_host_destroy(&h);
}
