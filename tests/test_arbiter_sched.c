/* test_arbiter_sched.c - the per-GPU compute scheduler driven by simulated tenants on a
 * fake clock: shares, limits, work conservation, extensions, idle credit, resize, hung
 * holders, many tenants. Each simulated tenant behaves as the shim does: it submits
 * while its lease runs, asks for an extension 2 ms before the end when it may, and
 * returns the lease once its queued work has finished (OVERRUN after the end or the
 * revoke). */
#include "arbiter/sched.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#define US 1000ull
#define MS 1000000ull
#define S (1000 * MS)
#define OVERRUN (100 * 1000ull) /* queued work finishing after the lease: 100 us */
#define EXT_BEFORE (2 * MS)     /* the shim asks for more this long before the end */
#define MAXT 64

static const qa_sched_params_t params = {
    .window_ns = 200 * MS, .quantum_min_ns = 2 * MS, .quantum_max_ns = 50 * MS, .grace_ns = S};

struct tenant {
    qa_sched_proc_t *p;
    bool busy;       /* has work: returns with more, asks again after think */
    uint64_t burst;  /* 0: uses whole leases; else works this long, returns early */
    uint64_t think;  /* after an early return, asks again this long after */
    bool ext;        /* asks for extensions */
    bool hung;       /* never returns a lease */
    uint64_t claims; /* when set: the `used` it reports in every tok_ret (a liar) */
    uint64_t on;     /* when set: has work only during the first `on` ns of every */
    uint64_t off;    /* on + off ns, and returns its lease when that ends */
    uint64_t next;   /* when it asks again (idle and busy) */
    uint64_t held;   /* ns it held the GPU */
    uint64_t lease;  /* its latest lease number */
    unsigned grants; /* new leases */
    unsigned exts;   /* extensions granted */
    unsigned revokes;
};

struct sim {
    qa_sched_t *s;
    uint64_t now;
    struct tenant t[MAXT];
    size_t n;
    struct tenant *holder; /* holds the GPU as far as the tenants know */
    uint64_t start;        /* its lease's grant */
    uint64_t end;          /* its lease's end */
    bool asked;            /* it asked for an extension of this end */
    bool revoked;          /* it was told to stop */
    uint64_t revoked_at;
    uint64_t last_grant_at; /* when the latest new lease was granted */
};

static void on_grant(void *arg, void *owner, uint64_t lease, uint64_t ns)
{
    struct sim *sim = arg;
    struct tenant *t = owner;
    cr_assert_gt(ns, 0);
    if (sim->holder == t && lease == t->lease) {
        t->exts++;
    } else {
        cr_assert_null(sim->holder, "a grant while another tenant holds the GPU");
        cr_assert_gt(lease, t->lease, "lease numbers grow per process");
        sim->holder = t;
        sim->start = sim->now;
        sim->revoked = false;
        t->lease = lease;
        t->grants++;
        sim->last_grant_at = sim->now;
    }
    sim->end = sim->now + ns;
    sim->asked = false;
}

static void on_revoke(void *arg, void *owner, uint64_t lease)
{
    struct sim *sim = arg;
    struct tenant *t = owner;
    cr_assert_eq(lease, t->lease);
    t->revokes++;
    if (t->hung && sim->holder == t) { /* taken back: it never answers */
        t->held += sim->now - sim->start;
        sim->holder = NULL;
        return;
    }
    if (sim->holder == t && !sim->revoked) {
        sim->revoked = true;
        sim->revoked_at = sim->now;
    }
}

static struct sim *sim_new(void)
{
    struct sim *sim = calloc(1, sizeof *sim);
    qa_sched_ops_t ops = {on_grant, on_revoke, sim};
    sim->s = qa_sched_new(&params, &ops);
    cr_assert_not_null(sim->s);
    return sim;
}

static void sim_destroy(struct sim *sim)
{
    qa_sched_destroy(&sim->s);
    cr_assert_null(sim->s);
    free(sim);
}

static qa_sched_ent_t *vgpu(struct sim *sim, unsigned share, unsigned limit)
{
    qa_sched_ent_t *e = qa_sched_ent_new(sim->s, share, limit, sim->now);
    cr_assert_not_null(e);
    return e;
}

/* A busy tenant of e that starts asking at the current time. */
static struct tenant *tenant(struct sim *sim, qa_sched_ent_t *e)
{
    cr_assert_lt(sim->n, MAXT);
    struct tenant *t = &sim->t[sim->n++];
    t->p = qa_sched_proc_new(sim->s, e, t);
    cr_assert_not_null(t->p);
    t->busy = true;
    t->next = sim->now;
    return t;
}

/* The holder gives its lease back now. */
static void give_back(struct sim *sim, bool more)
{
    struct tenant *t = sim->holder;
    sim->holder = NULL;
    t->held += sim->now - sim->start;
    uint64_t used = t->claims ? t->claims : sim->now - sim->start;
    cr_assert_eq(qa_sched_return(sim->s, t->p, t->lease, used, more, sim->now), 0);
}

