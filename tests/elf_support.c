/* elf_support.c - reads .dynsym and the dynamic relocations of a library file (see
 * elf_support.h). Single-threaded. */
#include "tests/elf_support.h"

#include <criterion/criterion.h>
#include <elf.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A mapped file and its dynamic symbol table. */
struct elf_file {
    const uint8_t *f; /* the whole file, mapped */
    size_t size;
    const Elf64_Shdr *sh; /* section headers */
    int nsh;
    const Elf64_Sym *dynsym; /* NULL when the file has none */
    size_t nsym;
    const char *dynstr;
};

static void elf_open(struct elf_file *e, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0, "cannot open %s", path);
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    e->size = (size_t)st.st_size;
    e->f = mmap(NULL, e->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    cr_assert_neq(e->f, MAP_FAILED, "cannot map %s", path);
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)e->f;
    cr_assert(e->size >= sizeof *eh && memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 &&
                  eh->e_ident[EI_CLASS] == ELFCLASS64,
              "%s is not a 64-bit ELF file", path);
    e->sh = (const Elf64_Shdr *)(e->f + eh->e_shoff);
    e->nsh = eh->e_shnum;
    e->dynsym = NULL;
    e->nsym = 0;
    for (int i = 0; i < e->nsh; i++) {
        if (e->sh[i].sh_type == SHT_DYNSYM) {
            e->dynsym = (const Elf64_Sym *)(e->f + e->sh[i].sh_offset);
            e->nsym = e->sh[i].sh_size / sizeof *e->dynsym;
            e->dynstr = (const char *)(e->f + e->sh[e->sh[i].sh_link].sh_offset);
        }
    }
}

static void elf_close(struct elf_file *e)
{
    munmap((void *)e->f, e->size);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct qt_elf_export *)a)->name, ((const struct qt_elf_export *)b)->name);
}

void qt_elf_exports(const char *path, qt_elf_exports_t *x)
{
    struct elf_file e;
    elf_open(&e, path);
    x->v = calloc(e.nsym ? e.nsym : 1, sizeof *x->v);
    x->n = 0;
    cr_assert_not_null(x->v);
    for (size_t k = 0; k < e.nsym; k++) {
        if (e.dynsym[k].st_shndx == SHN_UNDEF || !e.dynsym[k].st_name)
            continue;
        x->v[x->n].name = strdup(e.dynstr + e.dynsym[k].st_name);
        x->v[x->n].value = e.dynsym[k].st_value;
        x->n++;
    }
    elf_close(&e);
    qsort(x->v, x->n, sizeof *x->v, by_name);
}

long long qt_elf_find(const qt_elf_exports_t *x, const char *name)
{
    struct qt_elf_export key = {.name = (char *)name};
    const struct qt_elf_export *hit =
        x->n ? bsearch(&key, x->v, x->n, sizeof *x->v, by_name) : NULL;
    return hit ? (long long)hit->value : -1;
}

void qt_elf_exports_free(qt_elf_exports_t *x)
{
    for (size_t k = 0; k < x->n; k++)
        free(x->v[k].name);
    free(x->v);
    x->v = NULL;
    x->n = 0;
}

size_t qt_elf_self_refs(const char *path, char ***names)
{
    struct elf_file e;
    elf_open(&e, path);
    size_t n = 0, cap = 16;
    char **v = malloc(cap * sizeof *v);
    cr_assert_not_null(v);
    for (int i = 0; i < e.nsh; i++) {
        if (e.sh[i].sh_type != SHT_RELA || !e.dynsym ||
            e.f + e.sh[e.sh[i].sh_link].sh_offset != (const uint8_t *)e.dynsym)
            continue; /* static relocations of a relocatable file, or none */
        const Elf64_Rela *r = (const Elf64_Rela *)(e.f + e.sh[i].sh_offset);
        size_t nr = e.sh[i].sh_size / sizeof *r;
        for (size_t k = 0; k < nr; k++) {
            size_t s = ELF64_R_SYM(r[k].r_info);
            if (s == 0 || s >= e.nsym || e.dynsym[s].st_shndx == SHN_UNDEF)
                continue;
            const char *name = e.dynstr + e.dynsym[s].st_name;
            bool seen = false;
            for (size_t j = 0; j < n && !seen; j++)
                seen = strcmp(v[j], name) == 0;
            if (seen)
                continue;
            if (n == cap) {
                cap *= 2;
                v = realloc(v, cap * sizeof *v);
                cr_assert_not_null(v);
            }
            v[n++] = strdup(name);
        }
    }
    elf_close(&e);
    *names = v;
    return n;
}
