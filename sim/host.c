/* host.c - attaching to a simulated host, its robust lock, process liveness and
 * memory accounting.
 * Threads: any thread. The host lock (in shared memory) guards the host; a process's
 * life thread only holds its life mutex and sleeps. */
#include "sim/host.h"

#include <assert.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sim/clock.h"
#include "sim/engine.h"

/* Dead processes are looked for at most this often unless forced. */
#define REAP_INTERVAL_NS 5000000u

struct qsim_host {
    struct qsim_shm *shm; /* owned mapping of the whole host */
};

/* ---- creating and attaching -------------------------------------------------------- */

static int init_robust(pthread_mutex_t *m)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    int rc = pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
    return -rc;
}

/* Fills the device table from cfg. */
static void describe_devices(struct qsim_shm *s, const qsim_config_t *cfg)
{
    memset(s->dev, 0, sizeof s->dev);
    for (int i = 0; i < cfg->ngpu; i++) {
        struct qsim_dev *d = &s->dev[i];
        snprintf(d->name, sizeof d->name, "%s", cfg->gpu[i].name);
        d->total = cfg->gpu[i].memory;
        d->sms = cfg->gpu[i].sms;
        qsim_config_cc(d->name, &d->cc_major, &d->cc_minor);
        qsim_config_uuid(cfg->ns, i, d->uuid);
        d->cur = -1;
        d->t = qsim_now_ns();
    }
    s->ndev = (uint32_t)cfg->ngpu;
    s->slice_ns = cfg->slice_ns;
    snprintf(s->gpus, sizeof s->gpus, "%s", cfg->gpus);
}

/* Builds a complete host under a private name and publishes it as `name` with link(2),
 * which fails if another process published first. Returns 0 (published or lost the
 * race: either way `name` now exists) or -errno. */
static int create_host(const char *name, const qsim_config_t *cfg, char err[QSIM_ERR_LEN])
{
    char tmp[QSIM_NS_LEN + 64]; /* unique per thread, and removed whatever happens */
    snprintf(tmp, sizeof tmp, "%s.new.%d.%ld", name, (int)getpid(), (long)syscall(SYS_gettid));
    int fd = shm_open(tmp, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        int e = errno;
        snprintf(err, QSIM_ERR_LEN, "qsim: cannot create shared memory %s: %s", tmp, strerror(e));
        return -e;
    }
    fchmod(fd, 0666); /* one simulated host for every user, like one machine */
    int rc = 0;
    struct qsim_shm *s = MAP_FAILED;
    if (ftruncate(fd, (off_t)sizeof *s) < 0) {
        rc = -errno;
        snprintf(err, QSIM_ERR_LEN, "qsim: cannot size shared memory %s: %s", tmp, strerror(-rc));
        goto out;
    }
    s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (s == MAP_FAILED) {
        rc = -errno;
        snprintf(err, QSIM_ERR_LEN, "qsim: cannot map shared memory %s: %s", tmp, strerror(-rc));
        goto out;
    }
    if ((rc = init_robust(&s->lock)) < 0) {
        snprintf(err, QSIM_ERR_LEN, "qsim: cannot make the host lock: %s", strerror(-rc));
        goto out;
    }
    snprintf(s->ns, sizeof s->ns, "%s", cfg->ns);
    describe_devices(s, cfg);
    s->size = sizeof *s;
    s->layout = QSIM_SHM_LAYOUT;
    s->magic = QSIM_SHM_MAGIC;
    char from[QSIM_NS_LEN + 80], to[QSIM_NS_LEN + 80];
    snprintf(from, sizeof from, "/dev/shm%s", tmp);
    snprintf(to, sizeof to, "/dev/shm%s", name);
    if (link(from, to) < 0 && errno != EEXIST) {
        rc = -errno;
        snprintf(err, QSIM_ERR_LEN, "qsim: cannot publish %s: %s", to, strerror(-rc));
    }
out:
    if (s != MAP_FAILED)
        munmap(s, sizeof *s);
    shm_unlink(tmp);
    close(fd);
    return rc;
}