/* Runs the tenants and the scheduler until `until`. */
static void run(struct sim *sim, uint64_t until)
{
    while (sim->now < until) {
        /* The next event: the holder's next step, a tenant asking, or the deadline. */
        uint64_t when = UINT64_MAX;
        int what = 0; /* 1 holder, 2 tenant asks, 3 scheduler tick */
        struct tenant *asker = NULL;
        struct tenant *h = sim->holder;
        if (h && !h->hung) {
            if (sim->revoked)
                when = sim->revoked_at + OVERRUN;
            else if (h->burst)
                when = sim->start + h->burst;
            else if (h->ext && !sim->asked && sim->end > sim->now + EXT_BEFORE)
                when = sim->end - EXT_BEFORE;
            else
                when = (sim->end > sim->now ? sim->end : sim->now) + OVERRUN;
            if (h->burst && when > sim->end + OVERRUN)
                when = sim->end + OVERRUN;
            if (h->on && !sim->revoked) {
                uint64_t off_at = sim->now - sim->now % (h->on + h->off) + h->on;
                if (off_at + OVERRUN < when)
                    when = off_at + OVERRUN;
            }
            what = 1;
        }
        for (size_t i = 0; i < sim->n; i++) {
            struct tenant *t = &sim->t[i];
            if (t->busy && t != h && t->next != UINT64_MAX && t->next < when) {
                when = t->next;
                what = 2;
                asker = t;
            }
        }
        uint64_t d = qa_sched_deadline(sim->s);
        if (d < when) {
            when = d;
            what = 3;
        }
        if (when >= until) {
            sim->now = until;
            break;
        }
        if (when > sim->now)
            sim->now = when;
        if (what == 3) {
            qa_sched_tick(sim->s, sim->now);
        } else if (what == 2) {
            asker->next = UINT64_MAX; /* waiting until granted */
            qa_sched_request(sim->s, asker->p, sim->now);
        } else if (sim->revoked || !h->ext || sim->asked || h->burst) {
            bool early = h->burst && sim->now < sim->end + OVERRUN && !sim->revoked;
            bool more = h->busy && !early;
            struct tenant *t = h;
            uint64_t period = t->on + t->off, phase = t->on ? sim->now % period : 0;
            if (t->on && phase >= t->on + OVERRUN)
                more = false; /* its on-phase ended */
            give_back(sim, more);
            if (early)
                t->next = sim->now + t->think;
            if (t->on && !more)
                t->next = sim->now - phase + period;
        } else {
            sim->asked = true;
            cr_assert_eq(qa_sched_extend(sim->s, h->p, h->lease, sim->now), 0);
        }
    }
}

/* Held time of each tenant from here on: call again to get the difference. */
static void snapshot(const struct sim *sim, uint64_t *held)
{
    for (size_t i = 0; i < sim->n; i++)
        held[i] = sim->t[i].held;
}

static double pct(uint64_t part, uint64_t whole)
{
    return 100.0 * (double)part / (double)whole;
}

static double jain(const double *x, size_t n)
{
    double sum = 0, sq = 0;
    for (size_t i = 0; i < n; i++) {
        sum += x[i];
        sq += x[i] * x[i];
    }
    return sum * sum / ((double)n * sq);
}

/* ---- tests ------------------------------------------------------------------------- */

Test(qa_sched, limit_equal_to_share_gives_each_exactly_its_share)
{
    struct sim *sim = sim_new();
    unsigned shares[3] = {20, 30, 50};
    for (int i = 0; i < 3; i++)
        tenant(sim, vgpu(sim, shares[i], shares[i]));
    run(sim, 10 * S);
    for (int i = 0; i < 3; i++) {
        double got = pct(sim->t[i].held, 10 * S);
        cr_assert(got > shares[i] - 1.0 && got < shares[i] + 1.0, "vGPU %d: %.2f%% for %u%%", i,
                  got, shares[i]);
    }
    sim_destroy(sim);
}

Test(qa_sched, unused_time_is_shared_in_proportion_to_shares_without_idling)
{
    struct sim *sim = sim_new();
    tenant(sim, vgpu(sim, 10, 0));
    tenant(sim, vgpu(sim, 30, 0));
    run(sim, 10 * S);
    uint64_t busy = sim->t[0].held + sim->t[1].held;
    cr_assert_geq(pct(busy, 10 * S), 98.0, "GPU busy %.2f%%", pct(busy, 10 * S));
    double small = pct(sim->t[0].held, busy);
    cr_assert(small > 25 * 0.95 && small < 25 * 1.05, "10:30 split gave %.2f%% to the 10", small);
    sim_destroy(sim);
}

Test(qa_sched, a_lone_tenant_keeps_its_lease_by_extensions)
{
    struct sim *sim = sim_new();
    qa_sched_ent_t *e = vgpu(sim, 10, 0);
    struct tenant *t = tenant(sim, e);
    t->ext = true;
    run(sim, 10 * S);
    cr_assert_eq(t->grants, 1, "one lease, extended: %u grants", t->grants);
    cr_assert_gt(t->exts, 100);
    cr_assert_eq(t->revokes, 0);
    cr_assert_eq(sim->holder, t);
    cr_assert_eq(qa_sched_ent_quantum(e), params.quantum_max_ns);
    /* It held the GPU all along (the current lease is still running). */
    cr_assert_eq(sim->start, 0);
    sim_destroy(sim);
}

Test(qa_sched, an_extension_is_revoked_when_another_vgpu_waits)
{
    struct sim *sim = sim_new();
    struct tenant *a = tenant(sim, vgpu(sim, 50, 0));
    a->ext = true;
    run(sim, 1 * S);
    cr_assert_eq(a->grants, 1);
    struct tenant *b = tenant(sim, vgpu(sim, 50, 0));
    b->ext = true;
    run(sim, 1 * S + 60 * MS); /* a's lease ends within 50 ms; b goes next */
    cr_assert_eq(a->revokes, 1);
    cr_assert_eq(b->grants, 1);
    run(sim, 5 * S);
    double share_a = pct(a->held, a->held + b->held);
    /* from 1 s on they split evenly: a had 1 s alone */
    cr_assert(share_a > 55 && share_a < 65, "a got %.1f%%", share_a);
    sim_destroy(sim);
}

Test(qa_sched, a_limit_caps_a_lone_tenant_even_on_an_idle_gpu)
{
    struct sim *sim = sim_new();
    qa_sched_ent_t *e = vgpu(sim, 10, 30);
    struct tenant *t = tenant(sim, e);
    t->ext = true;
    run(sim, 10 * S);
    double got = pct(t->held, 10 * S);
    cr_assert(got > 29 && got < 31, "limit 30%% gave %.2f%%", got);
    cr_assert_geq(qa_sched_ent_charged(e), t->held - OVERRUN);
    sim_destroy(sim);
}

