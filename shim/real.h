/* real.h - the real driver and NVML entry points behind the hooks, and glibc's own dlsym.
 *
 * Threads: any. A real entry point is looked up in the driver on first use and stored in
 * qs_real_fns (release); hooks read it with one acquire load (a plain load on x86-64). A
 * pointer the driver hands out through cuGetProcAddress or dlsym replaces the looked-up
 * one: that is the function the application would have called without the shim. */
#ifndef QS_REAL_H
#define QS_REAL_H

#include <stdatomic.h>
#include <stdbool.h>

#include "shim/hooks.h"

/* The real entry points by id; NULL until looked up (or when the driver lacks one).
 * Defined in real.c, read inline by every hook, written only by real.c's functions. */
extern _Atomic(void *) qs_real_fns[QS_ENTRY_COUNT];

/* Looks id up in the driver (or NVML) library, loading it if need be. Returns NULL when
 * the library or the symbol cannot be found; it says why once on stderr. */
void *qs_real_resolve(int id);

/* The real entry point id, or NULL when this driver lacks it. */
static inline void *qs_real(int id)
{
    /* acquire pairs with the release in qs_real_offer(): the library was loaded and
     * relocated before its address was published. */
    void *fn = atomic_load_explicit(&qs_real_fns[id], memory_order_acquire);
    if (__builtin_expect(fn == NULL, 0))
        fn = qs_real_resolve(id);
    return fn;
}

/* The real entry point for a hook or call name, typed. */
#define QS_REAL(name) ((QS_PFN_##name)qs_real(QS_H_##name))

/* Makes fn the real entry point of id, unless fn is NULL or one of the shim's own hooks
 * (a driver that resolves names through the global scope would hand those back). */
void qs_real_offer(int id, void *fn);

/* glibc's dlsym and dlvsym, found in libc's own symbol table, so that the shim's
 * overrides of both never answer its own lookups. NULL when not found. */
void *qs_libc_dlsym(void *handle, const char *name);
void *qs_libc_dlvsym(void *handle, const char *name, const char *version);

/* Whether addr lies in the driver (libcuda.so*) or NVML (libnvidia-ml.so*), whatever path
 * it was loaded from. */
bool qs_in_driver(const void *addr);
/* Whether addr lies in this library (libqshim.so). */
bool qs_in_shim(const void *addr);

#endif
