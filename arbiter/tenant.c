/* tenant.c - tenant authentication, memory reservations with reclaim, heartbeats; compute
 * tokens are handed to compute.c.
 * Single-threaded: the loop thread (see tenant.h). */
#include "arbiter/tenant.h"

#include "arbiter/compute.h"
#include "arbiter/ledger.h"
#include "proto/records.h"
#include "proto/schema.h"
#include "proto/units.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* How long a first mem_reserve waits for its measurement at most (hold_until_measured):
 * an NVML round takes milliseconds; a driver that hangs must not fail allocations. Less
 * when the reclaim timeout, which may follow, leaves less of QA_REPLY_BUDGET_MS, so that
 * the shim's reply deadline always holds (no request is held for a measurement during
 * the reconnect grace). */
#define MEASURE_WAIT_MS 100u

static uint64_t quota_of(const qa_vgpu_t *v)
{
    return v->memory_mb * QP_MIB;
}

/* What the previous arbiter's process pid may still hold of a vGPU: charged to it (in
 * mem_reserved) until the process says hello again, which re-reports what it holds, or
 * is gone. Its ledger slot stays in use meanwhile, for the next arbiter if this one
 * dies too. */
struct qa_ghost {
    struct qa_ghost *next; /* next of its vGPU */
    pid_t pid;             /* host pid; 0: unknown, dropped at `expires` */
    uint64_t start;        /* the process's start time, with pid */
    uint64_t bytes;        /* the most it may hold */
    uint32_t slot;         /* its ledger slot */
    uint64_t expires;      /* monotonic ns, for a pid of 0 */
};

/* Records in p's ledger slot what it may hold: before any grant to it is answered. */
static void note_holding(qa_server_t *srv, const qa_peer_t *p)
{
    if (p->slot)
        qa_ledger_set_bytes(qa_server_ledger(srv), p->slot - 1,
                            p->reserved > p->used ? p->reserved : p->used);
}

/* v's totals follow every change of a session's figures at O(1): a vGPU may have
 * thousands of sessions, each reporting twice a second, and a sum over them per report
 * would make the arbiter's work grow with the square of its tenants. The sums cannot
 * overflow: each figure is at most its GPU's memory (see report_ok). */
static void set_used(qa_server_t *srv, qa_peer_t *p, uint64_t used)
{
    p->vgpu->mem_used = p->vgpu->mem_used - p->used + used;
    p->used = used;
    note_holding(srv, p);
}

static void set_reserved(qa_server_t *srv, qa_peer_t *p, uint64_t reserved)
{
    p->vgpu->mem_reserved = p->vgpu->mem_reserved - p->reserved + reserved;
    p->reserved = reserved;
    note_holding(srv, p);
}

/* Marks p's mem_reserve pending or not, counting its vGPU's pending requests, so that
 * finding none costs nothing. */
static void set_pending(qa_peer_t *p, bool active)
{
    if (p->pending.active != active)
        p->vgpu->waiting += active ? 1 : -1u;
    p->pending.active = active;
}

/* The most a process can hold: its GPU's memory. A report above it is refused rather
 * than charged: charged, it would keep the vGPU's other processes waiting for memory
 * that does not exist until that process leaves. */
static uint64_t gpu_memory(qa_server_t *srv, const qa_vgpu_t *v)
{
    const qa_gpu_t *g = qa_host_gpu(qa_server_host(srv), v->gpu);
    return g ? g->desc.memory_total : quota_of(v);
}

/* Whether bytes, reported as key by p's process for v, is possible; otherwise answers
 * request id (unless 0) with `invalid`. */
static bool report_ok(qa_server_t *srv, qa_peer_t *p, const qa_vgpu_t *v, uint64_t id,
                      const char *key, uint64_t bytes)
{
    uint64_t most = gpu_memory(srv, v);
    if (bytes <= most)
        return true;
    if (id)
        qa_server_error(srv, p, id, QP_E_INVALID,
                        "%s %llu bytes is more than GPU %u has (%llu bytes)", key,
                        (unsigned long long)bytes, v->gpu, (unsigned long long)most);
    return false;
}

