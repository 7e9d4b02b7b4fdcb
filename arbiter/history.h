/* history.h - the last ten minutes of utilisation, one sample a second: each vGPU's
 * (its share of its GPU's time under lease) and each GPU's (NVML's and under lease), so
 * that the dashboard opens on ten minutes of chart rather than an empty one
 * (GET /api/v1/history, docs/http.md).
 *
 * A vGPU's series lives on after it is destroyed until its last sample is ten minutes
 * old: the chart shows what ran then. Memory: two bytes a sample, 1.2 KB a vGPU.
 * One thread at a time (http.c serialises every call). */
#ifndef QA_HISTORY_H
#define QA_HISTORY_H

#include "arbiter/view.h"

#include <stddef.h>
#include <stdint.h>

#define QA_HISTORY_SAMPLES 600 /* kept: ten minutes at one a second */

typedef struct qa_history qa_history_t;

/* An empty history. NULL when out of memory. */
qa_history_t *qa_history_new(void);
/* Frees *self_p and sets it to NULL; NULL is a no-op. */
void qa_history_destroy(qa_history_t **self_p);
/* Appends one sample taken from view (the caller spaces them a second apart). Returns 0
 * or -ENOMEM (the sample is then missing for the vGPUs it had no room for). */
int qa_history_add(qa_history_t *self, const qa_view_t *view);
/* Number of the newest sample; samples are numbered from 1 and 0 means none yet. */
uint64_t qa_history_last(const qa_history_t *self);
/* Renders the samples numbered above since (all kept when since is 0 or too old) as JSON
 * into *out (the caller frees) of *len bytes:
 *   {"step_s":1, "first":N, "last":M, "times":[unix seconds...],
 *    "gpus":[{"index":0, "util":[percent...], "leased":[...]}],
 *    "vgpus":[{"id":"vg-1", "vm":"...", "gpu":0, "util":[percent or null...]}]}
 * null where the vGPU did not exist. Returns 0 or -ENOMEM. */
int qa_history_render(const qa_history_t *self, uint64_t since, char **out, size_t *len);

#endif
