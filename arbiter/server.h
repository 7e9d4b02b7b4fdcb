/* server.h - qarbiter's daemon: checks that nobody else can write its directories,
 * takes the socket dir's lock and removes a dead arbiter's admin.sock, discovers the
 * GPUs, loads the state (taking the state dir's lock), binds tenant.sock and then
 * admin.sock (whose appearance means "ready"), and serves both endpoints (endpoint.h)
 * from one event loop until SIGTERM or SIGINT.
 *
 * The loop thread does all the work; helper threads (store.c's syncer, sampler.c's NVML
 * sampler, http.c's HTTP threads) never touch the server's state: the HTTP side reads
 * views the loop builds for it (view.h). admin.c and tenant.c handle
 * requests through the accessors below. */
#ifndef QA_SERVER_H
#define QA_SERVER_H

#include "arbiter/cdi.h"
#include "arbiter/config.h"
#include "arbiter/host.h"
#include "arbiter/log.h"
#include "arbiter/loop.h"
#include "arbiter/peer.h"
#include "arbiter/store.h"
#include "proto/msg.h"

#define QA_VERSION "0.1.0"

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

/* ---- for request handlers ---------------------------------------------------------- */

qa_host_t *qa_server_host(qa_server_t *self);
qa_store_t *qa_server_store(qa_server_t *self);
struct qa_ledger *qa_server_ledger(qa_server_t *self);
qa_loop_t *qa_server_loop(qa_server_t *self);
struct qa_compute *qa_server_compute(qa_server_t *self);
const qa_config_t *qa_server_config(const qa_server_t *self);
const qa_log_t *qa_server_log(const qa_server_t *self);
/* The CDI specs, or NULL when the arbiter has no --tenant-dir (and writes none). */
qa_cdi_t *qa_server_cdi(qa_server_t *self);
/* The directory that holds tenant.sock, absolute: what workloads need as
 * QVGPU_SOCKET_DIR. */
const char *qa_server_tenant_dir(const qa_server_t *self);
/* A fresh session number. */
uint64_t qa_server_new_session(qa_server_t *self);
/* Whether the reconnect grace after the start still runs: the previous arbiter's
 * tenants may not all have re-reported what they hold (see qa_tenant_grace_over). */
bool qa_server_in_grace(const qa_server_t *self);
/* Asks for an NVML round now (see qa_tenant_measured). Returns false when NVML cannot
 * list the processes of the GPUs, so that nothing waits for a measurement. */
bool qa_server_measure(qa_server_t *self);

/* Moving vGPUs to other GPUs (mover.h) and balancing the GPUs (balancer.h). */
struct qa_mover *qa_server_mover(qa_server_t *self);
struct qa_balancer *qa_server_balancer(qa_server_t *self);

/* The audit of real use (audit.h): its findings for `stats`. */
const struct qa_audit *qa_server_audit(const qa_server_t *self);

/* p's session opened or ended (p->session is set to session). Every change of a
 * session goes through here: a peer without one is "pending" for the endpoint's
 * admission limits and hello timeout (peer.h). */
void qa_server_set_session(qa_server_t *self, qa_peer_t *p, bool session);
/* Whether a warning about p's connection may be logged now: a few per uid per 10 s; the
 * endpoint sums up those held back. */
bool qa_server_may_warn(qa_server_t *self, const qa_peer_t *p);

/* Sends *msg (taken) to p without blocking: a peer that does not read loses messages
 * rather than stall the arbiter. */
void qa_server_send(qa_server_t *self, qa_peer_t *p, qp_msg_t **msg);
/* Sends {t:error, id, code, msg}. */
void qa_server_error(qa_server_t *self, qa_peer_t *p, uint64_t id, const char *code,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
