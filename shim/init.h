/* init.h - when the shim reads its environment and joins its vGPU.
 *
 * The constructor only reads the environment (a few getenv calls), so a program that
 * never touches CUDA pays nothing more. The first hook that needs the vGPU calls
 * qs_init(), which starts the agent thread and waits (bounded) for the arbiter's hello
 * reply: the quota and the GPU's UUID. A fork child starts over (its own agent,
 * connection and accounting); an exec'd child loads the shim again through LD_PRELOAD. */
#ifndef QS_INIT_H
#define QS_INIT_H

#include <stdatomic.h>

#include "shim/state.h"

/* Joins the vGPU once per process: thread-safe, cheap once done (one acquire load).
 * A no-op in pass-through mode. Never fails: without an arbiter the agent keeps trying
 * and allocations beyond the (empty) reservation fail. A flag and a mutex rather than
 * pthread_once, because a fork child must be able to run it again, and a
 * pthread_once_t cannot be reset; the fork handlers hold the mutex across fork, so no
 * child inherits an initialisation half done. Keeps errno. */
void qs_init_slow(void);
static inline void qs_init(void)
{
    /* acquire pairs with the release at the end of qs_init_slow(): what it set up is seen */
    if (__builtin_expect(!atomic_load_explicit(&qs_g.inited, memory_order_acquire), 0))
        qs_init_slow();
}

#endif
