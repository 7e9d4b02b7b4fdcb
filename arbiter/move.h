/* move.h - moving one vGPU and its running processes to another GPU, as a step machine:
 * what to do next, when to give up, and how to undo (docs/migration.md).
 *
 * A move of vGPU V from GPU S to GPU T, with the processes P1..Pn it had when it began:
 *   1. check   each process's driver state (cuCheckpointProcessGetState): RUNNING ones
 *              move; one the driver does not know (it has not initialised CUDA) moves
 *              with its view only; any other state (locked or checkpointed by someone
 *              else) refuses the move, nothing changed yet;
 *   2. drain   no new leases for V, the one held revoked (ops.freeze); waits until none
 *              is held (ops.drained), at most drain_ns;
 *   3. lock    every process in turn (the driver waits for its queued work, at most
 *              lock_ns: its own timeout), so that a process that cannot be locked costs
 *              no copy;
 *   4. copy    each process in turn: checkpoint, then restore onto T (gpuPairs: S and T
 *              swapped, every other GPU onto itself);
 *   5. commit  V's new home is recorded (ops.commit: the state file, answered through
 *              qa_move_committed);
 *   6. unlock  every process; then ops.finish, which lets V compete on T.
 * Any failure before the commit rolls back, last process first: one restored on T is
 * checkpointed and restored with the same swap (onto S), one checkpointed on S restored
 * without pairs (where it was), one locked unlocked; ops.finish then lets V compete on S
 * again. A rollback step that fails is tried again every retry_ns, `retries` times,
 * before the process is given up on (it stays paused, and the result says so). A
 * process the driver no longer knows because it exited (QA_MOVE_GONE) is dropped from
 * the move, at whatever step. An answer that does not come in time (op_ns, plus
 * ns_per_gib for each GiB a copy moves) means the helper that calls the driver hung:
 * the move ends as QA_MOVE_STUCK, with nothing more asked.
 *
 * Pure, like sched.c: no I/O and no clock. Each event is given `now` (CLOCK_MONOTONIC
 * ns) and decisions go out through the callbacks; the shell (mover.c) runs one driver
 * call at a time for it, and calls qa_move_tick() at qa_move_deadline().
 * Single-threaded: the arbiter's loop thread. */
#ifndef QA_MOVE_H
#define QA_MOVE_H

#include "proto/msg.h"
#include "proto/records.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QA_MOVE_MAX_PROCS 256

/* A driver call the shell makes for the core, on one process. */
typedef enum qa_move_op {
    QA_MOVE_STATE = 1,    /* cuCheckpointProcessGetState */
    QA_MOVE_LOCK,         /* cuCheckpointProcessLock, timeoutMs = lock_ns */
    QA_MOVE_CHECKPOINT,   /* cuCheckpointProcessCheckpoint */
    QA_MOVE_RESTORE_SWAP, /* cuCheckpointProcessRestore, gpuPairs: S and T swapped */
    QA_MOVE_RESTORE_STAY, /* cuCheckpointProcessRestore without gpuPairs: where it was */
    QA_MOVE_UNLOCK,       /* cuCheckpointProcessUnlock */
} qa_move_op_t;

/* How a driver call went. */
typedef enum qa_move_res {
    QA_MOVE_OK = 0,
    QA_MOVE_GONE,     /* the process exited */
    QA_MOVE_NOCUDA,   /* it lives, but the driver does not know it (no cuInit yet) */
    QA_MOVE_NOTREADY, /* lock: its work did not finish in time (CUDA_ERROR_NOT_READY) */
    QA_MOVE_BADSTATE, /* wrong state for the call (CUDA_ERROR_ILLEGAL_STATE) */
    QA_MOVE_NOMEM,    /* restore: does not fit (CUDA_ERROR_OUT_OF_MEMORY) */
    QA_MOVE_FAILED,   /* anything else; the answer's text says what */
} qa_move_res_t;

/* The driver's process states (CUprocessState), for QA_MOVE_STATE answers. */
typedef enum qa_move_pstate {
    QA_PSTATE_RUNNING = 0,
    QA_PSTATE_LOCKED = 1,
    QA_PSTATE_CHECKPOINTED = 2,
    QA_PSTATE_FAILED = 3,
} qa_move_pstate_t;

typedef struct qa_move_params {
    uint64_t drain_ns;   /* the lease held must come back within this */
    uint64_t lock_ns;    /* a lock waits this long for the process's queued work */
    uint64_t op_ns;      /* any other answer (and the lock's, past lock_ns) within this */
    uint64_t ns_per_gib; /* ... plus this for each GiB a checkpoint or restore copies */
    uint64_t poll_ns;    /* while draining, ops.drained is asked this often */
    uint64_t retry_ns;   /* a failed rollback step is tried again after this */
    unsigned retries;    /* this many times */
} qa_move_params_t;