Test(qa_sched, a_vgpu_back_from_idle_gets_no_hoarded_credit)
{
    struct sim *sim = sim_new();
    struct tenant *a = tenant(sim, vgpu(sim, 50, 0));
    struct tenant *b = tenant(sim, vgpu(sim, 50, 0));
    run(sim, 2 * S);
    a->busy = false; /* goes idle at its next return */
    run(sim, 5 * S);
    uint64_t before[2];
    snapshot(sim, before);
    cr_assert_lt(a->held, 2 * S, "a stopped asking");
    a->busy = true;
    a->next = sim->now;
    run(sim, 7 * S);
    double got = pct(a->held - before[0], (a->held - before[0]) + (b->held - before[1]));
    cr_assert(got > 45 && got < 55, "a back from 3 s idle took %.1f%%, not its half", got);
    sim_destroy(sim);
}

Test(qa_sched, a_short_pause_is_not_idleness)
{
    struct sim *sim = sim_new();
    struct tenant *a = tenant(sim, vgpu(sim, 50, 0));
    a->on = 90 * MS; /* works 90 ms, pauses 30 ms: less than a window */
    a->off = 30 * MS;
    struct tenant *b = tenant(sim, vgpu(sim, 50, 0));
    run(sim, 10 * S);
    double got = pct(a->held, a->held + b->held);
    /* Keeping its place, it makes up in its working phases what it left in its pauses
     * (made level at every return, it would get 44%). */
    cr_assert(got > 47 && got < 53, "a pausing briefly got %.1f%%", got);
    sim_destroy(sim);
}

Test(qa_sched, a_holder_that_would_be_picked_again_is_extended)
{
    struct sim *sim = sim_new();
    struct tenant *a = tenant(sim, vgpu(sim, 90, 0));
    a->ext = true;
    struct tenant *b = tenant(sim, vgpu(sim, 10, 0));
    b->ext = true;
    run(sim, 10 * S);
    double got = pct(a->held, a->held + b->held);
    cr_assert(got > 88 && got < 92, "90:10 gave a %.1f%%", got);
    cr_assert_gt(a->exts, a->grants,
                 "a keeps the GPU by extensions (%u) more than it is "
                 "granted it anew (%u)",
                 a->exts, a->grants);
    cr_assert_gt(b->grants, 10, "b still gets its turns");
    sim_destroy(sim);
}

Test(qa_sched, a_resize_applies_at_the_next_pick)
{
    struct sim *sim = sim_new();
    qa_sched_ent_t *ea = vgpu(sim, 50, 0);
    struct tenant *a = tenant(sim, ea);
    struct tenant *b = tenant(sim, vgpu(sim, 50, 0));
    run(sim, 2 * S);
    qa_sched_set(sim->s, ea, 10, 10, sim->now);
    uint64_t before[2];
    snapshot(sim, before);
    uint64_t t0 = sim->now;
    run(sim, t0 + 200 * MS); /* one window */
    /* a's bucket starts empty: in the first window it gets at most its 10% plus the
     * lease it may have been holding */
    cr_assert_leq(a->held - before[0], 20 * MS + 50 * MS + OVERRUN);
    run(sim, 6 * S);
    snapshot(sim, before);
    run(sim, 10 * S);
    double got = pct(a->held - before[0], 4 * S);
    cr_assert(got > 9 && got < 11, "a resized to 10%% got %.2f%%", got);
    cr_assert_gt(pct(b->held - before[1], 4 * S), 88, "b takes the rest");
    /* Raising it again takes effect as fast. */
    qa_sched_set(sim->s, ea, 50, 0, sim->now);
    snapshot(sim, before);
    run(sim, 14 * S);
    got = pct(a->held - before[0], 4 * S);
    cr_assert(got > 47 && got < 53, "a resized back to 50%% got %.2f%%", got);
    sim_destroy(sim);
}

Test(qa_sched, a_hung_holder_is_taken_back_after_the_grace)
{
    struct sim *sim = sim_new();
    qa_sched_ent_t *ea = vgpu(sim, 50, 0);
    struct tenant *h = tenant(sim, ea);
    h->hung = true;
    struct tenant *b = tenant(sim, vgpu(sim, 50, 0));
    run(sim, 1 * MS);
    cr_assert_eq(sim->holder, h);
    uint64_t end = sim->end, start = sim->start;
    run(sim, end + params.grace_ns - 1);
    cr_assert_eq(sim->holder, h, "not before the grace");
    cr_assert_eq(b->grants, 0);
    run(sim, end + params.grace_ns + 1);
    cr_assert_eq(h->revokes, 1);
    cr_assert_eq(qa_sched_hung(sim->s), 1);
    cr_assert_eq(b->grants, 1);
    cr_assert_eq(sim->last_grant_at, end + params.grace_ns, "b is granted at once");
    /* A late return of the lease taken back is not charged, and changes no holder. */
    uint64_t charged = qa_sched_ent_charged(ea);
    cr_assert_eq(charged, end + params.grace_ns - start, "charged the whole time");
    cr_assert_eq(qa_sched_extend(sim->s, h->p, h->lease, sim->now), -ESTALE);
    cr_assert_eq(qa_sched_return(sim->s, h->p, h->lease, 5 * S, true, sim->now), -ESTALE);
    cr_assert_eq(qa_sched_ent_charged(ea), charged);
    cr_assert_eq(sim->holder, b);
    /* But its `more` queues it: it is granted once b is done, without a tok_req. */
    cr_assert_eq(qa_sched_ent_active(ea), 1);
    h->hung = false;
    h->busy = false; /* no further asking of its own */
    b->busy = false;
    run(sim, sim->now + 200 * MS);
    cr_assert_eq(h->grants, 2, "granted again");
    sim_destroy(sim);
}

Test(qa_sched, a_dead_holder_frees_the_gpu_at_once)
{
    struct sim *sim = sim_new();
    qa_sched_ent_t *ea = vgpu(sim, 50, 0);
    struct tenant *a = tenant(sim, ea);
    struct tenant *b = tenant(sim, vgpu(sim, 50, 0));
    run(sim, 1 * MS);
    cr_assert_eq(sim->holder, a);
    sim->holder = NULL; /* the process died */
    qa_sched_proc_destroy(sim->s, &a->p, sim->now);
    cr_assert_null(a->p);
    cr_assert_eq(sim->holder, b, "b granted in the same call");
    cr_assert_eq(qa_sched_ent_charged(ea), 1 * MS, "charged until it died");
    a->busy = false;
    qa_sched_ent_destroy(sim->s, &ea);
    cr_assert_null(ea);
    sim_destroy(sim);
}

