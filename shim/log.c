/* log.c - the shim's only output: one line on stderr per condition. Threads: any. */
#include "shim/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

static void vlog(const char *fmt, va_list ap)
{
    int saved = errno;
    char line[512];
    int n = snprintf(line, sizeof line, "qvgpu: ");
    n += vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    if (n > (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    /* One write, so that lines from several threads or processes do not interleave. */
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
    errno = saved;
}

void qs_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(fmt, ap);
    va_end(ap);
}

void qs_log_once(atomic_int *once, const char *fmt, ...)
{
    if (atomic_exchange_explicit(once, 1, memory_order_relaxed))
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(fmt, ap);
    va_end(ap);
}
