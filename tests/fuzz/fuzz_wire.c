/* fuzz_wire.c - a libFuzzer target for everything a stranger's bytes reach in the arbiter
 * before any secret is checked: the ZMTP codec (proto/router.c), the msgpack decoder
 * (proto/msg.c), the request checks (proto/schema.c) and the record readers that
 * clients run on replies (proto/records.c). Built by `make fuzz` (clang); `make test`
 * runs it for a few seconds when clang is there; README.md "Fuzzing" says how to run it
 * longer.
 *
 * The first byte of an input chooses the path, the rest is what a peer sent:
 *   bit 0 clear  a ZMTP byte stream, fed to the codec in pieces of 1 to 64 bytes (bits
 *                2-7 choose the size), after a valid DEALER greeting and READY when bit 1
 *                is set; each message it yields goes through the path below
 *   bit 0 set    one frame, decoded with the request caps (bit 1 clear) or the reply
 *                caps (bit 1 set)
 * A decoded message is checked as a request of both endpoints, read as a compute token
 * and as every record, then encoded again and decoded again.
 *
 * Besides ASan and UBSan, it aborts when an invariant breaks: an error text that is not
 * one line, a decoded message that does not encode and decode again, the codec offering
 * no room to read into. tests/fuzz/corpus/ holds the seeds: a message of every kind the
 * protocol has, made with proto/'s own builders by running this target with
 * QV_FUZZ_SEEDS=DIR set (it writes them there and exits). */
#include "proto/msg.h"
#include "proto/records.h"
#include "proto/schema.h"
#include "proto/router.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An error text must be one line that ends: it goes into log lines and replies. */
static void check_err(int rc, const char *err)
{
    if (rc < 0 && (memchr(err, '\0', QP_ERR_LEN) == NULL || strchr(err, '\n')))
        abort();
}

static void read_records(const qp_msg_t *m)
{
    char err[QP_ERR_LEN];
    qp_limits_t l;
    qp_info_t i;
    qp_gpu_t g;
    qp_totals_t t;
    qp_tok_t tok;
    check_err(qp_limits_get(qp_msg_get_map(m, "vgpu"), &l, err), err);
    check_err(qp_info_get(m, &i, err), err);
    check_err(qp_gpu_get(m, &g, err), err);
    check_err(qp_totals_get(m, &t, err), err);
    check_err(qp_tok_get(m, &tok, err), err);
    const char *arrays[] = {"vgpus", "gpus"};
    for (size_t a = 0; a < 2; a++) {
        size_t n = 0;
        if (qp_msg_count_maps(m, arrays[a], &n) < 0)
            continue;
        for (size_t k = 0; k < n; k++) {
            const qp_msg_t *item = qp_msg_map_at(m, arrays[a], k);
            if (!item)
                abort(); /* count_maps said every item is a map */
            check_err(qp_info_get(item, &i, err), err);
            check_err(qp_gpu_get(item, &g, err), err);
        }
    }
}

/* What the arbiter does with a frame before it looks at a request: decode, check. */
static void frame(const uint8_t *buf, size_t len, const qp_caps_t *caps)
{
    char err[QP_ERR_LEN];
    qp_msg_t *m = NULL;
    int rc = qp_msg_decode(buf, len, caps, &m, err);
    check_err(rc, err);
    if (rc < 0) {
        if (m)
            abort(); /* a failed decode leaves nothing behind */
        return;
    }
    check_err(qp_check_request(m, QP_ADMIN, err), err);
    check_err(qp_check_request(m, QP_TENANT, err), err);
    read_records(m);
    /* what decoded encodes again (within the reply caps: a float32 grows to a float64)
     * and decodes to the same type */
    void *out = NULL;
    size_t n = 0;
    if (qp_msg_encode(m, &qp_caps_reply, &out, &n) < 0)
        abort();
    qp_caps_t again = {QP_MAX_REPLY_FRAME, caps->max_str, caps->max_items};
    qp_msg_t *m2 = NULL;
    if (qp_msg_decode(out, n, &again, &m2, err) < 0 || strcmp(qp_msg_type(m), qp_msg_type(m2)))
        abort();
    free(out);
    qp_msg_destroy(&m2);
    qp_msg_destroy(&m);
}

