/* cuda_export.h - what the contexts of cuda_ctx.c owe the CUDA runtime's private
 * interface (cuda_export.c): the runtime keeps its state per context in storage the
 * driver holds, and asks to be told when a context ends.
 * Threads: any. */
#ifndef QSIM_CUDA_EXPORT_H
#define QSIM_CUDA_EXPORT_H

#include "sim/cuda_state.h"

/* ctx is stopping (destroyed, or a primary context released or reset): its stored
 * entries leave it, their destructors to be run by qsim_cls_run_destructors. Caller
 * holds qsim_g.lock. */
void qsim_cls_ctx_stopped_locked(struct qsim_ctx *ctx);
/* Runs the destructors of the entries of stopped contexts, outside qsim_g.lock (they are
 * the runtime's code and call the driver). Called by the entry points that stop
 * contexts, after they let go of the lock. */
void qsim_cls_run_destructors(void);

#endif
