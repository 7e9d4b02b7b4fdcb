/* nvml.c - discovery and sampling through a dlopen'ed NVML. Threads: see nvml.h. */
#include "arbiter/nvml.h"

#include "nvml_subset.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct qa_nvml {
    void *lib; /* owned: dlopen handle */
    nvmlReturn_t (*init)(void);
    nvmlReturn_t (*shutdown)(void);
    const char *(*error_string)(nvmlReturn_t);
    nvmlReturn_t (*count)(unsigned *);
    nvmlReturn_t (*by_index)(unsigned, nvmlDevice_t *);
    nvmlReturn_t (*name)(nvmlDevice_t, char *, unsigned);
    nvmlReturn_t (*uuid)(nvmlDevice_t, char *, unsigned);
    nvmlReturn_t (*memory)(nvmlDevice_t, nvmlMemory_t *);
    nvmlReturn_t (*utilization)(nvmlDevice_t, nvmlUtilization_t *);
    nvmlReturn_t (*proc_util)(nvmlDevice_t, nvmlProcessUtilizationSample_t *, unsigned *,
                              unsigned long long);
    /* The process lists (may be NULL): the _v3/_v2 symbols fill nvmlProcessInfo_t, the
     * unversioned ones of old drivers the v1 layout (v1 set). */
    nvmlReturn_t (*compute_procs)(nvmlDevice_t, unsigned *, void *);
    nvmlReturn_t (*graphics_procs)(nvmlDevice_t, unsigned *, void *);
    bool compute_v1, graphics_v1;
    nvmlReturn_t (*cores)(nvmlDevice_t, unsigned *);                    /* may be NULL */
    nvmlReturn_t (*attributes)(nvmlDevice_t, nvmlDeviceAttributes_t *); /* may be NULL */
    nvmlReturn_t (*capability)(nvmlDevice_t, int *, int *);             /* may be NULL */
    unsigned long long last_seen[QA_MAX_GPUS]; /* per GPU: newest process sample seen */
};

/* The first of two names the library exports (the versioned one first). */
static void *sym2(void *lib, const char *a, const char *b)
{
    void *p = dlsym(lib, a);
    return p || !b ? p : dlsym(lib, b);
}

/* A process-list function: NAME_v3, else NAME_v2 (both fill nvmlProcessInfo_t), else
 * NAME of drivers before r470 (*v1 set: the v1 layout); NULL when there is none. */
static void *proc_list_sym(void *lib, const char *name, bool *v1)
{
    char versioned[96];
    *v1 = false;
    snprintf(versioned, sizeof versioned, "%s_v3", name);
    void *p = dlsym(lib, versioned);
    if (!p) {
        snprintf(versioned, sizeof versioned, "%s_v2", name);
        p = dlsym(lib, versioned);
    }
    if (!p && (p = dlsym(lib, name)))
        *v1 = true;
    return p;
}

qa_nvml_t *qa_nvml_open(char err[QP_ERR_LEN])
{
    qa_nvml_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, QP_ERR_LEN, "out of memory");
        return NULL;
    }
    self->lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!self->lib) {
        snprintf(err, QP_ERR_LEN,
                 "no NVIDIA driver: cannot load libnvidia-ml.so.1 (install the driver, or "
                 "set LD_LIBRARY_PATH=build/sim for the simulated GPU)");
        free(self);
        return NULL;
    }
    *(void **)&self->init = sym2(self->lib, "nvmlInit_v2", "nvmlInit");
    *(void **)&self->shutdown = sym2(self->lib, "nvmlShutdown", NULL);
    *(void **)&self->error_string = sym2(self->lib, "nvmlErrorString", NULL);
    *(void **)&self->count = sym2(self->lib, "nvmlDeviceGetCount_v2", "nvmlDeviceGetCount");
    *(void **)&self->by_index =
        sym2(self->lib, "nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex");
    *(void **)&self->name = sym2(self->lib, "nvmlDeviceGetName", NULL);
    *(void **)&self->uuid = sym2(self->lib, "nvmlDeviceGetUUID", NULL);
    *(void **)&self->memory = sym2(self->lib, "nvmlDeviceGetMemoryInfo", NULL);
    *(void **)&self->utilization = sym2(self->lib, "nvmlDeviceGetUtilizationRates", NULL);
    *(void **)&self->proc_util = sym2(self->lib, "nvmlDeviceGetProcessUtilization", NULL);
    *(void **)&self->compute_procs =
        proc_list_sym(self->lib, "nvmlDeviceGetComputeRunningProcesses", &self->compute_v1);
    *(void **)&self->graphics_procs =
        proc_list_sym(self->lib, "nvmlDeviceGetGraphicsRunningProcesses", &self->graphics_v1);
    *(void **)&self->cores = sym2(self->lib, "nvmlDeviceGetNumGpuCores", NULL);
    *(void **)&self->attributes = sym2(self->lib, "nvmlDeviceGetAttributes_v2", NULL);
    *(void **)&self->capability = sym2(self->lib, "nvmlDeviceGetCudaComputeCapability", NULL);
    if (!self->init || !self->shutdown || !self->error_string || !self->count || !self->by_index ||
        !self->name || !self->uuid || !self->memory || !self->utilization) {
        snprintf(err, QP_ERR_LEN,
                 "libnvidia-ml.so.1 lacks functions qarbiter needs: update the NVIDIA driver");
        dlclose(self->lib);
        free(self);
        return NULL;
    }
    nvmlReturn_t r = self->init();
    if (r != NVML_SUCCESS) {
        snprintf(err, QP_ERR_LEN, "NVML failed to initialise: %s (is the NVIDIA driver loaded?)",
                 self->error_string(r));
        dlclose(self->lib);
        free(self);
        return NULL;
    }
    return self;
}

