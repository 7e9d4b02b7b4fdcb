/* chaos_support.c - kill -9 the arbiter under load and check what must not change.
 * Threads: the caller's, and one sampler that only reads NVML and writes the figures
 * under `lock` (see chaos_support.h). */
#include "tests/chaos_support.h"

#include "include/nvml_subset.h"
#include "qvgpu.h"
#include "tests/harness.h"
#include "tests/shim_support.h"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NVGPUS 3
#define PER_VGPU 2 /* processes per vGPU, competing for its quota */
#define MIB (1024ull * 1024ull)

/* A vGPU as created, and what must stay so across restarts. */
struct vgpu {
    qv_vgpu_t want;             /* as listed after creation */
    char secret[QV_SECRET_LEN]; /* its secret then */
    qts_env_t env;              /* its workloads' environment */
    qt_proc_t *procs[PER_VGPU]; /* owned: its workloads */
    pid_t pids[PER_VGPU];
};

struct chaos {
    qt_arbiter_t *arb; /* owned */
    struct vgpu v[NVGPUS];
    qt_chaos_result_t *r;
    pthread_t sampler;
    atomic_bool stop;     /* the sampler should end */
    pthread_mutex_t lock; /* guards r's sample figures */
};

/* Both threads report here; the first problem is kept. */
static pthread_mutex_t problem_lock = PTHREAD_MUTEX_INITIALIZER;

