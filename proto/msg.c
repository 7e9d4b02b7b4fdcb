/* msg.c - protocol messages as arena-backed msgpack map trees: build, encode, decode.
 * Single-threaded per message; no global mutable state. */
#include "proto/msg.h"

#include "proto/arena.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const qp_caps_t qp_caps_request = {QP_MAX_FRAME, QP_MAX_STR, QP_MAX_ARRAY};
const qp_caps_t qp_caps_reply = {QP_MAX_REPLY_FRAME, QP_MAX_STR, QP_MAX_REPLY_ARRAY};

/* A decoded tree takes at most 32 arena bytes per input byte (a map entry of a one-byte
 * key and a one-byte value becomes a 48-byte entry and a 16-byte key), so with this
 * factor the cap never refuses a frame within its size limit, and still bounds it. */
#define DECODE_MEM_FACTOR 64
/* What a builder may use: far beyond any reply, still bounded. */
#define BUILD_MEM_MAX ((size_t)32 << 20)
#define FIRST_BLOCK 1024

/* ---- the tree ---------------------------------------------------------------------- */

enum vtype { V_NIL, V_BOOL, V_INT, V_UINT, V_FLOAT, V_STR, V_ARRAY, V_MAP, V_OTHER };

struct value {
    enum vtype type; /* which member of v is set */
    union {
        bool b;
        int64_t i; /* V_INT: always negative; non-negative integers are V_UINT */
        uint64_t u;
        double f;
        struct {
            const char *p; /* in the arena, NUL-terminated, no NUL inside */
            uint32_t len;
        } s;
        struct {
            struct value *items; /* in the arena */
            uint32_t n;          /* items in use */
            uint32_t cap;        /* items allocated */
        } a;
        qp_msg_t *m; /* in the arena */
    } v;
};

struct entry {
    struct entry *next; /* next entry in insertion order */
    const char *key;    /* in the arena */
    struct value val;
};

struct qp_msg {
    qp_arena_t *arena;  /* the root's arena, shared by the whole tree */
    struct entry *head; /* first entry; lookups are linear: maps hold a few keys */
    struct entry *tail; /* last entry, for appending */
    bool is_root;       /* true only for the map that owns the arena */
};

/* A root: its map, its arena and the first block in one allocation. */
struct root {
    qp_msg_t map;
    qp_arena_t arena;
    qp_block_t first; /* FIRST_BLOCK bytes follow */
};

static qp_msg_t *root_new(size_t max)
{
    struct root *r = malloc(sizeof *r + FIRST_BLOCK);
    if (!r)
        return NULL;
    memset(r, 0, sizeof *r);
    r->first.cap = FIRST_BLOCK;
    qp_arena_init(&r->arena, &r->first, max);
    r->map.arena = &r->arena;
    r->map.is_root = true;
    return &r->map;
}

void qp_msg_destroy(qp_msg_t **self_p)
{
    qp_msg_t *self = *self_p;
    if (!self)
        return;
    assert(self->is_root); /* a nested map lives and dies with its root */
    struct root *r = (struct root *)self;
    qp_arena_release(&r->arena, &r->first);
    free(r);
    *self_p = NULL;
}

static struct entry *find(const qp_msg_t *self, const char *key)
{
    for (struct entry *e = self ? self->head : NULL; e; e = e->next) {
        if (strcmp(e->key, key) == 0)
            return e;
    }
    return NULL;
}

/* The entry for key, appended when absent; NULL when out of memory. */
static struct entry *slot(qp_msg_t *self, const char *key)
{
    struct entry *e = find(self, key);
    if (e)
        return e;
    size_t klen = strlen(key);
    if (klen > QP_MAX_STR) {
        self->arena->error = self->arena->error ? self->arena->error : -EMSGSIZE;
        return NULL;
    }
    e = qp_arena_alloc(self->arena, sizeof *e);
    if (!e || !(e->key = qp_arena_strndup(self->arena, key, klen)))
        return NULL;
    if (self->tail)
        self->tail->next = e;
    else
        self->head = e;
    self->tail = e;
    return e;
}

