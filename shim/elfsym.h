/* elfsym.h - finds a symbol in one loaded object's dynamic symbol table by reading the
 * table itself, so that no interposer (the shim's own dlsym included) can answer instead.
 * The shim needs it to find glibc's dlsym and dlvsym while overriding both, and to answer
 * dlsym(RTLD_NEXT) for its callers (glibc would answer for the shim instead).
 * Threads: any; it only reads the loaded image. */
#ifndef QS_ELFSYM_H
#define QS_ELFSYM_H

#include <link.h>

enum {
    QS_ELF_NONE = 0,     /* lm does not define it so */
    QS_ELF_FOUND = 1,    /* *out holds its address (an indirect function's, resolved) */
    QS_ELF_INDIRECT = 2, /* defined as thread-local data: only the dynamic linker can give
                          * its address for a thread (*out stays NULL) */
};

/* Looks up name in lm alone (not its dependencies), with version ver (e.g. "GLIBC_2.34"),
 * or its default version when ver is NULL, matching versions as dlvsym and dlsym do. The
 * object must be relocated (every object is, once main() or a constructor runs). Returns
 * one of the values above; *out is the address or NULL. */
int qs_elf_lookup(const struct link_map *lm, const char *name, const char *ver, void **out);

#endif
