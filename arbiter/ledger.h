/* ledger.h - what each tenant process may hold, where a restarted arbiter finds it.
 *
 * Reservations live in the arbiter's memory: after kill -9 a new arbiter would not know
 * what the old one's processes hold until each says hello again, and could grant it to
 * their siblings meanwhile (issue 8). So every tenant session has a slot in
 * STATE/holders: its vGPU, its process (host pid and start time, which together name one
 * process for the life of the machine) and a bound of the bytes it may hold. The file is
 * mapped shared: updating a slot is a store to memory, no system call, cheap enough for
 * every reservation change; the kernel keeps the pages when the arbiter dies. It need
 * not survive a power cut, since no process does: it carries the boot id and is
 * forgotten after a reboot.
 *
 * Single-threaded: the loop thread. */
#ifndef QA_LEDGER_H
#define QA_LEDGER_H

#include "proto/msg.h"
#include "proto/records.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct qa_ledger qa_ledger_t;

/* A slot the previous arbiter left in use. */
typedef struct qa_ledger_entry {
    uint32_t slot;        /* where it is: still in use, see qa_ledger_previous */
    char vgpu[QP_ID_LEN]; /* the vGPU of the process */
    pid_t pid;            /* its host pid, 0 if the arbiter could not learn it */
    uint64_t start;       /* its start time (clock ticks since boot), with pid */
    uint64_t bytes;       /* the most it may hold */
} qa_ledger_entry_t;

/* Opens (creating, mode 0600, never through a symlink) DIR/holders. Slots of the same
 * boot are kept for qa_ledger_previous; anything else (another boot, a damaged or
 * foreign file) is started afresh. Returns NULL with err. */
qa_ledger_t *qa_ledger_open(const char *dir, char err[QP_ERR_LEN]);
/* Unmaps and closes *self_p and sets it to NULL; NULL is a no-op. The slots in use stay
 * so: after a clean stop too, the next arbiter must know what live processes hold. */
void qa_ledger_close(qa_ledger_t **self_p);

/* The slots in use when the ledger was opened: the previous arbiter's processes. Each
 * stays in use until the caller frees it. Returns 0 with *out (caller frees) and *n, or
 * -ENOMEM. */
int qa_ledger_previous(qa_ledger_t *self, qa_ledger_entry_t **out, size_t *n);

/* Takes a slot for a process of vgpu. Returns its number, or -ENOMEM (no room: the file
 * cannot grow). */
int qa_ledger_add(qa_ledger_t *self, const char *vgpu, pid_t pid, uint64_t start, uint64_t bytes);
/* Records that slot's process may hold bytes: before any grant is answered. */
void qa_ledger_set_bytes(qa_ledger_t *self, uint32_t slot, uint64_t bytes);
/* Records slot's process, learnt after its hello. */
void qa_ledger_set_process(qa_ledger_t *self, uint32_t slot, pid_t pid, uint64_t start);
/* Frees slot: its process holds nothing more, or is gone. */
void qa_ledger_free(qa_ledger_t *self, uint32_t slot);
/* Slots in use. */
size_t qa_ledger_used(const qa_ledger_t *self);

/* The start time of process pid (field 22 of /proc/PID/stat). Returns 0, or -ESRCH when
 * there is no such process or only its zombie (which holds no GPU memory). */
int qa_ledger_proc_start(pid_t pid, uint64_t *start);

#endif
