/* test_arbiter_peer.c - peers by routing id and by connection fd. */
#include "arbiter/peer.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static void count(void *arg, qa_peer_t *p)
{
    (void)p;
    (*(int *)arg)++;
}

static void remove_odd(void *arg, qa_peer_t *p)
{
    if (p->rid[0] % 2)
        qa_peers_remove(arg, p);
}

Test(qa_peers, finds_by_routing_id_and_fd_and_survives_growth)
{
    qa_peers_t *t = qa_peers_new();
    char rid[8];
    for (int i = 0; i < 1000; i++) {
        snprintf(rid, sizeof rid, "%c%05d", (char)(i % 2), i);
        qa_peer_t *p = qa_peers_add(t, rid, 6);
        cr_assert_not_null(p);
        cr_assert_eq(p->fd, -1);
        cr_assert_eq(qa_peers_bind_fd(t, p, 10 + i), 0);
    }
    int all = 0;
    qa_peers_each(t, count, &all);
    cr_assert_eq(all, 1000);
    snprintf(rid, sizeof rid, "%c%05d", 1, 777);
    qa_peer_t *p = qa_peers_find(t, rid, 6);
    cr_assert_not_null(p);
    cr_assert_eq(p->fd, 787);
    cr_assert_eq(qa_peers_by_fd(t, 787), p);
    cr_assert_null(qa_peers_find(t, rid, 5), "the length is part of the id");
    cr_assert_null(qa_peers_by_fd(t, 5000));
    cr_assert_null(qa_peers_by_fd(t, -1));
    int n = 0;
    qa_peers_each(t, remove_odd, t);
    qa_peers_each(t, count, &n);
    cr_assert_eq(n, 500);
    cr_assert_null(qa_peers_find(t, rid, 6));
    cr_assert_null(qa_peers_by_fd(t, 787), "a removed peer leaves the fd map");
    qa_peers_destroy(&t);
    cr_assert_null(t);
}

Test(qa_peers, rebinding_an_fd_moves_it)
{
    qa_peers_t *t = qa_peers_new();
    qa_peer_t *a = qa_peers_add(t, "a", 1), *b = qa_peers_add(t, "b", 1);
    qa_peers_bind_fd(t, a, 7);
    qa_peers_bind_fd(t, a, 9);
    cr_assert_null(qa_peers_by_fd(t, 7));
    cr_assert_eq(qa_peers_by_fd(t, 9), a);
    qa_peers_bind_fd(t, b, 7);
    cr_assert_eq(qa_peers_by_fd(t, 7), b);
    char big[QA_RID_MAX + 1] = {0};
    cr_assert_null(qa_peers_add(t, big, sizeof big), "routing ids are at most 255 bytes");
    qa_peers_destroy(&t);
}

Test(qa_peers, counts_open_connections_and_remembers_closed_fds_and_orders_routing_ids)
{
    qa_peers_t *t = qa_peers_new();
    cr_assert_not(qa_peers_fd_closed(t, 12));
    cr_assert_eq(qa_peers_fd_accepted(t, 12), 0);
    cr_assert_eq(qa_peers_fd_accepted(t, 300), 0);
    cr_assert_eq(qa_peers_live(t), 2);
    cr_assert_not(qa_peers_fd_closed(t, 12));
    qa_peers_fd_disconnected(t, 12);
    cr_assert(qa_peers_fd_closed(t, 12));
    cr_assert_eq(qa_peers_live(t), 1);
    qa_peers_fd_disconnected(t, 12);
    cr_assert_eq(qa_peers_live(t), 1, "a second close of one connection counts once");
    qa_peers_fd_disconnected(t, 40);
    cr_assert_eq(qa_peers_live(t), 1, "a close of a connection never seen open counts none");
    cr_assert_eq(qa_peers_fd_accepted(t, 12), 0, "a new connection took it");
    cr_assert_not(qa_peers_fd_closed(t, 12));
    cr_assert_eq(qa_peers_live(t), 2);
    cr_assert_not(qa_peers_fd_closed(t, -1));
    cr_assert_eq(qa_peers_fd_accepted(t, -1), -EINVAL);
    /* libzmq's own ids: 0x00 and a big-endian counter */
    qa_peer_t *old = qa_peers_add(t, "\x00\x6b\x8b\x45\xff", 5);
    qa_peer_t *new = qa_peers_add(t, "\x00\x6b\x8b\x46\x00", 5);
    cr_assert(qa_rid_newer(new, old));
    cr_assert_not(qa_rid_newer(old, new));
    cr_assert_not(qa_rid_newer(old, old));
    qa_peers_bind_fd(t, old, 12);
    qa_peers_unbind_fd(t, old);
    cr_assert_eq(old->fd, -1);
    cr_assert_null(qa_peers_by_fd(t, 12));
    qa_peers_destroy(&t);
}
