/* store.c - vGPU files with atomic replace, and a thread that makes them durable.
 * Threads: see store.h. */
#include "arbiter/store.h"

#include "arbiter/pidlock.h"
#include "arbiter/trust.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FORMAT_VERSION 1
#define ID_BLOCK 64
#define MAX_DIRTY 128             /* files remembered for the next sync; beyond, syncfs */
#define SYNC_DELAY_MS 50          /* a sync waits this long for more writes to batch with */
#define NAME_LEN (QP_ID_LEN + 16) /* "vgpus/ID.json" */
#define LOCK_FILE "qarbiter.lock"

struct qa_store {
    char *dir;            /* owned: the state dir */
    int vgpus_fd;         /* owned: the vgpus/ directory, for *at() calls */
    int dir_fd;           /* owned: the state dir */
    int lock_fd;          /* owned: flock'ed STATE/qarbiter.lock */
    uint64_t ids_bound;   /* meta.json says ids below this may have been handed out */
    const qa_log_t *log;  /* borrowed: where loading warns; NULL: stderr */
    pthread_t thread;     /* the sync thread */
    pthread_mutex_t lock; /* guards dirty, names, ndirty, overflow, nbatch, in_batch, stop */
    pthread_cond_t wake;  /* signalled when dirty or stop is set */
    bool dirty;           /* something changed since the last sync */
    char names[MAX_DIRTY][NAME_LEN]; /* files written since: "vgpus/ID.json" */
    size_t ndirty;                   /* entries in names */
    bool overflow;                   /* more files than names holds: sync the whole filesystem */
    char batch[MAX_DIRTY][NAME_LEN]; /* the sync thread's copy of names */
    size_t nbatch;                   /* entries in batch being synced now */
    bool in_batch;                   /* a sync of batch (or of everything) is under way */
    bool batch_overflow;             /* that sync is a syncfs */
    bool stop;                       /* the thread should end */
};

/* Makes what the loop wrote durable: the files named, then both directories (their
 * renames and unlinks). Runs on the sync thread, without the lock. */
