/* shim_work.c - a CUDA workload for the shim's tests, driven by its arguments.
 *
 * Linked against the toolkit's stub libcuda.so like any CUDA program; at run time it binds
 * to whatever libcuda.so.1 the loader finds (the simulated one in tests), with or without
 * libqshim.so preloaded. Each argument is a command; each command prints one line to
 * stdout (line-buffered, so a test can follow a live process):
 *
 *   init                      cuInit, device 0's primary context made current
 *   count                     count <rc> <n>           cuDeviceGetCount
 *   devices                   dev <ordinal> <rc> <uuid>, for ordinals 0..3
 *   alloc:SYM:ROUTE:BYTES     alloc <SYM> <ROUTE> <rc> allocate with variant SYM reached
 *                             through ROUTE; kept for `free`
 *   alloc_retry:SYM:ROUTE:BYTES:MS   alloc <SYM> <ROUTE> <rc> <tries>  alloc again every
 *                             10 ms until it succeeds or MS pass
 *   reset                     reset <rc>               cuDevicePrimaryCtxReset, then the
 *                             primary context is made current again
 *   free                      free <rc>                the newest live allocation, freed
 *                             with the matching variant through the same route
 *   freeall                   freeall <n>
 *   map:BYTES                 map <rc>                 maps the first BYTES of the newest
 *                             live cuMemCreate allocation into an address range of its own
 *   unmap                     unmap <rc>               unmaps the newest mapping, frees its range
 *   free_async                free_async <rc>          cuMemFreeAsync of the newest live
 *                             (stream-ordered) allocation, without synchronising
 *   pool_keep:BYTES           pool_keep <rc>           the default pool's release threshold
 *   pool_new                  pool_new <rc>            creates a device pool, which
 *                             cuMemAllocFromPoolAsync* then use instead of the default one
 *   pool_destroy              pool_destroy <rc>        destroys it (allocations may be live)
 *   pool_trim:BYTES           pool_trim <rc>           cuMemPoolTrimTo on the default pool
 *   grab:BYTES                grab <n>                 cuMemAlloc_v2 until refused
 *   churn:BYTES:MS            churn <rounds> <granted> <refused> <kernels> <failed>  for MS
 *                             ms: cuMemAlloc_v2 of BYTES blocks until one is refused, a
 *                             0.1 ms qsim_spin and a synchronisation after each grant,
 *                             then every other block freed, and again (the chaos test)
 *   info:ROUTE                info <rc> <free> <total> cuMemGetInfo (v2; ROUTE v1: v1)
 *   totalmem:ROUTE            totalmem <rc> <bytes>    cuDeviceTotalMem of device 0
 *   nvml                      nvml <rc> <count> <total> <used> <free> <uuid>
 *   nvml_other:UUID           nvml_other <rc>          nvmlDeviceGetHandleByUUID(UUID)
 *   launch:SYM:ROUTE:NS       launch <SYM> <ROUTE> <rc> qsim_spin(NS) then synchronize
 *                             (the deprecated cuLaunch, cuLaunchGrid* pass no parameter)
 *   launch:SYM:ROUTE:NS:timed launch <SYM> <ROUTE> <rc> <in_us> <after_us>  the same;
 *                             in_us: microseconds inside the launch call (a gate waiting
 *                             for a lease), after_us: from its return until the
 *                             synchronisation returned (the kernel's run)
 *   spin:NS:DEPTH:MS          spin <kernels> <after_us> <max_in_us> for MS milliseconds,
 *                             DEPTH qsim_spin(NS) launches (cuLaunchKernel) then a
 *                             cuCtxSynchronize, again and again; after_us: the median over
 *                             rounds of the time from the last launch's return to the
 *                             sync's return (a median: a busy machine stalls a few)
 *   resolve:SYM               resolve <SYM> <route>=<object>... which library answers
 *   nextsym:NAME              nextsym <NAME> <object> same|differs   dlsym(RTLD_NEXT, NAME)
 *                             from this program, against dlsym(RTLD_DEFAULT, NAME)
 *   init_via:ROUTE            init <rc>                cuInit and cuDeviceGet found through
 *                             ROUTE, as a runtime initialising lazily does
 *   sync                      sync <rc>                cuCtxSynchronize
 *   sleep:MS                  sleep
 *   await:PATH:MS             await <1|0>              waits until the file PATH exists (the
 *                             test's go-ahead), at most MS: 1 when it came
 *   ready / hold              ready (then, for hold, sleeps until killed)
 *   setenv:NAME=VALUE         setenv
 *   unsetenv:NAME             unsetenv
 *   getenv_race:T             getenv_race <rc> <bad>   `init` while T threads read
 *                             CUDA_VISIBLE_DEVICES in a loop; bad: values seen torn
 *   fork:N                    the child runs the next N commands (its lines prefixed
 *                             "[child] ") and exits; the parent skips them and prints
 *                             fork <child's exit status>
 *   exec:N                    the same, but the child execs this program anew with them
 *   fork_errno                sets errno to EXDEV and forks: the child prints
 *                             "[child] fork_errno <errno>" at once and exits; the parent
 *                             fork_errno <its errno after fork>
 *   exit_busy:T:BYTES:MS      starts T threads that allocate BYTES (cuMemAlloc_v2, freed
 *                             when granted) and launch 0.1 ms kernels without end, sleeps
 *                             MS, prints exit_busy and exits while they run
 *   cancel_wait:MS            cancel_wait <rc>         a thread launches qsim_spin(1 ms)
 *                             (it waits at the gate while another holds the lease), is
 *                             cancelled (pthread_cancel) after MS and joined; then this
 *                             thread launches and synchronises: rc
 *   cancel_alloc:MS:BYTES     cancel_alloc <rc>        the same with cuMemAlloc_v2(BYTES)
 *                             (it waits for the agent when the reservation must grow)
 *   threads:T:CMD             runs CMD in T threads at once: threads <ok> <failed> <grabbed>;
 *                             CMD is init, alloc_free:BYTES (200 pairs), grab:BYTES
 *                             (cuMemAlloc_v2 until refused; grabbed counts them all), or
 *                             spin:NS:MS (qsim_spin(NS) and a synchronisation of its own
 *                             stream, again and again for MS ms; grabbed counts kernels)
 *
 * ROUTE is one of: direct (the linked symbol), dlsym (dlopen("libcuda.so.1") + dlsym),
 * default (dlsym(RTLD_DEFAULT)), next (dlsym(RTLD_NEXT)), dlvsym (dlvsym(RTLD_DEFAULT)
 * with no version the driver has: an unversioned definition matches), procaddr
 * (cuGetProcAddress_v2 with the variant's name, version and per-thread flag), procaddrmax
 * (the same asking for CUDA version 99999, as a program newer than the shim), procaddr1
 * (the same through cuGetProcAddress, the v1 entry point). Exit status: 0, or 2 on a
 * malformed command. */
#define __CUDA_API_VERSION_INTERNAL 1
#include <cuda.h>

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "include/nvml_subset.h"

enum kind {
    K_ALLOC,
    K_ALLOC1,
    K_PITCH,
    K_PITCH1,
    K_MANAGED,
    K_ASYNC,
    K_POOL,
    K_VMM,
    K_ARRAY,
    K_ARRAY1,
    K_ARRAY3D,
    K_ARRAY3D1,
    K_MIPMAP,
    K_FREE,
    K_FREE1,
    K_FREEASYNC,
    K_RELEASE,
    K_ARRAYDESTROY,
    K_MIPDESTROY,
    K_SYNC,
    K_INFO,
    K_INFO1,
    K_TOTAL,
    K_TOTAL1,
    K_LAUNCH,
    K_LAUNCHEX,
    K_COOP,
    K_GRAPH,
    K_LAUNCH1,   /* cuLaunch */
    K_GRID,      /* cuLaunchGrid */
    K_GRIDASYNC, /* cuLaunchGridAsync */
    K_COOPMULTI  /* cuLaunchCooperativeKernelMultiDevice */
};

