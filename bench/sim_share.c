/* sim_share.c - how evenly the simulated engine shares one GPU between N unmanaged
 * processes that flood it (tests/progs/sim_worker flood), as NVML's per-process
 * utilization reports it over the same 1.5 s window, for N = 2, 4 and 8. Runs on its
 * own simulated host. Single-threaded. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "include/nvml_subset.h"
#include "tests/harness.h"

static unsigned long long realtime_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (unsigned long long)ts.tv_sec * 1000000u + (unsigned long long)ts.tv_nsec / 1000u;
}

/* The worker said "ready". */
static bool ready(void *arg)
{
    return qt_proc_stdout(arg)[0] == 'r';
}

int main(void)
{
    char *bin = qt_build_path("tests/progs/sim_worker");
    static const int counts[] = {2, 4, 8};
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
        int n = counts[k];
        qt_sim_private(NULL);
        if (nvmlInit_v2() != NVML_SUCCESS) {
            fprintf(stderr, "sim_share: nvmlInit_v2 failed\n");
            return 1;
        }
        qt_proc_t *p[8];
        const char *argv[] = {bin, "flood", "0", "3", "1000", NULL};
        for (int i = 0; i < n; i++)
            p[i] = qt_spawn(argv, NULL);
        for (int i = 0; i < n; i++)
            if (!p[i] || !qt_wait_until(ready, p[i], 10000)) {
                fprintf(stderr, "sim_share: a worker did not start\n");
                return 1;
            }
        qt_sleep_ms(1600);
        nvmlDevice_t dev;
        nvmlProcessUtilizationSample_t s[8];
        unsigned got = 8;
        nvmlUtilization_t u = {0};
        nvmlDeviceGetHandleByIndex_v2(0, &dev);
        nvmlDeviceGetUtilizationRates(dev, &u);
        if (nvmlDeviceGetProcessUtilization(dev, s, &got, realtime_us() - 1500000) !=
            NVML_SUCCESS) {
            fprintf(stderr, "sim_share: nvmlDeviceGetProcessUtilization failed\n");
            return 1;
        }
        unsigned lo = 100, hi = 0;
        printf("%d processes, shares over 1.5 s (%%):", n);
        for (unsigned i = 0; i < got; i++) {
            printf(" %u", s[i].smUtil);
            lo = s[i].smUtil < lo ? s[i].smUtil : lo;
            hi = s[i].smUtil > hi ? s[i].smUtil : hi;
        }
        printf("; fair share %.1f, spread %u points, device busy %u%%\n", 100.0 / n, hi - lo,
               u.gpu);
        for (int i = 0; i < n; i++)
            qt_proc_destroy(&p[i]);
        nvmlShutdown();
    }
    free(bin);
    return 0;
}
