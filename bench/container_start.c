/* container_start.c - what putting a container into a vGPU costs at its start: `podman
 * run --rm ... /bin/true` on the Debian 12 minbase (tests/container_support.h), with the
 * vGPU's CDI device and without it, in interleaved pairs in one run, so that the ratio
 * holds on a busy machine. The device adds the spec's mounts and the preflight hook
 * (reading the image's libc and the shim, one hello to the arbiter).
 *   make bench B=container      QV_BENCH_N=40 for more pairs; needs root and podman */
#include "tests/container_support.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* One container start, in ns; 0 when it failed. */
static uint64_t start_once(const char *root, const char *device)
{
    const char *args[] = {"--device", device, NULL};
    const char *cmd[] = {"/bin/true", NULL};
    char *name = qct_name(), *err = NULL;
    const char **argv = qct_podman_argv("run", name, device ? args : NULL, root, cmd);
    uint64_t t0 = qt_now_ns();
    int rc = qt_run(argv, NULL, 60000, NULL, &err);
    uint64_t dt = qt_now_ns() - t0;
    if (rc != 0)
        fprintf(stderr, "container_start: podman run failed (%d): %s\n", rc, err);
    free(err);
    free(argv);
    free(name);
    return rc == 0 ? dt : 0;
}

int main(void)
{
    const char *e = getenv("QV_BENCH_N");
    int n = e && atoi(e) > 1 ? atoi(e) : 12;
    if (geteuid() != 0 || system("command -v podman >/dev/null && command -v runc >/dev/null")) {
        printf("container_start: skipped (needs root, podman and runc)\n");
        return 0;
    }
    const char *root = qct_rootfs("bookworm");
    qct_arbiter_t a;
    qct_arbiter_start(&a, NULL);
    char id[64], device[128];
    qct_vgpu(&a, id, "--vm", "bench", "--profile", "Q1", NULL);
    snprintf(device, sizeof device, "qvgpu.io/vgpu=%s", id);
    start_once(root, NULL); /* warm the caches of both paths */
    start_once(root, device);
    uint64_t *plain = calloc((size_t)n, sizeof *plain), *vgpu = calloc((size_t)n, sizeof *vgpu);
    int failed = 0;
    for (int i = 0; i < n; i++) {
        /* A then B, then B then A: neither always goes first. */
        bool swap = i % 2;
        uint64_t x = start_once(root, swap ? device : NULL);
        uint64_t y = start_once(root, swap ? NULL : device);
        plain[i] = swap ? y : x;
        vgpu[i] = swap ? x : y;
        failed += !plain[i] || !vgpu[i];
    }
    qsort(plain, (size_t)n, sizeof *plain, cmp);
    qsort(vgpu, (size_t)n, sizeof *vgpu, cmp);
    double p = (double)plain[n / 2] / 1e6, v = (double)vgpu[n / 2] / 1e6;
    printf("podman run --rm /bin/true on Debian 12 minbase, %d interleaved pairs:\n", n);
    printf("  without the vGPU device: median %7.1f ms (min %.1f, max %.1f)\n", p,
           (double)plain[0] / 1e6, (double)plain[n - 1] / 1e6);
    printf("  with --device %s: median %7.1f ms (min %.1f, max %.1f)\n", device, v,
           (double)vgpu[0] / 1e6, (double)vgpu[n - 1] / 1e6);
    printf("  ratio (medians) %.2f, +%.1f ms per start%s\n", v / p, v - p,
           failed ? " (some starts failed: see above)" : "");
    free(plain);
    free(vgpu);
    char *out = NULL;
    qt_ctl(a.arb, &out, NULL, "destroy", id, NULL);
    free(out);
    qt_arbiter_destroy(&a.arb);
    return failed ? 1 : 0;
}
