/* test_manpages.c - the manual pages (man/): each renders with man(1) without a warning,
 * and says what the programs do: qarbiter(8) has exactly the options of `qarbiter --help`
 * and the keys of `qarbiter --print-config`, qgpuctl(1) the commands and options of
 * `qgpuctl --help`, libqvgpu(3) every function of include/qvgpu.h, and its example
 * compiles and runs against a real arbiter. */
#include "tests/harness.h"
#include "tests/help_support.h"

#include <criterion/criterion.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A roff line as text: without its macro, fonts, quotes and escapes. Caller frees. */
static char *plain(const char *line)
{
    if (line[0] == '.')
        line += strcspn(line, " ");
    char *out = malloc(strlen(line) + 1), *o = out;
    for (const char *p = line; *p; p++) {
        if (p[0] == '\\' && p[1] == 'f' && p[2]) {
            p += 2;
        } else if (p[0] == '\\' && p[1] == '(' && p[2] && p[3]) {
            p += 3;
        } else if (p[0] == '\\' && p[1] == '-') {
            *o++ = '-';
            p++;
        } else if (p[0] == '\\' && p[1] == 'e') {
            *o++ = '\\';
            p++;
        } else if (*p != '"') {
            *o++ = *p;
        }
    }
    *o = '\0';
    return out;
}

/* A line of code in a .nf block as C: only roff's escapes go. Caller frees. */
static char *code_line(const char *line)
{
    char *out = malloc(strlen(line) + 1), *o = out;
    for (const char *p = line; *p; p++) {
        if (p[0] == '\\' && (p[1] == '-' || p[1] == 'e'))
            *o++ = *++p == 'e' ? '\\' : '-';
        else
            *o++ = *p;
    }
    *o = '\0';
    return out;
}

/* The lines of section name (after ".SH name", up to the next .SH). Caller frees. */
static char *section(const char *page, const char *name)
{
    char *head = qt_strf("\n.SH %s\n", name);
    const char *at = strstr(page, head);
    cr_assert_not_null(at, "no section %s", name);
    at += strlen(head);
    const char *end = strstr(at, "\n.SH ");
    free(head);
    return strndup(at, end ? (size_t)(end - at + 1) : strlen(at));
}

/* The tags of the section's .TP paragraphs, as text, one per line. Caller frees. */
static char *tags(const char *page, const char *name)
{
    char *sec = section(page, name), *out = strdup("");
    for (const char *p = sec; (p = strstr(p, ".TP\n"));) {
        p += 4;
        char *line = strndup(p, strcspn(p, "\n")), *text = plain(line);
        char *t = qt_strf("%s%s\n", out, text);
        free(out), free(line), free(text);
        out = t;
    }
    free(sec);
    return out;
}

static char *run(const char *const argv[])
{
    char *out = NULL;
    cr_assert_eq(qt_run(argv, NULL, 10000, &out, NULL), 0, "%s", argv[0]);
    return out;
}

static void require_man(void)
{
    const char *argv[] = {"sh", "-c", "command -v man >/dev/null", NULL};
    if (qt_run(argv, NULL, 5000, NULL, NULL) != 0)
        cr_skip_test("man is not installed (man-db: scripts/install-deps.sh)");
}