static const uint8_t handshake[] = {
    /* greeting: signature, 3.1, NULL, not as-server */
    0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 1, 'N', 'U', 'L', 'L', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0,
    /* READY, Socket-Type DEALER, Identity "" */
    0x04, 41, 5, 'R', 'E', 'A', 'D', 'Y', 11, 'S', 'o', 'c', 'k', 'e', 't', '-', 'T', 'y', 'p', 'e',
    0, 0, 0, 6, 'D', 'E', 'A', 'L', 'E', 'R', 8, 'I', 'd', 'e', 'n', 't', 'i', 't', 'y', 0, 0, 0,
    0};

/* Feeds n bytes at p to z in pieces of at most step, handling every event. Returns false
 * once the codec refused the stream. */
static bool feed(qp_router_t *z, const uint8_t *p, size_t n, size_t step)
{
    char err[QP_ERR_LEN];
    while (n) {
        size_t room = 0;
        uint8_t *space = qp_router_in_space(z, &room);
        if (!space || room == 0)
            abort();
        size_t k = n < step ? n : step;
        k = k < room ? k : room;
        memcpy(space, p, k);
        qp_router_in_commit(z, k);
        p += k;
        n -= k;
        for (;;) {
            const void *body = NULL;
            size_t len = 0;
            int ev = qp_router_next(z, &body, &len, err);
            check_err(ev, err);
            if (ev < 0)
                return false;
            if (ev == QP_ROUTER_NONE)
                break;
            if (ev == QP_ROUTER_MESSAGE) {
                frame(body, len, &qp_caps_request);
                qp_router_send(z, body, len); /* a reply as long as the request */
                size_t out;
                qp_router_out(z, &out);
                qp_router_out_done(z, out / 2);
            }
        }
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    if (mode & 1) {
        frame(data, size, mode & 2 ? &qp_caps_reply : &qp_caps_request);
        return 0;
    }
    qp_router_t *z = qp_router_new(QP_MAX_FRAME, 65536);
    if (!z)
        return 0;
    size_t step = 1 + (size_t)(mode >> 2);
    if (!(mode & 2) || feed(z, handshake, sizeof handshake, step)) {
        if ((mode & 2) && !qp_router_ready(z))
            abort(); /* the valid handshake was taken */
        feed(z, data, size, step);
    }
    qp_router_destroy(&z);
    return 0;
}

/* ---- seeds ------------------------------------------------------------------------- */

static void write_seed(const char *dir, const char *name, uint8_t mode, const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(&mode, 1, 1, f) != 1 || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "fuzz_wire: cannot write %s\n", path);
        exit(1);
    }
}

/* Writes m (taken) as a frame seed, and as a ZMTP seed after the handshake. */
static void seed(const char *dir, const char *name, qp_msg_t *m, bool reply)
{
    void *buf;
    size_t n;
    if (!m || qp_msg_encode(m, &qp_caps_reply, &buf, &n) < 0) {
        fprintf(stderr, "fuzz_wire: cannot build seed %s\n", name);
        exit(1);
    }
    qp_msg_destroy(&m);
    char file[128];
    snprintf(file, sizeof file, "frame-%s", name);
    write_seed(dir, file, reply ? 3 : 1, buf, n);
    if (!reply && n <= 255) {
        uint8_t z[2 + 255] = {0, (uint8_t)n};
        memcpy(z + 2, buf, n);
        snprintf(file, sizeof file, "zmtp-%s", name);
        write_seed(dir, file, 2 | (7 << 2), z, 2 + n);
    }
    free(buf);
}

static qp_msg_t *with_id(qp_msg_t *m, uint64_t id)
{
    qp_msg_set_uint(m, "id", id);
    return m;
}

