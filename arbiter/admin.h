/* admin.h - the administrator's requests on admin.sock: hello, create, destroy, resize,
 * list, info, creds, gpus, stats and cdi, as a table of handlers (dispatch.h).
 *
 * Its edges: the host model it changes, the store that makes each change last (written
 * before it is answered; a change the store refuses is undone), the CDI specs when there
 * are any, the reply path and the log, all given at creation. What the rest of the
 * arbiter must do when a vGPU goes or is resized (its sessions, its scheduler), and the
 * figures of `stats` that are not the host's (the tenants', the audit's), go through
 * qa_admin_ops_t, so that admin.c knows neither tenant.c nor audit.c.
 * Single-threaded: the loop thread. */
#ifndef QA_ADMIN_H
#define QA_ADMIN_H

#include "arbiter/cdi.h"
#include "arbiter/config.h"
#include "arbiter/dispatch.h"
#include "arbiter/host.h"
#include "arbiter/log.h"
#include "arbiter/reply.h"
#include "arbiter/store.h"
#include "proto/records.h"

#include <stddef.h>
#include <stdint.h>

/* What admin.c asks of the rest of the arbiter; a NULL member does nothing. */
typedef struct qa_admin_ops {
    /* v is being destroyed (its file is gone already): end its sessions and drop what
     * follows it (tenants, compute). v is freed after the call. */
    void (*gone)(void *arg, qa_vgpu_t *v);
    /* v's limits changed (its memory was old_memory_mb): tell its processes and its
     * GPU's scheduler. */
    void (*resized)(void *arg, qa_vgpu_t *v, uint64_t old_memory_mb);
    /* The figures of `stats` beyond the host's: t->memory_used_mb (each process counted
     * once) and t->kills, and the audit's findings (*n of them at *findings, borrowed
     * for the call). */
    void (*stats)(void *arg, qp_totals_t *t, const qp_finding_t **findings, size_t *n);
    void *arg; /* passed to each */
} qa_admin_ops_t;

typedef struct qa_admin_opts {
    qa_host_t *host;         /* the vGPUs it creates, resizes and destroys */
    qa_store_t *store;       /* where they persist */
    qa_cdi_t *cdi;           /* their CDI specs, or NULL (no --tenant-dir) */
    const qa_config_t *cfg;  /* oversubscription and placement, for `gpus` */
    const qa_log_t *log;     /* changes and failures are logged here */
    const qa_reply_t *reply; /* how it answers */
    const char *tenant_dir;  /* where tenant.sock is, absolute, for `creds` */
    qa_admin_ops_t ops;      /* what it asks of the rest */
} qa_admin_opts_t;

typedef struct qa_admin qa_admin_t;

/* An admin serving over opts (copied; everything it points to is borrowed and must
 * outlive it). NULL when out of memory. */
qa_admin_t *qa_admin_new(const qa_admin_opts_t *opts);
/* Frees *self_p and sets it to NULL; NULL is a no-op. */
void qa_admin_destroy(qa_admin_t **self_p);

/* Its handlers, one row per request kind of admin.sock, to add with the admin as self. */
extern const qa_route_t qa_admin_routes[];
extern const size_t qa_admin_nroutes;

#endif