Test(qa_sched, processes_share_their_vgpus_share_in_turn)
{
    struct sim *sim = sim_new();
    qa_sched_ent_t *x = vgpu(sim, 50, 0);
    struct tenant *xs[3] = {tenant(sim, x), tenant(sim, x), tenant(sim, x)};
    struct tenant *y = tenant(sim, vgpu(sim, 50, 0));
    run(sim, 10 * S);
    uint64_t xsum = xs[0]->held + xs[1]->held + xs[2]->held;
    double got = pct(xsum, xsum + y->held);
    cr_assert(got > 48 && got < 52, "three processes of x took %.1f%%", got);
    for (int i = 0; i < 3; i++) {
        double part = pct(xs[i]->held, xsum);
        cr_assert(part > 30 && part < 36.7, "process %d of x: %.1f%%", i, part);
    }
    sim_destroy(sim);
}

Test(qa_sched, the_quantum_adapts_to_how_leases_are_used)
{
    struct sim *sim = sim_new();
    qa_sched_ent_t *lat = vgpu(sim, 50, 0);
    qa_sched_ent_t *batch = vgpu(sim, 50, 0);
    struct tenant *l = tenant(sim, lat);
    l->burst = 500 * 1000; /* 0.5 ms of work, then 5 ms of thinking */
    l->think = 5 * MS;
    tenant(sim, batch);
    run(sim, 2 * S);
    cr_assert_eq(qa_sched_ent_quantum(lat), params.quantum_min_ns);
    cr_assert_eq(qa_sched_ent_quantum(batch), params.quantum_max_ns);
    cr_assert_gt(l->grants, 20, "the latency tenant ran often: %u", l->grants);
    sim_destroy(sim);
}

Test(qa_sched, sixty_four_equal_vgpus_are_treated_fairly)
{
    struct sim *sim = sim_new();
    for (int i = 0; i < 64; i++)
        tenant(sim, vgpu(sim, 1, 0))->ext = (i % 2) == 0;
    run(sim, 10 * S);
    double x[64];
    uint64_t busy = 0;
    for (int i = 0; i < 64; i++) {
        x[i] = (double)sim->t[i].held;
        busy += sim->t[i].held;
    }
    double j = jain(x, 64);
    cr_assert_geq(j, 0.99, "Jain index %.4f", j);
    cr_assert_geq(pct(busy, 10 * S), 95.0);
    sim_destroy(sim);
}

Test(qa_sched, utilisation_follows_the_time_used)
{
    struct sim *sim = sim_new();
    qa_sched_ent_t *a = vgpu(sim, 20, 20);
    qa_sched_ent_t *idle = vgpu(sim, 20, 0);
    qa_sched_proc_t *ip = qa_sched_proc_new(sim->s, idle, NULL);
    tenant(sim, a)->ext = true;
    for (uint64_t t = 500 * MS; t <= 10 * S; t += 500 * MS) {
        run(sim, t);
        qa_sched_sample(sim->s, sim->now);
    }
    cr_assert(qa_sched_ent_util(a) > 17 && qa_sched_ent_util(a) < 23, "util %.1f",
              qa_sched_ent_util(a));
    cr_assert_float_eq(qa_sched_ent_util(idle), 0.0, 1e-9);
    cr_assert(qa_sched_util(sim->s) > 17 && qa_sched_util(sim->s) < 23);
    cr_assert_eq(qa_sched_ent_active(idle), 0);
    qa_sched_proc_destroy(sim->s, &ip, sim->now);
    sim_destroy(sim);
}

Test(qa_sched, requests_while_waiting_or_holding_are_ignored)
{
    struct sim *sim = sim_new();
    qa_sched_ent_t *e = vgpu(sim, 50, 0);
    struct tenant *a = tenant(sim, e);
    struct tenant *b = tenant(sim, e);
    run(sim, 1 * MS);
    cr_assert_eq(sim->holder, a);
    qa_sched_request(sim->s, a->p, sim->now);
    qa_sched_request(sim->s, b->p, sim->now);
    cr_assert_eq(qa_sched_ent_active(e), 2);
    cr_assert_eq(a->grants, 1);
    cr_assert_eq(qa_sched_return(sim->s, a->p, a->lease + 1, 0, false, sim->now), -ESTALE);
    cr_assert_eq(qa_sched_return(sim->s, b->p, a->lease, 0, false, sim->now), -ESTALE);
    cr_assert_eq(sim->holder, a);
    sim_destroy(sim);
}

/* `used` comes from the tenant: a huge one must not wrap the charge around. */
Test(qa_sched, a_lying_used_does_not_escape_the_limit)
{
    struct sim *sim = sim_new();
    qa_sched_ent_t *e = vgpu(sim, 10, 30);
    struct tenant *t = tenant(sim, e);
    t->ext = true;
    t->claims = UINT64_MAX; /* as an int64 charge, -1: the bucket would grow */
    run(sim, 10 * S);
    double got = pct(t->held, 10 * S);
    cr_assert_leq(got, 31, "limit 30%% gave %.2f%% to a liar", got);
    cr_assert_lt(qa_sched_deadline(sim->s) - sim->now, 100 * S, "no absurd wait either");
    sim_destroy(sim);
}

Test(qa_sched, a_lying_used_does_not_wrap_virtual_time)
{
    struct sim *sim = sim_new();
    struct tenant *liar = tenant(sim, vgpu(sim, 50, 0));
    struct tenant *honest = tenant(sim, vgpu(sim, 50, 0));
    /* x 100 / 50 wraps to a charge of 1 in virtual time */
    liar->claims = UINT64_MAX / 100 + 2;
    run(sim, 10 * S);
    double got = pct(honest->held, 10 * S);
    cr_assert_geq(got, 45, "the honest vGPU got %.2f%% beside a liar", got);
    sim_destroy(sim);
}

