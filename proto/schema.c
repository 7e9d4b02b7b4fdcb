/* schema.c - request types, their fields and endpoints; error codes. Pure, no state. */
#include "proto/schema.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

const char *qp_endpoint_file(qp_endpoint_t ep)
{
    return ep == QP_ADMIN ? "admin.sock" : "tenant.sock";
}

const char *qp_endpoint_role(qp_endpoint_t ep)
{
    return ep == QP_ADMIN ? "admin" : "tenant";
}

static const struct {
    const char *code;
    int err;
} codes[] = {
    {QP_E_PROTO, -EPROTO},   {QP_E_AUTH, -EACCES},          {QP_E_NOTFOUND, -ENOENT},
    {QP_E_INVALID, -EINVAL}, {QP_E_NOSPACE, -ENOSPC},       {QP_E_QUOTA, -EDQUOT},
    {QP_E_INTERNAL, -EIO},   {QP_E_NOSESSION, -ECONNRESET}, {QP_E_BUSY, -EBUSY},
};

int qp_code_errno(const char *code)
{
    for (size_t i = 0; code && i < sizeof codes / sizeof codes[0]; i++) {
        if (strcmp(codes[i].code, code) == 0)
            return codes[i].err;
    }
    return -EPROTO;
}

const char *qp_errno_code(int neg_errno)
{
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        if (codes[i].err == neg_errno)
            return codes[i].code;
    }
    return QP_E_INTERNAL;
}

/* ---- request table ----------------------------------------------------------------- */

enum ftype {
    F_STR,  /* string */
    F_UINT, /* non-negative integer */
    F_INT,  /* any integer within int64 */
    F_BOOL, /* true or false */
};

struct field {
    const char *key;
    enum ftype type;
    bool required;
};

struct request {
    const char *type;
    unsigned endpoints;         /* QP_ADMIN | QP_TENANT */
    const struct field *fields; /* ends with a NULL key */
};

#define END                                                                                        \
    {                                                                                              \
        NULL, F_STR, false                                                                         \
    }

static const struct field f_hello[] = {
    {"proto", F_UINT, true},     {"role", F_STR, true},
    {"client", F_STR, false},    {"vgpu", F_STR, false},
    {"secret", F_STR, false},    {"pid", F_INT, false},
    {"mem_used", F_UINT, false}, END,
};
static const struct field f_create[] = {
    {"vm", F_STR, true},
    {"profile", F_STR, false},
    {"memory_mb", F_UINT, false},
    {"share", F_UINT, false},
    {"limit", F_UINT, false},
    {"gpu", F_INT, false},
    END,
};
static const struct field f_vgpu[] = {{"vgpu", F_STR, true}, END};
static const struct field f_resize[] = {
    {"vgpu", F_STR, true},
    {"memory_mb", F_UINT, false},
    {"share", F_UINT, false},
    {"limit", F_UINT, false},
    END,
};
static const struct field f_none[] = {END};
static const struct field f_migrate[] = {
    {"vgpu", F_STR, true},
    {"gpu", F_INT, false},
    {"gpu_uuid", F_STR, false},
    END,
};
static const struct field f_balance[] = {{"dry_run", F_BOOL, false}, END};
static const struct field f_cdi[] = {{"op", F_STR, true}, {"vgpu", F_STR, false}, END};
static const struct field f_reserve[] = {
    {"need", F_UINT, true},
    {"want", F_UINT, false},
    {"used", F_UINT, false},
    END,
};
static const struct field f_release[] = {{"reserved", F_UINT, true}, END};
static const struct field f_hb[] = {
    {"mem_used", F_UINT, true},
    {"mem_reserved", F_UINT, true},
    END,
};

static const struct field f_tok_ext[] = {{"lease", F_UINT, true}, END};
static const struct field f_tok_ret[] = {
    {"lease", F_UINT, true},
    {"used", F_UINT, true},
    {"more", F_BOOL, true},
    END,
};

