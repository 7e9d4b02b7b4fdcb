/* vmm.h - virtual memory management (cuMemCreate, cuMemMap, ...; the hooks are in
 * vmm.c): a physical allocation is charged until its handle is released and it is
 * unmapped. State: the table of charged allocations and their mappings, vmm.c's own.
 * Threads: any. */
#ifndef QS_VMM_H
#define QS_VMM_H

/* Around fork (shim/init.c's handlers): the forking thread holds the table's lock across
 * fork, so that the child finds it whole. */
void qs_vmm_before_fork(void);
void qs_vmm_after_fork_parent(void);
/* In a fork child (the forking thread held the lock): the parent's allocations are the
 * parent's; the table is emptied and the lock made anew. */
void qs_vmm_reset_after_fork(void);

#endif