/* Regression (issue 8): a lone holder's extensions raised its virtual time but not the
 * GPU's virtual clock, so a vGPU idle meanwhile rejoined level with the clock of the
 * lone one's first grant and then held the GPU alone for about as long as the other had
 * run alone (the lone one, back from a short pause, kept its place). */
Test(qa_sched, a_lone_tenants_extensions_bank_no_credit_for_a_vgpu_that_was_idle)
{
    struct sim *sim = sim_new();
    struct tenant *a = tenant(sim, vgpu(sim, 50, 0));
    struct tenant *b = tenant(sim, vgpu(sim, 50, 0));
    a->ext = b->ext = true;
    run(sim, 1 * S);
    b->busy = false; /* idle from its next return on */
    run(sim, 7 * S); /* a alone for about 6 s, on one lease it extends */
    cr_assert_gt(a->exts, 100, "a kept its lease by extensions");
    a->busy = a->ext = false; /* a gives its lease back at its end: the GPU idles */
    run(sim, 7 * S + 100 * MS);
    cr_assert_null(sim->holder);
    b->busy = true; /* b comes back ... */
    b->next = sim->now;
    a->busy = a->ext = true; /* ... and a resumes after a pause shorter than a window */
    a->next = sim->now + 10 * MS;
    uint64_t before[2];
    snapshot(sim, before);
    run(sim, 9 * S + 100 * MS);
    /* the lease running now counts up to now */
    uint64_t running = sim->holder ? sim->now - sim->start : 0;
    uint64_t ga = a->held - before[0] + (sim->holder == a ? running : 0);
    uint64_t gb = b->held - before[1] + (sim->holder == b ? running : 0);
    double got = pct(gb, ga + gb);
    cr_assert(got > 40 && got < 60, "b back from idle took %.1f%% of 2 s, not its half", got);
    sim_destroy(sim);
}

/* ---- bursts and preemption (issue 13), scripted: every decision recorded ---------- */

/* A process as these tests drive it by hand. */
struct who {
    qa_sched_proc_t *p;
    uint64_t lease;      /* its latest lease */
    uint64_t ns;         /* that grant's length */
    uint64_t granted_at; /* when its latest new lease came */
    unsigned grants;     /* new leases */
    unsigned exts;       /* extensions */
    unsigned revokes;
};

struct script {
    qa_sched_t *s;
    uint64_t now;
};

static void w_grant(void *arg, void *owner, uint64_t lease, uint64_t ns)
{
    struct script *sc = arg;
    struct who *w = owner;
    if (lease == w->lease) {
        w->exts++;
    } else {
        w->grants++;
        w->granted_at = sc->now;
    }
    w->lease = lease;
    w->ns = ns;
}

static void w_revoke(void *arg, void *owner, uint64_t lease)
{
    (void)arg;
    struct who *w = owner;
    cr_assert_eq(lease, w->lease);
    w->revokes++;
}

/* The arbiter's defaults (arbiter/config.c): bursts of 2 ms for vGPUs under 75% of their
 * share, preemption after 2 ms. */
static const qa_sched_params_t live = {.window_ns = 200 * MS,
                                       .quantum_min_ns = 2 * MS,
                                       .quantum_max_ns = 50 * MS,
                                       .grace_ns = S,
                                       .burst_ns = 2 * MS,
                                       .burst_below_pct = 75,
                                       .preempt_ns = 2 * MS};

static void script_new(struct script *sc, const qa_sched_params_t *p)
{
    *sc = (struct script){0};
    qa_sched_ops_t ops = {w_grant, w_revoke, sc};
    sc->s = qa_sched_new(p, &ops);
    cr_assert_not_null(sc->s);
}

static void who_new(struct script *sc, struct who *w, qa_sched_ent_t *e)
{
    *w = (struct who){0};
    w->p = qa_sched_proc_new(sc->s, e, w);
    cr_assert_not_null(w->p);
}

/* w, holding a lease from t0, keeps it until `until` by asking for more 2 ms before each
 * end, as a flooding shim does when nobody else waits. Returns the lease's end then. */
static uint64_t hold_until(struct script *sc, struct who *w, uint64_t t0, uint64_t until)
{
    uint64_t end = t0 + w->ns;
    while (end - 2 * MS < until) {
        sc->now = end - 2 * MS;
        unsigned revokes = w->revokes;
        cr_assert_eq(qa_sched_extend(sc->s, w->p, w->lease, sc->now), 0);
        cr_assert_eq(w->revokes, revokes, "the holder was revoked at %llu ms",
                     (unsigned long long)(sc->now / MS));
        end = sc->now + w->ns;
    }
    sc->now = until;
    return end;
}

Test(qa_sched, a_vgpu_well_below_its_share_runs_beside_a_long_holder_at_once)
{
    struct script sc;
    script_new(&sc, &live);
    struct who f, i;
    qa_sched_ent_t *fe = qa_sched_ent_new(sc.s, 80, 0, 0), *ie = qa_sched_ent_new(sc.s, 20, 0, 0);
    who_new(&sc, &f, fe);
    who_new(&sc, &i, ie);
    qa_sched_request(sc.s, f.p, 0);
    cr_assert_eq(f.ns, 50 * MS, "the flooder holds a 50 ms lease");
    sc.now = 10 * MS;
    qa_sched_request(sc.s, i.p, sc.now);
    cr_assert_eq(i.grants, 1, "granted at once, not after the holder's lease");
    cr_assert_eq(i.granted_at, 10 * MS);
    cr_assert_eq(i.ns, 2 * MS, "a burst");
    cr_assert_eq(f.revokes, 0, "the holder keeps its lease");
    cr_assert_eq(qa_sched_extend(sc.s, i.p, i.lease, sc.now), 0);
    cr_assert_eq(i.exts + i.revokes, 0, "a burst is neither extended nor revoked");
    sc.now = 11 * MS + 300 * US;
    cr_assert_eq(qa_sched_return(sc.s, i.p, i.lease, 1300 * US, false, sc.now), 0);
    cr_assert_eq(qa_sched_ent_charged(ie), 1300 * US, "charged from its grant to its end");
    cr_assert_eq(qa_sched_ent_bursts(ie), 1);
    hold_until(&sc, &f, 0, 200 * MS); /* and extends as before */
    qa_sched_destroy(&sc.s);
}

