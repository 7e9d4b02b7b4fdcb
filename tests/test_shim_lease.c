/* test_shim_lease.c - the shim's compute lease core on a fake clock, driven as the agent
 * thread drives it: a look every millisecond (launches seen, threads waiting), the
 * arbiter's grants and revokes, drains that end when the test says, sessions that come
 * and go. The callbacks record what it decided: the gate's end, drains, messages. */
#include "shim/lease.c"

#include <criterion/criterion.h>
#include <errno.h>

#define MS 1000000ull
#define US 1000ull
#define MAXMSG 64

/* What the core decided, as the shell would carry it out. */
struct fake {
    uint64_t gate;              /* the gate's end as last set */
    int gates;                  /* gate changes */
    int drains;                 /* drains asked */
    qs_lease_msg_t out[MAXMSG]; /* messages sent, in order */
    int nout;
    int pending;   /* of them, not yet reported to the core with qs_lease_sent() */
    int send_rc;   /* what sending returns */
    qs_lease_t *l; /* the core */
    uint64_t now;  /* the fake clock */
};

static void on_gate(void *arg, uint64_t end)
{
    struct fake *f = arg;
    f->gate = end;
    f->gates++;
}

static void on_drain(void *arg)
{
    struct fake *f = arg;
    f->drains++;
}

static void on_send(void *arg, const qs_lease_msg_t *m)
{
    struct fake *f = arg;
    cr_assert_lt(f->nout, MAXMSG);
    f->out[f->nout++] = *m;
    f->pending++;
}

/* A core whose gate starts closed, as the agent's does. */
static void setup(struct fake *f)
{
    *f = (struct fake){0};
    qs_lease_ops_t ops = {on_gate, on_drain, on_send, f};
    f->l = qs_lease_new(&ops);
    cr_assert_not_null(f->l);
}

static void teardown(struct fake *f)
{
    qs_lease_destroy(&f->l);
    cr_assert_null(f->l);
}

/* The shell's flush: every message asked for is sent, with f->send_rc. */
static void flush(struct fake *f)
{
    for (int i = f->nout - f->pending; i < f->nout; i++)
        qs_lease_sent(f->l, &f->out[i], f->send_rc, f->now);
    f->pending = 0;
}

/* One look at f->now, then the flush. */
static void look(struct fake *f, bool launched, int waiting)
{
    qs_lease_look(f->l, f->now, launched, waiting);
    flush(f);
}

/* Looks every millisecond from f->now up to (not including) until, launching at each
 * when busy; f->now ends at until. */
static void run(struct fake *f, uint64_t until, bool busy, int waiting)
{
    while (f->now < until) {
        look(f, busy, waiting);
        f->now += MS;
    }
    f->now = until;
}

static int count(const struct fake *f, qs_lease_kind_t kind)
{
    int n = 0;
    for (int i = 0; i < f->nout; i++)
        n += f->out[i].kind == kind;
    return n;
}

static const qs_lease_msg_t *last(const struct fake *f)
{
    cr_assert_gt(f->nout, 0, "nothing was sent");
    return &f->out[f->nout - 1];
}

/* From nothing: a thread waits, the request goes out, lease 1 of ns arrives at f->now. */
static void granted(struct fake *f, uint64_t ns)
{
    look(f, false, 1);
    cr_assert_eq(last(f)->kind, QS_LEASE_REQ);
    qs_lease_grant(f->l, 1, ns, f->now);
    cr_assert_eq(f->gate, f->now + ns);
}

Test(shim_lease, a_waiting_launch_asks_once_and_the_grant_opens_the_gate_until_its_end)
{
    struct fake f;
    setup(&f);
    look(&f, false, 0);
    cr_assert_eq(f.nout, 0, "nobody waits: nothing is asked");
    look(&f, false, 1);
    cr_assert_eq(f.nout, 1);
    cr_assert_eq(f.out[0].kind, QS_LEASE_REQ);
    f.now = 1 * MS;
    look(&f, false, 2);
    cr_assert_eq(f.nout, 1, "asked already: the arbiter has us queued");
    cr_assert(qs_lease_active(f.l, 0), "a request is out: watch the arbiter closely");
    f.now = 2 * MS;
    qs_lease_grant(f.l, 1, 50 * MS, f.now);
    cr_assert_eq(f.gate, 52 * MS, "open until 50 ms after the grant came");
    cr_assert_eq(qs_lease_held(f.l), 1);
    teardown(&f);
}