/* One exported variant: its name for cuGetProcAddress, the version that introduced it,
 * whether it is the per-thread one, how to call it, and the linked symbol. */
struct variant {
    const char *symbol;
    const char *name;
    int version;
    bool ptsz;
    enum kind kind;
    void *direct;
    const char *free_symbol; /* the variant that frees what this one allocates */
};

#define V(sym, name, ver, pt, kind, free_sym)                                                      \
    {                                                                                              \
#sym, name, ver, pt, kind, (void *)&sym, free_sym                                          \
    }
static const struct variant variants[] = {
    V(cuMemAlloc_v2, "cuMemAlloc", 12000, false, K_ALLOC, "cuMemFree_v2"),
    V(cuMemAlloc, "cuMemAlloc", 2000, false, K_ALLOC1, "cuMemFree"),
    V(cuMemAllocPitch_v2, "cuMemAllocPitch", 12000, false, K_PITCH, "cuMemFree_v2"),
    V(cuMemAllocPitch, "cuMemAllocPitch", 2000, false, K_PITCH1, "cuMemFree"),
    V(cuMemAllocManaged, "cuMemAllocManaged", 12000, false, K_MANAGED, "cuMemFree_v2"),
    V(cuMemAllocAsync, "cuMemAllocAsync", 12000, false, K_ASYNC, "cuMemFreeAsync"),
    V(cuMemAllocAsync_ptsz, "cuMemAllocAsync", 12000, true, K_ASYNC, "cuMemFreeAsync_ptsz"),
    V(cuMemAllocFromPoolAsync, "cuMemAllocFromPoolAsync", 12000, false, K_POOL, "cuMemFreeAsync"),
    V(cuMemAllocFromPoolAsync_ptsz, "cuMemAllocFromPoolAsync", 12000, true, K_POOL,
      "cuMemFreeAsync_ptsz"),
    V(cuMemCreate, "cuMemCreate", 12000, false, K_VMM, "cuMemRelease"),
    V(cuArrayCreate_v2, "cuArrayCreate", 12000, false, K_ARRAY, "cuArrayDestroy"),
    V(cuArrayCreate, "cuArrayCreate", 2000, false, K_ARRAY1, "cuArrayDestroy"),
    V(cuArray3DCreate_v2, "cuArray3DCreate", 12000, false, K_ARRAY3D, "cuArrayDestroy"),
    V(cuArray3DCreate, "cuArray3DCreate", 2000, false, K_ARRAY3D1, "cuArrayDestroy"),
    V(cuMipmappedArrayCreate, "cuMipmappedArrayCreate", 12000, false, K_MIPMAP,
      "cuMipmappedArrayDestroy"),
    V(cuMemFree_v2, "cuMemFree", 12000, false, K_FREE, NULL),
    V(cuMemFree, "cuMemFree", 2000, false, K_FREE1, NULL),
    V(cuMemFreeAsync, "cuMemFreeAsync", 12000, false, K_FREEASYNC, NULL),
    V(cuMemFreeAsync_ptsz, "cuMemFreeAsync", 12000, true, K_FREEASYNC, NULL),
    V(cuMemRelease, "cuMemRelease", 12000, false, K_RELEASE, NULL),
    V(cuArrayDestroy, "cuArrayDestroy", 12000, false, K_ARRAYDESTROY, NULL),
    V(cuMipmappedArrayDestroy, "cuMipmappedArrayDestroy", 12000, false, K_MIPDESTROY, NULL),
    V(cuStreamSynchronize, "cuStreamSynchronize", 12000, false, K_SYNC, NULL),
    V(cuStreamSynchronize_ptsz, "cuStreamSynchronize", 12000, true, K_SYNC, NULL),
    V(cuMemGetInfo_v2, "cuMemGetInfo", 12000, false, K_INFO, NULL),
    V(cuMemGetInfo, "cuMemGetInfo", 2000, false, K_INFO1, NULL),
    V(cuDeviceTotalMem_v2, "cuDeviceTotalMem", 12000, false, K_TOTAL, NULL),
    V(cuDeviceTotalMem, "cuDeviceTotalMem", 2000, false, K_TOTAL1, NULL),
    V(cuLaunchKernel, "cuLaunchKernel", 12000, false, K_LAUNCH, NULL),
    V(cuLaunchKernel_ptsz, "cuLaunchKernel", 12000, true, K_LAUNCH, NULL),
    V(cuLaunchKernelEx, "cuLaunchKernelEx", 12000, false, K_LAUNCHEX, NULL),
    V(cuLaunchKernelEx_ptsz, "cuLaunchKernelEx", 12000, true, K_LAUNCHEX, NULL),
    V(cuLaunchCooperativeKernel, "cuLaunchCooperativeKernel", 12000, false, K_COOP, NULL),
    V(cuLaunchCooperativeKernel_ptsz, "cuLaunchCooperativeKernel", 12000, true, K_COOP, NULL),
    V(cuGraphLaunch, "cuGraphLaunch", 12000, false, K_GRAPH, NULL),
    V(cuGraphLaunch_ptsz, "cuGraphLaunch", 12000, true, K_GRAPH, NULL),
    V(cuLaunch, "cuLaunch", 2000, false, K_LAUNCH1, NULL),
    V(cuLaunchGrid, "cuLaunchGrid", 2000, false, K_GRID, NULL),
    V(cuLaunchGridAsync, "cuLaunchGridAsync", 2000, false, K_GRIDASYNC, NULL),
    V(cuLaunchCooperativeKernelMultiDevice, "cuLaunchCooperativeKernelMultiDevice", 9000, false,
      K_COOPMULTI, NULL),
    V(cuInit, "cuInit", 12000, false, K_SYNC, NULL),
    V(cuDeviceGetCount, "cuDeviceGetCount", 12000, false, K_SYNC, NULL),
    V(cuGetProcAddress_v2, "cuGetProcAddress", 12000, false, K_SYNC, NULL),
    V(cuMemcpyHtoD_v2, "cuMemcpyHtoD", 12000, false, K_SYNC, NULL),
};
#define NVARIANTS (sizeof variants / sizeof *variants)

static const char *prefix = "";
static CUdevice dev;
static CUcontext ctx;
static CUmemoryPool own_pool; /* made by pool_new; NULL: the device's default pool */

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s", prefix);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
}

static const struct variant *find_variant(const char *symbol)
{
    for (size_t i = 0; i < NVARIANTS; i++) {
        if (strcmp(variants[i].symbol, symbol) == 0)
            return &variants[i];
    }
    return NULL;
}

