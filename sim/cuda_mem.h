/* cuda_mem.h - device memory: the registry of what the driver handed out, charging it
 * to the simulated device, and the mappings that back it.
 * Threads: any; the registry under qsim_g.lock, charges under the host lock. */
#ifndef QSIM_CUDA_MEM_H
#define QSIM_CUDA_MEM_H

#include "sim/cuda_state.h"

/* Granularity of plain device allocations' charges (cuMemAlloc and friends). */
#define QSIM_ALLOC_ALIGN 512u
/* Granularity of VMM and memory pool reservations (cuMemGetAllocationGranularity). */
#define QSIM_GRANULARITY (2u << 20)

static inline size_t qsim_round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

/* Charges bytes to ordinal ord's device for this process, after reaping dead processes.
 * CUDA_ERROR_OUT_OF_MEMORY when the device has less free. */
CUresult qsim_mem_charge(int ord, uint64_t bytes);
/* Gives back what qsim_mem_charge took. */
void qsim_mem_uncharge(int ord, uint64_t bytes);

/* An anonymous read-write MAP_NORESERVE mapping of bytes (costs nothing until touched),
 * or NULL. */
void *qsim_mem_map(size_t bytes);

/* Records *a (copied). Caller holds qsim_g.lock. CUDA_ERROR_OUT_OF_MEMORY if the
 * registry cannot grow. */
CUresult qsim_mem_add_locked(const struct qsim_alloc *a);
/* The entry holding address p, or NULL. Valid until qsim_g.lock is released. */
struct qsim_alloc *qsim_mem_find_locked(uintptr_t p);
/* Forgets the entry whose base is `base`. */
void qsim_mem_remove_locked(uintptr_t base);

/* The kind (enum qsim_mem_kind) of the allocation that holds all of [p, p + n), or 0
 * when no single allocation does. Takes qsim_g.lock. */
int qsim_mem_kind_of(uintptr_t p, size_t n);

/* The same, for n bytes written at p: 0 also when the memory is mapped read-only. */
int qsim_mem_dest_kind_of(uintptr_t p, size_t n);

/* Frees every plain allocation made in ctx. Caller holds qsim_g.lock. */
void qsim_mem_drop_ctx_locked(struct qsim_ctx *ctx);
/* Frees every array and mipmapped array made in ctx (cuda_array.c). The same. */
void qsim_array_drop_ctx_locked(struct qsim_ctx *ctx);

#endif
