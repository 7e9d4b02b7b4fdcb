/* log.h - one-line messages to the application's stderr, each condition at most once.
 * The shim lives in someone else's process: it never writes to stdout, and keeps errno. */
#ifndef QS_LOG_H
#define QS_LOG_H

#include <stdatomic.h>

/* Writes "qvgpu: <message>\n" to fd 2 in one write(2); errno is kept. */
void qs_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same, unless *once was already set by an earlier call (then nothing); sets it.
 * Threads: any; exactly one caller logs. */
void qs_log_once(atomic_int *once, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
