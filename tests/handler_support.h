/* handler_support.h - the arbiter's request handlers without a daemon: a reply path that
 * records, decoded, what each peer was sent (qa_reply_t), a dispatcher over the tables
 * under test, peers that are nothing but their struct, a made-up host, and a loop run
 * for a bounded time so that timers fire. Single-threaded. */
#ifndef QT_HANDLER_SUPPORT_H
#define QT_HANDLER_SUPPORT_H

#include "arbiter/config.h"
#include "arbiter/dispatch.h"
#include "arbiter/host.h"
#include "arbiter/loop.h"
#include "arbiter/metrics.h"
#include "arbiter/peer.h"
#include "arbiter/reply.h"
#include "proto/msg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define QT_WIRE_MAX 512 /* messages a wire records */

/* The recorder: what was sent to whom, in order. */
typedef struct qt_wire {
    qa_reply_t reply;        /* what handlers are given */
    qa_log_t log;            /* level debug, into a temporary file (qt_wire_log) */
    qa_metrics_t metrics;    /* what the dispatcher counted */
    qa_dispatch_t *dispatch; /* routes added by the test */
    struct {
        qa_peer_t *peer;
        qp_msg_t *msg; /* owned */
    } sent[QT_WIRE_MAX];
    size_t nsent;
    int write_rc; /* what the next writes return (0: delivered) */
    int sessions; /* calls of the session op */
} qt_wire_t;

qt_wire_t *qt_wire_new(void);
void qt_wire_destroy(qt_wire_t **self_p);
/* Encodes m (taken) as a request and hands it to the dispatcher as p's message. */
void qt_wire_request(qt_wire_t *self, qa_peer_t *p, qp_msg_t *m);
/* The last message sent to p, or NULL; borrowed until qt_wire_clear or destroy. */
const qp_msg_t *qt_wire_last(const qt_wire_t *self, const qa_peer_t *p);
/* How many messages of type t (NULL: any) were sent to p (NULL: anyone). */
size_t qt_wire_count(const qt_wire_t *self, const qa_peer_t *p, const char *t);
/* Forgets what was sent. */
void qt_wire_clear(qt_wire_t *self);
/* What was logged so far (a static buffer, rewritten by each call). */
const char *qt_wire_log(qt_wire_t *self);
/* The code of error reply m, or "" when m is no error. */
const char *qt_code(const qp_msg_t *m);
/* The one-line text of error reply m, or "". */
const char *qt_text(const qp_msg_t *m);

/* A peer of endpoint ep whose process is pid (SO_PEERCRED's), as endpoint.c makes one
 * at accept. Caller frees. */
qa_peer_t *qt_peer(qp_endpoint_t ep, pid_t pid);
/* A hello of role ("admin" or "tenant") for vGPU vgpu with secret (may be NULL). */
qp_msg_t *qt_hello(const char *role, const char *vgpu, const char *secret, pid_t pid,
                   uint64_t mem_used);

/* A host of ngpus (at most 4) GTX 1080s of 8 GiB and 20 SMs, UUIDs "GPU-aaaa",
 * "GPU-bbbb", ..., under cfg (the caller's: it must outlive the host). */
qa_host_t *qt_host(size_t ngpus, const qa_config_t *cfg);
/* Runs loop for ms milliseconds (its timers fire), then returns. */
void qt_loop_for(qa_loop_t *loop, unsigned ms);

#endif
