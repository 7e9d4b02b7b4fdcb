/* peer.h - the arbiter's peers, one per connection accepted on an endpoint, and the
 * admission policy that keeps connections which have proved nothing from crowding out
 * those that have.
 *
 * A peer is "pending" from its accept until a hello opens a session, and again after its
 * session ends while its connection stays. Pending connections cost the arbiter a
 * descriptor and memory without any vGPU behind them, so they are limited: in all, per
 * uid of the connecting process (SO_PEERCRED), and in time (endpoint.c closes one that
 * is pending longer than the hello timeout). Peers with a session are never evicted:
 * the connections beyond what pending ones may take are theirs (issue 8).
 *
 * Pure: no I/O and no clock (times are passed in), so that the policy is tested on a
 * fake clock; endpoint.c is the shell that accepts, reads, writes and closes. The table
 * links peers but does not own them: endpoint.c allocates each inside its connection.
 * What a session holds is the module's that opened it: a tenant session (tenant.h) hangs
 * off its peer. Single-threaded: the loop thread. */
#ifndef QA_PEER_H
#define QA_PEER_H

#include "proto/schema.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct qa_session;
struct uid_slot;

typedef struct qa_peer {
    qp_endpoint_t ep;      /* which endpoint it connected to */
    uid_t cred_uid;        /* the process at the other end, when it connected (SO_PEERCRED) */
    pid_t cred_pid;        /* its pid in the arbiter's pid namespace, 0 if unknown */
    uint64_t last_seen;    /* ns of its last message (dispatch.c) */
    bool session;          /* a hello succeeded (set through qa_reply_set_session) */
    bool warned;           /* a malformed message of it was logged: log no more */
    struct qa_session *tenant; /* its tenant session (tenant.c's), NULL if none */
    /* the table (peer.c) */
    struct qa_peer *prev, *next;           /* every peer, oldest first */
    struct qa_peer *wait_prev, *wait_next; /* pending peers, in the order they became so */
    struct qa_peer *uid_prev, *uid_next;   /* pending peers of the same uid, likewise */
    struct uid_slot *uid_slot;             /* its uid's counts while pending, else NULL */
    uint64_t pending_since;                /* ns it became pending */
} qa_peer_t;

/* What one endpoint admits. */
typedef struct qa_admission {
    size_t max_conns;           /* connections open in all */
    size_t max_pending;         /* of them without a session */
    size_t max_pending_per_uid; /* of them from one uid; 0: no limit per uid */
    const char *why_conns;      /* static: what sets max_conns, for log lines */
    const char *why_pending;    /* static: what sets max_pending, likewise */
} qa_admission_t;

/* The decision about a connection just accepted. */
typedef enum qa_admit {
    QA_ADMIT,       /* keep it (after closing the peer named to make room, if any) */
    QA_REFUSE_UID,  /* its uid has max_pending_per_uid connections pending: close it */
    QA_REFUSE_FULL, /* no room, and no pending connection yields it: close it */
} qa_admit_t;

typedef struct qa_peers qa_peers_t;

/* An empty table under lim (copied). NULL when out of memory. */
qa_peers_t *qa_peers_new(const qa_admission_t *lim);
/* Frees the table (not the peers, which must have been removed); sets *self_p to NULL. */
void qa_peers_destroy(qa_peers_t **self_p);
/* Changes the limits; connections over new, lower ones stay until they close. */
void qa_peers_set_limits(qa_peers_t *self, const qa_admission_t *lim);
const qa_admission_t *qa_peers_limits(const qa_peers_t *self);

/* Decides on a connection from uid, not in the table yet. exempt: the uid is not held to
 * max_pending_per_uid (root and the arbiter's own user, who could stop the arbiter
 * anyway). When the table is full, the oldest pending connection of the uid with most
 * pending ones makes room if that uid has at least two more than uid; failing that, when
 * uid has none pending, the oldest pending connection of all does; *evict then names the
 * peer to remove (and close) before adding the new one; otherwise *evict is NULL. */
qa_admit_t qa_peers_admit(qa_peers_t *self, uid_t uid, bool exempt, qa_peer_t **evict);
/* Adds p (zeroed but for cred_uid and cred_pid) as a pending peer at now. Returns 0, or
 * -ENOMEM (p is then not in the table). */
int qa_peers_add(qa_peers_t *self, qa_peer_t *p, uint64_t now);
/* Removes p, pending or not. */
void qa_peers_remove(qa_peers_t *self, qa_peer_t *p);
/* p's session opened (session true: it stops being pending) or ended while its
 * connection stays (false: pending again from now, so its hello timeout starts over).
 * Returns 0, or -ENOMEM when p cannot become pending (it is then left as it was). */
int qa_peers_set_session(qa_peers_t *self, qa_peer_t *p, bool session, uint64_t now);
/* The peer pending the longest, or NULL when none is: endpoint.c closes it once it has
 * been pending longer than the hello timeout. */
qa_peer_t *qa_peers_oldest_pending(const qa_peers_t *self);

/* Peers in the table / pending / pending of uid. */
size_t qa_peers_count(const qa_peers_t *self);
size_t qa_peers_pending(const qa_peers_t *self);
size_t qa_peers_pending_of(const qa_peers_t *self, uid_t uid);

/* Calls fn on every peer, oldest first; fn may remove the peer it is given, and no other. */
void qa_peers_each(qa_peers_t *self, void (*fn)(void *arg, qa_peer_t *p), void *arg);

#endif
