/* test_shim_launch.c - every launch entry point (kernel, Ex, cooperative, graph, each with
 * its per-thread variant) reached through every route goes through the shim's gate and
 * runs (test_shim_gate.c shows that each of them waits for the compute lease). */
#include "tests/shim_support.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const launches[] = {
    "cuLaunchKernel",        "cuLaunchKernel_ptsz",       "cuLaunchKernelEx",
    "cuLaunchKernelEx_ptsz", "cuLaunchCooperativeKernel", "cuLaunchCooperativeKernel_ptsz",
    "cuGraphLaunch",         "cuGraphLaunch_ptsz"};
static const char *const routes[] = {"direct", "dlsym", "procaddr"};
#define NL (sizeof launches / sizeof *launches)
#define NR (sizeof routes / sizeof *routes)

/* Runs every launch through every route in e; each must succeed, and cuGetProcAddress
 * must hand out expect_obj's function (NULL: whichever the driver gives). */
static void launch_all(const qts_env_t *e, const char *expect_obj)
{
    const char *cmds[NL * NR + NL + 2] = {"init"};
    static char bufs[NL * NR + NL][96];
    size_t n = 1, b = 0;
    for (size_t l = 0; l < NL; l++) {
        for (size_t r = 0; r < NR; r++) {
            snprintf(bufs[b], sizeof bufs[b], "launch:%s:%s:1000", launches[l], routes[r]);
            cmds[n++] = bufs[b++];
        }
        snprintf(bufs[b], sizeof bufs[b], "resolve:%s", launches[l]);
        cmds[n++] = bufs[b++];
    }
    cmds[n] = NULL;
    char *out = NULL, *err = NULL;
    cr_assert_eq(qts_runv(e, &out, &err, cmds), 0, "%s", err);
    for (size_t l = 0; l < NL; l++) {
        for (size_t r = 0; r < NR; r++) {
            char prefix[128];
            snprintf(prefix, sizeof prefix, "launch %s %s ", launches[l], routes[r]);
            cr_assert_eq(qts_field(out, prefix, 0), 0, "%s:\n%s", prefix, out);
        }
        char prefix[128], line[1024];
        if (!expect_obj)
            continue;
        snprintf(prefix, sizeof prefix, "resolve %s ", launches[l]);
        cr_assert(qts_line(out, prefix, line, sizeof line));
        char want[128];
        snprintf(want, sizeof want, "procaddr=%s", expect_obj);
        cr_assert(strstr(line, want), "%s", line);
    }
    free(out);
    free(err);
}

Test(shim_launch, every_launch_entry_point_runs_through_the_gate_in_a_vgpu)
{
    qt_sim_private(NULL);
    qts_env_t e;
    /* Without an arbiter nobody grants leases, and launches run ungated. */
    cr_assert_eq(qts_env_unreachable(&e, "vgpu-launch"), 1);
    launch_all(&e, "libqshim.so");
}

Test(shim_launch, every_launch_entry_point_runs_in_pass_through)
{
    qt_sim_private(NULL);
    qts_env_t e;
    qts_env_passthrough(&e);
    launch_all(&e, NULL);
}

Test(shim_launch, deprecated_launch_entry_points_lead_to_the_shim_by_every_route)
{
    /* cuLaunch, cuLaunchGrid, cuLaunchGridAsync and the multi-device cooperative launch
     * still run kernels on a real driver: each must reach the shim's gated hook. */
    static const char *const syms[] = {"cuLaunch", "cuLaunchGrid", "cuLaunchGridAsync",
                                       "cuLaunchCooperativeKernelMultiDevice"};
    static const char *const want[] = {"direct=libqshim.so", "dlsym=libqshim.so",
                                       "default=libqshim.so", "procaddr=libqshim.so",
                                       "procaddr1=libqshim.so"};
    qt_sim_private(NULL);
    qts_env_t e;
    cr_assert_eq(qts_env_unreachable(&e, "vgpu-launch"), 1);
    char *out = NULL, *err = NULL;
    cr_assert_eq(qts_run(&e, &out, &err, "init", "resolve:cuLaunch", "resolve:cuLaunchGrid",
                         "resolve:cuLaunchGridAsync",
                         "resolve:cuLaunchCooperativeKernelMultiDevice", NULL),
                 0, "%s", err);
    for (size_t i = 0; i < sizeof syms / sizeof *syms; i++) {
        char prefix[128], line[1024];
        snprintf(prefix, sizeof prefix, "resolve %s ", syms[i]);
        cr_assert(qts_line(out, prefix, line, sizeof line), "%s", out);
        for (size_t w = 0; w < sizeof want / sizeof *want; w++)
            cr_assert(strstr(line, want[w]), "%s: no %s", line, want[w]);
    }
    free(out);
    free(err);
}