Test(manpages, each_renders_without_a_warning)
{
    require_man();
    const char *pages[] = {"man/qarbiter.8", "man/qgpuctl.1", "man/libqvgpu.3"};
    const char *names[] = {"QARBITER(8)", "QGPUCTL(1)", "LIBQVGPU(3)"};
    const char *env[] = {"LC_ALL=C.UTF-8", "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat", NULL};
    char *bin = qt_build_path("qarbiter"), *version = NULL;
    const char *version_argv[] = {bin, "--version", NULL};
    cr_assert_eq(qt_run(version_argv, NULL, 5000, &version, NULL), 0);
    version[strcspn(version, "\n")] = '\0';
    /* "qarbiter 0.1.0" -> the footer every page names: "qvgpu 0.1.0" */
    char *footer = qt_strf("\"qvgpu %s\"", version + strcspn(version, " ") + 1);
    for (size_t i = 0; i < 3; i++) {
        char *page = qh_read(pages[i]);
        char *th = strndup(page, strcspn(page, "\n"));
        cr_assert(strstr(th, footer), "%s: '%s' does not name %s", pages[i], th, footer);
        free(page), free(th);
        const char *argv[] = {"man", "--warnings", "-l", pages[i], NULL};
        char *out = NULL, *err = NULL;
        cr_assert_eq(qt_run(argv, env, 30000, &out, &err), 0, "%s: %s", pages[i], err);
        cr_assert_str_empty(err, "%s: %s", pages[i], err);
        cr_assert(strstr(out, names[i]) && strstr(out, "NAME") && strstr(out, "SEE ALSO"), "%s",
                  out);
        free(out), free(err);
    }
    free(bin), free(version), free(footer);
}

Test(manpages, qarbiter_has_exactly_the_options_of_its_help_and_the_keys_it_reads)
{
    char *page = qh_read("man/qarbiter.8"), *bin = qt_build_path("qarbiter");
    const char *help_argv[] = {bin, "--help", NULL};
    char *help = run(help_argv);
    qh_words_t want = {.n = 0}, got = {.n = 0};
    qh_add_options(&want, help);
    qh_add(&want, "--help", 6);    /* not in its own text */
    qh_add(&want, "--version", 9); /* likewise */
    char *opts = tags(page, "OPTIONS");
    qh_add_options(&got, opts);
    char *w = qh_joined(&want), *g = qh_joined(&got);
    cr_assert_str_eq(g, w, "OPTIONS of qarbiter(8) vs --help:\n  page: %s\n  want: %s", g, w);

    /* every key in CONFIGURATION FILE, and none that qarbiter does not read */
    const char *print_argv[] = {bin, "--config", "off", "--print-config", NULL};
    char *printed = run(print_argv);
    qh_words_t keys = {.n = 0}, described = {.n = 0};
    for (char *line = printed; *line;
         line += strcspn(line, "\n") + (line[strcspn(line, "\n")] != 0))
        if (islower((unsigned char)line[0]))
            qh_add(&keys, line, strcspn(line, " "));
    char *conf = tags(page, "CONFIGURATION FILE");
    for (char *p = conf; *p;) {
        p += strspn(p, ", \n");
        size_t n = strcspn(p, ", \n");
        if (n)
            qh_add(&described, p, n);
        p += n;
    }
    char *k = qh_joined(&keys), *d = qh_joined(&described);
    cr_assert_str_eq(
        d, k, "CONFIGURATION FILE of qarbiter(8) vs --print-config:\n  page: %s\n  want: %s", d, k);
    free(page), free(bin), free(help), free(opts), free(w), free(g), free(printed), free(conf),
        free(k), free(d);
}

Test(manpages, qgpuctl_has_the_commands_and_options_of_its_help)
{
    char *page = qh_read("man/qgpuctl.1"), *bin = qt_build_path("qgpuctl");
    const char *help_argv[] = {bin, "--help", NULL};
    char *help = run(help_argv);
    qh_words_t want = {.n = 0}, entries = {.n = 0}, got = {.n = 0};
    qh_qgpuctl_commands(&want);
    /* the page: a .TP tag per entry; a command listed twice has the union of options */
    char *cmds = tags(page, "COMMANDS");
    for (char *save = NULL, *t = strtok_r(cmds, "\n", &save); t; t = strtok_r(NULL, "\n", &save))
        qh_entry_commands(&entries, t);
    qh_merge_commands(&entries, &got);
    qh_free(&entries);
    char *w = qh_joined(&want), *g = qh_joined(&got);
    cr_assert_str_eq(g, w, "COMMANDS of qgpuctl(1) vs --help:\n  page: %s\n  want: %s", g, w);
    /* the global options */
    qh_words_t gw = {.n = 0}, gg = {.n = 0};
    char *usage = strndup(help, strcspn(help, "\n"));
    qh_add_options(&gw, usage);
    qh_add(&gw, "--help", 6);
    char *globals = tags(page, "OPTIONS");
    qh_add_options(&gg, globals);
    char *gws = qh_joined(&gw), *ggs = qh_joined(&gg);
    cr_assert_str_eq(ggs, gws, "OPTIONS of qgpuctl(1) vs its usage line:\n  page: %s\n  want: %s",
                     ggs, gws);
    free(page), free(bin), free(help), free(cmds), free(w), free(g), free(globals), free(gws),
        free(ggs), free(usage);
}

