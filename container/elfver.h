/* elfver.h - what an ELF shared object says about glibc, read from the file without
 * loading it: the GLIBC_x.y versions it needs (.gnu.version_r), the ones it defines
 * (.gnu.version_d), a libc.so.6's release (from its banner), and the libraries it names
 * (DT_NEEDED).
 *
 * Two users: test_bundle checks that the bundle needs nothing newer than its glibc floor,
 * and the preflight hook reads an image's libc.so.6 to learn its glibc release. The hook
 * reads files of an image, so the parser treats every byte as hostile: every offset and
 * count is checked against the file before it is followed. No state; any thread. */
#ifndef QC_ELFVER_H
#define QC_ELFVER_H

#include <stddef.h>

#define QC_ERR_LEN 256
#define QC_MAX_NEEDED 32

/* A glibc version as one number: 2.31 is 2031000, 2.2.5 is 2002005. */
#define QC_GLIBC(major, minor, patch) ((major)*1000000u + (minor)*1000u + (patch))

typedef struct qc_elf_info {
    unsigned glibc_needed;          /* highest GLIBC_x.y in .gnu.version_r, 0 for none */
    unsigned glibc_defined;         /* highest GLIBC_x.y in .gnu.version_d, 0 for none */
    unsigned glibc_release;         /* a libc.so.6's own release, from its banner ("GNU C Library
                                     * ... release version 2.31."); 0 when it has none. Not the
                                     * same: 2.31 defines no GLIBC_2.31 */
    size_t nneeded;                 /* entries of needed used (at most QC_MAX_NEEDED are kept) */
    char needed[QC_MAX_NEEDED][64]; /* DT_NEEDED names, in order */
} qc_elf_info_t;

/* Reads the 64-bit little-endian ELF object at path (at most 256 MiB). Returns 0 with
 * *out filled, -ENOEXEC when it is not such an object or is malformed, or another
 * negative errno when it cannot be read; err gets one line. */
int qc_elf_read(const char *path, qc_elf_info_t *out, char err[QC_ERR_LEN]);
/* The same for the file open on fd (read with pread; fd is left open), named name in
 * messages. */
int qc_elf_read_fd(int fd, const char *name, qc_elf_info_t *out, char err[QC_ERR_LEN]);

/* "GLIBC_2.31" -> QC_GLIBC(2, 31, 0); 0 for anything else (GLIBC_PRIVATE). */
unsigned qc_glibc_parse(const char *version);
/* Writes v as "2.31" or "2.2.5" into buf (cap bytes); returns buf. */
char *qc_glibc_format(unsigned v, char *buf, size_t cap);

#endif
