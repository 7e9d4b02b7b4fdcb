/* tenant.c - tenant sessions: authentication, memory reservations with reclaim,
 * heartbeats, liveness and the reconnect grace. Single-threaded: the loop thread (see
 * tenant.h). */
#include "arbiter/tenant.h"

#include "arbiter/ghosts.h"
#include "arbiter/version.h"
#include "proto/records.h"
#include "proto/schema.h"
#include "proto/units.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long a first mem_reserve waits for its measurement at most (hold_until_measured):
 * an NVML round takes milliseconds; a driver that hangs must not fail allocations. Less
 * when the reclaim timeout, which may follow, leaves less of QA_REPLY_BUDGET_MS, so that
 * the shim's reply deadline always holds (no request is held for a measurement during
 * the reconnect grace). */
#define MEASURE_WAIT_MS 100u

struct qa_tenants {
    qa_tenants_opts_t o; /* copied; what it points to is borrowed */
    uint64_t sessions;   /* session numbers handed out */
    qa_timer_t grace;    /* runs during the reconnect grace after the start */
};

static uint64_t quota_of(const qa_vgpu_t *v)
{
    return v->memory_mb * QP_MIB;
}

static bool in_grace(const qa_tenants_t *t)
{
    return qa_timer_running(&t->grace);
}

bool qa_tenants_in_grace(const qa_tenants_t *self)
{
    return in_grace(self);
}

static void send(qa_tenants_t *t, qa_session_t *s, qp_msg_t **m)
{
    qa_reply_send(t->o.reply, s->peer, m);
}

/* Records in s's ledger slot what it may hold: before any grant to it is answered. */
static void note_holding(qa_tenants_t *t, const qa_session_t *s)
{
    if (s->slot)
        qa_ledger_set_bytes(t->o.ledger, s->slot - 1,
                            s->reserved > s->used ? s->reserved : s->used);
}

/* v's totals follow every change of a session's figures at O(1): a vGPU may have
 * thousands of sessions, each reporting twice a second, and a sum over them per report
 * would make the arbiter's work grow with the square of its tenants. The sums cannot
 * overflow: each figure is at most its GPU's memory (see report_ok). */
static void set_used(qa_tenants_t *t, qa_session_t *s, uint64_t used)
{
    s->vgpu->mem_used = s->vgpu->mem_used - s->used + used;
    s->used = used;
    note_holding(t, s);
}

static void set_reserved(qa_tenants_t *t, qa_session_t *s, uint64_t reserved)
{
    s->vgpu->mem_reserved = s->vgpu->mem_reserved - s->reserved + reserved;
    s->reserved = reserved;
    note_holding(t, s);
}

/* Marks s's mem_reserve pending or not, counting its vGPU's pending requests, so that
 * finding none costs nothing. */
static void set_pending(qa_session_t *s, bool active)
{
    if (s->pending.active != active)
        s->vgpu->waiting += active ? 1 : -1u;
    s->pending.active = active;
}

/* The most a process can hold: its GPU's memory. A report above it is refused rather
 * than charged: charged, it would keep the vGPU's other processes waiting for memory
 * that does not exist until that process leaves. */
static uint64_t gpu_memory(qa_tenants_t *t, const qa_vgpu_t *v)
{
    const qa_gpu_t *g = qa_host_gpu(t->o.host, v->gpu);
    return g ? g->desc.memory_total : quota_of(v);
}

/* Whether bytes, reported as key by the process of peer p for v, is possible; otherwise
 * answers request id (unless 0) with `invalid`. */
static bool report_ok(qa_tenants_t *t, qa_peer_t *p, const qa_vgpu_t *v, uint64_t id,
                      const char *key, uint64_t bytes)
{
    uint64_t most = gpu_memory(t, v);
    if (bytes <= most)
        return true;
    if (id)
        qa_reply_error(t->o.reply, p, id, QP_E_INVALID,
                       "%s %llu bytes is more than GPU %u has (%llu bytes)", key,
                       (unsigned long long)bytes, v->gpu, (unsigned long long)most);
    return false;
}

