/* test_arbiter_peer.c - the peer table and its admission policy, on a fake clock:
 * pending connections are limited in all and per uid, a flood from one uid makes room
 * for others, sessions never yield, and the oldest pending peer is the one to time out. */
#include "arbiter/peer.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MS 1000000ull

struct table {
    qa_peers_t *t;
    qa_peer_t peers[64];
    int n;
};

static struct table *table(size_t conns, size_t pending, size_t per_uid)
{
    struct table *x = calloc(1, sizeof *x);
    qa_admission_t lim = {conns, pending, per_uid, "test", "test"};
    x->t = qa_peers_new(&lim);
    cr_assert_not_null(x->t);
    return x;
}

static void remove_it(void *arg, qa_peer_t *p)
{
    qa_peers_remove(arg, p);
}

static void table_free(struct table *x)
{
    qa_peers_each(x->t, remove_it, x->t);
    cr_assert_eq(qa_peers_count(x->t), 0);
    cr_assert_eq(qa_peers_pending(x->t), 0);
    qa_peers_destroy(&x->t);
    cr_assert_null(x->t);
    free(x);
}

/* Admits a connection of uid at ms as the table decides; returns the decision, the
 * peer added (NULL when refused) and the one evicted (removed here) in *evicted. */
static qa_admit_t connect_as(struct table *x, uid_t uid, uint64_t ms, qa_peer_t **added,
                             qa_peer_t **evicted)
{
    qa_peer_t *evict = NULL;
    qa_admit_t d = qa_peers_admit(x->t, uid, uid == 0, &evict);
    if (evicted)
        *evicted = evict;
    if (evict)
        qa_peers_remove(x->t, evict);
    qa_peer_t *p = NULL;
    if (d == QA_ADMIT) {
        p = &x->peers[x->n++];
        memset(p, 0, sizeof *p);
        p->cred_uid = uid;
        cr_assert_eq(qa_peers_add(x->t, p, ms * MS), 0);
    }
    if (added)
        *added = p;
    return d;
}

