/* pidlock.c - flock'ed lock files that name their holder. Stateless (see pidlock.h). */
#include "arbiter/pidlock.h"

#include "arbiter/trust.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

int qa_pidlock_take(int dir_fd, const char *name, const char *path, mode_t mode,
                    char holder[QA_PIDLOCK_PID_LEN], char err[QP_ERR_LEN])
{
    holder[0] = '\0';
    int fd = openat(dir_fd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) {
        int e = errno;
        snprintf(err, QP_ERR_LEN, "cannot open %.200s: %s%s", path, strerror(e),
                 e == ELOOP ? " (a symlink: remove it)" : "");
        return -e;
    }
    if (qa_trust_file(fd, path, err) < 0) {
        close(fd);
        return -EPERM;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        ssize_t n = pread(fd, holder, QA_PIDLOCK_PID_LEN - 1, 0);
        holder[n > 0 ? n : 0] = '\0';
        holder[strcspn(holder, "\n")] = '\0';
        close(fd);
        return -EBUSY;
    }
    return fd;
}

int qa_pidlock_note(int fd)
{
    char pid[QA_PIDLOCK_PID_LEN];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n)
        return -errno;
    return 0;
}
