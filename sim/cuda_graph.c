/* cuda_graph.c - stream capture and graphs.
 *
 * While a stream captures, the kernels, copies and memsets issued on it (and on streams
 * that join the capture by waiting on an event recorded in it) become nodes of a graph,
 * in the order they were issued: that order respects every dependency the capture
 * expressed. An instantiated graph launches its nodes in that order on one stream.
 * Events recorded and waited on inside a capture only link streams; they add no node.
 * Threads: any; capture state, graphs and executable graphs under qsim_g.lock. */
#include "sim/cuda_graph.h"

#include <stdlib.h>
#include <string.h>

#include "sim/cuda_ctx.h"

struct qsim_node {
    uint32_t magic;           /* QSIM_MAGIC_NODE while its graph exists */
    struct qsim_work w;       /* what it does */
    struct qsim_graph *graph; /* the graph it belongs to */
    struct qsim_node *next;   /* the graph's nodes, in order */
};

struct qsim_graph {
    uint32_t magic;         /* QSIM_MAGIC_GRAPH while it exists */
    struct qsim_node *head; /* owned: its nodes in order */
    struct qsim_node *tail;
    size_t n;                /* nodes */
    struct qsim_graph *next; /* qsim_g.graphs: kept after destruction (stale handles) */
};

struct qsim_exec {
    uint32_t magic;         /* QSIM_MAGIC_EXEC while it exists */
    struct qsim_work *work; /* owned: the nodes' work, in order */
    size_t n;
    struct qsim_exec *next; /* qsim_g.execs */
};

struct qsim_capture {
    struct qsim_graph *graph;     /* being built; handed over at the end */
    CUstreamCaptureStatus status; /* ACTIVE or INVALIDATED */
    CUstreamCaptureMode mode;
    unsigned long long id;      /* unique in the process */
    struct qsim_stream *origin; /* the stream that began it */
    CUgraphNode last;           /* newest node, what the next one depends on */
};

static const CUgraphNodeType node_types[] = {
    [QSIM_WORK_KERNEL] = CU_GRAPH_NODE_TYPE_KERNEL,
    [QSIM_WORK_COPY] = CU_GRAPH_NODE_TYPE_MEMCPY,
    [QSIM_WORK_SET] = CU_GRAPH_NODE_TYPE_MEMSET,
};

static struct qsim_graph *graph_new_locked(void)
{
    struct qsim_graph *g = calloc(1, sizeof *g);
    if (g) {
        g->magic = QSIM_MAGIC_GRAPH;
        g->next = qsim_g.graphs;
        qsim_g.graphs = g;
    }
    return g;
}

static struct qsim_graph *graph_of(CUgraph h)
{
    struct qsim_graph *g = (struct qsim_graph *)h;
    return g && g->magic == QSIM_MAGIC_GRAPH ? g : NULL;
}

static void graph_free_locked(struct qsim_graph *g)
{
    g->magic = 0;
    for (struct qsim_node *n = g->head, *next; n; n = next) {
        next = n->next;
        free(n);
    }
    g->head = g->tail = NULL;
    g->n = 0;
}

/* ---- what the stream module hands over --------------------------------------------- */

