/* cuda_procaddr.c - cuGetProcAddress and cuGetProcAddress_v2, from the toolkit-derived
 * table in build/gen/cuda_procaddr.h (scripts/gen-procaddr.sh).
 * Threads: any; needs no cuInit, as cudart looks cuInit itself up this way. */
#include "sim/cuda_state.h"

#include <dlfcn.h>
#include <string.h>

#include "cuda_procaddr.h"

/* This library's own handle: a symbol found through it is this library's definition
 * (the weak CUDA_ERROR_NOT_SUPPORTED stub included), never a preloaded interposer's, as
 * a lookup in RTLD_DEFAULT would find. */
static void *self_handle(void)
{
    /* Cached; a race only opens the same handle twice. */
    void *h = atomic_load_explicit(&qsim_g.self, memory_order_acquire);
    if (h)
        return h;
    h = qsim_self_open(0);
    void *expected = NULL;
    if (h && !atomic_compare_exchange_strong(&qsim_g.self, &expected, h)) {
        dlclose(h); /* another thread won: drop our extra reference */
        h = expected;
    }
    return h;
}

/* The best variant of name for version and per_thread (see the table's comment), or
 * NULL. *known tells whether name is in the table at all. */
static const struct qv_procaddr_entry *pick(const char *name, int version, bool per_thread,
                                            bool *known)
{
    size_t lo = 0, hi = QV_PROCADDR_COUNT;
    while (lo < hi) { /* first entry whose name is >= name */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(qv_procaddr_table[mid].name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    const struct qv_procaddr_entry *plain = NULL, *pt = NULL;
    *known = false;
    for (size_t i = lo; i < QV_PROCADDR_COUNT && strcmp(qv_procaddr_table[i].name, name) == 0;
         i++) {
        const struct qv_procaddr_entry *e = &qv_procaddr_table[i];
        *known = true;
        if (e->version > version)
            continue;
        const struct qv_procaddr_entry **best = e->per_thread ? &pt : &plain;
        if (!*best || e->version >= (*best)->version)
            *best = e;
    }
    /* A per-thread request falls back on the plain variant where the name has no
     * per-thread one (or none yet at that version). */
    return per_thread && pt ? pt : plain;
}

static CUresult proc_address(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
                             CUdriverProcAddressQueryResult *status)
{
    if (!symbol || !pfn)
        return CUDA_ERROR_INVALID_VALUE;
    const cuuint64_t known_flags =
        CU_GET_PROC_ADDRESS_LEGACY_STREAM | CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM;
    if (flags & ~known_flags)
        return CUDA_ERROR_INVALID_VALUE;
    *pfn = NULL;
    bool known, per_thread = flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM;
    /* A driver gives the newest variant it has for the version asked: an older driver
     * knows nothing that came after it (no checkpointing before r570, for one). */
    int drv = qsim_driver()->cuda;
    const struct qv_procaddr_entry *e =
        pick(symbol, cudaVersion < drv ? cudaVersion : drv, per_thread, &known);
    if (!e && known)
        known = pick(symbol, drv, per_thread, &known) != NULL;
    void *self = e ? self_handle() : NULL;
    void *p = self ? dlsym(self, e->symbol) : NULL;
    if (!p) {
        if (status)
            *status = known && !e ? CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT
                                  : CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
        return CUDA_ERROR_NOT_FOUND;
    }
    *pfn = p;
    if (status)
        *status = CU_GET_PROC_ADDRESS_SUCCESS;
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion,
                                   cuuint64_t flags)
{
    return proc_address(symbol, pfn, cudaVersion, flags, NULL);
}

QSIM_API CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion,
                                      cuuint64_t flags,
                                      CUdriverProcAddressQueryResult *symbolStatus)
{
    return proc_address(symbol, pfn, cudaVersion, flags, symbolStatus);
}
