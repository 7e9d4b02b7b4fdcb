/* test_shim_log.c - the shim's only output: one line on stderr, once per condition,
 * leaving the application's errno as it was. */
#include "shim/log.c"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

/* Runs fn with stderr sent to a temporary file; returns what was written (caller frees). */
static char *capture(void (*fn)(void))
{
    char path[] = "/tmp/qs-log-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    int saved = dup(2);
    dup2(fd, 2);
    fn();
    dup2(saved, 2);
    close(saved);
    off_t n = lseek(fd, 0, SEEK_END);
    char *text = calloc(1, (size_t)n + 1);
    cr_assert_eq(pread(fd, text, (size_t)n, 0), n);
    close(fd);
    return text;
}

static int errno_after;

static void log_twice_once(void)
{
    static atomic_int once;
    errno = 4242;
    qs_log_once(&once, "arbiter unreachable (%s)", "/run/qvgpu/tenant.sock");
    qs_log_once(&once, "arbiter unreachable (%s)", "again");
    qs_log("quota %d MiB", 1024);
    errno_after = errno;
}

Test(shim_log, writes_one_prefixed_line_per_condition_and_keeps_errno)
{
    char *text = capture(log_twice_once);
    cr_assert_str_eq(text, "qvgpu: arbiter unreachable (/run/qvgpu/tenant.sock)\n"
                           "qvgpu: quota 1024 MiB\n");
    cr_assert_eq(errno_after, 4242);
    free(text);
}

static void log_too_long(void)
{
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    qs_log("%s", big);
}

Test(shim_log, cuts_a_long_message_to_one_line)
{
    char *text = capture(log_too_long);
    size_t n = strlen(text);
    cr_assert_gt(n, 100);
    cr_assert_lt(n, 600);
    cr_assert_eq(text[n - 1], '\n');
    cr_assert_eq(strchr(text, '\n'), text + n - 1, "exactly one line");
    free(text);
}
