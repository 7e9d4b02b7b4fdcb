/* test_shim_ptrtab.c - the table that remembers what each allocation charged: exact
 * round trips, collisions and deletions, contexts, and many threads at once. */
#include "shim/ptrtab.c"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

Test(shim_ptrtab, gives_back_exactly_what_was_put)
{
    qs_ptrtab_t *t = qs_ptrtab_new();
    uint64_t n = 0;
    cr_assert_eq(qs_ptrtab_put(t, QS_ALLOC_DPTR, 0x7f0000200000, 4096, NULL), 0);
    cr_assert_eq(qs_ptrtab_take(t, QS_ALLOC_DPTR, 0x7f0000200000, &n, NULL), 0);
    cr_assert_eq(n, 4096);
    cr_assert_eq(qs_ptrtab_take(t, QS_ALLOC_DPTR, 0x7f0000200000, &n, NULL), -ENOENT);
    qs_ptrtab_destroy(&t);
    cr_assert_null(t);
}

Test(shim_ptrtab, keeps_kinds_apart_and_refuses_a_duplicate)
{
    qs_ptrtab_t *t = qs_ptrtab_new();
    uint64_t n = 0;
    cr_assert_eq(qs_ptrtab_put(t, QS_ALLOC_DPTR, 42, 1, NULL), 0);
    cr_assert_eq(qs_ptrtab_put(t, QS_ALLOC_MIPMAP, 42, 2, NULL), 0);
    cr_assert_eq(qs_ptrtab_put(t, QS_ALLOC_DPTR, 42, 3, NULL), -EEXIST);
    cr_assert_eq(qs_ptrtab_take(t, QS_ALLOC_MIPMAP, 42, &n, NULL), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(qs_ptrtab_take(t, QS_ALLOC_ARRAY, 42, &n, NULL), -ENOENT);
    cr_assert_eq(qs_ptrtab_take(t, QS_ALLOC_DPTR, 42, &n, NULL), 0);
    cr_assert_eq(n, 1, "the duplicate must not have replaced the first entry");
    qs_ptrtab_destroy(&t);
}

Test(shim_ptrtab, gives_back_the_owner_it_was_put_with)
{
    qs_ptrtab_t *t = qs_ptrtab_new();
    int pool;
    uint64_t n = 1;
    const void *owner = NULL;
    cr_assert_eq(qs_ptrtab_put(t, QS_ALLOC_POOLED, 0x7f0000400000, 0, &pool), 0);
    cr_assert_eq(qs_ptrtab_take(t, QS_ALLOC_POOLED, 0x7f0000400000, &n, &owner), 0);
    cr_assert_eq(n, 0);
    cr_assert_eq(owner, &pool);
    qs_ptrtab_destroy(&t);
}

Test(shim_ptrtab, finds_every_survivor_after_growing_and_deleting_half)
{
    qs_ptrtab_t *t = qs_ptrtab_new();
    enum { N = 20000 };
    /* Device pointers share low bits (2 MiB aligned): the hash must spread them. */
    for (uint64_t i = 0; i < N; i++)
        cr_assert_eq(qs_ptrtab_put(t, QS_ALLOC_DPTR, 0x7f0000000000 + (i << 21), i + 1, NULL), 0);
    for (uint64_t i = 0; i < N; i += 2) {
        uint64_t n = 0;
        cr_assert_eq(qs_ptrtab_take(t, QS_ALLOC_DPTR, 0x7f0000000000 + (i << 21), &n, NULL), 0);
        cr_assert_eq(n, i + 1);
    }
    uint64_t count, bytes, expect = 0;
    for (uint64_t i = 1; i < N; i += 2)
        expect += i + 1;
    qs_ptrtab_totals(t, &count, &bytes);
    cr_assert_eq(count, N / 2);
    cr_assert_eq(bytes, expect);
    for (uint64_t i = 1; i < N; i += 2) {
        uint64_t n = 0;
        cr_assert_eq(qs_ptrtab_take(t, QS_ALLOC_DPTR, 0x7f0000000000 + (i << 21), &n, NULL), 0,
                     "entry %lu lost", (unsigned long)i);
        cr_assert_eq(n, i + 1);
    }
    qs_ptrtab_totals(t, &count, &bytes);
    cr_assert_eq(count, 0);
    cr_assert_eq(bytes, 0);
    qs_ptrtab_destroy(&t);
}

Test(shim_ptrtab, forgets_a_destroyed_context_and_nothing_else)
{
    qs_ptrtab_t *t = qs_ptrtab_new();
    int a, b;
    for (uint64_t i = 1; i <= 1000; i++)
        qs_ptrtab_put(t, QS_ALLOC_DPTR, i * 512, 10, (i % 3) ? (void *)&a : (void *)&b);
    qs_ptrtab_put(t, QS_ALLOC_MIPMAP, 7, 1000, NULL);
    cr_assert_eq(qs_ptrtab_take_ctx(t, &a), 667 * 10);
    uint64_t count, bytes;
    qs_ptrtab_totals(t, &count, &bytes);
    cr_assert_eq(count, 333 + 1);
    cr_assert_eq(bytes, 333 * 10 + 1000);
    cr_assert_eq(qs_ptrtab_take_ctx(t, &a), 0);
    for (uint64_t i = 3; i <= 1000; i += 3) {
        uint64_t n;
        cr_assert_eq(qs_ptrtab_take(t, QS_ALLOC_DPTR, i * 512, &n, NULL), 0);
    }
    qs_ptrtab_destroy(&t);
}

Test(shim_ptrtab, empties_after_fork_reset)
{
    qs_ptrtab_t *t = qs_ptrtab_new();
    qs_ptrtab_put(t, QS_ALLOC_DPTR, 1, 1, NULL);
    qs_ptrtab_lock_all(t);
    qs_ptrtab_reset_after_fork(t);
    uint64_t count, bytes, n;
    qs_ptrtab_totals(t, &count, &bytes);
    cr_assert_eq(count, 0);
    cr_assert_eq(qs_ptrtab_take(t, QS_ALLOC_DPTR, 1, &n, NULL), -ENOENT);
    cr_assert_eq(qs_ptrtab_put(t, QS_ALLOC_DPTR, 1, 5, NULL), 0);
    qs_ptrtab_destroy(&t);
}

struct worker {
    qs_ptrtab_t *t;
    uint64_t base;
    uint64_t lost; /* entries not found again */
};

static void *churn(void *arg)
{
    struct worker *w = arg;
    for (int round = 0; round < 20; round++) {
        for (uint64_t i = 0; i < 500; i++)
            qs_ptrtab_put(w->t, QS_ALLOC_DPTR, w->base + i * 256, i, NULL);
        for (uint64_t i = 0; i < 500; i++) {
            uint64_t n = 0;
            if (qs_ptrtab_take(w->t, QS_ALLOC_DPTR, w->base + i * 256, &n, NULL) < 0 || n != i)
                w->lost++;
        }
    }
    return NULL;
}

Test(shim_ptrtab, stays_exact_with_many_threads)
{
    qs_ptrtab_t *t = qs_ptrtab_new();
    enum { THREADS = 8 };
    pthread_t th[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){t, (uint64_t)(i + 1) << 32, 0};
        pthread_create(&th[i], NULL, churn, &w[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(w[i].lost, 0);
    }
    uint64_t count, bytes;
    qs_ptrtab_totals(t, &count, &bytes);
    cr_assert_eq(count, 0);
    qs_ptrtab_destroy(&t);
}

struct grower {
    qs_ptrtab_t *t;
    atomic_bool stop;
};

/* Puts and takes batches big enough to make shards grow and shrink back all the time. */
static void *grow_forever(void *arg)
{
    struct grower *g = arg;
    for (uint64_t round = 0; !atomic_load(&g->stop); round++) {
        uint64_t base = (round + 1) << 40, n;
        for (uint64_t i = 0; i < 4096; i++)
            qs_ptrtab_put(g->t, QS_ALLOC_DPTR, base + (i << 21), 1, NULL);
        for (uint64_t i = 0; i < 4096; i++)
            qs_ptrtab_take(g->t, QS_ALLOC_DPTR, base + (i << 21), &n, NULL);
    }
    return NULL;
}

/* In the child: the reset table must be empty and work (exit status 0), whatever the
 * other thread was doing when the parent forked. */
static int child_checks(qs_ptrtab_t *t)
{
    qs_ptrtab_reset_after_fork(t);
    uint64_t count, bytes, n;
    qs_ptrtab_totals(t, &count, &bytes);
    if (count != 0 || bytes != 0)
        return 1;
    for (uint64_t i = 0; i < 1000; i++) {
        if (qs_ptrtab_put(t, QS_ALLOC_DPTR, 0x10000 + i * 512, i, NULL) != 0)
            return 2;
    }
    for (uint64_t i = 0; i < 1000; i++) {
        if (qs_ptrtab_take(t, QS_ALLOC_DPTR, 0x10000 + i * 512, &n, NULL) != 0 || n != i)
            return 3;
    }
    qs_ptrtab_destroy(&t);
    return 0;
}

Test(shim_ptrtab, a_fork_child_gets_an_empty_working_table_while_another_thread_grows_it)
{
    struct grower g = {.t = qs_ptrtab_new()};
    pthread_t th;
    pthread_create(&th, NULL, grow_forever, &g);
    for (int i = 0; i < 30; i++) {
        /* As shim/init.c's fork handlers do. */
        qs_ptrtab_lock_all(g.t);
        pid_t pid = fork();
        if (pid == 0)
            _exit(child_checks(g.t));
        qs_ptrtab_unlock_all(g.t);
        cr_assert_gt(pid, 0);
        int st = -1;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFEXITED(st), "fork %d: child died (status %d)", i, st);
        cr_assert_eq(WEXITSTATUS(st), 0, "fork %d: child's table was wrong", i);
        usleep(1000);
    }
    atomic_store(&g.stop, true);
    pthread_join(th, NULL);
    qs_ptrtab_destroy(&g.t);
}
