/* cuda_state.c - the simulated libcuda's global state and what every entry point shares:
 * the entry gate, error mapping, the host lock.
 * Threads: any application thread; see cuda_state.h for what guards what. */
#include "sim/cuda_state.h"

#include <dlfcn.h>
#include <errno.h>

struct qsim_cuda qsim_g = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .state = QSIM_UNINIT,
    .init_rc = CUDA_ERROR_NOT_INITIALIZED,
    .next_id = 1,
};

__thread struct qsim_thread qsim_t;

/* A thread held at the checkpoint gate looks this often whether its locker died. */
#define GATE_RECHECK_NS 100000000u

CUresult qsim_enter_slow(void)
{
    for (;;) {
        int st = atomic_load_explicit(&qsim_g.state, memory_order_acquire);
        if (st != QSIM_READY)
            return CUDA_ERROR_NOT_INITIALIZED;
        struct qsim_proc *me = qsim_g.me;
        /* We counted ourselves in before seeing the gate: step out and let the
         * checkpointer see us gone, then sleep until it opens the gate again. */
        if (atomic_fetch_sub(&me->in_api, 1) == 1)
            qsim_futex_wake(&me->in_api);
        uint32_t g;
        while ((g = atomic_load(&me->gate)) != 0) {
            qsim_futex_wait(&me->gate, g, GATE_RECHECK_NS);
            /* If the checkpointer died half-way, reaping it opens the gate. */
            if (atomic_load(&me->gate) && qsim_host_lock(qsim_g.host) == 0) {
                qsim_host_reap_locked(qsim_g.shm, true);
                qsim_host_unlock(qsim_g.host);
            }
        }
        atomic_fetch_add(&me->in_api, 1);
        if (!atomic_load(&me->gate))
            return CUDA_SUCCESS;
    }
}

CUresult qsim_cu_error(int neg_errno)
{
    switch (neg_errno) {
    case 0:
        return CUDA_SUCCESS;
    case -ENOMEM:
        return CUDA_ERROR_OUT_OF_MEMORY;
    case -ENOSPC:
        return CUDA_ERROR_OUT_OF_MEMORY; /* a table of the host is full */
    case -EINVAL:
        return CUDA_ERROR_INVALID_VALUE;
    case -ETIMEDOUT:
        return CUDA_ERROR_TIMEOUT;
    case -EAGAIN:
        return CUDA_ERROR_NOT_READY;
    default:
        return CUDA_ERROR_UNKNOWN;
    }
}

CUresult qsim_lock_host(void)
{
    return qsim_host_lock(qsim_g.host) == 0 ? CUDA_SUCCESS : CUDA_ERROR_UNKNOWN;
}

void qsim_unlock_host(void)
{
    qsim_host_unlock(qsim_g.host);
}

unsigned long long qsim_new_id(void)
{
    return atomic_fetch_add_explicit(&qsim_g.next_id, 1, memory_order_relaxed);
}

void *qsim_self_open(int flags)
{
    Dl_info info;
    if (!dladdr((void *)qsim_self_open, &info) || !info.dli_fname)
        return NULL;
    return dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD | flags);
}
