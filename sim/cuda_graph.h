/* cuda_graph.h - stream capture: what the stream module hands over while a stream
 * captures. Threads: any; capture state under qsim_g.lock. */
#ifndef QSIM_CUDA_GRAPH_H
#define QSIM_CUDA_GRAPH_H

#include "sim/cuda_stream.h"

/* Gives w to the capture st (or, for a wait, w's event) takes part in. Sets *taken when
 * the capture took it (a node, a join or a record), false when w must run now. */
CUresult qsim_capture_take(struct qsim_stream *st, const struct qsim_work *w, bool *taken);

/* Called on a synchronising call against a capturing stream: the capture is invalidated,
 * as on the real driver. Returns CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED. */
CUresult qsim_capture_violated(struct qsim_stream *st);

#endif
