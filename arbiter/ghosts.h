/* ghosts.h - what the previous arbiter's processes may still hold (issue 8).
 *
 * After a restart, kill -9 or not, the ledger (ledger.h) names the processes the previous
 * arbiter had granted memory to, and how much each may hold. Until such a process says
 * hello again (re-reporting what it holds) or is gone, that memory stays charged to its
 * vGPU (in mem_reserved and ghost_bytes) and its ledger slot stays in use, for the next
 * arbiter if this one dies too: whatever the timing of reconnections, nothing a process
 * may hold is granted to another. A process is known by its host pid and start time;
 * one whose pid was never learnt is taken as gone at a deadline.
 *
 * Each vGPU keeps its list (qa_vgpu_t.ghosts); tenant.c calls these as sessions open
 * and on its periodic tick. Single-threaded: the loop thread. */
#ifndef QA_GHOSTS_H
#define QA_GHOSTS_H

#include "arbiter/host.h"
#include "arbiter/ledger.h"
#include "arbiter/log.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Charges what the ledger's previous slots may hold to their vGPUs of host, keeping the
 * slots; frees those of processes gone (or whose vGPU is), and of processes holding
 * nothing. A slot whose pid is unknown is taken as gone at expires (CLOCK_MONOTONIC ns).
 * Returns 0, or -ENOMEM (then some may have been forgotten: do not start). */
int qa_ghosts_adopt(qa_host_t *host, qa_ledger_t *ledger, uint64_t expires, const qa_log_t *log);
/* Process pid (started at start) of v said hello again: what the previous arbiter's same
 * process held of v is free (it re-reported). Returns whether there was any. */
bool qa_ghosts_claim(qa_vgpu_t *v, qa_ledger_t *ledger, pid_t pid, uint64_t start);
/* Drops the ghosts of v whose process is gone (reading /proc once each), or whose
 * deadline passed at now. Returns whether any was dropped: memory is free again. */
bool qa_ghosts_check(qa_vgpu_t *v, qa_ledger_t *ledger, uint64_t now, const qa_log_t *log);
/* Drops every ghost of v, which is being destroyed, freeing their slots. */
void qa_ghosts_drop_all(qa_vgpu_t *v, qa_ledger_t *ledger);
/* At shutdown: frees the memory of every vGPU's ghosts, leaving their ledger slots as
 * they are for the next arbiter. */
void qa_ghosts_forget(qa_host_t *host);

#endif
