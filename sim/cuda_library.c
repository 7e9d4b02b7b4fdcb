/* cuda_library.c - context-independent libraries and their kernels (cuLibrary*,
 * cuKernel*), which the CUDA runtime loads its fatbins with since CUDA 12.
 *
 * A library is loaded once and used in any context: each context that needs one of its
 * kernels gets a module of its own, made on first need (the real driver's lazy
 * loading; the simulator's modules cost nothing, so eager loading is no different to
 * observe). Images are opaque, as for modules: any name is a kernel, qsim_spin spins.
 * Not simulated: device globals (cuLibraryGetGlobal, cuLibraryGetManaged), kernel
 * counts and parameter layouts, which need the image's contents.
 * Threads: any. Library and kernel objects under qsim_g.lock; they are kept after
 * unload with a cleared magic, so a stale handle is an error, not freed memory. */
#include "sim/cuda_library.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim/cuda_ctx.h"
#include "sim/cuda_exec.h"

struct qsim_kernel {
    uint32_t magic;             /* QSIM_MAGIC_KERNEL while its library is loaded */
    char *name;                 /* owned */
    struct qsim_library *lib;   /* library it belongs to */
    struct qsim_kernel *next;   /* the library's list */
};

/* A library's module in one context. */
struct qsim_libmod {
    struct qsim_ctx *ctx;      /* the context ... */
    unsigned long long ctx_id; /* ... while it has this id (contexts are reused) */
    CUmodule mod;
    struct qsim_libmod *next;
};

struct qsim_library {
    uint32_t magic;             /* QSIM_MAGIC_LIBRARY while loaded */
    struct qsim_kernel *kernels; /* owned: kernels looked up so far */
    struct qsim_libmod *mods;   /* owned: its module in each context that used it */
    struct qsim_library *next;  /* qsim_g.libraries: every library ever loaded */
};

static struct qsim_library *library_of(CUlibrary h)
{
    struct qsim_library *l = (struct qsim_library *)h;
    return l && l->magic == QSIM_MAGIC_LIBRARY ? l : NULL;
}

static struct qsim_kernel *kernel_of(CUkernel h)
{
    struct qsim_kernel *k = (struct qsim_kernel *)h;
    return k && k->magic == QSIM_MAGIC_KERNEL ? k : NULL;
}

bool qsim_kernel_is(CUfunction h)
{
    return kernel_of((CUkernel)h) != NULL;
}

/* ---- loading ----------------------------------------------------------------------- */

/* The options of both loaders: JIT options as cuModuleLoadDataEx takes them (nothing is
 * compiled here), library options known; BINARY_IS_PRESERVED is a hint, but invalid
 * for a file (documented). */