static qp_msg_t *map_new(qp_arena_t *a)
{
    qp_msg_t *m = qp_arena_alloc(a, sizeof *m);
    if (m)
        m->arena = a;
    return m;
}

/* ---- building ---------------------------------------------------------------------- */

qp_msg_t *qp_msg_new(const char *type)
{
    qp_msg_t *m = root_new(BUILD_MEM_MAX);
    if (m && qp_msg_set_str(m, "t", type) < 0)
        qp_msg_destroy(&m);
    return m;
}

qp_msg_t *qp_msg_new_ok(uint64_t id)
{
    qp_msg_t *m = qp_msg_new("ok");
    if (m && qp_msg_set_uint(m, "id", id) < 0)
        qp_msg_destroy(&m);
    return m;
}

qp_msg_t *qp_msg_new_error(uint64_t id, const char *code, const char *fmt, ...)
{
    char text[QP_MAX_STR + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    for (char *c = text; *c; c++) {
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    }
    qp_msg_t *m = qp_msg_new("error");
    if (!m)
        return NULL;
    qp_msg_set_uint(m, "id", id);
    qp_msg_set_str(m, "code", code);
    qp_msg_set_str(m, "msg", text);
    if (m->arena->error)
        qp_msg_destroy(&m);
    return m;
}

int qp_msg_set_str(qp_msg_t *self, const char *key, const char *value)
{
    if (!self)
        return -EINVAL;
    size_t len = strlen(value);
    if (len > QP_MAX_STR) {
        self->arena->error = self->arena->error ? self->arena->error : -EMSGSIZE;
        return -EMSGSIZE;
    }
    struct entry *e = slot(self, key);
    const char *copy = e ? qp_arena_strndup(self->arena, value, len) : NULL;
    if (!copy)
        return self->arena->error;
    e->val.type = V_STR;
    e->val.v.s.p = copy;
    e->val.v.s.len = (uint32_t)len;
    return 0;
}

int qp_msg_set_uint(qp_msg_t *self, const char *key, uint64_t value)
{
    struct entry *e = self ? slot(self, key) : NULL;
    if (!e)
        return self ? self->arena->error : -EINVAL;
    e->val.type = V_UINT;
    e->val.v.u = value;
    return 0;
}

int qp_msg_set_int(qp_msg_t *self, const char *key, int64_t value)
{
    if (value >= 0)
        return qp_msg_set_uint(self, key, (uint64_t)value);
    struct entry *e = self ? slot(self, key) : NULL;
    if (!e)
        return self ? self->arena->error : -EINVAL;
    e->val.type = V_INT;
    e->val.v.i = value;
    return 0;
}

int qp_msg_set_float(qp_msg_t *self, const char *key, double value)
{
    struct entry *e = self ? slot(self, key) : NULL;
    if (!e)
        return self ? self->arena->error : -EINVAL;
    e->val.type = V_FLOAT;
    e->val.v.f = value;
    return 0;
}

int qp_msg_set_bool(qp_msg_t *self, const char *key, bool value)
{
    struct entry *e = self ? slot(self, key) : NULL;
    if (!e)
        return self ? self->arena->error : -EINVAL;
    e->val.type = V_BOOL;
    e->val.v.b = value;
    return 0;
}

qp_msg_t *qp_msg_add_map(qp_msg_t *self, const char *key)
{
    struct entry *e = self ? slot(self, key) : NULL;
    qp_msg_t *m = e ? map_new(self->arena) : NULL;
    if (!m)
        return NULL;
    e->val.type = V_MAP;
    e->val.v.m = m;
    return m;
}

int qp_msg_add_array(qp_msg_t *self, const char *key)
{
    struct entry *e = self ? slot(self, key) : NULL;
    if (!e)
        return self ? self->arena->error : -EINVAL;
    memset(&e->val, 0, sizeof e->val);
    e->val.type = V_ARRAY;
    return 0;
}

qp_msg_t *qp_msg_append_map(qp_msg_t *self, const char *key)
{
    if (!self)
        return NULL;
    struct entry *e = find(self, key);
    if (!e) {
        if (qp_msg_add_array(self, key) < 0)
            return NULL;
        e = find(self, key);
    }
    if (e->val.type != V_ARRAY)
        return NULL;
    if (e->val.v.a.n == e->val.v.a.cap) {
        /* Growth leaves the old items in the arena: amortised O(1), freed with the root. */
        uint32_t cap = e->val.v.a.cap ? e->val.v.a.cap * 2 : 8;
        struct value *items = qp_arena_alloc(self->arena, cap * sizeof *items);
        if (!items)
            return NULL;
        if (e->val.v.a.n)
            memcpy(items, e->val.v.a.items, e->val.v.a.n * sizeof *items);
        e->val.v.a.items = items;
        e->val.v.a.cap = cap;
    }
    qp_msg_t *m = map_new(self->arena);
    if (!m)
        return NULL;
    struct value *v = &e->val.v.a.items[e->val.v.a.n++];
    v->type = V_MAP;
    v->v.m = m;
    return m;
}

/* ---- encoding ---------------------------------------------------------------------- */

static int pack_map(msgpack_packer *pk, const qp_msg_t *m);

static int pack_value(msgpack_packer *pk, const struct value *v)
{
    switch (v->type) {
    case V_NIL:
    case V_OTHER: /* kept only from decoding; written back as nil */
        return msgpack_pack_nil(pk);
    case V_BOOL:
        return v->v.b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    case V_INT:
        return msgpack_pack_int64(pk, v->v.i);
    case V_UINT:
        return msgpack_pack_uint64(pk, v->v.u);
    case V_FLOAT:
        return msgpack_pack_double(pk, v->v.f);
    case V_STR:
        if (msgpack_pack_str(pk, v->v.s.len) < 0)
            return -1;
        return msgpack_pack_str_body(pk, v->v.s.p, v->v.s.len);
    case V_ARRAY:
        if (msgpack_pack_array(pk, v->v.a.n) < 0)
            return -1;
        for (uint32_t i = 0; i < v->v.a.n; i++) {
            if (pack_value(pk, &v->v.a.items[i]) < 0)
                return -1;
        }
        return 0;
    case V_MAP:
        return pack_map(pk, v->v.m);
    }
    return -1;
}

static int pack_map(msgpack_packer *pk, const qp_msg_t *m)
{
    size_t n = 0;
    for (const struct entry *e = m->head; e; e = e->next)
        n++;
    if (msgpack_pack_map(pk, n) < 0)
        return -1;
    for (const struct entry *e = m->head; e; e = e->next) {
        size_t klen = strlen(e->key);
        if (msgpack_pack_str(pk, klen) < 0 || msgpack_pack_str_body(pk, e->key, klen) < 0 ||
            pack_value(pk, &e->val) < 0)
            return -1;
    }
    return 0;
}

int qp_msg_encode(const qp_msg_t *self, const qp_caps_t *caps, void **buf, size_t *len)
{
    if (!caps)
        caps = &qp_caps_reply;
    if (self->arena->error)
        return self->arena->error;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (pack_map(&pk, self) < 0) {
        msgpack_sbuffer_destroy(&sb);
        return -ENOMEM; /* the sbuffer's only failure is realloc */
    }
    if (sb.size > caps->max_frame) {
        msgpack_sbuffer_destroy(&sb);
        return -EMSGSIZE;
    }
    *len = sb.size;
    *buf = msgpack_sbuffer_release(&sb);
    if (!*buf) { /* an empty sbuffer has no data: cannot happen for a map, but be exact */
        *buf = malloc(1);
        if (!*buf)
            return -ENOMEM;
    }
    return 0;
}

/* ---- decoding ---------------------------------------------------------------------- */

struct reader {
    const uint8_t *start; /* first byte of the frame, for offsets in errors */
    const uint8_t *p;     /* next byte to read */
    const uint8_t *end;   /* one past the last byte */
    const qp_caps_t *lim;
    qp_arena_t *arena;
    char *err; /* NULL or QP_ERR_LEN bytes */
    int depth; /* maps and arrays open around the value being read */
};

static int fail(struct reader *r, int rc, const char *what)
{
    if (r->err && !r->err[0])
        snprintf(r->err, QP_ERR_LEN, "%s at byte %zu", what, (size_t)(r->p - r->start));
    return rc;
}

static int need(struct reader *r, size_t n)
{
    return (size_t)(r->end - r->p) >= n ? 0 : fail(r, -EPROTO, "truncated message");
}

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Reads an n-byte big-endian length or number after the type byte. */
static int rd_be(struct reader *r, int n, uint64_t *out)
{
    if (need(r, (size_t)n) < 0)
        return -EPROTO;
    *out = be(r->p, n);
    r->p += n;
    return 0;
}

/* Whether s[0..len) is well-formed UTF-8 (RFC 3629): no overlong forms, no UTF-16
 * surrogates, nothing past U+10FFFF. Every string of the protocol is text, and one that
 * is not would only fail later, farther from its cause (a vm name in a log line, a JSON
 * reply). */
static bool utf8_valid(const uint8_t *s, uint64_t len)
{
    uint64_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int n;                        /* continuation bytes */
        uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the first one */
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            if (c == 0xe0)
                lo = 0xa0; /* overlong */
            else if (c == 0xed)
                hi = 0x9f; /* surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            if (c == 0xf0)
                lo = 0x90; /* overlong */
            else if (c == 0xf4)
                hi = 0x8f; /* past U+10FFFF */
        } else {
            return false; /* continuation byte, overlong 0xc0/0xc1, or 0xf5.. */
        }
        if (len - i <= (uint64_t)n || s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (int k = 2; k <= n; k++) {
            if (s[i + k] < 0x80 || s[i + k] > 0xbf)
                return false;
        }
        i += (uint64_t)n + 1;
    }
    return true;
}

