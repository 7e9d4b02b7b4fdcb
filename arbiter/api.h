/* api.h - the JSON API from a view (view.h): GET /api/v1/gpus, /api/v1/vgpus,
 * /api/v1/vgpus/ID and /api/v1/stats. Each object carries the fields `qgpuctl --json`
 * prints for the same thing, plus the product's documented names (`utilization`,
 * `total_memory_mb`, `vgpu_count`, `total_vgpus`, ...) and the counters only the
 * arbiter has; docs/http.md lists them. Pure: no state; any thread. */
#ifndef QA_API_H
#define QA_API_H

#include "arbiter/view.h"

#include <stddef.h>

/* Renders the document at path (the URL's path, e.g. "/api/v1/vgpus/vg-3") from view
 * into *out (NUL-terminated JSON, the caller frees) of *len bytes. Returns 0, -ENOENT
 * when path names no document (or no vGPU of view), or -ENOMEM. */
int qa_api_render(const qa_view_t *view, const char *path, char **out, size_t *len);
/* {"error": msg} into *out / *len as above. Returns 0 or -ENOMEM. */
int qa_api_error(const char *msg, char **out, size_t *len);

#endif
