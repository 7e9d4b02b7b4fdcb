/* move_support.h - what the tests of moves and balancing share: workloads of
 * tests/progs/migrate_work in a vGPU, and the arbiter's view of a vGPU.
 * Not thread-safe: the test's main thread. */
#ifndef QV_TEST_MOVE_SUPPORT_H
#define QV_TEST_MOVE_SUPPORT_H

#include "tests/harness.h"
#include "tests/shim_support.h"

/* migrate_work BYTES SECS KERNEL_US in vGPU v, started (tests/progs/migrate_work.c). */
qt_proc_t *qtm_work(qt_arbiter_t *arb, const qts_vgpu_t *v, const char *bytes, const char *secs,
                    const char *kernel_us);
/* `qgpuctl --json info ID`'s integer key; fails the test when it cannot be read. */
long long qtm_info_int(qt_arbiter_t *arb, const char *id, const char *key);

#endif
