/* engine.c - the simulated execution engine (see engine.h for the model).
 * Threads: any thread of any process; the host lock guards all state, and the blocking
 * helpers never sleep holding it. */
#include "sim/engine.h"

#include <errno.h>
#include <sched.h>
#include <string.h>

#include "sim/clock.h"

/* A waiter whose operation's completion cannot be predicted looks again this soon. */
#define RETRY_NS 200000u
/* The last stretch of a wait is spent yielding rather than sleeping. */
#define YIELD_NS 60000u
/* A prediction is followed at most this many scheduling steps ahead. */
#define PREDICT_STEPS 100000

static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static inline struct qsim_op *head_op(struct qsim_ectx *c)
{
    return &c->q[c->head % QSIM_QUEUE_DEPTH];
}

/* ---- slots ------------------------------------------------------------------------ */

/* Index of a free slot among n, searching from *hint; -1 if none. `state` is the first
 * field of every slot type, `size` the slot size. */
static int take_slot(void *base, size_t size, int n, uint32_t *hint)
{
    for (int i = 0; i < n; i++) {
        int k = (int)((*hint + (uint32_t)i) % (uint32_t)n);
        uint32_t *state = (uint32_t *)((char *)base + (size_t)k * size);
        if (*state == QSIM_SLOT_FREE) {
            *hint = (uint32_t)(k + 1) % (uint32_t)n;
            return k;
        }
    }
    return -1;
}

static void runq_add(struct qsim_dev *dev, int c)
{
    for (int i = 0; i < dev->nrun; i++)
        if (dev->runq[i] == c)
            return;
    dev->runq[dev->nrun++] = (int16_t)c;
}

/* Removes run queue entry i. The context after it, if any, takes the device with a
 * fresh time slice when i was running. */
static void runq_remove_at(struct qsim_dev *dev, int i)
{
    memmove(&dev->runq[i], &dev->runq[i + 1], (size_t)(dev->nrun - i - 1) * sizeof dev->runq[0]);
    dev->nrun--;
    if (dev->cur > i) {
        dev->cur--;
    } else if (dev->cur == i) {
        dev->slice_start = dev->t;
        if (dev->cur >= dev->nrun)
            dev->cur = dev->nrun ? 0 : -1;
    }
}

static void runq_remove(struct qsim_dev *dev, int c)
{
    for (int i = 0; i < dev->nrun; i++) {
        if (dev->runq[i] == c) {
            runq_remove_at(dev, i);
            return;
        }
    }
}

int qsim_engine_ctx_new_locked(struct qsim_shm *s, int p, int ord, int dev)
{
    int c = take_slot(s->ctx, sizeof s->ctx[0], QSIM_MAX_CTXS, &s->ctx_hint);
    if (c < 0)
        return -ENOSPC;
    struct qsim_ectx *x = &s->ctx[c];
    x->proc = p;
    x->ordinal = ord;
    x->dev = dev;
    x->head = x->tail = 0;
    x->state = QSIM_SLOT_USED;
    return c;
}

void qsim_engine_ctx_free_locked(struct qsim_shm *s, int c)
{
    struct qsim_ectx *x = &s->ctx[c];
    runq_remove(&s->dev[x->dev], c);
    x->head = x->tail;
    x->state = QSIM_SLOT_FREE;
}

int qsim_engine_stream_new_locked(struct qsim_shm *s, int c)
{
    int st = take_slot(s->stream, sizeof s->stream[0], QSIM_MAX_STREAMS, &s->stream_hint);
    if (st < 0)
        return -ENOSPC;
    struct qsim_stream_slot *x = &s->stream[st];
    /* Sequence numbers are never reset: an operation that still waits on this slot's
     * former stream finds it complete instead of waiting for numbers issued anew. */
    x->completed = x->submitted;
    x->proc = s->ctx[c].proc;
    x->ctx = c;
    x->state = QSIM_SLOT_USED;
    return st;
}

void qsim_engine_stream_free_locked(struct qsim_shm *s, int st)
{
    struct qsim_stream_slot *x = &s->stream[st];
    x->state = x->completed >= x->submitted ? QSIM_SLOT_FREE : QSIM_SLOT_DYING;
}

int qsim_engine_event_new_locked(struct qsim_shm *s, int p)
{
    int e = take_slot(s->event, sizeof s->event[0], QSIM_MAX_EVENTS, &s->event_hint);
    if (e < 0)
        return -ENOSPC;
    struct qsim_event_slot *x = &s->event[e];
    x->proc = p;
    x->stream = -1;
    x->done = 0;
    x->seq = 0;
    x->time = 0;
    x->state = QSIM_SLOT_USED;
    return e;
}