static int rd_str_body(struct reader *r, uint64_t len, struct value *out)
{
    if (len > r->lim->max_str)
        return fail(r, -EPROTO, "string longer than the protocol allows");
    if (need(r, len) < 0)
        return -EPROTO;
    if (memchr(r->p, '\0', len))
        return fail(r, -EPROTO, "NUL byte inside a string");
    if (!utf8_valid(r->p, len))
        return fail(r, -EPROTO, "string is not UTF-8");
    char *s = qp_arena_strndup(r->arena, (const char *)r->p, len);
    if (!s)
        return fail(r, -ENOMEM, "out of memory");
    r->p += len;
    out->type = V_STR;
    out->v.s.p = s;
    out->v.s.len = (uint32_t)len;
    return 0;
}

static int rd_value(struct reader *r, struct value *out);

static int rd_array(struct reader *r, uint64_t n, struct value *out)
{
    /* Every item takes at least one byte: check before allocating n of them. */
    if (n > r->lim->max_items)
        return fail(r, -EPROTO, "array longer than the protocol allows");
    if (need(r, n) < 0)
        return -EPROTO;
    if (++r->depth > QP_MAX_DEPTH)
        return fail(r, -EPROTO, "nested too deep");
    out->type = V_ARRAY;
    out->v.a.n = out->v.a.cap = (uint32_t)n;
    if (n && !(out->v.a.items = qp_arena_alloc(r->arena, n * sizeof(struct value))))
        return fail(r, -ENOMEM, "out of memory");
    for (uint64_t i = 0; i < n; i++) {
        int rc = rd_value(r, &out->v.a.items[i]);
        if (rc < 0)
            return rc;
    }
    r->depth--;
    return 0;
}

