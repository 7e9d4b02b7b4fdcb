/* test_shim_route.c - every route to the driver reaches the shim in a vGPU: direct
 * binding, dlopen + dlsym (handle, RTLD_DEFAULT, RTLD_NEXT), and cuGetProcAddress (both
 * entry points, versioned names, per-thread variants); without a vGPU nothing changes.
 *
 * The arbiter is absent here on purpose: a process whose arbiter is unreachable may
 * allocate nothing, so an allocation that succeeds went around the shim. */
#include "tests/shim_support.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every charged variant, the 32-bit v1 ones included (the simulated driver does not
 * implement those, but the shim refuses before it asks the driver). */
static const char *const alloc_symbols[] = {"cuMemAlloc_v2",
                                            "cuMemAlloc",
                                            "cuMemAllocPitch_v2",
                                            "cuMemAllocPitch",
                                            "cuMemAllocManaged",
                                            "cuMemAllocAsync",
                                            "cuMemAllocAsync_ptsz",
                                            "cuMemAllocFromPoolAsync",
                                            "cuMemAllocFromPoolAsync_ptsz",
                                            "cuMemCreate",
                                            "cuArrayCreate_v2",
                                            "cuArrayCreate",
                                            "cuArray3DCreate_v2",
                                            "cuArray3DCreate",
                                            "cuMipmappedArrayCreate"};
/* The routes a program takes to one exact variant; and, for lookups only, procaddrmax:
 * cuGetProcAddress asked for a CUDA version newer than the shim's toolkit knows. */
static const char *const routes[] = {"direct", "dlsym", "default", "next", "procaddr", "procaddr1"};
static const char *const lookup_routes[] = {"direct",   "dlsym",     "default",    "next",
                                            "procaddr", "procaddr1", "procaddrmax"};

Test(shim_route, every_route_to_an_allocation_reaches_the_shim)
{
    qt_sim_private(NULL);
    qts_env_t e;
    qts_env_unreachable(&e, "vgpu-route");
    const char *cmds[120] = {"init"};
    size_t n = 1;
    static char bufs[120][96];
    for (size_t s = 0; s < sizeof alloc_symbols / sizeof *alloc_symbols; s++) {
        for (size_t r = 0; r < sizeof routes / sizeof *routes; r++) {
            snprintf(bufs[n], sizeof bufs[n], "alloc:%s:%s:16M", alloc_symbols[s], routes[r]);
            cmds[n] = bufs[n];
            n++;
        }
    }
    cmds[n] = NULL;
    char *out = NULL, *err = NULL;
    cr_assert_eq(qts_runv(&e, &out, &err, cmds), 0, "%s", err);
    cr_assert_eq(qts_field(out, "init ", 0), 0);
    for (size_t s = 0; s < sizeof alloc_symbols / sizeof *alloc_symbols; s++) {
        for (size_t r = 0; r < sizeof routes / sizeof *routes; r++) {
            char prefix[96];
            snprintf(prefix, sizeof prefix, "alloc %s %s ", alloc_symbols[s], routes[r]);
            cr_assert_eq(qts_field(out, prefix, 0), 2 /* CUDA_ERROR_OUT_OF_MEMORY */,
                         "%s went around the shim:\n%s", prefix, out);
        }
    }
    free(out);
    free(err);
}

Test(shim_route, the_same_allocations_succeed_without_the_shim)
{
    qt_sim_private(NULL);
    qts_env_t e;
    qts_env_plain(&e);
    char *out = NULL;
    cr_assert_eq(qts_run(&e, &out, NULL, "init", "alloc:cuMemAlloc_v2:direct:16M",
                         "alloc:cuMemAlloc_v2:procaddr:16M", "alloc:cuMemAllocPitch_v2:dlsym:16M",
                         NULL),
                 0);
    cr_assert_eq(qts_field(out, "alloc cuMemAlloc_v2 direct ", 0), 0);
    cr_assert_eq(qts_field(out, "alloc cuMemAlloc_v2 procaddr ", 0), 0);
    cr_assert_eq(qts_field(out, "alloc cuMemAllocPitch_v2 dlsym ", 0), 0);
    free(out);
}

/* Which library each route hands out for sym, from `resolve`. */
static void resolved(const char *out, const char *sym, const char *route, char *obj, size_t cap)
{
    char prefix[96], line[1024], key[64];
    snprintf(prefix, sizeof prefix, "resolve %s ", sym);
    cr_assert(qts_line(out, prefix, line, sizeof line), "no resolve of %s:\n%s", sym, out);
    snprintf(key, sizeof key, " %s=", route);
    const char *p = strstr(line, key);
    cr_assert_not_null(p, "no route %s in %s", route, line);
    p += strlen(key);
    snprintf(obj, cap, "%.*s", (int)strcspn(p, " "), p);
}

