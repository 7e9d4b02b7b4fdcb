/* drain.c - the contexts this process launched on, and the drainer thread that waits for
 * their work (shim/drain.h).
 *
 * Threads: launching threads add their context under drain0.lock; the agent asks for
 * drains (tickets under drain0.lock) and polls for their end; the drainer thread runs
 * them, holding drain0.running while it synchronises contexts, so that cuCtxDestroy
 * (which forgets a context under drain0.running) never destroys one it has pushed. Lock
 * order: drain0.running, then drain0.lock; no other module's lock is taken under them,
 * and notify is called with neither held. */
#include "shim/drain.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#include "shim/clock.h"
#include "shim/log.h"
#include "shim/real.h"

/* The drain's state; this file's alone. */
static struct {
    pthread_mutex_t lock;              /* guards the fields below but `running` */
    pthread_mutex_t running;           /* held across a drain */
    pthread_cond_t asked;              /* signalled for the drainer thread: lock */
    CUcontext ctxs[QS_DRAIN_MAX_CTXS]; /* contexts launched on: lock */
    int nctxs;                         /* entries used: lock */
    bool thread;                       /* the drainer thread runs: set at start */
    void (*notify)(void);              /* called when a drain ends: lock */
    uint64_t req;                      /* drains asked (a ticket each): lock */
    uint64_t done;                     /* the newest ticket drained: lock */
    uint64_t end;                      /* monotonic ns that drain ended: lock */
    uint64_t took;                     /* ns it lasted: lock */
    atomic_int logged_full;            /* "over 64 contexts" was said */
} drain0 = {.lock = PTHREAD_MUTEX_INITIALIZER,
            .running = PTHREAD_MUTEX_INITIALIZER,
            .asked = PTHREAD_COND_INITIALIZER};

/* Forgets every context and ticket (lock held). */
static void forget_all_locked(void)
{
    drain0.nctxs = 0;
    drain0.req = drain0.done = drain0.end = drain0.took = 0;
}

/* Only the forking thread lives on in the child: the locks may be held by threads it does
 * not have, and there is no drainer. */
void qs_drain_reset_after_fork(void)
{
    pthread_mutex_init(&drain0.lock, NULL);
    pthread_mutex_init(&drain0.running, NULL);
    pthread_cond_init(&drain0.asked, NULL);
    drain0.thread = false;
    drain0.notify = NULL;
    forget_all_locked();
}

void qs_drain_note_context(void)
{
    QS_PFN_cuCtxGetCurrent current = QS_REAL(cuCtxGetCurrent);
    CUcontext ctx = NULL;
    if (!current || current(&ctx) != CUDA_SUCCESS || !ctx)
        return;
    pthread_mutex_lock(&drain0.lock);
    bool known = false;
    for (int i = 0; i < drain0.nctxs && !known; i++)
        known = drain0.ctxs[i] == ctx;
    bool full = !known && drain0.nctxs == QS_DRAIN_MAX_CTXS;
    if (!known && !full)
        drain0.ctxs[drain0.nctxs++] = ctx;
    pthread_mutex_unlock(&drain0.lock);
    /* A full list is said once: contexts past it are not waited for before a lease is
     * returned. */
    if (full)
        qs_log_once(&drain0.logged_full,
                    "over %d CUDA contexts launched on: the compute "
                    "lease waits only for the first ones' work",
                    QS_DRAIN_MAX_CTXS);
}

/* Removes ctx from the list (running held). */
static void forget_locked(CUcontext ctx)
{
    pthread_mutex_lock(&drain0.lock);
    for (int i = 0; i < drain0.nctxs; i++) {
        if (drain0.ctxs[i] == ctx) {
            drain0.ctxs[i] = drain0.ctxs[--drain0.nctxs];
            break;
        }
    }
    pthread_mutex_unlock(&drain0.lock);
}

