/* help_support.c - words from the programs' --help for the documentation tests.
 * Single-threaded (see help_support.h). */
#include "tests/help_support.h"

#include "tests/harness.h"

#include <criterion/criterion.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *qh_read(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    char *text = NULL;
    size_t len = 0, n;
    FILE *m = open_memstream(&text, &len);
    char buf[65536];
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, m);
    fclose(f);
    fclose(m);
    return text;
}

void qh_add(qh_words_t *w, const char *word, size_t len)
{
    for (size_t i = 0; i < w->n; i++)
        if (strlen(w->v[i]) == len && strncmp(w->v[i], word, len) == 0)
            return;
    cr_assert_lt(w->n, sizeof w->v / sizeof *w->v);
    w->v[w->n++] = strndup(word, len);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char *qh_joined(qh_words_t *w)
{
    qsort(w->v, w->n, sizeof *w->v, by_name);
    char *s = strdup("");
    for (size_t i = 0; i < w->n; i++) {
        char *t = qt_strf("%s%s%s", s, i ? " " : "", w->v[i]);
        free(s);
        s = t;
    }
    qh_free(w);
    return s;
}

void qh_free(qh_words_t *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->v[i]);
    w->n = 0;
}

void qh_add_options(qh_words_t *w, const char *text)
{
    for (const char *p = text; (p = strstr(p, "--"));) {
        p += 2;
        if (!islower((unsigned char)*p))
            continue;
        size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz-");
        char *opt = qt_strf("--%.*s", (int)n, p);
        qh_add(w, opt, strlen(opt));
        free(opt);
        p += n;
    }
}

void qh_entry_commands(qh_words_t *out, const char *entry)
{
    qh_words_t cmds = {.n = 0}, opts = {.n = 0};
    char *copy = strdup(entry);
    for (char *save = NULL, *alt = strtok_r(copy, "|,", &save); alt;
         alt = strtok_r(NULL, "|,", &save)) {
        alt += strspn(alt, " ");
        size_t n = strspn(alt, "abcdefghijklmnopqrstuvwxyz");
        if (n && (alt[n] == ' ' || alt[n] == '\0' || alt[n] == '\n'))
            qh_add(&cmds, alt, n);
    }
    free(copy);
    qh_add_options(&opts, entry);
    char *o = qh_joined(&opts);
    for (size_t i = 0; i < cmds.n; i++) {
        char *line = qt_strf("%s:%s%s", cmds.v[i], *o ? " " : "", o);
        qh_add(out, line, strlen(line));
        free(line);
    }
    free(o);
    qh_free(&cmds);
}

void qh_merge_commands(const qh_words_t *in, qh_words_t *out)
{
    qh_words_t names = {.n = 0};
    for (size_t i = 0; i < in->n; i++)
        qh_add(&names, in->v[i], strcspn(in->v[i], ":"));
    for (size_t i = 0; i < names.n; i++) {
        qh_words_t opts = {.n = 0};
        size_t len = strlen(names.v[i]);
        for (size_t j = 0; j < in->n; j++)
            if (strncmp(in->v[j], names.v[i], len) == 0 && in->v[j][len] == ':')
                qh_add_options(&opts, in->v[j]);
        char *o = qh_joined(&opts), *line = qt_strf("%s:%s%s", names.v[i], *o ? " " : "", o);
        qh_add(out, line, strlen(line));
        free(o), free(line);
    }
    qh_free(&names);
}

void qh_qgpuctl_commands(qh_words_t *out)
{
    char *bin = qt_build_path("qgpuctl"), *help = NULL;
    const char *argv[] = {bin, "--help", NULL};
    cr_assert_eq(qt_run(argv, NULL, 10000, &help, NULL), 0);
    /* an entry starts at two spaces; lines indented less than the description column
     * (40) continue it; two spaces in a row start the description */
    qh_words_t entries = {.n = 0};
    char *entry = strdup("");
    for (char *save = NULL, *l = strtok_r(help, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        size_t indent = strspn(l, " ");
        char *gap = strstr(l + indent, "  ");
        if (gap)
            *gap = '\0';
        if (indent == 2 && islower((unsigned char)l[2])) {
            if (*entry)
                qh_entry_commands(&entries, entry);
            free(entry);
            entry = strdup(l);
        } else if (indent > 2 && indent < 40 && *entry) {
            char *t = qt_strf("%s %s", entry, l);
            free(entry);
            entry = t;
        }
    }
    qh_entry_commands(&entries, entry);
    qh_merge_commands(&entries, out);
    qh_free(&entries);
    free(entry), free(help), free(bin);
}
