/* asan.h - the AddressSanitizer runtime this process loaded, in SAN=1 builds: a program
 * that starts another with an instrumented library preloaded (qgpuctl run with the shim,
 * the tests' harness) must preload the runtime first. Header only, no state; single
 * answer per process. Used by qgpuctl and tests/harness.c. */
#ifndef QV_ASAN_H
#define QV_ASAN_H

#include <link.h>
#include <stddef.h>
#include <string.h>

#ifdef QV_SAN
static int qv_asan_find_(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    if (info->dlpi_name && strstr(info->dlpi_name, "libasan.so")) {
        *(const char **)data = info->dlpi_name;
        return 1;
    }
    return 0;
}
#endif

/* The path of the loaded libasan.so (borrowed: lives as long as the process), or NULL:
 * not a SAN=1 build, or none loaded. */
static inline const char *qv_asan_runtime(void)
{
    const char *asan = NULL;
#ifdef QV_SAN
    dl_iterate_phdr(qv_asan_find_, &asan);
#endif
    return asan;
}

#endif
