/* elfver.c - glibc versions and needed libraries of an ELF object (see elfver.h). */
#include "container/elfver.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FILE (256u << 20)

unsigned qc_glibc_parse(const char *v)
{
    unsigned part[3] = {0, 0, 0};
    if (strncmp(v, "GLIBC_", 6) != 0)
        return 0;
    const char *p = v + 6;
    for (int i = 0; i < 3; i++) {
        if (*p < '0' || *p > '9')
            return 0;
        unsigned n = 0;
        while (*p >= '0' && *p <= '9' && n < 1000)
            n = n * 10 + (unsigned)(*p++ - '0');
        if (n >= 1000)
            return 0;
        part[i] = n;
        if (*p == '\0')
            return QC_GLIBC(part[0], part[1], part[2]);
        if (*p++ != '.')
            return 0;
    }
    return 0;
}

char *qc_glibc_format(unsigned v, char *buf, size_t cap)
{
    unsigned major = v / 1000000u, minor = v / 1000u % 1000u, patch = v % 1000u;
    if (patch)
        snprintf(buf, cap, "%u.%u.%u", major, minor, patch);
    else
        snprintf(buf, cap, "%u.%u", major, minor);
    return buf;
}

/* The file in memory, and the checks every access goes through. */
struct image {
    const unsigned char *p; /* the whole file */
    size_t n;               /* its size */
};

/* Whether [off, off + len) lies in the file. */
static int in_file(const struct image *im, uint64_t off, uint64_t len)
{
    return off <= im->n && len <= im->n - off;
}

/* The NUL-terminated string at off in the string table sh, or NULL. */
static const char *str_at(const struct image *im, const Elf64_Shdr *sh, uint64_t off)
{
    if (off >= sh->sh_size || !in_file(im, sh->sh_offset, sh->sh_size))
        return NULL;
    const char *s = (const char *)im->p + sh->sh_offset + off;
    return memchr(s, '\0', sh->sh_size - off) ? s : NULL;
}

static void note_version(unsigned *max, const char *name)
{
    unsigned v = name ? qc_glibc_parse(name) : 0;
    if (v > *max)
        *max = v;
}

/* Walks a .gnu.version_r section. Returns 0 or -ENOEXEC. */
static int read_verneed(const struct image *im, const Elf64_Shdr *sh, const Elf64_Shdr *strs,
                        qc_elf_info_t *out)
{
    uint64_t off = sh->sh_offset, end = sh->sh_offset + sh->sh_size;
    for (unsigned i = 0; i < sh->sh_info && i < 4096; i++) {
        if (!in_file(im, off, sizeof(Elf64_Verneed)) || off + sizeof(Elf64_Verneed) > end)
            return -ENOEXEC;
        Elf64_Verneed vn;
        memcpy(&vn, im->p + off, sizeof vn);
        uint64_t aux = off + vn.vn_aux;
        for (unsigned k = 0; k < vn.vn_cnt && k < 4096; k++) {
            if (!in_file(im, aux, sizeof(Elf64_Vernaux)) || aux + sizeof(Elf64_Vernaux) > end)
                return -ENOEXEC;
            Elf64_Vernaux va;
            memcpy(&va, im->p + aux, sizeof va);
            note_version(&out->glibc_needed, str_at(im, strs, va.vna_name));
            if (!va.vna_next)
                break;
            aux += va.vna_next;
        }
        if (!vn.vn_next)
            break;
        off += vn.vn_next;
    }
    return 0;
}

/* Walks a .gnu.version_d section. Returns 0 or -ENOEXEC. */
static int read_verdef(const struct image *im, const Elf64_Shdr *sh, const Elf64_Shdr *strs,
                       qc_elf_info_t *out)
{
    uint64_t off = sh->sh_offset, end = sh->sh_offset + sh->sh_size;
    for (unsigned i = 0; i < sh->sh_info && i < 4096; i++) {
        if (!in_file(im, off, sizeof(Elf64_Verdef)) || off + sizeof(Elf64_Verdef) > end)
            return -ENOEXEC;
        Elf64_Verdef vd;
        memcpy(&vd, im->p + off, sizeof vd);
        /* The first aux names the version; later ones its parents. */
        uint64_t aux = off + vd.vd_aux;
        if (vd.vd_cnt > 0) {
            if (!in_file(im, aux, sizeof(Elf64_Verdaux)) || aux + sizeof(Elf64_Verdaux) > end)
                return -ENOEXEC;
            Elf64_Verdaux va;
            memcpy(&va, im->p + aux, sizeof va);
            note_version(&out->glibc_defined, str_at(im, strs, va.vda_name));
        }
        if (!vd.vd_next)
            break;
        off += vd.vd_next;
    }
    return 0;
}

