/* gate.c - the compute gate's slow path and the agent's handles on it (shim/gate.h).
 *
 * Threads: application threads enter qs_gate_wait() when the gate is closed: they count
 * themselves in qs_gate.waiting, call the waker with no lock held, and sleep on
 * gate0.opened under gate0.lock. The agent thread calls the other functions. gate0.lock
 * is the only lock here, and nothing is called under it. */
#include "shim/gate.h"

#include <errno.h>
#include <pthread.h>

#include "shim/drain.h"
#include "shim/init.h"
#include "shim/real.h"

/* A waiting thread calls the waker again this often: a wake-up lost to a reconnect, or
 * an agent that was busy, costs at most this. */
#define REKICK_MS 100

/* Until an agent starts, nothing is gated. */
struct qs_gate qs_gate = {.end = QS_GATE_FREE};

/* The waiters' side; this file's alone. */
static struct {
    pthread_mutex_t lock;  /* opened's mutex */
    pthread_cond_t opened; /* broadcast by the agent when the gate opens; monotonic */
    bool (*ask)(void);     /* the waker: set at start, before any thread waits */
} gate0 = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* A condition variable on CLOCK_MONOTONIC, which no static initialiser gives. */
static void init_opened(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&gate0.opened, &ca);
    pthread_condattr_destroy(&ca);
}

static void close_empty(void)
{
    atomic_store_explicit(&qs_gate.end, 0, memory_order_relaxed);
    atomic_store_explicit(&qs_gate.launched, 0, memory_order_relaxed);
    atomic_store_explicit(&qs_gate.waiting, 0, memory_order_relaxed);
}

/* Nobody waits yet: while the gate was free, no launch took the slow path. */
void qs_gate_start(bool (*ask)(void))
{
    init_opened();
    gate0.ask = ask;
    close_empty();
}

void qs_gate_reset_after_fork(void)
{
    pthread_mutex_init(&gate0.lock, NULL);
    init_opened();
    close_empty();
}

static bool gate_open(void)
{
    uint64_t end = atomic_load_explicit(&qs_gate.end, memory_order_relaxed);
    return end != 0 && qs_clock_now() < end;
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
    qs_drain_note_context();
    /* A launch is no cancellation point, and the wait must not become one: a thread
     * cancelled in pthread_cond_timedwait() would exit holding gate0.lock, counted in
     * waiting, and every later launch and the agent would block on the lock for good. A
     * cancel asked meanwhile acts at the thread's next cancellation point. */
    int cancel;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
    atomic_fetch_add_explicit(&qs_gate.waiting, 1, memory_order_relaxed);
    while (!gate_open()) {
        /* The waker is called after waiting counts us: the agent checks waiting under its
         * own lock before it sleeps, and the waker signals it under that lock, so it
         * either sees us or is woken. */
        if (!gate0.ask || !gate0.ask())
            break; /* no agent (it could not start): nothing is enforced */
        struct timespec until = qs_clock_deadline_in(REKICK_MS);
        pthread_mutex_lock(&gate0.lock);
        /* Checked again under the lock: qs_gate_set() broadcasts under it, so an opening
         * between this check and the sleep cannot be missed. */
        if (!gate_open())
            pthread_cond_timedwait(&gate0.opened, &gate0.lock, &until);
        pthread_mutex_unlock(&gate0.lock);
    }
    atomic_fetch_sub_explicit(&qs_gate.waiting, 1, memory_order_relaxed);
    pthread_setcancelstate(cancel, NULL);
    atomic_store_explicit(&qs_gate.launched, 1, memory_order_relaxed);
    errno = saved;
    return CUDA_SUCCESS;
}

void qs_gate_set(uint64_t end)
{
    atomic_store_explicit(&qs_gate.end, end, memory_order_relaxed);
    if (end == 0)
        return;
    /* Under the lock: a waiter between its check and its sleep would miss the broadcast. */
    pthread_mutex_lock(&gate0.lock);
    pthread_cond_broadcast(&gate0.opened);
    pthread_mutex_unlock(&gate0.lock);
}

int qs_gate_waiting(void)
{
    return atomic_load_explicit(&qs_gate.waiting, memory_order_relaxed);
}

bool qs_gate_take_launched(void)
{
    if (!atomic_load_explicit(&qs_gate.launched, memory_order_relaxed))
        return false;
    return atomic_exchange_explicit(&qs_gate.launched, 0, memory_order_relaxed) != 0;
}
