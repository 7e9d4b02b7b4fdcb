/* notify.c - readiness for systemd (notify.h). Single-threaded. */
#include "arbiter/notify.h"

#include <stdlib.h>
#include <string.h>

#ifdef QA_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

bool qa_notify_built(void)
{
    return true;
}

void qa_notify_ready(const qa_log_t *log, const char *status)
{
    /* 0 when NOTIFY_SOCKET is unset: not run by systemd, nobody to tell */
    int rc = sd_notifyf(0, "READY=1\nSTATUS=%s", status);
    if (rc < 0)
        qa_log(log, QA_WARN, "cannot tell systemd that qarbiter is ready (NOTIFY_SOCKET=%s): %s",
               getenv("NOTIFY_SOCKET"), strerror(-rc));
    else if (rc > 0)
        qa_log(log, QA_DEBUG, "told systemd: ready");
}

void qa_notify_stopping(const qa_log_t *log)
{
    int rc = sd_notify(0, "STOPPING=1");
    if (rc < 0)
        qa_log(log, QA_DEBUG, "cannot tell systemd that qarbiter is stopping: %s", strerror(-rc));
}

#else

bool qa_notify_built(void)
{
    return false;
}

/* A unit of Type=notify waits for READY=1 until its start times out and then kills the
 * arbiter: say why, once, where the administrator looks. */
void qa_notify_ready(const qa_log_t *log, const char *status)
{
    (void)status;
    const char *sock = getenv("NOTIFY_SOCKET");
    if (sock && *sock)
        qa_log(log, QA_WARN,
               "NOTIFY_SOCKET is set but this qarbiter was built without libsystemd: it cannot "
               "tell systemd it is ready (rebuild with libsystemd-dev, or use Type=simple)");
}

void qa_notify_stopping(const qa_log_t *log)
{
    (void)log;
}

#endif