/* A process of the vGPU, as the move begins. */
typedef struct qa_move_proc {
    int pid;        /* host pid */
    uint64_t bytes; /* what it holds on the device (its report): the result, copy time */
    uint64_t most;  /* the most it may hold (its vGPU's quota), 0 if unknown: the copy's
                       time budget is for max(bytes, most), as a process that has not
                       reported yet may already hold its whole quota */
} qa_move_proc_t;

/* How the move ended. */
typedef enum qa_move_status {
    QA_MOVE_DONE = 1,    /* V is on T; its processes run there */
    QA_MOVE_REFUSED,     /* nothing was changed (a process in a state that cannot move) */
    QA_MOVE_ROLLED_BACK, /* a step failed: V and its processes are on S again */
    QA_MOVE_STUCK,       /* the helper stopped answering: process states are unknown */
} qa_move_status_t;

/* What became of one process. */
typedef enum qa_move_fate {
    QA_FATE_MOVED = 1, /* runs on T */
    QA_FATE_VIEW,      /* had no CUDA state: only its view of the GPU changes */
    QA_FATE_BACK,      /* runs on S (the move rolled back, or never got to it) */
    QA_FATE_EXITED,    /* exited during the move */
    QA_FATE_PAUSED,    /* could not be unlocked or put back: left as the driver has it */
} qa_move_fate_t;

typedef struct qa_move_outcome {
    int pid;
    qa_move_fate_t fate;
    uint64_t paused_ns; /* from the drain's start (no launch can begin) to its unlock */
    uint64_t bytes;     /* as given */
} qa_move_outcome_t;

typedef struct qa_move_result {
    qa_move_status_t status;
    char why[QP_ERR_LEN];          /* for anything but DONE: one line, what failed */
    char notes[QP_ERR_LEN];        /* for DONE: what went wrong after the commit, or "" */
    uint64_t took_ns;              /* from qa_move_start to the end */
    size_t n;                      /* entries in procs */
    const qa_move_outcome_t *procs; /* borrowed for the finish callback only */
} qa_move_result_t;

/* What the core decided. Callbacks must not call qa_move_* functions: the answers
 * (qa_move_answer, qa_move_committed) come later, from the shell's loop. */
typedef struct qa_move_ops {
    /* No new leases for V; revoke the one held. */
    void (*freeze)(void *arg);
    /* Whether no process of V holds a lease any more. */
    bool (*drained)(void *arg);
    /* Make driver call op on process i; answer with qa_move_answer. */
    void (*call)(void *arg, size_t i, qa_move_op_t op);
    /* Record V on T; answer with qa_move_committed. */
    void (*commit)(void *arg);
    /* The move is over (r borrowed for the call): let V compete on T when r->status is
     * QA_MOVE_DONE, else on S. The core returns into itself after this: destroy it
     * later, not from here. */
    void (*finish)(void *arg, const qa_move_result_t *r);
    void *arg;
} qa_move_ops_t;

typedef struct qa_move qa_move_t;

/* A move of the n processes procs (copied; n at most QA_MOVE_MAX_PROCS, 0 allowed: a
 * vGPU without processes only commits) with params and ops (copied). names: "vg-3",
 * "GPU 0", "GPU 1" for messages. NULL when out of memory or n is too large. */
qa_move_t *qa_move_new(const qa_move_params_t *params, const qa_move_ops_t *ops,
                       const qa_move_proc_t *procs, size_t n, const char *vgpu,
                       const char *from, const char *to);
/* Frees *self_p and sets it to NULL; calls nothing. NULL is a no-op. */
void qa_move_destroy(qa_move_t **self_p);

/* Begins: asks the first process's state (or, without processes, freezes). */
void qa_move_start(qa_move_t *self, uint64_t now);
/* The answer to the call on process i: res, the process's state for QA_MOVE_STATE, and
 * text (the driver's error name, or NULL) for messages. An answer nobody waits for is
 * ignored. */
void qa_move_answer(qa_move_t *self, size_t i, qa_move_res_t res, qa_move_pstate_t state,
                    const char *text, uint64_t now);
/* The commit asked for finished: 0, or a negative errno with err saying why. */
void qa_move_committed(qa_move_t *self, int rc, const char *err, uint64_t now);
/* Looks at the drain and the timeouts: call it at qa_move_deadline(). */
void qa_move_tick(qa_move_t *self, uint64_t now);
/* When qa_move_tick must run next; UINT64_MAX when nothing is due. */
uint64_t qa_move_deadline(const qa_move_t *self);
/* The next call that brings a process the driver has in `state`, on the GPU its vGPU
 * lives on (on_home) or on the other GPU of the move, back to running there: 0 when it
 * is. After QA_MOVE_RESTORE_SWAP it is on the other GPU. The rollback's rule, and that
 * of the checkpoint helper when the arbiter died during a move (ckpt.h). */
qa_move_op_t qa_move_next_home(qa_move_pstate_t state, bool on_home);

/* Whether the move is over (finish was called). */
bool qa_move_over(const qa_move_t *self);

#endif
