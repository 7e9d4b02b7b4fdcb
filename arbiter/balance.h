/* balance.h - which vGPUs to move so that no GPU stays overloaded while another idles
 * (docs/migration.md "Auto-balance"): the planner, pure.
 *
 * A GPU's pressure is its compute utilisation averaged over the last interval (percent),
 * or, with memory pressure on, the larger of that and the share of its memory in use.
 * While the GPU under most pressure is above `high` and a GPU of the same chip is below
 * `low`, the least-used vGPU of the first that fits the second under the admission rules
 * (placement.h) and makes things better moves: after the move both GPUs must be under
 * the first's pressure before it, and the target under `high`. So a vGPU that does
 * nothing never moves (it would change nothing), and no move can be undone by the next
 * one: the largest pressure only goes down. A vGPU that moved does not move again for
 * `cooldown_ns`. Each planned move is applied to the figures before the next is looked
 * for, up to max_moves.
 *
 * Pure functions: figures in, a plan out; no clock (now is given) and no I/O. */
#ifndef QA_BALANCE_H
#define QA_BALANCE_H

#include "arbiter/config.h"
#include "arbiter/placement.h"
#include "proto/records.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QA_BAL_MAX_GPUS 64 /* as many as a host may have (host.h) */

/* A GPU, as the planner sees it. */
typedef struct qa_bal_gpu {
    unsigned index;       /* the host's */
    const char *chip;     /* its name: moves only go between GPUs of one chip */
    double util;          /* compute percent, averaged over the interval */
    uint64_t memory_used; /* bytes in use on it (every process), latest */
    qa_gpu_load_t load;   /* reservations, for admission (memory_total_mb is its size) */
} qa_bal_gpu_t;

/* A vGPU, as the planner sees it. */
typedef struct qa_bal_vgpu {
    const char *id;       /* "vg-3", for the plan's words */
    unsigned gpu;         /* its GPU: an index into the array of GPUs given */
    uint64_t memory_mb;   /* its quota */
    unsigned share;       /* its share */
    double util;          /* percent of its GPU's time its processes used, over the interval */
    uint64_t memory_used; /* bytes its processes hold on the device */
    uint64_t moved_at;    /* when it last moved (monotonic ns); 0: never */
    bool pinned;          /* may not move now (a move of it is under way) */
} qa_bal_vgpu_t;

typedef struct qa_bal_params {
    double high;          /* percent: a GPU above this is overloaded */
    double low;           /* percent: a GPU below this can take more */
    bool memory;          /* memory in use counts as pressure */
    uint64_t cooldown_ns; /* a vGPU that moved stays this long */
    size_t max_moves;     /* at most this many moves in one plan */
} qa_bal_params_t;

/* One move of a plan. */
typedef struct qa_bal_move {
    size_t vgpu;           /* index into the vGPUs given */
    unsigned from, to;     /* GPU indexes */
    char why[QP_ERR_LEN];  /* "GPU 0 at 97% compute (over 80%), GPU 1 at 2% (under 40%):
                            * vg-2 uses 31%" */
} qa_bal_move_t;

/* Plans moves for the GPUs and vGPUs given (copied: the caller's figures are not changed),
 * at most min(max_out, p->max_moves). Returns how many were written to out. cfg rules
 * admission. */
size_t qa_balance_plan(const qa_bal_gpu_t *gpus, size_t ngpus, const qa_bal_vgpu_t *vgpus,
                       size_t nvgpus, const qa_bal_params_t *p, const qa_config_t *cfg,
                       uint64_t now, qa_bal_move_t *out, size_t max_out);

/* The pressure of gpu under p: percent, as described above. */
double qa_balance_pressure(const qa_bal_gpu_t *gpu, const qa_bal_params_t *p);

#endif