void qa_nvml_close(qa_nvml_t **self_p)
{
    qa_nvml_t *self = *self_p;
    if (!self)
        return;
    self->shutdown();
    dlclose(self->lib);
    free(self);
    *self_p = NULL;
}

bool qa_nvml_lists_processes(const qa_nvml_t *self)
{
    return self->compute_procs != NULL;
}

unsigned qa_cores_per_sm(int major, int minor)
{
    switch (major) {
    case 3:
        return 192;
    case 5:
        return 128;
    case 6:
        return minor == 0 ? 64 : 128;
    case 7:
        return 64;
    case 8:
        return minor == 0 ? 64 : 128;
    case 9:
    case 10:
    case 11:
    case 12:
        return 128;
    default:
        return 0;
    }
}

/* SMs and CUDA cores of dev, deriving one from the other where the driver lacks it. */
static void compute_units(qa_nvml_t *self, nvmlDevice_t dev, qa_gpu_desc_t *g, unsigned *derived)
{
    nvmlDeviceAttributes_t attr;
    unsigned cores = 0;
    memset(&attr, 0, sizeof attr);
    if (self->attributes && self->attributes(dev, &attr) == NVML_SUCCESS)
        g->sms = attr.multiprocessorCount;
    if (self->cores && self->cores(dev, &cores) == NVML_SUCCESS)
        g->cuda_cores = cores;
    if (g->sms && g->cuda_cores)
        return;
    int major = 0, minor = 0;
    unsigned per_sm = 0;
    if (self->capability && self->capability(dev, &major, &minor) == NVML_SUCCESS)
        per_sm = qa_cores_per_sm(major, minor);
    if (!per_sm)
        return;
    if (g->sms && !g->cuda_cores) {
        g->cuda_cores = g->sms * per_sm;
        (*derived)++;
    } else if (!g->sms && g->cuda_cores) {
        g->sms = g->cuda_cores / per_sm;
        (*derived)++;
    }
}

int qa_nvml_describe(qa_nvml_t *self, qa_gpu_desc_t *gpus, size_t max, size_t *n, unsigned *derived,
                     char err[QP_ERR_LEN])
{
    unsigned count = 0;
    *n = 0;
    *derived = 0;
    nvmlReturn_t r = self->count(&count);
    if (r != NVML_SUCCESS) {
        snprintf(err, QP_ERR_LEN, "NVML cannot count GPUs: %s", self->error_string(r));
        return -EIO;
    }
    if (count == 0) {
        snprintf(err, QP_ERR_LEN, "no GPU: the NVIDIA driver is loaded but sees no device");
        return -ENODEV;
    }
    if (count > max)
        count = (unsigned)max;
    for (unsigned i = 0; i < count; i++) {
        qa_gpu_desc_t *g = &gpus[i];
        nvmlDevice_t dev;
        nvmlMemory_t mem;
        memset(g, 0, sizeof *g);
        g->index = i;
        if ((r = self->by_index(i, &dev)) != NVML_SUCCESS ||
            (r = self->name(dev, g->name, sizeof g->name)) != NVML_SUCCESS ||
            (r = self->uuid(dev, g->uuid, sizeof g->uuid)) != NVML_SUCCESS ||
            (r = self->memory(dev, &mem)) != NVML_SUCCESS) {
            snprintf(err, QP_ERR_LEN, "NVML cannot describe GPU %u: %s", i, self->error_string(r));
            return -EIO;
        }
        g->memory_total = mem.total;
        compute_units(self, dev, g, derived);
    }
    *n = count;
    return 0;
}