Test(shim_lease, a_request_left_unanswered_is_sent_again_after_half_a_second)
{
    struct fake f;
    setup(&f);
    run(&f, 500 * MS, false, 1);
    cr_assert_eq(count(&f, QS_LEASE_REQ), 1, "once within 500 ms");
    look(&f, false, 1);
    cr_assert_eq(count(&f, QS_LEASE_REQ), 2, "again at 500 ms: a lost request must not hang");
    teardown(&f);
}

Test(shim_lease, a_request_that_could_not_be_sent_is_sent_at_the_next_look)
{
    struct fake f;
    setup(&f);
    f.send_rc = -ETIMEDOUT;
    look(&f, false, 1);
    f.send_rc = 0;
    f.now = MS;
    look(&f, false, 1);
    cr_assert_eq(count(&f, QS_LEASE_REQ), 2);
    f.now = 2 * MS;
    look(&f, false, 1);
    cr_assert_eq(count(&f, QS_LEASE_REQ), 2, "the second went out: no third");
    teardown(&f);
}

Test(shim_lease, a_busy_process_asks_for_more_2_ms_before_the_end_once_per_grant)
{
    struct fake f;
    setup(&f);
    granted(&f, 10 * MS);
    run(&f, 8 * MS, true, 0);
    cr_assert_eq(count(&f, QS_LEASE_EXT), 0, "not before 2 ms from the end");
    run(&f, 9 * MS, true, 0);
    cr_assert_eq(count(&f, QS_LEASE_EXT), 1);
    cr_assert_eq(last(&f)->lease, 1);
    qs_lease_grant(f.l, 1, 10 * MS, f.now);
    cr_assert_eq(f.gate, 19 * MS, "the extension moves the end");
    run(&f, 18 * MS, true, 0);
    cr_assert_eq(count(&f, QS_LEASE_EXT), 2, "asked again for the new end, once");
    cr_assert_eq(f.drains, 0, "busy all along: no idle check");
    teardown(&f);
}

Test(shim_lease, a_thread_waiting_at_the_end_asks_for_more_even_without_launches)
{
    struct fake f;
    setup(&f);
    granted(&f, 10 * MS);
    f.now = 8 * MS;
    look(&f, false, 1);
    cr_assert_eq(count(&f, QS_LEASE_EXT), 1);
    teardown(&f);
}

Test(shim_lease, an_idle_process_gives_the_lease_back_charged_until_its_work_ended)
{
    struct fake f;
    setup(&f);
    granted(&f, 50 * MS);
    f.now = 1 * MS;
    look(&f, true, 0); /* the last launch */
    f.now = 2 * MS;
    look(&f, false, 0);
    cr_assert_eq(f.drains, 0, "1 ms without a launch is not idle yet");
    f.now = 3 * MS;
    look(&f, false, 0);
    cr_assert_eq(f.drains, 1, "2 ms without a launch: is anything still queued?");
    cr_assert_eq(f.gate, 50 * MS, "the gate stays open while checking");
    qs_lease_drained(f.l, 3 * MS + 20 * US, 20 * US);
    f.now = 4 * MS;
    look(&f, false, 0);
    cr_assert_eq(f.gate, 0, "nothing queued: the gate closes");
    cr_assert_eq(f.drains, 2, "and the work launched before the close is waited for");
    cr_assert_eq(count(&f, QS_LEASE_RET), 0, "not given back before that drain ends");
    qs_lease_drained(f.l, 4 * MS + 30 * US, 30 * US);
    f.now = 5 * MS;
    look(&f, false, 0);
    cr_assert_eq(count(&f, QS_LEASE_RET), 1);
    cr_assert_eq(last(&f)->lease, 1);
    cr_assert_eq(last(&f)->used, 4 * MS + 30 * US, "from the grant to the end of its work");
    cr_assert_not(last(&f)->more);
    cr_assert_eq(qs_lease_held(f.l), 0);
    cr_assert_not(qs_lease_active(f.l, 0), "idle: nothing to watch");
    teardown(&f);
}

Test(shim_lease, a_drain_that_lasts_shows_queued_work_and_the_lease_is_kept)
{
    struct fake f;
    setup(&f);
    granted(&f, 50 * MS);
    f.now = 2 * MS;
    look(&f, false, 0);
    cr_assert_eq(f.drains, 1);
    /* The process queued deep and waits for the result: the drain takes 5 ms. */
    qs_lease_drained(f.l, 7 * MS, 5 * MS);
    f.now = 7 * MS;
    look(&f, false, 0);
    cr_assert_eq(f.gate, 50 * MS, "busy, not idle: the lease stays");
    cr_assert_eq(count(&f, QS_LEASE_RET), 0);
    run(&f, 9 * MS, false, 0);
    cr_assert_eq(f.drains, 1, "idle counts from the end of that work");
    look(&f, false, 0);
    cr_assert_eq(f.drains, 2, "2 ms after it, checked again");
    teardown(&f);
}

