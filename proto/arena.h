/* arena.h - a region allocator for one protocol message: many small allocations, freed
 * together, with a cap on the total so that what a peer sends bounds what it costs.
 *
 * The first block is the caller's (messages put it in the same allocation as their
 * root), later ones grow geometrically up to 64 KiB. Single-threaded; no global state. */
#ifndef QP_ARENA_H
#define QP_ARENA_H

#include <stddef.h>

typedef struct qp_block {
    struct qp_block *next; /* owned: the block allocated before this one */
    size_t used;           /* bytes handed out from data */
    size_t cap;            /* bytes in data */
    max_align_t data[];    /* the memory */
} qp_block_t;

typedef struct qp_arena {
    qp_block_t *head; /* owned but for the first: newest block first */
    size_t total;     /* bytes of the blocks allocated here, checked against max */
    size_t max;       /* cap on total */
    int error;        /* first failure (-ENOMEM, or what the owner records), sticky */
} qp_arena_t;

/* Starts an arena in first (whose cap the caller set) that may allocate max bytes more. */
void qp_arena_init(qp_arena_t *self, qp_block_t *first, size_t max);
/* Frees every block but first. */
void qp_arena_release(qp_arena_t *self, qp_block_t *first);
/* size zeroed bytes aligned for any type, or NULL (the cap or malloc; error set to
 * -ENOMEM if it held none). */
void *qp_arena_alloc(qp_arena_t *self, size_t size);
/* A NUL-terminated copy of len bytes of s, or NULL as qp_arena_alloc. */
char *qp_arena_strndup(qp_arena_t *self, const char *s, size_t len);

#endif
