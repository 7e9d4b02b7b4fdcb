/* procfs.h - the host's processes as /proc shows them to the arbiter: a process's name,
 * its start time, the vGPU credentials in its environment, and a kill that cannot hit a
 * process that took a dead one's pid.
 *
 * NVML names processes by their pid in the host's pid namespace; these functions read
 * /proc of the arbiter's own, so the two agree only when the arbiter runs in the host's
 * pid namespace (docs/arbiter.md). Stateless; any thread. */
#ifndef QA_PROCFS_H
#define QA_PROCFS_H

#include "proto/records.h"

#include <stdint.h>

#define QA_PROC_NAME_LEN 17 /* a command name (TASK_COMM_LEN) with its NUL */

typedef struct qa_proc_info {
    char name[QA_PROC_NAME_LEN]; /* /proc/PID/comm, "" if unknown */
    uint64_t start;              /* start time, clock ticks after boot (/proc/PID/stat) */
    char vgpu[QP_ID_LEN];        /* QVGPU_VGPU in its environment, "" if none */
    char secret[QP_SECRET_LEN];  /* QVGPU_SECRET in its environment, "" if none */
} qa_proc_info_t;

/* Fills out for the process pid of the arbiter's pid namespace. Returns 0; -ENOENT when
 * there is no such process (gone, or only visible in another pid namespace); -EACCES
 * when its environment may not be read (name and start are filled). */
int qa_procfs_inspect(unsigned pid, qa_proc_info_t *out);

/* Sends SIGKILL to pid if it is still the process that started at start. Returns 0;
 * -ESRCH when it is gone or its pid now belongs to another process; -EPERM when the
 * arbiter may not signal it. */
int qa_procfs_kill(unsigned pid, uint64_t start);

#endif
