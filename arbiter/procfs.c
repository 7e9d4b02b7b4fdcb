/* procfs.c - names, start times, environments and kills of the host's processes through
 * /proc. Stateless; any thread. */
#include "arbiter/procfs.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* An environment longer than this is not read further: the kernel's own limit on
 * arguments and environment together is a few MiB at most. */
#define MAX_ENVIRON (4u << 20)

/* Reads /proc/pid/what whole into a malloc'd buffer of at most max bytes (*len set).
 * Returns it, or NULL with errno set. */
static char *read_file(unsigned pid, const char *what, size_t max, size_t *len)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%u/%s", pid, what);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r < 0) {
                int e = errno;
                free(buf);
                buf = NULL;
                errno = e;
            }
            break;
        }
        n += (size_t)r;
        if (n == cap && cap < max) {
            char *bigger = realloc(buf, (cap *= 2) + 1);
            if (!bigger) {
                free(buf);
                buf = NULL;
                errno = ENOMEM;
            }
            buf = bigger;
        } else if (n == cap) {
            break; /* past max: what was read is all we look at */
        }
    }
    close(fd);
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

/* Field 22 of /proc/pid/stat, the start time. The command name in field 2 may hold
 * spaces and parentheses, so fields are counted from the last ')'. */
static int read_start(unsigned pid, uint64_t *start)
{
    size_t len;
    char *stat = read_file(pid, "stat", 4096, &len);
    if (!stat)
        return errno == ENOENT || errno == ESRCH ? -ENOENT : -errno;
    char *p = strrchr(stat, ')');
    int field = 2, rc = -EIO;
    for (; p && *p; p++) {
        if (*p != ' ')
            continue;
        if (++field == 22) {
            *start = strtoull(p + 1, NULL, 10);
            rc = 0;
            break;
        }
    }
    free(stat);
    return rc;
}

int qa_procfs_inspect(unsigned pid, qa_proc_info_t *out)
{
    memset(out, 0, sizeof *out);
    int rc = read_start(pid, &out->start);
    if (rc < 0)
        return rc;
    size_t len;
    char *comm = read_file(pid, "comm", 64, &len);
    if (comm) {
        comm[strcspn(comm, "\n")] = '\0';
        snprintf(out->name, sizeof out->name, "%s", comm);
        free(comm);
    }
    char *env = read_file(pid, "environ", MAX_ENVIRON, &len);
    if (!env)
        return errno == ENOENT || errno == ESRCH ? -ENOENT : -EACCES;
    for (size_t i = 0; i < len; i += strlen(env + i) + 1) {
        const char *e = env + i;
        if (strncmp(e, "QVGPU_VGPU=", 11) == 0 && strlen(e + 11) < sizeof out->vgpu)
            memcpy(out->vgpu, e + 11, strlen(e + 11) + 1);
        else if (strncmp(e, "QVGPU_SECRET=", 13) == 0 && strlen(e + 13) < sizeof out->secret)
            memcpy(out->secret, e + 13, strlen(e + 13) + 1);
    }
    free(env);
    return 0;
}

int qa_procfs_kill(unsigned pid, uint64_t start)
{
    uint64_t now;
    /* Between this check and kill() the process could exit and its pid be taken again:
     * pids are handed out in order, so that needs the whole pid space to wrap around in
     * that instant. */
    if (pid <= 1 || read_start(pid, &now) < 0 || now != start)
        return -ESRCH;
    return kill((pid_t)pid, SIGKILL) == 0 ? 0 : -errno;
}