/* What v's processes hold on the device beyond their allocations, as the audit measured
 * it (audit.h): the driver's memory for their contexts, and processes with v's
 * credentials but no session. Charged to the quota with [audit] charge = real. */
static uint64_t beyond_allocations(const qa_server_t *srv, const qa_vgpu_t *v)
{
    return qa_server_config(srv)->charge_real ? v->mem_overhead + v->mem_unmanaged : 0;
}

/* What v's processes hold, as far as the arbiter knows: what they allocated and, with
 * [audit] charge = real, what the device holds for them beyond that. The shim shows the
 * quota minus this as free (cuMemGetInfo, NVML). */
static uint64_t vgpu_used(const qa_server_t *srv, const qa_vgpu_t *v)
{
    return v->mem_used + beyond_allocations(srv, v);
}

/* What p could hold: the quota minus the other processes' reservations and what the
 * device holds for all of them (p included) beyond their allocations. */
static uint64_t room_for(const qa_peer_t *p)
{
    const qa_vgpu_t *v = p->vgpu;
    uint64_t others = v->mem_reserved - p->reserved + beyond_allocations(p->srv, v);
    return quota_of(v) > others ? quota_of(v) - others : 0;
}

/* Reservation the other processes hold beyond their reported use. */
static uint64_t others_unused(const qa_peer_t *p)
{
    uint64_t n = 0;
    for (const qa_peer_t *s = p->vgpu->sessions; s; s = s->next_in_vgpu) {
        if (s != p && s->reserved > s->used)
            n += s->reserved - s->used;
    }
    return n;
}

/* Whether need could fit p once its siblings gave back what they do not use and the
 * previous arbiter's processes re-reported (or left): otherwise it is refused at once,
 * else it waits up to reclaim_timeout_ms. */
