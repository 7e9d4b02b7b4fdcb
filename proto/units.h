/* units.h - memory sizes as people write them ("8GiB", "1536MiB") and as the protocol
 * carries them (whole MiB), shared by qgpuctl and the arbiter's config. Pure. */
#ifndef QP_UNITS_H
#define QP_UNITS_H

#include "proto/msg.h"

#include <stdint.h>

#define QP_MIB (1024ull * 1024ull)

/* Parses s: a number, optionally with a fraction, then an optional unit MiB/M/MB, GiB/G/GB
 * or TiB/T/TB (binary, case-insensitive; none means MiB), into whole MiB. Returns 0,
 * or -EINVAL with err saying what is wrong (not a number, unknown unit, not a whole
 * number of MiB, zero, or over 2^40 MiB). */
int qp_parse_size_mb(const char *s, uint64_t *mb, char err[QP_ERR_LEN]);

#endif