/* Collects DT_NEEDED from a SHT_DYNAMIC section. Returns 0 or -ENOEXEC. */
static int read_dynamic(const struct image *im, const Elf64_Shdr *sh, const Elf64_Shdr *strs,
                        qc_elf_info_t *out)
{
    if (!in_file(im, sh->sh_offset, sh->sh_size))
        return -ENOEXEC;
    for (uint64_t off = 0; off + sizeof(Elf64_Dyn) <= sh->sh_size; off += sizeof(Elf64_Dyn)) {
        Elf64_Dyn d;
        memcpy(&d, im->p + sh->sh_offset + off, sizeof d);
        if (d.d_tag == DT_NULL)
            break;
        if (d.d_tag != DT_NEEDED)
            continue;
        const char *name = str_at(im, strs, d.d_un.d_val);
        if (!name)
            return -ENOEXEC;
        if (out->nneeded < QC_MAX_NEEDED)
            snprintf(out->needed[out->nneeded], sizeof out->needed[0], "%s", name);
        out->nneeded++;
    }
    return 0;
}

/* The release in glibc's banner, "... release version 2.31.", or 0. */
static unsigned banner_release(const struct image *im)
{
    static const char key[] = "release version ";
    const unsigned char *p = im->p, *end = im->p + im->n;
    while ((p = memmem(p, (size_t)(end - p), key, sizeof key - 1))) {
        p += sizeof key - 1;
        char v[32] = "GLIBC_";
        size_t n = 6;
        while (p < end && n < sizeof v - 1 && ((*p >= '0' && *p <= '9') || *p == '.'))
            v[n++] = (char)*p++;
        while (n > 6 && v[n - 1] == '.') /* the sentence's full stop */
            n--;
        v[n] = '\0';
        unsigned r = qc_glibc_parse(v);
        if (r)
            return r;
    }
    return 0;
}

static int parse(const struct image *im, qc_elf_info_t *out)
{
    Elf64_Ehdr eh;
    if (im->n < sizeof eh)
        return -ENOEXEC;
    memcpy(&eh, im->p, sizeof eh);
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_shentsize != sizeof(Elf64_Shdr) ||
        eh.e_shnum == 0 || eh.e_shnum > 4096 ||
        !in_file(im, eh.e_shoff, (uint64_t)eh.e_shnum * sizeof(Elf64_Shdr)))
        return -ENOEXEC;
    const Elf64_Shdr *shs = (const Elf64_Shdr *)(im->p + eh.e_shoff);
    for (unsigned i = 0; i < eh.e_shnum; i++) {
        Elf64_Shdr sh, strs;
        memcpy(&sh, &shs[i], sizeof sh);
        if (sh.sh_type != SHT_GNU_verneed && sh.sh_type != SHT_GNU_verdef &&
            sh.sh_type != SHT_DYNAMIC)
            continue;
        if (sh.sh_link >= eh.e_shnum || !in_file(im, sh.sh_offset, sh.sh_size))
            return -ENOEXEC;
        memcpy(&strs, &shs[sh.sh_link], sizeof strs);
        int rc = sh.sh_type == SHT_GNU_verneed  ? read_verneed(im, &sh, &strs, out)
                 : sh.sh_type == SHT_GNU_verdef ? read_verdef(im, &sh, &strs, out)
                                                : read_dynamic(im, &sh, &strs, out);
        if (rc < 0)
            return rc;
    }
    out->glibc_release = banner_release(im);
    return 0;
}

int qc_elf_read_fd(int fd, const char *name, qc_elf_info_t *out, char err[QC_ERR_LEN])
{
    memset(out, 0, sizeof *out);
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        snprintf(err, QC_ERR_LEN, "cannot read %.200s: %s", name, strerror(e));
        return -e;
    }
    if (!S_ISREG(st.st_mode) || st.st_size <= 0 || (uint64_t)st.st_size > MAX_FILE) {
        snprintf(err, QC_ERR_LEN, "%.200s is not an ELF object (%s)", name,
                 !S_ISREG(st.st_mode) ? "not a regular file"
                 : st.st_size <= 0    ? "empty"
                                      : "over 256 MiB");
        return -ENOEXEC;
    }
    unsigned char *buf = malloc((size_t)st.st_size);
    if (!buf) {
        snprintf(err, QC_ERR_LEN, "out of memory reading %.200s", name);
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    struct image im = {buf, got};
    int rc = parse(&im, out);
    free(buf);
    if (rc < 0)
        snprintf(err, QC_ERR_LEN, "%.200s is not a 64-bit little-endian ELF object", name);
    return rc;
}

int qc_elf_read(const char *path, qc_elf_info_t *out, char err[QC_ERR_LEN])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        memset(out, 0, sizeof *out);
        snprintf(err, QC_ERR_LEN, "cannot open %.200s: %s", path, strerror(e));
        return -e;
    }
    int rc = qc_elf_read_fd(fd, path, out, err);
    close(fd);
    return rc;
}
