/* ghosts.c - the previous arbiter's processes, charged until they re-report or are gone.
 * Single-threaded: the loop thread (see ghosts.h). */
#include "arbiter/ghosts.h"

#include <errno.h>
#include <stdlib.h>

/* What the previous arbiter's process pid may still hold of a vGPU. */
struct qa_ghost {
    struct qa_ghost *next; /* next of its vGPU */
    pid_t pid;             /* host pid; 0: unknown, dropped at `expires` */
    uint64_t start;        /* the process's start time, with pid */
    uint64_t bytes;        /* the most it may hold */
    uint32_t slot;         /* its ledger slot */
    uint64_t expires;      /* monotonic ns, for a pid of 0 */
};

/* Drops ghost *gp of v: its memory is free again. */
static void drop(qa_vgpu_t *v, qa_ledger_t *ledger, struct qa_ghost **gp)
{
    struct qa_ghost *g = *gp;
    *gp = g->next;
    v->ghost_bytes -= g->bytes;
    v->mem_reserved -= g->bytes;
    qa_ledger_free(ledger, g->slot);
    free(g);
}

int qa_ghosts_adopt(qa_host_t *host, qa_ledger_t *ledger, uint64_t expires, const qa_log_t *log)
{
    qa_ledger_entry_t *e;
    size_t n, kept = 0;
    uint64_t bytes = 0;
    if (qa_ledger_previous(ledger, &e, &n) < 0)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        qa_vgpu_t *v = qa_host_find(host, e[i].vgpu);
        uint64_t start;
        struct qa_ghost *g = NULL;
        bool alive =
            e[i].pid == 0 || (qa_ledger_proc_start(e[i].pid, &start) == 0 && start == e[i].start);
        if (v && alive && e[i].bytes && !(g = calloc(1, sizeof *g))) {
            free(e); /* forgetting it could over-commit: better not start */
            return -ENOMEM;
        }
        if (g) {
            g->pid = e[i].pid;
            g->start = e[i].start;
            g->bytes = e[i].bytes;
            g->slot = e[i].slot;
            g->expires = e[i].pid ? 0 : expires;
            g->next = v->ghosts;
            v->ghosts = g;
            v->ghost_bytes += g->bytes;
            v->mem_reserved += g->bytes;
            kept++;
            bytes += g->bytes;
        } else {
            /* gone, its vGPU too, or holding nothing */
            qa_ledger_free(ledger, e[i].slot);
        }
    }
    free(e);
    if (kept)
        qa_log(log, QA_INFO,
               "%zu processes of the previous arbiter may still hold %llu MiB: kept out of "
               "reach until they re-report or exit",
               kept, (unsigned long long)(bytes >> 20));
    return 0;
}

bool qa_ghosts_claim(qa_vgpu_t *v, qa_ledger_t *ledger, pid_t pid, uint64_t start)
{
    bool claimed = false;
    for (struct qa_ghost **gp = &v->ghosts; *gp;) {
        if ((*gp)->pid == pid && (*gp)->start == start) {
            drop(v, ledger, gp);
            claimed = true;
        } else {
            gp = &(*gp)->next;
        }
    }
    return claimed;
}

bool qa_ghosts_check(qa_vgpu_t *v, qa_ledger_t *ledger, uint64_t now, const qa_log_t *log)
{
    bool dropped = false;
    uint64_t start;
    for (struct qa_ghost **gp = &v->ghosts; *gp;) {
        struct qa_ghost *g = *gp;
        bool gone = g->pid ? qa_ledger_proc_start(g->pid, &start) < 0 || start != g->start
                           : now >= g->expires;
        if (gone) {
            qa_log(log, QA_DEBUG, "pid %d of the previous arbiter left vGPU %s: %llu MiB free again",
                   (int)g->pid, v->id, (unsigned long long)(g->bytes >> 20));
            drop(v, ledger, gp);
            dropped = true;
        } else {
            gp = &g->next;
        }
    }
    return dropped;
}

void qa_ghosts_drop_all(qa_vgpu_t *v, qa_ledger_t *ledger)
{
    while (v->ghosts)
        drop(v, ledger, &v->ghosts);
}

void qa_ghosts_forget(qa_host_t *host)
{
    for (size_t i = 0; i < qa_host_nvgpus(host); i++) {
        qa_vgpu_t *v = qa_host_vgpu(host, i);
        while (v->ghosts) {
            struct qa_ghost *g = v->ghosts;
            v->ghosts = g->next;
            free(g);
        }
    }
}