/* The function for v through route, or NULL (route unknown, or lookup failed). */
static void *resolve(const struct variant *v, const char *route)
{
    void *fn = NULL;
    if (strcmp(route, "direct") == 0)
        return v->direct;
    if (strcmp(route, "dlsym") == 0) {
        void *h = dlopen("libcuda.so.1", RTLD_LAZY);
        return h ? dlsym(h, v->symbol) : NULL;
    }
    if (strcmp(route, "default") == 0)
        return dlsym(RTLD_DEFAULT, v->symbol);
    if (strcmp(route, "next") == 0)
        return dlsym(RTLD_NEXT, v->symbol);
    if (strcmp(route, "dlvsym") == 0)
        return dlvsym(RTLD_DEFAULT, v->symbol, "QVGPU_ANY");
    cuuint64_t flags =
        v->ptsz ? CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM : CU_GET_PROC_ADDRESS_LEGACY_STREAM;
    if (strcmp(route, "procaddr") == 0) {
        CUdriverProcAddressQueryResult st;
        if (cuGetProcAddress_v2(v->name, &fn, v->version, flags, &st) != CUDA_SUCCESS)
            return NULL;
        return fn;
    }
    if (strcmp(route, "procaddrmax") == 0) {
        /* as a program built against a toolkit newer than the shim's asks */
        CUdriverProcAddressQueryResult st;
        if (cuGetProcAddress_v2(v->name, &fn, 99999, flags, &st) != CUDA_SUCCESS)
            return NULL;
        return fn;
    }
    if (strcmp(route, "procaddr1") == 0) {
        if (cuGetProcAddress(v->name, &fn, v->version, flags) != CUDA_SUCCESS)
            return NULL;
        return fn;
    }
    return NULL;
}

/* ---- allocations ----------------------------------------------------------------------- */

/* The static copy of a route's name, which outlives the command line it came from. */
static const char *known_route(const char *route)
{
    static const char *const routes[] = {"direct", "dlsym",    "default",     "next",
                                         "dlvsym", "procaddr", "procaddrmax", "procaddr1"};
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
        if (strcmp(routes[i], route) == 0)
            return routes[i];
    }
    return "unknown";
}

struct alloc {
    const struct variant *v; /* how it was made */
    const char *route;       /* through which route (static: known_route()) */
    uint64_t handle;         /* pointer, array or VMM handle */
    CUstream stream;         /* for stream-ordered ones */
};
static struct alloc allocs[4096];
static int nallocs;

static CUstream stream_for(const struct variant *v)
{
    (void)v;
    return NULL; /* the default stream: legacy or per-thread by the variant itself */
}

static CUresult do_alloc(const struct variant *v, void *fn, uint64_t bytes, uint64_t *handle)
{
    CUresult rc;
    switch (v->kind) {
    case K_ALLOC: {
        CUdeviceptr p = 0;
        rc = ((CUresult(*)(CUdeviceptr *, size_t))fn)(&p, bytes);
        *handle = p;
        return rc;
    }
    case K_ALLOC1: {
        CUdeviceptr_v1 p = 0;
        rc = ((CUresult(*)(CUdeviceptr_v1 *, unsigned int))fn)(&p, (unsigned int)bytes);
        *handle = p;
        return rc;
    }
    case K_PITCH: {
        CUdeviceptr p = 0;
        size_t pitch = 0;
        rc = ((CUresult(*)(CUdeviceptr *, size_t *, size_t, size_t, unsigned int))fn)(
            &p, &pitch, 4000, bytes / 4096, 4);
        *handle = p;
        return rc;
    }
    case K_PITCH1: {
        CUdeviceptr_v1 p = 0;
        unsigned int pitch = 0;
        rc = ((CUresult(*)(CUdeviceptr_v1 *, unsigned int *, unsigned int, unsigned int,
                           unsigned int))fn)(&p, &pitch, 4000, (unsigned int)(bytes / 4096), 4);
        *handle = p;
        return rc;
    }
    case K_MANAGED: {
        CUdeviceptr p = 0;
        rc =
            ((CUresult(*)(CUdeviceptr *, size_t, unsigned int))fn)(&p, bytes, CU_MEM_ATTACH_GLOBAL);
        *handle = p;
        return rc;
    }
    case K_ASYNC: {
        CUdeviceptr p = 0;
        rc = ((CUresult(*)(CUdeviceptr *, size_t, CUstream))fn)(&p, bytes, stream_for(v));
        *handle = p;
        return rc;
    }
    case K_POOL: {
        CUdeviceptr p = 0;
        CUmemoryPool pool = own_pool;
        if (!pool && (rc = cuDeviceGetDefaultMemPool(&pool, dev)) != CUDA_SUCCESS)
            return rc;
        rc = ((CUresult(*)(CUdeviceptr *, size_t, CUmemoryPool, CUstream))fn)(&p, bytes, pool,
                                                                              stream_for(v));
        *handle = p;
        return rc;
    }
    case K_VMM: {
        CUmemAllocationProp prop = {.type = CU_MEM_ALLOCATION_TYPE_PINNED,
                                    .location = {CU_MEM_LOCATION_TYPE_DEVICE, dev}};
        size_t g = 1;
        if ((rc = cuMemGetAllocationGranularity(&g, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM)))
            return rc;
        CUmemGenericAllocationHandle h = 0;
        rc = ((CUresult(*)(CUmemGenericAllocationHandle *, size_t, const CUmemAllocationProp *,
                           unsigned long long))fn)(&h, (bytes + g - 1) / g * g, &prop, 0);
        *handle = h;
        return rc;
    }
    case K_ARRAY: {
        /* float4 rows of 4096 texels: 64 KiB each */
        CUDA_ARRAY_DESCRIPTOR d = {4096, bytes / 65536, CU_AD_FORMAT_FLOAT, 4};
        CUarray a = NULL;
        rc = ((CUresult(*)(CUarray *, const CUDA_ARRAY_DESCRIPTOR *))fn)(&a, &d);
        *handle = (uint64_t)(uintptr_t)a;
        return rc;
    }
    case K_ARRAY1: {
        CUDA_ARRAY_DESCRIPTOR_v1 d = {4096, (unsigned int)(bytes / 65536), CU_AD_FORMAT_FLOAT, 4};
        CUarray a = NULL;
        rc = ((CUresult(*)(CUarray *, const CUDA_ARRAY_DESCRIPTOR_v1 *))fn)(&a, &d);
        *handle = (uint64_t)(uintptr_t)a;
        return rc;
    }
    case K_ARRAY3D:
    case K_MIPMAP: {
        CUDA_ARRAY3D_DESCRIPTOR d = {4096, 16, bytes / (65536 * 16), CU_AD_FORMAT_FLOAT, 4, 0};
        if (v->kind == K_MIPMAP) {
            CUmipmappedArray m = NULL;
            d.Height = bytes / 65536;
            d.Depth = 0;
            rc = ((CUresult(*)(CUmipmappedArray *, const CUDA_ARRAY3D_DESCRIPTOR *,
                               unsigned int))fn)(&m, &d, 1);
            *handle = (uint64_t)(uintptr_t)m;
            return rc;
        }
        CUarray a = NULL;
        rc = ((CUresult(*)(CUarray *, const CUDA_ARRAY3D_DESCRIPTOR *))fn)(&a, &d);
        *handle = (uint64_t)(uintptr_t)a;
        return rc;
    }
    case K_ARRAY3D1: {
        CUDA_ARRAY3D_DESCRIPTOR_v1 d = {
            4096, 16, (unsigned int)(bytes / (65536 * 16)), CU_AD_FORMAT_FLOAT, 4, 0};
        CUarray a = NULL;
        rc = ((CUresult(*)(CUarray *, const CUDA_ARRAY3D_DESCRIPTOR_v1 *))fn)(&a, &d);
        *handle = (uint64_t)(uintptr_t)a;
        return rc;
    }
    default:
        return CUDA_ERROR_INVALID_VALUE;
    }
}

