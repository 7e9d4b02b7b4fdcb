/* shim_launch.c - nanoseconds the shim adds to cuLaunchKernel: a kernel of no time
 * launched without the shim, through it in pass-through, and through it in a vGPU (the
 * linked symbol, and the pointer cuGetProcAddress gives, as the CUDA runtime calls it).
 * The vGPU is alone on its GPU with share 100, so it holds a compute lease the arbiter
 * keeps extending: its launches take the gate's fast path (a clock read and a compare).
 * Each variant runs in its own child (tests/progs/shim_bench), interleaved round after
 * round so that a busy machine slows all alike; the figures are medians over rounds of
 * each child's median. Goal: at most 50 ns added on the fast path.
 *
 * Then the throughput a lone vGPU keeps: 1 ms qsim_spin kernels for 2 s, one at a time
 * and 8 deep, counted with and without the shim (tests/progs/shim_work). Goal: at least
 * 99% of the kernels run without the shim. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/shim_support.h"

#define ROUNDS 7

struct variant {
    const char *name; /* what the line says */
    qts_env_t env;    /* how the child runs */
    bool procaddr;    /* through cuGetProcAddress */
    long long ns[ROUNDS];
};

static int cmp(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

static long long run_child(const struct variant *v)
{
    char *bin = qt_build_path("tests/progs/shim_bench");
    const char *argv[] = {bin, "launch", "40", "2000", v->procaddr ? "procaddr" : NULL, NULL};
    char *out = NULL, *err = NULL;
    int st = qt_run(argv, v->env.v, 60000, &out, &err);
    long long ns = -1;
    if (st != 0 || sscanf(out, "launch %lld", &ns) != 1)
        fprintf(stderr, "shim_launch: %s failed (%d): %s", v->name, st, err);
    free(bin);
    free(out);
    free(err);
    return ns;
}

/* Kernels of 1 ms that shim_work runs in 2 s in env, depth at a time; -1 on failure. */
static long long spin_kernels(const qts_env_t *env, int depth)
{
    char *bin = qt_build_path("tests/progs/shim_work"), cmd[64];
    snprintf(cmd, sizeof cmd, "spin:1000000:%d:2000", depth);
    const char *argv[] = {bin, "init", cmd, NULL};
    char *out = NULL, *err = NULL;
    int st = qt_run(argv, env->v, 60000, &out, &err);
    const char *line = out ? strstr(out, "spin ") : NULL;
    long long n = -1;
    if (st != 0 || !line || sscanf(line, "spin %lld", &n) != 1)
        fprintf(stderr, "shim_launch: spin failed (%d): %s", st, err);
    free(bin);
    free(out);
    free(err);
    return n;
}

static long long median(long long *v)
{
    qsort(v, ROUNDS, sizeof *v, cmp);
    return v[ROUNDS / 2];
}

int main(void)
{
    qt_sim_private(NULL);
    qt_arbiter_t *arb = qt_arbiter_start(NULL, NULL);
    if (!arb)
        return 1;
    qts_vgpu_t g;
    qts_vgpu_create(arb, &g, "--vm", "bench", "--memory", "4GiB", "--share", "100", NULL);
    struct variant vs[5] = {{.name = "without the shim"},
                            {.name = "without the shim, via cuGetProcAddress", .procaddr = true},
                            {.name = "shim, pass-through"},
                            {.name = "shim, in a vGPU"},
                            {.name = "shim, in a vGPU, via cuGetProcAddress", .procaddr = true}};
    qts_env_plain(&vs[0].env);
    qts_env_plain(&vs[1].env);
    qts_env_passthrough(&vs[2].env);
    qts_env_of(&vs[3].env, arb, &g);
    qts_env_of(&vs[4].env, arb, &g);
    /* The same device list everywhere: the driver's costs may depend on it. */
    for (int i = 0; i < 3; i++)
        qts_env_add(&vs[i].env, "CUDA_VISIBLE_DEVICES=%s", g.gpu_uuid);
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < 5; i++)
            vs[i].ns[r] = run_child(&vs[i]);
    }
    long long base = median(vs[0].ns), base_pa = median(vs[1].ns);
    printf("cuLaunchKernel, kernel of no time, median of %d interleaved rounds x 40 x 2000:\n",
           ROUNDS);
    for (int i = 0; i < 5; i++) {
        long long m = i == 0 ? base : i == 1 ? base_pa : median(vs[i].ns);
        long long ref = vs[i].procaddr ? base_pa : base;
        printf("  %-42s %6lld ns  added %+5lld ns  ratio %.3f\n", vs[i].name, m, m - ref,
               (double)m / (double)ref);
    }
    long long added = median(vs[3].ns) - base;
    printf("  goal: at most 50 ns added in a vGPU: %s\n", added <= 50 ? "met" : "NOT met");

    printf("lone vGPU (share 100), 1 ms kernels for 2 s, median of 3 interleaved runs:\n");
    int depths[2] = {1, 8};
    bool met = true;
    for (int d = 0; d < 2; d++) {
        long long without[ROUNDS] = {0}, with[ROUNDS] = {0};
        for (int r = 0; r < 3; r++) {
            without[r] = spin_kernels(&vs[0].env, depths[d]);
            with[r] = spin_kernels(&vs[3].env, depths[d]);
        }
        qsort(without, 3, sizeof *without, cmp);
        qsort(with, 3, sizeof *with, cmp);
        double pct = 100.0 * (double)with[1] / (double)without[1];
        printf("  %d deep: %5lld kernels without the shim, %5lld in the vGPU: %.1f%%\n", depths[d],
               without[1], with[1], pct);
        met = met && pct >= 99.0;
    }
    printf("  goal: at least 99%% of the throughput without the shim: %s\n",
           met ? "met" : "NOT met");
    qt_arbiter_destroy(&arb);
    return 0;
}