/* Maps an existing host. Returns the mapping, NULL with errno ENOENT when there is none,
 * or NULL with errno ESTALE when it has another layout. */
static struct qsim_shm *map_host(const char *name)
{
    int fd = shm_open(name, O_RDWR, 0);
    if (fd < 0)
        return NULL;
    struct stat st;
    struct qsim_shm *s = MAP_FAILED;
    if (fstat(fd, &st) == 0 && (size_t)st.st_size == sizeof *s)
        s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (s == MAP_FAILED) {
        errno = ESTALE;
        return NULL;
    }
    if (s->magic != QSIM_SHM_MAGIC || s->layout != QSIM_SHM_LAYOUT || s->size != sizeof *s) {
        munmap(s, sizeof *s);
        errno = ESTALE;
        return NULL;
    }
    return s;
}

static bool any_live_proc(const struct qsim_shm *s)
{
    for (int p = 0; p < QSIM_MAX_PROCS; p++)
        if (s->proc[p].state == QSIM_SLOT_USED)
            return true;
    return false;
}

int qsim_host_open(const qsim_config_t *cfg, qsim_host_t **out, char err[QSIM_ERR_LEN])
{
    char name[QSIM_NS_LEN + 8];
    snprintf(name, sizeof name, "/qsim-%s", cfg->ns);
    struct qsim_shm *s = NULL;
    for (int attempt = 0; !s && attempt < 5; attempt++) {
        s = map_host(name);
        if (s)
            break;
        if (errno == ESTALE) {
            /* Left by a build with another layout: nothing of ours can use it. */
            shm_unlink(name);
        } else if (errno != ENOENT) {
            int e = errno;
            snprintf(err, QSIM_ERR_LEN, "qsim: cannot open shared memory %s: %s", name,
                     strerror(e));
            return -e;
        }
        int rc = create_host(name, cfg, err);
        if (rc < 0)
            return rc;
    }
    if (!s) {
        snprintf(err, QSIM_ERR_LEN, "qsim: cannot attach to %s: it keeps changing", name);
        return -EAGAIN;
    }
    qsim_host_t *h = calloc(1, sizeof *h);
    if (!h) {
        munmap(s, sizeof *s);
        snprintf(err, QSIM_ERR_LEN, "qsim: out of memory");
        return -ENOMEM;
    }
    h->shm = s;
    if (strcmp(s->gpus, cfg->gpus) != 0 || s->slice_ns != cfg->slice_ns) {
        /* Another configuration: the machine may be "rebuilt" only while nobody uses it. */
        int rc = qsim_host_lock(h);
        if (rc == 0) {
            qsim_host_reap_locked(s, true);
            if (any_live_proc(s)) {
                snprintf(err, QSIM_ERR_LEN,
                         "qsim: namespace \"%s\" is in use with QSIM_GPUS=\"%.200s\" and "
                         "QSIM_TIMESLICE_US=%llu: use the same or another QSIM_NAMESPACE",
                         cfg->ns, s->gpus, (unsigned long long)(s->slice_ns / 1000u));
                rc = -EBUSY;
            } else {
                describe_devices(s, cfg);
            }
            qsim_host_unlock(h);
        } else {
            snprintf(err, QSIM_ERR_LEN, "qsim: the lock of %s is unusable", name);
        }
        if (rc < 0) {
            qsim_host_close(&h);
            return rc;
        }
    }
    *out = h;
    return 0;
}

void qsim_host_close(qsim_host_t **self_p)
{
    qsim_host_t *self = *self_p;
    if (!self)
        return;
    munmap(self->shm, sizeof *self->shm);
    free(self);
    *self_p = NULL;
}

struct qsim_shm *qsim_host_shm(qsim_host_t *self)
{
    return self->shm;
}

/* ---- the lock ---------------------------------------------------------------------- */

/* Recomputes what a holder that died half-way may have left inconsistent: the devices'
 * used totals (from the processes' own) and the run queues (from the context queues). */