CUresult qsim_capture_take(struct qsim_stream *st, const struct qsim_work *w, bool *taken)
{
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_capture *cap = atomic_load_explicit(&st->cap, memory_order_relaxed);
    CUresult rc = CUDA_SUCCESS;
    *taken = true;
    if (!cap) {
        /* Waiting on an event recorded in a capture joins the stream to it. */
        struct qsim_capture *ecap = w->type == QSIM_WORK_WAIT
                                        ? atomic_load_explicit(&w->event->cap, memory_order_relaxed)
                                        : NULL;
        if (ecap && ecap->status == CU_STREAM_CAPTURE_STATUS_ACTIVE)
            atomic_store_explicit(&st->cap, ecap, memory_order_relaxed);
        else
            *taken = false;
    } else if (cap->status != CU_STREAM_CAPTURE_STATUS_ACTIVE) {
        rc = CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
    } else if (w->type == QSIM_WORK_RECORD) {
        atomic_store_explicit(&w->event->cap, cap, memory_order_relaxed);
    } else if (w->type != QSIM_WORK_WAIT) {
        struct qsim_node *n = calloc(1, sizeof *n);
        if (n) {
            n->w = *w;
            n->graph = cap->graph;
            n->magic = QSIM_MAGIC_NODE;
            if (cap->graph->tail)
                cap->graph->tail->next = n;
            else
                cap->graph->head = n;
            cap->graph->tail = n;
            cap->graph->n++;
            cap->last = (CUgraphNode)n;
        } else {
            rc = CUDA_ERROR_OUT_OF_MEMORY;
        }
    }
    pthread_mutex_unlock(&qsim_g.lock);
    return rc;
}

CUresult qsim_capture_violated(struct qsim_stream *st)
{
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_capture *cap = atomic_load_explicit(&st->cap, memory_order_relaxed);
    if (cap)
        cap->status = CU_STREAM_CAPTURE_STATUS_INVALIDATED;
    pthread_mutex_unlock(&qsim_g.lock);
    return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
}

/* ---- capture entry points ---------------------------------------------------------- */

static CUresult begin_capture(CUstream h, CUstreamCaptureMode mode, bool per_thread)
{
    if ((int)mode < CU_STREAM_CAPTURE_MODE_GLOBAL || mode > CU_STREAM_CAPTURE_MODE_RELAXED)
        return CUDA_ERROR_INVALID_VALUE;
    struct qsim_stream *st;
    CUresult rc = qsim_stream_resolve(h, per_thread, &st);
    if (rc != CUDA_SUCCESS)
        return rc;
    struct qsim_ctx *ctx = st->ctx;
    if (st == ctx->legacy)
        return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED; /* the legacy stream cannot capture */
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_capture *cap = NULL;
    if (atomic_load_explicit(&st->cap, memory_order_relaxed)) {
        rc = CUDA_ERROR_ILLEGAL_STATE;
    } else if (!(cap = calloc(1, sizeof *cap)) || !(cap->graph = graph_new_locked())) {
        free(cap);
        rc = CUDA_ERROR_OUT_OF_MEMORY;
    } else {
        cap->status = CU_STREAM_CAPTURE_STATUS_ACTIVE;
        cap->mode = mode;
        cap->id = qsim_new_id();
        cap->origin = st;
        atomic_store_explicit(&st->cap, cap, memory_order_relaxed);
    }
    pthread_mutex_unlock(&qsim_g.lock);
    return rc;
}

QSIM_API CUresult cuStreamBeginCapture(CUstream hStream)
{
    QSIM_GUARDED(begin_capture(hStream, CU_STREAM_CAPTURE_MODE_GLOBAL, false));
}

QSIM_API CUresult cuStreamBeginCapture_ptsz(CUstream hStream)
{
    QSIM_GUARDED(begin_capture(hStream, CU_STREAM_CAPTURE_MODE_GLOBAL, true));
}

QSIM_API CUresult cuStreamBeginCapture_v2(CUstream hStream, CUstreamCaptureMode mode)
{
    QSIM_GUARDED(begin_capture(hStream, mode, false));
}

QSIM_API CUresult cuStreamBeginCapture_v2_ptsz(CUstream hStream, CUstreamCaptureMode mode)
{
    QSIM_GUARDED(begin_capture(hStream, mode, true));
}

