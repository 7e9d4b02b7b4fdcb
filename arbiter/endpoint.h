/* endpoint.h - one of the arbiter's sockets (admin.sock, tenant.sock): a Unix stream
 * socket on which the arbiter speaks ZMTP 3 itself (proto/router.h) to ZeroMQ DEALER
 * peers, so clients keep using libzmq while no libzmq code runs on the arbiter's side of
 * a connection (issue 8: a libzmq ROUTER aborts the process when a peer's chosen routing
 * id collides with one it makes, and when accept() fails for want of a descriptor).
 *
 * Each accepted connection is one peer (peer.h), known by its descriptor and the
 * credentials of the process that connected (SO_PEERCRED). The endpoint enforces the
 * admission limits of peer.h, closes connections that stay pending past the hello
 * timeout, stops reading from a peer that does not read what it is sent, and writes at
 * most a few warning lines per connecting uid per 10 s (summing up the rest).
 *
 * It knows nothing of what messages mean: each goes to the hooks given at creation (in
 * the daemon, the dispatcher: dispatch.h), and what is sent back comes through
 * qa_endpoint_send (the handlers' reply path, reply.h, in server.c's wiring).
 *
 * All its descriptors sit in one epoll set, watched by the loop as one plain fd.
 * Single-threaded: the loop thread. */
#ifndef QA_ENDPOINT_H
#define QA_ENDPOINT_H

#include "arbiter/log.h"
#include "arbiter/loop.h"
#include "arbiter/peer.h"
#include "proto/msg.h"
#include "proto/schema.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct qa_endpoint qa_endpoint_t;

typedef struct qa_endpoint_opts {
    const char *path;      /* the socket file; its directory must exist */
    mode_t mode;           /* of the socket file */
    qp_endpoint_t role;    /* which endpoint it is (peers carry it) */
    qa_admission_t limits; /* see peer.h */
    uint64_t hello_ns;     /* a connection pending this long is closed */
    size_t max_out;        /* bytes a peer may leave unread before messages to it drop */
} qa_endpoint_opts_t;

typedef struct qa_endpoint_hooks {
    /* A message of one frame from p (len bytes at body, borrowed for the call). */
    void (*message)(void *arg, qa_peer_t *p, const void *body, size_t len);
    /* A message of several frames from p, read past: the protocol has one per message. */
    void (*multipart)(void *arg, qa_peer_t *p);
    /* p's connection is closing (the peer closed it, broke the protocol, or a limit
     * closed it): end what p holds. p is freed after the call. */
    void (*closing)(void *arg, qa_peer_t *p);
    void *arg; /* passed to each hook */
} qa_endpoint_hooks_t;

/* Binds opts->path (removing a file already there) with opts->mode and starts watching
 * it on loop. Returns NULL with err as one line when it cannot. */
qa_endpoint_t *qa_endpoint_new(qa_loop_t *loop, const qa_log_t *log, const qa_endpoint_opts_t *opts,
                               const qa_endpoint_hooks_t *hooks, char err[QP_ERR_LEN]);
/* Closes every connection (calling hooks->closing for each), the socket and removes its
 * file; frees *self_p and sets it to NULL. NULL is a no-op. */
void qa_endpoint_destroy(qa_endpoint_t **self_p);

/* The socket file. Borrowed, as long as the endpoint lives. */
const char *qa_endpoint_path(const qa_endpoint_t *self);
/* Connections open / pending. */
size_t qa_endpoint_count(const qa_endpoint_t *self);
size_t qa_endpoint_pending(const qa_endpoint_t *self);
/* Changes the admission limits (e.g. after RLIMIT_NOFILE changed). */
void qa_endpoint_set_limits(qa_endpoint_t *self, const qa_admission_t *limits);

/* Queues len bytes at buf as one message to p and writes what can be written now
 * without blocking. A peer that leaves max_out bytes unread loses messages rather than
 * stall the arbiter. Returns 0, -ENOBUFS (dropped) or -ENOMEM. */
int qa_endpoint_send(qa_endpoint_t *self, qa_peer_t *p, const void *buf, size_t len);
/* p's session opened (true) or ended with its connection kept (false: p is pending
 * again and its hello timeout starts over). */
void qa_endpoint_set_session(qa_endpoint_t *self, qa_peer_t *p, bool session);
/* Closes p's connection after the current callback (hooks->closing is called then). */
void qa_endpoint_close(qa_endpoint_t *self, qa_peer_t *p);
/* Whether a warning about p may be logged now: at most a few per uid per 10 s; those
 * held back are summed up by qa_endpoint_tick. */
bool qa_endpoint_may_warn(qa_endpoint_t *self, const qa_peer_t *p);

/* Periodic work, every few hundred ms: closes the connections pending past the hello
 * timeout and logs the summaries of held-back warnings. */
void qa_endpoint_tick(qa_endpoint_t *self);
/* Calls fn on every peer, oldest first; fn may close the peer it is given. */
void qa_endpoint_each(qa_endpoint_t *self, void (*fn)(void *arg, qa_peer_t *p), void *arg);

#endif
