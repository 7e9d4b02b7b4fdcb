/* route.c - the two dynamic routes to the driver: dlsym/dlvsym, and cuGetProcAddress,
 * which CUDA runtimes since 11.3 use for every entry point. Both hand out the shim's hook
 * for an entry point it hooks, keeping the pointer the driver gave as the real function.
 *
 * Threads: any. dlsym may be called before main() and before the shim's constructor (from
 * other libraries' constructors): nothing here depends on initialisation. */
#include <dlfcn.h>
#include <link.h>

#include "shim/elfsym.h"
#include "shim/early.h"
#include "shim/hooks.h"
#include "shim/log.h"
#include "shim/init.h"
#include "shim/procaddr.h"
#include "shim/real.h"

/* Said once per process: a driver variant newer than our table. */
static atomic_int logged_newer_variant;

QS_EARLY static bool driver_name(const char *name)
{
    return name && (qs_prefix(name, "cu") || qs_prefix(name, "nvml"));
}

/* The definition of name that RTLD_NEXT promises the caller: the first one in an object
 * loaded after the caller's. glibc's dlsym cannot do this for us, because it takes the
 * shim for the caller. Objects are searched alone, in load order, as ld.so searches the
 * global scope; an object opened RTLD_LOCAL is searched too (glibc would skip it), and
 * thread-local variables are looked up from the shim on. */
QS_EARLY static void *lookup_next(const void *caller, const char *name, const char *version)
{
    Dl_info info;
    struct link_map *lm = NULL;
    if (!dladdr1(caller, &info, (void **)&lm, RTLD_DL_LINKMAP) || !lm)
        return version ? qs_libc_dlvsym(RTLD_DEFAULT, name, version)
                       : qs_libc_dlsym(RTLD_DEFAULT, name);
    for (struct link_map *l = lm->l_next; l; l = l->l_next) {
        void *fn = NULL;
        switch (qs_elf_lookup(l, name, version, &fn)) {
        case QS_ELF_FOUND:
            return fn;
        case QS_ELF_INDIRECT:
            /* Thread-local data: only ld.so can give its address, and it would search
             * from the shim on (glibc's dlsym has no way to name another caller). */
            return version ? qs_libc_dlvsym(RTLD_NEXT, name, version)
                           : qs_libc_dlsym(RTLD_NEXT, name);
        default:
            break;
        }
    }
    /* Not found: let glibc fail the same lookup, so that dlerror() says why. */
    return version ? qs_libc_dlvsym(RTLD_NEXT, name, version) : qs_libc_dlsym(RTLD_NEXT, name);
}

/* What a dynamic lookup of name, which found fn, returns to caller: the hook when fn is
 * the driver's definition of an entry point we hook, fn otherwise. */
QS_EARLY static void *route(const char *name, void *fn, const void *caller)
{
    if (!fn || !qs_managed() || !driver_name(name))
        return fn;
    int id = qs_hook_find(name);
    if (id < 0 || fn == qs_hook_addr(id))
        return fn;
    /* The driver and the shim look themselves up: they must get the real thing. */
    if (qs_in_driver(caller) || qs_in_shim(caller) || !qs_in_driver(fn))
        return fn;
    qs_real_offer(id, fn);
    return qs_hook_addr(id);
}

QS_EARLY QS_EXPORT void *dlsym(void *handle, const char *name)
{
    const void *caller = __builtin_return_address(0);
    void *fn = handle == RTLD_NEXT ? lookup_next(caller, name, NULL) : qs_libc_dlsym(handle, name);
    return route(name, fn, caller);
}

QS_EARLY QS_EXPORT void *dlvsym(void *handle, const char *name, const char *version)
{
    const void *caller = __builtin_return_address(0);
    void *fn = handle == RTLD_NEXT ? lookup_next(caller, name, version)
                                   : qs_libc_dlvsym(handle, name, version);
    return route(name, fn, caller);
}

/* Whether the driver resolves symbol at cuda_version to the same function as at the
 * newest version our table knows (CUDA_VERSION of the toolkit the shim was built with).
 * A newer driver may have added a variant the table does not name: the hook for the old
 * variant must then not stand in for it (its parameters may differ). */
static bool known_variant(const char *symbol, void *fn, int cuda_version, cuuint64_t flags)
{
    if (cuda_version <= CUDA_VERSION)
        return true;
    QS_PFN_cuGetProcAddress_v2 real = QS_REAL(cuGetProcAddress_v2);
    CUdriverProcAddressQueryResult st;
    void *known = NULL;
    if (real && real(symbol, &known, CUDA_VERSION, flags, &st) == CUDA_SUCCESS && known == fn)
        return true;
    qs_log_once(&logged_newer_variant,
                "the driver has a variant of %s newer than CUDA %d.%d: the shim does not "
                "intercept it (rebuild the shim against a newer toolkit)",
                symbol, CUDA_VERSION / 1000, CUDA_VERSION % 1000 / 10);
    return false;
}

/* After the driver resolved symbol to *pfn: hand out our hook for the exact variant it
 * chose (the generated table says which), keeping *pfn as that variant's real function. */
static void route_procaddr(const char *symbol, void **pfn, int cuda_version, cuuint64_t flags)
{
    if (!qs_managed() || !symbol || !pfn || !*pfn)
        return;
    const char *variant = qs_procaddr_variant(
        symbol, cuda_version, (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0);
    int id = qs_hook_find(variant);
    if (id < 0 || !known_variant(symbol, *pfn, cuda_version, flags))
        return;
    qs_real_offer(id, *pfn);
    *pfn = qs_hook_addr(id);
}

QS_EXPORT CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion,
                                       cuuint64_t flags, CUdriverProcAddressQueryResult *status)
{
    QS_PFN_cuGetProcAddress_v2 real = QS_REAL(cuGetProcAddress_v2);
    if (!real)
        return CUDA_ERROR_NOT_FOUND;
    CUresult rc = real(symbol, pfn, cudaVersion, flags, status);
    if (rc == CUDA_SUCCESS)
        route_procaddr(symbol, pfn, cudaVersion, flags);
    return rc;
}

QS_EXPORT CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion,
                                    cuuint64_t flags)
{
    QS_PFN_cuGetProcAddress real = QS_REAL(cuGetProcAddress);
    if (!real)
        return CUDA_ERROR_NOT_FOUND;
    CUresult rc = real(symbol, pfn, cudaVersion, flags);
    if (rc == CUDA_SUCCESS)
        route_procaddr(symbol, pfn, cudaVersion, flags);
    return rc;
}
