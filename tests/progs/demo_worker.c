/* demo_worker.c - the main job's workload (scripts/demo.sh) and the compute-share
 * benchmark's (bench/sched_share.c): it keeps its GPU busy with spin kernels and measures
 * the GPU time it really got; optionally it first shows its memory quota at work.
 *
 *   demo_worker [--alloc-past-quota] [--start-at NS] [--seconds S] [--kernel-us US]
 *               [--depth N] [--frame-ms F]
 *
 * --alloc-past-quota  allocates a quarter of the device memory it sees (inside a vGPU: its
 *                     quota), then tries to allocate past it, and reports both results.
 * --start-at NS       the measuring window opens at this CLOCK_REALTIME time (ns since the
 *                     epoch, `date +%s%N`), so that workers started one after the other
 *                     measure the same window; default: as soon as it is ready.
 * --seconds S         the window's length (default 4).
 * --kernel-us US      each kernel spins this long (default 1000).
 * --depth N           at most N kernels queued ahead (default 8): a few milliseconds of
 *                     work, so that a busy CPU does not let the queue run dry, but little
 *                     enough that a revoked lease is given back soon.
 * --frame-ms F        interactive instead of flooding, as a game drawing at 1000/F frames
 *                     per second: every F ms (from the window's start; at once when a frame
 *                     ran late) it launches one kernel and waits for it, and measures each
 *                     frame's launch-to-completion time.
 *
 * It floods from the moment it is ready until the window closes. The figure is
 * (kernels completed in the window) x (kernel length) / (window length): the fraction of
 * the GPU this process got. A sampler thread counts completed kernels (cuEventQuery on the
 * events recorded after each kernel) exactly when the window opens and closes, whatever the
 * launching thread is doing: it may be blocked in a launch, waiting for its compute lease.
 *
 * Output, one line each, `key=value` words, for scripts:
 *   ready                                          once the kernel is loaded
 *   memory quota_mib=Q within_mib=W within=RESULT past_mib=P past=RESULT
 *   compute kernel_us=K kernels=N window_ms=W busy_ms=B achieved_pct=A late=0|1
 *   frames frames=N window_ms=W fps=R p50_us=A p90_us=B p99_us=C max_us=D  (--frame-ms)
 * RESULT is the CUresult's name (CUDA_SUCCESS, CUDA_ERROR_OUT_OF_MEMORY, ...); late=1 means
 * it was not ready when the window opened. The compute line comes the moment the window
 * closes, before the queued work is drained. Exits 0, 1 when the driver failed (an "error"
 * line says which call), 2 on a usage error.
 *
 * The kernel is PTX text (spin on %globaltimer), JIT-compiled by a real driver; the
 * simulated driver accepts any image and runs its `qsim_spin` for the parameter's ns.
 * Threads: main launches; the sampler only queries events and reads `launched`. */
#include <cuda.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One thread spins until %globaltimer has advanced by the parameter's nanoseconds. The
 * same name as the simulator's timed kernel, so one program runs on both. */
static const char spin_ptx[] = ".version 6.0\n"
                               ".target sm_50\n"
                               ".address_size 64\n"
                               ".visible .entry qsim_spin(.param .u64 ns)\n"
                               "{\n"
                               "  .reg .pred %p;\n"
                               "  .reg .b64 %rd<5>;\n"
                               "  ld.param.u64 %rd1, [ns];\n"
                               "  mov.u64 %rd2, %globaltimer;\n"
                               "  add.u64 %rd3, %rd2, %rd1;\n"
                               "SPIN:\n"
                               "  mov.u64 %rd4, %globaltimer;\n"
                               "  setp.lt.u64 %p, %rd4, %rd3;\n"
                               "  @%p bra SPIN;\n"
                               "  ret;\n"
                               "}\n";

