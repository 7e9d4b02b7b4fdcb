/* cuda_stream.c - streams (user, legacy and per-thread default), events, and running a
 * unit of work: move its data, queue its device time.
 * Threads: any. Stream and event objects under qsim_g.lock, the engine under the host
 * lock (always taken second). A thread's per-thread default streams are its own. */
#include "sim/cuda_stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sim/clock.h"
#include "sim/cuda_ctx.h"
#include "sim/cuda_graph.h"
#include "sim/cuda_pool.h"
#include "sim/engine.h"

/* ---- the copy time model (sim/README.md) ------------------------------------------- */

uint64_t qsim_copy_ns(int dir, size_t bytes)
{
    switch (dir) {
    case QSIM_HTOD:
    case QSIM_DTOH:
    case QSIM_HTOH:
        return 8000u + bytes / 12u; /* PCIe: 8 us + 12 GB/s */
    case QSIM_DTOD:
        return 4000u + bytes / 200u; /* device memory: 4 us + 200 GB/s */
    default:
        return 3000u + bytes / 400u; /* memset: 3 us + 400 GB/s */
    }
}

/* ---- stream objects ---------------------------------------------------------------- */

static void live_remove_locked(struct qsim_stream *st)
{
    for (struct qsim_stream **pp = &qsim_g.streams; *pp; pp = &(*pp)->next) {
        if (*pp == st) {
            *pp = st->next;
            return;
        }
    }
}

