/* audit.c - real use, unmanaged processes and over-quota vGPUs from NVML's rounds.
 * Pure; single-threaded: the loop thread (see audit.h). */
#include "arbiter/audit.h"

#include "arbiter/tenant.h"

#include "proto/units.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_S 1000000000ull
/* A process killed is not killed again, nor another one of its vGPU, for this long:
 * NVML may list it for a round or two while the driver tears it down. */
#define KILL_PAUSE_NS (3ull * NS_PER_S)
#define MAX_RECENT_KILLS 64

/* How an unmanaged process relates to the vGPUs. */
enum why {
    W_NONE,       /* nothing ties it to a vGPU */
    W_CREDS,      /* its environment holds a vGPU's id and secret: the shim is not loaded */
    W_ELSEWHERE,  /* a tenant of a vGPU placed on another GPU */
    W_HIDDEN,     /* not visible in the arbiter's pid namespace */
    W_UNREADABLE, /* its environment may not be read */
};

/* A process NVML lists on a GPU that holds no session of a vGPU placed there. */
struct tracked {
    unsigned gpu, pid;
    uint64_t bytes;       /* what NVML says it holds */
    bool known;           /* NVML gave a figure */
    uint64_t first;       /* ns it was first seen in this run of sightings */
    int inspect_rc;       /* of the inspection at first sight */
    qa_proc_info_t info;  /* what that inspection found */
    enum why why;         /* this round's relation */
    char vgpu[QP_ID_LEN]; /* the vGPU it is charged to, "" if none */
    bool reported;        /* logged as a finding */
    bool kill_tried;      /* a kill was attempted (once) */
    int kill_rc;          /* its result */
};

/* A session's process, for finding sessions by pid. */
struct sess {
    unsigned pid;
    qa_session_t *p;
};

struct qa_audit {
    const qa_config_t *cfg; /* borrowed */
    const qa_log_t *log;    /* borrowed */
    qa_audit_ops_t ops;
    void *arg;
    struct tracked *cur; /* owned: last round's unmanaged processes, by (gpu, pid) */
    size_t ncur, capcur;
    struct tracked *next; /* owned: this round's, being built */
    size_t nnext, capnext;
    struct sess *sess; /* owned: this round's sessions by pid */
    size_t nsess, capsess;
    qp_finding_t *findings; /* owned: the last round's reported findings */
    size_t nfindings, capfindings;
    struct kill {
        unsigned pid;           /* killed */
        uint64_t at;            /* when */
    } recent[MAX_RECENT_KILLS]; /* processes killed lately, a ring */
    size_t nrecent;
    uint64_t kills; /* since the start */
};

/* Grows *v (elements of size) to hold at least n. Returns 0 or -ENOMEM. */
static int reserve(void **v, size_t *cap, size_t n, size_t size)
{
    if (n <= *cap)
        return 0;
    size_t c = *cap ? *cap : 16;
    while (c < n)
        c *= 2;
    void *bigger = realloc(*v, c * size);
    if (!bigger)
        return -ENOMEM;
    *v = bigger;
    *cap = c;
    return 0;
}

qa_audit_t *qa_audit_new(const qa_config_t *cfg, const qa_log_t *log, const qa_audit_ops_t *ops,
                         void *arg)
{
    qa_audit_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->cfg = cfg;
    self->log = log;
    self->ops = *ops;
    self->arg = arg;
    return self;
}

void qa_audit_destroy(qa_audit_t **self_p)
{
    qa_audit_t *self = *self_p;
    if (!self)
        return;
    free(self->cur);
    free(self->next);
    free(self->sess);
    free(self->findings);
    free(self);
    *self_p = NULL;
}

const qp_finding_t *qa_audit_findings(const qa_audit_t *self, size_t *count)
{
    *count = self->nfindings;
    return self->findings;
}

uint64_t qa_audit_kills(const qa_audit_t *self)
{
    return self->kills;
}

/* ---- sessions by pid ------------------------------------------------------------- */

