/* pidlock.h - the arbiter's lock files (qarbiter.lock in the socket dir and in the state
 * dir): held with flock for as long as the arbiter runs, holding its pid, so that a
 * second arbiter on the same directory is refused and told whose it is. A lock file is
 * never followed through a symlink (one planted there would make the arbiter truncate
 * its target) and must be the arbiter's own (trust.h). Stateless; any thread. */
#ifndef QA_PIDLOCK_H
#define QA_PIDLOCK_H

#include "proto/msg.h"

#include <sys/types.h>

#define QA_PIDLOCK_PID_LEN 32

/* Opens (creating it with mode) the file name in the directory open as dir_fd and locks
 * it; path names it in messages. Returns its descriptor (the caller's, the lock lasting
 * until it is closed); -EBUSY when another process holds it, with its pid in holder (""
 * when it wrote none); another negative errno with err as one line when the file cannot
 * be opened or is not to be trusted. */
int qa_pidlock_take(int dir_fd, const char *name, const char *path, mode_t mode,
                    char holder[QA_PIDLOCK_PID_LEN], char err[QP_ERR_LEN]);
/* Writes this process's pid into the lock file open as fd, for the next one to name.
 * Returns 0 or a negative errno. */
int qa_pidlock_note(int fd);

#endif
