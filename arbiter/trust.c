/* trust.c - ownership and mode checks of the arbiter's directories and files. Pure. */
#include "arbiter/trust.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int qa_trust_dir(int fd, const char *what, const char *path, char err[QP_ERR_LEN])
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        snprintf(err, QP_ERR_LEN, "cannot check %s %.150s: %s", what, path, strerror(errno));
        return -EPERM;
    }
    uid_t me = geteuid();
    /* Root's own directories are trusted by anyone: root could do anything anyway. */
    if (st.st_uid != me && st.st_uid != 0) {
        snprintf(err, QP_ERR_LEN,
                 "%s %.100s belongs to uid %u, not to the arbiter's user (uid %u): its owner "
                 "could plant files in it (chown it, or use another directory)",
                 what, path, (unsigned)st.st_uid, (unsigned)me);
        return -EPERM;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(err, QP_ERR_LEN,
                 "%s %.100s is writable by %s (mode %04o): others could plant files in it "
                 "(chmod go-w it, or use another directory)",
                 what, path, st.st_mode & S_IWOTH ? "everyone" : "its group",
                 (unsigned)(st.st_mode & 07777));
        return -EPERM;
    }
    return 0;
}

int qa_trust_file(int fd, const char *path, char err[QP_ERR_LEN])
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        snprintf(err, QP_ERR_LEN, "cannot check %.150s: %s", path, strerror(errno));
        return -EPERM;
    }
    uid_t me = geteuid();
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, QP_ERR_LEN, "%.150s is not a regular file (remove it)", path);
        return -EPERM;
    }
    if (st.st_uid != me) {
        snprintf(err, QP_ERR_LEN,
                 "%.100s belongs to uid %u, not to the arbiter's user (uid %u): the arbiter "
                 "never wrote it (remove it, or chown it if you trust it)",
                 path, (unsigned)st.st_uid, (unsigned)me);
        return -EPERM;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(err, QP_ERR_LEN,
                 "%.100s is writable by %s (mode %04o): the arbiter never made it so "
                 "(chmod go-w it if you trust it, or remove it)",
                 path, st.st_mode & S_IWOTH ? "everyone" : "its group",
                 (unsigned)(st.st_mode & 07777));
        return -EPERM;
    }
    return 0;
}