static void problem(qt_chaos_result_t *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void problem(qt_chaos_result_t *r, const char *fmt, ...)
{
    pthread_mutex_lock(&problem_lock);
    if (!r->problem[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->problem, sizeof r->problem, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&problem_lock);
}

/* ---- what each vGPU holds, as the driver says --------------------------------------- */

typedef nvmlReturn_t (*init_fn)(void);
typedef nvmlReturn_t (*handle_fn)(unsigned, nvmlDevice_t *);
typedef nvmlReturn_t (*procs_fn)(nvmlDevice_t, unsigned *, nvmlProcessInfo_t *);

/* Every 10 ms: sums the GPU memory of each vGPU's processes (NVML's per-process figure)
 * and keeps the worst excess over its quota. Reached through dlopen, as the shim's tests
 * do, so that the test binaries need not link NVML. */
static void *sample_main(void *arg)
{
    struct chaos *c = arg;
    void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW);
    init_fn init = lib ? (init_fn)dlsym(lib, "nvmlInit_v2") : NULL;
    handle_fn handle = lib ? (handle_fn)dlsym(lib, "nvmlDeviceGetHandleByIndex_v2") : NULL;
    procs_fn procs = lib ? (procs_fn)dlsym(lib, "nvmlDeviceGetComputeRunningProcesses_v2") : NULL;
    nvmlDevice_t dev;
    if (!init || !handle || !procs || init() != NVML_SUCCESS || handle(0, &dev) != NVML_SUCCESS) {
        problem(c->r, "cannot read per-process GPU memory through NVML");
        return NULL;
    }
    while (!atomic_load(&c->stop)) {
        nvmlProcessInfo_t info[64];
        unsigned n = 64;
        if (procs(dev, &n, info) == NVML_SUCCESS) {
            uint64_t held[NVGPUS] = {0};
            for (unsigned i = 0; i < n; i++) {
                for (int k = 0; k < NVGPUS; k++) {
                    for (int j = 0; j < PER_VGPU; j++)
                        held[k] +=
                            c->v[k].pids[j] == (pid_t)info[i].pid ? info[i].usedGpuMemory : 0;
                }
            }
            pthread_mutex_lock(&c->lock);
            c->r->samples++;
            for (int k = 0; k < NVGPUS; k++) {
                int64_t quota = (int64_t)(c->v[k].want.memory_mb * MIB);
                int excess = (int)(((int64_t)held[k] - quota) / (int64_t)MIB);
                if (held[k] > (uint64_t)quota)
                    problem(c->r, "vGPU %s held %llu MiB of a %llu MiB quota", c->v[k].want.id,
                            (unsigned long long)(held[k] / MIB),
                            (unsigned long long)c->v[k].want.memory_mb);
                if (!c->r->worst_vgpu[0] || excess > c->r->worst_excess_mib) {
                    c->r->worst_excess_mib = excess;
                    snprintf(c->r->worst_vgpu, sizeof c->r->worst_vgpu, "%s", c->v[k].want.id);
                }
            }
            pthread_mutex_unlock(&c->lock);
        }
        qt_sleep_ms(10);
    }
    return NULL;
}

/* ---- what must not change ------------------------------------------------------------ */

/* Compares the arbiter's vGPUs with what was created. Returns whether all are as they were
 * (r->problem says the first difference otherwise). */
static bool state_intact(struct chaos *c)
{
    char err[QV_ERR_LEN];
    qv_client_t *cl = qv_connect(qt_arbiter_socket_dir(c->arb), err);
    qv_vgpu_list_t *list = NULL;
    bool ok = cl && qv_list(cl, &list, err) == 0;
    if (!ok)
        problem(c->r, "cannot list the vGPUs after a restart: %s", err);
    if (ok && list->count != NVGPUS) {
        problem(c->r, "%zu vGPUs after a restart, not %d", list->count, NVGPUS);
        ok = false;
    }
    for (int k = 0; ok && k < NVGPUS; k++) {
        const qv_vgpu_t *w = &c->v[k].want, *g = NULL;
        for (size_t i = 0; i < list->count && !g; i++)
            g = strcmp(list->vgpus[i].id, w->id) == 0 ? &list->vgpus[i] : NULL;
        qv_creds_t cr;
        if (!g || strcmp(g->vm, w->vm) != 0 || g->gpu != w->gpu ||
            strcmp(g->gpu_uuid, w->gpu_uuid) != 0 || g->memory_mb != w->memory_mb ||
            g->share != w->share || g->limit != w->limit) {
            problem(c->r, "vGPU %s %s after a restart", w->id, g ? "changed" : "is gone");
            ok = false;
        } else if (qv_creds(cl, w->id, &cr, err) < 0 || strcmp(cr.secret, c->v[k].secret) != 0) {
            problem(c->r, "the secret of vGPU %s changed after a restart", w->id);
            ok = false;
        }
    }
    qv_vgpu_list_free(&list);
    qv_disconnect(&cl);
    return ok;
}

/* ---- setting up ---------------------------------------------------------------------- */

static int make_vgpus(struct chaos *c)
{
    static const qv_create_t specs[NVGPUS] = {
        {.vm = "chaos-a", .profile = "Q1", .gpu = 0},
        {.vm = "chaos-b", .memory_mb = 1536, .share = 30, .has_limit = 1, .limit = 50, .gpu = 0},
        {.vm = "chaos-c", .memory_mb = 1024, .share = 20, .has_limit = 1, .limit = 20, .gpu = 0},
    };
    char err[QV_ERR_LEN];
    qv_client_t *cl = qv_connect(qt_arbiter_socket_dir(c->arb), err);
    for (int k = 0; cl && k < NVGPUS; k++) {
        if (qv_create(cl, &specs[k], &c->v[k].want, c->v[k].secret, err) < 0) {
            qv_disconnect(&cl);
            break;
        }
        qts_env_vgpu(&c->v[k].env, qt_arbiter_socket_dir(c->arb), c->v[k].want.id, c->v[k].secret,
                     c->v[k].want.gpu_uuid);
        /* What a context costs the device is the driver's, outside any quota (as on real
         * GPUs): without it, NVML's per-process figure is what the quota covers. */
        qts_env_add(&c->v[k].env, "QSIM_CONTEXT_MEMORY=0");
    }
    if (!cl) {
        problem(c->r, "cannot create the vGPUs: %s", err);
        return -1;
    }
    qv_disconnect(&cl);
    return 0;
}

static int start_workloads(struct chaos *c, int ms)
{
    char *bin = qt_build_path("tests/progs/shim_work"), churn[64];
    snprintf(churn, sizeof churn, "churn:64M:%d", ms);
    const char *argv[] = {bin, "init", churn, NULL};
    for (int k = 0; k < NVGPUS; k++) {
        for (int j = 0; j < PER_VGPU; j++) {
            if (!(c->v[k].procs[j] = qt_spawn(argv, c->v[k].env.v))) {
                problem(c->r, "cannot start %s", bin);
                free(bin);
                return -1;
            }
            c->v[k].pids[j] = qt_proc_pid(c->v[k].procs[j]);
        }
    }
    free(bin);
    return 0;
}

/* Waits for the workloads and adds up what they did. */
static void finish_workloads(struct chaos *c, int timeout_ms)
{
    qt_chaos_result_t *r = c->r;
    for (int k = 0; k < NVGPUS; k++) {
        for (int j = 0; j < PER_VGPU; j++) {
            qt_proc_t *p = c->v[k].procs[j];
            if (!p)
                continue;
            int st = qt_proc_wait(p, timeout_ms);
            long rounds, granted, refused, kernels, failed;
            const char *line = strstr(qt_proc_stdout(p), "churn ");
            if (st != 0 || !line ||
                sscanf(line, "churn %ld %ld %ld %ld %ld", &rounds, &granted, &refused, &kernels,
                       &failed) != 5) {
                r->bad_workloads++;
                problem(r, "a workload of vGPU %s ended with status %d: %.200s", c->v[k].want.id,
                        st, qt_proc_stderr(p));
            } else {
                r->granted += granted;
                r->refused += refused;
                r->kernels += kernels;
                r->failed_launches += failed;
            }
            qt_proc_destroy(&c->v[k].procs[j]);
        }
    }
}

int qt_chaos_run(const qt_chaos_opts_t *opts, qt_chaos_result_t *r)
{
    memset(r, 0, sizeof *r);
    struct chaos c = {.r = r};
    pthread_mutex_init(&c.lock, NULL);
    qt_sim_private("NVIDIA GeForce GTX 1080:4GiB:20");
    if (!(c.arb = qt_arbiter_start(NULL, NULL))) {
        problem(r, "the arbiter did not start");
        return -1;
    }
    int rc = -1;
    if (make_vgpus(&c) < 0 || start_workloads(&c, opts->duration_ms) < 0)
        goto out;
    if (pthread_create(&c.sampler, NULL, sample_main, &c) != 0) {
        problem(r, "cannot start the sampler thread");
        goto out;
    }
    rc = 0;
    unsigned seed = opts->seed;
    uint64_t end = qt_now_ns() + (uint64_t)opts->duration_ms * 1000000ull;
    while (qt_now_ns() < end) {
        qt_sleep_ms(200 + (int)(rand_r(&seed) % 1300));
        if (qt_now_ns() >= end)
            break;
        qt_arbiter_kill(c.arb, SIGKILL);
        r->kills++;
        if (qt_arbiter_restart(c.arb) < 0) {
            r->failed_restarts++;
            problem(r, "restart %d did not come up", r->kills);
            break;
        }
        if (!state_intact(&c))
            r->state_changes++;
    }
    finish_workloads(&c, 20000);
    atomic_store(&c.stop, true);
    pthread_join(c.sampler, NULL);
out:
    finish_workloads(&c, 100);
    qt_arbiter_destroy(&c.arb);
    pthread_mutex_destroy(&c.lock);
    return rc;
}
