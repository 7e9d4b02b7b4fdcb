/* engine.h - the simulated execution engine: per-context queues of timed operations,
 * run one at a time per device, contexts with work time-sliced round-robin.
 *
 * Nothing runs in the background. The state lives in the host's shared memory and any
 * process "advances" a device to the current time whenever it submits, queries or
 * waits; the result is the same whichever process does it. A waiter predicts when its
 * operation can complete and sleeps until then.
 * Threads: _locked functions need the host lock; the others take it themselves. */
#ifndef QSIM_ENGINE_H
#define QSIM_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "sim/host.h"
#include "sim/shm.h"

/* ---- slots ------------------------------------------------------------------------ */

/* A new, idle context queue for process slot p's ordinal ord on device dev. Returns the
 * context slot or -ENOSPC. */
int qsim_engine_ctx_new_locked(struct qsim_shm *s, int p, int ord, int dev);
/* Frees context slot c, dropping any work still queued on it. */
void qsim_engine_ctx_free_locked(struct qsim_shm *s, int c);
/* A new stream on context slot c. Returns the stream slot or -ENOSPC. */
int qsim_engine_stream_new_locked(struct qsim_shm *s, int c);
/* Frees stream slot st now, or once its queued work is done. */
void qsim_engine_stream_free_locked(struct qsim_shm *s, int st);
/* A new event of process slot p, never recorded. Returns the event slot or -ENOSPC. */
int qsim_engine_event_new_locked(struct qsim_shm *s, int p);
/* Frees event slot e now, or once its pending record is done. */
void qsim_engine_event_free_locked(struct qsim_shm *s, int e);
/* Frees every slot of process slot p, its queued work included (it died). */
void qsim_engine_drop_proc_locked(struct qsim_shm *s, int p);
/* Rebuilds the run queues from the context queues, after a lock holder died. */
void qsim_engine_repair_locked(struct qsim_shm *s);

/* ---- time ------------------------------------------------------------------------- */

/* Runs device d's queued work up to time now (CLOCK_MONOTONIC ns). */
void qsim_engine_advance_locked(struct qsim_shm *s, int d, uint64_t now);
/* The same for every device. */
void qsim_engine_advance_all_locked(struct qsim_shm *s, uint64_t now);

/* Queues *op on stream slot st and sets op->stream and op->seq. The caller advanced the
 * stream's device to now first. Returns 0, or -EAGAIN when the context's queue is full. */
int qsim_engine_submit_locked(struct qsim_shm *s, int st, struct qsim_op *op);

/* When the operation numbered seq of stream st will complete if no other work arrives,
 * or 0 if that cannot be told (it waits on work elsewhere). */
uint64_t qsim_engine_predict_locked(const struct qsim_shm *s, int st, uint64_t seq);

/* True when stream st has completed operation seq. */
bool qsim_engine_done_locked(const struct qsim_shm *s, int st, uint64_t seq);

/* ---- blocking helpers ------------------------------------------------------------- */

/* Advances the stream's device and queues *op (see qsim_engine_submit_locked), sleeping
 * while the queue is full. Returns 0 or -errno (-ENOTRECOVERABLE: lock lost). */
int qsim_engine_submit(qsim_host_t *h, int st, struct qsim_op *op);

/* Sleeps until stream st completed seq, or until deadline (CLOCK_MONOTONIC ns; 0: none).
 * Returns 0, -ETIMEDOUT or -ENOTRECOVERABLE. */
int qsim_engine_wait(qsim_host_t *h, int st, uint64_t seq, uint64_t deadline);

/* Advances every device and tells whether stream st completed seq. */
bool qsim_engine_query(qsim_host_t *h, int st, uint64_t seq);

/* Sleeps until no context of process slot p has queued work, or until deadline (0:
 * none). Returns 0, -ETIMEDOUT or -ENOTRECOVERABLE. */
int qsim_engine_wait_proc_idle(qsim_host_t *h, int p, uint64_t deadline);

/* ---- utilization ------------------------------------------------------------------ */

/* Busy nanoseconds recorded in h within [from, to), to being the time the history was
 * last advanced to (normally now). */
uint64_t qsim_hist_busy(const struct qsim_hist *h, uint64_t from, uint64_t to);

#endif
