/* command.c - fork/exec with captured output and a deadline. */
#include "slurm/command.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reaps pid (its pipes are closed: it exited or is about to) before deadline; false when
 * it is still there then. */
static bool reap_by(pid_t pid, int64_t deadline, int *status)
{
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            return true;
        if (now_ms() >= deadline)
            return false;
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* In the child: stdin from /dev/null, stdout/stderr to the pipes, nothing else open. */
static void child(const char *const argv[], const char *const env[], int out, int err)
{
    setpgid(0, 0);
    int null = open("/dev/null", O_RDONLY);
    if (null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
        _exit(126);
    for (int fd = 3; fd < 1024; fd++)
        close(fd);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(argv[0], (char *const *)argv, (char *const *)env);
    dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

int qsl_command_run(const char *const argv[], const char *const env[], int timeout_ms, char *out,
                    size_t outlen, char errline[QSL_ERR_LEN])
{
    char errbuf[QSL_ERR_LEN];
    size_t nout = 0, nerr = 0;
    int po[2], pe[2];
    out[0] = '\0';
    errline[0] = '\0';
    if (pipe2(po, O_CLOEXEC) < 0) {
        int e = errno;
        snprintf(errline, QSL_ERR_LEN, "cannot run %s: %s", argv[0], strerror(e));
        return -e;
    }
    if (pipe2(pe, O_CLOEXEC) < 0) {
        int e = errno;
        close(po[0]);
        close(po[1]);
        snprintf(errline, QSL_ERR_LEN, "cannot run %s: %s", argv[0], strerror(e));
        return -e;
    }
    /* A caller that ignores SIGCHLD would have the child reaped behind our back, and its
     * exit status lost: wait for it with the default disposition. */
    struct sigaction dfl = {.sa_handler = SIG_DFL}, old;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGCHLD, &dfl, &old);
    pid_t pid = fork();
    if (pid == 0)
        child(argv, env, po[1], pe[1]);
    int e = errno;
    close(po[1]);
    close(pe[1]);
    if (pid < 0) {
        close(po[0]);
        close(pe[0]);
        sigaction(SIGCHLD, &old, NULL);
        snprintf(errline, QSL_ERR_LEN, "cannot run %s: %s", argv[0], strerror(e));
        return -e;
    }
    setpgid(pid, pid); /* also here: no window where a kill of the group misses it */
    int64_t deadline = now_ms() + timeout_ms;
    struct pollfd fds[2] = {{.fd = po[0], .events = POLLIN}, {.fd = pe[0], .events = POLLIN}};
    bool timed_out = false;
    while (fds[0].fd >= 0 || fds[1].fd >= 0) {
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        int n = poll(fds, 2, (int)left);
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; n > 0 && i < 2; i++) {
            if (fds[i].fd < 0 || !fds[i].revents)
                continue;
            char tmp[4096];
            ssize_t r = read(fds[i].fd, tmp, sizeof tmp);
            if (r <= 0) {
                if (r < 0 && errno == EINTR)
                    continue;
                close(fds[i].fd);
                fds[i].fd = -1;
                continue;
            }
            /* keep what fits, drain the rest so the child never blocks on a full pipe */
            char *buf = i == 0 ? out : errbuf;
            size_t cap = i == 0 ? outlen : sizeof errbuf;
            size_t *used = i == 0 ? &nout : &nerr;
            size_t take = (size_t)r < cap - 1 - *used ? (size_t)r : cap - 1 - *used;
            memcpy(buf + *used, tmp, take);
            *used += take;
            buf[*used] = '\0';
        }
    }
    for (int i = 0; i < 2; i++) {
        if (fds[i].fd >= 0)
            close(fds[i].fd);
    }
    int status = 0;
    if (timed_out || !reap_by(pid, deadline, &status)) {
        timed_out = true;
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
    }
    sigaction(SIGCHLD, &old, NULL);
    errbuf[nerr] = '\0';
    errbuf[strcspn(errbuf, "\n")] = '\0';
    snprintf(errline, QSL_ERR_LEN, "%s", errbuf);
    if (timed_out)
        return -ETIMEDOUT;
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}