/* Reads a key: it must be a string. */
static int rd_key(struct reader *r, const char **key)
{
    if (need(r, 1) < 0)
        return -EPROTO;
    uint8_t b = *r->p;
    uint64_t len;
    if (b >= 0xa0 && b <= 0xbf) {
        r->p++;
        len = b & 0x1f;
    } else if (b >= 0xd9 && b <= 0xdb) {
        r->p++;
        if (rd_be(r, 1 << (b - 0xd9), &len) < 0)
            return -EPROTO;
    } else {
        return fail(r, -EPROTO, "map key is not a string");
    }
    struct value v;
    int rc = rd_str_body(r, len, &v);
    if (rc == 0)
        *key = v.v.s.p;
    return rc;
}

static int rd_map(struct reader *r, uint64_t n, qp_msg_t **out)
{
    if (n > r->lim->max_items)
        return fail(r, -EPROTO, "map larger than the protocol allows");
    if (need(r, 2 * n) < 0)
        return -EPROTO;
    if (++r->depth > QP_MAX_DEPTH)
        return fail(r, -EPROTO, "nested too deep");
    qp_msg_t *m = map_new(r->arena);
    if (!m)
        return fail(r, -ENOMEM, "out of memory");
    for (uint64_t i = 0; i < n; i++) {
        struct entry *e = qp_arena_alloc(r->arena, sizeof *e);
        if (!e)
            return fail(r, -ENOMEM, "out of memory");
        int rc = rd_key(r, &e->key);
        if (rc == 0)
            rc = rd_value(r, &e->val);
        if (rc < 0)
            return rc;
        /* Duplicate keys are kept; lookups find the first, so the first wins. */
        if (m->tail)
            m->tail->next = e;
        else
            m->head = e;
        m->tail = e;
    }
    r->depth--;
    *out = m;
    return 0;
}

