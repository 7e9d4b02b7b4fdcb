/* ckpt_helper.c - the checkpoint helper's process (ckpt.h): loads the CUDA driver, makes
 * the cuCheckpointProcess* calls the arbiter asks for, and brings the processes of a move
 * home when the arbiter dies during it. Single-threaded; signals arrive through a
 * signalfd, so that nothing global is needed. */
#include "arbiter/ckpt_helper.h"

#include "arbiter/ckpt.h"
#include "arbiter/ledger.h"
#include "arbiter/store.h"

#include <cuda.h>
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NEED_VERSION 13000 /* CUDA 13.0, driver r580: restore with gpuPairs */
#define RECOVER_TRIES 5    /* a recovery call that fails is tried this often... */
#define RECOVER_WAIT_MS 200 /* ...this far apart */

/* The driver's entry points this helper uses. */
struct driver {
    CUresult (*init)(unsigned int);
    CUresult (*version)(int *);
    CUresult (*error_name)(CUresult, const char **);
    CUresult (*get_state)(int, CUprocessState *);
    CUresult (*lock)(int, CUcheckpointLockArgs *);
    CUresult (*checkpoint)(int, CUcheckpointCheckpointArgs *);
    CUresult (*restore)(int, CUcheckpointRestoreArgs *);
    CUresult (*unlock)(int, CUcheckpointUnlockArgs *);
};

/* A process this helper changed in the move in flight. */
struct touched {
    int pid;
    uint64_t start;  /* its start time, 0: unknown */
    bool on_target;  /* its last restore put it on the move's target */
};

struct helper {
    int fd;                 /* the arbiter's socket */
    struct driver cu;
    bool planned;           /* a move is in flight (BEGIN without END) */
    qa_ckpt_req_t plan;     /* its BEGIN */
    CUcheckpointGpuPair pairs[QA_CKPT_MAX_GPUS]; /* its swap: from and to exchanged */
    struct touched *touched; /* owned: ntouched of them */
    size_t ntouched, cap;
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "qarbiter checkpoint helper: %s\n", line);
}

/* ---- the driver -------------------------------------------------------------------- */

/* Loads the driver and its checkpoint API. Returns true when it can move processes to
 * another GPU; else why says so. *version: cuDriverGetVersion, 0 if unknown. */
static bool load(struct driver *cu, int *version, char *why)
{
    *version = 0;
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(why, QP_ERR_LEN, "cannot load the CUDA driver (libcuda.so.1): %.160s", dlerror());
        return false;
    }
    CUresult (*proc)(const char *, void **, int, cuuint64_t, CUdriverProcAddressQueryResult *);
    *(void **)&cu->init = dlsym(h, "cuInit");
    *(void **)&cu->version = dlsym(h, "cuDriverGetVersion");
    *(void **)&cu->error_name = dlsym(h, "cuGetErrorName");
    *(void **)&proc = dlsym(h, "cuGetProcAddress_v2");
    if (!cu->init || !cu->version || !cu->error_name || !proc) {
        snprintf(why, QP_ERR_LEN,
                 "the CUDA driver is older than CUDA 12.0 (no cuGetProcAddress_v2): moving a "
                 "vGPU needs NVIDIA driver 580 (CUDA 13.0) or newer");
        return false;
    }
    CUresult rc = cu->init(0);
    if (rc != CUDA_SUCCESS) {
        const char *name = "?";
        cu->error_name(rc, &name);
        snprintf(why, QP_ERR_LEN, "the CUDA driver does not start (cuInit: %s)", name);
        return false;
    }
    cu->version(version);
    static const char *names[] = {"cuCheckpointProcessGetState", "cuCheckpointProcessLock",
                                  "cuCheckpointProcessCheckpoint", "cuCheckpointProcessRestore",
                                  "cuCheckpointProcessUnlock"};
    void **fns[] = {(void **)&cu->get_state, (void **)&cu->lock, (void **)&cu->checkpoint,
                    (void **)&cu->restore, (void **)&cu->unlock};
    bool found = true;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        CUdriverProcAddressQueryResult st;
        found &= proc(names[i], fns[i], NEED_VERSION, CU_GET_PROC_ADDRESS_DEFAULT, &st) ==
                     CUDA_SUCCESS &&
                 *fns[i];
    }
    int major = *version / 1000, minor = *version % 1000 / 10;
    if (!found) {
        snprintf(why, QP_ERR_LEN,
                 "the CUDA driver supports CUDA %d.%d and has no checkpoint API: moving a vGPU "
                 "needs NVIDIA driver 580 (CUDA 13.0) or newer",
                 major, minor);
        return false;
    }
    if (*version < NEED_VERSION) {
        snprintf(why, QP_ERR_LEN,
                 "the CUDA driver supports CUDA %d.%d, whose checkpoint API restores a process "
                 "onto its own GPU only: moving a vGPU needs NVIDIA driver 580 (CUDA 13.0) or "
                 "newer",
                 major, minor);
        return false;
    }
    why[0] = '\0';
    return true;
}

