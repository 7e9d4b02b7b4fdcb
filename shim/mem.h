/* mem.h - charging device memory to the vGPU: the allocation hooks' common part.
 *
 * An allocation charges its bytes before the driver is asked (so that processes racing
 * for the last bytes of a quota cannot both win), gives them back if the driver fails,
 * and remembers them under its pointer or handle, so that its free gives back exactly
 * that. Charging is an atomic compare-and-swap against this process's reservation; only
 * when the reservation runs short does the thread ask the agent for more (a round trip
 * to the arbiter). Threads: any. */
#ifndef QS_MEM_H
#define QS_MEM_H

#include <stdint.h>

#include "shim/ptrtab.h"
#include "shim/state.h"

/* Tenant set-up (the allocation table); called by qs_init_slow() once per process. */
void qs_mem_init(void);
/* Around fork (shim/init.c's handlers, init_lock held): the forking thread takes the
 * allocation tables' locks before it forks and drops them after, in the parent, so that
 * no table is caught half-changed in the child. */
void qs_mem_before_fork(void);
void qs_mem_after_fork_parent(void);
/* In a fork child: forget the parent's allocations, reservation and pools. */
void qs_mem_reset_after_fork(void);

/* The vGPU's quota in bytes; 0 while the arbiter never answered (nothing can be charged). */
uint64_t qs_mem_quota(void);
/* What the vGPU's processes hold: the others' as the arbiter last reported, plus ours now. */
uint64_t qs_mem_vgpu_used(void);

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

/* Physical allocations (shim/vmm.c) across fork, for the three above. */
void qs_vmm_lock_for_fork(void);
void qs_vmm_unlock_after_fork(void);
void qs_vmm_reset_after_fork(void);

/* Stream-ordered pools (shim/pools.c): re-measures every charged pool and charges or
 * gives back the difference. Cheap when no pool was used. */
void qs_pools_reconcile(void);
/* An allocation from pool was freed: a pool destroyed while it had allocations gives its
 * memory back with the last of them, as the driver does. */
void qs_pools_freed(struct qs_pool *pool);

#endif