Test(shim_lease, a_launch_during_the_idle_check_keeps_the_lease)
{
    struct fake f;
    setup(&f);
    granted(&f, 50 * MS);
    f.now = 2 * MS;
    look(&f, false, 0);
    cr_assert_eq(f.drains, 1);
    f.now = 3 * MS;
    look(&f, true, 0);
    qs_lease_drained(f.l, 3 * MS, 10 * US);
    f.now = 4 * MS;
    look(&f, false, 0);
    cr_assert_eq(f.gate, 50 * MS);
    cr_assert_eq(count(&f, QS_LEASE_RET), 0);
    teardown(&f);
}

Test(shim_lease, idle_is_at_most_a_quarter_of_a_short_lease)
{
    struct fake f;
    setup(&f);
    granted(&f, 2 * MS);
    f.now = 500 * US;
    look(&f, false, 0);
    cr_assert_eq(f.drains, 1, "a 2 ms lease is idle after 0.5 ms");
    teardown(&f);
}

Test(shim_lease, a_revoke_closes_the_gate_at_once_and_the_lease_goes_back_after_the_drain)
{
    struct fake f;
    setup(&f);
    granted(&f, 50 * MS);
    run(&f, 10 * MS, true, 0);
    qs_lease_revoke(f.l, 1);
    cr_assert_eq(f.gate, 0, "no more submissions from the revoke on");
    look(&f, false, 2);
    cr_assert_eq(f.drains, 1);
    qs_lease_drained(f.l, 12 * MS, 2 * MS);
    f.now = 12 * MS;
    look(&f, false, 2);
    cr_assert_eq(last(&f)->kind, QS_LEASE_RET);
    cr_assert_eq(last(&f)->used, 12 * MS, "the drain of queued work is charged to its owner");
    cr_assert(last(&f)->more, "threads wait: queue it again");
    f.now = 13 * MS;
    look(&f, false, 2);
    cr_assert_eq(count(&f, QS_LEASE_REQ), 1, "the return with more asked already");
    teardown(&f);
}

Test(shim_lease, a_revoke_of_a_lease_not_held_changes_nothing)
{
    struct fake f;
    setup(&f);
    qs_lease_revoke(f.l, 1);
    cr_assert_eq(f.gates, 0);
    granted(&f, 50 * MS);
    qs_lease_revoke(f.l, 7);
    cr_assert_eq(f.gate, 50 * MS);
    teardown(&f);
}

Test(shim_lease, at_its_end_the_lease_goes_back_with_more_when_launches_were_recent)
{
    struct fake f;
    setup(&f);
    granted(&f, 10 * MS);
    run(&f, 10 * MS, true, 0); /* its tok_ext at 8 ms is not granted */
    look(&f, false, 0);
    cr_assert_eq(f.gate, 0, "the end closes the gate");
    cr_assert_eq(f.drains, 1);
    qs_lease_drained(f.l, 10 * MS + 500 * US, 500 * US);
    f.now = 11 * MS;
    look(&f, false, 0);
    cr_assert_eq(last(&f)->kind, QS_LEASE_RET);
    cr_assert_eq(last(&f)->used, 10 * MS + 500 * US);
    cr_assert(last(&f)->more, "it launched until 1.5 ms before its work ended: it has more");
    teardown(&f);
}

Test(shim_lease, a_grant_answering_an_extension_that_crossed_the_return_is_dropped)
{
    struct fake f;
    setup(&f);
    granted(&f, 10 * MS);
    run(&f, 10 * MS, true, 0);
    cr_assert_eq(count(&f, QS_LEASE_EXT), 1);
    look(&f, false, 0); /* the end: closing, draining */
    qs_lease_grant(f.l, 1, 10 * MS, f.now);
    cr_assert_eq(f.gate, 0, "the extension came too late: the gate stays closed");
    qs_lease_drained(f.l, 10 * MS, 0);
    look(&f, false, 1);
    cr_assert_eq(last(&f)->kind, QS_LEASE_RET);
    cr_assert(last(&f)->more);
    /* The arbiter's answer to that tok_ext, sent before it saw our tok_ret: lease 1 again. */
    qs_lease_grant(f.l, 1, 10 * MS, f.now);
    cr_assert_eq(f.gate, 0, "a lease already given back is not taken again");
    cr_assert_eq(qs_lease_held(f.l), 0);
    qs_lease_grant(f.l, 2, 10 * MS, f.now);
    cr_assert_eq(f.gate, f.now + 10 * MS, "the next lease is");
    teardown(&f);
}

