/* view_support.h - made-up hosts to build views from, for the tests of what the HTTP
 * side renders (prometheus.c, api.c, history.c). Test-only. */
#ifndef QV_VIEW_SUPPORT_H
#define QV_VIEW_SUPPORT_H

#include "arbiter/host.h"
#include "arbiter/view.h"

/* Two GPUs ("GPU-aaaa" 8 GiB, "GPU-bbbb" 4 GiB) with no vGPU. Destroy with
 * qa_host_destroy. */
qa_host_t *view_host(void);
/* Creates a vGPU of profile for vm on gpu; fails the test when it cannot. Borrowed. */
qa_vgpu_t *view_vgpu(qa_host_t *h, const char *vm, const char *profile, int gpu);
/* A view of h with made-up metrics and 3 tenant connections. */
qa_view_t *view_of(qa_host_t *h);

#endif
