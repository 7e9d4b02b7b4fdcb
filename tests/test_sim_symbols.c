/* test_sim_symbols.c - the simulated driver's libraries never reach their own exported
 * names through the dynamic linker: a preloaded library that defines the same name (the
 * shim defines dozens) would receive the call or the lookup instead. The real driver is
 * not ours to check; ours must not depend on who is preloaded. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/elf_support.h"
#include "tests/harness.h"

/* Asserts that the library at rel (in the build) refers to none of its own exports. */
static void expect_no_self_refs(const char *rel)
{
    char *path = qt_build_path(rel);
    char **names = NULL;
    size_t n = qt_elf_self_refs(path, &names);
    char list[1024] = "";
    for (size_t i = 0; i < n; i++) {
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, " %s", names[i]);
        free(names[i]);
    }
    free(names);
    cr_assert_eq(n, 0,
                 "%s reaches %zu of its own exports through the dynamic linker:%s "
                 "(call a hidden function instead, or take the address of one)",
                 path, n, list);
    free(path);
}

Test(sim_symbols, the_simulated_libcuda_binds_its_own_calls_to_itself)
{
    expect_no_self_refs("sim/libcuda.so.1");
}

Test(sim_symbols, the_simulated_nvml_binds_its_own_calls_to_itself)
{
    expect_no_self_refs("sim/libnvidia-ml.so.1");
}

Test(sim_symbols, the_check_sees_a_library_that_reaches_its_own_export)
{
    /* glibc reaches its own malloc through a GOT entry, on purpose, so that a program
     * can replace it: exactly the kind of binding the check must notice. */
    Dl_info info;
    cr_assert(dladdr((void *)gnu_get_libc_version, &info) && info.dli_fname);
    char **names = NULL;
    size_t n = qt_elf_self_refs(info.dli_fname, &names);
    bool malloc_seen = false;
    for (size_t i = 0; i < n; i++) {
        malloc_seen |= strcmp(names[i], "malloc") == 0;
        free(names[i]);
    }
    free(names);
    cr_assert(malloc_seen, "%s: its interposable reference to malloc went unnoticed",
              info.dli_fname);
}
