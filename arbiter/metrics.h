/* metrics.h - the arbiter's own figures since it started: requests by endpoint and kind,
 * and how long handling each took, as a histogram (GET /metrics shows them).
 *
 * A plain value with no pointers, so that a view (view.h) copies it whole. Counting costs
 * a clock read, a few compares and additions: no allocation, no lock, no system call.
 * Single-threaded: written and copied on the loop thread only. */
#ifndef QA_METRICS_H
#define QA_METRICS_H

#include "proto/msg.h"
#include "proto/schema.h"

#include <stdint.h>

/* Upper bounds of the latency buckets in nanoseconds, ascending; a last bucket (+Inf)
 * takes the rest. From 10 us (a heartbeat) to 250 ms (a create behind a slow disk). */
#define QA_LATENCY_BUCKETS 14
extern const uint64_t qa_latency_bounds_ns[QA_LATENCY_BUCKETS];

/* The kind counted for a message that was malformed or of no type we know. */
#define QA_KIND_MALFORMED QP_REQUEST_KINDS

/* The requests of one endpoint and kind. */
typedef struct qa_req_figures {
    uint64_t count;                           /* handled */
    uint64_t sum_ns;                          /* their handling time in all */
    uint64_t buckets[QA_LATENCY_BUCKETS + 1]; /* how many took at most each bound (not
                                               * cumulative); the last: longer */
} qa_req_figures_t;

typedef struct qa_metrics {
    uint64_t started_ns; /* CLOCK_MONOTONIC when the arbiter started */
    /* [endpoint - 1][kind]: kinds of qp_request_kind, then QA_KIND_MALFORMED */
    qa_req_figures_t req[2][QP_REQUEST_KINDS + 1];
} qa_metrics_t;

/* Zeroes *self and notes the start as now. */
void qa_metrics_init(qa_metrics_t *self);
/* Counts a message of endpoint ep (QP_ADMIN or QP_TENANT), handled from started_ns
 * (CLOCK_MONOTONIC, see qa_now_ns) until now: kind is the request's (qp_request_kind), or
 * -1 when it could not be decoded or is of no kind we know; a kind of the other endpoint
 * is counted with those. Handling time is the arbiter's own, until its reply was sent
 * or, for a request that waits (a mem_reserve waiting for reclaimed memory), queued. */
void qa_metrics_request(qa_metrics_t *self, qp_endpoint_t ep, int kind, uint64_t started_ns);
/* The figures of (ep, kind); kind up to QA_KIND_MALFORMED. */
const qa_req_figures_t *qa_metrics_get(const qa_metrics_t *self, qp_endpoint_t ep, size_t kind);

#endif
