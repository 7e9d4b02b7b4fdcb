/* test_sim_procaddr.c - cuGetProcAddress and cuGetProcAddress_v2 of the simulated
 * driver: the requested version picks the variant, the per-thread flag the _ptsz/_ptds
 * one, unknown and too-old requests say so; each answer is the library's own symbol. */
#include <criterion/criterion.h>
#include <cuda.h>
#include <dlfcn.h>

#include "tests/harness.h"
#include "tests/sim_support.h"

/* cuda.h maps cuGetProcAddress to its _v2; the original (CUDA 11.3) entry point is
 * still exported, and this is its prototype. */
#undef cuGetProcAddress
CUresult CUDAAPI cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion,
                                  cuuint64_t flags);

/* The simulated libcuda.so.1 this test bound to. */
static void *driver(void)
{
    void *h = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_NOLOAD);
    cr_assert_not_null(h, "libcuda.so.1 is not loaded: %s", dlerror());
    return h;
}

/* Asserts that (name, version, flags) resolves to exported symbol `want`. */
static void expect(const char *name, int version, cuuint64_t flags, const char *want)
{
    void *pfn = NULL;
    CUdriverProcAddressQueryResult status = (CUdriverProcAddressQueryResult)-1;
    CU_OK(cuGetProcAddress_v2(name, &pfn, version, flags, &status));
    cr_assert_eq(status, CU_GET_PROC_ADDRESS_SUCCESS);
    void *h = driver();
    void *sym = dlsym(h, want);
    cr_assert_not_null(sym, "%s is not exported", want);
    cr_assert_eq(pfn, sym, "%s@%d flags %llu is not %s", name, version, (unsigned long long)flags,
                 want);
    dlclose(h);
}

Test(sim_procaddr, versions_select_the_variant)
{
    qt_sim_private(NULL);
    expect("cuMemAlloc", 2000, CU_GET_PROC_ADDRESS_DEFAULT, "cuMemAlloc");
    expect("cuMemAlloc", 3020, CU_GET_PROC_ADDRESS_DEFAULT, "cuMemAlloc_v2");
    expect("cuMemAlloc", 13000, CU_GET_PROC_ADDRESS_DEFAULT, "cuMemAlloc_v2");
    expect("cuCtxCreate", 3020, CU_GET_PROC_ADDRESS_DEFAULT, "cuCtxCreate_v2");
    expect("cuCtxCreate", 11040, CU_GET_PROC_ADDRESS_DEFAULT, "cuCtxCreate_v3");
    expect("cuCtxCreate", 12050, CU_GET_PROC_ADDRESS_DEFAULT, "cuCtxCreate_v4");
    expect("cuCtxCreate", 99999, CU_GET_PROC_ADDRESS_DEFAULT, "cuCtxCreate_v4");
    expect("cuEventElapsedTime", 12000, CU_GET_PROC_ADDRESS_DEFAULT, "cuEventElapsedTime");
    expect("cuEventElapsedTime", 12080, CU_GET_PROC_ADDRESS_DEFAULT, "cuEventElapsedTime_v2");
}

Test(sim_procaddr, the_per_thread_flag_selects_ptsz_and_ptds_variants)
{
    qt_sim_private(NULL);
    const cuuint64_t pt = CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM;
    expect("cuLaunchKernel", 13000, pt, "cuLaunchKernel_ptsz");
    expect("cuLaunchKernel", 13000, CU_GET_PROC_ADDRESS_LEGACY_STREAM, "cuLaunchKernel");
    expect("cuLaunchKernel", 13000, CU_GET_PROC_ADDRESS_DEFAULT, "cuLaunchKernel");
    expect("cuMemcpyHtoD", 13000, pt, "cuMemcpyHtoD_v2_ptds");
    expect("cuMemcpyHtoDAsync", 13000, pt, "cuMemcpyHtoDAsync_v2_ptsz");
    expect("cuStreamBeginCapture", 13000, pt, "cuStreamBeginCapture_v2_ptsz");
    expect("cuGraphLaunch", 13000, pt, "cuGraphLaunch_ptsz");
    /* A name with no per-thread variant gets its plain one. */
    expect("cuMemAlloc", 13000, pt, "cuMemAlloc_v2");
}

Test(sim_procaddr, unknown_and_too_old_requests_say_which)
{
    qt_sim_private(NULL);
    void *pfn = (void *)1;
    CUdriverProcAddressQueryResult status;
    cr_assert_eq(cuGetProcAddress_v2("cuNoSuchThing", &pfn, 13000, 0, &status),
                 CUDA_ERROR_NOT_FOUND);
    cr_assert_eq(status, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
    cr_assert_null(pfn);
    cr_assert_eq(cuGetProcAddress_v2("cuMemAlloc_v2", &pfn, 13000, 0, &status),
                 CUDA_ERROR_NOT_FOUND, "the name asked for is the base name");
    cr_assert_eq(status, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
    cr_assert_eq(cuGetProcAddress_v2("cuMemAllocAsync", &pfn, 11010, 0, &status),
                 CUDA_ERROR_NOT_FOUND);
    cr_assert_eq(status, CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);
    cr_assert_eq(cuGetProcAddress_v2("cuMemAlloc", &pfn, 13000, 4, &status),
                 CUDA_ERROR_INVALID_VALUE, "unknown flags");
    cr_assert_eq(cuGetProcAddress_v2(NULL, &pfn, 13000, 0, &status), CUDA_ERROR_INVALID_VALUE);
}

Test(sim_procaddr, the_v1_entry_point_resolves_the_same_without_a_status)
{
    qt_sim_private(NULL);
    void *a = NULL, *b = NULL;
    CU_OK(cuGetProcAddress("cuMemFree", &a, 12000, 0));
    CU_OK(cuGetProcAddress_v2("cuMemFree", &b, 12000, 0, NULL));
    cr_assert_eq(a, b);
    void *h = driver();
    cr_assert_eq(a, dlsym(h, "cuMemFree_v2"));
    dlclose(h);
    cr_assert_eq(cuGetProcAddress("cuNoSuchThing", &a, 13000, 0), CUDA_ERROR_NOT_FOUND);
}

Test(sim_procaddr, resolved_pointers_work_and_unimplemented_ones_say_not_supported)
{
    qt_sim_private(NULL);
    /* It works before cuInit: the runtime looks cuInit itself up this way. */
    CUresult (*init)(unsigned);
    CU_OK(cuGetProcAddress_v2("cuInit", (void **)&init, 13000, 0, NULL));
    CU_OK(init(0));
    CUresult (*count)(int *);
    int n = 0;
    CU_OK(cuGetProcAddress_v2("cuDeviceGetCount", (void **)&count, 13000, 0, NULL));
    CU_OK(count(&n));
    cr_assert_eq(n, 1);
    CUresult (*unmap)(unsigned, CUgraphicsResource *, CUstream);
    CU_OK(cuGetProcAddress_v2("cuGraphicsUnmapResources", (void **)&unmap, 13000, 0, NULL));
    cr_assert_eq(unmap(0, NULL, NULL), CUDA_ERROR_NOT_SUPPORTED);
}
