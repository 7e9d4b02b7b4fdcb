/* test_proto.c - the wire codec, request schema, records and sizes: round trips and
 * every kind of hostile input a peer could send. */
#include "proto/msg.h"
#include "proto/records.h"
#include "proto/schema.h"
#include "proto/units.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

/* Encodes m and decodes it again with the request caps. */
static qp_msg_t *round_trip(const qp_msg_t *m)
{
    void *buf;
    size_t len;
    cr_assert_eq(qp_msg_encode(m, NULL, &buf, &len), 0);
    qp_msg_t *out = NULL;
    char err[QP_ERR_LEN];
    int rc = qp_msg_decode(buf, len, &qp_caps_reply, &out, err);
    free(buf);
    cr_assert_eq(rc, 0, "decode failed: %s", err);
    return out;
}

/* Packs with msgpack-c directly, to build what our encoder never would. */
struct raw {
    msgpack_sbuffer sb;
    msgpack_packer pk;
};

static void raw_init(struct raw *r)
{
    msgpack_sbuffer_init(&r->sb);
    msgpack_packer_init(&r->pk, &r->sb, msgpack_sbuffer_write);
}

static void raw_str(struct raw *r, const char *s)
{
    msgpack_pack_str_with_body(&r->pk, s, strlen(s));
}

static int raw_decode(struct raw *r, qp_msg_t **out, char *err)
{
    int rc = qp_msg_decode(r->sb.data, r->sb.size, NULL, out, err);
    msgpack_sbuffer_destroy(&r->sb);
    return rc;
}

Test(qp_msg, round_trips_every_value_type)
{
    qp_msg_t *m = qp_msg_new("create");
    cr_assert_not_null(m);
    cr_assert_eq(qp_msg_set_uint(m, "id", 42), 0);
    cr_assert_eq(qp_msg_set_str(m, "vm", "vm-7"), 0);
    cr_assert_eq(qp_msg_set_int(m, "gpu", -1), 0);
    cr_assert_eq(qp_msg_set_uint(m, "big", UINT64_MAX), 0);
    cr_assert_eq(qp_msg_set_int(m, "small", INT64_MIN), 0);
    cr_assert_eq(qp_msg_set_float(m, "util", 12.5), 0);
    cr_assert_eq(qp_msg_set_bool(m, "yes", true), 0);
    qp_msg_t *sub = qp_msg_add_map(m, "vgpu");
    cr_assert_eq(qp_msg_set_str(sub, "id", "vg-1"), 0);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(qp_msg_set_uint(qp_msg_append_map(m, "items"), "n", (uint64_t)i), 0);
    cr_assert_eq(qp_msg_add_array(m, "empty"), 0);

    qp_msg_t *d = round_trip(m);
    const char *s;
    uint64_t u;
    int64_t i;
    double f;
    bool b;
    cr_assert_str_eq(qp_msg_type(d), "create");
    cr_assert_eq(qp_msg_id(d), 42);
    cr_assert_eq(qp_msg_get_str(d, "vm", &s), 0);
    cr_assert_str_eq(s, "vm-7");
    cr_assert_eq(qp_msg_get_int(d, "gpu", &i), 0);
    cr_assert_eq(i, -1);
    cr_assert_eq(qp_msg_get_uint(d, "big", &u), 0);
    cr_assert_eq(u, UINT64_MAX);
    cr_assert_eq(qp_msg_get_int(d, "small", &i), 0);
    cr_assert_eq(i, INT64_MIN);
    cr_assert_eq(qp_msg_get_float(d, "util", &f), 0);
    cr_assert_float_eq(f, 12.5, 1e-9);
    cr_assert_eq(qp_msg_get_bool(d, "yes", &b), 0);
    cr_assert(b);
    cr_assert_eq(qp_msg_get_str(qp_msg_get_map(d, "vgpu"), "id", &s), 0);
    cr_assert_str_eq(s, "vg-1");
    size_t n;
    cr_assert_eq(qp_msg_count_maps(d, "items", &n), 0);
    cr_assert_eq(n, 20);
    cr_assert_eq(qp_msg_get_uint(qp_msg_map_at(d, "items", 19), "n", &u), 0);
    cr_assert_eq(u, 19);
    cr_assert_null(qp_msg_map_at(d, "items", 20));
    cr_assert_eq(qp_msg_count_maps(d, "empty", &n), 0);
    cr_assert_eq(n, 0);
    qp_msg_destroy(&d);
    qp_msg_destroy(&m);
    cr_assert_null(m);
}

Test(qp_msg, getters_refuse_the_wrong_type_and_say_absent)
{
    qp_msg_t *m = qp_msg_new("x");
    qp_msg_set_int(m, "neg", -5);
    qp_msg_set_str(m, "s", "text");
    qp_msg_set_uint(m, "huge", UINT64_MAX);
    uint64_t u = 7;
    int64_t i;
    const char *s;
    cr_assert_eq(qp_msg_get_uint(m, "neg", &u), -EPROTO);
    cr_assert_eq(u, 7, "a refused getter must not write");
    cr_assert_eq(qp_msg_get_uint(m, "s", &u), -EPROTO);
    cr_assert_eq(qp_msg_get_int(m, "huge", &i), -EPROTO);
    cr_assert_eq(qp_msg_get_str(m, "neg", &s), -EPROTO);
    cr_assert_eq(qp_msg_get_str(m, "nothing", &s), -ENOENT);
    cr_assert_null(qp_msg_get_map(m, "s"));
    size_t n;
    cr_assert_eq(qp_msg_count_maps(m, "s", &n), -EPROTO);
    cr_assert_eq(qp_msg_id(m), 0);
    qp_msg_destroy(&m);
}

Test(qp_msg, setting_a_key_twice_replaces_it)
{
    qp_msg_t *m = qp_msg_new("x");
    qp_msg_set_uint(m, "id", 1);
    qp_msg_set_uint(m, "id", 2);
    qp_msg_t *d = round_trip(m);
    cr_assert_eq(qp_msg_id(d), 2);
    qp_msg_destroy(&d);
    qp_msg_destroy(&m);
}