/* What v's processes hold on the device beyond their allocations, as the audit measured
 * it (audit.h): the driver's memory for their contexts, and processes with v's
 * credentials but no session. Charged to the quota with [audit] charge = real. */
static uint64_t beyond_allocations(const qa_tenants_t *t, const qa_vgpu_t *v)
{
    return t->o.cfg->charge_real ? v->mem_overhead + v->mem_unmanaged : 0;
}

/* What v's processes hold, as far as the arbiter knows: what they allocated and, with
 * [audit] charge = real, what the device holds for them beyond that. The shim shows the
 * quota minus this as free (cuMemGetInfo, NVML). */
static uint64_t vgpu_used(const qa_tenants_t *t, const qa_vgpu_t *v)
{
    return v->mem_used + beyond_allocations(t, v);
}

/* What s could hold: the quota minus the other processes' reservations and what the
 * device holds for all of them (s included) beyond their allocations. */
static uint64_t room_for(const qa_session_t *s)
{
    const qa_vgpu_t *v = s->vgpu;
    uint64_t others = v->mem_reserved - s->reserved + beyond_allocations(s->owner, v);
    return quota_of(v) > others ? quota_of(v) - others : 0;
}

/* Reservation the other processes hold beyond their reported use. */
static uint64_t others_unused(const qa_session_t *s)
{
    uint64_t n = 0;
    for (const qa_session_t *o = s->vgpu->sessions; o; o = o->next_in_vgpu) {
        if (o != s && o->reserved > o->used)
            n += o->reserved - o->used;
    }
    return n;
}

/* Whether need could fit s once its siblings gave back what they do not use and the
 * previous arbiter's processes re-reported (or left): otherwise it is refused at once,
 * else it waits up to reclaim_timeout_ms. */
static bool could_fit(const qa_session_t *s, uint64_t need)
{
    return need <= room_for(s) + others_unused(s) + s->vgpu->ghost_bytes;
}

/* Secrets are compared in constant time: a tenant must not learn a prefix. */
static bool secret_ok(const char *want, const char *got)
{
    size_t n = strlen(want);
    if (!got || strlen(got) != n)
        return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(want[i] ^ got[i]);
    return diff == 0;
}

static void grant(qa_tenants_t *t, qa_session_t *s, uint64_t id, uint64_t need, uint64_t want)
{
    uint64_t room = room_for(s);
    uint64_t r = want < room ? want : room;
    set_reserved(t, s, r < need ? need : r); /* callers checked need <= room */
    qp_msg_t *rep = qp_msg_new_ok(id);
    qp_msg_set_uint(rep, "reserved", s->reserved);
    qp_msg_set_uint(rep, "vgpu_used", vgpu_used(t, s->vgpu));
    send(t, s, &rep);
}

static void refuse_quota(qa_tenants_t *t, qa_session_t *s, uint64_t id, uint64_t need,
                         const char *why)
{
    uint64_t room = room_for(s);
    s->vgpu->refused++;
    qp_msg_t *rep =
        qp_msg_new_error(id, QP_E_QUOTA,
                         "vGPU %s cannot reserve %llu MiB for this process: %s "
                         "(quota %llu MiB, %llu MiB free for it)",
                         s->vgpu->id, (unsigned long long)(need >> 20), why,
                         (unsigned long long)s->vgpu->memory_mb, (unsigned long long)(room >> 20));
    qp_msg_set_uint(rep, "free", room);
    send(t, s, &rep);
}

/* The waiting request of v that came first, or NULL: O(sessions), only while requests
 * of v wait. */
static qa_session_t *first_waiting(qa_vgpu_t *v)
{
    qa_session_t *best = NULL;
    if (!v->waiting)
        return NULL;
    for (qa_session_t *o = v->sessions; o; o = o->next_in_vgpu) {
        if (o->pending.active && (!best || o->pending.seq < best->pending.seq))
            best = o;
    }
    return best;
}

/* Grants waiting requests of v in arrival order while they fit; none during the
 * reconnect grace, when what v's processes hold is not known yet. */