/* e's use over the last window made about pct% of the GPU: it held the GPU alone for that
 * share of a window just before now, and gave it back. */
static void used_lately(struct script *sc, struct who *w, unsigned pct)
{
    qa_sched_request(sc->s, w->p, sc->now);
    cr_assert_eq(w->granted_at, sc->now, "the GPU was free");
    uint64_t held = 200 * MS * pct / 100;
    sc->now += held;
    cr_assert_eq(qa_sched_return(sc->s, w->p, w->lease, held, false, sc->now), 0);
}

Test(qa_sched, a_vgpu_near_its_share_gets_no_burst)
{
    struct script sc;
    script_new(&sc, &live);
    struct who h, e;
    qa_sched_ent_t *he = qa_sched_ent_new(sc.s, 80, 0, 0), *ee = qa_sched_ent_new(sc.s, 20, 0, 0);
    who_new(&sc, &h, he);
    who_new(&sc, &e, ee);
    used_lately(&sc, &e, 18); /* 18% of the GPU: 90% of its share */
    qa_sched_request(sc.s, h.p, sc.now);
    uint64_t t0 = sc.now;
    sc.now += 5 * MS;
    qa_sched_request(sc.s, e.p, sc.now);
    cr_assert_eq(e.grants, 1, "no burst: only its first lease");
    cr_assert_eq(h.revokes, 0, "nor does it take the GPU: the holder is under its share");
    cr_assert_eq(qa_sched_ent_bursts(ee), 0);
    sc.now = t0 + 48 * MS; /* the holder's tok_ext: e waits and goes first: revoked */
    qa_sched_extend(sc.s, h.p, h.lease, sc.now);
    cr_assert_eq(h.revokes, 1);
    qa_sched_destroy(&sc.s);
}

/* Without bursts (or when the waiting vGPU is between 75% and 100% of its share): a vGPU
 * below its share that waits has the GPU taken from a holder over its share once that
 * holder ran its minimum, 2 ms: within 2 ms of a fresh lease, at once from a long one. */
Test(qa_sched, a_waiting_vgpu_below_its_share_preempts_a_long_holder_within_the_bound)
{
    qa_sched_params_t p = live;
    p.burst_ns = 0;
    struct script sc;
    script_new(&sc, &p);
    struct who h, e;
    qa_sched_ent_t *he = qa_sched_ent_new(sc.s, 50, 0, 0), *ee = qa_sched_ent_new(sc.s, 50, 0, 0);
    who_new(&sc, &h, he);
    who_new(&sc, &e, ee);
    qa_sched_request(sc.s, h.p, 0);
    hold_until(&sc, &h, 0, 300 * MS); /* alone: 100% of the GPU, its share is 50 */
    qa_sched_request(sc.s, e.p, sc.now);
    cr_assert_eq(h.revokes, 1, "a long holder over its share is revoked at once");
    sc.now += 500 * US; /* it drains its queued work and gives back */
    cr_assert_eq(qa_sched_return(sc.s, h.p, h.lease, sc.now, true, sc.now), 0);
    cr_assert_eq(e.grants, 1);
    cr_assert_eq(e.granted_at, 300 * MS + 500 * US, "e goes next");
    /* e gives back soon; h, still over its share, is granted again, and e asks 0.5 ms
     * into that lease: h keeps it until it ran 2 ms. */
    sc.now += 1 * MS;
    cr_assert_eq(qa_sched_return(sc.s, e.p, e.lease, 1 * MS, false, sc.now), 0);
    cr_assert_eq(h.granted_at, sc.now);
    uint64_t t0 = sc.now;
    sc.now += 500 * US;
    qa_sched_request(sc.s, e.p, sc.now);
    cr_assert_eq(h.revokes, 1, "not before the holder's minimum run");
    cr_assert_eq(qa_sched_deadline(sc.s), t0 + 2 * MS, "the preemption is due then");
    sc.now = t0 + 2 * MS;
    qa_sched_tick(sc.s, sc.now);
    cr_assert_eq(h.revokes, 2, "revoked at its minimum run's end");
    qa_sched_destroy(&sc.s);
}

Test(qa_sched, a_vgpu_over_its_share_takes_nothing_from_the_holder)
{
    struct script sc;
    script_new(&sc, &live);
    struct who h, e;
    qa_sched_ent_t *he = qa_sched_ent_new(sc.s, 50, 0, 0), *ee = qa_sched_ent_new(sc.s, 10, 0, 0);
    who_new(&sc, &h, he);
    who_new(&sc, &e, ee);
    used_lately(&sc, &e, 30); /* 30% of the GPU on a share of 10 */
    qa_sched_request(sc.s, h.p, sc.now);
    uint64_t t0 = sc.now;
    uint64_t end = hold_until(&sc, &h, t0, t0 + 150 * MS); /* h is over its share too */
    qa_sched_request(sc.s, e.p, sc.now);
    cr_assert_eq(e.grants, 1, "no burst");
    cr_assert_eq(h.revokes, 0, "no preemption");
    cr_assert_eq(qa_sched_deadline(sc.s), end + S, "none due later either");
    qa_sched_destroy(&sc.s);
}

/* Two vGPUs below their share, each drawing frames of 4 ms (more than a burst) every
 * 16 ms: when one waits while the other holds, neither takes the GPU from the other: they
 * take turns, with no revoke. Bursts are off here, so that every frame needs a lease. */