static bool event_pending(const struct qsim_shm *s, const struct qsim_event_slot *x)
{
    return x->stream >= 0 && !x->done && s->stream[x->stream].completed < x->seq;
}

void qsim_engine_event_free_locked(struct qsim_shm *s, int e)
{
    struct qsim_event_slot *x = &s->event[e];
    x->state = event_pending(s, x) ? QSIM_SLOT_DYING : QSIM_SLOT_FREE;
}

void qsim_engine_drop_proc_locked(struct qsim_shm *s, int p)
{
    for (int c = 0; c < QSIM_MAX_CTXS; c++)
        if (s->ctx[c].state != QSIM_SLOT_FREE && s->ctx[c].proc == p)
            qsim_engine_ctx_free_locked(s, c);
    for (int st = 0; st < QSIM_MAX_STREAMS; st++) {
        struct qsim_stream_slot *x = &s->stream[st];
        if (x->state != QSIM_SLOT_FREE && x->proc == p) {
            x->completed = x->submitted; /* its work left with its context */
            x->state = QSIM_SLOT_FREE;
        }
    }
    for (int e = 0; e < QSIM_MAX_EVENTS; e++)
        if (s->event[e].state != QSIM_SLOT_FREE && s->event[e].proc == p)
            s->event[e].state = QSIM_SLOT_FREE;
}

void qsim_engine_repair_locked(struct qsim_shm *s)
{
    for (uint32_t d = 0; d < s->ndev; d++) {
        struct qsim_dev *dev = &s->dev[d];
        int16_t keep[QSIM_MAX_CTXS];
        int n = 0;
        bool seen[QSIM_MAX_CTXS] = {false};
        for (int i = 0; i < dev->nrun && i < QSIM_MAX_CTXS; i++) {
            int c = dev->runq[i];
            if (c < 0 || c >= QSIM_MAX_CTXS || seen[c])
                continue;
            const struct qsim_ectx *x = &s->ctx[c];
            if (x->state == QSIM_SLOT_USED && x->dev == (int)d && x->head < x->tail) {
                keep[n++] = (int16_t)c;
                seen[c] = true;
            }
        }
        for (int c = 0; c < QSIM_MAX_CTXS; c++) {
            const struct qsim_ectx *x = &s->ctx[c];
            if (!seen[c] && x->state == QSIM_SLOT_USED && x->dev == (int)d && x->head < x->tail)
                keep[n++] = (int16_t)c;
        }
        memcpy(dev->runq, keep, (size_t)n * sizeof keep[0]);
        dev->nrun = n;
        if (dev->cur >= n || dev->cur < 0) {
            dev->cur = n ? 0 : -1;
            dev->slice_start = dev->t;
        }
    }
}

/* ---- history ---------------------------------------------------------------------- */

static void hist_add(struct qsim_hist *h, uint64_t t0, uint64_t t1)
{
    while (t0 < t1) {
        uint64_t b = t0 / QSIM_HIST_BUCKET_NS;
        uint64_t end = min_u64(t1, (b + 1) * QSIM_HIST_BUCKET_NS);
        if (b > h->last) {
            if (b - h->last >= QSIM_HIST_LEN) {
                memset(h->ns, 0, sizeof h->ns);
            } else {
                for (uint64_t k = h->last + 1; k <= b; k++)
                    h->ns[k % QSIM_HIST_LEN] = 0;
            }
            h->last = b;
        }
        if (b + QSIM_HIST_LEN > h->last)
            h->ns[b % QSIM_HIST_LEN] += (uint32_t)(end - t0);
        t0 = end;
    }
}

uint64_t qsim_hist_busy(const struct qsim_hist *h, uint64_t from, uint64_t to)
{
    if (to <= from)
        return 0;
    uint64_t busy = 0;
    for (uint64_t b = from / QSIM_HIST_BUCKET_NS; b <= (to - 1) / QSIM_HIST_BUCKET_NS; b++) {
        if (b > h->last || b + QSIM_HIST_LEN <= h->last)
            continue;
        uint64_t v = h->ns[b % QSIM_HIST_LEN];
        if (!v)
            continue;
        /* The bucket's busy time was spread over the part of it that has elapsed. */
        uint64_t lo = b * QSIM_HIST_BUCKET_NS;
        uint64_t hi = min_u64((b + 1) * QSIM_HIST_BUCKET_NS, to);
        uint64_t olo = from > lo ? from : lo;
        uint64_t span = hi - lo, overlap = hi - olo;
        busy += span ? (uint64_t)((unsigned __int128)v * overlap / span) : 0;
    }
    return busy;
}

