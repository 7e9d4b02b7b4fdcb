/* ckpt.h - the checkpoint helper: the process that calls the driver's checkpoint API
 * (cuCheckpointProcess*) for the arbiter's moves, and the arbiter's end of its socket.
 *
 * The arbiter never loads the CUDA driver itself (it does not know which one it has):
 * it runs itself again as `qarbiter --checkpoint-helper FD` (ckpt_helper.h), which
 * loads libcuda.so.1 as any CUDA program does, says which driver it found and whether it
 * can move processes (driver 580 / CUDA 13.0 or newer), then makes one call at a time
 * as asked. The calls block for as long as the driver copies memory; the arbiter's loop
 * does not: requests go out on a SOCK_SEQPACKET socket and answers come back through the
 * loop.
 *
 * The helper outlives an arbiter killed during a move: it sees its socket close, reads
 * where the vGPU's record (the state dir, store.h) says it lives, and brings each
 * process it touched back to running there (qa_move_next_home), so that a restarted
 * arbiter finds the vGPU and its processes on one GPU. SIGTERM, SIGINT and SIGHUP make it
 * do the same before it exits.
 *
 * Messages are fixed-size structs: both ends are the same binary.
 * Single-threaded: the arbiter's loop thread. */
#ifndef QA_CKPT_H
#define QA_CKPT_H

#include "arbiter/loop.h"
#include "arbiter/move.h"
#include "proto/records.h"

#include <stdint.h>
#include <sys/types.h>

#define QA_CKPT_MAX_GPUS 64
#define QA_CKPT_ARG "--checkpoint-helper" /* qarbiter's argument that runs the helper */

enum qa_ckpt_kind {
    QA_CKPT_BEGIN = 1, /* a move begins: the plan an orphaned helper needs */
    QA_CKPT_CALL,      /* one driver call on one process */
    QA_CKPT_END,       /* the move is over: nothing to recover any more */
};

typedef struct qa_ckpt_req {
    uint32_t kind;  /* enum qa_ckpt_kind */
    uint32_t seq;   /* echoed in the answer (CALL) */
    uint32_t op;    /* CALL: qa_move_op_t */
    int32_t pid;    /* CALL: the process, host pid */
    uint64_t start; /* CALL: its start time (/proc/PID/stat), to tell a reused pid; 0: unknown */
    uint32_t lock_ms; /* CALL, QA_MOVE_LOCK: the driver's timeout */
    uint32_t ngpus;   /* BEGIN: entries of uuid */
    uint32_t from;    /* BEGIN: the source, an index of uuid */
    uint32_t to;      /* BEGIN: the target */
    char vgpu[QP_ID_LEN];  /* BEGIN: the vGPU */
    char state_dir[256];   /* BEGIN: whose record says where it lives */
    char uuid[QA_CKPT_MAX_GPUS][QP_UUID_LEN]; /* BEGIN: every GPU of the host, "GPU-..." */
} qa_ckpt_req_t;

typedef struct qa_ckpt_rep {
    uint32_t seq;   /* the request's; 0 for the hello the helper sends when it starts */
    int32_t result; /* qa_move_res_t; hello: QA_MOVE_OK when it can move processes */
    int32_t state;  /* QA_MOVE_STATE: the process's qa_move_pstate_t */
    int32_t driver; /* hello: cuDriverGetVersion (13000 for CUDA 13.0), 0 if unknown */
    char text[QP_ERR_LEN]; /* the driver's error name; hello: why it cannot move processes */
} qa_ckpt_rep_t;

typedef struct qa_ckpt qa_ckpt_t;

typedef struct qa_ckpt_hooks {
    /* The helper said hello (rep->seq 0) or answered a call. */
    void (*answer)(void *arg, const qa_ckpt_rep_t *rep);
    /* The helper exited: requests sent will not be answered. It is reaped; destroy the
     * qa_ckpt_t (from here is fine) and start another when needed. */
    void (*gone)(void *arg);
    void *arg;
} qa_ckpt_hooks_t;

/* Runs the helper (exe: the arbiter's binary, "/proc/self/exe") and watches its socket on
 * loop. Returns NULL with err when it cannot be started. */
qa_ckpt_t *qa_ckpt_start(qa_loop_t *loop, const char *exe, const qa_ckpt_hooks_t *hooks,
                         char err[QP_ERR_LEN]);
/* Closes the socket (an idle helper exits; one in a move brings its processes home, as
 * when the arbiter dies) and frees *self_p; sets it to NULL. NULL is a no-op. */
void qa_ckpt_stop(qa_ckpt_t **self_p);
/* Sends req. Returns 0, or -EPIPE when the helper is gone, -errno otherwise. */
int qa_ckpt_send(qa_ckpt_t *self, const qa_ckpt_req_t *req);
/* Kills the helper (it stopped answering); `gone` follows. */
void qa_ckpt_kill(qa_ckpt_t *self);
/* The helper's pid. */
pid_t qa_ckpt_pid(const qa_ckpt_t *self);

#endif