/* "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" into 16 bytes. */
static bool parse_uuid(const char *s, CUuuid *out)
{
    if (strncmp(s, "GPU-", 4) != 0)
        return false;
    s += 4;
    for (int i = 0; i < 16; i++) {
        if (*s == '-')
            s++;
        unsigned v;
        if (sscanf(s, "%2x", &v) != 1 || !s[0] || !s[1])
            return false;
        out->bytes[i] = (char)v;
        s += 2;
    }
    return *s == '\0';
}

/* What a call's result means for the move: res, with text the driver's name for it. */
static qa_move_res_t meaning(struct helper *h, CUresult rc, qa_move_op_t op, int pid,
                             uint64_t start, char *text)
{
    const char *name = "CUDA_ERROR_UNKNOWN";
    h->cu.error_name(rc, &name);
    snprintf(text, QP_ERR_LEN, "%s", rc == CUDA_SUCCESS ? "" : name);
    uint64_t now_start = 0;
    bool alive = qa_ledger_proc_start(pid, &now_start) == 0 && (!start || now_start == start);
    switch (rc) {
    case CUDA_SUCCESS:
        return QA_MOVE_OK;
    case CUDA_ERROR_INVALID_VALUE:
        /* an unknown pid, or arguments the driver refuses (pairs of the wrong chip) */
        return !alive ? QA_MOVE_GONE : op == QA_MOVE_STATE ? QA_MOVE_NOCUDA : QA_MOVE_FAILED;
    case CUDA_ERROR_NOT_READY:
        return QA_MOVE_NOTREADY;
    case CUDA_ERROR_ILLEGAL_STATE:
        return QA_MOVE_BADSTATE;
    case CUDA_ERROR_OUT_OF_MEMORY:
        return QA_MOVE_NOMEM;
    default:
        return alive ? QA_MOVE_FAILED : QA_MOVE_GONE;
    }
}

/* Makes call op on pid. */
static CUresult call(struct helper *h, qa_move_op_t op, int pid, unsigned lock_ms,
                     CUprocessState *state)
{
    switch (op) {
    case QA_MOVE_STATE:
        return h->cu.get_state(pid, state);
    case QA_MOVE_LOCK: {
        CUcheckpointLockArgs a = {.timeoutMs = lock_ms};
        return h->cu.lock(pid, &a);
    }
    case QA_MOVE_CHECKPOINT:
        return h->cu.checkpoint(pid, NULL);
    case QA_MOVE_RESTORE_SWAP: {
        CUcheckpointRestoreArgs a;
        memset(&a, 0, sizeof a);
        a.gpuPairs = h->pairs;
        a.gpuPairsCount = h->plan.ngpus;
        return h->cu.restore(pid, &a);
    }
    case QA_MOVE_RESTORE_STAY:
        return h->cu.restore(pid, NULL);
    case QA_MOVE_UNLOCK:
        return h->cu.unlock(pid, NULL);
    default:
        return CUDA_ERROR_INVALID_VALUE;
    }
}

/* The record of pid, made when first asked. NULL when out of memory. */
static struct touched *touch(struct helper *h, int pid, uint64_t start)
{
    for (size_t i = 0; i < h->ntouched; i++) {
        if (h->touched[i].pid == pid)
            return &h->touched[i];
    }
    if (h->ntouched == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 16;
        struct touched *t = realloc(h->touched, cap * sizeof *t);
        if (!t)
            return NULL;
        h->touched = t;
        h->cap = cap;
    }
    h->touched[h->ntouched] = (struct touched){pid, start, false};
    return &h->touched[h->ntouched++];
}

/* ---- requests ---------------------------------------------------------------------- */

static void begin(struct helper *h, const qa_ckpt_req_t *req)
{
    h->plan = *req;
    h->plan.vgpu[sizeof h->plan.vgpu - 1] = '\0';
    h->plan.state_dir[sizeof h->plan.state_dir - 1] = '\0';
    h->ntouched = 0;
    h->planned = false;
    uint32_t n = req->ngpus;
    if (n == 0 || n > QA_CKPT_MAX_GPUS || req->from >= n || req->to >= n)
        return; /* no plan: calls that need it fail, and nothing is recovered */
    for (uint32_t i = 0; i < n; i++) {
        h->plan.uuid[i][QP_UUID_LEN - 1] = '\0';
        uint32_t j = i == req->from ? req->to : i == req->to ? req->from : i;
        if (!parse_uuid(h->plan.uuid[i], &h->pairs[i].oldUuid) ||
            !parse_uuid(h->plan.uuid[j], &h->pairs[i].newUuid))
            return;
    }
    h->planned = true;
}

