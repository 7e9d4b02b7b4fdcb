/* resv.c - the agent's side of the reservation (shim/resv.h); charging is inline there.
 * Threads: these functions run on the agent thread only (reserved has one writer). */
#include "shim/resv.h"

void qs_resv_grant(struct qs_resv *r, uint64_t new_reserved)
{
    uint64_t old = atomic_load_explicit(&r->reserved, memory_order_relaxed);
    if (new_reserved <= old)
        return;
    atomic_store_explicit(&r->reserved, new_reserved, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->avail, (int64_t)(new_reserved - old), memory_order_relaxed);
}

uint64_t qs_resv_take(struct qs_resv *r, uint64_t max)
{
    int64_t a = atomic_load_explicit(&r->avail, memory_order_relaxed), take;
    do {
        take = a < 0 ? 0 : (uint64_t)a < max ? a : (int64_t)max;
        if (take == 0)
            return 0;
    } while (!atomic_compare_exchange_weak_explicit(&r->avail, &a, a - take, memory_order_relaxed,
                                                    memory_order_relaxed));
    atomic_fetch_sub_explicit(&r->reserved, (uint64_t)take, memory_order_relaxed);
    return (uint64_t)take;
}

uint64_t qs_resv_reset_to_used(struct qs_resv *r)
{
    int64_t a = atomic_exchange_explicit(&r->avail, 0, memory_order_relaxed);
    uint64_t res = atomic_load_explicit(&r->reserved, memory_order_relaxed);
    res = a >= 0 ? res - (uint64_t)a : res + (uint64_t)-a;
    atomic_store_explicit(&r->reserved, res, memory_order_relaxed);
    return res;
}

uint64_t qs_resv_used(struct qs_resv *r)
{
    uint64_t res = atomic_load_explicit(&r->reserved, memory_order_relaxed);
    int64_t a = atomic_load_explicit(&r->avail, memory_order_relaxed);
    if (a >= 0)
        return (uint64_t)a > res ? 0 : res - (uint64_t)a;
    return res + (uint64_t)-a;
}