static void sync_files(qa_store_t *self, char (*names)[NAME_LEN], size_t n, bool overflow)
{
    if (overflow) {
        syncfs(self->dir_fd);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        /* Gone already (destroyed since): the directory sync covers its removal. */
        int fd = openat(self->dir_fd, names[i], O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
    }
    fsync(self->vgpus_fd);
    fsync(self->dir_fd);
}

static void *sync_main(void *arg)
{
    qa_store_t *self = arg;
    pthread_mutex_lock(&self->lock);
    for (;;) {
        while (!self->dirty && !self->stop)
            pthread_cond_wait(&self->wake, &self->lock);
        if (self->stop)
            break;
        /* Batch: a burst of requests costs one round of fsyncs, off the request path. */
        pthread_mutex_unlock(&self->lock);
        struct timespec delay = {0, SYNC_DELAY_MS * 1000000L};
        nanosleep(&delay, NULL);
        pthread_mutex_lock(&self->lock);
        size_t n = self->ndirty;
        bool overflow = self->overflow;
        memcpy(self->batch, self->names, n * sizeof self->batch[0]);
        self->nbatch = n;
        self->batch_overflow = overflow;
        self->in_batch = true;
        self->ndirty = 0;
        self->overflow = false;
        self->dirty = false;
        pthread_mutex_unlock(&self->lock);
        sync_files(self, self->batch, n, overflow);
        pthread_mutex_lock(&self->lock);
        self->in_batch = false;
        self->nbatch = 0;
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

/* Whether name (relative to the state dir) has reached the disk: neither written since
 * the last sync nor in the sync under way. */
static bool synced(qa_store_t *self, const char *name)
{
    pthread_mutex_lock(&self->lock);
    bool pending = self->overflow || (self->in_batch && self->batch_overflow);
    for (size_t i = 0; i < self->ndirty && !pending; i++)
        pending = strcmp(self->names[i], name) == 0;
    for (size_t i = 0; self->in_batch && i < self->nbatch && !pending; i++)
        pending = strcmp(self->batch[i], name) == 0;
    pthread_mutex_unlock(&self->lock);
    return !pending;
}

/* Notes that name (relative to the state dir; NULL for a removal) must reach the disk. */
static void mark_dirty(qa_store_t *self, const char *name)
{
    pthread_mutex_lock(&self->lock);
    bool known = false;
    for (size_t i = 0; name && i < self->ndirty && !known; i++)
        known = strcmp(self->names[i], name) == 0;
    if (name && !known) {
        if (self->ndirty < MAX_DIRTY)
            snprintf(self->names[self->ndirty++], sizeof self->names[0], "%s", name);
        else
            self->overflow = true;
    }
    self->dirty = true;
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
}

/* Removes "*.tmp" files left in dir_fd by a write that was interrupted. */
static void remove_temps(int dir_fd)
{
    int fd = dup(dir_fd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n > 4 && strcmp(e->d_name + n - 4, ".tmp") == 0)
            unlinkat(dir_fd, e->d_name, 0);
    }
    closedir(d);
}

/* Takes STATE/qarbiter.lock: two arbiters on one state dir would both hand out the next
 * id, and the second's files would replace the first's vGPUs (and secrets). Returns 0,
 * -EBUSY naming the holder's pid, or -EPERM/-EIO with err. */
static int take_lock(qa_store_t *self, char *err)
{
    char path[300], pid[QA_PIDLOCK_PID_LEN];
    snprintf(path, sizeof path, "%.200s/%s", self->dir, LOCK_FILE);
    int rc = qa_pidlock_take(self->dir_fd, LOCK_FILE, path, 0600, pid, err);
    if (rc == -EBUSY)
        snprintf(err, QP_ERR_LEN,
                 "another qarbiter%s%.20s%s uses state dir %.130s: stop it first, or give each "
                 "arbiter its own --state-dir",
                 pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "", self->dir);
    if (rc < 0)
        return rc == -EBUSY || rc == -EPERM ? rc : -EIO;
    self->lock_fd = rc;
    if ((rc = qa_pidlock_note(self->lock_fd)) < 0) {
        snprintf(err, QP_ERR_LEN, "cannot write %.200s: %s", path, strerror(-rc));
        return -EIO;
    }
    return 0;
}

static int write_meta(qa_store_t *self, uint64_t bound, char *err);

qa_store_t *qa_store_open(const char *dir, char err[QP_ERR_LEN])
{
    qa_store_t *self = calloc(1, sizeof *self);
    if (!self || !(self->dir = strdup(dir))) {
        free(self);
        snprintf(err, QP_ERR_LEN, "out of memory");
        return NULL;
    }
    self->dir_fd = self->vgpus_fd = self->lock_fd = -1;
    bool fresh = false, ready = false;
    err[0] = '\0';
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        goto fail;
    if ((self->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        goto fail;
    if (qa_trust_dir(self->dir_fd, "state dir", dir, err) < 0 || take_lock(self, err) < 0)
        goto fail;
    if (mkdirat(self->dir_fd, "vgpus", 0700) == 0)
        fresh = true;
    else if (errno != EEXIST)
        goto fail;
    if ((self->vgpus_fd =
             openat(self->dir_fd, "vgpus", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
        goto fail;
    char where[250];
    snprintf(where, sizeof where, "%.200s/vgpus", dir);
    if (qa_trust_dir(self->vgpus_fd, "state dir", where, err) < 0)
        goto fail;
    if (faccessat(self->dir_fd, ".", W_OK, 0) < 0)
        goto fail;
    remove_temps(self->dir_fd);
    remove_temps(self->vgpus_fd);
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->wake, NULL);
    ready = true;
    /* A new state dir says at once that no id was handed out: from then on a missing
     * meta.json means a lost one (see qa_store_load). */
    if (fresh && faccessat(self->dir_fd, "meta.json", F_OK, AT_SYMLINK_NOFOLLOW) < 0 &&
        write_meta(self, 1, err) < 0)
        goto fail;
    int rc = pthread_create(&self->thread, NULL, sync_main, self);
    if (rc != 0) {
        errno = rc;
        goto fail;
    }
    return self;

fail:
    if (!err[0])
        snprintf(err, QP_ERR_LEN, "cannot use state dir %.150s: %s", dir, strerror(errno));
    if (ready) {
        pthread_mutex_destroy(&self->lock);
        pthread_cond_destroy(&self->wake);
    }
    if (self->vgpus_fd >= 0)
        close(self->vgpus_fd);
    if (self->lock_fd >= 0)
        close(self->lock_fd);
    if (self->dir_fd >= 0)
        close(self->dir_fd);
    free(self->dir);
    free(self);
    return NULL;
}

void qa_store_set_log(qa_store_t *self, const qa_log_t *log)
{
    self->log = log;
}

void qa_store_close(qa_store_t **self_p)
{
    qa_store_t *self = *self_p;
    if (!self)
        return;
    pthread_mutex_lock(&self->lock);
    self->stop = true;
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
    pthread_join(self->thread, NULL);
    sync_files(self, self->names, self->ndirty, self->overflow);
    pthread_mutex_destroy(&self->lock);
    pthread_cond_destroy(&self->wake);
    close(self->vgpus_fd);
    close(self->dir_fd);
    close(self->lock_fd); /* last: the state is synced, another arbiter may have it */
    free(self->dir);
    free(self);
    *self_p = NULL;
}

/* Writes doc as name in dir_fd through name.tmp and a rename; path is name relative to
 * the state dir, for the sync thread and messages. With durable, the data reaches the
 * disk before the rename and the rename before the return (fsync of the file and the
 * directory, a few ms: for rare writes only); otherwise the sync thread makes it durable
 * within about 100 ms. */
static int write_atomic(qa_store_t *self, int dir_fd, const char *name, const char *path,
                        json_t *doc, bool durable, char *err)
{
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s.tmp", name);
    int fd = -1, saved = ENOMEM;
    if (!text)
        goto fail;
    if ((fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0)
        goto fail_errno;
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto fail_errno;
        done += (size_t)n;
    }
    if (durable && fsync(fd) < 0)
        goto fail_errno;
    if (close(fd) < 0) {
        fd = -1;
        goto fail_errno;
    }
    fd = -1;
    if (renameat(dir_fd, tmp, dir_fd, name) < 0)
        goto fail_errno;
    free(text);
    if (durable && fsync(dir_fd) < 0) {
        saved = errno;
        snprintf(err, QP_ERR_LEN, "cannot sync %.120s/%s: %s", self->dir, path, strerror(saved));
        return -EIO;
    }
    if (!durable)
        mark_dirty(self, path);
    return 0;

fail_errno:
    saved = errno;
fail:
    if (fd >= 0)
        close(fd);
    unlinkat(dir_fd, tmp, 0);
    free(text);
    snprintf(err, QP_ERR_LEN, "cannot write %.120s/%s: %s", self->dir, path, strerror(saved));
    return -EIO;
}

/* Keeps the current file of a vGPU as NAME.prev before it is replaced, when it has
 * reached the disk: a power cut can leave the replacement empty or cut short (it was
 * renamed into place before its data was synced, which stays off the request path), and
 * loading then falls back on the previous version instead of losing the vGPU. An
 * unsynced current file is not kept: the older .prev, which is synced, stays. A failure
 * only costs that fallback. */
static void keep_previous(qa_store_t *self, const char *name, const char *path)
{
    char prev[NAME_LEN + 8], tmp[NAME_LEN + 16];
    snprintf(prev, sizeof prev, "%s.prev", name);
    snprintf(tmp, sizeof tmp, "%s.tmp", prev);
    if (!synced(self, path))
        return;
    unlinkat(self->vgpus_fd, tmp, 0);
    if (linkat(self->vgpus_fd, name, self->vgpus_fd, tmp, 0) < 0)
        return; /* ENOENT: a new vGPU, nothing to keep */
    if (renameat(self->vgpus_fd, tmp, self->vgpus_fd, prev) < 0)
        unlinkat(self->vgpus_fd, tmp, 0);
}

int qa_store_put(qa_store_t *self, const qa_vgpu_t *v, const char *gpu_uuid, char err[QP_ERR_LEN])
{
    json_t *doc =
        json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:I, s:i, s:i, s:I}", "version", FORMAT_VERSION,
                  "id", v->id, "vm", v->vm, "secret", v->secret, "profile", v->profile, "gpu_uuid",
                  gpu_uuid, "memory_mb", (json_int_t)v->memory_mb, "share", (int)v->share, "limit",
                  (int)v->limit, "created", (json_int_t)v->created);
    char name[NAME_LEN], path[NAME_LEN + 8];
    snprintf(name, sizeof name, "%s.json", v->id);
    snprintf(path, sizeof path, "vgpus/%s", name);
    if (doc)
        keep_previous(self, name, path);
    int rc = doc ? write_atomic(self, self->vgpus_fd, name, path, doc, false, err) : -EIO;
    if (!doc)
        snprintf(err, QP_ERR_LEN, "out of memory writing vGPU %s", v->id);
    json_decref(doc);
    return rc;
}

int qa_store_remove(qa_store_t *self, const char *id, char err[QP_ERR_LEN])
{
    char name[NAME_LEN];
    snprintf(name, sizeof name, "%s.json", id);
    if (unlinkat(self->vgpus_fd, name, 0) < 0 && errno != ENOENT) {
        snprintf(err, QP_ERR_LEN, "cannot remove %.120s/vgpus/%s: %s", self->dir, name,
                 strerror(errno));
        return -EIO;
    }
    /* After the file: a .prev without its file is a destroyed vGPU's, removed at load. */
    snprintf(name, sizeof name, "%s.json.prev", id);
    unlinkat(self->vgpus_fd, name, 0);
    mark_dirty(self, NULL);
    return 0;
}

/* Writes meta.json with bound durably: it is rewritten once per ID_BLOCK ids, and a
 * power cut must never leave it empty (every id handed out since would be unknown). */
static int write_meta(qa_store_t *self, uint64_t bound, char *err)
{
    json_t *doc = json_pack("{s:i, s:I}", "version", FORMAT_VERSION, "next_id", (json_int_t)bound);
    int rc =
        doc ? write_atomic(self, self->dir_fd, "meta.json", "meta.json", doc, true, err) : -EIO;
    if (!doc)
        snprintf(err, QP_ERR_LEN, "out of memory writing meta.json");
    json_decref(doc);
    if (rc == 0)
        self->ids_bound = bound;
    return rc;
}

int qa_store_note_ids(qa_store_t *self, uint64_t next_id, char err[QP_ERR_LEN])
{
    if (next_id <= self->ids_bound)
        return 0;
    return write_meta(self, next_id + ID_BLOCK, err);
}

/* ---- loading ----------------------------------------------------------------------- */

#define MAX_STATE_FILE (64u << 10) /* far above any file we write */

/* Reads name in dir_fd as JSON, without following a symlink, and only if the arbiter's
 * user owns it and nobody else can write it (anything else was planted: see trust.h).
 * Returns the document; or NULL with *lost set when the file is empty, all NUL bytes or
 * cut short (what a power cut leaves of a write whose data never reached the disk), err
 * saying so; or NULL with err naming what is wrong. */
static json_t *read_json(int dir_fd, const char *name, const char *where, bool *lost, char *err)
{
    *lost = false;
    int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, QP_ERR_LEN, "cannot read %.120s/%.40s: %.60s", where, name,
                 errno == ELOOP ? "a symlink, which the arbiter never makes (remove it)"
                                : strerror(errno));
        return NULL;
    }
    char path[220];
    snprintf(path, sizeof path, "%.150s/%.40s", where, name);
    if (qa_trust_file(fd, path, err) < 0) {
        close(fd);
        return NULL;
    }
    char *buf = malloc(MAX_STATE_FILE + 1);
    size_t n = 0;
    ssize_t got = 0;
    while (buf && n <= MAX_STATE_FILE &&
           ((got = read(fd, buf + n, MAX_STATE_FILE + 1 - n)) > 0 || (got < 0 && errno == EINTR)))
        n += got > 0 ? (size_t)got : 0;
    int read_errno = errno;
    close(fd);
    if (!buf || got < 0) {
        snprintf(err, QP_ERR_LEN, "cannot read %.150s/%.40s: %s", where, name,
                 buf ? strerror(read_errno) : "out of memory");
        free(buf);
        return NULL;
    }
    if (n > MAX_STATE_FILE) {
        snprintf(err, QP_ERR_LEN, "%.100s/%.40s: larger than %u KiB (fix or remove the file)",
                 where, name, MAX_STATE_FILE >> 10);
        free(buf);
        return NULL;
    }
    size_t zeros = 0;
    while (zeros < n && buf[zeros] == '\0')
        zeros++;
    json_error_t je;
    json_t *doc = zeros == n ? NULL : json_loadb(buf, n, JSON_REJECT_DUPLICATES, &je);
    free(buf);
    if (zeros == n || (!doc && json_error_code(&je) == json_error_premature_end_of_input)) {
        *lost = true;
        snprintf(err, QP_ERR_LEN, "%.100s/%.40s is %s", where, name,
                 n == 0       ? "empty"
                 : zeros == n ? "all zero bytes"
                              : "cut short");
        return NULL;
    }
    if (!doc)
        snprintf(err, QP_ERR_LEN, "%.100s/%.40s:%d: %.60s (fix or remove the file)", where, name,
                 je.line, je.text);
    return doc;
}

static void warn(const qa_store_t *self, const char *fmt, const char *what)
{
    qa_log_t fallback = {QA_WARN, stderr};
    qa_log(self->log ? self->log : &fallback, QA_WARN, fmt, what);
}

/* The number of a vGPU file's name as we make them, "vg-N.json" (N decimal, no leading
 * zero), or 0. */
static uint64_t file_id(const char *name)
{
    uint64_t n = 0;
    const char *p = name + 3;
    if (strncmp(name, "vg-", 3) != 0 || *p < '1' || *p > '9')
        return 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (n > (UINT64_MAX / 2 - 9) / 10)
            return 0;
        n = n * 10 + (uint64_t)(*p - '0');
    }
    return strcmp(p, ".json") == 0 ? n : 0;
}

static int copy_str(json_t *doc, const char *key, char *out, size_t size)
{
    const char *s = json_string_value(json_object_get(doc, key));
    if (!s || strlen(s) >= size)
        return -1;
    memcpy(out, s, strlen(s) + 1);
    return 0;
}

static int get_uint(json_t *doc, const char *key, uint64_t max, uint64_t *out)
{
    json_t *j = json_object_get(doc, key);
    if (!json_is_integer(j) || json_integer_value(j) < 0 || (uint64_t)json_integer_value(j) > max)
        return -1;
    *out = (uint64_t)json_integer_value(j);
    return 0;
}

/* Parses one vGPU file into v and uuid. */
static int parse_vgpu(json_t *doc, qa_vgpu_t *v, char uuid[QP_UUID_LEN])
{
    uint64_t version, memory_mb, share, limit, created;
    memset(v, 0, sizeof *v);
    if (!json_is_object(doc) || get_uint(doc, "version", 1000, &version) < 0 ||
        version != FORMAT_VERSION || copy_str(doc, "id", v->id, sizeof v->id) < 0 ||
        copy_str(doc, "vm", v->vm, sizeof v->vm) < 0 ||
        copy_str(doc, "secret", v->secret, sizeof v->secret) < 0 ||
        copy_str(doc, "profile", v->profile, sizeof v->profile) < 0 ||
        copy_str(doc, "gpu_uuid", uuid, QP_UUID_LEN) < 0 ||
        get_uint(doc, "memory_mb", UINT32_MAX, &memory_mb) < 0 ||
        get_uint(doc, "share", 100, &share) < 0 || get_uint(doc, "limit", 100, &limit) < 0 ||
        get_uint(doc, "created", INT64_MAX, &created) < 0)
        return -1;
    v->memory_mb = memory_mb;
    v->share = (unsigned)share;
    v->limit = (unsigned)limit;
    v->created = (int64_t)created;
    return 0;
}

int qa_store_peek_gpu(const char *dir, const char *id, char uuid[QP_UUID_LEN],
                      char err[QP_ERR_LEN])
{
    char where[200], name[NAME_LEN];
    snprintf(where, sizeof where, "%.150s/vgpus", dir);
    snprintf(name, sizeof name, "%.*s.json", QP_ID_LEN - 1, id);
    int fd = open(where, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, QP_ERR_LEN, "cannot open %.150s: %s", where, strerror(errno));
        return -EIO;
    }
    bool lost;
    json_t *doc = read_json(fd, name, where, &lost, err);
    close(fd);
    qa_vgpu_t v;
    int rc = doc && parse_vgpu(doc, &v, uuid) == 0 ? 0 : -EIO;
    if (doc && rc < 0)
        snprintf(err, QP_ERR_LEN, "%.150s/%.40s is no vGPU record", where, name);
    json_decref(doc);
    return rc;
}

