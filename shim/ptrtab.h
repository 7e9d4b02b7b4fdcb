/* ptrtab.h - what each live allocation charged, so that its free uncharges exactly that.
 *
 * Threads: any. The table is split into shards, each with its own mutex, chosen by a
 * hash of the key, so threads freeing and allocating different pointers rarely meet;
 * there is no global lock. */
#ifndef QS_PTRTAB_H
#define QS_PTRTAB_H

#include <stdbool.h>
#include <stdint.h>

/* What a key names: the same number may be a device pointer and, say, a VMM handle. */
typedef enum qs_alloc_kind {
    QS_ALLOC_DPTR = 1, /* cuMemAlloc*, cuMemAllocPitch*, cuMemAllocManaged: cuMemFree */
    QS_ALLOC_ARRAY,    /* cuArrayCreate*, cuArray3DCreate*: cuArrayDestroy */
    QS_ALLOC_MIPMAP,   /* cuMipmappedArrayCreate: cuMipmappedArrayDestroy */
    QS_ALLOC_POOLED,   /* cuMemAllocAsync* from a measured pool (which is charged, not the
                          allocation): cuMemFree*, cuMemFreeAsync*; owner: its qs_pool */
} qs_alloc_kind_t;

typedef struct qs_ptrtab qs_ptrtab_t;

/* An empty table, or NULL when out of memory. */
qs_ptrtab_t *qs_ptrtab_new(void);
/* Frees *self_p and its entries, then sets it to NULL; a NULL *self_p is a no-op. */
void qs_ptrtab_destroy(qs_ptrtab_t **self_p);
/* Remembers that (kind, key) charged bytes, owned by ctx: the context it dies with, or for
 * QS_ALLOC_POOLED its pool's record (NULL: outlives contexts). Returns 0, -EEXIST when
 * (kind, key) is already there (left unchanged), or -ENOMEM. */
int qs_ptrtab_put(qs_ptrtab_t *self, qs_alloc_kind_t kind, uint64_t key, uint64_t bytes,
                  const void *ctx);
/* Forgets (kind, key) and stores what it charged in *bytes and, unless ctx is NULL, its
 * owner in *ctx. Returns 0 or -ENOENT. */
int qs_ptrtab_take(qs_ptrtab_t *self, qs_alloc_kind_t kind, uint64_t key, uint64_t *bytes,
                   const void **ctx);
/* Forgets every entry made in ctx (the driver freed them with it); returns their bytes. */
uint64_t qs_ptrtab_take_ctx(qs_ptrtab_t *self, const void *ctx);
/* Number of entries and their bytes, summed shard by shard (not a snapshot). */
void qs_ptrtab_totals(qs_ptrtab_t *self, uint64_t *count, uint64_t *bytes);
/* Around fork: the forking thread takes every shard's lock before it forks, so that no
 * shard is caught half-grown (its slots freed, or not yet moved) in the child, and drops
 * them after, in the parent. */
void qs_ptrtab_lock_all(qs_ptrtab_t *self);
void qs_ptrtab_unlock_all(qs_ptrtab_t *self);
/* In the child of a fork made under qs_ptrtab_lock_all(): empties the table, freeing its
 * slots (the parent's entries: the child charged none of them), and re-creates its
 * mutexes, which the child's only thread holds. */
void qs_ptrtab_reset_after_fork(qs_ptrtab_t *self);

#endif