Test(qp_msg, error_replies_are_one_line)
{
    qp_msg_t *e =
        qp_msg_new_error(9, QP_E_NOSPACE, "GPU %d has %d MiB free,\n%d asked", 0, 1536, 4096);
    cr_assert(qp_msg_is_error(e));
    cr_assert_eq(qp_msg_id(e), 9);
    const char *msg, *code;
    cr_assert_eq(qp_msg_get_str(e, "msg", &msg), 0);
    cr_assert_str_eq(msg, "GPU 0 has 1536 MiB free, 4096 asked");
    cr_assert_eq(qp_msg_get_str(e, "code", &code), 0);
    cr_assert_eq(qp_code_errno(code), -ENOSPC);
    qp_msg_destroy(&e);
}

Test(qp_msg, a_builder_past_its_memory_cap_fails_at_encode)
{
    qp_msg_t *m = qp_msg_new("big");
    char key[32], value[QP_MAX_STR + 1];
    memset(value, 'x', QP_MAX_STR);
    value[QP_MAX_STR] = '\0';
    int rc = 0;
    for (int i = 0; i < 100000 && rc == 0; i++) {
        snprintf(key, sizeof key, "k%d", i);
        rc = qp_msg_set_str(m, key, value);
    }
    cr_assert_eq(rc, -ENOMEM, "the arena must stop growing somewhere");
    void *buf = NULL;
    size_t len;
    cr_assert_eq(qp_msg_encode(m, NULL, &buf, &len), -ENOMEM);
    cr_assert_null(buf);
    /* setters on a failed nested map are harmless */
    cr_assert_eq(qp_msg_set_uint(NULL, "x", 1), -EINVAL);
    qp_msg_destroy(&m);
}

Test(qp_msg, a_string_over_the_cap_is_refused_when_built)
{
    char *big = malloc(QP_MAX_STR + 2);
    memset(big, 'y', QP_MAX_STR + 1);
    big[QP_MAX_STR + 1] = '\0';
    qp_msg_t *m = qp_msg_new("x");
    cr_assert_eq(qp_msg_set_str(m, "s", big), -EMSGSIZE);
    void *buf;
    size_t len;
    cr_assert_eq(qp_msg_encode(m, NULL, &buf, &len), -EMSGSIZE);
    qp_msg_destroy(&m);
    free(big);
}

Test(qp_msg, encode_refuses_a_frame_over_the_request_cap)
{
    qp_msg_t *m = qp_msg_new("list");
    char value[1001];
    memset(value, 'v', 1000);
    value[1000] = '\0';
    for (int i = 0; i < 80; i++)
        qp_msg_set_str(qp_msg_append_map(m, "vgpus"), "vm", value);
    void *buf;
    size_t len;
    cr_assert_eq(qp_msg_encode(m, &qp_caps_request, &buf, &len), -EMSGSIZE);
    cr_assert_eq(qp_msg_encode(m, &qp_caps_reply, &buf, &len), 0);
    free(buf);
    qp_msg_destroy(&m);
}

Test(qp_msg, rejects_a_truncated_frame_at_every_length)
{
    qp_msg_t *m =
        qp_new_tenant_hello("test/1", "vg-1", "00112233445566778899aabbccddeeff", 123, 4096);
    void *buf;
    size_t len;
    cr_assert_eq(qp_msg_encode(m, NULL, &buf, &len), 0);
    for (size_t n = 0; n < len; n++) {
        qp_msg_t *out = NULL;
        char err[QP_ERR_LEN];
        cr_assert_eq(qp_msg_decode(buf, n, NULL, &out, err), -EPROTO, "length %zu", n);
        cr_assert_null(out);
        cr_assert_neq(err[0], '\0');
    }
    free(buf);
    qp_msg_destroy(&m);
}

Test(qp_msg, rejects_trailing_bytes_and_non_maps)
{
    qp_msg_t *m = qp_msg_new("list"), *out = NULL;
    void *buf;
    size_t len;
    qp_msg_encode(m, NULL, &buf, &len);
    char *more = malloc(len + 1);
    memcpy(more, buf, len);
    more[len] = (char)0xc0;
    char err[QP_ERR_LEN];
    cr_assert_eq(qp_msg_decode(more, len + 1, NULL, &out, err), -EPROTO);
    cr_assert(strstr(err, "trailing"), "%s", err);
    free(more);
    free(buf);
    qp_msg_destroy(&m);

    const uint8_t array[] = {0x91, 0x01};
    cr_assert_eq(qp_msg_decode(array, sizeof array, NULL, &out, err), -EPROTO);
    const uint8_t nothing[] = {0};
    cr_assert_eq(qp_msg_decode(nothing, 0, NULL, &out, err), -EPROTO);
    const uint8_t never_used[] = {0x81, 0xa1, 't', 0xc1};
    cr_assert_eq(qp_msg_decode(never_used, sizeof never_used, NULL, &out, err), -EPROTO);
    cr_assert_null(out);
}

Test(qp_msg, rejects_a_map_without_a_string_type)
{
    struct raw r;
    qp_msg_t *out = NULL;
    char err[QP_ERR_LEN];
    raw_init(&r);
    msgpack_pack_map(&r.pk, 1);
    raw_str(&r, "t");
    msgpack_pack_uint8(&r.pk, 3);
    cr_assert_eq(raw_decode(&r, &out, err), -EPROTO);
    raw_init(&r);
    msgpack_pack_map(&r.pk, 1);
    raw_str(&r, "id");
    msgpack_pack_uint8(&r.pk, 3);
    cr_assert_eq(raw_decode(&r, &out, err), -EPROTO);
    cr_assert(strstr(err, "'t'"), "%s", err);
}

