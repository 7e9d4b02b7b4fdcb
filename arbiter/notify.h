/* notify.h - tells the service manager that qarbiter is ready, and when it stops
 * (systemd's Type=notify, through libsystemd's sd_notify: READY=1 once both sockets are
 * served, STOPPING=1 at SIGTERM). Built without libsystemd (make SYSTEMD=0, or no
 * libsystemd-dev), qarbiter does not notify, and says so when NOTIFY_SOCKET asks it to.
 * Single-threaded: the main thread. */
#ifndef QA_NOTIFY_H
#define QA_NOTIFY_H

#include "arbiter/log.h"

#include <stdbool.h>

/* Whether this qarbiter was built with libsystemd and so can notify. */
bool qa_notify_built(void);
/* Says READY=1, with status a line for `systemctl status`. Call it only when admin.sock
 * and tenant.sock accept connections: systemd then starts what is ordered after
 * qarbiter.service. Without NOTIFY_SOCKET (not started by systemd) it does nothing; a
 * failure is logged and costs only the notification. */
void qa_notify_ready(const qa_log_t *log, const char *status);
/* Says STOPPING=1: the arbiter is stopping of its own accord. */
void qa_notify_stopping(const qa_log_t *log);

#endif
