/* log.h - the arbiter's log: one line per event on stderr, with a time and a level.
 * A qa_log_t is a small value the server owns and hands to what logs; writing a line is
 * one fprintf, which stdio makes atomic, so any thread may log. */
#ifndef QA_LOG_H
#define QA_LOG_H

#include <stdio.h>

typedef enum qa_level {
    QA_ERROR = 0,
    QA_WARN = 1,
    QA_INFO = 2,
    QA_DEBUG = 3,
} qa_level_t;

typedef struct qa_log {
    qa_level_t level; /* lines above this level are dropped */
    FILE *out;        /* borrowed: stderr, or a test's file */
} qa_log_t;

/* Writes "2025-01-31T12:00:00.123Z qarbiter[PID] LEVEL: text" when level is enabled. */
void qa_log(const qa_log_t *log, qa_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Parses "error", "warn", "info" or "debug". Returns 0 or -EINVAL. */
int qa_log_parse_level(const char *s, qa_level_t *out);
/* The name qa_log_parse_level reads: "error", "warn", "info" or "debug". */
const char *qa_log_level_name(qa_level_t level);

#endif
