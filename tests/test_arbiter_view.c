/* test_arbiter_view.c - what the HTTP side reads: a copy of the GPUs, vGPUs, figures and
 * findings at one instant, unchanged by what the loop does next, shared by reference
 * count (arbiter/view.c). */
#include "arbiter/loop.h"
#include "arbiter/view.h"
#include "proto/units.h"
#include "tests/view_support.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

Test(qa_view, a_view_is_a_copy_that_later_changes_of_the_host_leave_alone)
{
    qa_host_t *h = view_host();
    qa_vgpu_t *v = view_vgpu(h, "vm-1", "Q2", 0);
    v->refused = 3;
    v->mem_used = 100 * QP_MIB;
    qa_metrics_t m;
    qa_metrics_init(&m);
    qa_metrics_request(&m, QP_ADMIN, QP_REQ_LIST, qa_now_ns());
    qp_finding_t f = {.kind = "unmanaged", .detail = "pid 9"};
    qa_view_t *view = qa_view_build(h, &m, 5, &f, 1, 2);
    cr_assert_not_null(view);
    cr_assert_eq(view->ngpus, 2);
    cr_assert_eq(view->nvgpus, 1);
    cr_assert_eq(view->tenant_connections, 5);
    cr_assert_eq(view->totals.kills, 2);
    cr_assert_eq(view->nfindings, 1);
    cr_assert_str_eq(view->findings[0].detail, "pid 9");
    cr_assert_eq(qa_metrics_get(&view->metrics, QP_ADMIN, QP_REQ_LIST)->count, 1);
    const qa_view_vgpu_t *vv = qa_view_find(view, "vg-1");
    cr_assert_not_null(vv);
    cr_assert_eq(vv->refused, 3);
    cr_assert_eq(vv->info.memory_used, 100 * QP_MIB);
    cr_assert_null(qa_view_find(view, "vg-2"));

    v->refused = 4; /* the loop goes on */
    f.detail[0] = 'X';
    free(qa_host_take(h, "vg-1"));
    cr_assert_eq(qa_view_find(view, "vg-1")->refused, 3, "the view kept its instant");
    cr_assert_str_eq(view->findings[0].detail, "pid 9");
    cr_assert_eq(view->gpus[0].memory_total, 8192 * QP_MIB);
    qa_view_unref(&view);
    cr_assert_null(view);
    qa_host_destroy(&h);
}

Test(qa_view, a_view_lives_until_its_last_reference_goes)
{
    qa_host_t *h = view_host();
    qa_view_t *a = view_of(h);
    qa_view_t *b = qa_view_ref(a);
    cr_assert_eq(a, b);
    qa_view_unref(&a);
    cr_assert_null(a);
    cr_assert_eq(b->ngpus, 2, "still readable through the other reference");
    qa_view_unref(&b);
    qa_view_unref(&b); /* NULL: a no-op */
    qa_host_destroy(&h);
}

Test(qa_view, at_most_the_findings_a_stats_reply_lists_are_kept)
{
    qa_host_t *h = view_host();
    qa_metrics_t m;
    qa_metrics_init(&m);
    qp_finding_t *many = calloc(QP_MAX_FINDINGS + 5, sizeof *many);
    qa_view_t *v = qa_view_build(h, &m, 0, many, QP_MAX_FINDINGS + 5, 0);
    cr_assert_eq(v->nfindings, QP_MAX_FINDINGS);
    qa_view_unref(&v);
    free(many);
    qa_host_destroy(&h);
}
