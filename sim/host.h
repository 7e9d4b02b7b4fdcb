/* host.h - one simulated host in shared memory: attaching to it, its lock, the
 * processes that use it and the memory they hold on its devices.
 *
 * Threads: a qsim_host_t is shared by all threads of a process once opened; every
 * function marked _locked needs the host lock, which serialises all processes. */
#ifndef QSIM_HOST_H
#define QSIM_HOST_H

#include <stdbool.h>
#include <stdint.h>

#include "sim/config.h"
#include "sim/shm.h"

typedef struct qsim_host qsim_host_t;

/* Maps the host of cfg->ns, creating it from cfg when there is none. Creation is
 * race-free: the host is built under a private name and published whole with link(2),
 * so a process never sees a half-made one. A host with another configuration is
 * rebuilt from cfg when no live process uses it; when one does, returns -EBUSY with a
 * line in err. Other failures: -errno with a line in err. */
int qsim_host_open(const qsim_config_t *cfg, qsim_host_t **out, char err[QSIM_ERR_LEN]);

/* Unmaps and frees *self_p, then sets it to NULL; NULL is a no-op. */
void qsim_host_close(qsim_host_t **self_p);

/* The mapped host. Borrowed, valid until qsim_host_close. */
struct qsim_shm *qsim_host_shm(qsim_host_t *self);

/* Takes the host lock. If its last holder died holding it, first makes it consistent
 * again and repairs what that holder may have left half-done (derived totals, run
 * queues) and reaps dead processes. Returns 0, or -ENOTRECOVERABLE. */
int qsim_host_lock(qsim_host_t *self);
void qsim_host_unlock(qsim_host_t *self);

/* Frees what dead processes held: their memory leaves the accounting and their queued
 * work the engine. Unless force, does nothing if it ran in the last few ms. */
void qsim_host_reap_locked(struct qsim_shm *s, bool force);

/* Registers the calling process: takes a process slot, starts the thread whose life
 * proves the process alive, and records its CUDA ordinal -> device map, computed for
 * the configuration cfg. Returns 0 and the slot in *slot, or -errno with a line in err
 * (-ENOSPC: too many processes; -EBUSY: another process rebuilt the host with another
 * configuration since it was opened). */
int qsim_host_register(qsim_host_t *self, const qsim_config_t *cfg, int ndev, const int ord_map[],
                       int *slot, char err[QSIM_ERR_LEN]);

/* Charges bytes to process slot p's ordinal ord. Returns 0, or -ENOMEM (nothing
 * charged) when the device has less than bytes free. */
int qsim_host_charge_locked(struct qsim_shm *s, int p, int ord, uint64_t bytes);
/* Returns bytes charged by qsim_host_charge_locked. */
void qsim_host_uncharge_locked(struct qsim_shm *s, int p, int ord, uint64_t bytes);

/* True while process slot p's memory counts on its devices (not checkpointed). */
bool qsim_host_proc_charged(const struct qsim_proc *p);

/* The pid of process slot p as the calling process's pid namespace numbers it, as a
 * real driver reports host pids to the host: p->pid when both share a namespace; else
 * the pid under which the caller's /proc shows it (a process in a container, seen from
 * the host), remembered in the slot; p->pid when the caller cannot see it. */
int qsim_host_pid_seen_locked(struct qsim_proc *p);

/* The slot of the live process the caller names pid (in its own pid namespace, as
 * qsim_host_pid_seen_locked numbers them: checkpointing a container's process from the
 * host), or -1. Reaps first. */
int qsim_host_find_pid_locked(struct qsim_shm *s, int pid);

/* Futex wait on a shared-memory word while it holds val, at most timeout_ns (0: no
 * limit); and wake every waiter. Work across processes. */
void qsim_futex_wait(_Atomic uint32_t *word, uint32_t val, uint64_t timeout_ns);
void qsim_futex_wake(_Atomic uint32_t *word);

#endif