/* Skips n payload bytes of a bin or ext value. */
static int rd_skip(struct reader *r, uint64_t n, struct value *out)
{
    if (need(r, n) < 0)
        return -EPROTO;
    r->p += n;
    out->type = V_OTHER;
    return 0;
}

static int rd_value(struct reader *r, struct value *out)
{
    if (need(r, 1) < 0)
        return -EPROTO;
    uint8_t b = *r->p++;
    uint64_t n;
    if (b <= 0x7f) {
        out->type = V_UINT;
        out->v.u = b;
        return 0;
    }
    if (b >= 0xe0) {
        out->type = V_INT;
        out->v.i = (int8_t)b;
        return 0;
    }
    if (b >= 0x80 && b <= 0x8f) {
        int rc = rd_map(r, b & 0x0f, &out->v.m);
        if (rc == 0)
            out->type = V_MAP;
        return rc;
    }
    if (b >= 0x90 && b <= 0x9f)
        return rd_array(r, b & 0x0f, out);
    if (b >= 0xa0 && b <= 0xbf)
        return rd_str_body(r, b & 0x1f, out);
    switch (b) {
    case 0xc0:
        out->type = V_NIL;
        return 0;
    case 0xc2:
    case 0xc3:
        out->type = V_BOOL;
        out->v.b = b == 0xc3;
        return 0;
    case 0xc4: /* bin 8/16/32 */
    case 0xc5:
    case 0xc6:
        if (rd_be(r, 1 << (b - 0xc4), &n) < 0)
            return -EPROTO;
        return rd_skip(r, n, out);
    case 0xc7: /* ext 8/16/32: length, then a type byte, then the payload */
    case 0xc8:
    case 0xc9:
        if (rd_be(r, 1 << (b - 0xc7), &n) < 0)
            return -EPROTO;
        return rd_skip(r, n + 1, out);
    case 0xca: {
        if (rd_be(r, 4, &n) < 0)
            return -EPROTO;
        uint32_t bits = (uint32_t)n;
        float f;
        memcpy(&f, &bits, sizeof f);
        out->type = V_FLOAT;
        out->v.f = f;
        return 0;
    }
    case 0xcb:
        if (rd_be(r, 8, &n) < 0)
            return -EPROTO;
        out->type = V_FLOAT;
        memcpy(&out->v.f, &n, sizeof n);
        return 0;
    case 0xcc: /* uint 8/16/32/64 */
    case 0xcd:
    case 0xce:
    case 0xcf:
        if (rd_be(r, 1 << (b - 0xcc), &n) < 0)
            return -EPROTO;
        out->type = V_UINT;
        out->v.u = n;
        return 0;
    case 0xd0: /* int 8/16/32/64, sign-extended */
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        int bytes = 1 << (b - 0xd0);
        if (rd_be(r, bytes, &n) < 0)
            return -EPROTO;
        int64_t i = bytes == 8 ? (int64_t)n : (int64_t)(n << (64 - 8 * bytes)) >> (64 - 8 * bytes);
        if (i >= 0) {
            out->type = V_UINT;
            out->v.u = (uint64_t)i;
        } else {
            out->type = V_INT;
            out->v.i = i;
        }
        return 0;
    }
    case 0xd4: /* fixext 1/2/4/8/16: a type byte, then the payload */
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        return rd_skip(r, 1 + (1u << (b - 0xd4)), out);
    case 0xd9: /* str 8/16/32 */
    case 0xda:
    case 0xdb:
        if (rd_be(r, 1 << (b - 0xd9), &n) < 0)
            return -EPROTO;
        return rd_str_body(r, n, out);
    case 0xdc: /* array 16/32 */
    case 0xdd:
        if (rd_be(r, b == 0xdc ? 2 : 4, &n) < 0)
            return -EPROTO;
        return rd_array(r, n, out);
    case 0xde: /* map 16/32 */
    case 0xdf:
        if (rd_be(r, b == 0xde ? 2 : 4, &n) < 0)
            return -EPROTO;
        {
            int rc = rd_map(r, n, &out->v.m);
            if (rc == 0)
                out->type = V_MAP;
            return rc;
        }
    default: /* 0xc1 is never used */
        r->p--;
        return fail(r, -EPROTO, "invalid msgpack type byte");
    }
}

