/* test_arbiter_procfs.c - the host's processes as the audit sees them: name, start time,
 * the vGPU credentials in the environment, and a kill that spares a process that took a
 * dead one's pid (arbiter/procfs.c). */
#include "arbiter/procfs.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Bytes /proc/PID/environ holds now. */
static size_t environ_size(pid_t pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return n;
}

/* A child sleeping with env as its whole environment; its pid. */
static pid_t sleeper(char *const env[])
{
    pid_t pid = fork();
    if (pid == 0) {
        char *argv[] = {"sleep", "30", NULL};
        execve("/bin/sleep", argv, env);
        _exit(127);
    }
    cr_assert_gt(pid, 0);
    /* until exec is done: the kernel renames the process before it sets up the new
     * stack, and /proc/PID/environ reads empty in between (every env here has PATH) */
    qa_proc_info_t i;
    for (int t = 0; t < 200; t++) {
        if (qa_procfs_inspect((unsigned)pid, &i) == 0 && strcmp(i.name, "sleep") == 0 &&
            environ_size(pid) > 0)
            break;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    return pid;
}

Test(qa_procfs, a_process_shows_its_name_start_and_the_credentials_in_its_environment)
{
    char *env[] = {"PATH=/bin", "QVGPU_VGPU=vg-7", "QVGPU_SECRET=00112233445566778899aabbccddeeff",
                   NULL};
    pid_t pid = sleeper(env);
    qa_proc_info_t i;
    cr_assert_eq(qa_procfs_inspect((unsigned)pid, &i), 0);
    cr_assert_str_eq(i.name, "sleep");
    cr_assert_gt(i.start, 0);
    cr_assert_str_eq(i.vgpu, "vg-7");
    cr_assert_str_eq(i.secret, "00112233445566778899aabbccddeeff");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    cr_assert_eq(qa_procfs_inspect((unsigned)pid, &i), -ENOENT, "gone");
}

Test(qa_procfs, a_process_without_credentials_shows_none)
{
    char *env[] = {"PATH=/bin", NULL};
    pid_t pid = sleeper(env);
    qa_proc_info_t i;
    cr_assert_eq(qa_procfs_inspect((unsigned)pid, &i), 0);
    cr_assert_str_eq(i.vgpu, "");
    cr_assert_str_eq(i.secret, "");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

Test(qa_procfs, a_kill_hits_only_the_process_that_started_at_that_time)
{
    char *env[] = {"PATH=/bin", NULL};
    pid_t pid = sleeper(env);
    qa_proc_info_t i;
    cr_assert_eq(qa_procfs_inspect((unsigned)pid, &i), 0);
    cr_assert_eq(qa_procfs_kill((unsigned)pid, i.start + 1), -ESRCH,
                 "another start time: another process with the same pid");
    cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "still running");
    cr_assert_eq(qa_procfs_kill((unsigned)pid, i.start), 0);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    cr_assert_eq(qa_procfs_kill((unsigned)pid, i.start), -ESRCH, "gone");
}
