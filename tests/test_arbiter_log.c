/* test_arbiter_log.c - the arbiter's log lines: one per event, with a UTC time, the pid
 * and the level; levels above the configured one dropped (arbiter/log.c). */
#include "arbiter/log.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* What was written to f. */
static const char *text_of(FILE *f)
{
    static char text[4096];
    fflush(f);
    rewind(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    return text;
}

Test(qa_log, a_line_has_a_utc_time_the_pid_and_the_level)
{
    FILE *f = tmpfile();
    qa_log_t log = {QA_INFO, f};
    qa_log(&log, QA_WARN, "vGPU %s: %d processes", "vg-1", 3);
    char want[128];
    snprintf(want, sizeof want,
             "^20[0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]\\.[0-9]{3}Z "
             "qarbiter\\[%d\\] warn: vGPU vg-1: 3 processes\n$",
             (int)getpid());
    regex_t re;
    cr_assert_eq(regcomp(&re, want, REG_EXTENDED | REG_NOSUB), 0);
    cr_assert_eq(regexec(&re, text_of(f), 0, NULL, 0), 0, "%s", text_of(f));
    regfree(&re);
    fclose(f);
}

Test(qa_log, lines_above_the_level_are_dropped)
{
    FILE *f = tmpfile();
    qa_log_t log = {QA_WARN, f};
    qa_log(&log, QA_INFO, "not shown");
    qa_log(&log, QA_DEBUG, "nor this");
    qa_log(&log, QA_ERROR, "shown");
    const char *t = text_of(f);
    cr_assert_null(strstr(t, "not shown"));
    cr_assert_null(strstr(t, "nor this"));
    cr_assert(strstr(t, " error: shown\n"), "%s", t);
    fclose(f);
}

Test(qa_log, a_very_long_message_is_cut_but_stays_one_line)
{
    FILE *f = tmpfile();
    qa_log_t log = {QA_DEBUG, f};
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    qa_log(&log, QA_INFO, "%s", big);
    const char *t = text_of(f);
    cr_assert_eq(strchr(t, '\n'), t + strlen(t) - 1, "one line");
    cr_assert_lt(strlen(t), 1100);
    fclose(f);
}

Test(qa_log, levels_read_and_print_by_name)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        qa_level_t l;
        cr_assert_eq(qa_log_parse_level(names[i], &l), 0);
        cr_assert_eq((int)l, i);
        cr_assert_str_eq(qa_log_level_name(l), names[i]);
    }
    qa_level_t l = QA_INFO;
    cr_assert_eq(qa_log_parse_level("verbose", &l), -EINVAL);
    cr_assert_eq(l, QA_INFO, "left as it was");
    cr_assert_str_eq(qa_log_level_name((qa_level_t)9), "?");
}