static void serve_waiting(qa_tenants_t *t, qa_vgpu_t *v)
{
    qa_session_t *s;
    if (in_grace(t))
        return;
    while ((s = first_waiting(v)) && s->pending.need <= room_for(s)) {
        set_pending(s, false);
        qa_timer_stop(t->o.loop, &s->pending.timer);
        grant(t, s, s->pending.id, s->pending.need, s->pending.want);
    }
}

static void on_reclaim_timeout(void *arg)
{
    qa_session_t *s = arg;
    qa_tenants_t *t = s->owner;
    set_pending(s, false);
    refuse_quota(t, s, s->pending.id, s->pending.need,
                 "the other processes did not give back enough in time");
    serve_waiting(t, s->vgpu);
}

static void push_reclaim(qa_tenants_t *t, qa_session_t *to, uint64_t keep)
{
    qp_msg_t *m = qp_msg_new("mem_reclaim");
    qp_msg_set_uint(m, "keep", keep);
    send(t, to, &m);
}

/* Asks the others to give back enough unused reservation for s's need. */
static void reclaim_for(qa_tenants_t *t, qa_session_t *s, uint64_t need)
{
    uint64_t room = room_for(s);
    uint64_t short_by = need > room ? need - room : 0;
    for (qa_session_t *o = s->vgpu->sessions; o && short_by; o = o->next_in_vgpu) {
        if (o == s || o->reserved <= o->used)
            continue;
        uint64_t give = o->reserved - o->used;
        if (give > short_by)
            give = short_by;
        push_reclaim(t, o, o->reserved - give);
        short_by -= give;
    }
}

/* Makes s's pending request wait for reclaimed memory: starts its timeout and asks the
 * others. Returns 0, or -ENOMEM after answering it. */
static int wait_for_reclaim(qa_tenants_t *t, qa_session_t *s)
{
    if (qa_timer_start(t->o.loop, &s->pending.timer,
                       qa_now_ns() + t->o.cfg->reclaim_timeout_ms * 1000000ull, on_reclaim_timeout,
                       s) < 0) {
        set_pending(s, false);
        qa_reply_error(t->o.reply, s->peer, s->pending.id, QP_E_INTERNAL, "out of memory");
        return -ENOMEM;
    }
    reclaim_for(t, s, s->pending.need);
    return 0;
}

/* Decides a mem_reserve of s now: grants it, refuses it, or makes it wait for memory
 * the other processes give back. */
static void reserve_now(qa_tenants_t *t, qa_session_t *s, uint64_t id, uint64_t need,
                        uint64_t want)
{
    if (need > quota_of(s->vgpu)) {
        refuse_quota(t, s, id, need, "that is more than the whole quota");
        return;
    }
    bool grace = in_grace(t);
    if (!grace && !s->vgpu->waiting && need <= room_for(s)) {
        grant(t, s, id, need, want);
        return;
    }
    if (!grace && !could_fit(s, need)) {
        refuse_quota(t, s, id, need, "its other processes use the rest");
        return;
    }
    set_pending(s, true);
    s->pending.id = id;
    s->pending.need = need;
    s->pending.want = want;
    s->pending.seq = qa_now_ns(); /* requests are taken one at a time: arrival order */
    if (grace)                    /* held without a timer: grace_over decides */
        return;
    if (wait_for_reclaim(t, s) == 0)
        serve_waiting(t, s->vgpu);
}

/* Holds s's first mem_reserve until an NVML round that began after it has measured what
 * the device holds for s's process beyond its allocations (its contexts: it has one by
 * now, or it could not allocate): granted before that, the memory of that first context
 * would come on top of a full quota. Returns false when it is not held. */
static bool hold_until_measured(qa_tenants_t *t, qa_session_t *s, uint64_t id, uint64_t need,
                                uint64_t want)
{
    /* During the reconnect grace everything waits anyway, and the grace is longer than a
     * sampling period. */
    const qa_config_t *cfg = t->o.cfg;
    unsigned spent = cfg->reclaim_timeout_ms;
    unsigned wait = spent < QA_REPLY_BUDGET_MS ? QA_REPLY_BUDGET_MS - spent : 0;
    if (wait > MEASURE_WAIT_MS)
        wait = MEASURE_WAIT_MS;
    if (s->measured || !cfg->charge_real || wait == 0 || in_grace(t) || !t->o.measure ||
        !t->o.measure(t->o.measure_arg))
        return false;
    s->held.active = true;
    s->held.id = id;
    s->held.need = need;
    s->held.want = want;
    s->held.since = qa_now_ns();
    s->held.until = s->held.since + wait * 1000000ull;
    return true;
}

