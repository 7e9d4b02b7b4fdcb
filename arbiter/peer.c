/* peer.c - the peer table: every peer in a list, pending ones in arrival order in all and
 * per uid, and the admission decision. Pure; the loop thread (see peer.h). */
#include "arbiter/peer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define UID_BUCKETS 256 /* a power of two; few uids have connections pending at once */

/* One uid with pending connections. */
struct uid_slot {
    uid_t uid;
    size_t pending;          /* its pending peers */
    qa_peer_t *first, *last; /* those peers, oldest first (uid_prev/uid_next) */
    struct uid_slot *next;   /* hash chain */
};

struct qa_peers {
    qa_admission_t lim;
    qa_peer_t *first, *last;            /* every peer, oldest first */
    size_t count;                       /* peers in the table */
    qa_peer_t *wait_first, *wait_last;  /* pending peers, oldest first */
    size_t pending;                     /* pending peers */
    struct uid_slot *uids[UID_BUCKETS]; /* owned: slots of uids with pending peers */
};

/* Links node at the end of a list through the member pair named by prev/next. */
#define LIST_APPEND(first, last, node, prev, next)                                                 \
    do {                                                                                           \
        (node)->prev = (last);                                                                     \
        (node)->next = NULL;                                                                       \
        if (last)                                                                                  \
            (last)->next = (node);                                                                 \
        else                                                                                       \
            (first) = (node);                                                                      \
        (last) = (node);                                                                           \
    } while (0)

#define LIST_UNLINK(first, last, node, prev, next)                                                 \
    do {                                                                                           \
        if ((node)->prev)                                                                          \
            (node)->prev->next = (node)->next;                                                     \
        else                                                                                       \
            (first) = (node)->next;                                                                \
        if ((node)->next)                                                                          \
            (node)->next->prev = (node)->prev;                                                     \
        else                                                                                       \
            (last) = (node)->prev;                                                                 \
        (node)->prev = (node)->next = NULL;                                                        \
    } while (0)

static size_t uid_hash(uid_t uid)
{
    return ((size_t)uid * 2654435761u) & (UID_BUCKETS - 1);
}

static struct uid_slot *find_slot(const qa_peers_t *self, uid_t uid)
{
    struct uid_slot *s = self->uids[uid_hash(uid)];
    while (s && s->uid != uid)
        s = s->next;
    return s;
}

qa_peers_t *qa_peers_new(const qa_admission_t *lim)
{
    qa_peers_t *self = calloc(1, sizeof *self);
    if (self)
        self->lim = *lim;
    return self;
}

void qa_peers_destroy(qa_peers_t **self_p)
{
    qa_peers_t *self = *self_p;
    if (!self)
        return;
    for (size_t b = 0; b < UID_BUCKETS; b++) {
        while (self->uids[b]) {
            struct uid_slot *s = self->uids[b];
            self->uids[b] = s->next;
            free(s);
        }
    }
    free(self);
    *self_p = NULL;
}

void qa_peers_set_limits(qa_peers_t *self, const qa_admission_t *lim)
{
    self->lim = *lim;
}

const qa_admission_t *qa_peers_limits(const qa_peers_t *self)
{
    return &self->lim;
}

size_t qa_peers_count(const qa_peers_t *self)
{
    return self->count;
}

size_t qa_peers_pending(const qa_peers_t *self)
{
    return self->pending;
}

size_t qa_peers_pending_of(const qa_peers_t *self, uid_t uid)
{
    const struct uid_slot *s = find_slot(self, uid);
    return s ? s->pending : 0;
}

qa_peer_t *qa_peers_oldest_pending(const qa_peers_t *self)
{
    return self->wait_first;
}

/* Makes p pending at now. Returns 0 or -ENOMEM. */
static int make_pending(qa_peers_t *self, qa_peer_t *p, uint64_t now)
{
    struct uid_slot *s = find_slot(self, p->cred_uid);
    if (!s) {
        if (!(s = calloc(1, sizeof *s)))
            return -ENOMEM;
        s->uid = p->cred_uid;
        s->next = self->uids[uid_hash(s->uid)];
        self->uids[uid_hash(s->uid)] = s;
    }
    LIST_APPEND(s->first, s->last, p, uid_prev, uid_next);
    s->pending++;
    p->uid_slot = s;
    LIST_APPEND(self->wait_first, self->wait_last, p, wait_prev, wait_next);
    self->pending++;
    p->pending_since = now;
    return 0;
}

/* Makes p, pending, no longer so; frees its uid's slot when p was its last. */
static void end_pending(qa_peers_t *self, qa_peer_t *p)
{
    struct uid_slot *s = p->uid_slot;
    LIST_UNLINK(self->wait_first, self->wait_last, p, wait_prev, wait_next);
    self->pending--;
    LIST_UNLINK(s->first, s->last, p, uid_prev, uid_next);
    p->uid_slot = NULL;
    if (--s->pending)
        return;
    struct uid_slot **pp = &self->uids[uid_hash(s->uid)];
    while (*pp != s)
        pp = &(*pp)->next;
    *pp = s->next;
    free(s);
}

int qa_peers_add(qa_peers_t *self, qa_peer_t *p, uint64_t now)
{
    int rc = make_pending(self, p, now);
    if (rc < 0)
        return rc;
    LIST_APPEND(self->first, self->last, p, prev, next);
    self->count++;
    return 0;
}

void qa_peers_remove(qa_peers_t *self, qa_peer_t *p)
{
    if (p->uid_slot)
        end_pending(self, p);
    LIST_UNLINK(self->first, self->last, p, prev, next);
    self->count--;
}

int qa_peers_set_session(qa_peers_t *self, qa_peer_t *p, bool session, uint64_t now)
{
    if (session && p->uid_slot)
        end_pending(self, p);
    else if (!session && !p->uid_slot)
        return make_pending(self, p, now);
    return 0;
}

/* The uid slot with the most pending peers (the first found among equals), or NULL.
 * O(uids with pending peers), at most max_pending: only when the table is full. */
static struct uid_slot *heaviest(const qa_peers_t *self)
{
    struct uid_slot *best = NULL;
    for (size_t b = 0; b < UID_BUCKETS; b++) {
        for (struct uid_slot *s = self->uids[b]; s; s = s->next) {
            if (!best || s->pending > best->pending)
                best = s;
        }
    }
    return best;
}

qa_admit_t qa_peers_admit(qa_peers_t *self, uid_t uid, bool exempt, qa_peer_t **evict)
{
    *evict = NULL;
    size_t mine = qa_peers_pending_of(self, uid);
    if (!exempt && self->lim.max_pending_per_uid && mine >= self->lim.max_pending_per_uid)
        return QA_REFUSE_UID;
    if (self->count < self->lim.max_conns && self->pending < self->lim.max_pending)
        return QA_ADMIT;
    /* Full. A pending connection yields its place when its uid holds clearly more than
     * the newcomer's (the heaviest first: a flood from one uid makes room for others);
     * when every uid holds about as many, the oldest yields to a uid that holds none,
     * so that a new uid always gets in. Sessions never yield. */
    struct uid_slot *h = heaviest(self);
    if (h && h->pending >= mine + 2)
        *evict = h->first;
    else if (h && mine == 0)
        *evict = self->wait_first;
    return *evict ? QA_ADMIT : QA_REFUSE_FULL;
}

void qa_peers_each(qa_peers_t *self, void (*fn)(void *arg, qa_peer_t *p), void *arg)
{
    qa_peer_t *p = self->first;
    while (p) {
        qa_peer_t *next = p->next; /* fn may remove p */
        fn(arg, p);
        p = next;
    }
}