static CUresult end_capture(CUstream h, CUgraph *out, bool per_thread)
{
    if (!out)
        return CUDA_ERROR_INVALID_VALUE;
    struct qsim_stream *st;
    CUresult rc = qsim_stream_resolve(h, per_thread, &st);
    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_capture *cap = atomic_load_explicit(&st->cap, memory_order_relaxed);
    if (!cap) {
        rc = CUDA_ERROR_ILLEGAL_STATE;
    } else if (cap->origin != st) {
        rc = CUDA_ERROR_STREAM_CAPTURE_UNMATCHED;
    } else {
        /* Every stream and event of the capture leaves it. */
        for (struct qsim_stream *s = qsim_g.streams; s; s = s->next)
            if (atomic_load_explicit(&s->cap, memory_order_relaxed) == cap)
                atomic_store_explicit(&s->cap, NULL, memory_order_relaxed);
        for (struct qsim_event *e = qsim_g.events; e; e = e->next)
            if (atomic_load_explicit(&e->cap, memory_order_relaxed) == cap)
                atomic_store_explicit(&e->cap, NULL, memory_order_relaxed);
        if (cap->status == CU_STREAM_CAPTURE_STATUS_ACTIVE) {
            *out = (CUgraph)cap->graph;
        } else {
            graph_free_locked(cap->graph);
            *out = NULL;
            rc = CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
        }
        free(cap);
    }
    pthread_mutex_unlock(&qsim_g.lock);
    return rc;
}

QSIM_API CUresult cuStreamEndCapture(CUstream hStream, CUgraph *phGraph)
{
    QSIM_GUARDED(end_capture(hStream, phGraph, false));
}

QSIM_API CUresult cuStreamEndCapture_ptsz(CUstream hStream, CUgraph *phGraph)
{
    QSIM_GUARDED(end_capture(hStream, phGraph, true));
}

/* What cuStreamGetCaptureInfo and cuStreamIsCapturing report about a stream. */
static CUresult capture_info(CUstream h, bool per_thread, CUstreamCaptureStatus *status,
                             cuuint64_t *id, CUgraph *graph, const CUgraphNode **deps,
                             const CUgraphEdgeData **edges, size_t *ndeps)
{
    if (!status)
        return CUDA_ERROR_INVALID_VALUE;
    struct qsim_stream *st;
    CUresult rc = qsim_stream_resolve(h, per_thread, &st);
    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_capture *cap = atomic_load_explicit(&st->cap, memory_order_relaxed);
    *status = cap ? cap->status : CU_STREAM_CAPTURE_STATUS_NONE;
    bool active = cap && cap->status == CU_STREAM_CAPTURE_STATUS_ACTIVE;
    if (id && active)
        *id = cap->id;
    if (graph)
        *graph = active ? (CUgraph)cap->graph : NULL;
    if (deps)
        *deps = active && cap->last ? &cap->last : NULL;
    if (edges)
        *edges = NULL; /* all edges are plain */
    if (ndeps)
        *ndeps = active && cap->last ? 1 : 0;
    pthread_mutex_unlock(&qsim_g.lock);
    return rc;
}

QSIM_API CUresult cuStreamIsCapturing(CUstream hStream, CUstreamCaptureStatus *captureStatus)
{
    QSIM_GUARDED(capture_info(hStream, false, captureStatus, NULL, NULL, NULL, NULL, NULL));
}

QSIM_API CUresult cuStreamIsCapturing_ptsz(CUstream hStream, CUstreamCaptureStatus *captureStatus)
{
    QSIM_GUARDED(capture_info(hStream, true, captureStatus, NULL, NULL, NULL, NULL, NULL));
}

QSIM_API CUresult cuStreamGetCaptureInfo(CUstream hStream, CUstreamCaptureStatus *status,
                                         cuuint64_t *id)
{
    QSIM_GUARDED(capture_info(hStream, false, status, id, NULL, NULL, NULL, NULL));
}

QSIM_API CUresult cuStreamGetCaptureInfo_ptsz(CUstream hStream, CUstreamCaptureStatus *status,
                                              cuuint64_t *id)
{
    QSIM_GUARDED(capture_info(hStream, true, status, id, NULL, NULL, NULL, NULL));
}

QSIM_API CUresult cuStreamGetCaptureInfo_v2(CUstream hStream, CUstreamCaptureStatus *status,
                                            cuuint64_t *id, CUgraph *graph,
                                            const CUgraphNode **deps, size_t *ndeps)
{
    QSIM_GUARDED(capture_info(hStream, false, status, id, graph, deps, NULL, ndeps));
}

