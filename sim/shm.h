/* shm.h - the layout of one simulated host: the POSIX shared memory object
 * /qsim-<namespace> that every process of the namespace maps.
 *
 * Header only, so that a test program can map a host and take its lock without linking
 * the simulator. Every field below the header is guarded by `lock` (a robust,
 * process-shared mutex) unless its comment says otherwise. Indices into the slot
 * arrays ("slots") are what one process tells another; pointers never cross. Bump
 * QSIM_SHM_LAYOUT with any change here: a host of another layout is replaced. */
#ifndef QSIM_SHM_H
#define QSIM_SHM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define QSIM_SHM_MAGIC 0x3174736f686d7371ull /* "qsmhost1" */
#define QSIM_SHM_LAYOUT 7u

#define QSIM_MAX_DEVICES 16
#define QSIM_MAX_PROCS 256
#define QSIM_MAX_CTXS 512
#define QSIM_MAX_STREAMS 8192
#define QSIM_MAX_EVENTS 16384
/* Operations one context may have queued: a launch past it blocks, as a full push
 * buffer blocks the launching thread on real hardware. */
#define QSIM_QUEUE_DEPTH 1024
/* Busy-time history: QSIM_HIST_LEN buckets of QSIM_HIST_BUCKET_NS (2.56 s at 10 ms), fine
 * enough that a 1 s utilization window is off by at most 1%. */
#define QSIM_HIST_LEN 256
#define QSIM_HIST_BUCKET_NS 10000000ull
#define QSIM_NAME_LEN 96
#define QSIM_NS_LEN 64
#define QSIM_GPUS_LEN 2048

/* A process's checkpoint state: the values of the driver's CUprocessState. */
enum qsim_ckpt_state {
    QSIM_CKPT_RUNNING = 0,
    QSIM_CKPT_LOCKED = 1,
    QSIM_CKPT_CHECKPOINTED = 2,
    QSIM_CKPT_FAILED = 3,
};

/* State of a slot in the stream, event and context tables. */
enum qsim_slot_state {
    QSIM_SLOT_FREE = 0,  /* may be taken */
    QSIM_SLOT_USED = 1,  /* owned by a live process */
    QSIM_SLOT_DYING = 2, /* destroyed by its owner but still referenced by queued work;
                            free once that work is done */
};

/* Busy nanoseconds per time bucket. Bucket b (= time / QSIM_HIST_BUCKET_NS) lives in
 * ns[b % QSIM_HIST_LEN] while b > last - QSIM_HIST_LEN; buckets after `last` are zero. */
struct qsim_hist {
    uint64_t last;              /* newest bucket written */
    uint32_t ns[QSIM_HIST_LEN]; /* busy ns in each bucket (<= QSIM_HIST_BUCKET_NS) */
};

/* One simulated GPU. */
struct qsim_dev {
    char name[QSIM_NAME_LEN]; /* e.g. "NVIDIA GeForce GTX 1080"; set at creation */
    uint64_t total;           /* bytes of device memory; set at creation */
    uint32_t sms;             /* multiprocessors; set at creation */
    int32_t cc_major;         /* compute capability; set at creation */
    int32_t cc_minor;
    uint8_t uuid[16]; /* stable for (namespace, index); set at creation */
    uint64_t used;    /* bytes held by processes that are not checkpointed */
    /* The execution engine (engine.c). */
    uint64_t t;                  /* CLOCK_MONOTONIC ns up to which the device is simulated */
    uint64_t slice_start;        /* when the running context's time slice began */
    int32_t cur;                 /* index in runq of the running context; -1: none */
    int32_t nrun;                /* entries in runq */
    int16_t runq[QSIM_MAX_CTXS]; /* context slots with queued work, round-robin order */
    struct qsim_hist busy;       /* time any operation ran */
    struct qsim_hist copy;       /* time a copy or memset ran */
};

enum qsim_op_kind {
    QSIM_OP_KERNEL = 0, /* occupies the device for `remaining` ns */
    QSIM_OP_COPY = 1,   /* a copy or memset: the same, and counts as memory activity */
    QSIM_OP_EVENT = 2,  /* records event slot `arg` when reached; takes no time */
    QSIM_OP_WAIT = 3,   /* blocks its context until stream `arg` completed `wait_seq` */
};

/* One queued operation. Its data movement, if any, was done when it was queued; what
 * remains is its time on the device. */
struct qsim_op {
    uint64_t remaining; /* ns of device time still to run */
    uint64_t seq;       /* its number in its stream (1, 2, ...) */
    uint64_t wait_seq;  /* QSIM_OP_WAIT: sequence number to wait for */
    int32_t stream;     /* stream slot it was queued on */
    int32_t arg;        /* event slot (EVENT) or stream slot (WAIT) */
    uint32_t kind;      /* enum qsim_op_kind */
    uint32_t unused;
};

