/* router.h - the arbiter's end of one ZMTP 3 connection, as a ZeroMQ ROUTER would be (the wire of ZeroMQ: rfc.zeromq.org
 * 23/ZMTP and 37/ZMTP) with the NULL mechanism, as a pure codec: bytes read from the peer
 * go in, whole messages come out, and what is to be sent back collects in an output
 * buffer. No I/O, no clock, no global state; one thread at a time.
 *
 * It serves ZeroMQ DEALER sockets (libzmq 4.x, ZMTP 3.0 and 3.1) and nothing else: the
 * peer's READY must say Socket-Type DEALER. A routing id the peer announces (Identity) is
 * read past and never used: the arbiter tells connections apart by their descriptor, so
 * no name a peer chooses can collide with another connection's (issue 8; a libzmq
 * ROUTER aborts the process on such a collision). Every length is checked against a cap
 * before anything is buffered, and buffers grow only as far as what was actually sent
 * needs.
 *
 * Usage: read into qp_router_in_space(), say how much with qp_router_in_commit(), then call
 * qp_router_next() until it returns QP_ROUTER_NONE; write what qp_router_out() shows and say
 * how much went with qp_router_out_done(). A negative return of qp_router_next() means the
 * peer broke the protocol: close the connection. */
#ifndef QP_ROUTER_H
#define QP_ROUTER_H

#include "proto/msg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qp_router qp_router_t;

/* What qp_router_next() found. */
typedef enum qp_router_event {
    QP_ROUTER_NONE = 0,      /* nothing complete: read more */
    QP_ROUTER_MESSAGE = 1,   /* a message of one frame */
    QP_ROUTER_MULTIPART = 2, /* a message of several frames, read past whole (the protocol
                              sends one frame per message): answer it with an error */
} qp_router_event_t;

/* A new connection whose peer may send frames of at most max_frame bytes and to which at
 * most max_out bytes may wait to be written. The greeting and READY are queued for
 * output at once. NULL when out of memory. */
qp_router_t *qp_router_new(size_t max_frame, size_t max_out);
/* Frees *self_p and its buffers; sets it to NULL. NULL is a no-op. */
void qp_router_destroy(qp_router_t **self_p);
/* Changes the frame cap for frames not begun yet (e.g. larger once a session is open). */
void qp_router_set_max_frame(qp_router_t *self, size_t max_frame);

/* ---- input ------------------------------------------------------------------------- */

/* Where to put bytes read from the peer: *n (> 0) bytes at the address returned, or NULL
 * when out of memory. Invalidates the body of the last message. */
uint8_t *qp_router_in_space(qp_router_t *self, size_t *n);
/* n bytes were written at qp_router_in_space()'s address (n at most what it offered). */
void qp_router_in_commit(qp_router_t *self, size_t n);
/* The next event of what was read. On QP_ROUTER_MESSAGE, *body and *len are the message,
 * borrowed until the next call on self. Returns an event, or -EPROTO (the peer is no
 * DEALER speaking ZMTP 3 with NULL, or broke the protocol) or -EMSGSIZE (a frame over
 * the cap), with err as one line. After an error every call returns it again. */
int qp_router_next(qp_router_t *self, const void **body, size_t *len, char err[QP_ERR_LEN]);
/* True once the peer's greeting and READY were read and accepted. */
bool qp_router_ready(const qp_router_t *self);

/* ---- output ------------------------------------------------------------------------ */

/* Queues a message of one frame. Returns 0, or -ENOBUFS when it would put more than
 * max_out bytes in wait (it is then dropped whole), or -ENOMEM. */
int qp_router_send(qp_router_t *self, const void *body, size_t len);
/* The bytes waiting to be written (*n of them; *n = 0 when none), borrowed until the
 * next call that queues or consumes output. */
const uint8_t *qp_router_out(const qp_router_t *self, size_t *n);
/* n of those bytes were written. */
void qp_router_out_done(qp_router_t *self, size_t n);

#endif
