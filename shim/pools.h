/* pools.h - stream-ordered allocation (cuMemAllocAsync, cuMemAllocFromPoolAsync; the hooks
 * are in pools.c): a pool is charged what it holds on the GPU, re-measured where it may
 * shrink. State: the records of the pools seen, pools.c's own. Threads: any. */
#ifndef QS_POOLS_H
#define QS_POOLS_H

struct qs_pool; /* one pool's record */

/* Re-measures every charged pool and charges or gives back the difference. Cheap when no
 * pool was used. */
void qs_pools_reconcile(void);
/* An allocation from pool was freed: a pool destroyed while it had allocations gives its
 * memory back with the last of them, as the driver does. */
void qs_pools_freed(struct qs_pool *pool);
/* In a fork child: the parent's charges are the parent's; new locks. The records stay
 * (the driver's pools are copied with the process), charging nothing. */
void qs_pools_reset_after_fork(void);

#endif
