/* dispatch.h - a peer's message, from its bytes to the handler of its kind: decoded,
 * checked against the schema (proto/schema.h) and against the peer's session, handed to
 * the handler of its kind on its endpoint, and counted (metrics.h).
 *
 * Handlers come in tables, one per module that serves requests (admin.c, tenant.c,
 * compute.c, and the next one): a row per kind and endpoint says what is checked before
 * the handler runs. A kind's name, fields and endpoints are the schema's, and its metrics
 * label is its name, so that a request kind is named in one place; a module added to the
 * arbiter brings its table and is added to the dispatcher by the wiring (server.c), with
 * no edit here. qa_dispatch_check() tells whether every kind the schema allows has its
 * handler. Single-threaded: the loop thread. */
#ifndef QA_DISPATCH_H
#define QA_DISPATCH_H

#include "arbiter/log.h"
#include "arbiter/metrics.h"
#include "arbiter/peer.h"
#include "arbiter/reply.h"
#include "proto/msg.h"
#include "proto/schema.h"

#include <stddef.h>

/* Answers m, a checked request of p; self is what the table was added with. */
typedef void qa_handler_fn(void *self, qa_peer_t *p, const qp_msg_t *m);

/* What is checked before a handler runs (after the schema's checks, always made). */
typedef enum qa_check {
    QA_CHECK_SESSION, /* p has a session; otherwise it is answered `nosession` */
    QA_CHECK_HELLO,   /* a hello: the protocol version and the role are this endpoint's
                       * (otherwise `proto`, `auth`); served without a session */
} qa_check_t;

/* One row of a module's table. */
typedef struct qa_route {
    qp_req_t kind;     /* the request it serves */
    qp_endpoint_t ep;  /* on which endpoint */
    qa_check_t check;  /* checked before fn runs */
    qa_handler_fn *fn; /* answers it */
} qa_route_t;

typedef struct qa_dispatch qa_dispatch_t;

/* A dispatcher with no routes, answering through reply, logging to log and counting into
 * metrics (all borrowed: they must outlive it). NULL when out of memory. */
qa_dispatch_t *qa_dispatch_new(const qa_reply_t *reply, const qa_log_t *log,
                               qa_metrics_t *metrics);
/* Frees *self_p and sets it to NULL; NULL is a no-op. */
void qa_dispatch_destroy(qa_dispatch_t **self_p);

/* Serves the n rows of table (borrowed: static) with self as their handlers' first
 * argument. Returns 0, -EINVAL when the schema does not allow a row's kind on its
 * endpoint, or -EEXIST when a row's kind already has a handler there (then none of the
 * table's rows is added). */
int qa_dispatch_add(qa_dispatch_t *self, const qa_route_t *table, size_t n, void *arg);
/* Whether every kind the schema allows on an endpoint has a handler there. Returns 0, or
 * -ENOENT with err naming the first that has none. */
int qa_dispatch_check(const qa_dispatch_t *self, char err[QP_ERR_LEN]);

/* A message of one frame from p (len bytes at body, borrowed for the call). */
void qa_dispatch_message(qa_dispatch_t *self, qa_peer_t *p, const void *body, size_t len);
/* A message of several frames from p, read past: answered `proto` and counted as
 * malformed. */
void qa_dispatch_multipart(qa_dispatch_t *self, qa_peer_t *p);

#endif