/* Reads meta.json into self->ids_bound. A state dir is given one when it is made
 * (qa_store_open), and it is written durably, so one that is missing or damaged was lost
 * or reset: the ids handed out since are unknown, and taking them from the vGPU files
 * would hand out again those of vGPUs destroyed since. Returns 0 or -EINVAL with err. */
static int load_meta(qa_store_t *self, char *err)
{
    static const char fix[] = "restore it, or write {\"version\":1,\"next_id\":N} there, N "
                              "above every id ever handed out";
    if (faccessat(self->dir_fd, "meta.json", F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
        snprintf(err, QP_ERR_LEN,
                 "%.60s/meta.json is missing: the vGPU ids handed out so far are unknown "
                 "(%s)",
                 self->dir, fix);
        return -EINVAL;
    }
    bool lost;
    json_t *meta = read_json(self->dir_fd, "meta.json", self->dir, &lost, err);
    uint64_t n = 0;
    int bad = meta ? get_uint(meta, "next_id", UINT64_MAX / 2, &n) : 0;
    json_decref(meta);
    if (!meta && lost) {
        char why[QP_ERR_LEN];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, QP_ERR_LEN, "%.90s: the vGPU ids handed out so far are unknown (%s)", why,
                 fix);
    } else if (meta && (bad < 0 || n == 0)) {
        snprintf(err, QP_ERR_LEN, "%.100s/meta.json: no valid 'next_id' (%s)", self->dir, fix);
    } else if (meta) {
        self->ids_bound = n;
        return 0;
    }
    return -EINVAL;
}

