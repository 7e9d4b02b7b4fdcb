/* gpu_check_support.c - see gpu_check_support.h. Single-threaded. */
#include "tests/gpu_check_support.h"

#include <criterion/criterion.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/harness.h"

char *gc_repo(void)
{
    char *build = strdup(qt_build());
    char *root = strdup(dirname(build));
    free(build);
    return root;
}

int gc_script(const char *name, char **out, char **err, const char *const args[],
              const char *const env[], int timeout_ms)
{
    char *root = gc_repo();
    char path[4096];
    snprintf(path, sizeof path, "%s/scripts/%s", root, name);
    const char *argv[16] = {path};
    size_t n = 1;
    for (; args[n - 1] && n < 15; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    int st = qt_run(argv, env, timeout_ms, out, err);
    free(root);
    return st;
}

bool gc_row(const char *summary, const char *part, char result[8], char *detail, size_t cap)
{
    size_t n = strlen(part);
    for (const char *l = summary; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, part, n) != 0 || l[n] != ' ')
            continue;
        const char *p = l + n + strspn(l + n, " ");
        snprintf(result, 8, "%.*s", (int)strcspn(p, " \n"), p);
        p += strcspn(p, " \n");
        p += strspn(p, " ");
        snprintf(detail, cap, "%.*s", (int)strcspn(p, "\n"), p);
        return true;
    }
    return false;
}

char *gc_summary(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/summary.txt", dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s is missing", path);
    char *buf = malloc(1 << 16);
    cr_assert_not_null(buf);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}
