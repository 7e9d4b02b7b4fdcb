/* throttle.h - keeps any one source from filling the log. Each source (the uid of a
 * connecting process) may write `burst` lines per window; later lines of that window are
 * counted instead of written, and when the window is over one summary line says how
 * many were held back (issue 8: one line per malformed connection let anyone write about
 * a gigabyte of log an hour).
 *
 * Pure: times are passed in, lines are written by the caller. At most max_sources
 * sources are followed at once; lines of others, while that many are, count under
 * QA_THROTTLE_OTHERS. Single-threaded: the loop thread. */
#ifndef QA_THROTTLE_H
#define QA_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The source that lines of sources beyond max_sources count under. */
#define QA_THROTTLE_OTHERS UINT32_MAX

typedef struct qa_throttle qa_throttle_t;

/* NULL when out of memory. */
qa_throttle_t *qa_throttle_new(unsigned burst, uint64_t window_ns, size_t max_sources);
void qa_throttle_destroy(qa_throttle_t **self_p);
/* Whether a line of source may be written at now: true for the first `burst` lines of
 * its window (which begins with its first line), false after; a false is counted. Out of
 * memory, the line is counted under QA_THROTTLE_OTHERS. */
bool qa_throttle_allow(qa_throttle_t *self, uint32_t source, uint64_t now);
/* Calls fn(arg, source, held) for every source whose window is over by now and held lines
 * back, and forgets every source whose window is over. */
void qa_throttle_flush(qa_throttle_t *self, uint64_t now,
                       void (*fn)(void *arg, uint32_t source, uint64_t held), void *arg);
/* Sources followed now. */
size_t qa_throttle_sources(const qa_throttle_t *self);

#endif