Test(shim_lease, a_new_session_forgets_the_lease_and_closes_the_gate)
{
    struct fake f;
    setup(&f);
    granted(&f, 50 * MS);
    qs_lease_grant(f.l, 1, 50 * MS, f.now);
    run(&f, 5 * MS, true, 0);
    qs_lease_session(f.l); /* the arbiter restarted: its leases are gone */
    cr_assert_eq(f.gate, 0);
    cr_assert_eq(qs_lease_held(f.l), 0);
    look(&f, false, 1);
    cr_assert_eq(count(&f, QS_LEASE_REQ), 2, "a waiting thread asks the new arbiter");
    cr_assert_eq(count(&f, QS_LEASE_RET), 0, "the old lease is not given back to it");
    qs_lease_grant(f.l, 1, 20 * MS, f.now);
    cr_assert_eq(f.gate, f.now + 20 * MS, "numbers start over in a new session");
    teardown(&f);
}

Test(shim_lease, a_drain_under_way_when_the_session_ends_is_not_acted_on)
{
    struct fake f;
    setup(&f);
    granted(&f, 50 * MS);
    f.now = 2 * MS;
    look(&f, false, 0);
    cr_assert_eq(f.drains, 1);
    qs_lease_session(f.l);
    qs_lease_drained(f.l, 3 * MS, 10 * US);
    f.now = 3 * MS;
    look(&f, false, 0);
    cr_assert_eq(f.nout, 1, "nothing to give back: only the first request was sent");
    teardown(&f);
}

Test(shim_lease, an_unreachable_arbiter_opens_the_gate_until_it_answers_again)
{
    struct fake f;
    setup(&f);
    granted(&f, 50 * MS);
    run(&f, 5 * MS, true, 0);
    qs_lease_unreachable(f.l); /* killed: nobody would grant a lease, nobody must wait */
    cr_assert_eq(f.gate, QS_LEASE_FREE);
    cr_assert_eq(qs_lease_held(f.l), 0);
    qs_lease_reached(f.l); /* back: launches wait for leases again */
    cr_assert_eq(f.gate, 0);
    look(&f, false, 1);
    cr_assert_eq(last(&f)->kind, QS_LEASE_REQ);
    qs_lease_grant(f.l, 1, 10 * MS, f.now);
    cr_assert_eq(f.gate, f.now + 10 * MS);
    qs_lease_reached(f.l);
    cr_assert_eq(f.gate, f.now + 10 * MS, "an answer while a lease is held changes nothing");
    teardown(&f);
}

Test(shim_lease, an_arbiter_that_grants_no_leases_leaves_launches_ungated_for_its_session)
{
    struct fake f;
    setup(&f);
    cr_assert_not(qs_lease_refused(f.l), "an error with nothing asked is not about leases");
    look(&f, false, 1);
    cr_assert(qs_lease_refused(f.l));
    cr_assert_eq(f.gate, QS_LEASE_FREE);
    cr_assert_not(qs_lease_active(f.l, 3), "nothing to watch");
    run(&f, 600 * MS, false, 3);
    cr_assert_eq(count(&f, QS_LEASE_REQ), 1, "not asked again in that session");
    qs_lease_reached(f.l);
    cr_assert_eq(f.gate, QS_LEASE_FREE, "answers do not close it");
    qs_lease_session(f.l); /* a new arbiter may grant leases */
    cr_assert_eq(f.gate, 0);
    look(&f, false, 1);
    cr_assert_eq(count(&f, QS_LEASE_REQ), 2);
    teardown(&f);
}

Test(shim_lease, a_grant_longer_than_a_minute_is_taken_as_a_minute)
{
    struct fake f;
    setup(&f);
    look(&f, false, 1);
    qs_lease_grant(f.l, 1, UINT64_MAX / 2, f.now);
    cr_assert_eq(f.gate, 60000 * MS);
    qs_lease_grant(f.l, 0, MS, f.now);
    cr_assert_eq(f.gate, 60000 * MS, "lease 0 is no lease");
    teardown(&f);
}