static void repair(struct qsim_shm *s)
{
    for (uint32_t d = 0; d < s->ndev; d++)
        s->dev[d].used = 0;
    for (int p = 0; p < QSIM_MAX_PROCS; p++) {
        struct qsim_proc *pr = &s->proc[p];
        if (pr->state != QSIM_SLOT_USED || !qsim_host_proc_charged(pr))
            continue;
        for (int o = 0; o < pr->ndev && o < QSIM_MAX_DEVICES; o++)
            if (pr->ord_map[o] >= 0 && pr->ord_map[o] < (int)s->ndev)
                s->dev[pr->ord_map[o]].used += pr->mem[o];
    }
    qsim_engine_repair_locked(s);
}

int qsim_host_lock(qsim_host_t *self)
{
    struct qsim_shm *s = self->shm;
    int rc = pthread_mutex_lock(&s->lock);
    if (rc == EOWNERDEAD) {
        pthread_mutex_consistent(&s->lock);
        repair(s);
        qsim_host_reap_locked(s, true);
        rc = 0;
    }
    return -rc;
}

void qsim_host_unlock(qsim_host_t *self)
{
    pthread_mutex_unlock(&self->shm->lock);
}

/* ---- processes --------------------------------------------------------------------- */

bool qsim_host_proc_charged(const struct qsim_proc *p)
{
    return atomic_load_explicit(&p->ckpt, memory_order_relaxed) != QSIM_CKPT_CHECKPOINTED;
}

/* True when the process of slot p is gone: its life mutex is free or its owner died. */
static bool proc_dead(struct qsim_proc *p)
{
    int rc = pthread_mutex_trylock(&p->life);
    if (rc == EBUSY)
        return false;
    if (rc == EOWNERDEAD)
        pthread_mutex_consistent(&p->life);
    if (rc == 0 || rc == EOWNERDEAD)
        pthread_mutex_unlock(&p->life);
    return true;
}

static void reap_proc(struct qsim_shm *s, int slot)
{
    struct qsim_proc *p = &s->proc[slot];
    if (qsim_host_proc_charged(p)) {
        for (int o = 0; o < p->ndev && o < QSIM_MAX_DEVICES; o++) {
            struct qsim_dev *d = &s->dev[p->ord_map[o]];
            d->used -= p->mem[o] < d->used ? p->mem[o] : d->used;
        }
    }
    qsim_engine_drop_proc_locked(s, slot);
    /* A process killed while its checkpointer waited must not leave that one waiting. */
    atomic_store(&p->gate, 0);
    qsim_futex_wake(&p->gate);
    qsim_futex_wake(&p->in_api);
    /* A checkpointer killed half-way through a lock must not leave its target blocked
     * and still RUNNING, where no unlock can reach it. */
    for (int q = 0; q < QSIM_MAX_PROCS; q++) {
        struct qsim_proc *t = &s->proc[q];
        if (t->state == QSIM_SLOT_USED && t->locker == slot && atomic_load(&t->gate) &&
            atomic_load(&t->ckpt) == QSIM_CKPT_RUNNING) {
            atomic_store(&t->gate, 0);
            qsim_futex_wake(&t->gate);
        }
    }
    p->pid = 0;
    p->state = QSIM_SLOT_FREE;
}

void qsim_host_reap_locked(struct qsim_shm *s, bool force)
{
    uint64_t now = qsim_now_ns();
    if (!force && now - s->last_reap < REAP_INTERVAL_NS)
        return;
    s->last_reap = now;
    for (int p = 0; p < QSIM_MAX_PROCS; p++)
        if (s->proc[p].state == QSIM_SLOT_USED && proc_dead(&s->proc[p]))
            reap_proc(s, p);
}

