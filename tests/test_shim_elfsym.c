/* test_shim_elfsym.c - finding glibc's own dlsym by reading its symbol table: what the
 * shim needs to override dlsym and dlvsym without answering its own lookups. */
#include "shim/elfsym.c"

#include <criterion/criterion.h>
#include <dlfcn.h>

static struct link_map *libc_map(void)
{
    void *h = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    cr_assert_not_null(h);
    struct link_map *lm = NULL;
    cr_assert_eq(dlinfo(h, RTLD_DI_LINKMAP, &lm), 0);
    dlclose(h);
    return lm;
}

Test(shim_elfsym, finds_glibcs_dlsym_by_version_and_by_default)
{
    struct link_map *lm = libc_map();
    void *fn = NULL;
    /* This test binary does not override dlsym: its dlsym is glibc's. */
    void *expect = dlvsym(RTLD_DEFAULT, "dlsym", "GLIBC_2.34");
    cr_assert_not_null(expect);
    cr_assert_eq(qs_elf_lookup(lm, "dlsym", "GLIBC_2.34", &fn), QS_ELF_FOUND);
    cr_assert_eq(fn, expect);
    cr_assert_eq(qs_elf_lookup(lm, "dlsym", NULL, &fn), QS_ELF_FOUND);
    cr_assert_eq(fn, expect);
    cr_assert_eq(qs_elf_lookup(lm, "dlvsym", "GLIBC_2.34", &fn), QS_ELF_FOUND);
    cr_assert_eq(fn, dlvsym(RTLD_DEFAULT, "dlvsym", "GLIBC_2.34"));
}

Test(shim_elfsym, refuses_unknown_names_and_versions)
{
    struct link_map *lm = libc_map();
    void *fn = (void *)1;
    cr_assert_eq(qs_elf_lookup(lm, "qvgpu_no_such_symbol", NULL, &fn), QS_ELF_NONE);
    cr_assert_null(fn);
    cr_assert_eq(qs_elf_lookup(lm, "dlsym", "GLIBC_1.0", &fn), QS_ELF_NONE);
    cr_assert_eq(qs_elf_lookup(lm, NULL, NULL, &fn), QS_ELF_NONE);
    cr_assert_eq(qs_elf_lookup(NULL, "dlsym", NULL, &fn), QS_ELF_NONE);
}

Test(shim_elfsym, resolves_indirect_functions_as_the_dynamic_linker_does)
{
    /* glibc picks memcpy's implementation for the CPU at load time (an IFUNC). */
    void *h = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    cr_assert_not_null(h);
    void *fn = NULL;
    cr_assert_eq(qs_elf_lookup(libc_map(), "memcpy", NULL, &fn), QS_ELF_FOUND);
    cr_assert_eq(fn, dlsym(h, "memcpy"));
    dlclose(h);
}

Test(shim_elfsym, looks_in_the_object_alone_not_its_dependencies)
{
    /* libm depends on libc, but does not define printf. */
    void *h = dlopen("libm.so.6", RTLD_LAZY);
    cr_assert_not_null(h);
    struct link_map *lm = NULL;
    cr_assert_eq(dlinfo(h, RTLD_DI_LINKMAP, &lm), 0);
    void *fn = NULL;
    cr_assert_eq(qs_elf_lookup(lm, "printf", NULL, &fn), QS_ELF_NONE);
    cr_assert_eq(qs_elf_lookup(lm, "__fpclassify", NULL, &fn), QS_ELF_FOUND);
    cr_assert_eq(fn, dlsym(h, "__fpclassify"));
    dlclose(h);
}
