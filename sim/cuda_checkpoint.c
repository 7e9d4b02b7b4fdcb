/* cuda_checkpoint.c - the cuCheckpointProcess* family, acting on another process of the
 * simulated host by pid, through its slot in shared memory.
 *
 *   lock        closes the target's entry gate (its further driver calls block), waits
 *               for the calls already inside to leave and its queued work to drain
 *               (timeoutMs honoured: on timeout it is RUNNING again), then LOCKED
 *   checkpoint  LOCKED -> CHECKPOINTED: its device memory is copied out (the time of a
 *               device-to-host copy of its allocations, qsim_copy_ns) and then leaves its
 *               devices' accounting; the data stays in its address space
 *   restore     CHECKPOINTED -> LOCKED: its memory is charged again, on the devices
 *               gpuPairs name instead of the old ones (same chip, every used GPU listed,
 *               CUDA_ERROR_OUT_OF_MEMORY when it does not fit), then copied in (a
 *               host-to-device copy's time); its contexts move along
 *   unlock      LOCKED -> RUNNING: the gate opens
 * A transition from the wrong state is CUDA_ERROR_ILLEGAL_STATE, as documented; a pid
 * that is no CUDA process of the host is CUDA_ERROR_INVALID_VALUE. Before r580 (a
 * QSIM_DRIVER_VERSION below 13000) the restore arguments have no gpuPairs: their bytes
 * are reserved and must be zero, as in that release's cuda.h. The simulator never
 * enters CU_PROCESS_STATE_FAILED.
 * Threads: any; the target's state under the host lock, its gate and in-call counter are
 * futex words. */
#include "sim/cuda_state.h"

#include <errno.h>
#include <string.h>

#include "sim/clock.h"
#include "sim/config.h"
#include "sim/cuda_stream.h"
#include "sim/engine.h"

/* CUDA_SUCCESS when the caller may use the family (it called cuInit). */
static CUresult ready(void)
{
    return atomic_load_explicit(&qsim_g.state, memory_order_acquire) == QSIM_READY
               ? CUDA_SUCCESS
               : CUDA_ERROR_NOT_INITIALIZED;
}