Test(qp_msg, rejects_non_string_keys)
{
    struct raw r;
    qp_msg_t *out = NULL;
    char err[QP_ERR_LEN];
    raw_init(&r);
    msgpack_pack_map(&r.pk, 2);
    raw_str(&r, "t");
    raw_str(&r, "list");
    msgpack_pack_uint8(&r.pk, 1);
    msgpack_pack_uint8(&r.pk, 2);
    cr_assert_eq(raw_decode(&r, &out, err), -EPROTO);
    cr_assert(strstr(err, "key"), "%s", err);
}

Test(qp_msg, rejects_a_nul_inside_a_string)
{
    struct raw r;
    qp_msg_t *out = NULL;
    char err[QP_ERR_LEN];
    raw_init(&r);
    msgpack_pack_map(&r.pk, 2);
    raw_str(&r, "t");
    raw_str(&r, "info");
    raw_str(&r, "vgpu");
    msgpack_pack_str_with_body(&r.pk, "vg-1\0other", 10);
    cr_assert_eq(raw_decode(&r, &out, err), -EPROTO);
    cr_assert(strstr(err, "NUL"), "%s", err);
}

/* {t: info, vgpu: <len bytes of s>}, decoded. */
static int decode_vgpu_bytes(const char *s, size_t len, qp_msg_t **out, char *err)
{
    struct raw r;
    raw_init(&r);
    msgpack_pack_map(&r.pk, 2);
    raw_str(&r, "t");
    raw_str(&r, "info");
    raw_str(&r, "vgpu");
    msgpack_pack_str_with_body(&r.pk, s, len);
    return raw_decode(&r, out, err);
}

