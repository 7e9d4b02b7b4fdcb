/* frame.c - ZMTP 3 greetings, frame headers and READY, for both ends. Pure. */
#include "proto/frame.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

void qp_frame_greeting(uint8_t out[QP_FRAME_GREETING], uint8_t minor)
{
    memset(out, 0, QP_FRAME_GREETING);
    out[0] = 0xff;
    out[9] = 0x7f;
    out[10] = 3;
    out[11] = minor;
    memcpy(out + 12, "NULL", 4);
}

int qp_frame_check_greeting(const uint8_t *g, size_t have, char err[QP_ERR_LEN])
{
    static const uint8_t null_mech[20] = {'N', 'U', 'L', 'L'};
    char text[40];
    if (have >= 1 && g[0] != 0xff) {
        snprintf(err, QP_ERR_LEN,
                 "not ZMTP (first byte 0x%02x): only ZeroMQ DEALER sockets are served", g[0]);
        return -EPROTO;
    }
    if (have >= 10 && g[9] != 0x7f) {
        snprintf(err, QP_ERR_LEN, "not a ZMTP 3 greeting (byte 10 is 0x%02x, not 0x7f)", g[9]);
        return -EPROTO;
    }
    if (have >= 11 && g[10] < 3) {
        snprintf(err, QP_ERR_LEN, "ZMTP %u is too old: ZeroMQ 4 or later (ZMTP 3) is needed",
                 g[10]);
        return -EPROTO;
    }
    if (have >= 32 && memcmp(g + 12, null_mech, sizeof null_mech) != 0) {
        snprintf(err, QP_ERR_LEN, "security mechanism '%s' is not served: the NULL mechanism only",
                 qp_printable(text, sizeof text, g + 12, strnlen((const char *)g + 12, 20)));
        return -EPROTO;
    }
    if (have >= 33 && g[32] != 0) {
        snprintf(err, QP_ERR_LEN, "a NULL-mechanism peer must not be as-server");
        return -EPROTO;
    }
    return 0;
}

size_t qp_frame_header(uint8_t out[QP_FRAME_HEADER_MAX], uint8_t flags, uint64_t len)
{
    if (len <= 255) {
        out[0] = flags;
        out[1] = (uint8_t)len;
        return 2;
    }
    out[0] = flags | QP_FRAME_LONG;
    for (int i = 0; i < 8; i++)
        out[1 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 9;
}

size_t qp_frame_parse(const uint8_t *p, size_t have, uint8_t *flags, uint64_t *len)
{
    if (have < 2)
        return 0;
    size_t header = p[0] & QP_FRAME_LONG ? 9 : 2;
    if (have < header)
        return 0;
    uint64_t n = p[1];
    if (header == 9) {
        n = 0;
        for (int i = 1; i <= 8; i++)
            n = n << 8 | p[i];
    }
    *flags = p[0];
    *len = n;
    return header;
}

size_t qp_frame_ready(uint8_t *out, size_t cap, const char *type)
{
    static const char name[] = "Socket-Type";
    size_t tl = strlen(type), n = 1 + 5 + 1 + (sizeof name - 1) + 4 + tl;
    if (tl > 255 || n > cap)
        return 0;
    uint8_t *c = out;
    *c++ = 5;
    memcpy(c, "READY", 5);
    c += 5;
    *c++ = sizeof name - 1;
    memcpy(c, name, sizeof name - 1);
    c += sizeof name - 1;
    *c++ = 0;
    *c++ = 0;
    *c++ = 0;
    *c++ = (uint8_t)tl;
    memcpy(c, type, tl);
    return n;
}

int qp_frame_property(const uint8_t *p, size_t n, const char *name, const uint8_t **value,
                      size_t *vlen)
{
    size_t want = strlen(name);
    int found = 0;
    while (n > 0) {
        size_t kl = p[0];
        if (kl == 0 || n < 1 + kl + 4)
            return -EPROTO;
        size_t len =
            (size_t)p[1 + kl] << 24 | (size_t)p[2 + kl] << 16 | (size_t)p[3 + kl] << 8 | p[4 + kl];
        if (len > n - 1 - kl - 4)
            return -EPROTO;
        if (!found && kl == want && strncasecmp((const char *)p + 1, name, kl) == 0) {
            *value = p + 1 + kl + 4;
            *vlen = len;
            found = 1;
        }
        p += 1 + kl + 4 + len;
        n -= 1 + kl + 4 + len;
    }
    return found;
}
