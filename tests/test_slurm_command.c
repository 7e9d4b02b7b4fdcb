/* test_slurm_command.c - running qgpuctl from Slurm's processes: output and the first
 * line of stderr captured, the exit status kept even where SIGCHLD is ignored, nothing
 * inherited, and a program that hangs killed with its children at the deadline. */
#include "slurm/command.h"
#include "tests/harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *const no_env[] = {"PATH=/usr/bin:/bin", NULL};

Test(slurm_command, captures_stdout_the_first_stderr_line_and_the_status)
{
    const char *argv[] = {"/bin/sh", "-c",
                          "echo vg-3; echo second; echo 'qgpuctl: no' >&2; "
                          "echo more >&2; exit 3",
                          NULL};
    char out[64], err[QSL_ERR_LEN];
    cr_assert_eq(qsl_command_run(argv, no_env, 5000, out, sizeof out, err), 3);
    cr_assert_str_eq(out, "vg-3\nsecond\n");
    cr_assert_str_eq(err, "qgpuctl: no");
}

Test(slurm_command, gives_the_program_only_the_environment_it_is_handed)
{
    setenv("QV_SECRET_OF_THE_CALLER", "x", 1);
    const char *argv[] = {"/usr/bin/env", NULL};
    char out[256], err[QSL_ERR_LEN];
    cr_assert_eq(qsl_command_run(argv, no_env, 5000, out, sizeof out, err), 0);
    cr_assert_str_eq(out, "PATH=/usr/bin:/bin\n");
}

Test(slurm_command, keeps_output_past_the_buffer_from_blocking_the_program)
{
    const char *argv[] = {"/bin/sh", "-c", "head -c 1000000 /dev/zero | tr '\\0' x; echo done >&2",
                          NULL};
    char out[16], err[QSL_ERR_LEN];
    cr_assert_eq(qsl_command_run(argv, no_env, 10000, out, sizeof out, err), 0);
    cr_assert_str_eq(out, "xxxxxxxxxxxxxxx");
    cr_assert_str_eq(err, "done");
}

Test(slurm_command, kills_a_program_that_hangs_with_its_children_at_the_deadline)
{
    char *dir = qt_tmpdir();
    char script[1024];
    /* the child leaves a grandchild behind that would outlive it */
    snprintf(script, sizeof script, "sleep 30 & echo $! > %s/pid; exec sleep 30", dir);
    const char *argv[] = {"/bin/sh", "-c", script, NULL};
    char out[16], err[QSL_ERR_LEN];
    uint64_t t0 = qt_now_ns();
    cr_assert_eq(qsl_command_run(argv, no_env, 300, out, sizeof out, err), -ETIMEDOUT);
    uint64_t ms = (qt_now_ns() - t0) / 1000000;
    cr_assert(ms >= 290 && ms < 5000, "returned after %llu ms", (unsigned long long)ms);
    char path[512];
    snprintf(path, sizeof path, "%s/pid", dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    int pid = 0;
    cr_assert_eq(fscanf(f, "%d", &pid), 1);
    fclose(f);
    /* killed with its group (it may linger a moment as a zombie of init) */
    bool gone = false;
    for (int i = 0; i < 200 && !gone; i++) {
        char stat[64], buf[256] = "";
        snprintf(stat, sizeof stat, "/proc/%d/stat", pid);
        FILE *s = fopen(stat, "r");
        gone = !s || !fgets(buf, sizeof buf, s) || strstr(buf, ") Z ");
        if (s)
            fclose(s);
        if (!gone)
            qt_sleep_ms(10);
    }
    cr_assert(gone, "the grandchild %d still runs", pid);
    free(dir);
}

Test(slurm_command, keeps_the_exit_status_where_sigchld_is_ignored)
{
    /* slurmstepd may ignore SIGCHLD; then children are reaped by the kernel unless we
     * restore the default while waiting. */
    signal(SIGCHLD, SIG_IGN);
    const char *argv[] = {"/bin/sh", "-c", "exit 7", NULL};
    char out[16], err[QSL_ERR_LEN];
    cr_assert_eq(qsl_command_run(argv, no_env, 5000, out, sizeof out, err), 7);
    struct sigaction now;
    sigaction(SIGCHLD, NULL, &now);
    cr_assert_eq(now.sa_handler, SIG_IGN, "the caller's disposition is back");
}

Test(slurm_command, says_why_a_program_cannot_start)
{
    const char *argv[] = {"/nonexistent/qgpuctl", "list", NULL};
    char out[16], err[QSL_ERR_LEN];
    cr_assert_eq(qsl_command_run(argv, no_env, 5000, out, sizeof out, err), 127);
    cr_assert(strstr(err, "cannot run /nonexistent/qgpuctl: No such file or directory"), "%s", err);
}

Test(slurm_command, leaves_no_descriptor_of_the_caller_open_in_the_program)
{
    int fd = open("/dev/null", O_RDONLY); /* not close-on-exec */
    cr_assert_geq(fd, 3);
    char check[64];
    snprintf(check, sizeof check, "test -e /proc/self/fd/%d && echo open || echo closed", fd);
    const char *argv[] = {"/bin/sh", "-c", check, NULL};
    char out[16], err[QSL_ERR_LEN];
    cr_assert_eq(qsl_command_run(argv, no_env, 5000, out, sizeof out, err), 0);
    cr_assert_str_eq(out, "closed\n");
    close(fd);
}
