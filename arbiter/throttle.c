/* throttle.c - per-source line budgets in a small open-addressed table. Loop thread. */
#include "arbiter/throttle.h"

#include <stdlib.h>

struct source {
    uint32_t id;    /* the source */
    bool used;      /* the entry holds a source */
    unsigned lines; /* lines allowed in its window */
    uint64_t held;  /* lines held back in its window */
    uint64_t start; /* ns its window began */
};

struct qa_throttle {
    unsigned burst;
    uint64_t window;
    size_t max;           /* sources followed at most */
    size_t count;         /* sources followed */
    size_t cap;           /* entries: a power of two, at least twice max */
    struct source *table; /* owned */
    struct source others; /* lines of sources beyond max */
};

qa_throttle_t *qa_throttle_new(unsigned burst, uint64_t window_ns, size_t max_sources)
{
    qa_throttle_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->burst = burst;
    self->window = window_ns;
    self->max = max_sources ? max_sources : 1;
    self->cap = 4;
    while (self->cap < 2 * self->max)
        self->cap *= 2;
    if (!(self->table = calloc(self->cap, sizeof *self->table))) {
        free(self);
        return NULL;
    }
    self->others.id = QA_THROTTLE_OTHERS;
    return self;
}

void qa_throttle_destroy(qa_throttle_t **self_p)
{
    qa_throttle_t *self = *self_p;
    if (!self)
        return;
    free(self->table);
    free(self);
    *self_p = NULL;
}

size_t qa_throttle_sources(const qa_throttle_t *self)
{
    return self->count;
}

static size_t slot_of(const qa_throttle_t *self, uint32_t id)
{
    return (size_t)(id * 2654435761u) & (self->cap - 1);
}

/* The entry of id, made if there is room; NULL when max sources are followed. Linear
 * probing: the table is never more than half full. */
static struct source *entry(qa_throttle_t *self, uint32_t id, uint64_t now)
{
    size_t i = slot_of(self, id);
    while (self->table[i].used) {
        if (self->table[i].id == id)
            return &self->table[i];
        i = (i + 1) & (self->cap - 1);
    }
    if (self->count == self->max)
        return NULL;
    self->count++;
    self->table[i] = (struct source){.id = id, .used = true, .start = now};
    return &self->table[i];
}

static bool allow(qa_throttle_t *self, struct source *s)
{
    if (s->lines < self->burst) {
        s->lines++;
        return true;
    }
    s->held++;
    return false;
}

bool qa_throttle_allow(qa_throttle_t *self, uint32_t source, uint64_t now)
{
    struct source *s = source == QA_THROTTLE_OTHERS ? NULL : entry(self, source, now);
    if (!s) {
        s = &self->others;
        if (!s->lines && !s->held)
            s->start = now;
    }
    return allow(self, s);
}

/* Removes entry i, moving later entries of its probe run back (no tombstones). */
static void remove_at(qa_throttle_t *self, size_t i)
{
    size_t mask = self->cap - 1;
    self->table[i].used = false;
    self->count--;
    for (size_t j = (i + 1) & mask; self->table[j].used; j = (j + 1) & mask) {
        size_t home = slot_of(self, self->table[j].id);
        /* j's entry may move to the hole at i when its home is not in (i, j] */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays)
            continue;
        self->table[i] = self->table[j];
        self->table[j].used = false;
        i = j;
    }
}

void qa_throttle_flush(qa_throttle_t *self, uint64_t now,
                       void (*fn)(void *arg, uint32_t source, uint64_t held), void *arg)
{
    for (size_t i = 0; i < self->cap;) {
        struct source *s = &self->table[i];
        if (!s->used || now - s->start < self->window) {
            i++;
            continue;
        }
        if (s->held)
            fn(arg, s->id, s->held);
        remove_at(self, i); /* i now holds a later entry, or nothing: look again */
    }
    struct source *o = &self->others;
    if ((o->lines || o->held) && now - o->start >= self->window) {
        if (o->held)
            fn(arg, o->id, o->held);
        o->lines = 0;
        o->held = 0;
    }
}