/* Adds the processes one list function reports to out->mem, each pid once: a process
 * with both a compute and a graphics context is in both lists, with the same figure.
 * Returns false when the list cannot be read whole. */
static bool add_procs(nvmlDevice_t dev, nvmlReturn_t (*fn)(nvmlDevice_t, unsigned *, void *),
                      bool v1, qa_gpu_sample_t *out)
{
    /* Static: only the sampler thread samples (nvml.h), and 8 KiB is too much stack to
     * take twice per GPU for nothing. */
    static nvmlProcessInfo_t info[QA_MAX_GPU_PROCS];
    unsigned n = QA_MAX_GPU_PROCS;
    if (fn(dev, &n, info) != NVML_SUCCESS || n > QA_MAX_GPU_PROCS)
        return false; /* INSUFFICIENT_SIZE: more processes than we keep */
    for (unsigned i = 0; i < n; i++) {
        unsigned pid;
        unsigned long long bytes;
        if (v1) {
            const nvmlProcessInfo_v1_t *e = (const nvmlProcessInfo_v1_t *)(const void *)info + i;
            pid = e->pid;
            bytes = e->usedGpuMemory;
        } else {
            pid = info[i].pid;
            bytes = info[i].usedGpuMemory;
        }
        size_t k = 0;
        while (k < out->nmem && out->mem[k].pid != pid)
            k++;
        if (k == QA_MAX_GPU_PROCS)
            return false;
        if (k == out->nmem) {
            out->mem[k] = (qa_proc_mem_t){.pid = pid};
            out->nmem++;
        }
        if (bytes != NVML_VALUE_NOT_AVAILABLE && bytes >= out->mem[k].bytes) {
            out->mem[k].bytes = bytes;
            out->mem[k].known = true;
        }
    }
    return true;
}

void qa_nvml_sample(qa_nvml_t *self, unsigned index, qa_gpu_sample_t *out)
{
    nvmlDevice_t dev;
    nvmlUtilization_t u;
    nvmlMemory_t mem;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    /* Not memset whole: the process arrays are large and only their first entries count. */
    out->ok = out->mem_ok = false;
    out->nprocs = out->nmem = 0;
    out->util = 0;
    out->memory_used = 0;
    out->taken = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    if (self->by_index(index, &dev) != NVML_SUCCESS || self->utilization(dev, &u) != NVML_SUCCESS ||
        self->memory(dev, &mem) != NVML_SUCCESS)
        return;
    out->ok = true;
    out->util = u.gpu > 100 ? 100 : u.gpu;
    out->memory_used = mem.used;
    out->mem_ok = self->compute_procs &&
                  add_procs(dev, self->compute_procs, self->compute_v1, out) &&
                  (!self->graphics_procs ||
                   add_procs(dev, self->graphics_procs, self->graphics_v1, out));
    if (!self->proc_util || index >= QA_MAX_GPUS)
        return;
    nvmlProcessUtilizationSample_t s[QA_MAX_PROC_SAMPLES];
    unsigned ns = QA_MAX_PROC_SAMPLES;
    if (self->proc_util(dev, s, &ns, self->last_seen[index]) != NVML_SUCCESS)
        return; /* NOT_FOUND: no process ran since the last sample */
    /* A process may appear in several samples since lastSeen: keep its highest. */
    for (unsigned i = 0; i < ns && i < QA_MAX_PROC_SAMPLES; i++) {
        if (s[i].timeStamp > self->last_seen[index])
            self->last_seen[index] = s[i].timeStamp;
        size_t k = 0;
        while (k < out->nprocs && out->procs[k].pid != s[i].pid)
            k++;
        if (k == out->nprocs) {
            out->procs[k].pid = s[i].pid;
            out->procs[k].sm = 0;
            out->nprocs++;
        }
        unsigned sm = s[i].smUtil > 100 ? 100 : s[i].smUtil;
        if (sm > out->procs[k].sm)
            out->procs[k].sm = sm;
    }
}
