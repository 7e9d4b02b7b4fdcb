/* ctl_support.h - what the control-plane tests share: an arbiter on a private simulated
 * host, an admin client, and a tenant that speaks the tenant protocol through proto's
 * connection the way the shim does. Test-only; single-threaded like the harness. */
#ifndef QV_CTL_SUPPORT_H
#define QV_CTL_SUPPORT_H

#include "proto/conn.h"
#include "proto/records.h"
#include "qvgpu.h"
#include "tests/harness.h"

#include <stdbool.h>
#include <stdint.h>

/* Two 8 GiB GTX 1080s and a 4 GiB one with 10 SMs. */
#define CTL_GPUS                                                                                   \
    "NVIDIA GeForce GTX 1080:8GiB:20,NVIDIA GeForce GTX 1080:8GiB:20,"                             \
    "NVIDIA GeForce GTX 1050:4GiB:10"

/* A private simulated host with gpus, and a qarbiter on it with config (may be NULL).
 * Fails the test when it does not start. */
qt_arbiter_t *ctl_arbiter(const char *gpus, const char *config);
/* An admin client of arb; fails the test when it cannot connect. */
qv_client_t *ctl_client(const qt_arbiter_t *arb);
/* Creates a vGPU of profile on any GPU; id and secret receive its credentials. */
void ctl_create(qv_client_t *c, const char *vm, const char *profile, char id[QV_ID_LEN],
                char secret[QV_SECRET_LEN]);

/* A tenant process's side of the protocol. */
typedef struct ctl_tenant {
    qp_conn_t *conn;      /* owned */
    char vgpu[QV_ID_LEN]; /* who it claims to be */
    char secret[64];
    uint64_t used;       /* what it holds: reported in hello and hb */
    uint64_t reserved;   /* what the arbiter granted it */
    int sessions;        /* hello replies seen */
    int limits;          /* `limits` pushes seen */
    uint64_t last_quota; /* memory_quota of the last LIMITS seen */
    int reclaims;        /* `mem_reclaim` pushes seen */
    uint64_t last_keep;  /* keep of the last one */
    bool give_back;      /* answer mem_reclaim with mem_release at once */
    int grants;          /* tok_grant pushes seen, extensions included */
    uint64_t lease;      /* lease of the last tok_grant */
    uint64_t lease_ns;   /* its ns */
    uint64_t granted_at; /* qt_now_ns() when it arrived */
    int revokes;         /* tok_revoke pushes seen */
    uint64_t revoked;    /* lease of the last one */
} ctl_tenant_t;

/* Connects to arb's tenant.sock as a process of vgpu with secret (nothing sent yet). */
ctl_tenant_t *ctl_tenant_new(const qt_arbiter_t *arb, const char *vgpu, const char *secret);
void ctl_tenant_destroy(ctl_tenant_t **self_p);
/* Opens the session: 0 or the error of qp_conn_open. */
int ctl_tenant_hello(ctl_tenant_t *t);
/* mem_reserve need/want: returns 0 (t->reserved updated) or the error; *free (may be
 * NULL) receives `free` of a quota error. */
int ctl_tenant_reserve(ctl_tenant_t *t, uint64_t need, uint64_t want, uint64_t *free);
/* mem_release to reserved: 0 or the error. */
int ctl_tenant_release(ctl_tenant_t *t, uint64_t reserved);
/* hb with an id: 0 with *vgpu_used (may be NULL) from the reply, or the error. */
int ctl_tenant_hb(ctl_tenant_t *t, uint64_t *vgpu_used);
/* Receives pushes for ms (answering reclaims when give_back is set). */
void ctl_tenant_pump(ctl_tenant_t *t, int ms);
/* Sends *m (taken; a tok_* message) without waiting: 0 or the error of qp_conn_send. */
int ctl_tenant_send(ctl_tenant_t *t, qp_msg_t *m);
/* Receives pushes until *counter (a field of t) reaches at_least (true) or ms pass. */
bool ctl_tenant_pump_until(ctl_tenant_t *t, const int *counter, int at_least, int ms);

/* The vGPU as the arbiter reports it now. */
qv_vgpu_t ctl_info(qv_client_t *c, const char *id);
/* Polls until the vGPU id has procs processes (true) or ms pass (false). */
bool ctl_wait_procs(qv_client_t *c, const char *id, unsigned procs, int ms);

/* Descriptors process pid holds now (/proc/PID/fd). */
int ctl_open_fds(pid_t pid);
/* How many times word occurs in s. */
int ctl_count_of(const char *s, const char *word);
/* For benches: creates n vGPUs of 8 MiB and 1% (bench-vm-0, ...) wherever they fit, the
 * id of the one numbered keep into id (unless NULL). Returns 0, or -1 after printing
 * why to stderr, prefixed with who. No assertion: benches are no tests. */
int ctl_create_small(qv_client_t *c, int n, const char *who, int keep, char id[QV_ID_LEN]);

/* GPU index's record as the arbiter sends it in `gpus` (libqvgpu does not carry the
 * compute-lease fields `leased` and `hung`). Fails the test when it cannot be had. */
qp_gpu_t ctl_gpu_record(const qt_arbiter_t *arb, int index);

#endif