static void account(struct qsim_shm *s, int d, const struct qsim_ectx *c, uint32_t kind,
                    uint64_t t0, uint64_t t1)
{
    hist_add(&s->dev[d].busy, t0, t1);
    if (kind == QSIM_OP_COPY)
        hist_add(&s->dev[d].copy, t0, t1);
    hist_add(&s->proc[c->proc].busy[d], t0, t1);
}

/* ---- scheduling ------------------------------------------------------------------- */

/* When op may start: 0 for any time, UINT64_MAX while it waits for work not yet done,
 * else the time the work it waits for completed (a wait never lets its context run
 * before that, even when its device is simulated up to an earlier time). */
static uint64_t ready_at(const struct qsim_shm *s, const struct qsim_op *op)
{
    if (op->kind != QSIM_OP_WAIT)
        return 0;
    const struct qsim_stream_slot *w = &s->stream[op->arg];
    if (w->state == QSIM_SLOT_FREE)
        return 0;
    return w->completed < op->wait_seq ? UINT64_MAX : w->completed_t;
}

static void complete(struct qsim_shm *s, const struct qsim_op *op, uint64_t t)
{
    struct qsim_stream_slot *st = &s->stream[op->stream];
    if (op->seq > st->completed) {
        st->completed = op->seq;
        st->completed_t = t;
    }
    if (st->state == QSIM_SLOT_DYING && st->completed >= st->submitted)
        st->state = QSIM_SLOT_FREE;
    if (op->kind == QSIM_OP_EVENT) {
        struct qsim_event_slot *ev = &s->event[op->arg];
        if (ev->state != QSIM_SLOT_FREE && ev->stream == op->stream && ev->seq == op->seq) {
            ev->time = t;
            ev->done = 1;
            if (ev->state == QSIM_SLOT_DYING)
                ev->state = QSIM_SLOT_FREE;
        }
    }
}

/* A scheduler's view of one device: the device itself, or a private copy of it that a
 * prediction runs forward without changing anything. */
struct sched {
    int n;      /* contexts with work */
    int cur;    /* running one, index into rq */
    uint64_t t; /* its time */
    uint64_t slice_start;
    int16_t *rq; /* context slots */
};

/* Which run queue entry runs next: the current one until its slice ends, then the next
 * one in round-robin order whose head operation is not blocked. `blocked(i)` tells.
 * Returns -1 when every context is blocked. Renews the slice when the current context
 * keeps the device. */
static int choose(struct sched *sc, uint64_t slice_ns, const bool *blocked)
{
    if (sc->cur < 0 || sc->cur >= sc->n) {
        sc->cur = 0;
        sc->slice_start = sc->t;
    }
    bool expired = sc->t >= sc->slice_start + slice_ns;
    if (!blocked[sc->cur] && !expired)
        return sc->cur;
    for (int i = 1; i < sc->n; i++) {
        int j = (sc->cur + i) % sc->n;
        if (!blocked[j])
            return j;
    }
    if (!blocked[sc->cur]) {
        sc->slice_start = sc->t;
        return sc->cur;
    }
    return -1;
}

void qsim_engine_advance_locked(struct qsim_shm *s, int d, uint64_t now)
{
    struct qsim_dev *dev = &s->dev[d];
    bool blocked[QSIM_MAX_CTXS];
    for (;;) {
        if (dev->nrun == 0)
            break;
        uint64_t next = UINT64_MAX; /* when the first blocked context may run */
        for (int i = 0; i < dev->nrun; i++) {
            uint64_t r = ready_at(s, head_op(&s->ctx[dev->runq[i]]));
            blocked[i] = r > dev->t;
            next = blocked[i] && r < next ? r : next;
        }
        struct sched sc = {dev->nrun, dev->cur, dev->t, dev->slice_start, dev->runq};
        int pick = choose(&sc, s->slice_ns, blocked);
        dev->cur = sc.cur;
        dev->slice_start = sc.slice_start;
        if (pick < 0 && next <= now) {
            dev->t = next; /* idle until a dependency is met */
            continue;
        }
        if (pick < 0)
            break;
        if (pick != dev->cur) {
            dev->cur = pick;
            dev->slice_start = dev->t;
        }
        struct qsim_ectx *c = &s->ctx[dev->runq[dev->cur]];
        struct qsim_op *op = head_op(c);
        if (op->remaining > 0) {
            if (dev->t >= now)
                break;
            uint64_t run = min_u64(op->remaining,
                                   min_u64(dev->slice_start + s->slice_ns - dev->t, now - dev->t));
            account(s, d, c, op->kind, dev->t, dev->t + run);
            op->remaining -= run;
            dev->t += run;
            if (op->remaining > 0)
                continue;
        }
        complete(s, op, dev->t);
        c->head++;
        if (c->head == c->tail)
            runq_remove_at(dev, dev->cur);
    }
    if (dev->t < now)
        dev->t = now;
}

