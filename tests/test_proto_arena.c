/* test_proto_arena.c - the message arena: alignment, zeroing, growth, the cap. */
#include "proto/arena.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct first {
    qp_block_t block;
    max_align_t room[8];
};

Test(qp_arena, hands_out_zeroed_aligned_memory_and_grows)
{
    struct first f = {.block.cap = sizeof f.room};
    qp_arena_t a;
    qp_arena_init(&a, &f.block, 1 << 20);
    for (int i = 0; i < 1000; i++) {
        unsigned char *p = qp_arena_alloc(&a, (size_t)i % 97 + 1);
        cr_assert_not_null(p);
        cr_assert_eq((uintptr_t)p % _Alignof(max_align_t), 0);
        for (int k = 0; k < i % 97 + 1; k++)
            cr_assert_eq(p[k], 0);
        memset(p, 0xff, (size_t)i % 97 + 1);
    }
    cr_assert_neq(a.head, &f.block, "it grew past the first block");
    char *s = qp_arena_strndup(&a, "hello world", 5);
    cr_assert_str_eq(s, "hello");
    cr_assert_eq(a.error, 0);
    qp_arena_release(&a, &f.block);
    cr_assert_eq(a.head, &f.block);
}

Test(qp_arena, stops_at_its_cap_and_remembers_it)
{
    struct first f = {.block.cap = sizeof f.room};
    qp_arena_t a;
    qp_arena_init(&a, &f.block, 16 * 1024);
    int got = 0;
    while (qp_arena_alloc(&a, 1000))
        got++;
    cr_assert_gt(got, 5);
    cr_assert_lt(got, 40, "the cap bounds it");
    cr_assert_eq(a.error, -ENOMEM);
    cr_assert_null(qp_arena_strndup(&a, "x", 1000 * 1000));
    qp_arena_release(&a, &f.block);
}
