/* sim_worker.c - a CUDA workload for the simulator's tests, linked like a real program
 * (against the toolkit's stub libcuda.so) and bound to the simulated driver at run time.
 *
 *   sim_worker info                       one line per device
 *   sim_worker alloc DEV BYTES            allocates, says "ready", waits to be killed
 *   sim_worker flood DEV SECS KERNEL_US   keeps DEV busy with qsim_spin kernels for SECS
 *   sim_worker target DEV BYTES           allocates and fills BYTES, says "ready", and on
 *                                         SIGUSR1 checks them and reports its device
 *   sim_worker lockholder                 takes the host lock and waits to be killed
 *   sim_worker lock PID                   cuCheckpointProcessLock(PID), then says "locked"
 *
 * Exits 0 when the command worked, 1 when the driver said no (the error on stdout), 2 on
 * a usage error. Single-threaded. */
#include <cuda.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "sim/shm.h"

#define CHECK(call)                                                                                \
    do {                                                                                           \
        CUresult rc_ = (call);                                                                     \
        if (rc_ != CUDA_SUCCESS) {                                                                 \
            const char *name_ = "?";                                                               \
            cuGetErrorName(rc_, &name_);                                                           \
            printf("error %d %s in %s\n", (int)rc_, name_, #call);                                 \
            fflush(stdout);                                                                        \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

static int open_device(int dev, CUcontext *ctx)
{
    CUdevice d;
    CHECK(cuInit(0));
    CHECK(cuDeviceGet(&d, dev));
    CHECK(cuDevicePrimaryCtxRetain(ctx, d));
    CHECK(cuCtxSetCurrent(*ctx));
    return 0;
}

static int cmd_info(void)
{
    int n;
    CHECK(cuInit(0));
    CHECK(cuDeviceGetCount(&n));
    for (int i = 0; i < n; i++) {
        CUdevice d;
        char name[128];
        CUuuid u;
        size_t mem;
        int sms, major, minor;
        CHECK(cuDeviceGet(&d, i));
        CHECK(cuDeviceGetName(name, sizeof name, d));
        CHECK(cuDeviceGetUuid(&u, d));
        CHECK(cuDeviceTotalMem(&mem, d));
        CHECK(cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, d));
        CHECK(cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, d));
        CHECK(cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, d));
        say("dev %d name=%s uuid=GPU-", i, name);
        for (int b = 0; b < 16; b++)
            say("%s%02x", b == 4 || b == 6 || b == 8 || b == 10 ? "-" : "",
                (unsigned char)u.bytes[b]);
        say(" mem=%zu sms=%d cc=%d.%d\n", mem, sms, major, minor);
    }
    return 0;
}

static int cmd_alloc(int dev, size_t bytes)
{
    CUcontext ctx;
    if (open_device(dev, &ctx))
        return 1;
    CUdeviceptr p;
    CHECK(cuMemAlloc(&p, bytes));
    say("ready 0x%llx\n", (unsigned long long)p);
    for (;;)
        pause();
}

static int cmd_flood(int dev, double secs, unsigned kernel_us)
{
    CUcontext ctx;
    if (open_device(dev, &ctx))
        return 1;
    CUmodule mod;
    CUfunction spin;
    CHECK(cuModuleLoadData(&mod, "qsim"));
    CHECK(cuModuleGetFunction(&spin, mod, "qsim_spin"));
    enum { RING = 16, AHEAD = 8 };
    CUevent ev[RING];
    for (int i = 0; i < RING; i++)
        CHECK(cuEventCreate(&ev[i], 0));
    unsigned long long ns = (unsigned long long)kernel_us * 1000u;
    void *params[] = {&ns};
    uint64_t start = now_ns(), end = start + (uint64_t)(secs * 1e9);
    say("ready\n");
    unsigned long long launched = 0;
    while (now_ns() < end) {
        CHECK(cuLaunchKernel(spin, 1, 1, 1, 1, 1, 1, 0, NULL, params, NULL));
        CHECK(cuEventRecord(ev[launched % RING], NULL));
        launched++;
        if (launched > AHEAD)
            CHECK(cuEventSynchronize(ev[(launched - AHEAD) % RING]));
    }
    CHECK(cuCtxSynchronize());
    say("kernels=%llu wall_ns=%" PRIu64 "\n", launched, now_ns() - start);
    return 0;
}