static CUresult check_options(CUjit_option *jit, void **jit_values, unsigned njit,
                              CUlibraryOption *lib, void **lib_values, unsigned nlib, bool file)
{
    (void)jit_values, (void)lib_values;
    if ((njit && !jit) || (nlib && !lib))
        return CUDA_ERROR_INVALID_VALUE;
    for (unsigned i = 0; i < njit; i++)
        if ((unsigned)jit[i] >= CU_JIT_NUM_OPTIONS)
            return CUDA_ERROR_INVALID_VALUE;
    for (unsigned i = 0; i < nlib; i++) {
        if ((unsigned)lib[i] >= CU_LIBRARY_NUM_OPTIONS)
            return CUDA_ERROR_INVALID_VALUE;
        if (file && lib[i] == CU_LIBRARY_BINARY_IS_PRESERVED)
            return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

static CUresult library_new(CUlibrary *out)
{
    struct qsim_library *l = calloc(1, sizeof *l);
    if (!l)
        return CUDA_ERROR_OUT_OF_MEMORY;
    l->magic = QSIM_MAGIC_LIBRARY;
    pthread_mutex_lock(&qsim_g.lock);
    l->next = qsim_g.libraries;
    qsim_g.libraries = l;
    pthread_mutex_unlock(&qsim_g.lock);
    *out = (CUlibrary)l;
    return CUDA_SUCCESS;
}

static CUresult library_load_data(CUlibrary *library, const void *code, CUjit_option *jit,
                                  void **jit_values, unsigned njit, CUlibraryOption *lib,
                                  void **lib_values, unsigned nlib)
{
    if (!library || !code)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = check_options(jit, jit_values, njit, lib, lib_values, nlib, false);
    return rc == CUDA_SUCCESS ? library_new(library) : rc;
}

static CUresult library_load_file(CUlibrary *library, const char *file, CUjit_option *jit,
                                  void **jit_values, unsigned njit, CUlibraryOption *lib,
                                  void **lib_values, unsigned nlib)
{
    if (!library || !file)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = check_options(jit, jit_values, njit, lib, lib_values, nlib, true);
    if (rc != CUDA_SUCCESS)
        return rc;
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return CUDA_ERROR_FILE_NOT_FOUND;
    close(fd);
    return library_new(library);
}

static CUresult library_unload(CUlibrary h)
{
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_library *l = library_of(h);
    if (!l) {
        pthread_mutex_unlock(&qsim_g.lock);
        return CUDA_ERROR_INVALID_HANDLE;
    }
    l->magic = 0;
    for (struct qsim_kernel *k = l->kernels; k; k = k->next)
        k->magic = 0;
    struct qsim_libmod *mods = l->mods;
    l->mods = NULL;
    pthread_mutex_unlock(&qsim_g.lock);
    while (mods) {
        struct qsim_libmod *next = mods->next;
        qsim_module_unload(mods->mod); /* one of a context destroyed since: already invalid */
        free(mods);
        mods = next;
    }
    return CUDA_SUCCESS;
}

/* ---- modules and functions per context --------------------------------------------- */

/* The library's module in ctx, loaded there on first need. */
static CUresult library_module(struct qsim_library *l, struct qsim_ctx *ctx, CUmodule *out)
{
    pthread_mutex_lock(&qsim_g.lock);
    for (struct qsim_libmod *m = l->mods; m; m = m->next) {
        if (m->ctx == ctx && m->ctx_id == ctx->id) {
            *out = m->mod;
            pthread_mutex_unlock(&qsim_g.lock);
            return CUDA_SUCCESS;
        }
    }
    pthread_mutex_unlock(&qsim_g.lock);
    /* Loaded without the lock (loading takes it); a racing thread may load one too, and
     * the loser's module is dropped below. */
    struct qsim_libmod *m = calloc(1, sizeof *m);
    if (!m)
        return CUDA_ERROR_OUT_OF_MEMORY;
    CUresult rc = qsim_module_new(ctx, &m->mod);
    if (rc != CUDA_SUCCESS) {
        free(m);
        return rc;
    }
    m->ctx = ctx;
    m->ctx_id = ctx->id;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_libmod *won = NULL;
    for (struct qsim_libmod *o = l->mods; o && !won; o = o->next)
        if (o->ctx == ctx && o->ctx_id == ctx->id)
            won = o;
    if (!won && l->magic == QSIM_MAGIC_LIBRARY) {
        m->next = l->mods;
        l->mods = m;
    }
    CUmodule mod = won ? won->mod : m->mod;
    bool keep = !won && l->magic == QSIM_MAGIC_LIBRARY;
    pthread_mutex_unlock(&qsim_g.lock);
    if (!keep) {
        qsim_module_unload(m->mod);
        free(m);
        if (!won)
            return CUDA_ERROR_INVALID_HANDLE; /* unloaded meanwhile */
    }
    *out = mod;
    return CUDA_SUCCESS;
}

CUresult qsim_kernel_function(CUfunction h, struct qsim_ctx *ctx, CUfunction *out)
{
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_kernel *k = kernel_of((CUkernel)h);
    struct qsim_library *l = k ? k->lib : NULL;
    const char *name = k ? k->name : NULL; /* kept until the process ends */
    pthread_mutex_unlock(&qsim_g.lock);
    if (!k)
        return CUDA_ERROR_INVALID_HANDLE;
    CUmodule mod;
    CUresult rc = library_module(l, ctx, &mod);
    return rc == CUDA_SUCCESS ? qsim_module_function(out, mod, name) : rc;
}

static CUresult library_get_kernel(CUkernel *out, CUlibrary h, const char *name)
{
    if (!out || !name)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&qsim_g.lock);
    CUresult rc = CUDA_SUCCESS;
    struct qsim_library *l = library_of(h);
    struct qsim_kernel *k = NULL;
    if (!l) {
        rc = CUDA_ERROR_INVALID_HANDLE;
        goto out;
    }
    for (k = l->kernels; k && strcmp(k->name, name) != 0; k = k->next)
        ;
    if (!k) {
        if (!(k = calloc(1, sizeof *k)) || !(k->name = strdup(name))) {
            free(k);
            rc = CUDA_ERROR_OUT_OF_MEMORY;
            goto out;
        }
        k->lib = l;
        k->magic = QSIM_MAGIC_KERNEL;
        k->next = l->kernels;
        l->kernels = k;
    }
    *out = (CUkernel)k;
out:
    pthread_mutex_unlock(&qsim_g.lock);
    return rc;
}

static CUresult library_get_module(CUmodule *out, CUlibrary h)
{
    if (!out)
        return CUDA_ERROR_INVALID_VALUE;
    struct qsim_library *l = library_of(h);
    if (!l)
        return CUDA_ERROR_INVALID_HANDLE;
    struct qsim_ctx *ctx;
    CUresult rc = qsim_ctx_get(&ctx);
    return rc == CUDA_SUCCESS ? library_module(l, ctx, out) : rc;
}

static CUresult kernel_get_function(CUfunction *out, CUkernel h)
{
    if (!out)
        return CUDA_ERROR_INVALID_VALUE;
    if (!kernel_of(h))
        return CUDA_ERROR_INVALID_HANDLE;
    struct qsim_ctx *ctx;
    CUresult rc = qsim_ctx_get(&ctx);
    return rc == CUDA_SUCCESS ? qsim_kernel_function((CUfunction)h, ctx, out) : rc;
}

/* ---- kernel queries ---------------------------------------------------------------- */

static CUresult kernel_get_name(const char **name, CUkernel h)
{
    if (!name || !h)
        return CUDA_ERROR_INVALID_VALUE;
    struct qsim_kernel *k = kernel_of(h);
    if (!k)
        return CUDA_ERROR_INVALID_HANDLE;
    *name = k->name;
    return CUDA_SUCCESS;
}

static CUresult kernel_get_library(CUlibrary *out, CUkernel h)
{
    if (!out)
        return CUDA_ERROR_INVALID_VALUE;
    struct qsim_kernel *k = kernel_of(h);
    if (!k)
        return CUDA_ERROR_INVALID_HANDLE;
    *out = (CUlibrary)k->lib;
    return CUDA_SUCCESS;
}

static CUresult kernel_get_attribute(int *pi, CUfunction_attribute attrib, CUkernel h,
                                     CUdevice dev)
{
    if (!pi)
        return CUDA_ERROR_INVALID_VALUE;
    if (!kernel_of(h))
        return CUDA_ERROR_INVALID_HANDLE;
    CUresult rc = qsim_check_device(dev);
    return rc == CUDA_SUCCESS ? qsim_func_attribute(pi, attrib, dev) : rc;
}

/* Settings the simulated GPU accepts and does not act upon, as for functions. */
static CUresult kernel_accept(CUkernel h, CUdevice dev, bool valid)
{
    if (!kernel_of(h))
        return CUDA_ERROR_INVALID_HANDLE;
    CUresult rc = qsim_check_device(dev);
    return rc == CUDA_SUCCESS && !valid ? CUDA_ERROR_INVALID_VALUE : rc;
}

/* ---- entry points ------------------------------------------------------------------ */

QSIM_API CUresult cuLibraryLoadData(CUlibrary *library, const void *code, CUjit_option *jitOptions,
                                    void **jitOptionsValues, unsigned int numJitOptions,
                                    CUlibraryOption *libraryOptions, void **libraryOptionValues,
                                    unsigned int numLibraryOptions)
{
    QSIM_GUARDED(library_load_data(library, code, jitOptions, jitOptionsValues, numJitOptions,
                                   libraryOptions, libraryOptionValues, numLibraryOptions));
}

QSIM_API CUresult cuLibraryLoadFromFile(CUlibrary *library, const char *fileName,
                                        CUjit_option *jitOptions, void **jitOptionsValues,
                                        unsigned int numJitOptions,
                                        CUlibraryOption *libraryOptions,
                                        void **libraryOptionValues,
                                        unsigned int numLibraryOptions)
{
    QSIM_GUARDED(library_load_file(library, fileName, jitOptions, jitOptionsValues, numJitOptions,
                                   libraryOptions, libraryOptionValues, numLibraryOptions));
}

QSIM_API CUresult cuLibraryUnload(CUlibrary library)
{
    QSIM_GUARDED(library_unload(library));
}

QSIM_API CUresult cuLibraryGetKernel(CUkernel *pKernel, CUlibrary library, const char *name)
{
    QSIM_GUARDED(library_get_kernel(pKernel, library, name));
}

QSIM_API CUresult cuLibraryGetModule(CUmodule *pMod, CUlibrary library)
{
    QSIM_GUARDED(library_get_module(pMod, library));
}

QSIM_API CUresult cuKernelGetFunction(CUfunction *pFunc, CUkernel kernel)
{
    QSIM_GUARDED(kernel_get_function(pFunc, kernel));
}

QSIM_API CUresult cuKernelGetLibrary(CUlibrary *pLib, CUkernel kernel)
{
    QSIM_GUARDED(kernel_get_library(pLib, kernel));
}

QSIM_API CUresult cuKernelGetName(const char **name, CUkernel hfunc)
{
    QSIM_GUARDED(kernel_get_name(name, hfunc));
}

QSIM_API CUresult cuKernelGetAttribute(int *pi, CUfunction_attribute attrib, CUkernel kernel,
                                       CUdevice dev)
{
    QSIM_GUARDED(kernel_get_attribute(pi, attrib, kernel, dev));
}

QSIM_API CUresult cuKernelSetAttribute(CUfunction_attribute attrib, int val, CUkernel kernel,
                                       CUdevice dev)
{
    (void)val;
    QSIM_GUARDED(
        kernel_accept(kernel, dev, (int)attrib >= 0 && attrib < CU_FUNC_ATTRIBUTE_MAX));
}

QSIM_API CUresult cuKernelSetCacheConfig(CUkernel kernel, CUfunc_cache config, CUdevice dev)
{
    QSIM_GUARDED(kernel_accept(kernel, dev,
                               (int)config >= 0 && config <= CU_FUNC_CACHE_PREFER_EQUAL));
}
