/* real.c - finds the real driver, NVML and glibc entry points the shim forwards to.
 * Threads: any. Every lazily found pointer is published with a release store; racing
 * threads find the same value, so a lost race costs a second lookup, nothing more.
 * State: qs_real_fns (real.h) and real0 below, this file's alone; a fork child keeps
 * them (the same libraries are mapped). */
#include "shim/real.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <string.h>

#include "shim/elfsym.h"
#include "shim/early.h"
#include "shim/log.h"

_Atomic(void *) qs_real_fns[QS_ENTRY_COUNT];

/* The libraries and glibc's lookups, found once. */
static struct {
    _Atomic(void *) cuda_lib;                          /* dlopen handle of libcuda.so.1 */
    _Atomic(void *) nvml_lib;                          /* dlopen handle of libnvidia-ml.so.1 */
    _Atomic(void *) libc_dlsym;                        /* glibc's dlsym */
    _Atomic(void *) libc_dlvsym;                       /* glibc's dlvsym */
    atomic_int logged_dlsym, logged_cuda, logged_nvml; /* each said once */
} real0;

typedef void *(*dlsym_fn)(void *, const char *);
typedef void *(*dlvsym_fn)(void *, const char *, const char *);

/* glibc's function name: its current version (2.34 moved it into libc.so.6), then the
 * first one, in libc.so.6 and then in libdl.so.2 (older glibc). The objects are found by
 * walking the loaded list from the shim's own entry: dlopen may be intercepted by a
 * runtime not yet able to call the real one (shim/early.h). */
QS_EARLY static void *find_libc(const char *name)
{
    static const char *const libs[] = {"libc.so.6", "libdl.so.2"};
    static const char *const vers[] = {"GLIBC_2.34", "GLIBC_2.2.5", NULL};
    Dl_info info;
    struct link_map *self = NULL;
    if (!dladdr1((const void *)find_libc, &info, (void **)&self, RTLD_DL_LINKMAP) || !self)
        return NULL;
    while (self->l_prev)
        self = self->l_prev;
    for (size_t i = 0; i < sizeof libs / sizeof *libs; i++) {
        for (struct link_map *lm = self; lm; lm = lm->l_next) {
            if (!lm->l_name || qs_strcmp(qs_basename(lm->l_name), libs[i]) != 0)
                continue;
            void *fn = NULL;
            for (size_t v = 0; v < sizeof vers / sizeof *vers && !fn; v++)
                qs_elf_lookup(lm, name, vers[v], &fn);
            if (fn)
                return fn;
        }
    }
    return NULL;
}

QS_EARLY static void *libc_fn(_Atomic(void *) *slot, const char *name)
{
    void *fn = atomic_load_explicit(slot, memory_order_acquire);
    if (!fn) {
        fn = find_libc(name);
        if (!fn)
            qs_log_once(&real0.logged_dlsym,
                        "cannot find glibc's %s: dynamic lookups of "
                        "CUDA entry points will fail",
                        name);
        atomic_store_explicit(slot, fn, memory_order_release);
    }
    return fn;
}

QS_EARLY void *qs_libc_dlsym(void *handle, const char *name)
{
    dlsym_fn fn = (dlsym_fn)libc_fn(&real0.libc_dlsym, "dlsym");
    return fn ? fn(handle, name) : NULL;
}

QS_EARLY void *qs_libc_dlvsym(void *handle, const char *name, const char *version)
{
    dlvsym_fn fn = (dlvsym_fn)libc_fn(&real0.libc_dlvsym, "dlvsym");
    return fn ? fn(handle, name, version) : NULL;
}

/* The driver library (or NVML's), loaded on first need and kept. Loading it RTLD_LOCAL
 * changes nothing the application sees: its own lookups go through the global scope. */
static void *library(bool nvml)
{
    _Atomic(void *) *slot = nvml ? &real0.nvml_lib : &real0.cuda_lib;
    void *h = atomic_load_explicit(slot, memory_order_acquire);
    if (!h) {
        const char *soname = nvml ? "libnvidia-ml.so.1" : "libcuda.so.1";
        h = dlopen(soname, RTLD_LAZY | RTLD_LOCAL);
        if (!h) {
            qs_log_once(nvml ? &real0.logged_nvml : &real0.logged_cuda, "cannot load %s: %s",
                        soname, dlerror());
            return NULL;
        }
        void *expected = NULL;
        /* Keep one handle: a thread that lost the race drops its extra reference. */
        if (!atomic_compare_exchange_strong_explicit(slot, &expected, h, memory_order_acq_rel,
                                                     memory_order_acquire)) {
            dlclose(h);
            h = expected;
        }
    }
    return h;
}

void *qs_real_resolve(int id)
{
    int saved = errno; /* dlopen may set it; the application's must survive */
    const char *name = qs_entry_name(id);
    void *h = library(strncmp(name, "nvml", 4) == 0);
    if (h)
        qs_real_offer(id, qs_libc_dlsym(h, name));
    errno = saved;
    return atomic_load_explicit(&qs_real_fns[id], memory_order_acquire);
}

QS_EARLY void qs_real_offer(int id, void *fn)
{
    if (!fn || qs_hook_of(fn) >= 0)
        return;
    atomic_store_explicit(&qs_real_fns[id], fn, memory_order_release);
}

/* The file name of the object holding addr, without its directory, or NULL. */
QS_EARLY static const char *object_base(const void *addr)
{
    Dl_info info;
    struct link_map *lm = NULL;
    if (!dladdr1(addr, &info, (void **)&lm, RTLD_DL_LINKMAP) || !lm || !lm->l_name)
        return NULL;
    return qs_basename(lm->l_name);
}

QS_EARLY bool qs_in_driver(const void *addr)
{
    const char *base = object_base(addr);
    return base && (qs_prefix(base, "libcuda.so") || qs_prefix(base, "libnvidia-ml.so"));
}

QS_EARLY bool qs_in_shim(const void *addr)
{
    Dl_info a, b;
    return dladdr(addr, &a) && dladdr((const void *)qs_in_shim, &b) && a.dli_fbase == b.dli_fbase;
}
