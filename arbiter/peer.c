/* peer.c - peers by routing id (chained hash table) and by fd (array). Loop thread. */
#include "arbiter/peer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct qa_peers {
    qa_peer_t **buckets; /* owned array; chains own their peers */
    size_t nbuckets;     /* a power of two */
    size_t count;        /* peers in the table */
    qa_peer_t **by_fd;   /* owned array of borrowed peers, indexed by fd */
    uint8_t *state;      /* owned, indexed by fd: enum fd_state of the last connection */
    size_t nfd;          /* entries in by_fd and state */
    size_t live;         /* connections accepted and not closed since */
};

/* What the socket monitor last said about the connection on an fd. */
enum fd_state { FD_UNSEEN, FD_OPEN, FD_CLOSED };

/* FNV-1a: routing ids are short (5 bytes by default) and not chosen by attackers in a
 * way that matters: a tenant can only connect more times, which costs it as much. */
static size_t hash(const uint8_t *p, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return (size_t)h;
}

qa_peers_t *qa_peers_new(void)
{
    qa_peers_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->nbuckets = 64;
    self->buckets = calloc(self->nbuckets, sizeof *self->buckets);
    if (!self->buckets) {
        free(self);
        return NULL;
    }
    return self;
}

void qa_peers_destroy(qa_peers_t **self_p)
{
    qa_peers_t *self = *self_p;
    if (!self)
        return;
    for (size_t b = 0; b < self->nbuckets; b++) {
        qa_peer_t *p = self->buckets[b];
        while (p) {
            qa_peer_t *next = p->hnext;
            free(p);
            p = next;
        }
    }
    free(self->buckets);
    free(self->by_fd);
    free(self->state);
    free(self);
    *self_p = NULL;
}

size_t qa_peers_live(const qa_peers_t *self)
{
    return self->live;
}

qa_peer_t *qa_peers_find(qa_peers_t *self, const void *rid, size_t len)
{
    qa_peer_t *p = self->buckets[hash(rid, len) & (self->nbuckets - 1)];
    while (p && (p->rid_len != len || memcmp(p->rid, rid, len) != 0))
        p = p->hnext;
    return p;
}

/* Doubles the buckets when the table is full; a failed grow only costs speed. */
static void grow(qa_peers_t *self)
{
    size_t n = self->nbuckets * 2;
    qa_peer_t **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < self->nbuckets; i++) {
        qa_peer_t *p = self->buckets[i];
        while (p) {
            qa_peer_t *next = p->hnext;
            size_t h = hash(p->rid, p->rid_len) & (n - 1);
            p->hnext = b[h];
            b[h] = p;
            p = next;
        }
    }
    free(self->buckets);
    self->buckets = b;
    self->nbuckets = n;
}

qa_peer_t *qa_peers_add(qa_peers_t *self, const void *rid, size_t len)
{
    if (len > QA_RID_MAX)
        return NULL;
    if (self->count >= self->nbuckets)
        grow(self);
    qa_peer_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    memcpy(p->rid, rid, len);
    p->rid_len = len;
    p->fd = -1;
    size_t h = hash(rid, len) & (self->nbuckets - 1);
    p->hnext = self->buckets[h];
    self->buckets[h] = p;
    self->count++;
    return p;
}

void qa_peers_remove(qa_peers_t *self, qa_peer_t *p)
{
    qa_peer_t **pp = &self->buckets[hash(p->rid, p->rid_len) & (self->nbuckets - 1)];
    while (*pp && *pp != p)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = p->hnext;
    if (p->fd >= 0 && (size_t)p->fd < self->nfd && self->by_fd[p->fd] == p)
        self->by_fd[p->fd] = NULL;
    self->count--;
    free(p);
}

qa_peer_t *qa_peers_by_fd(qa_peers_t *self, int fd)
{
    return fd >= 0 && (size_t)fd < self->nfd ? self->by_fd[fd] : NULL;
}

/* Makes the fd arrays hold fd. */
static int grow_fds(qa_peers_t *self, int fd)
{
    if ((size_t)fd < self->nfd)
        return 0;
    size_t n = self->nfd ? self->nfd : 64;
    while (n <= (size_t)fd)
        n *= 2;
    qa_peer_t **a = realloc(self->by_fd, n * sizeof *a);
    if (!a)
        return -ENOMEM;
    self->by_fd = a;
    uint8_t *c = realloc(self->state, n * sizeof *c);
    if (!c)
        return -ENOMEM;
    self->state = c;
    memset(a + self->nfd, 0, (n - self->nfd) * sizeof *a);
    memset(c + self->nfd, 0, (n - self->nfd) * sizeof *c);
    self->nfd = n;
    return 0;
}

int qa_peers_bind_fd(qa_peers_t *self, qa_peer_t *p, int fd)
{
    if (fd < 0)
        return 0;
    if (grow_fds(self, fd) < 0)
        return -ENOMEM;
    qa_peers_unbind_fd(self, p);
    self->by_fd[fd] = p;
    p->fd = fd;
    return 0;
}

void qa_peers_unbind_fd(qa_peers_t *self, qa_peer_t *p)
{
    if (p->fd >= 0 && (size_t)p->fd < self->nfd && self->by_fd[p->fd] == p)
        self->by_fd[p->fd] = NULL;
    p->fd = -1;
}

int qa_peers_fd_accepted(qa_peers_t *self, int fd)
{
    if (fd < 0)
        return -EINVAL;
    if (grow_fds(self, fd) < 0)
        return -ENOMEM;
    if (self->state[fd] != FD_OPEN)
        self->live++;
    self->state[fd] = FD_OPEN;
    return 0;
}

void qa_peers_fd_disconnected(qa_peers_t *self, int fd)
{
    if (fd < 0)
        return;
    if (grow_fds(self, fd) < 0) {
        /* Never seen open (its array would hold it): nothing to count down. A message
         * of that connection is then taken for a live one's, which the heartbeat
         * timeout or idleness ends. */
        return;
    }
    if (self->state[fd] == FD_OPEN)
        self->live--;
    self->state[fd] = FD_CLOSED;
}

bool qa_peers_fd_closed(const qa_peers_t *self, int fd)
{
    return fd >= 0 && (size_t)fd < self->nfd && self->state[fd] == FD_CLOSED;
}

bool qa_rid_newer(const qa_peer_t *a, const qa_peer_t *b)
{
    if (a->rid_len != b->rid_len)
        return a->rid_len > b->rid_len;
    return memcmp(a->rid, b->rid, a->rid_len) > 0;
}

void qa_peers_each(qa_peers_t *self, void (*fn)(void *arg, qa_peer_t *p), void *arg)
{
    for (size_t b = 0; b < self->nbuckets; b++) {
        qa_peer_t *p = self->buckets[b];
        while (p) {
            qa_peer_t *next = p->hnext; /* fn may free p */
            fn(arg, p);
            p = next;
        }
    }
}
