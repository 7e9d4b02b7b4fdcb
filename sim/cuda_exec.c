/* cuda_exec.c - modules, functions and kernel launches.
 *
 * Any image loads. cuModuleGetFunction(&f, mod, "qsim_spin") gives a kernel whose one
 * parameter, an unsigned long long, is the number of nanoseconds it occupies its
 * device; any other name gives a kernel that takes no time. Launches also take a
 * library's kernel (CUkernel, cuda_library.c) cast to a CUfunction.
 * Threads: any. Module and function objects under qsim_g.lock; a launch takes no
 * process lock unless its stream is capturing. */
#include "sim/cuda_exec.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim/cuda_ctx.h"
#include "sim/cuda_library.h"
#include "sim/cuda_stream.h"

#define QSIM_SPIN_NAME "qsim_spin"

struct qsim_module {
    uint32_t magic;           /* QSIM_MAGIC_MODULE while loaded */
    struct qsim_ctx *ctx;     /* context it was loaded in */
    struct qsim_func *funcs;  /* owned: functions looked up so far */
    struct qsim_module *next; /* qsim_g.modules: kept after unload, so that stale
                                 handles read as invalid instead of freed memory */
};

struct qsim_func {
    uint32_t magic;          /* QSIM_MAGIC_FUNC while its module is loaded */
    bool spin;               /* qsim_spin: runs for its parameter's nanoseconds */
    char *name;              /* owned */
    struct qsim_module *mod; /* module it belongs to */
    struct qsim_func *next;  /* the module's list */
};

/* ---- modules ----------------------------------------------------------------------- */

CUresult qsim_module_new(struct qsim_ctx *ctx, CUmodule *out)
{
    struct qsim_module *m = calloc(1, sizeof *m);
    if (!m)
        return CUDA_ERROR_OUT_OF_MEMORY;
    m->ctx = ctx;
    m->magic = QSIM_MAGIC_MODULE;
    pthread_mutex_lock(&qsim_g.lock);
    m->next = qsim_g.modules;
    qsim_g.modules = m;
    pthread_mutex_unlock(&qsim_g.lock);
    *out = (CUmodule)m;
    return CUDA_SUCCESS;
}

/* A module in the current context. */
static CUresult module_new(CUmodule *out)
{
    struct qsim_ctx *ctx;
    CUresult rc = qsim_ctx_get(&ctx);
    return rc == CUDA_SUCCESS ? qsim_module_new(ctx, out) : rc;
}

static CUresult module_load_data(CUmodule *module, const void *image)
{
    if (!module || !image)
        return CUDA_ERROR_INVALID_VALUE;
    return module_new(module);
}

QSIM_API CUresult cuModuleLoadData(CUmodule *module, const void *image)
{
    QSIM_GUARDED(module_load_data(module, image));
}

QSIM_API CUresult cuModuleLoadDataEx(CUmodule *module, const void *image, unsigned int numOptions,
                                     CUjit_option *options, void **optionValues)
{
    (void)numOptions, (void)options, (void)optionValues;
    QSIM_GUARDED(module_load_data(module, image));
}

QSIM_API CUresult cuModuleLoadFatBinary(CUmodule *module, const void *fatCubin)
{
    QSIM_GUARDED(module_load_data(module, fatCubin));
}

