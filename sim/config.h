/* config.h - what a simulated host is made of, read from the environment.
 *
 *   QSIM_GPUS          NAME:MEMORY:SMS[,NAME:MEMORY:SMS...]; unset: one GTX 1080
 *   QSIM_NAMESPACE     which simulated host ([A-Za-z0-9._-], at most 63 characters)
 *   QSIM_TIMESLICE_US  time slice of the round-robin scheduler (50 .. 1000000)
 *   QSIM_CONTEXT_MEMORY device memory each context of the process costs (a size; 0: none)
 *   QSIM_DRIVER_VERSION the driver release simulated, by the CUDA version it supports
 *                      (13000: r580, the default; 12080: r570; ...), per process
 *
 * Pure functions of their arguments; any thread. */
#ifndef QSIM_CONFIG_H
#define QSIM_CONFIG_H

#include <stdint.h>

#include "sim/shm.h"

#define QSIM_ERR_LEN 512
#define QSIM_UUID_STR_LEN 41 /* "GPU-" + 36 + NUL */
#define QSIM_DEFAULT_GPUS "NVIDIA GeForce GTX 1080:8GiB:20"
#define QSIM_DEFAULT_NAMESPACE "default"
#define QSIM_DEFAULT_SLICE_US 1000u
/* What a context costs the device by default: a CUDA 12 context with lazy module loading
 * keeps about this much on current GPUs (its code, local memory for the default stack,
 * printf buffer and malloc heap), before any library (cuBLAS, cuDNN) loads its kernels. */
#define QSIM_DEFAULT_CONTEXT_MEMORY (256ull << 20)

/* A driver release the simulator can stand for: what cuDriverGetVersion and NVML say, and
 * so which entry points and arguments it knows (cuGetProcAddress, checkpoint restore's
 * gpuPairs from 13000 on). */
struct qsim_driver {
    int cuda;            /* cuDriverGetVersion: 13000 for CUDA 13.0 */
    const char *release; /* nvmlSystemGetDriverVersion: "580.65.06" */
};

struct qsim_gpu_spec {
    char name[QSIM_NAME_LEN]; /* marketing name */
    uint64_t memory;          /* bytes */
    uint32_t sms;             /* multiprocessors */
};

typedef struct qsim_config {
    char ns[QSIM_NS_LEN]; /* namespace */
    int ngpu;             /* entries in gpu[] */
    struct qsim_gpu_spec gpu[QSIM_MAX_DEVICES];
    uint64_t slice_ns;        /* time slice */
    uint64_t ctx_memory;      /* bytes each context of this process costs its device */
    const struct qsim_driver *driver; /* the release simulated (static storage) */
    char gpus[QSIM_GPUS_LEN]; /* the list normalised, to compare hosts */
} qsim_config_t;

/* Reads the QSIM_* variables into *cfg. Returns 0, or -EINVAL with one line in err that
 * names the variable and the bad entry. */
int qsim_config_from_env(qsim_config_t *cfg, char err[QSIM_ERR_LEN]);

/* The release QSIM_DRIVER_VERSION names (text: its value; NULL or empty: the default,
 * 13000). Returns it, or NULL with one line in err listing the versions known. */
const struct qsim_driver *qsim_config_driver(const char *text, char err[QSIM_ERR_LEN]);

/* Parses one QSIM_GPUS list (see above) into cfg->gpu, cfg->ngpu and cfg->gpus.
 * Returns 0 or -EINVAL with one line in err. */
int qsim_config_parse_gpus(qsim_config_t *cfg, const char *list, char err[QSIM_ERR_LEN]);

/* A plausible compute capability for a marketing name (6.1 for a GTX 1080, 9.0 for an
 * H100, ...; 8.6 when the name is not recognised). */
void qsim_config_cc(const char *name, int *major, int *minor);

/* The UUID of device `index` of namespace ns: the same in every process and run. */
void qsim_config_uuid(const char *ns, int index, uint8_t uuid[16]);

/* Formats a UUID as NVIDIA does: "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx". */
void qsim_config_uuid_str(const uint8_t uuid[16], char out[QSIM_UUID_STR_LEN]);

#endif