/* The session of p, which has passed the dispatcher's session check. NULL (answered
 * `nosession`) cannot happen: a tenant's session is opened with its hello. */
static qa_session_t *session_of(qa_tenants_t *t, qa_peer_t *p, const qp_msg_t *m)
{
    if (!p->tenant)
        qa_reply_error(t->o.reply, p, qp_msg_id(m), QP_E_NOSESSION, "hello first");
    return p->tenant;
}

static void mem_reserve(void *self, qa_peer_t *p, const qp_msg_t *m)
{
    qa_tenants_t *t = self;
    qa_session_t *s = session_of(t, p, m);
    uint64_t id = qp_msg_id(m), need = 0, want, used;
    if (!s)
        return;
    qp_msg_get_uint(m, "need", &need);
    if (qp_msg_get_uint(m, "want", &want) < 0 || want < need)
        want = need;
    if (qp_msg_get_uint(m, "used", &used) == 0) {
        if (!report_ok(t, p, s->vgpu, id, "used", used))
            return;
        set_used(t, s, used);
    }
    if (s->pending.active || s->held.active) {
        qa_reply_error(t->o.reply, p, id, QP_E_INVALID,
                       "a mem_reserve of this process is already waiting");
        return;
    }
    if (!hold_until_measured(t, s, id, need, want))
        reserve_now(t, s, id, need, want);
}

void qa_tenants_charge(qa_session_t *s, uint64_t bytes)
{
    s->vgpu->mem_overhead = s->vgpu->mem_overhead - s->overhead + bytes;
    s->overhead = bytes;
}

void qa_tenants_measured(qa_tenants_t *self, qa_vgpu_t *v, uint64_t taken, uint64_t now)
{
    for (qa_session_t *s = v->sessions; s; s = s->next_in_vgpu) {
        if (!s->held.active || (s->held.since >= taken && now < s->held.until))
            continue;
        s->held.active = false;
        s->measured = true;
        reserve_now(self, s, s->held.id, s->held.need, s->held.want);
    }
    uint64_t extra = beyond_allocations(self, v);
    if (extra > v->extra_seen && v->mem_reserved + extra > quota_of(v)) {
        /* The device holds more for v's processes than was known: the unused part of
         * their reservations goes back, so that what they hold fits the quota again. */
        for (qa_session_t *s = v->sessions; s; s = s->next_in_vgpu) {
            if (s->reserved > s->used)
                push_reclaim(self, s, s->used);
        }
    }
    v->extra_seen = extra;
    serve_waiting(self, v);
}

/* Decides the requests of v held during the grace: in arrival order, those that fit
 * are granted, those that cannot fit even with reclaimed memory are refused, and the
 * others wait for reclaim like a request that came now. */
static void grace_over(qa_tenants_t *t, qa_vgpu_t *v)
{
    serve_waiting(t, v);
    for (;;) {
        qa_session_t *held = NULL;
        for (qa_session_t *s = v->sessions; s; s = s->next_in_vgpu) {
            if (s->pending.active && !qa_timer_running(&s->pending.timer) &&
                (!held || s->pending.seq < held->pending.seq))
                held = s;
        }
        if (!held)
            break;
        if (!could_fit(held, held->pending.need)) {
            set_pending(held, false);
            refuse_quota(t, held, held->pending.id, held->pending.need,
                         "its other processes use the rest");
            serve_waiting(t, v);
        } else {
            wait_for_reclaim(t, held);
        }
    }
}

/* The reconnect grace is over: serves the mem_reserve requests held during it, in
 * arrival order per vGPU, as if they had come now. */
static void on_grace_over(void *arg)
{
    qa_tenants_t *t = arg;
    size_t open = 0;
    for (size_t i = 0; i < qa_host_nvgpus(t->o.host); i++)
        open += qa_host_vgpu(t->o.host, i)->procs;
    qa_log(t->o.log, QA_DEBUG, "reconnect grace over: %zu tenant sessions open", open);
    for (size_t i = 0; i < qa_host_nvgpus(t->o.host); i++)
        grace_over(t, qa_host_vgpu(t->o.host, i));
}

