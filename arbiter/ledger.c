/* ledger.c - tenant processes' holdings in a shared mapping of STATE/holders.
 * Single-threaded: the loop thread (see ledger.h). */
#include "arbiter/ledger.h"

#include "arbiter/trust.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "QVHOLD1\n"
#define BOOT_LEN 40     /* a boot id is 36 characters */
#define FIRST_SLOTS 256 /* a new file: 16 KiB of slots */
#define MAX_SLOTS (1u << 20)

/* The file: a header, then slots. Written in place through the mapping: a field that
 * changes alone is one aligned store, which a kill -9 cannot cut in half. */
struct header {
    char magic[8];       /* MAGIC */
    char boot[BOOT_LEN]; /* /proc/sys/kernel/random/boot_id when written */
    char pad[16];
};

struct slot {
    _Atomic uint32_t used;  /* 1: describes a process; set after, cleared before, the rest */
    int32_t pid;            /* host pid, 0 unknown */
    _Atomic uint64_t start; /* the process's start time, with pid */
    _Atomic uint64_t bytes; /* the most it may hold */
    char vgpu[QP_ID_LEN];   /* its vGPU's id */
    char pad[8];
};

_Static_assert(sizeof(struct header) == 64 && sizeof(struct slot) == 64, "file layout");

struct qa_ledger {
    int fd;                  /* owned: DIR/holders */
    struct header *map;      /* owned: the whole file, mapped shared */
    size_t nslots;           /* slots in the file */
    size_t used;             /* slots in use */
    uint32_t *free;          /* owned: a stack of free slot numbers */
    size_t nfree;            /* entries in free */
    qa_ledger_entry_t *prev; /* owned: the slots in use at open */
    size_t nprev;
};

static struct slot *slots(const qa_ledger_t *self)
{
    return (struct slot *)(self->map + 1);
}

static void read_boot_id(char boot[BOOT_LEN])
{
    memset(boot, 0, BOOT_LEN);
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return; /* no boot id: pid and start time alone tell processes apart */
    ssize_t n = read(fd, boot, BOOT_LEN - 1);
    close(fd);
    if (n < 0)
        n = 0;
    boot[n] = '\0';
    boot[strcspn(boot, "\n")] = '\0';
}

int qa_ledger_proc_start(pid_t pid, uint64_t *start)
{
    char path[64], buf[1024];
    if (pid <= 0)
        return -ESRCH;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -ESRCH;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -ESRCH;
    buf[n] = '\0';
    /* "PID (COMM) S ...": COMM may hold spaces and parentheses, so the fields start
     * after the last ')'. State is field 3, starttime field 22. */
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X')
        return -ESRCH;
    p += 2;
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p)
            return -ESRCH;
        p++;
    }
    char *end;
    unsigned long long v = strtoull(p, &end, 10);
    if (end == p)
        return -ESRCH;
    *start = v;
    return 0;
}

/* Maps the file's n slots (after growing it to them) and pushes the new ones on the free
 * stack. Returns 0 or -errno, with nothing changed but a larger stack or file. */
static int map_slots(qa_ledger_t *self, size_t n)
{
    uint32_t *f = realloc(self->free, n * sizeof *f);
    if (!f)
        return -ENOMEM;
    self->free = f;
    size_t len = sizeof(struct header) + n * sizeof(struct slot);
    if (ftruncate(self->fd, (off_t)len) < 0)
        return -errno;
    void *m;
    if (self->map) {
        size_t old = sizeof(struct header) + self->nslots * sizeof(struct slot);
        m = mremap(self->map, old, len, MREMAP_MAYMOVE);
    } else {
        m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd, 0);
    }
    if (m == MAP_FAILED)
        return -errno;
    self->map = m;
    for (size_t i = n; i > self->nslots; i--) /* the new slots, lowest on top */
        self->free[self->nfree++] = (uint32_t)(i - 1);
    self->nslots = n;
    return 0;
}

/* Whether the file holds this boot's slots; otherwise it is made empty. */
static bool same_boot(int fd, const char boot[BOOT_LEN], size_t *nslots)
{
    struct stat st;
    struct header h;
    if (fstat(fd, &st) < 0 || (size_t)st.st_size < sizeof h ||
        pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h || memcmp(h.magic, MAGIC, 8) != 0 ||
        memcmp(h.boot, boot, BOOT_LEN) != 0)
        return false;
    *nslots = ((size_t)st.st_size - sizeof h) / sizeof(struct slot);
    return *nslots <= MAX_SLOTS;
}