/* Events are reused round a ring of RING_PER_DEPTH x depth. The sampler queries at most
 * depth + 1 events past what the launcher had retired when it looked; a slot among those is
 * recorded again only after the launcher retires (RING_PER_DEPTH - 2) x depth more kernels
 * (that many kernel lengths of GPU time, 48 ms at the defaults), far longer than a few
 * queries take. Small, because a simulated host has room for 16384 events and the
 * benchmark runs 64 workers. */
enum { RING_PER_DEPTH = 8, MAX_DEPTH = 64 };

struct worker {
    CUcontext ctx;              /* the primary context: both threads make it current */
    CUevent *ev;                /* owned: ev[i % ring] is recorded after kernel i */
    uint64_t ring;              /* entries in ev */
    _Atomic uint64_t launched;  /* kernels launched and recorded: launcher stores */
    _Atomic uint64_t retired;   /* kernels the launcher saw complete: launcher stores */
    _Atomic bool stop;          /* the window closed: sampler stores */
    uint64_t start_at;          /* CLOCK_REALTIME ns when the window opens */
    uint64_t window_ns;         /* its length */
    unsigned long long kernel_ns; /* each kernel's length */
    uint64_t count[2];          /* kernels completed at open and close: sampler only */
    uint64_t at[2];             /* CLOCK_MONOTONIC ns of those counts: sampler only */
    bool late;                  /* not flooding yet when it opened: sampler only */
    _Atomic bool flooding;      /* the launcher is about to start: launcher stores */
    CUresult failed;            /* a sampler's query failed with this: sampler only */
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

static const char *result_name(CUresult rc)
{
    const char *name = NULL;
    return cuGetErrorName(rc, &name) == CUDA_SUCCESS && name ? name : "CUDA_ERROR_UNKNOWN";
}

#define CHECK(call)                                                                                \
    do {                                                                                           \
        CUresult rc_ = (call);                                                                     \
        if (rc_ != CUDA_SUCCESS) {                                                                 \
            say("error %d %s in %s\n", (int)rc_, result_name(rc_), #call);                         \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_until_realtime(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u)};
    while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* Kernels completed now: those the launcher retired, then each later one whose event has
 * been reached, in order (a stream completes in order, so the first not reached ends it). */
static uint64_t completed_now(struct worker *w)
{
    uint64_t n = atomic_load_explicit(&w->retired, memory_order_acquire);
    /* acquire: the events up to `launched` were recorded before it was stored */
    uint64_t end = atomic_load_explicit(&w->launched, memory_order_acquire);
    for (; n < end; n++) {
        CUresult rc = cuEventQuery(w->ev[n % w->ring]);
        if (rc == CUDA_ERROR_NOT_READY)
            break;
        if (rc != CUDA_SUCCESS) {
            w->failed = rc;
            break;
        }
    }
    return n;
}

/* Prints the figure as soon as the window closes: if the launcher never comes back from a
 * launch (a lease that never comes), the figure is out all the same. */
static void report(const struct worker *w)
{
    if (w->failed != CUDA_SUCCESS) {
        say("error %d %s in cuEventQuery\n", (int)w->failed, result_name(w->failed));
        return;
    }
    uint64_t kernels = w->count[1] - w->count[0], span = w->at[1] - w->at[0];
    double busy_ms = (double)kernels * (double)w->kernel_ns / 1e6, window_ms = (double)span / 1e6;
    say("compute kernel_us=%llu kernels=%" PRIu64 " window_ms=%.1f busy_ms=%.1f "
        "achieved_pct=%.2f late=%d\n",
        w->kernel_ns / 1000u, kernels, window_ms, busy_ms,
        window_ms > 0 ? 100.0 * busy_ms / window_ms : 0.0, w->late ? 1 : 0);
}

static void *sampler_main(void *arg)
{
    struct worker *w = arg;
    if (cuCtxSetCurrent(w->ctx) != CUDA_SUCCESS)
        w->failed = CUDA_ERROR_INVALID_CONTEXT;
    for (int k = 0; k < 2; k++) {
        sleep_until_realtime(w->start_at + (uint64_t)k * w->window_ns);
        if (k == 0)
            w->late = !atomic_load_explicit(&w->flooding, memory_order_relaxed);
        w->at[k] = clock_ns(CLOCK_MONOTONIC);
        w->count[k] = completed_now(w);
    }
    report(w);
    atomic_store_explicit(&w->stop, true, memory_order_relaxed);
    return NULL;
}

/* Allocates a quarter of what the device reports, then past what is left. */
static int show_quota(void)
{
    size_t total = 0, free_b = 0;
    CUdevice dev;
    CHECK(cuCtxGetDevice(&dev));
    CHECK(cuDeviceTotalMem(&total, dev));
    CHECK(cuMemGetInfo(&free_b, &total));
    size_t within = total / 4, past = total - within + (1u << 20);
    CUdeviceptr a = 0, b = 0;
    CUresult ra = cuMemAlloc(&a, within);
    CUresult rb = cuMemAlloc(&b, past);
    say("memory quota_mib=%zu within_mib=%zu within=%s past_mib=%zu past=%s\n", total >> 20,
        within >> 20, result_name(ra), past >> 20, result_name(rb));
    if (rb == CUDA_SUCCESS)
        CHECK(cuMemFree(b));
    if (ra == CUDA_SUCCESS)
        CHECK(cuMemFree(a));
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The p-th percentile (0..100) of n sorted values: the nearest rank. */
static uint64_t percentile(const uint64_t *v, size_t n, double p)
{
    size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    return n ? v[rank > 0 ? rank - 1 : 0] : 0;
}

/* --frame-ms: a frame every frame_ns through the window, each one kernel waited for. */
static int frames(struct worker *w, CUfunction spin, uint64_t frame_ns)
{
    size_t cap = (size_t)(w->window_ns / frame_ns) + 16, n = 0;
    uint64_t *lat = calloc(cap, sizeof *lat);
    if (!lat) {
        say("error out of memory\n");
        return 1;
    }
    void *params[] = {&w->kernel_ns};
    say("ready\n");
    sleep_until_realtime(w->start_at);
    uint64_t t0 = clock_ns(CLOCK_MONOTONIC), end = t0 + w->window_ns, next = t0;
    for (;;) {
        uint64_t now = clock_ns(CLOCK_MONOTONIC);
        if (now < next) {
            struct timespec ts = {.tv_sec = (time_t)((next - now) / 1000000000u),
                                  .tv_nsec = (long)((next - now) % 1000000000u)};
            nanosleep(&ts, NULL);
            now = clock_ns(CLOCK_MONOTONIC);
        }
        if (now >= end || n == cap)
            break;
        CHECK(cuLaunchKernel(spin, 1, 1, 1, 1, 1, 1, 0, NULL, params, NULL));
        CHECK(cuCtxSynchronize());
        uint64_t done = clock_ns(CLOCK_MONOTONIC);
        lat[n++] = done - now;
        next += frame_ns;
        if (next < done)
            next = done; /* late: the next frame goes at once, as a game's would */
    }
    uint64_t span = clock_ns(CLOCK_MONOTONIC) - t0;
    qsort(lat, n, sizeof *lat, cmp_u64);
    say("frames frames=%zu window_ms=%.1f fps=%.2f p50_us=%.1f p90_us=%.1f p99_us=%.1f "
        "max_us=%.1f\n",
        n, (double)span / 1e6, (double)n / ((double)span / 1e9),
        (double)percentile(lat, n, 50) / 1e3, (double)percentile(lat, n, 90) / 1e3,
        (double)percentile(lat, n, 99) / 1e3, n ? (double)lat[n - 1] / 1e3 : 0.0);
    free(lat);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: demo_worker [--alloc-past-quota] [--start-at NS] [--seconds S] "
                    "[--kernel-us US] [--depth N] [--frame-ms F]\n");
    return 2;
}

int main(int argc, char **argv)
{
    static struct worker w;
    bool quota = false;
    double seconds = 4;
    unsigned long kernel_us = 1000, depth = 8;
    double frame_ms = 0;
    w.start_at = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (strcmp(a, "--alloc-past-quota") == 0) {
            quota = true;
            continue;
        }
        if (!v)
            return usage();
        i++;
        errno = 0;
        if (strcmp(a, "--start-at") == 0)
            w.start_at = strtoull(v, &end, 10);
        else if (strcmp(a, "--seconds") == 0)
            seconds = strtod(v, &end);
        else if (strcmp(a, "--kernel-us") == 0)
            kernel_us = strtoul(v, &end, 10);
        else if (strcmp(a, "--depth") == 0)
            depth = strtoul(v, &end, 10);
        else if (strcmp(a, "--frame-ms") == 0)
            frame_ms = strtod(v, &end);
        else
            return usage();
        if (errno || end == v || *end)
            return usage();
    }
    if (!(seconds > 0 && seconds <= 3600) || kernel_us < 1 || kernel_us > 1000000 || depth < 1 ||
        depth > MAX_DEPTH || !(frame_ms >= 0 && frame_ms <= 10000))
        return usage();
    w.window_ns = (uint64_t)(seconds * 1e9);
    w.kernel_ns = (unsigned long long)kernel_us * 1000u;

    CUdevice dev;
    CUmodule mod;
    CUfunction spin;
    CHECK(cuInit(0));
    CHECK(cuDeviceGet(&dev, 0));
    CHECK(cuDevicePrimaryCtxRetain(&w.ctx, dev));
    CHECK(cuCtxSetCurrent(w.ctx));
    if (quota && show_quota())
        return 1;
    CHECK(cuModuleLoadData(&mod, spin_ptx));
    CHECK(cuModuleGetFunction(&spin, mod, "qsim_spin"));
    if (!w.start_at)
        w.start_at = clock_ns(CLOCK_REALTIME);
    if (frame_ms > 0) {
        if (frames(&w, spin, (uint64_t)(frame_ms * 1e6)))
            return 1;
        CHECK(cuModuleUnload(mod));
        CHECK(cuDevicePrimaryCtxRelease(dev));
        return 0;
    }
    w.ring = RING_PER_DEPTH * depth;
    if (!(w.ev = calloc(w.ring, sizeof *w.ev))) {
        say("error out of memory\n");
        return 1;
    }
    for (uint64_t i = 0; i < w.ring; i++)
        CHECK(cuEventCreate(&w.ev[i], CU_EVENT_DISABLE_TIMING));
    /* Ready: what remains before the first launch takes microseconds. */
    atomic_store_explicit(&w.flooding, true, memory_order_relaxed);
    pthread_t sampler;
    if (pthread_create(&sampler, NULL, sampler_main, &w)) {
        say("error cannot start the sampler thread\n");
        return 1;
    }
    say("ready\n");

    void *params[] = {&w.kernel_ns};
    uint64_t launched = 0, retired = 0;
    while (!atomic_load_explicit(&w.stop, memory_order_relaxed)) {
        CHECK(cuLaunchKernel(spin, 1, 1, 1, 1, 1, 1, 0, NULL, params, NULL));
        CHECK(cuEventRecord(w.ev[launched % w.ring], NULL));
        /* release: the sampler may query this event once it sees the count */
        atomic_store_explicit(&w.launched, ++launched, memory_order_release);
        if (launched - retired > depth) {
            CHECK(cuEventSynchronize(w.ev[retired % w.ring]));
            atomic_store_explicit(&w.retired, ++retired, memory_order_release);
        }
    }
    pthread_join(sampler, NULL);
    CHECK(cuCtxSynchronize());
    if (w.failed != CUDA_SUCCESS)
        return 1;
    for (uint64_t i = 0; i < w.ring; i++)
        CHECK(cuEventDestroy(w.ev[i]));
    free(w.ev);
    CHECK(cuModuleUnload(mod));
    CHECK(cuDevicePrimaryCtxRelease(dev));
    return 0;
}
