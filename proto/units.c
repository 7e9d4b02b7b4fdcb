/* units.c - parsing memory sizes into MiB. Pure. */
#include "proto/units.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *name;
    double mib;
} units[] = {
    {"", 1},      {"m", 1},      {"mb", 1},          {"mib", 1},          {"g", 1024},
    {"gb", 1024}, {"gib", 1024}, {"t", 1024 * 1024}, {"tb", 1024 * 1024}, {"tib", 1024 * 1024},
};

int qp_parse_size_mb(const char *s, uint64_t *mb, char err[QP_ERR_LEN])
{
    const char *p = s;
    /* strtod would accept hex, infinities and exponents: allow digits and one point. */
    size_t digits = strspn(p, "0123456789");
    if (digits == 0) {
        snprintf(err, QP_ERR_LEN, "size '%.64s' does not start with a number (e.g. 8GiB)", s);
        return -EINVAL;
    }
    p += digits;
    if (*p == '.') {
        size_t frac = strspn(p + 1, "0123456789");
        if (frac == 0) {
            snprintf(err, QP_ERR_LEN, "size '%.64s' has a point but no digits after it", s);
            return -EINVAL;
        }
        p += 1 + frac;
    }
    double value = strtod(s, NULL);
    const char *unit = p;
    while (*unit == ' ')
        unit++;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcasecmp(unit, units[i].name) != 0)
            continue;
        double v = value * units[i].mib;
        if (v < 1) {
            snprintf(err, QP_ERR_LEN, "size '%.64s' is less than 1 MiB", s);
            return -EINVAL;
        }
        if (v > 1099511627776.0) {
            snprintf(err, QP_ERR_LEN, "size '%.64s' is absurdly large", s);
            return -EINVAL;
        }
        /* No libm: the shim links this file and must not pull it in. */
        uint64_t whole = (uint64_t)(v + 0.5);
        double diff = v - (double)whole;
        if (diff > 1e-6 || diff < -1e-6) {
            snprintf(err, QP_ERR_LEN, "size '%.64s' is not a whole number of MiB", s);
            return -EINVAL;
        }
        *mb = whole;
        return 0;
    }
    snprintf(err, QP_ERR_LEN, "size '%.64s' has an unknown unit (use MiB, GiB or TiB)", s);
    return -EINVAL;
}
