/* resv.h - this process's memory reservation from the arbiter, charged without locks.
 *
 * The arbiter grants each process a reservation and keeps the sum of a vGPU's
 * reservations within its quota. Allocations charge against the part not yet used
 * (avail) with one compare-and-swap, so no allocation waits for the arbiter while the
 * reservation lasts. Invariant: reserved = used + avail, where avail may go negative only
 * through qs_resv_force() (memory the driver took that we could not refuse).
 *
 * Threads: any application thread charges and uncharges; only the agent thread changes
 * the reservation (grant, take, reset). avail is the single word they contend on, so a
 * reservation can never be released while a charge against it is in flight. */
#ifndef QS_RESV_H
#define QS_RESV_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct qs_resv {
    _Atomic int64_t avail;     /* reserved but not charged; any thread */
    _Atomic uint64_t used;     /* charged (a report: may lag avail by one operation) */
    _Atomic uint64_t reserved; /* the arbiter's grant as we know it; agent thread writes */
};

/* Charges n bytes if the reservation holds them. Returns false (nothing charged) if not. */
static inline bool qs_resv_try_charge(struct qs_resv *r, uint64_t n)
{
    if (n > (uint64_t)INT64_MAX)
        return false;
    /* relaxed suffices: avail is the only datum; the memory it stands for is the driver's. */
    int64_t a = atomic_load_explicit(&r->avail, memory_order_relaxed);
    do {
        if (a < (int64_t)n)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&r->avail, &a, a - (int64_t)n,
                                                    memory_order_relaxed, memory_order_relaxed));
    atomic_fetch_add_explicit(&r->used, n, memory_order_relaxed);
    return true;
}

/* Gives back n bytes charged earlier (a free); they stay reserved for the next charge. */
static inline void qs_resv_uncharge(struct qs_resv *r, uint64_t n)
{
    atomic_fetch_add_explicit(&r->avail, (int64_t)n, memory_order_relaxed);
    atomic_fetch_sub_explicit(&r->used, n, memory_order_relaxed);
}

/* Charges n bytes whether or not they are reserved: the driver already holds them (a pool
 * grew where we could not see it). avail may go negative; the agent asks to cover it. */
static inline void qs_resv_force(struct qs_resv *r, uint64_t n)
{
    atomic_fetch_sub_explicit(&r->avail, (int64_t)n, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->used, n, memory_order_relaxed);
}

/* Agent: the arbiter raised the reservation to new_reserved (>= the current one). */
void qs_resv_grant(struct qs_resv *r, uint64_t new_reserved);
/* Agent: takes up to max unused bytes out of the reservation (never below what is used)
 * and returns how many it took; reserved drops by as much. */
uint64_t qs_resv_take(struct qs_resv *r, uint64_t max);
/* Agent: drops the whole unused part (or covers a negative one), so that reserved equals
 * what is used at that instant, and returns it: what a new connection re-reports. */
uint64_t qs_resv_reset_to_used(struct qs_resv *r);
/* Bytes charged now, derived from the reservation (exact between operations). */
uint64_t qs_resv_used(struct qs_resv *r);

#endif
