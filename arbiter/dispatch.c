/* dispatch.c - requests to their handlers through the modules' tables. Loop thread only. */
#include "arbiter/dispatch.h"

#include "arbiter/loop.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What serves one kind on one endpoint. */
struct slot {
    const qa_route_t *route; /* NULL: none */
    void *arg;
};

struct qa_dispatch {
    const qa_reply_t *reply; /* borrowed */
    const qa_log_t *log;     /* borrowed */
    qa_metrics_t *metrics;   /* borrowed */
    struct slot slots[2][QP_REQUEST_KINDS]; /* [endpoint - 1][kind] */
};

static const qp_endpoint_t endpoints[] = {QP_ADMIN, QP_TENANT};

qa_dispatch_t *qa_dispatch_new(const qa_reply_t *reply, const qa_log_t *log,
                               qa_metrics_t *metrics)
{
    qa_dispatch_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->reply = reply;
    self->log = log;
    self->metrics = metrics;
    return self;
}

void qa_dispatch_destroy(qa_dispatch_t **self_p)
{
    free(*self_p);
    *self_p = NULL;
}

static struct slot *slot_of(qa_dispatch_t *self, qp_endpoint_t ep, size_t kind)
{
    return (ep == QP_ADMIN || ep == QP_TENANT) && kind < QP_REQUEST_KINDS
               ? &self->slots[ep - 1][kind]
               : NULL;
}

int qa_dispatch_add(qa_dispatch_t *self, const qa_route_t *table, size_t n, void *arg)
{
    for (size_t i = 0; i < n; i++) {
        struct slot *s = slot_of(self, table[i].ep, table[i].kind);
        if (!s || !qp_request_kind_on(table[i].kind, table[i].ep))
            return -EINVAL;
        if (s->route)
            return -EEXIST;
        for (size_t j = 0; j < i; j++) { /* twice in the table itself */
            if (table[j].kind == table[i].kind && table[j].ep == table[i].ep)
                return -EEXIST;
        }
    }
    for (size_t i = 0; i < n; i++)
        *slot_of(self, table[i].ep, table[i].kind) = (struct slot){&table[i], arg};
    return 0;
}

int qa_dispatch_check(const qa_dispatch_t *self, char err[QP_ERR_LEN])
{
    for (size_t e = 0; e < 2; e++) {
        for (size_t k = 0; k < QP_REQUEST_KINDS; k++) {
            if (qp_request_kind_on(k, endpoints[e]) && !self->slots[e][k].route) {
                snprintf(err, QP_ERR_LEN, "'%s' on %s has no handler", qp_request_kind_name(k),
                         qp_endpoint_file(endpoints[e]));
                return -ENOENT;
            }
        }
    }
    return 0;
}

/* A hello's checks: the protocol version, and the role of the endpoint it came to. */
static bool hello_ok(qa_dispatch_t *self, qa_peer_t *p, const qp_msg_t *m)
{
    uint64_t id = qp_msg_id(m), proto = 0;
    const char *role = NULL;
    qp_msg_get_uint(m, "proto", &proto);
    qp_msg_get_str(m, "role", &role);
    if (proto != QP_PROTO_VERSION) {
        qa_reply_error(self->reply, p, id, QP_E_PROTO,
                       "protocol version mismatch: client speaks %llu, arbiter speaks %d",
                       (unsigned long long)proto, QP_PROTO_VERSION);
        return false;
    }
    if (strcmp(role, qp_endpoint_role(p->ep)) != 0) {
        qa_reply_error(self->reply, p, id, QP_E_AUTH, "role '%.32s' is not served on %s", role,
                       qp_endpoint_file(p->ep));
        return false;
    }
    return true;
}

/* Handles one message of p: body is its only frame unless several is set. */
static void handle(qa_dispatch_t *self, qa_peer_t *p, const void *body, size_t len, bool several)
{
    uint64_t started = qa_now_ns();
    char err[QP_ERR_LEN];
    qp_msg_t *m = NULL;
    int rc;
    p->last_seen = started;
    if (several) {
        rc = -EPROTO;
        snprintf(err, sizeof err, "a message must be one frame");
    } else {
        rc = qp_msg_decode(body, len, &qp_caps_request, &m, err);
    }
    int kind = m ? qp_request_kind(qp_msg_type(m)) : -1;
    const struct slot *s = NULL;
    if (rc < 0) {
        /* Once per connection, and a few per uid per 10 s: connecting again and again
         * must not let anyone fill the log. */
        if (!p->warned && qa_reply_may_warn(self->reply, p))
            qa_log(self->log, QA_WARN,
                   "malformed message on %s from uid %u (pid %d): %s (more from this "
                   "connection are not logged)",
                   qp_endpoint_file(p->ep), (unsigned)p->cred_uid, (int)p->cred_pid, err);
        p->warned = true;
        qa_reply_error(self->reply, p, 0, QP_E_PROTO, "malformed message: %s", err);
    } else if ((rc = qp_check_request(m, p->ep, err)) < 0) {
        qa_reply_error(self->reply, p, qp_msg_id(m), rc == -EACCES ? QP_E_AUTH : QP_E_PROTO,
                       "%s", err);
    } else if (!(s = slot_of(self, p->ep, (size_t)kind))->route) {
        /* cannot happen once qa_dispatch_check passed */
        qa_reply_error(self->reply, p, qp_msg_id(m), QP_E_PROTO,
                       "'%s' is not served on %s", qp_msg_type(m), qp_endpoint_file(p->ep));
    } else if (s->route->check == QA_CHECK_HELLO) {
        if (hello_ok(self, p, m))
            s->route->fn(s->arg, p, m);
    } else if (!p->session) {
        qa_reply_error(self->reply, p, qp_msg_id(m), QP_E_NOSESSION, "hello first");
    } else {
        s->route->fn(s->arg, p, m);
    }
    qa_metrics_request(self->metrics, p->ep, kind, started);
    qp_msg_destroy(&m);
}

void qa_dispatch_message(qa_dispatch_t *self, qa_peer_t *p, const void *body, size_t len)
{
    handle(self, p, body, len, false);
}

void qa_dispatch_multipart(qa_dispatch_t *self, qa_peer_t *p)
{
    handle(self, p, NULL, 0, true);
}
