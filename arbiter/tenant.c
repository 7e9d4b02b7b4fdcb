/* tenant.c - tenant authentication, memory reservations with reclaim, heartbeats; compute
 * tokens are handed to compute.c.
 * Single-threaded: the loop thread (see tenant.h). */
#include "arbiter/tenant.h"

#include "arbiter/compute.h"
#include "proto/records.h"
#include "proto/schema.h"
#include "proto/units.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t quota_of(const qa_vgpu_t *v)
{
    return v->memory_mb * QP_MIB;
}

/* v's totals follow every change of a session's figures at O(1): a vGPU may have
 * thousands of sessions, each reporting twice a second, and a sum over them per report
 * would make the arbiter's work grow with the square of its tenants. The sums cannot
 * overflow: each figure is at most its GPU's memory (see report_ok). */
static void set_used(qa_peer_t *p, uint64_t used)
{
    p->vgpu->mem_used = p->vgpu->mem_used - p->used + used;
    p->used = used;
}

static void set_reserved(qa_peer_t *p, uint64_t reserved)
{
    p->vgpu->mem_reserved = p->vgpu->mem_reserved - p->reserved + reserved;
    p->reserved = reserved;
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

/* What p could hold: the quota minus the other processes' reservations. */
static uint64_t room_for(const qa_peer_t *p)
{
    const qa_vgpu_t *v = p->vgpu;
    uint64_t others = v->mem_reserved - p->reserved;
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
    set_reserved(p, r < need ? need : r); /* callers checked need <= room */
    qp_msg_t *rep = qp_msg_new_ok(id);
    qp_msg_set_uint(rep, "reserved", p->reserved);
    qp_msg_set_uint(rep, "vgpu_used", p->vgpu->mem_used);
    qa_server_send(srv, p, &rep);
}

static void refuse_quota(qa_server_t *srv, qa_peer_t *p, uint64_t id, uint64_t need,
                         const char *why)
{
    uint64_t room = room_for(p);
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

static void mem_reserve(qa_server_t *srv, qa_peer_t *p, const qp_msg_t *m)
{
    uint64_t id = qp_msg_id(m), need = 0, want, used;
    qp_msg_get_uint(m, "need", &need);
    if (qp_msg_get_uint(m, "want", &want) < 0 || want < need)
        want = need;
    if (qp_msg_get_uint(m, "used", &used) == 0) {
        if (!report_ok(srv, p, p->vgpu, id, "used", used))
            return;
        set_used(p, used);
    }
    if (p->pending.active) {
        qa_server_error(srv, p, id, QP_E_INVALID,
                        "a mem_reserve of this process is already waiting");
        return;
    }
    if (need > quota_of(p->vgpu)) {
        refuse_quota(srv, p, id, need, "that is more than the whole quota");
        return;
    }
    bool grace = qa_server_in_grace(srv);
    if (!grace && !p->vgpu->waiting && need <= room_for(p)) {
        grant(srv, p, id, need, want);
        return;
    }
    if (!grace && need > room_for(p) + others_unused(p)) {
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
        if (held->pending.need > room_for(held) + others_unused(held)) {
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
    set_reserved(p, reserved);
    qp_msg_t *rep = qp_msg_new_ok(id);
    qp_msg_set_uint(rep, "reserved", p->reserved);
    qp_msg_set_uint(rep, "vgpu_used", p->vgpu->mem_used);
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
    set_used(p, used);
    bool lowered = false;
    /* A lower report with nothing pending means the process gave up on a grant that
     * came too late (its connection drops stale replies): take the difference back.
     * Never raise: a report is not a request. */
    if (!p->pending.active && reserved < p->reserved) {
        uint64_t keep = reserved > used ? reserved : used;
        if (keep < p->reserved) {
            set_reserved(p, keep);
            lowered = true;
        }
    }
    if (qp_msg_has(m, "id")) {
        qp_msg_t *rep = qp_msg_new_ok(id);
        qp_msg_set_uint(rep, "vgpu_used", p->vgpu->mem_used);
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
            qa_log(qa_server_log(srv), QA_INFO, "tenant hello refused (uid %u, pid %d): %s",
                   (unsigned)p->cred_uid, (int)p->cred_pid,
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
    set_used(p, used);
    set_reserved(p, used); /* it holds this already: charge it, whatever the quota says */
    if (qa_compute_join(qa_server_compute(srv), p) < 0)
        qa_log(qa_server_log(srv), QA_ERROR,
               "out of memory for the compute lease of pid %d of vGPU %s: its tok_req will fail",
               (int)pid, v->id);
    if (v->mem_reserved > quota_of(v))
        qa_log(qa_server_log(srv), QA_WARN,
               "vGPU %s holds %llu MiB after pid %d re-reported %llu MiB, over its %llu MiB "
               "quota: new reservations wait until use drops",
               v->id, (unsigned long long)(v->mem_reserved >> 20), (int)pid,
               (unsigned long long)(used >> 20), (unsigned long long)v->memory_mb);
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
    qp_msg_set_uint(rep, "vgpu_used", v->mem_used);
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
    if (v) {
        qa_compute_leave(qa_server_compute(srv), p);
        set_used(p, 0);
        set_reserved(p, 0);
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
    qa_compute_vgpu_gone(qa_server_compute(srv), v);
}

void qa_tenant_resized(qa_server_t *srv, qa_vgpu_t *v, uint64_t old_memory_mb)
{
    qp_limits_t lim;
    qa_host_limits(qa_server_host(srv), v, &lim);
    qa_compute_resized(qa_server_compute(srv), v);
    for (qa_peer_t *s = v->sessions; s; s = s->next_in_vgpu) {
        qp_msg_t *m = qp_msg_new("limits");
        qp_limits_put(qp_msg_add_map(m, "vgpu"), &lim);
        qa_server_send(srv, s, &m);
    }
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
