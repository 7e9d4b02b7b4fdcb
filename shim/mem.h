/* mem.h - charging device memory to the vGPU: the allocation hooks' common part.
 *
 * An allocation charges its bytes before the driver is asked (so that processes racing
 * for the last bytes of a quota cannot both win), gives them back if the driver fails,
 * and remembers them under its pointer or handle, so that its free gives back exactly
 * that. Charging is an atomic compare-and-swap against this process's reservation; only
 * when the reservation runs short does the thread ask the agent for more (a round trip
 * to the arbiter). Threads: any.
 *
 * State: mem.c's own: the reservation, the quota and the vGPU's other processes' use (the
 * agent stores what the arbiter says, through the functions below), and the table of
 * what each allocation charged. Stream-ordered pools (shim/pools.h) and physical
 * allocations (shim/vmm.h) keep their own records and charge through here. */
#ifndef QS_MEM_H
#define QS_MEM_H

#include <stdbool.h>
#include <stdint.h>

#include "shim/cuda.h"
#include "shim/ptrtab.h"
#include "shim/resv.h"

struct qs_pool; /* a stream-ordered pool's record: shim/pools.c */

/* Tenant set-up (the allocation table); called by qs_init_slow() once per process. */
void qs_mem_init(void);
/* Around fork (shim/init.c's handlers): the forking thread takes the allocation table's
 * locks before it forks and drops them after, in the parent, so that the table is not
 * caught half-changed in the child. */
void qs_mem_before_fork(void);
void qs_mem_after_fork_parent(void);
/* In a fork child: forget the parent's allocations and reservation. */
void qs_mem_reset_after_fork(void);

/* The vGPU's quota in bytes; 0 while the arbiter never answered (nothing can be charged). */
uint64_t qs_mem_quota(void);
/* What the vGPU's processes hold: the others' as the arbiter last reported, plus ours now. */
uint64_t qs_mem_vgpu_used(void);

/* ---- the agent's side (shim/agent.c): what the arbiter said ------------------------- */

/* This process's reservation. Only the agent changes it (qs_resv_grant, _take,
 * _reset_to_used); every thread charges against it through qs_mem_charge(). */
struct qs_resv *qs_mem_resv(void);
/* The vGPU's quota, from LIMITS. */
void qs_mem_set_quota(uint64_t quota);
/* What the vGPU's other processes hold, as the arbiter last reported. */
void qs_mem_set_others(uint64_t bytes);
/* The arbiter answers again: the next outage is said again. */
void qs_mem_arbiter_back(void);

/* Charges n bytes. Returns 0; -EDQUOT past the quota; -ENOTCONN when the reservation is
 * short and the arbiter unreachable (logged once per outage). */
int qs_mem_charge(uint64_t n);
/* Gives n charged bytes back. */
void qs_mem_uncharge(uint64_t n);
/* Charges n bytes the device already holds, past the quota if need be. */
void qs_mem_force(uint64_t n);

/* Remembers that (kind, key) holds bytes charged in the current context (ctx_bound) or
 * for the process (not). Should the table be out of memory, the charge stays: it then
 * outlives the allocation, which errs on the safe side (logged once). */
void qs_mem_track(qs_alloc_kind_t kind, uint64_t key, uint64_t bytes, bool ctx_bound);
/* Remembers that device pointer dptr was allocated from pool (whose growth is charged, so
 * the allocation itself charges nothing); the caller holds pool->lock. */
void qs_mem_track_pooled(uint64_t dptr, struct qs_pool *pool);

/* One free, whatever its entry point: qs_mem_free_begin() takes the entry out of the
 * table before the driver frees (once freed, another thread may be handed the same key
 * and must find no stale entry under it); qs_mem_free_end() settles on the driver's
 * answer. A device pointer (QS_ALLOC_DPTR) is looked up as a pooled one too. */
struct qs_freeing {
    qs_alloc_kind_t kind; /* what the entry was, or 0 when there was none */
    uint64_t key;         /* the pointer or handle */
    uint64_t bytes;       /* what it charged */
    const void *owner;    /* its context, or its pool (QS_ALLOC_POOLED) */
};
void qs_mem_free_begin(qs_alloc_kind_t kind, uint64_t key, struct qs_freeing *f);
/* r is the driver's answer: on success gives the charge back (and tells its pool), else
 * puts the entry back as it was. Returns r. */
CUresult qs_mem_free_end(CUresult r, const struct qs_freeing *f);

/* The driver freed everything allocated in ctx (it was destroyed): uncharge it. */
void qs_mem_context_gone(CUcontext ctx);

#endif
