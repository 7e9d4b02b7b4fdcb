/* test_arbiter_loop.c - the event loop: timers in deadline order with nanosecond
 * deadlines, restart and stop from callbacks, and fds served while they have input. */
#include <stdint.h>
#include "arbiter/loop.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct rec {
    qa_loop_t *loop;
    int order[32]; /* ids of the timers that fired, in order */
    int n;
    int stop_after; /* stop the loop after this many fired */
};

struct tm {
    qa_timer_t t;
    struct rec *rec;
    int id;
};

static void fired(void *arg)
{
    struct tm *x = arg;
    x->rec->order[x->rec->n++] = x->id;
    if (x->rec->n == x->rec->stop_after)
        qa_loop_stop(x->rec->loop);
}

Test(qa_loop, timers_fire_in_deadline_order_and_stopped_ones_do_not)
{
    qa_loop_t *loop = qa_loop_new();
    struct rec rec = {.loop = loop, .stop_after = 4};
    struct tm t[6];
    memset(t, 0, sizeof t);
    uint64_t now = qa_now_ns();
    const uint64_t at_us[6] = {900, 100, 500, 300, 700, 200};
    for (int i = 0; i < 6; i++) {
        t[i].rec = &rec;
        t[i].id = i;
        cr_assert_eq(qa_timer_start(loop, &t[i].t, now + at_us[i] * 1000, fired, &t[i]), 0);
        cr_assert(qa_timer_running(&t[i].t));
    }
    qa_timer_stop(loop, &t[3].t); /* 300 us */
    qa_timer_stop(loop, &t[3].t); /* twice is harmless */
    cr_assert_not(qa_timer_running(&t[3].t));
    /* restarting moves it */
    cr_assert_eq(qa_timer_start(loop, &t[0].t, now + 50 * 1000, fired, &t[0]), 0);
    cr_assert_eq(qa_loop_run(loop), 0);
    int want[4] = {0, 1, 5, 2};
    cr_assert_arr_eq(rec.order, want, sizeof want);
    cr_assert(qa_timer_running(&t[4].t), "not due yet when the loop stopped");
    qa_loop_destroy(&loop);
    cr_assert_null(loop);
    cr_assert_not(qa_timer_running(&t[4].t), "a destroyed loop forgets its timers");
}

Test(qa_loop, sub_millisecond_timers_are_not_rounded_to_milliseconds)
{
    qa_loop_t *loop = qa_loop_new();
    struct rec rec = {.loop = loop, .stop_after = 1};
    struct tm t = {.rec = &rec};
    /* Rounded up to whole milliseconds, no 200 us timer could fire in under 1 ms. A busy
     * machine only delays wake-ups, so the fastest of 20 tells, where their sum would not. */
    uint64_t fastest_us = UINT64_MAX;
    for (int i = 0; i < 20; i++) {
        uint64_t t0 = qa_now_ns();
        qa_timer_start(loop, &t.t, t0 + 200000, fired, &t);
        qa_loop_run(loop);
        uint64_t us = (qa_now_ns() - t0) / 1000;
        cr_assert_geq(us, 200, "a timer fired early, after %llu us", (unsigned long long)us);
        if (us < fastest_us)
            fastest_us = us;
        rec.stop_after = rec.n + 1;
    }
    cr_assert_lt(fastest_us, 900, "the fastest 200 us timer took %llu us",
                 (unsigned long long)fastest_us);
    qa_loop_destroy(&loop);
}

struct io {
    qa_loop_t *loop;
    int fd;
    int calls;
    int want;
};

static void on_fd(void *arg)
{
    struct io *io = arg;
    char c;
    if (read(io->fd, &c, 1) == 1 && ++io->calls == io->want)
        qa_loop_stop(io->loop);
}

Test(qa_loop, serves_a_plain_fd)
{
    qa_loop_t *loop = qa_loop_new();
    int p[2];
    cr_assert_eq(pipe(p), 0);
    struct io io = {.loop = loop, .fd = p[0], .want = 3};
    cr_assert_eq(qa_loop_add_fd(loop, p[0], on_fd, &io), 0);
    cr_assert_eq(write(p[1], "abc", 3), 3);
    cr_assert_eq(qa_loop_run(loop), 0);
    cr_assert_eq(io.calls, 3);
    close(p[0]);
    close(p[1]);
    qa_loop_destroy(&loop);
}

/* Reads one byte, then stops watching its fd (from inside its own callback). */
static void on_fd_once(void *arg)
{
    struct io *io = arg;
    char c;
    if (read(io->fd, &c, 1) == 1)
        io->calls++;
    qa_loop_remove_fd(io->loop, io->fd);
}

static void stop_loop(void *arg)
{
    qa_loop_stop(arg);
}

Test(qa_loop, an_fd_removed_from_its_callback_is_not_called_again_and_others_go_on)
{
    qa_loop_t *loop = qa_loop_new();
    int a[2], b[2];
    cr_assert_eq(pipe(a), 0);
    cr_assert_eq(pipe(b), 0);
    struct io once = {.loop = loop, .fd = a[0]};
    struct io other = {.loop = loop, .fd = b[0], .want = 3};
    cr_assert_eq(qa_loop_add_fd(loop, a[0], on_fd_once, &once), 0);
    cr_assert_eq(qa_loop_add_fd(loop, b[0], on_fd, &other), 0);
    cr_assert_eq(write(a[1], "xyz", 3), 3, "still readable after the first byte");
    cr_assert_eq(write(b[1], "abc", 3), 3);
    cr_assert_eq(qa_loop_run(loop), 0);
    cr_assert_eq(once.calls, 1);
    cr_assert_eq(other.calls, 3);
    /* its slot is free again: with the other one, 16 watches fit */
    for (int i = 0; i < 15; i++)
        cr_assert_eq(qa_loop_add_fd(loop, a[0], on_fd_once, &once), 0);
    qa_timer_t t = {0};
    qa_timer_start(loop, &t, qa_now_ns() + 1000000, stop_loop, loop);
    cr_assert_eq(qa_loop_run(loop), 0);
    cr_assert_eq(once.calls, 2, "the remaining bytes are read once by the first of the new "
                                "watches, which all go at once");
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    qa_loop_destroy(&loop);
}
