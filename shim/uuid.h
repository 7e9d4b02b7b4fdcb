/* uuid.h - GPU UUIDs as the driver gives them (16 bytes) and as people, NVML and
 * CUDA_VISIBLE_DEVICES write them ("GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"). Pure. */
#ifndef QS_UUID_H
#define QS_UUID_H

#include <stdbool.h>
#include <stddef.h>

#include "shim/early.h"

#define QS_UUID_STR_LEN 41 /* "GPU-" + 36 + NUL */
#define QS_UUID_LEN 96     /* room for a UUID as an environment or the arbiter may write it */

/* Writes bytes as "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (lower case) into out. */
void qs_uuid_format(const unsigned char bytes[16], char out[QS_UUID_STR_LEN]);
/* Whether a and b name the same GPU: case-insensitive, "GPU-" prefix optional on
 * either. An empty string matches nothing. */
bool qs_uuid_equal(const char *a, const char *b);
/* Copies the first entry of a CUDA_VISIBLE_DEVICES list into out (cap bytes) if it is a
 * GPU UUID ("GPU-..."), else leaves out empty. Returns whether it copied one. Calls no
 * libc function: the environment may be read before a sanitizer runtime is ready. */
QS_EARLY bool qs_uuid_from_visible(const char *visible, char *out, size_t cap);

#endif