Test(qp_msg, rejects_a_string_that_is_not_utf8)
{
    static const struct {
        const char *s;
        const char *why;
    } bad[] = {
        {"vm-\xff", "a byte no UTF-8 has"},
        {"vm-\xc3", "a sequence cut short at the end"},
        {"vm-\xc3-x", "a continuation byte missing"},
        {"vm-\x80", "a lone continuation byte"},
        {"vm-\xc0\xaf", "an overlong '/'"},
        {"vm-\xe0\x80\xaf", "an overlong three-byte form"},
        {"vm-\xed\xa0\x80", "a UTF-16 surrogate"},
        {"vm-\xf4\x90\x80\x80", "past U+10FFFF"},
        {"vm-\xf8\x88\x80\x80\x80", "a five-byte form"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        qp_msg_t *out = NULL;
        char err[QP_ERR_LEN] = "";
        cr_assert_eq(decode_vgpu_bytes(bad[i].s, strlen(bad[i].s), &out, err), -EPROTO, "%s",
                     bad[i].why);
        cr_assert_null(out);
        cr_assert(strstr(err, "UTF-8"), "%s: %s", bad[i].why, err);
    }
    /* A map key is a string too. */
    struct raw r;
    qp_msg_t *out = NULL;
    char err[QP_ERR_LEN] = "";
    raw_init(&r);
    msgpack_pack_map(&r.pk, 2);
    raw_str(&r, "t");
    raw_str(&r, "info");
    raw_str(&r, "k\xfe");
    raw_str(&r, "v");
    cr_assert_eq(raw_decode(&r, &out, err), -EPROTO);
    cr_assert(strstr(err, "UTF-8"), "%s", err);
}

Test(qp_msg, accepts_every_length_of_utf8)
{
    /* ASCII, then 2, 3 and 4 byte forms: "vm-é€😀", and the edges U+7FF, U+FFFF, U+10FFFF */
    static const char *const good[] = {"vm-7", "vm-\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
                                       "\xdf\xbf\xef\xbf\xbf\xf4\x8f\xbf\xbf"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        qp_msg_t *out = NULL;
        char err[QP_ERR_LEN] = "";
        const char *got = NULL;
        cr_assert_eq(decode_vgpu_bytes(good[i], strlen(good[i]), &out, err), 0, "%s", err);
        cr_assert_eq(qp_msg_get_str(out, "vgpu", &got), 0);
        cr_assert_str_eq(got, good[i]);
        qp_msg_destroy(&out);
    }
}

Test(qp_msg, refuses_absurd_lengths_before_allocating)
{
    qp_msg_t *out = NULL;
    char err[QP_ERR_LEN];
    /* {t: array32 claiming 4 billion items} in 12 bytes */
    const uint8_t huge_array[] = {0x81, 0xa1, 't', 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01};
    cr_assert_eq(qp_msg_decode(huge_array, sizeof huge_array, NULL, &out, err), -EPROTO);
    const uint8_t huge_map[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 't'};
    cr_assert_eq(qp_msg_decode(huge_map, sizeof huge_map, NULL, &out, err), -EPROTO);
    const uint8_t huge_str[] = {0x81, 0xa1, 't', 0xdb, 0x7f, 0xff, 0xff, 0xff, 'x'};
    cr_assert_eq(qp_msg_decode(huge_str, sizeof huge_str, NULL, &out, err), -EPROTO);
    const uint8_t huge_bin[] = {0x81, 0xa1, 't', 0xc6, 0xff, 0xff, 0xff, 0xff};
    cr_assert_eq(qp_msg_decode(huge_bin, sizeof huge_bin, NULL, &out, err), -EPROTO);
    /* an array within the frame but over the 1024-item cap */
    struct raw r;
    raw_init(&r);
    msgpack_pack_map(&r.pk, 2);
    raw_str(&r, "t");
    raw_str(&r, "x");
    raw_str(&r, "a");
    msgpack_pack_array(&r.pk, QP_MAX_ARRAY + 1);
    for (int i = 0; i <= QP_MAX_ARRAY; i++)
        msgpack_pack_nil(&r.pk);
    cr_assert_eq(raw_decode(&r, &out, err), -EPROTO);
    cr_assert(strstr(err, "array"), "%s", err);
    cr_assert_null(out);
}

Test(qp_msg, refuses_a_frame_over_64_kib)
{
    size_t len = QP_MAX_FRAME + 1;
    uint8_t *buf = calloc(1, len);
    qp_msg_t *out = NULL;
    char err[QP_ERR_LEN];
    cr_assert_eq(qp_msg_decode(buf, len, NULL, &out, err), -EMSGSIZE);
    cr_assert(strstr(err, "limit"), "%s", err);
    free(buf);
}

Test(qp_msg, refuses_deep_nesting)
{
    uint8_t buf[64];
    size_t n = 0;
    buf[n++] = 0x82;
    buf[n++] = 0xa1;
    buf[n++] = 't';
    buf[n++] = 0xa1;
    buf[n++] = 'x';
    buf[n++] = 0xa1;
    buf[n++] = 'a';
    for (int i = 0; i < 20; i++)
        buf[n++] = 0x91; /* [[[[...]]]] */
    buf[n++] = 0xc0;
    qp_msg_t *out = NULL;
    char err[QP_ERR_LEN];
    cr_assert_eq(qp_msg_decode(buf, n, NULL, &out, err), -EPROTO);
    cr_assert(strstr(err, "deep"), "%s", err);
}

Test(qp_msg, keeps_unknown_fields_of_any_type)
{
    struct raw r;
    raw_init(&r);
    msgpack_pack_map(&r.pk, 6);
    raw_str(&r, "t");
    raw_str(&r, "list");
    raw_str(&r, "future_bin");
    msgpack_pack_bin_with_body(&r.pk, "\x01\x02", 2);
    raw_str(&r, "future_ext");
    msgpack_pack_ext_with_body(&r.pk, "abcd", 4, 7);
    raw_str(&r, "future_f32");
    msgpack_pack_float(&r.pk, 1.5f);
    raw_str(&r, "future_arr");
    msgpack_pack_array(&r.pk, 2);
    msgpack_pack_int8(&r.pk, -3);
    msgpack_pack_nil(&r.pk);
    raw_str(&r, "id");
    msgpack_pack_int16(&r.pk, 300); /* a signed encoding of a positive id */
    qp_msg_t *out = NULL;
    char err[QP_ERR_LEN];
    cr_assert_eq(raw_decode(&r, &out, err), 0, "%s", err);
    cr_assert_eq(qp_msg_id(out), 300);
    double f;
    cr_assert_eq(qp_msg_get_float(out, "future_f32", &f), 0);
    cr_assert_float_eq(f, 1.5, 1e-9);
    cr_assert(qp_msg_has(out, "future_bin"));
    cr_assert_eq(qp_check_request(out, QP_ADMIN, err), 0, "%s", err);
    qp_msg_destroy(&out);
}

Test(qp_msg, survives_random_garbage)
{
    srand(12345);
    uint8_t buf[512];
    for (int round = 0; round < 20000; round++) {
        size_t len = (size_t)(rand() % (int)sizeof buf);
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rand();
        if (len > 0 && round % 2)
            buf[0] = (uint8_t)(0x80 | (rand() & 0x0f)); /* start as a map more often */
        qp_msg_t *out = NULL;
        int rc = qp_msg_decode(buf, len, NULL, &out, NULL);
        cr_assert(rc == 0 || rc == -EPROTO, "rc %d", rc);
        if (rc == 0)
            cr_assert_not_null(qp_msg_type(out));
        qp_msg_destroy(&out);
    }
}

Test(qp_msg, survives_every_single_byte_mutation_of_a_good_request)
{
    qp_msg_t *m =
        qp_new_tenant_hello("shim/1", "vg-1", "00112233445566778899aabbccddeeff", 77, 1 << 20);
    void *buf;
    size_t len;
    qp_msg_encode(m, NULL, &buf, &len);
    uint8_t *copy = malloc(len);
    for (size_t i = 0; i < len; i++) {
        for (int v = 0; v < 256; v += 7) {
            memcpy(copy, buf, len);
            copy[i] = (uint8_t)v;
            qp_msg_t *out = NULL;
            char err[QP_ERR_LEN];
            int rc = qp_msg_decode(copy, len, NULL, &out, err);
            cr_assert(rc == 0 || rc == -EPROTO);
            if (rc == 0) /* whatever decodes passes the schema or is refused cleanly */
                rc = qp_check_request(out, QP_TENANT, err);
            cr_assert(rc == 0 || rc == -EPROTO || rc == -EACCES);
            qp_msg_destroy(&out);
        }
    }
    free(copy);
    free(buf);
    qp_msg_destroy(&m);
}

/* ---- schema ------------------------------------------------------------------------ */

static qp_msg_t *msg_with(const char *type)
{
    qp_msg_t *m = qp_msg_new(type);
    qp_msg_set_uint(m, "id", 1);
    return m;
}

Test(qp_schema, accepts_well_formed_requests_on_their_endpoint)
{
    char err[QP_ERR_LEN];
    qp_msg_t *m = msg_with("create");
    qp_msg_set_str(m, "vm", "a");
    qp_msg_set_str(m, "profile", "Q2");
    qp_msg_set_int(m, "gpu", 1);
    cr_assert_eq(qp_check_request(m, QP_ADMIN, err), 0, "%s", err);
    qp_msg_destroy(&m);
    m = qp_new_mem_reserve(10, 5, 0); /* want below need is raised to need */
    uint64_t want;
    cr_assert_eq(qp_msg_get_uint(m, "want", &want), 0);
    cr_assert_eq(want, 10);
    cr_assert_eq(qp_check_request(m, QP_TENANT, err), 0, "%s", err);
    qp_msg_destroy(&m);
    m = qp_new_admin_hello("qgpuctl/0.1.0");
    cr_assert_eq(qp_check_request(m, QP_ADMIN, err), 0, "%s", err);
    cr_assert_eq(qp_check_request(m, QP_TENANT, err), 0, "%s", err);
    qp_msg_destroy(&m);
}

Test(qp_schema, keeps_admin_and_tenant_requests_apart)
{
    char err[QP_ERR_LEN];
    const char *admin_only[] = {"create", "destroy", "resize", "list",
                                "info",   "creds",   "gpus",   "stats"};
    for (size_t i = 0; i < sizeof admin_only / sizeof admin_only[0]; i++) {
        qp_msg_t *m = msg_with(admin_only[i]);
        qp_msg_set_str(m, "vgpu", "vg-1");
        qp_msg_set_str(m, "vm", "x");
        cr_assert_eq(qp_check_request(m, QP_TENANT, err), -EACCES, "%s", admin_only[i]);
        cr_assert(strstr(err, "tenant.sock"), "%s", err);
        qp_msg_destroy(&m);
    }
    qp_msg_t *m = qp_new_hb(1, 2);
    cr_assert_eq(qp_check_request(m, QP_ADMIN, err), -EACCES);
    qp_msg_destroy(&m);
}

Test(qp_schema, names_the_missing_or_mistyped_field)
{
    char err[QP_ERR_LEN];
    qp_msg_t *m = msg_with("create");
    cr_assert_eq(qp_check_request(m, QP_ADMIN, err), -EPROTO);
    cr_assert(strstr(err, "'vm'"), "%s", err);
    qp_msg_set_uint(m, "vm", 3);
    cr_assert_eq(qp_check_request(m, QP_ADMIN, err), -EPROTO);
    cr_assert(strstr(err, "'vm'") && strstr(err, "string"), "%s", err);
    qp_msg_set_str(m, "vm", "ok");
    qp_msg_set_int(m, "share", -20);
    cr_assert_eq(qp_check_request(m, QP_ADMIN, err), -EPROTO);
    cr_assert(strstr(err, "'share'"), "%s", err);
    qp_msg_destroy(&m);

    m = msg_with("launch_missiles");
    cr_assert_eq(qp_check_request(m, QP_ADMIN, err), -EPROTO);
    cr_assert(strstr(err, "unknown"), "%s", err);
    qp_msg_set_str(m, "t", "list");
    qp_msg_set_str(m, "id", "seven");
    cr_assert_eq(qp_check_request(m, QP_ADMIN, err), -EPROTO);
    cr_assert(strstr(err, "'id'"), "%s", err);
    qp_msg_destroy(&m);
}

Test(qp_schema, maps_codes_and_errnos_both_ways)
{
    const char *codes[] = {QP_E_PROTO,   QP_E_AUTH,  QP_E_NOTFOUND, QP_E_INVALID,
                           QP_E_NOSPACE, QP_E_QUOTA, QP_E_INTERNAL, QP_E_NOSESSION};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        cr_assert_str_eq(qp_errno_code(qp_code_errno(codes[i])), codes[i]);
    cr_assert_eq(qp_code_errno("from_the_future"), -EPROTO);
    cr_assert_eq(qp_code_errno(NULL), -EPROTO);
}

/* ---- compute tokens ---------------------------------------------------------------- */

/* Encodes m and decodes it with the request caps, as the arbiter and the shim do. */
static qp_tok_t tok_round_trip(qp_msg_t *m)
{
    void *buf;
    size_t len;
    cr_assert_eq(qp_msg_encode(m, &qp_caps_request, &buf, &len), 0);
    qp_msg_destroy(&m);
    qp_msg_t *d = NULL;
    char err[QP_ERR_LEN];
    cr_assert_eq(qp_msg_decode(buf, len, NULL, &d, err), 0, "%s", err);
    free(buf);
    qp_tok_t t;
    memset(&t, 0xa5, sizeof t);
    cr_assert_eq(qp_tok_get(d, &t, err), 0, "%s", err);
    qp_msg_destroy(&d);
    return t;
}

Test(qp_tok, every_token_message_round_trips)
{
    qp_tok_t t = tok_round_trip(qp_new_tok_req());
    cr_assert_eq(t.kind, QP_TOK_REQ);
    cr_assert_eq(t.lease, 0);
    t = tok_round_trip(qp_new_tok_grant(7, 50000000));
    cr_assert_eq(t.kind, QP_TOK_GRANT);
    cr_assert_eq(t.lease, 7);
    cr_assert_eq(t.ns, 50000000);
    t = tok_round_trip(qp_new_tok_ext(UINT64_MAX));
    cr_assert_eq(t.kind, QP_TOK_EXT);
    cr_assert_eq(t.lease, UINT64_MAX);
    t = tok_round_trip(qp_new_tok_revoke(3));
    cr_assert_eq(t.kind, QP_TOK_REVOKE);
    cr_assert_eq(t.lease, 3);
    t = tok_round_trip(qp_new_tok_ret(9, 1234567, true));
    cr_assert_eq(t.kind, QP_TOK_RET);
    cr_assert_eq(t.lease, 9);
    cr_assert_eq(t.used, 1234567);
    cr_assert(t.more);
    t = tok_round_trip(qp_new_tok_ret(9, 0, false));
    cr_assert_not(t.more);
}

Test(qp_tok, tenant_tokens_pass_the_tenant_schema_only)
{
    char err[QP_ERR_LEN];
    qp_msg_t *ms[] = {qp_new_tok_req(), qp_new_tok_ext(1), qp_new_tok_ret(1, 2, false)};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        cr_assert_eq(qp_check_request(ms[i], QP_TENANT, err), 0, "%s", err);
        cr_assert_eq(qp_check_request(ms[i], QP_ADMIN, err), -EACCES);
        qp_msg_destroy(&ms[i]);
    }
    /* Pushes are the arbiter's: a tenant sending one sends an unknown request. */
    qp_msg_t *g = qp_new_tok_grant(1, 5);
    cr_assert_eq(qp_check_request(g, QP_TENANT, err), -EPROTO);
    cr_assert(strstr(err, "unknown"), "%s", err);
    qp_msg_destroy(&g);
}

