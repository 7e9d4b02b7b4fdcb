/* test_slurm_spec.c - the value of --vgpu: what is accepted, what qgpuctl create is given,
 * and the one-line refusals a user sees at submission. */
#include "slurm/spec.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The create options for text joined by spaces (static storage). */
static const char *args_of(const char *text, const char *extra)
{
    static char buf[256];
    qsl_spec_t spec;
    char err[QSL_ERR_LEN];
    cr_assert_eq(qsl_spec_parse(text, extra, &spec, err), 0, "%s: %s", text, err);
    qsl_args_t a;
    qsl_spec_args(&spec, &a);
    buf[0] = '\0';
    for (int i = 0; a.argv[i]; i++)
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", i ? " " : "", a.argv[i]);
    return buf;
}

/* The refusal of text (static storage); fails the test when text is accepted. */
static const char *refusal(const char *text, const char *extra)
{
    static char err[QSL_ERR_LEN];
    qsl_spec_t spec;
    cr_assert_eq(qsl_spec_parse(text, extra, &spec, err), -EINVAL, "'%s' was accepted", text);
    cr_assert_null(strchr(err, '\n'), "one line: %s", err);
    cr_assert(strncmp(err, "--vgpu", 6) == 0, "names the option: %s", err);
    return err;
}

Test(slurm_spec, the_four_profiles_become_create_profile)
{
    cr_assert_str_eq(args_of("Q1", NULL), "--profile Q1");
    cr_assert_str_eq(args_of("Q2", NULL), "--profile Q2");
    cr_assert_str_eq(args_of("Q4", ""), "--profile Q4");
    cr_assert_str_eq(args_of("Q8", NULL), "--profile Q8");
}

Test(slurm_spec, profiles_of_the_arbiter_are_accepted_when_listed)
{
    cr_assert_str_eq(args_of("big", "small,big"), "--profile big");
    cr_assert_str_eq(args_of("small", "small,big"), "--profile small");
    cr_assert(strstr(refusal("big", NULL), "unknown profile 'big'"));
    /* a listed name is matched whole, not as a prefix */
    cr_assert(strstr(refusal("bi", "small,big"), "unknown profile 'bi'"));
    cr_assert(strstr(refusal("Q3", "small,big"), "small,big"), "the refusal lists them");
}

Test(slurm_spec, the_custom_form_becomes_memory_share_and_limit)
{
    cr_assert_str_eq(args_of("memory=3GiB,share=30", NULL), "--memory 3072MiB --share 30");
    cr_assert_str_eq(args_of("share=30%,memory=1536MiB,limit=50", NULL),
                     "--memory 1536MiB --share 30 --limit 50");
    cr_assert_str_eq(args_of("memory=512,share=100,limit=0", NULL),
                     "--memory 512MiB --share 100 --limit 0");
}

Test(slurm_spec, a_bad_value_is_refused_with_what_is_accepted)
{
    cr_assert(strstr(refusal("Q3", NULL), "unknown profile 'Q3' (use Q1, Q2, Q4, Q8 or "
                                          "memory=SIZE,share=PCT[,limit=PCT])"));
    cr_assert(strstr(refusal("", NULL), "needs a value"));
    cr_assert(strstr(refusal("q2", NULL), "unknown profile"), "profiles are case-sensitive");
    cr_assert(strstr(refusal("memory=3GiB", NULL), "needs both memory and share"));
    cr_assert(strstr(refusal("share=30", NULL), "needs both memory and share"));
    cr_assert(strstr(refusal("memory=lots,share=30", NULL), "memory: size 'lots'"));
    cr_assert(strstr(refusal("memory=3GiB,share=0", NULL), "share '0' is not a percentage"));
    cr_assert(strstr(refusal("memory=3GiB,share=101", NULL), "share '101'"));
    cr_assert(strstr(refusal("memory=3GiB,share=99999999999999999999", NULL), "share '"));
    cr_assert(strstr(refusal("memory=3GiB,share=-5", NULL), "share '-5'"));
    cr_assert(
        strstr(refusal("memory=3GiB,share=30,limit=20", NULL), "limit 20% is below share 30%"));
    cr_assert(strstr(refusal("memory=3GiB,share=30,share=40", NULL), "share is given twice"));
    cr_assert(strstr(refusal("memory=3GiB,shares=30", NULL), "unknown key 'shares'"));
    cr_assert(strstr(refusal("memory=3GiB,,share=30", NULL), "is not KEY=VALUE"));
    cr_assert(strstr(refusal("memory=3GiB,share=30,", NULL), "is not KEY=VALUE"));
}

Test(slurm_spec, a_long_value_is_cut_in_the_refusal_not_overflowed)
{
    char text[2000];
    memset(text, 'x', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    cr_assert_lt(strlen(refusal(text, NULL)), QSL_ERR_LEN);
    memcpy(text, "memory=", 7);
    text[1000] = ',';
    cr_assert(strstr(refusal(text, NULL), "too long"));
}