static CUresult do_free(const struct alloc *a)
{
    const struct variant *fv = find_variant(a->v->free_symbol);
    void *fn = fv ? resolve(fv, a->route) : NULL;
    if (!fn)
        return CUDA_ERROR_NOT_FOUND;
    switch (fv->kind) {
    case K_FREE:
        return ((CUresult(*)(CUdeviceptr))fn)(a->handle);
    case K_FREE1:
        return ((CUresult(*)(CUdeviceptr_v1))fn)((CUdeviceptr_v1)a->handle);
    case K_FREEASYNC: {
        CUresult rc = ((CUresult(*)(CUdeviceptr, CUstream))fn)(a->handle, a->stream);
        const struct variant *sv =
            find_variant(fv->ptsz ? "cuStreamSynchronize_ptsz" : "cuStreamSynchronize");
        void *sync = resolve(sv, a->route);
        CUresult rc2 = sync ? ((CUresult(*)(CUstream))sync)(a->stream) : CUDA_ERROR_NOT_FOUND;
        return rc ? rc : rc2;
    }
    case K_RELEASE:
        return ((CUresult(*)(CUmemGenericAllocationHandle))fn)(a->handle);
    case K_ARRAYDESTROY:
        return ((CUresult(*)(CUarray))fn)((CUarray)(uintptr_t)a->handle);
    case K_MIPDESTROY:
        return ((CUresult(*)(CUmipmappedArray))fn)((CUmipmappedArray)(uintptr_t)a->handle);
    default:
        return CUDA_ERROR_INVALID_VALUE;
    }
}

/* ---- commands ------------------------------------------------------------------------- */

static uint64_t parse_bytes(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (*end == 'K')
        v *= 1024;
    else if (*end == 'M')
        v *= 1024 * 1024;
    else if (*end == 'G')
        v *= 1024.0 * 1024 * 1024;
    return (uint64_t)v;
}

/* cuInit, then device 0's primary context made current. */
static CUresult init_context(void)
{
    CUresult rc = cuInit(0);
    if (rc == CUDA_SUCCESS)
        rc = cuDeviceGet(&dev, 0);
    if (rc == CUDA_SUCCESS)
        rc = cuDevicePrimaryCtxRetain(&ctx, dev);
    if (rc == CUDA_SUCCESS)
        rc = cuCtxSetCurrent(ctx);
    return rc;
}

static void cmd_init(void)
{
    out("init %d", init_context());
}