static int sess_cmp(const void *a, const void *b)
{
    const struct sess *x = a, *y = b;
    if (x->pid != y->pid)
        return x->pid < y->pid ? -1 : 1;
    /* Two sessions of one pid (a connection that closed after its last message was
     * read, and its successor): the newer session wins. */
    return x->p->id < y->p->id ? 1 : -1;
}

/* Every session whose pid the arbiter knows, sorted. Returns 0 or -ENOMEM. */
static int collect_sessions(qa_audit_t *self, qa_host_t *host)
{
    self->nsess = 0;
    for (size_t i = 0; i < qa_host_nvgpus(host); i++) {
        for (qa_session_t *s = qa_host_vgpu(host, i)->sessions; s; s = s->next_in_vgpu) {
            if (s->host_pid <= 0)
                continue;
            if (reserve((void **)&self->sess, &self->capsess, self->nsess + 1, sizeof *self->sess))
                return -ENOMEM;
            self->sess[self->nsess++] = (struct sess){(unsigned)s->host_pid, s};
        }
    }
    if (self->nsess) /* qsort and bsearch want a real array even for 0 items */
        qsort(self->sess, self->nsess, sizeof *self->sess, sess_cmp);
    return 0;
}

static qa_session_t *session_of(const qa_audit_t *self, unsigned pid)
{
    size_t lo = 0, hi = self->nsess;
    while (lo < hi) { /* the first entry with that pid: the newest session */
        size_t mid = lo + (hi - lo) / 2;
        if (self->sess[mid].pid < pid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < self->nsess && self->sess[lo].pid == pid ? self->sess[lo].p : NULL;
}

/* ---- what sessions are charged --------------------------------------------------- */

/* The least of a session's last gaps (p->seen.ngap counts them, p->seen.gap holds the last
 * three). A gap is NVML's figure for the process minus the use it last reported, taken
 * in one round: charged on top of the process's reservation, which covers that use, it
 * never lets what the process holds exceed what is charged, whichever way the report
 * lags (memory it freed without reporting yet is still reserved). A lagging report of
 * new allocations makes a gap too large, and never three rounds in a row unless the
 * process keeps allocating without a heartbeat between: the least of three drops that
 * overcharge; a lasting rise (a new context) is charged after three rounds. */
static uint64_t least_gap(const qa_session_t *p)
{
    uint64_t least = p->seen.gap[0];
    for (unsigned i = 1; i < p->seen.ngap && i < 3; i++)
        least = p->seen.gap[i] < least ? p->seen.gap[i] : least;
    return least;
}

/* Session p was (listed) or was not listed with real bytes on its vGPU's GPU this round:
 * learns what the driver holds for it beyond its allocations and has that charged. */
static void measure_session(qa_audit_t *self, qa_session_t *p, bool listed, uint64_t real)
{
    p->seen.real = listed ? real : 0;
    if (listed) {
        p->seen.gap[p->seen.ngap % 3] = real > p->used ? real - p->used : 0;
        p->seen.ngap = p->seen.ngap == 5 ? 3 : p->seen.ngap + 1; /* past 3 only the position matters */
    } else {
        p->seen.ngap = 0; /* no context: the driver holds nothing for it */
    }
    uint64_t charge = self->cfg->charge_real && p->seen.ngap ? least_gap(p) : 0;
    if (charge != p->overhead)
        self->ops.charge(self->arg, p, charge);
}

/* ---- unmanaged processes ---------------------------------------------------------- */

static int tracked_cmp(const void *a, const void *b)
{
    const struct tracked *x = a, *y = b;
    if (x->gpu != y->gpu)
        return x->gpu < y->gpu ? -1 : 1;
    return x->pid < y->pid ? -1 : x->pid > y->pid;
}

static struct tracked *find_tracked(struct tracked *v, size_t n, unsigned gpu, unsigned pid)
{
    struct tracked key = {.gpu = gpu, .pid = pid};
    return n ? bsearch(&key, v, n, sizeof *v, tracked_cmp) : NULL;
}

/* The vGPU named in t's environment, when the secret there is that vGPU's. */
static qa_vgpu_t *credentials_of(qa_host_t *host, const struct tracked *t)
{
    if (t->inspect_rc < 0 || !t->info.vgpu[0])
        return NULL;
    qa_vgpu_t *v = qa_host_find(host, t->info.vgpu);
    /* Without the secret anyone could pin a process on a vGPU it does not belong to, and
     * have that vGPU's quota charged (and its processes killed) for it. */
    return v && strcmp(v->secret, t->info.secret) == 0 ? v : NULL;
}

/* Works out what t is to the vGPUs this round: t->why, and in t->vgpu the vGPU it is
 * charged to. */
static void relate(qa_audit_t *self, qa_host_t *host, struct tracked *t)
{
    qa_session_t *s = session_of(self, t->pid);
    qa_vgpu_t *v = NULL;
    if (s) {
        t->why = W_ELSEWHERE;
        v = s->vgpu;
    } else if ((v = credentials_of(host, t))) {
        t->why = W_CREDS;
    } else {
        t->why = t->inspect_rc == -ENOENT   ? W_HIDDEN
                 : t->inspect_rc == -EACCES ? W_UNREADABLE
                                            : W_NONE;
    }
    snprintf(t->vgpu, sizeof t->vgpu, "%s", v ? v->id : "");
}

/* One line on what t is, for the log and qgpuctl stats. */
static void describe(const struct tracked *t, qa_host_t *host, char *out, size_t size)
{
    const qa_vgpu_t *v = t->vgpu[0] ? qa_host_find(host, t->vgpu) : NULL;
    char mem[48];
    if (t->known)
        snprintf(mem, sizeof mem, "%llu MiB", (unsigned long long)(t->bytes / QP_MIB));
    else
        snprintf(mem, sizeof mem, "memory NVML does not report");
    switch (t->why) {
    case W_CREDS:
        snprintf(out, size,
                 "pid %u (%s) holds %s on GPU %u with vGPU %s's credentials but without the "
                 "shim; charged to its %llu MiB quota",
                 t->pid, t->info.name, mem, t->gpu, t->vgpu,
                 (unsigned long long)(v ? v->memory_mb : 0));
        break;
    case W_ELSEWHERE:
        snprintf(out, size,
                 "pid %u (%s) holds %s on GPU %u, but its vGPU %s is on GPU %u; charged to "
                 "its quota",
                 t->pid, t->info.name, mem, t->gpu, t->vgpu, v ? v->gpu : 0);
        break;
    case W_HIDDEN:
        snprintf(out, size,
                 "pid %u holds %s on GPU %u and is no vGPU's tenant; it is not visible in "
                 "qarbiter's pid namespace (run qarbiter in the host's)",
                 t->pid, mem, t->gpu);
        break;
    default:
        snprintf(out, size, "pid %u (%s) holds %s on GPU %u and is no vGPU's tenant", t->pid,
                 t->info.name[0] ? t->info.name : "?", mem, t->gpu);
        break;
    }
}

static bool recently_killed(const qa_audit_t *self, unsigned pid, uint64_t now)
{
    for (size_t i = 0; i < self->nrecent && i < MAX_RECENT_KILLS; i++)
        if (self->recent[i].pid == pid && now - self->recent[i].at < KILL_PAUSE_NS)
            return true;
    return false;
}

/* Kills pid (started at start) for reason; logs either way. Returns the kill's result. */
static int kill_proc(qa_audit_t *self, unsigned pid, uint64_t start, const char *name,
                     const char *reason, uint64_t now)
{
    int rc = self->ops.kill(self->arg, pid, start);
    if (rc == 0) {
        self->kills++;
        self->recent[self->nrecent++ % MAX_RECENT_KILLS] = (struct kill){pid, now};
        qa_log(self->log, QA_WARN, "killed pid %u (%s): %s", pid, name, reason);
    } else {
        qa_log(self->log, QA_ERROR, "cannot kill pid %u (%s): %s (%s)", pid, name, strerror(-rc),
               reason);
    }
    return rc;
}

/* Carries over what was known of each process of this round from the last one,
 * inspects the new ones and works out what each is to the vGPUs. */
static void settle_unmanaged(qa_audit_t *self, qa_host_t *host)
{
    if (self->nnext)
        qsort(self->next, self->nnext, sizeof *self->next, tracked_cmp);
    for (size_t i = 0; i < self->nnext; i++) {
        struct tracked *t = &self->next[i];
        const struct tracked *old = find_tracked(self->cur, self->ncur, t->gpu, t->pid);
        if (old) {
            t->first = old->first;
            t->inspect_rc = old->inspect_rc;
            t->info = old->info;
            t->reported = old->reported;
            t->kill_tried = old->kill_tried;
            t->kill_rc = old->kill_rc;
        } else {
            t->inspect_rc = self->ops.inspect(self->arg, t->pid, &t->info);
        }
        relate(self, host, t);
    }
    for (size_t i = 0; i < self->ncur; i++) {
        const struct tracked *t = &self->cur[i];
        if (t->reported && !find_tracked(self->next, self->nnext, t->gpu, t->pid))
            qa_log(self->log, QA_INFO, "GPU %u: unmanaged pid %u (%s) is gone", t->gpu, t->pid,
                   t->info.name);
    }
}

/* Reports the unmanaged processes that lasted the grace, and acts on them. */
static void act_unmanaged(qa_audit_t *self, qa_host_t *host, uint64_t now)
{
    if (self->cfg->audit_unmanaged == QA_IGNORE)
        return;
    uint64_t grace = (uint64_t)self->cfg->audit_grace_ms * 1000000ull;
    for (size_t i = 0; i < self->nnext; i++) {
        struct tracked *t = &self->next[i];
        if (now - t->first < grace)
            continue;
        char line[QP_DETAIL_LEN];
        describe(t, host, line, sizeof line);
        if (!t->reported)
            qa_log(self->log, QA_WARN, "%s", line);
        t->reported = true;
        if (self->cfg->audit_unmanaged != QA_KILL || t->kill_tried ||
            recently_killed(self, t->pid, now))
            continue;
        t->kill_tried = true;
        if (t->why == W_HIDDEN) {
            t->kill_rc = -ESRCH;
            qa_log(self->log, QA_ERROR,
                   "cannot kill pid %u: not visible in qarbiter's pid "
                   "namespace (run qarbiter in the host's)",
                   t->pid);
        } else {
            t->kill_rc = kill_proc(self, t->pid, t->info.start, t->info.name, line, now);
        }
    }
}

/* ---- over quota -------------------------------------------------------------------- */

/* The process of v that holds the most beyond what it reserved, or pid 0: *name and
 * *start describe it. Unmanaged processes reserved nothing. */
static unsigned culprit(qa_audit_t *self, const qa_vgpu_t *v, uint64_t now, const char **name,
                        uint64_t *start, uint64_t *excess)
{
    unsigned pid = 0;
    *excess = 0;
    for (const qa_session_t *s = v->sessions; s; s = s->next_in_vgpu) {
        if (s->seen.real > s->reserved && s->seen.real - s->reserved > *excess &&
            !recently_killed(self, (unsigned)s->host_pid, now)) {
            *excess = s->seen.real - s->reserved;
            pid = (unsigned)s->host_pid;
            *name = "";
            *start = 0;
        }
    }
    for (size_t i = 0; i < self->nnext; i++) {
        const struct tracked *t = &self->next[i];
        if (strcmp(t->vgpu, v->id) == 0 && t->bytes > *excess &&
            !recently_killed(self, t->pid, now)) {
            *excess = t->bytes;
            pid = t->pid;
            *name = t->info.name;
            *start = t->info.start;
        }
    }
    return pid;
}

/* Reports v when its processes have held more than its quota for the grace, and acts. */
static void check_quota(qa_audit_t *self, qa_vgpu_t *v, uint64_t now)
{
    uint64_t quota = v->memory_mb * QP_MIB;
    if (v->mem_real <= quota) {
        if (v->over_reported)
            qa_log(self->log, QA_INFO, "vGPU %s is back within its quota: %llu of %llu MiB", v->id,
                   (unsigned long long)(v->mem_real / QP_MIB), (unsigned long long)v->memory_mb);
        v->over_since = 0;
        v->over_reported = false;
        return;
    }
    if (!v->over_since)
        v->over_since = now;
    if (now - v->over_since < (uint64_t)self->cfg->audit_grace_ms * 1000000ull)
        return;
    const char *name = "";
    uint64_t start = 0, excess;
    unsigned pid = culprit(self, v, now, &name, &start, &excess);
    if (!v->over_reported)
        qa_log(self->log, QA_WARN,
               "vGPU %s: its processes hold %llu MiB on GPU %u, over its %llu MiB quota (pid %u "
               "holds %llu MiB beyond what it reserved)",
               v->id, (unsigned long long)(v->mem_real / QP_MIB), v->gpu,
               (unsigned long long)v->memory_mb, pid, (unsigned long long)(excess / QP_MIB));
    v->over_reported = true;
    if (self->cfg->audit_over_quota != QA_KILL || !pid)
        return;
    char why[QP_DETAIL_LEN];
    snprintf(why, sizeof why,
             "vGPU %s holds %llu MiB, over its %llu MiB quota, and this process %llu MiB beyond "
             "its reservation",
             v->id, (unsigned long long)(v->mem_real / QP_MIB), (unsigned long long)v->memory_mb,
             (unsigned long long)(excess / QP_MIB));
    if (!start) { /* a tenant: its start time is read now, just before the kill */
        qa_proc_info_t info;
        if (self->ops.inspect(self->arg, pid, &info) == -ENOENT)
            return;
        start = info.start;
        kill_proc(self, pid, start, info.name, why, now);
    } else {
        kill_proc(self, pid, start, name, why, now);
    }
}

/* ---- findings ---------------------------------------------------------------------- */

static qp_finding_t *new_finding(qa_audit_t *self)
{
    if (reserve((void **)&self->findings, &self->capfindings, self->nfindings + 1,
                sizeof *self->findings))
        return NULL;
    qp_finding_t *f = &self->findings[self->nfindings++];
    memset(f, 0, sizeof *f);
    return f;
}

static void list_findings(qa_audit_t *self, qa_host_t *host, uint64_t now)
{
    self->nfindings = 0;
    for (size_t i = 0; i < self->nnext; i++) {
        const struct tracked *t = &self->next[i];
        qp_finding_t *f;
        if (!t->reported || !(f = new_finding(self)))
            continue;
        snprintf(f->kind, sizeof f->kind, "unmanaged");
        f->gpu = (int)t->gpu;
        snprintf(f->vgpu, sizeof f->vgpu, "%s", t->vgpu);
        f->pid = t->pid;
        snprintf(f->name, sizeof f->name, "%s", t->info.name);
        f->memory = t->bytes;
        const qa_vgpu_t *v = t->vgpu[0] ? qa_host_find(host, t->vgpu) : NULL;
        f->quota = v ? v->memory_mb * QP_MIB : 0;
        f->since = (now - t->first) / NS_PER_S;
        snprintf(f->action, sizeof f->action, "%s",
                 !t->kill_tried   ? "reported"
                 : t->kill_rc < 0 ? "kill failed"
                                  : "killed");
        describe(t, host, f->detail, sizeof f->detail);
    }
    for (size_t i = 0; i < qa_host_nvgpus(host); i++) {
        const qa_vgpu_t *v = qa_host_vgpu(host, i);
        qp_finding_t *f;
        if (!v->over_reported || !(f = new_finding(self)))
            continue;
        snprintf(f->kind, sizeof f->kind, "over_quota");
        f->gpu = (int)v->gpu;
        snprintf(f->vgpu, sizeof f->vgpu, "%s", v->id);
        const char *name = "";
        uint64_t start, excess;
        f->pid = culprit(self, v, now, &name, &start, &excess);
        snprintf(f->name, sizeof f->name, "%s", name);
        f->memory = v->mem_real;
        f->quota = v->memory_mb * QP_MIB;
        f->since = (now - v->over_since) / NS_PER_S;
        snprintf(f->action, sizeof f->action, "reported");
        snprintf(f->detail, sizeof f->detail,
                 "vGPU %s: its processes hold %llu MiB on GPU %u, over its %llu MiB quota", v->id,
                 (unsigned long long)(v->mem_real / QP_MIB), v->gpu,
                 (unsigned long long)v->memory_mb);
    }
}

/* ---- one round --------------------------------------------------------------------- */

static bool measured(const qa_gpu_sample_t *samples, size_t n, unsigned gpu)
{
    return gpu < n && samples[gpu].ok && samples[gpu].mem_ok;
}

void qa_audit_round(qa_audit_t *self, qa_host_t *host, const qa_gpu_sample_t *samples, size_t n,
                    uint64_t now)
{
    if (n > qa_host_ngpus(host))
        n = qa_host_ngpus(host);
    if (collect_sessions(self, host) < 0) {
        qa_log(self->log, QA_ERROR, "out of memory for the audit: this round is skipped");
        return;
    }
    /* A vGPU's figures change only in rounds that measured its GPU. */
    for (size_t i = 0; i < qa_host_nvgpus(host); i++) {
        qa_vgpu_t *v = qa_host_vgpu(host, i);
        if (!measured(samples, n, v->gpu))
            continue;
        v->mem_real = v->mem_unmanaged = 0;
        v->procs_unmanaged = 0;
    }
    self->nnext = 0;
    for (unsigned g = 0; g < n; g++) {
        if (!measured(samples, n, g))
            continue;
        qa_gpu_t *gpu = qa_host_gpu(host, g);
        gpu->memory_unmanaged = 0;
        gpu->procs_unmanaged = 0;
        const qa_gpu_sample_t *s = &samples[g];
        for (size_t k = 0; k < s->nmem; k++) {
            const qa_proc_mem_t *m = &s->mem[k];
            qa_session_t *p = session_of(self, m->pid);
            /* A vGPU moving to another GPU (mover.h) belongs on both until it is done. */
            if (p && (p->vgpu->gpu == g || p->vgpu->moving == g + 1)) {
                p->vgpu->mem_real += m->bytes;
                continue; /* a tenant where it belongs: measured below */
            }
            gpu->memory_unmanaged += m->bytes;
            gpu->procs_unmanaged++;
            if (reserve((void **)&self->next, &self->capnext, self->nnext + 1,
                        sizeof *self->next)) {
                qa_log(self->log, QA_ERROR, "out of memory for the audit: pid %u not followed",
                       m->pid);
                continue;
            }
            self->next[self->nnext++] = (struct tracked){
                .gpu = g, .pid = m->pid, .bytes = m->bytes, .known = m->known, .first = now};
        }
    }
    settle_unmanaged(self, host);
    for (size_t i = 0; i < self->nnext; i++) {
        struct tracked *t = &self->next[i];
        qa_vgpu_t *v = t->vgpu[0] ? qa_host_find(host, t->vgpu) : NULL;
        if (v && measured(samples, n, v->gpu)) {
            v->mem_real += t->bytes;
            v->mem_unmanaged += t->bytes;
            v->procs_unmanaged++;
        }
    }
    /* Sessions: what each really holds, and what the driver holds for it. */
    for (size_t i = 0; i < self->nsess; i++) {
        qa_session_t *p = self->sess[i].p;
        unsigned g = p->vgpu->gpu;
        if (!measured(samples, n, g) || (i > 0 && self->sess[i - 1].pid == self->sess[i].pid))
            continue; /* an older session of the same pid holds nothing of its own */
        if (p->vgpu->moving)
            continue; /* its memory is on its way to another GPU: measured once there */
        const qa_gpu_sample_t *s = &samples[g];
        size_t k = 0;
        while (k < s->nmem && s->mem[k].pid != self->sess[i].pid)
            k++;
        measure_session(self, p, k < s->nmem, k < s->nmem ? s->mem[k].bytes : 0);
    }
    act_unmanaged(self, host, now);
    for (size_t i = 0; i < qa_host_nvgpus(host); i++) {
        qa_vgpu_t *v = qa_host_vgpu(host, i);
        if (measured(samples, n, v->gpu))
            check_quota(self, v, now);
    }
    list_findings(self, host, now);
    struct tracked *t = self->cur;
    size_t cap = self->capcur;
    self->cur = self->next;
    self->ncur = self->nnext;
    self->capcur = self->capnext;
    self->next = t;
    self->capnext = cap;
    self->nnext = 0;
}
