/* uuid.c - formats and compares GPU UUIDs. Pure. */
#include "shim/uuid.h"

#include <stdio.h>
#include <string.h>

void qs_uuid_format(const unsigned char b[16], char out[QS_UUID_STR_LEN])
{
    snprintf(out, QS_UUID_STR_LEN,
             "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

static const char *skip_prefix(const char *s)
{
    return strncasecmp(s, "GPU-", 4) == 0 ? s + 4 : s;
}

bool qs_uuid_equal(const char *a, const char *b)
{
    if (!a || !b || !*a || !*b)
        return false;
    a = skip_prefix(a);
    b = skip_prefix(b);
    return *a && strcasecmp(a, b) == 0;
}

QS_EARLY bool qs_uuid_from_visible(const char *visible, char *out, size_t cap)
{
    if (cap)
        out[0] = '\0';
    if (!visible)
        return false;
    while (*visible == ' ' || (*visible >= '\t' && *visible <= '\r'))
        visible++;
    size_t n = 0;
    while (visible[n] && visible[n] != ',' && visible[n] != ' ' && visible[n] != '\t')
        n++;
    bool gpu = n >= 5 && (visible[0] | 0x20) == 'g' && (visible[1] | 0x20) == 'p' &&
               (visible[2] | 0x20) == 'u' && visible[3] == '-';
    if (!gpu || n >= cap)
        return false;
    return qs_copy_early(out, cap, visible, n);
}