int qp_msg_decode(const void *buf, size_t len, const qp_caps_t *caps, qp_msg_t **out,
                  char err[QP_ERR_LEN])
{
    *out = NULL;
    if (err)
        err[0] = '\0';
    if (!caps)
        caps = &qp_caps_request;
    if (len > caps->max_frame) {
        if (err)
            snprintf(err, QP_ERR_LEN, "message of %zu bytes exceeds the %zu-byte limit", len,
                     caps->max_frame);
        return -EMSGSIZE;
    }
    qp_msg_t *root = root_new(caps->max_frame * DECODE_MEM_FACTOR);
    if (!root)
        return -ENOMEM;
    struct reader r = {buf, buf, (const uint8_t *)buf + len, caps, root->arena, err, 0};
    struct value top;
    memset(&top, 0, sizeof top);
    int rc = rd_value(&r, &top);
    if (rc == 0 && top.type != V_MAP)
        rc = fail(&r, -EPROTO, "message is not a map");
    if (rc == 0 && r.p != r.end)
        rc = fail(&r, -EPROTO, "trailing bytes after the message");
    if (rc == 0) {
        /* Adopt the decoded top map's entries into the root. */
        root->head = top.v.m->head;
        root->tail = top.v.m->tail;
        if (!qp_msg_type(root))
            rc = fail(&r, -EPROTO, "message has no string 't'");
    }
    if (rc < 0) {
        qp_msg_destroy(&root);
        return rc;
    }
    *out = root;
    return 0;
}

/* ---- reading ----------------------------------------------------------------------- */

