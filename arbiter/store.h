/* store.h - the arbiter's state on disk, in --state-dir:
 *
 *   vgpus/<id>.json       one file per vGPU: id, vm, secret, profile, GPU UUID, limits
 *   vgpus/<id>.json.prev  its previous version, once that one reached the disk
 *   meta.json             ids handed out so far, so that none is ever handed out twice
 *   qarbiter.lock         held (flock) by the arbiter using the dir: one at a time
 *
 * Every write goes to a temporary file that is renamed over the old one, so a reader
 * (a restarted arbiter) sees the old file or the new one, never half of either. Writes
 * reach the kernel before the request is answered, so they survive kill -9 of the
 * arbiter. Making them durable against power loss (fsync of the files written and of
 * the directories) is left to a background thread that batches whatever was written in
 * 50 ms, which keeps fsync off the request path: what was answered in the last
 * ~100 ms before a power cut may be lost. A power cut can leave a file renamed into
 * place before its data reached the disk empty or cut short; loading then takes its
 * .prev, so a change is lost, never the vGPU. meta.json, written once per 64 ids, is
 * synced before it is answered.
 *
 * The dir and its files must be the arbiter's user's and writable by nobody else
 * (trust.h), and files are opened without following symlinks: anything else was planted.
 *
 * Threads: the loop thread calls everything; the sync thread only fsyncs, and takes the
 * list of files to sync from the loop under a mutex. */
#ifndef QA_STORE_H
#define QA_STORE_H

#include "arbiter/host.h"
#include "arbiter/log.h"
#include "proto/msg.h"

#include <stdint.h>

typedef struct qa_store qa_store_t;

/* Opens (creating, mode 0700) the state dir, takes its lock and starts the sync thread;
 * leftover temporary files of an interrupted write are removed, and a new state dir gets
 * its meta.json at once. Returns NULL with err (as one line: another arbiter's pid, a dir
 * others may write, ...). */
qa_store_t *qa_store_open(const char *dir, char err[QP_ERR_LEN]);
/* Syncs once more, stops the thread, frees *self_p and sets it to NULL. */
void qa_store_close(qa_store_t **self_p);
/* Where qa_store_load says what it skipped (log: borrowed, must outlive the store).
 * Until this is called: warnings on stderr. */
void qa_store_set_log(qa_store_t *self, const qa_log_t *log);

/* Called by qa_store_load for each vGPU found: v (borrowed) and the UUID of its GPU.
 * A negative return stops the load with that value (err filled by the callback). */
typedef int qa_store_each_fn(void *arg, const qa_vgpu_t *v, const char *gpu_uuid,
                             char err[QP_ERR_LEN]);

/* Reads meta.json and every vGPU file and calls each; *next_id receives the first id
 * number that was never handed out: past meta.json's bound and past the id of every vGPU
 * file seen. A file left empty or cut short (a power cut between a rename and the data
 * reaching the disk) is replaced by its previous version when that one is whole (logged
 * as a warning naming it). Returns 0, or -EINVAL naming a file that cannot be read, holds
 * something else than a valid record, is not the arbiter's or has no whole version, or a
 * meta.json missing or damaged: the arbiter refuses to start rather than forget a vGPU
 * or hand an id out twice. */
int qa_store_load(qa_store_t *self, qa_store_each_fn *each, void *arg, uint64_t *next_id,
                  char err[QP_ERR_LEN]);

/* Reads, without the state dir's lock, the UUID of the GPU vGPU id lives on as its file
 * in dir says now (a reader sees a whole file, old or new: store.h). For the checkpoint
 * helper, which outlives an arbiter killed during a move (ckpt.h). Returns 0, or -EIO
 * with err when there is no such file or it cannot be read. */
int qa_store_peek_gpu(const char *dir, const char *id, char uuid[QP_UUID_LEN],
                      char err[QP_ERR_LEN]);

/* Writes v's file (gpu_uuid: where it lives). Returns 0 or -EIO with err. */
int qa_store_put(qa_store_t *self, const qa_vgpu_t *v, const char *gpu_uuid, char err[QP_ERR_LEN]);
/* Removes the file of vGPU id. Returns 0 (also when there was none) or -EIO. */
int qa_store_remove(qa_store_t *self, const char *id, char err[QP_ERR_LEN]);
/* Records that ids up to next_id - 1 are used. meta.json is rewritten only every 64
 * ids (it records a bound ahead of use), so most creations write one file. Returns 0
 * or -EIO. */
int qa_store_note_ids(qa_store_t *self, uint64_t next_id, char err[QP_ERR_LEN]);

#endif