static void mem_release(void *self, qa_peer_t *p, const qp_msg_t *m)
{
    qa_tenants_t *t = self;
    qa_session_t *s = session_of(t, p, m);
    uint64_t id = qp_msg_id(m), reserved = 0;
    if (!s)
        return;
    qp_msg_get_uint(m, "reserved", &reserved);
    if (reserved > s->reserved) {
        qa_reply_error(t->o.reply, p, id, QP_E_INVALID,
                       "mem_release cannot raise a reservation (%llu > %llu bytes): use "
                       "mem_reserve",
                       (unsigned long long)reserved, (unsigned long long)s->reserved);
        return;
    }
    set_reserved(t, s, reserved);
    qp_msg_t *rep = qp_msg_new_ok(id);
    qp_msg_set_uint(rep, "reserved", s->reserved);
    qp_msg_set_uint(rep, "vgpu_used", vgpu_used(t, s->vgpu));
    send(t, s, &rep);
    serve_waiting(t, s->vgpu);
}

static void heartbeat(void *self, qa_peer_t *p, const qp_msg_t *m)
{
    qa_tenants_t *t = self;
    qa_session_t *s = session_of(t, p, m);
    uint64_t used = 0, reserved = 0, id = qp_msg_has(m, "id") ? qp_msg_id(m) : 0;
    if (!s)
        return;
    qp_msg_get_uint(m, "mem_used", &used);
    qp_msg_get_uint(m, "mem_reserved", &reserved);
    if (!report_ok(t, p, s->vgpu, id, "mem_used", used))
        return; /* without an id, nobody to tell: the report is ignored */
    set_used(t, s, used);
    bool lowered = false;
    /* A lower report with nothing pending means the process gave up on a grant that
     * came too late (its connection drops stale replies): take the difference back.
     * Never raise: a report is not a request. */
    if (!s->pending.active && reserved < s->reserved) {
        uint64_t keep = reserved > used ? reserved : used;
        if (keep < s->reserved) {
            set_reserved(t, s, keep);
            lowered = true;
        }
    }
    if (qp_msg_has(m, "id")) {
        qp_msg_t *rep = qp_msg_new_ok(id);
        qp_msg_set_uint(rep, "vgpu_used", vgpu_used(t, s->vgpu));
        qp_msg_set_uint(rep, "vgpu_reserved", s->vgpu->mem_reserved);
        send(t, s, &rep);
    }
    if (lowered)
        serve_waiting(t, s->vgpu);
}

/* ---- sessions ------------------------------------------------------------------------ */

/* s's process is known (host_pid, from its connection, at its hello): records it in s's
 * slot, and takes the place of what the previous arbiter's same process held, which s's
 * hello re-reported. */
static void identify(qa_tenants_t *t, qa_session_t *s)
{
    qa_vgpu_t *v = s->vgpu;
    uint64_t start = 0;
    if (qa_ledger_proc_start(s->host_pid, &start) < 0)
        return; /* gone already: its connection's end will end the session */
    if (s->slot)
        qa_ledger_set_process(t->o.ledger, s->slot - 1, s->host_pid, start);
    bool claimed = qa_ghosts_claim(v, t->o.ledger, s->host_pid, start);
    if (v->mem_reserved > quota_of(v))
        qa_log(t->o.log, QA_WARN,
               "vGPU %s holds %llu MiB after pid %d re-reported %llu MiB, over its %llu MiB "
               "quota: new reservations wait until use drops",
               v->id, (unsigned long long)(v->mem_reserved >> 20), (int)s->host_pid,
               (unsigned long long)(s->used >> 20), (unsigned long long)v->memory_mb);
    if (claimed)
        serve_waiting(t, v);
}

