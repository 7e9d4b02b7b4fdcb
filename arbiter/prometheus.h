/* prometheus.h - a view (view.h) in the Prometheus text exposition format 0.0.4: the
 * body of GET /metrics. Every name starts with qvgpu_, is in base units (bytes,
 * seconds, ratios 0..1) and counters end in _total; docs/http.md lists them.
 * Pure: no state; any thread. */
#ifndef QA_PROMETHEUS_H
#define QA_PROMETHEUS_H

#include "arbiter/view.h"

#include <stddef.h>

#define QA_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Renders view into *out (NUL-terminated, the caller frees) of *len bytes. Returns 0 or
 * -ENOMEM. */
int qa_prom_render(const qa_view_t *view, char **out, size_t *len);

#endif