Test(qp_tok, names_the_missing_or_mistyped_field)
{
    char err[QP_ERR_LEN];
    qp_tok_t t = {.kind = QP_TOK_REQ, .lease = 42};
    qp_msg_t *m = qp_msg_new("tok_ret");
    qp_msg_set_uint(m, "lease", 1);
    qp_msg_set_uint(m, "used", 2);
    cr_assert_eq(qp_check_request(m, QP_TENANT, err), -EPROTO);
    cr_assert(strstr(err, "'more'"), "%s", err);
    cr_assert_eq(qp_tok_get(m, &t, err), -EPROTO);
    cr_assert(strstr(err, "'more'"), "%s", err);
    qp_msg_set_uint(m, "more", 1); /* an integer is not a boolean */
    cr_assert_eq(qp_check_request(m, QP_TENANT, err), -EPROTO);
    cr_assert(strstr(err, "'more'") && strstr(err, "boolean"), "%s", err);
    qp_msg_set_bool(m, "more", true);
    qp_msg_set_int(m, "used", -5);
    cr_assert_eq(qp_tok_get(m, &t, err), -EPROTO);
    cr_assert(strstr(err, "'used'"), "%s", err);
    cr_assert_eq(t.lease, 42, "a failed read leaves *out alone");
    qp_msg_destroy(&m);

    m = qp_msg_new("tok_grant");
    qp_msg_set_uint(m, "lease", 1);
    cr_assert_eq(qp_tok_get(m, &t, err), -EPROTO);
    cr_assert(strstr(err, "'ns'"), "%s", err);
    qp_msg_set_uint(m, "ns", 0);
    cr_assert_eq(qp_tok_get(m, &t, err), -EPROTO);
    cr_assert(strstr(err, "'ns'"), "%s", err);
    qp_msg_set_str(m, "ns", "forever");
    cr_assert_eq(qp_tok_get(m, &t, err), -EPROTO);
    qp_msg_destroy(&m);

    m = qp_msg_new("tok_ext");
    cr_assert_eq(qp_check_request(m, QP_TENANT, err), -EPROTO);
    cr_assert(strstr(err, "'lease'"), "%s", err);
    qp_msg_set_float(m, "lease", 1.5);
    cr_assert_eq(qp_tok_get(m, &t, err), -EPROTO);
    qp_msg_destroy(&m);

    m = qp_msg_new("limits");
    cr_assert_not(qp_is_tok(m));
    cr_assert_eq(qp_tok_get(m, &t, err), -ENOENT);
    qp_msg_destroy(&m);
}

