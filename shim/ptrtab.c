/* ptrtab.c - a sharded open-addressing hash of live allocations.
 * Threads: any; each shard's mutex guards its slots. Linear probing with backward-shift
 * deletion keeps lookups short without tombstones; a shard doubles past 1/2 full. */
#include "shim/ptrtab.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SHARD_BITS 6
#define SHARDS (1u << SHARD_BITS)
#define INITIAL_CAP 64u

struct slot {
    uint64_t key;    /* pointer or handle */
    uint64_t bytes;  /* what it charged */
    const void *ctx; /* context it dies with, its pool (QS_ALLOC_POOLED), or NULL */
    uint8_t kind;    /* qs_alloc_kind_t; 0 marks an empty slot */
};

struct shard {
    pthread_mutex_t lock; /* guards the fields below */
    struct slot *slots;   /* owned; cap entries */
    size_t cap;           /* a power of two, or 0 before the first put */
    size_t n;             /* used slots */
    char pad[64];         /* keeps neighbouring shards' locks off one cache line */
};

struct qs_ptrtab {
    struct shard shards[SHARDS];
};

/* A 64-bit mix (splitmix64's finaliser): device pointers share their low bits. */
static uint64_t hash(qs_alloc_kind_t kind, uint64_t key)
{
    uint64_t h = key ^ ((uint64_t)kind * 0x9e3779b97f4a7c15u);
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9u;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebu;
    h ^= h >> 31;
    return h;
}

qs_ptrtab_t *qs_ptrtab_new(void)
{
    qs_ptrtab_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    for (unsigned i = 0; i < SHARDS; i++)
        pthread_mutex_init(&self->shards[i].lock, NULL);
    return self;
}

void qs_ptrtab_destroy(qs_ptrtab_t **self_p)
{
    qs_ptrtab_t *self = *self_p;
    if (!self)
        return;
    for (unsigned i = 0; i < SHARDS; i++) {
        pthread_mutex_destroy(&self->shards[i].lock);
        free(self->shards[i].slots);
    }
    free(self);
    *self_p = NULL;
}

static struct shard *shard_of(qs_ptrtab_t *self, uint64_t h)
{
    return &self->shards[h >> (64 - SHARD_BITS)];
}

/* Index of (kind, key) in s, or of the empty slot where it would go. s->cap > 0. */
static size_t probe(const struct shard *s, qs_alloc_kind_t kind, uint64_t key, uint64_t h)
{
    size_t mask = s->cap - 1, i = h & mask;
    while (s->slots[i].kind && !(s->slots[i].kind == kind && s->slots[i].key == key))
        i = (i + 1) & mask;
    return i;
}

static int grow(struct shard *s)
{
    size_t cap = s->cap ? s->cap * 2 : INITIAL_CAP;
    struct slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -ENOMEM;
    struct shard bigger = {.slots = slots, .cap = cap, .n = s->n};
    for (size_t i = 0; i < s->cap; i++) {
        const struct slot *e = &s->slots[i];
        if (e->kind)
            slots[probe(&bigger, e->kind, e->key, hash(e->kind, e->key))] = *e;
    }
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
    return 0;
}

int qs_ptrtab_put(qs_ptrtab_t *self, qs_alloc_kind_t kind, uint64_t key, uint64_t bytes,
                  const void *ctx)
{
    uint64_t h = hash(kind, key);
    struct shard *s = shard_of(self, h);
    int rc = 0;
    pthread_mutex_lock(&s->lock);
    if ((s->n + 1) * 2 > s->cap && (rc = grow(s)) < 0)
        goto out;
    size_t i = probe(s, kind, key, h);
    if (s->slots[i].kind) {
        rc = -EEXIST;
        goto out;
    }
    s->slots[i] = (struct slot){.key = key, .bytes = bytes, .ctx = ctx, .kind = (uint8_t)kind};
    s->n++;
out:
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* Empties slot i of s and shifts later members of its probe run back into the hole, so
 * that every remaining entry stays reachable from its home slot. Lock held. */
static void remove_at(struct shard *s, size_t i)
{
    size_t mask = s->cap - 1, j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!s->slots[j].kind)
            break;
        size_t home = hash(s->slots[j].kind, s->slots[j].key) & mask;
        /* j's entry may move to i only if its home is not cyclically in (i, j]. */
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            s->slots[i] = s->slots[j];
            i = j;
        }
    }
    s->slots[i].kind = 0;
    s->n--;
}

int qs_ptrtab_take(qs_ptrtab_t *self, qs_alloc_kind_t kind, uint64_t key, uint64_t *bytes,
                   const void **ctx)
{
    uint64_t h = hash(kind, key);
    struct shard *s = shard_of(self, h);
    int rc = -ENOENT;
    pthread_mutex_lock(&s->lock);
    if (s->cap) {
        size_t i = probe(s, kind, key, h);
        if (s->slots[i].kind) {
            *bytes = s->slots[i].bytes;
            if (ctx)
                *ctx = s->slots[i].ctx;
            remove_at(s, i);
            rc = 0;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

uint64_t qs_ptrtab_take_ctx(qs_ptrtab_t *self, const void *ctx)
{
    uint64_t total = 0;
    for (unsigned k = 0; k < SHARDS; k++) {
        struct shard *s = &self->shards[k];
        pthread_mutex_lock(&s->lock);
        /* A removal may shift a later entry into slot i: look at i again before moving on. */
        for (size_t i = 0; i < s->cap;) {
            if (s->slots[i].kind && s->slots[i].ctx == ctx) {
                total += s->slots[i].bytes;
                remove_at(s, i);
            } else {
                i++;
            }
        }
        pthread_mutex_unlock(&s->lock);
    }
    return total;
}

void qs_ptrtab_totals(qs_ptrtab_t *self, uint64_t *count, uint64_t *bytes)
{
    uint64_t c = 0, b = 0;
    for (unsigned k = 0; k < SHARDS; k++) {
        struct shard *s = &self->shards[k];
        pthread_mutex_lock(&s->lock);
        c += s->n;
        for (size_t i = 0; i < s->cap; i++)
            b += s->slots[i].kind ? s->slots[i].bytes : 0;
        pthread_mutex_unlock(&s->lock);
    }
    *count = c;
    *bytes = b;
}

void qs_ptrtab_lock_all(qs_ptrtab_t *self)
{
    /* In shard order; no thread holds two shard locks otherwise, so this cannot deadlock. */
    for (unsigned k = 0; k < SHARDS; k++)
        pthread_mutex_lock(&self->shards[k].lock);
}

void qs_ptrtab_unlock_all(qs_ptrtab_t *self)
{
    for (unsigned k = SHARDS; k-- > 0;)
        pthread_mutex_unlock(&self->shards[k].lock);
}

void qs_ptrtab_reset_after_fork(qs_ptrtab_t *self)
{
    /* Every shard was locked across fork: slots, cap and n agree, and slots is live. */
    for (unsigned k = 0; k < SHARDS; k++) {
        struct shard *s = &self->shards[k];
        free(s->slots);
        s->slots = NULL;
        s->cap = 0;
        s->n = 0;
        pthread_mutex_init(&s->lock, NULL);
    }
}
