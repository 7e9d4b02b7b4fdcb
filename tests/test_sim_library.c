/* test_sim_library.c - context-independent libraries (cuLibrary*, cuKernel*), which the
 * CUDA runtime loads its code with: a library loads without a context, its kernels
 * launch (cast to CUfunction) in whatever context the stream belongs to, each context
 * gets a module of its own, and unloading invalidates every handle. */
#include <criterion/criterion.h>
#include <cuda.h>
#include <stdio.h>
#include <stdlib.h>

#include "tests/sim_support.h"

static const char image[] = "any image: the simulator runs no device code";

Test(sim_library, a_kernel_launches_as_a_function_of_the_current_context)
{
    qt_sim_private(NULL);
    CU_OK(cuInit(0));
    CUlibrary lib;
    CUlibraryOption preserved[] = {CU_LIBRARY_BINARY_IS_PRESERVED};
    void *yes[] = {(void *)1};
    /* No context is needed to load, as the runtime loads before it has one. */
    CU_OK(cuLibraryLoadData(&lib, image, NULL, NULL, 0, preserved, yes, 1));
    CUkernel k, again;
    CU_OK(cuLibraryGetKernel(&k, lib, "qsim_spin"));
    CU_OK(cuLibraryGetKernel(&again, lib, "qsim_spin"));
    cr_assert_eq(k, again, "one handle per name");
    sim_up(0);
    float ms = sim_spin_ms((CUfunction)k, NULL, 20000000ull);
    cr_assert(ms >= 19.99f && ms < 2000.0f, "%f ms", ms);
    /* The kernel's function here is the function of the library's module here. */
    CUfunction f, g;
    CUmodule mod;
    CU_OK(cuKernelGetFunction(&f, k));
    CU_OK(cuLibraryGetModule(&mod, lib));
    CU_OK(cuModuleGetFunction(&g, mod, "qsim_spin"));
    cr_assert_eq(f, g);
    const char *name = NULL;
    CU_OK(cuFuncGetName(&name, f));
    cr_assert_str_eq(name, "qsim_spin");
    ms = sim_spin_ms(f, NULL, 20000000ull);
    cr_assert(ms >= 19.99f, "%f ms", ms);
    CU_OK(cuLibraryUnload(lib));
}

Test(sim_library, each_context_gets_a_module_of_its_own)
{
    qt_sim_private(NULL);
    CU_OK(cuInit(0));
    CUlibrary lib;
    CU_OK(cuLibraryLoadData(&lib, image, NULL, NULL, 0, NULL, NULL, 0));
    CUkernel k;
    CU_OK(cuLibraryGetKernel(&k, lib, "qsim_spin"));
    CUcontext a, b;
    CU_OK(cuCtxCreate(&a, NULL, 0, 0));
    CUfunction fa, fb;
    CU_OK(cuKernelGetFunction(&fa, k));
    CUstream sa;
    CU_OK(cuStreamCreate(&sa, 0));
    CU_OK(cuCtxCreate(&b, NULL, 0, 0));
    CU_OK(cuKernelGetFunction(&fb, k));
    cr_assert_neq(fa, fb);
    /* Launched on a's stream from b, the kernel runs as a's function. */
    float ms = sim_spin_ms((CUfunction)k, sa, 20000000ull);
    cr_assert(ms >= 19.99f, "%f ms", ms);
    /* A function is bound to its context: a's on b's default stream is refused. */
    cr_assert_eq(sim_spin(fa, NULL, 1000), CUDA_ERROR_INVALID_HANDLE);
    /* A context that ends takes its module along; a new one gets a fresh one. */
    CU_OK(cuCtxDestroy(b));
    CU_OK(cuCtxCreate(&b, NULL, 0, 0));
    CUfunction fb2;
    CU_OK(cuKernelGetFunction(&fb2, k));
    CU_OK(sim_spin(fb2, NULL, 1000));
    CU_OK(cuCtxSynchronize());
    CU_OK(cuLibraryUnload(lib));
}

Test(sim_library, unloading_invalidates_the_library_and_its_kernels)
{
    qt_sim_private(NULL);
    sim_up(0);
    CUlibrary lib;
    CU_OK(cuLibraryLoadData(&lib, image, NULL, NULL, 0, NULL, NULL, 0));
    CUkernel k;
    CU_OK(cuLibraryGetKernel(&k, lib, "qsim_spin"));
    CUfunction f;
    CU_OK(cuKernelGetFunction(&f, k));
    CU_OK(cuLibraryUnload(lib));
    cr_assert_eq(cuLibraryUnload(lib), CUDA_ERROR_INVALID_HANDLE);
    cr_assert_eq(cuLibraryGetKernel(&k, lib, "qsim_spin"), CUDA_ERROR_INVALID_HANDLE);
    cr_assert_eq(sim_spin((CUfunction)k, NULL, 1000), CUDA_ERROR_INVALID_HANDLE);
    cr_assert_eq(sim_spin(f, NULL, 1000), CUDA_ERROR_INVALID_HANDLE, "its module went too");
    const char *name;
    cr_assert_eq(cuKernelGetName(&name, k), CUDA_ERROR_INVALID_HANDLE);
    cr_assert_eq(cuKernelGetFunction(&f, k), CUDA_ERROR_INVALID_HANDLE);
}