/* The inode of pid's pid namespace ("self": the caller's), 0 when /proc does not say. */
static uint64_t pidns_of(const char *pid)
{
    char path[300];
    struct stat st;
    snprintf(path, sizeof path, "/proc/%s/ns/pid", pid);
    return stat(path, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

/* The innermost pid of /proc/<name>/status's NSpid line (its pid in its own namespace),
 * or -1. */
static int innermost_pid(const char *name)
{
    char path[300], line[256];
    snprintf(path, sizeof path, "/proc/%s/status", name);
    FILE *f = fopen(path, "re");
    int pid = -1;
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "NSpid:", 6) != 0)
            continue;
        char *last = strrchr(line, '\t');
        pid = last ? atoi(last + 1) : -1;
        break;
    }
    if (f)
        fclose(f);
    return pid;
}

int qsim_host_pid_seen_locked(struct qsim_proc *p)
{
    /* Not cached: a process does not change pid namespace, but this one may be a child
     * forked after a caller of another namespace filled a cache. */
    uint64_t mine = pidns_of("self");
    if (!p->pidns || !mine || p->pidns == mine)
        return p->pid;
    if (p->seen_ns == mine)
        return p->seen_pid;
    /* Which of the processes this /proc shows is p: in p's namespace, with p's pid there.
     * O(processes) once per process and namespace: the result is kept in the slot. */
    DIR *d = opendir("/proc");
    struct dirent *e;
    int found = -1;
    while (d && found < 0 && (e = readdir(d))) {
        if (!isdigit((unsigned char)e->d_name[0]) || pidns_of(e->d_name) != p->pidns)
            continue;
        if (innermost_pid(e->d_name) == p->pid)
            found = atoi(e->d_name);
    }
    if (d)
        closedir(d);
    if (found < 0)
        return p->pid;
    p->seen_ns = mine;
    p->seen_pid = found;
    return found;
}

int qsim_host_find_pid_locked(struct qsim_shm *s, int pid)
{
    qsim_host_reap_locked(s, true);
    /* pid as the caller sees it, as the driver takes it: a process in a container is
     * named by its pid in the caller's namespace (the host's, for the arbiter). */
    for (int p = 0; p < QSIM_MAX_PROCS; p++)
        if (s->proc[p].state == QSIM_SLOT_USED && qsim_host_pid_seen_locked(&s->proc[p]) == pid)
            return p;
    return -1;
}

/* The life thread: holds its process's life mutex until the process ends. */
struct life {
    pthread_mutex_t *mutex; /* the slot's life mutex */
    pthread_mutex_t m;      /* guards the two below */
    pthread_cond_t cv;
    int tid; /* set once the mutex is held; -errno on failure */
    bool done;
};

static void *life_main(void *arg)
{
    struct life *l = arg;
    int rc = pthread_mutex_lock(l->mutex);
    pthread_mutex_lock(&l->m);
    l->tid = rc ? -rc : (int)syscall(SYS_gettid);
    l->done = true;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->m);
    if (rc)
        return NULL;
    for (;;)
        pause(); /* every signal is blocked here: this never returns */
    return NULL;
}

/* Starts the life thread on mutex and waits until it holds it. Returns its tid or
 * -errno. The thread blocks every signal, so the application's handlers never run on it. */
static int start_life(pthread_mutex_t *mutex)
{
    struct life l = {.mutex = mutex, .tid = 0, .done = false};
    pthread_mutex_init(&l.m, NULL);
    pthread_cond_init(&l.cv, NULL);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_t t;
    int rc = pthread_create(&t, &attr, life_main, &l);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0) {
        pthread_mutex_lock(&l.m);
        while (!l.done)
            pthread_cond_wait(&l.cv, &l.m);
        pthread_mutex_unlock(&l.m);
        rc = l.tid < 0 ? -l.tid : 0;
    }
    pthread_cond_destroy(&l.cv);
    pthread_mutex_destroy(&l.m);
    return rc ? -rc : l.tid;
}

