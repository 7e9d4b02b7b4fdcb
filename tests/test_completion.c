/* test_completion.c - bash completion for qgpuctl (dist/qgpuctl.bash-completion), in a
 * real bash with bash-completion loaded: the commands and each command's options are
 * those of `qgpuctl --help`, and vGPU ids, VM names and GPU indexes come from a real
 * arbiter, the one the command line names. */
#include "tests/ctl_support.h"
#include "tests/harness.h"
#include "tests/help_support.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BASH_COMPLETION "/usr/share/bash-completion/bash_completion"

static void require_bash_completion(void)
{
    FILE *f = fopen(BASH_COMPLETION, "r");
    if (!f)
        cr_skip_test("bash-completion is not installed (scripts/install-deps.sh)");
    fclose(f);
}

/* What bash offers for line (the cursor at its end), as qh_joined words. env: more
 * variables (may be NULL). Caller frees. */
static char *complete(const char *line, const char *env_var)
{
    static const char script[] =
        "source " BASH_COMPLETION " && source dist/qgpuctl.bash-completion || exit 9\n"
        "COMP_LINE=$1; COMP_POINT=${#COMP_LINE}\n"
        "read -ra COMP_WORDS <<<\"$COMP_LINE\"\n"
        "[[ $COMP_LINE == *' ' ]] && COMP_WORDS+=('')\n"
        "COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n"
        "_qgpuctl qgpuctl \"${COMP_WORDS[COMP_CWORD]}\" \"${COMP_WORDS[COMP_CWORD - 1]}\"\n"
        "printf '%s\\n' \"${COMPREPLY[@]}\"\n";
    /* qgpuctl from the build, as the one on PATH */
    char *path = qt_strf("PATH=%s:%s", qt_build(), getenv("PATH"));
    const char *env[] = {path, env_var ? env_var : "QVGPU_SOCKET_DIR", NULL};
    const char *argv[] = {"bash", "--norc", "--noprofile", "-c", script, "test", line, NULL};
    char *out = NULL, *err = NULL;
    int rc = qt_run(argv, env, 20000, &out, &err);
    cr_assert_eq(rc, 0, "completing '%s': status %d: %s", line, rc, err);
    qh_words_t w = {.n = 0};
    for (char *save = NULL, *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        qh_add(&w, l, strlen(l));
    free(out), free(err), free(path);
    return qh_joined(&w);
}

Test(completion, offers_the_commands_and_each_ones_options_of_qgpuctl_help)
{
    require_bash_completion();
    qh_words_t cmds = {.n = 0}, names = {.n = 0};
    qh_qgpuctl_commands(&cmds);
    for (size_t i = 0; i < cmds.n; i++)
        qh_add(&names, cmds.v[i], strcspn(cmds.v[i], ":"));
    char *want = qh_joined(&names), *got = complete("qgpuctl ", NULL);
    cr_assert_str_eq(got, want, "commands:\n  offered: %s\n  --help:  %s", got, want);
    free(got);
    got = complete("qgpuctl cr", NULL);
    cr_assert_str_eq(got, "create");
    free(got);
    got = complete("qgpuctl --", NULL);
    cr_assert_str_eq(got, "--help --json --socket-dir");
    free(got);
    for (size_t i = 0; i < cmds.n; i++) {
        /* "create: --gpu --limit ..." -> what `qgpuctl create --` offers, and --json */
        const char *colon = strchr(cmds.v[i], ':');
        qh_words_t opts = {.n = 0};
        qh_add_options(&opts, colon);
        qh_add(&opts, "--json", 6);
        char *line = qt_strf("qgpuctl %.*s --", (int)(colon - cmds.v[i]), cmds.v[i]);
        char *o = qh_joined(&opts), *offered = complete(line, NULL);
        cr_assert_str_eq(offered, o, "'%s':\n  offered: %s\n  --help:  %s", line, offered, o);
        free(line), free(o), free(offered);
    }
    qh_free(&cmds);
    got = complete("qgpuctl cdi ", NULL);
    cr_assert_str_eq(got, "devices show sync");
    free(got);
    got = complete("qgpuctl create --vm web-1 --profile ", NULL);
    cr_assert_str_eq(got, "Q1 Q2 Q4 Q8");
    free(got), free(want);
}

Test(completion, offers_the_arbiters_vgpus_vms_and_gpus)
{
    require_bash_completion();
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    const char *dir = qt_arbiter_socket_dir(arb);
    char *out = NULL;
    cr_assert_eq(qt_ctl(arb, NULL, NULL, "create", "--vm", "web-1", "--profile", "Q1", NULL), 0);
    cr_assert_eq(qt_ctl(arb, NULL, NULL, "create", "--vm", "batch", "--profile", "Q2", NULL), 0);
    /* the arbiter named with --socket-dir */
    const char *ids[] = {"info", "destroy", "resize", "env", "run", "cdi show", "cdi devices"};
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
        char *line = qt_strf("qgpuctl --socket-dir %s %s ", dir, ids[i]);
        char *got = complete(line, NULL);
        cr_assert_str_eq(got, "vg-1 vg-2", "'%s'", line);
        free(line), free(got);
    }
    char *line = qt_strf("qgpuctl --socket-dir %s destroy --vm ", dir);
    char *got = complete(line, NULL);
    cr_assert_str_eq(got, "batch web-1");
    free(line), free(got);
    line = qt_strf("qgpuctl --socket-dir %s create --vm x --gpu ", dir);
    got = complete(line, NULL);
    cr_assert_str_eq(got, "0 1 2");
    free(line), free(got);
    /* or with QVGPU_SOCKET_DIR, as qgpuctl finds it */
    char *env = qt_strf("QVGPU_SOCKET_DIR=%s", dir);
    got = complete("qgpuctl info vg-", env);
    cr_assert_str_eq(got, "vg-1 vg-2");
    free(got);
    got = complete("qgpuctl run vg-1 ", env);
    cr_assert_str_eq(got, "--", "after the id, run wants --");
    free(got);
    got = complete("qgpuctl resize vg-1 ", env);
    cr_assert_str_empty(got, "one id only: %s", got);
    free(got);
    /* no arbiter there: nothing, at once */
    uint64_t t0 = qt_now_ns();
    got = complete("qgpuctl --socket-dir /nonexistent info ", NULL);
    cr_assert_str_empty(got);
    cr_assert_lt(qt_now_ns() - t0, 5000000000ull, "completion waited for a missing arbiter");
    free(got), free(env), free(out);
    qt_arbiter_destroy(&arb);
}
