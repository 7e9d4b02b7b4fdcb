/* slurm_support.h - a real Slurm cluster for the plugin's tests, one per test process:
 * munged, slurmctld and slurmd in the foreground on localhost, everything (key, sockets,
 * state, spool, logs, pid files) in a private directory, the machine's /etc/slurm and
 * any system munged untouched. One node named after this host, with `gpus` GRES GPUs
 * backed by character devices made for the test, select/cons_tres, PrologFlags=Alloc,
 * PlugStackConfig naming <build>/spank_qvgpu.so; and a qarbiter on this test's own
 * simulated host with as many GPUs, its tenant.sock in a tenant dir of its own.
 *
 * The test process becomes a child subreaper, so that what slurmd leaves behind (its
 * daemonised slurmstepds and their tasks) comes back to it and is ended by pid when the
 * cluster stops, also when a failed assertion ends the test (atexit). The daemons get
 * SIGKILL when the test process dies without running atexit (setpriv --pdeathsig).
 * Single-threaded, like the harness. */
#ifndef QV_TEST_SLURM_SUPPORT_H
#define QV_TEST_SLURM_SUPPORT_H

#include "tests/harness.h"

#include <stdbool.h>

typedef struct cluster cluster_t;

/* True when slurmctld, slurmd, munged and the plugin are there to test with. */
bool cluster_available(void);

/* Starts a cluster whose node has gpus GPUs (0..4), on a simulated host with as many (8 GiB,
 * 20 SMs each), the plugin given plugin_args (may be NULL) after those naming the
 * arbiter, qgpuctl and the state directory. Fails the test, with the daemons' logs,
 * when it is not up within 30 s. */
cluster_t *cluster_start(int gpus, const char *plugin_args);
/* Cancels every job, waits (10 s at most) for their epilogs, stops the daemons and ends
 * whatever they left; frees *self_p and sets it to NULL. */
void cluster_stop(cluster_t **self_p);

qt_arbiter_t *cluster_arbiter(cluster_t *self);
/* The plugin's state_dir. Borrowed. */
const char *cluster_state_dir(const cluster_t *self);
/* The directory holding tenant.sock (the arbiter's --tenant-dir, the plugin's tenant_dir).
 * Borrowed. */
const char *cluster_tenant_dir(const cluster_t *self);
/* A new empty directory in the cluster's, for a test's files. Caller frees. */
char *cluster_path(const cluster_t *self, const char *name);

/* Starts a Slurm command (argv[0] srun, sbatch, ...) against this cluster (SLURM_CONF
 * set), with extra environment env as qt_spawn takes it (may be NULL). */
qt_proc_t *cluster_spawn(cluster_t *self, const char *const argv[], const char *const env[]);
/* Runs one to completion within timeout_ms; returns as qt_run, out/err as qt_run. */
int cluster_run(cluster_t *self, const char *const argv[], const char *const env[], int timeout_ms,
                char **out, char **err);

/* The node's state as sinfo prints it ("idle", "mixed", "drained", ...). Caller frees. */
char *cluster_node_state(cluster_t *self);
/* The job's state as squeue/scontrol print it ("RUNNING", "FAILED", ...), or NULL when
 * the controller does not know it. Caller frees. */
char *cluster_job_state(cluster_t *self, unsigned job);
/* Waits until squeue lists no job (true) or timeout_ms pass. */
bool cluster_wait_idle(cluster_t *self, int timeout_ms);

/* The vGPU made for VM vm, from `qgpuctl --json list`: true with its id (32 bytes) and
 * GPU index (either may be NULL), false when there is none. */
bool cluster_vgpu(cluster_t *self, const char *vm, char *id, int *gpu);
/* Polls until the vGPU of vm exists (present) or is gone (!present); false after
 * timeout_ms. */
bool cluster_wait_vgpu(cluster_t *self, const char *vm, bool present, int timeout_ms);

/* The last lines of the daemons' logs, for a failure message. Caller frees. */
char *cluster_logs(const cluster_t *self);

#endif
