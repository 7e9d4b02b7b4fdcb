/* cuda_stream.h - streams, events and the unit of work every launch, copy and memset
 * becomes: run at once on a stream, or recorded into a graph while the stream captures.
 * Threads: any; process objects under qsim_g.lock, the engine under the host lock. */
#ifndef QSIM_CUDA_STREAM_H
#define QSIM_CUDA_STREAM_H

#include "sim/cuda_state.h"

enum qsim_work_type {
    QSIM_WORK_KERNEL = 1, /* ns of device time */
    QSIM_WORK_COPY,       /* 2D copy of height rows of width bytes */
    QSIM_WORK_SET,        /* 2D fill of height rows of width elements of elem bytes */
    QSIM_WORK_RECORD,     /* record event */
    QSIM_WORK_WAIT,       /* wait for event's latest record */
};

/* Which way a copy goes, for its modelled time. */
enum qsim_copy_dir { QSIM_HTOD, QSIM_DTOH, QSIM_DTOD, QSIM_HTOH };

/* One operation as the application asked for it. Pointers are the application's: a
 * captured copy reads its source when the graph is launched, as on the real driver. */
struct qsim_work {
    int type;                 /* enum qsim_work_type */
    uint64_t ns;              /* KERNEL: device time */
    void *dst;                /* COPY, SET: first destination byte */
    const void *src;          /* COPY: first source byte */
    size_t dpitch;            /* COPY, SET: bytes from one destination row to the next */
    size_t spitch;            /* COPY: the same for the source */
    size_t width;             /* COPY: bytes per row; SET: elements per row */
    size_t height;            /* COPY, SET: rows (1 for a plain copy or memset) */
    int dir;                  /* COPY: enum qsim_copy_dir */
    uint32_t value;           /* SET: the element value */
    int elem;                 /* SET: element size, 1, 2 or 4 */
    struct qsim_event *event; /* RECORD, WAIT */
};

/* Modelled device time of copying (or, for a memset, writing) bytes. See sim/README.md. */
uint64_t qsim_copy_ns(int dir, size_t bytes);

/* The stream object an API call means by h: NULL is the current context's legacy
 * default stream, or its per-thread one when per_thread (the _ptsz/_ptds variants);
 * CU_STREAM_LEGACY and CU_STREAM_PER_THREAD name those explicitly. */
CUresult qsim_stream_resolve(CUstream h, bool per_thread, struct qsim_stream **out);

/* A new stream of ctx (builtin: a legacy default stream). Caller holds qsim_g.lock. */
CUresult qsim_stream_new_locked(struct qsim_ctx *ctx, unsigned flags, int priority, bool builtin,
                                struct qsim_stream **out);
/* Destroys every stream of ctx (it is being destroyed). Caller holds qsim_g.lock. */
void qsim_stream_drop_ctx_locked(struct qsim_ctx *ctx);

/* Runs w on st now (moves the data, queues the device time), or appends it to st's
 * capture. *seq (may be NULL) receives its sequence number, 0 when captured. */
CUresult qsim_work_issue(struct qsim_stream *st, const struct qsim_work *w, uint64_t *seq);
/* Runs w on st now, capture or not (graph launch). */
CUresult qsim_work_run(struct qsim_stream *st, const struct qsim_work *w, uint64_t *seq);

/* Waits until st completed operation seq. */
CUresult qsim_stream_wait(struct qsim_stream *st, uint64_t seq);
/* Waits for everything queued on st, then lets pools give memory back. */
CUresult qsim_stream_sync(struct qsim_stream *st);
/* Waits for everything queued in ctx. Caller may hold qsim_g.lock. */
CUresult qsim_ctx_wait_idle(struct qsim_ctx *ctx);
/* The same, then lets pools give memory back. Caller does not hold qsim_g.lock. */
CUresult qsim_ctx_sync(struct qsim_ctx *ctx);

/* The event object behind h, or NULL if h is not a live event. */
struct qsim_event *qsim_event_of(CUevent h);

#endif