static const struct request requests[QP_REQUEST_KINDS] = {
    [QP_REQ_HELLO] = {"hello", QP_ADMIN | QP_TENANT, f_hello},
    [QP_REQ_CREATE] = {"create", QP_ADMIN, f_create},
    [QP_REQ_DESTROY] = {"destroy", QP_ADMIN, f_vgpu},
    [QP_REQ_RESIZE] = {"resize", QP_ADMIN, f_resize},
    [QP_REQ_LIST] = {"list", QP_ADMIN, f_none},
    [QP_REQ_INFO] = {"info", QP_ADMIN, f_vgpu},
    [QP_REQ_CREDS] = {"creds", QP_ADMIN, f_vgpu},
    [QP_REQ_GPUS] = {"gpus", QP_ADMIN, f_none},
    [QP_REQ_STATS] = {"stats", QP_ADMIN, f_none},
    [QP_REQ_MEM_RESERVE] = {"mem_reserve", QP_TENANT, f_reserve},
    [QP_REQ_MEM_RELEASE] = {"mem_release", QP_TENANT, f_release},
    [QP_REQ_HB] = {"hb", QP_TENANT, f_hb},
    [QP_REQ_TOK_REQ] = {"tok_req", QP_TENANT, f_none},
    [QP_REQ_TOK_EXT] = {"tok_ext", QP_TENANT, f_tok_ext},
    [QP_REQ_TOK_RET] = {"tok_ret", QP_TENANT, f_tok_ret},
    [QP_REQ_CDI] = {"cdi", QP_ADMIN, f_cdi},
    [QP_REQ_MIGRATE] = {"migrate", QP_ADMIN, f_migrate},
    [QP_REQ_BALANCE] = {"balance", QP_ADMIN, f_balance},
};

static int check_field(const qp_msg_t *m, const struct field *f, char err[QP_ERR_LEN])
{
    static const char *names[] = {"a string", "an unsigned integer", "an integer", "a boolean"};
    int rc;
    const char *s;
    uint64_t u;
    int64_t i;
    bool b;
    switch (f->type) {
    case F_STR:
        rc = qp_msg_get_str(m, f->key, &s);
        break;
    case F_UINT:
        rc = qp_msg_get_uint(m, f->key, &u);
        break;
    case F_BOOL:
        rc = qp_msg_get_bool(m, f->key, &b);
        break;
    default:
        rc = qp_msg_get_int(m, f->key, &i);
        break;
    }
    if (rc == -ENOENT && !f->required)
        return 0;
    if (rc == -ENOENT) {
        snprintf(err, QP_ERR_LEN, "'%.64s' needs field '%s'", qp_msg_type(m), f->key);
        return -EPROTO;
    }
    if (rc < 0) {
        snprintf(err, QP_ERR_LEN, "field '%s' of '%.64s' must be %s", f->key, qp_msg_type(m),
                 names[f->type]);
        return -EPROTO;
    }
    return 0;
}

