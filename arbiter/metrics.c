/* metrics.c - request counts and the latency histogram. Loop thread only. */
#include "arbiter/metrics.h"

#include "arbiter/loop.h"

#include <assert.h>
#include <string.h>

#define US 1000ull
#define MS 1000000ull

const uint64_t qa_latency_bounds_ns[QA_LATENCY_BUCKETS] = {
    10 * US,      25 * US, 50 * US, 100 * US, 250 * US, 500 * US, 1 * MS,
    25 * MS / 10, 5 * MS,  10 * MS, 25 * MS,  50 * MS,  100 * MS, 250 * MS,
};

void qa_metrics_init(qa_metrics_t *self)
{
    memset(self, 0, sizeof *self);
    self->started_ns = qa_now_ns();
}

void qa_metrics_request(qa_metrics_t *self, qp_endpoint_t ep, int kind, uint64_t started_ns)
{
    assert(ep == QP_ADMIN || ep == QP_TENANT);
    uint64_t now = qa_now_ns(), ns = now > started_ns ? now - started_ns : 0;
    if (kind >= 0 && !qp_request_kind_on((size_t)kind, ep))
        kind = -1; /* refused: another endpoint's request is counted with the malformed */
    qa_req_figures_t *f = &self->req[ep - 1][kind < 0 ? QA_KIND_MALFORMED : (size_t)kind];
    f->count++;
    f->sum_ns += ns;
    /* Linear: 14 compares at most, and most requests stop at the first few. */
    size_t b = 0;
    while (b < QA_LATENCY_BUCKETS && ns > qa_latency_bounds_ns[b])
        b++;
    f->buckets[b]++;
}

const qa_req_figures_t *qa_metrics_get(const qa_metrics_t *self, qp_endpoint_t ep, size_t kind)
{
    assert((ep == QP_ADMIN || ep == QP_TENANT) && kind <= QA_KIND_MALFORMED);
    return &self->req[ep - 1][kind];
}