int qp_msg_get_str(const qp_msg_t *self, const char *key, const char **out)
{
    const struct entry *e = find(self, key);
    if (!e)
        return -ENOENT;
    if (e->val.type != V_STR)
        return -EPROTO;
    *out = e->val.v.s.p;
    return 0;
}

int qp_msg_get_uint(const qp_msg_t *self, const char *key, uint64_t *out)
{
    const struct entry *e = find(self, key);
    if (!e)
        return -ENOENT;
    if (e->val.type != V_UINT)
        return -EPROTO;
    *out = e->val.v.u;
    return 0;
}

int qp_msg_get_int(const qp_msg_t *self, const char *key, int64_t *out)
{
    const struct entry *e = find(self, key);
    if (!e)
        return -ENOENT;
    if (e->val.type == V_INT) {
        *out = e->val.v.i;
        return 0;
    }
    if (e->val.type == V_UINT && e->val.v.u <= INT64_MAX) {
        *out = (int64_t)e->val.v.u;
        return 0;
    }
    return -EPROTO;
}

int qp_msg_get_float(const qp_msg_t *self, const char *key, double *out)
{
    const struct entry *e = find(self, key);
    if (!e)
        return -ENOENT;
    switch (e->val.type) {
    case V_FLOAT:
        if (!isfinite(e->val.v.f))
            return -EPROTO;
        *out = e->val.v.f;
        return 0;
    case V_UINT:
        *out = (double)e->val.v.u;
        return 0;
    case V_INT:
        *out = (double)e->val.v.i;
        return 0;
    default:
        return -EPROTO;
    }
}

int qp_msg_get_bool(const qp_msg_t *self, const char *key, bool *out)
{
    const struct entry *e = find(self, key);
    if (!e)
        return -ENOENT;
    if (e->val.type != V_BOOL)
        return -EPROTO;
    *out = e->val.v.b;
    return 0;
}

const qp_msg_t *qp_msg_get_map(const qp_msg_t *self, const char *key)
{
    const struct entry *e = find(self, key);
    return e && e->val.type == V_MAP ? e->val.v.m : NULL;
}

int qp_msg_count_maps(const qp_msg_t *self, const char *key, size_t *n)
{
    const struct entry *e = find(self, key);
    if (!e)
        return -ENOENT;
    if (e->val.type != V_ARRAY)
        return -EPROTO;
    for (uint32_t i = 0; i < e->val.v.a.n; i++) {
        if (e->val.v.a.items[i].type != V_MAP)
            return -EPROTO;
    }
    *n = e->val.v.a.n;
    return 0;
}

const qp_msg_t *qp_msg_map_at(const qp_msg_t *self, const char *key, size_t i)
{
    const struct entry *e = find(self, key);
    if (!e || e->val.type != V_ARRAY || i >= e->val.v.a.n || e->val.v.a.items[i].type != V_MAP)
        return NULL;
    return e->val.v.a.items[i].v.m;
}

bool qp_msg_has(const qp_msg_t *self, const char *key)
{
    return find(self, key) != NULL;
}

const char *qp_msg_type(const qp_msg_t *self)
{
    const char *t = NULL;
    return qp_msg_get_str(self, "t", &t) == 0 ? t : NULL;
}

uint64_t qp_msg_id(const qp_msg_t *self)
{
    uint64_t id = 0;
    return qp_msg_get_uint(self, "id", &id) == 0 ? id : 0;
}

bool qp_msg_is_error(const qp_msg_t *self)
{
    const char *t = qp_msg_type(self);
    return t && strcmp(t, "error") == 0;
}

const char *qp_printable(char *dst, size_t cap, const void *src, size_t n)
{
    const uint8_t *s = src;
    size_t i = 0;
    for (; i < n && i + 1 < cap; i++)
        dst[i] = s[i] >= 0x20 && s[i] < 0x7f ? (char)s[i] : '?';
    dst[i] = '\0';
    return dst;
}
