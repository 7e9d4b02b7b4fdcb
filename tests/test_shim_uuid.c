/* test_shim_uuid.c - GPU UUIDs as the driver gives them and as CUDA_VISIBLE_DEVICES and
 * NVML write them. */
#include "shim/uuid.c"

#include <criterion/criterion.h>

Test(shim_uuid, formats_driver_bytes_as_nvml_does)
{
    const unsigned char b[16] = {0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0,
                                 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
    char s[QS_UUID_STR_LEN];
    qs_uuid_format(b, s);
    cr_assert_str_eq(s, "GPU-12345678-9abc-def0-0123-456789abcdef");
}

Test(shim_uuid, compares_without_case_or_prefix)
{
    cr_assert(qs_uuid_equal("GPU-12345678-9abc-def0-0123-456789abcdef",
                            "gpu-12345678-9ABC-DEF0-0123-456789ABCDEF"));
    cr_assert(qs_uuid_equal("12345678-9abc-def0-0123-456789abcdef",
                            "GPU-12345678-9abc-def0-0123-456789abcdef"));
    cr_assert_not(qs_uuid_equal("GPU-12345678-9abc-def0-0123-456789abcdef",
                                "GPU-12345678-9abc-def0-0123-456789abcde0"));
    cr_assert_not(qs_uuid_equal("", ""));
    cr_assert_not(qs_uuid_equal("GPU-", "GPU-"));
    cr_assert_not(qs_uuid_equal(NULL, "GPU-1"));
}

Test(shim_uuid, takes_the_first_uuid_of_a_visible_devices_list)
{
    char out[64];
    cr_assert(qs_uuid_from_visible("GPU-aaaa-bbbb,GPU-cccc", out, sizeof out));
    cr_assert_str_eq(out, "GPU-aaaa-bbbb");
    cr_assert(qs_uuid_from_visible(" GPU-aaaa", out, sizeof out));
    cr_assert_str_eq(out, "GPU-aaaa");
    cr_assert_not(qs_uuid_from_visible("0,1", out, sizeof out), "indices name no GPU");
    cr_assert_str_eq(out, "");
    cr_assert_not(qs_uuid_from_visible(NULL, out, sizeof out));
    cr_assert_not(qs_uuid_from_visible("GPU-0123456789", out, 8), "too long for out");
    cr_assert_str_eq(out, "");
}
