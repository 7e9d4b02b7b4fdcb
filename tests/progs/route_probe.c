/* route_probe.c - resolves every entry point of the toolkit's table the ways a CUDA
 * runtime does, and prints which library each answer lives in (tests/test_route.c).
 *
 *   route_probe   linked like a real CUDA program: the driver is bound at start and
 *                 cuGetProcAddress / cuGetProcAddress_v2 are called directly
 *   route_late    the same source without any reference to the driver (route_late.c):
 *                 libcuda.so.1 is dlopen'ed by a thread started after main(), as
 *                 PyTorch's and JAX's runtimes open it, and both entry points are
 *                 found with dlsym on that handle
 *
 * For every name of build/gen/cuda_procaddr.h, at CUDA versions 11030, 12000 and 13000,
 * with CU_GET_PROC_ADDRESS_DEFAULT, _LEGACY_STREAM and _PER_THREAD_DEFAULT_STREAM,
 * through both entry points; then dlsym and dlvsym of every exported variant on a
 * handle from dlopen("libcuda.so.1"). One line each:
 *
 *   loaded <0|1>                     libcuda.so.1 was loaded before the probe opened it
 *   pa <api> <version> <flags> <name> <rc> <status> <object> <offset>
 *   dlsym <symbol> <object> <offset>
 *   dlvsym <symbol> <object> <offset>
 *
 * api: 1 for cuGetProcAddress, 2 for cuGetProcAddress_v2; status: the query result
 * (- for api 1, which has none); object: the file name of the library that holds the
 * returned address, without its directory (- for NULL); offset: the address minus that
 * library's load base, in hex. Exit status 0, or 1 when the driver cannot be reached.
 * Single-threaded but for the late opener, which main() joins before going on. */
#define __CUDA_API_VERSION_INTERNAL 1
#include <cuda.h>

#include <dlfcn.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cuda_procaddr.h"

typedef CUresult (*procaddr1_fn)(const char *, void **, int, cuuint64_t);
typedef CUresult (*procaddr2_fn)(const char *, void **, int, cuuint64_t,
                                 CUdriverProcAddressQueryResult *);

struct driver {
    void *handle;          /* dlopen("libcuda.so.1") */
    procaddr1_fn procaddr1; /* cuGetProcAddress */
    procaddr2_fn procaddr2; /* cuGetProcAddress_v2 */
};

/* The library holding p and p's offset in it, as "object offset". */
static void where(const void *p, char *buf, size_t cap)
{
    Dl_info info;
    if (!p || !dladdr(p, &info) || !info.dli_fname) {
        snprintf(buf, cap, "- 0");
        return;
    }
    const char *base = strrchr(info.dli_fname, '/');
    snprintf(buf, cap, "%s %lx", base ? base + 1 : info.dli_fname,
             (unsigned long)((uintptr_t)p - (uintptr_t)info.dli_fbase));
}

/* Opens the driver and finds both entry points: by direct reference in route_probe,
 * by dlsym on the handle in route_late. Returns false when the driver is missing. */
static bool open_driver(struct driver *d)
{
    printf("loaded %d\n", dlopen("libcuda.so.1", RTLD_LAZY | RTLD_NOLOAD) != NULL);
    d->handle = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!d->handle) {
        fprintf(stderr, "route_probe: cannot open libcuda.so.1: %s\n", dlerror());
        return false;
    }
#ifdef ROUTE_PROBE_LATE
    d->procaddr1 = (procaddr1_fn)dlsym(d->handle, "cuGetProcAddress");
    d->procaddr2 = (procaddr2_fn)dlsym(d->handle, "cuGetProcAddress_v2");
#else
    d->procaddr1 = cuGetProcAddress;
    d->procaddr2 = cuGetProcAddress_v2;
#endif
    if (!d->procaddr1 || !d->procaddr2) {
        fprintf(stderr, "route_probe: libcuda.so.1 has no cuGetProcAddress\n");
        return false;
    }
    return true;
}

#ifdef ROUTE_PROBE_LATE
static void *late_open(void *arg)
{
    return open_driver(arg) ? arg : NULL;
}
#endif

static void query_all(const struct driver *d)
{
    static const int versions[] = {11030, 12000, 13000};
    static const cuuint64_t flags[] = {CU_GET_PROC_ADDRESS_DEFAULT,
                                       CU_GET_PROC_ADDRESS_LEGACY_STREAM,
                                       CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM};
    char obj[512];
    for (size_t i = 0; i < QV_PROCADDR_COUNT; i++) {
        const char *name = qv_procaddr_table[i].name;
        if (i > 0 && strcmp(name, qv_procaddr_table[i - 1].name) == 0)
            continue; /* the table lists each variant; ask once per name */
        for (size_t v = 0; v < sizeof versions / sizeof *versions; v++) {
            for (size_t f = 0; f < sizeof flags / sizeof *flags; f++) {
                void *fn = NULL;
                CUresult rc = d->procaddr1(name, &fn, versions[v], flags[f]);
                where(fn, obj, sizeof obj);
                printf("pa 1 %d %llu %s %d - %s\n", versions[v], (unsigned long long)flags[f],
                       name, (int)rc, obj);
                fn = NULL;
                CUdriverProcAddressQueryResult st = (CUdriverProcAddressQueryResult)-1;
                rc = d->procaddr2(name, &fn, versions[v], flags[f], &st);
                where(fn, obj, sizeof obj);
                printf("pa 2 %d %llu %s %d %d %s\n", versions[v], (unsigned long long)flags[f],
                       name, (int)rc, (int)st, obj);
            }
        }
    }
    for (size_t i = 0; i < QV_PROCADDR_COUNT; i++) {
        const char *sym = qv_procaddr_table[i].symbol;
        where(dlsym(d->handle, sym), obj, sizeof obj);
        printf("dlsym %s %s\n", sym, obj);
        /* The driver's symbols carry no version; glibc answers as for any such object. */
        where(dlvsym(d->handle, sym, "libcuda.so.1"), obj, sizeof obj);
        printf("dlvsym %s %s\n", sym, obj);
    }
}

int main(void)
{
    struct driver d;
#ifdef ROUTE_PROBE_LATE
    pthread_t t;
    void *ok = NULL;
    if (pthread_create(&t, NULL, late_open, &d) != 0 || pthread_join(t, &ok) != 0 || !ok)
        return 1;
#else
    if (!open_driver(&d))
        return 1;
#endif
    query_all(&d);
    return fflush(stdout) == 0 ? 0 : 1;
}