static void write_seeds(const char *dir)
{
    seed(dir, "admin-hello", with_id(qp_new_admin_hello("fuzz/1"), 1), false);
    seed(dir, "tenant-hello",
         with_id(qp_new_tenant_hello("fuzz/1", "vg-1", "0123456789abcdef", 42, 1 << 20), 1), false);
    seed(dir, "mem-reserve", with_id(qp_new_mem_reserve(1 << 20, 2 << 20, 0), 2), false);
    seed(dir, "mem-release", with_id(qp_new_mem_release(0), 3), false);
    seed(dir, "hb", qp_new_hb(1 << 20, 2 << 20), false);
    seed(dir, "tok-req", qp_new_tok_req(), false);
    seed(dir, "tok-ext", qp_new_tok_ext(7), false);
    seed(dir, "tok-ret", qp_new_tok_ret(7, 1000, true), false);
    qp_msg_t *c = with_id(qp_msg_new("create"), 4);
    qp_msg_set_str(c, "vm", "vm-1");
    qp_msg_set_str(c, "profile", "Q1");
    qp_msg_set_uint(c, "memory_mb", 1024);
    qp_msg_set_uint(c, "share", 10);
    qp_msg_set_uint(c, "limit", 20);
    qp_msg_set_int(c, "gpu", -1);
    seed(dir, "create", c, false);
    qp_msg_t *r = with_id(qp_msg_new("resize"), 5);
    qp_msg_set_str(r, "vgpu", "vg-1");
    qp_msg_set_uint(r, "share", 20);
    seed(dir, "resize", r, false);
    seed(dir, "list", with_id(qp_msg_new("list"), 6), false);
    /* replies a client reads */
    qp_msg_t *ok = qp_msg_new_ok(1);
    qp_limits_t l = {.gpu = 0, .memory_quota = 1 << 30, .share = 10, .limit = 0};
    snprintf(l.id, sizeof l.id, "vg-1");
    snprintf(l.gpu_uuid, sizeof l.gpu_uuid, "GPU-00000000-0000-0000-0000-000000000000");
    qp_limits_put(qp_msg_add_map(ok, "vgpu"), &l);
    qp_msg_set_uint(ok, "session", 1);
    seed(dir, "hello-reply", ok, true);
    qp_msg_t *list = qp_msg_new_ok(6);
    qp_info_t i = {.memory_mb = 1024, .share = 10, .util = 0.5, .procs = 1};
    snprintf(i.id, sizeof i.id, "vg-1");
    snprintf(i.vm, sizeof i.vm, "vm-1");
    snprintf(i.profile, sizeof i.profile, "Q1");
    qp_info_put(qp_msg_append_map(list, "vgpus"), &i);
    qp_info_put(qp_msg_append_map(list, "vgpus"), &i);
    seed(dir, "list-reply", list, true);
    qp_msg_t *stats = qp_msg_new_ok(7);
    qp_gpu_t g = {.memory_total_mb = 8192, .sms = 20, .cuda_cores = 2560, .vgpus = 1};
    snprintf(g.name, sizeof g.name, "NVIDIA GeForce GTX 1080");
    qp_gpu_put(qp_msg_append_map(stats, "gpus"), &g);
    qp_totals_t t = {.vgpus_total = 1, .vgpus_active = 1, .memory_reserved_mb = 1024};
    qp_totals_put(stats, &t);
    seed(dir, "stats-reply", stats, true);
    seed(dir, "error-reply", qp_msg_new_error(9, QP_E_QUOTA, "vGPU vg-1 cannot reserve"), true);
    seed(dir, "tok-grant", qp_new_tok_grant(7, 5000000), true);
    /* ZMTP: a bare greeting that stops, a PING, a message of two frames */
    write_seed(dir, "zmtp-greeting", 0, handshake, 64);
    static const uint8_t ping[] = {0x04, 9, 4, 'P', 'I', 'N', 'G', 0, 10, 'x', 'y'};
    write_seed(dir, "zmtp-ping", 2, ping, sizeof ping);
    static const uint8_t multi[] = {0x01, 1, 'a', 0x00, 2, 0x80, 0xc0};
    write_seed(dir, "zmtp-multipart", 2, multi, sizeof multi);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = getenv("QV_FUZZ_SEEDS");
    if (dir && *dir) {
        write_seeds(dir);
        exit(0);
    }
    return 0;
}
