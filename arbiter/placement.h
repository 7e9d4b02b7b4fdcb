/* placement.h - admission control and the choice of a GPU for a new vGPU.
 *
 * Per GPU, quotas may sum to at most memory x oversub_memory and shares to at most
 * 100% x oversub_share. Among the GPUs where a vGPU fits, placement scores each by its
 * load once the vGPU is added, load = max(memory reserved / capacity, share reserved /
 * capacity), plus util_weight x its measured utilisation (EWMA, 0..1): spread picks the
 * lowest score, pack the highest reservation load minus the same utilisation term, so
 * that packing still steers away from GPUs that are busy now. Ties go to the lowest
 * index. Pure functions. */
#ifndef QA_PLACEMENT_H
#define QA_PLACEMENT_H

#include "arbiter/config.h"

#include <stddef.h>
#include <stdint.h>

/* What placement needs to know of one GPU. */
typedef struct qa_gpu_load {
    uint64_t memory_total_mb;    /* physical memory */
    uint64_t memory_reserved_mb; /* sum of its vGPUs' quotas */
    unsigned share_reserved;     /* sum of its vGPUs' shares, percent */
    double util;                 /* measured compute utilisation, percent, EWMA */
} qa_gpu_load_t;

/* Memory (MiB) and share (percent) that GPU g can still guarantee under cfg. */
uint64_t qa_gpu_memory_free(const qa_gpu_load_t *g, const qa_config_t *cfg);
unsigned qa_gpu_share_free(const qa_gpu_load_t *g, const qa_config_t *cfg);

/* Returns 0 when memory_mb and share fit on GPU g (numbered index), else -ENOSPC with
 * err as "GPU 1 has 1536 MiB and 60% free, 4096 MiB and 40% asked". */
int qa_admit(const qa_gpu_load_t *g, int index, uint64_t memory_mb, unsigned share,
             const qa_config_t *cfg, char err[QP_ERR_LEN]);

/* Returns the index of the GPU to use, or -ENOSPC with err saying what each GPU has
 * free. */
int qa_place(const qa_gpu_load_t *gpus, size_t n, uint64_t memory_mb, unsigned share,
             const qa_config_t *cfg, char err[QP_ERR_LEN]);

#endif