Test(qp_tok, truncated_and_mutated_tokens_never_decode_wrong)
{
    qp_msg_t *m = qp_new_tok_ret(77, 123456789, true);
    void *buf;
    size_t len;
    cr_assert_eq(qp_msg_encode(m, NULL, &buf, &len), 0);
    qp_msg_destroy(&m);
    char err[QP_ERR_LEN];
    for (size_t n = 0; n < len; n++) {
        qp_msg_t *d = NULL;
        cr_assert_eq(qp_msg_decode(buf, n, NULL, &d, err), -EPROTO, "length %zu", n);
        cr_assert_null(d);
    }
    /* Every single-byte change either fails to decode, fails the check, or still reads
     * as a well-typed token: never a crash, never a half-filled struct. */
    uint8_t *b = buf;
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            b[i] ^= (uint8_t)(1u << bit);
            qp_msg_t *d = NULL;
            if (qp_msg_decode(b, len, NULL, &d, err) == 0) {
                qp_tok_t t = {.kind = 0};
                int rc = qp_tok_get(d, &t, err);
                cr_assert(rc == 0 || rc == -EPROTO || rc == -ENOENT, "rc %d", rc);
                if (rc == 0)
                    cr_assert(t.kind >= QP_TOK_REQ && t.kind <= QP_TOK_RET);
                else
                    cr_assert_eq(t.kind, 0);
                qp_msg_destroy(&d);
            }
            b[i] ^= (uint8_t)(1u << bit);
        }
    }
    free(buf);
}

/* ---- records ----------------------------------------------------------------------- */

