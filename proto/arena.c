/* arena.c - region allocation for messages. Single-threaded per arena. */
#include "proto/arena.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MIN_BLOCK 4096
#define MAX_BLOCK (64 * 1024)

void qp_arena_init(qp_arena_t *self, qp_block_t *first, size_t max)
{
    first->next = NULL;
    first->used = 0;
    self->head = first;
    self->total = 0;
    self->max = max;
    self->error = 0;
}

void qp_arena_release(qp_arena_t *self, qp_block_t *first)
{
    qp_block_t *b = self->head;
    while (b && b != first) {
        qp_block_t *next = b->next;
        free(b);
        b = next;
    }
    self->head = first;
}

void *qp_arena_alloc(qp_arena_t *self, size_t size)
{
    size = (size + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1);
    qp_block_t *b = self->head;
    if (b->cap - b->used < size) {
        size_t cap = b->cap * 2;
        if (cap < MIN_BLOCK)
            cap = MIN_BLOCK;
        if (cap > MAX_BLOCK)
            cap = MAX_BLOCK;
        if (cap < size)
            cap = size;
        if (self->total + cap > self->max || !(b = malloc(sizeof *b + cap))) {
            self->error = self->error ? self->error : -ENOMEM;
            return NULL;
        }
        b->cap = cap;
        b->used = 0;
        b->next = self->head;
        self->head = b;
        self->total += cap;
    }
    void *p = (char *)b->data + b->used;
    b->used += size;
    memset(p, 0, size);
    return p;
}

char *qp_arena_strndup(qp_arena_t *self, const char *s, size_t len)
{
    char *p = qp_arena_alloc(self, len + 1);
    if (p)
        memcpy(p, s, len); /* the NUL comes from the zeroing */
    return p;
}
