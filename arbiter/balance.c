/* balance.c - the balance planner (balance.h). Pure. */
#include "arbiter/balance.h"

#include "proto/units.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double qa_balance_pressure(const qa_bal_gpu_t *g, const qa_bal_params_t *p)
{
    double mem = 0, total = (double)g->load.memory_total_mb * (double)QP_MIB;
    if (p->memory && total > 0)
        mem = 100.0 * (double)g->memory_used / total;
    return g->util > mem ? g->util : mem;
}

/* What v weighs on a GPU g of its: compute percent and bytes. */
static double mem_pct(uint64_t bytes, const qa_bal_gpu_t *g)
{
    double total = (double)g->load.memory_total_mb * (double)QP_MIB;
    return total > 0 ? 100.0 * (double)bytes / total : 0;
}

/* Whether moving v from b to t makes things better (balance.h): both end under b's
 * pressure now, t under high. *after_b, *after_t: their pressures after it. */
static bool helps(const qa_bal_vgpu_t *v, const qa_bal_gpu_t *b, const qa_bal_gpu_t *t,
                  const qa_bal_params_t *p, double *after_b, double *after_t)
{
    qa_bal_gpu_t b2 = *b, t2 = *t;
    b2.util = b->util > v->util ? b->util - v->util : 0;
    b2.memory_used = b->memory_used > v->memory_used ? b->memory_used - v->memory_used : 0;
    t2.util = t->util + v->util;
    t2.memory_used = t->memory_used + v->memory_used;
    double before = qa_balance_pressure(b, p);
    *after_b = qa_balance_pressure(&b2, p);
    *after_t = qa_balance_pressure(&t2, p);
    return *after_b < before - 1e-9 && *after_t < before - 1e-9 && *after_t < p->high;
}

/* How much v weighs on its GPU: what "least used" compares. */
static double weight(const qa_bal_vgpu_t *v, const qa_bal_gpu_t *g, const qa_bal_params_t *p)
{
    double m = p->memory ? mem_pct(v->memory_used, g) : 0;
    return v->util > m ? v->util : m;
}

/* One move on the figures (gpus and vgpus are the planner's copies), or false. */
static bool plan_one(qa_bal_gpu_t *gpus, size_t ng, qa_bal_vgpu_t *vgpus, size_t nv,
                     const qa_bal_params_t *p, const qa_config_t *cfg, uint64_t now,
                     qa_bal_move_t *out)
{
    /* GPUs by pressure, most first: the busiest that has a move is taken. */
    size_t order[QA_BAL_MAX_GPUS];
    size_t n = ng < QA_BAL_MAX_GPUS ? ng : QA_BAL_MAX_GPUS;
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = 1; i < n; i++) { /* insertion sort: a host has few GPUs */
        size_t k = order[i], j = i;
        while (j > 0 && qa_balance_pressure(&gpus[order[j - 1]], p) <
                            qa_balance_pressure(&gpus[k], p)) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = k;
    }
    for (size_t bi = 0; bi < n; bi++) {
        qa_bal_gpu_t *b = &gpus[order[bi]];
        double pb = qa_balance_pressure(b, p);
        if (pb <= p->high)
            break; /* the rest are under less pressure still */
        /* targets: the least busy first */
        for (size_t ti = n; ti-- > 0;) {
            qa_bal_gpu_t *t = &gpus[order[ti]];
            double pt = qa_balance_pressure(t, p);
            if (t == b || pt >= p->low || strcmp(t->chip, b->chip) != 0)
                continue;
            size_t best = nv;
            double best_w = 0, after_b = 0, after_t = 0;
            for (size_t i = 0; i < nv; i++) {
                const qa_bal_vgpu_t *v = &vgpus[i];
                double ab, at, w;
                char err[QP_ERR_LEN];
                if (&gpus[v->gpu] != b || v->pinned ||
                    (v->moved_at && now - v->moved_at < p->cooldown_ns))
                    continue;
                if (qa_admit(&t->load, (int)t->index, v->memory_mb, v->share, cfg, err) < 0 ||
                    !helps(v, b, t, p, &ab, &at))
                    continue;
                w = weight(v, b, p);
                if (best == nv || w < best_w - 1e-9) {
                    best = i;
                    best_w = w;
                    after_b = ab;
                    after_t = at;
                }
            }
            if (best == nv)
                continue;
            qa_bal_vgpu_t *v = &vgpus[best];
            bool by_memory = p->memory && mem_pct(b->memory_used, b) > b->util;
            out->vgpu = best;
            out->from = b->index;
            out->to = t->index;
            snprintf(out->why, sizeof out->why,
                     "GPU %u at %.0f%% %s (over %.0f%%), GPU %u at %.0f%% (under %.0f%%): %s uses "
                     "%.0f%%%s; after the move %.0f%% and %.0f%%",
                     b->index, pb, by_memory ? "memory" : "compute", p->high, t->index, pt,
                     p->low, v->id, weight(v, b, p), by_memory ? " of its memory" : "", after_b,
                     after_t);
            /* the figures as they will be */
            b->util = b->util > v->util ? b->util - v->util : 0;
            b->memory_used = b->memory_used > v->memory_used ? b->memory_used - v->memory_used : 0;
            t->util += v->util;
            t->memory_used += v->memory_used;
            b->load.memory_reserved_mb -= v->memory_mb;
            b->load.share_reserved -= v->share;
            t->load.memory_reserved_mb += v->memory_mb;
            t->load.share_reserved += v->share;
            v->gpu = (unsigned)(t - gpus);
            v->moved_at = now ? now : 1;
            v->pinned = true;
            return true;
        }
    }
    return false;
}

size_t qa_balance_plan(const qa_bal_gpu_t *gpus, size_t ngpus, const qa_bal_vgpu_t *vgpus,
                       size_t nvgpus, const qa_bal_params_t *p, const qa_config_t *cfg,
                       uint64_t now, qa_bal_move_t *out, size_t max_out)
{
    size_t most = max_out < p->max_moves ? max_out : p->max_moves;
    if (ngpus > QA_BAL_MAX_GPUS || most == 0)
        return 0;
    qa_bal_gpu_t g[QA_BAL_MAX_GPUS];
    qa_bal_vgpu_t *v = nvgpus ? malloc(nvgpus * sizeof *v) : NULL;
    if (nvgpus && !v)
        return 0; /* out of memory: no plan this time */
    memcpy(g, gpus, ngpus * sizeof *g);
    if (nvgpus)
        memcpy(v, vgpus, nvgpus * sizeof *v);
    for (size_t i = 0; i < nvgpus; i++) {
        if (v[i].gpu >= ngpus)
            v[i].pinned = true; /* a GPU not given: leave it alone */
    }
    size_t n = 0;
    while (n < most && plan_one(g, ngpus, v, nvgpus, p, cfg, now, &out[n]))
        n++;
    free(v);
    return n;
}