static CUresult module_load(CUmodule *module, const char *fname)
{
    if (!module || !fname)
        return CUDA_ERROR_INVALID_VALUE;
    int fd = open(fname, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return CUDA_ERROR_FILE_NOT_FOUND;
    close(fd);
    return module_new(module);
}

QSIM_API CUresult cuModuleLoad(CUmodule *module, const char *fname)
{
    QSIM_GUARDED(module_load(module, fname));
}

CUresult qsim_module_unload(CUmodule h)
{
    struct qsim_module *m = (struct qsim_module *)h;
    if (!m || m->magic != QSIM_MAGIC_MODULE)
        return CUDA_ERROR_INVALID_HANDLE;
    pthread_mutex_lock(&qsim_g.lock);
    m->magic = 0;
    /* Function handles stay allocated (cleared) so that a stale one reads as invalid. */
    for (struct qsim_func *f = m->funcs; f; f = f->next)
        f->magic = 0;
    pthread_mutex_unlock(&qsim_g.lock);
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuModuleUnload(CUmodule hmod)
{
    QSIM_GUARDED(qsim_module_unload(hmod));
}

CUresult qsim_module_function(CUfunction *hfunc, CUmodule h, const char *name)
{
    struct qsim_module *m = (struct qsim_module *)h;
    if (!hfunc || !name)
        return CUDA_ERROR_INVALID_VALUE;
    if (!m || m->magic != QSIM_MAGIC_MODULE)
        return CUDA_ERROR_INVALID_HANDLE;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_func *f = m->funcs;
    while (f && strcmp(f->name, name) != 0)
        f = f->next;
    if (!f && (f = calloc(1, sizeof *f)) && !(f->name = strdup(name))) {
        free(f);
        f = NULL;
    } else if (f && !f->mod) {
        f->spin = strcmp(name, QSIM_SPIN_NAME) == 0;
        f->mod = m;
        f->magic = QSIM_MAGIC_FUNC;
        f->next = m->funcs;
        m->funcs = f;
    }
    pthread_mutex_unlock(&qsim_g.lock);
    if (!f)
        return CUDA_ERROR_OUT_OF_MEMORY;
    *hfunc = (CUfunction)f;
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuModuleGetFunction(CUfunction *hfunc, CUmodule hmod, const char *name)
{
    QSIM_GUARDED(qsim_module_function(hfunc, hmod, name));
}

static struct qsim_func *func_of(CUfunction h)
{
    struct qsim_func *f = (struct qsim_func *)h;
    return f && f->magic == QSIM_MAGIC_FUNC ? f : NULL;
}

static CUresult func_get_name(const char **name, CUfunction h)
{
    struct qsim_func *f = func_of(h);
    if (!name)
        return CUDA_ERROR_INVALID_VALUE;
    if (!f)
        return CUDA_ERROR_INVALID_HANDLE;
    *name = f->name;
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuFuncGetName(const char **name, CUfunction hfunc)
{
    QSIM_GUARDED(func_get_name(name, hfunc));
}

CUresult qsim_func_attribute(int *pi, CUfunction_attribute attrib, int ordinal)
{
    const struct qsim_dev *d = qsim_dev_of(ordinal);
    switch (attrib) {
    case CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK:
        *pi = 1024;
        break;
    case CU_FUNC_ATTRIBUTE_NUM_REGS:
        *pi = 16;
        break;
    case CU_FUNC_ATTRIBUTE_PTX_VERSION:
    case CU_FUNC_ATTRIBUTE_BINARY_VERSION:
        *pi = d->cc_major * 10 + d->cc_minor;
        break;
    case CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES:
    case CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES:
    case CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES:
    case CU_FUNC_ATTRIBUTE_CACHE_MODE_CA:
    case CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES:
    case CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT:
        *pi = 0;
        break;
    default:
        if ((int)attrib < 0 || attrib >= CU_FUNC_ATTRIBUTE_MAX)
            return CUDA_ERROR_INVALID_VALUE;
        *pi = 0;
        break;
    }
    return CUDA_SUCCESS;
}

static CUresult func_get_attribute(int *pi, CUfunction_attribute attrib, CUfunction h)
{
    struct qsim_func *f = func_of(h);
    if (!pi)
        return CUDA_ERROR_INVALID_VALUE;
    if (!f)
        return CUDA_ERROR_INVALID_HANDLE;
    return qsim_func_attribute(pi, attrib, f->mod->ctx->ordinal);
}

QSIM_API CUresult cuFuncGetAttribute(int *pi, CUfunction_attribute attrib, CUfunction hfunc)
{
    QSIM_GUARDED(func_get_attribute(pi, attrib, hfunc));
}

/* Settings the simulated GPU accepts and does not act upon. */
static CUresult func_accept(CUfunction h)
{
    return func_of(h) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

QSIM_API CUresult cuFuncSetAttribute(CUfunction hfunc, CUfunction_attribute attrib, int value)
{
    (void)attrib, (void)value;
    QSIM_GUARDED(func_accept(hfunc));
}

QSIM_API CUresult cuFuncSetCacheConfig(CUfunction hfunc, CUfunc_cache config)
{
    (void)config;
    QSIM_GUARDED(func_accept(hfunc));
}

/* ---- launches ---------------------------------------------------------------------- */

/* The qsim_spin parameter, from kernelParams or from an `extra` buffer. */
static CUresult spin_ns(void **params, void **extra, uint64_t *ns)
{
    if (params && extra)
        return CUDA_ERROR_INVALID_VALUE;
    if (params) {
        if (!params[0])
            return CUDA_ERROR_INVALID_VALUE;
        memcpy(ns, params[0], sizeof *ns);
        return CUDA_SUCCESS;
    }
    const void *buf = NULL;
    size_t size = 0;
    for (size_t i = 0; extra && extra[i] != CU_LAUNCH_PARAM_END; i += 2) {
        if (extra[i] == CU_LAUNCH_PARAM_BUFFER_POINTER)
            buf = extra[i + 1];
        else if (extra[i] == CU_LAUNCH_PARAM_BUFFER_SIZE && extra[i + 1])
            size = *(size_t *)extra[i + 1];
        else
            return CUDA_ERROR_INVALID_VALUE;
    }
    if (!buf || size < sizeof *ns)
        return CUDA_ERROR_INVALID_VALUE;
    memcpy(ns, buf, sizeof *ns);
    return CUDA_SUCCESS;
}

/* A launch as every entry point describes it. */
struct launch {
    unsigned grid[3], block[3]; /* dimensions in blocks, in threads */
    unsigned shmem;             /* dynamic shared memory; not simulated */
    CUstream stream;            /* as the caller named it */
    bool cooperative;           /* all blocks must be resident at once */
};

/* h is a function, or a library's kernel (CUkernel) cast to one: that runs as its
 * function in the stream's context, loaded there on first use. */
static CUresult launch(CUfunction h, const struct launch *l, void **params, void **extra,
                       bool per_thread)
{
    struct qsim_func *f = func_of(h);
    if (!f && !qsim_kernel_is(h))
        return CUDA_ERROR_INVALID_HANDLE;
    uint64_t threads = (uint64_t)l->block[0] * l->block[1] * l->block[2];
    uint64_t blocks = (uint64_t)l->grid[0] * l->grid[1] * l->grid[2];
    if (!threads || !blocks || threads > 1024 || l->block[2] > 64 || l->grid[1] > 65535 ||
        l->grid[2] > 65535 || l->grid[0] > 2147483647u)
        return CUDA_ERROR_INVALID_VALUE;
    struct qsim_stream *st;
    CUresult rc = qsim_stream_resolve(l->stream, per_thread, &st);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (!f) {
        CUfunction kf;
        if ((rc = qsim_kernel_function(h, st->ctx, &kf)) != CUDA_SUCCESS)
            return rc;
        f = func_of(kf);
    }
    if (st->ctx != f->mod->ctx)
        return CUDA_ERROR_INVALID_HANDLE; /* a module belongs to one context */
    if (l->cooperative) {
        /* Every block must be resident at once. */
        uint64_t per_sm = 2048 / threads < 32 ? 2048 / threads : 32;
        if (blocks > per_sm * qsim_dev_of(st->ctx->ordinal)->sms)
            return CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE;
    }
    uint64_t ns = 0;
    if (f->spin && (rc = spin_ns(params, extra, &ns)) != CUDA_SUCCESS)
        return rc;
    struct qsim_work w = {.type = QSIM_WORK_KERNEL, .ns = ns};
    return qsim_work_issue(st, &w, NULL);
}

QSIM_API CUresult cuLaunchKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                                 unsigned int gridDimZ, unsigned int blockDimX,
                                 unsigned int blockDimY, unsigned int blockDimZ,
                                 unsigned int sharedMemBytes, CUstream hStream, void **kernelParams,
                                 void **extra)
{
    struct launch l = {{gridDimX, gridDimY, gridDimZ},
                       {blockDimX, blockDimY, blockDimZ},
                       sharedMemBytes,
                       hStream,
                       false};
    QSIM_GUARDED(launch(f, &l, kernelParams, extra, false));
}

QSIM_API CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                                      unsigned int gridDimZ, unsigned int blockDimX,
                                      unsigned int blockDimY, unsigned int blockDimZ,
                                      unsigned int sharedMemBytes, CUstream hStream,
                                      void **kernelParams, void **extra)
{
    struct launch l = {{gridDimX, gridDimY, gridDimZ},
                       {blockDimX, blockDimY, blockDimZ},
                       sharedMemBytes,
                       hStream,
                       false};
    QSIM_GUARDED(launch(f, &l, kernelParams, extra, true));
}

QSIM_API CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned int gridDimX,
                                            unsigned int gridDimY, unsigned int gridDimZ,
                                            unsigned int blockDimX, unsigned int blockDimY,
                                            unsigned int blockDimZ, unsigned int sharedMemBytes,
                                            CUstream hStream, void **kernelParams)
{
    struct launch l = {{gridDimX, gridDimY, gridDimZ},
                       {blockDimX, blockDimY, blockDimZ},
                       sharedMemBytes,
                       hStream,
                       true};
    QSIM_GUARDED(launch(f, &l, kernelParams, NULL, false));
}

QSIM_API CUresult cuLaunchCooperativeKernel_ptsz(CUfunction f, unsigned int gridDimX,
                                                 unsigned int gridDimY, unsigned int gridDimZ,
                                                 unsigned int blockDimX, unsigned int blockDimY,
                                                 unsigned int blockDimZ,
                                                 unsigned int sharedMemBytes, CUstream hStream,
                                                 void **kernelParams)
{
    struct launch l = {{gridDimX, gridDimY, gridDimZ},
                       {blockDimX, blockDimY, blockDimZ},
                       sharedMemBytes,
                       hStream,
                       true};
    QSIM_GUARDED(launch(f, &l, kernelParams, NULL, true));
}

static CUresult launch_ex(const CUlaunchConfig *c, CUfunction f, void **params, void **extra,
                          bool per_thread)
{
    if (!c || (c->numAttrs && !c->attrs))
        return CUDA_ERROR_INVALID_VALUE;
    struct launch l = {{c->gridDimX, c->gridDimY, c->gridDimZ},
                       {c->blockDimX, c->blockDimY, c->blockDimZ},
                       c->sharedMemBytes,
                       c->hStream,
                       false};
    for (unsigned i = 0; i < c->numAttrs; i++)
        if (c->attrs[i].id == CU_LAUNCH_ATTRIBUTE_COOPERATIVE && c->attrs[i].value.cooperative)
            l.cooperative = true;
    return launch(f, &l, params, extra, per_thread);
}

QSIM_API CUresult cuLaunchKernelEx(const CUlaunchConfig *config, CUfunction f, void **kernelParams,
                                   void **extra)
{
    QSIM_GUARDED(launch_ex(config, f, kernelParams, extra, false));
}

QSIM_API CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *config, CUfunction f,
                                        void **kernelParams, void **extra)
{
    QSIM_GUARDED(launch_ex(config, f, kernelParams, extra, true));
}

/* ---- loading mode -------------------------------------------------------------------- */

/* CUDA_MODULE_LOADING, read as the real driver reads it: EAGER or LAZY (the default since
 * CUDA 12.2); anything else is the default. */
static CUresult module_get_loading_mode(CUmoduleLoadingMode *mode)
{
    if (!mode)
        return CUDA_ERROR_INVALID_VALUE;
    const char *v = getenv("CUDA_MODULE_LOADING");
    *mode = v && strcmp(v, "EAGER") == 0 ? CU_MODULE_EAGER_LOADING : CU_MODULE_LAZY_LOADING;
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuModuleGetLoadingMode(CUmoduleLoadingMode *mode)
{
    QSIM_GUARDED(module_get_loading_mode(mode));
}
