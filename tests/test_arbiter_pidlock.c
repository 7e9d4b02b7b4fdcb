/* test_arbiter_pidlock.c - the arbiter's lock files: one holder at a time, who is named
 * to the next, never through a planted symlink (arbiter/pidlock.c). */
#include "arbiter/pidlock.h"
#include "tests/harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

Test(qa_pidlock, a_second_taker_is_refused_and_told_the_holders_pid_until_it_lets_go)
{
    char *dir = qt_tmpdir(), *path = qt_strf("%s/qarbiter.lock", dir);
    char holder[QA_PIDLOCK_PID_LEN], err[QP_ERR_LEN];
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    int fd = qa_pidlock_take(dfd, "qarbiter.lock", path, 0600, holder, err);
    cr_assert_geq(fd, 0, "%s", err);
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    cr_assert_eq(qa_pidlock_take(dfd, "qarbiter.lock", path, 0600, holder, err), -EBUSY);
    cr_assert_str_eq(holder, "", "no pid written yet");
    cr_assert_eq(qa_pidlock_note(fd), 0);
    cr_assert_eq(qa_pidlock_take(dfd, "qarbiter.lock", path, 0600, holder, err), -EBUSY);
    char me[16];
    snprintf(me, sizeof me, "%d", (int)getpid());
    cr_assert_str_eq(holder, me);
    close(fd);
    fd = qa_pidlock_take(dfd, "qarbiter.lock", path, 0600, holder, err);
    cr_assert_geq(fd, 0, "free once its holder closed it: %s", err);
    close(fd);
    close(dfd);
    free(path), free(dir);
}

Test(qa_pidlock, a_symlink_or_a_file_of_another_user_is_never_taken)
{
    char *dir = qt_tmpdir(), *path = qt_strf("%s/qarbiter.lock", dir);
    char *target = qt_strf("%s/precious", dir);
    char holder[QA_PIDLOCK_PID_LEN], err[QP_ERR_LEN];
    FILE *f = fopen(target, "w");
    fputs("keep me", f);
    fclose(f);
    cr_assert_eq(symlink(target, path), 0);
    cr_assert_eq(qa_pidlock_take(AT_FDCWD, path, path, 0600, holder, err), -ELOOP);
    cr_assert(strstr(err, "(a symlink: remove it)"), "%s", err);
    struct stat st;
    cr_assert_eq(stat(target, &st), 0);
    cr_assert_eq(st.st_size, 7, "its target untouched");
    unlink(path);
    if (geteuid() == 0) {
        int fd = open(path, O_CREAT | O_WRONLY, 0600);
        cr_assert_eq(fchown(fd, 65534, 65534), 0);
        close(fd);
        cr_assert_eq(qa_pidlock_take(AT_FDCWD, path, path, 0600, holder, err), -EPERM);
        cr_assert(strstr(err, "belongs to uid 65534"), "%s", err);
    }
    free(path), free(target), free(dir);
}
