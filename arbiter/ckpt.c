/* ckpt.c - the arbiter's end of the checkpoint helper: starting it, its socket on the
 * loop, reaping it. Loop thread only. */
#include "arbiter/ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

struct qa_ckpt {
    qa_loop_t *loop;       /* borrowed */
    qa_ckpt_hooks_t hooks;
    int fd;                /* owned: our end of the socket; -1 once the helper is gone */
    pid_t pid;             /* the helper */
    bool reaped;           /* waited for */
};

static void on_readable(void *arg);

qa_ckpt_t *qa_ckpt_start(qa_loop_t *loop, const char *exe, const qa_ckpt_hooks_t *hooks,
                         char err[QP_ERR_LEN])
{
    /* Helpers let go earlier (qa_ckpt_stop) that have exited since: the arbiter has no
     * other children. */
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    qa_ckpt_t *self = calloc(1, sizeof *self);
    int sv[2];
    if (!self) {
        snprintf(err, QP_ERR_LEN, "out of memory");
        return NULL;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        snprintf(err, QP_ERR_LEN, "cannot make the checkpoint helper's socket: %s",
                 strerror(errno));
        free(self);
        return NULL;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, QP_ERR_LEN, "cannot start the checkpoint helper: %s", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        free(self);
        return NULL;
    }
    if (pid == 0) {
        /* Only async-signal-safe calls: the arbiter has threads. Its socket as fd 3, every
         * other descriptor closed (the state dir's lock among them: an orphaned helper
         * must not keep a restarted arbiter out). */
        if (dup2(sv[1], 3) < 0)
            _exit(127);
        syscall(SYS_close_range, 4u, ~0u, 0u);
        char *argv[] = {(char *)exe, (char *)QA_CKPT_ARG, (char *)"3", NULL};
        execv(exe, argv);
        _exit(127);
    }
    close(sv[1]);
    self->loop = loop;
    self->hooks = *hooks;
    self->fd = sv[0];
    self->pid = pid;
    if (qa_loop_add_fd(loop, self->fd, on_readable, self) < 0) {
        snprintf(err, QP_ERR_LEN, "cannot watch the checkpoint helper's socket: out of room");
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        close(self->fd);
        free(self);
        return NULL;
    }
    return self;
}

/* The helper is gone: stop watching, reap it, tell the owner. */
static void lost(qa_ckpt_t *self)
{
    if (self->fd < 0)
        return;
    qa_loop_remove_fd(self->loop, self->fd);
    close(self->fd);
    self->fd = -1;
    /* Never blocking the loop: one that has not quite exited is reaped later. */
    if (!self->reaped && waitpid(self->pid, NULL, WNOHANG) == self->pid)
        self->reaped = true;
    self->hooks.gone(self->hooks.arg);
}

static void on_readable(void *arg)
{
    qa_ckpt_t *self = arg;
    qa_ckpt_rep_t rep;
    ssize_t n = recv(self->fd, &rep, sizeof rep, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n != (ssize_t)sizeof rep) { /* closed (0), an error, or not ours */
        lost(self);
        return;
    }
    rep.text[sizeof rep.text - 1] = '\0';
    self->hooks.answer(self->hooks.arg, &rep);
}

int qa_ckpt_send(qa_ckpt_t *self, const qa_ckpt_req_t *req)
{
    if (self->fd < 0)
        return -EPIPE;
    ssize_t n = send(self->fd, req, sizeof *req, MSG_NOSIGNAL);
    return n == (ssize_t)sizeof *req ? 0 : -(errno ? errno : EIO);
}

void qa_ckpt_kill(qa_ckpt_t *self)
{
    if (self->fd >= 0)
        kill(self->pid, SIGKILL);
}

pid_t qa_ckpt_pid(const qa_ckpt_t *self)
{
    return self->pid;
}

void qa_ckpt_stop(qa_ckpt_t **self_p)
{
    qa_ckpt_t *self = *self_p;
    if (!self)
        return;
    if (self->fd >= 0) {
        qa_loop_remove_fd(self->loop, self->fd);
        close(self->fd);
    }
    /* Not waited for: it may have processes to bring home first. Reaped at the next
     * start of a helper, if it has exited by then, or gone with the arbiter. */
    if (!self->reaped)
        waitpid(self->pid, NULL, WNOHANG);
    free(self);
    *self_p = NULL;
}