Test(manpages, libqvgpu_declares_every_function_of_qvgpu_h)
{
    char *header = qh_read("include/qvgpu.h"), *page = qh_read("man/libqvgpu.3");
    qh_words_t want = {.n = 0}, got = {.n = 0};
    for (const char *p = header; (p = strstr(p, "QV_EXPORT "));) {
        p += strlen("QV_EXPORT ");
        const char *paren = strchr(p, '('), *name = paren;
        while (name > p && (isalnum((unsigned char)name[-1]) || name[-1] == '_'))
            name--;
        if (strncmp(name, "qv_", 3) == 0)
            qh_add(&want, name, (size_t)(paren - name));
    }
    char *synopsis = section(page, "SYNOPSIS");
    for (const char *p = synopsis; (p = strstr(p, "qv_"));) {
        size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz_");
        if (p[n] == '(')
            qh_add(&got, p, n);
        p += n;
    }
    cr_assert_geq(want.n, 15);
    char *w = qh_joined(&want), *g = qh_joined(&got);
    cr_assert_str_eq(g, w, "SYNOPSIS of libqvgpu(3) vs include/qvgpu.h:\n  page: %s\n  want: %s", g,
                     w);
    free(header), free(page), free(synopsis), free(w), free(g);
}

Test(manpages, the_libqvgpu_example_builds_and_makes_a_vgpu)
{
    char *page = qh_read("man/libqvgpu.3"), *ex = section(page, "EXAMPLES");
    const char *from = strstr(ex, ".nf\n"), *to = strstr(ex, "\n.fi\n");
    cr_assert(from && to);
    char *dir = qt_tmpdir(), *src = qt_strf("%s/example.c", dir), *prog = qt_strf("%s/ex", dir);
    FILE *f = fopen(src, "w");
    char *code = strndup(from + 4, (size_t)(to - from - 4) + 1);
    for (char *save = NULL, *l = strtok_r(code, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char *text = code_line(l);
        fprintf(f, "%s\n", l[0] == '.' ? "" : text);
        free(text);
    }
    fclose(f);
    char *lib = qt_strf("-L%s", qt_build()), *rpath = qt_strf("-Wl,-rpath,%s", qt_build());
    const char *cc[] = {"cc", "-std=gnu11", "-Wall", "-Werror", "-Iinclude", "-o",
                        prog, src,          lib,     rpath,     "-lqvgpu",   NULL};
    char *err = NULL;
    cr_assert_eq(qt_run(cc, NULL, 60000, NULL, &err), 0, "the example does not build: %s", err);
    free(err);
    qt_arbiter_t *arb = qt_arbiter_start(NULL, NULL);
    cr_assert_not_null(arb);
    char *sock = qt_strf("QVGPU_SOCKET_DIR=%s", qt_arbiter_socket_dir(arb));
    const char *env[] = {sock, qt_foreign_preload(), NULL};
    const char *argv[] = {prog, NULL};
    char *out = NULL;
    cr_assert_eq(qt_run(argv, env, 10000, &out, &err), 0, "%s", err);
    cr_assert_str_eq(out, "vg-1: 2048 MiB\n");
    qt_arbiter_destroy(&arb);
    free(page), free(ex), free(dir), free(src), free(prog), free(code), free(lib), free(rpath),
        free(sock), free(out), free(err);
}