static void uuid_str(CUdevice d, char *s, size_t cap)
{
    CUuuid u;
    if (cuDeviceGetUuid_v2(&u, d) != CUDA_SUCCESS) {
        snprintf(s, cap, "-");
        return;
    }
    const unsigned char *b = (const unsigned char *)u.bytes;
    snprintf(s, cap, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

static void cmd_alloc(char *arg)
{
    char *sym = strtok(arg, ":"), *route = strtok(NULL, ":"), *bytes = strtok(NULL, ":");
    const struct variant *v = sym ? find_variant(sym) : NULL;
    if (!v || !route || !bytes) {
        out("alloc %s ? %d", sym ? sym : "?", CUDA_ERROR_INVALID_VALUE);
        return;
    }
    void *fn = resolve(v, route);
    uint64_t h = 0;
    CUresult rc = fn ? do_alloc(v, fn, parse_bytes(bytes), &h) : CUDA_ERROR_NOT_FOUND;
    if (rc == CUDA_SUCCESS && nallocs < (int)(sizeof allocs / sizeof *allocs))
        allocs[nallocs++] = (struct alloc){v, known_route(route), h, stream_for(v)};
    out("alloc %s %s %d", sym, route, rc);
}

static void cmd_alloc_retry(char *arg)
{
    char *sym = strtok(arg, ":"), *route = strtok(NULL, ":"), *bytes = strtok(NULL, ":");
    char *ms = strtok(NULL, ":");
    const struct variant *v = sym ? find_variant(sym) : NULL;
    if (!v || !route || !bytes || !ms) {
        out("alloc %s ? %d 0", sym ? sym : "?", CUDA_ERROR_INVALID_VALUE);
        return;
    }
    void *fn = resolve(v, route);
    struct timespec start, now, pause = {0, 10000000};
    clock_gettime(CLOCK_MONOTONIC, &start);
    CUresult rc = CUDA_ERROR_NOT_FOUND;
    int tries = 0;
    for (;;) {
        uint64_t h = 0;
        tries++;
        rc = fn ? do_alloc(v, fn, parse_bytes(bytes), &h) : CUDA_ERROR_NOT_FOUND;
        if (rc == CUDA_SUCCESS) {
            allocs[nallocs++] = (struct alloc){v, known_route(route), h, stream_for(v)};
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (elapsed >= atol(ms))
            break;
        nanosleep(&pause, NULL);
    }
    out("alloc %s %s %d %d", sym, route, rc, tries);
}

/* Mappings made by `map`, newest last. */
static struct mapping {
    CUdeviceptr va;
    size_t size;
} maps[64];
static int nmaps;

static void cmd_map(const char *bytes)
{
    size_t size = parse_bytes(bytes);
    CUresult rc = CUDA_ERROR_INVALID_VALUE;
    CUdeviceptr va = 0;
    if (nallocs > 0 && allocs[nallocs - 1].v->kind == K_VMM && nmaps < 64 &&
        (rc = cuMemAddressReserve(&va, size, 0, 0, 0)) == CUDA_SUCCESS) {
        rc = cuMemMap(va, size, 0, allocs[nallocs - 1].handle, 0);
        if (rc == CUDA_SUCCESS)
            maps[nmaps++] = (struct mapping){va, size};
        else
            cuMemAddressFree(va, size);
    }
    out("map %d", rc);
}

static void cmd_unmap(void)
{
    CUresult rc = CUDA_ERROR_INVALID_VALUE;
    if (nmaps > 0) {
        struct mapping m = maps[--nmaps];
        rc = cuMemUnmap(m.va, m.size);
        if (rc == CUDA_SUCCESS)
            rc = cuMemAddressFree(m.va, m.size);
    }
    out("unmap %d", rc);
}

static void cmd_free(void)
{
    if (nallocs == 0) {
        out("free %d", CUDA_ERROR_INVALID_VALUE);
        return;
    }
    out("free %d", do_free(&allocs[--nallocs]));
}

static void cmd_info(const char *route)
{
    if (route && strcmp(route, "v1") == 0) {
        unsigned int f = 0, t = 0;
        CUresult rc = cuMemGetInfo(&f, &t);
        out("info %d %u %u", rc, f, t);
        return;
    }
    const struct variant *v = find_variant("cuMemGetInfo_v2");
    void *fn = resolve(v, route ? route : "direct");
    size_t f = 0, t = 0;
    CUresult rc = fn ? ((CUresult(*)(size_t *, size_t *))fn)(&f, &t) : CUDA_ERROR_NOT_FOUND;
    out("info %d %zu %zu", rc, f, t);
}

static void cmd_totalmem(const char *route)
{
    if (route && strcmp(route, "v1") == 0) {
        unsigned int b = 0;
        CUresult rc = cuDeviceTotalMem(&b, dev);
        out("totalmem %d %u", rc, b);
        return;
    }
    const struct variant *v = find_variant("cuDeviceTotalMem_v2");
    void *fn = resolve(v, route ? route : "direct");
    size_t b = 0;
    CUresult rc = fn ? ((CUresult(*)(size_t *, CUdevice))fn)(&b, dev) : CUDA_ERROR_NOT_FOUND;
    out("totalmem %d %zu", rc, b);
}

static void *nvml_lib(void)
{
    static void *h;
    if (!h)
        h = dlopen("libnvidia-ml.so.1", RTLD_LAZY);
    return h;
}

static void cmd_nvml(void)
{
    void *h = nvml_lib();
    if (!h) {
        out("nvml %d", NVML_ERROR_LIBRARY_NOT_FOUND);
        return;
    }
    __typeof__(&nvmlInit_v2) init = dlsym(h, "nvmlInit_v2");
    __typeof__(&nvmlDeviceGetCount_v2) count = dlsym(h, "nvmlDeviceGetCount_v2");
    __typeof__(&nvmlDeviceGetHandleByIndex_v2) by_index = dlsym(h, "nvmlDeviceGetHandleByIndex_v2");
    __typeof__(&nvmlDeviceGetMemoryInfo) mem = dlsym(h, "nvmlDeviceGetMemoryInfo");
    __typeof__(&nvmlDeviceGetMemoryInfo_v2) mem2 = dlsym(h, "nvmlDeviceGetMemoryInfo_v2");
    __typeof__(&nvmlDeviceGetUUID) uuid = dlsym(h, "nvmlDeviceGetUUID");
    __typeof__(&nvmlDeviceGetIndex) index = dlsym(h, "nvmlDeviceGetIndex");
    unsigned int n = 0, idx = 99;
    nvmlDevice_t d;
    nvmlMemory_t m = {0};
    nvmlMemory_v2_t m2 = {.version = nvmlMemory_v2};
    char u[NVML_DEVICE_UUID_V2_BUFFER_SIZE] = "-";
    nvmlReturn_t rc = init();
    if (rc == NVML_SUCCESS)
        rc = count(&n);
    if (rc == NVML_SUCCESS && n > 0) {
        rc = by_index(0, &d);
        if (rc == NVML_SUCCESS)
            rc = mem(d, &m);
        if (rc == NVML_SUCCESS)
            rc = mem2(d, &m2);
        if (rc == NVML_SUCCESS)
            rc = uuid(d, u, sizeof u);
        if (rc == NVML_SUCCESS)
            rc = index(d, &idx);
    }
    nvmlDevice_t d1;
    nvmlReturn_t rc1 = n > 0 ? by_index(1, &d1) : NVML_ERROR_INVALID_ARGUMENT;
    out("nvml %d %u %llu %llu %llu %s v2 %llu %llu idx %u second %d", rc, n, m.total, m.used,
        m.free, u, m2.total, m2.used, idx, rc1);
}

static void cmd_nvml_other(const char *uuid_arg)
{
    void *h = nvml_lib();
    __typeof__(&nvmlInit_v2) init = h ? dlsym(h, "nvmlInit_v2") : NULL;
    __typeof__(&nvmlDeviceGetHandleByUUID) by_uuid =
        h ? dlsym(h, "nvmlDeviceGetHandleByUUID") : NULL;
    nvmlDevice_t d;
    if (!init || !by_uuid) {
        out("nvml_other %d", NVML_ERROR_LIBRARY_NOT_FOUND);
        return;
    }
    init();
    out("nvml_other %d", by_uuid(uuid_arg, &d));
}

static CUfunction spin_function(void)
{
    static CUfunction f;
    if (!f) {
        CUmodule mod;
        static const char image[] = "qsim";
        if (cuModuleLoadData(&mod, image) != CUDA_SUCCESS ||
            cuModuleGetFunction(&f, mod, "qsim_spin") != CUDA_SUCCESS)
            f = NULL;
    }
    return f;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void cmd_launch(char *arg)
{
    char *sym = strtok(arg, ":"), *route = strtok(NULL, ":"), *ns_s = strtok(NULL, ":");
    char *timed = strtok(NULL, ":");
    const struct variant *v = sym ? find_variant(sym) : NULL;
    CUfunction f = spin_function();
    if (!v || !route || !ns_s || !f) {
        out("launch %s %s %d", sym ? sym : "?", route ? route : "?",
            f ? CUDA_ERROR_INVALID_VALUE : CUDA_ERROR_NOT_FOUND);
        return;
    }
    void *fn = resolve(v, route);
    unsigned long long ns = strtoull(ns_s, NULL, 10);
    void *params[] = {&ns};
    CUresult rc = CUDA_ERROR_NOT_FOUND;
    uint64_t t0 = now_us(), t1 = 0;
    if (fn && v->kind == K_LAUNCH)
        rc = ((CUresult(*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                           unsigned, CUstream, void **, void **))fn)(f, 1, 1, 1, 1, 1, 1, 0, NULL,
                                                                     params, NULL);
    else if (fn && v->kind == K_COOP)
        rc = ((CUresult(*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                           unsigned, CUstream, void **))fn)(f, 1, 1, 1, 1, 1, 1, 0, NULL, params);
    else if (fn && v->kind == K_LAUNCHEX) {
        CUlaunchConfig cfg = {.gridDimX = 1,
                              .gridDimY = 1,
                              .gridDimZ = 1,
                              .blockDimX = 1,
                              .blockDimY = 1,
                              .blockDimZ = 1};
        rc = ((CUresult(*)(const CUlaunchConfig *, CUfunction, void **, void **))fn)(&cfg, f,
                                                                                     params, NULL);
    } else if (fn && v->kind == K_LAUNCH1) {
        rc = ((CUresult(*)(CUfunction))fn)(f);
    } else if (fn && v->kind == K_GRID) {
        rc = ((CUresult(*)(CUfunction, int, int))fn)(f, 1, 1);
    } else if (fn && v->kind == K_GRIDASYNC) {
        rc = ((CUresult(*)(CUfunction, int, int, CUstream))fn)(f, 1, 1, NULL);
    } else if (fn && v->kind == K_COOPMULTI) {
        CUDA_LAUNCH_PARAMS p = {.function = f,
                                .gridDimX = 1,
                                .gridDimY = 1,
                                .gridDimZ = 1,
                                .blockDimX = 1,
                                .blockDimY = 1,
                                .blockDimZ = 1,
                                .kernelParams = params};
        rc = ((CUresult(*)(CUDA_LAUNCH_PARAMS *, unsigned, unsigned))fn)(&p, 1, 0);
    } else if (fn && v->kind == K_GRAPH) {
        /* A graph of one kernel, captured from a stream as runtimes build them. */
        CUstream st;
        CUgraph g;
        CUgraphExec ge;
        rc = cuStreamCreate(&st, CU_STREAM_NON_BLOCKING);
        if (rc == CUDA_SUCCESS)
            rc = cuStreamBeginCapture_v2(st, CU_STREAM_CAPTURE_MODE_GLOBAL);
        if (rc == CUDA_SUCCESS)
            rc = cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, st, params, NULL);
        if (rc == CUDA_SUCCESS)
            rc = cuStreamEndCapture(st, &g);
        if (rc == CUDA_SUCCESS)
            rc = cuGraphInstantiateWithFlags(&ge, g, 0);
        t0 = now_us();
        if (rc == CUDA_SUCCESS)
            rc = ((CUresult(*)(CUgraphExec, CUstream))fn)(ge, st);
        t1 = now_us();
        if (rc == CUDA_SUCCESS)
            rc = cuStreamSynchronize(st);
    }
    if (!t1)
        t1 = now_us();
    if (rc == CUDA_SUCCESS)
        rc = cuCtxSynchronize();
    uint64_t t2 = now_us();
    if (timed && strcmp(timed, "timed") == 0)
        out("launch %s %s %d %llu %llu", sym, route, rc, (unsigned long long)(t1 - t0),
            (unsigned long long)(t2 - t1));
    else
        out("launch %s %s %d", sym, route, rc);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void cmd_spin(const char *arg)
{
    static uint64_t after[1 << 16];
    unsigned long long ns = 0;
    int depth = 0, ms = 0;
    CUfunction f = spin_function();
    if (sscanf(arg, "%llu:%d:%d", &ns, &depth, &ms) != 3 || depth <= 0 || !f) {
        out("spin 0 0 0 bad");
        return;
    }
    void *params[] = {&ns};
    uint64_t start = now_us(), max_in = 0, kernels = 0;
    size_t rounds = 0;
    while (now_us() - start < (uint64_t)ms * 1000u) {
        uint64_t t1 = 0;
        for (int i = 0; i < depth; i++) {
            uint64_t t0 = now_us();
            if (cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, params, NULL) != CUDA_SUCCESS) {
                out("spin %llu 0 0 failed", (unsigned long long)kernels);
                return;
            }
            t1 = now_us();
            max_in = t1 - t0 > max_in ? t1 - t0 : max_in;
        }
        cuCtxSynchronize();
        if (rounds < sizeof after / sizeof *after)
            after[rounds++] = now_us() - t1;
        kernels += (uint64_t)depth;
    }
    qsort(after, rounds, sizeof *after, cmp_u64);
    out("spin %llu %llu %llu", (unsigned long long)kernels, (unsigned long long)after[rounds / 2],
        (unsigned long long)max_in);
}

static void cmd_churn(const char *arg)
{
    static CUdeviceptr held[4096];
    const char *colon = strchr(arg, ':');
    uint64_t bytes = parse_bytes(arg);
    int ms = colon ? atoi(colon + 1) : 0;
    CUfunction f = spin_function();
    if (!bytes || ms <= 0 || !f) {
        out("churn 0 0 0 0 bad");
        return;
    }
    unsigned long long spin_ns = 100000;
    void *params[] = {&spin_ns};
    long rounds = 0, granted = 0, refused = 0, kernels = 0, failed = 0;
    size_t n = 0;
    uint64_t start = now_us();
    while (now_us() - start < (uint64_t)ms * 1000u) {
        while (n < sizeof held / sizeof *held && cuMemAlloc_v2(&held[n], bytes) == CUDA_SUCCESS) {
            n++;
            granted++;
            if (cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, params, NULL) == CUDA_SUCCESS &&
                cuCtxSynchronize() == CUDA_SUCCESS)
                kernels++;
            else
                failed++;
        }
        refused++;
        size_t kept = 0;
        for (size_t i = 0; i < n; i++) {
            if (i % 2 == 0)
                held[kept++] = held[i];
            else
                cuMemFree_v2(held[i]);
        }
        n = kept;
        rounds++;
        struct timespec pause = {0, 5 * 1000000L}; /* refused: give the others a turn */
        nanosleep(&pause, NULL);
    }
    while (n > 0)
        cuMemFree_v2(held[--n]);
    out("churn %ld %ld %ld %ld %ld", rounds, granted, refused, kernels, failed);
}

/* Which object each route's answer for sym lies in ("-" for none). */
static void cmd_resolve(const char *sym)
{
    static const char *const routes[] = {"direct", "dlsym",    "default",   "next",
                                         "dlvsym", "procaddr", "procaddr1", "procaddrmax"};
    const struct variant *v = find_variant(sym);
    char line[1024];
    int n = snprintf(line, sizeof line, "resolve %s", sym);
    for (size_t i = 0; v && i < sizeof routes / sizeof *routes; i++) {
        void *fn = resolve(v, routes[i]);
        Dl_info info;
        const char *obj = "-";
        if (fn && dladdr(fn, &info) && info.dli_fname) {
            const char *slash = strrchr(info.dli_fname, '/');
            obj = slash ? slash + 1 : info.dli_fname;
        }
        n += snprintf(line + n, sizeof line - (size_t)n, " %s=%s", routes[i], obj);
    }
    out("%s", line);
}

static void cmd_nextsym(const char *name)
{
    void *next = dlsym(RTLD_NEXT, name), *def = dlsym(RTLD_DEFAULT, name);
    Dl_info info;
    const char *obj = "-";
    if (next && dladdr(next, &info) && info.dli_fname) {
        const char *slash = strrchr(info.dli_fname, '/');
        obj = slash ? slash + 1 : info.dli_fname;
    }
    out("nextsym %s %s %s", name, obj, next == def ? "same" : "differs");
}

static void cmd_init_via(const char *route)
{
    void *init = resolve(find_variant("cuInit"), route);
    void *count = resolve(find_variant("cuDeviceGetCount"), route);
    int n = -1;
    CUresult rc = init ? ((CUresult(*)(unsigned int))init)(0) : CUDA_ERROR_NOT_FOUND;
    if (rc == CUDA_SUCCESS)
        rc = count ? ((CUresult(*)(int *))count)(&n) : CUDA_ERROR_NOT_FOUND;
    if (rc == CUDA_SUCCESS)
        rc = cuDeviceGet(&dev, 0);
    if (rc == CUDA_SUCCESS)
        rc = cuDevicePrimaryCtxRetain(&ctx, dev);
    if (rc == CUDA_SUCCESS)
        rc = cuCtxSetCurrent(ctx);
    out("init %d %d", rc, n);
}

static void run(int argc, char **argv);

struct thread_arg {
    char cmd[256];
    int ok;
    long grabbed;
};

static void *thread_main(void *arg)
{
    struct thread_arg *t = arg;
    char *cmd = t->cmd;
    unsigned long long ns;
    int ms;
    if (sscanf(cmd, "spin:%llu:%d", &ns, &ms) == 2) {
        void *params[] = {&ns};
        CUstream s;
        CUfunction f = spin_function();
        cuCtxSetCurrent(ctx);
        t->ok = f && cuStreamCreate(&s, CU_STREAM_NON_BLOCKING) == CUDA_SUCCESS;
        for (uint64_t start = now_us(); t->ok && now_us() - start < (uint64_t)ms * 1000u;
             t->grabbed++)
            t->ok = cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, s, params, NULL) == CUDA_SUCCESS &&
                    cuStreamSynchronize(s) == CUDA_SUCCESS;
    } else if (strcmp(cmd, "init") == 0) {
        CUdevice d;
        CUcontext c;
        t->ok = cuInit(0) == CUDA_SUCCESS && cuDeviceGet(&d, 0) == CUDA_SUCCESS &&
                cuDevicePrimaryCtxRetain(&c, d) == CUDA_SUCCESS &&
                cuCtxSetCurrent(c) == CUDA_SUCCESS;
    } else if (strncmp(cmd, "alloc_free:", 11) == 0) {
        CUdeviceptr p;
        CUdevice d;
        CUcontext c;
        uint64_t bytes = parse_bytes(cmd + 11);
        t->ok = cuInit(0) == CUDA_SUCCESS && cuDeviceGet(&d, 0) == CUDA_SUCCESS &&
                cuDevicePrimaryCtxRetain(&c, d) == CUDA_SUCCESS &&
                cuCtxSetCurrent(c) == CUDA_SUCCESS;
        for (int i = 0; t->ok && i < 200; i++)
            t->ok = cuMemAlloc_v2(&p, bytes) == CUDA_SUCCESS && cuMemFree_v2(p) == CUDA_SUCCESS;
    } else if (strncmp(cmd, "grab:", 5) == 0) {
        CUdeviceptr p;
        uint64_t bytes = parse_bytes(cmd + 5);
        CUresult rc;
        cuCtxSetCurrent(ctx);
        while ((rc = cuMemAlloc_v2(&p, bytes)) == CUDA_SUCCESS)
            t->grabbed++;
        t->ok = rc == CUDA_ERROR_OUT_OF_MEMORY;
    }
    return NULL;
}

/* getenv_race: readers of CUDA_VISIBLE_DEVICES while the main thread initialises. */
static atomic_int race_stop;
static atomic_long race_bad;

static void *read_visible(void *arg)
{
    (void)arg;
    while (!atomic_load(&race_stop)) {
        const char *v = getenv("CUDA_VISIBLE_DEVICES");
        /* whole values only: the workload's "0" or a GPU's UUID */
        if (v && strcmp(v, "0") != 0 && !(strncmp(v, "GPU-", 4) == 0 && strlen(v) == 40))
            atomic_fetch_add(&race_bad, 1);
    }
    return NULL;
}

static void cmd_getenv_race(const char *arg)
{
    int n = atoi(arg);
    pthread_t th[64];
    if (n <= 0 || n > 64) {
        out("getenv_race %d -1", CUDA_ERROR_INVALID_VALUE);
        return;
    }
    for (int i = 0; i < n; i++)
        pthread_create(&th[i], NULL, read_visible, NULL);
    CUresult rc = init_context();
    atomic_store(&race_stop, 1);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    out("getenv_race %d %ld", rc, atomic_load(&race_bad));
}

static void cmd_threads(char *arg)
{
    int n = atoi(arg);
    char *cmd = strchr(arg, ':');
    if (n <= 0 || n > 64 || !cmd) {
        out("threads 0 0");
        return;
    }
    pthread_t th[64];
    struct thread_arg ta[64];
    if (strncmp(cmd + 1, "spin:", 5) == 0)
        spin_function(); /* loaded once, before the threads race for it */
    for (int i = 0; i < n; i++) {
        snprintf(ta[i].cmd, sizeof ta[i].cmd, "%s", cmd + 1);
        ta[i].ok = 0;
        ta[i].grabbed = 0;
        pthread_create(&th[i], NULL, thread_main, &ta[i]);
    }
    int ok = 0;
    long grabbed = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        ok += ta[i].ok;
        grabbed += ta[i].grabbed;
    }
    out("threads %d %d %ld", ok, n - ok, grabbed);
}

