/* elfsym.c - GNU-hash (or SysV-hash) lookup in a loaded object's .dynsym, with versions.
 * Threads: any; reads only. Assumes the object was relocated by ld.so, whose dynamic
 * section entries hold absolute addresses on most targets and offsets on a few: an entry
 * below the load address is taken as an offset. */
#include "shim/elfsym.h"
#include "shim/early.h"

#include <elf.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/auxv.h>

struct dyn {
    const ElfW(Sym) * symtab;
    const char *strtab;
    const uint32_t *gnu_hash;
    const uint32_t *sysv_hash; /* DT_HASH: nbucket, nchain, buckets, chains (32-bit words) */
    const ElfW(Half) * versym;
    const ElfW(Verdef) * verdef;
};

QS_EARLY static const void *addr(const struct link_map *lm, ElfW(Addr) p)
{
    return (const void *)(p < lm->l_addr ? p + lm->l_addr : p);
}

QS_EARLY static bool read_dynamic(const struct link_map *lm, struct dyn *d)
{
    *d = (struct dyn){0};
    if (!lm || !lm->l_ld)
        return false;
    for (const ElfW(Dyn) *e = lm->l_ld; e->d_tag != DT_NULL; e++) {
        switch (e->d_tag) {
        case DT_SYMTAB:
            d->symtab = addr(lm, e->d_un.d_ptr);
            break;
        case DT_STRTAB:
            d->strtab = addr(lm, e->d_un.d_ptr);
            break;
        case DT_GNU_HASH:
            d->gnu_hash = addr(lm, e->d_un.d_ptr);
            break;
        case DT_HASH:
            d->sysv_hash = addr(lm, e->d_un.d_ptr);
            break;
        case DT_VERSYM:
            d->versym = addr(lm, e->d_un.d_ptr);
            break;
        case DT_VERDEF:
            d->verdef = addr(lm, e->d_un.d_ptr);
            break;
        default:
            break;
        }
    }
    return d->symtab && d->strtab && (d->gnu_hash || d->sysv_hash);
}

QS_EARLY static uint32_t gnu_hash(const char *s)
{
    uint32_t h = 5381;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = h * 33 + *p;
    return h;
}

QS_EARLY static uint32_t sysv_hash(const char *s)
{
    uint32_t h = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h = (h << 4) + *p;
        uint32_t g = h & 0xf0000000u;
        h ^= g >> 24;
        h &= ~g;
    }
    return h;
}

/* Whether version index ndx of d is named ver. */
QS_EARLY static bool version_is(const struct dyn *d, unsigned ndx, const char *ver)
{
    const ElfW(Verdef) *vd = d->verdef;
    while (vd) {
        if (vd->vd_ndx == ndx) {
            const ElfW(Verdaux) *aux = (const void *)((const char *)vd + vd->vd_aux);
            return qs_strcmp(d->strtab + aux->vda_name, ver) == 0;
        }
        if (!vd->vd_next)
            break;
        vd = (const void *)((const char *)vd + vd->vd_next);
    }
    return false;
}

/* Whether symbol i of d is a definition of name in version ver (NULL: the default). */
QS_EARLY static bool matches(const struct dyn *d, uint32_t i, const char *name, const char *ver)
{
    const ElfW(Sym) *s = &d->symtab[i];
    if (s->st_shndx == SHN_UNDEF || ELF64_ST_TYPE(s->st_info) == STT_SECTION ||
        ELF64_ST_TYPE(s->st_info) == STT_FILE)
        return false;
    if (qs_strcmp(d->strtab + s->st_name, name) != 0)
        return false;
    /* As dlsym and dlvsym match: an object without versions satisfies any request; a
     * versioned request (dlvsym) takes the definition of exactly that version; a plain
     * one (dlsym) takes the default (non-hidden) definition. */
    if (!d->versym)
        return true;
    ElfW(Half) vs = d->versym[i];
    if (ver)
        return version_is(d, vs & 0x7fff, ver);
    return !(vs & 0x8000);
}

/* What symbol i of d resolves to: its address, after running its resolver for an
 * indirect function (as ld.so does, with the hardware capabilities x86-64 resolvers
 * ignore and aarch64 ones read), or QS_ELF_INDIRECT for thread-local data. */
QS_EARLY static int found(const struct link_map *lm, const struct dyn *d, uint32_t i, void **out)
{
    const ElfW(Sym) *s = &d->symtab[i];
    int type = ELF64_ST_TYPE(s->st_info);
    if (type == STT_TLS)
        return QS_ELF_INDIRECT;
    void *addr = (void *)(s->st_shndx == SHN_ABS ? s->st_value : lm->l_addr + s->st_value);
    if (type == STT_GNU_IFUNC) {
        void *(*resolver)(unsigned long, unsigned long) =
            (void *(*)(unsigned long, unsigned long))addr;
        addr = resolver(getauxval(AT_HWCAP), 0);
    }
    *out = addr;
    return QS_ELF_FOUND;
}

QS_EARLY int qs_elf_lookup(const struct link_map *lm, const char *name, const char *ver, void **out)
{
    struct dyn d;
    *out = NULL;
    if (!name || !read_dynamic(lm, &d))
        return QS_ELF_NONE;
    if (d.gnu_hash) {
        uint32_t nbuckets = d.gnu_hash[0], symoffset = d.gnu_hash[1];
        uint32_t bloom_size = d.gnu_hash[2];
        const ElfW(Addr) *bloom = (const void *)&d.gnu_hash[4];
        const uint32_t *buckets = (const void *)&bloom[bloom_size];
        const uint32_t *chain = &buckets[nbuckets];
        if (nbuckets == 0)
            return QS_ELF_NONE;
        uint32_t h = gnu_hash(name);
        for (uint32_t i = buckets[h % nbuckets]; i >= symoffset && i != 0; i++) {
            uint32_t h2 = chain[i - symoffset];
            if ((h | 1) == (h2 | 1) && matches(&d, i, name, ver))
                return found(lm, &d, i, out);
            if (h2 & 1)
                break;
        }
        return QS_ELF_NONE;
    }
    uint32_t nbucket = d.sysv_hash[0];
    const uint32_t *bucket = &d.sysv_hash[2], *chain = &bucket[nbucket];
    if (nbucket == 0)
        return QS_ELF_NONE;
    for (uint32_t i = bucket[sysv_hash(name) % nbucket]; i != STN_UNDEF; i = chain[i]) {
        if (matches(&d, i, name, ver))
            return found(lm, &d, i, out);
    }
    return QS_ELF_NONE;
}
