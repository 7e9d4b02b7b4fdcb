/* test_arbiter_metrics.c - the arbiter's request counts and latency histogram. */
#include "arbiter/loop.h"
#include "arbiter/metrics.h"
#include "proto/schema.h"

#include <criterion/criterion.h>
#include <time.h>

/* started_ns that makes a request look handled in about ns. */
static uint64_t ago(uint64_t ns)
{
    return qa_now_ns() - ns;
}

Test(qa_metrics, counts_requests_by_endpoint_and_kind)
{
    qa_metrics_t m;
    qa_metrics_init(&m);
    int create = QP_REQ_CREATE, hb = QP_REQ_HB, hello = QP_REQ_HELLO;
    qa_metrics_request(&m, QP_ADMIN, create, qa_now_ns());
    qa_metrics_request(&m, QP_ADMIN, create, qa_now_ns());
    qa_metrics_request(&m, QP_TENANT, hb, qa_now_ns());
    qa_metrics_request(&m, QP_ADMIN, hello, qa_now_ns());
    qa_metrics_request(&m, QP_TENANT, hello, qa_now_ns());
    cr_assert_eq(qa_metrics_get(&m, QP_ADMIN, (size_t)qp_request_kind("create"))->count, 2);
    cr_assert_eq(qa_metrics_get(&m, QP_TENANT, (size_t)qp_request_kind("hb"))->count, 1);
    cr_assert_eq(qa_metrics_get(&m, QP_ADMIN, (size_t)qp_request_kind("hello"))->count, 1);
    cr_assert_eq(qa_metrics_get(&m, QP_TENANT, (size_t)qp_request_kind("hello"))->count, 1,
                 "a hello is counted on the endpoint it came to");
    cr_assert_eq(qa_metrics_get(&m, QP_TENANT, (size_t)qp_request_kind("create"))->count, 0);
}

Test(qa_metrics, counts_undecodable_unknown_and_misdirected_messages_as_malformed)
{
    qa_metrics_t m;
    qa_metrics_init(&m);
    int unknown = qp_request_kind("format_disk"), create = QP_REQ_CREATE;
    cr_assert_eq(unknown, -1);
    qa_metrics_request(&m, QP_TENANT, -1, qa_now_ns()); /* not decoded */
    qa_metrics_request(&m, QP_TENANT, unknown, qa_now_ns());
    qa_metrics_request(&m, QP_TENANT, create, qa_now_ns()); /* create is admin.sock's */
    cr_assert_eq(qa_metrics_get(&m, QP_TENANT, QA_KIND_MALFORMED)->count, 3);
    cr_assert_eq(qa_metrics_get(&m, QP_TENANT, (size_t)qp_request_kind("create"))->count, 0);
    cr_assert_eq(qa_metrics_get(&m, QP_ADMIN, QA_KIND_MALFORMED)->count, 0);
}

Test(qa_metrics, puts_each_request_in_the_bucket_of_its_handling_time)
{
    qa_metrics_t m;
    qa_metrics_init(&m);
    int info = QP_REQ_INFO;
    qa_metrics_request(&m, QP_ADMIN, info, ago(5000));          /* 5 us: the first bucket */
    qa_metrics_request(&m, QP_ADMIN, info, ago(3000000));       /* 3 ms: (2.5 ms, 5 ms] */
    qa_metrics_request(&m, QP_ADMIN, info, ago(2000000000));    /* 2 s: past every bound */
    qa_metrics_request(&m, QP_ADMIN, info, qa_now_ns() + 1000); /* a clock going back: 0 */
    const qa_req_figures_t *f = qa_metrics_get(&m, QP_ADMIN, (size_t)qp_request_kind("info"));
    cr_assert_eq(f->count, 4);
    size_t ms3 = 0;
    while (qa_latency_bounds_ns[ms3] < 3000000)
        ms3++;
    cr_assert_eq(qa_latency_bounds_ns[ms3], 5000000);
    cr_assert_eq(f->buckets[0], 2);
    cr_assert_eq(f->buckets[ms3], 1, "3 ms lands in the bucket bounded by 5 ms");
    cr_assert_eq(f->buckets[QA_LATENCY_BUCKETS], 1, "2 s lands in +Inf");
    uint64_t in = 0;
    for (size_t b = 0; b <= QA_LATENCY_BUCKETS; b++)
        in += f->buckets[b];
    cr_assert_eq(in, 4);
    cr_assert(f->sum_ns >= 2003005000ull && f->sum_ns < 2100000000ull, "sum %llu",
              (unsigned long long)f->sum_ns);
}

Test(qa_metrics, bounds_ascend)
{
    for (size_t b = 1; b < QA_LATENCY_BUCKETS; b++)
        cr_assert_gt(qa_latency_bounds_ns[b], qa_latency_bounds_ns[b - 1]);
}
