/* move_support.c - workloads and figures for the tests of moves (move_support.h). */
#include "tests/move_support.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>

qt_proc_t *qtm_work(qt_arbiter_t *arb, const qts_vgpu_t *v, const char *bytes, const char *secs,
                    const char *kernel_us)
{
    qts_env_t e;
    qts_env_of(&e, arb, v);
    char *prog = qt_build_path("tests/progs/migrate_work");
    const char *argv[] = {prog, bytes, secs, kernel_us, NULL};
    qt_proc_t *p = qt_spawn(argv, e.v);
    free(prog);
    cr_assert_not_null(p);
    return p;
}

long long qtm_info_int(qt_arbiter_t *arb, const char *id, const char *key)
{
    char *out = NULL;
    cr_assert_eq(qt_ctl(arb, &out, NULL, "--json", "info", id, NULL), 0);
    json_t *doc = json_loads(out, 0, NULL);
    cr_assert_not_null(doc, "%s", out);
    json_t *v = json_object_get(doc, key);
    cr_assert(json_is_integer(v), "%s in %s", key, out);
    long long n = json_integer_value(v);
    json_decref(doc);
    free(out);
    return n;
}