Test(sim_library, loading_checks_its_arguments)
{
    qt_sim_private(NULL);
    CU_OK(cuInit(0));
    CUlibrary lib;
    cr_assert_eq(cuLibraryLoadData(&lib, NULL, NULL, NULL, 0, NULL, NULL, 0),
                 CUDA_ERROR_INVALID_VALUE);
    cr_assert_eq(cuLibraryLoadData(NULL, image, NULL, NULL, 0, NULL, NULL, 0),
                 CUDA_ERROR_INVALID_VALUE);
    CUlibraryOption bad[] = {CU_LIBRARY_NUM_OPTIONS};
    void *v[] = {NULL};
    cr_assert_eq(cuLibraryLoadData(&lib, image, NULL, NULL, 0, bad, v, 1),
                 CUDA_ERROR_INVALID_VALUE);
    CUjit_option badjit[] = {CU_JIT_NUM_OPTIONS};
    cr_assert_eq(cuLibraryLoadData(&lib, image, badjit, v, 1, NULL, NULL, 0),
                 CUDA_ERROR_INVALID_VALUE);
    cr_assert_eq(cuLibraryLoadFromFile(&lib, "/nonexistent/k.cubin", NULL, NULL, 0, NULL, NULL,
                                       0),
                 CUDA_ERROR_FILE_NOT_FOUND);
    char *dir = qt_tmpdir();
    char path[4096];
    snprintf(path, sizeof path, "%s/k.cubin", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(image, f);
    fclose(f);
    CUlibraryOption preserved[] = {CU_LIBRARY_BINARY_IS_PRESERVED};
    void *yes[] = {(void *)1};
    cr_assert_eq(cuLibraryLoadFromFile(&lib, path, NULL, NULL, 0, preserved, yes, 1),
                 CUDA_ERROR_INVALID_VALUE, "a file's binary is not the caller's to preserve");
    CU_OK(cuLibraryLoadFromFile(&lib, path, NULL, NULL, 0, NULL, NULL, 0));
    CUkernel k;
    cr_assert_eq(cuLibraryGetKernel(&k, lib, NULL), CUDA_ERROR_INVALID_VALUE);
    CU_OK(cuLibraryUnload(lib));
    free(dir);
}

Test(sim_library, kernels_answer_queries_per_device)
{
    qt_sim_private(NULL);
    CU_OK(cuInit(0));
    CUlibrary lib, owner;
    CU_OK(cuLibraryLoadData(&lib, image, NULL, NULL, 0, NULL, NULL, 0));
    CUkernel k;
    CU_OK(cuLibraryGetKernel(&k, lib, "_Z6kernelPf"));
    const char *name = NULL;
    CU_OK(cuKernelGetName(&name, k));
    cr_assert_str_eq(name, "_Z6kernelPf");
    CU_OK(cuKernelGetLibrary(&owner, k));
    cr_assert_eq(owner, lib);
    int v = 0;
    CU_OK(cuKernelGetAttribute(&v, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, k, 0));
    cr_assert_eq(v, 1024);
    CU_OK(cuKernelGetAttribute(&v, CU_FUNC_ATTRIBUTE_BINARY_VERSION, k, 0));
    cr_assert_eq(v, 61, "the GTX 1080's sm_61");
    cr_assert_eq(cuKernelGetAttribute(&v, CU_FUNC_ATTRIBUTE_NUM_REGS, k, 1),
                 CUDA_ERROR_INVALID_DEVICE);
    CU_OK(cuKernelSetAttribute(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 4096, k, 0));
    cr_assert_eq(cuKernelSetAttribute(CU_FUNC_ATTRIBUTE_MAX, 1, k, 0), CUDA_ERROR_INVALID_VALUE);
    CU_OK(cuKernelSetCacheConfig(k, CU_FUNC_CACHE_PREFER_L1, 0));
    cr_assert_eq(cuKernelSetCacheConfig(k, (CUfunc_cache)9, 0), CUDA_ERROR_INVALID_VALUE);
    cr_assert_eq(cuKernelGetName(NULL, k), CUDA_ERROR_INVALID_VALUE);
    CU_OK(cuLibraryUnload(lib));
}

Test(sim_library, the_loading_mode_follows_CUDA_MODULE_LOADING)
{
    qt_sim_private(NULL);
    CU_OK(cuInit(0));
    CUmoduleLoadingMode mode;
    unsetenv("CUDA_MODULE_LOADING");
    CU_OK(cuModuleGetLoadingMode(&mode));
    cr_assert_eq(mode, CU_MODULE_LAZY_LOADING, "lazy by default since CUDA 12.2");
    setenv("CUDA_MODULE_LOADING", "EAGER", 1);
    CU_OK(cuModuleGetLoadingMode(&mode));
    cr_assert_eq(mode, CU_MODULE_EAGER_LOADING);
    cr_assert_eq(cuModuleGetLoadingMode(NULL), CUDA_ERROR_INVALID_VALUE);
}