/* A context's queue. Operations of all its streams share one FIFO: a context runs its
 * work in submission order, one operation at a time. */
struct qsim_ectx {
    uint32_t state;  /* enum qsim_slot_state (never DYING) */
    int32_t proc;    /* owning process slot */
    int32_t ordinal; /* the owner's CUDA ordinal */
    int32_t dev;     /* device index it runs on (changes on a remapping restore) */
    uint64_t head;   /* index of the oldest queued operation */
    uint64_t tail;   /* index past the newest; head == tail: idle */
    struct qsim_op q[QSIM_QUEUE_DEPTH]; /* ring, indexed by (index % QSIM_QUEUE_DEPTH) */
};

struct qsim_stream_slot {
    uint32_t state; /* enum qsim_slot_state */
    int32_t proc;   /* owning process slot */
    int32_t ctx;    /* context slot its work is queued on */
    uint32_t unused;
    uint64_t submitted;   /* sequence number of the newest operation queued */
    uint64_t completed;   /* sequence number of the newest operation completed */
    uint64_t completed_t; /* when that one completed (device time) */
};

struct qsim_event_slot {
    uint32_t state; /* enum qsim_slot_state */
    int32_t proc;   /* owning process slot */
    int32_t stream; /* stream slot of the latest record; -1: never recorded */
    uint32_t done;  /* the latest record has completed and `time` is valid */
    uint64_t seq;   /* sequence number of the latest record in `stream` */
    uint64_t time;  /* CLOCK_MONOTONIC ns at which the latest record completed */
};

/* A process that called cuInit. */
struct qsim_proc {
    /* Held by the process's life thread for as long as the process lives: a trylock
     * that gets EOWNERDEAD or succeeds means the process is gone (robust, shared). */
    pthread_mutex_t life;
    uint32_t state;      /* QSIM_SLOT_FREE or QSIM_SLOT_USED */
    int32_t pid;         /* pid in its own pid namespace */
    uint64_t pidns;      /* inode of that namespace (/proc/self/ns/pid); 0: unknown */
    uint64_t seen_ns;    /* the namespace seen_pid is valid in; 0: none yet */
    int32_t seen_pid;    /* its pid there, found by a process of that namespace */
    int32_t restore_tid; /* thread id of its life thread (cuCheckpointProcessGetRestoreThreadId) */
    int32_t ndev;        /* CUDA ordinals it sees */
    int32_t ord_map[QSIM_MAX_DEVICES]; /* ordinal -> device index */
    uint64_t mem[QSIM_MAX_DEVICES];    /* bytes it holds, by ordinal (contexts included) */
    uint64_t ctx_mem;                  /* what each of its contexts costs (QSIM_CONTEXT_MEMORY) */
    uint32_t nctx[QSIM_MAX_DEVICES];   /* contexts it has, by ordinal */
    /* Checkpointing (cuda_checkpoint.c). The three words are also futex words. */
    _Atomic uint32_t ckpt;                   /* CUprocessState */
    _Atomic uint32_t gate;                   /* nonzero: its driver calls block on entry */
    _Atomic uint32_t in_api;                 /* its threads now inside a driver call */
    int32_t locker;                          /* slot of the process that closed its gate */
    struct qsim_hist busy[QSIM_MAX_DEVICES]; /* its device time, by device index */
};

struct qsim_shm {
    uint64_t magic;  /* QSIM_SHM_MAGIC once initialised; set before publishing */
    uint32_t layout; /* QSIM_SHM_LAYOUT */
    uint32_t unused;
    uint64_t size;            /* sizeof(struct qsim_shm) */
    pthread_mutex_t lock;     /* the host lock: robust, process-shared */
    char ns[QSIM_NS_LEN];     /* namespace */
    char gpus[QSIM_GPUS_LEN]; /* the configuration, normalised (config.c) */
    uint64_t slice_ns;        /* time slice */
    uint32_t ndev;            /* devices in dev[] */
    uint32_t unused2;
    uint64_t last_reap; /* when dead processes were last looked for */
    uint32_t ctx_hint;  /* where the next free-slot searches start */
    uint32_t stream_hint;
    uint32_t event_hint;
    uint32_t unused3;
    struct qsim_dev dev[QSIM_MAX_DEVICES];
    struct qsim_proc proc[QSIM_MAX_PROCS];
    struct qsim_stream_slot stream[QSIM_MAX_STREAMS];
    struct qsim_event_slot event[QSIM_MAX_EVENTS];
    struct qsim_ectx ctx[QSIM_MAX_CTXS];
};

#endif