/* Whether name (in vgpus/) ends with suffix and has something before it. */
static bool ends_with(const char *name, const char *suffix)
{
    size_t n = strlen(name), k = strlen(suffix);
    return n > k && strcmp(name + n - k, suffix) == 0;
}

/* name's file was left empty or cut short: takes its previous version (keep_previous) if
 * that one is whole and the same vGPU's. Returns it, or NULL. */
static json_t *previous_version(qa_store_t *self, const char *name, const char *where)
{
    char prev[NAME_LEN + 8], ignored[QP_ERR_LEN];
    bool lost;
    snprintf(prev, sizeof prev, "%s.prev", name);
    if (faccessat(self->vgpus_fd, prev, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
        return NULL;
    json_t *doc = read_json(self->vgpus_fd, prev, where, &lost, ignored);
    qa_vgpu_t v;
    char uuid[QP_UUID_LEN];
    if (doc && (parse_vgpu(doc, &v, uuid) < 0 || strlen(v.id) + 5 != strlen(name) ||
                strncmp(name, v.id, strlen(v.id)) != 0)) {
        json_decref(doc);
        doc = NULL;
    }
    return doc;
}

/* A vGPU file restored from its previous version, written back after the listing (a
 * rename during readdir could show the name twice). */
struct restore {
    char name[NAME_LEN];
    json_t *doc; /* owned */
};

int qa_store_load(qa_store_t *self, qa_store_each_fn *each, void *arg, uint64_t *next_id,
                  char err[QP_ERR_LEN])
{
    *next_id = 1;
    if (load_meta(self, err) < 0)
        return -EINVAL;
    *next_id = self->ids_bound;
    int fd = dup(self->vgpus_fd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        snprintf(err, QP_ERR_LEN, "cannot list %.150s/vgpus: %s", self->dir, strerror(errno));
        return -EINVAL;
    }
    rewinddir(d);
    char where[200];
    snprintf(where, sizeof where, "%.150s/vgpus", self->dir);
    struct restore *restores = NULL;
    size_t nrestores = 0;
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.')
            continue;
        if (ends_with(e->d_name, ".json.prev")) {
            char name[NAME_LEN];
            snprintf(name, sizeof name, "%.*s", (int)(n - 5), e->d_name);
            if (faccessat(self->vgpus_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
                unlinkat(self->vgpus_fd, e->d_name, 0); /* its vGPU was destroyed */
            continue;
        }
        if (!ends_with(e->d_name, ".json"))
            continue;
        /* Every file seen counts, read or not: its id was handed out. */
        uint64_t id = file_id(e->d_name);
        if (id >= *next_id)
            *next_id = id + 1;
        bool lost;
        json_t *doc = read_json(self->vgpus_fd, e->d_name, where, &lost, err);
        if (!doc && lost) {
            struct restore *grown = realloc(restores, (nrestores + 1) * sizeof *restores);
            if (grown)
                restores = grown;
            if (grown && (doc = previous_version(self, e->d_name, where))) {
                snprintf(restores[nrestores].name, NAME_LEN, "%s", e->d_name);
                restores[nrestores++].doc = json_incref(doc);
                warn(self,
                     "%s (a power cut?): its previous version is restored, and only its "
                     "last change is lost",
                     err);
                err[0] = '\0';
            } else {
                char why[QP_ERR_LEN];
                snprintf(why, sizeof why, "%s", err);
                snprintf(err, QP_ERR_LEN,
                         "%.120s and has no whole previous version: restore it from a backup, "
                         "or remove it to forget that vGPU (its id is not handed out again)",
                         why);
                rc = -EINVAL;
                break;
            }
        }
        if (!doc) {
            rc = -EINVAL;
            break;
        }
        qa_vgpu_t v;
        char uuid[QP_UUID_LEN];
        if (parse_vgpu(doc, &v, uuid) < 0 || strlen(v.id) + 5 != n ||
            strncmp(e->d_name, v.id, n - 5) != 0) {
            snprintf(err, QP_ERR_LEN, "%.150s/%.60s: not a valid vGPU record (fix or remove it)",
                     where, e->d_name);
            rc = -EINVAL;
        } else {
            rc = each(arg, &v, uuid, err);
        }
        json_decref(doc);
    }
    closedir(d);
    for (size_t i = 0; i < nrestores; i++) {
        char path[NAME_LEN + 8], ignored[QP_ERR_LEN];
        snprintf(path, sizeof path, "vgpus/%s", restores[i].name);
        if (rc == 0 && write_atomic(self, self->vgpus_fd, restores[i].name, path, restores[i].doc,
                                    true, ignored) < 0)
            warn(self, "%s: the restored version stays in memory only until the next change",
                 ignored);
        json_decref(restores[i].doc);
    }
    free(restores);
    return rc;
}
