/* peer.h - the arbiter's peers: one per connection on an endpoint, found by the ROUTER
 * routing id of its messages (unique per connection and never reused by a socket) and
 * by the file descriptor of its connection (to act on the socket monitor's
 * "disconnected" events, which carry only the fd).
 *
 * A peer holds its session state; a tenant peer's memory reservation lives here too and
 * is maintained by tenant.c. Single-threaded: the loop thread. */
#ifndef QA_PEER_H
#define QA_PEER_H

#include "arbiter/host.h"
#include "arbiter/loop.h"
#include "proto/schema.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define QA_RID_MAX 256 /* ZeroMQ routing ids are at most 255 bytes */

struct qa_server;
struct qa_sched_proc;

typedef struct qa_peer {
    struct qa_server *srv; /* the server it belongs to, for timer callbacks */
    qp_endpoint_t ep;      /* which endpoint it connected to */
    uint8_t rid[QA_RID_MAX];
    size_t rid_len;
    int fd;             /* its connection's fd (ZMQ_SRCFD), -1 until known */
    pid_t cred_pid;     /* the process at the other end (SO_PEERCRED), 0 if unknown */
    uint64_t last_seen; /* ns of its last message */
    bool session;       /* a hello succeeded */
    bool warned;        /* a malformed message of it was logged: log no more */
    /* tenant session (tenant.c) */
    qa_vgpu_t *vgpu;                /* its vGPU, borrowed; NULL without a tenant session */
    struct qa_peer *next_in_vgpu;   /* next session of the same vGPU */
    struct qa_peer **pprev_in_vgpu; /* what points at it in that list: unlinks in O(1) */
    uint64_t session_id;            /* number given in the hello reply */
    pid_t pid;                      /* pid the tenant reported (its namespace's) */
    uint64_t used;                  /* bytes it reported holding */
    uint64_t reserved;              /* bytes reserved to it */
    struct qa_sched_proc *proc;     /* its compute-lease state (compute.c), NULL if none */
    uint32_t slot;                  /* its ledger slot + 1 (tenant.c, ledger.h), 0 if none */
    /* what the host sees of its process through NVML (audit.c) */
    uint64_t real;     /* bytes NVML lists for cred_pid on its vGPU's GPU; 0 if none */
    uint64_t gap[3];   /* real - used in the last rounds that listed it */
    unsigned ngap;     /* entries in gap (a ring) */
    uint64_t overhead; /* bytes charged beyond its allocations (tenant.c sets it) */
    bool measured;     /* a round that began after its first mem_reserve has seen it */
    struct {           /* its first mem_reserve, held until measured (tenant.c) */
        bool active;   /* one is held */
        uint64_t id;   /* its request id */
        uint64_t need; /* its need and want */
        uint64_t want;
        uint64_t since; /* ns it arrived */
        uint64_t until; /* ns it stops waiting for a measurement */
    } held;
    struct {
        bool active;   /* a mem_reserve waits for reclaimed memory */
        uint64_t id;   /* its request id */
        uint64_t need; /* its need and want */
        uint64_t want;
        uint64_t seq;     /* arrival order among the vGPU's waiting requests */
        qa_timer_t timer; /* gives up after the reclaim timeout */
    } pending;
    struct qa_peer *hnext; /* hash chain (peer.c) */
} qa_peer_t;

typedef struct qa_peers qa_peers_t;

qa_peers_t *qa_peers_new(void);
/* Frees every peer and the table; sets *self_p to NULL. Timers must be stopped first. */
void qa_peers_destroy(qa_peers_t **self_p);
/* Connections open: accepted and not disconnected since, as the socket monitor said
 * (qa_peers_fd_accepted, qa_peers_fd_disconnected). */
size_t qa_peers_live(const qa_peers_t *self);

/* The peer with routing id rid, or NULL. */
qa_peer_t *qa_peers_find(qa_peers_t *self, const void *rid, size_t len);
/* A new zeroed peer with that routing id (fd -1), owned by the table; NULL when out of
 * memory or len is over QA_RID_MAX. */
qa_peer_t *qa_peers_add(qa_peers_t *self, const void *rid, size_t len);
/* Removes and frees p. */
void qa_peers_remove(qa_peers_t *self, qa_peer_t *p);

/* The peer whose connection is fd, or NULL. */
qa_peer_t *qa_peers_by_fd(qa_peers_t *self, int fd);
/* Records that p's connection is fd (p must have none bound yet, or the same).
 * Returns 0 or -ENOMEM. */
int qa_peers_bind_fd(qa_peers_t *self, qa_peer_t *p, int fd);
/* Forgets p's fd (p stays). */
void qa_peers_unbind_fd(qa_peers_t *self, qa_peer_t *p);
/* Records the socket monitor's events, in their order: a connection was accepted on fd
 * (returns 0, or -ENOMEM, -EINVAL for a negative fd) / the connection on fd closed. */
int qa_peers_fd_accepted(qa_peers_t *self, int fd);
void qa_peers_fd_disconnected(qa_peers_t *self, int fd);
/* Whether the last connection seen on fd was closed (and no new one accepted since). */
bool qa_peers_fd_closed(const qa_peers_t *self, int fd);
/* Whether routing id a was given after b by the same ROUTER: libzmq numbers the ids it
 * makes (0x00 then a big-endian counter), so among the connections that held one fd in
 * turn the largest id is the latest. */
bool qa_rid_newer(const qa_peer_t *a, const qa_peer_t *b);

/* Calls fn on every peer; fn may remove the peer it is given, and no other. */
void qa_peers_each(qa_peers_t *self, void (*fn)(void *arg, qa_peer_t *p), void *arg);

#endif