/* Unlinks s from its vGPU, frees it and leaves p without a session. */
static void detach(qa_tenants_t *t, qa_peer_t *p, bool tell)
{
    qa_session_t *s = p->tenant;
    if (!s)
        return;
    qa_vgpu_t *v = s->vgpu;
    if (s->pending.active) {
        qa_timer_stop(t->o.loop, &s->pending.timer);
        set_pending(s, false);
        if (tell)
            qa_reply_error(t->o.reply, p, s->pending.id, QP_E_NOSESSION, "the session ended");
    }
    if (s->held.active && tell)
        qa_reply_error(t->o.reply, p, s->held.id, QP_E_NOSESSION, "the session ended");
    if (t->o.compute)
        qa_compute_leave(t->o.compute, s);
    set_used(t, s, 0);
    set_reserved(t, s, 0);
    qa_tenants_charge(s, 0);
    if (s->slot)
        qa_ledger_free(t->o.ledger, s->slot - 1);
    *s->pprev_in_vgpu = s->next_in_vgpu;
    if (s->next_in_vgpu)
        s->next_in_vgpu->pprev_in_vgpu = s->pprev_in_vgpu;
    v->procs--;
    free(s);
    p->tenant = NULL;
    if (p->session)
        qa_reply_set_session(t->o.reply, p, false);
}

void qa_tenants_end(qa_tenants_t *self, qa_peer_t *p, bool tell)
{
    qa_vgpu_t *v = p->tenant ? p->tenant->vgpu : NULL;
    detach(self, p, tell);
    if (v)
        serve_waiting(self, v);
}

/* A hello: authenticates p with its vGPU's secret and opens its session, replacing the
 * one p had (the dispatcher checked its protocol version and role). */
static void hello(void *self, qa_peer_t *p, const qp_msg_t *m)
{
    qa_tenants_t *t = self;
    uint64_t id = qp_msg_id(m), used = 0;
    const char *vid = NULL, *secret = NULL;
    int64_t pid = 0;
    qa_tenants_end(t, p, true); /* a new hello replaces the session */
    qp_msg_get_str(m, "vgpu", &vid);
    qp_msg_get_str(m, "secret", &secret);
    qp_msg_get_int(m, "pid", &pid);
    qp_msg_get_uint(m, "mem_used", &used);
    qa_vgpu_t *v = vid ? qa_host_find(t->o.host, vid) : NULL;
    if (!v || !secret_ok(v->secret, secret)) {
        /* once per connection, a few per uid per 10 s: neither a retrying shim nor a
         * stranger connecting again and again floods the log */
        if (!p->warned && qa_reply_may_warn(t->o.reply, p))
            qa_log(t->o.log, QA_INFO, "tenant hello refused (pid %d) from uid %u: %s",
                   (int)p->cred_pid, (unsigned)p->cred_uid,
                   !vid ? "no vGPU named"
                   : !v ? "unknown vGPU"
                        : "wrong secret");
        p->warned = true;
        qa_reply_error(t->o.reply, p, id, QP_E_AUTH,
                       "authentication failed: unknown vGPU or wrong secret");
        return;
    }
    if (!report_ok(t, p, v, id, "mem_used", used))
        return;
    if (v->moving) {
        /* A process starting now would start on the GPU the vGPU leaves: it waits. */
        qa_reply_error(t->o.reply, p, id, QP_E_BUSY,
                       "vGPU %s is moving to GPU %u: try again shortly", v->id, v->moving - 1);
        return;
    }
    qa_session_t *s = calloc(1, sizeof *s);
    if (!s) {
        qa_reply_error(t->o.reply, p, id, QP_E_INTERNAL, "out of memory");
        return;
    }
    qa_reply_set_session(t->o.reply, p, true);
    p->tenant = s;
    s->peer = p;
    s->owner = t;
    s->vgpu = v;
    s->next_in_vgpu = v->sessions;
    s->pprev_in_vgpu = &v->sessions;
    if (v->sessions)
        v->sessions->pprev_in_vgpu = &s->next_in_vgpu;
    v->sessions = s;
    v->procs++;
    s->id = ++t->sessions;
    s->pid = (pid_t)pid;
    s->host_pid = p->cred_pid;
    int slot = qa_ledger_add(t->o.ledger, v->id, 0, 0, used);
    if (slot < 0)
        qa_log(t->o.log, QA_ERROR,
               "no room in the ledger for pid %d of vGPU %s: after a restart of the arbiter "
               "what it holds is unknown until it re-reports",
               (int)pid, v->id);
    s->slot = slot < 0 ? 0 : (uint32_t)slot + 1;
    set_used(t, s, used);
    set_reserved(t, s, used); /* it holds this already: charge it, whatever the quota says */
    if (t->o.compute && qa_compute_join(t->o.compute, s) < 0)
        qa_log(t->o.log, QA_ERROR,
               "out of memory for the compute lease of pid %d of vGPU %s: its tok_req will fail",
               (int)pid, v->id);
    if (s->host_pid) /* known from the accept (SO_PEERCRED): 0 only if that failed */
        identify(t, s);
    qa_log(t->o.log, QA_DEBUG, "tenant pid %d (host pid %d) joined vGPU %s", (int)pid,
           (int)s->host_pid, v->id);
    qp_limits_t lim;
    qa_host_limits(t->o.host, v, &lim);
    qp_msg_t *rep = qp_msg_new_ok(id);
    qp_msg_set_uint(rep, "proto", QP_PROTO_VERSION);
    qp_msg_set_str(rep, "arbiter", "qarbiter/" QA_VERSION);
    qp_limits_put(qp_msg_add_map(rep, "vgpu"), &lim);
    qp_msg_set_uint(rep, "session", s->id);
    qp_msg_set_uint(rep, "reserved", s->reserved);
    qp_msg_set_uint(rep, "vgpu_used", vgpu_used(t, v));
    send(t, s, &rep);
}

