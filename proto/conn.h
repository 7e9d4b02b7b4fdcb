/* conn.h - one peer's connection to the arbiter: a DEALER socket on DIR/admin.sock or
 * DIR/tenant.sock that keeps a session open (hello), sends requests and awaits their
 * replies with a timeout, and hands pushes to a callback meanwhile.
 *
 * The session is kept by the connection itself: before the first request, and again
 * whenever the arbiter says it no longer knows this peer (it restarted, or dropped the
 * peer after missed heartbeats while the process was stopped), the connection builds a
 * fresh hello with hooks->hello and sends it; a request that met a lost session is sent
 * once more in the new one. A tenant's hello hook reports what the process holds now,
 * so the arbiter re-charges it.
 *
 * Threads: one thread at a time uses a connection (the shim's agent thread owns its
 * own). Hooks run on that thread, inside qp_conn_call/send/wait, and must not call
 * into the same connection. No global state, no output: errors come back as negative
 * errno values and one line in err. After fork() the child must not use its parent's
 * connection (the two would interleave frames on one stream): it makes a new one. */
#ifndef QP_CONN_H
#define QP_CONN_H

#include "proto/msg.h"
#include "proto/schema.h"

#include <stdbool.h>

typedef struct qp_conn qp_conn_t;

typedef struct qp_conn_hooks {
    /* Builds the hello that opens a session; the connection takes the message. Required.
     * Returning NULL fails the operation with -ENOMEM. */
    qp_msg_t *(*hello)(void *arg);
    /* A session began: rep is the arbiter's ok to the hello (a tenant's carries `vgpu`
     * LIMITS, `session` and `vgpu_used`), borrowed for the call. Optional. */
    void (*session)(void *arg, const qp_msg_t *rep);
    /* A push arrived (`limits`, `mem_reclaim`, or an error without id), borrowed for
     * the call. Optional: without it pushes are dropped. */
    void (*push)(void *arg, const qp_msg_t *push);
    void *arg; /* passed to each hook */
} qp_conn_hooks_t;

/* A connection to socket_dir/<ep's file> (a ZMTP DEALER of zmtp.h: no thread, no
 * libzmq). Connecting does not wait for the arbiter: the first call connects and says
 * hello when it is there. Returns NULL and one line in err when the path is too long for
 * a Unix socket or memory runs out. */
qp_conn_t *qp_conn_new(const char *socket_dir, qp_endpoint_t ep, const qp_conn_hooks_t *hooks,
                       char err[QP_ERR_LEN]);
/* Closes (pending messages are dropped), frees *self_p, sets it to NULL. NULL is a
 * no-op. */
void qp_conn_destroy(qp_conn_t **self_p);

/* Sends *req (taken, set to NULL; its `id` is assigned here) in a session and waits up
 * to timeout_ms for the reply, opening the session first when needed. Pushes that
 * arrive meanwhile go to hooks->push. *rep receives the reply, ok or error (caller
 * destroys), whenever one came. Returns:
 *   0            ok reply
 *   -EACCES, -ENOENT, -EINVAL, -ENOSPC, -EDQUOT, -EIO, -EPROTO
 *                the error reply's code (qp_code_errno); err holds its msg
 *   -ETIMEDOUT   no reply in time (a late one is dropped when it comes)
 *   -ENOTCONN    the arbiter cannot be reached (no socket, or not accepting)
 *   -ECONNRESET  the connection closed before the reply (the arbiter died or restarted:
 *                none will come; the request may have been acted on, err says so), seen
 *                at once rather than at the deadline; the next call opens a new
 *                session. Also: the arbiter dropped the session twice in a row
 *   -EMSGSIZE    req does not fit in a frame; -ENOMEM
 * Any failure of the hello is returned the same way, err saying the hello failed. */
int qp_conn_call(qp_conn_t *self, qp_msg_t **req, qp_msg_t **rep, int timeout_ms,
                 char err[QP_ERR_LEN]);

/* Sends *msg (taken) without waiting for any reply, opening the session first when
 * needed (within timeout_ms). For `hb` without an id. Returns 0 or as qp_conn_call. */
int qp_conn_send(qp_conn_t *self, qp_msg_t **msg, int timeout_ms, char err[QP_ERR_LEN]);

/* Receives for timeout_ms, handing pushes to hooks->push; if the session was lost, opens
 * a new one first. Returns 0 after timeout_ms, or as qp_conn_call when the session
 * cannot be opened. */
int qp_conn_wait(qp_conn_t *self, int timeout_ms, char err[QP_ERR_LEN]);
/* The same, but also returns 0 as soon as fd (an eventfd or pipe another thread writes
 * to; -1 for none) is readable, having handed over every push received so far. The
 * caller empties fd. */
int qp_conn_wait_fd(qp_conn_t *self, int timeout_ms, int fd, char err[QP_ERR_LEN]);

/* Opens a session now unless one is open (calls do it by themselves when needed): to
 * learn at once whether the arbiter is there and accepts us. Returns 0 or as
 * qp_conn_call. */
int qp_conn_open(qp_conn_t *self, int timeout_ms, char err[QP_ERR_LEN]);

/* True while a session is open as far as this side knows. */
bool qp_conn_in_session(const qp_conn_t *self);

#endif
