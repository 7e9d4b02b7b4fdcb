/* test_arbiter_textbuf.c - the text buffer responses are rendered into: growth, JSON
 * strings and reals as readers expect them, and errors that stick (arbiter/textbuf.c). */
#include "arbiter/textbuf.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The text of b, taken. */
static char *take(qa_buf_t *b)
{
    char *out;
    size_t len;
    cr_assert_eq(qa_buf_take(b, &out, &len), 0);
    cr_assert_eq(len, strlen(out));
    return out;
}

Test(qa_buf, grows_past_its_hint_and_keeps_every_byte)
{
    qa_buf_t b;
    qa_buf_init(&b, 4);
    for (int i = 0; i < 1000; i++)
        qa_buf_printf(&b, "%d,", i);
    qa_buf_puts(&b, "end");
    char *t = take(&b);
    cr_assert_eq(strncmp(t, "0,1,2,", 6), 0);
    cr_assert(strstr(t, ",998,999,end"));
    free(t);
}

Test(qa_buf, json_strings_are_quoted_escaped_and_printable)
{
    qa_buf_t b;
    qa_buf_init(&b, 16);
    qa_buf_json_string(&b, "a \"vm\"\\\n\t\x01\xc3\xa9");
    char *t = take(&b);
    cr_assert_str_eq(t, "\"a \\\"vm\\\"\\\\\\u000a\\u0009\\u0001??\"");
    free(t);
}

Test(qa_buf, json_reals_keep_their_type_and_json_has_no_nan)
{
    qa_buf_t b;
    qa_buf_init(&b, 16);
    const double xs[] = {0, 32.5, 1e-05, 100, NAN, INFINITY};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
        qa_buf_json_real(&b, xs[i]);
        qa_buf_add(&b, " ", 1);
    }
    char *t = take(&b);
    cr_assert_str_eq(t, "0.0 32.5 1e-05 100.0 0.0 0.0 ");
    free(t);
}

Test(qa_buf, a_failed_allocation_sticks_and_hands_nothing_over)
{
    qa_buf_t b;
    qa_buf_init(&b, 16);
    qa_buf_puts(&b, "partial");
    b.failed = true; /* as an append that could not grow leaves it */
    qa_buf_puts(&b, " more");
    char *out = NULL;
    size_t len = 7;
    cr_assert_eq(qa_buf_take(&b, &out, &len), -ENOMEM);
    cr_assert_null(out);
}