void qa_tenants_vgpu_gone(qa_tenants_t *self, qa_vgpu_t *v)
{
    while (v->sessions)
        detach(self, v->sessions->peer, true);
    qa_ghosts_drop_all(v, self->o.ledger);
}

/* Tells v's processes its limits and GPU now. */
static void push_limits(qa_tenants_t *self, qa_vgpu_t *v)
{
    qp_limits_t lim;
    qa_host_limits(self->o.host, v, &lim);
    for (qa_session_t *s = v->sessions; s; s = s->next_in_vgpu) {
        qp_msg_t *m = qp_msg_new("limits");
        qp_limits_put(qp_msg_add_map(m, "vgpu"), &lim);
        send(self, s, &m);
    }
}

void qa_tenants_moved(qa_tenants_t *self, qa_vgpu_t *v)
{
    push_limits(self, v);
}

void qa_tenants_resized(qa_tenants_t *self, qa_vgpu_t *v, uint64_t old_memory_mb)
{
    push_limits(self, v);
    if (v->memory_mb < old_memory_mb && v->mem_reserved > quota_of(v)) {
        for (qa_session_t *s = v->sessions; s; s = s->next_in_vgpu) {
            if (s->reserved > s->used)
                push_reclaim(self, s, 0);
        }
    }
    serve_waiting(self, v);
}

void qa_tenants_tick(qa_tenants_t *self, uint64_t now)
{
    uint64_t limit = self->o.cfg->heartbeat_timeout_ms * 1000000ull;
    for (size_t i = 0; i < qa_host_nvgpus(self->o.host); i++) {
        qa_vgpu_t *v = qa_host_vgpu(self->o.host, i);
        for (qa_session_t *s = v->sessions, *next; s; s = next) {
            next = s->next_in_vgpu;
            uint64_t idle = now > s->peer->last_seen ? now - s->peer->last_seen : 0;
            if (idle <= limit)
                continue;
            /* The connection stays: a stopped process that resumes re-reports on it. */
            qa_log(self->o.log, QA_INFO,
                   "tenant pid %d of vGPU %s silent for %u ms: session dropped, %llu bytes "
                   "freed",
                   (int)s->pid, v->id, self->o.cfg->heartbeat_timeout_ms,
                   (unsigned long long)s->reserved);
            qa_tenants_end(self, s->peer, false);
        }
        if (qa_ghosts_check(v, self->o.ledger, now, self->o.log))
            serve_waiting(self, v);
    }
}

/* ---- figures ------------------------------------------------------------------------- */