Test(qp_records, info_gpu_limits_and_totals_round_trip)
{
    qp_info_t in = {.id = "vg-3",
                    .vm = "vm-7",
                    .gpu = 1,
                    .gpu_uuid = "GPU-abc",
                    .profile = "Q2",
                    .memory_mb = 2048,
                    .cuda_cores = 512,
                    .share = 20,
                    .limit = 40,
                    .util = 3.25,
                    .memory_used = 1 << 20,
                    .memory_reserved = 2 << 20,
                    .procs = 2,
                    .created = 1700000000,
                    .memory_real = 3 << 20,
                    .memory_unmanaged = 1 << 20,
                    .unmanaged_procs = 1};
    qp_gpu_t gin = {.index = 1,
                    .uuid = "GPU-abc",
                    .name = "NVIDIA GeForce GTX 1080",
                    .memory_total_mb = 8192,
                    .memory_used_mb = 100,
                    .memory_reserved_mb = 2048,
                    .memory_util = 1.2,
                    .util = 50.5,
                    .sms = 20,
                    .cuda_cores = 2560,
                    .share_reserved = 20,
                    .vgpus = 1,
                    .leased = 42.5,
                    .hung = 3,
                    .memory_unmanaged_mb = 300,
                    .unmanaged_procs = 2};
    qp_limits_t lin = {.id = "vg-3",
                       .gpu = 1,
                       .gpu_uuid = "GPU-abc",
                       .memory_quota = 2048ull << 20,
                       .share = 20,
                       .limit = 0};
    qp_totals_t tin = {.vgpus_total = 3,
                       .vgpus_active = 1,
                       .memory_reserved_mb = 4096,
                       .memory_used_mb = 12,
                       .memory_real_mb = 524,
                       .kills = 2};
    qp_msg_t *m = qp_msg_new_ok(1);
    cr_assert_eq(qp_info_put(qp_msg_add_map(m, "vgpu"), &in), 0);
    cr_assert_eq(qp_gpu_put(qp_msg_append_map(m, "gpus"), &gin), 0);
    cr_assert_eq(qp_limits_put(qp_msg_add_map(m, "limits"), &lin), 0);
    cr_assert_eq(qp_totals_put(m, &tin), 0);
    qp_msg_t *d = round_trip(m);
    qp_info_t out;
    qp_gpu_t gout;
    qp_limits_t lout;
    qp_totals_t tout;
    char err[QP_ERR_LEN];
    cr_assert_eq(qp_info_get(qp_msg_get_map(d, "vgpu"), &out, err), 0, "%s", err);
    cr_assert_str_eq(out.vm, "vm-7");
    cr_assert_eq(out.memory_mb, 2048);
    cr_assert_eq(out.limit, 40);
    cr_assert_float_eq(out.util, 3.25, 1e-9);
    cr_assert_eq(out.created, 1700000000);
    cr_assert_eq(out.memory_real, 3 << 20);
    cr_assert_eq(out.memory_unmanaged, 1 << 20);
    cr_assert_eq(out.unmanaged_procs, 1);
    cr_assert_eq(qp_gpu_get(qp_msg_map_at(d, "gpus", 0), &gout, err), 0, "%s", err);
    cr_assert_str_eq(gout.name, "NVIDIA GeForce GTX 1080");
    cr_assert_eq(gout.cuda_cores, 2560);
    cr_assert_float_eq(gout.leased, 42.5, 1e-9);
    cr_assert_eq(gout.hung, 3);
    cr_assert_eq(gout.memory_unmanaged_mb, 300);
    cr_assert_eq(gout.unmanaged_procs, 2);
    cr_assert_eq(qp_limits_get(qp_msg_get_map(d, "limits"), &lout, err), 0, "%s", err);
    cr_assert_eq(lout.memory_quota, 2048ull << 20);
    cr_assert_eq(qp_totals_get(d, &tout, err), 0, "%s", err);
    cr_assert_eq(tout.vgpus_active, 1);
    cr_assert_eq(tout.memory_real_mb, 524);
    cr_assert_eq(tout.kills, 2);
    qp_msg_destroy(&d);
    qp_msg_destroy(&m);
}

Test(qp_records, a_finding_round_trips_and_an_older_arbiter_s_records_read_as_zero)
{
    qp_finding_t fin = {.kind = "unmanaged",
                        .gpu = 0,
                        .vgpu = "vg-1",
                        .pid = 4242,
                        .name = "prog",
                        .memory = 8ull << 30,
                        .quota = 2ull << 30,
                        .since = 3,
                        .action = "killed",
                        .detail = "pid 4242 (prog) holds 8192 MiB"};
    qp_msg_t *m = qp_msg_new_ok(1);
    cr_assert_eq(qp_finding_put(qp_msg_append_map(m, "findings"), &fin), 0);
    /* An INFO as an arbiter before the audit wrote it: no real-use fields. */
    qp_msg_t *old = qp_msg_add_map(m, "vgpu");
    qp_msg_set_str(old, "id", "vg-1");
    qp_msg_set_str(old, "vm", "vm");
    qp_msg_set_int(old, "gpu", 0);
    qp_msg_set_str(old, "gpu_uuid", "GPU-x");
    qp_msg_set_str(old, "profile", "Q1");
    qp_msg_set_uint(old, "memory_mb", 1024);
    qp_msg_set_uint(old, "cuda_cores", 256);
    qp_msg_set_uint(old, "share", 10);
    qp_msg_set_uint(old, "limit", 0);
    qp_msg_set_float(old, "util", 0);
    qp_msg_set_uint(old, "memory_used", 5);
    qp_msg_set_uint(old, "memory_reserved", 5);
    qp_msg_set_uint(old, "procs", 1);
    qp_msg_set_int(old, "created", 1);
    qp_msg_t *d = round_trip(m);
    qp_finding_t fout;
    qp_info_t iout;
    char err[QP_ERR_LEN];
    cr_assert_eq(qp_finding_get(qp_msg_map_at(d, "findings", 0), &fout, err), 0, "%s", err);
    cr_assert_str_eq(fout.kind, "unmanaged");
    cr_assert_str_eq(fout.vgpu, "vg-1");
    cr_assert_eq(fout.pid, 4242);
    cr_assert_str_eq(fout.name, "prog");
    cr_assert_eq(fout.memory, 8ull << 30);
    cr_assert_eq(fout.quota, 2ull << 30);
    cr_assert_eq(fout.since, 3);
    cr_assert_str_eq(fout.action, "killed");
    cr_assert_str_eq(fout.detail, "pid 4242 (prog) holds 8192 MiB");
    cr_assert_eq(qp_info_get(qp_msg_get_map(d, "vgpu"), &iout, err), 0, "%s", err);
    cr_assert_eq(iout.memory_used, 5);
    cr_assert_eq(iout.memory_real, 0, "absent: 0");
    cr_assert_eq(iout.unmanaged_procs, 0);
    qp_msg_destroy(&d);
    /* Present but mistyped is still an error. */
    qp_msg_t *m2 = qp_msg_new_ok(2);
    qp_msg_t *f2 = qp_msg_append_map(m2, "findings");
    qp_finding_put(f2, &fin);
    qp_msg_set_str(f2, "pid", "not a number");
    d = round_trip(m2);
    cr_assert_eq(qp_finding_get(qp_msg_map_at(d, "findings", 0), &fout, err), -EPROTO);
    cr_assert(strstr(err, "'pid'"), "%s", err);
    qp_msg_destroy(&d);
    qp_msg_destroy(&m2);
    qp_msg_destroy(&m);
}

