/* test_arbiter_notify_off.c - qarbiter's readiness as a machine without libsystemd builds
 * it (arbiter/notify.c without QA_HAVE_SYSTEMD, make SYSTEMD=0): it tells systemd
 * nothing, and a unit that waits for READY=1 is warned of in one line, the only thing a
 * Type=notify unit's administrator would see before systemd kills the arbiter. This
 * binary links that build of notify.c whatever the machine has (Makefile); the daemon
 * built that way is test_arbiter_notify's build/minimal/qarbiter. */
#include "arbiter/notify.h"
#include "tests/harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Log lines go to a temporary file; what it holds, as text (static, rewritten). */
struct logged {
    FILE *f;
    qa_log_t log;
};

static const char *text_of(struct logged *l)
{
    static char buf[4096];
    fflush(l->f);
    rewind(l->f);
    size_t n = fread(buf, 1, sizeof buf - 1, l->f);
    buf[n] = '\0';
    return buf;
}

/* NOTIFY_SOCKET pointed at a datagram socket bound in a temporary dir, as systemd does;
 * returns the socket, so that a test can see nothing came. */
static int notify_socket(void)
{
    char *dir = qt_tmpdir();
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/notify", dir);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0, "%s", strerror(errno));
    setenv("NOTIFY_SOCKET", sa.sun_path, 1);
    free(dir);
    return fd;
}

static bool nothing_came(int fd)
{
    char buf[256];
    return recv(fd, buf, sizeof buf, MSG_DONTWAIT) < 0 && errno == EAGAIN;
}

Test(qa_notify_off, says_it_cannot_notify)
{
    cr_assert_not(qa_notify_built());
}

Test(qa_notify_off, a_unit_waiting_for_ready_is_warned_of_once_in_one_line)
{
    int fd = notify_socket();
    struct logged l = {tmpfile(), {QA_DEBUG, NULL}};
    l.log.out = l.f;
    qa_notify_ready(&l.log, "serving /run/qvgpu");
    qa_notify_stopping(&l.log);
    const char *t = text_of(&l);
    cr_assert(strstr(t, "warn: NOTIFY_SOCKET is set but this qarbiter was built without "
                        "libsystemd: it cannot tell systemd it is ready (rebuild with "
                        "libsystemd-dev, or use Type=simple)\n"),
              "%s", t);
    cr_assert_eq(strchr(t, '\n') - t + 1, (long)strlen(t), "one line, stopping says nothing: %s",
                 t);
    cr_assert(nothing_came(fd), "nothing is sent to systemd");
    unsetenv("NOTIFY_SOCKET");
    close(fd);
    fclose(l.f);
}

Test(qa_notify_off, not_run_by_systemd_it_says_nothing)
{
    struct logged l = {tmpfile(), {QA_DEBUG, NULL}};
    l.log.out = l.f;
    unsetenv("NOTIFY_SOCKET");
    qa_notify_ready(&l.log, "serving");
    setenv("NOTIFY_SOCKET", "", 1); /* set but empty: systemd did not set it */
    qa_notify_ready(&l.log, "serving");
    qa_notify_stopping(&l.log);
    unsetenv("NOTIFY_SOCKET");
    cr_assert_str_eq(text_of(&l), "");
    fclose(l.f);
}
