/* cuda_graph.c - stream capture and graphs.
 * Threads: any; capture state under qsim_g.lock. */
#include "sim/cuda_graph.h"

CUresult qsim_capture_take(struct qsim_stream *st, const struct qsim_work *w, bool *taken)
{
    (void)st, (void)w;
    *taken = false;
    return CUDA_SUCCESS;
}

CUresult qsim_capture_violated(struct qsim_stream *st)
{
    (void)st;
    return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
}