static void *launch_main(void *arg)
{
    (void)arg;
    unsigned long long ns = 1000000;
    void *params[] = {&ns};
    cuCtxSetCurrent(ctx);
    cuLaunchKernel(spin_function(), 1, 1, 1, 1, 1, 1, 0, NULL, params, NULL);
    for (;;)
        pause(); /* a cancellation point: the cancel lands here if not before */
    return NULL;
}

static void cmd_cancel_wait(const char *arg)
{
    unsigned long long ns = 1000000;
    void *params[] = {&ns};
    CUfunction f = spin_function();
    pthread_t t;
    if (!f || pthread_create(&t, NULL, launch_main, NULL) != 0) {
        out("cancel_wait %d", CUDA_ERROR_NOT_FOUND);
        return;
    }
    struct timespec ts = {atoi(arg) / 1000, (long)(atoi(arg) % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    pthread_cancel(t);
    pthread_join(t, NULL);
    CUresult rc = cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, params, NULL);
    out("cancel_wait %d", rc == CUDA_SUCCESS ? cuCtxSynchronize() : rc);
}

static void *alloc_main(void *arg)
{
    CUdeviceptr p;
    cuCtxSetCurrent(ctx);
    cuMemAlloc_v2(&p, *(const uint64_t *)arg);
    for (;;)
        pause(); /* a cancellation point: the cancel lands here if not before */
    return NULL;
}

static void cmd_cancel_alloc(const char *arg)
{
    int ms = 0;
    char size[64];
    static uint64_t bytes;
    pthread_t t;
    if (sscanf(arg, "%d:%63s", &ms, size) != 2) {
        out("cancel_alloc %d", CUDA_ERROR_INVALID_VALUE);
        return;
    }
    bytes = parse_bytes(size);
    if (pthread_create(&t, NULL, alloc_main, &bytes) != 0) {
        out("cancel_alloc %d", CUDA_ERROR_NOT_FOUND);
        return;
    }
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    pthread_cancel(t);
    pthread_join(t, NULL);
    CUdeviceptr p;
    out("cancel_alloc %d", cuMemAlloc_v2(&p, bytes));
}

static void *busy_main(void *arg)
{
    uint64_t bytes = *(const uint64_t *)arg;
    unsigned long long ns = 100000;
    void *params[] = {&ns};
    CUfunction f = spin_function();
    cuCtxSetCurrent(ctx);
    for (;;) {
        CUdeviceptr p;
        if (cuMemAlloc_v2(&p, bytes) == CUDA_SUCCESS)
            cuMemFree_v2(p);
        if (f)
            cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, params, NULL);
    }
    return NULL;
}

