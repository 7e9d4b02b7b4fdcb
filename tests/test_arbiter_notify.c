/* test_arbiter_notify.c - what systemd sees of qarbiter (Type=notify): READY=1 only once
 * admin.sock and tenant.sock accept connections, never from a start that fails, and
 * STOPPING=1 at SIGTERM. And qarbiter as a machine without libsystemd and libmicrohttpd
 * builds it (build/minimal/qarbiter): it says what it lacks, in one line, and serves. */
#include "arbiter/http.h"
#include "arbiter/notify.h"
#include "proto/sockpath.h"
#include "tests/harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* A datagram socket bound where NOTIFY_SOCKET will point, as systemd makes one. */
typedef struct {
    int fd;
    char *path; /* owned */
    char *env;  /* owned: "NOTIFY_SOCKET=path" */
} listener_t;

static listener_t listen_notify(const char *dir)
{
    listener_t l = {-1, qt_strf("%s/notify", dir), NULL};
    l.env = qt_strf("NOTIFY_SOCKET=%s", l.path);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    cr_assert_lt(strlen(l.path), sizeof sa.sun_path);
    strcpy(sa.sun_path, l.path);
    l.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(l.fd, 0);
    cr_assert_eq(bind(l.fd, (struct sockaddr *)&sa, sizeof sa), 0, "%s", strerror(errno));
    return l;
}

/* The next message within ms, or NULL. Caller frees. */
static char *next_message(const listener_t *l, int ms)
{
    struct pollfd p = {l->fd, POLLIN, 0};
    if (poll(&p, 1, ms) != 1)
        return NULL;
    char buf[4096];
    ssize_t n = recv(l->fd, buf, sizeof buf - 1, 0);
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    return strdup(buf);
}

static void listener_free(listener_t *l)
{
    close(l->fd);
    free(l->path), free(l->env);
}

static bool accepts(const char *dir, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return qp_sockpath_probe(path) == 0;
}

/* A socket file nobody serves, as kill -9 leaves one. */
static void stale_socket(const char *dir, const char *name)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s", dir, name);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
}

typedef struct {
    char *root, *sock, *state; /* owned */
} dirs_t;

static dirs_t make_dirs(void)
{
    dirs_t d = {qt_tmpdir(), NULL, NULL};
    d.sock = qt_strf("%s/sock", d.root);
    d.state = qt_strf("%s/state", d.root);
    cr_assert_eq(mkdir(d.sock, 0755), 0);
    cr_assert_eq(mkdir(d.state, 0700), 0);
    return d;
}

static void dirs_free(dirs_t *d)
{
    free(d->root), free(d->sock), free(d->state);
}

static qt_proc_t *spawn(const char *program, const dirs_t *d, const char *const extra[],
                        const char *const env[])
{
    char *bin = qt_build_path(program);
    const char *argv[16] = {bin,      "--socket-dir", d->sock, "--state-dir",
                            d->state, "--config",     "off"};
    size_t n = 7;
    for (size_t i = 0; extra && extra[i]; i++)
        argv[n++] = extra[i];
    qt_proc_t *p = qt_spawn(argv, env);
    cr_assert_not_null(p);
    free(bin);
    return p;
}

