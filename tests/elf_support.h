/* elf_support.h - a library file's dynamic symbols and relocations, read from the file,
 * for tests that check what a build exports and how it binds. Failures fail the calling
 * test. Single-threaded. */
#ifndef QV_TEST_ELF_SUPPORT_H
#define QV_TEST_ELF_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

/* One defined dynamic symbol and its offset from the library's load base. */
struct qt_elf_export {
    char *name; /* owned */
    uint64_t value;
};

/* The defined dynamic symbols of one 64-bit ELF file, sorted by name. */
typedef struct qt_elf_exports {
    struct qt_elf_export *v; /* owned */
    size_t n;
} qt_elf_exports_t;

/* Reads what `nm -D --defined-only path` lists into *x (free with qt_elf_exports_free). */
void qt_elf_exports(const char *path, qt_elf_exports_t *x);
/* The offset of name in x, or -1 when x does not define it. */
long long qt_elf_find(const qt_elf_exports_t *x, const char *name);
void qt_elf_exports_free(qt_elf_exports_t *x);

/* The names of the symbols that path both defines and names in its own dynamic
 * relocations (PLT slots, GOT entries, data): calls and references from the library to
 * itself that the dynamic linker binds through the global scope, so that a preloaded
 * library defining the same name receives them. Returns how many; *names and its
 * strings are the caller's (free each, then the array). */
size_t qt_elf_self_refs(const char *path, char ***names);

#endif