qa_ledger_t *qa_ledger_open(const char *dir, char err[QP_ERR_LEN])
{
    char path[300], boot[BOOT_LEN];
    snprintf(path, sizeof path, "%.250s/holders", dir);
    qa_ledger_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, QP_ERR_LEN, "out of memory");
        return NULL;
    }
    self->fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (self->fd < 0) {
        snprintf(err, QP_ERR_LEN, "cannot open %.200s: %s%s", path, strerror(errno),
                 errno == ELOOP ? " (a symlink: remove it)" : "");
        free(self);
        return NULL;
    }
    if (qa_trust_file(self->fd, path, err) < 0)
        goto fail;
    read_boot_id(boot);
    size_t n = 0;
    if (!same_boot(self->fd, boot, &n)) {
        struct header h;
        memset(&h, 0, sizeof h);
        memcpy(h.magic, MAGIC, sizeof h.magic);
        memcpy(h.boot, boot, BOOT_LEN);
        n = 0;
        if (ftruncate(self->fd, 0) < 0 || pwrite(self->fd, &h, sizeof h, 0) != (ssize_t)sizeof h)
            goto fail_errno;
    }
    int rc = map_slots(self, n > FIRST_SLOTS ? n : FIRST_SLOTS);
    if (rc < 0) {
        errno = -rc;
        goto fail_errno;
    }
    /* The previous arbiter's slots in use stay so; the others are free. */
    self->nfree = 0;
    if (n && !(self->prev = calloc(n, sizeof *self->prev)))
        goto fail_nomem;
    for (size_t i = self->nslots; i > 0; i--) {
        struct slot *s = &slots(self)[i - 1];
        bool in_use = i - 1 < n && atomic_load_explicit(&s->used, memory_order_acquire) == 1;
        if (!in_use) {
            memset(s, 0, sizeof *s);
            self->free[self->nfree++] = (uint32_t)(i - 1);
            continue;
        }
        qa_ledger_entry_t *e = &self->prev[self->nprev++];
        e->slot = (uint32_t)(i - 1);
        memcpy(e->vgpu, s->vgpu, QP_ID_LEN);
        e->vgpu[QP_ID_LEN - 1] = '\0';
        e->pid = s->pid;
        e->start = atomic_load_explicit(&s->start, memory_order_relaxed);
        e->bytes = atomic_load_explicit(&s->bytes, memory_order_relaxed);
        self->used++;
    }
    return self;

fail_nomem:
    errno = ENOMEM;
fail_errno:
    snprintf(err, QP_ERR_LEN, "cannot use %.200s: %s", path, strerror(errno));
fail:
    qa_ledger_close(&self);
    return NULL;
}

void qa_ledger_close(qa_ledger_t **self_p)
{
    qa_ledger_t *self = *self_p;
    if (!self)
        return;
    if (self->map)
        munmap(self->map, sizeof(struct header) + self->nslots * sizeof(struct slot));
    if (self->fd >= 0)
        close(self->fd);
    free(self->free);
    free(self->prev);
    free(self);
    *self_p = NULL;
}

int qa_ledger_previous(qa_ledger_t *self, qa_ledger_entry_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!self->nprev)
        return 0;
    if (!(*out = malloc(self->nprev * sizeof **out)))
        return -ENOMEM;
    memcpy(*out, self->prev, self->nprev * sizeof **out);
    *n = self->nprev;
    return 0;
}

int qa_ledger_add(qa_ledger_t *self, const char *vgpu, pid_t pid, uint64_t start, uint64_t bytes)
{
    if (!self->nfree && (self->nslots >= MAX_SLOTS || map_slots(self, self->nslots * 2) < 0))
        return -ENOMEM;
    uint32_t i = self->free[--self->nfree];
    struct slot *s = &slots(self)[i];
    s->pid = pid;
    atomic_store_explicit(&s->start, start, memory_order_relaxed);
    atomic_store_explicit(&s->bytes, bytes, memory_order_relaxed);
    memset(s->vgpu, 0, sizeof s->vgpu);
    snprintf(s->vgpu, sizeof s->vgpu, "%s", vgpu);
    /* release: a reader of the file after our death sees a used slot whole */
    atomic_store_explicit(&s->used, 1, memory_order_release);
    self->used++;
    return (int)i;
}

void qa_ledger_set_bytes(qa_ledger_t *self, uint32_t slot, uint64_t bytes)
{
    /* relaxed: the reply that follows is a system call, after this store in any case */
    atomic_store_explicit(&slots(self)[slot].bytes, bytes, memory_order_relaxed);
}

void qa_ledger_set_process(qa_ledger_t *self, uint32_t slot, pid_t pid, uint64_t start)
{
    struct slot *s = &slots(self)[slot];
    /* Start first: a pid seen with the old start 0 is a process not known yet, never
     * another process's start. */
    atomic_store_explicit(&s->start, start, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    s->pid = pid;
}

void qa_ledger_free(qa_ledger_t *self, uint32_t slot)
{
    struct slot *s = &slots(self)[slot];
    atomic_store_explicit(&s->used, 0, memory_order_release);
    self->free[self->nfree++] = slot;
    self->used--;
}

size_t qa_ledger_used(const qa_ledger_t *self)
{
    return self->used;
}
