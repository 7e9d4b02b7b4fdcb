/* md2.c - MD2 (RFC 1319) and HMAC-MD2 (RFC 2104); see md2.h. Pure. */
#include "sim/md2.h"

#include <string.h>

/* RFC 1319's permutation of 0..255, built from the digits of pi. */
static const uint8_t S[256] = {
    41,  46,  67,  201, 162, 216, 124, 1,   61,  54,  84,  161, 236, 240, 6,   19,  98,  167, 5,
    243, 192, 199, 115, 140, 152, 147, 43,  217, 188, 76,  130, 202, 30,  155, 87,  60,  253, 212,
    224, 22,  103, 66,  111, 24,  138, 23,  229, 18,  190, 78,  196, 214, 218, 158, 222, 73,  160,
    251, 245, 142, 187, 47,  238, 122, 169, 104, 121, 145, 21,  178, 7,   63,  148, 194, 16,  137,
    11,  34,  95,  33,  128, 127, 93,  154, 90,  144, 50,  39,  53,  62,  204, 231, 191, 247, 151,
    3,   255, 25,  48,  179, 72,  165, 181, 209, 215, 94,  146, 42,  172, 86,  170, 198, 79,  184,
    56,  210, 150, 164, 125, 182, 118, 252, 107, 226, 156, 116, 4,   241, 69,  157, 112, 89,  100,
    113, 135, 32,  134, 91,  207, 101, 230, 45,  168, 2,   27,  96,  37,  173, 174, 176, 185, 246,
    28,  70,  97,  105, 52,  64,  126, 15,  85,  71,  163, 35,  221, 81,  175, 58,  195, 92,  249,
    206, 186, 197, 234, 38,  44,  83,  13,  110, 133, 40,  132, 9,   211, 223, 205, 244, 65,  129,
    77,  82,  106, 220, 55,  200, 108, 193, 171, 250, 36,  225, 123, 8,   12,  189, 177, 74,  120,
    136, 149, 139, 227, 99,  232, 109, 233, 203, 213, 254, 59,  0,   29,  57,  242, 239, 183, 14,
    102, 88,  208, 228, 166, 119, 114, 248, 235, 117, 75,  10,  49,  68,  80,  180, 143, 237, 31,
    26,  219, 153, 141, 51,  159, 17,  131, 20};

/* Mixes the full block m into the state: 18 rounds over 48 bytes. */
static void compress(struct qsim_md2 *h)
{
    for (int j = 0; j < 16; j++) {
        h->x[16 + j] = h->m[j];
        h->x[32 + j] = h->m[j] ^ h->x[j];
    }
    uint8_t t = 0;
    for (int round = 0; round < 18; round++) {
        for (int k = 0; k < 48; k++)
            t = h->x[k] ^= S[t];
        t = (uint8_t)(t + round);
    }
}

void qsim_md2_add(struct qsim_md2 *h, const void *data, size_t len)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) {
        h->m[h->used] = p[i];
        /* The checksum runs byte by byte; its update is the same whether the block is
         * message, padding or (at the end) the checksum itself. */
        h->last = h->c[h->used] ^= S[p[i] ^ h->last];
        if (++h->used == 16) {
            compress(h);
            h->used = 0;
        }
    }
}

void qsim_md2_end(struct qsim_md2 *h, uint8_t out[QSIM_MD2_LEN])
{
    uint8_t pad[16], sum[16];
    size_t n = 16 - h->used; /* 1..16 bytes, each of value n */
    memset(pad, (int)n, n);
    qsim_md2_add(h, pad, n);
    memcpy(sum, h->c, sizeof sum); /* a copy: adding it changes h->c */
    qsim_md2_add(h, sum, sizeof sum);
    memcpy(out, h->x, QSIM_MD2_LEN);
}

void qsim_hmac_md2(const uint8_t key[QSIM_MD2_LEN], const void *const data[], const size_t len[],
                   size_t n, uint8_t out[QSIM_MD2_LEN])
{
    uint8_t pad[QSIM_MD2_LEN], inner[QSIM_MD2_LEN];
    struct qsim_md2 h = {0};
    for (int i = 0; i < QSIM_MD2_LEN; i++)
        pad[i] = key[i] ^ 0x36;
    qsim_md2_add(&h, pad, sizeof pad);
    for (size_t i = 0; i < n; i++)
        qsim_md2_add(&h, data[i], len[i]);
    qsim_md2_end(&h, inner);
    struct qsim_md2 o = {0};
    for (int i = 0; i < QSIM_MD2_LEN; i++)
        pad[i] = key[i] ^ 0x5c;
    qsim_md2_add(&o, pad, sizeof pad);
    qsim_md2_add(&o, inner, sizeof inner);
    qsim_md2_end(&o, out);
}
