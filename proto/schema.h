/* schema.h - the protocol's vocabulary (PROTOCOL.md): endpoints, request types and
 * their fields, error codes, and builders for the requests a peer sends.
 *
 * The arbiter runs qp_check_request() on every decoded request before it looks at it,
 * so a handler reads fields whose presence and type are already known. Pure functions,
 * no state. */
#ifndef QP_SCHEMA_H
#define QP_SCHEMA_H

#include "proto/msg.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The two endpoints in the socket dir. */
typedef enum qp_endpoint {
    QP_ADMIN = 1,  /* admin.sock: the host administrator (qgpuctl, libqvgpu) */
    QP_TENANT = 2, /* tenant.sock: one process of one vGPU (the shim) */
} qp_endpoint_t;

/* File name of ep in the socket dir ("admin.sock", "tenant.sock"); static storage. */
const char *qp_endpoint_file(qp_endpoint_t ep);
/* Role name of ep in a hello ("admin", "tenant"); static storage. */
const char *qp_endpoint_role(qp_endpoint_t ep);

/* Name of the arbiter's lock file in the socket dir. */
#define QP_LOCK_FILE "qarbiter.lock"

/* Error codes of {t:"error", code} (PROTOCOL.md "Replies and errors"). */
#define QP_E_PROTO "proto"
#define QP_E_AUTH "auth"
#define QP_E_NOTFOUND "notfound"
#define QP_E_INVALID "invalid"
#define QP_E_NOSPACE "nospace"
#define QP_E_QUOTA "quota"
#define QP_E_INTERNAL "internal"
#define QP_E_NOSESSION "nosession"
#define QP_E_BUSY "busy"

/* The negative errno a code stands for: proto -EPROTO, auth -EACCES, notfound -ENOENT,
 * invalid -EINVAL, nospace -ENOSPC, quota -EDQUOT, internal -EIO, nosession
 * -ECONNRESET, busy -EBUSY; an unknown code (a newer arbiter) -EPROTO. */
int qp_code_errno(const char *code);
/* The code for a negative errno, the inverse of qp_code_errno (internal for others). */
const char *qp_errno_code(int neg_errno);

/* Checks that m, decoded from endpoint ep, is a request we know, allowed on ep, with
 * every required field present and every known field of the right type; unknown fields
 * are ignored. Returns 0, -EPROTO (err says which type or field is wrong) or -EACCES
 * (a request of the other endpoint; err says so). */
int qp_check_request(const qp_msg_t *m, qp_endpoint_t ep, char err[QP_ERR_LEN]);

/* ---- request kinds ------------------------------------------------------------------ */

/* The request types of PROTOCOL.md, each named once: its type string, endpoints and
 * fields are in schema.c's table, in this order. The arbiter dispatches and counts
 * requests by kind (arbiter/dispatch.h); peers build them by kind (qp_new_request). */
typedef enum qp_req {
    QP_REQ_HELLO,
    QP_REQ_CREATE,
    QP_REQ_DESTROY,
    QP_REQ_RESIZE,
    QP_REQ_LIST,
    QP_REQ_INFO,
    QP_REQ_CREDS,
    QP_REQ_GPUS,
    QP_REQ_STATS,
    QP_REQ_MEM_RESERVE,
    QP_REQ_MEM_RELEASE,
    QP_REQ_HB,
    QP_REQ_TOK_REQ,
    QP_REQ_TOK_EXT,
    QP_REQ_TOK_RET,
    QP_REQ_CDI,
    QP_REQ_MIGRATE,
    QP_REQ_BALANCE,
    QP_REQUEST_KINDS /* how many */
} qp_req_t;

/* The kind of request type t, or -1 when t is none we know (or NULL). */
int qp_request_kind(const char *t);
/* The type of kind ("create"), static storage; NULL when kind is not below
 * QP_REQUEST_KINDS. */
const char *qp_request_kind_name(size_t kind);
/* Whether requests of kind are served on ep. */
bool qp_request_kind_on(size_t kind, qp_endpoint_t ep);

/* ---- requests a peer sends (each NULL when out of memory) ---------------------------- */

/* {t:KIND}: a request of kind with no field yet (the caller adds them). */
qp_msg_t *qp_new_request(qp_req_t kind);

/* {t:hello, proto, role:admin, client}. */
qp_msg_t *qp_new_admin_hello(const char *client);
/* {t:hello, proto, role:tenant, client, vgpu, secret, pid, mem_used}: mem_used is what
 * this process already holds, re-charged by the arbiter (0 for a new process). */
qp_msg_t *qp_new_tenant_hello(const char *client, const char *vgpu, const char *secret, pid_t pid,
                              uint64_t mem_used);
/* {t:mem_reserve, need, want, used}: the reservation this process must have now (need),
 * would like (want >= need), and what it uses now (used, bytes). */
qp_msg_t *qp_new_mem_reserve(uint64_t need, uint64_t want, uint64_t used);
/* {t:mem_release, reserved}: the new, lower reservation. */
qp_msg_t *qp_new_mem_release(uint64_t reserved);
/* {t:hb, mem_used, mem_reserved}: sent as a request (with an id) it is answered with
 * vgpu_used and vgpu_reserved; sent without an id it is not answered. */
qp_msg_t *qp_new_hb(uint64_t mem_used, uint64_t mem_reserved);

/* ---- compute tokens (PROTOCOL.md "Compute tokens"; no id, no reply) ---------------- */

/* {t:tok_req}: the process has GPU work; queue it for a lease. */
qp_msg_t *qp_new_tok_req(void);
/* {t:tok_ext, lease}: lease ends soon and the process still has work. */
qp_msg_t *qp_new_tok_ext(uint64_t lease);
/* {t:tok_ret, lease, used, more}: lease is over and the work queued under it finished,
 * used ns after its grant arrived; more: the process has work waiting. */
qp_msg_t *qp_new_tok_ret(uint64_t lease, uint64_t used, bool more);
/* Pushes of the arbiter: {t:tok_grant, lease, ns} (a grant of the lease held extends
 * it) and {t:tok_revoke, lease}. */
qp_msg_t *qp_new_tok_grant(uint64_t lease, uint64_t ns);
qp_msg_t *qp_new_tok_revoke(uint64_t lease);

typedef enum qp_tok_kind {
    QP_TOK_REQ = 1, /* tenant -> arbiter */
    QP_TOK_GRANT,   /* arbiter -> tenant */
    QP_TOK_EXT,     /* tenant -> arbiter */
    QP_TOK_REVOKE,  /* arbiter -> tenant */
    QP_TOK_RET,     /* tenant -> arbiter */
} qp_tok_kind_t;

/* A compute-token message read into a struct; fields its kind lacks are 0. */
typedef struct qp_tok {
    qp_tok_kind_t kind;
    uint64_t lease; /* all but REQ */
    uint64_t ns;    /* GRANT: lease length, > 0 */
    uint64_t used;  /* RET: ns the process used */
    bool more;      /* RET: it has more work */
} qp_tok_t;

/* True when m's type is one of tok_req, tok_grant, tok_ext, tok_revoke, tok_ret. */
bool qp_is_tok(const qp_msg_t *m);
/* Reads the tok_* message m into *out, checking every field its type needs (unknown
 * fields are ignored). Returns 0; -ENOENT when m is no tok_* message; -EPROTO with err
 * naming the field when one is missing, mistyped or out of range (a grant of 0 ns).
 * *out is written only on success. */
int qp_tok_get(const qp_msg_t *m, qp_tok_t *out, char err[QP_ERR_LEN]);

#endif
