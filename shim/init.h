/* init.h - when the shim reads its environment and joins its vGPU, and what a fork
 * child starts over with.
 *
 * Whether the process belongs to a vGPU (QVGPU_VGPU set) is decided once, by whichever
 * comes first: a hook (qs_managed()) or the shim's constructor. Another library's
 * constructor may run before ours and already call the driver; deciding at its first
 * hooked call keeps that call, and everything after, charged. Reading the environment
 * costs a scan of environ, so a program that never touches CUDA pays nothing more.
 * The first hook that needs the vGPU calls
 * qs_init(), which starts the agent thread and waits (bounded) for the arbiter's hello
 * reply: the quota and the GPU's UUID. A fork child starts over (its own agent,
 * connection and accounting); an exec'd child loads the shim again through LD_PRELOAD.
 *
 * State: the environment as read (init.c's own: read through the qs_env_* functions,
 * written once, then read-only), and the two flags below, read inline by every hook and
 * written only by init.c. Each module keeps its own state and resets it after fork in a
 * function of its own; init.c's fork handlers call those in turn, and own nothing else. */
#ifndef QS_INIT_H
#define QS_INIT_H

#include <stdatomic.h>
#include <stdbool.h>

#include "shim/early.h"

/* qs_env_state: not read yet, being read by one thread, read. */
enum { QS_ENV_UNREAD = 0, QS_ENV_READING, QS_ENV_PASS, QS_ENV_MANAGED };

/* QS_ENV_*: release-stored once the environment was read. */
extern atomic_int qs_env_state;
/* 1 once qs_init_slow() ran in this process: release-stored; 0 again in a fork child. */
extern atomic_int qs_inited;

/* Reads the environment once, whatever the number of threads asking (others wait for
 * the first, which only scans environ), and returns QS_ENV_PASS or QS_ENV_MANAGED. May
 * run from dlsym before a sanitizer runtime is ready: calls no libc function. */
QS_EARLY int qs_env_decide(void);

/* Whether this process enforces a vGPU; else every hook is a pass-through. */
QS_EARLY static inline bool qs_managed(void)
{
    /* acquire pairs with qs_env_decide()'s release: the fields it filled are seen */
    int st = atomic_load_explicit(&qs_env_state, memory_order_acquire);
    if (__builtin_expect(st < QS_ENV_PASS, 0))
        st = qs_env_decide();
    return st == QS_ENV_MANAGED;
}

/* The environment as read, once qs_managed() said so: borrowed, static, never changing.
 * QVGPU_VGPU; QVGPU_SECRET ("" when unset); QVGPU_SOCKET_DIR (default /run/qvgpu); the
 * GPU UUID CUDA_VISIBLE_DEVICES named at load time ("" when none). */
const char *qs_env_vgpu(void);
const char *qs_env_secret(void);
const char *qs_env_socket_dir(void);
const char *qs_env_gpu(void);

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
    if (__builtin_expect(!atomic_load_explicit(&qs_inited, memory_order_acquire), 0))
        qs_init_slow();
}

#endif
