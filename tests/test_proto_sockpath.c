/* test_proto_sockpath.c - whether anything listens on a Unix socket path: served, a file
 * a killed process left, no file, a path too long (proto/sockpath.h). */
#include "proto/sockpath.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char dir[] = "/tmp/qp_sockpath.XXXXXX";

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* A socket bound at name in dir, listening or not (as a killed process leaves one). */
static int bound(const char *name, bool listening, char path[108])
{
    struct sockaddr_un sun;
    snprintf(path, 108, "%s/%s", dir, name);
    cr_assert_eq(qp_sockpath_fill(&sun, path), 0);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
    if (listening)
        cr_assert_eq(listen(fd, 4), 0);
    return fd;
}

Test(qp_sockpath, tells_a_served_socket_from_a_dead_ones_file_and_no_file, .init = setup,
     .fini = teardown)
{
    char served[108], dead[108], none[108];
    int a = bound("served.sock", true, served);
    int b = bound("dead.sock", false, dead);
    close(b); /* the file stays, as after kill -9 */
    snprintf(none, sizeof none, "%s/none.sock", dir);
    cr_assert_eq(qp_sockpath_probe(served), 0);
    cr_assert_eq(qp_sockpath_probe(dead), -ECONNREFUSED);
    cr_assert_eq(qp_sockpath_probe(none), -ENOENT);
    close(a);
}

Test(qp_sockpath, a_path_too_long_for_sun_path_is_refused_not_cut)
{
    char path[200];
    struct sockaddr_un sun;
    memset(path, 'p', sizeof path - 1);
    path[0] = '/';
    path[sizeof path - 1] = '\0';
    cr_assert_eq(qp_sockpath_fill(&sun, path), -ENAMETOOLONG);
    cr_assert_eq(qp_sockpath_probe(path), -ENAMETOOLONG);
    path[sizeof sun.sun_path - 1] = '\0'; /* the longest that fits */
    cr_assert_eq(qp_sockpath_fill(&sun, path), 0);
    cr_assert_str_eq(sun.sun_path, path);
}