CUresult qsim_stream_new_locked(struct qsim_ctx *ctx, unsigned flags, int priority, bool builtin,
                                struct qsim_stream **out)
{
    struct qsim_stream *st = qsim_g.free_streams;
    if (st)
        qsim_g.free_streams = st->next;
    else if (!(st = calloc(1, sizeof *st)))
        return CUDA_ERROR_OUT_OF_MEMORY;
    if (qsim_lock_host() != CUDA_SUCCESS) {
        st->next = qsim_g.free_streams;
        qsim_g.free_streams = st;
        return CUDA_ERROR_UNKNOWN;
    }
    int slot = qsim_engine_stream_new_locked(qsim_g.shm, ctx->slot);
    qsim_unlock_host();
    if (slot < 0) {
        st->next = qsim_g.free_streams;
        qsim_g.free_streams = st;
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    st->slot = slot;
    st->ctx = ctx;
    st->flags = flags;
    st->priority = priority;
    st->builtin = builtin;
    st->per_thread = false;
    st->id = qsim_new_id();
    atomic_store_explicit(&st->cap, NULL, memory_order_relaxed);
    st->tls_next = NULL;
    st->magic = QSIM_MAGIC_STREAM;
    st->next = qsim_g.streams;
    qsim_g.streams = st;
    *out = st;
    return CUDA_SUCCESS;
}

/* Ends st: its engine slot is freed once its work is done. Caller holds qsim_g.lock and
 * puts the object on the free list (or, for a per-thread stream, its thread does). */
static void stream_end_locked(struct qsim_stream *st)
{
    st->magic = 0;
    live_remove_locked(st);
    if (qsim_lock_host() == CUDA_SUCCESS) {
        qsim_engine_stream_free_locked(qsim_g.shm, st->slot);
        qsim_unlock_host();
    }
}

void qsim_stream_drop_ctx_locked(struct qsim_ctx *ctx)
{
    struct qsim_stream *st = qsim_g.streams;
    while (st) {
        struct qsim_stream *next = st->next;
        if (st->ctx == ctx) {
            stream_end_locked(st);
            if (!st->per_thread) {
                st->next = qsim_g.free_streams;
                qsim_g.free_streams = st;
            }
        }
        st = next;
    }
}

/* pthread key destructor: an exiting thread's per-thread default streams. */
void qsim_stream_thread_exit(void *list);
void qsim_stream_thread_exit(void *list)
{
    pthread_mutex_lock(&qsim_g.lock);
    for (struct qsim_stream *st = list, *next; st; st = next) {
        next = st->tls_next;
        if (st->magic == QSIM_MAGIC_STREAM)
            stream_end_locked(st);
        st->next = qsim_g.free_streams;
        qsim_g.free_streams = st;
    }
    pthread_mutex_unlock(&qsim_g.lock);
}

/* The calling thread's per-thread default stream of ctx, made on first use. */
static CUresult per_thread_stream(struct qsim_ctx *ctx, struct qsim_stream **out)
{
    struct qsim_stream *head = pthread_getspecific(qsim_g.thread_key);
    for (struct qsim_stream *st = head; st; st = st->tls_next) {
        if (st->magic == QSIM_MAGIC_STREAM && st->ctx == ctx) {
            *out = st;
            return CUDA_SUCCESS;
        }
    }
    pthread_mutex_lock(&qsim_g.lock);
    /* Recycle entries whose context was destroyed. */
    for (struct qsim_stream **pp = &head; *pp;) {
        struct qsim_stream *st = *pp;
        if (st->magic != QSIM_MAGIC_STREAM) {
            *pp = st->tls_next;
            st->next = qsim_g.free_streams;
            qsim_g.free_streams = st;
        } else {
            pp = &st->tls_next;
        }
    }
    struct qsim_stream *st = NULL;
    CUresult rc = qsim_stream_new_locked(ctx, CU_STREAM_DEFAULT, 0, true, &st);
    if (rc == CUDA_SUCCESS) {
        st->per_thread = true;
        st->tls_next = head;
        head = st;
        *out = st;
    }
    pthread_mutex_unlock(&qsim_g.lock);
    pthread_setspecific(qsim_g.thread_key, head);
    return rc;
}

CUresult qsim_stream_resolve(CUstream h, bool per_thread, struct qsim_stream **out)
{
    if (!h)
        h = per_thread ? CU_STREAM_PER_THREAD : CU_STREAM_LEGACY;
    if (h == CU_STREAM_LEGACY || h == CU_STREAM_PER_THREAD) {
        struct qsim_ctx *ctx;
        CUresult rc = qsim_ctx_get(&ctx);
        if (rc != CUDA_SUCCESS)
            return rc;
        if (h == CU_STREAM_LEGACY) {
            *out = ctx->legacy;
            return CUDA_SUCCESS;
        }
        return per_thread_stream(ctx, out);
    }
    struct qsim_stream *st = (struct qsim_stream *)h;
    if (st->magic != QSIM_MAGIC_STREAM)
        return CUDA_ERROR_INVALID_HANDLE;
    *out = st;
    return CUDA_SUCCESS;
}

/* ---- running work ------------------------------------------------------------------ */

static void do_copy(const struct qsim_work *w)
{
    /* memmove: a device-to-device copy within one allocation may overlap. */
    for (size_t r = 0; r < w->height; r++)
        memmove((char *)w->dst + r * w->dpitch, (const char *)w->src + r * w->spitch, w->width);
}

static void do_set(const struct qsim_work *w)
{
    for (size_t r = 0; r < w->height; r++) {
        char *row = (char *)w->dst + r * w->dpitch;
        if (w->elem == 1) {
            memset(row, (int)(w->value & 0xff), w->width);
        } else if (w->elem == 2) {
            uint16_t v = (uint16_t)w->value;
            for (size_t i = 0; i < w->width; i++)
                memcpy(row + 2 * i, &v, 2);
        } else {
            uint32_t v = w->value;
            for (size_t i = 0; i < w->width; i++)
                memcpy(row + 4 * i, &v, 4);
        }
    }
}

CUresult qsim_work_run(struct qsim_stream *st, const struct qsim_work *w, uint64_t *seq)
{
    struct qsim_op op = {0};
    switch (w->type) {
    case QSIM_WORK_KERNEL:
        op.kind = QSIM_OP_KERNEL;
        op.remaining = w->ns;
        break;
    case QSIM_WORK_COPY:
        do_copy(w);
        op.kind = QSIM_OP_COPY;
        op.remaining = qsim_copy_ns(w->dir, w->width * w->height);
        break;
    case QSIM_WORK_SET:
        do_set(w);
        op.kind = QSIM_OP_COPY;
        op.remaining = qsim_copy_ns(-1, w->width * w->height * (size_t)w->elem);
        break;
    case QSIM_WORK_RECORD:
        atomic_store_explicit(&w->event->cap, NULL, memory_order_relaxed);
        op.kind = QSIM_OP_EVENT;
        op.arg = w->event->slot;
        break;
    case QSIM_WORK_WAIT: {
        /* The event's latest record, as of now; written only by this process. */
        const struct qsim_event_slot *ev = &qsim_g.shm->event[w->event->slot];
        if (ev->stream < 0) {
            if (seq)
                *seq = 0;
            return CUDA_SUCCESS; /* never recorded: nothing to wait for */
        }
        op.kind = QSIM_OP_WAIT;
        op.arg = ev->stream;
        op.wait_seq = ev->seq;
        break;
    }
    default:
        return CUDA_ERROR_INVALID_VALUE;
    }
    int rc = qsim_engine_submit(qsim_g.host, st->slot, &op);
    if (rc < 0)
        return qsim_cu_error(rc);
    if (seq)
        *seq = op.seq;
    return CUDA_SUCCESS;
}

CUresult qsim_work_issue(struct qsim_stream *st, const struct qsim_work *w, uint64_t *seq)
{
    bool maybe_captured =
        atomic_load_explicit(&st->cap, memory_order_relaxed) ||
        (w->type == QSIM_WORK_WAIT && atomic_load_explicit(&w->event->cap, memory_order_relaxed));
    if (maybe_captured) {
        bool taken = false;
        CUresult rc = qsim_capture_take(st, w, &taken);
        if (rc != CUDA_SUCCESS || taken) {
            if (seq)
                *seq = 0;
            return rc;
        }
    }
    return qsim_work_run(st, w, seq);
}

/* ---- waiting ----------------------------------------------------------------------- */

CUresult qsim_stream_wait(struct qsim_stream *st, uint64_t seq)
{
    if (seq == 0)
        return CUDA_SUCCESS;
    int rc = qsim_engine_wait(qsim_g.host, st->slot, seq, 0);
    return qsim_cu_error(rc);
}

CUresult qsim_stream_sync(struct qsim_stream *st)
{
    if (atomic_load_explicit(&st->cap, memory_order_relaxed))
        return qsim_capture_violated(st);
    if (qsim_lock_host() != CUDA_SUCCESS)
        return CUDA_ERROR_UNKNOWN;
    uint64_t seq = qsim_g.shm->stream[st->slot].submitted;
    qsim_unlock_host();
    CUresult rc = qsim_stream_wait(st, seq);
    if (rc == CUDA_SUCCESS)
        qsim_pool_on_sync(st->ctx->ordinal);
    return rc;
}

CUresult qsim_ctx_wait_idle(struct qsim_ctx *ctx)
{
    if (qsim_lock_host() != CUDA_SUCCESS)
        return CUDA_ERROR_UNKNOWN;
    const struct qsim_ectx *x = &qsim_g.shm->ctx[ctx->slot];
    int st = -1;
    uint64_t seq = 0;
    if (x->head < x->tail) {
        /* Work of a context runs in submission order: its newest operation is last. */
        const struct qsim_op *last = &x->q[(x->tail - 1) % QSIM_QUEUE_DEPTH];
        st = last->stream;
        seq = last->seq;
    }
    qsim_unlock_host();
    return qsim_cu_error(st >= 0 ? qsim_engine_wait(qsim_g.host, st, seq, 0) : 0);
}

CUresult qsim_ctx_sync(struct qsim_ctx *ctx)
{
    CUresult rc = qsim_ctx_wait_idle(ctx);
    if (rc == CUDA_SUCCESS)
        qsim_pool_on_sync(ctx->ordinal);
    return rc;
}

/* ---- stream entry points ----------------------------------------------------------- */

static CUresult stream_create(CUstream *ph, unsigned flags, int priority)
{
    if (!ph || (flags & ~(unsigned)CU_STREAM_NON_BLOCKING))
        return CUDA_ERROR_INVALID_VALUE;
    struct qsim_ctx *ctx;
    CUresult rc = qsim_ctx_get(&ctx);
    if (rc != CUDA_SUCCESS)
        return rc;
    /* Priorities are clamped to the range cuCtxGetStreamPriorityRange reports. */
    if (priority > 0)
        priority = 0;
    if (priority < -5)
        priority = -5;
    struct qsim_stream *st;
    pthread_mutex_lock(&qsim_g.lock);
    rc = qsim_stream_new_locked(ctx, flags, priority, false, &st);
    pthread_mutex_unlock(&qsim_g.lock);
    if (rc == CUDA_SUCCESS)
        *ph = (CUstream)st;
    return rc;
}

QSIM_API CUresult cuStreamCreate(CUstream *phStream, unsigned int Flags)
{
    QSIM_GUARDED(stream_create(phStream, Flags, 0));
}

QSIM_API CUresult cuStreamCreateWithPriority(CUstream *phStream, unsigned int flags, int priority)
{
    QSIM_GUARDED(stream_create(phStream, flags, priority));
}

static CUresult ctx_stream_priority_range(int *least, int *greatest)
{
    struct qsim_ctx *ctx;
    CUresult rc = qsim_ctx_get(&ctx);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (least)
        *least = 0;
    if (greatest)
        *greatest = -5;
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuCtxGetStreamPriorityRange(int *leastPriority, int *greatestPriority)
{
    QSIM_GUARDED(ctx_stream_priority_range(leastPriority, greatestPriority));
}

static CUresult stream_destroy(CUstream h)
{
    struct qsim_stream *st = (struct qsim_stream *)h;
    if (!h || h == CU_STREAM_LEGACY || h == CU_STREAM_PER_THREAD ||
        st->magic != QSIM_MAGIC_STREAM || st->builtin)
        return CUDA_ERROR_INVALID_HANDLE;
    pthread_mutex_lock(&qsim_g.lock);
    /* Work still queued completes; the slot is freed after it (engine DYING state). */
    stream_end_locked(st);
    st->next = qsim_g.free_streams;
    qsim_g.free_streams = st;
    pthread_mutex_unlock(&qsim_g.lock);
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuStreamDestroy(CUstream hStream)
{
    QSIM_GUARDED(stream_destroy(hStream));
}

QSIM_API CUresult cuStreamDestroy_v2(CUstream hStream)
{
    QSIM_GUARDED(stream_destroy(hStream));
}

static CUresult stream_synchronize(CUstream h, bool per_thread)
{
    struct qsim_stream *st;
    CUresult rc = qsim_stream_resolve(h, per_thread, &st);
    return rc == CUDA_SUCCESS ? qsim_stream_sync(st) : rc;
}

QSIM_API CUresult cuStreamSynchronize(CUstream hStream)
{
    QSIM_GUARDED(stream_synchronize(hStream, false));
}

QSIM_API CUresult cuStreamSynchronize_ptsz(CUstream hStream)
{
    QSIM_GUARDED(stream_synchronize(hStream, true));
}

static CUresult stream_query(CUstream h, bool per_thread)
{
    struct qsim_stream *st;
    CUresult rc = qsim_stream_resolve(h, per_thread, &st);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (atomic_load_explicit(&st->cap, memory_order_relaxed))
        return qsim_capture_violated(st);
    if (qsim_lock_host() != CUDA_SUCCESS)
        return CUDA_ERROR_UNKNOWN;
    struct qsim_shm *s = qsim_g.shm;
    qsim_engine_advance_all_locked(s, qsim_now_ns());
    bool done = s->stream[st->slot].completed >= s->stream[st->slot].submitted;
    qsim_unlock_host();
    return done ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}

QSIM_API CUresult cuStreamQuery(CUstream hStream)
{
    QSIM_GUARDED(stream_query(hStream, false));
}

QSIM_API CUresult cuStreamQuery_ptsz(CUstream hStream)
{
    QSIM_GUARDED(stream_query(hStream, true));
}

static CUresult stream_wait_event(CUstream h, CUevent e, unsigned flags, bool per_thread)
{
    struct qsim_event *ev = qsim_event_of(e);
    if (!ev)
        return CUDA_ERROR_INVALID_HANDLE;
    if (flags & ~(unsigned)CU_EVENT_WAIT_EXTERNAL)
        return CUDA_ERROR_INVALID_VALUE;
    struct qsim_stream *st;
    CUresult rc = qsim_stream_resolve(h, per_thread, &st);
    if (rc != CUDA_SUCCESS)
        return rc;
    struct qsim_work w = {.type = QSIM_WORK_WAIT, .event = ev};
    return qsim_work_issue(st, &w, NULL);
}

QSIM_API CUresult cuStreamWaitEvent(CUstream hStream, CUevent hEvent, unsigned int Flags)
{
    QSIM_GUARDED(stream_wait_event(hStream, hEvent, Flags, false));
}

QSIM_API CUresult cuStreamWaitEvent_ptsz(CUstream hStream, CUevent hEvent, unsigned int Flags)
{
    QSIM_GUARDED(stream_wait_event(hStream, hEvent, Flags, true));
}

/* What the stream getters return. */
enum stream_field { SF_FLAGS, SF_PRIORITY, SF_CTX, SF_ID, SF_DEVICE };

static CUresult stream_get(CUstream h, bool per_thread, enum stream_field f, void *out)
{
    if (!out)
        return CUDA_ERROR_INVALID_VALUE;
    struct qsim_stream *st;
    CUresult rc = qsim_stream_resolve(h, per_thread, &st);
    if (rc != CUDA_SUCCESS)
        return rc;
    switch (f) {
    case SF_FLAGS:
        *(unsigned *)out = st->flags;
        break;
    case SF_PRIORITY:
        *(int *)out = st->priority;
        break;
    case SF_CTX:
        *(CUcontext *)out = (CUcontext)st->ctx;
        break;
    case SF_ID:
        *(unsigned long long *)out = st->id;
        break;
    case SF_DEVICE:
        *(CUdevice *)out = st->ctx->ordinal;
        break;
    }
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuStreamGetFlags(CUstream hStream, unsigned int *flags)
{
    QSIM_GUARDED(stream_get(hStream, false, SF_FLAGS, flags));
}

QSIM_API CUresult cuStreamGetFlags_ptsz(CUstream hStream, unsigned int *flags)
{
    QSIM_GUARDED(stream_get(hStream, true, SF_FLAGS, flags));
}

QSIM_API CUresult cuStreamGetPriority(CUstream hStream, int *priority)
{
    QSIM_GUARDED(stream_get(hStream, false, SF_PRIORITY, priority));
}

QSIM_API CUresult cuStreamGetPriority_ptsz(CUstream hStream, int *priority)
{
    QSIM_GUARDED(stream_get(hStream, true, SF_PRIORITY, priority));
}

QSIM_API CUresult cuStreamGetCtx(CUstream hStream, CUcontext *pctx)
{
    QSIM_GUARDED(stream_get(hStream, false, SF_CTX, pctx));
}

QSIM_API CUresult cuStreamGetCtx_ptsz(CUstream hStream, CUcontext *pctx)
{
    QSIM_GUARDED(stream_get(hStream, true, SF_CTX, pctx));
}

/* Green contexts are not simulated: a stream's green context is always NULL. */
static CUresult stream_get_ctx_v2(CUstream h, bool per_thread, CUcontext *pctx, CUgreenCtx *green)
{
    if (!pctx || !green)
        return CUDA_ERROR_INVALID_VALUE;
    *green = NULL;
    return stream_get(h, per_thread, SF_CTX, pctx);
}

QSIM_API CUresult cuStreamGetCtx_v2(CUstream hStream, CUcontext *pCtx, CUgreenCtx *pGreenCtx)
{
    QSIM_GUARDED(stream_get_ctx_v2(hStream, false, pCtx, pGreenCtx));
}

QSIM_API CUresult cuStreamGetCtx_v2_ptsz(CUstream hStream, CUcontext *pCtx, CUgreenCtx *pGreenCtx)
{
    QSIM_GUARDED(stream_get_ctx_v2(hStream, true, pCtx, pGreenCtx));
}

QSIM_API CUresult cuStreamGetId(CUstream hStream, unsigned long long *streamId)
{
    QSIM_GUARDED(stream_get(hStream, false, SF_ID, streamId));
}

QSIM_API CUresult cuStreamGetId_ptsz(CUstream hStream, unsigned long long *streamId)
{
    QSIM_GUARDED(stream_get(hStream, true, SF_ID, streamId));
}

QSIM_API CUresult cuStreamGetDevice(CUstream hStream, CUdevice *device)
{
    QSIM_GUARDED(stream_get(hStream, false, SF_DEVICE, device));
}

QSIM_API CUresult cuStreamGetDevice_ptsz(CUstream hStream, CUdevice *device)
{
    QSIM_GUARDED(stream_get(hStream, true, SF_DEVICE, device));
}

/* ---- events ------------------------------------------------------------------------ */

struct qsim_event *qsim_event_of(CUevent h)
{
    struct qsim_event *ev = (struct qsim_event *)h;
    return ev && ev->magic == QSIM_MAGIC_EVENT ? ev : NULL;
}

static CUresult event_create(CUevent *ph, unsigned flags)
{
    const unsigned known = CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING | CU_EVENT_INTERPROCESS;
    if (!ph || (flags & ~known))
        return CUDA_ERROR_INVALID_VALUE;
    if ((flags & CU_EVENT_INTERPROCESS) && !(flags & CU_EVENT_DISABLE_TIMING))
        return CUDA_ERROR_INVALID_VALUE;
    if (flags & CU_EVENT_INTERPROCESS)
        return CUDA_ERROR_NOT_SUPPORTED;
    struct qsim_ctx *ctx;
    CUresult rc = qsim_ctx_get(&ctx);
    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_event *ev = qsim_g.free_events;
    if (ev)
        qsim_g.free_events = ev->next;
    else
        ev = calloc(1, sizeof *ev);
    int slot = -ENOSPC;
    if (ev && qsim_lock_host() == CUDA_SUCCESS) {
        slot = qsim_engine_event_new_locked(qsim_g.shm, qsim_g.proc);
        qsim_unlock_host();
    }
    if (ev && slot < 0) {
        ev->next = qsim_g.free_events;
        qsim_g.free_events = ev;
    } else if (ev) {
        ev->slot = slot;
        ev->flags = flags;
        ev->ctx = ctx;
        atomic_store_explicit(&ev->cap, NULL, memory_order_relaxed);
        ev->magic = QSIM_MAGIC_EVENT;
        ev->next = qsim_g.events;
        qsim_g.events = ev;
    }
    pthread_mutex_unlock(&qsim_g.lock);
    if (!ev || slot < 0)
        return CUDA_ERROR_OUT_OF_MEMORY;
    *ph = (CUevent)ev;
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuEventCreate(CUevent *phEvent, unsigned int Flags)
{
    QSIM_GUARDED(event_create(phEvent, Flags));
}

static CUresult event_destroy(CUevent h)
{
    struct qsim_event *ev = qsim_event_of(h);
    if (!ev)
        return CUDA_ERROR_INVALID_HANDLE;
    pthread_mutex_lock(&qsim_g.lock);
    ev->magic = 0;
    for (struct qsim_event **pp = &qsim_g.events; *pp; pp = &(*pp)->next) {
        if (*pp == ev) {
            *pp = ev->next;
            break;
        }
    }
    if (qsim_lock_host() == CUDA_SUCCESS) {
        qsim_engine_event_free_locked(qsim_g.shm, ev->slot);
        qsim_unlock_host();
    }
    ev->next = qsim_g.free_events;
    qsim_g.free_events = ev;
    pthread_mutex_unlock(&qsim_g.lock);
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuEventDestroy(CUevent hEvent)
{
    QSIM_GUARDED(event_destroy(hEvent));
}

QSIM_API CUresult cuEventDestroy_v2(CUevent hEvent)
{
    QSIM_GUARDED(event_destroy(hEvent));
}

static CUresult event_record(CUevent h, CUstream hs, unsigned flags, bool per_thread)
{
    struct qsim_event *ev = qsim_event_of(h);
    if (!ev)
        return CUDA_ERROR_INVALID_HANDLE;
    if (flags & ~(unsigned)CU_EVENT_RECORD_EXTERNAL)
        return CUDA_ERROR_INVALID_VALUE;
    struct qsim_stream *st;
    CUresult rc = qsim_stream_resolve(hs, per_thread, &st);
    if (rc != CUDA_SUCCESS)
        return rc;
    struct qsim_work w = {.type = QSIM_WORK_RECORD, .event = ev};
    return qsim_work_issue(st, &w, NULL);
}

QSIM_API CUresult cuEventRecord(CUevent hEvent, CUstream hStream)
{
    QSIM_GUARDED(event_record(hEvent, hStream, 0, false));
}

QSIM_API CUresult cuEventRecord_ptsz(CUevent hEvent, CUstream hStream)
{
    QSIM_GUARDED(event_record(hEvent, hStream, 0, true));
}

QSIM_API CUresult cuEventRecordWithFlags(CUevent hEvent, CUstream hStream, unsigned int flags)
{
    QSIM_GUARDED(event_record(hEvent, hStream, flags, false));
}

QSIM_API CUresult cuEventRecordWithFlags_ptsz(CUevent hEvent, CUstream hStream, unsigned int flags)
{
    QSIM_GUARDED(event_record(hEvent, hStream, flags, true));
}

/* The event's latest record: its stream slot (-1: never recorded) and number. */
static void latest_record(const struct qsim_event *ev, int *st, uint64_t *seq)
{
    const struct qsim_event_slot *x = &qsim_g.shm->event[ev->slot];
    *st = x->stream;
    *seq = x->seq;
}

static CUresult event_query(CUevent h)
{
    struct qsim_event *ev = qsim_event_of(h);
    if (!ev)
        return CUDA_ERROR_INVALID_HANDLE;
    if (atomic_load_explicit(&ev->cap, memory_order_relaxed))
        return CUDA_ERROR_CAPTURED_EVENT;
    int st;
    uint64_t seq;
    latest_record(ev, &st, &seq);
    if (st < 0)
        return CUDA_SUCCESS;
    return qsim_engine_query(qsim_g.host, st, seq) ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}

QSIM_API CUresult cuEventQuery(CUevent hEvent)
{
    QSIM_GUARDED(event_query(hEvent));
}

static CUresult event_synchronize(CUevent h)
{
    struct qsim_event *ev = qsim_event_of(h);
    if (!ev)
        return CUDA_ERROR_INVALID_HANDLE;
    if (atomic_load_explicit(&ev->cap, memory_order_relaxed))
        return CUDA_ERROR_CAPTURED_EVENT;
    int st;
    uint64_t seq;
    latest_record(ev, &st, &seq);
    if (st < 0)
        return CUDA_SUCCESS;
    int rc = qsim_engine_wait(qsim_g.host, st, seq, 0);
    if (rc == 0)
        qsim_pool_on_sync(ev->ctx->ordinal);
    return qsim_cu_error(rc);
}

QSIM_API CUresult cuEventSynchronize(CUevent hEvent)
{
    QSIM_GUARDED(event_synchronize(hEvent));
}

static CUresult event_elapsed(float *ms, CUevent h0, CUevent h1)
{
    struct qsim_event *e0 = qsim_event_of(h0), *e1 = qsim_event_of(h1);
    if (!ms)
        return CUDA_ERROR_INVALID_VALUE;
    if (!e0 || !e1)
        return CUDA_ERROR_INVALID_HANDLE;
    if ((e0->flags | e1->flags) & CU_EVENT_DISABLE_TIMING)
        return CUDA_ERROR_INVALID_HANDLE;
    if (qsim_lock_host() != CUDA_SUCCESS)
        return CUDA_ERROR_UNKNOWN;
    struct qsim_shm *s = qsim_g.shm;
    qsim_engine_advance_all_locked(s, qsim_now_ns());
    const struct qsim_event_slot *a = &s->event[e0->slot], *b = &s->event[e1->slot];
    CUresult rc = CUDA_SUCCESS;
    if (a->stream < 0 || b->stream < 0)
        rc = CUDA_ERROR_INVALID_HANDLE;
    else if (!a->done || !b->done)
        rc = CUDA_ERROR_NOT_READY;
    else
        *ms = (float)(((double)b->time - (double)a->time) / 1e6);
    qsim_unlock_host();
    return rc;
}

QSIM_API CUresult cuEventElapsedTime(float *pMilliseconds, CUevent hStart, CUevent hEnd)
{
    QSIM_GUARDED(event_elapsed(pMilliseconds, hStart, hEnd));
}

QSIM_API CUresult cuEventElapsedTime_v2(float *pMilliseconds, CUevent hStart, CUevent hEnd)
{
    QSIM_GUARDED(event_elapsed(pMilliseconds, hStart, hEnd));
}