static bool could_fit(const qa_peer_t *p, uint64_t need)
{
    return need <= room_for(p) + others_unused(p) + p->vgpu->ghost_bytes;
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

static void grant(qa_server_t *srv, qa_peer_t *p, uint64_t id, uint64_t need, uint64_t want)
{
    uint64_t room = room_for(p);
    uint64_t r = want < room ? want : room;
    set_reserved(srv, p, r < need ? need : r); /* callers checked need <= room */
    qp_msg_t *rep = qp_msg_new_ok(id);
    qp_msg_set_uint(rep, "reserved", p->reserved);
    qp_msg_set_uint(rep, "vgpu_used", vgpu_used(srv, p->vgpu));
    qa_server_send(srv, p, &rep);
}

static void refuse_quota(qa_server_t *srv, qa_peer_t *p, uint64_t id, uint64_t need,
                         const char *why)
{
    uint64_t room = room_for(p);
    p->vgpu->refused++;
    qp_msg_t *rep =
        qp_msg_new_error(id, QP_E_QUOTA,
                         "vGPU %s cannot reserve %llu MiB for this process: %s "
                         "(quota %llu MiB, %llu MiB free for it)",
                         p->vgpu->id, (unsigned long long)(need >> 20), why,
                         (unsigned long long)p->vgpu->memory_mb, (unsigned long long)(room >> 20));
    qp_msg_set_uint(rep, "free", room);
    qa_server_send(srv, p, &rep);
}

/* The waiting request of v that came first, or NULL: O(sessions), only while requests
 * of v wait. */
static qa_peer_t *first_waiting(qa_vgpu_t *v)
{
    qa_peer_t *best = NULL;
    if (!v->waiting)
        return NULL;
    for (qa_peer_t *s = v->sessions; s; s = s->next_in_vgpu) {
        if (s->pending.active && (!best || s->pending.seq < best->pending.seq))
            best = s;
    }
    return best;
}

/* Grants waiting requests of v in arrival order while they fit; none during the
 * reconnect grace, when what v's processes hold is not known yet. */
static void serve_waiting(qa_server_t *srv, qa_vgpu_t *v)
{
    qa_peer_t *p;
    if (qa_server_in_grace(srv))
        return;
    while ((p = first_waiting(v)) && p->pending.need <= room_for(p)) {
        set_pending(p, false);
        qa_timer_stop(qa_server_loop(srv), &p->pending.timer);
        grant(srv, p, p->pending.id, p->pending.need, p->pending.want);
    }
}

static void on_reclaim_timeout(void *arg)
{
    qa_peer_t *p = arg;
    qa_server_t *srv = p->srv;
    set_pending(p, false);
    refuse_quota(srv, p, p->pending.id, p->pending.need,
                 "the other processes did not give back enough in time");
    serve_waiting(srv, p->vgpu);
}

static void push_reclaim(qa_server_t *srv, qa_peer_t *s, uint64_t keep)
{
    qp_msg_t *m = qp_msg_new("mem_reclaim");
    qp_msg_set_uint(m, "keep", keep);
    qa_server_send(srv, s, &m);
}

/* Asks the others to give back enough unused reservation for p's need. */
static void reclaim_for(qa_server_t *srv, qa_peer_t *p, uint64_t need)
{
    uint64_t room = room_for(p);
    uint64_t short_by = need > room ? need - room : 0;
    for (qa_peer_t *s = p->vgpu->sessions; s && short_by; s = s->next_in_vgpu) {
        if (s == p || s->reserved <= s->used)
            continue;
        uint64_t give = s->reserved - s->used;
        if (give > short_by)
            give = short_by;
        push_reclaim(srv, s, s->reserved - give);
        short_by -= give;
    }
}

/* Makes p's pending request wait for reclaimed memory: starts its timeout and asks the
 * others. Returns 0, or -ENOMEM after answering it. */
static int wait_for_reclaim(qa_server_t *srv, qa_peer_t *p)
{
    const qa_config_t *cfg = qa_server_config(srv);
    if (qa_timer_start(qa_server_loop(srv), &p->pending.timer,
                       qa_now_ns() + cfg->reclaim_timeout_ms * 1000000ull, on_reclaim_timeout,
                       p) < 0) {
        set_pending(p, false);
        qa_server_error(srv, p, p->pending.id, QP_E_INTERNAL, "out of memory");
        return -ENOMEM;
    }
    reclaim_for(srv, p, p->pending.need);
    return 0;
}

/* Decides a mem_reserve of p now: grants it, refuses it, or makes it wait for memory
 * the other processes give back. */
static void reserve_now(qa_server_t *srv, qa_peer_t *p, uint64_t id, uint64_t need, uint64_t want)
{
    if (need > quota_of(p->vgpu)) {
        refuse_quota(srv, p, id, need, "that is more than the whole quota");
        return;
    }
    bool grace = qa_server_in_grace(srv);
    if (!grace && !p->vgpu->waiting && need <= room_for(p)) {
        grant(srv, p, id, need, want);
        return;
    }
    if (!grace && !could_fit(p, need)) {
        refuse_quota(srv, p, id, need, "its other processes use the rest");
        return;
    }
    set_pending(p, true);
    p->pending.id = id;
    p->pending.need = need;
    p->pending.want = want;
    p->pending.seq = qa_now_ns(); /* requests are taken one at a time: arrival order */
    if (grace)                    /* held without a timer: qa_tenant_grace_over decides */
        return;
    if (wait_for_reclaim(srv, p) == 0)
        serve_waiting(srv, p->vgpu);
}

/* Holds p's first mem_reserve until an NVML round that began after it has measured what
 * the device holds for p's process beyond its allocations (its contexts: it has one by
 * now, or it could not allocate): granted before that, the memory of that first context
 * would come on top of a full quota. Returns false when it is not held. */
static bool hold_until_measured(qa_server_t *srv, qa_peer_t *p, uint64_t id, uint64_t need,
                                uint64_t want)
{
    /* During the reconnect grace everything waits anyway, and the grace is longer than a
     * sampling period. */
    const qa_config_t *cfg = qa_server_config(srv);
    unsigned spent = cfg->reclaim_timeout_ms;
    unsigned wait = spent < QA_REPLY_BUDGET_MS ? QA_REPLY_BUDGET_MS - spent : 0;
    if (wait > MEASURE_WAIT_MS)
        wait = MEASURE_WAIT_MS;
    if (p->measured || !cfg->charge_real || wait == 0 || qa_server_in_grace(srv) ||
        !qa_server_measure(srv))
        return false;
    p->held.active = true;
    p->held.id = id;
    p->held.need = need;
    p->held.want = want;
    p->held.since = qa_now_ns();
    p->held.until = p->held.since + wait * 1000000ull;
    return true;
}

static void mem_reserve(qa_server_t *srv, qa_peer_t *p, const qp_msg_t *m)
{
    uint64_t id = qp_msg_id(m), need = 0, want, used;
    qp_msg_get_uint(m, "need", &need);
    if (qp_msg_get_uint(m, "want", &want) < 0 || want < need)
        want = need;
    if (qp_msg_get_uint(m, "used", &used) == 0) {
        if (!report_ok(srv, p, p->vgpu, id, "used", used))
            return;
        set_used(srv, p, used);
    }
    if (p->pending.active || p->held.active) {
        qa_server_error(srv, p, id, QP_E_INVALID,
                        "a mem_reserve of this process is already waiting");
        return;
    }
    if (!hold_until_measured(srv, p, id, need, want))
        reserve_now(srv, p, id, need, want);
}

void qa_tenant_charge(qa_server_t *srv, qa_peer_t *p, uint64_t bytes)
{
    (void)srv;
    p->vgpu->mem_overhead = p->vgpu->mem_overhead - p->overhead + bytes;
    p->overhead = bytes;
}

void qa_tenant_measured(qa_server_t *srv, qa_vgpu_t *v, uint64_t taken, uint64_t now)
{
    for (qa_peer_t *s = v->sessions; s; s = s->next_in_vgpu) {
        if (!s->held.active || (s->held.since >= taken && now < s->held.until))
            continue;
        s->held.active = false;
        s->measured = true;
        reserve_now(srv, s, s->held.id, s->held.need, s->held.want);
    }
    uint64_t extra = beyond_allocations(srv, v);
    if (extra > v->extra_seen && v->mem_reserved + extra > quota_of(v)) {
        /* The device holds more for v's processes than was known: the unused part of
         * their reservations goes back, so that what they hold fits the quota again. */
        for (qa_peer_t *s = v->sessions; s; s = s->next_in_vgpu) {
            if (s->reserved > s->used)
                push_reclaim(srv, s, s->used);
        }
    }
    v->extra_seen = extra;
    serve_waiting(srv, v);
}

/* Decides the requests of v held during the grace: in arrival order, those that fit
 * are granted, those that cannot fit even with reclaimed memory are refused, and the
 * others wait for reclaim like a request that came now. */
static void grace_over(qa_server_t *srv, qa_vgpu_t *v)
{
    serve_waiting(srv, v);
    for (;;) {
        qa_peer_t *held = NULL;
        for (qa_peer_t *s = v->sessions; s; s = s->next_in_vgpu) {
            if (s->pending.active && !qa_timer_running(&s->pending.timer) &&
                (!held || s->pending.seq < held->pending.seq))
                held = s;
        }
        if (!held)
            break;
        if (!could_fit(held, held->pending.need)) {
            set_pending(held, false);
            refuse_quota(srv, held, held->pending.id, held->pending.need,
                         "its other processes use the rest");
            serve_waiting(srv, v);
        } else {
            wait_for_reclaim(srv, held);
        }
    }
}

void qa_tenant_grace_over(qa_server_t *srv)
{
    qa_host_t *host = qa_server_host(srv);
    for (size_t i = 0; i < qa_host_nvgpus(host); i++)
        grace_over(srv, qa_host_vgpu(host, i));
}

static void mem_release(qa_server_t *srv, qa_peer_t *p, const qp_msg_t *m)
{
    uint64_t id = qp_msg_id(m), reserved = 0;
    qp_msg_get_uint(m, "reserved", &reserved);
    if (reserved > p->reserved) {
        qa_server_error(srv, p, id, QP_E_INVALID,
                        "mem_release cannot raise a reservation (%llu > %llu bytes): use "
                        "mem_reserve",
                        (unsigned long long)reserved, (unsigned long long)p->reserved);
        return;
    }
    set_reserved(srv, p, reserved);
    qp_msg_t *rep = qp_msg_new_ok(id);
    qp_msg_set_uint(rep, "reserved", p->reserved);
    qp_msg_set_uint(rep, "vgpu_used", vgpu_used(srv, p->vgpu));
    qa_server_send(srv, p, &rep);
    serve_waiting(srv, p->vgpu);
}

static void heartbeat(qa_server_t *srv, qa_peer_t *p, const qp_msg_t *m)
{
    uint64_t used = 0, reserved = 0, id = qp_msg_has(m, "id") ? qp_msg_id(m) : 0;
    qp_msg_get_uint(m, "mem_used", &used);
    qp_msg_get_uint(m, "mem_reserved", &reserved);
    if (!report_ok(srv, p, p->vgpu, id, "mem_used", used))
        return; /* without an id, nobody to tell: the report is ignored */
    set_used(srv, p, used);
    bool lowered = false;
    /* A lower report with nothing pending means the process gave up on a grant that
     * came too late (its connection drops stale replies): take the difference back.
     * Never raise: a report is not a request. */
    if (!p->pending.active && reserved < p->reserved) {
        uint64_t keep = reserved > used ? reserved : used;
        if (keep < p->reserved) {
            set_reserved(srv, p, keep);
            lowered = true;
        }
    }
    if (qp_msg_has(m, "id")) {
        qp_msg_t *rep = qp_msg_new_ok(id);
        qp_msg_set_uint(rep, "vgpu_used", vgpu_used(srv, p->vgpu));
        qp_msg_set_uint(rep, "vgpu_reserved", p->vgpu->mem_reserved);
        qa_server_send(srv, p, &rep);
    }
    if (lowered)
        serve_waiting(srv, p->vgpu);
}

void qa_tenant_request(qa_server_t *srv, qa_peer_t *p, const qp_msg_t *m)
{
    const char *t = qp_msg_type(m);
    if (!p->vgpu) { /* cannot happen: a tenant session always has its vGPU */
        qa_server_error(srv, p, qp_msg_id(m), QP_E_NOSESSION, "hello first");
    } else if (strcmp(t, "mem_reserve") == 0) {
        mem_reserve(srv, p, m);
    } else if (strcmp(t, "mem_release") == 0) {
        mem_release(srv, p, m);
    } else if (strcmp(t, "hb") == 0) {
        heartbeat(srv, p, m);
    } else if (qp_is_tok(m)) {
        qa_compute_message(qa_server_compute(srv), p, m);
    } else {
        qa_server_error(srv, p, qp_msg_id(m), QP_E_PROTO, "'%.32s' is not a tenant request", t);
    }
}

/* ---- what the previous arbiter's processes hold -------------------------------------- */

/* Drops ghost *gp of v (it re-reported or is gone): its memory is free again. */
static void drop_ghost(qa_server_t *srv, qa_vgpu_t *v, struct qa_ghost **gp)
{
    struct qa_ghost *g = *gp;
    *gp = g->next;
    v->ghost_bytes -= g->bytes;
    v->mem_reserved -= g->bytes;
    qa_ledger_free(qa_server_ledger(srv), g->slot);
    free(g);
}

/* p's process is known (cred_pid, from its connection, at its hello): records it in p's
 * slot, and takes the place of what the previous arbiter's same process held, which p's
 * hello re-reported. */
static void identify(qa_server_t *srv, qa_peer_t *p)
{
    qa_vgpu_t *v = p->vgpu;
    uint64_t start = 0;
    if (qa_ledger_proc_start(p->cred_pid, &start) < 0)
        return; /* gone already: its connection's end will end the session */
    if (p->slot)
        qa_ledger_set_process(qa_server_ledger(srv), p->slot - 1, p->cred_pid, start);
    bool claimed = false;
    for (struct qa_ghost **gp = &v->ghosts; *gp;) {
        if ((*gp)->pid == p->cred_pid && (*gp)->start == start) {
            drop_ghost(srv, v, gp);
            claimed = true;
        } else {
            gp = &(*gp)->next;
        }
    }
    if (v->mem_reserved > quota_of(v))
        qa_log(qa_server_log(srv), QA_WARN,
               "vGPU %s holds %llu MiB after pid %d re-reported %llu MiB, over its %llu MiB "
               "quota: new reservations wait until use drops",
               v->id, (unsigned long long)(v->mem_reserved >> 20), (int)p->cred_pid,
               (unsigned long long)(p->used >> 20), (unsigned long long)v->memory_mb);
    if (claimed)
        serve_waiting(srv, v);
}

int qa_tenant_adopt_ghosts(qa_server_t *srv)
{
    qa_ledger_t *ledger = qa_server_ledger(srv);
    qa_ledger_entry_t *e;
    size_t n, kept = 0;
    uint64_t bytes = 0;
    if (qa_ledger_previous(ledger, &e, &n) < 0)
        return -ENOMEM;
    uint64_t expires =
        qa_now_ns() + (uint64_t)qa_server_config(srv)->heartbeat_timeout_ms * 1000000ull;
    for (size_t i = 0; i < n; i++) {
        qa_vgpu_t *v = qa_host_find(qa_server_host(srv), e[i].vgpu);
        uint64_t start;
        struct qa_ghost *g = NULL;
        bool alive =
            e[i].pid == 0 || (qa_ledger_proc_start(e[i].pid, &start) == 0 && start == e[i].start);
        if (v && alive && e[i].bytes && !(g = calloc(1, sizeof *g))) {
            free(e); /* forgetting it could over-commit: better not start */
            return -ENOMEM;
        }
        if (g) {
            g->pid = e[i].pid;
            g->start = e[i].start;
            g->bytes = e[i].bytes;
            g->slot = e[i].slot;
            g->expires = e[i].pid ? 0 : expires;
            g->next = v->ghosts;
            v->ghosts = g;
            v->ghost_bytes += g->bytes;
            v->mem_reserved += g->bytes;
            kept++;
            bytes += g->bytes;
        } else {
            /* gone, its vGPU too, or holding nothing */
            qa_ledger_free(ledger, e[i].slot);
        }
    }
    free(e);
    if (kept)
        qa_log(qa_server_log(srv), QA_INFO,
               "%zu processes of the previous arbiter may still hold %llu MiB: kept out of "
               "reach until they re-report or exit",
               kept, (unsigned long long)(bytes >> 20));
    return 0;
}

void qa_tenant_check_ghosts(qa_server_t *srv)
{
    qa_host_t *host = qa_server_host(srv);
    uint64_t now = qa_now_ns(), start;
    for (size_t i = 0; i < qa_host_nvgpus(host); i++) {
        qa_vgpu_t *v = qa_host_vgpu(host, i);
        bool dropped = false;
        for (struct qa_ghost **gp = &v->ghosts; *gp;) {
            struct qa_ghost *g = *gp;
            bool gone = g->pid ? qa_ledger_proc_start(g->pid, &start) < 0 || start != g->start
                               : now >= g->expires;
            if (gone) {
                qa_log(qa_server_log(srv), QA_DEBUG,
                       "pid %d of the previous arbiter left vGPU %s: %llu MiB free again",
                       (int)g->pid, v->id, (unsigned long long)(g->bytes >> 20));
                drop_ghost(srv, v, gp);
                dropped = true;
            } else {
                gp = &g->next;
            }
        }
        if (dropped)
            serve_waiting(srv, v);
    }
}

void qa_tenant_forget_ghosts(qa_host_t *host)
{
    for (size_t i = 0; i < qa_host_nvgpus(host); i++) {
        qa_vgpu_t *v = qa_host_vgpu(host, i);
        while (v->ghosts) {
            struct qa_ghost *g = v->ghosts;
            v->ghosts = g->next;
            free(g);
        }
    }
}

void qa_tenant_hello(qa_server_t *srv, qa_peer_t *p, const qp_msg_t *m)
{
    uint64_t id = qp_msg_id(m), used = 0;
    const char *vid = NULL, *secret = NULL;
    int64_t pid = 0;
    qp_msg_get_str(m, "vgpu", &vid);
    qp_msg_get_str(m, "secret", &secret);
    qp_msg_get_int(m, "pid", &pid);
    qp_msg_get_uint(m, "mem_used", &used);
    qa_vgpu_t *v = vid ? qa_host_find(qa_server_host(srv), vid) : NULL;
    if (!v || !secret_ok(v->secret, secret)) {
        /* once per connection, a few per uid per 10 s: neither a retrying shim nor a
         * stranger connecting again and again floods the log */
        if (!p->warned && qa_server_may_warn(srv, p))
            qa_log(qa_server_log(srv), QA_INFO, "tenant hello refused (pid %d) from uid %u: %s",
                   (int)p->cred_pid, (unsigned)p->cred_uid,
                   !vid ? "no vGPU named"
                   : !v ? "unknown vGPU"
                        : "wrong secret");
        p->warned = true;
        qa_server_error(srv, p, id, QP_E_AUTH,
                        "authentication failed: unknown vGPU or wrong secret");
        return;
    }
    if (!report_ok(srv, p, v, id, "mem_used", used))
        return;
    if (v->moving) {
        /* A process starting now would start on the GPU the vGPU leaves: it waits. */
        qa_server_error(srv, p, id, QP_E_BUSY, "vGPU %s is moving to GPU %u: try again shortly",
                        v->id, v->moving - 1);
        return;
    }
    qa_server_set_session(srv, p, true);
    p->vgpu = v;
    p->next_in_vgpu = v->sessions;
    p->pprev_in_vgpu = &v->sessions;
    if (v->sessions)
        v->sessions->pprev_in_vgpu = &p->next_in_vgpu;
    v->sessions = p;
    v->procs++;
    p->session_id = qa_server_new_session(srv);
    p->pid = (pid_t)pid;
    p->used = p->reserved = 0;
    int slot = qa_ledger_add(qa_server_ledger(srv), v->id, 0, 0, used);
    if (slot < 0)
        qa_log(qa_server_log(srv), QA_ERROR,
               "no room in the ledger for pid %d of vGPU %s: after a restart of the arbiter "
               "what it holds is unknown until it re-reports",
               (int)pid, v->id);
    p->slot = slot < 0 ? 0 : (uint32_t)slot + 1;
    set_used(srv, p, used);
    set_reserved(srv, p, used); /* it holds this already: charge it, whatever the quota says */
    if (qa_compute_join(qa_server_compute(srv), p) < 0)
        qa_log(qa_server_log(srv), QA_ERROR,
               "out of memory for the compute lease of pid %d of vGPU %s: its tok_req will fail",
               (int)pid, v->id);
    if (p->cred_pid) /* known from the accept (SO_PEERCRED): 0 only if that failed */
        identify(srv, p);
    qa_log(qa_server_log(srv), QA_DEBUG, "tenant pid %d (host pid %d) joined vGPU %s", (int)pid,
           (int)p->cred_pid, v->id);
    qp_limits_t lim;
    qa_host_limits(qa_server_host(srv), v, &lim);
    qp_msg_t *rep = qp_msg_new_ok(id);
    qp_msg_set_uint(rep, "proto", QP_PROTO_VERSION);
    qp_msg_set_str(rep, "arbiter", "qarbiter/" QA_VERSION);
    qp_limits_put(qp_msg_add_map(rep, "vgpu"), &lim);
    qp_msg_set_uint(rep, "session", p->session_id);
    qp_msg_set_uint(rep, "reserved", p->reserved);
    qp_msg_set_uint(rep, "vgpu_used", vgpu_used(srv, v));
    qa_server_send(srv, p, &rep);
}

/* Unlinks p from its vGPU and forgets its session. */
static void detach(qa_server_t *srv, qa_peer_t *p, bool tell)
{
    qa_vgpu_t *v = p->vgpu;
    if (v && p->pending.active) {
        qa_timer_stop(qa_server_loop(srv), &p->pending.timer);
        set_pending(p, false);
        if (tell)
            qa_server_error(srv, p, p->pending.id, QP_E_NOSESSION, "the session ended");
    }
    if (v && p->held.active && tell)
        qa_server_error(srv, p, p->held.id, QP_E_NOSESSION, "the session ended");
    p->held.active = false;
    if (v) {
        qa_compute_leave(qa_server_compute(srv), p);
        set_used(srv, p, 0);
        set_reserved(srv, p, 0);
        qa_tenant_charge(srv, p, 0);
        if (p->slot)
            qa_ledger_free(qa_server_ledger(srv), p->slot - 1);
        p->slot = 0;
        *p->pprev_in_vgpu = p->next_in_vgpu;
        if (p->next_in_vgpu)
            p->next_in_vgpu->pprev_in_vgpu = p->pprev_in_vgpu;
        v->procs--;
    }
    p->vgpu = NULL;
    p->next_in_vgpu = NULL;
    p->pprev_in_vgpu = NULL;
    if (p->session)
        qa_server_set_session(srv, p, false);
    p->used = p->reserved = 0;
    p->measured = false;
    p->real = 0;
    p->ngap = 0;
}

void qa_tenant_end(qa_server_t *srv, qa_peer_t *p, bool tell)
{
    qa_vgpu_t *v = p->vgpu;
    detach(srv, p, tell);
    if (v)
        serve_waiting(srv, v);
}

void qa_tenant_vgpu_gone(qa_server_t *srv, qa_vgpu_t *v)
{
    while (v->sessions)
        detach(srv, v->sessions, true);
    while (v->ghosts)
        drop_ghost(srv, v, &v->ghosts);
    qa_compute_vgpu_gone(qa_server_compute(srv), v);
}

/* Tells v's processes its limits and GPU now. */
static void push_limits(qa_server_t *srv, qa_vgpu_t *v)
{
    qp_limits_t lim;
    qa_host_limits(qa_server_host(srv), v, &lim);
    for (qa_peer_t *s = v->sessions; s; s = s->next_in_vgpu) {
        qp_msg_t *m = qp_msg_new("limits");
        qp_limits_put(qp_msg_add_map(m, "vgpu"), &lim);
        qa_server_send(srv, s, &m);
    }
}

void qa_tenant_moved(qa_server_t *srv, qa_vgpu_t *v)
{
    push_limits(srv, v);
}

void qa_tenant_resized(qa_server_t *srv, qa_vgpu_t *v, uint64_t old_memory_mb)
{
    qa_compute_resized(qa_server_compute(srv), v);
    push_limits(srv, v);
    if (v->memory_mb < old_memory_mb && v->mem_reserved > quota_of(v)) {
        for (qa_peer_t *s = v->sessions; s; s = s->next_in_vgpu) {
            if (s->reserved > s->used)
                push_reclaim(srv, s, 0);
        }
    }
    serve_waiting(srv, v);
}

/* One process's report, for qa_tenant_gpu_used. */
struct proc_use {
    pid_t pid;     /* as the arbiter sees it */
    uint64_t used; /* one session's report */
};

static int by_pid(const void *a, const void *b)
{
    const struct proc_use *x = a, *y = b;
    return (x->pid > y->pid) - (x->pid < y->pid);
}

uint64_t qa_tenant_gpu_used(qa_server_t *srv, unsigned gpu)
{
    qa_host_t *host = qa_server_host(srv);
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
        for (const qa_peer_t *s = v->sessions; s; s = s->next_in_vgpu) {
            if (u && k < n)
                u[k++] = (struct proc_use){s->cred_pid, s->used};
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

uint64_t qa_tenant_host_used(qa_server_t *srv)
{
    uint64_t used = 0;
    for (size_t i = 0; i < qa_host_ngpus(qa_server_host(srv)); i++)
        used += qa_tenant_gpu_used(srv, (unsigned)i);
    return used;
}
