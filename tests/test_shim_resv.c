/* test_shim_resv.c - charging against the reservation: never past it, exact under many
 * threads, and the agent's grant, take and reset keep reserved = used + avail. */
#include "shim/resv.c"

#include <criterion/criterion.h>
#include <pthread.h>

Test(shim_resv, charges_within_the_reservation_and_refuses_past_it)
{
    struct qs_resv r = {0};
    cr_assert_not(qs_resv_try_charge(&r, 1), "nothing is reserved yet");
    qs_resv_grant(&r, 100);
    cr_assert(qs_resv_try_charge(&r, 60));
    cr_assert_not(qs_resv_try_charge(&r, 41));
    cr_assert(qs_resv_try_charge(&r, 40));
    cr_assert_eq(qs_resv_used(&r), 100);
    qs_resv_uncharge(&r, 60);
    cr_assert_eq(qs_resv_used(&r), 40);
    cr_assert_eq(atomic_load(&r.used), 40);
    cr_assert_not(qs_resv_try_charge(&r, UINT64_MAX), "a huge size must not wrap");
}

Test(shim_resv, grant_never_lowers_and_take_never_goes_below_use)
{
    struct qs_resv r = {0};
    qs_resv_grant(&r, 100);
    qs_resv_grant(&r, 50);
    cr_assert_eq(atomic_load(&r.reserved), 100);
    cr_assert(qs_resv_try_charge(&r, 70));
    cr_assert_eq(qs_resv_take(&r, 50), 30, "only the unused 30 can go");
    cr_assert_eq(atomic_load(&r.reserved), 70);
    cr_assert_eq(qs_resv_take(&r, 10), 0);
    cr_assert_not(qs_resv_try_charge(&r, 1));
}

Test(shim_resv, reset_leaves_the_reservation_at_what_is_used)
{
    struct qs_resv r = {0};
    qs_resv_grant(&r, 100);
    cr_assert(qs_resv_try_charge(&r, 30));
    cr_assert_eq(qs_resv_reset_to_used(&r), 30);
    cr_assert_eq(atomic_load(&r.reserved), 30);
    cr_assert_not(qs_resv_try_charge(&r, 1));
    qs_resv_uncharge(&r, 10); /* a free after the reset stays reserved */
    cr_assert(qs_resv_try_charge(&r, 10));
}

Test(shim_resv, forced_charges_are_covered_by_the_next_reset)
{
    struct qs_resv r = {0};
    qs_resv_grant(&r, 10);
    qs_resv_force(&r, 25);
    cr_assert_eq(qs_resv_used(&r), 25);
    cr_assert_not(qs_resv_try_charge(&r, 1));
    cr_assert_eq(qs_resv_take(&r, 100), 0);
    cr_assert_eq(qs_resv_reset_to_used(&r), 25);
    cr_assert_eq(atomic_load(&r.avail), 0);
}

struct worker {
    struct qs_resv *r;
    uint64_t won; /* charges that succeeded and are still held */
};

static void *grab(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 100000; i++) {
        if (qs_resv_try_charge(w->r, 3)) {
            if (i % 2)
                qs_resv_uncharge(w->r, 3);
            else
                w->won += 3;
        }
    }
    return NULL;
}

Test(shim_resv, many_threads_never_charge_past_the_reservation)
{
    struct qs_resv r = {0};
    qs_resv_grant(&r, 3000);
    enum { THREADS = 8 };
    pthread_t th[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){&r, 0};
        pthread_create(&th[i], NULL, grab, &w[i]);
    }
    uint64_t won = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        won += w[i].won;
    }
    cr_assert_eq(won, 3000, "exactly the reservation was handed out");
    cr_assert_eq(atomic_load(&r.avail), 0);
    cr_assert_eq(atomic_load(&r.used), 3000);
}