int qp_check_request(const qp_msg_t *m, qp_endpoint_t ep, char err[QP_ERR_LEN])
{
    const char *t = qp_msg_type(m);
    if (!t) {
        snprintf(err, QP_ERR_LEN, "message has no string 't'");
        return -EPROTO;
    }
    uint64_t id;
    char shown[65];
    if (qp_msg_has(m, "id") && qp_msg_get_uint(m, "id", &id) < 0) {
        snprintf(err, QP_ERR_LEN, "field 'id' of '%s' must be an unsigned integer",
                 qp_printable(shown, sizeof shown, t, strlen(t)));
        return -EPROTO;
    }
    int r = qp_request_kind(t);
    if (r < 0) {
        snprintf(err, QP_ERR_LEN, "unknown message type '%s'",
                 qp_printable(shown, sizeof shown, t, strlen(t)));
        return -EPROTO;
    }
    if (!(requests[r].endpoints & ep)) {
        snprintf(err, QP_ERR_LEN, "'%s' is not allowed on %s", t, qp_endpoint_file(ep));
        return -EACCES;
    }
    for (const struct field *f = requests[r].fields; f->key; f++) {
        int rc = check_field(m, f, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}


int qp_request_kind(const char *t)
{
    for (size_t r = 0; t && r < QP_REQUEST_KINDS; r++) {
        if (strcmp(requests[r].type, t) == 0)
            return (int)r;
    }
    return -1;
}

const char *qp_request_kind_name(size_t kind)
{
    return kind < QP_REQUEST_KINDS ? requests[kind].type : NULL;
}

bool qp_request_kind_on(size_t kind, qp_endpoint_t ep)
{
    return kind < QP_REQUEST_KINDS && (requests[kind].endpoints & ep) != 0;
}

/* ---- builders ---------------------------------------------------------------------- */

qp_msg_t *qp_new_request(qp_req_t kind)
{
    return kind < QP_REQUEST_KINDS ? qp_msg_new(requests[kind].type) : NULL;
}

/* Returns m, or NULL (m destroyed) when building failed. */
static qp_msg_t *built(qp_msg_t *m, int rc)
{
    if (rc < 0)
        qp_msg_destroy(&m);
    return m;
}

qp_msg_t *qp_new_admin_hello(const char *client)
{
    qp_msg_t *m = qp_new_request(QP_REQ_HELLO);
    if (!m)
        return NULL;
    int rc = qp_msg_set_uint(m, "proto", QP_PROTO_VERSION);
    rc = rc ? rc : qp_msg_set_str(m, "role", "admin");
    rc = rc ? rc : qp_msg_set_str(m, "client", client);
    return built(m, rc);
}

qp_msg_t *qp_new_tenant_hello(const char *client, const char *vgpu, const char *secret, pid_t pid,
                              uint64_t mem_used)
{
    qp_msg_t *m = qp_new_request(QP_REQ_HELLO);
    if (!m)
        return NULL;
    int rc = qp_msg_set_uint(m, "proto", QP_PROTO_VERSION);
    rc = rc ? rc : qp_msg_set_str(m, "role", "tenant");
    rc = rc ? rc : qp_msg_set_str(m, "client", client);
    rc = rc ? rc : qp_msg_set_str(m, "vgpu", vgpu);
    rc = rc ? rc : qp_msg_set_str(m, "secret", secret);
    rc = rc ? rc : qp_msg_set_int(m, "pid", pid);
    rc = rc ? rc : qp_msg_set_uint(m, "mem_used", mem_used);
    return built(m, rc);
}

qp_msg_t *qp_new_mem_reserve(uint64_t need, uint64_t want, uint64_t used)
{
    qp_msg_t *m = qp_new_request(QP_REQ_MEM_RESERVE);
    if (!m)
        return NULL;
    int rc = qp_msg_set_uint(m, "need", need);
    rc = rc ? rc : qp_msg_set_uint(m, "want", want < need ? need : want);
    rc = rc ? rc : qp_msg_set_uint(m, "used", used);
    return built(m, rc);
}

qp_msg_t *qp_new_mem_release(uint64_t reserved)
{
    qp_msg_t *m = qp_new_request(QP_REQ_MEM_RELEASE);
    return m ? built(m, qp_msg_set_uint(m, "reserved", reserved)) : NULL;
}

qp_msg_t *qp_new_hb(uint64_t mem_used, uint64_t mem_reserved)
{
    qp_msg_t *m = qp_new_request(QP_REQ_HB);
    if (!m)
        return NULL;
    int rc = qp_msg_set_uint(m, "mem_used", mem_used);
    rc = rc ? rc : qp_msg_set_uint(m, "mem_reserved", mem_reserved);
    return built(m, rc);
}

qp_msg_t *qp_new_tok_req(void)
{
    return qp_new_request(QP_REQ_TOK_REQ);
}

qp_msg_t *qp_new_tok_ext(uint64_t lease)
{
    qp_msg_t *m = qp_new_request(QP_REQ_TOK_EXT);
    return m ? built(m, qp_msg_set_uint(m, "lease", lease)) : NULL;
}

qp_msg_t *qp_new_tok_ret(uint64_t lease, uint64_t used, bool more)
{
    qp_msg_t *m = qp_new_request(QP_REQ_TOK_RET);
    if (!m)
        return NULL;
    int rc = qp_msg_set_uint(m, "lease", lease);
    rc = rc ? rc : qp_msg_set_uint(m, "used", used);
    rc = rc ? rc : qp_msg_set_bool(m, "more", more);
    return built(m, rc);
}

qp_msg_t *qp_new_tok_grant(uint64_t lease, uint64_t ns)
{
    qp_msg_t *m = qp_msg_new("tok_grant");
    if (!m)
        return NULL;
    int rc = qp_msg_set_uint(m, "lease", lease);
    rc = rc ? rc : qp_msg_set_uint(m, "ns", ns);
    return built(m, rc);
}

qp_msg_t *qp_new_tok_revoke(uint64_t lease)
{
    qp_msg_t *m = qp_msg_new("tok_revoke");
    return m ? built(m, qp_msg_set_uint(m, "lease", lease)) : NULL;
}

/* ---- reading compute tokens ---------------------------------------------------------- */

static const struct field f_tok_grant[] = {{"lease", F_UINT, true}, {"ns", F_UINT, true}, END};

/* The token messages: three requests (their types are the request table's) and the
 * arbiter's two pushes. */
static const struct {
    int req;          /* a qp_req_t, or -1 for a push */
    const char *push; /* a push's type */
    qp_tok_kind_t kind;
    const struct field *fields;
} toks[] = {
    {QP_REQ_TOK_REQ, NULL, QP_TOK_REQ, f_none},
    {-1, "tok_grant", QP_TOK_GRANT, f_tok_grant},
    {QP_REQ_TOK_EXT, NULL, QP_TOK_EXT, f_tok_ext},
    {-1, "tok_revoke", QP_TOK_REVOKE, f_tok_ext},
    {QP_REQ_TOK_RET, NULL, QP_TOK_RET, f_tok_ret},
};

static const char *tok_type(size_t i)
{
    return toks[i].req < 0 ? toks[i].push : requests[toks[i].req].type;
}

static int tok_index(const qp_msg_t *m)
{
    const char *t = qp_msg_type(m);
    for (size_t i = 0; t && i < sizeof toks / sizeof toks[0]; i++) {
        if (strcmp(tok_type(i), t) == 0)
            return (int)i;
    }
    return -1;
}

bool qp_is_tok(const qp_msg_t *m)
{
    return tok_index(m) >= 0;
}

int qp_tok_get(const qp_msg_t *m, qp_tok_t *out, char err[QP_ERR_LEN])
{
    int i = tok_index(m);
    if (i < 0) {
        const char *t = m && qp_msg_type(m) ? qp_msg_type(m) : "?";
        char shown[65];
        snprintf(err, QP_ERR_LEN, "'%s' is not a compute-token message",
                 qp_printable(shown, sizeof shown, t, strlen(t)));
        return -ENOENT;
    }
    for (const struct field *f = toks[i].fields; f->key; f++) {
        int rc = check_field(m, f, err);
        if (rc < 0)
            return rc;
    }
    qp_tok_t t = {.kind = toks[i].kind};
    qp_msg_get_uint(m, "lease", &t.lease);
    if (t.kind == QP_TOK_GRANT) {
        qp_msg_get_uint(m, "ns", &t.ns);
        if (t.ns == 0) {
            snprintf(err, QP_ERR_LEN, "field 'ns' of 'tok_grant' must be above 0");
            return -EPROTO;
        }
    }
    if (t.kind == QP_TOK_RET) {
        qp_msg_get_uint(m, "used", &t.used);
        qp_msg_get_bool(m, "more", &t.more);
    }
    *out = t;
    return 0;
}
