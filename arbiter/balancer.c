/* balancer.c - the shell of the balance planner (balancer.h): its figures, its timer, its
 * moves. Loop thread only. */
#include "arbiter/balancer.h"

#include "proto/units.h"

#include <errno.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_NS 1000000000ull
/* The latest utilisation figures (EWMAs of 500 ms samples) lag a move by a few seconds:
 * until they settle they would show its old GPU as busy and its new one as idle. */
#define SETTLE_NS (5 * S_NS)

struct qa_balancer {
    qa_balancer_env_t env;
    qa_timer_t timer;   /* every interval_s */
    uint64_t began;     /* when the interval began */
};

void qa_balancer_sample(qa_balancer_t *self)
{
    qa_host_t *h = self->env.host;
    for (size_t i = 0; i < qa_host_ngpus(h); i++) {
        qa_gpu_t *g = qa_host_gpu(h, i);
        g->util_sum += g->util > g->leased ? g->util : g->leased;
        g->util_samples++;
    }
    for (size_t i = 0; i < qa_host_nvgpus(h); i++) {
        qa_vgpu_t *v = qa_host_vgpu(h, i);
        v->util_sum += v->util;
        v->util_samples++;
    }
}

/* Forgets the samples: a new interval begins. */
static void restart_interval(qa_balancer_t *self)
{
    qa_host_t *h = self->env.host;
    self->began = qa_now_ns();
    for (size_t i = 0; i < qa_host_ngpus(h); i++)
        qa_host_gpu(h, i)->util_sum = qa_host_gpu(h, i)->util_samples = 0;
    for (size_t i = 0; i < qa_host_nvgpus(h); i++)
        qa_host_vgpu(h, i)->util_sum = qa_host_vgpu(h, i)->util_samples = 0;
}

/* The interval's average when asked for and there are samples enough, else latest. */
static double figure(bool averaged, double sum, unsigned n, double latest)
{
    return averaged && n >= 2 ? sum / n : latest;
}

/* Plans from the interval's averages (averaged) or the latest figures. */
static size_t plan(qa_balancer_t *self, bool averaged, qa_balance_step_t *out, size_t max)
{
    qa_host_t *h = self->env.host;
    const qa_config_t *cfg = self->env.cfg;
    size_t ng = qa_host_ngpus(h), nv = qa_host_nvgpus(h);
    qa_bal_gpu_t gpus[QA_BAL_MAX_GPUS];
    qa_bal_vgpu_t *vgpus = nv ? calloc(nv, sizeof *vgpus) : NULL;
    if ((nv && !vgpus) || ng > QA_BAL_MAX_GPUS) {
        free(vgpus);
        return 0;
    }
    for (size_t i = 0; i < ng; i++) {
        const qa_gpu_t *g = qa_host_gpu(h, i);
        gpus[i] = (qa_bal_gpu_t){
            .index = g->desc.index,
            .chip = g->desc.name,
            .util = figure(averaged, g->util_sum, g->util_samples,
                           g->util > g->leased ? g->util : g->leased),
            .memory_used = g->memory_used,
            .load = {g->desc.memory_total / QP_MIB, g->memory_reserved_mb, g->share_reserved,
                     g->util},
        };
    }
    for (size_t i = 0; i < nv; i++) {
        const qa_vgpu_t *v = qa_host_vgpu(h, i);
        vgpus[i] = (qa_bal_vgpu_t){
            .id = v->id,
            .gpu = v->gpu,
            .memory_mb = v->memory_mb,
            .share = v->share,
            .util = figure(averaged, v->util_sum, v->util_samples, v->util),
            .memory_used = v->mem_real > v->mem_used ? v->mem_real : v->mem_used,
            .moved_at = v->moved_at,
            .pinned = v->moving != 0 || qa_mover_moving(self->env.mover, v),
        };
    }
    uint64_t interval = (cfg->balance_interval_s ? cfg->balance_interval_s : 60) * S_NS;
    qa_bal_params_t p = {
        .high = cfg->balance_high,
        .low = cfg->balance_low,
        .memory = cfg->balance_memory,
        .cooldown_ns = cfg->balance_cooldown * interval,
        .max_moves = max < QA_BALANCE_MAX_STEPS ? max : QA_BALANCE_MAX_STEPS,
    };
    qa_bal_move_t moves[QA_BALANCE_MAX_STEPS];
    size_t n = qa_balance_plan(gpus, ng, vgpus, nv, &p, cfg, qa_now_ns(), moves, p.max_moves);
    for (size_t k = 0; k < n; k++) {
        snprintf(out[k].vgpu, sizeof out[k].vgpu, "%s", vgpus[moves[k].vgpu].id);
        out[k].from = moves[k].from;
        out[k].to = moves[k].to;
        snprintf(out[k].why, sizeof out[k].why, "%s", moves[k].why);
    }
    free(vgpus);
    return n;
}

/* Whether a vGPU moved at or after since. */
static bool moved_since(qa_balancer_t *self, uint64_t since)
{
    qa_host_t *h = self->env.host;
    for (size_t i = 0; i < qa_host_nvgpus(h); i++) {
        if (qa_host_vgpu(h, i)->moved_at >= since)
            return true;
    }
    return false;
}

size_t qa_balancer_plan(qa_balancer_t *self, qa_balance_step_t *out, size_t max)
{
    uint64_t now = qa_now_ns();
    if (moved_since(self, now > SETTLE_NS ? now - SETTLE_NS : 0))
        return 0;
    return plan(self, false, out, max);
}

/* An automatic move ended: its one log line. */
static void moved(void *arg, const qa_mover_report_t *r)
{
    qa_balancer_t *self = arg;
    if (r->rc == -ECANCELED)
        return;
    qa_log(self->env.log, r->rc == 0 ? QA_INFO : QA_WARN, "auto-balance: %s", r->text);
}

static void on_interval(void *arg)
{
    qa_balancer_t *self = arg;
    /* Moves under way, or made in this interval, change the figures: the round waits
     * for an interval measured after them. */
    if (!qa_mover_pending(self->env.mover) && !moved_since(self, self->began)) {
        qa_balance_step_t steps[QA_BALANCE_MAX_STEPS];
        size_t n = plan(self, true, steps, QA_BALANCE_MAX_STEPS);
        for (size_t k = 0; k < n; k++) {
            if (qa_mover_move(self->env.mover, steps[k].vgpu, (int)steps[k].to, moved, self,
                              NULL) < 0)
                qa_log(self->env.log, QA_ERROR, "auto-balance: out of memory to move %s",
                       steps[k].vgpu);
            else
                qa_log(self->env.log, QA_DEBUG, "auto-balance: moving %s from GPU %u to GPU %u: %s",
                       steps[k].vgpu, steps[k].from, steps[k].to, steps[k].why);
        }
    }
    restart_interval(self);
    qa_timer_start(self->env.loop, &self->timer,
                   qa_now_ns() + self->env.cfg->balance_interval_s * S_NS, on_interval, self);
}

qa_balancer_t *qa_balancer_new(const qa_balancer_env_t *env)
{
    qa_balancer_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->env = *env;
    self->began = qa_now_ns();
    if (env->cfg->balance_interval_s &&
        qa_timer_start(env->loop, &self->timer,
                       qa_now_ns() + env->cfg->balance_interval_s * S_NS, on_interval, self) < 0) {
        free(self);
        return NULL;
    }
    return self;
}

void qa_balancer_destroy(qa_balancer_t **self_p)
{
    qa_balancer_t *self = *self_p;
    if (!self)
        return;
    qa_timer_stop(self->env.loop, &self->timer);
    free(self);
    *self_p = NULL;
}
