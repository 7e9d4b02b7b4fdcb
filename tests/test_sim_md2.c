/* test_sim_md2.c - MD2 gives RFC 1319's test digests, and HMAC-MD2 is RFC 2104's
 * construction over it (the CUDA runtime's integrity check of the driver uses it). */
#include "sim/md2.c"

#include <criterion/criterion.h>
#include <stdio.h>

static void hex(const uint8_t d[QSIM_MD2_LEN], char out[2 * QSIM_MD2_LEN + 1])
{
    for (int i = 0; i < QSIM_MD2_LEN; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void expect_md2(const char *msg, const char *want)
{
    struct qsim_md2 h = {0};
    uint8_t d[QSIM_MD2_LEN];
    char got[33];
    qsim_md2_add(&h, msg, strlen(msg));
    qsim_md2_end(&h, d);
    hex(d, got);
    cr_assert_str_eq(got, want, "MD2(\"%s\")", msg);
}

Test(sim_md2, gives_the_digests_of_rfc_1319)
{
    expect_md2("", "8350e5a3e24c153df2275c9f80692773");
    expect_md2("a", "32ec01ec4a6dac72c0ab96fb34c0b5d1");
    expect_md2("abc", "da853b0d3f88d99b30283a69e6ded6bb");
    expect_md2("message digest", "ab4f496bfb2a530b219ff33031fe06b0");
    expect_md2("abcdefghijklmnopqrstuvwxyz", "4e8ddff3650292ab5a4108c3aa47940b");
    expect_md2("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
               "da33def2a42df13975352846c30338cd");
    expect_md2("1234567890123456789012345678901234567890123456789012345678901234567890123456"
               "7890",
               "d5976f79d83d3a0dc9806c3c66f3efd8");
}

Test(sim_md2, a_message_added_in_pieces_digests_as_one)
{
    const char *msg = "12345678901234567890123456789012345";
    struct qsim_md2 one = {0}, parts = {0};
    uint8_t a[16], b[16];
    qsim_md2_add(&one, msg, strlen(msg));
    qsim_md2_end(&one, a);
    qsim_md2_add(&parts, msg, 3);
    qsim_md2_add(&parts, msg + 3, 16);
    qsim_md2_add(&parts, msg + 19, strlen(msg) - 19);
    qsim_md2_end(&parts, b);
    cr_assert_arr_eq(a, b, 16);
}

Test(sim_md2, hmac_is_the_rfc_2104_construction)
{
    const uint8_t key[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    const char *m1 = "part one, ", *m2 = "part two";
    const void *parts[] = {m1, m2};
    const size_t lens[] = {strlen(m1), strlen(m2)};
    uint8_t got[16];
    qsim_hmac_md2(key, parts, lens, 2, got);
    /* By hand: MD2((K ^ opad) || MD2((K ^ ipad) || m1 || m2)). */
    uint8_t pad[16], inner[16], want[16];
    struct qsim_md2 h = {0};
    for (int i = 0; i < 16; i++)
        pad[i] = key[i] ^ 0x36;
    qsim_md2_add(&h, pad, 16);
    qsim_md2_add(&h, m1, strlen(m1));
    qsim_md2_add(&h, m2, strlen(m2));
    qsim_md2_end(&h, inner);
    struct qsim_md2 o = {0};
    for (int i = 0; i < 16; i++)
        pad[i] = key[i] ^ 0x5c;
    qsim_md2_add(&o, pad, 16);
    qsim_md2_add(&o, inner, 16);
    qsim_md2_end(&o, want);
    cr_assert_arr_eq(got, want, 16);
    /* And it depends on the key. */
    uint8_t other[16];
    const uint8_t key2[16] = {0};
    qsim_hmac_md2(key2, parts, lens, 2, other);
    cr_assert(memcmp(other, got, 16) != 0);
}
