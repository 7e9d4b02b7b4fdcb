/* test_arbiter_trust.c - directories and files someone else could have planted or swapped
 * are refused with the fix in one line (arbiter/trust.c). The tests run as root, so
 * "someone else" is made with chown. */
#include "arbiter/trust.h"
#include "tests/harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int check_dir(const char *path, char *err)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    cr_assert_geq(fd, 0);
    int rc = qa_trust_dir(fd, "state dir", path, err);
    close(fd);
    return rc;
}

static int check_file(const char *path, char *err)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW);
    cr_assert_geq(fd, 0);
    int rc = qa_trust_file(fd, path, err);
    close(fd);
    return rc;
}

Test(qa_trust, a_directory_of_ours_that_only_we_write_is_trusted)
{
    char *dir = qt_tmpdir(), err[QP_ERR_LEN] = "";
    cr_assert_eq(chmod(dir, 0755), 0);
    cr_assert_eq(check_dir(dir, err), 0, "%s", err);
    free(dir);
}

Test(qa_trust, a_directory_others_may_write_or_another_user_owns_is_refused_with_the_fix)
{
    char *dir = qt_tmpdir(), err[QP_ERR_LEN];
    cr_assert_eq(chmod(dir, 0775), 0);
    cr_assert_eq(check_dir(dir, err), -EPERM);
    cr_assert(strstr(err, "is writable by its group (mode 0775)"), "%s", err);
    cr_assert(strstr(err, "chmod go-w it"), "%s", err);
    cr_assert_eq(chmod(dir, 0757), 0);
    cr_assert_eq(check_dir(dir, err), -EPERM);
    cr_assert(strstr(err, "writable by everyone"), "%s", err);
    cr_assert_eq(chmod(dir, 0755), 0);
    if (geteuid() == 0) {
        cr_assert_eq(chown(dir, 65534, 65534), 0);
        cr_assert_eq(check_dir(dir, err), -EPERM);
        cr_assert(strstr(err, "belongs to uid 65534"), "%s", err);
        cr_assert_eq(chown(dir, 0, 0), 0);
    }
    free(dir);
}

Test(qa_trust, a_file_must_be_a_regular_file_of_ours_that_nobody_else_writes)
{
    char *dir = qt_tmpdir(), err[QP_ERR_LEN] = "";
    char *path = qt_strf("%s/vg-1.json", dir);
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(check_file(path, err), 0, "%s", err);
    cr_assert_eq(chmod(path, 0620), 0);
    cr_assert_eq(check_file(path, err), -EPERM);
    cr_assert(strstr(err, "the arbiter never made it so"), "%s", err);
    cr_assert_eq(chmod(path, 0600), 0);
    if (geteuid() == 0) {
        cr_assert_eq(chown(path, 65534, 65534), 0);
        cr_assert_eq(check_file(path, err), -EPERM);
        cr_assert(strstr(err, "the arbiter never wrote it"), "%s", err);
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    cr_assert_eq(qa_trust_file(dfd, dir, err), -EPERM);
    cr_assert(strstr(err, "is not a regular file"), "%s", err);
    close(dfd);
    free(path);
    free(dir);
}