void qsim_engine_advance_all_locked(struct qsim_shm *s, uint64_t now)
{
    for (uint32_t d = 0; d < s->ndev; d++)
        qsim_engine_advance_locked(s, (int)d, now);
}

int qsim_engine_submit_locked(struct qsim_shm *s, int st, struct qsim_op *op)
{
    struct qsim_stream_slot *x = &s->stream[st];
    struct qsim_ectx *c = &s->ctx[x->ctx];
    if (c->tail - c->head >= QSIM_QUEUE_DEPTH)
        return -EAGAIN;
    op->stream = st;
    op->seq = ++x->submitted;
    if (op->kind == QSIM_OP_EVENT) {
        struct qsim_event_slot *ev = &s->event[op->arg];
        ev->stream = st;
        ev->seq = op->seq;
        ev->done = 0;
    }
    c->q[c->tail % QSIM_QUEUE_DEPTH] = *op;
    c->tail++;
    if (c->tail - c->head == 1)
        runq_add(&s->dev[c->dev], x->ctx);
    return 0;
}

uint64_t qsim_engine_predict_locked(const struct qsim_shm *s, int st, uint64_t seq)
{
    const struct qsim_dev *dev = &s->dev[s->ctx[s->stream[st].ctx].dev];
    int16_t rq[QSIM_MAX_CTXS];
    uint64_t head[QSIM_MAX_CTXS], rem[QSIM_MAX_CTXS];
    bool blocked[QSIM_MAX_CTXS];
    struct sched sc = {dev->nrun, dev->cur, dev->t, dev->slice_start, rq};
    for (int i = 0; i < sc.n; i++) {
        const struct qsim_ectx *c = &s->ctx[dev->runq[i]];
        rq[i] = dev->runq[i];
        head[i] = c->head;
        rem[i] = c->q[c->head % QSIM_QUEUE_DEPTH].remaining;
    }
    for (int step = 0; step < PREDICT_STEPS && sc.n > 0; step++) {
        uint64_t next = UINT64_MAX;
        for (int i = 0; i < sc.n; i++) {
            uint64_t r = ready_at(s, &s->ctx[rq[i]].q[head[i] % QSIM_QUEUE_DEPTH]);
            blocked[i] = r > sc.t;
            next = blocked[i] && r < next ? r : next;
        }
        int pick = choose(&sc, s->slice_ns, blocked);
        if (pick < 0 && next != UINT64_MAX) {
            sc.t = next;
            continue;
        }
        if (pick < 0)
            return 0;
        if (pick != sc.cur) {
            sc.cur = pick;
            sc.slice_start = sc.t;
        }
        int i = sc.cur;
        const struct qsim_ectx *c = &s->ctx[rq[i]];
        const struct qsim_op *op = &c->q[head[i] % QSIM_QUEUE_DEPTH];
        if (rem[i] > 0) {
            uint64_t run = min_u64(rem[i], sc.slice_start + s->slice_ns - sc.t);
            rem[i] -= run;
            sc.t += run;
            if (rem[i] > 0)
                continue;
        }
        if (op->stream == st && op->seq >= seq)
            return sc.t;
        if (++head[i] == c->tail) {
            memmove(&rq[i], &rq[i + 1], (size_t)(sc.n - i - 1) * sizeof rq[0]);
            memmove(&head[i], &head[i + 1], (size_t)(sc.n - i - 1) * sizeof head[0]);
            memmove(&rem[i], &rem[i + 1], (size_t)(sc.n - i - 1) * sizeof rem[0]);
            sc.n--;
            sc.slice_start = sc.t;
            if (sc.cur >= sc.n)
                sc.cur = 0;
        } else {
            rem[i] = c->q[head[i] % QSIM_QUEUE_DEPTH].remaining;
        }
    }
    return 0;
}

