/* test_shim_hooks.c - the shim's list of hooks: sorted for its binary search, and every
 * CUDA name in it is a real exported variant of the driver (the toolkit's table). */
#include "shim/hooks.h"

#include <criterion/criterion.h>
#include <string.h>

#include "cuda_procaddr.h"

static const char *const hook_names[] = {
#define NAME_(name) #name,
    QS_HOOK_LIST(NAME_)
#undef NAME_
};
#define NHOOKS (sizeof hook_names / sizeof *hook_names)

Test(shim_hooks, are_listed_in_strcmp_order_without_duplicates)
{
    cr_assert_eq(NHOOKS, (size_t)QS_HOOK_COUNT);
    for (size_t i = 1; i < NHOOKS; i++)
        cr_assert_lt(strcmp(hook_names[i - 1], hook_names[i]), 0, "%s before %s", hook_names[i - 1],
                     hook_names[i]);
}

static bool exported_by_driver(const char *symbol)
{
    for (size_t i = 0; i < QV_PROCADDR_COUNT; i++) {
        if (strcmp(qv_procaddr_table[i].symbol, symbol) == 0)
            return true;
    }
    return false;
}

Test(shim_hooks, name_variants_the_driver_exports)
{
    for (size_t i = 0; i < NHOOKS; i++) {
        if (strncmp(hook_names[i], "nvml", 4) == 0)
            continue;
        cr_assert(exported_by_driver(hook_names[i]), "%s is not a driver variant", hook_names[i]);
    }
}

Test(shim_hooks, cover_every_variant_of_each_charged_or_gated_entry_point)
{
    static const char *const managed[] = {"cuMemAlloc",
                                          "cuMemAllocPitch",
                                          "cuMemAllocManaged",
                                          "cuMemAllocAsync",
                                          "cuMemAllocFromPoolAsync",
                                          "cuMemCreate",
                                          "cuArrayCreate",
                                          "cuArray3DCreate",
                                          "cuMipmappedArrayCreate",
                                          "cuMemFree",
                                          "cuMemRelease",
                                          "cuArrayDestroy",
                                          "cuMipmappedArrayDestroy",
                                          "cuMemGetInfo",
                                          "cuDeviceTotalMem",
                                          "cuDeviceGetCount",
                                          "cuDeviceGet",
                                          "cuLaunchKernel",
                                          "cuLaunchKernelEx",
                                          "cuLaunchCooperativeKernel",
                                          "cuGraphLaunch",
                                          "cuGetProcAddress",
                                          "cuInit"};
    for (size_t m = 0; m < sizeof managed / sizeof *managed; m++) {
        size_t variants = 0;
        for (size_t i = 0; i < QV_PROCADDR_COUNT; i++) {
            if (strcmp(qv_procaddr_table[i].name, managed[m]) != 0)
                continue;
            variants++;
            bool hooked = false;
            for (size_t h = 0; h < NHOOKS && !hooked; h++)
                hooked = strcmp(hook_names[h], qv_procaddr_table[i].symbol) == 0;
            cr_assert(hooked, "%s (variant of %s) is not hooked", qv_procaddr_table[i].symbol,
                      managed[m]);
        }
        cr_assert_gt(variants, 0, "%s is not in the driver's table", managed[m]);
    }
}
