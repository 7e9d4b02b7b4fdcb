/* gate.c - the compute gate's slow path and the agent's handles on it (shim/gate.h).
 *
 * Threads: application threads enter qs_gate_wait() when the gate is closed: they record
 * their context under gate.lock, count themselves in gate.waiting, kick the agent and
 * sleep on gate.opened. The agent thread calls the other functions; the drainer thread
 * runs the drains it asks for (tickets under gate.lock) and holds drain_lock while it
 * synchronises contexts, so that cuCtxDestroy (which forgets a context under drain_lock)
 * never destroys one it has pushed. Lock order: drain_lock, then gate.lock, then the
 * agent's own lock (shim/agent.c). */
#include "shim/gate.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

#include "shim/agent.h"
#include "shim/init.h"
#include "shim/log.h"
#include "shim/real.h"

/* A waiting thread re-kicks the agent this often: a kick lost to a reconnect, or an
 * agent that was busy, costs at most this. */
#define REKICK_MS 100

static struct timespec deadline_in(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    while (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

void qs_gate_reset(void)
{
    struct qs_gate *g = &qs_g.gate;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&g->lock, NULL);
    pthread_mutex_init(&g->drain_lock, NULL);
    pthread_cond_init(&g->opened, &ca);
    pthread_cond_init(&g->drain_asked, &ca);
    pthread_condattr_destroy(&ca);
    g->drainer = false;
    g->drain_req = g->drain_done = g->drain_end = g->drain_took = 0;
    atomic_store_explicit(&g->end, 0, memory_order_relaxed);
    atomic_store_explicit(&g->launched, 0, memory_order_relaxed);
    atomic_store_explicit(&g->waiting, 0, memory_order_relaxed);
    g->nctxs = 0;
}

/* Adds the calling thread's current context to the drain list (gate.lock held). A full
 * list is said once: contexts past it are not waited for before a lease is returned. */
static void note_context(struct qs_gate *g)
{
    QS_PFN_cuCtxGetCurrent current = QS_REAL(cuCtxGetCurrent);
    CUcontext ctx = NULL;
    if (!current || current(&ctx) != CUDA_SUCCESS || !ctx)
        return;
    for (int i = 0; i < g->nctxs; i++) {
        if (g->ctxs[i] == ctx)
            return;
    }
    if (g->nctxs < QS_MAX_CTXS)
        g->ctxs[g->nctxs++] = ctx;
    else
        qs_log_once(&qs_g.logged.agent,
                    "over %d CUDA contexts launched on: the compute "
                    "lease waits only for the first ones' work",
                    QS_MAX_CTXS);
}

static bool gate_open(void)
{
    uint64_t end = atomic_load_explicit(&qs_g.gate.end, memory_order_relaxed);
    return end != 0 && qs_gate_now() < end;
}

/* Whether stream is being captured into a graph: its launches are recorded, not run. */
static bool capturing(CUstream stream)
{
    QS_PFN_cuStreamIsCapturing is = QS_REAL(cuStreamIsCapturing);
    CUstreamCaptureStatus st = CU_STREAM_CAPTURE_STATUS_NONE;
    return is && is(stream, &st) == CUDA_SUCCESS && st == CU_STREAM_CAPTURE_STATUS_ACTIVE;
}

CUresult qs_gate_wait(CUstream stream)
{
    int saved = errno;
    qs_init(); /* a fork child launches before any other hook joined its vGPU */
    if (capturing(stream)) {
        errno = saved;
        return CUDA_SUCCESS;
    }
    struct qs_gate *g = &qs_g.gate;
    /* A launch is no cancellation point, and the wait must not become one: a thread
     * cancelled in pthread_cond_timedwait() would exit holding gate.lock, counted in
     * waiting, and every later launch and the agent would block on the lock for good. A
     * cancel asked meanwhile acts at the thread's next cancellation point. */
    int cancel;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
    pthread_mutex_lock(&g->lock);
    note_context(g);
    atomic_fetch_add_explicit(&g->waiting, 1, memory_order_relaxed);
    while (!gate_open()) {
        /* The kick comes after waiting counts us: the agent checks waiting under its own
         * lock before it sleeps, so it either sees us or gets the signal. */
        if (!qs_agent_kick())
            break; /* no agent (it could not start): nothing is enforced */
        struct timespec until = deadline_in(REKICK_MS);
        pthread_cond_timedwait(&g->opened, &g->lock, &until);
    }
    atomic_fetch_sub_explicit(&g->waiting, 1, memory_order_relaxed);
    pthread_mutex_unlock(&g->lock);
    pthread_setcancelstate(cancel, NULL);
    atomic_store_explicit(&g->launched, 1, memory_order_relaxed);
    errno = saved;
    return CUDA_SUCCESS;
}

void qs_gate_set(uint64_t end)
{
    struct qs_gate *g = &qs_g.gate;
    atomic_store_explicit(&g->end, end, memory_order_relaxed);
    if (end == 0)
        return;
    /* Under the lock: a waiter between its check and its sleep would miss the broadcast. */
    pthread_mutex_lock(&g->lock);
    pthread_cond_broadcast(&g->opened);
    pthread_mutex_unlock(&g->lock);
}

int qs_gate_waiting(void)
{
    return atomic_load_explicit(&qs_g.gate.waiting, memory_order_relaxed);
}

bool qs_gate_take_launched(void)
{
    if (!atomic_load_explicit(&qs_g.gate.launched, memory_order_relaxed))
        return false;
    return atomic_exchange_explicit(&qs_g.gate.launched, 0, memory_order_relaxed) != 0;
}

bool qs_gate_launched(void)
{
    return atomic_load_explicit(&qs_g.gate.launched, memory_order_relaxed) != 0;
}

/* Removes ctx from the drain list (drain_lock held). */
static void forget_locked(struct qs_gate *g, CUcontext ctx)
{
    pthread_mutex_lock(&g->lock);
    for (int i = 0; i < g->nctxs; i++) {
        if (g->ctxs[i] == ctx) {
            g->ctxs[i] = g->ctxs[--g->nctxs];
            break;
        }
    }
    pthread_mutex_unlock(&g->lock);
}

static void drain(void)
{
    struct qs_gate *g = &qs_g.gate;
    QS_PFN_cuCtxPushCurrent_v2 push = QS_REAL(cuCtxPushCurrent_v2);
    QS_PFN_cuCtxPopCurrent_v2 pop = QS_REAL(cuCtxPopCurrent_v2);
    QS_PFN_cuCtxSynchronize sync = QS_REAL(cuCtxSynchronize);
    if (!push || !pop || !sync)
        return;
    pthread_mutex_lock(&g->drain_lock);
    CUcontext ctxs[QS_MAX_CTXS];
    pthread_mutex_lock(&g->lock);
    int n = g->nctxs;
    memcpy(ctxs, g->ctxs, (size_t)n * sizeof *ctxs);
    pthread_mutex_unlock(&g->lock);
    /* Not under gate.lock: a synchronisation lasts as long as the queued work, and
     * launching threads must be able to queue up for the next lease meanwhile. */
    for (int i = 0; i < n; i++) {
        CUcontext popped;
        if (push(ctxs[i]) != CUDA_SUCCESS) {
            forget_locked(g, ctxs[i]); /* destroyed behind our back (a primary's reset) */
            continue;
        }
        sync();
        pop(&popped);
    }
    pthread_mutex_unlock(&g->drain_lock);
}

/* Records that drain n ended at end after took ns (gate.lock held). */
static void drained_locked(struct qs_gate *g, uint64_t n, uint64_t end, uint64_t took)
{
    g->drain_done = n;
    g->drain_end = end;
    g->drain_took = took;
}

static void *drainer_main(void *arg)
{
    struct qs_gate *g = arg;
    pthread_mutex_lock(&g->lock);
    for (;;) {
        while (g->drain_done == g->drain_req)
            pthread_cond_wait(&g->drain_asked, &g->lock);
        /* Every ticket up to n asked before this drain starts: one drain serves them. */
        uint64_t n = g->drain_req;
        pthread_mutex_unlock(&g->lock);
        uint64_t t0 = qs_gate_now();
        drain();
        uint64_t t1 = qs_gate_now();
        pthread_mutex_lock(&g->lock);
        drained_locked(g, n, t1, t1 - t0);
        qs_agent_nudge(); /* the agent gives the lease back now, not at its next slice */
    }
    return NULL;
}

int qs_gate_drainer_start(void)
{
    struct qs_gate *g = &qs_g.gate;
    pthread_t t;
    /* The application's signals are for its own threads: the drainer takes none. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&t, NULL, drainer_main, g);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return -rc;
    pthread_detach(t); /* it sleeps until the process ends: nothing to join */
    g->drainer = true;
    return 0;
}

uint64_t qs_gate_drain_begin(void)
{
    struct qs_gate *g = &qs_g.gate;
    if (!g->drainer) {
        uint64_t t0 = qs_gate_now();
        drain();
        uint64_t t1 = qs_gate_now();
        pthread_mutex_lock(&g->lock);
        uint64_t n = ++g->drain_req;
        drained_locked(g, n, t1, t1 - t0);
        pthread_mutex_unlock(&g->lock);
        return n;
    }
    pthread_mutex_lock(&g->lock);
    uint64_t n = ++g->drain_req;
    pthread_cond_signal(&g->drain_asked);
    pthread_mutex_unlock(&g->lock);
    return n;
}

bool qs_gate_drain_done(uint64_t ticket, uint64_t *end, uint64_t *took)
{
    struct qs_gate *g = &qs_g.gate;
    pthread_mutex_lock(&g->lock);
    bool done = g->drain_done >= ticket;
    if (done) {
        *end = g->drain_end;
        *took = g->drain_took;
    }
    pthread_mutex_unlock(&g->lock);
    return done;
}

void qs_gate_forget_context(CUcontext ctx)
{
    struct qs_gate *g = &qs_g.gate;
    pthread_mutex_lock(&g->drain_lock);
    forget_locked(g, ctx);
    pthread_mutex_unlock(&g->drain_lock);
}
