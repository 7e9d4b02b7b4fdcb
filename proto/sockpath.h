/* sockpath.h - Unix socket paths: whether one fits a sockaddr_un, and whether anything
 * accepts connections on one now (the arbiter asks it of a tenant.sock before it takes
 * the path, libqvgpu of admin.sock before it waits for a reply, the tests of a socket
 * file a killed arbiter left). Stateless; any thread. */
#ifndef QP_SOCKPATH_H
#define QP_SOCKPATH_H

#include <sys/un.h>

/* Fills *sun (AF_UNIX) with path. Returns 0, or -ENAMETOOLONG when path does not fit. */
int qp_sockpath_fill(struct sockaddr_un *sun, const char *path);
/* Connects to the stream socket at path and closes the connection at once. Returns 0
 * when something accepted it; -ECONNREFUSED (a socket file nobody serves: a killed
 * process's) or -ENOENT (no file) when nobody listens there; another negative errno
 * (-EACCES, -ENAMETOOLONG, ...) when that cannot be told. */
int qp_sockpath_probe(const char *path);

#endif
