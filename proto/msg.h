/* msg.h - one protocol message: a msgpack map with string keys, built, encoded and
 * decoded here and nowhere else (PROTOCOL.md).
 *
 * A message is a tree of maps whose memory lives in one arena owned by the root: nested
 * maps are borrowed from it and die with it, so a message is freed in one call. Every
 * length read from the wire is checked against the caps below before anything is
 * allocated, and the arena itself is capped, so a hostile peer costs at most a few
 * megabytes and never a crash.
 *
 * A message is used by one thread at a time. No global state: the shim links this file
 * into arbitrary applications. */
#ifndef QP_MSG_H
#define QP_MSG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QP_PROTO_VERSION 1
#define QP_ERR_LEN 256 /* size of every err buffer of proto/ */

/* Caps on what a peer may send to the arbiter (PROTOCOL.md "Transport"). */
#define QP_MAX_FRAME (64 * 1024)
#define QP_MAX_STR 4096
#define QP_MAX_ARRAY 1024
/* Caps on the arbiter's replies, which may list thousands of vGPUs. */
#define QP_MAX_REPLY_FRAME (4 * 1024 * 1024)
#define QP_MAX_REPLY_ARRAY 65536
/* Maps nested deeper than this are refused: PROTOCOL.md needs three levels. */
#define QP_MAX_DEPTH 8

typedef struct qp_msg qp_msg_t;

/* What a decoder accepts. */
typedef struct qp_caps {
    size_t max_frame; /* bytes in the whole encoded message */
    size_t max_str;   /* bytes in one string */
    size_t max_items; /* entries in one array or map */
} qp_caps_t;

/* Requests and pushes a peer sends: 64 KiB, 4 KiB strings, 1024 items. */
extern const qp_caps_t qp_caps_request;
/* Replies from the arbiter: 4 MiB, 4 KiB strings, 65536 items. */
extern const qp_caps_t qp_caps_reply;

/* ---- building ---------------------------------------------------------------------- */

/* A new message {t: type}. Returns NULL when out of memory. */
qp_msg_t *qp_msg_new(const char *type);
/* {t:"ok", id}: the start of a successful reply. NULL when out of memory. */
qp_msg_t *qp_msg_new_ok(uint64_t id);
/* {t:"error", id, code, msg}: msg is printf-formatted, one line (newlines become
 * spaces), cut to QP_MAX_STR. NULL when out of memory. */
qp_msg_t *qp_msg_new_error(uint64_t id, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Frees the message and everything nested in it; sets *self_p to NULL. *self_p must be
 * a root (from qp_msg_new* or qp_msg_decode), not a nested map. NULL is a no-op. */
void qp_msg_destroy(qp_msg_t **self_p);

/* Setters add key (copied) or replace its value. They return 0, or -ENOMEM when the
 * message's memory cap is reached, which also makes qp_msg_encode fail, so a builder
 * may check only the encode. A NULL self is allowed (the result of a failed
 * qp_msg_add_map) and returns -EINVAL. */
int qp_msg_set_str(qp_msg_t *self, const char *key, const char *value);
int qp_msg_set_uint(qp_msg_t *self, const char *key, uint64_t value);
int qp_msg_set_int(qp_msg_t *self, const char *key, int64_t value);
int qp_msg_set_float(qp_msg_t *self, const char *key, double value);
int qp_msg_set_bool(qp_msg_t *self, const char *key, bool value);
/* Adds an empty map under key and returns it, borrowed from self's root; NULL when out
 * of memory. */
qp_msg_t *qp_msg_add_map(qp_msg_t *self, const char *key);
/* Makes key an empty array (so that an empty list still encodes as []). */
int qp_msg_add_array(qp_msg_t *self, const char *key);
/* Appends an empty map to array key (made if absent) and returns it, borrowed from
 * self's root; NULL when out of memory or when key holds something else. */
qp_msg_t *qp_msg_append_map(qp_msg_t *self, const char *key);

/* ---- encoding and decoding --------------------------------------------------------- */

/* Encodes self (a root) as msgpack. On success *buf (caller frees) and *len are set.
 * Returns 0, -ENOMEM (out of memory now or while building), or -EMSGSIZE (over
 * max_frame of caps, which may be NULL for qp_caps_reply). */
int qp_msg_encode(const qp_msg_t *self, const qp_caps_t *caps, void **buf, size_t *len);
/* Decodes one message from len bytes: it must be exactly one map with string keys and a
 * string `t`, within caps (NULL: qp_caps_request). Sets *out (caller destroys) on success. Returns
 * 0, -EMSGSIZE (over max_frame), -EPROTO (anything malformed: truncated, trailing bytes, a
 * non-string key, a NUL inside a string, a cap exceeded, too deep), or -ENOMEM. When err is not
 * NULL it receives one line saying what was wrong and at which byte. */
int qp_msg_decode(const void *buf, size_t len, const qp_caps_t *caps, qp_msg_t **out,
                  char err[QP_ERR_LEN]);

/* ---- reading ----------------------------------------------------------------------- */

/* Getters return 0 and store the value, -ENOENT when key is absent, or -EPROTO when it
 * holds another type (out is then untouched). Integers convert when they fit: a uint
 * getter refuses a negative value, an int getter one over INT64_MAX; the float getter
 * also accepts integers. A string stays valid as long as the root does. */
int qp_msg_get_str(const qp_msg_t *self, const char *key, const char **out);
int qp_msg_get_uint(const qp_msg_t *self, const char *key, uint64_t *out);
int qp_msg_get_int(const qp_msg_t *self, const char *key, int64_t *out);
int qp_msg_get_float(const qp_msg_t *self, const char *key, double *out);
int qp_msg_get_bool(const qp_msg_t *self, const char *key, bool *out);
/* The map under key, borrowed from self's root; NULL when absent or not a map. */
const qp_msg_t *qp_msg_get_map(const qp_msg_t *self, const char *key);
/* Number of items of array key into *n. Returns 0, -ENOENT, or -EPROTO when key is not
 * an array or one of its items is not a map. */
int qp_msg_count_maps(const qp_msg_t *self, const char *key, size_t *n);
/* Item i of array key when it is a map (after qp_msg_count_maps said so); else NULL. */
const qp_msg_t *qp_msg_map_at(const qp_msg_t *self, const char *key, size_t i);
/* True when key is present, whatever its type. */
bool qp_msg_has(const qp_msg_t *self, const char *key);

/* The message type `t`; NULL when absent or not a string. Borrowed from the root. */
const char *qp_msg_type(const qp_msg_t *self);
/* The request id, 0 when absent or not an unsigned integer. */
uint64_t qp_msg_id(const qp_msg_t *self);
/* True for {t:"error"}. */
bool qp_msg_is_error(const qp_msg_t *self);

/* Copies at most n bytes of src, as a peer sent them, into dst (cap > 0 bytes, always
 * NUL-terminated) with every byte that is not printable ASCII as '?': what a peer sent
 * goes into error texts and log lines, which must stay one line. Returns dst. */
const char *qp_printable(char *dst, size_t cap, const void *src, size_t n);

#endif