QSIM_API CUresult cuStreamGetCaptureInfo_v2_ptsz(CUstream hStream, CUstreamCaptureStatus *status,
                                                 cuuint64_t *id, CUgraph *graph,
                                                 const CUgraphNode **deps, size_t *ndeps)
{
    QSIM_GUARDED(capture_info(hStream, true, status, id, graph, deps, NULL, ndeps));
}

QSIM_API CUresult cuStreamGetCaptureInfo_v3(CUstream hStream, CUstreamCaptureStatus *status,
                                            cuuint64_t *id, CUgraph *graph,
                                            const CUgraphNode **deps, const CUgraphEdgeData **edges,
                                            size_t *ndeps)
{
    QSIM_GUARDED(capture_info(hStream, false, status, id, graph, deps, edges, ndeps));
}

QSIM_API CUresult cuStreamGetCaptureInfo_v3_ptsz(CUstream hStream, CUstreamCaptureStatus *status,
                                                 cuuint64_t *id, CUgraph *graph,
                                                 const CUgraphNode **deps,
                                                 const CUgraphEdgeData **edges, size_t *ndeps)
{
    QSIM_GUARDED(capture_info(hStream, true, status, id, graph, deps, edges, ndeps));
}

/* ---- graphs ------------------------------------------------------------------------ */

