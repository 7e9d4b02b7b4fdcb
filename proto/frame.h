/* frame.h - the bytes of ZMTP 3 (rfc.zeromq.org 23/ZMTP, 37/ZMTP) that both ends of a
 * connection write and read alike: the greeting with the NULL mechanism, frame headers,
 * and the READY command with its Socket-Type property. The client's DEALER (zmtp.c) and
 * the arbiter's ROUTER codec (router.c) are built on these, so that the two cannot come
 * to disagree about the wire. Pure functions over caller buffers; no state. */
#ifndef QP_FRAME_H
#define QP_FRAME_H

#include "proto/msg.h"

#include <stddef.h>
#include <stdint.h>

#define QP_FRAME_GREETING 64 /* signature 10, version 2, mechanism 20, as-server 1, filler 31 */
#define QP_FRAME_HEADER_MAX 9 /* flags and an 8-byte length */
#define QP_FRAME_MORE 0x01    /* frame flags ("Framing") */
#define QP_FRAME_LONG 0x02
#define QP_FRAME_COMMAND 0x04

/* Writes a greeting of version 3.minor, mechanism NULL, not as-server into out. */
void qp_frame_greeting(uint8_t out[QP_FRAME_GREETING], uint8_t minor);
/* Checks a peer's greeting as far as it came (have bytes at g, up to 64), so that a peer
 * that speaks something else is known at its first bytes: ZMTP 3 or later, the NULL
 * mechanism, not as-server. Returns 0 (good so far), or -EPROTO with err as one line. */
int qp_frame_check_greeting(const uint8_t *g, size_t have, char err[QP_ERR_LEN]);

/* Writes the header of a frame of len bytes with flags (MORE, COMMAND; LONG is added when
 * len needs it) into out. Returns its size: 2 or 9. */
size_t qp_frame_header(uint8_t out[QP_FRAME_HEADER_MAX], uint8_t flags, uint64_t len);
/* Reads the frame header at p, of which have bytes are there. Returns its size (2 or 9)
 * with *flags and *len, or 0 when more bytes are needed to know. */
size_t qp_frame_parse(const uint8_t *p, size_t have, uint8_t *flags, uint64_t *len);

/* Writes the body of a READY command announcing Socket-Type type (at most 255 bytes) into
 * out (cap bytes). Returns its size, or 0 when it does not fit. */
size_t qp_frame_ready(uint8_t *out, size_t cap, const char *type);
/* Finds property name (compared without case) in the metadata of a READY command (the n
 * bytes after its name), checking the whole of it. Returns 1 with *value (borrowed from
 * p) and *vlen, 0 when it is not there, -EPROTO when the metadata is malformed. */
int qp_frame_property(const uint8_t *p, size_t n, const char *name, const uint8_t **value,
                      size_t *vlen);

#endif
