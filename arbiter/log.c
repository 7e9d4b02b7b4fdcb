/* log.c - timestamped, levelled lines on stderr. Any thread (see log.h). */
#include "arbiter/log.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *names[] = {"error", "warn", "info", "debug"};

void qa_log(const qa_log_t *log, qa_level_t level, const char *fmt, ...)
{
    if (level > log->level)
        return;
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(log->out, "%s.%03ldZ qarbiter[%d] %s: %s\n", when, ts.tv_nsec / 1000000, (int)getpid(),
            names[level], text);
}

int qa_log_parse_level(const char *s, qa_level_t *out)
{
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (qa_level_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *qa_log_level_name(qa_level_t level)
{
    return (size_t)level < sizeof names / sizeof names[0] ? names[level] : "?";
}