static CUresult graph_create(CUgraph *out, unsigned flags)
{
    if (!out || flags)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_graph *g = graph_new_locked();
    pthread_mutex_unlock(&qsim_g.lock);
    if (!g)
        return CUDA_ERROR_OUT_OF_MEMORY;
    *out = (CUgraph)g;
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuGraphCreate(CUgraph *phGraph, unsigned int flags)
{
    QSIM_GUARDED(graph_create(phGraph, flags));
}

static CUresult graph_destroy(CUgraph h)
{
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_graph *g = graph_of(h);
    if (g)
        graph_free_locked(g);
    pthread_mutex_unlock(&qsim_g.lock);
    return g ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

QSIM_API CUresult cuGraphDestroy(CUgraph hGraph)
{
    QSIM_GUARDED(graph_destroy(hGraph));
}

static CUresult graph_get_nodes(CUgraph h, CUgraphNode *nodes, size_t *count)
{
    if (!count)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_graph *g = graph_of(h);
    if (g && !nodes) {
        *count = g->n;
    } else if (g) {
        size_t i = 0;
        for (struct qsim_node *n = g->head; n && i < *count; n = n->next)
            nodes[i++] = (CUgraphNode)n;
        for (size_t k = i; k < *count; k++)
            nodes[k] = NULL;
        *count = i;
    }
    pthread_mutex_unlock(&qsim_g.lock);
    return g ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

QSIM_API CUresult cuGraphGetNodes(CUgraph hGraph, CUgraphNode *nodes, size_t *numNodes)
{
    QSIM_GUARDED(graph_get_nodes(hGraph, nodes, numNodes));
}

static CUresult node_get_type(CUgraphNode h, CUgraphNodeType *type)
{
    struct qsim_node *n = (struct qsim_node *)h;
    if (!type || !n || n->magic != QSIM_MAGIC_NODE)
        return CUDA_ERROR_INVALID_VALUE;
    *type = node_types[n->w.type];
    return CUDA_SUCCESS;
}

QSIM_API CUresult cuGraphNodeGetType(CUgraphNode hNode, CUgraphNodeType *type)
{
    QSIM_GUARDED(node_get_type(hNode, type));
}

/* ---- executable graphs ------------------------------------------------------------- */

static CUresult instantiate(CUgraphExec *out, CUgraph h, unsigned long long flags)
{
    const unsigned long long known =
        CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH | CUDA_GRAPH_INSTANTIATE_FLAG_UPLOAD |
        CUDA_GRAPH_INSTANTIATE_FLAG_DEVICE_LAUNCH | CUDA_GRAPH_INSTANTIATE_FLAG_USE_NODE_PRIORITY;
    if (!out || (flags & ~known))
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_graph *g = graph_of(h);
    struct qsim_exec *x = NULL;
    CUresult rc = g ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
    if (g &&
        (!(x = calloc(1, sizeof *x)) || (g->n && !(x->work = calloc(g->n, sizeof *x->work))))) {
        free(x);
        x = NULL;
        rc = CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (x) {
        /* A copy: the graph may change or go without affecting what was instantiated. */
        for (struct qsim_node *n = g->head; n; n = n->next)
            x->work[x->n++] = n->w;
        x->magic = QSIM_MAGIC_EXEC;
        x->next = qsim_g.execs;
        qsim_g.execs = x;
        *out = (CUgraphExec)x;
    }
    pthread_mutex_unlock(&qsim_g.lock);
    return rc;
}

QSIM_API CUresult cuGraphInstantiateWithFlags(CUgraphExec *phGraphExec, CUgraph hGraph,
                                              unsigned long long flags)
{
    QSIM_GUARDED(instantiate(phGraphExec, hGraph, flags));
}

static CUresult instantiate_logged(CUgraphExec *out, CUgraph h, CUgraphNode *err_node, char *log,
                                   size_t log_size)
{
    CUresult rc = instantiate(out, h, 0);
    if (err_node)
        *err_node = NULL;
    if (log && log_size)
        log[0] = '\0';
    return rc;
}

QSIM_API CUresult cuGraphInstantiate(CUgraphExec *phGraphExec, CUgraph hGraph,
                                     CUgraphNode *phErrorNode, char *logBuffer, size_t bufferSize)
{
    QSIM_GUARDED(instantiate_logged(phGraphExec, hGraph, phErrorNode, logBuffer, bufferSize));
}

QSIM_API CUresult cuGraphInstantiate_v2(CUgraphExec *phGraphExec, CUgraph hGraph,
                                        CUgraphNode *phErrorNode, char *logBuffer,
                                        size_t bufferSize)
{
    QSIM_GUARDED(instantiate_logged(phGraphExec, hGraph, phErrorNode, logBuffer, bufferSize));
}

static struct qsim_exec *exec_of(CUgraphExec h)
{
    struct qsim_exec *x = (struct qsim_exec *)h;
    return x && x->magic == QSIM_MAGIC_EXEC ? x : NULL;
}

static CUresult graph_launch(CUgraphExec h, CUstream hs, bool per_thread)
{
    struct qsim_exec *x = exec_of(h);
    if (!x)
        return CUDA_ERROR_INVALID_VALUE;
    struct qsim_stream *st;
    CUresult rc = qsim_stream_resolve(hs, per_thread, &st);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (atomic_load_explicit(&st->cap, memory_order_relaxed))
        return qsim_capture_violated(st); /* child graphs are not simulated */
    for (size_t i = 0; i < x->n && rc == CUDA_SUCCESS; i++)
        rc = qsim_work_run(st, &x->work[i], NULL);
    return rc;
}

QSIM_API CUresult cuGraphLaunch(CUgraphExec hGraphExec, CUstream hStream)
{
    QSIM_GUARDED(graph_launch(hGraphExec, hStream, false));
}

QSIM_API CUresult cuGraphLaunch_ptsz(CUgraphExec hGraphExec, CUstream hStream)
{
    QSIM_GUARDED(graph_launch(hGraphExec, hStream, true));
}

static CUresult exec_destroy(CUgraphExec h)
{
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_exec *x = exec_of(h);
    if (x) {
        x->magic = 0;
        free(x->work);
        x->work = NULL;
        x->n = 0;
    }
    pthread_mutex_unlock(&qsim_g.lock);
    return x ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

QSIM_API CUresult cuGraphExecDestroy(CUgraphExec hGraphExec)
{
    QSIM_GUARDED(exec_destroy(hGraphExec));
}
