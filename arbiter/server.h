/* server.h - qarbiter's start-up, wiring and shutdown: checks that nobody else can write
 * its directories, takes the socket dir's lock and removes a dead arbiter's admin.sock,
 * discovers the GPUs, loads the state (taking the state dir's lock), makes the modules
 * and wires them to each other, binds tenant.sock and then admin.sock (whose appearance
 * means "ready"), and runs the event loop until SIGTERM or SIGINT.
 *
 * The wiring, in one place (server.c): the endpoints (endpoint.h) hand each message to
 * the dispatcher (dispatch.h), which hands it to the handler of its kind in the tables
 * of admin.c, tenant.c and compute.c; those answer through the reply path (reply.h),
 * which is the endpoints'. Each module is given its edges explicitly (the host model,
 * the store, the ledger, the loop, the log, the reply path, small ops structs for what
 * it asks of others) and knows nothing of this file; the periodic work (liveness, NVML
 * rounds for the audit and the tenants) is driven from here.
 *
 * The loop thread does all the work; helper threads (store.c's syncer, sampler.c's NVML
 * sampler, http.c's HTTP threads) never touch the arbiter's state: the HTTP side reads
 * views the loop builds for it (view.h). */
#ifndef QA_SERVER_H
#define QA_SERVER_H

#include "arbiter/cdi.h"
#include "arbiter/config.h"
#include "arbiter/log.h"
#include "arbiter/version.h"
#include "proto/msg.h"

#include <stdbool.h>

typedef struct qa_server qa_server_t;

typedef struct qa_server_opts {
    const char *socket_dir; /* where admin.sock, tenant.sock and qarbiter.lock live */
    const char *tenant_dir; /* where tenant.sock lives instead, or NULL (docs/arbiter.md) */
    const qa_cdi_opts_t *cdi; /* with tenant_dir: how CDI specs are written (cdi.h) */
    const char *state_dir;  /* where vGPUs persist */
    const qa_config_t *cfg; /* borrowed: must outlive the server */
    const qa_log_t *log;    /* borrowed: must outlive the server */
    const char *http;       /* "ADDR:PORT" to serve HTTP on (http.h), or NULL for none */
    bool http_required;     /* asked for explicitly: failing to listen stops the start
                             * (otherwise, for the default address, it is a warning) */
} qa_server_opts_t;

/* Starts everything but the loop. Returns NULL with err as one line when a directory
 * can be written by others, a lock is held by another arbiter, there is no GPU, the
 * state cannot be read, or a socket cannot be bound; whatever was made is undone. SIGTERM and SIGINT are blocked in the
 * calling thread (and so in threads it starts) and received through a signalfd. */
qa_server_t *qa_server_new(const qa_server_opts_t *opts, char err[QP_ERR_LEN]);
/* Serves until SIGTERM/SIGINT. Returns 0, or a negative errno if the loop fails. */
int qa_server_run(qa_server_t *self);
/* Closes and removes the sockets, syncs the state, frees *self_p; sets it to NULL. */
void qa_server_destroy(qa_server_t **self_p);

#endif