static const char *const hooked[] = {"cuMemAlloc_v2",
                                     "cuMemAlloc",
                                     "cuMemAllocPitch",
                                     "cuMemAllocAsync_ptsz",
                                     "cuMemAllocFromPoolAsync_ptsz",
                                     "cuMemCreate",
                                     "cuArrayCreate",
                                     "cuArray3DCreate_v2",
                                     "cuMipmappedArrayCreate",
                                     "cuMemGetInfo_v2",
                                     "cuMemGetInfo",
                                     "cuDeviceTotalMem",
                                     "cuLaunchKernel",
                                     "cuLaunchKernel_ptsz",
                                     "cuLaunchKernelEx_ptsz",
                                     "cuLaunchCooperativeKernel_ptsz",
                                     "cuGraphLaunch_ptsz",
                                     "cuGetProcAddress_v2",
                                     "cuInit",
                                     "cuDeviceGetCount",
                                     "cuStreamSynchronize_ptsz"};

Test(shim_route, hands_out_its_hooks_for_every_variant_through_every_route)
{
    qt_sim_private(NULL);
    qts_env_t e;
    qts_env_unreachable(&e, "vgpu-route");
    const char *cmds[64] = {"init"};
    char bufs[64][96];
    size_t n = 1;
    for (size_t i = 0; i < sizeof hooked / sizeof *hooked; i++) {
        snprintf(bufs[n], sizeof bufs[n], "resolve:%s", hooked[i]);
        cmds[n] = bufs[n];
        n++;
    }
    cmds[n++] = "resolve:cuMemcpyHtoD_v2";
    cmds[n] = NULL;
    char *out = NULL;
    cr_assert_eq(qts_runv(&e, &out, NULL, cmds), 0);
    for (size_t i = 0; i < sizeof hooked / sizeof *hooked; i++) {
        for (size_t r = 0; r < sizeof lookup_routes / sizeof *lookup_routes; r++) {
            char obj[128];
            resolved(out, hooked[i], lookup_routes[r], obj, sizeof obj);
            cr_assert_str_eq(obj, "libqshim.so", "%s through %s: %s", hooked[i], lookup_routes[r],
                             obj);
        }
    }
    /* An entry point the shim does not manage is the driver's own, however it is found. */
    char obj[128];
    resolved(out, "cuMemcpyHtoD_v2", "dlsym", obj, sizeof obj);
    cr_assert_str_eq(obj, "libcuda.so.1");
    resolved(out, "cuMemcpyHtoD_v2", "procaddr", obj, sizeof obj);
    cr_assert_neq(strcmp(obj, "libqshim.so"), 0);
    free(out);
}

Test(shim_route, pass_through_leaves_dynamic_lookups_to_the_driver)
{
    qt_sim_private(NULL);
    qts_env_t e;
    qts_env_passthrough(&e);
    char *out = NULL;
    cr_assert_eq(qts_run(&e, &out, NULL, "init", "resolve:cuMemAlloc_v2", NULL), 0);
    char obj[128];
    resolved(out, "cuMemAlloc_v2", "dlsym", obj, sizeof obj);
    cr_assert_str_eq(obj, "libcuda.so.1", "a handle lookup must give the driver's own");
    free(out);
}

Test(shim_route, dlvsym_answers_as_glibc_does)
{
    /* The driver's symbols carry no version: dlvsym with a version they do not have finds
     * nothing, with or without the shim. */
    qt_sim_private(NULL);
    qts_env_t e;
    char *out = NULL, obj[128];
    qts_env_unreachable(&e, "vgpu-route");
    cr_assert_eq(qts_run(&e, &out, NULL, "init", "resolve:cuMemAlloc_v2", NULL), 0);
    resolved(out, "cuMemAlloc_v2", "dlvsym", obj, sizeof obj);
    cr_assert_str_eq(obj, "-");
    free(out);
    qts_env_plain(&e);
    cr_assert_eq(qts_run(&e, &out, NULL, "init", "resolve:cuMemAlloc_v2", NULL), 0);
    resolved(out, "cuMemAlloc_v2", "dlvsym", obj, sizeof obj);
    cr_assert_str_eq(obj, "-");
    free(out);
}

Test(shim_route, rtld_next_for_other_names_still_means_next_after_the_caller)
{
    /* The shim answers dlsym for everyone, so it must compute RTLD_NEXT from the caller,
     * not from itself: from the main program, the next malloc is the first one after it
     * (the sanitizer's in a SAN=1 build, libc's otherwise), as without the shim. */
    qt_sim_private(NULL);
    qts_env_t e;
    char *out = NULL;
    qts_env_unreachable(&e, "vgpu-route");
    cr_assert_eq(qts_run(&e, &out, NULL, "nextsym:malloc", "nextsym:gnu_get_libc_version",
                         "nextsym:qvgpu_no_such_symbol", NULL),
                 0);
    char line[256];
    cr_assert(qts_line(out, "nextsym malloc ", line, sizeof line));
    cr_assert(strstr(line, " same"), "%s", line);
    cr_assert(qts_line(out, "nextsym gnu_get_libc_version ", line, sizeof line));
    cr_assert(strstr(line, "libc.so.6 same"), "%s", line);
    cr_assert(qts_line(out, "nextsym qvgpu_no_such_symbol ", line, sizeof line));
    cr_assert(strstr(line, " - same"), "%s", line);
    free(out);
}
