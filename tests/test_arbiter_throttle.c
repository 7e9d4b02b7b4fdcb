/* test_arbiter_throttle.c - the per-source log budget on a fake clock: a few lines per
 * source per window, the rest counted and summed up once the window is over. */
#include "arbiter/throttle.h"

#include <criterion/criterion.h>

#define S 1000000000ull

struct seen {
    uint32_t source[16];
    uint64_t held[16];
    int n;
};

static void note(void *arg, uint32_t source, uint64_t held)
{
    struct seen *s = arg;
    s->source[s->n] = source;
    s->held[s->n++] = held;
}

Test(qa_throttle, a_source_writes_its_burst_then_is_summed_up_once_its_window_ends)
{
    qa_throttle_t *t = qa_throttle_new(3, 10 * S, 16);
    int written = 0;
    for (int i = 0; i < 1000; i++)
        written += qa_throttle_allow(t, 65534, 1 * S + (uint64_t)i);
    cr_assert_eq(written, 3);
    cr_assert(qa_throttle_allow(t, 1000, 2 * S), "another source has its own budget");
    struct seen s = {0};
    qa_throttle_flush(t, 10 * S, note, &s);
    cr_assert_eq(s.n, 0, "nothing before the window ends");
    qa_throttle_flush(t, 11 * S, note, &s);
    cr_assert_eq(s.n, 1);
    cr_assert_eq(s.source[0], 65534);
    cr_assert_eq(s.held[0], 997);
    cr_assert_eq(qa_throttle_sources(t), 1, "uid 1000's window is still open");
    /* a new window: the budget is back */
    cr_assert(qa_throttle_allow(t, 65534, 12 * S));
    qa_throttle_flush(t, 13 * S, note, &s);
    cr_assert_eq(s.n, 1, "uid 1000 held nothing back: no summary");
    cr_assert_eq(qa_throttle_sources(t), 1);
    qa_throttle_destroy(&t);
    cr_assert_null(t);
}

Test(qa_throttle, sources_beyond_the_table_share_one_budget)
{
    qa_throttle_t *t = qa_throttle_new(1, 10 * S, 4);
    int written = 0;
    for (uint32_t uid = 1; uid <= 100; uid++)
        written += qa_throttle_allow(t, uid, S);
    cr_assert_eq(written, 5, "4 followed sources and the others' one line");
    cr_assert_eq(qa_throttle_sources(t), 4);
    struct seen s = {0};
    qa_throttle_flush(t, 20 * S, note, &s);
    cr_assert_eq(s.n, 1);
    cr_assert_eq(s.source[0], QA_THROTTLE_OTHERS);
    cr_assert_eq(s.held[0], 95);
    cr_assert_eq(qa_throttle_sources(t), 0, "every window was over: all forgotten");
    qa_throttle_destroy(&t);
}

Test(qa_throttle, forgetting_many_sources_keeps_the_others_findable)
{
    qa_throttle_t *t = qa_throttle_new(1, 10 * S, 64);
    for (uint32_t uid = 0; uid < 64; uid++)
        cr_assert(qa_throttle_allow(t, uid * 64, uid % 2 ? 0 : 5 * S));
    struct seen s = {0};
    qa_throttle_flush(t, 12 * S, note, &s); /* the odd ones' windows are over */
    cr_assert_eq(qa_throttle_sources(t), 32);
    for (uint32_t uid = 0; uid < 64; uid += 2)
        cr_assert_not(qa_throttle_allow(t, uid * 64, 12 * S), "uid %u is still followed",
                      uid * 64);
    qa_throttle_destroy(&t);
}
