/* zmtp.h - a ZeroMQ DEALER socket over one Unix stream connection, speaking ZMTP 3.0
 * with the NULL mechanism (rfc.zeromq.org/spec/23): the part of libzmq a peer of the
 * arbiter needs, in plain C, with no thread of its own and nothing but libc beneath it.
 *
 * Why not libzmq: the shim is loaded into workloads of any image (glibc 2.31 and up,
 * no libzmq or libstdc++ installed, or other versions of them that the application
 * uses itself), and libzmq is C++ that Debian ships neither position-independent nor
 * with its symbols hidden (docs/containers.md, "The shim bundle"). The arbiter's side
 * is proto/router.c; a libzmq ROUTER sees an ordinary DEALER too (test_proto_zmtp).
 *
 * Connecting is lazy and synchronous: a send connects first (retrying every 50 ms until
 * its deadline, as libzmq's reconnect with ZMQ_IMMEDIATE does) and completes the
 * handshake before it writes. A connection that ends is noticed by the next receive or
 * send, and counted (qp_zmtp_epoch) so that the caller knows its peer state went with
 * it. Frames are written with MSG_NOSIGNAL: a closed peer never raises SIGPIPE in the
 * application.
 *
 * Threads: one thread at a time. No global state. After fork() the child must not use
 * the parent's object (destroying it only closes the child's copy of the descriptor). */
#ifndef QP_ZMTP_H
#define QP_ZMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct qp_zmtp qp_zmtp_t;

/* CLOCK_MONOTONIC in milliseconds: the clock of every deadline below. */
static inline uint64_t qp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A DEALER for the Unix socket at path (copied; it must fit in sun_path, which the
 * caller checks), refusing incoming frames over max_frame bytes. Connects nothing yet.
 * NULL when out of memory or path does not fit. */
qp_zmtp_t *qp_zmtp_new(const char *path, size_t max_frame);
/* Closes the connection, frees *self_p and sets it to NULL; NULL is a no-op. */
void qp_zmtp_destroy(qp_zmtp_t **self_p);

/* Connects and completes the handshake unless connected (a connection the peer closed
 * does not count), retrying every 50 ms until deadline_ms. Returns 0 or -ENOTCONN. */
int qp_zmtp_connect(qp_zmtp_t *self, uint64_t deadline_ms);

/* Sends one single-frame message of len bytes, connecting first when there is no
 * connection, until deadline_ms (qp_now_ms). Returns 0 once it is written whole, or
 * -ENOTCONN: nobody accepts on the path, the handshake failed, or the connection broke
 * or the deadline passed in the middle of the frame (the connection is then closed, as
 * the stream is no longer in step). */
int qp_zmtp_send(qp_zmtp_t *self, const void *buf, size_t len, uint64_t deadline_ms);

/* Receives the next single-frame message until deadline_ms: 0 with *buf (malloc'd,
 * caller frees) and *len; -ETIMEDOUT when none came in time (or there is no connection
 * to receive on); -ECONNRESET when the connection ended (or the peer broke the
 * protocol, or sent a frame over max_frame): it is closed, and whatever the peer knew
 * of this side is gone. Messages of several frames are dropped whole; -ENOMEM. */
int qp_zmtp_recv(qp_zmtp_t *self, uint64_t deadline_ms, void **buf, size_t *len);

/* The connection's descriptor, to poll for input next to others, or -1 without one.
 * Valid until the next call on self. Poll it only when qp_zmtp_buffered() is false: a
 * message already read from it into memory does not wake poll(). */
int qp_zmtp_fd(const qp_zmtp_t *self);
/* Whether a whole frame already received waits in memory (qp_zmtp_recv returns it, or
 * what follows it, without reading the descriptor), or one over max_frame that ends the
 * connection. */
bool qp_zmtp_buffered(const qp_zmtp_t *self);

/* How many connections were made so far (0 before the first): a value that changes
 * means the peer on the other side sees a new, unknown peer. */
uint64_t qp_zmtp_epoch(const qp_zmtp_t *self);

#endif
