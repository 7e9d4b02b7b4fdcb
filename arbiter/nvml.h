/* nvml.h - the GPUs of this host through NVML, loaded at run time (dlopen of
 * libnvidia-ml.so.1), so that qarbiter starts and says why on a machine without the
 * driver instead of failing to load. The simulated library is found the same way,
 * through LD_LIBRARY_PATH.
 *
 * Threads: qa_nvml_open/describe run on the main thread at start; afterwards only the
 * sampler thread calls qa_nvml_sample. NVML itself is thread-safe. */
#ifndef QA_NVML_H
#define QA_NVML_H

#include "arbiter/host.h"
#include "proto/msg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QA_MAX_PROC_SAMPLES 64
#define QA_MAX_GPU_PROCS 256 /* processes whose memory one sample lists per GPU */

typedef struct qa_nvml qa_nvml_t;

/* One process's share of a GPU in the last sample period. */
typedef struct qa_proc_util {
    unsigned pid; /* as the host sees it */
    unsigned sm;  /* percent of the GPU's time */
} qa_proc_util_t;

/* One process's device memory on a GPU, as NVML reports it: everything the process holds
 * there, the driver's own memory for its contexts included. */
typedef struct qa_proc_mem {
    unsigned pid;   /* as the host sees it */
    bool known;     /* false: the driver did not say (NVML_VALUE_NOT_AVAILABLE); bytes is 0 */
    uint64_t bytes; /* device memory */
} qa_proc_mem_t;

/* What one sample of one GPU found. */
typedef struct qa_gpu_sample {
    bool ok;              /* the sample succeeded; the rest is valid */
    uint64_t taken;       /* CLOCK_MONOTONIC ns when it began */
    unsigned util;        /* percent of the period a kernel ran */
    uint64_t memory_used; /* bytes in use, all processes */
    size_t nprocs;        /* entries in procs */
    qa_proc_util_t procs[QA_MAX_PROC_SAMPLES];
    bool mem_ok;  /* the process list below is complete (false: unsupported, failed, or more
                   * than QA_MAX_GPU_PROCS processes) */
    size_t nmem;  /* entries in mem */
    qa_proc_mem_t mem[QA_MAX_GPU_PROCS]; /* compute and graphics processes, each pid once */
} qa_gpu_sample_t;

/* Loads and initialises NVML. Returns NULL with err as one line ("no NVIDIA driver:
 * cannot load libnvidia-ml.so.1 ...") when there is no driver or it fails. */
qa_nvml_t *qa_nvml_open(char err[QP_ERR_LEN]);
/* Shuts NVML down and unloads it; sets *self_p to NULL. */
void qa_nvml_close(qa_nvml_t **self_p);

/* Fills gpus (room for max) with every GPU: index, name, UUID, memory, SMs and CUDA
 * cores (SMs from nvmlDeviceGetAttributes_v2, cores from nvmlDeviceGetNumGpuCores; where
 * a driver does not support one, it is derived from the other and the compute
 * capability). *n receives the count. Returns 0, or -ENODEV with err when NVML sees no
 * GPU, or -EIO when a query fails. *notes receives a count of figures that had to be
 * derived (the caller may log it). */
int qa_nvml_describe(qa_nvml_t *self, qa_gpu_desc_t *gpus, size_t max, size_t *n, unsigned *derived,
                     char err[QP_ERR_LEN]);

/* Samples GPU index now into out (out->ok false when NVML fails): utilization, memory,
 * each process's share of the GPU and each process's memory. */
void qa_nvml_sample(qa_nvml_t *self, unsigned index, qa_gpu_sample_t *out);

/* Whether the driver lists the processes of a GPU with their memory. */
bool qa_nvml_lists_processes(const qa_nvml_t *self);

/* CUDA cores per SM for compute capability major.minor; 0 when unknown. */
unsigned qa_cores_per_sm(int major, int minor);

#endif