static bool zeroed(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

/* Locks the host and finds pid's slot: CUDA_SUCCESS with the lock held and *slot set,
 * or the error without the lock. */
static CUresult find(int pid, int *slot)
{
    if (qsim_lock_host() != CUDA_SUCCESS)
        return CUDA_ERROR_UNKNOWN;
    *slot = qsim_host_find_pid_locked(qsim_g.shm, pid);
    if (*slot < 0) {
        qsim_unlock_host();
        return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

static uint32_t state_of(const struct qsim_proc *p)
{
    return atomic_load(&p->ckpt);
}

/* ---- queries ----------------------------------------------------------------------- */

QSIM_API CUresult cuCheckpointProcessGetState(int pid, CUprocessState *state)
{
    CUresult rc = ready();
    int slot;
    if (rc == CUDA_SUCCESS && !state)
        rc = CUDA_ERROR_INVALID_VALUE;
    if (rc != CUDA_SUCCESS || (rc = find(pid, &slot)) != CUDA_SUCCESS)
        return rc;
    *state = (CUprocessState)state_of(&qsim_g.shm->proc[slot]);
    qsim_unlock_host();
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuCheckpointProcessGetRestoreThreadId(int pid, int *tid)
{
    CUresult rc = ready();
    int slot;
    if (rc == CUDA_SUCCESS && !tid)
        rc = CUDA_ERROR_INVALID_VALUE;
    if (rc != CUDA_SUCCESS || (rc = find(pid, &slot)) != CUDA_SUCCESS)
        return rc;
    *tid = qsim_g.shm->proc[slot].restore_tid;
    qsim_unlock_host();
    return CUDA_SUCCESS;
}

/* ---- lock and unlock --------------------------------------------------------------- */

/* Opens slot's gate again after a failed lock. */
static void reopen(struct qsim_proc *p)
{
    atomic_store(&p->gate, 0);
    qsim_futex_wake(&p->gate);
}

/* Waits until no thread of target is inside a driver call; false at the deadline or
 * when the target went away (its slot no longer holds pid). */
static bool wait_outside(struct qsim_proc *p, int pid, uint64_t deadline)
{
    for (;;) {
        uint32_t in = atomic_load(&p->in_api);
        if (in == 0)
            return true;
        if (p->pid != pid)
            return false;
        uint64_t now = qsim_now_ns();
        if (deadline && now >= deadline)
            return false;
        /* Woken by the last thread to leave; looks again now and then in case the
         * target died inside a call. */
        uint64_t wait = 10000000u;
        if (deadline && deadline - now < wait)
            wait = deadline - now;
        qsim_futex_wait(&p->in_api, in, wait);
    }
}

QSIM_API CUresult cuCheckpointProcessLock(int pid, CUcheckpointLockArgs *args)
{
    CUresult rc = ready();
    if (rc == CUDA_SUCCESS && args &&
        (args->reserved0 || !zeroed(args->reserved1, sizeof args->reserved1)))
        rc = CUDA_ERROR_INVALID_VALUE;
    int slot;
    if (rc != CUDA_SUCCESS || (rc = find(pid, &slot)) != CUDA_SUCCESS)
        return rc;
    struct qsim_proc *p = &qsim_g.shm->proc[slot];
    if (state_of(p) != QSIM_CKPT_RUNNING || atomic_load(&p->gate)) {
        qsim_unlock_host();
        return CUDA_ERROR_ILLEGAL_STATE; /* locked, or being locked by someone else */
    }
    p->locker = qsim_g.proc;
    atomic_store(&p->gate, 1);
    qsim_unlock_host();

    uint64_t deadline =
        args && args->timeoutMs ? qsim_now_ns() + (uint64_t)args->timeoutMs * 1000000u : 0;
    if (!wait_outside(p, pid, deadline)) {
        rc = p->pid == pid ? CUDA_ERROR_NOT_READY : CUDA_ERROR_INVALID_VALUE;
    } else {
        int e = qsim_engine_wait_proc_idle(qsim_g.host, slot, deadline);
        rc = e == -ETIMEDOUT ? CUDA_ERROR_NOT_READY : qsim_cu_error(e);
    }
    if (qsim_lock_host() != CUDA_SUCCESS)
        return CUDA_ERROR_UNKNOWN;
    if (p->state != QSIM_SLOT_USED || p->pid != pid)
        rc = CUDA_ERROR_INVALID_VALUE; /* it died meanwhile */
    else if (rc == CUDA_SUCCESS)
        atomic_store(&p->ckpt, QSIM_CKPT_LOCKED);
    else
        reopen(p);
    qsim_unlock_host();
    return rc;
}

QSIM_API CUresult cuCheckpointProcessUnlock(int pid, CUcheckpointUnlockArgs *args)
{
    CUresult rc = ready();
    if (rc == CUDA_SUCCESS && args && !zeroed(args, sizeof *args))
        rc = CUDA_ERROR_INVALID_VALUE;
    int slot;
    if (rc != CUDA_SUCCESS || (rc = find(pid, &slot)) != CUDA_SUCCESS)
        return rc;
    struct qsim_proc *p = &qsim_g.shm->proc[slot];
    if (state_of(p) != QSIM_CKPT_LOCKED) {
        rc = CUDA_ERROR_ILLEGAL_STATE;
    } else {
        atomic_store(&p->ckpt, QSIM_CKPT_RUNNING);
        reopen(p);
    }
    qsim_unlock_host();
    return rc;
}

/* ---- checkpoint and restore -------------------------------------------------------- */

/* Bytes p's allocations hold on its devices: what a checkpoint copies out and a restore
 * copies back. Its contexts' own memory (code, stacks, heaps) is made again, not copied.
 * Host lock held. */
static uint64_t allocated(const struct qsim_proc *p)
{
    uint64_t n = 0;
    for (int o = 0; o < p->ndev; o++) {
        uint64_t ctx = (uint64_t)p->nctx[o] * p->ctx_mem;
        n += p->mem[o] > ctx ? p->mem[o] - ctx : 0;
    }
    return n;
}

QSIM_API CUresult cuCheckpointProcessCheckpoint(int pid, CUcheckpointCheckpointArgs *args)
{
    CUresult rc = ready();
    if (rc == CUDA_SUCCESS && args && !zeroed(args, sizeof *args))
        rc = CUDA_ERROR_INVALID_VALUE;
    int slot;
    if (rc != CUDA_SUCCESS || (rc = find(pid, &slot)) != CUDA_SUCCESS)
        return rc;
    struct qsim_shm *s = qsim_g.shm;
    struct qsim_proc *p = &s->proc[slot];
    if (state_of(p) != QSIM_CKPT_LOCKED) {
        qsim_unlock_host();
        return CUDA_ERROR_ILLEGAL_STATE;
    }
    uint64_t bytes = allocated(p);
    qsim_unlock_host();
    /* The copy out: the memory stays the device's until it is done. */
    qsim_sleep_until(qsim_now_ns() + qsim_copy_ns(QSIM_DTOH, bytes));
    if (qsim_lock_host() != CUDA_SUCCESS)
        return CUDA_ERROR_UNKNOWN;
    if (p->state != QSIM_SLOT_USED || p->pid != pid) {
        rc = CUDA_ERROR_INVALID_VALUE; /* it died meanwhile */
    } else if (state_of(p) != QSIM_CKPT_LOCKED) {
        rc = CUDA_ERROR_ILLEGAL_STATE; /* another caller checkpointed or unlocked it */
    } else {
        for (int o = 0; o < p->ndev; o++) {
            struct qsim_dev *d = &s->dev[p->ord_map[o]];
            d->used -= p->mem[o] < d->used ? p->mem[o] : d->used;
        }
        atomic_store(&p->ckpt, QSIM_CKPT_CHECKPOINTED);
    }
    qsim_unlock_host();
    return rc;
}

/* Device index with uuid u, or -1. */
static int device_with_uuid(const struct qsim_shm *s, const CUuuid *u)
{
    for (uint32_t d = 0; d < s->ndev; d++)
        if (memcmp(s->dev[d].uuid, u->bytes, 16) == 0)
            return (int)d;
    return -1;
}

/* The ordinal -> device map p gets from pairs (n of them), in map. Every device p uses
 * (memory or a context on it) must be an old GPU of a pair; the new one must be of the
 * same chip. CUDA_ERROR_INVALID_VALUE otherwise. */
static CUresult remap(const struct qsim_shm *s, const struct qsim_proc *p,
                      const CUcheckpointGpuPair *pairs, unsigned n, int map[QSIM_MAX_DEVICES])
{
    int to[QSIM_MAX_DEVICES];
    for (int d = 0; d < QSIM_MAX_DEVICES; d++)
        to[d] = -1;
    for (unsigned i = 0; i < n; i++) {
        int from = device_with_uuid(s, &pairs[i].oldUuid);
        int dest = device_with_uuid(s, &pairs[i].newUuid);
        if (from < 0 || dest < 0 || to[from] >= 0 ||
            strcmp(s->dev[from].name, s->dev[dest].name) != 0)
            return CUDA_ERROR_INVALID_VALUE;
        to[from] = dest;
    }
    for (int o = 0; o < p->ndev; o++) {
        int d = p->ord_map[o];
        bool used = p->mem[o] || p->nctx[o];
        if (used && to[d] < 0)
            return CUDA_ERROR_INVALID_VALUE; /* a checkpointed GPU missing from the pairs */
        map[o] = to[d] >= 0 ? to[d] : d;
    }
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuCheckpointProcessRestore(int pid, CUcheckpointRestoreArgs *args)
{
    CUresult rc = ready();
    if (rc == CUDA_SUCCESS && args &&
        (!zeroed(args->reserved, sizeof args->reserved) || args->reserved1 ||
         (args->gpuPairsCount && !args->gpuPairs)))
        rc = CUDA_ERROR_INVALID_VALUE;
    /* r570's restore arguments are 64 reserved bytes: gpuPairs came with r580. */
    if (rc == CUDA_SUCCESS && args && qsim_driver()->cuda < 13000 && !zeroed(args, sizeof *args))
        rc = CUDA_ERROR_INVALID_VALUE;
    int slot;
    if (rc != CUDA_SUCCESS || (rc = find(pid, &slot)) != CUDA_SUCCESS)
        return rc;
    struct qsim_shm *s = qsim_g.shm;
    struct qsim_proc *p = &s->proc[slot];
    int map[QSIM_MAX_DEVICES];
    for (int o = 0; o < p->ndev; o++)
        map[o] = p->ord_map[o];
    if (state_of(p) != QSIM_CKPT_CHECKPOINTED)
        rc = CUDA_ERROR_ILLEGAL_STATE;
    else if (args && args->gpuPairsCount)
        rc = remap(s, p, args->gpuPairs, args->gpuPairsCount, map);
    /* It must fit where it goes, all of it. */
    uint64_t need[QSIM_MAX_DEVICES] = {0};
    for (int o = 0; rc == CUDA_SUCCESS && o < p->ndev; o++)
        need[map[o]] += p->mem[o];
    for (uint32_t d = 0; rc == CUDA_SUCCESS && d < s->ndev; d++)
        if (need[d] > s->dev[d].total - s->dev[d].used)
            rc = CUDA_ERROR_OUT_OF_MEMORY;
    if (rc == CUDA_SUCCESS) {
        for (uint32_t d = 0; d < s->ndev; d++)
            s->dev[d].used += need[d];
        for (int o = 0; o < p->ndev; o++)
            p->ord_map[o] = map[o];
        /* Its contexts follow (their queues are empty: the lock drained them). */
        for (int c = 0; c < QSIM_MAX_CTXS; c++) {
            struct qsim_ectx *x = &s->ctx[c];
            if (x->state == QSIM_SLOT_USED && x->proc == slot) {
                x->dev = map[x->ordinal];
                x->head = x->tail;
            }
        }
        atomic_store(&p->ckpt, QSIM_CKPT_LOCKED);
    }
    uint64_t bytes = rc == CUDA_SUCCESS ? allocated(p) : 0;
    qsim_unlock_host();
    /* The copy in, onto memory charged above: the target stays locked meanwhile. */
    if (bytes)
        qsim_sleep_until(qsim_now_ns() + qsim_copy_ns(QSIM_HTOD, bytes));
    return rc;
}