static volatile sig_atomic_t usr1;

static void on_usr1(int sig)
{
    (void)sig;
    usr1 = 1;
}

static int cmd_target(int dev, size_t bytes)
{
    CUcontext ctx;
    if (open_device(dev, &ctx))
        return 1;
    unsigned char *buf = malloc(bytes);
    if (!buf)
        return 2;
    for (size_t i = 0; i < bytes; i++)
        buf[i] = (unsigned char)(i * 7 + 3);
    CUdeviceptr p;
    CHECK(cuMemAlloc(&p, bytes));
    CHECK(cuMemcpyHtoD(p, buf, bytes));
    signal(SIGUSR1, on_usr1);
    say("ready 0x%llx\n", (unsigned long long)p);
    while (!usr1)
        usleep(1000);
    memset(buf, 0, bytes);
    CHECK(cuMemcpyDtoH(buf, p, bytes));
    size_t bad = 0;
    for (size_t i = 0; i < bytes; i++)
        bad += buf[i] != (unsigned char)(i * 7 + 3);
    CUuuid u;
    size_t free_b, total;
    CHECK(cuDeviceGetUuid(&u, dev));
    CHECK(cuMemGetInfo(&free_b, &total));
    say("verify %s\n", bad ? "bad" : "ok");
    say("uuid GPU-");
    for (int b = 0; b < 16; b++)
        say("%s%02x", b == 4 || b == 6 || b == 8 || b == 10 ? "-" : "", (unsigned char)u.bytes[b]);
    say("\nfree %zu total %zu\n", free_b, total);
    free(buf);
    return bad ? 1 : 0;
}

static int cmd_lockholder(void)
{
    const char *ns = getenv("QSIM_NAMESPACE");
    char name[128];
    snprintf(name, sizeof name, "/dev/shm/qsim-%s", ns && *ns ? ns : "default");
    int fd = open(name, O_RDWR);
    if (fd < 0) {
        say("error cannot open %s\n", name);
        return 1;
    }
    struct qsim_shm *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (s == MAP_FAILED) {
        say("error cannot map %s\n", name);
        return 1;
    }
    pthread_mutex_lock(&s->lock);
    say("locked\n");
    for (;;)
        pause();
}

static int cmd_lock(int pid)
{
    CHECK(cuInit(0));
    say("locking\n");
    CHECK(cuCheckpointProcessLock(pid, NULL));
    say("locked\n");
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "";
    if (strcmp(cmd, "info") == 0 && argc == 2)
        return cmd_info();
    if (strcmp(cmd, "alloc") == 0 && argc == 4)
        return cmd_alloc(atoi(argv[2]), strtoull(argv[3], NULL, 0));
    if (strcmp(cmd, "flood") == 0 && argc == 5)
        return cmd_flood(atoi(argv[2]), atof(argv[3]), (unsigned)atoi(argv[4]));
    if (strcmp(cmd, "target") == 0 && argc == 4)
        return cmd_target(atoi(argv[2]), strtoull(argv[3], NULL, 0));
    if (strcmp(cmd, "lockholder") == 0 && argc == 2)
        return cmd_lockholder();
    if (strcmp(cmd, "lock") == 0 && argc == 3)
        return cmd_lock(atoi(argv[2]));
    fprintf(stderr, "usage: sim_worker info | alloc DEV BYTES | flood DEV SECS KERNEL_US | "
                    "target DEV BYTES | lockholder | lock PID\n");
    return 2;
}
