/* store.c - vGPU files with atomic replace, and a thread that makes them durable.
 * Threads: see store.h. */
#include "arbiter/store.h"

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
#define MAX_DIRTY 128    /* files remembered for the next sync; beyond, syncfs */
#define SYNC_DELAY_MS 50 /* a sync waits this long for more writes to batch with */

struct qa_store {
    char *dir;            /* owned: the state dir */
    int vgpus_fd;         /* owned: the vgpus/ directory, for *at() calls */
    int dir_fd;           /* owned: the state dir */
    uint64_t ids_bound;   /* meta.json says ids below this may have been handed out */
    const qa_log_t *log;  /* borrowed: where loading warns; NULL: stderr */
    pthread_t thread;     /* the sync thread */
    pthread_mutex_t lock; /* guards dirty, names, ndirty, overflow and stop */
    pthread_cond_t wake;  /* signalled when dirty or stop is set */
    bool dirty;           /* something changed since the last sync */
    char names[MAX_DIRTY][QP_ID_LEN + 16]; /* files written since: "vgpus/ID.json" */
    size_t ndirty;                         /* entries in names */
    bool overflow; /* more files than names holds: sync the whole filesystem */
    char batch[MAX_DIRTY][QP_ID_LEN + 16]; /* the sync thread's copy of names */
    bool stop;                             /* the thread should end */
};

/* Makes what the loop wrote durable: the files named, then both directories (their
 * renames and unlinks). Runs on the sync thread, without the lock. */
static void sync_files(qa_store_t *self, char (*names)[QP_ID_LEN + 16], size_t n, bool overflow)
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
        self->ndirty = 0;
        self->overflow = false;
        self->dirty = false;
        pthread_mutex_unlock(&self->lock);
        sync_files(self, self->batch, n, overflow);
        pthread_mutex_lock(&self->lock);
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
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