Test(qa_sched, two_interactive_vgpus_never_take_the_gpu_from_each_other)
{
    qa_sched_params_t p = live;
    p.burst_ns = 0;
    struct script sc;
    script_new(&sc, &p);
    struct who a, b;
    who_new(&sc, &a, qa_sched_ent_new(sc.s, 50, 0, 0));
    who_new(&sc, &b, qa_sched_ent_new(sc.s, 50, 0, 0));
    /* b's frames start 1 ms after a's: each asks while the other holds. */
    for (uint64_t frame = 0; frame < 60; frame++) {
        uint64_t t = frame * 16 * MS;
        sc.now = t;
        qa_sched_request(sc.s, a.p, sc.now);
        sc.now = t + 1 * MS;
        qa_sched_request(sc.s, b.p, sc.now);
        cr_assert_eq(a.revokes + b.revokes, 0, "frame %llu: a revoke", (unsigned long long)frame);
        sc.now = t + 4 * MS; /* a's frame is done: b goes */
        cr_assert_eq(qa_sched_return(sc.s, a.p, a.lease, 4 * MS, false, sc.now), 0);
        cr_assert_eq(b.granted_at, sc.now);
        qa_sched_tick(sc.s, sc.now + 2 * MS);
        sc.now = t + 8 * MS;
        cr_assert_eq(qa_sched_return(sc.s, b.p, b.lease, 4 * MS, false, sc.now), 0);
    }
    cr_assert_eq(a.revokes + b.revokes, 0);
    cr_assert_eq(a.grants, 60);
    cr_assert_eq(b.grants, 60);
    qa_sched_destroy(&sc.s);
}

Test(qa_sched, a_limited_vgpu_bursts_only_when_its_bucket_holds_one_and_pays_for_it)
{
    struct script sc;
    script_new(&sc, &live);
    struct who h, e, e2;
    qa_sched_ent_t *he = qa_sched_ent_new(sc.s, 80, 0, 0), *ee = qa_sched_ent_new(sc.s, 20, 20, 0);
    who_new(&sc, &h, he);
    who_new(&sc, &e, ee);
    who_new(&sc, &e2, ee);
    qa_sched_request(sc.s, h.p, 0);
    sc.now = 1 * MS; /* a new limit's bucket starts empty: 1 ms at 20% fills 0.2 ms */
    qa_sched_request(sc.s, e.p, sc.now);
    cr_assert_eq(e.grants, 0, "no burst past its limit: it waits");
    /* 40 ms later the bucket holds 8 ms: a process asking anew bursts, from the bucket. */
    sc.now = 41 * MS;
    qa_sched_request(sc.s, e2.p, sc.now);
    cr_assert_eq(e2.grants, 1);
    cr_assert_eq(e2.ns, 2 * MS);
    sc.now += 2 * MS;
    cr_assert_eq(qa_sched_return(sc.s, e2.p, e2.lease, 2 * MS, false, sc.now), 0);
    cr_assert_eq(qa_sched_ent_charged(ee), 2 * MS);
    /* The bucket now holds 8.6 - 2 ms: a third process bursts no more than it holds. */
    struct who e3;
    who_new(&sc, &e3, ee);
    for (int k = 0; k < 3; k++) {
        qa_sched_request(sc.s, e3.p, sc.now);
        if (e3.grants == (unsigned)k)
            break;
        sc.now += 2 * MS;
        cr_assert_eq(qa_sched_return(sc.s, e3.p, e3.lease, 2 * MS, false, sc.now), 0);
    }
    cr_assert_eq(e3.grants, 3, "6.6 ms in the bucket hold three bursts of 2 ms");
    qa_sched_request(sc.s, e3.p, sc.now);
    cr_assert_eq(e3.grants, 3, "and no fourth");
    qa_sched_destroy(&sc.s);
}

Test(qa_sched, a_burst_never_given_back_is_taken_back_after_the_grace_and_charged)
{
    struct script sc;
    script_new(&sc, &live);
    struct who h, i;
    qa_sched_ent_t *he = qa_sched_ent_new(sc.s, 80, 0, 0), *ie = qa_sched_ent_new(sc.s, 20, 0, 0);
    who_new(&sc, &h, he);
    who_new(&sc, &i, ie);
    qa_sched_request(sc.s, h.p, 0);
    sc.now = 5 * MS;
    qa_sched_request(sc.s, i.p, sc.now);
    cr_assert_eq(i.grants, 1);
    cr_assert_eq(qa_sched_deadline(sc.s), 5 * MS + 2 * MS + S, "the burst's end plus the grace");
    sc.now = 5 * MS + 2 * MS + S;
    qa_sched_tick(sc.s, sc.now);
    cr_assert_eq(i.revokes, 1, "taken back");
    cr_assert_eq(qa_sched_hung(sc.s), 1);
    cr_assert_eq(qa_sched_ent_charged(ie), 2 * MS + S, "charged the whole time it kept it");
    cr_assert_eq(qa_sched_ent_active(ie), 0);
    cr_assert_eq(qa_sched_return(sc.s, i.p, i.lease, 10 * MS, false, sc.now + MS), -ESTALE);
    qa_sched_destroy(&sc.s);
}

/* 60 frames a second of 1.3 ms (the shim holds a burst that long for a 100 us kernel)
 * beside a flooder, for 2 s: every frame is granted when asked, the flooder is never
 * revoked and keeps extending, and each is charged what it held. */
