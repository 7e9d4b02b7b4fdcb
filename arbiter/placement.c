/* placement.c - admission and best-fit placement over GPU loads. Pure. */
#include "arbiter/placement.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static uint64_t memory_cap(const qa_gpu_load_t *g, const qa_config_t *cfg)
{
    return (uint64_t)floor((double)g->memory_total_mb * cfg->oversub_memory + 1e-9);
}

static unsigned share_cap(const qa_config_t *cfg)
{
    return (unsigned)floor(100.0 * cfg->oversub_share + 1e-9);
}

uint64_t qa_gpu_memory_free(const qa_gpu_load_t *g, const qa_config_t *cfg)
{
    uint64_t cap = memory_cap(g, cfg);
    return cap > g->memory_reserved_mb ? cap - g->memory_reserved_mb : 0;
}

unsigned qa_gpu_share_free(const qa_gpu_load_t *g, const qa_config_t *cfg)
{
    unsigned cap = share_cap(cfg);
    return cap > g->share_reserved ? cap - g->share_reserved : 0;
}

static bool fits(const qa_gpu_load_t *g, uint64_t memory_mb, unsigned share, const qa_config_t *cfg)
{
    /* Oversubscription never makes one vGPU larger than its physical GPU. */
    return memory_mb <= g->memory_total_mb && memory_mb <= qa_gpu_memory_free(g, cfg) &&
           share <= qa_gpu_share_free(g, cfg);
}

int qa_admit(const qa_gpu_load_t *g, int index, uint64_t memory_mb, unsigned share,
             const qa_config_t *cfg, char err[QP_ERR_LEN])
{
    if (fits(g, memory_mb, share, cfg))
        return 0;
    if (memory_mb > g->memory_total_mb) {
        snprintf(err, QP_ERR_LEN, "GPU %d has %llu MiB in all, %llu MiB asked", index,
                 (unsigned long long)g->memory_total_mb, (unsigned long long)memory_mb);
        return -ENOSPC;
    }
    snprintf(err, QP_ERR_LEN, "GPU %d has %llu MiB and %u%% free, %llu MiB and %u%% asked", index,
             (unsigned long long)qa_gpu_memory_free(g, cfg), qa_gpu_share_free(g, cfg),
             (unsigned long long)memory_mb, share);
    return -ENOSPC;
}

/* Load of g once memory_mb and share are added: 0 (empty) .. 1 (full). */
static double load_after(const qa_gpu_load_t *g, uint64_t memory_mb, unsigned share,
                         const qa_config_t *cfg)
{
    double mcap = (double)memory_cap(g, cfg), scap = (double)share_cap(cfg);
    double m = mcap > 0 ? (double)(g->memory_reserved_mb + memory_mb) / mcap : 1;
    double s = scap > 0 ? (double)(g->share_reserved + share) / scap : 1;
    return m > s ? m : s;
}

int qa_place(const qa_gpu_load_t *gpus, size_t n, uint64_t memory_mb, unsigned share,
             const qa_config_t *cfg, char err[QP_ERR_LEN])
{
    int best = -1;
    double best_score = 0;
    for (size_t i = 0; i < n; i++) {
        if (!fits(&gpus[i], memory_mb, share, cfg))
            continue;
        double busy = cfg->util_weight * gpus[i].util / 100.0;
        double load = load_after(&gpus[i], memory_mb, share, cfg);
        double score = cfg->placement == QA_SPREAD ? -(load + busy) : load - busy;
        if (best < 0 || score > best_score + 1e-12) {
            best = (int)i;
            best_score = score;
        }
    }
    if (best >= 0)
        return best;
    int len =
        snprintf(err, QP_ERR_LEN,
                 "no GPU can guarantee %llu MiB and %u%%:", (unsigned long long)memory_mb, share);
    for (size_t i = 0; i < n && len > 0 && len < QP_ERR_LEN; i++) {
        len +=
            snprintf(err + len, QP_ERR_LEN - (size_t)len, "%s GPU %zu has %llu MiB and %u%% free",
                     i ? "," : "", i, (unsigned long long)qa_gpu_memory_free(&gpus[i], cfg),
                     qa_gpu_share_free(&gpus[i], cfg));
    }
    if (n == 0)
        snprintf(err, QP_ERR_LEN, "no GPU to place a vGPU on");
    return -ENOSPC;
}
