/* migrate.h - the administrator's requests that move vGPUs (docs/migration.md): migrate
 * (one vGPU to a GPU) and balance (the balancer's plan, carried out or not), as a table
 * of handlers (dispatch.h). Both are answered once their moves have ended: a request
 * waits in the mover's queue with its connection (mover.h), and one whose connection
 * closes meanwhile is answered to nobody (qa_mover_forget, from the wiring).
 *
 * Its edges, given at creation: the host (to find vGPUs and GPUs), the mover, the
 * balancer, the reply path and the log. Single-threaded: the loop thread. */
#ifndef QA_MIGRATE_H
#define QA_MIGRATE_H

#include "arbiter/balancer.h"
#include "arbiter/dispatch.h"
#include "arbiter/host.h"
#include "arbiter/log.h"
#include "arbiter/mover.h"
#include "arbiter/reply.h"

#include <stddef.h>

typedef struct qa_migrate_opts {
    qa_host_t *host;
    qa_mover_t *mover;
    qa_balancer_t *balancer;
    const qa_reply_t *reply;
    const qa_log_t *log; /* each move's outcome, one line */
} qa_migrate_opts_t;

typedef struct qa_migrate qa_migrate_t;

/* The handlers over opts (copied; what it points to is borrowed and must outlive them).
 * NULL when out of memory. */
qa_migrate_t *qa_migrate_new(const qa_migrate_opts_t *opts);
/* Frees *self_p and sets it to NULL (after the mover: requests still waiting are
 * reported to their callbacks when the mover goes). NULL is a no-op. */
void qa_migrate_destroy(qa_migrate_t **self_p);

/* Its handlers: migrate and balance of admin.sock, to add with the object as self. */
extern const qa_route_t qa_migrate_routes[];
extern const size_t qa_migrate_nroutes;

#endif