static void drain(void)
{
    QS_PFN_cuCtxPushCurrent_v2 push = QS_REAL(cuCtxPushCurrent_v2);
    QS_PFN_cuCtxPopCurrent_v2 pop = QS_REAL(cuCtxPopCurrent_v2);
    QS_PFN_cuCtxSynchronize sync = QS_REAL(cuCtxSynchronize);
    if (!push || !pop || !sync)
        return;
    pthread_mutex_lock(&drain0.running);
    CUcontext ctxs[QS_DRAIN_MAX_CTXS];
    pthread_mutex_lock(&drain0.lock);
    int n = drain0.nctxs;
    memcpy(ctxs, drain0.ctxs, (size_t)n * sizeof *ctxs);
    pthread_mutex_unlock(&drain0.lock);
    /* Not under drain0.lock: a synchronisation lasts as long as the queued work, and
     * launching threads must be able to note their contexts meanwhile. */
    for (int i = 0; i < n; i++) {
        CUcontext popped;
        if (push(ctxs[i]) != CUDA_SUCCESS) {
            forget_locked(ctxs[i]); /* destroyed behind our back (a primary's reset) */
            continue;
        }
        sync();
        pop(&popped);
    }
    pthread_mutex_unlock(&drain0.running);
}

/* Records that drain n ended at end after took ns (lock held). */
static void drained_locked(uint64_t n, uint64_t end, uint64_t took)
{
    drain0.done = n;
    drain0.end = end;
    drain0.took = took;
}

static void *drainer_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&drain0.lock);
    for (;;) {
        while (drain0.done == drain0.req)
            pthread_cond_wait(&drain0.asked, &drain0.lock);
        /* Every ticket up to n asked before this drain starts: one drain serves them. */
        uint64_t n = drain0.req;
        pthread_mutex_unlock(&drain0.lock);
        uint64_t t0 = qs_clock_now();
        drain();
        uint64_t t1 = qs_clock_now();
        pthread_mutex_lock(&drain0.lock);
        drained_locked(n, t1, t1 - t0);
        void (*notify)(void) = drain0.notify;
        pthread_mutex_unlock(&drain0.lock);
        if (notify)
            notify(); /* the agent gives the lease back now, not at its next round */
        pthread_mutex_lock(&drain0.lock);
    }
    return NULL;
}

int qs_drain_start(void (*notify)(void))
{
    pthread_mutex_lock(&drain0.lock);
    forget_all_locked();
    drain0.notify = notify;
    pthread_mutex_unlock(&drain0.lock);
    pthread_t t;
    /* The application's signals are for its own threads: the drainer takes none. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&t, NULL, drainer_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return -rc;
    pthread_detach(t); /* it sleeps until the process ends: nothing to join */
    drain0.thread = true;
    return 0;
}

uint64_t qs_drain_begin(void)
{
    if (!drain0.thread) {
        uint64_t t0 = qs_clock_now();
        drain();
        uint64_t t1 = qs_clock_now();
        pthread_mutex_lock(&drain0.lock);
        uint64_t n = ++drain0.req;
        drained_locked(n, t1, t1 - t0);
        pthread_mutex_unlock(&drain0.lock);
        return n;
    }
    pthread_mutex_lock(&drain0.lock);
    uint64_t n = ++drain0.req;
    pthread_cond_signal(&drain0.asked);
    pthread_mutex_unlock(&drain0.lock);
    return n;
}

bool qs_drain_done(uint64_t ticket, uint64_t *end, uint64_t *took)
{
    pthread_mutex_lock(&drain0.lock);
    bool done = drain0.done >= ticket;
    if (done) {
        *end = drain0.end;
        *took = drain0.took;
    }
    pthread_mutex_unlock(&drain0.lock);
    return done;
}

void qs_drain_forget_context(CUcontext ctx)
{
    pthread_mutex_lock(&drain0.running);
    forget_locked(ctx);
    pthread_mutex_unlock(&drain0.running);
}
