/* test_proto_frame.c - the ZMTP 3 bytes both ends share: greetings, frame headers, READY
 * and its properties (proto/frame.h). */
#include "proto/frame.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

Test(qp_frame, a_header_reads_back_as_written_at_every_length_class)
{
    const uint64_t lens[] = {0, 1, 255, 256, 65536, (uint64_t)1 << 40};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        uint8_t h[QP_FRAME_HEADER_MAX], flags;
        uint64_t len;
        size_t n = qp_frame_header(h, QP_FRAME_MORE, lens[i]);
        cr_assert_eq(n, lens[i] > 255 ? 9u : 2u, "length %llu", (unsigned long long)lens[i]);
        for (size_t have = 0; have < n; have++)
            cr_assert_eq(qp_frame_parse(h, have, &flags, &len), 0, "%zu bytes are not enough", have);
        cr_assert_eq(qp_frame_parse(h, n, &flags, &len), n);
        cr_assert_eq(len, lens[i]);
        cr_assert_eq(flags & QP_FRAME_MORE, QP_FRAME_MORE);
        cr_assert_eq(!!(flags & QP_FRAME_LONG), lens[i] > 255);
    }
}

Test(qp_frame, our_greeting_passes_the_check_at_every_length_and_others_are_named_early)
{
    uint8_t g[QP_FRAME_GREETING];
    char err[QP_ERR_LEN];
    qp_frame_greeting(g, 1);
    cr_assert_eq(g[10], 3);
    cr_assert_eq(g[11], 1);
    for (size_t have = 0; have <= sizeof g; have++)
        cr_assert_eq(qp_frame_check_greeting(g, have, err), 0, "%zu bytes: %s", have, err);

    uint8_t http[] = "GET / HTTP/1.1";
    cr_assert_eq(qp_frame_check_greeting(http, 1, err), -EPROTO);
    cr_assert_str_eq(err, "not ZMTP (first byte 0x47): only ZeroMQ DEALER sockets are served");
    g[10] = 2;
    cr_assert_eq(qp_frame_check_greeting(g, 11, err), -EPROTO);
    cr_assert_str_eq(err, "ZMTP 2 is too old: ZeroMQ 4 or later (ZMTP 3) is needed");
    qp_frame_greeting(g, 0);
    memcpy(g + 12, "CURVE", 5);
    cr_assert_eq(qp_frame_check_greeting(g, 32, err), -EPROTO);
    cr_assert_str_eq(err, "security mechanism 'CURVE' is not served: the NULL mechanism only");
    qp_frame_greeting(g, 0);
    g[32] = 1;
    cr_assert_eq(qp_frame_check_greeting(g, sizeof g, err), -EPROTO);
    cr_assert_str_eq(err, "a NULL-mechanism peer must not be as-server");
}

Test(qp_frame, ready_announces_its_socket_type_and_properties_are_found_without_case)
{
    uint8_t r[64];
    size_t n = qp_frame_ready(r, sizeof r, "DEALER");
    cr_assert_eq(n, 1 + 5 + 1 + 11 + 4 + 6);
    cr_assert_eq(memcmp(r, "\x05READY", 6), 0);
    const uint8_t *v;
    size_t vlen;
    cr_assert_eq(qp_frame_property(r + 6, n - 6, "socket-type", &v, &vlen), 1);
    cr_assert_eq(vlen, 6);
    cr_assert_eq(memcmp(v, "DEALER", 6), 0);
    cr_assert_eq(qp_frame_property(r + 6, n - 6, "Identity", &v, &vlen), 0, "absent");
    cr_assert_eq(qp_frame_ready(r, 10, "DEALER"), 0, "does not fit");
}

Test(qp_frame, malformed_metadata_is_refused_wherever_it_is)
{
    /* Identity (empty) then Socket-Type: found past the first property */
    const uint8_t good[] = "\x08Identity\0\0\0\0\x0bSocket-Type\0\0\0\x06ROUTER";
    const uint8_t *v;
    size_t vlen, n = sizeof good - 1;
    cr_assert_eq(qp_frame_property(good, n, "Socket-Type", &v, &vlen), 1);
    cr_assert_eq(memcmp(v, "ROUTER", 6), 0);
    for (size_t cut = 1; cut < n; cut++)
        cr_assert_neq(qp_frame_property(good, cut, "Socket-Type", &v, &vlen), 1,
                      "cut at %zu", cut);
    /* a value longer than what follows, and a name of no bytes */
    const uint8_t longer[] = "\x0bSocket-Type\0\0\0\x40ROUTER";
    cr_assert_eq(qp_frame_property(longer, sizeof longer - 1, "Socket-Type", &v, &vlen), -EPROTO);
    const uint8_t empty_name[] = "\x00\0\0\0\0";
    cr_assert_eq(qp_frame_property(empty_name, 5, "Socket-Type", &v, &vlen), -EPROTO);
}
