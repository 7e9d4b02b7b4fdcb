/* help_support.h - what the tests of the manual pages, bash completion and the package
 * read: files, the programs' own --help, and sets of words to compare with it: kept as one sorted,
 * space-separated string, so that a difference shows whole in an assertion's message.
 * Test-only; single-threaded. */
#ifndef QV_HELP_SUPPORT_H
#define QV_HELP_SUPPORT_H

#include <stddef.h>

typedef struct {
    char *v[256]; /* owned: the words, unique */
    size_t n;     /* entries in v */
} qh_words_t;

/* The whole file at path (binary-safe; NUL-terminated), or the test fails. Caller frees. */
char *qh_read(const char *path);
/* Adds the first len bytes of word, unless it is there already. */
void qh_add(qh_words_t *w, const char *word, size_t len);
/* The words sorted and joined with spaces; w is left empty. Caller frees. */
char *qh_joined(qh_words_t *w);
/* Frees the words; w is left empty. */
void qh_free(qh_words_t *w);
/* Adds the long options ("--socket-dir") that text names. */
void qh_add_options(qh_words_t *w, const char *text);
/* Adds "COMMAND: --opt --opt" for each command of a usage entry such as "destroy ID |
 * destroy --vm NAME" or "list, info ID, gpus, stats": its alternatives split on '|' and
 * ',', the first word of each a command when it is a lowercase word; the options are
 * the entry's. */
void qh_entry_commands(qh_words_t *out, const char *entry);
/* Merges "COMMAND: opts" lines naming a command more than once into one line with the
 * union of their options. */
void qh_merge_commands(const qh_words_t *in, qh_words_t *out);
/* The commands of `qgpuctl --help` (build's qgpuctl) with their options, merged:
 * "create: --gpu --limit ...". */
void qh_qgpuctl_commands(qh_words_t *out);

#endif