/* One process's report, for qa_tenants_gpu_used. */
struct proc_use {
    pid_t pid;     /* as the arbiter sees it */
    uint64_t used; /* one session's report */
};

static int by_pid(const void *a, const void *b)
{
    const struct proc_use *x = a, *y = b;
    return (x->pid > y->pid) - (x->pid < y->pid);
}

uint64_t qa_tenants_gpu_used(qa_tenants_t *self, unsigned gpu)
{
    qa_host_t *host = self->o.host;
    const qa_gpu_t *g = qa_host_gpu(host, gpu);
    if (!g)
        return 0;
    size_t n = 0;
    for (size_t i = 0; i < qa_host_nvgpus(host); i++) {
        const qa_vgpu_t *v = qa_host_vgpu(host, i);
        n += v->gpu == gpu ? v->procs : 0;
    }
    struct proc_use *u = n ? malloc(n * sizeof *u) : NULL;
    uint64_t total = 0;
    size_t k = 0;
    for (size_t i = 0; i < qa_host_nvgpus(host); i++) {
        const qa_vgpu_t *v = qa_host_vgpu(host, i);
        if (v->gpu != gpu)
            continue;
        for (const qa_session_t *s = v->sessions; s; s = s->next_in_vgpu) {
            if (u && k < n)
                u[k++] = (struct proc_use){s->host_pid, s->used};
            else /* out of memory: each session counted, still bounded below */
                total += s->used;
        }
    }
    if (u) {
        qsort(u, k, sizeof *u, by_pid);
        for (size_t i = 0; i < k;) {
            uint64_t most = 0;
            size_t j = i;
            for (; j < k && u[j].pid == u[i].pid; j++)
                most = u[j].used > most ? u[j].used : most;
            total += most; /* each report is at most the GPU's memory: no overflow */
            i = j;
        }
        free(u);
    }
    return total < g->desc.memory_total ? total : g->desc.memory_total;
}

uint64_t qa_tenants_host_used(qa_tenants_t *self)
{
    uint64_t used = 0;
    for (size_t i = 0; i < qa_host_ngpus(self->o.host); i++)
        used += qa_tenants_gpu_used(self, (unsigned)i);
    return used;
}

/* ---- the table and the life cycle ------------------------------------------------------ */

/* Every handler has the signature of qa_handler_fn: self is the tenants object. */
const qa_route_t qa_tenant_routes[] = {
    {QP_REQ_HELLO, QP_TENANT, QA_CHECK_HELLO, hello},
    {QP_REQ_MEM_RESERVE, QP_TENANT, QA_CHECK_SESSION, mem_reserve},
    {QP_REQ_MEM_RELEASE, QP_TENANT, QA_CHECK_SESSION, mem_release},
    {QP_REQ_HB, QP_TENANT, QA_CHECK_SESSION, heartbeat},
};
const size_t qa_tenant_nroutes = sizeof qa_tenant_routes / sizeof qa_tenant_routes[0];

qa_tenants_t *qa_tenants_new(const qa_tenants_opts_t *opts, char err[QP_ERR_LEN])
{
    qa_tenants_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, QP_ERR_LEN, "out of memory");
        return NULL;
    }
    self->o = *opts;
    if (qa_ghosts_adopt(self->o.host, self->o.ledger,
                        qa_now_ns() + (uint64_t)self->o.cfg->heartbeat_timeout_ms * 1000000ull,
                        self->o.log) < 0) {
        snprintf(err, QP_ERR_LEN, "out of memory");
        qa_tenants_destroy(&self);
        return NULL;
    }
    return self;
}

int qa_tenants_serve(qa_tenants_t *self)
{
    unsigned ms = self->o.cfg->reconnect_grace_ms;
    return ms ? qa_timer_start(self->o.loop, &self->grace, qa_now_ns() + ms * 1000000ull,
                               on_grace_over, self)
              : 0;
}

void qa_tenants_destroy(qa_tenants_t **self_p)
{
    qa_tenants_t *self = *self_p;
    if (!self)
        return;
    qa_timer_stop(self->o.loop, &self->grace);
    qa_ghosts_forget(self->o.host);
    free(self);
    *self_p = NULL;
}