int qsim_host_register(qsim_host_t *self, const qsim_config_t *cfg, int ndev, const int ord_map[],
                       int *slot, char err[QSIM_ERR_LEN])
{
    struct qsim_shm *s = self->shm;
    if (qsim_host_lock(self) < 0) {
        snprintf(err, QSIM_ERR_LEN, "qsim: the host lock of \"%s\" is unusable", s->ns);
        return -ENOTRECOVERABLE;
    }
    qsim_host_reap_locked(s, true);
    int p = -1;
    for (int i = 0; i < QSIM_MAX_PROCS && p < 0; i++)
        if (s->proc[i].state == QSIM_SLOT_FREE)
            p = i;
    int rc = 0;
    if (strcmp(s->gpus, cfg->gpus) != 0 || s->slice_ns != cfg->slice_ns) {
        snprintf(err, QSIM_ERR_LEN,
                 "qsim: namespace \"%s\" was just rebuilt with QSIM_GPUS=\"%.200s\": use the "
                 "same or another QSIM_NAMESPACE",
                 s->ns, s->gpus);
        rc = -EBUSY;
        goto out;
    }
    if (p < 0) {
        snprintf(err, QSIM_ERR_LEN, "qsim: more than %d processes on namespace \"%s\"",
                 QSIM_MAX_PROCS, s->ns);
        rc = -ENOSPC;
        goto out;
    }
    struct qsim_proc *pr = &s->proc[p];
    if ((rc = init_robust(&pr->life)) < 0) {
        snprintf(err, QSIM_ERR_LEN, "qsim: cannot make a process lock: %s", strerror(-rc));
        goto out;
    }
    int tid = start_life(&pr->life);
    if (tid < 0) {
        rc = tid;
        snprintf(err, QSIM_ERR_LEN, "qsim: cannot start the driver thread: %s", strerror(-rc));
        goto out;
    }
    pr->pid = (int)getpid();
    pr->pidns = pidns_of("self");
    pr->seen_ns = 0;
    pr->seen_pid = 0;
    pr->restore_tid = tid;
    pr->ndev = ndev;
    pr->ctx_mem = cfg->ctx_memory;
    for (int o = 0; o < QSIM_MAX_DEVICES; o++) {
        pr->ord_map[o] = o < ndev ? ord_map[o] : -1;
        pr->mem[o] = 0;
        pr->nctx[o] = 0;
    }
    atomic_store(&pr->ckpt, 0);
    atomic_store(&pr->gate, 0);
    atomic_store(&pr->in_api, 0);
    pr->locker = -1;
    memset(pr->busy, 0, sizeof pr->busy);
    pr->state = QSIM_SLOT_USED;
    *slot = p;
out:
    qsim_host_unlock(self);
    return rc;
}

/* ---- accounting -------------------------------------------------------------------- */

int qsim_host_charge_locked(struct qsim_shm *s, int p, int ord, uint64_t bytes)
{
    struct qsim_proc *pr = &s->proc[p];
    struct qsim_dev *d = &s->dev[pr->ord_map[ord]];
    if (qsim_host_proc_charged(pr)) {
        if (bytes > d->total - d->used)
            return -ENOMEM;
        d->used += bytes;
    }
    pr->mem[ord] += bytes;
    return 0;
}

void qsim_host_uncharge_locked(struct qsim_shm *s, int p, int ord, uint64_t bytes)
{
    struct qsim_proc *pr = &s->proc[p];
    struct qsim_dev *d = &s->dev[pr->ord_map[ord]];
    assert(bytes <= pr->mem[ord]);
    pr->mem[ord] -= bytes;
    if (qsim_host_proc_charged(pr))
        d->used -= bytes < d->used ? bytes : d->used;
}

/* ---- futexes ----------------------------------------------------------------------- */

void qsim_futex_wait(_Atomic uint32_t *word, uint32_t val, uint64_t timeout_ns)
{
    struct timespec ts = {(time_t)(timeout_ns / 1000000000u), (long)(timeout_ns % 1000000000u)};
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, val, timeout_ns ? &ts : NULL, NULL, 0);
}

void qsim_futex_wake(_Atomic uint32_t *word)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}