Test(qp_records, readers_name_the_bad_field)
{
    char err[QP_ERR_LEN];
    qp_limits_t l;
    cr_assert_eq(qp_limits_get(NULL, &l, err), -EPROTO);
    qp_msg_t *m = qp_msg_new("ok");
    qp_msg_t *map = qp_msg_add_map(m, "vgpu");
    qp_limits_t lin = {.id = "vg-1", .gpu = 0, .gpu_uuid = "GPU-x", .memory_quota = 1, .share = 10};
    qp_limits_put(map, &lin);
    qp_msg_set_uint(map, "share", 150); /* out of range */
    cr_assert_eq(qp_limits_get(map, &l, err), -EPROTO);
    cr_assert(strstr(err, "'share'"), "%s", err);
    qp_msg_set_str(map, "share", "ten");
    cr_assert_eq(qp_limits_get(map, &l, err), -EPROTO);
    char long_id[100];
    memset(long_id, 'i', 99);
    long_id[99] = '\0';
    qp_msg_set_uint(map, "share", 10);
    qp_msg_set_str(map, "id", long_id);
    cr_assert_eq(qp_limits_get(map, &l, err), -EPROTO);
    cr_assert(strstr(err, "too long"), "%s", err);
    qp_msg_destroy(&m);
}

/* A GPU as a struct of another layout that leaves out the fields of the list's Y column,
 * as libqvgpu's qv_gpu_t does: read through a table made from the same list. */
struct my_gpu {
    char name[8]; /* smaller than the wire's: a longer name is refused, not cut */
    unsigned vgpus;
    int index;
    double util, memory_util;
    char uuid[QP_UUID_LEN];
    uint64_t memory_total_mb, memory_used_mb, memory_reserved_mb, memory_unmanaged_mb;
    unsigned sms, cuda_cores, share_reserved, unmanaged_procs;
};
#define MY_GPU(m, t, max, opt) QP_FIELD(struct my_gpu, m, t, max, opt)
static const qp_field_t my_gpu_fields[] = {QP_GPU_FIELDS(MY_GPU, QP_FIELD_SKIP)};
static const qp_record_desc_t my_gpu_desc = {"GPU", my_gpu_fields,
                                             sizeof my_gpu_fields / sizeof my_gpu_fields[0]};

Test(qp_records, one_field_list_reads_into_any_struct_and_checks_what_it_leaves_out)
{
    qp_gpu_t gin = {.index = 2, .uuid = "GPU-z", .name = "GTX", .memory_total_mb = 8192,
                    .util = 12.5, .sms = 20, .vgpus = 3, .leased = 7.5, .hung = 1,
                    .memory_unmanaged_mb = 64};
    qp_msg_t *m = qp_msg_new_ok(1);
    qp_msg_t *map = qp_msg_add_map(m, "gpu");
    cr_assert_eq(qp_gpu_put(map, &gin), 0);
    struct my_gpu g;
    char err[QP_ERR_LEN];
    memset(&g, 0xff, sizeof g);
    cr_assert_eq(qp_record_get(map, &my_gpu_desc, &g, err), 0, "%s", err);
    cr_assert_eq(g.index, 2);
    cr_assert_str_eq(g.uuid, "GPU-z");
    cr_assert_str_eq(g.name, "GTX");
    cr_assert_eq(g.memory_total_mb, 8192);
    cr_assert_float_eq(g.util, 12.5, 1e-9);
    cr_assert_eq(g.sms, 20);
    cr_assert_eq(g.vgpus, 3);
    cr_assert_eq(g.memory_unmanaged_mb, 64);
    /* what the struct leaves out is still checked */
    qp_msg_set_str(map, "hung", "one");
    cr_assert_eq(qp_record_get(map, &my_gpu_desc, &g, err), -EPROTO);
    cr_assert_str_eq(err, "GPU field 'hung' is missing or not an unsigned integer");
    qp_msg_set_uint(map, "hung", 1);
    /* and the struct's own sizes bound its strings */
    qp_msg_set_str(map, "name", "NVIDIA GeForce GTX 1080");
    cr_assert_eq(qp_record_get(map, &my_gpu_desc, &g, err), -EPROTO);
    cr_assert_str_eq(err, "GPU field 'name' is too long");
    /* written back from the struct: every kept field, in the list's order */
    struct my_gpu back = {.name = "GTX", .index = 1, .uuid = "GPU-y", .vgpus = 4};
    qp_msg_t *w = qp_msg_new_ok(2);
    qp_msg_t *wmap = qp_msg_add_map(w, "gpu");
    cr_assert_eq(qp_record_put(wmap, &my_gpu_desc, &back), 0);
    cr_assert(!qp_msg_has(wmap, "leased") && !qp_msg_has(wmap, "hung"));
    int64_t index;
    uint64_t vgpus;
    cr_assert_eq(qp_msg_get_int(wmap, "index", &index), 0);
    cr_assert_eq(index, 1);
    cr_assert_eq(qp_msg_get_uint(wmap, "vgpus", &vgpus), 0);
    cr_assert_eq(vgpus, 4);
    qp_msg_destroy(&w);
    qp_msg_destroy(&m);
}

/* ---- sizes ------------------------------------------------------------------------- */

Test(qp_units, parses_sizes_people_write)
{
    struct {
        const char *s;
        uint64_t mb;
    } ok[] = {{"8GiB", 8192},   {"8192MiB", 8192}, {"512", 512},  {"2g", 2048},
              {"1.5GiB", 1536}, {"1TiB", 1048576}, {"64 MB", 64}, {"3G", 3072}};
    char err[QP_ERR_LEN];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t mb = 0;
        cr_assert_eq(qp_parse_size_mb(ok[i].s, &mb, err), 0, "%s: %s", ok[i].s, err);
        cr_assert_eq(mb, ok[i].mb, "%s", ok[i].s);
    }
    const char *bad[] = {"",     "GiB",    "-1GiB",          "0",   "1.GiB", "8 parsecs",
                         "0x10", "0.1MiB", "99999999999TiB", "nan", "1e3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t mb = 0;
        cr_assert_eq(qp_parse_size_mb(bad[i], &mb, err), -EINVAL, "%s", bad[i]);
        cr_assert(strstr(err, "size"), "%s", err);
    }
}
