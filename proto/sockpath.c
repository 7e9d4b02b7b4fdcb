/* sockpath.c - Unix socket paths and whether anything listens on one. Stateless. */
#include "proto/sockpath.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int qp_sockpath_fill(struct sockaddr_un *sun, const char *path)
{
    size_t n = strlen(path);
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    if (n >= sizeof sun->sun_path)
        return -ENAMETOOLONG;
    memcpy(sun->sun_path, path, n + 1);
    return 0;
}

int qp_sockpath_probe(const char *path)
{
    struct sockaddr_un sun;
    int rc = qp_sockpath_fill(&sun, path);
    if (rc < 0)
        return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    rc = connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}
