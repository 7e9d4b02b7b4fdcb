/* test_shim_procaddr.c - the shim maps a cuGetProcAddress request to the variant the
 * driver's table names: versions, _v2 names, and the per-thread-default-stream flag. */
#include "shim/procaddr.c"

#include <criterion/criterion.h>

Test(shim_procaddr, picks_the_newest_variant_not_newer_than_asked)
{
    cr_assert_str_eq(qs_procaddr_variant("cuMemAlloc", 13000, false), "cuMemAlloc_v2");
    cr_assert_str_eq(qs_procaddr_variant("cuMemAlloc", 3020, false), "cuMemAlloc_v2");
    cr_assert_str_eq(qs_procaddr_variant("cuMemAlloc", 3010, false), "cuMemAlloc");
    cr_assert_str_eq(qs_procaddr_variant("cuMemAlloc", 2000, false), "cuMemAlloc");
    cr_assert_str_eq(qs_procaddr_variant("cuGetProcAddress", 12000, false), "cuGetProcAddress_v2");
    cr_assert_str_eq(qs_procaddr_variant("cuGetProcAddress", 11030, false), "cuGetProcAddress");
    cr_assert_str_eq(qs_procaddr_variant("cuCtxSynchronize", 12090, false), "cuCtxSynchronize");
    cr_assert_str_eq(qs_procaddr_variant("cuCtxSynchronize", 13000, false), "cuCtxSynchronize_v2");
}

Test(shim_procaddr, gives_the_per_thread_variant_only_when_asked)
{
    cr_assert_str_eq(qs_procaddr_variant("cuLaunchKernel", 12000, true), "cuLaunchKernel_ptsz");
    cr_assert_str_eq(qs_procaddr_variant("cuLaunchKernel", 12000, false), "cuLaunchKernel");
    cr_assert_str_eq(qs_procaddr_variant("cuMemAllocAsync", 11020, true), "cuMemAllocAsync_ptsz");
    cr_assert_str_eq(qs_procaddr_variant("cuGraphLaunch", 12000, true), "cuGraphLaunch_ptsz");
    cr_assert_str_eq(qs_procaddr_variant("cuMemcpyHtoD", 12000, true), "cuMemcpyHtoD_v2_ptds");
}

Test(shim_procaddr, falls_back_to_the_plain_variant_when_no_per_thread_one_is_that_old)
{
    /* cuLaunchKernel gained its _ptsz variant in 7.0. */
    cr_assert_str_eq(qs_procaddr_variant("cuLaunchKernel", 6050, true), "cuLaunchKernel");
    /* cuMemAlloc has none at all. */
    cr_assert_str_eq(qs_procaddr_variant("cuMemAlloc", 12000, true), "cuMemAlloc_v2");
}

Test(shim_procaddr, knows_nothing_of_unknown_names_or_too_old_requests)
{
    cr_assert_null(qs_procaddr_variant("cuNoSuchFunction", 13000, false));
    cr_assert_null(qs_procaddr_variant("cuMemAllocAsync", 11010, false));
    cr_assert_null(qs_procaddr_variant(NULL, 13000, false));
    cr_assert_null(qs_procaddr_variant("", 13000, false));
}