Test(qa_sched, a_60_fps_tenant_beside_a_flooder_is_served_at_once_every_frame)
{
    struct script sc;
    script_new(&sc, &live);
    struct who f, i;
    qa_sched_ent_t *fe = qa_sched_ent_new(sc.s, 80, 0, 0), *ie = qa_sched_ent_new(sc.s, 20, 0, 0);
    who_new(&sc, &f, fe);
    who_new(&sc, &i, ie);
    qa_sched_request(sc.s, f.p, 0);
    uint64_t fend = f.ns, frame_ns = 16667 * US;
    unsigned frames = 0;
    for (uint64_t t = 10 * MS; t < 2 * S; t += frame_ns, frames++) {
        while (fend - 2 * MS <= t) { /* the flooder's extensions up to the frame */
            sc.now = fend - 2 * MS;
            cr_assert_eq(qa_sched_extend(sc.s, f.p, f.lease, sc.now), 0);
            fend = sc.now + f.ns;
        }
        sc.now = t;
        qa_sched_request(sc.s, i.p, sc.now);
        cr_assert_eq(i.granted_at, t, "frame %u waited", frames);
        sc.now = t + 1300 * US;
        cr_assert_eq(qa_sched_return(sc.s, i.p, i.lease, 1300 * US, false, sc.now), 0);
    }
    cr_assert_eq(f.revokes, 0);
    cr_assert_eq(f.grants, 1, "one lease, extended all along");
    cr_assert_eq(qa_sched_ent_bursts(ie), frames);
    cr_assert_eq(qa_sched_ent_charged(ie), frames * 1300 * US);
    qa_sched_destroy(&sc.s);
}

/* Tenants starting together beside a holder: each is well below its share, but only one
 * bursts at a time (beside the holder two contexts share the GPU, and both are charged in
 * full: 63 bursts at once made every one's queued work take 300 ms, charged to each). The
 * others wait, or preempt a holder over its share. */
Test(qa_sched, only_one_burst_runs_beside_the_holder_at_a_time)
{
    struct script sc;
    script_new(&sc, &live);
    struct who h, n[3];
    who_new(&sc, &h, qa_sched_ent_new(sc.s, 40, 0, 0));
    for (int k = 0; k < 3; k++)
        who_new(&sc, &n[k], qa_sched_ent_new(sc.s, 20, 0, 0));
    qa_sched_request(sc.s, h.p, 0);
    sc.now = 1 * MS;
    for (int k = 0; k < 3; k++)
        qa_sched_request(sc.s, n[k].p, sc.now);
    cr_assert_eq(n[0].grants, 1, "the first bursts");
    cr_assert_eq(n[1].grants + n[2].grants, 0, "the others do not, meanwhile");
    sc.now += 1500 * US;
    cr_assert_eq(qa_sched_return(sc.s, n[0].p, n[0].lease, 1500 * US, false, sc.now), 0);
    struct who later; /* once it ended, the next to ask bursts */
    who_new(&sc, &later, qa_sched_ent_new(sc.s, 10, 0, sc.now));
    qa_sched_request(sc.s, later.p, sc.now);
    cr_assert_eq(later.grants, 1);
    cr_assert_eq(later.ns, 2 * MS);
    qa_sched_destroy(&sc.s);
}

Test(qa_sched, a_held_vgpu_is_revoked_granted_nothing_and_competes_again_once_released)
{
    struct sim *sim = sim_new();
    qa_sched_ent_t *ea = vgpu(sim, 50, 0), *eb = vgpu(sim, 50, 0);
    struct tenant *a = tenant(sim, ea);
    struct tenant *b = tenant(sim, eb);
    run(sim, 1 * MS);
    cr_assert_eq(sim->holder, a);
    cr_assert(qa_sched_ent_holding(ea));
    qa_sched_hold(sim->s, ea, true, sim->now);
    cr_assert(sim->revoked, "its lease is revoked at once");
    run(sim, 2 * MS); /* it gives the lease back (with more), and waits */
    cr_assert(!qa_sched_ent_holding(ea), "drained");
    cr_assert(qa_sched_proc_waiting(a->p), "it still asks");
    uint64_t held_a = a->held;
    run(sim, 500 * MS);
    cr_assert_eq(a->held, held_a, "a held vGPU gets nothing, however long");
    cr_assert_geq(b->held, 440 * MS, "the other has the GPU alone (its last lease of at most 50 ms still running): %llu",
                  (unsigned long long)b->held);
    cr_assert_eq(qa_sched_deadline(sim->s), sim->holder ? sim->end + S : UINT64_MAX);
    qa_sched_hold(sim->s, ea, false, sim->now);
    uint64_t a0 = a->held, b0 = b->held;
    run(sim, 1500 * MS);
    double share_a = pct(a->held - a0, 1000 * MS), share_b = pct(b->held - b0, 1000 * MS);
    cr_assert(share_a > 45 && share_a < 55 && share_b > 45 && share_b < 55,
              "released, they split the GPU again (and a banked nothing): %.1f%% / %.1f%%",
              share_a, share_b);
    sim_destroy(sim);
}

/* A vGPU about to move (held) gets no burst beside the holder, and one that was running
 * a burst when it was held counts as holding until the burst comes back: the move waits
 * for it before it locks the process. */
Test(qa_sched, a_held_vgpu_gets_no_burst_and_its_running_burst_is_waited_for)
{
    struct script sc;
    script_new(&sc, &live);
    struct who f, i;
    qa_sched_ent_t *fe = qa_sched_ent_new(sc.s, 80, 0, 0), *ie = qa_sched_ent_new(sc.s, 20, 0, 0);
    who_new(&sc, &f, fe);
    who_new(&sc, &i, ie);
    qa_sched_request(sc.s, f.p, 0);
    sc.now = 10 * MS;
    qa_sched_request(sc.s, i.p, sc.now);
    cr_assert_eq(i.ns, 2 * MS, "a burst");
    qa_sched_hold(sc.s, ie, true, sc.now);
    cr_assert(qa_sched_ent_holding(ie), "its burst still runs: not drained yet");
    sc.now = 11 * MS;
    cr_assert_eq(qa_sched_return(sc.s, i.p, i.lease, 1 * MS, true, sc.now), 0);
    cr_assert(!qa_sched_ent_holding(ie), "drained once the burst came back");
    unsigned grants = i.grants;
    sc.now = 30 * MS;
    qa_sched_request(sc.s, i.p, sc.now);
    cr_assert_eq(i.grants, grants, "held: no burst, however far below its share");
    qa_sched_hold(sc.s, ie, false, sc.now);
    cr_assert_eq(i.grants, grants + 1, "released: it runs again");
    qa_sched_destroy(&sc.s);
}
