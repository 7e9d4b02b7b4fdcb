/* reply.h - how a request handler answers: the path its replies and pushes take to a
 * peer, the peer's session flag and the warning budget of its uid, as one small ops
 * struct. In the daemon the ops are the endpoints' (server.c wires them); in a test, a
 * recorder's, so that a handler runs without sockets (tests/arbiter_support.h).
 * Single-threaded: the loop thread. */
#ifndef QA_REPLY_H
#define QA_REPLY_H

#include "arbiter/log.h"
#include "arbiter/peer.h"
#include "proto/msg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qa_reply {
    /* Queues len bytes (one encoded message) to p without blocking. Returns 0, or a
     * negative errno when the message was dropped (p does not read). */
    int (*write)(void *arg, qa_peer_t *p, const void *buf, size_t len);
    /* p's session opened (true) or ended with its connection kept (false). */
    void (*session)(void *arg, qa_peer_t *p, bool open);
    /* Whether a warning about p's connection may be logged now (a few per uid per 10 s). */
    bool (*may_warn)(void *arg, const qa_peer_t *p);
    void *arg;           /* passed to each */
    const qa_log_t *log; /* where a reply that cannot be encoded is logged; borrowed */
} qa_reply_t;

/* Encodes *msg (taken; NULL is an allocation that failed) and sends it to p without
 * blocking: a peer that does not read loses messages rather than stall the arbiter. */
void qa_reply_send(const qa_reply_t *self, qa_peer_t *p, qp_msg_t **msg);
/* Sends {t:error, id, code, msg} with msg formatted as one line. */
void qa_reply_error(const qa_reply_t *self, qa_peer_t *p, uint64_t id, const char *code,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Sets p->session and tells the endpoint: every change of a session goes through here,
 * since a peer without one is "pending" for the admission limits (peer.h). */
void qa_reply_set_session(const qa_reply_t *self, qa_peer_t *p, bool open);
/* Whether a warning about p's connection may be logged now. */
bool qa_reply_may_warn(const qa_reply_t *self, const qa_peer_t *p);

#endif
