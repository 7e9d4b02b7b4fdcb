/* procaddr.c - maps a cuGetProcAddress request to the exact exported variant. Pure. */
#include "shim/procaddr.h"

#include <string.h>

#include "cuda_procaddr.h"

/* The first table index whose name is >= name (the table is sorted by name). */
static size_t lower_bound(const char *name)
{
    size_t lo = 0, hi = QV_PROCADDR_COUNT;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(qv_procaddr_table[mid].name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const char *qs_procaddr_variant(const char *name, int cuda_version, bool per_thread)
{
    if (!name)
        return NULL;
    const char *plain = NULL, *pt = NULL;
    /* Entries of one name are sorted by per_thread, then version: the last match of each
     * kind is the newest one that is old enough. */
    for (size_t i = lower_bound(name);
         i < QV_PROCADDR_COUNT && strcmp(qv_procaddr_table[i].name, name) == 0; i++) {
        const struct qv_procaddr_entry *e = &qv_procaddr_table[i];
        if (e->version > cuda_version)
            continue;
        if (e->per_thread)
            pt = e->symbol;
        else
            plain = e->symbol;
    }
    return per_thread && pt ? pt : plain;
}