bool qsim_engine_done_locked(const struct qsim_shm *s, int st, uint64_t seq)
{
    return s->stream[st].completed >= seq;
}

/* ---- blocking helpers ------------------------------------------------------------- */

/* Sleeps until the predicted time t, or RETRY_NS if there is none, never past deadline.
 * Returns false when the deadline has passed. */
static bool sleep_towards(uint64_t t, uint64_t now, uint64_t deadline)
{
    if (deadline && now >= deadline)
        return false;
    if (t <= now)
        t = now + (t ? 20000u : RETRY_NS);
    if (deadline && t > deadline)
        t = deadline;
    /* A sleep overshoots by the timer slack and the wake-up latency (50-100 us), which
     * would add that much to every short synchronisation: sleep until shortly before,
     * then yield the CPU until the time has come. */
    if (t > now + YIELD_NS)
        qsim_sleep_until(t - YIELD_NS);
    while (qsim_now_ns() < t)
        sched_yield();
    return true;
}

int qsim_engine_submit(qsim_host_t *h, int st, struct qsim_op *op)
{
    struct qsim_shm *s = qsim_host_shm(h);
    for (;;) {
        uint64_t now = qsim_now_ns();
        if (qsim_host_lock(h) < 0)
            return -ENOTRECOVERABLE;
        /* A dead process's queued work must not hold the device (rate-limited scan). */
        qsim_host_reap_locked(s, false);
        struct qsim_ectx *c = &s->ctx[s->stream[st].ctx];
        qsim_engine_advance_locked(s, c->dev, now);
        int rc = qsim_engine_submit_locked(s, st, op);
        if (rc != -EAGAIN) {
            qsim_host_unlock(h);
            return rc;
        }
        /* Full, like a push buffer: wait until the oldest operation is done. */
        const struct qsim_op *oldest = head_op(c);
        uint64_t t = qsim_engine_predict_locked(s, oldest->stream, oldest->seq);
        qsim_host_unlock(h);
        sleep_towards(t, now, 0);
    }
}

int qsim_engine_wait(qsim_host_t *h, int st, uint64_t seq, uint64_t deadline)
{
    struct qsim_shm *s = qsim_host_shm(h);
    for (;;) {
        uint64_t now = qsim_now_ns();
        if (qsim_host_lock(h) < 0)
            return -ENOTRECOVERABLE;
        /* Forced: a prediction that counted a dead process's work would oversleep. */
        qsim_host_reap_locked(s, true);
        qsim_engine_advance_all_locked(s, now);
        if (qsim_engine_done_locked(s, st, seq)) {
            qsim_host_unlock(h);
            return 0;
        }
        uint64_t t = qsim_engine_predict_locked(s, st, seq);
        qsim_host_unlock(h);
        if (!sleep_towards(t, now, deadline))
            return -ETIMEDOUT;
    }
}

bool qsim_engine_query(qsim_host_t *h, int st, uint64_t seq)
{
    struct qsim_shm *s = qsim_host_shm(h);
    if (qsim_host_lock(h) < 0)
        return false;
    qsim_host_reap_locked(s, false);
    qsim_engine_advance_all_locked(s, qsim_now_ns());
    bool done = qsim_engine_done_locked(s, st, seq);
    qsim_host_unlock(h);
    return done;
}

int qsim_engine_wait_proc_idle(qsim_host_t *h, int p, uint64_t deadline)
{
    struct qsim_shm *s = qsim_host_shm(h);
    for (;;) {
        uint64_t now = qsim_now_ns();
        if (qsim_host_lock(h) < 0)
            return -ENOTRECOVERABLE;
        qsim_engine_advance_all_locked(s, now);
        uint64_t t = UINT64_MAX;
        bool idle = true;
        for (int c = 0; c < QSIM_MAX_CTXS; c++) {
            const struct qsim_ectx *x = &s->ctx[c];
            if (x->state != QSIM_SLOT_USED || x->proc != p || x->head == x->tail)
                continue;
            idle = false;
            const struct qsim_op *last = &x->q[(x->tail - 1) % QSIM_QUEUE_DEPTH];
            uint64_t tc = qsim_engine_predict_locked(s, last->stream, last->seq);
            t = min_u64(t, tc ? tc : now + RETRY_NS);
        }
        qsim_host_unlock(h);
        if (idle)
            return 0;
        if (!sleep_towards(t, now, deadline))
            return -ETIMEDOUT;
    }
}