static bool admin_up_or_exited(void *arg)
{
    void **a = arg;
    siginfo_t si = {0};
    /* WNOWAIT: only look; qt_proc_wait reaps it */
    return accepts(a[0], "admin.sock") ||
           (waitid(P_PID, (id_t)qt_proc_pid(a[1]), &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
            si.si_pid != 0);
}

static bool logged(void *arg)
{
    void **a = arg;
    return strstr(qt_proc_stderr(a[0]), a[1]) != NULL;
}

Test(qa_notify, says_ready_only_once_both_sockets_accept_connections_and_stopping_at_sigterm)
{
    if (!qa_notify_built())
        cr_skip_test("qarbiter was built without libsystemd (SYSTEMD=0 or no libsystemd-dev)");
    qt_sim_private(NULL);
    dirs_t d = make_dirs();
    char *tenant = qt_strf("%s/tenant", d.root);
    listener_t l = listen_notify(d.root);
    const char *extra[] = {"--tenant-dir", tenant, "--http", "off", NULL};
    const char *env[] = {l.env, NULL};
    qt_proc_t *p = spawn("qarbiter", &d, extra, env);
    char *msg = next_message(&l, 10000);
    cr_assert_not_null(msg, "no message from qarbiter within 10 s:\n%s", qt_proc_stderr(p));
    /* at the very moment systemd hears it, clients must get through */
    bool admin = accepts(d.sock, "admin.sock"), ten = accepts(tenant, "tenant.sock");
    cr_assert(admin && ten, "READY=1 said before the sockets accept (admin %d, tenant %d)", admin,
              ten);
    cr_assert(strstr(msg, "READY=1"), "%s", msg);
    char *status = qt_strf("STATUS=serving %s", d.sock);
    cr_assert(strstr(msg, status), "%s", msg);
    qt_proc_kill(p, SIGTERM);
    char *stop = next_message(&l, 5000);
    cr_assert_not_null(stop, "nothing said at SIGTERM");
    cr_assert_str_eq(stop, "STOPPING=1");
    cr_assert_eq(qt_proc_wait(p, 5000), 0, "%s", qt_proc_stderr(p));
    cr_assert_null(next_message(&l, 0), "a third message");
    qt_proc_destroy(&p);
    free(msg), free(stop), free(status), free(tenant);
    listener_free(&l), dirs_free(&d);
}

Test(qa_notify, a_start_that_fails_never_says_ready_even_over_a_stale_admin_sock)
{
    qt_sim_private(NULL);
    dirs_t d = make_dirs();
    stale_socket(d.sock, "admin.sock");
    /* a state dir others may write is refused after the lock is taken, while the start is
     * well under way */
    cr_assert_eq(chmod(d.state, 0777), 0);
    listener_t l = listen_notify(d.root);
    const char *extra[] = {"--http", "off", NULL};
    const char *env[] = {l.env, NULL};
    qt_proc_t *p = spawn("qarbiter", &d, extra, env);
    cr_assert_eq(qt_proc_wait(p, 10000), 1, "%s", qt_proc_stderr(p));
    cr_assert(strstr(qt_proc_stderr(p), "state"), "%s", qt_proc_stderr(p));
    char *msg = next_message(&l, 0);
    cr_assert_null(msg, "a failed start told systemd: %s", msg);
    char *admin = qt_strf("%s/admin.sock", d.sock);
    struct stat st;
    cr_assert_neq(stat(admin, &st), 0, "the stale admin.sock is still there to say 'ready'");
    qt_proc_destroy(&p);
    free(admin);
    listener_free(&l), dirs_free(&d);
}

Test(qa_notify, built_without_libsystemd_it_says_it_cannot_notify_and_serves)
{
    qt_sim_private(NULL);
    dirs_t d = make_dirs();
    listener_t l = listen_notify(d.root);
    const char *extra[] = {"--http", "off", NULL};
    const char *env[] = {l.env, NULL};
    qt_proc_t *p = spawn("minimal/qarbiter", &d, extra, env);
    void *arg[] = {d.sock, p};
    qt_wait_until(admin_up_or_exited, arg, 10000);
    cr_assert(accepts(d.sock, "admin.sock"), "not serving:\n%s", qt_proc_stderr(p));
    /* said right after the sockets are bound, where READY=1 would be */
    void *said[] = {p, "built without libsystemd: it cannot tell systemd"};
    cr_assert(qt_wait_until(logged, said, 5000), "%s", qt_proc_stderr(p));
    char *msg = next_message(&l, 200);
    cr_assert_null(msg, "it said %s", msg);
    qt_proc_kill(p, SIGTERM);
    cr_assert_eq(qt_proc_wait(p, 5000), 0, "%s", qt_proc_stderr(p));
    qt_proc_destroy(&p);
    listener_free(&l), dirs_free(&d);
}

Test(qa_notify, built_without_libmicrohttpd_it_refuses_an_http_address_and_runs_without)
{
    qt_sim_private(NULL);
    dirs_t d = make_dirs();
    const char *asked[] = {"--http", "127.0.0.1:0", NULL};
    qt_proc_t *p = spawn("minimal/qarbiter", &d, asked, NULL);
    cr_assert_eq(qt_proc_wait(p, 5000), 2, "%s", qt_proc_stderr(p));
    const char *err = qt_proc_stderr(p);
    cr_assert(strstr(err, "--http 127.0.0.1:0: this qarbiter was built without HTTP"), "%s", err);
    cr_assert_eq(strchr(err, '\n'), err + strlen(err) - 1, "not one line: %s", err);
    qt_proc_destroy(&p);

    p = spawn("minimal/qarbiter", &d, NULL, NULL); /* the default: HTTP on 127.0.0.1:8080 */
    void *arg[] = {d.sock, p};
    qt_wait_until(admin_up_or_exited, arg, 10000);
    cr_assert(accepts(d.sock, "admin.sock"), "not serving:\n%s", qt_proc_stderr(p));
    void *said[] = {p, "info: no HTTP: this qarbiter was built without libmicrohttpd"};
    cr_assert(qt_wait_until(logged, said, 5000), "%s", qt_proc_stderr(p));
    err = qt_proc_stderr(p);
    const char *line = strstr(err, said[1]);
    cr_assert_null(strstr(strchr(line, '\n'), "HTTP"), "more than one line on HTTP: %s", err);
    cr_assert_null(strstr(err, "warn"), "%s", err);
    qt_proc_kill(p, SIGTERM);
    cr_assert_eq(qt_proc_wait(p, 5000), 0, "%s", qt_proc_stderr(p));
    qt_proc_destroy(&p);
    dirs_free(&d);
}

/* ---- notify.c alone -------------------------------------------------------------------- */

Test(qa_notify, ready_and_stopping_reach_the_socket_that_notify_socket_names)
{
    if (!qa_notify_built())
        cr_skip_test("built without libsystemd: qarbiter does not notify");
    char *dir = qt_tmpdir();
    listener_t l = listen_notify(dir);
    FILE *f = tmpfile();
    qa_log_t log = {QA_DEBUG, f};
    setenv("NOTIFY_SOCKET", l.path, 1);
    qa_notify_ready(&log, "serving /run/qvgpu");
    char *m = next_message(&l, 2000);
    cr_assert_not_null(m, "READY came");
    cr_assert_str_eq(m, "READY=1\nSTATUS=serving /run/qvgpu");
    free(m);
    qa_notify_stopping(&log);
    m = next_message(&l, 2000);
    cr_assert_not_null(m);
    cr_assert_str_eq(m, "STOPPING=1");
    free(m);
    unsetenv("NOTIFY_SOCKET");
    qa_notify_ready(&log, "serving"); /* not run by systemd: nobody to tell, nothing said */
    cr_assert_null(next_message(&l, 100));
    fclose(f);
    listener_free(&l);
    free(dir);
}
