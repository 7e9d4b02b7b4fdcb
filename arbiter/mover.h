/* mover.h - moving vGPUs and their running processes to other GPUs (docs/migration.md).
 *
 * A move asked for is checked and admitted at once (host.h: the same GPU, another chip,
 * no room, a move under way are refused up front), then run by the step machine
 * (move.h), whose driver calls the checkpoint helper makes (ckpt.h). At its commit the
 * vGPU's record says the new GPU (store.h), then its admission and placement load move
 * (host.h), its processes leave the old GPU's scheduler for the new one's (compute.h),
 * they are told the new GPU (env.moved: a `limits` push, before they run again) and its
 * CDI spec is rewritten (cdi.h). A move that fails before its commit leaves all of that
 * as it was. Meanwhile new processes of the vGPU are told to wait (tenant.h).
 *
 * Moves run one at a time, in the order asked; whoever asked logs how each ended (one
 * line per move). Single-threaded: the loop thread. */
#ifndef QA_MOVER_H
#define QA_MOVER_H

#include "arbiter/cdi.h"
#include "arbiter/host.h"
#include "arbiter/log.h"
#include "arbiter/loop.h"
#include "arbiter/move.h"
#include "arbiter/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct qa_compute;
typedef struct qa_mover qa_mover_t;

/* What the mover works with; every pointer borrowed and outliving it. */
typedef struct qa_mover_env {
    qa_loop_t *loop;
    const qa_log_t *log;
    qa_host_t *host;
    qa_store_t *store;
    qa_cdi_t *cdi; /* NULL when the arbiter writes no CDI specs */
    struct qa_compute *compute;
    const char *state_dir; /* the store's dir: the helper reads records there (copied) */
    const char *exe;       /* the binary to run as the helper (copied) */
    qa_move_params_t params;
    /* v lives on another GPU from now: tell its processes. */
    void (*moved)(void *arg, qa_vgpu_t *v);
    void *arg;
} qa_mover_env_t;

/* How a move ended. */
typedef struct qa_mover_report {
    int rc;              /* 0: moved; refused up front: -ENOENT, -EINVAL, -ENOSPC, -EBUSY,
                          * -ENOTSUP (the driver cannot); -EIO: a step failed and it was
                          * rolled back; -ETIMEDOUT: the helper stopped answering */
    char vgpu[QP_ID_LEN];
    int from, to;        /* GPU indexes (from: -1 when there is no such vGPU) */
    char text[1024];     /* one line for a person: what happened, each process's pause */
    uint64_t took_ns;
    size_t nprocs;
    const qa_move_outcome_t *procs; /* borrowed for the callback */
    bool orphan;         /* whoever asked went away (qa_mover_forget): tell nobody */
} qa_mover_report_t;

/* Called once per move asked for, when it ended (or was dropped: rc -ECANCELED, as the
 * mover is destroyed); r borrowed for the call. */
typedef void qa_mover_done_fn(void *arg, const qa_mover_report_t *r);

/* A mover with env (copied). NULL when out of memory. */
qa_mover_t *qa_mover_new(const qa_mover_env_t *env);
/* Frees *self_p and sets it to NULL: a move under way is abandoned (its helper, let go,
 * brings its processes back to where the vGPU's record says) and queued ones dropped,
 * each reported with -ECANCELED. NULL is a no-op. */
void qa_mover_destroy(qa_mover_t **self_p);

/* Queues the move of vGPU id to GPU `to` for owner (who asked: a connection, or NULL);
 * done(arg, report) is called when it ended, not before this returns. Returns 0 or
 * -ENOMEM. */
int qa_mover_move(qa_mover_t *self, const char *id, int to, qa_mover_done_fn *done, void *arg,
                  const void *owner);
/* owner went away: its moves go on, and are reported as orphans. */
void qa_mover_forget(qa_mover_t *self, const void *owner);
/* Moves under way or queued. */
size_t qa_mover_pending(const qa_mover_t *self);
/* Whether v is being moved now (it must be neither destroyed nor resized meanwhile). */
bool qa_mover_moving(const qa_mover_t *self, const qa_vgpu_t *v);

#endif