qa_store_t *qa_store_open(const char *dir, char err[QP_ERR_LEN])
{
    qa_store_t *self = calloc(1, sizeof *self);
    if (!self || !(self->dir = strdup(dir))) {
        free(self);
        snprintf(err, QP_ERR_LEN, "out of memory");
        return NULL;
    }
    self->dir_fd = self->vgpus_fd = -1;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        goto fail;
    if ((self->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        goto fail;
    if (mkdirat(self->dir_fd, "vgpus", 0700) < 0 && errno != EEXIST)
        goto fail;
    if ((self->vgpus_fd = openat(self->dir_fd, "vgpus", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        goto fail;
    if (faccessat(self->dir_fd, ".", W_OK, 0) < 0)
        goto fail;
    remove_temps(self->dir_fd);
    remove_temps(self->vgpus_fd);
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->wake, NULL);
    int rc = pthread_create(&self->thread, NULL, sync_main, self);
    if (rc != 0) {
        errno = rc;
        pthread_mutex_destroy(&self->lock);
        pthread_cond_destroy(&self->wake);
        goto fail;
    }
    return self;

fail:
    snprintf(err, QP_ERR_LEN, "cannot use state dir %.150s: %s", dir, strerror(errno));
    if (self->vgpus_fd >= 0)
        close(self->vgpus_fd);
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
    free(self->dir);
    free(self);
    *self_p = NULL;
}

/* Writes doc as name in dir_fd through name.tmp and a rename; path is name relative to
 * the state dir, for the sync thread. */
static int write_atomic(qa_store_t *self, int dir_fd, const char *name, const char *path,
                        json_t *doc, char *err)
{
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s.tmp", name);
    int fd = -1, saved = ENOMEM;
    if (!text)
        goto fail;
    if ((fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
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
    if (close(fd) < 0) {
        fd = -1;
        goto fail_errno;
    }
    fd = -1;
    if (renameat(dir_fd, tmp, dir_fd, name) < 0)
        goto fail_errno;
    free(text);
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

int qa_store_put(qa_store_t *self, const qa_vgpu_t *v, const char *gpu_uuid, char err[QP_ERR_LEN])
{
    json_t *doc =
        json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:I, s:i, s:i, s:I}", "version", FORMAT_VERSION,
                  "id", v->id, "vm", v->vm, "secret", v->secret, "profile", v->profile, "gpu_uuid",
                  gpu_uuid, "memory_mb", (json_int_t)v->memory_mb, "share", (int)v->share, "limit",
                  (int)v->limit, "created", (json_int_t)v->created);
    char name[QP_ID_LEN + 8], path[QP_ID_LEN + 16];
    snprintf(name, sizeof name, "%s.json", v->id);
    snprintf(path, sizeof path, "vgpus/%s", name);
    int rc = doc ? write_atomic(self, self->vgpus_fd, name, path, doc, err) : -EIO;
    if (!doc)
        snprintf(err, QP_ERR_LEN, "out of memory writing vGPU %s", v->id);
    json_decref(doc);
    return rc;
}

int qa_store_remove(qa_store_t *self, const char *id, char err[QP_ERR_LEN])
{
    char name[QP_ID_LEN + 8];
    snprintf(name, sizeof name, "%s.json", id);
    if (unlinkat(self->vgpus_fd, name, 0) < 0 && errno != ENOENT) {
        snprintf(err, QP_ERR_LEN, "cannot remove %.120s/vgpus/%s: %s", self->dir, name,
                 strerror(errno));
        return -EIO;
    }
    mark_dirty(self, NULL);
    return 0;
}

int qa_store_note_ids(qa_store_t *self, uint64_t next_id, char err[QP_ERR_LEN])
{
    if (next_id <= self->ids_bound)
        return 0;
    uint64_t bound = next_id + ID_BLOCK;
    json_t *doc = json_pack("{s:i, s:I}", "version", FORMAT_VERSION, "next_id", (json_int_t)bound);
    int rc = doc ? write_atomic(self, self->dir_fd, "meta.json", "meta.json", doc, err) : -EIO;
    if (!doc)
        snprintf(err, QP_ERR_LEN, "out of memory writing meta.json");
    json_decref(doc);
    if (rc == 0)
        self->ids_bound = bound;
    return rc;
}

/* ---- loading ----------------------------------------------------------------------- */

#define MAX_STATE_FILE (64u << 10) /* far above any file we write */

/* Reads name in dir_fd as JSON. Returns the document; or NULL with *lost set when the
 * file is empty, all NUL bytes or cut short (what a power cut leaves of a write whose
 * data never reached the disk), err saying so; or NULL with err naming what is wrong. */
static json_t *read_json(int dir_fd, const char *name, const char *where, bool *lost, char *err)
{
    *lost = false;
    int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, QP_ERR_LEN, "cannot read %.150s/%.40s: %s", where, name, strerror(errno));
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

int qa_store_load(qa_store_t *self, qa_store_each_fn *each, void *arg, uint64_t *next_id,
                  char err[QP_ERR_LEN])
{
    *next_id = 1;
    bool lost;
    if (faccessat(self->dir_fd, "meta.json", F_OK, 0) == 0) {
        json_t *meta = read_json(self->dir_fd, "meta.json", self->dir, &lost, err);
        uint64_t n;
        if (!meta && lost) {
            /* The vGPU files' ids still bound what was handed out, but not the ids of
             * vGPUs removed since meta.json was last whole. */
            warn(self, "%s: ids are taken from the vGPU files", err);
            err[0] = '\0';
        }
        if (!meta && !lost)
            return -EINVAL;
        int bad = meta ? get_uint(meta, "next_id", UINT64_MAX / 2, &n) : 0;
        json_decref(meta);
        if (bad < 0) {
            snprintf(err, QP_ERR_LEN, "%.150s/meta.json: no valid 'next_id' (fix or remove it)",
                     self->dir);
            return -EINVAL;
        }
        if (meta) {
            *next_id = n;
            self->ids_bound = n;
        }
    }
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
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' || n < 6 || strcmp(e->d_name + n - 5, ".json") != 0)
            continue;
        /* Every file seen counts, read or not: its id was handed out. */
        uint64_t id = file_id(e->d_name);
        if (id >= *next_id)
            *next_id = id + 1;
        json_t *doc = read_json(self->vgpus_fd, e->d_name, where, &lost, err);
        if (!doc && lost) {
            warn(self, "%s (left by a power cut?): skipped; its vGPU is lost", err);
            err[0] = '\0';
            continue;
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
    return rc;
}
