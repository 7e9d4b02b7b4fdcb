/* balancer.h - auto-balancing ([balance] in the config, docs/migration.md): averages each
 * GPU's and vGPU's utilisation over the interval, asks the planner (balance.h) every
 * interval_s which vGPUs to move, and has the mover (mover.h) move them, one log line
 * per automatic move. `qgpuctl balance` plans (and moves) on demand through the same.
 * Single-threaded: the loop thread. */
#ifndef QA_BALANCER_H
#define QA_BALANCER_H

#include "arbiter/balance.h"
#include "arbiter/config.h"
#include "arbiter/host.h"
#include "arbiter/log.h"
#include "arbiter/loop.h"
#include "arbiter/mover.h"

#include <stdbool.h>
#include <stddef.h>

#define QA_BALANCE_MAX_STEPS 16 /* moves in one plan */

typedef struct qa_balancer qa_balancer_t;

/* What it works with; borrowed, outliving it. */
typedef struct qa_balancer_env {
    qa_loop_t *loop;
    const qa_log_t *log;
    qa_host_t *host;
    const qa_config_t *cfg;
    qa_mover_t *mover;
} qa_balancer_env_t;

/* One move of a plan, by vGPU id. */
typedef struct qa_balance_step {
    char vgpu[QP_ID_LEN];
    unsigned from, to;
    char why[QP_ERR_LEN];
} qa_balance_step_t;

/* A balancer; with interval_s set it plans every interval_s seconds. NULL when out of
 * memory. */
qa_balancer_t *qa_balancer_new(const qa_balancer_env_t *env);
/* Stops its timer, frees *self_p, sets it to NULL. NULL is a no-op. */
void qa_balancer_destroy(qa_balancer_t **self_p);
/* Takes a utilisation sample of every GPU and vGPU (after each compute sample). */
void qa_balancer_sample(qa_balancer_t *self);
/* Plans now, as `qgpuctl balance` asks: from the latest figures (the utilisation of the
 * last few seconds, as `qgpuctl gpus` shows it), at most max steps into out. Returns how
 * many: none within 5 s of a move, while those figures still lag it. (Every interval_s
 * the balancer plans from the interval's averages instead.) */
size_t qa_balancer_plan(qa_balancer_t *self, qa_balance_step_t *out, size_t max);

#endif