static void serve(struct helper *h, const qa_ckpt_req_t *req)
{
    if (req->kind == QA_CKPT_BEGIN) {
        begin(h, req);
        return;
    }
    if (req->kind == QA_CKPT_END) {
        h->planned = false;
        h->ntouched = 0;
        return;
    }
    qa_ckpt_rep_t rep = {.seq = req->seq};
    qa_move_op_t op = (qa_move_op_t)req->op;
    uint64_t start = 0;
    CUprocessState state = CU_PROCESS_STATE_RUNNING;
    if (req->start && (qa_ledger_proc_start(req->pid, &start) < 0 || start != req->start)) {
        rep.result = QA_MOVE_GONE; /* exited, maybe its pid taken by another process */
    } else if (op == QA_MOVE_RESTORE_SWAP && !h->planned) {
        rep.result = QA_MOVE_FAILED;
        snprintf(rep.text, sizeof rep.text, "no GPU pairs: the move's plan was not understood");
    } else {
        CUresult rc = call(h, op, req->pid, req->lock_ms, &state);
        rep.result = meaning(h, rc, op, req->pid, req->start, rep.text);
        rep.state = (int32_t)state;
        struct touched *t = NULL;
        if (rc == CUDA_SUCCESS && op != QA_MOVE_STATE && h->planned &&
            !(t = touch(h, req->pid, req->start)))
            say("out of memory: pid %d is not recovered if the arbiter dies", req->pid);
        if (t && op == QA_MOVE_RESTORE_SWAP)
            t->on_target = !t->on_target;
    }
    if (send(h->fd, &rep, sizeof rep, MSG_NOSIGNAL) != (ssize_t)sizeof rep)
        say("cannot answer the arbiter: %s", strerror(errno));
}

/* ---- an arbiter gone during a move ------------------------------------------------- */

static void pause_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Brings t home: running on the GPU its vGPU's record names. */
static void bring_home(struct helper *h, struct touched *t, bool home_is_target)
{
    const char *home = h->plan.uuid[home_is_target ? h->plan.to : h->plan.from];
    for (int steps = 0; steps < 8; steps++) {
        CUprocessState st;
        uint64_t start;
        if ((t->start && (qa_ledger_proc_start(t->pid, &start) < 0 || start != t->start)) ||
            h->cu.get_state(t->pid, &st) != CUDA_SUCCESS)
            return; /* exited */
        qa_move_op_t op = qa_move_next_home((qa_move_pstate_t)st, t->on_target == home_is_target);
        if (!op) {
            say("pid %d of %s runs on %s, where its record says it lives", t->pid, h->plan.vgpu,
                home);
            return;
        }
        CUresult rc = CUDA_SUCCESS;
        for (int i = 0; i < RECOVER_TRIES; i++) {
            if ((rc = call(h, op, t->pid, 10000, &st)) == CUDA_SUCCESS)
                break;
            pause_ms(RECOVER_WAIT_MS);
        }
        if (rc != CUDA_SUCCESS) {
            const char *name = "?";
            h->cu.error_name(rc, &name);
            say("pid %d of %s stays paused: %s failed (%s)", t->pid, h->plan.vgpu,
                op == QA_MOVE_UNLOCK ? "unlock" : op == QA_MOVE_CHECKPOINT ? "checkpoint"
                : op == QA_MOVE_LOCK                                        ? "lock"
                                                                            : "restore",
                name);
            return;
        }
        if (op == QA_MOVE_RESTORE_SWAP)
            t->on_target = !t->on_target;
    }
}

static void recover(struct helper *h)
{
    if (!h->planned || !h->ntouched)
        return;
    char uuid[QP_UUID_LEN], err[QP_ERR_LEN];
    const char *to = h->plan.uuid[h->plan.to];
    bool home_is_target = false;
    if (qa_store_peek_gpu(h->plan.state_dir, h->plan.vgpu, uuid, err) < 0)
        say("%s; taking %s as %s's home", err, h->plan.uuid[h->plan.from], h->plan.vgpu);
    else
        home_is_target = strcmp(uuid, to) == 0;
    say("the arbiter left during the move of %s: its processes go back to running on %s",
        h->plan.vgpu, h->plan.uuid[home_is_target ? h->plan.to : h->plan.from]);
    for (size_t i = h->ntouched; i-- > 0;)
        bring_home(h, &h->touched[i], home_is_target);
}

/* ---- the process ------------------------------------------------------------------- */

int qa_ckpt_helper_main(int fd)
{
    struct helper h = {.fd = fd};
    /* The arbiter blocks these and the mask survives exec: they come through the
     * signalfd, each meaning "stop, after bringing a move's processes home". */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigprocmask(SIG_SETMASK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
    /* The helper acts on processes of every GPU: its own view must not be narrowed. */
    unsetenv("CUDA_VISIBLE_DEVICES");
    qa_ckpt_rep_t hello = {.seq = 0};
    bool ok = load(&h.cu, &hello.driver, hello.text);
    hello.result = ok ? QA_MOVE_OK : QA_MOVE_FAILED;
    if (send(fd, &hello, sizeof hello, MSG_NOSIGNAL) != (ssize_t)sizeof hello || !ok)
        return ok ? 0 : 1;
    for (;;) {
        struct pollfd p[2] = {{fd, POLLIN, 0}, {sfd, POLLIN, 0}};
        if (poll(p, sfd >= 0 ? 2 : 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (sfd >= 0 && (p[1].revents & POLLIN))
            break;
        if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        qa_ckpt_req_t req;
        ssize_t n = recv(fd, &req, sizeof req, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof req)
            break; /* the arbiter closed its end, or died */
        serve(&h, &req);
    }
    recover(&h);
    free(h.touched);
    return 0;
}