Test(qa_peers, a_uid_gets_at_most_its_pending_connections_and_others_still_get_in)
{
    struct table *x = table(20, 10, 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(connect_as(x, 65534, 1, NULL, NULL), QA_ADMIT);
    cr_assert_eq(connect_as(x, 65534, 2, NULL, NULL), QA_REFUSE_UID);
    cr_assert_eq(qa_peers_pending_of(x->t, 65534), 3);
    cr_assert_eq(connect_as(x, 1000, 3, NULL, NULL), QA_ADMIT, "another uid is not held back");
    cr_assert_eq(connect_as(x, 0, 3, NULL, NULL), QA_ADMIT);
    for (int i = 0; i < 5; i++) /* root is exempt from the limit per uid */
        cr_assert_eq(connect_as(x, 0, 4, NULL, NULL), QA_ADMIT);
    cr_assert_eq(qa_peers_pending(x->t), 10);
    cr_assert_eq(qa_peers_count(x->t), 10);
    table_free(x);
}

Test(qa_peers, a_session_stops_being_pending_and_is_never_evicted)
{
    struct table *x = table(4, 4, 0);
    qa_peer_t *a, *b;
    connect_as(x, 1000, 1, &a, NULL);
    connect_as(x, 1000, 2, &b, NULL);
    cr_assert_eq(qa_peers_set_session(x->t, a, true, 3 * MS), 0);
    cr_assert_eq(qa_peers_set_session(x->t, b, true, 3 * MS), 0);
    cr_assert_eq(qa_peers_pending(x->t), 0);
    cr_assert_eq(qa_peers_pending_of(x->t, 1000), 0);
    cr_assert_null(qa_peers_oldest_pending(x->t));
    connect_as(x, 65534, 4, NULL, NULL);
    connect_as(x, 65534, 5, NULL, NULL);
    /* full of two sessions and two pending of nobody: nobody's own third cannot evict
     * its own, and sessions never yield */
    qa_peer_t *evicted;
    cr_assert_eq(connect_as(x, 65534, 6, NULL, &evicted), QA_REFUSE_FULL);
    cr_assert_null(evicted);
    /* a uid with none pending takes the place of nobody's oldest */
    qa_peer_t *c;
    cr_assert_eq(connect_as(x, 2000, 7, &c, &evicted), QA_ADMIT);
    cr_assert_not_null(evicted);
    cr_assert_eq(evicted->cred_uid, 65534);
    cr_assert_eq(evicted->pending_since, 4 * MS, "the oldest of the heaviest uid");
    cr_assert_eq(qa_peers_count(x->t), 4);
    table_free(x);
}

Test(qa_peers, a_flood_from_one_uid_yields_to_a_uid_with_fewer_pending)
{
    struct table *x = table(100, 6, 0);
    for (int i = 0; i < 5; i++)
        connect_as(x, 65534, (uint64_t)i, NULL, NULL);
    connect_as(x, 1000, 10, NULL, NULL);
    cr_assert_eq(qa_peers_pending(x->t), 6);
    /* uid 1000 holds 1, nobody 5: 1000 may take one of nobody's, twice over (5 >= 1+2,
     * then 4 >= 2+2), but not a third time (3 < 3+2) */
    qa_peer_t *evicted;
    cr_assert_eq(connect_as(x, 1000, 11, NULL, &evicted), QA_ADMIT);
    cr_assert_eq(evicted->pending_since, 0, "nobody's oldest");
    cr_assert_eq(connect_as(x, 1000, 12, NULL, &evicted), QA_ADMIT);
    cr_assert_eq(evicted->pending_since, 1 * MS);
    cr_assert_eq(connect_as(x, 1000, 13, NULL, &evicted), QA_REFUSE_FULL);
    cr_assert_eq(qa_peers_pending_of(x->t, 65534), 3);
    cr_assert_eq(qa_peers_pending_of(x->t, 1000), 3);
    table_free(x);
}

Test(qa_peers, when_every_uid_holds_one_the_oldest_yields_to_a_new_uid)
{
    struct table *x = table(100, 3, 0);
    connect_as(x, 1, 1, NULL, NULL);
    connect_as(x, 2, 2, NULL, NULL);
    connect_as(x, 3, 3, NULL, NULL);
    qa_peer_t *evicted;
    cr_assert_eq(connect_as(x, 4, 4, NULL, &evicted), QA_ADMIT);
    cr_assert_eq(evicted->cred_uid, 1);
    cr_assert_eq(connect_as(x, 4, 5, NULL, &evicted), QA_REFUSE_FULL, "uid 4 has its one");
    table_free(x);
}

Test(qa_peers, the_oldest_pending_peer_comes_first_and_a_lost_session_starts_over)
{
    struct table *x = table(10, 10, 0);
    qa_peer_t *a, *b, *c;
    connect_as(x, 1, 1, &a, NULL);
    connect_as(x, 2, 2, &b, NULL);
    connect_as(x, 3, 3, &c, NULL);
    cr_assert_eq(qa_peers_oldest_pending(x->t), a);
    cr_assert_eq(qa_peers_set_session(x->t, a, true, 4 * MS), 0);
    cr_assert_eq(qa_peers_oldest_pending(x->t), b);
    qa_peers_remove(x->t, b);
    cr_assert_eq(qa_peers_oldest_pending(x->t), c);
    cr_assert_eq(qa_peers_set_session(x->t, a, false, 9 * MS), 0);
    cr_assert_eq(a->pending_since, 9 * MS);
    qa_peers_remove(x->t, c);
    cr_assert_eq(qa_peers_oldest_pending(x->t), a);
    cr_assert_eq(qa_peers_count(x->t), 1);
    qa_peers_remove(x->t, a);
    cr_assert_eq(qa_peers_count(x->t), 0);
    cr_assert_eq(qa_peers_pending(x->t), 0);
    qa_peers_destroy(&x->t);
    free(x);
}

static void count(void *arg, qa_peer_t *p)
{
    (void)p;
    (*(int *)arg)++;
}

struct remover {
    qa_peers_t *t;
    int seen;
};

static void remove_odd_uids(void *arg, qa_peer_t *p)
{
    struct remover *r = arg;
    r->seen++;
    if (p->cred_uid % 2)
        qa_peers_remove(r->t, p);
}

Test(qa_peers, each_visits_every_peer_and_lets_the_visited_one_go)
{
    struct table *x = table(100, 100, 0);
    for (uid_t u = 0; u < 40; u++)
        connect_as(x, u, u, NULL, NULL);
    struct remover r = {x->t, 0};
    qa_peers_each(x->t, remove_odd_uids, &r);
    cr_assert_eq(r.seen, 40);
    int n = 0;
    qa_peers_each(x->t, count, &n);
    cr_assert_eq(n, 20);
    cr_assert_eq(qa_peers_pending(x->t), 20);
    cr_assert_eq(qa_peers_pending_of(x->t, 3), 0);
    cr_assert_eq(qa_peers_pending_of(x->t, 4), 1);
    for (int i = 0; i < x->n; i++)
        if (x->peers[i].cred_uid % 2 == 0)
            qa_peers_remove(x->t, &x->peers[i]);
    cr_assert_eq(qa_peers_count(x->t), 0);
    qa_peers_destroy(&x->t);
    free(x);
}