static void cmd_exit_busy(const char *arg)
{
    int n = 0, ms = 0;
    static uint64_t bytes;
    char size[64];
    if (sscanf(arg, "%d:%63[^:]:%d", &n, size, &ms) != 3 || n <= 0 || n > 64) {
        out("exit_busy bad");
        return;
    }
    bytes = parse_bytes(size);
    spin_function(); /* loaded once, before the threads race for it */
    for (int i = 0; i < n; i++) {
        pthread_t t;
        pthread_create(&t, NULL, busy_main, &bytes);
    }
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    out("exit_busy");
    exit(0);
}

static void cmd_fork_errno(void)
{
    fflush(stdout);
    errno = EXDEV;
    pid_t pid = fork();
    int e = errno;
    if (pid == 0) {
        printf("[child] fork_errno %d\n", e);
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    out("fork_errno %d", e);
}

static const char *self_path;

static void cmd_fork(int argc, char **argv, int n, bool exec_it)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (exec_it) {
            char **args = calloc((size_t)n + 2, sizeof *args);
            args[0] = (char *)self_path;
            for (int i = 0; i < n && i < argc; i++)
                args[i + 1] = argv[i];
            execv(self_path, args);
            _exit(127);
        }
        prefix = "[child] ";
        nallocs = 0;
        run(n < argc ? n : argc, argv);
        exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    out("%s %d", exec_it ? "exec" : "fork", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

static void run(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s", argv[i]);
        char *arg = strchr(buf, ':');
        if (arg)
            *arg++ = '\0';
        const char *cmd = buf;
        if (strcmp(cmd, "init") == 0) {
            cmd_init();
        } else if (strcmp(cmd, "count") == 0) {
            int n = -1;
            CUresult rc = cuDeviceGetCount(&n);
            out("count %d %d", rc, n);
        } else if (strcmp(cmd, "devices") == 0) {
            for (int o = 0; o < 4; o++) {
                CUdevice d;
                char u[64] = "-";
                CUresult rc = cuDeviceGet(&d, o);
                if (rc == CUDA_SUCCESS)
                    uuid_str(d, u, sizeof u);
                out("dev %d %d %s", o, rc, u);
            }
        } else if (strcmp(cmd, "alloc") == 0 && arg) {
            cmd_alloc(arg);
        } else if (strcmp(cmd, "alloc_retry") == 0 && arg) {
            cmd_alloc_retry(arg);
        } else if (strcmp(cmd, "reset") == 0) {
            CUresult rc = cuDevicePrimaryCtxReset_v2(dev);
            if (rc == CUDA_SUCCESS)
                rc = cuDevicePrimaryCtxRetain(&ctx, dev);
            if (rc == CUDA_SUCCESS)
                rc = cuCtxSetCurrent(ctx);
            nallocs = 0;
            out("reset %d", rc);
        } else if (strcmp(cmd, "free") == 0) {
            cmd_free();
        } else if (strcmp(cmd, "pool_new") == 0) {
            CUmemPoolProps props = {.allocType = CU_MEM_ALLOCATION_TYPE_PINNED,
                                    .location = {CU_MEM_LOCATION_TYPE_DEVICE, dev}};
            out("pool_new %d", cuMemPoolCreate(&own_pool, &props));
        } else if (strcmp(cmd, "pool_destroy") == 0) {
            out("pool_destroy %d", cuMemPoolDestroy(own_pool));
            own_pool = NULL;
        } else if (strcmp(cmd, "map") == 0 && arg) {
            cmd_map(arg);
        } else if (strcmp(cmd, "unmap") == 0) {
            cmd_unmap();
        } else if (strcmp(cmd, "freeall") == 0) {
            int n = 0;
            while (nallocs > 0 && do_free(&allocs[--nallocs]) == CUDA_SUCCESS)
                n++;
            out("freeall %d", n);
        } else if (strcmp(cmd, "free_async") == 0) {
            CUresult rc = CUDA_ERROR_INVALID_VALUE;
            if (nallocs > 0 && allocs[nallocs - 1].v->kind != K_VMM) {
                struct alloc *a = &allocs[--nallocs];
                rc = cuMemFreeAsync(a->handle, a->stream);
            }
            out("free_async %d", rc);
        } else if (strcmp(cmd, "pool_keep") == 0 && arg) {
            CUmemoryPool pool;
            cuuint64_t keep = parse_bytes(arg);
            CUresult rc = cuDeviceGetDefaultMemPool(&pool, dev);
            if (rc == CUDA_SUCCESS)
                rc = cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &keep);
            out("pool_keep %d", rc);
        } else if (strcmp(cmd, "pool_trim") == 0 && arg) {
            CUmemoryPool pool;
            CUresult rc = cuDeviceGetDefaultMemPool(&pool, dev);
            if (rc == CUDA_SUCCESS)
                rc = cuMemPoolTrimTo(pool, parse_bytes(arg));
            out("pool_trim %d", rc);
        } else if (strcmp(cmd, "grab") == 0 && arg) {
            uint64_t bytes = parse_bytes(arg);
            int n = 0;
            CUdeviceptr p;
            while (n < 100000 && cuMemAlloc_v2(&p, bytes) == CUDA_SUCCESS)
                n++;
            out("grab %d", n);
        } else if (strcmp(cmd, "churn") == 0 && arg) {
            cmd_churn(arg);
        } else if (strcmp(cmd, "info") == 0) {
            cmd_info(arg);
        } else if (strcmp(cmd, "totalmem") == 0) {
            cmd_totalmem(arg);
        } else if (strcmp(cmd, "nvml") == 0) {
            cmd_nvml();
        } else if (strcmp(cmd, "nvml_other") == 0 && arg) {
            cmd_nvml_other(arg);
        } else if (strcmp(cmd, "launch") == 0 && arg) {
            cmd_launch(arg);
        } else if (strcmp(cmd, "spin") == 0 && arg) {
            cmd_spin(arg);
        } else if (strcmp(cmd, "fork_errno") == 0) {
            cmd_fork_errno();
        } else if (strcmp(cmd, "exit_busy") == 0 && arg) {
            cmd_exit_busy(arg);
        } else if (strcmp(cmd, "resolve") == 0 && arg) {
            cmd_resolve(arg);
        } else if (strcmp(cmd, "nextsym") == 0 && arg) {
            cmd_nextsym(arg);
        } else if (strcmp(cmd, "init_via") == 0 && arg) {
            cmd_init_via(arg);
        } else if (strcmp(cmd, "sync") == 0) {
            out("sync %d", cuCtxSynchronize());
        } else if (strcmp(cmd, "sleep") == 0 && arg) {
            struct timespec ts = {atoi(arg) / 1000, (long)(atoi(arg) % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            out("sleep");
        } else if (strcmp(cmd, "await") == 0 && arg && strrchr(arg, ':')) {
            char *ms = strrchr(arg, ':');
            *ms++ = '\0';
            int left = atoi(ms);
            while (access(arg, F_OK) != 0 && left > 0) {
                struct timespec ts = {0, 10000000L};
                nanosleep(&ts, NULL);
                left -= 10;
            }
            out("await %d", access(arg, F_OK) == 0);
        } else if (strcmp(cmd, "ready") == 0) {
            out("ready");
        } else if (strcmp(cmd, "hold") == 0) {
            out("ready");
            for (;;)
                pause();
        } else if (strcmp(cmd, "getenv_race") == 0 && arg) {
            cmd_getenv_race(arg);
        } else if (strcmp(cmd, "unsetenv") == 0 && arg) {
            unsetenv(arg);
            out("unsetenv");
        } else if (strcmp(cmd, "setenv") == 0 && arg && strchr(arg, '=')) {
            char *eq = strchr(arg, '=');
            *eq = '\0';
            setenv(arg, eq + 1, 1);
            out("setenv");
        } else if ((strcmp(cmd, "fork") == 0 || strcmp(cmd, "exec") == 0) && arg) {
            int n = atoi(arg);
            cmd_fork(argc - i - 1, argv + i + 1, n, strcmp(cmd, "exec") == 0);
            i += n;
        } else if (strcmp(cmd, "threads") == 0 && arg) {
            cmd_threads(arg);
        } else if (strcmp(cmd, "cancel_alloc") == 0 && arg) {
            cmd_cancel_alloc(arg);
        } else if (strcmp(cmd, "cancel_wait") == 0 && arg) {
            cmd_cancel_wait(arg);
        } else {
            fprintf(stderr, "shim_work: unknown command '%s'\n", argv[i]);
            exit(2);
        }
    }
}

/* With SHIM_WORK_PREINIT_ALLOC=BYTES, allocates BYTES before any library's constructor
 * runs (the shim's included), as a library initialised before the shim would: prints
 * "preinit <rc>" and keeps the allocation, made in device 0's primary context. */
static void preinit_alloc(int argc, char **argv, char **envp)
{
    (void)argc;
    (void)argv;
    const char *bytes = NULL;
    for (char **e = envp; e && *e && !bytes; e++) {
        if (strncmp(*e, "SHIM_WORK_PREINIT_ALLOC=", 24) == 0)
            bytes = *e + 24;
    }
    if (!bytes)
        return;
    environ = envp; /* as libc has set it by the time any library's constructor runs */
    CUdeviceptr p = 0;
    CUresult rc = init_context();
    if (rc == CUDA_SUCCESS)
        rc = cuMemAlloc_v2(&p, parse_bytes(bytes));
    char line[64];
    int n = snprintf(line, sizeof line, "preinit %d\n", rc);
    if (write(1, line, (size_t)n) < 0)
        _exit(3);
}
/* environ is not set yet: the loader hands preinit functions the environment. */
__attribute__((section(".preinit_array"),
               used)) static void (*const preinit)(int, char **, char **) = preinit_alloc;

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    self_path = argv[0];
    run(argc - 1, argv + 1);
    return 0;
}
